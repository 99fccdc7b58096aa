//! A profile with `container = {}` built into a real image: the plan the
//! init will read from init.json, the compiled filter next to it, the
//! owners shifted by the default map, and the same bytes every time.

use mkrootfs::build::{build, BuildOptions};
use mkrootfs::container::seccomp::docker_default;
use mkrootfs::cpio::{read_archive, Limits};
use mkrootfs_config::container::{CLONE_NAMESPACES, DOCKER_CAPABILITY_MASK};
use mkrootfs_config::InitConfig;
use std::fs;

/// busybox-static (the boot tests' shell) stands in for the init: the
/// builder only checks that it is a static ELF, nothing runs it here.
const STATIC_ELF: &str = "/bin/busybox";

const PROFILE: &str = r#"
binaries = ["busybox"]
[image]
compression = "none"
[[files]]
dest = "/etc/passwd"
content = "root:x:0:0:root:/root:/bin/sh\n"
[[dirs]]
path = "/home/u"
uid = 1000
gid = 1000
[init]
[[init.services]]
name = "box"
argv = ["busybox", "true"]
container = {}
"#;

#[test]
fn empty_container_table_builds_the_plan_the_init_reads() {
    if !mkrootfs_tests::require_file(STATIC_ELF) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("c.toml");
    fs::write(&profile, PROFILE).unwrap();
    let p = mkrootfs::profile::load_path(&profile).unwrap();
    let image = |name: &str| {
        let out = tmp.path().join(name);
        build(
            &p,
            &BuildOptions {
                output: Some(out.clone()),
                init_binary: Some(STATIC_ELF.into()),
                mtime: Some(0),
                ..BuildOptions::default()
            },
        )
        .unwrap();
        fs::read(out).unwrap()
    };
    let bytes = image("a.cpio");
    assert_eq!(bytes, image("b.cpio"), "two builds differ");
    let entries = read_archive(&bytes, &Limits::default())
        .unwrap()
        .remove(0)
        .entries;
    let entry = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the image"))
    };
    let cfg: InitConfig = serde_json::from_slice(&entry("etc/mkrootfs/init.json").data).unwrap();
    cfg.validate().unwrap();
    let plan = cfg.services[0].container_plan.as_ref().unwrap();
    assert_eq!(plan.root, "/");
    assert_eq!(plan.clone_flags, CLONE_NAMESPACES);
    assert_eq!(plan.uid_map, [[0, 100000, 65536]]);
    assert_eq!(plan.gid_map, [[0, 100000, 65536]]);
    assert_eq!(plan.capabilities.effective, DOCKER_CAPABILITY_MASK);
    assert_eq!(plan.capabilities.bounding, DOCKER_CAPABILITY_MASK);
    assert_eq!(
        (plan.capabilities.inheritable, plan.capabilities.ambient),
        (0, 0)
    );
    assert!(plan.no_new_privs);
    assert_eq!(
        (plan.uid, plan.gid, plan.hostname.as_deref()),
        (0, 0, Some("box"))
    );
    assert_eq!(plan.argv, ["busybox", "true"]);
    assert_eq!(
        plan.seccomp.as_deref(),
        Some("/etc/mkrootfs/seccomp/box.bpf")
    );
    // The profile's container table is not written into init.json: the
    // init reads only the plan (and is built without the table's schema).
    assert!(cfg.services[0].container.is_none());
    let bpf = entry("etc/mkrootfs/seccomp/box.bpf");
    assert_eq!(bpf.data, docker_default(DOCKER_CAPABILITY_MASK).unwrap());
    assert_eq!((bpf.uid, bpf.gid), (0, 0));
    // The container root is the whole image: its files belong to the
    // container's root (100000) and user 1000 (101000); the init's own
    // files, added after, stay root's.
    let owner = |n: &str| (entry(n).uid, entry(n).gid);
    assert_eq!(owner("etc/passwd"), (100000, 100000));
    assert_eq!(owner("home/u"), (101000, 101000));
    assert_eq!(owner("dev/console"), (100000, 100000));
    assert_eq!(owner("init"), (0, 0));
    assert_eq!(owner("etc/mkrootfs/init.json"), (0, 0));
}

/// The argv[0] check runs against the finished tree: a service may run
/// the image's own `/init` (which the builder adds), e.g. to check the
/// configuration, and was refused as "not a file of the image".
#[test]
fn a_service_may_run_the_init_the_builder_adds() {
    if !mkrootfs_tests::require_file(STATIC_ELF) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("check.toml");
    fs::write(
        &profile,
        "[image]\ncompression = \"none\"\n[init]\n[[init.services]]\n\
         argv = [\"/init\", \"--check-config\", \"/etc/mkrootfs/init.json\"]\n",
    )
    .unwrap();
    let p = mkrootfs::profile::load_path(&profile).unwrap();
    let out = tmp.path().join("check.cpio");
    build(
        &p,
        &BuildOptions {
            output: Some(out.clone()),
            init_binary: Some(STATIC_ELF.into()),
            mtime: Some(0),
            ..BuildOptions::default()
        },
    )
    .unwrap();
    assert!(out.exists());
}
