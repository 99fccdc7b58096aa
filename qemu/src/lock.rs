//! Advisory whole-file locks (`flock(2)`) shared between threads and processes.
//!
//! flock locks belong to the open file description, so two threads of one process
//! that each open the lock file exclude each other exactly like two processes do,
//! and the kernel drops the lock when the holder dies: a killed test run never
//! leaves a slot or the kernel cache locked.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::QemuError;

/// A held lock; released when dropped (the file is closed).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the exclusive lock on `path` (created if missing) is held.
    pub(crate) fn exclusive(path: &Path) -> Result<FileLock, QemuError> {
        match Self::lock(path, true)? {
            Some(lock) => Ok(lock),
            // A blocking flock never reports EWOULDBLOCK.
            None => Err(QemuError::Lock(
                path.to_path_buf(),
                io::Error::from(io::ErrorKind::WouldBlock),
            )),
        }
    }

    /// Takes the exclusive lock on `path` if nobody holds it; `None` if somebody does.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<FileLock>, QemuError> {
        Self::lock(path, false)
    }

    fn lock(path: &Path, blocking: bool) -> Result<Option<FileLock>, QemuError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| QemuError::OpenLock(path.to_path_buf(), e))?;
        let op = if blocking {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        loop {
            // SAFETY: flock only takes a file descriptor, which `file` keeps open for
            // the duration of the call; it touches no memory of ours.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(Some(FileLock { _file: file }));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock if !blocking => return Ok(None),
                _ => return Err(QemuError::Lock(path.to_path_buf(), err)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.lock");
        let first = FileLock::try_exclusive(&path).unwrap().unwrap();
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(first);
        assert!(FileLock::try_exclusive(&path).unwrap().is_some());
    }

    #[test]
    fn lock_in_missing_directory_names_the_path() {
        let err = FileLock::exclusive(Path::new("/nonexistent-mkrootfs/x.lock")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot open lock file /nonexistent-mkrootfs/x.lock"
        );
    }
}
