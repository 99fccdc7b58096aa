//! The QEMU command line of a [`VmConfig`]: the kernel command line each
//! machine needs, the machine, accelerator, devices and console arguments.

use super::{Machine, Net, Nic, VmConfig};
use crate::accel::{qemu_binary, resolved_accel, Accel};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

impl VmConfig {
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

    /// `panic=-1`, `console=ttyS0`, for the microvm machines under TCG
    /// `tsc_early_khz=<tsc_khz>`, under emulation `no_timer_check`, for microvm with
    /// `debug_exit` `mkrootfs.debug_exit=0xf4`, with `quiet_console`
    /// `console_msg_format=syslog`; then `append`, so that a parameter given there
    /// comes after the harness's own and wins where the kernel takes the last value
    /// (`panic=`, `tsc_early_khz=`; every `console=` is a console, the last one
    /// `/dev/console`). A parameter of the harness that `append` has word for word
    /// is left out. Then for [`Machine::FirecrackerLegacyLike`] one
    /// `virtio_mmio.device=` per device.
    ///
    /// Why the TSC rate: microvm has no port 0x61, so the kernel cannot calibrate the TSC
    /// against PIT channel 2; without kvmclock (TCG) the Debian 6.1 kernel then hangs
    /// after "tsc: Marking TSC unstable". Under TCG the guest TSC is the host's.
    pub(super) fn cmdline(&self, accel: Accel, tsc_khz: u64) -> String {
        let tsc = format!("tsc_early_khz={tsc_khz}");
        let mut params = vec!["panic=-1", "console=ttyS0"];
        let microvm = self.machine != Machine::Pc;
        if microvm && accel != Accel::Kvm {
            params.push(&tsc);
        }
        // Under emulation on a loaded host the kernel's check that the
        // timer interrupt reaches the IO-APIC can time out and panic the
        // boot ("IO-APIC + timer doesn't work!"): skip the check there.
        if accel != Accel::Kvm {
            params.push("no_timer_check");
        }
        // The mkrootfs init finds isa-debug-exit by itself only on machines
        // with QEMU's DMI tables; microvm has none, so tell it where it is.
        if self.machine == Machine::Microvm && self.debug_exit {
            params.push("mkrootfs.debug_exit=0xf4");
        }
        if self.quiet_console {
            params.push("console_msg_format=syslog");
        }
        let user: Vec<&str> = self.append.split_whitespace().collect();
        params.retain(|p| !user.contains(p));
        let mut line = params.join(" ");
        for word in user {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
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

    /// The virtio-mmio devices, disks, network then rng, in transport order.
    fn mmio_devices(&self) -> usize {
        self.disks.len() + usize::from(self.net.is_some()) + usize::from(self.rng)
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
        let (blk, net, rng) = match self.machine {
            Machine::Pc | Machine::CloudHypervisorLike => (
                "virtio-blk-pci",
                "virtio-net-pci,netdev=net0,romfile=",
                "virtio-rng-pci,rng=rng0",
            ),
            Machine::Microvm | Machine::FirecrackerLike | Machine::FirecrackerLegacyLike => (
                "virtio-blk-device",
                "virtio-net-device,netdev=net0",
                "virtio-rng-device,rng=rng0",
            ),
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
        if let Some(nic) = &self.net {
            let mut device = format!("{net}{}", bus(self.disks.len()));
            if let Some(mac) = &nic.mac {
                device.push_str(&format!(",mac={}", escape(mac)));
            }
            args.extend([
                "-netdev".into(),
                netdev(nic).into(),
                "-device".into(),
                device.into(),
            ]);
        }
        if self.rng {
            // rng-random reads the file (rng-builtin, QEMU's default
            // backend, would be QEMU's own generator): the host's CRNG.
            let transport = self.disks.len() + usize::from(self.net.is_some());
            args.extend([
                "-object".into(),
                "rng-random,filename=/dev/urandom,id=rng0".into(),
                "-device".into(),
                format!("{rng}{}", bus(transport)).into(),
            ]);
        }
        args.extend(self.extra_args.iter().map(OsString::from));
        args
    }
}

/// The `-netdev` of `nic`, id `net0`. User networking is always
/// `restrict=on`, and forwards listen on 127.0.0.1 only: a guest reaches
/// nothing outside and only this host reaches it.
fn netdev(nic: &Nic) -> String {
    match &nic.backend {
        Net::User { hostfwd, guestfwd } => {
            let mut s = "user,id=net0,restrict=on".to_string();
            for f in hostfwd {
                s.push_str(&format!(
                    ",hostfwd=tcp:127.0.0.1:{}-:{}",
                    f.host_port, f.guest_port
                ));
            }
            for g in guestfwd {
                s.push_str(&format!(
                    ",guestfwd=tcp:{}:{}-cmd:socat STDIO TCP:127.0.0.1:{}",
                    g.addr, g.port, g.host_port
                ));
            }
            s
        }
        Net::Tap(name) => format!(
            "tap,id=net0,ifname={},script=no,downscript=no",
            escape(name)
        ),
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

pub(super) fn tsc_khz_from_cpuinfo(info: &str) -> Option<u64> {
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
