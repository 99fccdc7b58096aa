//! Init's own messages: to the console (stderr) and to `/dev/kmsg`, each
//! prefixed `mkrootfs-init: [<ms since boot>]` so they are easy to grep.
//! (Placeholder written by the lead; the init-core engineer owns this file.)

use std::fmt;

/// Writes one message line.
pub fn emit(level: &str, args: fmt::Arguments<'_>) {
    eprintln!("mkrootfs-init: {level}{args}");
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
    ($($t:tt)*) => { $crate::log::emit("debug: ", format_args!($($t)*)) };
}
