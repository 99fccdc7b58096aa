//! Progress of a build, for a display the caller installs (the CLI shows
//! one on a terminal). The library only reports: the current step, and
//! files and bytes written; with no reporter installed this costs a check.

use std::fmt;
use std::sync::OnceLock;

/// A stage of a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Binaries and their ELF closure, profile entries, modules, OCI layers.
    Assemble,
    /// The cpio archive, compressed.
    Archive,
    /// The tree staged for a file-system writer.
    Stage,
    /// The file-system writer running (`mkfs.erofs`, `mksquashfs`, `mkfs.ext4`).
    FsWriter(&'static str),
    /// The dm-verity hash tree.
    Verity,
    /// The split initramfs.
    Initramfs,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Assemble => f.write_str("layers, closure, modules"),
            Step::Archive => f.write_str("archive and compression"),
            Step::Stage => f.write_str("staging the tree"),
            Step::FsWriter(tool) => write!(f, "file system writer ({tool})"),
            Step::Verity => f.write_str("verity hash tree"),
            Step::Initramfs => f.write_str("initramfs"),
        }
    }
}

/// What a display implements.
pub trait Reporter: Send + Sync {
    /// A new step begins.
    fn step(&self, step: Step);
    /// `files` more entries and `bytes` more bytes of file data written.
    fn advance(&self, files: u64, bytes: u64);
}

static REPORTER: OnceLock<Box<dyn Reporter>> = OnceLock::new();

/// Installs the process's reporter (once; later calls are ignored).
pub fn set_reporter(r: Box<dyn Reporter>) {
    let _ = REPORTER.set(r);
}

pub(crate) fn step(s: Step) {
    if let Some(r) = REPORTER.get() {
        r.step(s);
    }
}

pub(crate) fn advance(files: u64, bytes: u64) {
    if let Some(r) = REPORTER.get() {
        r.advance(files, bytes);
    }
}
