//! The plan the init executes for one container, written by the builder
//! into `init.json` as `container_plan`: numbers, masks, absolute paths.

use super::linux::*;
use serde::{Deserialize, Serialize};

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
    /// The VM's interface moved into the container's network namespace
    /// (needs `CLONE_NEWNET`), with the addresses, routes and DNS the init
    /// gave it; `/etc/resolv.conf` and `/etc/hosts` are bound over the
    /// root's. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

fn yes() -> bool {
    true
}

impl ContainerPlan {
    /// Checks the plan's invariants (the builder guarantees them; the init
    /// relies on them). The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.interface.is_some() && self.clone_flags & CLONE_NEWNET == 0 {
            return Err("interface needs a network namespace (CLONE_NEWNET)".into());
        }
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
        // The builder writes it (mkrootfs/<name>): the init has no default.
        let cg = &self.cgroup.path;
        if cg.is_empty()
            || cg.starts_with('/')
            || cg.contains('\0')
            || cg.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(format!(
                "cgroup path {cg:?} must be a relative path below the cgroup root (mkrootfs/<name>)"
            ));
        }
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
