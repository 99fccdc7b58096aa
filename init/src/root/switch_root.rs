//! Leaving the initramfs, as busybox `switch_root` and systemd do it.
//!
//! The kernel's initial rootfs cannot be unmounted, and before Linux 7.0
//! `pivot_root` refuses it (EINVAL). So: make every mount private (MS_MOVE
//! fails on shared mounts), move `/dev`, `/proc`, `/sys`, `/run` into the
//! new root, delete the initramfs files to give their memory back (never
//! crossing into another mount: `st_dev` is compared), then either
//! `pivot_root` (when `/` is a real mount) or `mount --move newroot /` +
//! `chroot .`.

use super::RootError;
use crate::sys::seam::Sys;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{lstat, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// The API file systems moved into the new root.
pub const API_MOUNTS: &[&str] = &["/dev", "/proc", "/sys", "/run"];

/// Early mounts that are not carried over: the new root gets a fresh one
/// (the init core re-runs its early mounts), and detaching the old one
/// frees its memory instead of leaving it on the hidden initramfs.
pub const DROPPED_MOUNTS: &[&str] = &["/tmp"];

fn step<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> RootError + 'a {
    move |errno| RootError::Step {
        step,
        path: path.to_owned(),
        errno,
    }
}

/// `mount --make-rprivate /`: MS_MOVE (and pivot_root) refuse mounts whose
/// parent is shared, and propagation would copy our mounts elsewhere.
pub fn make_private(sys: &dyn Sys) -> Result<(), RootError> {
    sys.mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(step(
        "make mounts private (MS_REC|MS_PRIVATE)",
        Path::new("/"),
    ))
}

/// Creates a directory (and parents) if missing.
pub fn mkdir_p(path: &Path) -> Result<(), RootError> {
    std::fs::create_dir_all(path).map_err(|e| RootError::Step {
        step: "create directory",
        path: path.to_owned(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })
}

/// Whether `path` is a mount point: its device differs from its parent's.
fn is_mount_point(path: &Path) -> bool {
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (lstat(path), lstat(parent)) {
        (Ok(a), Ok(b)) => a.st_dev != b.st_dev,
        _ => false,
    }
}

/// Moves each API mount into `newroot` and detaches [`DROPPED_MOUNTS`]. A
/// mount whose target directory the (read-only) new root lacks is detached
/// instead, with a warning: the init core mounts a fresh one after the
/// switch where it can.
pub fn move_api_mounts(sys: &dyn Sys, newroot: &Path) -> Result<(), RootError> {
    for m in API_MOUNTS {
        let from = Path::new(m);
        if !is_mount_point(from) {
            continue;
        }
        let to = newroot.join(m.trim_start_matches('/'));
        if !to.is_dir() && std::fs::create_dir(&to).is_err() {
            crate::warn!(
                "{} is missing in the new root: {m} is unmounted",
                to.display()
            );
            sys.umount2(m, MntFlags::MNT_DETACH)
                .map_err(step("detach", from))?;
            continue;
        }
        sys.mount(
            Some(m),
            &to.to_string_lossy(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(step("move mount (MS_MOVE) to the new root", from))?;
    }
    for m in DROPPED_MOUNTS {
        let path = Path::new(m);
        if is_mount_point(path) {
            sys.umount2(m, MntFlags::MNT_DETACH)
                .map_err(step("detach", path))?;
        }
    }
    Ok(())
}

/// Deletes everything below `dir` that lives on device `dev`, without
/// descending into other mounts (they keep their contents) and leaving the
/// directories that contain them. Errors are counted, not fatal: a file we
/// cannot delete only costs its memory. Returns (deleted, failed).
pub fn delete_contents(dir: &Path, dev: u64) -> (usize, usize) {
    let (mut deleted, mut failed) = (0, 0);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, 1);
    };
    for ent in rd.flatten() {
        let path = ent.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            failed += 1;
            continue;
        };
        if meta.dev() != dev {
            continue;
        }
        if meta.is_dir() {
            let (d, f) = delete_contents(&path, dev);
            deleted += d;
            failed += f;
            match std::fs::remove_dir(&path) {
                Ok(()) => deleted += 1,
                // A directory above a mount point stays, as it must.
                Err(_) if holds_mount(&path, dev) => {}
                Err(_) => failed += 1,
            }
        } else {
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(_) => failed += 1,
            }
        }
    }
    (deleted, failed)
}

/// Whether a directory (left after deletion) still has an entry on another
/// device, which is why it could not be removed.
fn holds_mount(dir: &Path, dev: u64) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            std::fs::symlink_metadata(e.path())
                .is_ok_and(|m| m.dev() != dev || (m.is_dir() && holds_mount(&e.path(), dev)))
        })
    })
}

/// Makes `newroot` the root: frees the initramfs, then `pivot_root` or,
/// where the kernel refuses it on the initial rootfs, MS_MOVE + chroot.
pub fn switch(sys: &dyn Sys, newroot: &Path) -> Result<(), RootError> {
    let at = newroot.to_string_lossy();
    sys.chdir(&at).map_err(step("chdir", newroot))?;
    // Like busybox switch_root, only ever delete a RAM-backed root: an init
    // started on a disk root must not wipe it.
    if root_is_ram() {
        let root_dev = lstat("/").map_err(step("stat", Path::new("/")))?.st_dev;
        let (deleted, failed) = delete_contents(Path::new("/"), root_dev);
        crate::debug!("initramfs freed: {deleted} entries deleted, {failed} could not be");
    } else {
        crate::warn!("/ is not a ramfs or tmpfs: its files are left in place");
    }
    enter(sys, newroot)
}

/// From the new root as working directory: it becomes `/`.
fn enter(sys: &dyn Sys, newroot: &Path) -> Result<(), RootError> {
    // pivot_root(".", "."): the old root ends up stacked on the new one and
    // is detached right away (pivot_root(2), "NOTES").
    match sys.pivot_root(".", ".") {
        Ok(()) => {
            sys.umount2(".", MntFlags::MNT_DETACH)
                .map_err(step("detach the old root", Path::new("/")))?;
        }
        Err(Errno::EINVAL) => {
            // The initial rootfs: move the new root over it and chroot.
            sys.mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
                .map_err(step("move the new root onto / (MS_MOVE)", newroot))?;
            sys.chroot(".").map_err(step("chroot", newroot))?;
        }
        Err(e) => return Err(step("pivot_root", newroot)(e)),
    }
    sys.chdir("/").map_err(step("chdir", Path::new("/")))
}

/// Whether `/` is ramfs or tmpfs (the initramfs is one of them).
fn root_is_ram() -> bool {
    // RAMFS_MAGIC (linux/magic.h); nix names only the tmpfs one.
    const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;
    nix::sys::statfs::statfs("/").is_ok_and(|s| {
        let t = s.filesystem_type();
        t == nix::sys::statfs::TMPFS_MAGIC || t.0 as libc::c_long == RAMFS_MAGIC
    })
}

/// Copies the tree at `src` (one file system: other mounts become empty
/// directories) into `dst`, keeping types, modes, owners, times, device
/// nodes, symlinks and hard links.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), RootError> {
    let dev = lstat(src).map_err(step("stat", src))?.st_dev;
    let mut links = HashMap::new();
    copy_dir(src, dst, dev, &mut links)
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    dev: u64,
    links: &mut HashMap<u64, std::path::PathBuf>,
) -> Result<(), RootError> {
    let rd = std::fs::read_dir(src).map_err(|e| io_step("list", src, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| io_step("list", src, e))?;
        let from = ent.path();
        if from == dst {
            continue; // the copy's own mount point
        }
        let to = dst.join(ent.file_name());
        let meta = std::fs::symlink_metadata(&from).map_err(|e| io_step("stat", &from, e))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            if to.symlink_metadata().is_err() {
                std::fs::create_dir(&to).map_err(|e| io_step("create directory", &to, e))?;
            }
            if meta.dev() == dev {
                copy_dir(&from, &to, dev, links)?;
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(|e| io_step("read link", &from, e))?;
            std::os::unix::fs::symlink(&target, &to)
                .map_err(|e| io_step("create symlink", &to, e))?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&meta.ino()) {
                    std::fs::hard_link(first, &to)
                        .map_err(|e| io_step("create hard link", &to, e))?;
                    continue;
                }
                links.insert(meta.ino(), to.clone());
            }
            std::fs::copy(&from, &to).map_err(|e| io_step("copy", &from, e))?;
        } else {
            let kind = SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
            if kind != SFlag::S_IFCHR && kind != SFlag::S_IFBLK && kind != SFlag::S_IFIFO {
                continue; // sockets belong to processes, not to the image
            }
            let perm = Mode::from_bits_truncate(meta.mode() & 0o7777);
            mknod(&to, kind, perm, meta.rdev()).map_err(step("mknod", &to))?;
        }
        set_attributes(&to, &meta)?;
    }
    let meta = std::fs::symlink_metadata(src).map_err(|e| io_step("stat", src, e))?;
    set_attributes(dst, &meta)
}

/// Owner, then mode (chown clears set-id bits), then times.
fn set_attributes(path: &Path, meta: &std::fs::Metadata) -> Result<(), RootError> {
    fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(Uid::from_raw(meta.uid())),
        Some(Gid::from_raw(meta.gid())),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(step("chown", path))?;
    if !meta.file_type().is_symlink() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| io_step("chmod", path, e))?;
    }
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(step("set times", path))
}

fn io_step(step: &'static str, path: &Path, e: std::io::Error) -> RootError {
    RootError::Step {
        step,
        path: path.to_owned(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::seam::Recorder;
    use nix::mount::{mount, umount2};

    #[test]
    fn the_new_root_becomes_slash_by_pivot_root_or_by_move_and_chroot() {
        let d = tempfile::tempdir().unwrap();
        let new = d.path().join("sysroot");
        let sys = Recorder::new(d.path());
        enter(&sys, &new).unwrap();
        assert_eq!(
            sys.lines(),
            [
                "pivot_root . .",
                "umount2 . MntFlags(MNT_DETACH)",
                "chdir /"
            ]
        );
        // The initial rootfs refuses pivot_root (before Linux 7.0).
        let sys = Recorder::new(d.path()).failing("pivot_root", Errno::EINVAL, 1);
        enter(&sys, &new).unwrap();
        assert_eq!(
            sys.lines(),
            [
                "pivot_root . .",
                "mount . / - MsFlags(MS_MOVE)",
                "chroot .",
                "chdir /"
            ]
        );
        // Each failure names its step and the path.
        for (prefix, errno, want) in [
            (
                "pivot_root",
                Errno::EPERM,
                "pivot_root ROOT/sysroot: EPERM: Operation not permitted",
            ),
            (
                "umount2",
                Errno::EBUSY,
                "detach the old root /: EBUSY: Device or resource busy",
            ),
            (
                "chdir /",
                Errno::ENOENT,
                "chdir /: ENOENT: No such file or directory",
            ),
        ] {
            let sys = Recorder::new(d.path()).failing(prefix, errno, 1);
            let e = enter(&sys, &new).unwrap_err();
            let shown = crate::log::Chain(&e).to_string().replacen(
                &d.path().display().to_string(),
                "ROOT",
                1,
            );
            assert_eq!(shown, want, "{prefix}");
        }
        assert_eq!(
            make_private(&Recorder::new(d.path()).failing("mount", Errno::EINVAL, 1))
                .map_err(|e| crate::log::Chain(&e).to_string()),
            Err("make mounts private (MS_REC|MS_PRIVATE) /: EINVAL: Invalid argument".into())
        );
    }
    use std::fs;
    use std::os::unix::fs::symlink;

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn delete_contents_removes_one_file_system_and_spares_mounts() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        fs::create_dir_all(t.join("a/b/c")).unwrap();
        fs::write(t.join("a/b/c/f"), b"x").unwrap();
        fs::write(t.join("top"), b"x").unwrap();
        symlink("/nonexistent", t.join("dangling")).unwrap();
        fs::create_dir_all(t.join("sysroot")).unwrap();
        fs::create_dir_all(t.join("deep/mnt")).unwrap();
        let mounted = is_root()
            && mount(
                Some("tmpfs"),
                &t.join("sysroot"),
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .is_ok()
            && mount(
                Some("tmpfs"),
                &t.join("deep/mnt"),
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .is_ok();
        if mounted {
            fs::write(t.join("sysroot/keep"), b"new root").unwrap();
            fs::write(t.join("deep/mnt/keep"), b"other mount").unwrap();
        }
        let dev = lstat(t).unwrap().st_dev;
        let (deleted, failed) = delete_contents(t, dev);
        let mut left: Vec<String> = fs::read_dir(t)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        if mounted {
            assert_eq!((deleted, failed), (6, 0));
            assert_eq!(left, ["deep", "sysroot"]);
            assert_eq!(fs::read(t.join("sysroot/keep")).unwrap(), b"new root");
            assert_eq!(fs::read(t.join("deep/mnt/keep")).unwrap(), b"other mount");
            umount2(&t.join("sysroot"), MntFlags::MNT_DETACH).unwrap();
            umount2(&t.join("deep/mnt"), MntFlags::MNT_DETACH).unwrap();
        } else {
            // Without mounts everything goes: a, a/b, a/b/c, f, top, dangling,
            // sysroot, deep, deep/mnt.
            assert_eq!((deleted, failed), (9, 0));
            assert!(left.is_empty(), "{left:?}");
        }
    }

    #[test]
    fn copy_tree_keeps_types_modes_links_and_times() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::create_dir_all(&dst).unwrap();
        fs::write(src.join("bin/busybox"), b"ELF").unwrap();
        fs::set_permissions(src.join("bin/busybox"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(src.join("bin/busybox"), src.join("bin/sh")).unwrap();
        symlink("busybox", src.join("bin/ls")).unwrap();
        fs::set_permissions(src.join("bin"), fs::Permissions::from_mode(0o711)).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let dev_node = is_root()
            && mknod(
                &src.join("console"),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o600),
                nix::sys::stat::makedev(5, 1),
            )
            .is_ok();
        let mtime = TimeSpec::new(1_000_000, 0);
        utimensat(
            nix::fcntl::AT_FDCWD,
            &src.join("bin/busybox"),
            &mtime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();

        copy_tree(&src, &dst).unwrap();

        let m = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
        assert_eq!(fs::read(dst.join("bin/busybox")).unwrap(), b"ELF");
        assert_eq!(m("bin/busybox").mode() & 0o7777, 0o4755);
        assert_eq!(m("bin/busybox").mtime(), 1_000_000);
        assert_eq!(m("bin/sh").ino(), m("bin/busybox").ino());
        assert_eq!(m("bin/busybox").nlink(), 2);
        assert_eq!(
            fs::read_link(dst.join("bin/ls")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(m("bin").mode() & 0o7777, 0o711);
        assert_eq!(m("fifo").mode() & libc::S_IFMT, libc::S_IFIFO);
        assert_eq!(
            m("fifo").uid(),
            fs::symlink_metadata(src.join("fifo")).unwrap().uid()
        );
        if dev_node {
            assert_eq!(m("console").mode() & libc::S_IFMT, libc::S_IFCHR);
            assert_eq!(m("console").rdev(), nix::sys::stat::makedev(5, 1));
        }
    }
}
