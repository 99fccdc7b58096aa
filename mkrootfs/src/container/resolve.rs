//! A service's `container` table validated into the [`ContainerPlan`] the
//! init executes: every default applied, every name resolved to a number,
//! every error at the profile's line and column.

use super::view::View;
use super::{caps, check, idmap, seccomp, sysctl, At};
use crate::profile::{ProfileError, Seg};
use crate::tree::Tree;
use mkrootfs_config::container::{
    docker_mounts, docker_symlinks, CapSets, CgroupPlan, ContainerConfig, ContainerPlan, MountKind,
    Network, PlanMount, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWUSER,
    CLONE_NEWUTS, DOCKER_CAPABILITIES, DOCKER_MASKED_PATHS, DOCKER_READONLY_PATHS, MS_BIND,
    MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REC,
};
use mkrootfs_config::{
    error_chain, rlimit_number, service_environment, users, InitConfig, ServiceConfig, DEFAULT_PATH,
};
use std::collections::BTreeMap;
use std::path::Path;

mod identity;
mod mounts;
use identity::{identity, Identity};
use mounts::{mounts, Mounts};

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
/// `seccomp` policy comes from. One step per concern, in the order the
/// init applies them: root and namespaces, mounts, resources, identity and
/// environment, privileges.
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
    let cx = &Step {
        tree,
        cfg,
        i,
        svc,
        c,
        name,
        in_image: check::image_is_root(cfg),
        at,
    };
    let Namespaced {
        root,
        flags,
        hostname,
    } = root_and_namespaces(cx)?;
    let user_ns = flags & CLONE_NEWUSER != 0;
    let mount_ns = flags & CLONE_NEWNS != 0;
    let Mounts {
        mounts,
        masked_paths,
        readonly_paths,
        shared_root,
    } = mounts(cx, &root, flags)?;
    let Resources {
        cpu_max,
        sysctls,
        rlimits,
    } = resources(cx, flags)?;
    let Identity {
        creds,
        additional_gids,
        env,
        cwd,
    } = identity(cx, &root, user_ns)?;
    let Privileges {
        caps_mask,
        seccomp,
        bpf,
        stop_signal,
    } = privileges(cx, policies)?;
    let fail = |k: &'static str, msg: String| cx.fail(k, msg);
    let interface = interface(cx, flags)?;

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
        interface,
    };
    plan.validate().map_err(|m| fail("root", m))?;
    Ok(Resolved { plan, bpf })
}

/// `network = { interface = "eth0" }`: an interface of `[[init.network]]`,
/// in a network namespace of the container's own, taken by no other
/// container.
fn interface(cx: &Step, flags: u64) -> Result<Option<String>, ProfileError> {
    let Network::Interface(name) = &cx.c.network else {
        return Ok(None);
    };
    let fail = |msg: String| cx.fail("network", msg);
    if flags & CLONE_NEWNET == 0 {
        return Err(fail(format!(
            "network = {{ interface = {name:?} }} needs the network namespace (namespaces.net = true)"
        )));
    }
    if !cx
        .cfg
        .network
        .iter()
        .any(|e| e.name.as_deref() == Some(name))
    {
        return Err(fail(format!(
            "network: interface {name:?} is configured by no [[init.network]] entry (name = {name:?})"
        )));
    }
    let taken = cx.cfg.services[..cx.i].iter().find(|s| {
        s.container
            .as_ref()
            .is_some_and(|c| c.network == Network::Interface(name.clone()))
    });
    if let Some(other) = taken {
        return Err(fail(format!(
            "network: interface {name:?} is already taken by service {}",
            other.display_name()
        )));
    }
    Ok(Some(name.clone()))
}

/// What every step reads: the service, its table, where errors point.
#[derive(Clone, Copy)]
pub(super) struct Step<'a> {
    tree: &'a Tree,
    cfg: &'a InitConfig,
    i: usize,
    svc: &'a ServiceConfig,
    c: &'a ContainerConfig,
    name: &'a str,
    /// The container root is in the image (not a root mounted at boot).
    in_image: bool,
    at: &'a At<'a>,
}

impl Step<'_> {
    /// `msg` at `init.services[i].container.<k>`.
    fn fail(&self, k: &'static str, msg: String) -> ProfileError {
        let (i, name) = (self.i, self.name);
        (self.at)(
            &[
                Seg::Key("services"),
                Seg::Index(i),
                Seg::Key("container"),
                Seg::Key(k),
            ],
            format!("init.services[{i}] ({name}).container: {msg}"),
        )
    }
}

/// The root, the namespaces and the hostname.
struct Namespaced {
    root: String,
    flags: u64,
    hostname: Option<String>,
}

fn root_and_namespaces(cx: &Step) -> Result<Namespaced, ProfileError> {
    let Step {
        tree,
        c,
        name,
        in_image,
        ..
    } = *cx;
    let fail = |k: &'static str, msg: String| cx.fail(k, msg);
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

    Ok(Namespaced {
        root,
        flags,
        hostname,
    })
}

/// cgroup limits, sysctls, rlimits.
struct Resources {
    cpu_max: Option<[u64; 2]>,
    sysctls: Vec<[String; 2]>,
    rlimits: Vec<[u64; 3]>,
}

fn resources(cx: &Step, flags: u64) -> Result<Resources, ProfileError> {
    let Step { i, c, name, .. } = *cx;
    let fail = |k: &'static str, msg: String| cx.fail(k, msg);
    let at = cx.at;
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

    Ok(Resources {
        cpu_max,
        sysctls,
        rlimits,
    })
}

/// Capabilities, the seccomp filter, the stop signal.
struct Privileges {
    caps_mask: u64,
    seccomp: Option<String>,
    bpf: Option<Vec<u8>>,
    stop_signal: i32,
}

fn privileges(cx: &Step, policies: Policies) -> Result<Privileges, ProfileError> {
    let Step { i, c, name, .. } = *cx;
    let fail = |k: &'static str, msg: String| cx.fail(k, msg);
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

    Ok(Privileges {
        caps_mask,
        seccomp,
        bpf,
        stop_signal,
    })
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
