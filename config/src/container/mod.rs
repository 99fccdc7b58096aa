//! Containers: the profile's `container` table on a service, and the resolved
//! plan that the init executes.
//!
//! # Design: the builder compiles, the init executes
//!
//! There are two types, for two readers:
//!
//! - [`ContainerConfig`] is what a person writes: the `container` table of a
//!   `[[services]]` entry. Names (`"CHOWN"`, `"nofile"`, `"SIGTERM"`), sizes
//!   (`"64M"`), `"default"` policies, paths relative to the container root.
//!   Every field has a safe default, so `container = {}` gives Docker-level
//!   isolation. The builder validates it (file:line:column), shifts file
//!   owners by the uid map, compiles the seccomp policy to BPF, and turns it
//!   into a [`ContainerPlan`]. The init never looks at it.
//! - [`ContainerPlan`] is what the init executes, written by the builder
//!   into `init.json` as `container_plan` on the service. It holds only
//!   numbers, bit masks, absolute paths and flags: clone flags, id maps as
//!   triples, resolved uid/gid/groups, capability masks for the five sets,
//!   rlimits by resource number, cgroup values in bytes/microseconds, mounts
//!   as `mount(2)` arguments in order (including the default `/proc`, `/dev`,
//!   … mounts), masked/read-only paths, the path of the BPF file in the image
//!   (or none), argv/env/cwd. The init parses no policy and resolves no
//!   names. OCI bundles (issue 11) produce the same plan.
//!
//! The Docker defaults both halves need ([`DOCKER_CAPABILITIES`],
//! [`DOCKER_MASKED_PATHS`], [`DOCKER_READONLY_PATHS`], [`docker_mounts`])
//! and the capability and rlimit name tables live here too, so the builder,
//! the OCI converter and the tests agree on them.

//!
//! One file per reader: [`schema`] (the profile's table: the builder reads
//! it), [`plan`] (the plan: the init reads it), [`linux`] (Linux numbers and
//! Docker's defaults, which both halves and the OCI converter share).

pub mod linux;
pub mod plan;
pub mod schema;

pub use linux::*;
pub use plan::*;
pub use schema::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_capabilities_make_docker_mask() {
        let mask = DOCKER_CAPABILITIES
            .iter()
            .map(|n| 1u64 << capability_number(n).unwrap())
            .fold(0, |a, b| a | b);
        assert_eq!(mask, DOCKER_CAPABILITY_MASK);
        assert_eq!(capability_number("cap_sys_admin"), Some(21));
        assert_eq!(capability_number("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_number("SYS_ADMINN"), None);
    }

    #[test]
    fn empty_table_is_docker_isolation() {
        let c: ContainerConfig = toml::from_str("").unwrap();
        assert_eq!(c, ContainerConfig::default());
        assert_eq!(c.uid_map, [IdMap::DEFAULT]);
        assert_eq!(c.namespaces.clone_flags(), CLONE_NAMESPACES);
        assert!(c.no_new_privs && c.setgroups);
        assert_eq!(c.seccomp, "default");
    }

    #[test]
    fn profile_values_are_checked_with_position() {
        let c: ContainerConfig = toml::from_str(
            "uid_map = [\"0 1000 1\", \"1 200000 999\"]\nmemory_max = \"64M\"\nnamespaces = { net = false }\n",
        )
        .unwrap();
        assert_eq!(c.uid_map[1].triple(), [1, 200000, 999]);
        assert_eq!(c.memory_max, Some(Size(64 << 20)));
        assert_eq!(c.namespaces.clone_flags(), CLONE_NAMESPACES & !CLONE_NEWNET);
        let err = toml::from_str::<ContainerConfig>("memory_max = \"64X\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1, column 14"), "{err}");
        assert!(err.contains("invalid size \"64X\""), "{err}");
        let err = toml::from_str::<ContainerConfig>("\nuid_map = [\"0 4294967295 2\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = toml::from_str::<ContainerConfig>("namespaces = { nett = false }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `nett`"), "{err}");
    }

    #[test]
    fn sizes_print_in_their_largest_exact_unit() {
        assert_eq!(Size(64 << 20).to_string(), "64M");
        assert_eq!(Size(1536 << 10).to_string(), "1536K");
        assert_eq!(Size(100).to_string(), "100");
        assert_eq!(Size::parse("1GiB"), Ok(Size(1 << 30)));
        assert_eq!(Size::parse("16kB"), Ok(Size(16 << 10)));
    }

    #[test]
    fn plan_round_trips_as_json_with_defaults() {
        let json = r#"{"root":"/","clone_flags":1879179392,"argv":["/probe"],"env":["PATH=/bin"],
            "capabilities":{"bounding":1,"effective":1,"permitted":1,"inheritable":0,"ambient":0},
            "seccomp":null,"cgroup":{"path":"mkrootfs/box"}}"#;
        let p: ContainerPlan = serde_json::from_str(json).unwrap();
        assert_eq!(p.cwd, "/");
        assert_eq!(p.stop_signal, 15);
        assert!(p.no_new_privs && p.setgroups);
        let back: ContainerPlan =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let mut bad = p.clone();
        bad.clone_flags = 0;
        bad.root = "/c".into();
        assert_eq!(
            bad.validate(),
            Err("a root other than /, readonly_root, mounts and masked or read-only paths need a mount namespace (CLONE_NEWNS)".into())
        );
        bad.root = "/".into();
        assert_eq!(bad.validate(), Ok(()));
        bad.clone_flags = CLONE_NEWUSER;
        assert_eq!(
            bad.validate(),
            Err("a user namespace needs uid_map and gid_map".into())
        );
        bad.clone_flags = 1;
        assert_eq!(
            bad.validate(),
            Err("clone_flags 0x1 has bits other than CLONE_NEW*".into())
        );
        // The builder writes the cgroup path; the init has no default.
        bad.clone_flags = 0;
        for path in ["", "/mkrootfs/box", "mkrootfs/../x", "mkrootfs//x"] {
            bad.cgroup.path = path.into();
            assert_eq!(
                bad.validate(),
                Err(format!("cgroup path {path:?} must be a relative path below the cgroup root (mkrootfs/<name>)"))
            );
        }
        let mounts = docker_mounts();
        assert_eq!(mounts[0].target, "/proc");
        assert_eq!(mounts.len(), 7 + DOCKER_DEVICES.len());
    }
}
