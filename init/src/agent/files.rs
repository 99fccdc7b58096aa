//! CopyFile (Kata's: written at an offset into a temporary file, which
//! replaces the destination atomically once it has the announced size) and
//! ReadFile (ours), both only beneath the directories the profile lists in
//! `copy_dirs`. A path is refused unless it is absolute and plain (no `.`,
//! `..` or empty components); below the allowed directory it is walked one
//! component at a time with openat2 `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, so neither a symbolic link nor a magic link in
//! the tree (one a container planted, for instance) leads anywhere else.

use crate::sys::ns::open_beneath;
use mkrootfs_config::agent::proto::{CopyFileRequest, ReadFileRequest, ReadFileResponse};
use mkrootfs_config::agent::ttrpc::code;
use nix::sys::stat::Mode;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, PermissionsExt};

/// A refusal or failure: a ttRPC status code and its message.
pub type Refusal = (i32, String);

/// The largest chunk ReadFile returns (well under the 4 MiB frame limit).
pub const MAX_READ: u32 = 1 << 20;

fn io_err(what: &str, path: &str, e: impl std::fmt::Display) -> Refusal {
    (code::INTERNAL, format!("{what} {path}: {e}"))
}

/// The allowed directory `path` is beneath, and the components below it.
pub fn split<'a>(dirs: &'a [String], path: &'a str) -> Result<(&'a str, Vec<&'a str>), Refusal> {
    let plain = path.starts_with('/')
        && !path.contains('\0')
        && path[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if !plain {
        return Err((
            code::INVALID_ARGUMENT,
            format!("{path:?}: not an absolute path without ., .. or empty components"),
        ));
    }
    for d in dirs {
        let d = d.trim_end_matches('/');
        if let Some(rest) = path.strip_prefix(d).and_then(|r| r.strip_prefix('/')) {
            return Ok((d, rest.split('/').collect()));
        }
    }
    Err((
        code::PERMISSION_DENIED,
        format!(
            "{path}: outside the directories the profile allows ({})",
            if dirs.is_empty() {
                "none".to_string()
            } else {
                dirs.join(", ")
            }
        ),
    ))
}

fn cstr(s: &str) -> Result<CString, Refusal> {
    CString::new(s).map_err(|_| (code::INVALID_ARGUMENT, format!("{s:?}: NUL byte")))
}

/// Opens one component beneath `dir`; a symbolic link is a refusal.
fn beneath(dir: &OwnedFd, name: &str, flags: i32, path: &str) -> Result<OwnedFd, Refusal> {
    open_beneath(dir.as_fd(), &cstr(name)?, flags).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::EXDEV) => (
            code::PERMISSION_DENIED,
            format!("{path}: {name} is a symbolic link: refused"),
        ),
        Some(libc::ENOENT) => (code::NOT_FOUND, format!("{path}: {name}: {e}")),
        _ => io_err("open", path, e),
    })
}

/// The directory holding the last component of `parts`, beneath `root`;
/// missing directories are made with `dir_mode` when `create`.
fn parent_dir(
    root: &str,
    parts: &[&str],
    path: &str,
    create: Option<u32>,
) -> Result<OwnedFd, Refusal> {
    let mut dir: OwnedFd = std::fs::File::open(root)
        .map_err(|e| io_err("open allowed directory", root, e))?
        .into();
    for name in &parts[..parts.len().saturating_sub(1)] {
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        dir = match beneath(&dir, name, flags, path) {
            Ok(d) => d,
            Err((code::NOT_FOUND, _)) if create.is_some() => {
                let mode = Mode::from_bits_truncate(create.unwrap_or(0o755) & 0o7777);
                match nix::sys::stat::mkdirat(dir.as_fd(), *name, mode) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(io_err("mkdir", path, e)),
                }
                beneath(&dir, name, flags, path)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(dir)
}

/// One CopyFile request.
pub fn copy(dirs: &[String], r: &CopyFileRequest) -> Result<(), Refusal> {
    let (root, parts) = split(dirs, &r.path)?;
    let Some(name) = parts.last().copied() else {
        return Err((code::INVALID_ARGUMENT, format!("{}: no file name", r.path)));
    };
    let end = r.offset.checked_add(r.data.len() as i64);
    if r.file_size < 0 || r.offset < 0 || end.is_none_or(|e| e > r.file_size) {
        return Err((
            code::INVALID_ARGUMENT,
            format!(
                "{}: {} bytes at offset {} do not fit file_size {}",
                r.path,
                r.data.len(),
                r.offset,
                r.file_size
            ),
        ));
    }
    let dir_mode = if r.dir_mode == 0 { 0o755 } else { r.dir_mode };
    let dir = parent_dir(root, &parts, &r.path, Some(dir_mode))?;
    let kind = r.file_mode & libc::S_IFMT;
    if kind == libc::S_IFDIR {
        let mode = Mode::from_bits_truncate(r.file_mode & 0o7777);
        return match nix::sys::stat::mkdirat(dir.as_fd(), name, mode) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
            Err(e) => Err(io_err("mkdir", &r.path, e)),
        };
    }
    if kind != 0 && kind != libc::S_IFREG {
        return Err((
            code::UNIMPLEMENTED,
            format!("{}: only regular files and directories are copied", r.path),
        ));
    }
    let tmp = format!(".{name}.mkrootfs-copy");
    // O_NONBLOCK: a FIFO planted under that name must not block the agent
    // (the type is checked below).
    let mut flags =
        libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    if r.offset == 0 {
        flags |= libc::O_TRUNC;
    }
    let fd = nix::fcntl::openat(
        dir.as_fd(),
        tmp.as_str(),
        nix::fcntl::OFlag::from_bits_truncate(flags),
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| io_err("create", &r.path, e))?;
    let file = std::fs::File::from(fd);
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err((
            code::PERMISSION_DENIED,
            format!("{}: the temporary file {tmp} is not a regular file", r.path),
        ));
    }
    file.write_all_at(&r.data, r.offset as u64)
        .map_err(|e| io_err("write", &r.path, e))?;
    let size = file
        .metadata()
        .map_err(|e| io_err("stat", &r.path, e))?
        .len();
    if size != r.file_size as u64 {
        return Ok(());
    }
    file.set_permissions(std::fs::Permissions::from_mode(r.file_mode & 0o7777))
        .map_err(|e| io_err("chmod", &r.path, e))?;
    let id = |v: i32| u32::try_from(v).ok();
    std::os::unix::fs::fchown(&file, id(r.uid), id(r.gid))
        .map_err(|e| io_err("chown", &r.path, e))?;
    // rename(2) replaces whatever the name is (a symbolic link included)
    // and never follows it.
    nix::fcntl::renameat(dir.as_fd(), tmp.as_str(), dir.as_fd(), name)
        .map_err(|e| io_err("rename", &r.path, e))?;
    Ok(())
}

/// One ReadFile request.
pub fn read(dirs: &[String], r: &ReadFileRequest) -> Result<ReadFileResponse, Refusal> {
    let (root, parts) = split(dirs, &r.path)?;
    let Some(name) = parts.last().copied() else {
        return Err((code::INVALID_ARGUMENT, format!("{}: no file name", r.path)));
    };
    let dir = parent_dir(root, &parts, &r.path, None)?;
    // O_NONBLOCK: opening a FIFO must not block the agent (refused below).
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let fd = beneath(&dir, name, flags, &r.path)?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| io_err("stat", &r.path, e))?;
    if !meta.is_file() {
        return Err((
            code::INVALID_ARGUMENT,
            format!("{}: not a regular file", r.path),
        ));
    }
    let size = meta.len();
    let want = r.len.clamp(1, MAX_READ) as usize;
    let mut data = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut data[got..], r.offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read", &r.path, e)),
        }
    }
    data.truncate(got);
    Ok(ReadFileResponse {
        eof: r.offset + got as u64 >= size,
        data,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, data: &[u8], offset: i64, size: i64) -> CopyFileRequest {
        CopyFileRequest {
            path: path.into(),
            file_size: size,
            file_mode: 0o100640,
            dir_mode: 0o750,
            uid: -1,
            gid: -1,
            offset,
            data: data.to_vec(),
        }
    }

    #[test]
    fn copy_in_pieces_then_read_back() {
        let t = tempfile::tempdir().unwrap();
        let allowed = t.path().join("in");
        std::fs::create_dir(&allowed).unwrap();
        let dirs = vec![allowed.display().to_string()];
        let path = format!("{}/sub/dir/f", dirs[0]);
        copy(&dirs, &req(&path, b"hello ", 0, 11)).unwrap();
        // Not there until complete.
        assert!(!std::path::Path::new(&path).exists());
        copy(&dirs, &req(&path, b"world", 6, 11)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        let r = read(
            &dirs,
            &ReadFileRequest {
                path: path.clone(),
                offset: 6,
                len: 100,
            },
        )
        .unwrap();
        assert_eq!(
            (r.data.as_slice(), r.size, r.eof),
            (&b"world"[..], 11, true)
        );
    }

    #[test]
    fn escapes_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let allowed = t.path().join("in");
        std::fs::create_dir(&allowed).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", allowed.join("pw")).unwrap();
        let d = allowed.display().to_string();
        let dirs = vec![d.clone()];
        let code_of = |p: &str| copy(&dirs, &req(p, b"x", 0, 1)).unwrap_err();
        assert_eq!(code_of("/etc/x").0, code::PERMISSION_DENIED);
        assert_eq!(code_of(&format!("{d}/../x")).0, code::INVALID_ARGUMENT);
        assert_eq!(code_of(&format!("{d}x/y")).0, code::PERMISSION_DENIED);
        let (c, m) = code_of(&format!("{d}/etc/x"));
        assert_eq!(c, code::PERMISSION_DENIED, "{m}");
        assert!(m.contains("symbolic link"), "{m}");
        let r = read(
            &dirs,
            &ReadFileRequest {
                path: format!("{d}/pw"),
                offset: 0,
                len: 10,
            },
        )
        .unwrap_err();
        assert_eq!(r.0, code::PERMISSION_DENIED, "{}", r.1);
        assert_eq!(
            copy(&[], &req("/run/x", b"x", 0, 1)).unwrap_err().0,
            code::PERMISSION_DENIED
        );
        // A FIFO neither blocks a read nor a copy's temporary file.
        nix::unistd::mkfifo(&allowed.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        nix::unistd::mkfifo(
            &allowed.join(".g.mkrootfs-copy"),
            Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let r = read(
            &dirs,
            &ReadFileRequest {
                path: format!("{d}/fifo"),
                offset: 0,
                len: 10,
            },
        )
        .unwrap_err();
        assert_eq!(r.0, code::INVALID_ARGUMENT, "{}", r.1);
        assert!(copy(&dirs, &req(&format!("{d}/g"), b"x", 0, 1)).is_err());
        // Data beyond the announced size is refused.
        let e = copy(&dirs, &req(&format!("{d}/f"), b"xy", 0, 1)).unwrap_err();
        assert_eq!(e.0, code::INVALID_ARGUMENT);
    }
}
