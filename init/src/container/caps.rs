//! Credentials and privileges, in runc's order: the bounding set dropped
//! (needs CAP_SETPCAP, so first), keep-caps on, groups/gid/uid, keep-caps
//! off, then capset for effective/permitted/inheritable and the ambient
//! set; no_new_privs after.

use super::StepError;
use crate::sys::seam::Sys;
use mkrootfs_config::container::ContainerPlan;
use nix::errno::Errno;

/// The highest capability the kernel knows (`/proc/sys/kernel/cap_last_cap`),
/// read by the init before the clone; 40 when unreadable.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Applies the plan's credentials and capability sets to this process.
pub fn apply(sys: &dyn Sys, plan: &ContainerPlan, last_cap: u32) -> Result<(), StepError> {
    let c = &plan.capabilities;
    let e =
        |step: &'static str, path: String| move |er: Errno| StepError::new(step, &path, er as i32);
    for cap in 0..=last_cap.min(63) {
        if c.bounding & (1u64 << cap) == 0 {
            sys.capbset_drop(cap)
                .map_err(e("drop bounding capability", cap.to_string()))?;
        }
    }
    sys.keepcaps(true)
        .map_err(e("keep capabilities", String::new()))?;
    sys.setgroups(&plan.additional_gids)
        .map_err(e("setgroups", String::new()))?;
    sys.setresgid(plan.gid)
        .map_err(e("setresgid", plan.gid.to_string()))?;
    sys.setresuid(plan.uid)
        .map_err(e("setresuid", plan.uid.to_string()))?;
    sys.keepcaps(false)
        .map_err(e("clear keep capabilities", String::new()))?;
    sys.capset(c.effective, c.permitted, c.inheritable)
        .map_err(e("capset", String::new()))?;
    sys.set_ambient(c.ambient)
        .map_err(e("set ambient capabilities", String::new()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::seam::Recorder;

    fn plan() -> ContainerPlan {
        let mut p: ContainerPlan = serde_json::from_str(
            r#"{"root":"/","clone_flags":0,"uid_map":[],"gid_map":[],"mounts":[],"masked_paths":[],"readonly_paths":[],"cgroup":{"path":"mkrootfs/c"},"argv":["/x"],"env":[],"cwd":"/","uid":1000,"gid":100,"capabilities":{"bounding":0,"effective":0,"permitted":0,"inheritable":0,"ambient":0},"no_new_privs":true,"seccomp":null}"#,
        )
        .unwrap();
        p.additional_gids = vec![10, 20];
        // CHOWN (0) and NET_BIND_SERVICE (10) kept; everything else dropped.
        let keep = (1 << 0) | (1 << 10);
        p.capabilities = mkrootfs_config::container::CapSets {
            bounding: keep,
            effective: keep,
            permitted: keep,
            inheritable: 0,
            ambient: 1 << 10,
        };
        p
    }

    #[test]
    fn bounding_set_then_ids_then_capset_in_runcs_order() {
        let d = tempfile::tempdir().unwrap();
        let sys = Recorder::new(d.path());
        apply(&sys, &plan(), 12).unwrap();
        let mut want: Vec<String> = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]
            .iter()
            .map(|c| format!("capbset_drop {c}"))
            .collect();
        want.extend(
            [
                "keepcaps true",
                "setgroups [10, 20]",
                "setresgid 100",
                "setresuid 1000",
                "keepcaps false",
                "capset 0x401 0x401 0x0",
                "set_ambient 0x400",
            ]
            .map(String::from),
        );
        assert_eq!(sys.lines(), want);
    }

    #[test]
    fn a_failing_credential_step_names_the_id() {
        for (prefix, step, path) in [
            ("setresuid", "setresuid", "1000"),
            ("setresgid", "setresgid", "100"),
            ("capbset_drop 3", "drop bounding capability", "3"),
            ("capset", "capset", ""),
        ] {
            let d = tempfile::tempdir().unwrap();
            let sys = Recorder::new(d.path()).failing(prefix, Errno::EPERM, 1);
            let e = apply(&sys, &plan(), 12).unwrap_err();
            assert_eq!(e, StepError::new(step, path, libc::EPERM), "{prefix}");
            assert!(sys.lines().last().unwrap().starts_with(prefix));
        }
    }
}
