//! squashfs with `mksquashfs` (squashfs-tools). Reproducible by default
//! since 4.4 (the fragment and block order no longer depend on threads);
//! the superblock's and every inode's time are set from the build's
//! (`-mkfs-time`, `-all-time`),
//! `-noappend` never reuses an existing file, and directories are sorted by
//! the tool. Owners, modes and devices come from the staged tree.

use super::stage::Staged;
use super::{run_tool, FsCompression, FsImageError, FsOptions};
use std::path::Path;
use std::process::Command;

pub(super) fn write(staged: &Staged, opts: &FsOptions, out: &Path) -> Result<(), FsImageError> {
    let mut cmd = Command::new("mksquashfs");
    cmd.arg(&staged.root)
        .arg(out)
        .args(["-noappend", "-quiet", "-no-progress"])
        .args(["-mkfs-time", &opts.mtime.to_string()])
        .args(["-all-time", &opts.mtime.to_string()])
        // mksquashfs refuses SOURCE_DATE_EPOCH next to the options.
        .env_remove("SOURCE_DATE_EPOCH");
    match opts.compression {
        FsCompression::None => {
            cmd.args(["-noI", "-noId", "-noD", "-noF", "-noX"]);
        }
        c => {
            cmd.args(["-comp", c.name()]);
            if let Some(level) = opts.level {
                cmd.args(["-Xcompression-level", &level.to_string()]);
            }
        }
    }
    run_tool("mksquashfs", "squashfs-tools", &mut cmd)
}
