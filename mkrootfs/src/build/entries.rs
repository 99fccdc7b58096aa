//! The profile's own entries (files, directories, symlinks, device nodes,
//! trees) added to the tree.

use super::*;
use crate::profile::Position;

/// `"files entry /etc/x"`, and where it was written when known, so that
/// two entries for one path (and a missing `src`) are told apart.
fn origin(what: &str, path: &impl std::fmt::Display, at: &Option<Position>) -> String {
    match at {
        Some(at) => format!("{what} {path} at {at}"),
        None => format!("{what} {path}"),
    }
}

pub(super) fn add_profile_entries(tree: &mut Tree, profile: &Profile) -> Result<(), BuildError> {
    for d in &profile.dirs {
        let perm = d.mode.map(|m| m.0).unwrap_or(0o755);
        tree.add_dir(
            &d.path.0,
            Meta {
                perm,
                uid: d.uid,
                gid: d.gid,
            },
            &origin("dirs entry", &d.path, &d.at),
        )?;
    }
    for (dir, f) in &profile.files {
        let origin = origin("files entry", &f.dest, &f.at);
        match (&f.src, &f.content) {
            (Some(src), _) => {
                let host = dir.join(src);
                tree.add_host_file(&host, &f.dest.0, f.mode.map(|m| m.0), f.uid, f.gid, &origin)?;
            }
            (None, content) => {
                let data = content.clone().unwrap_or_default().into_bytes();
                let meta = Meta {
                    perm: f.mode.map(|m| m.0).unwrap_or(0o644),
                    uid: f.uid,
                    gid: f.gid,
                };
                tree.add(&f.dest.0, Node::File(data.into()), meta, &origin)?;
            }
        }
    }
    for (dir, t) in &profile.trees {
        tree.add_host_tree_owned(
            &dir.join(&t.src),
            &t.dest.0,
            (t.uid, t.gid),
            &origin("trees entry", &t.dest, &t.at),
        )?;
    }
    for s in &profile.symlinks {
        tree.add_symlink(
            &s.path.0,
            &s.target,
            &origin("symlinks entry", &s.path, &s.at),
        )?;
    }
    for h in &profile.hardlinks {
        tree.add_hardlink(
            &h.path.0,
            &h.target.0,
            &origin("hardlinks entry", &h.path, &h.at),
        )?;
    }
    for n in &profile.nodes {
        let node = match n.kind {
            NodeKind::Char => Node::Char(n.major, n.minor),
            NodeKind::Block => Node::Block(n.major, n.minor),
            NodeKind::Fifo => Node::Fifo,
        };
        let perm = n.mode.map(|m| m.0).unwrap_or(0o600);
        tree.add(
            &n.path.0,
            node,
            Meta {
                perm,
                uid: n.uid,
                gid: n.gid,
            },
            &origin("nodes entry", &n.path, &n.at),
        )?;
    }
    Ok(())
}
