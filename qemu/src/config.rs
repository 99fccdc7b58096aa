//! What to boot and how: [`VmConfig`] and the QEMU command line built from it.

use std::path::PathBuf;
use std::time::Duration;

use crate::accel::Accel;

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

/// The backend of the guest's virtio-net device (`-netdev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    /// QEMU user networking, always with `restrict=on`: the guest reaches
    /// nothing outside (QEMU's own DHCP server gives it 10.0.2.15/24,
    /// router 10.0.2.2, DNS 10.0.2.3), and the host reaches it only through
    /// the forwarded ports, each bound to 127.0.0.1.
    User {
        /// TCP forwards from 127.0.0.1 on the host. Default none.
        hostfwd: Vec<HostFwd>,
        /// Guest connections to an address of the virtual network, each
        /// carried to a port of the host's 127.0.0.1. Default none.
        guestfwd: Vec<GuestFwd>,
    },
    /// An existing tap device of the host (`script=no`: it must exist and be
    /// configured already).
    Tap(String),
}

/// `hostfwd=tcp:127.0.0.1:HOST-:GUEST`: a TCP port of the host's loopback
/// forwarded to the guest's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFwd {
    pub host_port: u16,
    pub guest_port: u16,
}

/// `guestfwd=tcp:ADDR:PORT-cmd:socat STDIO TCP:127.0.0.1:HOST`: each guest
/// connection to `addr:port` gets its own connection to the host's
/// 127.0.0.1:`host_port` (a `tcp:` chardev would be one stream for all of
/// them). Needs `socat` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFwd {
    pub addr: std::net::Ipv4Addr,
    pub port: u16,
    pub host_port: u16,
}

/// The guest's network device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub backend: Net,
    /// The device's MAC (`52:54:00:…` style text). Default: QEMU's
    /// (52:54:00:12:34:56).
    pub mac: Option<String>,
}

impl Nic {
    /// A NIC with `backend` and QEMU's MAC.
    pub fn new(backend: Net) -> Nic {
        Nic { backend, mac: None }
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
    /// A virtio-net device and its backend. Default none.
    pub net: Option<Nic>,
    /// A virtio-rng device fed from the host's `/dev/urandom`
    /// (`virtio-rng-pci` on [`Machine::Pc`] and
    /// [`Machine::CloudHypervisorLike`], `virtio-rng-device` on the other
    /// microvm shapes, after the disks and the network device as Firecracker
    /// attaches its `entropy`). Default false.
    pub rng: bool,
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
            net: None,
            rng: false,
            timeout: Duration::from_secs(120),
            echo_console: false,
            quiet_console: false,
            interactive: false,
            debug_exit: true,
            extra_args: Vec::new(),
        }
    }
}

mod command;

#[cfg(test)]
mod tests;
