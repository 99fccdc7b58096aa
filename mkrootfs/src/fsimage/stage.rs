//! The tree written out as a directory for the file-system writers, and its
//! digest (what the image's UUIDs and salt are derived from).
//!
//! Entries are created in the tree's sorted order (parents first), hard
//! links as links to the first name, device nodes with `mknod`, and then
//! owned, moded and timed exactly as the tree says: `chown` before `chmod`
//! (chown clears set-id bits) and before the extended attributes (it drops
//! `security.capability`), timestamps last and deepest first (creating a
//! child changes its directory's mtime). The host's own owner or umask never
//! reaches the image.

use super::{Format, FsImageError};
use crate::tree::{Data, Tree};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFIFO: u32 = 0o010000;

/// A staged tree.
pub struct Staged {
    /// Removed when dropped.
    _dir: tempfile::TempDir,
    /// The directory the writers read (the image's `/`).
    pub root: PathBuf,
    /// SHA-256 over every entry's name, type, mode, owner, device numbers,
    /// link target, inode grouping, extended attributes and contents.
    pub digest: [u8; 32],
    pub entries: usize,
    pub data_bytes: u64,
    /// Every image path (`/a/b`) and its mode, owner and inode number, in
    /// the tree's order; for writers that set owners themselves.
    pub meta: Vec<(String, u32, u32, u32)>,
}

/// Writes `tree` under a new temporary directory.
pub fn stage(tree: &Tree, format: Format, mtime: u32) -> Result<Staged, FsImageError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(FsImageError::NeedsRoot { format });
    }
    let dir = tempfile::Builder::new()
        .prefix("mkrootfs-stage-")
        .tempdir()
        .map_err(|source| FsImageError::Io {
            op: "create a staging directory in",
            path: std::env::temp_dir(),
            source,
        })?;
    let root = dir.path().join("root");
    let err = |path: &str| {
        let (path, dir) = (path.to_string(), dir.path().to_path_buf());
        move |source| FsImageError::Stage { path, dir, source }
    };
    fs::create_dir(&root).map_err(err("/"))?;
    own(&root, 0, 0, Some(0o755)).map_err(err("/"))?;

    let mut h = Sha256::new();
    let mut first_name: HashMap<u32, PathBuf> = HashMap::new();
    let mut data_bytes = 0u64;
    let mut meta = Vec::new();
    let plan = tree.plan(mtime);
    for (e, contents) in &plan {
        let path = root.join(&e.name);
        let at = format!("/{}", e.name);
        h.update((e.name.len() as u64).to_le_bytes());
        h.update(e.name.as_bytes());
        for v in [e.mode, e.uid, e.gid, e.ino, e.rdev.0, e.rdev.1] {
            h.update(v.to_le_bytes());
        }
        let perm = e.mode & 0o7777;
        match e.mode & S_IFMT {
            S_IFDIR => fs::create_dir(&path).map_err(err(&at))?,
            S_IFREG => match first_name.get(&e.ino) {
                Some(first) => fs::hard_link(first, &path).map_err(err(&at))?,
                None => {
                    fs::File::create(&path).map_err(err(&at))?;
                    first_name.insert(e.ino, path.clone());
                }
            },
            S_IFLNK => {
                h.update(&e.data);
                let target = std::ffi::OsStr::from_bytes(&e.data);
                std::os::unix::fs::symlink(target, &path).map_err(err(&at))?;
            }
            kind @ (S_IFCHR | S_IFBLK | S_IFIFO) => {
                mknod(&path, kind | perm, e.rdev).map_err(err(&at))?
            }
            _ => {
                return Err(FsImageError::Refused {
                    path: at,
                    message: format!("mode {:o} has no file type", e.mode),
                })
            }
        }
        let mut bytes = 0;
        if let Some(data) = contents {
            bytes = copy_data(data, &path, &mut h).map_err(err(&at))?;
            data_bytes += bytes;
        }
        crate::progress::advance(1, bytes);
        let is_link = e.mode & S_IFMT == S_IFLNK;
        own(&path, e.uid, e.gid, (!is_link).then_some(perm)).map_err(err(&at))?;
        meta.push((at, e.mode, e.uid, e.gid));
    }
    // Extended attributes once every name of every file is written and
    // owned: a write or a chown drops a file's capabilities.
    for (e, _) in &plan {
        let at = format!("/{}", e.name);
        let path = root.join(&e.name);
        for (name, value) in tree.xattrs(&at) {
            h.update((at.len() as u64).to_le_bytes());
            h.update(at.as_bytes());
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update((value.len() as u64).to_le_bytes());
            h.update(value);
            set_xattr(&path, name, value).map_err(err(&at))?;
        }
    }
    // Timestamps last, children before their directory.
    for (e, _) in plan.iter().rev() {
        set_times(&root.join(&e.name), mtime).map_err(err(&format!("/{}", e.name)))?;
    }
    set_times(&root, mtime).map_err(err("/"))?;
    Ok(Staged {
        _dir: dir,
        root,
        digest: h.finalize().into(),
        entries: plan.len(),
        data_bytes,
        meta,
    })
}

/// Writes a file's contents into the staged file, hashing them on the way.
fn copy_data(data: &Data, dst: &Path, h: &mut Sha256) -> io::Result<u64> {
    let mut out = fs::OpenOptions::new().write(true).open(dst)?;
    let n = match data {
        Data::Bytes(b) => {
            out.write_all(b)?;
            h.update(b);
            b.len() as u64
        }
        Data::Host { path, len } => {
            let mut src = fs::File::open(path)?;
            let mut buf = vec![0u8; 1 << 16];
            let mut n = 0u64;
            loop {
                let k = src.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                out.write_all(&buf[..k])?;
                h.update(&buf[..k]);
                n += k as u64;
            }
            if n != *len {
                return Err(io::Error::other(format!(
                    "{} changed size while the image was built (was {len} bytes, now {n})",
                    path.display()
                )));
            }
            n
        }
    };
    h.update(n.to_le_bytes());
    Ok(n)
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

fn own(path: &Path, uid: u32, gid: u32, perm: Option<u32>) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if let Some(perm) = perm {
        fs::set_permissions(path, fs::Permissions::from_mode(perm))?;
    }
    Ok(())
}

fn mknod(path: &Path, mode: u32, (major, minor): (u32, u32)) -> io::Result<()> {
    let c = cpath(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: both strings are NUL-terminated and `value` is valid for
    // `value.len()` bytes, all for the duration of the call.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// atime and mtime, without following a symlink.
fn set_times(path: &Path, secs: u32) -> io::Result<()> {
    let c = cpath(path)?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: `c` is a valid path and `times` two timespecs, both alive for
    // the call.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
