//! Applying image layers, in order, into a staged container root, with the
//! OCI rules (image-spec `layer.md`): whiteouts `.wh.NAME` and opaque
//! directories `.wh..wh..opq` hide only what lower layers put there; hard
//! links may name files of lower layers; symlinks are kept as written;
//! parents are resolved through the root's own symlinks but never above
//! it; absolute and `..` member names are refused.
//!
//! Only metadata stays in memory: file contents are written to a scratch
//! directory and enter the image as host files, streamed by the writer.

use super::OciError;
use crate::tree::{Data, Meta, Node, Tree};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Symlinks followed while resolving one member's parents.
const MAX_SYMLINKS: usize = 40;
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What a staged path is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    /// A name of the file `inodes[i]` (several names: hard links).
    File(usize),
    Symlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

#[derive(Clone, Debug)]
struct Staged {
    kind: Kind,
    /// Unused for files: an inode's metadata is shared by its names.
    meta: Meta,
    /// The layer that last wrote this path.
    layer: usize,
}

#[derive(Clone, Debug)]
struct Inode {
    data: Data,
    meta: Meta,
}

/// A container root being assembled from layers. Paths are relative to the
/// root, without leading `/` (the root itself is `""`).
#[derive(Debug)]
pub struct Rootfs {
    nodes: BTreeMap<String, Staged>,
    inodes: Vec<Inode>,
    root_meta: Meta,
    scratch: PathBuf,
    spilled: u64,
    /// Files with extended attributes, which cpio cannot carry.
    pub xattrs: Vec<(String, String)>,
    /// The extended attributes themselves (name, value) by path, which
    /// disk images keep.
    pub xattr_values: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    /// The digest of each layer applied, by index (its manifest
    /// descriptor's), for the build report.
    pub layer_digests: Vec<String>,
}

/// Why one member could not be applied; the caller names the layer.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("member {0:?}: absolute names are refused")]
    Absolute(String),
    #[error("member {0:?}: `..` would leave the root")]
    DotDot(String),
    #[error("member {0:?}: the name is not UTF-8")]
    NotUtf8(String),
    #[error("member {name:?}: parent {parent} is a {kind}, not a directory")]
    NotADirectory {
        name: String,
        parent: String,
        kind: &'static str,
    },
    #[error("member {0:?}: too many levels of symbolic links")]
    SymlinkLoop(String),
    #[error("hard link {name:?}: target {target:?} is {what}")]
    BadHardlink {
        name: String,
        target: String,
        what: &'static str,
    },
    #[error("member {name:?}: entry type {kind} is not supported")]
    Unsupported { name: String, kind: String },
    #[error("member {0:?}: the root cannot be replaced by a non-directory")]
    Root(String),
    #[error(
        "not a tar archive, or a damaged one (at byte {at} of the uncompressed layer): {detail}"
    )]
    Tar { at: u64, detail: String },
    #[error("write {path}")]
    Scratch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A reader that counts the bytes it gives, for error positions.
struct Counting<'a, R> {
    inner: R,
    count: &'a std::cell::Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// The tar reader's message without the member name it quotes (which is
/// whatever bytes the damaged header held).
fn tar_detail(e: &io::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" when getting ").next().unwrap_or(&msg).trim();
    let mut out: String = msg.chars().take(120).collect();
    if out.len() < msg.len() {
        out.push('…');
    }
    out
}

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::Dir => "directory",
        Kind::File(_) => "file",
        Kind::Symlink(_) => "symlink",
        Kind::Char(..) => "char device",
        Kind::Block(..) => "block device",
        Kind::Fifo => "fifo",
    }
}

/// Splits a member name into clean components; refuses absolute names and
/// `..`. `./a//b/` gives `["a", "b"]`; `./` gives none (the root).
pub fn clean(name: &str) -> Result<Vec<&str>, MemberError> {
    if name.starts_with('/') {
        return Err(MemberError::Absolute(name.to_string()));
    }
    let mut parts = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(MemberError::DotDot(name.to_string())),
            p => parts.push(p),
        }
    }
    Ok(parts)
}

impl Rootfs {
    /// An empty root whose file contents go to `scratch` (an existing,
    /// empty directory that must outlive the image's writing).
    pub fn new(scratch: &Path) -> Rootfs {
        Rootfs {
            nodes: BTreeMap::new(),
            inodes: Vec::new(),
            root_meta: Meta::root(0o755),
            scratch: scratch.to_path_buf(),
            spilled: 0,
            xattrs: Vec::new(),
            xattr_values: BTreeMap::new(),
            layer_digests: Vec::new(),
        }
    }

    /// Resolves the parent components `parts` inside the root, following
    /// the root's symlinks (an absolute target or `..` stops at the root),
    /// creating missing directories as the layer's. Returns the resolved
    /// relative path of the parent.
    fn resolve_parent(
        &mut self,
        name: &str,
        parts: &[&str],
        layer: usize,
        create: bool,
    ) -> Result<Option<String>, MemberError> {
        let mut pending: Vec<String> = parts.iter().rev().map(|s| s.to_string()).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(part);
            let here = done.join("/");
            match self.nodes.get(&here).map(|s| &s.kind) {
                Some(Kind::Dir) => {}
                Some(Kind::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(MemberError::SymlinkLoop(name.to_string()));
                    }
                    let target = target.clone();
                    done.pop();
                    if target.starts_with('/') {
                        done.clear();
                    }
                    pending.extend(target.split('/').rev().map(String::from));
                }
                Some(other) => {
                    return Err(MemberError::NotADirectory {
                        name: name.to_string(),
                        parent: format!("/{here}"),
                        kind: kind_name(other),
                    })
                }
                None if create => {
                    self.nodes.insert(
                        here,
                        Staged {
                            kind: Kind::Dir,
                            meta: Meta::root(0o755),
                            layer,
                        },
                    );
                }
                None => return Ok(None),
            }
        }
        Ok(Some(done.join("/")))
    }

    fn join(parent: &str, leaf: &str) -> String {
        if parent.is_empty() {
            leaf.to_string()
        } else {
            format!("{parent}/{leaf}")
        }
    }

    /// Paths strictly below `path`.
    fn descendants(&self, path: &str) -> Vec<String> {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Removes `path` and what is below it, except what `keep_layer`
    /// wrote (a directory that still holds such paths stays).
    fn remove_lower(&mut self, path: &str, keep_layer: Option<usize>, include_self: bool) {
        let mut kept_below = false;
        for p in self.descendants(path) {
            if Some(self.nodes[&p].layer) == keep_layer {
                kept_below = true;
            } else {
                self.nodes.remove(&p);
            }
        }
        if include_self && !kept_below {
            self.nodes.remove(path);
        }
    }

    /// Applies one uncompressed tar layer (`layer` counts from 0).
    pub fn apply<R: Read>(&mut self, reader: R, layer: usize) -> Result<(), MemberError> {
        let count = std::cell::Cell::new(0u64);
        let mut archive = tar::Archive::new(Counting {
            inner: reader,
            count: &count,
        });
        let tar_err = |e: io::Error| MemberError::Tar {
            at: count.get(),
            detail: tar_detail(&e),
        };
        for entry in archive.entries().map_err(tar_err)? {
            let mut entry = entry.map_err(tar_err)?;
            self.member(&mut entry, layer).map_err(|e| match e {
                MemberError::Tar { detail, .. } => MemberError::Tar {
                    at: count.get(),
                    detail,
                },
                e => e,
            })?;
        }
        Ok(())
    }

    fn member<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        layer: usize,
    ) -> Result<(), MemberError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw).map_err(|e| {
            MemberError::NotUtf8(String::from_utf8_lossy(e.as_bytes()).into_owned())
        })?;
        let header = entry.header().clone();
        let ty = header.entry_type();
        if matches!(ty, tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        let mut uid = header.uid().map_err(|e| MemberError::Tar {
            at: 0,
            detail: tar_detail(&e),
        })? as u32;
        let mut gid = header.gid().map_err(|e| MemberError::Tar {
            at: 0,
            detail: tar_detail(&e),
        })? as u32;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(|e| MemberError::Tar {
            at: 0,
            detail: tar_detail(&e),
        })? {
            for ext in pax {
                let ext = ext.map_err(|e| MemberError::Tar {
                    at: 0,
                    detail: tar_detail(&e),
                })?;
                let Ok(key) = ext.key() else {
                    continue;
                };
                // Values are bytes: a capability set is rarely UTF-8.
                let value = std::str::from_utf8(ext.value_bytes()).unwrap_or("");
                match key {
                    "uid" => uid = value.parse().unwrap_or(uid),
                    "gid" => gid = value.parse().unwrap_or(gid),
                    k => {
                        if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                            xattrs.push((x.to_string(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
        let perm = header.mode().map_err(|e| MemberError::Tar {
            at: 0,
            detail: tar_detail(&e),
        })? & 0o7777;
        let meta = Meta { perm, uid, gid };
        let parts = clean(&name)?;
        let Some((leaf, parents)) = parts.split_last() else {
            // The root itself ("./").
            if ty.is_dir() {
                self.root_meta = meta;
                return Ok(());
            }
            return Err(MemberError::Root(name));
        };

        if let Some(hidden) = leaf.strip_prefix(WHITEOUT) {
            let Some(parent) = self.resolve_parent(&name, parents, layer, false)? else {
                return Ok(());
            };
            if *leaf == OPAQUE {
                self.remove_lower(&parent, Some(layer), false);
            } else if hidden.starts_with(WHITEOUT) {
                // Other `.wh..wh.` names are aufs bookkeeping (hard link
                // directories): not content, as Docker and umoci skip them.
            } else {
                let target = Self::join(&parent, hidden);
                if let Some(s) = self.nodes.get(&target) {
                    if s.layer != layer {
                        self.remove_lower(&target, Some(layer), true);
                    }
                }
            }
            return Ok(());
        }

        let parent = self
            .resolve_parent(&name, parents, layer, true)?
            .unwrap_or_default();
        let path = Self::join(&parent, leaf);
        let kind = match ty {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let data = self.spill(entry)?;
                self.inodes.push(Inode { data, meta });
                Kind::File(self.inodes.len() - 1)
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                Kind::Symlink(target)
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                self.hardlink_kind(&name, &target, layer)?
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                if ty == tar::EntryType::Char {
                    Kind::Char(major, minor)
                } else {
                    Kind::Block(major, minor)
                }
            }
            tar::EntryType::Fifo => Kind::Fifo,
            other => {
                return Err(MemberError::Unsupported {
                    name,
                    kind: format!("{other:?}"),
                })
            }
        };
        // A later layer's entry replaces the file and its attributes.
        self.xattr_values.remove(&path);
        if !xattrs.is_empty() {
            self.xattr_values.insert(path.clone(), xattrs.clone());
        }
        for (x, _) in xattrs {
            self.xattrs.push((format!("/{path}"), x));
        }
        match self.nodes.get(&path) {
            Some(old) if old.kind == Kind::Dir && kind == Kind::Dir => {}
            Some(old) if old.kind == Kind::Dir => self.remove_lower(&path, None, false),
            _ => {}
        }
        self.nodes.insert(path, Staged { kind, meta, layer });
        Ok(())
    }

    /// The kind a hard link to `target` takes: another name of a file, or
    /// a copy of a symlink or node (cpio links only regular files).
    fn hardlink_kind(
        &mut self,
        name: &str,
        target: &str,
        layer: usize,
    ) -> Result<Kind, MemberError> {
        let bad = |what| MemberError::BadHardlink {
            name: name.to_string(),
            target: target.to_string(),
            what,
        };
        let parts = clean(target).map_err(|_| bad("outside the root"))?;
        let Some((leaf, parents)) = parts.split_last() else {
            return Err(bad("the root directory"));
        };
        let parent = self
            .resolve_parent(name, parents, layer, false)?
            .ok_or_else(|| bad("not in the image"))?;
        match self.nodes.get(&Self::join(&parent, leaf)) {
            None => Err(bad("not in the image")),
            Some(Staged {
                kind: Kind::Dir, ..
            }) => Err(bad("a directory")),
            Some(s) => Ok(s.kind.clone()),
        }
    }

    /// Writes a member's contents to the scratch directory.
    fn spill<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<Data, MemberError> {
        self.spilled += 1;
        let file = self.scratch.join(format!("{:08}", self.spilled));
        let err = |source| MemberError::Scratch {
            path: file.clone(),
            source,
        };
        let mut out = fs::File::create(&file).map_err(err)?;
        let len = io::copy(entry, &mut out).map_err(|e| MemberError::Tar {
            at: 0,
            detail: tar_detail(&e),
        })?;
        Ok(Data::Host { path: file, len })
    }

    /// Number of paths, the root excluded.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A listing for tests and diagnostics: `path type mode uid:gid extra`,
    /// one line per path in sorted order, the root first.
    pub fn listing(&self) -> Vec<String> {
        let m = self.root_meta;
        let mut out = vec![format!("/ dir {:04o} {}:{}", m.perm, m.uid, m.gid)];
        for (p, s) in &self.nodes {
            let (meta, extra) = match &s.kind {
                Kind::File(i) => (self.inodes[*i].meta, format!("file#{i}")),
                Kind::Symlink(t) => (s.meta, format!("-> {t}")),
                Kind::Char(a, b) | Kind::Block(a, b) => (s.meta, format!("{a}:{b}")),
                _ => (s.meta, String::new()),
            };
            out.push(
                format!(
                    "/{p} {} {:04o} {}:{} {extra}",
                    kind_name(&s.kind),
                    meta.perm,
                    meta.uid,
                    meta.gid
                )
                .trim_end()
                .to_string(),
            );
        }
        out
    }

    /// The contents of the regular file at `path` (relative), if it is one.
    pub fn file_data(&self, path: &str) -> Option<&Data> {
        match self.nodes.get(path)?.kind {
            Kind::File(i) => Some(&self.inodes[i].data),
            _ => None,
        }
    }

    /// Adds the root at `root` (an absolute image path) of `tree`. Every
    /// path must land where it is named: an image path that resolves
    /// elsewhere (through a symlink already in the tree) is an error.
    pub fn add_to_tree(&self, tree: &mut Tree, root: &str, origin: &str) -> Result<(), OciError> {
        let root = root.trim_end_matches('/');
        let full = |p: &str| format!("{root}/{p}");
        let landed = tree.add_dir(
            if root.is_empty() { "/" } else { root },
            self.root_meta,
            origin,
        )?;
        check_landed(&landed, if root.is_empty() { "/" } else { root })?;
        let mut first_name: BTreeMap<usize, String> = BTreeMap::new();
        for (p, s) in &self.nodes {
            let want = full(p);
            let landed = match &s.kind {
                Kind::Dir => tree.add_dir(&want, s.meta, origin)?,
                Kind::File(i) => match first_name.get(i) {
                    Some(first) => tree.add_hardlink(&want, first, origin)?,
                    None => {
                        first_name.insert(*i, want.clone());
                        let ino = &self.inodes[*i];
                        tree.add(&want, Node::File(ino.data.clone()), ino.meta, origin)?
                    }
                },
                Kind::Symlink(t) => tree.add(&want, Node::Symlink(t.clone()), s.meta, origin)?,
                Kind::Char(a, b) => tree.add(&want, Node::Char(*a, *b), s.meta, origin)?,
                Kind::Block(a, b) => tree.add(&want, Node::Block(*a, *b), s.meta, origin)?,
                Kind::Fifo => tree.add(&want, Node::Fifo, s.meta, origin)?,
            };
            check_landed(&landed, &want)?;
            if let Some(digest) = self.layer_digests.get(s.layer) {
                tree.set_layer(&landed, digest);
            }
            for (name, value) in self.xattr_values.get(p).into_iter().flatten() {
                tree.set_xattr(&landed, name, value);
            }
        }
        Ok(())
    }
}

fn check_landed(landed: &str, want: &str) -> Result<(), OciError> {
    if landed != want {
        return Err(OciError::Redirected {
            path: want.to_string(),
            landed: landed.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
