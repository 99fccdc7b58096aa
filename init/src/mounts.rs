//! The early mounts, as one table, and the mounts of the configuration.
//!
//! Every mount point is checked against `/proc/self/mountinfo` first: after a
//! switch root the moved `/dev`, `/proc`, `/sys` and `/run` are already there,
//! and mounting a tmpfs again would silently stack a second, empty one.
//! Mounting a single-superblock file system again fails with EBUSY, which
//! also means "already there".

use crate::sys::seam::Sys;
use mkrootfs_config::MountConfig;
use nix::errno::Errno;
use nix::mount::MsFlags;
use std::fmt;
use std::path::Path;

/// One early mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Early {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: &'static str,
    /// A failed required mount is fatal.
    pub required: bool,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);
const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);

/// The early mounts, in order (a target's parent is mounted before it).
pub const EARLY: &[Early] = &[
    Early {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        required: true,
    },
    Early {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        required: true,
    },
    Early {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
        required: true,
    },
    Early {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "newinstance,ptmxmode=0666,mode=0620",
        required: false,
    },
    Early {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=1777",
        required: false,
    },
    Early {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=0755",
        required: true,
    },
    Early {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=1777",
        required: false,
    },
    Early {
        source: "cgroup2",
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        required: false,
    },
];

/// Symlinks made after the early mounts: (link, target). `/dev/ptmx` points
/// at the devpts instance mounted with `newinstance`.
pub const EARLY_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

/// A mount that failed; Display names the mount, the errno is the source.
#[derive(Debug, PartialEq, Eq)]
pub struct MountError {
    pub what: String,
    pub target: String,
    pub step: &'static str,
    pub errno: Errno,
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {}", self.step, self.what, self.target)
    }
}

impl std::error::Error for MountError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.errno)
    }
}

/// Unescapes the octal escapes (`\040` for a space) of mountinfo fields.
pub fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = (b[i] == b'\\' && i + 3 < b.len())
            .then(|| &b[i + 1..i + 4])
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        if let Some(c) = code {
            out.push(c);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points listed in a mountinfo text, in mount order.
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .collect()
}

fn current_mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| mount_points(&s))
        .unwrap_or_default()
}

fn mkdir_p(target: &str) -> Result<(), Errno> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(target)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Makes one mount unless its target is already a mount point. `Ok(false)`
/// when it was already mounted.
fn mount_one(
    sys: &dyn Sys,
    source: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: &str,
    mounted: &[String],
) -> Result<bool, MountError> {
    if mounted.iter().any(|m| m == target) {
        return Ok(false);
    }
    let err = |step, errno| MountError {
        what: format!("{fstype} ({source})"),
        target: target.into(),
        step,
        errno,
    };
    mkdir_p(target).map_err(|e| err("create mount point for", e))?;
    let data = (!data.is_empty()).then_some(data);
    match sys.mount(Some(source), target, Some(fstype), flags, data) {
        Ok(()) => Ok(true),
        Err(Errno::EBUSY) => Ok(false),
        Err(e) => Err(err("mount", e)),
    }
}

/// Makes the early mounts and links. A failed required mount is returned;
/// a failed optional one is logged.
pub fn early(sys: &dyn Sys) -> Result<(), MountError> {
    // mountinfo is read once /proc is there; later mounts are added to the
    // list as they are made (each read of mountinfo costs a few ms under
    // emulation).
    early_mounts(sys, current_mount_points(), &current_mount_points)?;
    for (link, target) in EARLY_LINKS {
        if let Err(e) = ensure_symlink(Path::new(link), target) {
            crate::warn!("symlink {link} -> {target}: {e}");
        }
    }
    Ok(())
}

/// The [`EARLY`] table over what is `mounted`; `reread` gives the mount
/// points again once proc is mounted.
fn early_mounts(
    sys: &dyn Sys,
    mut mounted: Vec<String>,
    reread: &dyn Fn() -> Vec<String>,
) -> Result<(), MountError> {
    for m in EARLY {
        match mount_one(sys, m.source, m.target, m.fstype, m.flags, m.data, &mounted) {
            Ok(true) if m.fstype == "proc" => mounted = reread(),
            Ok(true) => mounted.push(m.target.to_string()),
            Ok(false) => crate::debug!("{} already mounted", m.target),
            Err(e) if m.required => return Err(e),
            Err(e) => crate::warn!("{} (optional, continuing)", crate::log::Chain(&e)),
        }
    }
    Ok(())
}

/// Makes `link` a symlink to `target`, replacing whatever else is there
/// (devtmpfs creates `/dev/ptmx` as a device node).
fn ensure_symlink(link: &Path, target: &str) -> std::io::Result<()> {
    match std::fs::read_link(link) {
        Ok(t) if t == Path::new(target) => return Ok(()),
        Ok(_) => std::fs::remove_file(link)?,
        Err(_) if link.symlink_metadata().is_ok() => std::fs::remove_file(link)?,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, link)
}

/// Splits mount(8)-style options into flags and the data string.
pub fn parse_options(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "lazytime" => flags |= MsFlags::MS_LAZYTIME,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "suid" | "dev" | "exec" | "async" | "atime" | "defaults" => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// The `mounts` of the configuration. Sources such as `LABEL=` are passed to
/// the kernel as written (the root engineer's resolver handles the root).
pub fn configured(sys: &dyn Sys, mounts: &[MountConfig]) -> Result<(), MountError> {
    for m in mounts {
        let (flags, data) = parse_options(&m.options);
        let mounted = current_mount_points();
        match mount_one(sys, &m.source, &m.target, &m.fstype, flags, &data, &mounted) {
            Ok(true) => crate::info!("mounted {} ({}) on {}", m.source, m.fstype, m.target),
            Ok(false) => crate::info!("{} already mounted", m.target),
            Err(e) if m.required => return Err(e),
            Err(e) => crate::warn!("{} (optional, continuing)", crate::log::Chain(&e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::seam::Recorder;

    #[test]
    fn early_mounts_in_table_order_skipping_what_is_mounted() {
        let d = tempfile::tempdir().unwrap();
        let sys = Recorder::new(d.path());
        // After a switch root /dev, /proc, /sys and /run are already there.
        let moved = || ["/proc", "/sys", "/dev", "/run"].map(String::from).to_vec();
        early_mounts(&sys, moved(), &moved).unwrap();
        assert_eq!(
            sys.lines(),
            [
                "mount devpts /dev/pts devpts MsFlags(MS_NOSUID | MS_NOEXEC) newinstance,ptmxmode=0666,mode=0620",
                "mount shm /dev/shm tmpfs MsFlags(MS_NOSUID | MS_NODEV) mode=1777",
                "mount tmpfs /tmp tmpfs MsFlags(MS_NOSUID | MS_NODEV) mode=1777",
                "mount cgroup2 /sys/fs/cgroup cgroup2 MsFlags(MS_NOSUID | MS_NODEV | MS_NOEXEC)",
            ]
        );
        // EBUSY means "already there"; an optional mount's failure is
        // logged and the rest goes on; a required one's is returned.
        let sys = Recorder::new(d.path()).failing("mount devpts", Errno::EBUSY, 1);
        early_mounts(&sys, moved(), &moved).unwrap();
        assert_eq!(sys.lines().len(), 4);
        let sys = Recorder::new(d.path()).failing("mount shm", Errno::ENODEV, 1);
        early_mounts(&sys, moved(), &moved).unwrap();
        assert_eq!(sys.lines().len(), 4);
        let everything = || EARLY.iter().map(|m| m.target.to_string()).collect();
        let sys = Recorder::new(d.path()).failing("mount proc", Errno::EPERM, 1);
        let e = early_mounts(&sys, vec![], &everything).unwrap_err();
        assert_eq!(e.to_string(), "mount proc (proc) on /proc");
        assert_eq!(e.errno, Errno::EPERM);
        assert_eq!(sys.lines().len(), 1);
    }

    #[test]
    fn table_mounts_parents_first_and_requires_the_basics() {
        for (i, m) in EARLY.iter().enumerate() {
            for (j, p) in EARLY.iter().enumerate() {
                if m.target.starts_with(&format!("{}/", p.target)) {
                    assert!(
                        j < i,
                        "{} is mounted before {}, which hides it",
                        m.target,
                        p.target
                    );
                }
            }
        }
        let required: Vec<&str> = EARLY
            .iter()
            .filter(|m| m.required)
            .map(|m| m.target)
            .collect();
        assert_eq!(required, ["/proc", "/sys", "/dev", "/run"]);
        let devpts = EARLY.iter().find(|m| m.fstype == "devpts").unwrap();
        assert!(devpts.data.contains("newinstance") && devpts.data.contains("ptmxmode=0666"));
    }

    #[test]
    fn mountinfo_points_are_unescaped() {
        let mi = "22 1 0:21 / / rw - rootfs rootfs rw\n\
                  23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw\n\
                  30 22 8:1 / /mnt/my\\040disk rw - ext4 /dev/sda1 rw\n";
        assert_eq!(mount_points(mi), ["/", "/dev", "/mnt/my disk"]);
        assert_eq!(unescape("a\\134b\\04"), "a\\b\\04");
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) = parse_options("ro,nosuid,size=10m,noatime,mode=0700,defaults");
        assert_eq!(
            f,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOATIME
        );
        assert_eq!(d, "size=10m,mode=0700");
        assert_eq!(parse_options(""), (MsFlags::empty(), String::new()));
    }

    #[test]
    fn mount_error_names_mount_and_errno() {
        let e = MountError {
            what: "sysfs (sysfs)".into(),
            target: "/sys".into(),
            step: "mount",
            errno: Errno::ENODEV,
        };
        assert_eq!(
            crate::log::Chain(&e).to_string(),
            "mount sysfs (sysfs) on /sys: ENODEV: No such device"
        );
    }

    #[test]
    fn already_mounted_target_is_skipped_without_a_syscall() {
        // Not root on the host: a real mount would fail with EPERM.
        let d = tempfile::tempdir().unwrap();
        let sys = Recorder::new(d.path());
        let r = mount_one(
            &sys,
            "proc",
            "/proc",
            "proc",
            MsFlags::empty(),
            "",
            &["/proc".to_string()],
        );
        assert_eq!(r, Ok(false));
        assert!(sys.lines().is_empty());
    }
}
