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

use crate::cpio::Entry;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFIFO: u32 = 0o010000;

/// Symlinks followed while resolving one path, as the kernel's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

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
}

impl Tree {
    /// An empty tree whose host files come from `sysroot` (usually `/`).
    pub fn new(sysroot: impl Into<PathBuf>) -> Tree {
        Tree {
            items: BTreeMap::new(),
            sysroot: sysroot.into(),
        }
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

    /// The default FHS skeleton: directories, `/dev/console` and `/dev/null`,
    /// and the sysroot's merged-/usr symlinks (`/bin -> usr/bin`, …).
    pub fn add_skeleton(&mut self) -> Result<(), TreeError> {
        const ORIGIN: &str = "skeleton";
        // Only the directories the skeleton creates; others (lib64, lib32)
        // come with the first path that goes through them.
        for top in ["bin", "sbin", "lib"] {
            let host = self.sysroot.join(top);
            if let Ok(target) = fs::read_link(&host) {
                self.add_symlink(&format!("/{top}"), &target.to_string_lossy(), ORIGIN)?;
            }
        }
        for (dir, perm) in [
            ("/bin", 0o755),
            ("/sbin", 0o755),
            ("/etc", 0o755),
            ("/lib", 0o755),
            ("/usr", 0o755),
            ("/usr/bin", 0o755),
            ("/usr/sbin", 0o755),
            ("/usr/lib", 0o755),
            ("/dev", 0o755),
            ("/proc", 0o555),
            ("/sys", 0o555),
            ("/run", 0o755),
            ("/tmp", 0o1777),
            ("/root", 0o700),
        ] {
            self.add_dir(dir, Meta::root(perm), ORIGIN)?;
        }
        self.add("/dev/console", Node::Char(5, 1), Meta::root(0o600), ORIGIN)?;
        self.add("/dev/null", Node::Char(1, 3), Meta::root(0o666), ORIGIN)?;
        Ok(())
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
        while let Some(current) = walk.next_component() {
            if walk.at_end() && !follow_last {
                break;
            }
            if let Some(Item {
                node: Node::Symlink(target),
                ..
            }) = self.items.get(&current)
            {
                walk.follow(target)?;
            }
        }
        Ok(walk.current())
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
        while let Some(current) = walk.next_component() {
            if walk.at_end() && !follow_last {
                break;
            }
            if let Some(Item {
                node: Node::Symlink(target),
                ..
            }) = self.items.get(&join(&current))
            {
                walk.follow(target)?;
            }
        }
        Ok(join(&walk.current()))
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

    /// Copies the sysroot's file at `image_path` into the same path of the
    /// image, keeping every symlink on the way (directories such as
    /// `/lib -> usr/lib`, and library chains such as
    /// `libz.so.1 -> libz.so.1.2.13`). Returns the image path of the file
    /// that was finally copied.
    pub fn add_from_sysroot(
        &mut self,
        image_path: &str,
        origin: &str,
    ) -> Result<String, TreeError> {
        let mut walk = Walk::new(image_path);
        while let Some(current) = walk.next_component() {
            let host = self.sysroot.join(&current[1..]);
            let md = fs::symlink_metadata(&host).map_err(read_err(&host, origin))?;
            let ft = md.file_type();
            if ft.is_symlink() {
                let target = fs::read_link(&host).map_err(read_err(&host, origin))?;
                let target = target.to_string_lossy().into_owned();
                self.add_symlink(&current, &target, origin)?;
                walk.follow(&target)?;
            } else if walk.at_end() {
                let meta = Meta::root(md.permissions().mode() & 0o7777);
                if ft.is_dir() {
                    return self.add_dir(&current, meta, origin);
                }
                if !ft.is_file() {
                    return Err(TreeError::Unsupported {
                        path: host,
                        origin: origin.to_string(),
                        kind: "special file",
                    });
                }
                let data = Data::host(&host).map_err(read_err(&host, origin))?;
                return self.add(&current, Node::File(data), meta, origin);
            } else if !ft.is_dir() {
                return Err(TreeError::Unsupported {
                    path: host,
                    origin: origin.to_string(),
                    kind: "non-directory in the middle of a path",
                });
            }
        }
        Ok("/".to_string())
    }

    /// Copies a host file (not from the sysroot) to `dest`.
    pub fn add_host_file(
        &mut self,
        host: &Path,
        dest: &str,
        perm: Option<u32>,
        uid: u32,
        gid: u32,
        origin: &str,
    ) -> Result<String, TreeError> {
        let md = fs::metadata(host).map_err(read_err(host, origin))?;
        let data = Data::Host {
            path: host.to_path_buf(),
            len: md.len(),
        };
        let meta = Meta {
            perm: perm.unwrap_or(md.permissions().mode() & 0o7777),
            uid,
            gid,
        };
        self.add(dest, Node::File(data), meta, origin)
    }

    /// Copies a whole host directory tree to `dest` (symlinks as symlinks,
    /// hard links as hard links, device nodes and fifos as nodes), in sorted
    /// order so that the result does not depend on directory order.
    pub fn add_host_tree(&mut self, src: &Path, dest: &str, origin: &str) -> Result<(), TreeError> {
        let mut seen_inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
        self.copy_dir(src, dest, origin, &mut seen_inodes)
    }

    fn copy_dir(
        &mut self,
        src: &Path,
        dest: &str,
        origin: &str,
        seen: &mut BTreeMap<(u64, u64), String>,
    ) -> Result<(), TreeError> {
        let md = fs::symlink_metadata(src).map_err(read_err(src, origin))?;
        self.add_dir(dest, Meta::root(md.permissions().mode() & 0o7777), origin)?;
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(read_err(src, origin))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err(src, origin))?;
        names.sort();
        for name in names {
            let host = src.join(&name);
            let child = format!("{}/{}", dest.trim_end_matches('/'), name.to_string_lossy());
            let md = fs::symlink_metadata(&host).map_err(read_err(&host, origin))?;
            let ft = md.file_type();
            let meta = Meta::root(md.permissions().mode() & 0o7777);
            use std::os::unix::fs::FileTypeExt;
            if ft.is_dir() {
                self.copy_dir(&host, &child, origin, seen)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&host).map_err(read_err(&host, origin))?;
                self.add_symlink(&child, &target.to_string_lossy(), origin)?;
            } else if ft.is_file() {
                let key = (md.dev(), md.ino());
                if md.nlink() > 1 {
                    if let Some(first) = seen.get(&key) {
                        let first = first.clone();
                        self.add_hardlink(&child, &first, origin)?;
                        continue;
                    }
                    seen.insert(key, child.clone());
                }
                let data = Data::Host {
                    path: host.clone(),
                    len: md.len(),
                };
                self.add(&child, Node::File(data), meta, origin)?;
            } else if ft.is_char_device() || ft.is_block_device() {
                let (maj, min) = split_dev(md.rdev());
                let node = if ft.is_char_device() {
                    Node::Char(maj, min)
                } else {
                    Node::Block(maj, min)
                };
                self.add(&child, node, meta, origin)?;
            } else if ft.is_fifo() {
                self.add(&child, Node::Fifo, meta, origin)?;
            } else {
                return Err(TreeError::Unsupported {
                    path: host,
                    origin: origin.to_string(),
                    kind: "socket",
                });
            }
        }
        Ok(())
    }

    /// Sorted cpio entries: inode numbers 1, 2, … in path order (hard links
    /// share their file's number, with `nlink` set and the data carried by
    /// the last name in archive order, as GNU cpio does); every mtime is
    /// `mtime`. A regular file's entry has empty `data`; its contents come
    /// with it (for the one name that carries them).
    pub fn plan(&self, mtime: u32) -> Vec<(Entry, Option<&Data>)> {
        // Every name of each hard-linked file (its own path first).
        let mut names_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (path, item) in &self.items {
            if let Node::HardLink(t) = &item.node {
                names_of
                    .entry(t.as_str())
                    .or_insert_with(|| vec![t.as_str()])
                    .push(path.as_str());
            }
        }
        let mut ino_of: BTreeMap<&str, u32> = BTreeMap::new();
        // No entry for "/" itself: the kernel's rootfs root already exists.
        let mut entries = Vec::with_capacity(self.items.len());
        for (index, (path, item)) in self.items.iter().enumerate() {
            let perm = item.meta.perm & 0o7777;
            let mut e = Entry {
                name: path[1..].to_string(),
                mode: perm,
                uid: item.meta.uid,
                gid: item.meta.gid,
                nlink: 1,
                mtime,
                ino: index as u32 + 1,
                dev: (0, 0),
                rdev: (0, 0),
                data: Vec::new(),
            };
            let mut contents = None;
            match &item.node {
                Node::Dir => (e.mode, e.nlink) = (S_IFDIR | perm, 2),
                Node::Symlink(t) => (e.mode, e.data) = (S_IFLNK | 0o777, t.as_bytes().to_vec()),
                Node::Char(a, b) => (e.mode, e.rdev) = (S_IFCHR | perm, (*a, *b)),
                Node::Block(a, b) => (e.mode, e.rdev) = (S_IFBLK | perm, (*a, *b)),
                Node::Fifo => e.mode = S_IFIFO | perm,
                Node::File(_) | Node::HardLink(_) => {
                    let file = match &item.node {
                        Node::HardLink(t) => t.as_str(),
                        _ => path.as_str(),
                    };
                    let names = names_of.get(file);
                    e.nlink = names.map_or(1, |n| n.len() as u32);
                    e.ino = *ino_of.entry(file).or_insert(e.ino);
                    if let Some(Item {
                        node: Node::File(data),
                        meta,
                        ..
                    }) = self.items.get(file)
                    {
                        (e.mode, e.uid, e.gid) =
                            (S_IFREG | (meta.perm & 0o7777), meta.uid, meta.gid);
                        // Only the last name in archive order carries the data.
                        if names.is_none_or(|n| n.iter().max() == Some(&path.as_str())) {
                            contents = Some(data);
                        }
                    }
                }
            }
            entries.push((e, contents));
        }
        entries
    }

    /// [`Tree::plan`] with every file's contents read into its entry.
    pub fn to_entries(&self, mtime: u32) -> Result<Vec<Entry>, TreeError> {
        self.plan(mtime)
            .into_iter()
            .map(|(mut e, data)| {
                if let Some(d) = data {
                    e.data = d.read()?;
                }
                Ok(e)
            })
            .collect()
    }
}

/// A path walk that follows symlinks as the kernel does: components are
/// taken one at a time, `.` is skipped, `..` goes up (never above `/`),
/// and a symlink is replaced by its target (from `/` when it is absolute).
struct Walk {
    path: String,
    /// Components still to walk, the next one last.
    pending: Vec<String>,
    /// The resolved components so far.
    done: Vec<String>,
    hops: usize,
}

impl Walk {
    fn new(path: &str) -> Walk {
        let mut w = Walk {
            path: path.to_string(),
            pending: Vec::new(),
            done: Vec::new(),
            hops: 0,
        };
        w.push_front(path);
        w
    }

    fn push_front(&mut self, path: &str) {
        let parts = path.split('/').filter(|s| !s.is_empty()).rev();
        self.pending.extend(parts.map(String::from));
    }

    /// Steps onto the next component and returns the path so far.
    fn next_component(&mut self) -> Option<String> {
        loop {
            let part = self.pending.pop()?;
            match part.as_str() {
                "." => {}
                ".." => {
                    self.done.pop();
                }
                _ => {
                    self.done.push(part);
                    return Some(self.current());
                }
            }
        }
    }

    /// Whether the current component is the last one.
    fn at_end(&self) -> bool {
        self.pending.is_empty()
    }

    /// Replaces the current component, a symlink, by its target.
    fn follow(&mut self, target: &str) -> Result<(), TreeError> {
        self.hops += 1;
        if self.hops > MAX_SYMLINKS {
            return Err(TreeError::SymlinkLoop {
                path: self.path.clone(),
            });
        }
        self.done.pop();
        if target.starts_with('/') {
            self.done.clear();
        }
        self.push_front(target);
        Ok(())
    }

    fn current(&self) -> String {
        format!("/{}", self.done.join("/"))
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

/// Splits a Linux `dev_t` into major and minor (glibc's encoding).
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests;
