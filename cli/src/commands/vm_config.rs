//! `mkrootfs vm-config --target firecracker|cloud-hypervisor|qemu-microvm
//! IMAGE --kernel K`: print what each monitor needs to boot the image.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mkrootfs::vmconfig::{self, Guest, GuestDisk, GuestVsock, Target};
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
    /// The image (loaded as the initramfs).
    pub image: PathBuf,
    /// The kernel: an ELF vmlinux for firecracker and cloud-hypervisor
    /// (`mkrootfs kernel extract-vmlinux` makes one from a bzImage).
    #[arg(long)]
    pub kernel: PathBuf,
    /// Raw disk images, /dev/vda, /dev/vdb, … in order.
    #[arg(long)]
    pub disk: Vec<PathBuf>,
    /// The first disk is the root device (root=/dev/vda; Firecracker's is_root_device).
    #[arg(long)]
    pub root_disk: bool,
    /// Attach the disks read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Extra kernel parameters, after the monitor's own.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Add a vsock device with this guest context id (3 or more).
    #[arg(long, value_parser = clap::value_parser!(u32).range(3..))]
    pub vsock: Option<u32>,
    /// The host Unix socket of the vsock device.
    #[arg(long, default_value = "vsock.sock", requires = "vsock")]
    pub vsock_socket: PathBuf,
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
    vmconfig::check_kernel(target, &args.kernel)?;
    let mut guest = Guest::new(absolute(&args.kernel)?, absolute(&args.image)?);
    for d in &args.disk {
        guest.disks.push(GuestDisk {
            path: absolute(d)?,
            read_only: args.read_only,
        });
    }
    guest.root_disk = args.root_disk;
    guest.memory_mib = args.memory;
    guest.cpus = args.cpus;
    guest.append = args.append.clone();
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
            socket: absolute(&args.vsock_socket)?,
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
            let cmd = guest.qemu(mkrootfs_qemu::Machine::Microvm).command();
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
