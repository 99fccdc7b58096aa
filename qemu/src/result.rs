//! The host side of the result protocol (docs/ARCHITECTURE.md "The result protocol"):
//! the guest's `RESULT` line, `FATAL` lines, and the exit code of a boot.

use std::time::Duration;

pub use mkrootfs_config::result::{ContainerCounters, ResultLine as GuestResult};

const FATAL_MARKER: &str = "mkrootfs-init: FATAL ";

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The serial console, with "\r\n" turned into "\n".
    pub console: String,
    /// QEMU's own messages (bad arguments, missing files, warnings).
    pub stderr: String,
    /// The last valid RESULT line on the console.
    pub result: Option<GuestResult>,
    /// QEMU's exit code; `None` when we killed it.
    pub qemu_status: Option<i32>,
    /// QEMU was killed because the timeout passed without a RESULT line.
    pub timed_out: bool,
    /// From slot acquisition to QEMU's end.
    pub elapsed: Duration,
}

impl Outcome {
    /// The code `mkrootfs run` exits with: the RESULT code; else the code the guest
    /// wrote to isa-debug-exit (QEMU status `(code << 1) | 1`); else 1 (timeout, kernel
    /// panic with `panic=-1`, or a guest that powered off without reporting).
    pub fn exit_code(&self) -> i32 {
        if let Some(result) = &self.result {
            return result.code;
        }
        if self.timed_out {
            return 1;
        }
        self.debug_exit_code().unwrap_or(1)
    }

    /// The code written to isa-debug-exit, read back from QEMU's status (odd statuses
    /// only: QEMU's own exits are 0 for a power-off and 1 for errors; an error before the
    /// guest ran is turned into [`crate::QemuError::QemuFailed`] by [`crate::run`]).
    /// Compare with `result` to cross-check the two channels.
    pub fn debug_exit_code(&self) -> Option<i32> {
        self.qemu_status.filter(|s| s % 2 == 1).map(|s| (s - 1) / 2)
    }

    /// The first `mkrootfs-init: FATAL ...` line, from the marker on.
    pub fn fatal_line(&self) -> Option<&str> {
        self.console
            .lines()
            .find_map(|line| line.find(FATAL_MARKER).map(|at| line[at..].trim_end()))
    }
}

/// The last well-formed RESULT line in `console` ([`GuestResult::last_in`]).
pub fn parse_result_line(console: &str) -> Option<GuestResult> {
    GuestResult::last_in(console)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(console: &str, qemu_status: Option<i32>, timed_out: bool) -> Outcome {
        Outcome {
            console: console.to_string(),
            stderr: String::new(),
            result: parse_result_line(console),
            qemu_status,
            timed_out,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn exit_code_prefers_the_result_line() {
        let o = outcome(
            "mkrootfs-init: RESULT status=200 exited=200\n",
            Some(401),
            false,
        );
        assert_eq!(o.exit_code(), 200);
        assert_eq!(o.debug_exit_code(), Some(200));
        // The line carries codes the debug-exit device cannot distinguish from QEMU's own.
        let o = outcome("mkrootfs-init: RESULT status=3 exited=3\n", None, false);
        assert_eq!(o.exit_code(), 3);
    }

    #[test]
    fn exit_code_from_debug_exit_without_result() {
        assert_eq!(outcome("booted\n", Some(7), false).exit_code(), 3);
        assert_eq!(outcome("booted\n", Some(1), false).exit_code(), 0);
    }

    #[test]
    fn exit_code_is_1_on_timeout_panic_or_silent_poweroff() {
        assert_eq!(outcome("hang", None, true).exit_code(), 1);
        // panic=-1 + -no-reboot: QEMU exits 0 without a result.
        assert_eq!(
            outcome("Kernel panic - not syncing", Some(0), false).exit_code(),
            1
        );
        assert_eq!(outcome("", Some(2), false).exit_code(), 1);
        assert_eq!(outcome("", None, false).exit_code(), 1);
    }

    #[test]
    fn fatal_line_from_the_marker() {
        let o = outcome(
            "x\n[ 1.2] mkrootfs-init: FATAL mount: /proc: EPERM\r\nmkrootfs-init: FATAL later\n",
            Some(3),
            false,
        );
        assert_eq!(
            o.fatal_line(),
            Some("mkrootfs-init: FATAL mount: /proc: EPERM")
        );
        assert_eq!(outcome("fine\n", Some(1), false).fatal_line(), None);
    }
}
