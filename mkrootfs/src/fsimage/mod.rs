//! Root disk images: the assembled tree written as an erofs, squashfs or
//! ext4 file system by the reference writers (`mkfs.erofs`, `mksquashfs`,
//! `mkfs.ext4 -d`), reproducibly, with an optional dm-verity hash tree.
//!
//! The writers read a staged directory (`stage.rs`): every entry of the tree
//! with its mode, owner, device numbers and extended attributes applied with
//! real `chown`/`mknod`/`lsetxattr`, and every mtime set to the build's.
//! That takes root, or `fakeroot` (the tools then read the owners it fakes):
//! no writer of these versions (erofs-utils 1.5, e2fsprogs 1.47.0,
//! squashfs-tools 4.5) takes a tar stream or a full owner manifest. Each
//! writer then gets the options that make its output a function of the
//! tree alone: UUIDs and hash seeds derived from the tree's digest, the
//! build's time everywhere, no append (see each format's file).
//!
//! The image is written to a temporary file next to the output and renamed
//! over it once complete (and its hash tree appended).

mod erofs;
pub(crate) mod ext4;
mod squashfs;
pub mod stage;
pub mod verity;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// What `mkrootfs build` writes (`image.format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A cpio newc initramfs (compressed by `image.compression`). Default.
    #[default]
    Cpio,
    /// An erofs disk image (read-only; the Kata and composefs root).
    Erofs,
    /// A squashfs disk image (read-only).
    Squashfs,
    /// An ext4 disk image (read-write; Firecracker's usual root).
    Ext4,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Cpio, Format::Erofs, Format::Squashfs, Format::Ext4];

    pub fn name(self) -> &'static str {
        match self {
            Format::Cpio => "cpio",
            Format::Erofs => "erofs",
            Format::Squashfs => "squashfs",
            Format::Ext4 => "ext4",
        }
    }

    /// The kernel's file-system type, which is also its module's name.
    pub fn fstype(self) -> Option<&'static str> {
        match self {
            Format::Cpio => None,
            f => Some(f.name()),
        }
    }

    /// The output file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Cpio => ".cpio",
            Format::Erofs => ".erofs",
            Format::Squashfs => ".squashfs",
            Format::Ext4 => ".ext4",
        }
    }

    /// The compressions the format (and its writer) supports, the first
    /// one being the default.
    pub fn compressions(self) -> &'static [FsCompression] {
        use FsCompression::*;
        match self {
            Format::Cpio => &[],
            // Uncompressed by default: the page cache then holds the image's
            // blocks once for every VM sharing it, and reads cost no CPU.
            Format::Erofs => &[None, Lz4, Lz4hc],
            Format::Squashfs => &[Zstd, Gzip, Xz, Lz4, None],
            Format::Ext4 => &[None],
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown format {s:?} (known: cpio, erofs, squashfs, ext4)"))
    }
}

/// The compression inside a disk image (`image.fs_compression`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsCompression {
    None,
    Lz4,
    Lz4hc,
    Gzip,
    Xz,
    Zstd,
}

impl FsCompression {
    pub fn name(self) -> &'static str {
        match self {
            FsCompression::None => "none",
            FsCompression::Lz4 => "lz4",
            FsCompression::Lz4hc => "lz4hc",
            FsCompression::Gzip => "gzip",
            FsCompression::Xz => "xz",
            FsCompression::Zstd => "zstd",
        }
    }

    /// The levels the writer takes for this compression, and its default
    /// (the writer's own). `None`: the writer takes no level.
    pub fn levels(self, format: Format) -> Option<(std::ops::RangeInclusive<u32>, u32)> {
        match (format, self) {
            (Format::Erofs, FsCompression::Lz4hc) => Some((0..=12, 9)),
            (Format::Squashfs, FsCompression::Gzip) => Some((1..=9, 9)),
            (Format::Squashfs, FsCompression::Zstd) => Some((1..=22, 15)),
            _ => None,
        }
    }

    /// Checks that `format` supports this compression at `level`, and
    /// returns the level used (`None` when the writer takes none).
    pub fn check(self, format: Format, level: Option<u32>) -> Result<Option<u32>, String> {
        let supported = format.compressions();
        if !supported.contains(&self) {
            let names: Vec<&str> = supported.iter().map(|c| c.name()).collect();
            return Err(format!(
                "{format} images cannot be compressed with {} (supported: {})",
                self.name(),
                names.join(", ")
            ));
        }
        match (self.levels(format), level) {
            (None, None) => Ok(None),
            (None, Some(l)) => Err(format!(
                "image.level {l}: {} in {format} takes no level",
                self.name()
            )),
            (Some((_, d)), None) => Ok(Some(d)),
            (Some((r, _)), Some(l)) if r.contains(&l) => Ok(Some(l)),
            (Some((r, _)), Some(l)) => Err(format!(
                "image.level {l} is out of range for {} in {format} ({}..={})",
                self.name(),
                r.start(),
                r.end()
            )),
        }
    }
}

impl fmt::Display for FsCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one disk image is written (validated by [`crate::plan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsOptions {
    pub format: Format,
    pub compression: FsCompression,
    /// The level passed to the writer, if it takes one.
    pub level: Option<u32>,
    /// Append a dm-verity hash tree.
    pub verity: bool,
    /// The file system's label (ext4).
    pub label: Option<String>,
    /// Every timestamp of the image.
    pub mtime: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum FsImageError {
    #[error("{tool} not found: install the Debian package {package}")]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("run {tool}")]
    Spawn {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed ({status}): {stderr}")]
    ToolFailed {
        tool: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{format} images are written from a staging directory with the image's owners and device nodes: run as root, or under fakeroot (`fakeroot mkrootfs build …`)")]
    NeedsRoot { format: Format },
    #[error("stage {path} in {dir}")]
    Stage {
        path: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Refused { path: String, message: String },
}

/// What [`write`] produced.
#[derive(Clone, Debug)]
pub struct Written {
    /// Entries of the tree (the root excluded).
    pub entries: usize,
    /// Bytes of file data in the tree.
    pub data_bytes: u64,
    /// Size of the file system, before any hash tree.
    pub fs_bytes: u64,
    /// Size of the whole output file.
    pub image_bytes: u64,
    /// The file system's UUID (derived from the tree's digest).
    pub uuid: String,
    /// The dm-verity parameters, with `verity = true`.
    pub verity: Option<verity::Verity>,
}

/// Writes `tree` as the disk image `output`, atomically.
pub fn write(
    tree: &crate::tree::Tree,
    opts: &FsOptions,
    output: &Path,
) -> Result<Written, FsImageError> {
    crate::progress::step(crate::progress::Step::Stage);
    let staged = stage::stage(tree, opts.format, opts.mtime)?;
    let ids = Ids::from_digest(&staged.digest, opts.format);
    let tmp = temp_next_to(output)?;
    let tmp_path = tmp.path().to_path_buf();
    crate::progress::step(crate::progress::Step::FsWriter(match opts.format {
        Format::Erofs => "mkfs.erofs",
        Format::Squashfs => "mksquashfs",
        _ => "mkfs.ext4",
    }));
    match opts.format {
        Format::Erofs => erofs::write(&staged, opts, &ids, &tmp_path)?,
        Format::Squashfs => squashfs::write(&staged, opts, &tmp_path)?,
        Format::Ext4 => ext4::write(&staged, opts, &ids, &tmp_path)?,
        Format::Cpio => unreachable!("cpio images are written by build::write"),
    }
    let io = |op: &'static str| {
        let path = tmp_path.clone();
        move |source| FsImageError::Io { op, path, source }
    };
    let fs_bytes = std::fs::metadata(&tmp_path).map_err(io("stat"))?.len();
    let verity = if opts.verity {
        crate::progress::step(crate::progress::Step::Verity);
        Some(
            verity::append(&tmp_path, &ids.salt, &ids.verity_uuid)
                .map_err(io("append the hash tree to"))?,
        )
    } else {
        None
    };
    let image_bytes = std::fs::metadata(&tmp_path).map_err(io("stat"))?.len();
    persist(tmp, output)?;
    Ok(Written {
        entries: staged.entries,
        data_bytes: staged.data_bytes,
        fs_bytes,
        image_bytes,
        uuid: ids.uuid,
        verity,
    })
}

/// A temporary file next to `output` (so that the rename stays on one file
/// system), created with mode 0600, removed unless [`persist`]ed.
pub(crate) fn temp_next_to(output: &Path) -> Result<tempfile::NamedTempFile, FsImageError> {
    use std::os::unix::fs::PermissionsExt;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|source| FsImageError::Io {
        op: "create directory",
        path: parent.clone(),
        source,
    })?;
    tempfile::Builder::new()
        .prefix(".mkrootfs-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(&parent)
        .map_err(|source| FsImageError::Io {
            op: "create a temporary file in",
            path: parent,
            source,
        })
}

/// Syncs `tmp` and renames it over `output`: a failed write never leaves
/// a partial image behind.
pub(crate) fn persist(tmp: tempfile::NamedTempFile, output: &Path) -> Result<(), FsImageError> {
    tmp.as_file()
        .sync_all()
        .map_err(|source| FsImageError::Io {
            op: "sync",
            path: tmp.path().to_path_buf(),
            source,
        })?;
    tmp.persist(output).map_err(|e| FsImageError::Io {
        op: "rename the image to",
        path: output.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// An ext4 volume name: 1 to 16 bytes (the superblock's `s_volume_name`;
/// mke2fs would cut a longer one, and the init compares it whole).
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 16 {
        return Err(format!("{label:?}: 1 to 16 bytes"));
    }
    Ok(())
}

/// Identifiers derived from the tree's digest: the same tree always gets
/// the same ones, two different trees different ones.
pub(crate) struct Ids {
    /// The file system's UUID.
    pub uuid: String,
    /// ext4's directory hash seed.
    pub hash_seed: String,
    /// The dm-verity superblock's UUID.
    pub verity_uuid: [u8; 16],
    /// The dm-verity salt.
    pub salt: [u8; 32],
}

impl Ids {
    /// Also from the format: the erofs and the ext4 image of one tree,
    /// attached together, must not share a UUID.
    pub(crate) fn from_digest(digest: &[u8; 32], format: Format) -> Ids {
        let derive = |label: &str| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(b"mkrootfs ");
            h.update(format.name().as_bytes());
            h.update(b" ");
            h.update(label.as_bytes());
            h.update(digest);
            h.finalize().into()
        };
        let uuid_of = |label: &str| -> [u8; 16] {
            let mut u = [0u8; 16];
            u.copy_from_slice(&derive(label)[..16]);
            // RFC 4122 variant, version 4 ("random": no meaning to decode).
            u[6] = (u[6] & 0x0f) | 0x40;
            u[8] = (u[8] & 0x3f) | 0x80;
            u
        };
        Ids {
            uuid: format_uuid(&uuid_of("uuid")),
            hash_seed: format_uuid(&uuid_of("hash seed")),
            verity_uuid: uuid_of("verity uuid"),
            salt: derive("verity salt"),
        }
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Runs a writer tool; a missing one names its Debian package.
pub(crate) fn run_tool(
    tool: &'static str,
    package: &'static str,
    cmd: &mut Command,
) -> Result<(), FsImageError> {
    let out = cmd.output().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            FsImageError::ToolMissing { tool, package }
        } else {
            FsImageError::Spawn { tool, source }
        }
    })?;
    if !out.status.success() {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        return Err(FsImageError::ToolFailed {
            tool,
            status: out.status,
            stderr,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
