//! The one symlink-resolving path walker, shared by the image being
//! assembled ([`crate::tree`], whose symlinks live in the tree) and the
//! sysroot lookups of the ELF closure ([`crate::elf::sysroot`], whose
//! symlinks live on disk under the sysroot).
//!
//! It walks like the kernel's path lookup after a chroot: components are
//! taken one at a time, `.` is skipped, `..` goes up but never above `/`,
//! and a symlink is replaced by its target, from `/` when the target is
//! absolute. The caller decides what a component is (it looks it up in its
//! own namespace) and calls [`Walk::follow`] on a symlink; the walker owns
//! the component stack and the one limit on symlinks followed.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// Symlinks followed while resolving one path: the kernel's `MAXSYMLINKS`.
pub(crate) const MAX_SYMLINKS: u32 = 40;

/// More than [`MAX_SYMLINKS`] symlinks on one path (a loop, usually).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyLinks;

/// A path walk in progress.
#[derive(Debug)]
pub(crate) struct Walk {
    /// Components still to walk, the next one last.
    pending: Vec<OsString>,
    /// The resolved components so far.
    done: Vec<OsString>,
    links: u32,
}

impl Walk {
    /// A walk of `path`, from `/` whether or not it starts with one.
    pub(crate) fn new(path: impl AsRef<OsStr>) -> Walk {
        let mut w = Walk {
            pending: Vec::new(),
            done: Vec::new(),
            links: 0,
        };
        w.push_front(path.as_ref());
        w
    }

    fn push_front(&mut self, path: &OsStr) {
        let parts = path
            .as_bytes()
            .split(|&b| b == b'/')
            .filter(|s| !s.is_empty());
        let parts: Vec<OsString> = parts.map(|p| OsStr::from_bytes(p).to_os_string()).collect();
        self.pending.extend(parts.into_iter().rev());
    }

    /// Steps onto the next component (after any `.` and `..`); `false` when
    /// the path is used up.
    pub(crate) fn step(&mut self) -> bool {
        while let Some(part) = self.pending.pop() {
            match part.as_bytes() {
                b"." => {}
                b".." => {
                    self.done.pop();
                }
                _ => {
                    self.done.push(part);
                    return true;
                }
            }
        }
        false
    }

    /// Whether the current component is the last one.
    pub(crate) fn at_end(&self) -> bool {
        self.pending.is_empty()
    }

    /// Replaces the current component, a symlink, by its target.
    pub(crate) fn follow(&mut self, target: impl AsRef<OsStr>) -> Result<(), TooManyLinks> {
        self.links += 1;
        if self.links > MAX_SYMLINKS {
            return Err(TooManyLinks);
        }
        self.done.pop();
        let target = target.as_ref();
        if target.as_bytes().starts_with(b"/") {
            self.done.clear();
        }
        self.push_front(target);
        Ok(())
    }

    /// The path walked so far, absolute, without `.` or `..`.
    pub(crate) fn current(&self) -> PathBuf {
        let mut bytes = Vec::new();
        for part in &self.done {
            bytes.push(b'/');
            bytes.extend_from_slice(part.as_bytes());
        }
        if bytes.is_empty() {
            bytes.push(b'/');
        }
        PathBuf::from(OsString::from_vec(bytes))
    }

    /// [`Walk::current`] as text (exact when the path and the targets
    /// followed are UTF-8, as the image's are).
    pub(crate) fn current_str(&self) -> String {
        self.current().to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks `path` over a fixed symlink table, as the tree does.
    fn resolve(links: &[(&str, &str)], path: &str) -> Result<String, TooManyLinks> {
        let mut w = Walk::new(path);
        while w.step() {
            let cur = w.current_str();
            if let Some((_, t)) = links.iter().find(|(l, _)| *l == cur) {
                w.follow(t)?;
            }
        }
        Ok(w.current_str())
    }

    #[test]
    fn relative_absolute_dot_and_dotdot_targets() {
        let links = [
            ("/lib", "usr/lib"),
            ("/usr/lib/up", "../.."),
            ("/abs", "/usr/./lib"),
        ];
        assert_eq!(resolve(&links, "/lib/x/./y").unwrap(), "/usr/lib/x/y");
        assert_eq!(resolve(&links, "lib/up/../../etc").unwrap(), "/etc");
        assert_eq!(resolve(&links, "/abs/z").unwrap(), "/usr/lib/z");
        assert_eq!(resolve(&links, "/..").unwrap(), "/");
        assert_eq!(resolve(&links, "").unwrap(), "/");
    }

    #[test]
    fn forty_links_resolve_and_forty_one_are_a_loop() {
        let names: Vec<String> = (0..=41).map(|i| format!("/l{i}")).collect();
        let links: Vec<(&str, &str)> = (0..41)
            .map(|i| (names[i].as_str(), names[i + 1].as_str()))
            .collect();
        assert_eq!(resolve(&links[1..], "/l1").unwrap(), "/l41");
        assert_eq!(resolve(&links, "/l0"), Err(TooManyLinks));
    }

    #[test]
    fn non_utf8_components_are_kept_as_bytes() {
        let mut w = Walk::new(OsStr::from_bytes(b"/a/\xff"));
        while w.step() {}
        assert_eq!(w.current().as_os_str().as_bytes(), b"/a/\xff");
    }
}
