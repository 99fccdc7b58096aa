//! A service's `container` table validated into the [`ContainerPlan`] the
//! init executes: every default applied, every name resolved to a number,
//! every error at the profile's line and column.

use super::view::View;
use super::{caps, check, idmap, seccomp, sysctl, At};
use crate::profile::{ProfileError, Seg};
use crate::tree::Tree;
use mkrootfs_config::container::{
    docker_mounts, docker_symlinks, rlimit_number, CapSets, CgroupPlan, ContainerConfig,
    ContainerPlan, MountKind, Network, PlanMount, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET,
    CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWUTS, DOCKER_CAPABILITIES, DOCKER_MASKED_PATHS,
    DOCKER_READONLY_PATHS, MS_BIND, MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REC,
};
use mkrootfs_config::{users, InitConfig, ServiceConfig, DEFAULT_ENV, DEFAULT_PATH};
use std::collections::BTreeMap;
use std::path::Path;

/// Where the compiled filters go in the image.
pub const SECCOMP_DIR: &str = "/etc/mkrootfs/seccomp";
/// Docker's device policy, compiled once for every container
/// ([`super::devices`]).
pub const DEVICES_BPF: &str = "/etc/mkrootfs/devices.bpf";

/// What resolving one container gives: its plan, and the BPF to store at
/// `plan.seccomp` when it has one.
pub struct Resolved {
    pub plan: ContainerPlan,
    pub bpf: Option<Vec<u8>>,
}

/// Where a container's `seccomp` policy comes from.
#[derive(Clone, Copy)]
pub struct Policies<'a> {
    /// Where a relative policy file is found (the profile's directory).
    pub dir: &'a Path,
    /// The policy its bundle brought, in memory.
    pub bundle: Option<&'a seccomp::BundlePolicy>,
}

/// Resolves service `i`'s container table; `policies` says where its
/// `seccomp` policy comes from.
pub fn resolve(
    tree: &Tree,
    cfg: &InitConfig,
    i: usize,
    svc: &ServiceConfig,
    c: &ContainerConfig,
    policies: Policies,
    at: &At,
) -> Result<Resolved, ProfileError> {
    let name = svc.display_name();
    let key = |k: &'static str| {
        [
            Seg::Key("services"),
            Seg::Index(i),
            Seg::Key("container"),
            Seg::Key(k),
        ]
    };
    let fail = |k: &'static str, msg: String| {
        at(
            &key(k),
            format!("init.services[{i}] ({name}).container: {msg}"),
        )
    };
    let in_image = check::image_is_root(cfg);

    // The root: an image directory, seen from inside as `/`.
    if !c.root.starts_with('/') || c.root.split('/').any(|p| p == "..") {
        return Err(fail(
            "root",
            format!("root {:?} must be an absolute path without `..`", c.root),
        ));
    }
    let root = if in_image {
        let resolved = tree
            .resolve(&c.root, true)
            .map_err(|e| fail("root", format!("root {}: {e}", c.root)))?;
        if !(View { tree, root: "/" }).is_dir(&resolved) {
            return Err(fail(
                "root",
                format!("root {} is not a directory of the image", c.root),
            ));
        }
        resolved
    } else {
        c.root.clone()
    };
    let view = View { tree, root: &root };

    // Namespaces.
    let mut flags = c.namespaces.clone_flags();
    if c.network == Network::Host {
        flags &= !CLONE_NEWNET;
    }
    if flags & CLONE_NEWNS == 0 && (root != "/" || !c.mounts.is_empty() || c.readonly_root) {
        return Err(fail(
            "namespaces",
            "root, mounts and readonly_root need the mount namespace (namespaces.mount = true)"
                .into(),
        ));
    }
    let user_ns = flags & CLONE_NEWUSER != 0;
    if user_ns {
        idmap::check("uid_map", &c.uid_map).map_err(|m| fail("uid_map", m))?;
        idmap::check("gid_map", &c.gid_map).map_err(|m| fail("gid_map", m))?;
    }
    let hostname = match (&c.hostname, flags & CLONE_NEWUTS != 0) {
        (Some(_), false) => {
            return Err(fail(
                "hostname",
                "hostname needs the UTS namespace (namespaces.uts = true)".into(),
            ))
        }
        (None, false) => None,
        (h, true) => {
            let h = h.clone().unwrap_or_else(|| name.to_string());
            if h.is_empty() || h.len() > 64 || h.contains(['\0', '/']) {
                return Err(fail(
                    "hostname",
                    format!("hostname {h:?} must be 1 to 64 bytes without NUL or /"),
                ));
            }
            Some(h)
        }
    };

    // Mounts: Docker's, less those whose namespace is off, then the profile's.
    let mut mounts: Vec<PlanMount> = Vec::new();
    if flags & CLONE_NEWNS != 0 {
        mounts = docker_mounts()
            .into_iter()
            .filter(|m| match m.fstype.as_str() {
                "mqueue" => flags & CLONE_NEWIPC != 0,
                "cgroup2" => flags & CLONE_NEWCGROUP != 0,
                _ => true,
            })
            .collect();
        // The default root is the VM's own `/`: the container gets it
        // read-only (below), with a `/tmp` and a `/run` of its own, so that
        // nothing it writes is VM state (docs/init.md, "Containers").
        if root == "/" {
            for (target, data) in [("/tmp", "mode=1777"), ("/run", "mode=755")] {
                if !c
                    .mounts
                    .iter()
                    .any(|m| m.target.trim_end_matches('/') == target)
                {
                    mounts.push(PlanMount {
                        source: "tmpfs".into(),
                        target: target.into(),
                        fstype: "tmpfs".into(),
                        flags: MS_NOSUID | MS_NODEV,
                        data: data.into(),
                    });
                }
            }
        }
        for (n, m) in c.mounts.iter().enumerate() {
            let bad = |msg: String| {
                at(
                    &[
                        Seg::Key("services"),
                        Seg::Index(i),
                        Seg::Key("container"),
                        Seg::Key("mounts"),
                        Seg::Index(n),
                    ],
                    format!("init.services[{i}] ({name}).container.mounts[{n}]: {msg}"),
                )
            };
            if !m.target.starts_with('/') || m.target.split('/').any(|p| p == "..") {
                return Err(bad(format!(
                    "target {:?} must be an absolute path without `..`",
                    m.target
                )));
            }
            let ro = if m.readonly { MS_RDONLY } else { 0 };
            mounts.push(match m.kind {
                MountKind::Bind => {
                    let Some(src) = m.source.as_deref().filter(|s| s.starts_with('/')) else {
                        return Err(bad("a bind mount needs an absolute source in the VM".into()));
                    };
                    PlanMount {
                        source: src.into(),
                        target: m.target.clone(),
                        fstype: String::new(),
                        flags: MS_BIND | MS_REC | MS_NOSUID | MS_NODEV | ro,
                        data: m.options.clone(),
                    }
                }
                MountKind::Tmpfs => {
                    if m.source.is_some() {
                        return Err(bad("a tmpfs mount takes no source".into()));
                    }
                    PlanMount {
                        source: "tmpfs".into(),
                        target: m.target.clone(),
                        fstype: "tmpfs".into(),
                        flags: MS_NOSUID | MS_NODEV | ro,
                        data: m.options.clone(),
                    }
                }
            });
        }
    }
    let abs_list =
        |k: &'static str, extra: &[String], base: &[&str]| -> Result<Vec<String>, ProfileError> {
            let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            for p in extra {
                if !p.starts_with('/') {
                    return Err(fail(k, format!("{p:?} must be an absolute path")));
                }
                v.push(p.clone());
            }
            Ok(v)
        };
    let mount_ns = flags & CLONE_NEWNS != 0;
    let (mut masked_paths, readonly_paths) = if mount_ns {
        (
            abs_list("masked_paths", &c.masked_paths, DOCKER_MASKED_PATHS)?,
            abs_list("readonly_paths", &c.readonly_paths, DOCKER_READONLY_PATHS)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    // The VM's root shared read-only: the init's own configuration and
    // filters are not the container's to read either.
    let shared_root = mount_ns && root == "/";
    if shared_root {
        masked_paths.push(mkrootfs_config::INIT_CONFIG_DIR.into());
    }

    // Resources.
    let cpu_max = match &c.cpu_max {
        None => None,
        Some(s) => Some(parse_cpu_max(s).map_err(|m| fail("cpu_max", m))?),
    };
    if c.memory_max.is_some_and(|m| m.0 == 0) {
        return Err(fail(
            "memory_max",
            "memory_max must be more than 0 bytes".into(),
        ));
    }
    if c.pids_max == Some(0) {
        return Err(fail("pids_max", "pids_max must be at least 1".into()));
    }
    if c.oom_score_adj
        .is_some_and(|o| !(-1000..=1000).contains(&o))
    {
        return Err(fail(
            "oom_score_adj",
            "oom_score_adj must be between -1000 and 1000".into(),
        ));
    }
    let mut sysctls = Vec::new();
    for (n, v) in &c.sysctl {
        let path = sysctl::check(n, v, flags).map_err(|m| {
            at(
                &[
                    Seg::Key("services"),
                    Seg::Index(i),
                    Seg::Key("container"),
                    Seg::Key("sysctl"),
                    Seg::Key(n),
                ],
                format!("init.services[{i}] ({name}).container: {m}"),
            )
        })?;
        sysctls.push([path, v.clone()]);
    }
    let mut rlimits = Vec::new();
    for (n, v) in &c.rlimits {
        let Some(res) = rlimit_number(n) else {
            return Err(fail("rlimits", format!("unknown limit {n:?}")));
        };
        let v = match *v {
            -1 => u64::MAX,
            v if v >= 0 => v as u64,
            v => {
                return Err(fail(
                    "rlimits",
                    format!("rlimits.{n} = {v}: use -1 for unlimited"),
                ))
            }
        };
        rlimits.push([u64::from(res), v, v]);
    }

    // Credentials and the program, from the container root's own files.
    let (passwd, groups) = view.users();
    let creds = if in_image {
        users::resolve(svc.user.as_deref(), svc.group.as_deref(), &passwd, &groups).map_err(
            |e| {
                let k = match e {
                    users::LookupError::UnknownUser(_) => "user",
                    users::LookupError::UnknownGroup(_) => "group",
                };
                at(
                    &[Seg::Key("services"), Seg::Index(i), Seg::Key(k)],
                    format!("init.services[{i}] ({name}): {e} of the container root {root}"),
                )
            },
        )?
    } else {
        let num = |k: &'static str, v: Option<&str>| {
            match v.map(str::parse::<u32>) {
            None => Ok(None),
            Some(Ok(n)) => Ok(Some(n)),
            Some(Err(_)) => Err(at(
                &[Seg::Key("services"), Seg::Index(i), Seg::Key(k)],
                format!("init.services[{i}] ({name}): the container root is not in the image (root.mode = {:?}): {k} must be a number", cfg.root.mode),
            )),
        }
        };
        let uid = num("user", svc.user.as_deref())?.unwrap_or(0);
        let gid = num("group", svc.group.as_deref())?.unwrap_or(uid);
        users::Credentials {
            uid,
            gid,
            groups: vec![gid],
            home: None,
        }
    };
    // Supplementary groups: the user's from /etc/group and the table's,
    // sorted, without the primary group.
    let additional_gids: Vec<u32> = creds
        .groups
        .iter()
        .chain(&c.additional_gids)
        .copied()
        .filter(|g| *g != creds.gid)
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .collect();
    if user_ns {
        if idmap::to_outside(&c.uid_map, creds.uid).is_none() {
            return Err(fail(
                "uid_map",
                format!("the service's uid {} is not in uid_map", creds.uid),
            ));
        }
        if let Some(g) = std::iter::once(&creds.gid)
            .chain(&additional_gids)
            .find(|g| idmap::to_outside(&c.gid_map, **g).is_none())
        {
            return Err(fail(
                "gid_map",
                format!("the service's gid {g} is not in gid_map"),
            ));
        }
    }
    let mut env: BTreeMap<String, String> = DEFAULT_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(home) = &creds.home {
        env.insert("HOME".into(), home.clone());
    }
    env.extend(cfg.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(svc.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let argv0 = svc.argv.first().map(String::as_str).unwrap_or("");
    let path = env.get("PATH").map(String::as_str).unwrap_or(DEFAULT_PATH);
    if in_image && view.lookup(argv0, path).is_none() {
        return Err(at(
            &[Seg::Key("services"), Seg::Index(i), Seg::Key("argv")],
            check::not_found(i, name, argv0, path, &format!("the container root {root}")),
        ));
    }
    let cwd = svc.cwd.clone().unwrap_or_else(|| "/".into());
    // The links of /proc/<pid>/fd and /proc/<pid>/cwd lead out of any root
    // (CVE-2024-21626): no working directory there, whatever the image's
    // own links make of the path.
    let proc = |p: &str| p == "/proc" || p.starts_with("/proc/");
    if proc(&cwd) || (in_image && view.inside(&cwd).is_some_and(|p| proc(&p))) {
        return Err(at(
            &[Seg::Key("services"), Seg::Index(i), Seg::Key("cwd")],
            format!("init.services[{i}] ({name}): cwd {cwd} is below /proc, whose links lead out of the container root"),
        ));
    }
    if in_image && !view.is_dir(&cwd) {
        return Err(at(
            &[Seg::Key("services"), Seg::Index(i), Seg::Key("cwd")],
            format!("init.services[{i}] ({name}): cwd {cwd} is not a directory of the container root {root}"),
        ));
    }

    // Privileges.
    let caps_mask = match &c.capabilities {
        None => caps::mask(DOCKER_CAPABILITIES),
        Some(list) => caps::mask(list),
    }
    .map_err(|n| fail("capabilities", format!("unknown capability {n:?}")))?;
    let (seccomp, bpf) = match c.seccomp.as_str() {
        "none" => (None, None),
        "default" => {
            let bpf =
                seccomp::docker_default(caps_mask).map_err(|e| fail("seccomp", error_chain(&e)))?;
            (Some(seccomp_path(i, name)), Some(bpf))
        }
        "" => {
            return Err(fail(
                "seccomp",
                "seccomp must be \"default\", \"none\" or a policy file".into(),
            ))
        }
        file => {
            let bpf = match policies.bundle {
                Some(b) if b.origin.as_os_str() == file => {
                    seccomp::compile_value(&b.policy, &b.origin, caps_mask)
                }
                _ => seccomp::compile_file(&policies.dir.join(file), caps_mask),
            }
            .map_err(|e| fail("seccomp", error_chain(&e)))?;
            (Some(seccomp_path(i, name)), Some(bpf))
        }
    };
    let stop_signal = match &c.stop_signal {
        None => 15,
        Some(s) => {
            signal_number(s).ok_or_else(|| fail("stop_signal", format!("unknown signal {s:?}")))?
        }
    };

    let plan = ContainerPlan {
        root,
        readonly_root: c.readonly_root || shared_root,
        clone_flags: flags,
        uid_map: if user_ns {
            c.uid_map.iter().map(|m| m.triple()).collect()
        } else {
            Vec::new()
        },
        gid_map: if user_ns {
            c.gid_map.iter().map(|m| m.triple()).collect()
        } else {
            Vec::new()
        },
        setgroups: c.setgroups,
        hostname,
        mounts,
        symlinks: if mount_ns {
            docker_symlinks()
        } else {
            Vec::new()
        },
        masked_paths,
        readonly_paths,
        sysctls,
        cgroup: CgroupPlan {
            // The init resolves no defaults: the path is written here.
            path: format!("mkrootfs/{name}"),
            memory_max: c.memory_max.map(|m| m.0),
            pids_max: c.pids_max,
            cpu_max,
        },
        rlimits,
        oom_score_adj: c.oom_score_adj,
        argv: svc.argv.clone(),
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd,
        uid: creds.uid,
        gid: creds.gid,
        additional_gids,
        capabilities: CapSets::docker(caps_mask),
        no_new_privs: c.no_new_privs,
        seccomp,
        seccomp_flags: 0,
        device_filter: Some(DEVICES_BPF.into()),
        terminal: c.terminal,
        init: c.init,
        stop_signal,
    };
    plan.validate().map_err(|m| fail("root", m))?;
    Ok(Resolved { plan, bpf })
}

/// `/etc/mkrootfs/seccomp/<name>.bpf`, or `service-<i>.bpf` when the name
/// is not a plain file name.
fn seccomp_path(i: usize, name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if plain {
        format!("{SECCOMP_DIR}/{name}.bpf")
    } else {
        format!("{SECCOMP_DIR}/service-{i}.bpf")
    }
}

/// `"quota period"` in microseconds, as cgroup v2's `cpu.max` takes it:
/// the kernel wants a period of 1 ms to 1 s and a quota of at least 1 ms.
pub fn parse_cpu_max(s: &str) -> Result<[u64; 2], String> {
    let bad = || {
        format!("invalid cpu_max {s:?}: expected \"quota period\" in microseconds such as \"20000 100000\"")
    };
    let nums: Vec<&str> = s.split_whitespace().collect();
    let [q, p] = nums.as_slice() else {
        return Err(bad());
    };
    let quota: u64 = q.parse().map_err(|_| bad())?;
    let period: u64 = p.parse().map_err(|_| bad())?;
    if !(1000..=1_000_000).contains(&period) || quota < 1000 {
        return Err(format!(
            "invalid cpu_max {s:?}: the period must be 1000 to 1000000 and the quota at least 1000 microseconds"
        ));
    }
    Ok([quota, period])
}

/// A signal number from `SIGTERM`, `TERM`, `term` or `15`.
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: &[(&str, i32)] = &[
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("PWR", 30),
        ("SYS", 31),
    ];
    NAMES.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v)
}

/// `error: cause: cause`, for messages that carry a whole chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_and_signals() {
        assert_eq!(parse_cpu_max("20000 100000"), Ok([20000, 100000]));
        assert_eq!(
            parse_cpu_max("20%"),
            Err("invalid cpu_max \"20%\": expected \"quota period\" in microseconds such as \"20000 100000\"".into())
        );
        assert!(parse_cpu_max("10 100000").is_err());
        assert!(parse_cpu_max("20000 10").is_err());
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("int"), Some(2));
        assert_eq!(signal_number("34"), Some(34));
        assert_eq!(signal_number("SIGNOPE"), None);
        assert_eq!(signal_number("0"), None);
        assert_eq!(seccomp_path(0, "web"), "/etc/mkrootfs/seccomp/web.bpf");
        assert_eq!(
            seccomp_path(2, "a/b"),
            "/etc/mkrootfs/seccomp/service-2.bpf"
        );
    }
}
