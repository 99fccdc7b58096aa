//! Users and groups from the image's `/etc/passwd` and `/etc/group`: the
//! parsers and the lookup live in `mkrootfs_config::users`, shared with the
//! builder, which resolves the same names at build time (file:line:column
//! errors) with the same rules.

pub use mkrootfs_config::users::*;
