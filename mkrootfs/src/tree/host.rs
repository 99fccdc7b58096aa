//! Copying host files into the tree: from the sysroot with their symlink
//! chains, single files, and whole directory trees (symlinks, hard links,
//! device nodes and fifos as such). Files are recorded, not read
//! ([`Data::Host`]).

use super::{loop_err, read_err, Data, Meta, Node, Tree, TreeError};
use crate::walk::Walk;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

impl Tree {
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
        while walk.step() {
            let current = walk.current_str();
            let host = self.sysroot.join(&current[1..]);
            let md = fs::symlink_metadata(&host).map_err(read_err(&host, origin))?;
            let ft = md.file_type();
            if ft.is_symlink() {
                let target = fs::read_link(&host).map_err(read_err(&host, origin))?;
                let target = target.to_string_lossy().into_owned();
                self.add_symlink(&current, &target, origin)?;
                walk.follow(&target).map_err(|_| loop_err(image_path))?;
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
        self.add_host_tree_owned(src, dest, (0, 0), origin)
    }

    /// [`Tree::add_host_tree`] with every entry (symlinks included) owned
    /// by `owner` (uid, gid) instead of root.
    pub fn add_host_tree_owned(
        &mut self,
        src: &Path,
        dest: &str,
        owner: (u32, u32),
        origin: &str,
    ) -> Result<(), TreeError> {
        let mut seen_inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
        self.copy_dir(src, dest, owner, origin, &mut seen_inodes)
    }

    fn copy_dir(
        &mut self,
        src: &Path,
        dest: &str,
        owner: (u32, u32),
        origin: &str,
        seen: &mut BTreeMap<(u64, u64), String>,
    ) -> Result<(), TreeError> {
        let owned = |perm: u32| Meta {
            perm,
            uid: owner.0,
            gid: owner.1,
        };
        let md = fs::symlink_metadata(src).map_err(read_err(src, origin))?;
        self.add_dir(dest, owned(md.permissions().mode() & 0o7777), origin)?;
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
            let meta = owned(md.permissions().mode() & 0o7777);
            use std::os::unix::fs::FileTypeExt;
            if ft.is_dir() {
                self.copy_dir(&host, &child, owner, origin, seen)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&host).map_err(read_err(&host, origin))?;
                let link = Node::Symlink(target.to_string_lossy().into_owned());
                self.add(&child, link, owned(0o777), origin)?;
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
}

/// Splits a Linux `dev_t` into major and minor (glibc's encoding).
pub(super) fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major as u32, minor as u32)
}
