//! The machine-readable build report (`mkrootfs build --report json`):
//! what was written, and where every entry of the image came from.

use super::BuildReport;
use crate::tree::{Data, Node, Tree};
use serde::Serialize;
use std::path::PathBuf;

/// One entry of the image and its source.
#[derive(Clone, Debug, Serialize)]
pub struct Source {
    /// The image path.
    pub path: String,
    pub kind: &'static str,
    /// Why it is in the image (`binary busybox`, `libc.so.6 needed by
    /// /usr/bin/busybox`, `kernel modules`, `container root of service app`…).
    pub origin: String,
    /// The host file it was copied from, for regular files read from disk.
    pub host: Option<PathBuf>,
    /// Bytes, for regular files.
    pub size: Option<u64>,
    /// The OCI layer (manifest digest) an entry of a container root came
    /// from: the last layer that wrote the path.
    pub layer: Option<String>,
}

/// Every entry of `tree`, sorted by path.
pub fn sources(tree: &Tree) -> Vec<Source> {
    tree.origins()
        .map(|(path, origin)| {
            let node = tree.get(path);
            let kind = match node {
                Some(Node::Dir) => "directory",
                Some(Node::File(_)) => "file",
                Some(Node::Symlink(_)) => "symlink",
                Some(Node::HardLink(_)) => "hardlink",
                Some(Node::Char(..)) => "char",
                Some(Node::Block(..)) => "block",
                Some(Node::Fifo) => "fifo",
                None => "unknown",
            };
            let data = match node {
                Some(Node::File(d)) => Some(d),
                _ => None,
            };
            Source {
                path: path.to_string(),
                kind,
                origin: origin.to_string(),
                host: match data {
                    Some(Data::Host { path, .. }) => Some(path.clone()),
                    _ => None,
                },
                size: data.map(Data::len),
                layer: tree.layer(path).map(str::to_string),
            }
        })
        .collect()
}

impl BuildReport {
    /// The report as JSON: format, sizes, entries, the disk image's
    /// details, warnings and every source.
    pub fn to_json(&self) -> String {
        let format = self
            .disk
            .as_ref()
            .map_or("cpio".to_string(), |d| d.format.to_string());
        let v = serde_json::json!({
            "path": self.path,
            "format": format,
            "entries": self.entries,
            "uncompressed_bytes": self.uncompressed,
            "image_bytes": self.compressed,
            "compression": self.compression,
            "level": self.level,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "disk": self.disk,
            "notes": self.notes,
            "sources": self.sources,
        });
        serde_json::to_string_pretty(&v).expect("a report serializes")
    }
}
