//! The container table and the services, resolved against an image:
//! exact plans, exact owners and exact errors with file:line:column.

use super::*;
use crate::profile;
use mkrootfs_config::container::CapSets;
use mkrootfs_config::container::{
    docker_mounts, docker_symlinks, CgroupPlan, ContainerPlan, CLONE_NAMESPACES,
    DOCKER_MASKED_PATHS, DOCKER_READONLY_PATHS,
};

fn file(s: &str) -> Node {
    Node::File(s.as_bytes().to_vec().into())
}

/// An image with a container root at /srv/c (its own passwd, group and
/// program) and a busybox-like /bin/sh for plain services.
fn image() -> Tree {
    let mut t = Tree::new("/");
    t.add("/bin/sh", file("sh"), Meta::root(0o755), "t")
        .unwrap();
    t.add(
        "/etc/passwd",
        file("root:x:0:0:root:/root:/bin/sh\n"),
        Meta::root(0o644),
        "t",
    )
    .unwrap();
    t.add("/srv/c/bin/app", file("app"), Meta::root(0o755), "t")
        .unwrap();
    t.add(
        "/srv/c/etc/passwd",
        file("root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n"),
        Meta::root(0o644),
        "t",
    )
    .unwrap();
    t.add(
        "/srv/c/etc/group",
        file("root:x:0:\nweb:x:33:\nlog:x:4:web\n"),
        Meta::root(0o644),
        "t",
    )
    .unwrap();
    t.add_dir(
        "/srv/c/var/www",
        Meta {
            perm: 0o755,
            uid: 33,
            gid: 33,
        },
        "t",
    )
    .unwrap();
    t
}

/// Loads `text` as a profile file and resolves it against `tree`.
fn resolve_text(tree: &mut Tree, text: &str) -> Result<InitConfig, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(
        dir.path().join("deny-mount.json"),
        r#"{ "x": { "default_action": "allow", "filter_action": "trap", "filter": [ { "syscall": "mount" } ] } }"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.json"), "{ \"x\": 1 }").unwrap();
    let shown = |e: String| e.replace(&dir.path().display().to_string(), "DIR");
    let p = profile::load_path(&path).map_err(|e| shown(e.to_string()))?;
    let mut cfg = p.init.clone().unwrap();
    resolve(tree, &p, &mut cfg, &Default::default())
        .map(|()| cfg)
        .map_err(|e| shown(e.to_string()))
}

fn owners(t: &Tree) -> Vec<(String, u32, u32)> {
    t.plan(0)
        .into_iter()
        .map(|(e, _)| (format!("/{}", e.name), e.uid, e.gid))
        .collect()
}

#[test]
fn empty_container_table_is_docker_isolation() {
    let mut t = image();
    let cfg = resolve_text(
        &mut t,
        "[init]\n[[init.services]]\nname = \"web\"\nargv = [\"app\", \"-v\"]\nuser = \"web\"\ncontainer = { root = \"/srv/c\" }\n",
    )
    .unwrap();
    let caps = mkrootfs_config::container::DOCKER_CAPABILITY_MASK;
    let expected = ContainerPlan {
        root: "/srv/c".into(),
        readonly_root: false,
        clone_flags: CLONE_NAMESPACES,
        uid_map: vec![[0, 100000, 65536]],
        gid_map: vec![[0, 100000, 65536]],
        setgroups: true,
        hostname: Some("web".into()),
        mounts: docker_mounts(),
        symlinks: docker_symlinks(),
        masked_paths: DOCKER_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
        readonly_paths: DOCKER_READONLY_PATHS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        sysctls: vec![],
        cgroup: CgroupPlan {
            path: "mkrootfs/web".into(),
            ..CgroupPlan::default()
        },
        rlimits: vec![],
        oom_score_adj: None,
        argv: vec!["app".into(), "-v".into()],
        env: vec![
            "HOME=/var/www".into(),
            format!("PATH={}", mkrootfs_config::DEFAULT_PATH),
            "TERM=linux".into(),
        ],
        cwd: "/".into(),
        uid: 33,
        gid: 33,
        additional_gids: vec![4],
        capabilities: CapSets {
            bounding: caps,
            effective: caps,
            permitted: caps,
            inheritable: 0,
            ambient: 0,
        },
        no_new_privs: true,
        seccomp: Some("/etc/mkrootfs/seccomp/web.bpf".into()),
        seccomp_flags: 0,
        device_filter: Some("/etc/mkrootfs/devices.bpf".into()),
        terminal: false,
        init: false,
        stop_signal: 15,
        interface: None,
    };
    assert_eq!(cfg.services[0].container_plan.as_ref(), Some(&expected));
    // The filter in the image is Docker's for these capabilities.
    let bpf = t
        .file_data("/etc/mkrootfs/seccomp/web.bpf")
        .unwrap()
        .read()
        .unwrap();
    assert_eq!(bpf, seccomp::docker_default(caps).unwrap());
    // The init reads the plan back from init.json as the builder wrote it;
    // the profile's `container` table is not written (the init is built
    // without its schema).
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(!json.contains("\"container\":"), "{json}");
    let back: InitConfig = serde_json::from_str(&json).unwrap();
    let mut written = cfg.clone();
    written.services[0].container = None;
    assert_eq!(back, written);
    assert_eq!(back.validate(), Ok(()));
}

#[test]
fn owners_below_the_root_are_shifted_by_the_map() {
    let mut t = image();
    resolve_text(
        &mut t,
        "[init]\n[[init.services]]\nargv = [\"/bin/app\"]\n[init.services.container]\nroot = \"/srv/c\"\nuid_map = [\"0 100000 1000\"]\ngid_map = [\"0 200000 1000\"]\n",
    )
    .unwrap();
    let o = owners(&t);
    let get = |p: &str| o.iter().find(|(q, ..)| q == p).map(|(_, u, g)| (*u, *g));
    assert_eq!(get("/srv/c"), Some((100000, 200000)));
    assert_eq!(get("/srv/c/var/www"), Some((100033, 200033)));
    assert_eq!(get("/srv/c/bin/app"), Some((100000, 200000)));
    // Outside the root, and the filter the builder adds: untouched.
    assert_eq!(get("/srv"), Some((0, 0)));
    assert_eq!(get("/bin/sh"), Some((0, 0)));
    assert_eq!(get("/etc/mkrootfs/seccomp/app.bpf"), Some((0, 0)));
}

#[test]
fn an_owner_outside_the_map_fails_naming_the_file() {
    let mut t = image();
    let err = resolve_text(
        &mut t,
        "[init]\n[[init.services]]\nargv = [\"/bin/app\"]\n[init.services.container]\nroot = \"/srv/c\"\nuid_map = [\"0 100000 10\"]\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "DIR/p.toml:6:1: init.services[0].container: /srv/c/var/www (in the container root /srv/c) is owned by uid 33, which the uid_map does not map"
    );
}

fn container_err(table: &str) -> String {
    let mut t = image();
    resolve_text(
        &mut t,
        &format!("[init]\n[[init.services]]\nargv = [\"app\"]\nuser = \"web\"\n[init.services.container]\nroot = \"/srv/c\"\n{table}"),
    )
    .unwrap_err()
}

#[test]
fn container_errors_name_file_line_column() {
    assert_eq!(
        container_err("uid_map = [\"0 100000 1000\", \"500 300000 10\"]\n"),
        "DIR/p.toml:7:1: init.services[0] (app).container: uid_map: ranges \"0 100000 1000\" and \"500 300000 10\" overlap inside the container"
    );
    assert_eq!(
        container_err("capabilities = [\"CHOWN\", \"SYS_ADMINN\"]\n"),
        "DIR/p.toml:7:1: init.services[0] (app).container: unknown capability \"SYS_ADMINN\""
    );
    assert_eq!(
        container_err("seccomp = \"broken.json\"\n"),
        "DIR/p.toml:7:11: init.services[0] (app).container: seccomp policy DIR/broken.json: Json Frontend error: Error parsing Json: invalid type: integer `1`, expected struct JsonFilter at line 1 column 9"
    );
    assert_eq!(
        container_err("seccomp = \"missing.json\"\n"),
        "DIR/p.toml:7:11: init.services[0] (app).container: read seccomp policy DIR/missing.json: No such file or directory (os error 2)"
    );
    assert_eq!(
        container_err("cpu_max = \"20%\"\n"),
        "DIR/p.toml:7:11: init.services[0] (app).container: invalid cpu_max \"20%\": expected \"quota period\" in microseconds such as \"20000 100000\""
    );
    assert_eq!(
        container_err("memory_max = \"64X\"\n"),
        "DIR/p.toml:7:14: invalid size \"64X\": expected bytes or a number with K, M or G such as \"64M\""
    );
    assert_eq!(
        container_err("rlimits = { nofiles = 10 }\n"),
        "DIR/p.toml:7:1: init.services[0] (app).container: unknown limit \"nofiles\""
    );
    assert_eq!(
        container_err("stop_signal = \"SIGSTOPP\"\n"),
        "DIR/p.toml:7:15: init.services[0] (app).container: unknown signal \"SIGSTOPP\""
    );
    assert_eq!(
        container_err("namespaces = { mount = false }\n"),
        "DIR/p.toml:7:1: init.services[0] (app).container: root, mounts and readonly_root need the mount namespace (namespaces.mount = true)"
    );
    // The user is looked up in the container's own /etc/passwd.
    let mut t = image();
    let err = resolve_text(
        &mut t,
        "[init]\n[[init.services]]\nargv = [\"app\"]\nuser = \"root\"\ngroup = \"wheel\"\ncontainer = { root = \"/srv/c\" }\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "DIR/p.toml:5:9: init.services[0] (app): group \"wheel\" is not a number and not in /etc/group of the container root /srv/c"
    );
}

#[test]
fn root_and_program_must_be_in_the_image() {
    let mut t = image();
    assert_eq!(
        resolve_text(
            &mut t,
            "[init]\n[[init.services]]\nargv = [\"app\"]\ncontainer = { root = \"/srv/nope\" }\n",
        )
        .unwrap_err(),
        "DIR/p.toml:4:22: init.services[0] (app).container: root /srv/nope is not a directory of the image"
    );
    // /bin/sh is in the image but not in the container root.
    assert_eq!(
        resolve_text(
            &mut t,
            "[init]\n[[init.services]]\nargv = [\"sh\", \"-c\", \"true\"]\ncontainer = { root = \"/srv/c\" }\n",
        )
        .unwrap_err(),
        format!(
            "DIR/p.toml:3:1: init.services[0] (sh): argv[0] \"sh\" is not in the container root /srv/c (searched PATH {})",
            mkrootfs_config::DEFAULT_PATH
        )
    );
}

#[test]
fn seccomp_policy_file_and_none() {
    let mut t = image();
    let cfg = resolve_text(
        &mut t,
        "[init]\n[[init.services]]\nname = \"a\"\nargv = [\"app\"]\ncontainer = { root = \"/srv/c\", seccomp = \"deny-mount.json\", capabilities = [\"kill\"], network = \"host\" }\n[[init.services]]\nname = \"b\"\nargv = [\"app\"]\ncontainer = { root = \"/srv/c\", seccomp = \"none\" }\n",
    )
    .unwrap();
    let a = cfg.services[0].container_plan.as_ref().unwrap();
    assert_eq!(a.seccomp.as_deref(), Some("/etc/mkrootfs/seccomp/a.bpf"));
    assert_eq!(a.capabilities, CapSets::docker(1 << 5));
    assert_eq!(
        a.clone_flags,
        CLONE_NAMESPACES & !mkrootfs_config::container::CLONE_NEWNET
    );
    assert!(t.file_data("/etc/mkrootfs/seccomp/a.bpf").is_some());
    let b = cfg.services[1].container_plan.as_ref().unwrap();
    assert_eq!(b.seccomp, None);
    assert!(t.file_data("/etc/mkrootfs/seccomp/b.bpf").is_none());
}

#[test]
fn two_roots_with_different_maps_cannot_share_files() {
    let mut t = image();
    assert_eq!(
        resolve_text(
            &mut t,
            "[init]\n[[init.services]]\nargv = [\"app\"]\ncontainer = { root = \"/srv/c\" }\n[[init.services]]\nargv = [\"app\"]\ncontainer = { root = \"/srv/c\", uid_map = [\"0 300000 65536\"] }\n",
        )
        .unwrap_err(),
        "DIR/p.toml:7:22: init.services[1].container: root /srv/c overlaps root /srv/c of init.services[0] with another user-namespace map: their files cannot belong to both"
    );
}

#[test]
fn plain_services_are_checked_against_the_image() {
    let check = |text: &str| resolve_text(&mut image(), text).unwrap_err();
    assert_eq!(
        check("[init]\n[[init.services]]\nargv = [\"/bin/nope\"]\n"),
        "DIR/p.toml:3:1: init.services[0] (nope): argv[0] /bin/nope is not a file of the image"
    );
    assert_eq!(
        check("[init]\nenv = { PATH = \"/usr/bin\" }\n[[init.services]]\nargv = [\"sh\"]\n"),
        "DIR/p.toml:4:1: init.services[0] (sh): argv[0] \"sh\" is not in the image (searched PATH /usr/bin)"
    );
    assert_eq!(
        check("[init]\n[[init.services]]\nargv = [\"sh\"]\nuser = \"web\"\n"),
        "DIR/p.toml:4:8: init.services[0] (sh): user \"web\" is not a number and not in /etc/passwd of the image"
    );
    assert_eq!(
        check("[init]\n[[init.services]]\nargv = [\"sh\"]\ncwd = \"/srv/x\"\n"),
        "DIR/p.toml:4:7: init.services[0] (sh): cwd /srv/x is not a directory of the image"
    );
    assert_eq!(
        check("[init]\nemergency_shell = \"/bin/bash\"\n[[init.services]]\nargv = [\"sh\"]\n"),
        "DIR/p.toml:2:19: init.emergency_shell /bin/bash is not a file of the image"
    );
    assert_eq!(
        check("[init]\n[init.root]\nmode = \"tmpfs\"\nexec = \"/sbin/init\"\n"),
        "DIR/p.toml:4:8: init.root.exec /sbin/init is not a file of the image (root.mode = \"tmpfs\" runs it from a copy of the image)"
    );
    // From a disk root, the image's files say nothing about the services'.
    let mut t = image();
    resolve_text(
        &mut t,
        "[init]\nroot = { mode = \"device\", device = \"/dev/vda\" }\n[[init.services]]\nargv = [\"/bin/nope\"]\nuser = \"nobody\"\n",
    )
    .unwrap();
    // A numeric user needs no entry, as at boot; a good service passes.
    resolve_text(
        &mut t,
        "[init]\n[[init.services]]\nargv = [\"sh\"]\nuser = \"1000\"\ncwd = \"/srv/c/var\"\n",
    )
    .unwrap();
}

/// Issue 15: a cwd through `/proc/self/fd/N` (CVE-2024-21626's shape) is
/// refused at build time, written as such or reached through a link the
/// image (any OCI layer) plants.
#[test]
fn cwd_below_proc_is_refused_even_through_an_image_link() {
    let svc = |cwd: &str| {
        format!("[init]\n[[init.services]]\nname = \"c\"\nargv = [\"app\"]\ncwd = \"{cwd}\"\ncontainer = {{ root = \"/srv/c\" }}\n")
    };
    let mut t = image();
    assert_eq!(
        resolve_text(&mut t, &svc("/proc/self/fd/5")).unwrap_err(),
        "DIR/p.toml:5:7: init.services[0] (c): cwd /proc/self/fd/5 is below /proc, whose links lead out of the container root"
    );
    let mut t = image();
    t.add_dir("/srv/c/proc/self/fd/5", Meta::root(0o755), "layer")
        .unwrap();
    t.add_symlink("/srv/c/work", "/proc/self/fd/5", "layer")
        .unwrap();
    assert_eq!(
        resolve_text(&mut t, &svc("/work")).unwrap_err(),
        "DIR/p.toml:5:7: init.services[0] (c): cwd /work is below /proc, whose links lead out of the container root"
    );
    let mut t = image();
    t.add_dir("/srv/c/x", Meta::root(0o755), "layer").unwrap();
    assert_eq!(
        resolve_text(&mut t, &svc("/x/../proc/1/cwd")).unwrap_err(),
        "DIR/p.toml:5:7: init.services[0] (c): cwd /x/../proc/1/cwd is below /proc, whose links lead out of the container root"
    );
}

/// Issue 15: with the default root (the VM's own `/`) the container gets
/// it read-only with private /tmp and /run, the init's directory masked,
/// and the init's files keep the VM's owners.
#[test]
fn the_shared_root_is_read_only_and_never_owns_the_init_files() {
    let mut t = image();
    t.add("/init", file("init"), Meta::root(0o755), "t")
        .unwrap();
    t.add(
        "/etc/mkrootfs/extra.json",
        file("{}"),
        Meta::root(0o644),
        "t",
    )
    .unwrap();
    let cfg = resolve_text(
        &mut t,
        "[init]\n[[init.services]]\nname = \"c\"\nargv = [\"/bin/sh\"]\ncontainer = {}\n",
    )
    .unwrap();
    let plan = cfg.services[0].container_plan.as_ref().unwrap();
    assert!(plan.readonly_root);
    let tmpfs: Vec<(&str, &str)> = plan
        .mounts
        .iter()
        .filter(|m| m.target == "/tmp" || m.target == "/run")
        .map(|m| (m.target.as_str(), m.data.as_str()))
        .collect();
    assert_eq!(tmpfs, [("/tmp", "mode=1777"), ("/run", "mode=755")]);
    assert_eq!(
        plan.masked_paths.last().map(String::as_str),
        Some("/etc/mkrootfs")
    );
    let owners = owners(&t);
    let owner = |p: &str| {
        owners
            .iter()
            .find(|(n, _, _)| n == p)
            .map(|(_, u, g)| (*u, *g))
    };
    assert_eq!(owner("/init"), Some((0, 0)));
    assert_eq!(owner("/etc/mkrootfs/extra.json"), Some((0, 0)));
    assert_eq!(owner("/bin/sh"), Some((100000, 100000)));
    // A subdirectory root keeps what it was: writable, no extra mounts.
    let mut t = image();
    let cfg = resolve_text(
        &mut t,
        "[init]\n[[init.services]]\nname = \"c\"\nargv = [\"app\"]\ncontainer = { root = \"/srv/c\" }\n",
    )
    .unwrap();
    let plan = cfg.services[0].container_plan.as_ref().unwrap();
    assert!(!plan.readonly_root);
    assert!(!plan
        .mounts
        .iter()
        .any(|m| m.target == "/tmp" || m.target == "/run"));
}

/// A subdirectory root inside the shared root, with the same maps, in
/// either order: every owner is shifted exactly once.
#[test]
fn nested_roots_with_the_same_maps_are_shifted_once() {
    for order in [["/", "/srv/c"], ["/srv/c", "/"]] {
        let mut t = image();
        let services: String = order
            .iter()
            .map(|root| {
                let argv = if *root == "/" { "/bin/sh" } else { "app" };
                format!(
                    "[[init.services]]\nargv = [\"{argv}\"]\ncontainer = {{ root = \"{root}\" }}\n"
                )
            })
            .collect();
        resolve_text(&mut t, &format!("[init]\n{services}")).unwrap();
        let owners = owners(&t);
        let owner = |p: &str| {
            owners
                .iter()
                .find(|(n, _, _)| n == p)
                .map(|(_, u, g)| (*u, *g))
        };
        assert_eq!(owner("/bin/sh"), Some((100000, 100000)), "{order:?}");
        assert_eq!(owner("/srv/c/bin/app"), Some((100000, 100000)), "{order:?}");
        assert_eq!(owner("/srv/c/var/www"), Some((100033, 100033)), "{order:?}");
    }
}

#[test]
fn a_profile_cannot_write_a_container_plan() {
    let mut t = image();
    let err = resolve_text(
        &mut t,
        "[init]\n[[init.services]]\nname = \"web\"\nargv = [\"app\"]\n[init.services.container_plan]\nroot = \"/\"\nargv = [\"app\"]\n",
    )
    .unwrap_err();
    assert_eq!(
        err,
        "DIR/p.toml:5:1: init.services[0].container_plan is what the builder writes, not a profile: describe the container with `container = { … }`"
    );
}

/// `network = { interface = … }`: an `[[init.network]]` entry must name the
/// interface, the container needs its network namespace, and one interface
/// goes to one container; `"none"` and `"host"` still read as before, and a
/// misspelt form is refused at its position.
#[test]
fn network_interface_needs_an_entry_a_namespace_and_one_taker() {
    let net = "[[init.network]]\nname = \"eth0\"\ndhcp = true\n";
    let svc = |name: &str, network: &str| {
        format!("[[init.services]]\nname = \"{name}\"\nargv = [\"app\"]\nuser = \"web\"\ncontainer = {{ root = \"/srv/c\", network = {network} }}\n")
    };
    let take = "{ interface = \"eth0\" }";
    let mut t = image();
    let cfg = resolve_text(
        &mut t,
        &format!(
            "[init]\n{net}{}{}{}",
            svc("a", take),
            svc("b", "\"none\""),
            svc("c", "\"host\"")
        ),
    )
    .unwrap();
    let plans: Vec<_> = cfg
        .services
        .iter()
        .map(|s| s.container_plan.as_ref().unwrap())
        .collect();
    assert_eq!(plans[0].interface.as_deref(), Some("eth0"));
    assert_ne!(
        plans[0].clone_flags & mkrootfs_config::container::CLONE_NEWNET,
        0
    );
    assert_eq!(plans[1].interface, None);
    assert_ne!(
        plans[1].clone_flags & mkrootfs_config::container::CLONE_NEWNET,
        0
    );
    assert_eq!(
        plans[2].clone_flags & mkrootfs_config::container::CLONE_NEWNET,
        0
    );
    let err = |text: String| resolve_text(&mut image(), &text).unwrap_err();
    assert_eq!(
        err(format!("[init]\n{}", svc("a", take))),
        "DIR/p.toml:6:32: init.services[0] (a).container: network: interface \"eth0\" is configured by no [[init.network]] entry (name = \"eth0\")"
    );
    assert_eq!(
        err(format!("[init]\n{net}{}{}", svc("a", take), svc("b", take))),
        "DIR/p.toml:14:32: init.services[1] (b).container: network: interface \"eth0\" is already taken by service a"
    );
    let no_netns = "{ interface = \"eth0\" }, namespaces = { net = false }";
    assert!(err(format!("[init]\n{net}{}", svc("a", no_netns)))
        .ends_with("network = { interface = \"eth0\" } needs the network namespace (namespaces.net = true)"));
    let typo = err(format!("[init]\n{net}{}", svc("a", "\"bridge\"")));
    assert!(
        typo.contains(
            "network \"bridge\": expected \"none\", \"host\" or { interface = \"eth0\" }"
        ),
        "{typo}"
    );
    let key = err(format!("[init]\n{net}{}", svc("a", "{ iface = \"eth0\" }")));
    assert!(
        key.contains("unknown field `iface`, expected `interface`"),
        "{key}"
    );
}
