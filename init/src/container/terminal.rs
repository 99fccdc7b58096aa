//! A container's standard streams. `terminal = true`: a pty of its own
//! devpts as stdio and controlling terminal, relayed to and from the
//! console by the init. Otherwise `/dev/null` and a pipe the init relays
//! to the console ([`relay_output`]): no container holds the console.
//!
//! The child opens `/dev/ptmx` after the pivot (so the pty belongs to the
//! container's devpts instance: `tty` prints `/dev/pts/0`), sends the
//! master to the init over a socket (SCM_RIGHTS, as crun's console socket),
//! and makes the slave its controlling terminal. The init forks a relay
//! process that copies console input to the master and the master's output
//! to the console until the container closes its side.

use super::StepError;
use crate::sys::ns;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

fn err<'a>(step: &'static str, path: &'a str) -> impl FnOnce(std::io::Error) -> StepError + 'a {
    move |e| StepError::new(step, path, e.raw_os_error().unwrap_or(libc::EIO))
}

/// Child side, after setsid: opens a pty, hands the master to the init,
/// and puts the slave on 0, 1, 2 as controlling terminal.
pub fn attach(sock: &OwnedFd) -> Result<(), StepError> {
    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/ptmx")
        .map_err(err("open", "/dev/ptmx"))?
        .into();
    let n = ns::pty_unlock(master.as_fd()).map_err(err("unlock pty", "/dev/ptmx"))?;
    let slave = format!("/dev/pts/{n}");
    let c =
        CString::new(slave.clone()).map_err(|_| StepError::new("open", &slave, libc::EINVAL))?;
    crate::sys::child::controlling_tty(&c).map_err(err("controlling terminal", &slave))?;
    ns::send_fd(sock.as_fd(), master.as_fd()).map_err(err("send pty master", &slave))?;
    Ok(())
}

/// Init side: a relay process between the console (fds 0 and 1) and the
/// master, ending when the container's side is closed.
pub fn relay(master: OwnedFd) {
    match ns::fork() {
        Ok(ns::Cloned::Child) => {
            // The init's signal mask stays: the shutdown's SIGTERM does not
            // cut the relay short while the container's last output is
            // still in the pty (it ends on its own at EIO; SIGKILL remains).
            copy_loop(&master);
            ns::exit_child(0)
        }
        Ok(ns::Cloned::Parent(_)) => {}
        Err(e) => crate::warn!("terminal relay: fork: {e}"),
    }
}

/// Init side of a container without a terminal: a relay process that
/// copies the container's output pipe to the console until every writer
/// has closed it.
pub fn relay_output(out: OwnedFd) {
    match ns::fork() {
        Ok(ns::Cloned::Child) => {
            let mut buf = [0u8; 4096];
            loop {
                match nix::unistd::read(out.as_fd(), &mut buf) {
                    Ok(0) => ns::exit_child(0),
                    Ok(n) => write_all(std::io::stdout().as_fd(), &buf[..n]),
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => ns::exit_child(0),
                }
            }
        }
        Ok(ns::Cloned::Parent(_)) => {}
        Err(e) => crate::warn!("output relay: fork: {e}"),
    }
}

fn copy_loop(master: &OwnedFd) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdin = std::io::stdin();
    let mut input = true;
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if input {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let m = fds[0].revents().unwrap_or(PollFlags::empty());
        let i = fds
            .get(1)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        if m.contains(PollFlags::POLLIN) {
            match nix::unistd::read(master.as_fd(), &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => write_all(std::io::stdout().as_fd(), &buf[..n]),
            }
        } else if m.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            return;
        }
        if i.contains(PollFlags::POLLIN) {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => input = false,
                Ok(n) => write_all(master.as_fd(), &buf[..n]),
            }
        } else if i.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            // No console input (or none any more): keep relaying output.
            input = false;
        }
    }
}

fn write_all(fd: std::os::fd::BorrowedFd<'_>, mut b: &[u8]) {
    while !b.is_empty() {
        match nix::unistd::write(fd, b) {
            Ok(0) | Err(_) => return,
            Ok(n) => b = &b[n..],
        }
    }
}
