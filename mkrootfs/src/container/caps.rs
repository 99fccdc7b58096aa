//! Capability names and bit masks, as `capabilities(7)` numbers them.
//!
//! A profile names capabilities the way Docker and the OCI runtime spec do
//! (`CAP_NET_ADMIN`); `NET_ADMIN` and lower case are accepted too. The init
//! only ever sees the resulting 64-bit masks.

/// Every capability of Linux 6.x, by number (`CAP_LAST_CAP` = 40).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default set (moby `oci/caps/defaults.go`), 14 capabilities.
pub const DOCKER_DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The bit number of a capability named `CAP_X`, `X`, `cap_x` or `x`.
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPABILITIES
        .iter()
        .position(|c| *c == full)
        .map(|i| i as u32)
}

/// The mask of a list of names; the first unknown name is the error.
pub fn mask<S: AsRef<str>>(names: &[S]) -> Result<u64, String> {
    let mut m = 0u64;
    for n in names {
        let n = n.as_ref();
        match number(n) {
            Some(bit) => m |= 1 << bit,
            None => return Err(n.to_string()),
        }
    }
    Ok(m)
}

/// The `CAP_…` names of the bits set in `mask`, in number order.
pub fn names(mask: u64) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_is_the_mask_docker_containers_show() {
        // `CapEff: 00000000a80425fb` in /proc/self/status of `docker run`.
        assert_eq!(mask(DOCKER_DEFAULT), Ok(0xa804_25fb));
        assert_eq!(names(0xa804_25fb).len(), 14);
    }

    #[test]
    fn names_numbers_and_spellings() {
        assert_eq!(CAPABILITIES.len(), 41);
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("sys_admin"), Some(21));
        assert_eq!(number("NET_ADMIN"), Some(12));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_SYS_ADMIN "), None);
        assert_eq!(mask(&["CAP_KILL", "CAP_NOPE"]), Err("CAP_NOPE".to_string()));
        assert_eq!(
            names(mask(&["bpf", "chown"]).unwrap()),
            ["CAP_CHOWN", "CAP_BPF"]
        );
    }
}
