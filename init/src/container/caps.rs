//! Credentials and privileges, in runc's order: the bounding set dropped
//! (needs CAP_SETPCAP, so first), keep-caps on, groups/gid/uid, keep-caps
//! off, then capset for effective/permitted/inheritable and the ambient
//! set; no_new_privs after.

use super::StepError;
use crate::sys::ns;
use mkrootfs_config::container::ContainerPlan;
use nix::unistd::{Gid, Uid};

fn e(step: &'static str) -> impl FnOnce(std::io::Error) -> StepError {
    move |err| StepError::new(step, "", err.raw_os_error().unwrap_or(libc::EIO))
}

/// The highest capability the kernel knows (`/proc/sys/kernel/cap_last_cap`),
/// read by the init before the clone; 40 when unreadable.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Applies the plan's credentials and capability sets to this process.
pub fn apply(plan: &ContainerPlan, last_cap: u32) -> Result<(), StepError> {
    let c = &plan.capabilities;
    for cap in 0..=last_cap.min(63) {
        if c.bounding & (1u64 << cap) == 0 {
            ns::capbset_drop(cap).map_err(e("drop bounding capability"))?;
        }
    }
    ns::keepcaps(true).map_err(e("keep capabilities"))?;
    let groups: Vec<Gid> = plan
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|er| StepError::new("setgroups", "", er as i32))?;
    let gid = Gid::from_raw(plan.gid);
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|er| StepError::new("setresgid", &plan.gid.to_string(), er as i32))?;
    let uid = Uid::from_raw(plan.uid);
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|er| StepError::new("setresuid", &plan.uid.to_string(), er as i32))?;
    ns::keepcaps(false).map_err(e("clear keep capabilities"))?;
    ns::capset(c.effective, c.permitted, c.inheritable).map_err(e("capset"))?;
    ns::set_ambient(c.ambient).map_err(e("set ambient capabilities"))?;
    Ok(())
}
