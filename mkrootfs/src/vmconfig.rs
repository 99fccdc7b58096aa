//! What each microVM monitor needs to boot a mkrootfs image: Firecracker's
//! `--config-file` JSON, Cloud Hypervisor's command line, and the QEMU
//! `microvm` command line `mkrootfs run` uses, all from one [`Guest`].
//!
//! The monitors differ in ways that break a guest silently (docs/microvm.md):
//! - Firecracker: virtio-mmio devices that it announces itself, in ACPI
//!   tables (1.8 and later, x86_64) and with `virtio_mmio.device=` kernel
//!   parameters (which only kernels with `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`
//!   read), no power-off (the guest reboots with `reboot=k` and Firecracker
//!   exits), an uncompressed ELF kernel, and a root drive that makes
//!   Firecracker add `root=/dev/vda rw|ro` to the command line.
//! - Cloud Hypervisor: virtio-pci devices, ACPI power-off, a PVH ELF kernel.
//! - QEMU `microvm`: virtio-mmio devices announced by QEMU, ACPI power-off
//!   and isa-debug-exit.
//!
//! The QEMU boots of the same guests (on `microvm` machines shaped like each
//! monitor) are in the CLI package (`mkrootfs_cli::qemu`), so this library
//! does not depend on the QEMU harness.
#![deny(missing_docs)]

use crate::vmlinux::{kernel_format, KernelFormat};
pub use mkrootfs_config::network::{Cidr, Mac};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// The kernel parameters every Firecracker guest gets: the serial console
/// Firecracker emulates, `reboot=k` (the i8042 reset Firecracker turns into
/// its exit), `panic=1` (a panic then ends the VM), `pci=off` (virtio-mmio
/// only: no time spent probing a bus that is not there), and the mkrootfs
/// init's reboot shutdown (Firecracker has no ACPI power-off).
pub const FIRECRACKER_BOOT_ARGS: &str =
    "console=ttyS0 reboot=k panic=1 pci=off mkrootfs.shutdown=reboot";

/// The kernel parameters every Cloud Hypervisor guest gets (its `--serial
/// tty` is the 8250 at 0x3f8; power-off goes through ACPI).
pub const CLOUD_HYPERVISOR_CMDLINE: &str = "console=ttyS0";

/// Firecracker's `drive_id` of the config drive.
pub const CONFIG_DRIVE_ID: &str = "config";

/// Which monitor to describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Firecracker: a `--config-file` JSON.
    Firecracker,
    /// Cloud Hypervisor: its command line.
    CloudHypervisor,
    /// QEMU's `microvm` machine: the command line `mkrootfs run --machine microvm` runs.
    QemuMicrovm,
}

/// A disk of the guest, seen as `/dev/vda`, `/dev/vdb`… in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestDisk {
    /// Host path of the raw image.
    pub path: PathBuf,
    /// Attach read-only. Default false.
    pub read_only: bool,
}

/// A vsock device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestVsock {
    /// The guest's context id (3 or more).
    pub cid: u32,
    /// The host Unix socket the monitor proxies connections through.
    pub socket: PathBuf,
}

/// The guest's network interface (one virtio-net device).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestNet {
    /// What the device is attached to on the host.
    pub backend: NetBackend,
    /// The guest's MAC: [`mac_for`] the VM's name unless given.
    pub mac: Mac,
    /// Static addressing for the kernel command line (`ip=`, see
    /// [`ip_param`]): the same image serves many VMs. Default none (the
    /// image's `[[init.network]]` applies).
    pub ip: Option<String>,
}

/// What a guest's network device is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBackend {
    /// An existing tap device of the host: Firecracker's `host_dev_name`,
    /// Cloud Hypervisor's `--net tap=`, QEMU's `-netdev tap`.
    Tap(String),
    /// QEMU user networking (`mkrootfs run` only), `restrict=on`, with TCP
    /// forwards from 127.0.0.1 (host port, guest port).
    User {
        /// `(host_port, guest_port)` pairs.
        hostfwd: Vec<(u16, u16)>,
    },
}

/// Parses `mkrootfs run --net`: `user`, `user,hostfwd=tcp:127.0.0.1:HOST-:GUEST`
/// (repeatable) or `tap=NAME`. A forward must name 127.0.0.1: QEMU would
/// otherwise listen on every address of the host, and nothing but this
/// host may reach a guest through it.
pub fn parse_net(spec: &str) -> Result<NetBackend, String> {
    if let Some(tap) = spec.strip_prefix("tap=") {
        if tap.is_empty() || tap.len() > 15 || tap.contains([',', '/', ' ']) {
            return Err(format!("tap={tap}: not an interface name"));
        }
        return Ok(NetBackend::Tap(tap.to_string()));
    }
    let mut parts = spec.split(',');
    if parts.next() != Some("user") {
        return Err(format!(
            "{spec:?}: expected user[,hostfwd=tcp:127.0.0.1:HOSTPORT-:GUESTPORT] or tap=NAME"
        ));
    }
    let mut hostfwd = Vec::new();
    for p in parts {
        let Some(fwd) = p.strip_prefix("hostfwd=") else {
            return Err(format!(
                "{p:?}: only hostfwd= is accepted after user (restrict=on is always set)"
            ));
        };
        let rest = fwd
            .strip_prefix("tcp:")
            .ok_or_else(|| format!("hostfwd={fwd}: only tcp forwards are accepted"))?;
        let (host, guest) = rest
            .split_once('-')
            .ok_or_else(|| format!("hostfwd={fwd}: expected tcp:127.0.0.1:HOSTPORT-:GUESTPORT"))?;
        let (addr, host_port) = host.rsplit_once(':').unwrap_or(("", host));
        if addr != "127.0.0.1" {
            return Err(format!(
                "hostfwd={fwd}: the host address must be 127.0.0.1 (got {:?}): a guest is reachable from this host only",
                addr
            ));
        }
        let guest_port = guest.strip_prefix(':').ok_or_else(|| {
            format!("hostfwd={fwd}: the guest side is :GUESTPORT (the guest's address is its own)")
        })?;
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("hostfwd={fwd}: {p:?} is not a port (1-65535)"))
        };
        hostfwd.push((port(host_port)?, port(guest_port)?));
    }
    Ok(NetBackend::User { hostfwd })
}

/// A stable MAC for the VM named `name`: the first bytes of its SHA-256,
/// made locally administered (bit 1 of the first byte set) and unicast
/// (bit 0 clear), so two VMs of one host differ and a VM keeps its address
/// (and DHCP lease) across restarts.
pub fn mac_for(name: &str) -> Mac {
    use sha2::Digest;
    let d = sha2::Sha256::digest(name.as_bytes());
    Mac([(d[0] & 0xfc) | 0x02, d[1], d[2], d[3], d[4], d[5]])
}

/// The kernel's `ip=` for a static address on `device` (nfsroot.rst:
/// `<client>::<gw>:<netmask>:<hostname>:<device>:off`), which the mkrootfs
/// init applies. IPv4 only, as the kernel's syntax.
pub fn ip_param(
    address: Cidr,
    gateway: Option<Ipv4Addr>,
    hostname: Option<&str>,
    device: &str,
) -> Result<String, String> {
    let IpAddr::V4(client) = address.addr else {
        return Err(format!("{address}: ip= takes IPv4 addresses only"));
    };
    let mask = Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(address.prefix))
            .unwrap_or(0),
    );
    let gw = gateway.map_or(String::new(), |g| g.to_string());
    let value = format!(
        "{client}::{gw}:{mask}:{}:{device}:off",
        hostname.unwrap_or("")
    );
    // The init's own parser decides: what it would refuse at boot is
    // refused here.
    mkrootfs_config::network::parse_ip_param(&value)?;
    Ok(format!("ip={value}"))
}

/// One guest, independent of the monitor that runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    /// The kernel: an ELF `vmlinux` for Firecracker and Cloud Hypervisor.
    pub kernel: PathBuf,
    /// The mkrootfs image, loaded as the initramfs.
    pub initrd: PathBuf,
    /// Disks in order. Default none.
    pub disks: Vec<GuestDisk>,
    /// The first disk is the root device (`root=/dev/vda`, and Firecracker's
    /// `is_root_device`). Default false: the initramfs is the root.
    pub root_disk: bool,
    /// Guest memory in MiB. Default 512.
    pub memory_mib: u32,
    /// Virtual CPUs. Default 1.
    pub cpus: u32,
    /// Extra kernel parameters, appended after the monitor's own. Default empty.
    pub append: String,
    /// A vsock device. Default none.
    pub vsock: Option<GuestVsock>,
    /// A network interface. Default none.
    pub net: Option<GuestNet>,
    /// A config drive (`mkrootfs config-drive`): attached read-only after
    /// the disks, so that a root disk stays `/dev/vda`; the init finds it by
    /// its label. Firecracker's drive id is `config`. Default none.
    pub config_drive: Option<PathBuf>,
    /// Firecracker's MMDS (version 2) at this link-local address, on the
    /// guest's interface (needs `net` with a tap). Default none.
    pub mmds: Option<std::net::Ipv4Addr>,
    /// A virtio-rng device fed from the host's `/dev/urandom`, so that the
    /// guest's CRNG is seeded at once rather than waiting for jitter
    /// (Firecracker's `entropy`, Cloud Hypervisor's `--rng`, QEMU's
    /// virtio-rng). The guest needs the `virtio_rng` driver (the `microvm`
    /// module preset has it); without it the device is ignored. Default true.
    pub rng: bool,
}

impl Guest {
    /// A guest with the defaults above.
    pub fn new(kernel: impl Into<PathBuf>, initrd: impl Into<PathBuf>) -> Guest {
        Guest {
            kernel: kernel.into(),
            initrd: initrd.into(),
            disks: Vec::new(),
            root_disk: false,
            memory_mib: 512,
            cpus: 1,
            append: String::new(),
            vsock: None,
            net: None,
            config_drive: None,
            mmds: None,
            rng: true,
        }
    }

    /// Every block device in the order the guest sees them (`/dev/vda`,
    /// `/dev/vdb`…), each with Firecracker's drive id: the disks (the root
    /// disk first, `rootfs`), then the config drive, read-only.
    pub fn block_devices(&self) -> Vec<(String, GuestDisk)> {
        let disks = self.disks.iter().enumerate().map(|(i, d)| {
            let id = if self.root_disk && i == 0 {
                "rootfs".to_string()
            } else {
                format!("disk{i}")
            };
            (id, d.clone())
        });
        let config = self.config_drive.iter().map(|p| {
            (
                CONFIG_DRIVE_ID.to_string(),
                GuestDisk {
                    path: p.clone(),
                    read_only: true,
                },
            )
        });
        disks.chain(config).collect()
    }

    /// The tap device and MAC of the network interface, for the monitors
    /// that only attach taps (QEMU user networking is `mkrootfs run`'s).
    fn tap(&self) -> Option<(&str, Mac)> {
        match &self.net {
            Some(GuestNet {
                backend: NetBackend::Tap(t),
                mac,
                ..
            }) => Some((t, *mac)),
            _ => None,
        }
    }

    /// Firecracker's configuration. The root disk goes first, as
    /// Firecracker attaches it first; Firecracker itself adds the
    /// `virtio_mmio.device=` parameters and `root=/dev/vda rw|ro`.
    pub fn firecracker(&self) -> FirecrackerConfig {
        let drives = self
            .block_devices()
            .into_iter()
            .enumerate()
            .map(|(i, (drive_id, d))| FirecrackerDrive {
                drive_id,
                path_on_host: d.path.display().to_string(),
                // Never the config drive, even with no disk before it.
                is_root_device: self.root_disk && i == 0 && !self.disks.is_empty(),
                is_read_only: d.read_only,
            })
            .collect();
        FirecrackerConfig {
            boot_source: FirecrackerBootSource {
                kernel_image_path: self.kernel.display().to_string(),
                initrd_path: Some(self.initrd.display().to_string()),
                boot_args: Some(join_args(
                    &join_args(FIRECRACKER_BOOT_ARGS, self.ip_arg()),
                    &self.append,
                )),
            },
            drives,
            machine_config: FirecrackerMachineConfig {
                vcpu_count: self.cpus.max(1),
                mem_size_mib: self.memory_mib,
            },
            vsock: self.vsock.as_ref().map(|v| FirecrackerVsock {
                guest_cid: v.cid,
                uds_path: v.socket.display().to_string(),
            }),
            network_interfaces: self
                .tap()
                .map(|(tap, mac)| FirecrackerNetworkInterface {
                    iface_id: "eth0".to_string(),
                    host_dev_name: tap.to_string(),
                    guest_mac: Some(mac.to_string()),
                })
                .into_iter()
                .collect(),
            entropy: self.rng.then_some(FirecrackerEntropy {}),
            mmds_config: match (self.mmds, self.tap()) {
                (Some(addr), Some(_)) => Some(FirecrackerMmdsConfig {
                    version: "V2".to_string(),
                    network_interfaces: vec!["eth0".to_string()],
                    ipv4_address: addr.to_string(),
                }),
                _ => None,
            },
        }
    }

    /// The `ip=` parameter, or nothing.
    fn ip_arg(&self) -> &str {
        self.net
            .as_ref()
            .and_then(|n| n.ip.as_deref())
            .unwrap_or("")
    }

    /// The kernel command line for Cloud Hypervisor (and QEMU, which add nothing
    /// about the root themselves).
    pub fn cmdline(&self, base: &str) -> String {
        let mut line = base.to_string();
        if self.root_disk && !self.disks.is_empty() {
            let mode = if self.disks[0].read_only { "ro" } else { "rw" };
            line = join_args(&line, &format!("root=/dev/vda {mode}"));
        }
        line = join_args(&line, self.ip_arg());
        join_args(&line, &self.append)
    }

    /// Cloud Hypervisor's arguments (after the program name), with the
    /// options its `cloud-hypervisor --help` documents: `--kernel`,
    /// `--initramfs`, `--cmdline`, `--disk path=…[,readonly=on]` (one per disk),
    /// the config drive last, `--cpus boot=N`, `--memory size=<N>M`, `--serial tty --console off`
    /// (the console on the 8250 serial port, no virtio-console),
    /// `--vsock cid=N,socket=PATH` and `--net tap=NAME,mac=MAC` when asked,
    /// and `--rng src=/dev/urandom` unless `rng` is off.
    pub fn cloud_hypervisor(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--kernel".into(),
            self.kernel.display().to_string(),
            "--initramfs".into(),
            self.initrd.display().to_string(),
            "--cmdline".into(),
            self.cmdline(CLOUD_HYPERVISOR_CMDLINE),
        ];
        for (_, d) in self.block_devices() {
            let mut disk = format!("path={}", d.path.display());
            if d.read_only {
                disk.push_str(",readonly=on");
            }
            args.extend(["--disk".into(), disk]);
        }
        args.extend([
            "--cpus".into(),
            format!("boot={}", self.cpus.max(1)),
            "--memory".into(),
            format!("size={}M", self.memory_mib),
            "--serial".into(),
            "tty".into(),
            "--console".into(),
            "off".into(),
        ]);
        if let Some(v) = &self.vsock {
            args.extend([
                "--vsock".into(),
                format!("cid={},socket={}", v.cid, v.socket.display()),
            ]);
        }
        if let Some((tap, mac)) = self.tap() {
            args.extend(["--net".into(), format!("tap={tap},mac={mac}")]);
        }
        if self.rng {
            // Cloud Hypervisor's default source is /dev/urandom too; named
            // so that the line says where the guest's entropy comes from.
            args.extend(["--rng".into(), format!("src={RNG_SOURCE}")]);
        }
        args
    }
}

/// The host file Cloud Hypervisor's and QEMU's entropy devices read
/// (Firecracker's reads the host's CRNG itself): `/dev/urandom` never
/// blocks once the host is booted, and a guest needs no more than the
/// host's CRNG output (virtio-rng only seeds the guest's own CRNG).
pub const RNG_SOURCE: &str = "/dev/urandom";

/// `a b`, or whichever is not empty.
pub fn join_args(a: &str, b: &str) -> String {
    match (a.trim(), b.trim()) {
        ("", b) => b.to_string(),
        (a, "") => a.to_string(),
        (a, b) => format!("{a} {b}"),
    }
}

/// Firecracker's `--config-file`: the fields of its API's
/// `FullVmConfiguration` this writes (src/firecracker/swagger/firecracker.yaml).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirecrackerConfig {
    /// `boot-source`.
    #[serde(rename = "boot-source")]
    pub boot_source: FirecrackerBootSource,
    /// `drives`, the root device first.
    pub drives: Vec<FirecrackerDrive>,
    /// `machine-config`.
    #[serde(rename = "machine-config")]
    pub machine_config: FirecrackerMachineConfig,
    /// `vsock`, when asked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vsock: Option<FirecrackerVsock>,
    /// `network-interfaces`, when asked.
    #[serde(
        rename = "network-interfaces",
        skip_serializing_if = "Vec::is_empty",
        default
    )]
    pub network_interfaces: Vec<FirecrackerNetworkInterface>,
    /// `entropy`, unless the guest's `rng` is off.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entropy: Option<FirecrackerEntropy>,
    /// `mmds-config`, when the guest reads its settings from MMDS.
    #[serde(
        rename = "mmds-config",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub mmds_config: Option<FirecrackerMmdsConfig>,
}

/// `MmdsConfig`: version 2 (session tokens, what the init's client
/// speaks), answered on the guest's interface at `ipv4_address`. The
/// metadata itself is given with `firecracker --metadata FILE` or the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirecrackerMmdsConfig {
    /// Always `V2`.
    pub version: String,
    /// The interface ids MMDS answers on (`eth0`, the one interface).
    pub network_interfaces: Vec<String>,
    /// A link-local address (Firecracker refuses others).
    pub ipv4_address: String,
}

/// `EntropyDevice`: a virtio-rng device, which Firecracker feeds from the
/// host's CRNG (`aws-lc-rs`'s, no host file). Its only field,
/// `rate_limiter`, is left out: unlimited, as an unthrottled guest
/// expects of `/dev/urandom`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirecrackerEntropy {}

/// `NetworkInterface` (a virtio-net device on a host tap).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirecrackerNetworkInterface {
    /// The interface's id in Firecracker's API (not the guest's name).
    pub iface_id: String,
    /// The host's tap device.
    pub host_dev_name: String,
    /// The guest's MAC.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub guest_mac: Option<String>,
}

/// `BootSource`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirecrackerBootSource {
    /// Host path of the ELF kernel.
    pub kernel_image_path: String,
    /// Host path of the initramfs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub initrd_path: Option<String>,
    /// The whole kernel command line (replaces Firecracker's default).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub boot_args: Option<String>,
}

/// `Drive` (a virtio-block drive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirecrackerDrive {
    /// Unique id.
    pub drive_id: String,
    /// Host path of the image.
    pub path_on_host: String,
    /// Firecracker then adds `root=/dev/vda rw|ro` to the command line.
    pub is_root_device: bool,
    /// Attach read-only.
    pub is_read_only: bool,
}

/// `MachineConfiguration`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirecrackerMachineConfig {
    /// vCPUs (1 or an even number up to 32).
    pub vcpu_count: u32,
    /// Memory in MiB.
    pub mem_size_mib: u32,
}

/// `Vsock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirecrackerVsock {
    /// Guest context id (3 or more).
    pub guest_cid: u32,
    /// Host Unix socket.
    pub uds_path: String,
}

impl FirecrackerConfig {
    /// Pretty JSON, as written for `firecracker --config-file`.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Parses a configuration this module wrote (unknown fields are errors).
    pub fn from_json(text: &str) -> Result<FirecrackerConfig, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Why a kernel does not suit a monitor.
#[derive(Debug, thiserror::Error)]
pub enum KernelCheckError {
    /// The kernel file could not be read.
    #[error("read kernel {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// A bzImage given to a monitor that boots only ELF kernels.
    #[error("{path} is a bzImage, but {monitor} boots an uncompressed ELF vmlinux: run `mkrootfs kernel extract-vmlinux {path} -o vmlinux` and pass --kernel vmlinux")]
    BzImage {
        /// The kernel.
        path: PathBuf,
        /// The monitor's name.
        monitor: &'static str,
    },
    /// Neither an ELF nor a bzImage.
    #[error(
        "{path} is not an ELF vmlinux, which {monitor} needs (nor a bzImage to extract one from)"
    )]
    NotElf {
        /// The kernel.
        path: PathBuf,
        /// The monitor's name.
        monitor: &'static str,
    },
}

/// Checks that `kernel` is a format `target` boots: Firecracker and Cloud
/// Hypervisor (direct kernel boot, PVH) need an ELF `vmlinux`; QEMU
/// `microvm` boots a bzImage or a PVH ELF.
pub fn check_kernel(target: Target, kernel: &Path) -> Result<(), KernelCheckError> {
    let mut head = Vec::with_capacity(0x210);
    std::fs::File::open(kernel)
        .and_then(|f| f.take(0x210).read_to_end(&mut head))
        .map_err(|e| KernelCheckError::Read(kernel.to_path_buf(), e))?;
    let monitor = match target {
        Target::Firecracker => "Firecracker",
        Target::CloudHypervisor => "Cloud Hypervisor",
        // Any format QEMU boots; but the file must be there.
        Target::QemuMicrovm => return Ok(()),
    };
    let path = kernel.to_path_buf();
    match kernel_format(&head) {
        KernelFormat::Elf(_) => Ok(()),
        KernelFormat::BzImage => Err(KernelCheckError::BzImage { path, monitor }),
        KernelFormat::Other => Err(KernelCheckError::NotElf { path, monitor }),
    }
}

/// Quotes `word` for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests;
