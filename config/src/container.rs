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

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

// ---------------------------------------------------------------------------
// The profile's table
// ---------------------------------------------------------------------------

/// A service's `container` table. `container = {}` gives Docker's isolation:
/// every namespace, a user namespace mapping root to 100000, Docker's 14
/// capabilities, no_new_privs, Docker's default seccomp policy, Docker's
/// masked and read-only paths, a network namespace with only `lo`.
/// The service's `argv`, `env`, `cwd`, `user` and `group` apply inside the
/// container (user and group are looked up in the container root's
/// `/etc/passwd` and `/etc/group` by the builder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerConfig {
    /// Directory of the image that becomes the container's `/`, absolute.
    /// Default: `/`, the whole image.
    pub root: String,
    /// Mount the container root read-only. Default: false.
    pub readonly_root: bool,
    /// Which namespaces the container gets. Default: all of them.
    pub namespaces: Namespaces,
    /// User-namespace uid map, `"inside outside count"` per range.
    /// Default: `["0 100000 65536"]`. Ignored without a user namespace.
    pub uid_map: Vec<IdMap>,
    /// Group map, as `uid_map`. Default: `["0 100000 65536"]`.
    pub gid_map: Vec<IdMap>,
    /// Let the container call setgroups(2) (`/proc/<pid>/setgroups` is left
    /// `allow`). A root PID 1 writes the maps, so denying is not needed, and
    /// it breaks `su`, `sshd`, `initgroups`. Default: true.
    pub setgroups: bool,
    /// Host name inside the UTS namespace. Default: the service's name.
    pub hostname: Option<String>,
    /// `none`: a network namespace of its own with only `lo`, up. `host`:
    /// the VM's network (no network namespace). Default: `none`.
    pub network: Network,
    /// Mounts added after the default ones, in order. Default: none.
    pub mounts: Vec<ContainerMount>,
    /// memory.max in bytes, or with a `K`, `M`, `G` suffix (powers of 1024).
    /// Default: no limit.
    pub memory_max: Option<Size>,
    /// pids.max. Default: no limit.
    pub pids_max: Option<u64>,
    /// cpu.max as `"quota period"` in microseconds (`"20000 100000"` is 20%
    /// of one CPU). Default: no limit.
    pub cpu_max: Option<String>,
    /// `/proc/self/oom_score_adj` of the container's first process,
    /// -1000..=1000. Default: inherited (0).
    pub oom_score_adj: Option<i32>,
    /// Resource limits by name without `RLIMIT_`, lower case (as the init's
    /// `rlimits`), each setting soft and hard; `-1` is unlimited.
    /// Default: inherited from the init.
    pub rlimits: BTreeMap<String, i64>,
    /// sysctls set inside the container, `"name" = "value"` with the name
    /// dotted (`"net.ipv4.ip_forward" = "1"`). Only namespaced ones, as
    /// runc allows: `kernel.msgmax`, `msgmnb`, `msgmni`, `sem`, `shmall`,
    /// `shmmax`, `shmmni`, `shm_rmid_forced` and `fs.mqueue.*` (IPC
    /// namespace), `net.*` (own network namespace). Default: none.
    pub sysctl: BTreeMap<String, String>,
    /// Supplementary group ids inside the container, added to the user's
    /// groups from the container root's `/etc/group`. Default: none.
    pub additional_gids: Vec<u32>,
    /// Capability names, with or without `CAP_`, any case; bounding =
    /// permitted = effective, inheritable and ambient empty.
    /// Default: Docker's 14 ([`DOCKER_CAPABILITIES`]).
    pub capabilities: Option<Vec<String>>,
    /// Set `no_new_privs` before exec. Default: true.
    pub no_new_privs: bool,
    /// `"default"` (Docker's policy, compiled by the builder), `"none"`
    /// (no filter; must be written out and is logged at boot), or the path
    /// on the build machine of a policy file: a profile in Docker's form (an
    /// object with `defaultAction`, any mix of actions but NOTIFY and
    /// TRACE) or a seccompiler JSON policy. Default: `default`.
    pub seccomp: String,
    /// Paths masked on top of Docker's ([`DOCKER_MASKED_PATHS`]). Default: none.
    pub masked_paths: Vec<String>,
    /// Paths made read-only on top of Docker's ([`DOCKER_READONLY_PATHS`]).
    /// Default: none.
    pub readonly_paths: Vec<String>,
    /// A pty inside the container as its stdio, relayed to the console.
    /// Default: false (the console itself).
    pub terminal: bool,
    /// A reaper stays PID 1 of the container and runs the program as its
    /// child, forwarding signals (`docker run --init`). Default: false.
    pub init: bool,
    /// Signal sent at shutdown, by name (`SIGTERM`, `TERM`) or number.
    /// Default: `SIGTERM`.
    pub stop_signal: Option<String>,
    /// An OCI image layout to run (see docs/oci.md): its layers become the
    /// container root (at `root`, or `/containers/<service>` when `root` is
    /// `/`) and its config gives argv, env, cwd, user and stop signal unless
    /// the profile writes them. Read by the builder only. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSource>,
    /// An OCI runtime bundle directory (`config.json` and its root) on the
    /// build machine, relative to the profile: its settings apply unless the
    /// profile writes the same keys. Read by the builder only. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// `container.image = { layout = "DIR", ref = "TAG" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    /// The image layout directory on the build machine, relative to the
    /// profile (`skopeo copy docker://… oci:DIR:TAG` writes one).
    pub layout: String,
    /// The `org.opencontainers.image.ref.name` of the manifest in
    /// `index.json`. Default: the layout's only image.
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            root: "/".into(),
            readonly_root: false,
            namespaces: Namespaces::default(),
            uid_map: vec![IdMap::DEFAULT],
            gid_map: vec![IdMap::DEFAULT],
            setgroups: true,
            hostname: None,
            network: Network::None,
            mounts: Vec::new(),
            memory_max: None,
            pids_max: None,
            cpu_max: None,
            oom_score_adj: None,
            rlimits: BTreeMap::new(),
            sysctl: BTreeMap::new(),
            additional_gids: Vec::new(),
            capabilities: None,
            no_new_privs: true,
            seccomp: "default".into(),
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            terminal: false,
            init: false,
            stop_signal: None,
            image: None,
            bundle: None,
        }
    }
}

/// Namespaces, each on unless switched off. `network = "host"` is the same
/// as `net = false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Namespaces {
    /// Mount namespace. Default: true (needed for any root or mount).
    pub mount: bool,
    /// PID namespace (the program is PID 1). Default: true.
    pub pid: bool,
    /// UTS namespace (own hostname). Default: true.
    pub uts: bool,
    /// IPC namespace. Default: true.
    pub ipc: bool,
    /// Network namespace. Default: true.
    pub net: bool,
    /// cgroup namespace (its cgroup is its `/`). Default: true.
    pub cgroup: bool,
    /// Time namespace. Default: true.
    pub time: bool,
    /// User namespace with `uid_map`/`gid_map`. Default: true.
    pub user: bool,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            mount: true,
            pid: true,
            uts: true,
            ipc: true,
            net: true,
            cgroup: true,
            time: true,
            user: true,
        }
    }
}

/// The container's network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// Own network namespace with `lo` up. Default.
    #[default]
    None,
    /// The VM's network namespace.
    Host,
}

/// A mount added to a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerMount {
    /// `bind` (a path of the VM) or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// For `bind`: the absolute path in the VM. Not used for `tmpfs`.
    #[serde(default)]
    pub source: Option<String>,
    /// Absolute path inside the container; created when missing.
    pub target: String,
    /// Read-only. Default: false.
    #[serde(default)]
    pub readonly: bool,
    /// Extra mount data, for tmpfs: `size=16m,mode=1777`. Default: empty.
    #[serde(default)]
    pub options: String,
}

/// Kinds of [`ContainerMount`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountKind {
    /// A recursive bind mount of a VM path (nosuid, nodev when writable).
    Bind,
    /// A fresh tmpfs (nosuid, nodev).
    Tmpfs,
}

/// One range of a uid or gid map: ids `inside..inside+count` in the
/// container are `outside..outside+count` in the VM. Written `"0 100000
/// 65536"` in profiles, `[0, 100000, 65536]` in plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdMap {
    /// `0 100000 65536`, the default map.
    pub const DEFAULT: IdMap = IdMap {
        inside: 0,
        outside: 100_000,
        count: 65_536,
    };

    /// Parses `"inside outside count"`; count must be at least 1 and
    /// neither range may pass 2^32.
    pub fn parse(s: &str) -> Result<IdMap, String> {
        let bad = || {
            format!("invalid id map {s:?}: expected \"inside outside count\" such as \"0 100000 65536\"")
        };
        let nums: Vec<&str> = s.split_whitespace().collect();
        let [a, b, c] = nums.as_slice() else {
            return Err(bad());
        };
        let n = |x: &str| x.parse::<u32>().map_err(|_| bad());
        let m = IdMap {
            inside: n(a)?,
            outside: n(b)?,
            count: n(c)?,
        };
        if m.count == 0
            || u64::from(m.inside) + u64::from(m.count) > 1 << 32
            || u64::from(m.outside) + u64::from(m.count) > 1 << 32
        {
            return Err(format!(
                "invalid id map {s:?}: count must be at least 1 and the ranges must end at or below 4294967296"
            ));
        }
        Ok(m)
    }

    /// The triple the plan stores.
    pub fn triple(&self) -> [u32; 3] {
        [self.inside, self.outside, self.count]
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

impl Serialize for IdMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for IdMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IdMap, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IdMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id map string such as \"0 100000 65536\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<IdMap, E> {
                IdMap::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A size in bytes: an integer, or a string with a `K`, `M` or `G` suffix
/// (powers of 1024), such as `"64M"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    /// Parses `"65536"`, `"64K"`, `"64M"`, `"1G"` (also lower case, and with
    /// a trailing `B` or `iB`).
    pub fn parse(s: &str) -> Result<Size, String> {
        let bad = || {
            format!("invalid size {s:?}: expected bytes or a number with K, M or G such as \"64M\"")
        };
        let t = s.trim();
        let t = t
            .strip_suffix("iB")
            .or_else(|| t.strip_suffix('B'))
            .unwrap_or(t);
        let (num, mult) = match t.chars().last() {
            Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
            Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
            Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
            _ => (t, 1),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        n.checked_mul(mult).map(Size).ok_or_else(bad)
    }
}

impl fmt::Display for Size {
    /// The largest exact unit: `64M`, `1536K`, `100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, shift) in [("G", 30), ("M", 20), ("K", 10)] {
            if n != 0 && n.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes or a string such as \"64M\"")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Size, E> {
                Ok(Size(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .map(Size)
                    .map_err(|_| E::custom(format!("invalid size {n}: must not be negative")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                Size::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// The resolved plan
// ---------------------------------------------------------------------------

/// Everything the init does to start one container, resolved by the builder.
/// Only numbers, masks, absolute paths and flags: see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerPlan {
    /// Absolute path in the VM of the directory that becomes `/`
    /// (`/` for the whole image).
    pub root: String,
    /// Remount the root read-only after the mounts are made. Default: false.
    #[serde(default)]
    pub readonly_root: bool,
    /// `CLONE_NEW*` flags for clone3 (`CLONE_NEWNS 0x20000`, `CLONE_NEWUTS`,
    /// `CLONE_NEWIPC`, `CLONE_NEWUSER`, `CLONE_NEWPID`, `CLONE_NEWNET`,
    /// `CLONE_NEWCGROUP` (entered with unshare(2) after the child is in its
    /// cgroup), `CLONE_NEWTIME`). No other bits.
    pub clone_flags: u64,
    /// `uid_map` lines `[inside, outside, count]`, written by the init
    /// before it releases the child. Empty without `CLONE_NEWUSER`.
    #[serde(default)]
    pub uid_map: Vec<[u32; 3]>,
    /// `gid_map` lines, as `uid_map`.
    #[serde(default)]
    pub gid_map: Vec<[u32; 3]>,
    /// Leave `/proc/<pid>/setgroups` at `allow` (true) or write `deny`
    /// before the gid map (false). Default: true.
    #[serde(default = "yes")]
    pub setgroups: bool,
    /// Host name set in the UTS namespace. Default: none (unchanged).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Mounts in order, after the root is prepared and before the pivot:
    /// the defaults ([`docker_mounts`]) then the profile's.
    #[serde(default)]
    pub mounts: Vec<PlanMount>,
    /// Symbolic links made after the mounts: `[target, link path]`, such as
    /// `["pts/ptmx", "/dev/ptmx"]`. Default: none.
    #[serde(default)]
    pub symlinks: Vec<[String; 2]>,
    /// Paths inside the container hidden after the pivot: a `/dev/null`
    /// bind over a file, an empty read-only tmpfs over a directory; missing
    /// paths are skipped. A path component that is exactly `*` stands for
    /// every entry of that directory (`/sys/devices/system/cpu/*/thermal_throttle`).
    #[serde(default)]
    pub masked_paths: Vec<String>,
    /// Paths inside the container bind-mounted read-only onto themselves
    /// after the pivot; missing paths are skipped. `*` as in `masked_paths`.
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    /// sysctls written under `/proc/sys` inside the container, before
    /// `/proc/sys` is made read-only: `[path below /proc/sys, value]`
    /// (`["net/ipv4/ip_forward", "1"]`). Default: none.
    #[serde(default)]
    pub sysctls: Vec<[String; 2]>,
    /// The container's cgroup and limits.
    #[serde(default)]
    pub cgroup: CgroupPlan,
    /// `setrlimit` calls: `[resource number (RLIMIT_NOFILE = 7), soft,
    /// hard]`, `u64::MAX` is unlimited. Default: none (inherited).
    #[serde(default)]
    pub rlimits: Vec<[u64; 3]>,
    /// Written to `/proc/self/oom_score_adj`. Default: none (inherited).
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// Program and arguments; `argv[0]` is absolute or looked up in `PATH`
    /// of `env`, inside the container root.
    pub argv: Vec<String>,
    /// The whole environment, `KEY=value`, nothing added by the init.
    pub env: Vec<String>,
    /// Working directory inside the container, absolute. Default: `/`.
    #[serde(default = "slash")]
    pub cwd: String,
    /// Real/effective/saved uid inside the container.
    #[serde(default)]
    pub uid: u32,
    /// Real/effective/saved gid inside the container.
    #[serde(default)]
    pub gid: u32,
    /// Supplementary groups (setgroups(2)). Default: none.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    /// Capability sets as bit masks (bit n = capability n).
    pub capabilities: CapSets,
    /// prctl(PR_SET_NO_NEW_PRIVS). Default: true.
    #[serde(default = "yes")]
    pub no_new_privs: bool,
    /// Absolute path in the image (the VM's filesystem, read by the init
    /// before the clone) of the seccomp filter: the raw array of `struct
    /// sock_filter` (8 bytes each, native endian) as seccompiler's
    /// `BpfProgram`. `None` means explicitly no filter, which the init logs.
    pub seccomp: Option<String>,
    /// `SECCOMP_FILTER_FLAG_*` for seccomp(2). Default: 0.
    #[serde(default)]
    pub seccomp_flags: u32,
    /// Absolute path in the image of the device policy: a
    /// `BPF_PROG_TYPE_CGROUP_DEVICE` program (raw `struct bpf_insn` array,
    /// 8 bytes each) the init attaches to the container's cgroup before
    /// the clone. `None`: no device policy. Default: none.
    #[serde(default)]
    pub device_filter: Option<String>,
    /// Give the program a pty of the container's devpts as stdio and
    /// controlling terminal, relayed to the console. Default: false.
    #[serde(default)]
    pub terminal: bool,
    /// Keep a reaper as the container's PID 1 (`docker run --init`).
    /// Default: false.
    #[serde(default)]
    pub init: bool,
    /// Signal number sent at shutdown. Default: 15 (SIGTERM).
    #[serde(default = "sigterm")]
    pub stop_signal: i32,
}

fn yes() -> bool {
    true
}

impl ContainerPlan {
    /// Checks the plan's invariants (the builder guarantees them; the init
    /// relies on them). The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.clone_flags & !CLONE_NAMESPACES != 0 {
            return Err(format!(
                "clone_flags {:#x} has bits other than CLONE_NEW*",
                self.clone_flags
            ));
        }
        let abs = |what: &str, p: &str| {
            if p.starts_with('/') && !p.contains('\0') {
                Ok(())
            } else {
                Err(format!("{what} {p:?} must be an absolute path"))
            }
        };
        abs("root", &self.root)?;
        abs("cwd", &self.cwd)?;
        for m in &self.mounts {
            abs("mounts target", &m.target)?;
        }
        for p in self.masked_paths.iter().chain(&self.readonly_paths) {
            abs("masked/readonly path", p)?;
        }
        if let Some(s) = &self.seccomp {
            abs("seccomp", s)?;
        }
        if self.clone_flags & CLONE_NEWNS == 0
            && (self.root != "/"
                || self.readonly_root
                || !self.mounts.is_empty()
                || !self.masked_paths.is_empty()
                || !self.readonly_paths.is_empty())
        {
            return Err(
                "a root other than /, readonly_root, mounts and masked or read-only paths need a mount namespace (CLONE_NEWNS)"
                    .into(),
            );
        }
        if self.argv.first().is_none_or(|a| a.is_empty()) {
            return Err("argv must name a program".into());
        }
        if self.clone_flags & CLONE_NEWUSER != 0
            && (self.uid_map.is_empty() || self.gid_map.is_empty())
        {
            return Err("a user namespace needs uid_map and gid_map".into());
        }
        Ok(())
    }
}

fn slash() -> String {
    "/".into()
}

fn sigterm() -> i32 {
    15
}

/// One mount(2) call. The target is resolved inside the container root
/// without leaving it (symlinks included) and created when missing: a file
/// when a bind's source is not a directory, else a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanMount {
    /// Source: a VM path for binds, else the pseudo source (`proc`, `tmpfs`).
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// File-system type; empty for binds.
    #[serde(default)]
    pub fstype: String,
    /// `MS_*` flags. A bind (`MS_BIND`, 0x1000) with other flags
    /// (`MS_RDONLY`, `MS_NOSUID`, …) is followed by a bind remount with them,
    /// as mount(2) ignores them on the first call.
    pub flags: u64,
    /// Data, such as `mode=755,size=65536k`. Default: empty.
    #[serde(default)]
    pub data: String,
}

/// The five capability sets, bit n = capability n.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapSets {
    /// Docker's: bounding = permitted = effective = `mask`, the rest empty.
    pub fn docker(mask: u64) -> CapSets {
        CapSets {
            bounding: mask,
            effective: mask,
            permitted: mask,
            inheritable: 0,
            ambient: 0,
        }
    }
}

/// The container's cgroup v2.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CgroupPlan {
    /// Path below `/sys/fs/cgroup`, relative; the builder writes
    /// `mkrootfs/<service name>`. (Empty: the same, for plans written before
    /// the builder wrote it; the init's fallback goes away.)
    pub path: String,
    /// memory.max in bytes (memory.oom.group is set to 1 with it).
    /// Default: none (`max`).
    pub memory_max: Option<u64>,
    /// pids.max. Default: none (`max`).
    pub pids_max: Option<u64>,
    /// cpu.max `[quota, period]` in microseconds. Default: none (`max`).
    pub cpu_max: Option<[u64; 2]>,
}

// ---------------------------------------------------------------------------
// Shared tables and Docker's defaults
// ---------------------------------------------------------------------------

/// `CLONE_NEWNS`
pub const CLONE_NEWNS: u64 = 0x0002_0000;
/// `CLONE_NEWCGROUP`
pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
/// `CLONE_NEWUTS`
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
/// `CLONE_NEWIPC`
pub const CLONE_NEWIPC: u64 = 0x0800_0000;
/// `CLONE_NEWUSER`
pub const CLONE_NEWUSER: u64 = 0x1000_0000;
/// `CLONE_NEWPID`
pub const CLONE_NEWPID: u64 = 0x2000_0000;
/// `CLONE_NEWNET`
pub const CLONE_NEWNET: u64 = 0x4000_0000;
/// `CLONE_NEWTIME`
pub const CLONE_NEWTIME: u64 = 0x0000_0080;
/// Every bit a plan's `clone_flags` may hold.
pub const CLONE_NAMESPACES: u64 = CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWTIME;

impl Namespaces {
    /// The clone flags these namespaces ask for.
    pub fn clone_flags(&self) -> u64 {
        [
            (self.mount, CLONE_NEWNS),
            (self.pid, CLONE_NEWPID),
            (self.uts, CLONE_NEWUTS),
            (self.ipc, CLONE_NEWIPC),
            (self.net, CLONE_NEWNET),
            (self.cgroup, CLONE_NEWCGROUP),
            (self.time, CLONE_NEWTIME),
            (self.user, CLONE_NEWUSER),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, f)| acc | f)
    }
}

/// Capability names (without `CAP_`) by number, from linux/capability.h.
pub const CAPABILITY_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The number of a capability name: `CHOWN`, `cap_chown`, `CAP_CHOWN`.
pub fn capability_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITY_NAMES
        .iter()
        .position(|n| *n == bare)
        .and_then(|i| u32::try_from(i).ok())
}

/// Docker's default capabilities (moby 2026).
pub const DOCKER_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The mask of [`DOCKER_CAPABILITIES`]: `0xa80425fb`.
pub const DOCKER_CAPABILITY_MASK: u64 = 0xa804_25fb;

/// Docker's masked paths. The thermal_throttle entry uses the plan's `*`.
pub const DOCKER_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
    "/sys/devices/system/cpu/*/thermal_throttle",
];

/// Docker's read-only paths.
pub const DOCKER_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Devices Docker gives every container, bind-mounted from the VM's `/dev`
/// (a user namespace cannot mknod them).
pub const DOCKER_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `MS_RDONLY`
pub const MS_RDONLY: u64 = 1;
/// `MS_NOSUID`
pub const MS_NOSUID: u64 = 2;
/// `MS_NODEV`
pub const MS_NODEV: u64 = 4;
/// `MS_NOEXEC`
pub const MS_NOEXEC: u64 = 8;
/// `MS_BIND`
pub const MS_BIND: u64 = 0x1000;
/// `MS_REC`
pub const MS_REC: u64 = 0x4000;
/// `MS_STRICTATIME`
pub const MS_STRICTATIME: u64 = 1 << 24;

/// Docker's default mounts in order, as plan entries: proc, the `/dev`
/// tmpfs, devpts, `/dev/shm`, `/dev/mqueue`, sysfs and cgroup2 read-only,
/// then the devices of [`DOCKER_DEVICES`]. `mqueue` and `cgroup` need the
/// ipc and cgroup namespaces; without them the caller leaves them out.
pub fn docker_mounts() -> Vec<PlanMount> {
    let m = |source: &str, target: &str, fstype: &str, flags: u64, data: &str| PlanMount {
        source: source.into(),
        target: target.into(),
        fstype: fstype.into(),
        flags,
        data: data.into(),
    };
    let mut v = vec![
        m(
            "proc",
            "/proc",
            "proc",
            MS_NOSUID | MS_NOEXEC | MS_NODEV,
            "",
        ),
        m(
            "tmpfs",
            "/dev",
            "tmpfs",
            // nodev (Docker relies on its device cgroup alone): a node made
            // here with CAP_MKNOD does not open; the devices below are bind
            // mounts of the VM's nodes and keep working.
            MS_NOSUID | MS_NODEV | MS_STRICTATIME,
            "mode=755,size=65536k",
        ),
        m(
            "devpts",
            "/dev/pts",
            "devpts",
            MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        m(
            "shm",
            "/dev/shm",
            "tmpfs",
            MS_NOSUID | MS_NOEXEC | MS_NODEV,
            "mode=1777,size=65536k",
        ),
        m(
            "mqueue",
            "/dev/mqueue",
            "mqueue",
            MS_NOSUID | MS_NOEXEC | MS_NODEV,
            "",
        ),
        m(
            "sysfs",
            "/sys",
            "sysfs",
            MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY,
            "",
        ),
        m(
            "cgroup",
            "/sys/fs/cgroup",
            "cgroup2",
            MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY,
            "",
        ),
    ];
    for d in DOCKER_DEVICES {
        let path = format!("/dev/{d}");
        v.push(m(&path, &path, "", MS_BIND, ""));
    }
    v
}

/// Docker's `/dev` symlinks: `[target, link]`.
pub fn docker_symlinks() -> Vec<[String; 2]> {
    [
        ("pts/ptmx", "/dev/ptmx"),
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("/proc/kcore", "/dev/core"),
    ]
    .iter()
    .map(|(t, l)| [t.to_string(), l.to_string()])
    .collect()
}

/// Resource numbers of the rlimit names accepted in profiles (x86_64 and
/// every other Linux architecture but alpha, mips, sparc).
pub fn rlimit_number(name: &str) -> Option<u32> {
    Some(match name {
        "cpu" => 0,
        "fsize" => 1,
        "data" => 2,
        "stack" => 3,
        "core" => 4,
        "rss" => 5,
        "nproc" => 6,
        "nofile" => 7,
        "memlock" => 8,
        "as" => 9,
        "locks" => 10,
        "sigpending" => 11,
        "msgqueue" => 12,
        "nice" => 13,
        "rtprio" => 14,
        "rttime" => 15,
        _ => return None,
    })
}

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
            "seccomp":null}"#;
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
        let mounts = docker_mounts();
        assert_eq!(mounts[0].target, "/proc");
        assert_eq!(mounts.len(), 7 + DOCKER_DEVICES.len());
    }
}
