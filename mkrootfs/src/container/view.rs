//! The image as a process will see it: from the image's `/`, or from a
//! container root inside it (absolute symlinks start again at that root).
//! Used to check at build time what the init would only find out at boot.

use crate::tree::{Node, Tree};
use mkrootfs_config::users::{self, Group, Passwd};

/// A directory of the image seen as `/`.
pub struct View<'a> {
    pub tree: &'a Tree,
    /// Image path of the directory that is `/` (`/` for the image itself).
    pub root: &'a str,
}

impl View<'_> {
    /// The image path `path` resolves to, or `None` when it loops.
    fn resolve(&self, path: &str) -> Option<String> {
        self.tree.resolve_in(self.root, path, true).ok()
    }

    /// `path` as the process resolves it, as a path of its own `/`
    /// (`None` when it loops).
    pub fn inside(&self, path: &str) -> Option<String> {
        let p = self.resolve(path)?;
        if self.root == "/" {
            return Some(p);
        }
        match p.strip_prefix(self.root) {
            Some("") => Some("/".into()),
            Some(rest) if rest.starts_with('/') => Some(rest.to_string()),
            _ => Some(p),
        }
    }

    /// Whether `path` is a regular file (what execve and the init's PATH
    /// lookup accept).
    pub fn is_file(&self, path: &str) -> bool {
        self.resolve(path)
            .is_some_and(|p| self.tree.file_data(&p).is_some())
    }

    /// Whether `path` is a directory (the container root and `/` always are).
    pub fn is_dir(&self, path: &str) -> bool {
        match self.resolve(path) {
            Some(p) if p == self.root || p == "/" => true,
            Some(p) => matches!(self.tree.get(&p), Some(Node::Dir)),
            None => false,
        }
    }

    /// The text of a file, if it is a regular file that can be read.
    pub fn read(&self, path: &str) -> Option<String> {
        let p = self.resolve(path)?;
        let data = self.tree.file_data(&p)?.read().ok()?;
        Some(String::from_utf8_lossy(&data).into_owned())
    }

    /// The file execve(2) would run for `argv0`, as the init searches
    /// ([`mkrootfs_config::exec_candidates`]). Candidates in relative
    /// directories of `path` are skipped: the cwd is not known here.
    pub fn lookup(&self, argv0: &str, path: &str) -> Option<String> {
        mkrootfs_config::exec_candidates(argv0, Some(path))
            .into_iter()
            .filter(|c| argv0.contains('/') || c.starts_with('/'))
            .find(|c| self.is_file(c))
    }

    /// `/etc/passwd` and `/etc/group` (missing files are empty databases,
    /// as at boot).
    pub fn users(&self) -> (Vec<Passwd>, Vec<Group>) {
        (
            users::parse_passwd(&self.read("/etc/passwd").unwrap_or_default()),
            users::parse_group(&self.read("/etc/group").unwrap_or_default()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Meta;

    fn tree() -> Tree {
        let mut t = Tree::new("/");
        let f = |s: &str| Node::File(s.as_bytes().to_vec().into());
        t.add("/bin/sh", f("elf"), Meta::root(0o755), "t").unwrap();
        t.add("/c/bin/app", f("elf"), Meta::root(0o755), "t")
            .unwrap();
        t.add_symlink("/c/usr/bin", "/bin", "t").unwrap();
        t.add_symlink("/c/escape", "../../bin/sh", "t").unwrap();
        t.add(
            "/c/etc/passwd",
            f("app:x:7:8::/home/app:/bin/sh\n"),
            Meta::root(0o644),
            "t",
        )
        .unwrap();
        t
    }

    #[test]
    fn a_container_root_is_its_own_slash() {
        let t = tree();
        let c = View {
            tree: &t,
            root: "/c",
        };
        assert!(c.is_file("/bin/app"));
        assert!(!c.is_file("/bin/sh"));
        // Absolute symlinks and `..` stay inside the container root.
        assert_eq!(c.lookup("app", "/usr/bin"), Some("/usr/bin/app".into()));
        assert!(!c.is_file("/escape"));
        assert!(c.is_dir("/") && c.is_dir("/etc") && !c.is_dir("/nope"));
        assert_eq!(c.users().0[0].uid, 7);
        let image = View {
            tree: &t,
            root: "/",
        };
        assert_eq!(image.lookup("sh", "/usr/bin:/bin"), Some("/bin/sh".into()));
        assert_eq!(image.lookup("app", "/bin"), None);
        assert!(image.users().0.is_empty());
    }
}
