//! What the `mkrootfs` command adds to the builder library: the QEMU boots
//! of the guests it describes ([`qemu`]). The subcommands themselves are in
//! the binary (`src/main.rs`, `src/commands/`).
#![deny(missing_docs)]

pub mod qemu;
