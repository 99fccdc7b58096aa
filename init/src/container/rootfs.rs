//! The container's file system, in the child, in the order runc, crun and
//! youki use: `/` rslave, the root bound onto a staging directory, the
//! plan's mounts inside it (targets resolved without leaving it), the
//! symlinks, the root remounted `nodev` (and read-only when asked),
//! `pivot_root` and the old root detached; then the sysctls, the masked
//! and the read-only paths.

use super::StepError;
use crate::sys::seam::Sys;
use mkrootfs_config::container::{ContainerPlan, PlanMount, MS_BIND, MS_REC};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sys::ns::{self, open_in_root};

type Result<T> = std::result::Result<T, StepError>;

fn step<'a>(step: &'static str, path: &'a str) -> impl FnOnce(Errno) -> StepError + 'a {
    move |e| StepError::new(step, path, e as i32)
}

fn step_io<'a>(step: &'static str, path: &'a str) -> impl FnOnce(std::io::Error) -> StepError + 'a {
    move |e| StepError::new(step, path, e.raw_os_error().unwrap_or(libc::EIO))
}

fn cpath(s: &str) -> Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| StepError::new("path", s, libc::EINVAL))
}

/// `/proc/self/fd/N`: how a descriptor opened safely becomes a mount target.
fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn flags(bits: u64) -> MsFlags {
    MsFlags::from_bits_truncate(bits as libc::c_ulong)
}

/// Mount flags a bind remount must repeat: a user namespace may not clear
/// the locked `nosuid`, `nodev`, `noexec`, `ro` of the mount it copies.
fn locked_flags(path: &str) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut m = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
    ] {
        if f.contains(fs) {
            m |= ms;
        }
    }
    m
}

/// Opens `path` inside `root` (O_PATH), creating it when missing: a
/// directory, or an empty file when `file`. Parents are created as
/// directories, each resolved inside the root.
pub fn ensure_in_root(root: BorrowedFd<'_>, path: &str, file: bool) -> Result<OwnedFd> {
    let c = cpath(path)?;
    match open_in_root(root, &c, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(step_io("open", path)(e)),
    }
    let trimmed = path.trim_end_matches('/');
    let (parent, name) = match trimmed.rfind('/') {
        Some(0) => ("/", &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => ("/", trimmed),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(StepError::new("open", path, libc::EINVAL));
    }
    let dir = ensure_in_root(root, parent, false)?;
    // An O_PATH descriptor can be the dirfd of mkdirat/openat.
    let made = if file {
        nix::fcntl::openat(
            dir.as_fd(),
            name,
            nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_WRONLY
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop)
    } else {
        nix::sys::stat::mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o755))
    };
    match made {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(step("create", path)(e)),
    }
    open_in_root(root, &c, libc::O_PATH).map_err(step_io("open", path))
}

/// Whether `path` (of the VM, before the pivot) is a directory.
fn is_dir(path: &str) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// One plan mount inside `root` (a descriptor of the staging directory).
fn mount_one(sys: &dyn Sys, root: BorrowedFd<'_>, m: &PlanMount) -> Result<()> {
    let bind = m.flags & MS_BIND != 0;
    let target = ensure_in_root(root, &m.target, bind && !is_dir(&m.source))?;
    let at = fd_path(&target);
    if bind {
        sys.mount(
            Some(m.source.as_str()),
            at.as_str(),
            None::<&str>,
            flags(m.flags & (MS_BIND | MS_REC)),
            None::<&str>,
        )
        .map_err(step("mount", &m.target))?;
        let extra = flags(m.flags & !(MS_BIND | MS_REC));
        if !extra.is_empty() {
            // sys.mount(2) ignores the other flags on a new bind: remount the
            // new mount (opened again, the old descriptor is beneath it).
            let top = ensure_in_root(root, &m.target, false)?;
            let at = fd_path(&top);
            let keep = locked_flags(&at);
            sys.mount(
                None::<&str>,
                at.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | keep,
                None::<&str>,
            )
            .map_err(step("remount", &m.target))?;
        }
        return Ok(());
    }
    // Where proc and sysfs land decides what the masks cover: like runc,
    // refuse a target that is a symbolic link (`/proc -> /` would put proc
    // over the root, hiding the program).
    if m.fstype == "proc" || m.fstype == "sysfs" {
        let link = open_in_root(root, &cpath(&m.target)?, libc::O_PATH | libc::O_NOFOLLOW)
            .map_err(step_io("open", &m.target))?;
        let st = nix::sys::stat::fstat(link.as_fd()).map_err(step("stat", &m.target))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
            return Err(StepError::new(
                "mount: not an ordinary directory",
                &m.target,
                libc::ENOTDIR,
            ));
        }
    }
    let data = (!m.data.is_empty()).then_some(m.data.as_str());
    match sys.mount(
        Some(m.source.as_str()),
        at.as_str(),
        Some(m.fstype.as_str()),
        flags(m.flags),
        data,
    ) {
        Ok(()) => Ok(()),
        // Without a network namespace of its own, a user namespace may not
        // mount sysfs: bind the VM's read-only instead, as runc does.
        Err(Errno::EPERM) if m.fstype == "sysfs" => {
            sys.mount(
                Some("/sys"),
                at.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(step("mount", &m.target))?;
            let top = ensure_in_root(root, &m.target, false)?;
            let at = fd_path(&top);
            let keep = locked_flags(&at);
            sys.mount(
                None::<&str>,
                at.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
                None::<&str>,
            )
            .map_err(step("remount", &m.target))
        }
        Err(e) => Err(step("mount", &m.target)(e)),
    }
}

/// Symbolic links `[target, link]` inside `root`; an existing one is kept.
fn symlink_one(root: BorrowedFd<'_>, target: &str, link: &str) -> Result<()> {
    let (parent, name) = match link.rfind('/') {
        Some(0) => ("/", &link[1..]),
        Some(i) => (&link[..i], &link[i + 1..]),
        None => ("/", link),
    };
    let dir = ensure_in_root(root, parent, false)?;
    match nix::unistd::symlinkat(target, dir.as_fd(), name) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(step("symlink", link)(e)),
    }
}

/// Everything up to and including the pivot. `staging` is an empty
/// directory of the VM for the container root, `vm_staging` another for
/// the initramfs workaround; both made by the init before the clone.
pub fn enter(sys: &dyn Sys, plan: &ContainerPlan, staging: &str, vm_staging: &str) -> Result<()> {
    // Nothing we mount may propagate back to the VM, while the VM's later
    // mounts still reach us (rslave, not rprivate: runc's default).
    sys.mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(step("make rslave", "/"))?;
    // pivot_root needs the new root to be a mount point: bind the container
    // root (recursively, so what is mounted beneath it comes along) onto
    // the staging directory.
    sys.mount(
        Some(plan.root.as_str()),
        staging,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step("bind root", &plan.root))?;
    let root: OwnedFd = std::fs::File::open(staging)
        .map_err(step_io("open", staging))?
        .into();
    for m in &plan.mounts {
        mount_one(sys, root.as_fd(), m)?;
    }
    for [target, link] in &plan.symlinks {
        symlink_one(root.as_fd(), target, link)?;
    }
    drop(root);
    // A device node made inside with CAP_MKNOD must not open: nodev on the
    // root, and read-only when asked.
    let mut f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | locked_flags(staging);
    if plan.readonly_root {
        f |= MsFlags::MS_RDONLY;
    }
    sys.mount(None::<&str>, staging, None::<&str>, f, None::<&str>)
        .map_err(step("remount root", &plan.root))?;
    pivot(sys, staging, vm_staging)
}

/// pivot_root into `staging` and detach the old root. The kernel's
/// initramfs rootfs cannot be pivoted away from (EINVAL before Linux 7.0:
/// it has no parent mount); crun's workaround, without copying: bind the
/// whole `/` onto a directory, move that over `/`, chroot into it: the
/// current root is then a mount with a parent, and pivot_root works.
fn pivot(sys: &dyn Sys, staging: &str, vm_staging: &str) -> Result<()> {
    sys.chdir(staging).map_err(step("chdir", staging))?;
    match sys.pivot_root(".", ".") {
        Ok(()) => {}
        Err(Errno::EINVAL) => {
            sys.mount(
                Some("/"),
                vm_staging,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(step("bind / onto", vm_staging))?;
            sys.chdir(vm_staging).map_err(step("chdir", vm_staging))?;
            sys.mount(
                Some(vm_staging),
                "/",
                None::<&str>,
                MsFlags::MS_MOVE,
                None::<&str>,
            )
            .map_err(step("move over /", vm_staging))?;
            sys.chroot(".").map_err(step("chroot", vm_staging))?;
            // The same path in the copy holds the container root with its
            // mounts (the bind was recursive).
            sys.chdir(staging).map_err(step("chdir", staging))?;
            sys.pivot_root(".", ".")
                .map_err(step("pivot_root", staging))?;
        }
        Err(e) => return Err(step("pivot_root", staging)(e)),
    }
    // The old root is now stacked on "."; detach it (and everything under
    // it) so nothing of the VM stays reachable.
    sys.umount2(".", MntFlags::MNT_DETACH)
        .map_err(step("detach old root", "/"))?;
    sys.chdir("/").map_err(step("chdir", "/"))?;
    Ok(())
}

/// `path` with each component that is exactly `*` replaced by every entry
/// of the directory before it; paths that do not exist are dropped later.
pub fn expand(path: &str) -> Vec<String> {
    let Some(at) = path.find("/*") else {
        return vec![path.to_string()];
    };
    let (dir, rest) = (&path[..at], &path[at + 2..]);
    if !(rest.is_empty() || rest.starts_with('/')) {
        return vec![path.to_string()];
    }
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "/" } else { dir }) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| expand(&format!("{dir}/{n}{rest}")))
        .collect()
}

/// `PROC_SUPER_MAGIC` and `SYSFS_MAGIC` of linux/magic.h.
const PROC_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// `path` (absolute, in the container) opened strictly beneath `root`: no
/// symbolic link on the way, none at the end. Missing: `None`.
fn open_existing(root: BorrowedFd<'_>, path: &str) -> Result<Option<OwnedFd>> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    match ns::open_beneath(root, &cpath(rel)?, libc::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(step_io("open", path)(e)),
    }
}

/// The file system a mask or a read-only path must be on: what is under
/// `/proc` must be procfs and what is under `/sys` sysfs, or an earlier
/// mount (a bind over `/proc/sys`…) has moved it.
fn check_fs(fd: &OwnedFd, path: &str) -> Result<()> {
    let want = if path == "/proc" || path.starts_with("/proc/") {
        PROC_MAGIC
    } else if path == "/sys" || path.starts_with("/sys/") {
        SYSFS_MAGIC
    } else {
        return Ok(());
    };
    let got = ns::fs_magic(fd.as_fd()).map_err(step_io("statfs", path))?;
    if got == want {
        Ok(())
    } else {
        Err(StepError::new("not on its file system", path, libc::EXDEV))
    }
}

/// The container's procfs, checked: `/proc` opened beneath the root
/// without links, procfs, and `/proc/self/fd` (the magic links every mount
/// after this one is made through) on the same instance.
fn checked_proc(root: BorrowedFd<'_>) -> Result<OwnedFd> {
    let proc = open_existing(root, "/proc")?
        .ok_or_else(|| StepError::new("open", "/proc", libc::ENOENT))?;
    check_fs(&proc, "/proc")?;
    let fds = nix::fcntl::openat(
        proc.as_fd(),
        "self/fd",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(step("open", "/proc/self/fd"))?;
    let dev = |fd: BorrowedFd<'_>, path: &str| {
        nix::sys::stat::fstat(fd)
            .map(|st| st.st_dev)
            .map_err(step("stat", path))
    };
    let a = dev(proc.as_fd(), "/proc")?;
    let b = dev(fds.as_fd(), "/proc/self/fd")?;
    if a != b || ns::fs_magic(fds.as_fd()).ok() != Some(PROC_MAGIC) {
        return Err(StepError::new(
            "not on its file system",
            "/proc/self/fd",
            libc::EXDEV,
        ));
    }
    Ok(proc)
}

/// After the pivot: sysctls, then masked and read-only paths, each through
/// a descriptor opened beneath the root or the checked procfs, so that
/// neither a link in the image nor an earlier mount can redirect them.
pub fn finish(sys: &dyn Sys, plan: &ContainerPlan) -> Result<()> {
    let root: OwnedFd = std::fs::File::open("/")
        .map_err(step_io("open", "/"))?
        .into();
    if plan.sysctls.is_empty() && plan.masked_paths.is_empty() && plan.readonly_paths.is_empty() {
        return Ok(());
    }
    let proc = checked_proc(root.as_fd())?;
    for [key, value] in &plan.sysctls {
        let rel = format!("sys/{}", key.trim_start_matches('/'));
        let path = format!("/proc/{rel}");
        let fd = ns::open_beneath(proc.as_fd(), &cpath(&rel)?, libc::O_WRONLY)
            .map_err(step_io("open", &path))?;
        let mut f = std::fs::File::from(fd);
        std::io::Write::write_all(&mut f, value.as_bytes()).map_err(step_io("write", &path))?;
    }
    for p in plan.masked_paths.iter().flat_map(|p| expand(p)) {
        mask(sys, root.as_fd(), &p)?;
    }
    for p in plan.readonly_paths.iter().flat_map(|p| expand(p)) {
        readonly(sys, root.as_fd(), &p)?;
    }
    Ok(())
}

/// Hides `path`: an empty read-only tmpfs over a directory, the
/// container's `/dev/null` (checked to be the real 1:3) over anything else.
fn mask(sys: &dyn Sys, root: BorrowedFd<'_>, path: &str) -> Result<()> {
    let Some(fd) = open_existing(root, path)? else {
        return Ok(());
    };
    check_fs(&fd, path)?;
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(step("stat", path))?;
    let at = fd_path(&fd);
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        return sys
            .mount(
                Some("tmpfs"),
                at.as_str(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0,mode=0555"),
            )
            .map_err(step("mask", path));
    }
    // The source may be reached through the image's own links (resolved
    // inside the root, as the mounts were): what makes it safe is the check
    // that it is the null device.
    let null = open_in_root(root, c"/dev/null", libc::O_PATH)
        .map(Some)
        .or_else(|e| match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => Ok(None),
            _ => Err(step_io("open", "/dev/null")(e)),
        })?
        .ok_or_else(|| StepError::new("mask: open", "/dev/null", libc::ENOENT))?;
    let nst = nix::sys::stat::fstat(null.as_fd()).map_err(step("stat", "/dev/null"))?;
    if SFlag::from_bits_truncate(nst.st_mode) & SFlag::S_IFMT != SFlag::S_IFCHR
        || nst.st_rdev != libc::makedev(1, 3)
    {
        return Err(StepError::new(
            "mask: not the null device",
            "/dev/null",
            libc::EPERM,
        ));
    }
    sys.mount(
        Some(fd_path(&null).as_str()),
        at.as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(step("mask", path))
}

/// Makes `path` read-only: bound onto itself, then remounted.
fn readonly(sys: &dyn Sys, root: BorrowedFd<'_>, path: &str) -> Result<()> {
    let Some(fd) = open_existing(root, path)? else {
        return Ok(());
    };
    check_fs(&fd, path)?;
    let at = fd_path(&fd);
    sys.mount(
        Some(at.as_str()),
        at.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step("bind", path))?;
    let Some(top) = open_existing(root, path)? else {
        return Err(StepError::new("reopen", path, libc::ENOENT));
    };
    let at = fd_path(&top);
    let keep = locked_flags(&at);
    sys.mount(
        None::<&str>,
        at.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
        None::<&str>,
    )
    .map_err(step("remount read-only", path))
}

#[cfg(test)]
mod tests;
