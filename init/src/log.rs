//! Init's own messages: to the console (stderr, which [`crate::console`]
//! points at `/dev/console`) and to `/dev/kmsg`, each prefixed
//! `mkrootfs-init: [<s>.<ms>]` (time since boot) so they are easy to grep and
//! to time from the host.
//!
//! The kmsg copy is written at priority 7 (debug): the kernel's default
//! console log level (7) does not print it, so the console does not show every
//! line twice, while `dmesg` still has them all.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// An error and its causes, `what: cause: cause…` (one formatter for both
/// sides).
pub use mkrootfs_config::Chain;

/// Every line starts with this, so the host can grep the console.
pub const PREFIX: &str = "mkrootfs-init:";

static DEBUG: AtomicBool = AtomicBool::new(false);
static KMSG: OnceLock<File> = OnceLock::new();

/// Turns `debug!` messages on or off (`debug = true`, `mkrootfs.debug`).
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Whether `debug!` messages are printed.
pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// Opens `/dev/kmsg` for the copy of every message; called once `/dev` is
/// mounted. Without it (no devtmpfs yet, or not PID 1) messages only go to
/// stderr.
pub fn open_kmsg() {
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = KMSG.set(f);
    }
}

/// Time since boot (CLOCK_BOOTTIME, which keeps counting across suspend, and
/// starts at 0 when the kernel does, so it matches the kernel's own log).
pub fn since_boot() -> Duration {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec().max(0) as u32),
        Err(_) => Duration::ZERO,
    }
}

/// Formats one console line, without the newline:
/// `mkrootfs-init: [   12.345] <level><message>`.
pub fn format_line(at: Duration, level: &str, args: fmt::Arguments<'_>) -> String {
    let mut s = String::with_capacity(96);
    let ms = at.as_millis();
    let _ = write!(
        s,
        "{PREFIX} [{:5}.{:03}] {level}{args}",
        ms / 1000,
        ms % 1000
    );
    s
}

/// Writes one message line to the console and to kmsg.
pub fn emit(level: &str, args: fmt::Arguments<'_>) {
    let line = format_line(since_boot(), level, args);
    write_raw(&line);
}

/// Writes an already formatted line (used for the RESULT line, which has no
/// timestamp so that it is exactly the documented format).
pub fn write_raw(line: &str) {
    // One write per line, so lines from init and services interleave whole.
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = std::io::stderr().write_all(buf.as_bytes());
    if let Some(mut k) = KMSG.get() {
        let _ = k.write_all(format!("<7>{buf}").as_bytes());
    }
}

/// Informational message.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::emit("", format_args!($($t)*)) };
}

/// Something went wrong but the init carries on.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::emit("warning: ", format_args!($($t)*)) };
}

/// Only with `debug = true` or `mkrootfs.debug` on the command line.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => {
        if $crate::log::debug_enabled() {
            $crate::log::emit("debug: ", format_args!($($t)*))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_prefix_and_millisecond_timestamp() {
        let l = format_line(
            Duration::from_millis(12_345),
            "",
            format_args!("hello {}", 1),
        );
        assert_eq!(l, "mkrootfs-init: [   12.345] hello 1");
        let l = format_line(Duration::from_millis(7), "warning: ", format_args!("x"));
        assert_eq!(l, "mkrootfs-init: [    0.007] warning: x");
        let l = format_line(Duration::from_millis(123_456_789), "", format_args!("x"));
        assert_eq!(l, "mkrootfs-init: [123456.789] x");
    }
}
