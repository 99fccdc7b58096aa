//! OCI inputs: an image layout (`oci-layout`, `index.json`, `blobs/`) or a
//! runtime bundle (`config.json` + its root), read and verified at build
//! time and turned into a container root inside the image plus the
//! container settings a profile could have written. The init never sees
//! OCI JSON.
//!
//! - [`blob`]: content-addressed blobs, checked against digest and size.
//! - [`layout`]: `index.json` → the linux/amd64 manifest for a ref.
//! - [`layer`]: applying tar layers with whiteouts into a staged root.
//! - [`image`]: the image config's defaults (Entrypoint, Cmd, Env, …).
//! - [`bundle`]: a runtime bundle's `config.json`.

pub mod blob;
pub mod bundle;
pub mod image;
pub mod json;
pub mod layer;
pub mod layout;
pub mod prepare;
pub mod settings;

use std::path::PathBuf;

pub use image::{load_image, Image, ImageDefaults};
pub use layer::Rootfs;

/// An OCI input error: always names the file (blob, layout file or
/// `config.json`, with line and column for JSON) and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("blob {digest} ({path}): {message}")]
    Blob {
        digest: String,
        path: PathBuf,
        message: String,
    },
    #[error("layer {digest} ({path}): {message}")]
    Layer {
        digest: String,
        path: PathBuf,
        message: String,
    },
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
    #[error(
        "container root path {path} would land at {landed} through a symlink already in the image"
    )]
    Redirected { path: String, landed: String },
    #[error("write {path}")]
    Scratch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An error of the input a profile key names, at that key.
    #[error(transparent)]
    At(Box<At>),
}

/// An [`OciError`] at the profile's `file:line:column` of the key that
/// named the input (`container.image.layout`, `container.bundle`).
#[derive(Debug)]
pub struct At {
    pub at: String,
    pub error: OciError,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.error)
    }
}

impl std::error::Error for At {
    // The error's own text is in the message; its cause comes next.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}
