//! The `mkrootfs` command: argument parsing and error printing only; the
//! work is in the library (one file per subcommand in `commands/`).
//!
//! Exit codes: 0 success, 1 failure, 2 usage error; `mkrootfs run` exits
//! with the guest service's own status.

mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mkrootfs",
    version,
    about = "Build minimal Linux root filesystems as cpio initramfs images"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Short form of `mkrootfs build --profile PROFILE`.
    #[command(flatten)]
    build: commands::build::BuildArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a profile.
    Build(commands::build::BuildArgs),
    /// Show the files an ELF (or a kernel module) pulls into an image.
    Deps(commands::deps::DepsArgs),
    /// List the contents of any initramfs image.
    Ls(commands::ls::LsArgs),
    /// Unpack an image into a directory, safely.
    Extract(commands::extract::ExtractArgs),
    /// Boot an image (or a profile, built first) under QEMU.
    Run(commands::run::RunArgs),
    /// Kernel images: extract the ELF vmlinux from a bzImage.
    Kernel(commands::kernel::KernelArgs),
    /// Print the configuration a microVM monitor needs to boot an image.
    VmConfig(commands::vm_config::VmConfigArgs),
    /// Run a command in a running guest's container, through its agent.
    Exec(commands::exec::ExecArgs),
    /// Copy a file into or out of a running guest, through its agent.
    Cp(commands::cp::CpArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Build(a)) => commands::build::run(a),
        Some(Command::Deps(a)) => commands::deps::run(a),
        Some(Command::Ls(a)) => commands::ls::run(a),
        Some(Command::Extract(a)) => commands::extract::run(a),
        Some(Command::Run(a)) => commands::run::run(a),
        Some(Command::Kernel(a)) => commands::kernel::run(a),
        Some(Command::VmConfig(a)) => commands::vm_config::run(a),
        Some(Command::Exec(a)) => commands::exec::run(a),
        Some(Command::Cp(a)) => commands::cp::run(a),
        None if cli.build.profile.is_some() => commands::build::run(cli.build),
        None => {
            eprintln!(
                "mkrootfs: nothing to do: give --profile PROFILE or a subcommand (see --help)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader of our output went away (`| head`): nothing to report.
        Err(e) if e.is::<commands::ReaderGone>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkrootfs: {e:#}");
            ExitCode::from(1)
        }
    }
}
