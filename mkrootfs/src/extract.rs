//! Extracting an image into a directory, safely: nothing is ever written
//! outside that directory, whatever the archive holds.
//!
//! - Absolute names and names with a `..` component are skipped (reported).
//! - Every parent of a path is checked with `lstat` while it is walked: a
//!   symlink there (from the archive or already in the directory) makes the
//!   entry skipped, so no write ever goes through a symlink. The final
//!   component is removed before it is created, and files are opened with
//!   `O_NOFOLLOW | O_EXCL`.
//! - Hard links only point at regular files this extraction created inside
//!   the directory, re-checked the same way when linked.
//!
//! Otherwise the result is what the kernel's unpacker makes: later entries
//! replace earlier ones, hard links pair up by (dev, ino) within a segment
//! and the data written through the last name lands in all of them. Device
//! nodes are only created by root (`mknod` needs `CAP_MKNOD`); otherwise
//! they are reported in [`ExtractReport::skipped`]. Fifos and sockets need
//! no privilege and are always created. Owners are set only when root.
//! Directory modes and times are applied at the end, deepest first, so that
//! a read-only directory does not stop its own contents from being written.

use crate::cpio::{
    Segment, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// What an extraction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractReport {
    /// Regular files written (hard links included).
    pub files: usize,
    /// Directories created or updated.
    pub dirs: usize,
    /// Symbolic links created.
    pub symlinks: usize,
    /// Device nodes, fifos and sockets created.
    pub devices_created: usize,
    /// Entries not extracted, one message each, e.g.
    /// `dev/console: char device 5:1 not created (not root)`.
    pub skipped: Vec<String>,
}

/// A failed filesystem operation, naming the path.
#[derive(Debug, Error)]
pub enum ExtractError {
    /// The destination directory itself is unusable.
    #[error("destination {0} is not a directory")]
    NotADirectory(PathBuf),
    /// `lstat` of a path failed.
    #[error("cannot inspect {0}")]
    Stat(PathBuf, #[source] io::Error),
    /// `mkdir` failed.
    #[error("cannot create directory {0}")]
    CreateDir(PathBuf, #[source] io::Error),
    /// Removing an existing path that an entry replaces failed.
    #[error("cannot remove {0} to replace it")]
    Remove(PathBuf, #[source] io::Error),
    /// Creating or writing a regular file failed.
    #[error("cannot write file {0}")]
    WriteFile(PathBuf, #[source] io::Error),
    /// `symlink` failed.
    #[error("cannot create symlink {0}")]
    Symlink(PathBuf, #[source] io::Error),
    /// `link` failed.
    #[error("cannot hard-link {0} to {1}")]
    Link(PathBuf, PathBuf, #[source] io::Error),
    /// `mknod` of a fifo, socket or device failed.
    #[error("cannot create special file {0}")]
    Mknod(PathBuf, #[source] io::Error),
    /// `chmod` or setting the times failed.
    #[error("cannot set mode or time of {0}")]
    SetAttr(PathBuf, #[source] io::Error),
    /// Paths asked for by [`select`] that no entry has.
    #[error("not in the image: {}", .0.join(", "))]
    NotInImage(Vec<String>),
}

/// A name as the image's root sees it: no leading `./` or `/`, no trailing `/`.
fn image_name(name: &str) -> &str {
    let name = name.strip_prefix("./").unwrap_or(name);
    name.trim_start_matches('/').trim_end_matches('/')
}

/// The entries of `segments` at `paths` (image paths, with or without a
/// leading `/`) or under them, for `mkrootfs extract IMAGE DIR PATH...`:
/// their parent directories are created by the extraction. Another name
/// of a hard-linked file that is selected alone gets the file's data (a
/// plain file then). A path no entry has is an error naming it.
pub fn select(segments: &[Segment], paths: &[String]) -> Result<Vec<Segment>, ExtractError> {
    let wanted: Vec<&str> = paths.iter().map(|p| image_name(p)).collect();
    let picked = |name: &str| {
        let name = image_name(name);
        wanted.iter().any(|w| {
            w.is_empty() || name == *w || name.strip_prefix(w).is_some_and(|r| r.starts_with('/'))
        })
    };
    let mut found = vec![false; wanted.len()];
    let mut out = Vec::new();
    for seg in segments {
        let mut entries = Vec::new();
        for e in seg.entries.iter().filter(|e| picked(&e.name)) {
            let mut e = e.clone();
            if e.mode & S_IFMT == S_IFREG && e.nlink > 1 {
                // The data may be on a name that is not selected.
                let data = seg
                    .entries
                    .iter()
                    .filter(|o| (o.dev, o.ino) == (e.dev, e.ino) && o.mode & S_IFMT == S_IFREG)
                    .map(|o| &o.data)
                    .max_by_key(|d| d.len());
                if let Some(data) = data {
                    e.data = data.clone();
                }
                e.nlink = 1;
            }
            let name = image_name(&e.name).to_string();
            for (f, w) in found.iter_mut().zip(&wanted) {
                *f |= w.is_empty() || name == *w || name.starts_with(&format!("{w}/"));
            }
            entries.push(e);
        }
        out.push(Segment {
            entries,
            ..seg.clone()
        });
    }
    let missing: Vec<String> = paths
        .iter()
        .zip(found)
        .filter(|(_, f)| !f)
        .map(|(p, _)| p.clone())
        .collect();
    if !missing.is_empty() {
        return Err(ExtractError::NotInImage(missing));
    }
    Ok(out)
}

/// Extracts every segment, in order, into `dir`, created (with its
/// parents) when missing.
pub fn extract(segments: &[Segment], dir: &Path) -> Result<ExtractReport, ExtractError> {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    extract_with(segments, dir, root)
}

/// Where an entry goes: its components under the destination, or why it is
/// refused.
fn components(name: &str) -> Result<Vec<&str>, &'static str> {
    if name.starts_with('/') {
        return Err("absolute name, not extracted");
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return Err("name has a `..` component, not extracted");
    }
    Ok(parts)
}

/// How walking the parents of a path ended.
enum Parent {
    /// All parents are real directories: the full path.
    Ok(PathBuf),
    /// A parent is a symlink or not a directory: the message for `skipped`.
    Refused(String),
}

/// Checks (and with `create`, makes) each parent directory of `parts`
/// under `dir`, never following a symlink.
fn walk_parents(dir: &Path, parts: &[&str], create: bool) -> Result<Parent, ExtractError> {
    let mut path = dir.to_path_buf();
    let Some((last, parents)) = parts.split_last() else {
        return Ok(Parent::Ok(path));
    };
    for (i, part) in parents.iter().enumerate() {
        path.push(part);
        let shown = || parts[..=i].join("/");
        match fs::symlink_metadata(&path) {
            Ok(md) if md.is_dir() => {}
            Ok(md) if md.file_type().is_symlink() => {
                return Ok(Parent::Refused(format!("parent {} is a symlink", shown())))
            }
            Ok(_) => {
                return Ok(Parent::Refused(format!(
                    "parent {} is not a directory",
                    shown()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&path).map_err(|e| ExtractError::CreateDir(path.clone(), e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Parent::Refused(format!("parent {} is gone", shown())))
            }
            Err(e) => return Err(ExtractError::Stat(path, e)),
        }
    }
    path.push(last);
    Ok(Parent::Ok(path))
}

/// Removes whatever is at `path` (never following a symlink), except a
/// directory when `keep_dir`; returns whether a directory was kept.
fn clear(path: &Path, keep_dir: bool) -> Result<bool, ExtractError> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() && keep_dir => Ok(true),
        Ok(md) if md.is_dir() => fs::remove_dir(path)
            .map(|()| false)
            .map_err(|e| ExtractError::Remove(path.to_path_buf(), e)),
        Ok(_) => fs::remove_file(path)
            .map(|()| false)
            .map_err(|e| ExtractError::Remove(path.to_path_buf(), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ExtractError::Stat(path.to_path_buf(), e)),
    }
}

fn mtime_of(secs: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(secs))
}

fn mknod(path: &Path, mode: u32, rdev: (u32, u32)) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let dev = libc::makedev(rdev.0, rdev.1);
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // mknod does not keep the pointer.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the owner (root only); a failure is reported, not fatal, since an
/// unprivileged container's root may not map every id.
fn chown(path: &Path, uid: u32, gid: u32, root: bool, report: &mut ExtractReport, name: &str) {
    if root {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
            report
                .skipped
                .push(format!("{name}: owner {uid}:{gid} not set ({e})"));
        }
    }
}

/// [`extract`] with the privilege decided by the caller (tests use both).
fn extract_with(
    segments: &[Segment],
    dir: &Path,
    root: bool,
) -> Result<ExtractReport, ExtractError> {
    match fs::symlink_metadata(dir) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return Err(ExtractError::NotADirectory(dir.to_path_buf())),
        // Like `mkdir -p` (and `tar -C` users' habit of expecting it): a
        // missing destination and its parents are created.
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir)
            .map_err(|err| ExtractError::CreateDir(dir.to_path_buf(), err))?,
        Err(e) => return Err(ExtractError::Stat(dir.to_path_buf(), e)),
    }
    let mut report = ExtractReport::default();
    // Directory path -> (mode, mtime), applied at the end.
    let mut dir_attrs: BTreeMap<PathBuf, (u32, u32)> = BTreeMap::new();
    for seg in segments {
        // (dev, ino) -> first name's components; the kernel's link table,
        // which it forgets at each trailer.
        let mut links: HashMap<((u32, u32), u32), Vec<&str>> = HashMap::new();
        for e in &seg.entries {
            let skip = |report: &mut ExtractReport, why: &str| {
                report.skipped.push(format!("{}: {why}", e.name));
            };
            let parts = match components(&e.name) {
                Ok(p) if p.is_empty() => continue, // the destination itself
                Ok(p) => p,
                Err(why) => {
                    skip(&mut report, why);
                    continue;
                }
            };
            let path = match walk_parents(dir, &parts, true)? {
                Parent::Ok(p) => p,
                Parent::Refused(why) => {
                    skip(&mut report, &format!("{why}, not extracted"));
                    continue;
                }
            };
            let perm = e.mode & 0o7777;
            match e.mode & S_IFMT {
                S_IFDIR => {
                    if !clear(&path, true)? {
                        fs::create_dir(&path)
                            .map_err(|err| ExtractError::CreateDir(path.clone(), err))?;
                    }
                    chown(&path, e.uid, e.gid, root, &mut report, &e.name);
                    dir_attrs.insert(path, (perm, e.mtime));
                    report.dirs += 1;
                }
                S_IFREG => {
                    let key = (e.dev, e.ino);
                    let linked = e.nlink >= 2 && e.ino != 0;
                    let first = if linked { links.get(&key) } else { None };
                    clear(&path, false)?;
                    let file = match first {
                        Some(first) => {
                            let Parent::Ok(target) = walk_parents(dir, first, false)? else {
                                skip(&mut report, "hard link target is gone, not extracted");
                                continue;
                            };
                            let is_file = fs::symlink_metadata(&target)
                                .map(|md| md.file_type().is_file())
                                .unwrap_or(false);
                            if !is_file {
                                skip(
                                    &mut report,
                                    "hard link target is no longer a regular file, not extracted",
                                );
                                continue;
                            }
                            // link(2) never follows a symlink at `target`.
                            fs::hard_link(&target, &path).map_err(|err| {
                                ExtractError::Link(path.clone(), target.clone(), err)
                            })?;
                            OpenOptions::new()
                                .write(true)
                                .custom_flags(libc::O_NOFOLLOW)
                                .open(&path)
                        }
                        None => OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .custom_flags(libc::O_NOFOLLOW)
                            .open(&path),
                    };
                    let write_err = |err| ExtractError::WriteFile(path.clone(), err);
                    let mut file: File = file.map_err(write_err)?;
                    // Through a hard link, the data goes into the shared inode.
                    if !e.data.is_empty() {
                        file.set_len(0).map_err(write_err)?;
                        file.write_all(&e.data).map_err(write_err)?;
                    }
                    if root {
                        if let Err(err) = std::os::unix::fs::fchown(&file, Some(e.uid), Some(e.gid))
                        {
                            report.skipped.push(format!(
                                "{}: owner {}:{} not set ({err})",
                                e.name, e.uid, e.gid
                            ));
                        }
                    }
                    // After chown, which clears setuid/setgid.
                    let attr_err = |err| ExtractError::SetAttr(path.clone(), err);
                    file.set_permissions(Permissions::from_mode(perm))
                        .map_err(attr_err)?;
                    file.set_modified(mtime_of(e.mtime)).map_err(attr_err)?;
                    if linked && first.is_none() {
                        links.insert(key, parts.clone());
                    }
                    report.files += 1;
                }
                S_IFLNK => {
                    clear(&path, false)?;
                    let target = OsStr::from_bytes(&e.data);
                    std::os::unix::fs::symlink(target, &path)
                        .map_err(|err| ExtractError::Symlink(path.clone(), err))?;
                    chown(&path, e.uid, e.gid, root, &mut report, &e.name);
                    report.symlinks += 1;
                }
                kind @ (S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK) => {
                    let device = matches!(kind, S_IFCHR | S_IFBLK);
                    let what = if kind == S_IFCHR { "char" } else { "block" };
                    if device && !root {
                        skip(
                            &mut report,
                            &format!(
                                "{what} device {}:{} not created (not root)",
                                e.rdev.0, e.rdev.1
                            ),
                        );
                        continue;
                    }
                    clear(&path, false)?;
                    match mknod(&path, kind | perm, e.rdev) {
                        Ok(()) => {}
                        Err(err) if device && err.raw_os_error() == Some(libc::EPERM) => {
                            skip(
                                &mut report,
                                &format!(
                                    "{what} device {}:{} not created (no CAP_MKNOD)",
                                    e.rdev.0, e.rdev.1
                                ),
                            );
                            continue;
                        }
                        Err(err) => return Err(ExtractError::Mknod(path, err)),
                    }
                    chown(&path, e.uid, e.gid, root, &mut report, &e.name);
                    // mknod applies the umask; the node is ours, not a symlink.
                    fs::set_permissions(&path, Permissions::from_mode(perm))
                        .map_err(|err| ExtractError::SetAttr(path.clone(), err))?;
                    report.devices_created += 1;
                }
                other => skip(
                    &mut report,
                    &format!("unknown file type {other:#o}, not extracted"),
                ),
            }
        }
    }
    // Deepest first: a directory's own mode and time are set after its
    // children were written, and before its parent becomes read-only.
    for (path, (perm, mtime)) in dir_attrs.iter().rev() {
        // Still a real directory? A later entry may have replaced it.
        let still_dir = fs::symlink_metadata(path)
            .map(|md| md.is_dir())
            .unwrap_or(false);
        if !still_dir {
            continue;
        }
        let attr_err = |err| ExtractError::SetAttr(path.clone(), err);
        let d = File::open(path).map_err(attr_err)?;
        d.set_modified(mtime_of(*mtime)).map_err(attr_err)?;
        d.set_permissions(Permissions::from_mode(*perm))
            .map_err(attr_err)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
