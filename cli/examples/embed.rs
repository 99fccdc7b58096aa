//! Build an image from Rust code and boot it, as a VMM's own tooling would:
//!
//! ```sh
//! cargo run -p mkrootfs-cli --example embed [-- pc|microvm|firecracker-like|cloud-hypervisor-like]
//! ```
//!
//! The image holds busybox, the microVM virtio drivers of the kernel it boots
//! with, and one service whose exit status (3) becomes this program's. The
//! kernel is the one `mkrootfs run` would pick (`$MKROOTFS_KERNEL`, the
//! running kernel, or a Debian cloud kernel fetched into the cache); the
//! mkrootfs init is found as `mkrootfs build` finds it (`$MKROOTFS_INIT`…).

use mkrootfs::builder::ImageBuilder;
use mkrootfs::compress::Compression;
use mkrootfs::vmconfig::Guest;
use mkrootfs_cli::qemu::{FirecrackerOnQemu, GuestOnQemu};
use mkrootfs_qemu::Machine;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("embed: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<u8> {
    let machine = match std::env::args().nth(1).as_deref() {
        None | Some("microvm") => Machine::Microvm,
        Some("pc") => Machine::Pc,
        Some("firecracker-like") => Machine::FirecrackerLike,
        Some("cloud-hypervisor-like") => Machine::CloudHypervisorLike,
        Some(other) => anyhow::bail!("unknown machine {other:?}"),
    };
    let kernel = mkrootfs_qemu::find_kernel()?;
    let modules = kernel
        .modules
        .clone()
        .ok_or_else(|| anyhow::anyhow!("kernel {} has no module tree", kernel.version))?;

    let out = std::env::temp_dir().join(format!("mkrootfs-embed-{}.cpio", std::process::id()));
    let built = ImageBuilder::new("embed")
        .binary("busybox")
        .busybox_links("/bin/busybox")
        .file("/etc/motd", "built in Rust\n")
        .modules_dir(&modules)
        .module_preset("microvm")
        .with_init(|init| {
            init.hostname = Some("embed".into());
            init.shutdown.grace_ms = 500;
        })
        .command([
            "/bin/sh",
            "-c",
            "echo \"embed: $(cat /etc/motd) on $(hostname), $(uname -r)\"; exit 3",
        ])
        .compression(Compression::None)
        .build(&out)?;
    eprintln!("embed: built {built}");

    let guest = Guest::new(&kernel.vmlinuz, &out);
    let mut vm = match machine {
        Machine::FirecrackerLike => guest.firecracker().to_qemu(),
        other => guest.qemu(other),
    };
    vm.echo_console = true;
    let outcome = mkrootfs_qemu::run(&vm);
    let _ = std::fs::remove_file(&out);
    let outcome = outcome?;
    match &outcome.result {
        Some(r) => eprintln!("embed: guest service ended with status {}", r.code),
        None => eprintln!("embed: the guest reported no result"),
    }
    Ok(outcome.exit_code().clamp(0, 255) as u8)
}
