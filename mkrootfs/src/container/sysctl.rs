//! Which sysctls a container may set: only those that belong to one of its
//! own namespaces, so that setting them changes nothing outside it. The
//! rules are runc's (`libcontainer/configs/validate`): the IPC ones with
//! an IPC namespace, `net.*` with a network namespace, and neither
//! `kernel.hostname` nor `kernel.domainname` (the `hostname` key sets the
//! first; a container has no use for the second without a UTS namespace
//! of its own).

use mkrootfs_config::container::{CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUTS};

/// The IPC-namespaced sysctls besides `fs.mqueue.*`.
const IPC: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Checks sysctl `name = value` for a container cloned with `flags`, and
/// gives the path below `/proc/sys` the init writes `value` to.
pub fn check(name: &str, value: &str, flags: u64) -> Result<String, String> {
    if name.is_empty()
        || name.split('.').any(|c| c.is_empty() || c == "..")
        || name.contains(['/', '\0'])
    {
        return Err(format!(
            "sysctl {name:?}: expected a dotted name such as \"net.ipv4.ip_forward\""
        ));
    }
    if value.contains(['\0', '\n']) {
        return Err(format!(
            "sysctl {name:?}: the value must not contain a NUL or a newline"
        ));
    }
    let needs = |flag: u64, ns: &str| {
        if flags & flag != 0 {
            Ok(())
        } else {
            Err(format!(
                "sysctl {name:?} needs the container's own {ns} namespace: without it, it would change the VM's"
            ))
        }
    };
    if IPC.contains(&name) || name.starts_with("fs.mqueue.") {
        needs(CLONE_NEWIPC, "IPC")?;
    } else if name.starts_with("net.") {
        needs(CLONE_NEWNET, "network")?;
    } else if name == "kernel.hostname" || name == "kernel.domainname" {
        needs(CLONE_NEWUTS, "UTS")?;
        return Err(format!(
            "sysctl {name:?} is refused: set the host name with the hostname key"
        ));
    } else {
        return Err(format!(
            "sysctl {name:?} is refused: it is not in a namespace of the container, so it would change the whole VM"
        ));
    }
    Ok(name.replace('.', "/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrootfs_config::container::CLONE_NEWNS;

    const ALL: u64 = CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWNS;

    #[test]
    fn namespaced_sysctls_give_their_proc_path() {
        assert_eq!(
            check("kernel.shmmni", "8192", ALL),
            Ok("kernel/shmmni".into())
        );
        assert_eq!(
            check("fs.mqueue.msg_max", "20", ALL),
            Ok("fs/mqueue/msg_max".into())
        );
        assert_eq!(
            check("net.ipv4.ip_forward", "1", ALL),
            Ok("net/ipv4/ip_forward".into())
        );
        assert_eq!(
            check("kernel.sem", "250 32000 32 128", ALL),
            Ok("kernel/sem".into())
        );
    }

    #[test]
    fn sysctls_outside_the_container_namespaces_are_refused() {
        assert_eq!(
            check("net.ipv4.ip_forward", "1", ALL & !CLONE_NEWNET),
            Err("sysctl \"net.ipv4.ip_forward\" needs the container's own network namespace: without it, it would change the VM's".into())
        );
        assert_eq!(
            check("kernel.msgmax", "1", ALL & !CLONE_NEWIPC),
            Err("sysctl \"kernel.msgmax\" needs the container's own IPC namespace: without it, it would change the VM's".into())
        );
        assert_eq!(
            check("kernel.hostname", "x", ALL),
            Err(
                "sysctl \"kernel.hostname\" is refused: set the host name with the hostname key"
                    .into()
            )
        );
        assert_eq!(
            check("kernel.domainname", "x", ALL & !CLONE_NEWUTS),
            Err("sysctl \"kernel.domainname\" needs the container's own UTS namespace: without it, it would change the VM's".into())
        );
        assert_eq!(
            check("vm.overcommit_memory", "1", ALL),
            Err("sysctl \"vm.overcommit_memory\" is refused: it is not in a namespace of the container, so it would change the whole VM".into())
        );
        assert_eq!(
            check("kernel.shmmax.", "1", ALL),
            Err(
                "sysctl \"kernel.shmmax.\": expected a dotted name such as \"net.ipv4.ip_forward\""
                    .into()
            )
        );
        assert_eq!(
            check("net/ipv4/ip_forward", "1", ALL),
            Err("sysctl \"net/ipv4/ip_forward\": expected a dotted name such as \"net.ipv4.ip_forward\"".into())
        );
        assert_eq!(
            check("net.ipv4.ip_forward", "1\n0", ALL),
            Err(
                "sysctl \"net.ipv4.ip_forward\": the value must not contain a NUL or a newline"
                    .into()
            )
        );
    }
}
