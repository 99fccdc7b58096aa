//! `mkrootfs ls IMAGE [--json]`.

use super::Out;
use anyhow::Result;
use clap::Args;
use mkrootfs::list;
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
    let segments = super::read_image(&args.image)?;
    let mut out = Out::new();
    if args.json {
        out.line(list::to_json(&segments))?;
    } else {
        out.text(&list::format_long(&segments))?;
    }
    out.finish()?;
    Ok(0)
}
