//! The device policy of a container on cgroup v2: which device nodes its
//! processes may create (mknod) and open. cgroup v2 has no `devices.allow`
//! file; the policy is an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`
//! attached to the container's cgroup, run by the kernel on every mknod and
//! device open (`devcgroup_check_permission`). Without one, CAP_MKNOD in a
//! container without a user namespace opens the VM's disk.
//!
//! The builder compiles the rules into the program's bytes here, the way
//! the seccomp policy is compiled ([`super::seccomp`]): the same rules give
//! the same bytes. The init loads them with bpf(BPF_PROG_LOAD) and attaches
//! them to each container's cgroup (`init/src/container/devices.rs`).
//!
//! The generator is ours, about a hundred lines: the crates that emit eBPF
//! (aya, libbpf-rs, redbpf) bring an ELF/BTF loader, a C toolchain or both
//! for the dozen instruction kinds a device filter needs. The program has
//! the layout of runc's `devicefilter.go` and crun's `ebpf.c` (both taken
//! from systemd): load type, access, major and minor into r2..r5, then one
//! block per rule that jumps to the next block on a mismatch and otherwise
//! returns the rule's verdict, then the default verdict.
//!
//! # Semantics: the last matching rule wins
//!
//! A rule matches a request when its kind is the request's type (or
//! [`DeviceKind::All`]), its major and minor are the request's (or `None`,
//! `*`), and the request's access is a subset of the rule's: `c 1:3 r` does
//! not cover an `O_RDWR` open, which the kernel checks as `rw` at once. Of
//! the rules that match, the last in list order decides; when none does, the
//! device is denied. A rule `a *:* rwm` therefore resets the policy to its
//! verdict, as it does in cgroup v1's `devices.allow`/`devices.deny`.
//!
//! This is crun's order (`create_dev_bpf` emits the rules in reverse, each
//! block returning on a match), and runc's until 1.0.0, which switched to
//! replaying the list through its cgroup v1 emulator (runc 98a3c0e,
//! `devices_emulator.go`), where a rule edits only the exception of exactly
//! its own `type major:minor`. There, after `allow a *:* rwm` and
//! `deny c 1:3 rwm`, an `allow c *:* rw` leaves 1:3 denied (here it allows
//! it); `allow c 1:3 r` and `allow c 1:3 w` merge into `rw`, so an `O_RDWR`
//! open passes (here it does not); `deny c *:* w` after `allow c 1:3 rwm`
//! leaves 1:3 writable (here a write-only open is refused); and a deny
//! that narrows an earlier wildcard allow (`allow c *:* m`,
//! `deny c 1:3 m`) is refused as an error (here it applies). In both, as in crun, a deny too matches only
//! the requests whose whole access it names: `deny c 1:3 w` does not stop an
//! `O_RDWR` open (cgroup v1's kernel check would), so a deny should name
//! `rwm`. The two agree on a list that starts with `deny a *:* rwm` (or has
//! no `a` rule), whose denies name `rwm` and overlap no earlier allow, and
//! that does not split one device's access over several allows. Docker's
//! list ([`docker_default_rules`]) is one: its only deny, `c 10:229 rwm`,
//! overlaps no earlier allow.
//!
//! Before emitting, [`compile`] drops the rules that cannot decide anything
//! (those before the last `a *:* rwm`, those covered by a later rule, and
//! those that agree with the default verdict and overlap no rule of the
//! other verdict evaluated after them), so Docker's 19 rules become 12
//! blocks. The unit tests run the program in a small interpreter against
//! the rules read directly.

use std::fmt;

/// `BPF_DEVCG_DEV_BLOCK` and `BPF_DEVCG_DEV_CHAR`, the low 16 bits of
/// `bpf_cgroup_dev_ctx.access_type` (include/uapi/linux/bpf.h).
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// Which device nodes a rule is about (`b`, `c` or `a` in runtime-spec and
/// cgroup v1 rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Char,
    Block,
    /// Both kinds (`a`).
    All,
}

/// A set of `r` (open for reading), `w` (open for writing) and `m` (mknod),
/// with the kernel's bits: `BPF_DEVCG_ACC_MKNOD` 1, `_READ` 2, `_WRITE` 4,
/// the high 16 bits of `bpf_cgroup_dev_ctx.access_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access(u8);

impl Access {
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const RW: Access = Access(6);
    pub const RWM: Access = Access(7);

    /// Parses a runtime-spec `access` string (`"rwm"`, `"m"`, …; any order,
    /// repeats allowed). `None` for any other character.
    pub fn parse(s: &str) -> Option<Access> {
        s.chars().try_fold(Access(0), |a, c| {
            Some(Access(
                a.0 | match c {
                    'm' => 1,
                    'r' => 2,
                    'w' => 4,
                    _ => return None,
                },
            ))
        })
    }

    /// The kernel's bits.
    pub fn bits(self) -> u32 {
        u32::from(self.0)
    }

    /// Whether every access in `other` is in `self`.
    pub fn contains(self, other: Access) -> bool {
        other.0 & !self.0 == 0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(2, 'r'), (4, 'w'), (1, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One entry of a device policy, as in the runtime-spec's
/// `linux.resources.devices`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    /// `None` for any major (`*`).
    pub major: Option<u32>,
    /// `None` for any minor (`*`).
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    const fn allow(
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: Access,
    ) -> Self {
        DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// Whether every request this rule matches, `other` matches too.
    fn covers(&self, other: &DeviceRule) -> bool {
        (self.kind == DeviceKind::All || self.kind == other.kind)
            && (self.major.is_none() || self.major == other.major)
            && (self.minor.is_none() || self.minor == other.minor)
            && self.access.contains(other.access)
    }

    /// Whether no request can match both (access aside: a request with no
    /// access bits, such as access(2) on a node, matches any access).
    fn disjoint(&self, other: &DeviceRule) -> bool {
        let differ =
            |a: Option<u32>, b: Option<u32>| matches!((a, b), (Some(x), Some(y)) if x != y);
        (self.kind != other.kind && self.kind != DeviceKind::All && other.kind != DeviceKind::All)
            || differ(self.major, other.major)
            || differ(self.minor, other.minor)
    }

    /// `a *:* rwm`: matches every request.
    fn matches_all(&self) -> bool {
        self.kind == DeviceKind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == Access::RWM
    }
}

/// `allow c 1:3 rwm`, cgroup v1's `devices.allow` syntax with the verdict
/// in front.
impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
            DeviceKind::All => 'a',
        };
        let n = |x: Option<u32>| x.map_or("*".to_string(), |v| v.to_string());
        write!(
            f,
            "{} {kind} {}:{} {}",
            if self.allow { "allow" } else { "deny" },
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// The device rules a Docker container without `--privileged` or
/// `--device` gets, in the order runc receives and applies them:
///
/// 1. moby's `DefaultLinuxSpec` (daemon/pkg/oci/defaults.go, unchanged
///    since 2017, checked at moby b985e23 of 2026-08):
///    `deny a *:* rwm`, then allow `c 1:5` (zero), `c 1:3` (null),
///    `c 1:9` (urandom), `c 1:8` (random), `c 5:0` (tty), `c 5:1`
///    (console), all `rwm`, then `deny c 10:229 rwm` (fuse);
/// 2. runc's `AllowedDevices` (libcontainer/specconv/spec_linux.go, checked
///    at runc 76d9cf5 of 2026-08), which `CreateCgroupConfig` appends after
///    the spec's rules so that no spec can deny them: `c *:* m`, `b *:* m`
///    (mknod of any node; opening it is what is checked), then `rwm` on
///    `c 1:3` null, `c 1:8` random, `c 1:7` full, `c 5:0` tty, `c 1:5`
///    zero, `c 1:9` urandom, `c 136:*` /dev/pts/*, `c 5:2` /dev/ptmx and
///    `c 10:200` /dev/net/tun (removed in runc 1.2.0 by #3468, restored in
///    1.2.4 and 1.3.0 by #4555 because users relied on it).
///
/// Everything else is denied: `b 253:0 r` (the VM's disk), `c 1:1`
/// (/dev/mem), `c 4:0` (tty0), `c 10:229` (/dev/fuse), `c 1:11` (kmsg).
pub fn docker_default_rules() -> Vec<DeviceRule> {
    use DeviceKind::*;
    let rwm = |major, minor: Option<u32>| DeviceRule::allow(Char, Some(major), minor, Access::RWM);
    vec![
        // moby
        DeviceRule {
            allow: false,
            kind: All,
            major: None,
            minor: None,
            access: Access::RWM,
        },
        rwm(1, Some(5)),
        rwm(1, Some(3)),
        rwm(1, Some(9)),
        rwm(1, Some(8)),
        rwm(5, Some(0)),
        rwm(5, Some(1)),
        DeviceRule {
            allow: false,
            ..rwm(10, Some(229))
        },
        // runc
        DeviceRule::allow(Char, None, None, Access::MKNOD),
        DeviceRule::allow(Block, None, None, Access::MKNOD),
        rwm(1, Some(3)),
        rwm(1, Some(8)),
        rwm(1, Some(7)),
        rwm(5, Some(0)),
        rwm(1, Some(5)),
        rwm(1, Some(9)),
        rwm(136, None),
        rwm(5, Some(2)),
        rwm(10, Some(200)),
    ]
}

/// The rules that can decide a request, in list order, and the verdict
/// when none matches (see the module doc).
fn reduce(rules: &[DeviceRule]) -> (Vec<DeviceRule>, bool) {
    // The last `a *:* rwm` decides everything not matched after it.
    let (default, rest) = match rules.iter().rposition(DeviceRule::matches_all) {
        Some(i) => (rules[i].allow, &rules[i + 1..]),
        None => (false, rules),
    };
    // A rule covered by a later one never decides.
    let mut kept: Vec<DeviceRule> = Vec::new();
    for (i, r) in rest.iter().enumerate() {
        if !rest[i + 1..].iter().any(|later| later.covers(r)) {
            kept.push(*r);
        }
    }
    // A rule with the default verdict only matters when an earlier rule of
    // the other verdict, evaluated after it, could match the same request.
    let mut out: Vec<DeviceRule> = Vec::new();
    for (i, r) in kept.iter().enumerate() {
        let shields = kept[..i]
            .iter()
            .any(|earlier| earlier.allow != default && !earlier.disjoint(r));
        if r.allow != default || shields {
            out.push(*r);
        }
    }
    (out, default)
}

/// eBPF opcodes (include/uapi/linux/bpf.h, bpf_common.h).
mod op {
    /// BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off).
    pub const LDXW: u8 = 0x61;
    /// BPF_ALU | BPF_AND | BPF_K: dst = (u32)dst & imm.
    pub const AND32_IMM: u8 = 0x54;
    /// BPF_ALU | BPF_RSH | BPF_K: dst = (u32)dst >> imm.
    pub const RSH32_IMM: u8 = 0x74;
    /// BPF_ALU | BPF_MOV | BPF_X: dst = (u32)src.
    pub const MOV32_REG: u8 = 0xbc;
    /// BPF_ALU | BPF_MOV | BPF_K: dst = (u32)imm.
    pub const MOV32_IMM: u8 = 0xb4;
    /// BPF_JMP | BPF_JNE | BPF_K: if dst != (s64)imm goto pc + 1 + off.
    pub const JNE_IMM: u8 = 0x55;
    /// BPF_JMP | BPF_JNE | BPF_X: if dst != src goto pc + 1 + off.
    pub const JNE_REG: u8 = 0x5d;
    /// BPF_JMP | BPF_EXIT: return r0.
    pub const EXIT: u8 = 0x95;
}

/// One `struct bpf_insn`: code, dst_reg (low nibble) and src_reg (high
/// nibble), s16 off, s32 imm, little-endian as x86_64's kernel reads it.
fn insn(out: &mut Vec<u8>, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
    out.push(code);
    out.push((src << 4) | dst);
    out.extend_from_slice(&off.to_le_bytes());
    out.extend_from_slice(&imm.to_le_bytes());
}

/// The instructions of one rule, `len` of them, `at` emitted so far.
struct Emitter<'a> {
    p: &'a mut Vec<u8>,
    at: i16,
    len: i16,
}

impl Emitter<'_> {
    fn insn(&mut self, code: u8, dst: u8, src: u8, imm: i32) {
        insn(self.p, code, dst, src, 0, imm);
        self.at += 1;
    }

    /// A conditional jump past the block's end, to the next rule.
    fn next_unless(&mut self, code: u8, dst: u8, src: u8, imm: i32) {
        insn(self.p, code, dst, src, self.len - self.at - 1, imm);
        self.at += 1;
    }
}

/// The `BPF_PROG_TYPE_CGROUP_DEVICE` program for `rules`: the raw array of
/// `struct bpf_insn` (8 bytes each, little-endian) for bpf(BPF_PROG_LOAD).
/// It reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32
/// minor; }` (access_type = access << 16 | type) and returns 1 to allow, 0
/// to deny, the last matching rule deciding (see the module doc). It calls
/// no helper, so the kernel accepts it under any license string.
///
/// The comparisons are 64-bit with the immediate sign-extended, as in runc
/// and crun (BPF_JMP32 needs Linux 5.1): a major or minor above
/// `i32::MAX` never matches, which is right, as Linux's are 12 and 20 bits.
pub fn compile(rules: &[DeviceRule]) -> Vec<u8> {
    use op::*;
    let (rules, default) = reduce(rules);
    let mut p = Vec::with_capacity(8 * (8 + 6 * rules.len()));
    // r1 is the context; r2 = type, r3 = access, r4 = major, r5 = minor.
    insn(&mut p, LDXW, 2, 1, 0, 0);
    insn(&mut p, AND32_IMM, 2, 0, 0, 0xffff);
    insn(&mut p, LDXW, 3, 1, 0, 0);
    insn(&mut p, RSH32_IMM, 3, 0, 0, 16);
    insn(&mut p, LDXW, 4, 1, 4, 0);
    insn(&mut p, LDXW, 5, 1, 8, 0);
    for r in rules.iter().rev() {
        let kind = match r.kind {
            DeviceKind::Char => Some(DEV_CHAR),
            DeviceKind::Block => Some(DEV_BLOCK),
            DeviceKind::All => None,
        };
        let check_access = r.access != Access::RWM;
        let len = i16::from(kind.is_some())
            + 3 * i16::from(check_access)
            + i16::from(r.major.is_some())
            + i16::from(r.minor.is_some())
            + 2;
        let mut b = Emitter {
            p: &mut p,
            at: 0,
            len,
        };
        if let Some(t) = kind {
            b.next_unless(JNE_IMM, 2, 0, t);
        }
        if check_access {
            // The request's access must be a subset of the rule's:
            // (access & rule) == access, with r1 (the context) as scratch.
            b.insn(MOV32_REG, 1, 3, 0);
            b.insn(AND32_IMM, 1, 0, r.access.bits() as i32);
            b.next_unless(JNE_REG, 1, 3, 0);
        }
        if let Some(m) = r.major {
            b.next_unless(JNE_IMM, 4, 0, m as i32);
        }
        if let Some(m) = r.minor {
            b.next_unless(JNE_IMM, 5, 0, m as i32);
        }
        b.insn(MOV32_IMM, 0, 0, i32::from(r.allow));
        b.insn(EXIT, 0, 0, 0);
        debug_assert_eq!(b.at, b.len);
    }
    insn(&mut p, MOV32_IMM, 0, 0, 0, i32::from(default));
    insn(&mut p, EXIT, 0, 0, 0, 0);
    p
}

#[cfg(test)]
mod tests;
