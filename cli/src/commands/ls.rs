//! `mkrootfs ls IMAGE [--json]`.

use super::Out;
use anyhow::{Context, Result};
use clap::Args;
use mkrootfs::{cpio, list};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LsArgs {
    /// An initramfs image: any mix of uncompressed and compressed cpio segments.
    pub image: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: LsArgs) -> Result<u8> {
    let bytes =
        std::fs::read(&args.image).with_context(|| format!("read {}", args.image.display()))?;
    let segments = cpio::read_archive(&bytes, &cpio::Limits::default())
        .with_context(|| format!("read image {}", args.image.display()))?;
    let mut out = Out::new();
    if args.json {
        out.line(list::to_json(&segments))?;
    } else {
        out.text(&list::format_long(&segments))?;
    }
    out.finish()?;
    Ok(0)
}
