//! Namespace steps: the id maps the init writes for the child (before it
//! releases it), and the child's own: the cgroup namespace, its ids inside
//! the user namespace, the host name, `lo` up.

use super::StepError;
use crate::sys::seam::Sys;
use mkrootfs_config::container::{
    ContainerPlan, CLONE_NEWCGROUP, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWUTS,
};

/// The text of a `uid_map`/`gid_map` file: one `inside outside count` line
/// per range, written in a single write(2) as the kernel requires.
pub fn map_text(map: &[[u32; 3]]) -> String {
    map.iter()
        .map(|[i, o, c]| format!("{i} {o} {c}\n"))
        .collect()
}

/// Parent side, before the child goes on: `setgroups` (deny only when the
/// plan says so: a root PID 1 writes the maps, and `su`/`sshd` need
/// setgroups), then `uid_map` and `gid_map` of `pid`.
/// `proc` is normally `/proc`.
pub fn write_maps(proc: &str, pid: i32, plan: &ContainerPlan) -> Result<(), StepError> {
    if plan.clone_flags & CLONE_NEWUSER == 0 {
        return Ok(());
    }
    let write = |file: &str, text: &str| {
        let path = format!("{proc}/{pid}/{file}");
        std::fs::write(&path, text)
            .map_err(|e| StepError::new("write", &path, e.raw_os_error().unwrap_or(libc::EIO)))
    };
    write("uid_map", &map_text(&plan.uid_map))?;
    if !plan.setgroups {
        write("setgroups", "deny")?;
    }
    write("gid_map", &map_text(&plan.gid_map))
}

/// Child side, first thing after the release: become root of the user
/// namespace (ids 0, which the maps made valid), then enter a cgroup
/// namespace now that the process is in its cgroup, so the container's
/// cgroup is its `/`.
pub fn enter(sys: &dyn Sys, plan: &ContainerPlan) -> Result<(), StepError> {
    if plan.clone_flags & CLONE_NEWUSER != 0 {
        sys.setresgid(0)
            .map_err(|e| StepError::new("setresgid", "0", e as i32))?;
        sys.setresuid(0)
            .map_err(|e| StepError::new("setresuid", "0", e as i32))?;
    }
    if plan.clone_flags & CLONE_NEWCGROUP != 0 {
        sys.unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| StepError::new("unshare", "cgroup namespace", e as i32))?;
    }
    Ok(())
}

/// Host name (in a UTS namespace of its own) and `lo` up (in a network
/// namespace of its own, where it starts down).
pub fn identity(sys: &dyn Sys, plan: &ContainerPlan) -> Result<(), StepError> {
    if plan.clone_flags & CLONE_NEWUTS != 0 {
        if let Some(h) = &plan.hostname {
            sys.sethostname(h)
                .map_err(|e| StepError::new("sethostname", h, e as i32))?;
        }
    }
    if plan.clone_flags & CLONE_NEWNET != 0 {
        sys.interface_up("lo")
            .map_err(|e| StepError::new("set up", "lo", e as i32))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_becomes_root_then_enters_its_cgroup_then_names_itself() {
        use crate::sys::seam::Recorder;
        use mkrootfs_config::container::CLONE_NAMESPACES;
        let mut plan: ContainerPlan = serde_json::from_str(
            r#"{"root":"/","clone_flags":0,"uid_map":[],"gid_map":[],"mounts":[],"masked_paths":[],"readonly_paths":[],"cgroup":{"path":"mkrootfs/c"},"argv":["/x"],"env":[],"cwd":"/","uid":0,"gid":0,"capabilities":{"bounding":0,"effective":0,"permitted":0,"inheritable":0,"ambient":0},"no_new_privs":true,"seccomp":null,"hostname":"box"}"#,
        )
        .unwrap();
        plan.clone_flags = CLONE_NAMESPACES;
        let d = tempfile::tempdir().unwrap();
        let sys = Recorder::new(d.path());
        enter(&sys, &plan).unwrap();
        identity(&sys, &plan).unwrap();
        assert_eq!(
            sys.lines(),
            [
                "setresgid 0",
                "setresuid 0",
                "unshare CloneFlags(CLONE_NEWCGROUP)",
                "sethostname box",
                "interface_up lo"
            ]
        );
        // Without those namespaces, none of it.
        plan.clone_flags = 0;
        let sys = Recorder::new(d.path());
        enter(&sys, &plan).unwrap();
        identity(&sys, &plan).unwrap();
        assert!(sys.lines().is_empty());
        // A failure names the step.
        plan.clone_flags = CLONE_NAMESPACES;
        let sys = Recorder::new(d.path()).failing("sethostname", nix::errno::Errno::EPERM, 1);
        assert_eq!(
            identity(&sys, &plan).unwrap_err(),
            StepError::new("sethostname", "box", libc::EPERM)
        );
    }

    #[test]
    fn maps_are_one_line_per_range() {
        assert_eq!(map_text(&[[0, 100000, 65536]]), "0 100000 65536\n");
        assert_eq!(
            map_text(&[[0, 1000, 1], [1, 200000, 999]]),
            "0 1000 1\n1 200000 999\n"
        );
    }
}
