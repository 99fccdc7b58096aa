//! `mkrootfs kernel extract-vmlinux VMLINUZ -o VMLINUX`: the uncompressed
//! ELF kernel that Firecracker and Cloud Hypervisor boot.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mkrootfs::vmlinux;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct KernelArgs {
    #[command(subcommand)]
    pub command: KernelCommand,
}

#[derive(Subcommand, Debug)]
pub enum KernelCommand {
    /// Write the ELF vmlinux inside an x86 bzImage (gzip, xz, zstd or lz4 payload).
    ExtractVmlinux {
        /// The bzImage (e.g. /boot/vmlinuz-<version>).
        vmlinuz: PathBuf,
        /// Where to write the ELF kernel (written atomically).
        #[arg(long, short)]
        output: PathBuf,
    },
}

pub fn run(args: KernelArgs) -> Result<u8> {
    match args.command {
        KernelCommand::ExtractVmlinux { vmlinuz, output } => {
            let v = vmlinux::extract_file(&vmlinuz, &output)
                .with_context(|| format!("extract vmlinux from {}", vmlinuz.display()))?;
            let mut out = super::Out::new();
            out.line(format_args!(
                "{}: ELF {}, {} bytes, from the {} payload at {:#x} ({}){}",
                output.display(),
                goblin::elf::header::machine_to_str(v.machine),
                v.elf.len(),
                v.codec,
                v.payload_offset,
                if v.from_header {
                    "setup header"
                } else {
                    "found by scanning"
                },
                if v.pvh { ", PVH entry note" } else { "" }
            ))?;
            out.finish()?;
            Ok(0)
        }
    }
}
