//! The image being assembled: a map from absolute image paths to nodes.
//!
//! Paths are resolved through the tree's own symlinks as they are added, so
//! that with a merged-/usr layout (`/lib -> usr/lib`) a library added as
//! `/lib/x86_64-linux-gnu/libc.so.6` lands under `/usr/lib/...`, exactly as
//! the kernel would create it when unpacking. Host files are copied with
//! their symlink chains (every component and the final link) preserved.
//! [`Tree::plan`] produces sorted cpio entries with inode numbers assigned
//! in order, owners as given and one fixed mtime.
//!
//! Host files are not read when they are added: the tree records their path
//! and size ([`Data::Host`]), and the archive writer streams them from disk
//! in archive order, so a build holds a bounded amount of file data in
//! memory whatever the size of the tree.
//!
//! This file holds the model (nodes, insertion, resolution); host copying is
//! in `tree/host.rs`, the cpio entries in `tree/plan.rs`, the FHS skeleton in
//! `tree/skeleton.rs`, and the path walker in [`crate::walk`].

use crate::walk::Walk;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{path}: already in the image as {existing} (from {existing_origin}), now asked as a different {new} by {origin}")]
    Conflict {
        path: String,
        existing: &'static str,
        existing_origin: String,
        new: &'static str,
        origin: String,
    },
    #[error("{path}: a parent is not a directory ({parent} is a {kind})")]
    NotADirectory {
        path: String,
        parent: String,
        kind: &'static str,
    },
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop { path: String },
    #[error("read {path} (for {origin})")]
    Read {
        path: PathBuf,
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} (for {origin}) is a {kind}, which cannot be copied into an image")]
    Unsupported {
        path: PathBuf,
        origin: String,
        kind: &'static str,
    },
    #[error("{path} changed size while the image was built (was {was} bytes, now {now})")]
    Changed { path: PathBuf, was: u64, now: u64 },
    #[error("hard link {path}: target {target} is not a regular file in the image")]
    BadHardlink { path: String, target: String },
    #[error(
        "{path}: the image root is always a directory, it cannot be a {new} (asked by {origin})"
    )]
    Root {
        path: String,
        new: &'static str,
        origin: String,
    },
}

/// The contents of a regular file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// Held in memory: generated files, the init, decompressed modules.
    Bytes(Vec<u8>),
    /// A host file of `len` bytes (its size when it was added), read when
    /// the archive is written.
    Host { path: PathBuf, len: u64 },
}

impl Data {
    /// A host file, with its current size.
    pub fn host(path: &Path) -> std::io::Result<Data> {
        let len = fs::metadata(path)?.len();
        Ok(Data::Host {
            path: path.to_path_buf(),
            len,
        })
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Data::Bytes(b) => b.len() as u64,
            Data::Host { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole contents (reads a host file); an error names the path.
    pub fn read(&self) -> Result<Vec<u8>, TreeError> {
        match self {
            Data::Bytes(b) => Ok(b.clone()),
            Data::Host { path, len } => {
                let data = fs::read(path).map_err(read_err(path, "the image"))?;
                if data.len() as u64 != *len {
                    return Err(TreeError::Changed {
                        path: path.clone(),
                        was: *len,
                        now: data.len() as u64,
                    });
                }
                Ok(data)
            }
        }
    }

    /// Whether both hold the same bytes, reading host files if need be
    /// (only when one path is asked for twice from different sources).
    fn same_as(&self, other: &Data) -> bool {
        if self == other {
            return true;
        }
        if self.len() != other.len() {
            return false;
        }
        match (self.read(), other.read()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl From<Vec<u8>> for Data {
    fn from(b: Vec<u8>) -> Data {
        Data::Bytes(b)
    }
}

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Data),
    Symlink(String),
    /// Another name of the regular file at this (resolved) image path.
    HardLink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Dir => "directory",
            Node::File(_) => "file",
            Node::Symlink(_) => "symlink",
            Node::HardLink(_) => "hard link",
            Node::Char(..) => "char device",
            Node::Block(..) => "block device",
            Node::Fifo => "fifo",
        }
    }
}

/// Permissions and owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Meta {
    pub const fn root(perm: u32) -> Meta {
        Meta {
            perm,
            uid: 0,
            gid: 0,
        }
    }
}

#[derive(Clone, Debug)]
struct Item {
    node: Node,
    meta: Meta,
    /// Why the path is in the image, for messages and `--why`.
    origin: String,
}

/// The image being assembled.
#[derive(Clone, Debug)]
pub struct Tree {
    items: BTreeMap<String, Item>,
    sysroot: PathBuf,
    /// Extended attributes by resolved path (name, value), kept by disk
    /// image formats (cpio has no room for them).
    xattrs: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    /// The OCI layer (its digest) each entry of a container root came
    /// from, for the build report.
    layers: BTreeMap<String, String>,
}

impl Tree {
    /// An empty tree whose host files come from `sysroot` (usually `/`).
    pub fn new(sysroot: impl Into<PathBuf>) -> Tree {
        Tree {
            items: BTreeMap::new(),
            sysroot: sysroot.into(),
            xattrs: BTreeMap::new(),
            layers: BTreeMap::new(),
        }
    }

    /// Records that the entry at the resolved `path` came from the OCI
    /// layer `digest`.
    pub fn set_layer(&mut self, path: &str, digest: &str) {
        self.layers.insert(path.to_string(), digest.to_string());
    }

    /// The OCI layer the entry at `path` came from, if it came from one.
    pub fn layer(&self, path: &str) -> Option<&str> {
        self.layers.get(path).map(String::as_str)
    }

    /// Sets an extended attribute of the entry at the resolved `path`
    /// (replacing one of the same name).
    pub fn set_xattr(&mut self, path: &str, name: &str, value: &[u8]) {
        let list = self.xattrs.entry(path.to_string()).or_default();
        list.retain(|(n, _)| n != name);
        list.push((name.to_string(), value.to_vec()));
        list.sort();
    }

    /// The extended attributes of the entry at `path`, sorted by name.
    pub fn xattrs(&self, path: &str) -> impl Iterator<Item = (&str, &[u8])> {
        self.xattrs
            .get(path)
            .into_iter()
            .flatten()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Whether any entry has extended attributes.
    pub fn has_xattrs(&self) -> bool {
        !self.xattrs.is_empty()
    }

    pub fn sysroot(&self) -> &Path {
        &self.sysroot
    }

    /// Number of paths, the root excluded.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The node at an exact (already resolved) path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.items.get(path).map(|i| &i.node)
    }

    /// Paths and why each is in the image.
    pub fn origins(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items
            .iter()
            .map(|(p, i)| (p.as_str(), i.origin.as_str()))
    }

    /// Adds a directory (and its parents). An existing directory takes the
    /// metadata of the latest call: an explicit `[[dirs]]` entry or a copied
    /// tree overrides the skeleton's modes, as dracut and mkosi copy trees.
    pub fn add_dir(&mut self, path: &str, meta: Meta, origin: &str) -> Result<String, TreeError> {
        let resolved = self.resolve(path, true)?;
        match self.items.get_mut(&resolved) {
            Some(item) if item.node == Node::Dir => {
                item.meta = meta;
                Ok(resolved)
            }
            _ => self.insert(resolved, Node::Dir, meta, origin),
        }
    }

    pub fn add_symlink(
        &mut self,
        path: &str,
        target: &str,
        origin: &str,
    ) -> Result<String, TreeError> {
        self.add(
            path,
            Node::Symlink(target.to_string()),
            Meta::root(0o777),
            origin,
        )
    }

    /// Adds any node at `path`, creating parent directories (0755, root).
    /// The last component is not followed if it is a symlink already.
    pub fn add(
        &mut self,
        path: &str,
        node: Node,
        meta: Meta,
        origin: &str,
    ) -> Result<String, TreeError> {
        let resolved = self.resolve(path, false)?;
        self.insert(resolved, node, meta, origin)
    }

    /// Adds a hard link `path` to the regular file at `target`.
    pub fn add_hardlink(
        &mut self,
        path: &str,
        target: &str,
        origin: &str,
    ) -> Result<String, TreeError> {
        let mut t = self.resolve(target, true)?;
        // Another name of a hard-linked file names that file: every name of
        // one file must share its inode, not form a chain.
        if let Some(Item {
            node: Node::HardLink(file),
            ..
        }) = self.items.get(&t)
        {
            t = file.clone();
        }
        match self.items.get(&t) {
            Some(Item {
                node: Node::File(_),
                meta,
                ..
            }) => {
                let meta = *meta;
                self.add(path, Node::HardLink(t), meta, origin)
            }
            _ => Err(TreeError::BadHardlink {
                path: path.to_string(),
                target: target.to_string(),
            }),
        }
    }

    fn insert(
        &mut self,
        path: String,
        node: Node,
        meta: Meta,
        origin: &str,
    ) -> Result<String, TreeError> {
        // The root exists before the archive is unpacked and has no entry
        // (a `[[trees]]` copied to `/` lands here): nothing to record.
        if path == "/" {
            return match node {
                Node::Dir => Ok(path),
                other => Err(TreeError::Root {
                    path,
                    new: other.kind(),
                    origin: origin.to_string(),
                }),
            };
        }
        if let Some(existing) = self.items.get(&path) {
            let same = match (&existing.node, &node) {
                (Node::File(a), Node::File(b)) => a.same_as(b),
                (a, b) => a == b,
            };
            if same {
                return Ok(path);
            }
            return Err(TreeError::Conflict {
                path,
                existing: existing.node.kind(),
                existing_origin: existing.origin.clone(),
                new: node.kind(),
                origin: origin.to_string(),
            });
        }
        self.make_parents(&path, origin)?;
        self.items.insert(
            path.clone(),
            Item {
                node,
                meta,
                origin: origin.to_string(),
            },
        );
        Ok(path)
    }

    fn make_parents(&mut self, path: &str, origin: &str) -> Result<(), TreeError> {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            prefix.push('/');
            prefix.push_str(part);
            match self.items.get(&prefix) {
                None => {
                    self.items.insert(
                        prefix.clone(),
                        Item {
                            node: Node::Dir,
                            meta: Meta::root(0o755),
                            origin: format!("parent of {origin}"),
                        },
                    );
                }
                Some(Item {
                    node: Node::Dir, ..
                }) => {}
                Some(other) => {
                    return Err(TreeError::NotADirectory {
                        path: path.to_string(),
                        parent: prefix.clone(),
                        kind: other.node.kind(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Resolves `path` through the tree's symlinks (the last component only
    /// when `follow_last`), as the kernel would when creating it.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, TreeError> {
        let mut walk = Walk::new(path);
        while walk.step() {
            if walk.at_end() && !follow_last {
                break;
            }
            if let Some(Item {
                node: Node::Symlink(target),
                ..
            }) = self.items.get(&walk.current_str())
            {
                walk.follow(target).map_err(|_| loop_err(path))?;
            }
        }
        Ok(walk.current_str())
    }

    /// Resolves `path` as a process chrooted at the image directory `root`
    /// would (a container's view): absolute symlinks start again at `root`
    /// and `..` never leaves it. Returns the image path.
    pub fn resolve_in(
        &self,
        root: &str,
        path: &str,
        follow_last: bool,
    ) -> Result<String, TreeError> {
        let join = |inside: &str| match (root, inside) {
            ("/", p) => p.to_string(),
            (r, "/") => r.to_string(),
            (r, p) => format!("{r}{p}"),
        };
        let mut walk = Walk::new(path);
        while walk.step() {
            if walk.at_end() && !follow_last {
                break;
            }
            if let Some(Item {
                node: Node::Symlink(target),
                ..
            }) = self.items.get(&join(&walk.current_str()))
            {
                walk.follow(target).map_err(|_| loop_err(path))?;
            }
        }
        Ok(join(&walk.current_str()))
    }

    /// The contents of the regular file at the resolved image path `path`
    /// (through a hard link too); `None` when it is not a regular file.
    pub fn file_data(&self, path: &str) -> Option<&Data> {
        match self.items.get(path).map(|i| &i.node) {
            Some(Node::File(d)) => Some(d),
            Some(Node::HardLink(t)) => match self.items.get(t).map(|i| &i.node) {
                Some(Node::File(d)) => Some(d),
                _ => None,
            },
            _ => None,
        }
    }

    /// Rewrites the owner of every entry at or below the image directory
    /// `root` (the root directory of the image itself has no entry):
    /// `f(path, uid, gid)` returns the new owner or an error.
    pub fn map_owners<E>(
        &mut self,
        root: &str,
        mut f: impl FnMut(&str, u32, u32) -> Result<(u32, u32), E>,
    ) -> Result<(), E> {
        let prefix = if root == "/" {
            "/".to_string()
        } else {
            format!("{root}/")
        };
        for (path, item) in self.items.iter_mut() {
            if path == root || path.starts_with(&prefix) {
                (item.meta.uid, item.meta.gid) = f(path, item.meta.uid, item.meta.gid)?;
            }
        }
        Ok(())
    }
}

/// The error for more than [`crate::walk::MAX_SYMLINKS`] symlinks on `path`.
fn loop_err(path: &str) -> TreeError {
    TreeError::SymlinkLoop {
        path: path.to_string(),
    }
}

/// Maps an I/O error on `path` to [`TreeError::Read`].
fn read_err<'a>(path: &'a Path, origin: &'a str) -> impl FnOnce(std::io::Error) -> TreeError + 'a {
    move |source| TreeError::Read {
        path: path.to_path_buf(),
        origin: origin.to_string(),
        source,
    }
}

mod host;
mod plan;
mod skeleton;

#[cfg(test)]
mod tests;
