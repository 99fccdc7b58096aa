//! Finding the root file system and leaving the initramfs (placeholder by
//! the init-core engineer; the root engineer owns this module and replaces it).

use mkrootfs_config::{RootConfig, RootMode};
use std::fmt;

/// Where the init runs after [`enter`].
#[allow(dead_code)] // placeholder until the root engineer's version lands
pub enum Entered {
    /// Still on the initramfs.
    Initramfs,
    /// Switched into the new root (`/dev`, `/proc`, `/sys`, `/run` moved along).
    Switched,
    /// Exec this program as PID 1 now, with these arguments.
    Exec(std::path::PathBuf, Vec<String>),
}

/// A failed step; Display names the step and the path.
#[derive(Debug)]
pub enum RootError {
    Unsupported(RootMode),
}

impl fmt::Display for RootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootError::Unsupported(m) => write!(f, "root mode {m:?} is not implemented yet"),
        }
    }
}

impl std::error::Error for RootError {}

/// Mounts and enters the configured root.
pub fn enter(root: &RootConfig, _loaded: &crate::modules::Loaded) -> Result<Entered, RootError> {
    match root.mode {
        RootMode::Initramfs => Ok(Entered::Initramfs),
        m => Err(RootError::Unsupported(m)),
    }
}
