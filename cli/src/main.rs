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
    about = "Build minimal Linux root filesystems as cpio initramfs images",
    // `mkrootfs -o X build -p P` would otherwise parse `-o` here and drop
    // it: the options of the short form go with it, never with a subcommand.
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Short form of `mkrootfs build --profile PROFILE` (options before a
    /// subcommand are a usage error: write them after it).
    #[command(flatten)]
    build: commands::build::BuildArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a profile.
    Build(commands::build::BuildCommand),
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
    /// Write one VM's settings as a config drive (a small ext4 image).
    ConfigDrive(commands::config_drive::ConfigDriveArgs),
    /// Run a command in a running guest's container, through its agent.
    Exec(commands::exec::ExecArgs),
    /// Copy a file into or out of a running guest, through its agent.
    Cp(commands::cp::CpArgs),
    /// After a restore from a snapshot: reseed the guest's CRNG and set its
    /// clock, through its agent.
    Resync(commands::resync::ResyncArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Build(a)) => commands::build::run(&a.profile, a.opts),
        Some(Command::Deps(a)) => commands::deps::run(a),
        Some(Command::Ls(a)) => commands::ls::run(a),
        Some(Command::Extract(a)) => commands::extract::run(a),
        Some(Command::Run(a)) => commands::run::run(a),
        Some(Command::Kernel(a)) => commands::kernel::run(a),
        Some(Command::VmConfig(a)) => commands::vm_config::run(a),
        Some(Command::ConfigDrive(a)) => commands::config_drive::run(a),
        Some(Command::Exec(a)) => commands::exec::run(a),
        Some(Command::Cp(a)) => commands::cp::run(a),
        Some(Command::Resync(a)) => commands::resync::run(a),
        None => match &cli.build.profile {
            Some(p) => commands::build::run(p, cli.build.opts),
            None => {
                eprintln!(
                    "mkrootfs: nothing to do: give --profile PROFILE or a subcommand (see --help)"
                );
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader of our output went away (`| head`): nothing to report.
        Err(e) if e.is::<commands::ReaderGone>() => ExitCode::SUCCESS,
        Err(e) if e.is::<commands::Usage>() => {
            eprintln!("mkrootfs: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("mkrootfs: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    const README: &str = include_str!("../../README.md");

    /// Issue 21: `--init`, `--kernel-modules`, `run --memory`, `vm-config
    /// --read-only`, `--vsock-socket` and the MKROOTFS_* variables were
    /// documented nowhere. Every long option of every subcommand is in the
    /// README's row for that subcommand, and every variable in its table.
    #[test]
    fn every_option_and_variable_is_in_the_readme() {
        let cli = Cli::command();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            let rows: Vec<&str> = README
                .lines()
                .filter(|l| l.starts_with(&format!("| `mkrootfs {name}")))
                .collect();
            assert!(!rows.is_empty(), "no README row for {name}");
            let subs: Vec<&clap::Command> = if sub.has_subcommands() {
                sub.get_subcommands().collect()
            } else {
                vec![sub]
            };
            for cmd in subs {
                for arg in cmd.get_arguments() {
                    let Some(long) = arg.get_long() else { continue };
                    if ["help", "version"].contains(&long) {
                        continue;
                    }
                    let flag = format!("--{long}");
                    // Or its short form, as the README writes `-o OUT` and `-v`.
                    let short = arg.get_short().map(|c| format!(" -{c}"));
                    let shown = |r: &&str| {
                        r.contains(&flag)
                            || short.as_ref().is_some_and(|s| {
                                r.contains(&format!("{s} ")) || r.contains(&format!("[{}", &s[1..]))
                            })
                    };
                    if !rows.iter().any(shown) {
                        missing.push(format!("{name} {flag}"));
                    }
                }
            }
        }
        for var in [
            "MKROOTFS_INIT",
            "MKROOTFS_KERNEL",
            "MKROOTFS_CACHE",
            "MKROOTFS_QEMU",
            "MKROOTFS_ACCEL",
            "MKROOTFS_QEMU_JOBS",
            "SOURCE_DATE_EPOCH",
        ] {
            if !README.contains(&format!("| `{var}` |")) {
                missing.push(var.to_string());
            }
        }
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }
}
