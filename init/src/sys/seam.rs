//! The system calls that set up the machine and a container, behind one
//! trait (youki's `Syscall`): [`Real`] makes them, [`Recorder`] (tests)
//! writes each down and fails the one it is told to. The container's
//! steps (`container/{rootfs,namespaces,caps}.rs`), the early mounts
//! (`mounts.rs`) and `root/switch_root.rs` take a `&dyn Sys`, so the order
//! of their operations and their error paths are unit-tested without a VM.
//!
//! What stays outside: opening files (descriptors are real, on real
//! directories, even in tests) and what only makes sense for real (clone3,
//! execve, seccomp).

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

pub type Result = std::result::Result<(), Errno>;

/// The calls, with nix's types; each returns the errno.
pub trait Sys {
    fn mount(
        &self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result;
    fn umount2(&self, target: &str, flags: MntFlags) -> Result;
    fn pivot_root(&self, new_root: &str, put_old: &str) -> Result;
    fn chdir(&self, path: &str) -> Result;
    fn chroot(&self, path: &str) -> Result;
    fn unshare(&self, flags: CloneFlags) -> Result;
    fn setresuid(&self, uid: u32) -> Result;
    fn setresgid(&self, gid: u32) -> Result;
    fn setgroups(&self, groups: &[u32]) -> Result;
    fn sethostname(&self, name: &str) -> Result;
    fn interface_up(&self, name: &str) -> Result;
    fn capbset_drop(&self, cap: u32) -> Result;
    fn keepcaps(&self, on: bool) -> Result;
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> Result;
    fn set_ambient(&self, ambient: u64) -> Result;
}

/// The errno of an `io::Error` from the raw wrappers in [`super::ns`].
fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The real system calls.
pub struct Real;

impl Sys for Real {
    fn mount(
        &self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result {
        nix::mount::mount(source, target, fstype, flags, data)
    }
    fn umount2(&self, target: &str, flags: MntFlags) -> Result {
        nix::mount::umount2(target, flags)
    }
    fn pivot_root(&self, new_root: &str, put_old: &str) -> Result {
        nix::unistd::pivot_root(new_root, put_old)
    }
    fn chdir(&self, path: &str) -> Result {
        nix::unistd::chdir(path)
    }
    fn chroot(&self, path: &str) -> Result {
        nix::unistd::chroot(path)
    }
    fn unshare(&self, flags: CloneFlags) -> Result {
        nix::sched::unshare(flags)
    }
    fn setresuid(&self, uid: u32) -> Result {
        let u = nix::unistd::Uid::from_raw(uid);
        nix::unistd::setresuid(u, u, u)
    }
    fn setresgid(&self, gid: u32) -> Result {
        let g = nix::unistd::Gid::from_raw(gid);
        nix::unistd::setresgid(g, g, g)
    }
    fn setgroups(&self, groups: &[u32]) -> Result {
        let g: Vec<nix::unistd::Gid> = groups
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&g)
    }
    fn sethostname(&self, name: &str) -> Result {
        nix::unistd::sethostname(name)
    }
    fn interface_up(&self, name: &str) -> Result {
        super::ns::interface_up(name.as_bytes()).map_err(errno)
    }
    fn capbset_drop(&self, cap: u32) -> Result {
        super::ns::capbset_drop(cap).map_err(errno)
    }
    fn keepcaps(&self, on: bool) -> Result {
        super::ns::keepcaps(on).map_err(errno)
    }
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> Result {
        super::ns::capset(effective, permitted, inheritable).map_err(errno)
    }
    fn set_ambient(&self, ambient: u64) -> Result {
        super::ns::set_ambient(ambient).map_err(errno)
    }
}

/// Test double: every call is written down as one line (`mount proc
/// ROOT/proc proc MS_NOSUID | …`) and succeeds, except the ones whose line
/// starts with the prefix given to [`Recorder::failing`], which fail with
/// its errno (the first `times` of them).
#[cfg(test)]
pub struct Recorder {
    pub calls: std::cell::RefCell<Vec<String>>,
    fail: std::cell::RefCell<Option<(String, Errno, usize)>>,
    /// A directory shown as `ROOT` in the lines (a test's temp dir).
    root: String,
}

#[cfg(test)]
impl Recorder {
    pub fn new(root: &std::path::Path) -> Recorder {
        Recorder {
            calls: Default::default(),
            fail: Default::default(),
            root: root.display().to_string(),
        }
    }

    /// Fails the first `times` calls whose line starts with `prefix`.
    pub fn failing(self, prefix: &str, errno: Errno, times: usize) -> Recorder {
        *self.fail.borrow_mut() = Some((prefix.to_string(), errno, times));
        self
    }

    pub fn lines(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// A path as the test reads it: `/proc/self/fd/N` (how mounts are made
    /// through safely opened descriptors) is resolved, the test's directory
    /// shown as `ROOT`.
    fn path(&self, p: &str) -> String {
        let p = if p.starts_with("/proc/self/fd/") {
            std::fs::read_link(p)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| p.to_string())
        } else {
            p.to_string()
        };
        p.replacen(&self.root, "ROOT", 1)
    }

    fn call(&self, line: String) -> Result {
        self.calls.borrow_mut().push(line.clone());
        let mut fail = self.fail.borrow_mut();
        if let Some((prefix, errno, times)) = fail.as_mut() {
            if *times > 0 && line.starts_with(prefix.as_str()) {
                *times -= 1;
                return Err(*errno);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl Sys for Recorder {
    fn mount(
        &self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result {
        let mut line = format!(
            "mount {} {} {} {flags:?}",
            source.map_or("-".into(), |s| self.path(s)),
            self.path(target),
            fstype.unwrap_or("-"),
        );
        if let Some(d) = data.filter(|d| !d.is_empty()) {
            line.push_str(&format!(" {d}"));
        }
        self.call(line)
    }
    fn umount2(&self, target: &str, flags: MntFlags) -> Result {
        self.call(format!("umount2 {} {flags:?}", self.path(target)))
    }
    fn pivot_root(&self, new_root: &str, put_old: &str) -> Result {
        self.call(format!("pivot_root {new_root} {put_old}"))
    }
    fn chdir(&self, path: &str) -> Result {
        self.call(format!("chdir {}", self.path(path)))
    }
    fn chroot(&self, path: &str) -> Result {
        self.call(format!("chroot {}", self.path(path)))
    }
    fn unshare(&self, flags: CloneFlags) -> Result {
        self.call(format!("unshare {flags:?}"))
    }
    fn setresuid(&self, uid: u32) -> Result {
        self.call(format!("setresuid {uid}"))
    }
    fn setresgid(&self, gid: u32) -> Result {
        self.call(format!("setresgid {gid}"))
    }
    fn setgroups(&self, groups: &[u32]) -> Result {
        self.call(format!("setgroups {groups:?}"))
    }
    fn sethostname(&self, name: &str) -> Result {
        self.call(format!("sethostname {name}"))
    }
    fn interface_up(&self, name: &str) -> Result {
        self.call(format!("interface_up {name}"))
    }
    fn capbset_drop(&self, cap: u32) -> Result {
        self.call(format!("capbset_drop {cap}"))
    }
    fn keepcaps(&self, on: bool) -> Result {
        self.call(format!("keepcaps {on}"))
    }
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> Result {
        self.call(format!(
            "capset {effective:#x} {permitted:#x} {inheritable:#x}"
        ))
    }
    fn set_ambient(&self, ambient: u64) -> Result {
        self.call(format!("set_ambient {ambient:#x}"))
    }
}
