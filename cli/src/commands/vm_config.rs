//! `mkrootfs vm-config --target firecracker|cloud-hypervisor|qemu-microvm
//! IMAGE --kernel K`: print what each monitor needs to boot the image.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use mkrootfs::vmconfig::{self, Guest, GuestDisk, GuestNet, GuestVsock, NetBackend, Target};
use mkrootfs_cli::qemu::GuestOnQemu;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TargetArg {
    Firecracker,
    CloudHypervisor,
    QemuMicrovm,
}

#[derive(Args, Debug)]
pub struct VmConfigArgs {
    #[arg(long, value_enum)]
    pub target: TargetArg,
    /// The image (loaded as the initramfs); read and checked as `mkrootfs ls` reads it.
    pub image: PathBuf,
    /// The kernel: an ELF vmlinux for firecracker and cloud-hypervisor
    /// (`mkrootfs kernel extract-vmlinux` makes one from a bzImage).
    #[arg(long)]
    pub kernel: PathBuf,
    /// Raw disk images, /dev/vda, /dev/vdb, … in order.
    #[arg(long)]
    pub disk: Vec<PathBuf>,
    /// The first disk is the root device (root=/dev/vda; Firecracker's is_root_device).
    #[arg(long, requires = "disk")]
    pub root_disk: bool,
    /// Attach every disk read-only (root=/dev/vda ro with --root-disk).
    #[arg(long, requires = "disk")]
    pub read_only: bool,
    /// A config drive (`mkrootfs config-drive`), attached read-only after
    /// the disks (Firecracker's drive `config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Guest memory in MiB (1 or more).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub memory: u32,
    /// Virtual CPUs (1 or more).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: u32,
    /// Extra kernel parameters, after the monitor's own (the kernel takes the
    /// last value of a parameter given twice; every console= is a console,
    /// the last one /dev/console).
    #[arg(long, default_value = "")]
    pub append: String,
    /// Add a vsock device with this guest context id (3 or more). For
    /// qemu-microvm a vhost-vsock device: the host reaches the guest through
    /// AF_VSOCK at this CID, with no Unix socket.
    #[arg(long, value_parser = clap::value_parser!(u32).range(3..))]
    pub vsock: Option<u32>,
    /// The host Unix socket of the vsock device (firecracker and
    /// cloud-hypervisor). Default: vsock.sock.
    #[arg(long, requires = "vsock")]
    pub vsock_socket: Option<PathBuf>,
    /// Attach a network interface on this existing host tap device
    /// (Firecracker's network-interfaces, Cloud Hypervisor's --net tap=,
    /// QEMU's -netdev tap).
    #[arg(long)]
    pub tap: Option<String>,
    /// The interface's MAC. Default: derived from --name (stable, locally
    /// administered).
    #[arg(long, requires = "tap", value_parser = parse_mac)]
    pub mac: Option<vmconfig::Mac>,
    /// The VM's name, which the default MAC is derived from. Default: the
    /// image's file name without its extension.
    #[arg(long)]
    pub name: Option<String>,
    /// A static address for the guest's eth0 (IPv4, ADDRESS/PREFIX), passed
    /// as the kernel's ip= (one image, many addresses).
    #[arg(long, requires = "tap", value_parser = parse_cidr)]
    pub ip: Option<vmconfig::Cidr>,
    /// The default route's next hop, with --ip.
    #[arg(long, requires = "ip")]
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Leave out the entropy device (virtio-rng fed by the host: Firecracker's
    /// entropy, Cloud Hypervisor's --rng, QEMU's virtio-rng-device), which
    /// is there by default.
    #[arg(long)]
    pub no_rng: bool,
    /// Firecracker's MMDS, version 2, on the --tap interface at this
    /// link-local address (the image's [init.mmds] address; Firecracker
    /// refuses others): its `mmds-config`. Give the metadata with
    /// `firecracker --metadata FILE`.
    #[arg(long, requires = "tap", num_args = 0..=1, default_missing_value = "169.254.169.254")]
    pub mmds: Option<std::net::Ipv4Addr>,
}

fn parse_mac(s: &str) -> Result<vmconfig::Mac, String> {
    s.parse()
}

fn parse_cidr(s: &str) -> Result<vmconfig::Cidr, String> {
    s.parse()
}

/// Absolute, so that the configuration works from any directory.
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("make {} absolute", p.display()))
}

pub fn run(args: VmConfigArgs) -> Result<u8> {
    let target = match args.target {
        TargetArg::Firecracker => Target::Firecracker,
        TargetArg::CloudHypervisor => Target::CloudHypervisor,
        TargetArg::QemuMicrovm => Target::QemuMicrovm,
    };
    if target == Target::QemuMicrovm && args.vsock_socket.is_some() {
        bail!(
            "--vsock-socket: QEMU's vhost-vsock device has no Unix socket \
             (the host connects to the guest's CID over AF_VSOCK)"
        );
    }
    if let Some(a) = args.mmds {
        if target != Target::Firecracker {
            return Err(super::Usage(
                "--mmds: MMDS is Firecracker's; give other monitors' guests a config drive (--config)"
                    .into(),
            )
            .into());
        }
        if a.octets()[..2] != [169, 254] {
            return Err(super::Usage(format!(
                "--mmds {a}: Firecracker answers MMDS only at a link-local address (169.254.x.y)"
            ))
            .into());
        }
    }
    vmconfig::check_kernel(target, &args.kernel)?;
    super::read_image(&args.image)?;
    if let Some(c) = &args.config {
        super::check_config_drive(c)?;
    }
    let mut guest = Guest::new(absolute(&args.kernel)?, absolute(&args.image)?);
    for d in &args.disk {
        guest.disks.push(GuestDisk {
            path: absolute(d)?,
            read_only: args.read_only,
        });
    }
    guest.config_drive = args.config.as_deref().map(absolute).transpose()?;
    guest.mmds = args.mmds;
    guest.root_disk = args.root_disk;
    guest.memory_mib = args.memory;
    guest.cpus = args.cpus;
    guest.append = args.append.clone();
    guest.rng = !args.no_rng;
    // A verity image's root hash (written next to it by the build).
    if let Some(param) = args
        .disk
        .iter()
        .find_map(|d| mkrootfs::fsimage::verity::kernel_param(d))
    {
        guest.append = format!("{param} {}", guest.append).trim().to_string();
    }
    if let Some(cid) = args.vsock {
        guest.vsock = Some(GuestVsock {
            cid,
            socket: absolute(
                args.vsock_socket
                    .as_deref()
                    .unwrap_or(Path::new("vsock.sock")),
            )?,
        });
    }
    if let Some(tap) = &args.tap {
        let name = match &args.name {
            Some(n) => n.clone(),
            None => args
                .image
                .file_name()
                .map(|s| s.to_string_lossy())
                .map(|s| s.split('.').next().unwrap_or("").to_string())
                .unwrap_or_default(),
        };
        let ip = match args.ip {
            Some(a) => Some(
                vmconfig::ip_param(a, args.gateway, None, "eth0")
                    .map_err(|e| anyhow::anyhow!("--ip {a}: {e}"))?,
            ),
            None => None,
        };
        guest.net = Some(GuestNet {
            backend: NetBackend::Tap(tap.clone()),
            mac: args.mac.unwrap_or_else(|| vmconfig::mac_for(&name)),
            ip,
        });
    }
    let mut out = super::Out::new();
    match target {
        Target::Firecracker => out.text(&guest.firecracker().to_json())?,
        Target::CloudHypervisor => {
            let mut words = vec!["cloud-hypervisor".to_string()];
            words.extend(guest.cloud_hypervisor());
            out.line(quoted(&words))?;
        }
        Target::QemuMicrovm => {
            let mut cfg = guest.qemu(mkrootfs_qemu::Machine::Microvm);
            // A line for a KVM host, like the other monitors' configurations,
            // not this host's accelerator choice (nor the TSC rate that
            // only an emulated microvm needs).
            cfg.accel = mkrootfs_qemu::Accel::Kvm;
            let cmd = cfg.command();
            let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
            words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
            out.line(quoted(&words))?;
        }
    }
    out.finish()?;
    Ok(0)
}

fn quoted(words: &[String]) -> String {
    words
        .iter()
        .map(|w| vmconfig::shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}
