//! ext4 with `mkfs.ext4 -d` (e2fsprogs). Reproducible with a UUID and a
//! directory hash seed derived from the tree (`-U`, `-E hash_seed=`),
//! `E2FSPROGS_FAKE_TIME` for every time mke2fs takes from the clock
//! (superblock, journal, inode creation times), our own mke2fs.conf instead
//! of the host's (`MKE2FS_CONFIG`), and a size computed from the tree.
//! mke2fs copies each staged file's ctime, which staging cannot set: a
//! `debugfs` pass sets every inode's times to the build's. e2fsprogs reads a
//! fake time of 0 as "none": the superblock's times are then 1 (inode times
//! are exact).
//!
//! [`mkfs`] is the one writer: root disk images ([`Layout::Root`]) and the
//! config drive (`crate::config_drive`, [`Layout::Small`], whose owners the
//! debugfs pass sets since it is staged without root).

use super::stage::Staged;
use super::{run_tool, FsImageError, FsOptions, Ids};
use std::io::Write;
use std::path::Path;
use std::process::Command;

const BLOCK: u64 = 4096;
/// Debian 12's mke2fs.conf for ext4, fixed here so the host's configuration
/// does not change the image.
const MKE2FS_CONF: &str = "[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384
[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
\tsmall = {
\t\tinode_ratio = 4096
\t}
";

/// The file system's size: the data rounded up to blocks, a block per
/// directory and long symlink, inode tables, and headroom for the journal
/// and a writable root (a quarter, at least 16 MiB); whole MiB.
pub(super) fn size_bytes(staged: &Staged) -> u64 {
    let blocks_data = staged.data_bytes.div_ceil(BLOCK) + staged.entries as u64;
    let inodes = inode_count(staged);
    let raw = blocks_data * BLOCK + inodes * 256;
    let with_room = raw + (raw / 4).max(16 << 20) + (16 << 20);
    with_room.div_ceil(1 << 20) << 20
}

fn inode_count(staged: &Staged) -> u64 {
    (staged.entries as u64 + 64) * 2
}

pub(super) fn write(
    staged: &Staged,
    opts: &FsOptions,
    ids: &Ids,
    out: &Path,
) -> Result<(), FsImageError> {
    // Every inode's times (the root's too) to the build's time; the owners
    // and modes are the staged ones.
    let inodes: Vec<(&str, Option<Owner>)> = std::iter::once("/")
        .chain(staged.meta.iter().map(|m| m.0.as_str()))
        .map(|p| (p, None))
        .collect();
    mkfs(
        &Mkfs {
            source: &staged.root,
            layout: Layout::Root,
            size: size_bytes(staged),
            inodes: inode_count(staged),
            uuid: &ids.uuid,
            hash_seed: &ids.hash_seed,
            label: opts.label.as_deref(),
            mtime: opts.mtime,
            fix: &inodes,
        },
        out,
    )
}

/// The shape of the file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// A root file system: 4 KiB blocks, 256-byte inodes, a journal (Debian
    /// 12's ext4 defaults).
    Root,
    /// A small read-only one (the config drive): 1 KiB blocks, no journal,
    /// no resize inode, no reserved blocks; mke2fs then takes sizes from
    /// 64 KiB.
    Small,
}

/// An owner and a mode (with its file type) that the debugfs pass sets.
pub(crate) type Owner = (u32, u32, u32);

/// One `mkfs.ext4 -d` run and the debugfs pass after it.
pub(crate) struct Mkfs<'a> {
    /// The directory copied in (the image's `/`).
    pub source: &'a Path,
    pub layout: Layout,
    /// The image's size in bytes (the output file is made this long).
    pub size: u64,
    /// Inodes to make (`-N`).
    pub inodes: u64,
    pub uuid: &'a str,
    pub hash_seed: &'a str,
    pub label: Option<&'a str>,
    /// Every timestamp of the image.
    pub mtime: u32,
    /// The image paths whose times are set to `mtime`, and for those with
    /// an [`Owner`], uid, gid and mode (files staged without root keep the
    /// host's owner otherwise).
    pub fix: &'a [(&'a str, Option<Owner>)],
}

/// Writes the file system `spec` describes to `out` (created, or truncated).
pub(crate) fn mkfs(spec: &Mkfs, out: &Path) -> Result<(), FsImageError> {
    let time = spec.mtime.to_string();
    let fake_time = spec.mtime.max(1).to_string();
    let conf = temp_with(MKE2FS_CONF)?;
    std::fs::File::create(out)
        .and_then(|f| f.set_len(spec.size))
        .map_err(|source| FsImageError::Io {
            op: "create",
            path: out.to_path_buf(),
            source,
        })?;
    let mut cmd = Command::new("mkfs.ext4");
    cmd.env("E2FSPROGS_FAKE_TIME", &fake_time)
        .env("MKE2FS_CONFIG", conf.path())
        .args(["-q", "-F", "-t", "ext4"]);
    match spec.layout {
        Layout::Root => cmd.args(["-b", "4096", "-I", "256"]),
        // `-T small` also keeps mke2fs from looking up the "floppy" type
        // that it picks for sizes under 3 MiB (and warning it is missing).
        Layout::Small => cmd
            .args(["-b", "1024", "-I", "256", "-T", "small", "-m", "0"])
            .args(["-O", "^has_journal,^resize_inode"]),
    };
    cmd.args(["-N", &spec.inodes.to_string()])
        .args(["-U", spec.uuid])
        .args(spec.label.iter().flat_map(|l| ["-L", *l]))
        .args([
            "-E",
            &format!("hash_seed={},lazy_itable_init=0,nodiscard", spec.hash_seed),
        ])
        .arg("-d")
        .arg(spec.source)
        .arg(out);
    run_tool("mkfs.ext4", "e2fsprogs", &mut cmd)?;

    let mut text = String::new();
    for (path, owner) in spec.fix {
        let path = debugfs_quote(path);
        if let Some((uid, gid, mode)) = owner {
            text.push_str(&format!("sif \"{path}\" uid {uid}\n"));
            text.push_str(&format!("sif \"{path}\" gid {gid}\n"));
            text.push_str(&format!("sif \"{path}\" mode 0{mode:o}\n"));
        }
        for field in ["ctime", "atime", "mtime"] {
            text.push_str(&format!("sif \"{path}\" {field} {time}\n"));
        }
    }
    let script = temp_with(&text)?;
    let mut cmd = Command::new("debugfs");
    cmd.env("E2FSPROGS_FAKE_TIME", &fake_time)
        .arg("-w")
        .arg("-f")
        .arg(script.path())
        .arg(out);
    run_tool("debugfs", "e2fsprogs", &mut cmd)
}

/// debugfs splits its command lines on blanks and reads `"…"` as one word.
fn debugfs_quote(path: &str) -> String {
    path.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A temporary file holding `text`.
fn temp_with(text: &str) -> Result<tempfile::NamedTempFile, FsImageError> {
    let io = |source| FsImageError::Io {
        op: "write a temporary file in",
        path: std::env::temp_dir(),
        source,
    };
    let mut f = tempfile::NamedTempFile::new().map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    Ok(f)
}
