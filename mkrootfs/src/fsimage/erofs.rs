//! erofs with `mkfs.erofs` (erofs-utils). Reproducible with `-T` (every
//! inode's time, and the build time in the superblock) and `-U` (the UUID,
//! from the tree's digest); it lays inodes out in sorted name order itself,
//! and owners, modes, devices and xattrs come from the staged tree.

use super::stage::Staged;
use super::{run_tool, FsCompression, FsImageError, FsOptions, Ids};
use std::path::Path;
use std::process::Command;

pub(super) fn write(
    staged: &Staged,
    opts: &FsOptions,
    ids: &Ids,
    out: &Path,
) -> Result<(), FsImageError> {
    let mut cmd = Command::new("mkfs.erofs");
    cmd.arg("--quiet")
        .arg(format!("-T{}", opts.mtime))
        .arg(format!("-U{}", ids.uuid));
    match (opts.compression, opts.level) {
        (FsCompression::None, _) => {}
        (c, Some(level)) => {
            cmd.arg(format!("-z{},{level}", c.name()));
        }
        (c, None) => {
            cmd.arg(format!("-z{}", c.name()));
        }
    }
    cmd.arg(out).arg(&staged.root);
    run_tool("mkfs.erofs", "erofs-utils", &mut cmd)
}
