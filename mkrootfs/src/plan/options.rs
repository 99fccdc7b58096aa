//! The inputs of a plan that are not in the profile: [`BuildOptions`], the
//! kernel `modules.kernel = "auto"` stands for, and the defaults that come
//! from outside the profile (the output's name, `$SOURCE_DATE_EPOCH`).

use super::PlanError;
use crate::compress::Compression;
use crate::profile::Profile;
use std::path::{Path, PathBuf};

/// Inputs that are not in the profile.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Default: `out/<profile>.cpio[.gz|.xz|.zst]`.
    pub output: Option<PathBuf>,
    /// The static init to use; default: see [`crate::build::find_init`].
    pub init_binary: Option<PathBuf>,
    /// Overrides the profile's `modules.kernel`.
    pub modules_dir: Option<PathBuf>,
    /// The kernel `modules.kernel = "auto"` stands for, resolved by the caller
    /// (the CLI: the kernel `mkrootfs run` boots, or the harness's default
    /// kernel for `mkrootfs build`). Without it, `"auto"` is an error.
    pub auto_kernel: Option<AutoKernel>,
    /// mtime of every entry; default: `$SOURCE_DATE_EPOCH`, else 0.
    pub mtime: Option<u32>,
}

/// A kernel the caller chose for `modules.kernel = "auto"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoKernel {
    /// The kernel image, for messages.
    pub vmlinuz: PathBuf,
    /// Its release (`uname -r`), the name of its `lib/modules/<version>` tree.
    pub version: String,
    /// Its module tree, `None` when it has none: then `"auto"` is an error
    /// naming the kernel and the tree looked for, never another kernel's tree.
    pub modules: Option<PathBuf>,
}

impl AutoKernel {
    /// The module tree, or the error that names the kernel and the tree missing.
    pub fn module_tree(&self) -> Result<PathBuf, PlanError> {
        self.modules.clone().ok_or_else(|| {
            let root = match self.vmlinuz.parent().and_then(Path::parent) {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            PlanError::AutoKernelNoModules {
                kernel: self.vmlinuz.clone(),
                version: self.version.clone(),
                expected: root.join("lib/modules").join(&self.version),
            }
        })
    }
}

/// `out/<name>.cpio` plus the compression's extension.
pub fn default_output(profile: &Profile, c: Compression) -> PathBuf {
    PathBuf::from("out").join(format!("{}.cpio{}", profile.name, c.extension()))
}

/// `$SOURCE_DATE_EPOCH`, else 0. A malformed value, or one past the
/// 32-bit newc mtime field, is an error, as reproducible-builds.org asks.
pub fn source_date_epoch() -> Result<u32, PlanError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(0),
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|_| PlanError::SourceDateEpoch(v)),
    }
}
