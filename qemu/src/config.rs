//! What to boot and how: [`VmConfig`] and the QEMU command line built from it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::accel::{qemu_binary, resolved_accel, Accel};

/// The machine model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    /// `-machine pc` (i440fx) with virtio-pci devices.
    #[default]
    Pc,
    /// `-machine microvm,x-option-roms=off,rtc=on` with virtio-mmio devices and its
    /// built-in isa-serial as ttyS0. The kernel needs `CONFIG_VIRTIO_MMIO` (a module in
    /// Debian's cloud kernel: disks and network need `virtio_mmio` in the image).
    Microvm,
    /// QEMU `microvm` presenting the machine the way Firecracker 1.8 and later
    /// do on x86_64: ACPI tables that describe the virtio-mmio devices (HID
    /// `LNRO0005`), no power-off (the guest ends the VM with `reboot=k`, the
    /// keyboard-controller reset of the `i8042` device added here, which
    /// `-no-reboot` turns into QEMU's exit), no RTC, no isa-debug-exit, and
    /// nothing added to the kernel command line by QEMU. (QEMU's ACPI does
    /// have a power-off register, which Firecracker lacks: a guest for
    /// Firecracker must use `mkrootfs.shutdown=reboot`.)
    FirecrackerLike,
    /// QEMU `microvm` presenting the machine the way Firecracker before 1.8
    /// does (and later ones for kernels without ACPI): `acpi=off` (MP table
    /// only), and every virtio-mmio device announced on the kernel command
    /// line as `virtio_mmio.device=` (see [`Machine::mmio_transport`]), which
    /// only kernels with `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` read.
    /// Otherwise as [`Machine::FirecrackerLike`].
    FirecrackerLegacyLike,
    /// QEMU `microvm` presenting the machine the way Cloud Hypervisor does:
    /// ACPI (power-off through the ACPI sleep register), a PCIe host bridge
    /// with virtio-pci devices, nothing added to the kernel command line, no
    /// isa-debug-exit.
    CloudHypervisorLike,
}

impl Machine {
    /// Where QEMU `microvm` with `acpi=off` puts virtio-mmio transport
    /// `index` (0-7): 512 bytes at `0xfeb00000 + index * 0x200`, on IRQ
    /// `5 + index` (QEMU's hw/i386/microvm.c; with ACPI the IRQs move to a
    /// second IOAPIC). Returns the kernel parameter announcing it.
    pub fn mmio_transport(index: usize) -> String {
        format!(
            "virtio_mmio.device=512@{:#x}:{}",
            0xfeb0_0000 + index * 0x200,
            5 + index
        )
    }

    /// Whether the monitor this machine stands for has QEMU's
    /// isa-debug-exit device (only QEMU's own machines do).
    pub fn has_debug_exit(self) -> bool {
        // Neither Firecracker nor Cloud Hypervisor has QEMU's isa-debug-exit.
        matches!(self, Machine::Pc | Machine::Microvm)
    }
}

/// A virtio-blk disk; the guest sees them as /dev/vda, /dev/vdb... in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    /// QEMU block format, e.g. "raw" (the default of [`Disk::raw`]).
    pub format: String,
    pub readonly: bool,
    /// Shows up in the guest as /sys/block/vdX/serial and /dev/disk/by-id/virtio-<serial>.
    pub serial: Option<String>,
}

impl Disk {
    /// A writable raw image without serial.
    pub fn raw(path: impl Into<PathBuf>) -> Disk {
        Disk {
            path: path.into(),
            format: "raw".to_string(),
            readonly: false,
            serial: None,
        }
    }
}

/// One guest boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Kernel command line; `panic=-1` and `console=ttyS0` are appended unless a
    /// `panic=` / `console=` parameter is already there. Default empty.
    pub append: String,
    /// Default [`Machine::Pc`].
    pub machine: Machine,
    /// Default [`Accel::Auto`].
    pub accel: Accel,
    /// Default 512.
    pub memory_mb: u32,
    /// Default 1.
    pub cpus: u32,
    /// Default none.
    pub disks: Vec<Disk>,
    /// virtio-net with QEMU user networking (10.0.2.0/24, DHCP). Default false.
    pub net: bool,
    /// Counted from when the QEMU slot is acquired. Default 120 s.
    pub timeout: Duration,
    /// Also copy the console to our stdout as it arrives (`mkrootfs run`). Default false.
    pub echo_console: bool,
    /// With `echo_console`, echo only what the kernel's `quiet` would print of
    /// its own messages (errors) and every other line (init, services); the
    /// captured console keeps everything ([`crate::QuietFilter`]). Adds
    /// `console_msg_format=syslog` to the command line. Default false.
    pub quiet_console: bool,
    /// Give QEMU our stdin, so that the guest's console can be typed into
    /// (QEMU puts a terminal in raw mode; Ctrl-C ends QEMU). Default: false
    /// (stdin is /dev/null, as tests need).
    pub interactive: bool,
    /// `isa-debug-exit` at port 0xf4 (QEMU then exits with `(code << 1) | 1`). Default true;
    /// ignored on [`Machine::FirecrackerLike`] and [`Machine::CloudHypervisorLike`],
    /// whose monitors have no such device.
    pub debug_exit: bool,
    /// Appended to the QEMU command line as given. Default none.
    pub extra_args: Vec<String>,
}

impl VmConfig {
    pub fn new(kernel: impl Into<PathBuf>, initrd: impl Into<PathBuf>) -> VmConfig {
        VmConfig {
            kernel: kernel.into(),
            initrd: initrd.into(),
            append: String::new(),
            machine: Machine::Pc,
            accel: Accel::Auto,
            memory_mb: 512,
            cpus: 1,
            disks: Vec::new(),
            net: false,
            timeout: Duration::from_secs(120),
            echo_console: false,
            quiet_console: false,
            interactive: false,
            debug_exit: true,
            extra_args: Vec::new(),
        }
    }

    /// The QEMU command [`crate::run`] spawns (minus its stdio plumbing). With
    /// [`Accel::Auto`] this may run the KVM probe once (see [`crate::resolved_accel`]).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(qemu_binary());
        cmd.args(self.args(resolved_accel(self.accel), host_tsc_khz()));
        cmd
    }

    /// The kernel command line as passed to QEMU (may run the KVM probe, as `command`).
    pub fn kernel_cmdline(&self) -> String {
        self.cmdline(resolved_accel(self.accel), host_tsc_khz())
    }

    /// `append` plus `panic=-1`, `console=ttyS0`, for the microvm machines under TCG
    /// `tsc_early_khz=<tsc_khz>`, and for microvm with `debug_exit`
    /// `mkrootfs.debug_exit=0xf4`, each unless the parameter is already there; then
    /// for [`Machine::FirecrackerLegacyLike`] one `virtio_mmio.device=` per device.
    ///
    /// Why the TSC rate: microvm has no port 0x61, so the kernel cannot calibrate the TSC
    /// against PIT channel 2; without kvmclock (TCG) the Debian 6.1 kernel then hangs
    /// after "tsc: Marking TSC unstable". Under TCG the guest TSC is the host's.
    fn cmdline(&self, accel: Accel, tsc_khz: u64) -> String {
        let mut line = self.append.trim().to_string();
        let has = |prefix: &str| {
            self.append
                .split_whitespace()
                .any(|w| w.starts_with(prefix))
        };
        let tsc = format!("tsc_early_khz={tsc_khz}");
        let mut params = vec![("panic=", "panic=-1"), ("console=", "console=ttyS0")];
        let microvm = self.machine != Machine::Pc;
        if microvm && accel != Accel::Kvm {
            params.push(("tsc_early_khz=", &tsc));
        }
        // Under emulation on a loaded host the kernel's check that the
        // timer interrupt reaches the IO-APIC can time out and panic the
        // boot ("IO-APIC + timer doesn't work!"): skip the check there.
        if accel != Accel::Kvm {
            params.push(("no_timer_check", "no_timer_check"));
        }
        // The mkrootfs init finds isa-debug-exit by itself only on machines
        // with QEMU's DMI tables; microvm has none, so tell it where it is.
        if self.machine == Machine::Microvm && self.debug_exit {
            params.push(("mkrootfs.debug_exit", "mkrootfs.debug_exit=0xf4"));
        }
        if self.quiet_console {
            params.push(("console_msg_format=", "console_msg_format=syslog"));
        }
        for (prefix, param) in params {
            if !has(prefix) {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(param);
            }
        }
        // Firecracker announces its devices this way; QEMU's own
        // auto-kernel-cmdline is off, so the same parameters come from here.
        if self.machine == Machine::FirecrackerLegacyLike {
            for i in 0..self.mmio_devices() {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(&Machine::mmio_transport(i));
            }
        }
        line
    }

    /// The virtio-mmio devices, disks then network, in transport order.
    fn mmio_devices(&self) -> usize {
        self.disks.len() + usize::from(self.net)
    }

    fn debug_exit_device(&self) -> bool {
        self.debug_exit && self.machine.has_debug_exit()
    }

    /// The arguments after the program name, for an already resolved accelerator.
    pub(crate) fn args(&self, accel: Accel, tsc_khz: u64) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        // -nodefaults: no VGA, no default NIC (whose PXE ROM slows boot), no floppy/cdrom,
        // no default monitor/serial: everything the guest sees is listed below.
        push(&["-nodefaults", "-no-user-config"]);
        match self.machine {
            Machine::Pc => push(&["-machine", "pc"]),
            Machine::Microvm => push(&["-machine", "microvm,x-option-roms=off,rtc=on"]),
            Machine::FirecrackerLike => push(&[
                "-machine",
                "microvm,acpi=on,auto-kernel-cmdline=off,x-option-roms=off,rtc=off",
                "-device",
                "i8042",
            ]),
            Machine::FirecrackerLegacyLike => push(&[
                "-machine",
                "microvm,acpi=off,auto-kernel-cmdline=off,x-option-roms=off,rtc=off",
                "-device",
                "i8042",
            ]),
            Machine::CloudHypervisorLike => push(&[
                "-machine",
                "microvm,acpi=on,pcie=on,auto-kernel-cmdline=off,x-option-roms=off,rtc=on",
            ]),
        }
        match accel {
            Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
            // Auto never reaches here resolved; treat it as the safe choice.
            Accel::Tcg | Accel::Auto => push(&["-accel", "tcg", "-cpu", "max"]),
        }
        let memory = self.memory_mb.to_string();
        let cpus = self.cpus.max(1).to_string();
        push(&["-m", &memory, "-smp", &cpus]);
        // The console is the first serial port on QEMU's stdout, which run() reads.
        push(&["-display", "none", "-serial", "stdio", "-no-reboot"]);
        args.push("-kernel".into());
        args.push(self.kernel.clone().into_os_string());
        args.push("-initrd".into());
        args.push(self.initrd.clone().into_os_string());
        args.push("-append".into());
        args.push(self.cmdline(accel, tsc_khz).into());
        if self.debug_exit_device() {
            args.push("-device".into());
            args.push("isa-debug-exit,iobase=0xf4,iosize=0x04".into());
        }
        let (blk, net) = match self.machine {
            Machine::Pc | Machine::CloudHypervisorLike => {
                ("virtio-blk-pci", "virtio-net-pci,netdev=net0,romfile=")
            }
            Machine::Microvm | Machine::FirecrackerLike | Machine::FirecrackerLegacyLike => {
                ("virtio-blk-device", "virtio-net-device,netdev=net0")
            }
        };
        // Pin each device to the transport announced on the command line. Only
        // there: with ACPI, QEMU's own placement (from the last transport down) is
        // what works; a device pinned to transport 0 never gets its interrupt
        // (QEMU 7.2, Debian's 6.1 guest hangs probing virtio_blk).
        let bus = |i: usize| match self.machine {
            Machine::FirecrackerLegacyLike => format!(",bus=virtio-mmio-bus.{i}"),
            _ => String::new(),
        };
        for (i, disk) in self.disks.iter().enumerate() {
            let mut drive = format!(
                "file={},format={},if=none,id=disk{i}",
                escape_path(&disk.path),
                escape(&disk.format)
            );
            if disk.readonly {
                drive.push_str(",readonly=on");
            }
            let mut device = format!("{blk},drive=disk{i}{}", bus(i));
            if let Some(serial) = &disk.serial {
                device.push_str(&format!(",serial={}", escape(serial)));
            }
            args.extend([
                "-drive".into(),
                drive.into(),
                "-device".into(),
                device.into(),
            ]);
        }
        if self.net {
            let net = format!("{net}{}", bus(self.disks.len()));
            args.extend(["-netdev", "user,id=net0", "-device", &net].map(OsString::from));
        }
        args.extend(self.extra_args.iter().map(OsString::from));
        args
    }
}

/// The host TSC rate from the first "cpu MHz" of /proc/cpuinfo (the nominal rate on
/// constant-TSC CPUs); 2 GHz when unknown, which only skews the guest's clock.
fn host_tsc_khz() -> u64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| tsc_khz_from_cpuinfo(&info))
        .unwrap_or(2_000_000)
}

fn tsc_khz_from_cpuinfo(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split_once(':')?.1.trim().parse().ok()?;
    let khz = (mhz * 1000.0).round();
    (1.0..1e9).contains(&khz).then_some(khz as u64)
}

/// QEMU option values end at a comma; a literal comma is written twice.
fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

fn escape_path(path: &Path) -> String {
    escape(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn pc_command_line_with_defaults() {
        let cfg = VmConfig::new("/k/vmlinuz", "/i/initrd.img");
        assert_eq!(
            strings(cfg.args(Accel::Tcg, 2_100_000)),
            [
                "-nodefaults",
                "-no-user-config",
                "-machine",
                "pc",
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-m",
                "512",
                "-smp",
                "1",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-kernel",
                "/k/vmlinuz",
                "-initrd",
                "/i/initrd.img",
                "-append",
                "panic=-1 console=ttyS0 no_timer_check",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
            ]
        );
    }

    #[test]
    fn pc_command_line_with_disks_net_and_extras() {
        let mut cfg = VmConfig::new("/k", "/i");
        cfg.append = " root=/dev/vda quiet ".to_string();
        cfg.memory_mb = 256;
        cfg.cpus = 2;
        cfg.disks = vec![
            Disk::raw("/img/a,b.raw"),
            Disk {
                path: "/img/ro.raw".into(),
                format: "raw".into(),
                readonly: true,
                serial: Some("data".into()),
            },
        ];
        cfg.net = true;
        cfg.debug_exit = false;
        cfg.extra_args = vec!["-s".into()];
        assert_eq!(
            strings(cfg.args(Accel::Kvm, 2_100_000)),
            [
                "-nodefaults",
                "-no-user-config",
                "-machine",
                "pc",
                "-accel",
                "kvm",
                "-cpu",
                "host",
                "-m",
                "256",
                "-smp",
                "2",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-kernel",
                "/k",
                "-initrd",
                "/i",
                "-append",
                "root=/dev/vda quiet panic=-1 console=ttyS0",
                "-drive",
                "file=/img/a,,b.raw,format=raw,if=none,id=disk0",
                "-device",
                "virtio-blk-pci,drive=disk0",
                "-drive",
                "file=/img/ro.raw,format=raw,if=none,id=disk1,readonly=on",
                "-device",
                "virtio-blk-pci,drive=disk1,serial=data",
                "-netdev",
                "user,id=net0",
                "-device",
                "virtio-net-pci,netdev=net0,romfile=",
                "-s",
            ]
        );
    }

    #[test]
    fn microvm_command_line() {
        let mut cfg = VmConfig::new("/k", "/i");
        cfg.machine = Machine::Microvm;
        cfg.append = "console=hvc0 panic=5".to_string();
        cfg.disks = vec![Disk::raw("/d.raw")];
        cfg.net = true;
        assert_eq!(
            strings(cfg.args(Accel::Tcg, 2_100_000)),
            [
                "-nodefaults",
                "-no-user-config",
                "-machine",
                "microvm,x-option-roms=off,rtc=on",
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-m",
                "512",
                "-smp",
                "1",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-kernel",
                "/k",
                "-initrd",
                "/i",
                "-append",
                "console=hvc0 panic=5 tsc_early_khz=2100000 no_timer_check mkrootfs.debug_exit=0xf4",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-drive",
                "file=/d.raw,format=raw,if=none,id=disk0",
                "-device",
                "virtio-blk-device,drive=disk0",
                "-netdev",
                "user,id=net0",
                "-device",
                "virtio-net-device,netdev=net0",
            ]
        );
    }

    #[test]
    fn microvm_cmdline_gets_the_tsc_rate_only_without_kvm() {
        let mut cfg = VmConfig::new("/k", "/i");
        cfg.machine = Machine::Microvm;
        cfg.debug_exit = false;
        assert_eq!(
            cfg.cmdline(Accel::Tcg, 1_500),
            "panic=-1 console=ttyS0 tsc_early_khz=1500 no_timer_check"
        );
        assert_eq!(cfg.cmdline(Accel::Kvm, 1_500), "panic=-1 console=ttyS0");
        cfg.append = "tsc_early_khz=9".to_string();
        assert_eq!(
            cfg.cmdline(Accel::Tcg, 1_500),
            "tsc_early_khz=9 panic=-1 console=ttyS0 no_timer_check"
        );
        cfg.machine = Machine::Pc;
        cfg.append = String::new();
        assert_eq!(
            cfg.cmdline(Accel::Tcg, 1_500),
            "panic=-1 console=ttyS0 no_timer_check"
        );
    }

    #[test]
    fn firecracker_legacy_like_announces_each_mmio_device_and_has_no_debug_exit() {
        let mut cfg = VmConfig::new("/k/vmlinux", "/i");
        cfg.machine = Machine::FirecrackerLegacyLike;
        cfg.append = "console=ttyS0 reboot=k panic=1 pci=off".to_string();
        cfg.disks = vec![Disk::raw("/root.ext4"), Disk::raw("/data.raw")];
        cfg.net = true;
        assert_eq!(
            strings(cfg.args(Accel::Tcg, 2_100_000)),
            [
                "-nodefaults",
                "-no-user-config",
                "-machine",
                "microvm,acpi=off,auto-kernel-cmdline=off,x-option-roms=off,rtc=off",
                "-device",
                "i8042",
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-m",
                "512",
                "-smp",
                "1",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-kernel",
                "/k/vmlinux",
                "-initrd",
                "/i",
                "-append",
                "console=ttyS0 reboot=k panic=1 pci=off tsc_early_khz=2100000 no_timer_check \
                 virtio_mmio.device=512@0xfeb00000:5 virtio_mmio.device=512@0xfeb00200:6 \
                 virtio_mmio.device=512@0xfeb00400:7",
                "-drive",
                "file=/root.ext4,format=raw,if=none,id=disk0",
                "-device",
                "virtio-blk-device,drive=disk0,bus=virtio-mmio-bus.0",
                "-drive",
                "file=/data.raw,format=raw,if=none,id=disk1",
                "-device",
                "virtio-blk-device,drive=disk1,bus=virtio-mmio-bus.1",
                "-netdev",
                "user,id=net0",
                "-device",
                "virtio-net-device,netdev=net0,bus=virtio-mmio-bus.2",
            ]
        );
    }

    #[test]
    fn firecracker_like_has_acpi_an_i8042_and_no_cmdline_devices() {
        let mut cfg = VmConfig::new("/k/vmlinux", "/i");
        cfg.machine = Machine::FirecrackerLike;
        cfg.append = "console=ttyS0 reboot=k panic=1 pci=off".to_string();
        cfg.disks = vec![Disk::raw("/root.ext4")];
        let args = strings(cfg.args(Accel::Tcg, 2_100_000));
        assert_eq!(
            &args[2..6],
            [
                "-machine",
                "microvm,acpi=on,auto-kernel-cmdline=off,x-option-roms=off,rtc=off",
                "-device",
                "i8042"
            ]
        );
        assert_eq!(
            &args[23..],
            [
                "-append",
                "console=ttyS0 reboot=k panic=1 pci=off tsc_early_khz=2100000 no_timer_check",
                "-drive",
                "file=/root.ext4,format=raw,if=none,id=disk0",
                "-device",
                "virtio-blk-device,drive=disk0",
            ]
        );
    }

    #[test]
    fn cloud_hypervisor_like_uses_pcie_and_acpi_and_adds_nothing_to_the_cmdline() {
        let mut cfg = VmConfig::new("/k", "/i");
        cfg.machine = Machine::CloudHypervisorLike;
        cfg.disks = vec![Disk::raw("/root.ext4")];
        assert_eq!(
            strings(cfg.args(Accel::Kvm, 2_100_000)),
            [
                "-nodefaults",
                "-no-user-config",
                "-machine",
                "microvm,acpi=on,pcie=on,auto-kernel-cmdline=off,x-option-roms=off,rtc=on",
                "-accel",
                "kvm",
                "-cpu",
                "host",
                "-m",
                "512",
                "-smp",
                "1",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-kernel",
                "/k",
                "-initrd",
                "/i",
                "-append",
                "panic=-1 console=ttyS0",
                "-drive",
                "file=/root.ext4,format=raw,if=none,id=disk0",
                "-device",
                "virtio-blk-pci,drive=disk0",
            ]
        );
    }

    #[test]
    fn tsc_rate_from_cpuinfo() {
        let info = "processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2100.000\ncpu MHz\t\t: 800.5\n";
        assert_eq!(tsc_khz_from_cpuinfo(info), Some(2_100_000));
        assert_eq!(tsc_khz_from_cpuinfo("cpu MHz : fast\n"), None);
        assert_eq!(tsc_khz_from_cpuinfo("processor : 0\n"), None);
    }

    #[test]
    fn explicit_accel_is_not_probed() {
        let mut cfg = VmConfig::new("/k", "/i");
        cfg.accel = Accel::Tcg;
        let cmd = cfg.command();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(&args[4..8], ["-accel", "tcg", "-cpu", "max"]);
    }
}
