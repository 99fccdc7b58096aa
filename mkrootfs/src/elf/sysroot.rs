//! Path lookup inside a sysroot, the way the loader would see it after a
//! chroot: absolute symlinks and `..` never leave the sysroot.
//!
//! `Path::canonicalize` would follow an absolute symlink such as
//! `/srv/debian/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...` to the
//! *host's* file, which is the wrong file (or a missing one) for a foreign
//! sysroot. This walks the components itself, like `openat2(RESOLVE_IN_ROOT)`.

use crate::walk::Walk;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Resolves `path` (absolute, as seen inside `root`) following every symlink
/// inside `root`. Returns the resolved path as seen inside `root`; the file on
/// the host is `host_path(root, &result)`.
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut walk = Walk::new(path);
    while walk.step() {
        let host = host_path(root, &walk.current());
        let meta = std::fs::symlink_metadata(&host)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host)?;
            walk.follow(&target)
                .map_err(|_| io::Error::other("too many levels of symbolic links"))?;
        } else if !walk.at_end() && !meta.is_dir() {
            return Err(io::Error::from(io::ErrorKind::NotADirectory));
        }
    }
    Ok(walk.current())
}

/// Where the file at `inside` (a path inside `root` returned by
/// [`resolve_in_root`], so without `..`) lives on the host.
pub(crate) fn host_path(root: &Path, inside: &Path) -> PathBuf {
    let mut host = root.to_path_buf();
    for component in inside.components() {
        // Only plain names: a stray `..` must not climb out of the sysroot.
        if let Component::Normal(part) = component {
            host.push(part);
        }
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlink_stays_inside_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/lib/x")).unwrap();
        std::fs::write(r.join("usr/lib/x/libz.so.1.2"), b"z").unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("/lib/x/libz.so.1.2", r.join("usr/lib/x/libz.so.1")).unwrap();
        symlink("../../../../../..", r.join("usr/up")).unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("/lib/x/libz.so.1")).unwrap(),
            PathBuf::from("/usr/lib/x/libz.so.1.2")
        );
        // `..` past the top stays at the sysroot's top, as after chroot.
        assert_eq!(
            resolve_in_root(r, Path::new("/usr/up/lib/x/../x/libz.so.1.2")).unwrap(),
            PathBuf::from("/usr/lib/x/libz.so.1.2")
        );
        assert_eq!(
            resolve_in_root(r, Path::new("/lib/x/missing"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn symlink_loop_is_an_error_not_a_hang() {
        let root = tempfile::tempdir().unwrap();
        symlink("/b", root.path().join("a")).unwrap();
        symlink("/a", root.path().join("b")).unwrap();
        let err = resolve_in_root(root.path(), Path::new("/a/c")).unwrap_err();
        assert_eq!(err.to_string(), "too many levels of symbolic links");
    }
}
