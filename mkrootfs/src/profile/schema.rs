//! The profile's sections as written: each value that can be judged alone
//! (an image path, a mode) is checked while deserializing, so its error
//! carries the line and column.

use super::Position;
use crate::compress::Compression;
use crate::kmod::ModuleCompression;
use mkrootfs_config::Mode;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// An absolute path inside the image, without `..`: checked while parsing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImagePath(pub String);

impl ImagePath {
    pub fn parse(s: &str) -> Result<ImagePath, String> {
        if !s.starts_with('/') {
            return Err(format!("image path {s:?} must be absolute"));
        }
        if Path::new(s).components().any(|c| c == Component::ParentDir) {
            return Err(format!("image path {s:?} escapes the image with `..`"));
        }
        if s.contains('\0') {
            return Err(format!("image path {s:?} contains a NUL byte"));
        }
        Ok(ImagePath(normalize(s)))
    }
}

/// `/a//b/./c/` → `/a/b/c`.
fn normalize(s: &str) -> String {
    let parts: Vec<&str> = s
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ImagePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ImagePath::parse(&s).map_err(de::Error::custom)
    }
}

/// `[image]`: how the archive is made.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    /// Default: `zstd`.
    pub compression: Option<Compression>,
    /// Compression level. Default: gzip 9, xz 6, zstd 19.
    pub level: Option<u32>,
    /// Resolve binaries and libraries in this tree instead of `/`
    /// (relative paths are relative to the profile file). Default: `/`.
    pub sysroot: Option<PathBuf>,
    /// The program the kernel runs: an image path (added as `/init` with a
    /// symlink when it is elsewhere), or `"mkrootfs"` for the project's own
    /// init. Default: `"mkrootfs"`.
    pub init: Option<String>,
    /// Where the names of `binaries` without a `/` are looked up, inside
    /// the sysroot, `:`-separated absolute directories (never the caller's
    /// `$PATH`). Default: the init's default `PATH`,
    /// `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`.
    pub binary_path: Option<String>,
    /// Also add the libraries named by `.note.dlopen` ELF notes.
    /// Default: false.
    pub dlopen_notes: Option<bool>,
    /// Add a symlink next to each listed busybox binary for every applet it
    /// reports (`busybox --list-full`; only when the binary can run here).
    /// Default: none.
    pub busybox_links: Option<ImagePath>,
    /// What is written: `cpio` (an initramfs), or a disk image `erofs`,
    /// `squashfs` or `ext4` (docs/profiles.md, "Disk images"). Default: cpio.
    pub format: Option<crate::fsimage::Format>,
    /// A disk image's compression: erofs `none` (default), `lz4`, `lz4hc`;
    /// squashfs `zstd` (default), `gzip`, `xz`, `lz4`, `none`; ext4 `none`.
    pub fs_compression: Option<crate::fsimage::FsCompression>,
    /// With a disk format: also write a small initramfs (the init, its
    /// modules, `root.mode = "overlay"` on the image). Default: false.
    pub split: Option<bool>,
    /// With a disk format: append a dm-verity hash tree and report its root
    /// hash. Default: false.
    pub verity: Option<bool>,
    /// The file system's label (ext4 only: up to 16 bytes). Default: none.
    pub label: Option<String>,
}

/// `[[files]]`: a host file or inline contents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub dest: ImagePath,
    /// Where the entry was written (its `dest`), for messages; none for
    /// an entry made in code.
    #[serde(skip)]
    pub at: Option<Position>,
    /// Host path (relative to the profile's directory). Exactly one of
    /// `src` and `content`.
    pub src: Option<PathBuf>,
    pub content: Option<String>,
    /// Default: the host file's permissions, or `0644` for `content`.
    pub mode: Option<Mode>,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

/// `[[trees]]`: a whole host directory copied to `dest`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSpec {
    pub src: PathBuf,
    pub dest: ImagePath,
    /// Owner of every entry copied. Default: 0 (root), as `gid`.
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    /// Where the entry was written (its `dest`).
    #[serde(skip)]
    pub at: Option<Position>,
}

/// `[[dirs]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    pub path: ImagePath,
    /// Where the entry was written (its `path`).
    #[serde(skip)]
    pub at: Option<Position>,
    /// Default: `0755`.
    pub mode: Option<Mode>,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

/// `[[symlinks]]`: `path` → `target` (target is stored as written).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkSpec {
    pub path: ImagePath,
    pub target: String,
    /// Where the entry was written (its `path`).
    #[serde(skip)]
    pub at: Option<Position>,
}

/// `[[hardlinks]]`: `path` is another name of the file at `target`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardlinkSpec {
    pub path: ImagePath,
    pub target: ImagePath,
    /// Where the entry was written (its `path`).
    #[serde(skip)]
    pub at: Option<Position>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// `[[nodes]]`: a device node or fifo, written as cpio header fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub path: ImagePath,
    /// Where the entry was written (its `path`).
    #[serde(skip)]
    pub at: Option<Position>,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    #[serde(default)]
    pub major: u32,
    #[serde(default)]
    pub minor: u32,
    /// Default: `0600`.
    pub mode: Option<Mode>,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

/// `[modules]`: kernel modules to add.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModulesSection {
    /// The module tree: a `lib/modules/<version>` directory, or `"auto"` for
    /// the kernel `mkrootfs run` would boot. Required when modules are asked.
    pub kernel: Option<String>,
    /// Module names or aliases. Default: none.
    #[serde(default)]
    pub load: Vec<String>,
    /// A named list: `"microvm"` (virtio block, network, console, vsock).
    pub preset: Option<String>,
    /// Default: `decompress`.
    pub compressed: Option<ModuleCompression>,
    /// Parameters per module, as a modprobe.d `options` line:
    /// `{ virtio_blk = "queue_depth=64" }`. Carried into the init's
    /// `module_options`. Default: none.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}
