//! `mkrootfs build --profile PROFILE [-o OUT]`.

use super::Out;
use anyhow::{Context, Result};
use clap::Args;
use mkrootfs::{build, profile};
use std::path::PathBuf;

#[derive(Args, Clone, Debug, Default)]
pub struct BuildArgs {
    /// Profile: a path, or a bare name looked up in ./profiles then /usr/share/mkrootfs/profiles.
    #[arg(long, short)]
    pub profile: Option<String>,
    /// Output image (`-` for standard output). Default: out/<profile>.cpio[.gz|.xz|.zst].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The static init binary to put at /init. Default: $MKROOTFS_INIT or the build tree's.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Kernel module tree (lib/modules/<version>), overriding modules.kernel.
    #[arg(long)]
    pub kernel_modules: Option<PathBuf>,
    /// What to write, overriding image.format: cpio, erofs, squashfs or ext4.
    #[arg(long)]
    pub format: Option<mkrootfs::fsimage::Format>,
    /// `json`: print the build report (format, sizes, entries, the source of
    /// every entry) as JSON instead of the one-line summary.
    #[arg(long, value_parser = ["json"])]
    pub report: Option<String>,
}

/// `--format` over the profile's `image.format` (errors about it then name
/// the profile, not a line of it).
pub fn override_format(profile: &mut profile::Profile, format: Option<mkrootfs::fsimage::Format>) {
    if let Some(f) = format {
        profile.image.format = Some(f);
        profile.positions.remove("image.format");
    }
}

/// `mkrootfs build`: the same options, the profile required (a missing one
/// is a usage error, status 2).
#[derive(Args, Clone, Debug)]
pub struct BuildCommand {
    /// Profile: a path, or a bare name looked up in ./profiles then /usr/share/mkrootfs/profiles.
    #[arg(long, short)]
    pub profile: String,
    /// Output image (`-` for standard output). Default: out/<profile>.cpio[.gz|.xz|.zst].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The static init binary to put at /init. Default: $MKROOTFS_INIT or the build tree's.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Kernel module tree (lib/modules/<version>), overriding modules.kernel.
    #[arg(long)]
    pub kernel_modules: Option<PathBuf>,
    /// What to write, overriding image.format: cpio, erofs, squashfs or ext4.
    #[arg(long)]
    pub format: Option<mkrootfs::fsimage::Format>,
    /// `json`: print the build report (format, sizes, entries, the source of
    /// every entry) as JSON instead of the one-line summary.
    #[arg(long, value_parser = ["json"])]
    pub report: Option<String>,
}

impl From<BuildCommand> for BuildArgs {
    fn from(c: BuildCommand) -> BuildArgs {
        BuildArgs {
            profile: Some(c.profile),
            output: c.output,
            init: c.init,
            kernel_modules: c.kernel_modules,
            format: c.format,
            report: c.report,
        }
    }
}

impl BuildArgs {
    pub fn options(&self) -> build::BuildOptions {
        build::BuildOptions {
            output: self.output.clone(),
            init_binary: self.init.clone(),
            modules_dir: self.kernel_modules.clone(),
            auto_kernel: None,
            mtime: None,
        }
    }
}

pub fn run(args: BuildArgs) -> Result<u8> {
    let name = args
        .profile
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--profile is required"))?;
    let mut profile = profile::load(&name)?;
    override_format(&mut profile, args.format);
    let mut opts = args.options();
    if opts.modules_dir.is_none() && super::wants_auto_kernel(&profile) {
        // "auto": the kernel `mkrootfs run` would boot without --kernel.
        let kernel = mkrootfs_qemu::find_kernel()
            .context("find the kernel for modules.kernel = \"auto\"")?;
        opts.auto_kernel = Some(super::auto_kernel(&kernel));
    }
    // `-o -`: the image on standard output, the summary on stderr.
    let to_stdout = opts.output.as_deref() == Some(std::path::Path::new("-"));
    let scratch = if to_stdout {
        let dir = tempfile::tempdir().context("create a scratch directory for -o -")?;
        opts.output = Some(dir.path().join("image"));
        Some(dir)
    } else {
        None
    };
    let display = super::progress::install();
    let report = build::build(&profile, &opts);
    if let Some(d) = display {
        d.finish();
    }
    let report = report?;
    for note in &report.notes {
        eprintln!("mkrootfs: warning: {note}");
    }
    if scratch.is_some() {
        let mut image = std::fs::File::open(&report.path)
            .with_context(|| format!("read {}", report.path.display()))?;
        let mut out = Out::new();
        out.copy(&mut image)?;
        out.finish()?;
        eprintln!(
            "mkrootfs: standard output: {}",
            summary_without_path(&report)
        );
        return Ok(0);
    }
    let mut out = Out::new();
    match args.report {
        Some(_) => out.line(report.to_json())?,
        None => out.line(report)?,
    }
    out.finish()?;
    Ok(0)
}

/// The summary line after its `path: `.
fn summary_without_path(report: &build::BuildReport) -> String {
    let line = report.to_string();
    let path = format!("{}: ", report.path.display());
    line.strip_prefix(&path).unwrap_or(&line).to_string()
}
