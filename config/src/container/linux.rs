//! Linux numbers (clone flags, capabilities, mount flags, rlimits) and
//! Docker's defaults, shared by the builder, the OCI converter, the init
//! and the tests.

use super::plan::PlanMount;

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

pub use crate::rlimit::rlimit_number;
