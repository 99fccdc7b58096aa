//! The container's cgroup v2: created under `/sys/fs/cgroup` before the
//! clone (the child starts inside it with `CLONE_INTO_CGROUP`), limits
//! written, and at the end the counters read before `cgroup.kill` and
//! rmdir.

use mkrootfs_config::container::CgroupPlan;
use std::fmt::Write as _;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Where the cgroup2 hierarchy is (mounted by the init when missing).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A failed cgroup step: the operation, the file and the errno (the
/// launcher's one error shape).
pub use crate::launch::StepError as CgroupError;

fn err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |e| {
        CgroupError::new(
            step,
            &path.display().to_string(),
            e.raw_os_error().unwrap_or(libc::EIO),
        )
    }
}

/// The counters read when a container ends (the limits are the plan's).
pub use mkrootfs_config::result::ContainerCounters as Stats;

/// The value of `key` in a flat-keyed cgroup file (`memory.events`,
/// `cpu.stat`): lines `key value`.
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// One container's cgroup directory.
#[derive(Debug)]
pub struct Cgroup {
    pub dir: PathBuf,
}

/// The controllers the plan's limits need, in `cgroup.subtree_control`
/// syntax.
fn controllers(plan: &CgroupPlan) -> String {
    let mut s = String::new();
    // memory and pids are always enabled so that their counters exist.
    s.push_str("+memory +pids");
    if plan.cpu_max.is_some() {
        s.push_str(" +cpu");
    }
    s
}

/// Mounts cgroup2 at [`CGROUP_ROOT`] unless it already is there.
pub fn ensure_mounted(root: &Path) -> Result<(), CgroupError> {
    if root.join("cgroup.controllers").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(root).map_err(err("mkdir", root))?;
    nix::mount::mount(
        Some("cgroup2"),
        root,
        Some("cgroup2"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| CgroupError::new("mount cgroup2", &root.display().to_string(), e as i32))
}

/// Whether the cgroup `dir` (or one below it) has a process
/// (`populated 1` in `cgroup.events`). Unreadable counts as populated: a
/// cgroup we cannot inspect is not ours to kill.
fn populated(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join("cgroup.events")) {
        Ok(events) => events.lines().any(|l| l.trim() == "populated 1"),
        Err(_) => true,
    }
}

impl Cgroup {
    /// Creates `root/rel` (an empty leftover of an earlier run is removed
    /// first; one with processes in it belongs to a running container and
    /// is an EBUSY error, never killed), enables the controllers in every
    /// parent, and writes the limits.
    pub fn create(root: &Path, rel: &str, plan: &CgroupPlan) -> Result<Cgroup, CgroupError> {
        let dir = root.join(rel.trim_start_matches('/'));
        if dir.exists() {
            if populated(&dir) {
                return Err(err("create cgroup", &dir)(io::Error::from_raw_os_error(
                    libc::EBUSY,
                )));
            }
            Cgroup { dir: dir.clone() }.destroy();
        }
        // Enable in each ancestor from the root down, creating the levels:
        // a controller can only be enabled in a child when the parent has it.
        let ctl = controllers(plan);
        let mut cur = root.to_path_buf();
        let rel_path = dir
            .strip_prefix(root)
            .unwrap_or(Path::new(rel))
            .to_path_buf();
        for comp in rel_path.components() {
            let sc = cur.join("cgroup.subtree_control");
            std::fs::write(&sc, &ctl).map_err(err("enable controllers in", &sc))?;
            cur.push(comp);
            match std::fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(err("mkdir", &cur)(e)),
            }
        }
        let cg = Cgroup { dir };
        let mut writes: Vec<(&str, String)> = Vec::new();
        if let Some(m) = plan.memory_max {
            writes.push(("memory.max", m.to_string()));
            // The whole container dies on an OOM kill, not one random process.
            writes.push(("memory.oom.group", "1".into()));
            // No swap either, or memory.max would only push pages out.
            writes.push(("memory.swap.max", "0".into()));
        }
        if let Some(p) = plan.pids_max {
            writes.push(("pids.max", p.to_string()));
        }
        if let Some([quota, period]) = plan.cpu_max {
            writes.push(("cpu.max", format!("{quota} {period}")));
        }
        for (file, value) in writes {
            let path = cg.dir.join(file);
            match std::fs::write(&path, &value) {
                Ok(()) => {}
                // A kernel without swap accounting has no memory.swap.max.
                Err(e) if file == "memory.swap.max" && e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err("write", &path)(e)),
            }
        }
        Ok(cg)
    }

    /// The directory as a descriptor for `CLONE_INTO_CGROUP`.
    pub fn open(&self) -> Result<OwnedFd, CgroupError> {
        std::fs::File::open(&self.dir)
            .map(OwnedFd::from)
            .map_err(err("open", &self.dir))
    }

    /// Reads the counters; a missing file counts 0.
    pub fn stats(&self) -> Stats {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        Stats {
            oom_kill: keyed(&read("memory.events"), "oom_kill").unwrap_or(0),
            pids_max_hits: keyed(&read("pids.events"), "max").unwrap_or(0),
            memory_peak: read("memory.peak").trim().parse().unwrap_or(0),
            cpu_usec: keyed(&read("cpu.stat"), "usage_usec").unwrap_or(0),
            memory_max: None,
            pids_max: None,
        }
    }

    /// Kills every process left in the cgroup (`cgroup.kill`, Linux 5.14)
    /// and sends `sig` first when given.
    pub fn kill(&self) {
        let path = self.dir.join("cgroup.kill");
        if let Err(e) = std::fs::write(&path, "1") {
            if e.kind() != io::ErrorKind::NotFound {
                crate::warn!("write {}: {e}", path.display());
            }
        }
    }

    /// Pids still in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills what is left and removes the directory (retrying while the
    /// killed processes are still being torn down).
    pub fn destroy(&self) {
        self.kill();
        for _ in 0..200 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => {
                    crate::warn!("rmdir {}: {e}", self.dir.display());
                    return;
                }
            }
        }
        let mut pids = String::new();
        for p in self.pids() {
            let _ = write!(pids, " {p}");
        }
        crate::warn!("rmdir {}: still busy (pids:{pids})", self.dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_are_read_by_key() {
        let events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 1\noom_group_kill 1\n";
        assert_eq!(keyed(events, "oom_kill"), Some(1));
        assert_eq!(keyed(events, "oom"), Some(3));
        assert_eq!(keyed(events, "max"), Some(12));
        assert_eq!(keyed(events, "min"), None);
        assert_eq!(
            keyed("usage_usec 20050\nuser_usec 1\n", "usage_usec"),
            Some(20050)
        );
    }

    #[test]
    fn create_enables_controllers_in_each_parent_and_writes_the_limits() {
        let d = tempfile::tempdir().unwrap();
        let plan = CgroupPlan {
            path: String::new(),
            memory_max: Some(64 << 20),
            pids_max: Some(20),
            cpu_max: Some([20000, 100000]),
        };
        let cg = Cgroup::create(d.path(), "mkrootfs/box", &plan).unwrap();
        let read = |p: &str| std::fs::read_to_string(d.path().join(p)).unwrap();
        assert_eq!(read("cgroup.subtree_control"), "+memory +pids +cpu");
        assert_eq!(
            read("mkrootfs/cgroup.subtree_control"),
            "+memory +pids +cpu"
        );
        assert_eq!(read("mkrootfs/box/memory.max"), "67108864");
        assert_eq!(read("mkrootfs/box/memory.oom.group"), "1");
        assert_eq!(read("mkrootfs/box/memory.swap.max"), "0");
        assert_eq!(read("mkrootfs/box/pids.max"), "20");
        assert_eq!(read("mkrootfs/box/cpu.max"), "20000 100000");
        // The counters, as the kernel writes them.
        std::fs::write(
            cg.dir.join("memory.events"),
            "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(cg.dir.join("pids.events"), "max 181\n").unwrap();
        std::fs::write(cg.dir.join("memory.peak"), "67108864\n").unwrap();
        std::fs::write(cg.dir.join("cpu.stat"), "usage_usec 600123\nuser_usec 1\n").unwrap();
        assert_eq!(
            cg.stats(),
            Stats {
                oom_kill: 1,
                pids_max_hits: 181,
                memory_peak: 67108864,
                cpu_usec: 600123,
                memory_max: None,
                pids_max: None,
            }
        );
        // Without limits only memory and pids are enabled (for the counters).
        let cg2 = Cgroup::create(d.path(), "other", &CgroupPlan::default()).unwrap();
        assert_eq!(read("cgroup.subtree_control"), "+memory +pids");
        assert!(!cg2.dir.join("memory.max").exists());
    }

    /// Issue 21: two containers on one cgroup path; the second start
    /// killed the first as a "leftover" (status 137).
    #[test]
    fn a_cgroup_in_use_is_never_treated_as_a_leftover() {
        let d = tempfile::tempdir().unwrap();
        let box_dir = d.path().join("mkrootfs/box");
        std::fs::create_dir_all(&box_dir).unwrap();
        std::fs::write(box_dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        std::fs::write(box_dir.join("cgroup.kill"), "").unwrap();
        let e = Cgroup::create(d.path(), "mkrootfs/box", &CgroupPlan::default()).unwrap_err();
        // The errno's text is the C library's (glibc and musl word EBUSY
        // differently): compare with what this one says.
        assert_eq!(
            e.to_string(),
            format!(
                "create cgroup {}: {}",
                box_dir.display(),
                std::io::Error::from_raw_os_error(libc::EBUSY)
            )
        );
        // Nothing was killed.
        assert_eq!(
            std::fs::read_to_string(box_dir.join("cgroup.kill")).unwrap(),
            ""
        );
        // An empty leftover is taken over.
        std::fs::write(box_dir.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        assert!(Cgroup::create(d.path(), "mkrootfs/box", &CgroupPlan::default()).is_ok());
    }

    #[test]
    fn a_failed_write_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("cgroup.subtree_control")).unwrap();
        let e = Cgroup::create(d.path(), "x", &CgroupPlan::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "enable controllers in {}/cgroup.subtree_control: Is a directory (os error 21)",
                d.path().display()
            )
        );
    }
}
