//! Capability names to masks and back, over the tables of
//! `mkrootfs_config::container` (shared with the init and the OCI
//! converter). A profile names capabilities the way Docker and the OCI spec
//! do (`CAP_NET_ADMIN`); `NET_ADMIN` and lower case are accepted too. The
//! init only ever sees the 64-bit masks.

use mkrootfs_config::container::{capability_number, CAPABILITY_NAMES};

/// The mask of a list of names; the first unknown name is the error.
pub fn mask<S: AsRef<str>>(names: &[S]) -> Result<u64, String> {
    let mut m = 0u64;
    for n in names {
        let n = n.as_ref();
        match capability_number(n) {
            Some(bit) => m |= 1 << bit,
            None => return Err(n.to_string()),
        }
    }
    Ok(m)
}

/// The `CAP_…` names of the bits set in `mask`, in number order (the
/// spelling Docker's seccomp profile uses).
pub fn names(mask: u64) -> Vec<String> {
    CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| format!("CAP_{n}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrootfs_config::container::DOCKER_CAPABILITIES;

    #[test]
    fn docker_default_is_the_mask_docker_containers_show() {
        // `CapEff: 00000000a80425fb` in /proc/self/status of `docker run`.
        assert_eq!(mask(DOCKER_CAPABILITIES), Ok(0xa804_25fb));
        assert_eq!(names(0xa804_25fb).len(), 14);
    }

    #[test]
    fn spellings_and_unknown_names() {
        assert_eq!(mask(&["sys_admin"]), Ok(1 << 21));
        assert_eq!(mask(&["CAP_KILL", "CAP_NOPE"]), Err("CAP_NOPE".to_string()));
        assert_eq!(
            names(mask(&["bpf", "CAP_CHOWN"]).unwrap()),
            ["CAP_CHOWN", "CAP_BPF"]
        );
    }
}
