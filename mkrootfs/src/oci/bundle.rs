//! A runtime bundle: `config.json` (runtime-spec) mapped onto the profile's
//! container settings, and the directory its `root.path` names.
//!
//! Fields are supported, ignored with a note (harmless), or refused with
//! the file, line and column: whatever would weaken isolation or that the
//! init cannot honour (docs/oci.md has the table).

use super::json::{self, Seg};
use super::settings::Settings;
use super::OciError;
use mkrootfs_config::container::{ContainerMount, IdMap, MountKind, Size};
use oci_spec::runtime::{LinuxIdMapping, LinuxSeccompAction, Spec};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The default mounts of every container (docs/init.md): a `config.json`
/// mount of one of these destinations with its usual type is already there.
const DEFAULT_MOUNTS: &[(&str, &str)] = &[
    ("/proc", "proc"),
    ("/dev", "tmpfs"),
    ("/dev/pts", "devpts"),
    ("/dev/shm", "tmpfs"),
    ("/dev/mqueue", "mqueue"),
    ("/sys", "sysfs"),
    ("/sys/fs/cgroup", "cgroup"),
    ("/sys/fs/cgroup", "cgroup2"),
];

/// A bundle read from its directory.
#[derive(Debug)]
pub struct Bundle {
    pub settings: Settings,
    /// The container root on the build machine.
    pub root: PathBuf,
}

/// Reads and maps `<dir>/config.json`.
pub fn load_bundle(dir: &Path) -> Result<Bundle, OciError> {
    let path = dir.join("config.json");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(source) => return Err(OciError::Read { path, source }),
    };
    let spec: Spec = json::parse(&path, &text)?;
    let m = Mapper {
        path: &path,
        text: &text,
    };
    let settings = m.map(&spec)?;
    let root_path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| m.refuse(&[Seg::Key("ociVersion")], "has no root.path".to_string()))?;
    let root = dir.join(root_path);
    if !root.is_dir() {
        return Err(m.refuse(
            &[Seg::Key("root"), Seg::Key("path")],
            format!("root.path {} is not a directory", root.display()),
        ));
    }
    Ok(Bundle { settings, root })
}

struct Mapper<'a> {
    path: &'a Path,
    text: &'a str,
}

/// A value serialized as its JSON string (`"CAP_KILL"`, `"RLIMIT_NOFILE"`).
fn spelled<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn map_ids(m: &[LinuxIdMapping]) -> Vec<IdMap> {
    m.iter()
        .map(|x| IdMap {
            inside: x.container_id(),
            outside: x.host_id(),
            count: x.size(),
        })
        .collect()
}

impl Mapper<'_> {
    fn refuse(&self, at: &[Seg], message: String) -> OciError {
        json::error_at_path(self.path, self.text, at, message)
    }

    fn note(&self, notes: &mut Vec<String>, at: &[Seg], what: &str) {
        let (line, col) =
            mkrootfs_config::line_col(self.text, json::offset_of(self.text, at).unwrap_or(0));
        notes.push(format!("{}:{line}:{col}: {what}", self.path.display()));
    }

    fn map(&self, spec: &Spec) -> Result<Settings, OciError> {
        let mut s = Settings::default();
        let c = &mut s.container;
        let k = Seg::Key;
        if spec.hooks().is_some() {
            return Err(self.refuse(
                &[k("hooks")],
                "hooks are refused: they run programs outside the container".into(),
            ));
        }
        if let Some(a) = spec.annotations() {
            if !a.is_empty() {
                self.note(&mut s.notes, &[k("annotations")], "annotations ignored");
            }
        }
        if spec.domainname().is_some() {
            self.note(&mut s.notes, &[k("domainname")], "domainname ignored");
        }
        c.hostname = spec.hostname().clone();
        if let Some(r) = spec.root() {
            c.readonly_root = r.readonly().unwrap_or(false);
        }
        if let Some(p) = spec.process() {
            let pk = |f| [k("process"), k(f)];
            s.argv = p.args().clone().unwrap_or_default();
            for e in p.env().clone().unwrap_or_default() {
                let (key, value) = e.split_once('=').unwrap_or((&e, ""));
                s.env.push((key.to_string(), value.to_string()));
            }
            s.cwd = Some(p.cwd().to_string_lossy().into_owned());
            let u = p.user();
            s.user = Some(u.uid().to_string());
            s.group = Some(u.gid().to_string());
            if let Some(extra) = u.additional_gids() {
                c.additional_gids = extra.clone();
            }
            if u.umask().is_some() {
                self.note(
                    &mut s.notes,
                    &[k("process"), k("user"), k("umask")],
                    "process.user.umask ignored",
                );
            }
            c.terminal = p.terminal().unwrap_or(false);
            c.no_new_privs = p.no_new_privileges().unwrap_or(false);
            c.oom_score_adj = p.oom_score_adj();
            for (i, r) in p.rlimits().clone().unwrap_or_default().iter().enumerate() {
                let name = spelled(&r.typ())
                    .trim_start_matches("RLIMIT_")
                    .to_lowercase();
                if r.soft() != r.hard() {
                    return Err(self.refuse(
                        &[k("process"), k("rlimits"), Seg::Index(i)],
                        format!("rlimit {name}: soft {} and hard {} differ; the container sets both to one value", r.soft(), r.hard()),
                    ));
                }
                let v = if r.hard() == u64::MAX {
                    -1
                } else {
                    i64::try_from(r.hard()).unwrap_or(-1)
                };
                c.rlimits.insert(name, v);
            }
            if let Some(caps) = p.capabilities() {
                let set = |o: &Option<oci_spec::runtime::Capabilities>| -> BTreeSet<String> {
                    o.iter().flatten().map(spelled).collect()
                };
                let bounding = set(caps.bounding());
                for (name, other) in [
                    ("effective", set(caps.effective())),
                    ("permitted", set(caps.permitted())),
                ] {
                    if other != bounding {
                        return Err(self.refuse(
                            &[k("process"), k("capabilities"), k(name)],
                            format!("process.capabilities.{name} differs from bounding: containers here run with bounding = permitted = effective"),
                        ));
                    }
                }
                for name in ["inheritable", "ambient"] {
                    let v = if name == "inheritable" {
                        caps.inheritable()
                    } else {
                        caps.ambient()
                    };
                    if !set(v).is_empty() {
                        return Err(self.refuse(
                            &[k("process"), k("capabilities"), k(name)],
                            format!("process.capabilities.{name} is refused: it must be empty (capabilities would survive exec for non-root users)"),
                        ));
                    }
                }
                c.capabilities = Some(bounding.into_iter().collect());
            } else {
                c.capabilities = Some(Vec::new());
            }
            for (f, what) in [
                ("apparmorProfile", "an AppArmor profile"),
                ("selinuxLabel", "an SELinux label"),
            ] {
                let set = if f == "apparmorProfile" {
                    p.apparmor_profile().is_some()
                } else {
                    p.selinux_label().is_some()
                };
                if set {
                    self.note(
                        &mut s.notes,
                        &pk(f),
                        &format!(
                            "process.{f} ignored: the guest kernel enforces no LSM policy ({what})"
                        ),
                    );
                }
            }
            if p.scheduler().is_some()
                || p.io_priority().is_some()
                || p.exec_cpu_affinity().is_some()
            {
                self.note(
                    &mut s.notes,
                    &[k("process")],
                    "process scheduler, ioPriority and execCPUAffinity ignored",
                );
            }
        }
        for (i, mnt) in spec.mounts().clone().unwrap_or_default().iter().enumerate() {
            let at = [k("mounts"), Seg::Index(i)];
            let dest = mnt.destination().to_string_lossy().into_owned();
            let ty = mnt.typ().clone().unwrap_or_default();
            let opts = mnt.options().clone().unwrap_or_default();
            let is_bind = ty == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
            if DEFAULT_MOUNTS.contains(&(dest.as_str(), ty.as_str())) {
                continue;
            }
            let readonly = opts.iter().any(|o| o == "ro");
            if is_bind {
                let source = mnt
                    .source()
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned());
                c.mounts.push(ContainerMount {
                    kind: MountKind::Bind,
                    source,
                    target: dest,
                    readonly,
                    options: String::new(),
                });
            } else if ty == "tmpfs" {
                let data: Vec<&str> = opts
                    .iter()
                    .map(String::as_str)
                    .filter(|o| {
                        o.starts_with("size=")
                            || o.starts_with("mode=")
                            || o.starts_with("nr_inodes=")
                    })
                    .collect();
                c.mounts.push(ContainerMount {
                    kind: MountKind::Tmpfs,
                    source: None,
                    target: dest,
                    readonly,
                    options: data.join(","),
                });
            } else {
                return Err(self.refuse(
                    &at,
                    format!("mount of {dest}: type {ty:?} is not supported (bind, tmpfs, and the default proc, sysfs, devpts, mqueue, cgroup mounts)"),
                ));
            }
        }
        if let Some(l) = spec.linux() {
            self.linux(l, &mut s)?;
        }
        Ok(s)
    }

    /// A runtime-spec seccomp policy, checked and written back in the
    /// profile form `container.seccomp` takes (Docker's, which is the
    /// runtime-spec's): the builder compiles it like any policy file, one
    /// chained filter per action (`crate::container::seccomp`). NOTIFY and
    /// TRACE are refused here, at their line.
    fn seccomp(
        &self,
        sc: &oci_spec::runtime::LinuxSeccomp,
        notes: &mut Vec<String>,
    ) -> Result<serde_json::Value, OciError> {
        use serde_json::json;
        let k = Seg::Key;
        let refused = |a: LinuxSeccompAction| {
            matches!(
                a,
                LinuxSeccompAction::ScmpActNotify | LinuxSeccompAction::ScmpActTrace
            )
        };
        let refuse_action = |at: &[Seg], a: LinuxSeccompAction| {
            self.refuse(
                at,
                format!(
                    "seccomp action {} is refused: nothing in the guest would answer it",
                    spelled(&a)
                ),
            )
        };
        if refused(sc.default_action()) {
            return Err(refuse_action(
                &[k("linux"), k("seccomp"), k("defaultAction")],
                sc.default_action(),
            ));
        }
        let mut rules = Vec::new();
        let syscalls = sc.syscalls().clone().unwrap_or_default();
        for (i, sys) in syscalls.iter().enumerate() {
            let at = [k("linux"), k("seccomp"), k("syscalls"), Seg::Index(i)];
            if refused(sys.action()) {
                let mut at = at.to_vec();
                at.push(k("action"));
                return Err(refuse_action(&at, sys.action()));
            }
            let args: Vec<serde_json::Value> = sys
                .args()
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|a| {
                    json!({
                        "index": a.index(),
                        "value": a.value(),
                        "valueTwo": a.value_two().unwrap_or(0),
                        "op": spelled(&a.op()),
                    })
                })
                .collect();
            let mut names = Vec::new();
            for name in sys.names() {
                if crate::container::syscalls::number(name).is_none() {
                    let (line, col) = mkrootfs_config::line_col(
                        self.text,
                        json::offset_of(self.text, &at).unwrap_or(0),
                    );
                    notes.push(format!(
                        "{}:{line}:{col}: seccomp rule for {name:?} skipped: not an x86_64 system call",
                        self.path.display()
                    ));
                    continue;
                }
                names.push(name.clone());
            }
            rules.push(json!({
                "names": names,
                "action": spelled(&sys.action()),
                "errnoRet": sys.errno_ret(),
                "args": args,
            }));
        }
        if sc.flags().as_ref().is_some_and(|f| !f.is_empty())
            || sc.architectures().as_ref().is_some_and(|a| !a.is_empty())
        {
            notes.push(format!(
                "{}: linux.seccomp architectures and flags ignored: the filter is built for x86_64 (other architectures are killed)",
                self.path.display()
            ));
        }
        Ok(json!({
            "defaultAction": spelled(&sc.default_action()),
            "defaultErrnoRet": sc.default_errno_ret(),
            "syscalls": rules,
        }))
    }

    fn linux(&self, l: &oci_spec::runtime::Linux, s: &mut Settings) -> Result<(), OciError> {
        let k = Seg::Key;
        let lk = |f| [k("linux"), k(f)];
        let c = &mut s.container;
        if let Some(d) = l.devices() {
            if !d.is_empty() {
                return Err(self.refuse(
                    &lk("devices"),
                    "linux.devices is refused: the container gets only the default devices (null, zero, full, random, urandom, tty)".into(),
                ));
            }
        }
        if let Some(ns) = l.namespaces() {
            let mut n = mkrootfs_config::container::Namespaces {
                mount: false,
                pid: false,
                uts: false,
                ipc: false,
                net: false,
                cgroup: false,
                time: false,
                user: false,
            };
            for (i, x) in ns.iter().enumerate() {
                if x.path().is_some() {
                    return Err(self.refuse(
                        &[k("linux"), k("namespaces"), Seg::Index(i), k("path")],
                        format!(
                            "namespace {}: a path (joining the VM's namespace) is refused",
                            spelled(&x.typ())
                        ),
                    ));
                }
                match spelled(&x.typ()).as_str() {
                    "mount" => n.mount = true,
                    "pid" => n.pid = true,
                    "uts" => n.uts = true,
                    "ipc" => n.ipc = true,
                    "network" => n.net = true,
                    "cgroup" => n.cgroup = true,
                    "time" => n.time = true,
                    "user" => n.user = true,
                    other => {
                        return Err(self.refuse(
                            &[k("linux"), k("namespaces"), Seg::Index(i)],
                            format!("namespace type {other:?} is not supported"),
                        ))
                    }
                }
            }
            if !n.net {
                c.network = mkrootfs_config::container::Network::Host;
            }
            c.namespaces = n;
        }
        if let Some(m) = l.uid_mappings() {
            c.uid_map = map_ids(m);
        }
        if let Some(m) = l.gid_mappings() {
            c.gid_map = map_ids(m);
        }
        if let Some(p) = l.masked_paths() {
            c.masked_paths = p.clone();
        }
        if let Some(p) = l.readonly_paths() {
            c.readonly_paths = p.clone();
        }
        if let Some(sysctl) = l.sysctl() {
            // Checked here against the bundle's own namespaces, at the
            // key's line; the plan checks again once the profile's keys
            // have been applied.
            let mut flags = c.namespaces.clone_flags();
            if c.network == mkrootfs_config::container::Network::Host {
                flags &= !mkrootfs_config::container::CLONE_NEWNET;
            }
            for (name, value) in sysctl {
                if let Err(m) = crate::container::sysctl::check(name, value, flags) {
                    return Err(self.refuse(
                        &[k("linux"), k("sysctl"), k(name)],
                        format!("linux.sysctl: {m}"),
                    ));
                }
                c.sysctl.insert(name.clone(), value.clone());
            }
        }
        if let Some(r) = l.resources() {
            let rk = |f| [k("linux"), k("resources"), k(f)];
            if let Some(m) = r.memory() {
                if let Some(limit) = m.limit() {
                    if limit > 0 {
                        c.memory_max = Some(Size(limit as u64));
                    }
                }
                if m.swap().is_some() || m.reservation().is_some() {
                    self.note(
                        &mut s.notes,
                        &rk("memory"),
                        "linux.resources.memory: only limit is applied (the guest has no swap)",
                    );
                }
            }
            if let Some(p) = r.pids() {
                if p.limit() > 0 {
                    c.pids_max = Some(p.limit() as u64);
                }
            }
            if let Some(cpu) = r.cpu() {
                if let Some(q) = cpu.quota() {
                    if q > 0 {
                        c.cpu_max = Some(format!("{q} {}", cpu.period().unwrap_or(100_000)));
                    }
                }
                if cpu.shares().is_some() || cpu.cpus().is_some() || cpu.mems().is_some() {
                    self.note(
                        &mut s.notes,
                        &rk("cpu"),
                        "linux.resources.cpu: only quota and period are applied",
                    );
                }
            }
            if let Some(d) = r.devices() {
                // runc's deny-all rule is what the container gets anyway.
                if d.iter().any(|x| x.allow()) {
                    return Err(self.refuse(
                        &rk("devices"),
                        "linux.resources.devices allowing a device is refused".into(),
                    ));
                }
            }
            if r.block_io().is_some()
                || r.hugepage_limits().is_some()
                || r.network().is_some()
                || r.rdma().is_some()
                || r.unified().is_some()
            {
                self.note(
                    &mut s.notes,
                    &[k("linux"), k("resources")],
                    "linux.resources: blockIO, hugepageLimits, network, rdma and unified ignored",
                );
            }
        }
        if let Some(sc) = l.seccomp() {
            s.seccomp_policy = Some(self.seccomp(sc, &mut s.notes)?);
        }
        for (f, set) in [
            ("rootfsPropagation", l.rootfs_propagation().is_some()),
            ("cgroupsPath", l.cgroups_path().is_some()),
            ("mountLabel", l.mount_label().is_some()),
        ] {
            if set {
                self.note(&mut s.notes, &lk(f), &format!("linux.{f} ignored"));
            }
        }
        for (f, set) in [
            ("intelRdt", l.intel_rdt().is_some()),
            ("personality", l.personality().is_some()),
            ("timeOffsets", l.time_offsets().is_some()),
            ("netDevices", l.net_devices().is_some()),
            ("memoryPolicy", l.memory_policy().is_some()),
        ] {
            if set {
                return Err(self.refuse(&lk(f), format!("linux.{f} is not supported")));
            }
        }
        Ok(())
    }
}
