//! `mkrootfs extract IMAGE DIR [PATH...]`.

use super::Out;
use anyhow::{Context, Result};
use clap::Args;
use mkrootfs::extract;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExtractArgs {
    pub image: PathBuf,
    /// Target directory (created if missing); nothing is ever written outside it.
    pub dir: PathBuf,
    /// Only these image paths (a directory with everything under it).
    /// Default: the whole image.
    pub paths: Vec<String>,
}

pub fn run(args: ExtractArgs) -> Result<u8> {
    let mut segments = super::read_image(&args.image)?;
    if !args.paths.is_empty() {
        segments = extract::select(&segments, &args.paths)
            .with_context(|| format!("extract from {}", args.image.display()))?;
    }
    let report = extract::extract(&segments, &args.dir).with_context(|| {
        format!(
            "extract {} into {}",
            args.image.display(),
            args.dir.display()
        )
    })?;
    for s in &report.skipped {
        eprintln!("mkrootfs: skipped {s}");
    }
    let mut out = Out::new();
    out.line(format_args!(
        "{}: {} files, {} directories, {} symlinks, {} device nodes",
        args.dir.display(),
        report.files,
        report.dirs,
        report.symlinks,
        report.devices_created
    ))?;
    out.finish()?;
    Ok(0)
}
