//! The launcher services and containers share: a raw clone3 (into a
//! cgroup with `CLONE_INTO_CGROUP`, with the chosen `CLONE_NEW*` flags; a
//! plain service passes none), a sync pipe and an error pipe.
//!
//! The parent runs its setup for the child (a container's id maps, rlimits,
//! oom_score_adj) while the child waits on the sync pipe, then releases it.
//! The child runs its steps and execs; the error pipe is close-on-exec, so
//! end of file means the exec happened, and a record on it (step, path,
//! errno) means the child failed at that step and exits 127; the launcher
//! then reaps it and returns the error.

use crate::sys::ns::{self, Cloned};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::fmt;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// A failed step: what was done, on which path, and the errno. Crosses the
/// error pipe from the child to the init.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    pub step: String,
    pub path: String,
    pub errno: i32,
}

impl StepError {
    pub fn new(step: &str, path: &str, errno: i32) -> StepError {
        StepError {
            step: step.into(),
            path: path.into(),
            errno,
        }
    }

    /// The record written on the error pipe: errno (4 bytes, native
    /// endian), the step, a NUL, the path.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.errno.to_ne_bytes().to_vec();
        v.extend_from_slice(self.step.as_bytes());
        v.push(0);
        v.extend_from_slice(self.path.as_bytes());
        v
    }

    /// The inverse of [`StepError::encode`]; a short record is a protocol
    /// error reported as such.
    pub fn decode(b: &[u8]) -> StepError {
        let Some((errno, rest)) = b.split_first_chunk::<4>() else {
            return StepError::new("read error pipe", "", libc::EPROTO);
        };
        let text = String::from_utf8_lossy(rest);
        let (step, path) = text.split_once('\0').unwrap_or((&text, ""));
        StepError::new(step, path, i32::from_ne_bytes(*errno))
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = std::io::Error::from_raw_os_error(self.errno);
        if self.path.is_empty() {
            write!(f, "{}: {e}", self.step)
        } else {
            write!(f, "{} {}: {e}", self.step, self.path)
        }
    }
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), StepError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| StepError::new("pipe", "", e as i32))
}

/// Clones with `flags` (into `cgroup` when given), runs `parent(pid)`,
/// releases the child, which runs `child(error pipe)` and returns only the
/// error of a failed step; returns the pid once the child has exec'd.
///
/// The child is made non-dumpable at once (no process of a container can
/// ptrace it or open its `/proc/<pid>` files until its exec), and every
/// descriptor it inherited is closed except 0, 1, 2, its two pipes and
/// `keep`: nothing of the VM (the cgroup directory, the init's files)
/// stays reachable through `/proc/self/fd` while it follows paths.
pub fn launch(
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
    keep: &[RawFd],
    parent: &mut dyn FnMut(Pid) -> Result<(), StepError>,
    child: &mut dyn FnMut(&OwnedFd) -> StepError,
) -> Result<Pid, StepError> {
    let (sync_r, sync_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let cloned = ns::clone3(flags, cgroup)
        .map_err(|e| StepError::new("clone3", "", e.raw_os_error().unwrap_or(libc::EINVAL)))?;
    let pid = match cloned {
        Cloned::Child => {
            let mut kept = vec![sync_r.as_raw_fd(), err_w.as_raw_fd()];
            kept.extend_from_slice(keep);
            let guarded = ns::not_dumpable()
                .map_err(|e| StepError::new("set not dumpable", "", errno(&e)))
                .and_then(|()| {
                    ns::close_all_except(&kept)
                        .map_err(|e| StepError::new("close descriptors", "", errno(&e)))
                });
            // The parent's ends went with the close: forget them unclosed.
            std::mem::forget(sync_w);
            std::mem::forget(err_r);
            if let Err(e) = guarded {
                let _ = nix::unistd::write(&err_w, &e.encode());
                ns::exit_child(127);
            }
            let mut byte = [0u8; 1];
            let mut s = std::fs::File::from(sync_r);
            if !matches!(s.read(&mut byte), Ok(1)) {
                // The parent gave up on us (and kills us): nothing to say.
                ns::exit_child(127);
            }
            drop(s);
            let e = child(&err_w);
            let _ = nix::unistd::write(&err_w, &e.encode());
            ns::exit_child(127)
        }
        Cloned::Parent(pid) => Pid::from_raw(pid),
    };
    drop(sync_r);
    drop(err_w);
    let fail = |e: StepError| {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        Err(e)
    };
    if let Err(e) = parent(pid) {
        return fail(e);
    }
    let mut w = std::fs::File::from(sync_w);
    if let Err(e) = w.write_all(&[0]) {
        return fail(StepError::new(
            "release child",
            "",
            e.raw_os_error().unwrap_or(libc::EPIPE),
        ));
    }
    drop(w);
    let mut report = Vec::new();
    let mut r = std::fs::File::from(err_r);
    if let Err(e) = r.read_to_end(&mut report) {
        return fail(StepError::new(
            "read error pipe",
            "",
            e.raw_os_error().unwrap_or(libc::EIO),
        ));
    }
    if report.is_empty() {
        return Ok(pid);
    }
    // It exits 127 after the report: reap it here, it never ran.
    let _ = waitpid(pid, None);
    Err(StepError::decode(&report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_errors_cross_the_pipe() {
        let e = StepError::new("mount", "/proc", libc::EPERM);
        assert_eq!(StepError::decode(&e.encode()), e);
        assert_eq!(
            e.to_string(),
            "mount /proc: Operation not permitted (os error 1)"
        );
        assert_eq!(
            StepError::new("capset", "", libc::EPERM).to_string(),
            "capset: Operation not permitted (os error 1)"
        );
        assert_eq!(StepError::decode(&[1, 2]).step, "read error pipe");
    }

    /// What the child sees of its descriptors and its dumpable flag, sent
    /// back as the "error" of a step (the only channel it has).
    fn child_view(from: i32) -> StepError {
        let dumpable = nix::sys::prctl::get_dumpable().map_or(-1, i32::from);
        let open: Vec<String> = (from..64)
            .filter(|&fd| ns::is_open(fd))
            .map(|fd| fd.to_string())
            .collect();
        StepError::new(
            "report",
            &format!("dumpable={dumpable} open={}", open.join(",")),
            0,
        )
    }

    #[test]
    fn child_holds_no_descriptor_it_was_not_given_and_is_not_dumpable() {
        // A directory held without close-on-exec (the shape of the cgroup
        // directory in CVE-2024-21626): closed in the child, not only marked.
        let dir: OwnedFd = std::fs::File::open("/").unwrap().into();
        nix::fcntl::fcntl(
            &dir,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
        let given: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let mut err_fd = -1;
        let e = launch(0, None, &[given.as_raw_fd()], &mut |_| Ok(()), &mut |err| {
            err_fd = err.as_raw_fd();
            child_view(3)
        })
        .unwrap_err();
        let (path, rest) = e.path.split_once(" open=").unwrap();
        assert_eq!(path, "dumpable=0");
        let open: Vec<i32> = rest.split(',').map(|n| n.parse().unwrap()).collect();
        assert!(!open.contains(&dir.as_raw_fd()), "{e:?} {dir:?}");
        let mut want = vec![given.as_raw_fd()];
        // The error pipe's write end is the one other descriptor (its number
        // is only known in the child: it is the other entry).
        assert_eq!(open.len(), 2, "{e:?}");
        want.extend(open.iter().filter(|&&fd| fd != given.as_raw_fd()));
        want.sort_unstable();
        assert_eq!(open, want);
        // The parent itself is untouched.
        assert!(ns::is_open(dir.as_raw_fd()));
    }

    #[test]
    fn a_service_child_keeps_only_stdio() {
        let e = launch(0, None, &[], &mut |_| Ok(()), &mut |err| {
            // Everything from 3 on but the error pipe is gone.
            let view = child_view(3);
            let pipe = err.as_raw_fd().to_string();
            StepError::new("report", &view.path.replace(&pipe, "ERR"), 0)
        })
        .unwrap_err();
        assert_eq!(e.path, "dumpable=0 open=ERR");
    }
}
