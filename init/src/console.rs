//! The console: init's stdin/stdout/stderr, and the real terminal device
//! behind it for services that need a controlling terminal.
//!
//! `/dev/console` itself never becomes a controlling terminal (the kernel
//! refuses TIOCSCTTY on it for job control purposes), so a service with
//! `tty = true` opens the device that `/sys/class/tty/console/active` names.

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::PathBuf;

/// Points fds 0, 1 and 2 at `/dev/console`. The kernel already does this
/// when the initramfs has `/dev/console`; doing it again after devtmpfs is
/// mounted covers images without the node, and a switched root.
pub fn attach() -> Result<(), String> {
    let fd = open(
        "/dev/console",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open /dev/console: {e}"))?;
    // dup2 clears O_CLOEXEC on the copy, so services inherit it.
    let dup = |target: i32, r: nix::Result<()>| {
        r.map_err(|e| format!("dup2 /dev/console to fd {target}: {e}"))
    };
    dup(0, dup2_stdin(&fd))?;
    dup(1, dup2_stdout(&fd))?;
    dup(2, dup2_stderr(&fd))?;
    // With 0-2 closed at boot, open() returned one of them: keep it open.
    if fd.as_raw_fd() <= 2 {
        let _ = fd.into_raw_fd();
    }
    Ok(())
}

/// The device behind `/dev/console`: the last name in the `active` file is
/// the one `/dev/console` writes to (`console=tty0 console=ttyS0` gives
/// `tty0 ttyS0`, and ttyS0 is the primary console).
pub fn parse_active(active: &str) -> Option<String> {
    active.split_whitespace().last().map(str::to_string)
}

/// `/dev/<active console>`, if sysfs says which one it is.
pub fn active_device() -> Option<PathBuf> {
    let active = std::fs::read_to_string("/sys/class/tty/console/active").ok()?;
    parse_active(&active).map(|name| PathBuf::from("/dev").join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_active_console_is_primary() {
        assert_eq!(parse_active("tty0 ttyS0\n").as_deref(), Some("ttyS0"));
        assert_eq!(parse_active("hvc0\n").as_deref(), Some("hvc0"));
        assert_eq!(parse_active("\n"), None);
    }
}
