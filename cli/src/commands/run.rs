//! `mkrootfs run --profile PROFILE | IMAGE`: boot under QEMU, stream the
//! console, exit with the guest service's status.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use mkrootfs::vmconfig::{Guest, GuestDisk, GuestNet};
use mkrootfs::{build, profile};
use mkrootfs_cli::qemu::{FirecrackerOnQemu, GuestOnQemu};
use mkrootfs_qemu as qemu;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MachineArg {
    Pc,
    Microvm,
    /// QEMU microvm shaped like Firecracker (1.8+, x86_64): the `vm-config --target
    /// firecracker` configuration, devices in ACPI tables, no power-off (reboot=k).
    FirecrackerLike,
    /// As firecracker-like, but shaped like Firecracker before 1.8: no ACPI, the
    /// devices announced only as virtio_mmio.device= on the kernel command line
    /// (needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES in the guest kernel).
    FirecrackerLegacyLike,
    /// QEMU microvm shaped like Cloud Hypervisor: virtio-pci, ACPI power-off.
    CloudHypervisorLike,
}

#[derive(Args, Debug)]
// Exactly one of them: neither, or both, is a usage error (status 2).
#[command(group(clap::ArgGroup::new("what").required(true).args(["profile", "image"])))]
pub struct RunArgs {
    /// Build this profile first, then boot it.
    #[arg(long, short)]
    pub profile: Option<String>,
    /// An image to boot (instead of --profile).
    pub image: Option<PathBuf>,
    /// Kernel image. Default: the running kernel's if readable, else a Debian cloud kernel fetched once into the cache.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Extra kernel parameters, after the harness's own (panic=-1, console=ttyS0…):
    /// the kernel takes the last value of a parameter given twice.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Give up (and fail) after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    #[arg(long, value_enum, default_value_t = MachineArg::Pc)]
    pub machine: MachineArg,
    /// Raw disk images attached as virtio block devices (/dev/vda, /dev/vdb, …).
    #[arg(long)]
    pub disk: Vec<PathBuf>,
    /// The first disk is the root device (root=/dev/vda rw).
    #[arg(long)]
    pub root_disk: bool,
    /// A config drive (`mkrootfs config-drive`), attached read-only after
    /// every other disk.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Guest memory in MiB (1 or more).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub memory: u32,
    /// Virtual CPUs (1 or more).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: u32,
    /// Output image when building a profile (only with --profile).
    #[arg(long, short, conflicts_with = "image")]
    pub output: Option<PathBuf>,
    /// What to build, overriding image.format (a disk format needs image.split = true to boot).
    #[arg(long)]
    pub format: Option<mkrootfs::fsimage::Format>,
    /// Show every kernel message and the QEMU command line. Default: the
    /// init's and the services' lines and the kernel's errors only (the
    /// whole console log is printed if the boot fails or times out).
    #[arg(long, short)]
    pub verbose: bool,
    /// Expose the guest's vsock as this hybrid-vsock Unix socket (through
    /// vhost-device-vsock), for `mkrootfs exec SOCKET …` while it runs.
    #[arg(long)]
    pub vsock: Option<PathBuf>,
    /// A network interface (virtio-net): `user` (QEMU user networking, always
    /// restrict=on: the guest reaches nothing outside), with forwards
    /// `user,hostfwd=tcp:127.0.0.1:HOSTPORT-:GUESTPORT` (127.0.0.1 only), or
    /// `tap=NAME` (an existing tap device). Its MAC is derived from the image's name.
    #[arg(long, value_parser = mkrootfs::vmconfig::parse_net)]
    pub net: Option<mkrootfs::vmconfig::NetBackend>,
    /// With --vsock: run the guest detached (console in SOCKET.log) and
    /// return once it says READY=1 over vsock (its agent listens).
    #[arg(long, requires = "vsock")]
    pub wait_ready: bool,
}

pub fn run(args: RunArgs) -> Result<u8> {
    if args.output.as_deref() == Some(std::path::Path::new("-")) {
        anyhow::bail!("-o -: run boots the image from a file: name one, or leave -o out");
    }
    if let Some(image) = &args.image {
        // A damaged image would boot into "Initramfs unpacking failed",
        // buried in the log, then a FATAL of the init: refuse it here, with
        // the error `mkrootfs ls` gives.
        super::read_image(image)?;
    }
    if let Some(c) = &args.config {
        super::check_config_drive(c)?;
    }
    if let (true, Some(uds)) = (args.wait_ready, &args.vsock) {
        let argv: Vec<String> = std::env::args().collect();
        return super::wait_ready::detach(uds, &argv, Duration::from_secs(args.timeout));
    }
    let kernel = match &args.kernel {
        Some(k) => qemu::kernel_from_path(k)?,
        None => qemu::find_kernel()?,
    };
    eprintln!("mkrootfs: kernel {} ({})", kernel.version, kernel.source);
    // A split build's root image, attached as the first disk.
    let mut root_image = None;
    let image = match (&args.profile, &args.image) {
        (Some(name), None) => {
            let mut p = profile::load(name)?;
            super::build::override_format(&mut p, args.format);
            let opts = build::BuildOptions {
                output: args.output.clone(),
                // "auto" is the kernel booted below, whether it came from
                // --kernel or the default search, and never another one.
                auto_kernel: Some(super::auto_kernel(&kernel)),
                ..Default::default()
            };
            let report = build::build(&p, &opts)?;
            eprintln!("mkrootfs: built {report}");
            match report.disk.as_ref().map(|d| d.initramfs.clone()) {
                None => report.path,
                Some(Some((initramfs, _))) => {
                    root_image = Some(report.path.clone());
                    initramfs
                }
                Some(None) => bail!(
                    "{} is a disk image: boot it with an initramfs that mounts it (mkrootfs run INITRAMFS --disk {0}), or build it with image.split = true",
                    report.path.display()
                ),
            }
        }
        (None, Some(img)) => img.clone(),
        _ => unreachable!("clap requires exactly one of --profile and IMAGE"),
    };
    // One description of the guest for every machine, shared with `vm-config`.
    let mut guest = Guest::new(kernel.vmlinuz.clone(), image);
    guest.append = args.append.clone();
    guest.memory_mib = args.memory;
    guest.cpus = args.cpus;
    guest.root_disk = args.root_disk;
    guest.disks = root_image
        .iter()
        .map(|p| GuestDisk {
            path: p.clone(),
            read_only: true,
        })
        .chain(args.disk.iter().map(|p| GuestDisk {
            path: p.clone(),
            read_only: false,
        }))
        .collect();
    guest.config_drive = args.config.clone();
    if let Some(backend) = &args.net {
        let name = guest
            .initrd
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        guest.net = Some(GuestNet {
            backend: backend.clone(),
            mac: mkrootfs::vmconfig::mac_for(&name),
            ip: None,
        });
    }
    // A verity image's root hash (written next to it by the build).
    if let Some(param) = guest
        .disks
        .iter()
        .find_map(|d| mkrootfs::fsimage::verity::kernel_param(&d.path))
    {
        guest.append = format!("{param} {}", guest.append).trim().to_string();
    }
    let mut cfg = match args.machine {
        MachineArg::Pc => guest.qemu(qemu::Machine::Pc),
        MachineArg::Microvm => guest.qemu(qemu::Machine::Microvm),
        MachineArg::FirecrackerLike => guest.firecracker().to_qemu(),
        MachineArg::FirecrackerLegacyLike => {
            let mut cfg = guest.firecracker().to_qemu();
            cfg.machine = qemu::Machine::FirecrackerLegacyLike;
            cfg
        }
        MachineArg::CloudHypervisorLike => guest.cloud_hypervisor_qemu(),
    };
    // Firecracker's configuration lists tap interfaces only: QEMU user
    // networking is attached to its QEMU shape here.
    if cfg.net.is_none() {
        cfg.net = guest.net.as_ref().map(mkrootfs_cli::qemu::qemu_nic);
    }
    cfg.timeout = Duration::from_secs(args.timeout);
    cfg.echo_console = true;
    cfg.quiet_console = !args.verbose;
    // A terminal on stdin can type into the guest (a rescue shell);
    // otherwise keep QEMU away from our stdin.
    cfg.interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    // Resolved once here (the probe's verdict is kept), so that a boot
    // many times slower than under KVM is explained, once.
    cfg.accel = qemu::resolved_accel(cfg.accel);
    if cfg.accel == qemu::Accel::Tcg && !tcg_asked() {
        eprintln!(
            "mkrootfs: KVM is not usable here (no /dev/kvm, or its probe boot failed): \
             emulating with TCG, much slower (MKROOTFS_ACCEL=tcg says this is wanted)"
        );
    }
    let _vsock = match &args.vsock {
        Some(uds) => {
            let backend = super::vsock::attach(&mut cfg, uds)?;
            eprintln!("mkrootfs: guest vsock at {}", uds.display());
            Some(backend)
        }
        None => None,
    };
    if args.verbose {
        eprintln!("mkrootfs: {:?}", cfg.command());
    }
    let outcome = qemu::run(&cfg).context("boot under QEMU")?;
    let failed = outcome.timed_out || outcome.result.is_none() || outcome.fatal_line().is_some();
    if failed && cfg.quiet_console {
        // Part of it was hidden; a diagnosis may need any of it.
        eprintln!("mkrootfs: the boot failed; the whole console log follows");
        eprint!("{}", qemu::strip_levels(&outcome.console));
        if !outcome.console.ends_with('\n') {
            eprintln!();
        }
        eprintln!("mkrootfs: end of the console log");
    }
    if let Some(why) = outcome.result.as_ref().and_then(|r| r.container_reason()) {
        eprintln!("mkrootfs: the container {why}");
    }
    if outcome.timed_out {
        eprintln!("mkrootfs: guest did not finish within {} s", args.timeout);
    } else if outcome.result.is_none() {
        eprintln!("mkrootfs: guest ended without reporting a result");
    }
    if outcome.result.is_none() && !outcome.stderr.trim().is_empty() {
        eprintln!("mkrootfs: QEMU said: {}", outcome.stderr.trim());
    }
    Ok(outcome.exit_code().clamp(0, 255) as u8)
}

/// Whether the user asked for TCG (`MKROOTFS_ACCEL=tcg`): then it is no news.
fn tcg_asked() -> bool {
    std::env::var("MKROOTFS_ACCEL").as_deref() == Ok("tcg")
}
