//! One file per subcommand; each parses its arguments and calls the library.
//! Results go to standard output through [`Out`], the one place that
//! writes there.

pub mod build;
pub mod config_drive;
pub mod cp;
pub mod deps;
pub mod exec;
pub mod extract;
pub mod kernel;
pub mod ls;
pub mod progress;
pub mod resync;
pub mod run;
pub mod vsock;
pub mod wait_ready;

use anyhow::Context;
use mkrootfs::build::AutoKernel;
use mkrootfs::cpio;
use std::fmt::Display;
use std::io::{self, BufWriter, StdoutLock, Write};
use std::path::Path;

/// Standard output of a subcommand: buffered, and every write checked.
/// When the reader goes away (`mkrootfs ls IMAGE | head -1`) the write
/// fails with [`ReaderGone`], which `main` turns into a quiet exit 0, as
/// ripgrep does; any other write error is an error naming stdout.
/// (`println!` would panic instead: Rust ignores SIGPIPE, so a closed pipe
/// is an `EPIPE` error.)
pub struct Out(BufWriter<StdoutLock<'static>>);

/// A usage error found after clap's parsing (exit status 2, as clap's own).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Standard output was closed by its reader: not a failure.
#[derive(Debug, thiserror::Error)]
#[error("standard output closed by its reader")]
pub struct ReaderGone;

impl Out {
    pub fn new() -> Out {
        Out(BufWriter::new(io::stdout().lock()))
    }

    /// Writes `text` as is.
    pub fn text(&mut self, text: &str) -> anyhow::Result<()> {
        self.0.write_all(text.as_bytes()).map_err(stdout_error)
    }

    /// Writes `value` and a newline.
    pub fn line(&mut self, value: impl Display) -> anyhow::Result<()> {
        writeln!(self.0, "{value}").map_err(stdout_error)
    }

    /// Copies everything `from` reads.
    pub fn copy(&mut self, from: &mut impl io::Read) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow::Error::new(e).context("read the image")),
            };
            self.0.write_all(&buf[..n]).map_err(stdout_error)?;
        }
    }

    /// Flushes what is buffered; call it before returning success, since
    /// a flush on drop cannot report its error.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.0.flush().map_err(stdout_error)
    }
}

fn stdout_error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        ReaderGone.into()
    } else {
        anyhow::Error::new(e).context("write to standard output")
    }
}
pub mod vm_config;

/// Reads and checks a whole image as the kernel's unpacker would walk it:
/// what `ls` and `extract` read, and what `run` and `vm-config` check
/// before handing the image to a monitor, so that a damaged image is
/// refused with the same error everywhere.
pub fn read_image(path: &Path) -> anyhow::Result<Vec<cpio::Segment>> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    cpio::read_archive(&bytes, &cpio::Limits::default())
        .with_context(|| format!("read image {}", path.display()))
}

/// Checks that a config drive (`run --config`, `vm-config --config`) can
/// be read, so that a typo is an error here rather than a monitor's.
pub fn check_config_drive(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)
        .map(drop)
        .with_context(|| format!("--config: open the config drive {}", path.display()))
}

/// What `modules.kernel = "auto"` stands for when `kernel` boots the image:
/// its own module tree, or (when it has none) an error at build time naming
/// it, never the modules of another kernel.
pub fn auto_kernel(kernel: &mkrootfs_qemu::Kernel) -> AutoKernel {
    AutoKernel {
        vmlinuz: kernel.vmlinuz.clone(),
        version: kernel.version.clone(),
        modules: kernel.modules.clone(),
    }
}

/// Whether the profile's module tree is `"auto"`, for a command that must
/// then resolve the kernel (and only then: resolving may fetch one).
pub fn wants_auto_kernel(profile: &mkrootfs::profile::Profile) -> bool {
    profile.modules.kernel.as_deref() == Some("auto")
}
