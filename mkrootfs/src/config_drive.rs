//! The config drive (docs/microvm.md "Config drive"): one VM's settings
//! ([`mkrootfs_config::settings`]) as a small ext4 image holding
//! `/mkrootfs.json`, which the init finds by the file system's label,
//! mounts read-only and applies over the image's `[init]` table. One image
//! serves many VMs; each VM gets its own drive.
//!
//! The image is a function of the settings and the label alone (same
//! settings, same bytes): the document is written with sorted keys, the
//! UUID and directory hash seed come from its digest, every time is 0, and
//! the file system is written by the disk images' ext4 writer
//! (`fsimage/ext4.rs`). The document is owned by root with mode 0400 in the
//! image, and the image file itself gets mode 0600: both may hold secrets.
//! No root is needed: the owners are set by the writer's debugfs pass, not
//! by staging.

use crate::fsimage::ext4::{self, Layout, Mkfs};
use crate::fsimage::{self, Format, FsImageError, Ids};
use mkrootfs_config::settings::{parse_document, Problem, Settings, CONFIG_DRIVE_FILE};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The settings a drive holds: their keys, parsers and checks.
pub use mkrootfs_config::settings;

/// Every timestamp of the image (the superblock's become 1: e2fsprogs reads
/// a fake time of 0 as none).
const MTIME: u32 = 0;

/// The document's inode: a regular file, root's, read-only to root.
const DOCUMENT_MODE: u32 = 0o100400;

/// Inodes made: the 11 ext4 reserves, the document, and room to spare
/// (fewer than a group's 16 would not save a block).
const INODES: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    #[error("config drive {path}: label {message}")]
    Label { path: PathBuf, message: String },
    /// Settings whose document would not be taken whole: each problem names
    /// its key (never a secret's value).
    #[error("config drive {path}: {}", problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "))]
    Refused {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("stage {CONFIG_DRIVE_FILE} in {dir}")]
    Stage {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write the config drive {path}")]
    Image {
        path: PathBuf,
        #[source]
        source: Box<FsImageError>,
    },
}

/// What [`write`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Size of the image file.
    pub image_bytes: u64,
    /// Size of `/mkrootfs.json` in it.
    pub document_bytes: u64,
    /// The file system's UUID (derived from the document and the label).
    pub uuid: String,
}

/// The bytes of `/mkrootfs.json` for `settings`: the JSON of
/// [`Settings::to_document`] and a newline, checked strictly: the init's
/// parser must take every key of it and read back exactly `settings`.
pub fn document(settings: &Settings) -> Result<Vec<u8>, Vec<Problem>> {
    let mut bytes = serde_json::to_vec(&settings.to_document()).map_err(|e| {
        vec![Problem {
            key: String::new(),
            message: format!("not written as JSON: {e}"),
        }]
    })?;
    bytes.push(b'\n');
    let (again, problems) = parse_document(&bytes);
    if !problems.is_empty() {
        return Err(problems);
    }
    if let Some(key) = first_difference(settings, &again) {
        return Err(vec![Problem {
            key: key.to_string(),
            message: "the document does not read back as the settings given".into(),
        }]);
    }
    Ok(bytes)
}

/// The first key whose value `b` does not hold as `a` does.
fn first_difference(a: &Settings, b: &Settings) -> Option<&'static str> {
    [
        ("hostname", a.hostname == b.hostname),
        ("env", a.env == b.env),
        ("services", a.services == b.services),
        ("network", a.network == b.network),
        ("secrets", a.secrets == b.secrets),
        ("seed", a.seed == b.seed),
    ]
    .into_iter()
    .find_map(|(k, same)| (!same).then_some(k))
}

/// The image's size for a document of `len` bytes: 1 KiB blocks for the
/// data, and 48 KiB for the superblock, group descriptors, bitmaps, inode
/// table, root and lost+found (mke2fs needs about 32); at least 64 KiB,
/// the least mke2fs makes; whole 4 KiB.
fn size_bytes(len: u64) -> u64 {
    let kib = (len.div_ceil(1024) + 48).max(64);
    kib.div_ceil(4) * 4 * 1024
}

/// Writes `settings` as a config drive labelled `label` (1 to 16 bytes;
/// the init's default is [`mkrootfs_config::settings::CONFIG_DRIVE_LABEL`])
/// to `out`, atomically (a temporary file next to it, renamed), with mode
/// 0600.
pub fn write(settings: &Settings, label: &str, out: &Path) -> Result<Written, ConfigDriveError> {
    fsimage::check_label(label).map_err(|message| ConfigDriveError::Label {
        path: out.to_path_buf(),
        message,
    })?;
    let doc = document(settings).map_err(|problems| ConfigDriveError::Refused {
        path: out.to_path_buf(),
        problems,
    })?;
    let image_err = |source| ConfigDriveError::Image {
        path: out.to_path_buf(),
        source: Box::new(source),
    };
    let mut h = Sha256::new();
    h.update(b"mkrootfs config drive\0");
    h.update(label.as_bytes());
    h.update(b"\0");
    h.update(&doc);
    let ids = Ids::from_digest(&h.finalize().into(), Format::Ext4);

    // Private to this user (tempdir's mode is 0700) and removed on drop:
    // the document may hold secrets.
    let stage = tempfile::Builder::new()
        .prefix("mkrootfs-config-drive-")
        .tempdir()
        .map_err(|source| ConfigDriveError::Stage {
            dir: std::env::temp_dir(),
            source,
        })?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(stage.path().join(CONFIG_DRIVE_FILE))
        .and_then(|mut f| f.write_all(&doc))
        .map_err(|source| ConfigDriveError::Stage {
            dir: stage.path().to_path_buf(),
            source,
        })?;

    let tmp = fsimage::temp_next_to(out).map_err(image_err)?;
    let file = format!("/{CONFIG_DRIVE_FILE}");
    ext4::mkfs(
        &Mkfs {
            source: stage.path(),
            layout: Layout::Small,
            size: size_bytes(doc.len() as u64),
            inodes: INODES,
            uuid: &ids.uuid,
            hash_seed: &ids.hash_seed,
            label: Some(label),
            mtime: MTIME,
            fix: &[
                ("/", Some((0, 0, 0o040755))),
                ("/lost+found", Some((0, 0, 0o040700))),
                (file.as_str(), Some((0, 0, DOCUMENT_MODE))),
            ],
        },
        tmp.path(),
    )
    .map_err(image_err)?;
    let image_bytes = tmp
        .as_file()
        .metadata()
        .map_err(|source| FsImageError::Io {
            op: "stat",
            path: tmp.path().to_path_buf(),
            source,
        })
        .map_err(image_err)?
        .len();
    fsimage::persist(tmp, out).map_err(image_err)?;
    Ok(Written {
        image_bytes,
        document_bytes: doc.len() as u64,
        uuid: ids.uuid,
    })
}

#[cfg(test)]
mod tests;
