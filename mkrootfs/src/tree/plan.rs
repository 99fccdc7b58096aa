//! The tree as cpio entries: sorted, inodes numbered in path order, hard
//! links sharing their file's inode, one fixed mtime.

use super::{Data, Item, Node, Tree, TreeError};
use crate::cpio::Entry;
use std::collections::BTreeMap;

pub(super) const S_IFDIR: u32 = 0o040000;
pub(super) const S_IFREG: u32 = 0o100000;
pub(super) const S_IFLNK: u32 = 0o120000;
pub(super) const S_IFCHR: u32 = 0o020000;
pub(super) const S_IFBLK: u32 = 0o060000;
pub(super) const S_IFIFO: u32 = 0o010000;

impl Tree {
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
