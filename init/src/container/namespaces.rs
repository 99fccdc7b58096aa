//! Namespace steps: the id maps the init writes for the child (before it
//! releases it), and the child's own: the cgroup namespace, its ids inside
//! the user namespace, the host name, `lo` up.

use super::StepError;
use mkrootfs_config::container::{
    ContainerPlan, CLONE_NEWCGROUP, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWUTS,
};
use nix::unistd::{Gid, Uid};

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
pub fn enter(plan: &ContainerPlan) -> Result<(), StepError> {
    if plan.clone_flags & CLONE_NEWUSER != 0 {
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(|e| StepError::new("setresgid", "0", e as i32))?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(|e| StepError::new("setresuid", "0", e as i32))?;
    }
    if plan.clone_flags & CLONE_NEWCGROUP != 0 {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| StepError::new("unshare", "cgroup namespace", e as i32))?;
    }
    Ok(())
}

/// Host name (in a UTS namespace of its own) and `lo` up (in a network
/// namespace of its own, where it starts down).
pub fn identity(plan: &ContainerPlan) -> Result<(), StepError> {
    if plan.clone_flags & CLONE_NEWUTS != 0 {
        if let Some(h) = &plan.hostname {
            nix::unistd::sethostname(h).map_err(|e| StepError::new("sethostname", h, e as i32))?;
        }
    }
    if plan.clone_flags & CLONE_NEWNET != 0 {
        crate::sys::ns::interface_up(b"lo")
            .map_err(|e| StepError::new("set up", "lo", e.raw_os_error().unwrap_or(libc::EIO)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_one_line_per_range() {
        assert_eq!(map_text(&[[0, 100000, 65536]]), "0 100000 65536\n");
        assert_eq!(
            map_text(&[[0, 1000, 1], [1, 200000, 999]]),
            "0 1000 1\n1 200000 999\n"
        );
    }
}
