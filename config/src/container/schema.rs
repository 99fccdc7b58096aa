//! The `container` table of a service, as a profile writes it: read by the
//! builder only, which resolves it into a [`super::ContainerPlan`].

use super::linux::*;
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
    /// the VM's network (no network namespace). `{ interface = "eth0" }`:
    /// a network namespace of its own that the init moves the VM's
    /// interface into, with its addresses, routes and DNS (an entry of
    /// `[[init.network]]` names it). Default: `none`.
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// Own network namespace with `lo` up. Default.
    #[default]
    None,
    /// The VM's network namespace.
    Host,
    /// Own network namespace holding this interface of the VM (Kata's
    /// model: the container owns the VM's NIC).
    Interface(String),
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Network::None => s.serialize_str("none"),
            Network::Host => s.serialize_str("host"),
            Network::Interface(i) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("interface", i)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Network, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Network;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""none", "host" or { interface = "eth0" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Network, E> {
                match v {
                    "none" => Ok(Network::None),
                    "host" => Ok(Network::Host),
                    other => Err(E::custom(format!(
                        r#"network {other:?}: expected "none", "host" or {{ interface = "eth0" }}"#
                    ))),
                }
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Network, A::Error> {
                let mut interface = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k != "interface" {
                        return Err(de::Error::unknown_field(&k, &["interface"]));
                    }
                    interface = Some(m.next_value::<String>()?);
                }
                let i = interface.ok_or_else(|| de::Error::missing_field("interface"))?;
                if i.is_empty() || i.len() > 15 || i.contains(['/', ' ', ':']) {
                    return Err(de::Error::custom(format!(
                        "network: {i:?} is not an interface name"
                    )));
                }
                Ok(Network::Interface(i))
            }
        }
        d.deserialize_any(V)
    }
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
