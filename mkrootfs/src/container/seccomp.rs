//! Seccomp filters compiled to BPF at build time, with the `seccompiler`
//! crate (rust-vmm's, as Firecracker uses), so the init only hands bytes to
//! `seccomp(SECCOMP_SET_MODE_FILTER)`.
//!
//! # Docker's default profile
//! `docker-seccomp.json` is moby's `profiles/seccomp/default.json`
//! (github.com/moby/profiles, commit 3c28324, 2026-05-06; Apache-2.0), kept verbatim and
//! evaluated here the way moby's `seccomp_linux.go` does for `amd64`: a rule
//! applies unless its `excludes` name the architecture or a capability of the
//! container's bounding set, and only if its `includes` name the architecture
//! (when they name any) and every capability they list is in the set. So a
//! container given `CAP_SYS_ADMIN` gets `mount` back, as under Docker.
//! `minKernel` conditions (only `ptrace` and friends, 4.8) are taken as met.
//!
//! The profile is an allowlist, and so is the filter: the syscalls it allows
//! (unconditionally, or when their arguments match) are allowed, `clone3`
//! fails with `ENOSYS` (so libcs fall back to `clone`, whose flags the filter
//! can see), and every other number fails with `EPERM` (`defaultErrnoRet`),
//! including numbers newer than the profile: with Docker's 14 capabilities
//! that is 75 of the 385 x86_64 syscalls up to Linux 7.0 (69 of them older
//! than the profile, the 6 newest too new for it). An allowlist, not a
//! denylist with "allow" as default, because only it gives those newest
//! syscalls the answer Docker gives.
//!
//! Two deliberate differences from Docker's libseccomp filter, both stricter:
//! - Arguments the kernel declares 32-bit (`socket`'s domain,
//!   `personality`'s persona) are compared on their low 32 bits, which is
//!   what the kernel uses: libseccomp compares all 64, so
//!   `socket(AF_ALG | 1 << 32, …)` gets past Docker's "domain > 40" rule and
//!   the kernel then creates an AF_ALG socket.
//! - i386 (`int 0x80`) and x32 system calls kill the process
//!   (`SECCOMP_RET_KILL_PROCESS`), where Docker's profile also allows the
//!   i386 and x32 variants of its list. See [`ABI_GUARD`].
//!
//! # Other profiles
//! A policy file in the same form (a user's, or a bundle's
//! `linux.seccomp`, which the runtime-spec defines alike) goes through the
//! same evaluation, with any of libseccomp's actions but NOTIFY and TRACE:
//! the rules of each action become one filter, and the filters run in the
//! kernel's order of precedence (KILL_PROCESS, KILL_THREAD, TRAP, ERRNO by
//! errno, LOG, then the ALLOW rules against the default action), so a call
//! gets the strongest action among the rules it matches, as under
//! libseccomp. A seccompiler JSON policy is compiled as it is.
//!
//! # The stored form
//! A filter is stored in the image as its `struct sock_filter` array, 8 bytes
//! per instruction, little endian (`u16 code, u8 jt, u8 jf, u32 k`): what
//! `struct sock_fprog` points at. Several seccompiler filters (one per
//! action) are chained into that one program: each but the last jumps to
//! the next where it would have allowed the call. Every stored program,
//! whatever its source, begins with [`ABI_GUARD`].

use super::caps;
use super::syscalls;
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// moby's default seccomp profile (see the module documentation).
const DOCKER_PROFILE: &str = include_str!("docker-seccomp.json");

/// The architecture name moby's profile uses for x86_64.
const ARCH: &str = "amd64";

/// System call arguments that the kernel declares 32 bits wide, compared on
/// their low 32 bits only (see the module documentation).
const ARGS_32BIT: &[(&str, u8)] = &[("socket", 0), ("personality", 0)];

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;

/// `struct seccomp_data`: `int nr` at 0, `__u32 arch` at 4.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// `<linux/audit.h>`: `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `__X32_SYSCALL_BIT` (`arch/x86/include/uapi/asm/unistd.h`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The instructions every stored program begins with. x32 system calls
/// enter the kernel with the x86_64 audit arch and their number ORed with
/// `__X32_SYSCALL_BIT`, so seccompiler's arch check lets them through, and
/// the kernel then runs them under a number the rest of the filter never
/// names (`0x40000000 | 39` is x32 `getpid`; the x32 variants of `ioctl`,
/// `readv`… sit at 512 and up with the bit set): the filter would answer
/// its default, which is ALLOW for a denylist. So: any other audit arch
/// (i386 via `int 0x80`) kills, any number with the bit set kills, and only
/// then does the program proper run, whether or not the kernel was built
/// with `CONFIG_X86_X32_ABI` (the filter runs before the kernel looks).
///
/// The one exception is `nr == -1`, which libseccomp's x86_64 filter lets
/// through too (`gen_bpf.c`, "additional ABI filtering"): since Linux 4.8
/// seccomp runs again after a ptrace tracer changed the call, and tracers
/// (strace's `inject=…:error=`, debuggers) skip a call by setting its
/// number to -1, which the kernel then does not run. It goes on to the
/// program proper, which gives it the default action.
///
/// Prepending is safe: classic BPF jumps are relative to the next
/// instruction and only go forward, so the program's own jumps (and
/// [`chain`]'s) keep their targets.
const ABI_GUARD: [sock_filter; 6] = [
    // 0: A = arch
    sock_filter {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k: DATA_ARCH,
    },
    // 1: not x86_64 → 5 (kill)
    sock_filter {
        code: BPF_JMP_JEQ_K,
        jt: 0,
        jf: 3,
        k: AUDIT_ARCH_X86_64,
    },
    // 2: A = nr
    sock_filter {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k: DATA_NR,
    },
    // 3: below the x32 bit → 6 (the program)
    sock_filter {
        code: BPF_JMP_JGE_K,
        jt: 0,
        jf: 2,
        k: X32_SYSCALL_BIT,
    },
    // 4: -1 → 6 (the program), any other → 5 (kill)
    sock_filter {
        code: BPF_JMP_JEQ_K,
        jt: 1,
        jf: 0,
        k: u32::MAX,
    },
    // 5
    sock_filter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_KILL_PROCESS,
    },
];

/// The kernel's limit on a program's length (`BPF_MAXINSNS`).
const BPF_MAXINSNS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("the built-in Docker seccomp profile does not parse")]
    DockerProfile(#[source] serde_json::Error),
    #[error("the built-in Docker seccomp profile: {0}")]
    DockerRule(String),
    #[error("compile the Docker seccomp profile")]
    Compile(#[source] seccompiler::BackendError),
    #[error("read seccomp policy {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp policy {path}: {error}")]
    Policy {
        path: PathBuf,
        error: seccompiler::Error,
    },
    #[error("seccomp profile {path} does not parse")]
    ProfileParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("seccomp profile {path}: {message}")]
    ProfileRule { path: PathBuf, message: String },
    #[error("seccomp profile {path}: compile")]
    ProfileCompile {
        path: PathBuf,
        #[source]
        source: seccompiler::BackendError,
    },
    #[error("seccomp policy {path} defines {count} filters ({names}): it must define exactly one")]
    FilterCount {
        path: PathBuf,
        count: usize,
        names: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
    #[serde(default)]
    includes: Selector,
    #[serde(default)]
    excludes: Selector,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u8,
    value: u64,
    #[serde(default)]
    value_two: Option<u64>,
    op: String,
}

/// Rules for one syscall under one action: `None` means unconditionally.
type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// Docker's default profile for a container whose bounding set is `caps`,
/// as the bytes of its BPF program.
pub fn docker_default(caps: u64) -> Result<Vec<u8>, SeccompError> {
    let profile: Profile =
        serde_json::from_str(DOCKER_PROFILE).map_err(SeccompError::DockerProfile)?;
    compile_profile(&profile, caps).map_err(|f| match f {
        Fault::Rule(m) => SeccompError::DockerRule(m),
        Fault::Compile(e) => SeccompError::Compile(e),
    })
}

/// A seccomp action of a profile, in the kernel's order of precedence
/// (seccomp(2): the first is the one that wins when several filters give
/// different answers), which is the order the chained filters run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Act {
    KillProcess,
    KillThread,
    Trap,
    Errno(u32),
    Log,
    Allow,
}

impl Act {
    /// libseccomp's names; `errno` is the rule's `errnoRet`, else `fallback`.
    fn parse(name: &str, errno: Option<u32>, fallback: u32) -> Result<Act, Fault> {
        Ok(match name {
            "SCMP_ACT_ALLOW" => Act::Allow,
            "SCMP_ACT_ERRNO" => Act::Errno(errno.unwrap_or(fallback)),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Act::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Act::KillProcess,
            "SCMP_ACT_TRAP" => Act::Trap,
            "SCMP_ACT_LOG" => Act::Log,
            other => {
                return Err(Fault::Rule(format!(
                    "action {other} is not supported (ALLOW, ERRNO, KILL, KILL_THREAD, KILL_PROCESS, TRAP, LOG are)"
                )))
            }
        })
    }

    fn seccompiler(self) -> SeccompAction {
        match self {
            Act::KillProcess => SeccompAction::KillProcess,
            Act::KillThread => SeccompAction::KillThread,
            Act::Trap => SeccompAction::Trap,
            Act::Errno(e) => SeccompAction::Errno(e),
            Act::Log => SeccompAction::Log,
            Act::Allow => SeccompAction::Allow,
        }
    }
}

/// Why a profile does not compile: a rule it cannot express, or the
/// compiler's refusal.
enum Fault {
    Rule(String),
    Compile(seccompiler::BackendError),
}

/// A profile in Docker's form (which is also the runtime-spec's
/// `linux.seccomp`) for a container whose bounding set is `caps`, as one
/// BPF program: one seccompiler filter per action other than ALLOW, in the
/// kernel's order of precedence (each matching its rules and allowing
/// everything else), then, unless the default is ALLOW, the filter of the
/// ALLOW rules whose mismatch is the default action; [`chain`] joins them.
/// So a call is decided by the strongest action whose rule it matches, as
/// libseccomp decides, and by the default when it matches none.
fn compile_profile(profile: &Profile, caps: u64) -> Result<Vec<u8>, Fault> {
    let held = caps::names(caps);
    let held: Vec<&str> = held.iter().map(String::as_str).collect();
    let default_errno = profile.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let default = Act::parse(&profile.default_action, None, default_errno)?;
    let mut by_action: BTreeMap<Act, Rules> = BTreeMap::new();
    for rule in &profile.syscalls {
        if !applies(rule, &held) {
            continue;
        }
        let act = Act::parse(&rule.action, rule.errno_ret, default_errno).map_err(|f| match f {
            Fault::Rule(m) => Fault::Rule(format!("{:?}: {m}", rule.names)),
            f => f,
        })?;
        if act == Act::Allow && default == Act::Allow {
            continue;
        }
        let target = by_action.entry(act).or_default();
        for name in &rule.names {
            // Names of other architectures (`chown32`, `socketcall`…) are
            // skipped, as libseccomp skips them.
            let Some(nr) = syscalls::number(name) else {
                continue;
            };
            let conditions = rule
                .args
                .iter()
                .map(|a| condition(name, a))
                .collect::<Result<Vec<_>, _>>()?;
            add(target, nr.into(), conditions)?;
        }
    }
    let allow = by_action.remove(&Act::Allow);
    let mut programs = Vec::new();
    for (act, rules) in by_action {
        programs.push(compile(rules, SeccompAction::Allow, act.seccompiler())?);
    }
    if default != Act::Allow {
        programs.push(compile(
            allow.unwrap_or_default(),
            default.seccompiler(),
            SeccompAction::Allow,
        )?);
    } else if programs.is_empty() {
        // Nothing but ALLOW: a filter with no rules, which allows all.
        programs.push(compile(
            Rules::new(),
            SeccompAction::Allow,
            SeccompAction::KillProcess,
        )?);
    }
    stored(&chain(programs)).map_err(Fault::Compile)
}

/// Whether a rule of the profile applies on x86_64 to a container holding
/// `held` (moby's `seccomp_linux.go`).
fn applies(rule: &Rule, held: &[&str]) -> bool {
    let ex = &rule.excludes;
    if ex.arches.iter().any(|a| a == ARCH) || ex.caps.iter().any(|c| held.contains(&c.as_str())) {
        return false;
    }
    let inc = &rule.includes;
    if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == ARCH) {
        return false;
    }
    inc.caps.iter().all(|c| held.contains(&c.as_str()))
}

fn condition(syscall: &str, a: &Arg) -> Result<SeccompCondition, Fault> {
    let (op, value) = match a.op.as_str() {
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, a.value),
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, a.value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, a.value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, a.value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, a.value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, a.value),
        // libseccomp: (arg & value) == valueTwo.
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(a.value), a.value_two.unwrap_or(0)),
        other => {
            return Err(Fault::Rule(format!(
                "{syscall}: comparison {other} is not supported"
            )))
        }
    };
    let len = if ARGS_32BIT.contains(&(syscall, a.index)) {
        SeccompCmpArgLen::Dword
    } else {
        SeccompCmpArgLen::Qword
    };
    SeccompCondition::new(a.index, len, op, value).map_err(Fault::Compile)
}

/// Adds one rule: no conditions means "always", which wins over any
/// conditional rule for the same syscall; conditional rules are alternatives.
fn add(rules: &mut Rules, nr: i64, conditions: Vec<SeccompCondition>) -> Result<(), Fault> {
    if conditions.is_empty() {
        rules.insert(nr, None);
        return Ok(());
    }
    let rule = SeccompRule::new(conditions).map_err(Fault::Compile)?;
    if let Some(alternatives) = rules.entry(nr).or_insert_with(|| Some(Vec::new())) {
        alternatives.push(rule);
    }
    Ok(())
}

fn compile(
    rules: Rules,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, Fault> {
    let rules = rules
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    let filter =
        SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64).map_err(Fault::Compile)?;
    BpfProgram::try_from(filter).map_err(Fault::Compile)
}

/// One program from several: in each but the last, every `RET ALLOW`
/// becomes a jump to the start of the next program (BPF jumps only go
/// forward, and a `JA` has a 32-bit offset), so the first program that does
/// not allow a call decides it, and a call all of them allow is allowed.
fn chain(programs: Vec<BpfProgram>) -> BpfProgram {
    let count = programs.len();
    let mut out = Vec::new();
    for (n, program) in programs.into_iter().enumerate() {
        let len = program.len();
        for (i, mut ins) in program.into_iter().enumerate() {
            if n + 1 < count && ins.code == BPF_RET_K && ins.k == libc::SECCOMP_RET_ALLOW {
                ins = sock_filter {
                    code: BPF_JMP_JA,
                    jt: 0,
                    jf: 0,
                    k: (len - i - 1) as u32,
                };
            }
            out.push(ins);
        }
    }
    out
}

/// A policy file: a profile in Docker's form (an object with
/// `defaultAction`, which is also the runtime-spec's `linux.seccomp`),
/// evaluated for a container whose bounding set is `caps`, or else a
/// seccompiler JSON policy ([`compile_json`]).
pub fn compile_file(path: &Path, caps: u64) -> Result<Vec<u8>, SeccompError> {
    let text = std::fs::read_to_string(path).map_err(|source| SeccompError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let docker_form = serde_json::from_str::<serde_json::Value>(&text)
        .is_ok_and(|v| v.get("defaultAction").is_some());
    if !docker_form {
        return compile_json(path);
    }
    let profile: Profile =
        serde_json::from_str(&text).map_err(|source| SeccompError::ProfileParse {
            path: path.to_path_buf(),
            source,
        })?;
    compile_docker_form(&profile, path, caps)
}

/// A bundle's `linux.seccomp`, in the profile form `container.seccomp`
/// takes, compiled by [`compile_value`] without touching the disk.
#[derive(Clone, Debug)]
pub struct BundlePolicy {
    /// The bundle's `config.json`: what the container's `seccomp` then
    /// says, and what errors name.
    pub origin: std::path::PathBuf,
    pub policy: serde_json::Value,
}

/// A policy in Docker's form already in memory (a bundle's `linux.seccomp`,
/// [`crate::oci`]); `origin` names where it was read, for errors.
pub fn compile_value(
    policy: &serde_json::Value,
    origin: &Path,
    caps: u64,
) -> Result<Vec<u8>, SeccompError> {
    let profile: Profile =
        serde_json::from_value(policy.clone()).map_err(|source| SeccompError::ProfileParse {
            path: origin.to_path_buf(),
            source,
        })?;
    compile_docker_form(&profile, origin, caps)
}

fn compile_docker_form(profile: &Profile, path: &Path, caps: u64) -> Result<Vec<u8>, SeccompError> {
    compile_profile(profile, caps).map_err(|f| match f {
        Fault::Rule(message) => SeccompError::ProfileRule {
            path: path.to_path_buf(),
            message,
        },
        Fault::Compile(source) => SeccompError::ProfileCompile {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// A seccompiler JSON policy (the format of Firecracker's
/// `resources/seccomp/*.json`: a map from a filter's name to
/// `{ "mismatch_action", "match_action", "filter": [...] }`, the first two
/// also spelled `default_action` and `filter_action`) compiled for
/// x86_64. The file must define exactly one filter, whatever its name.
pub fn compile_json(path: &Path) -> Result<Vec<u8>, SeccompError> {
    let file = std::fs::File::open(path).map_err(|source| SeccompError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let map = seccompiler::compile_from_json(std::io::BufReader::new(file), TargetArch::x86_64)
        .map_err(|error| SeccompError::Policy {
            path: path.to_path_buf(),
            error,
        })?;
    if map.len() != 1 {
        let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
        names.sort();
        return Err(SeccompError::FilterCount {
            path: path.to_path_buf(),
            count: map.len(),
            names: names.join(", "),
        });
    }
    let program = map.into_values().next().unwrap_or_default();
    stored(&program).map_err(|e| SeccompError::Policy {
        path: path.to_path_buf(),
        error: seccompiler::Error::Backend(e),
    })
}

/// The one way out of this module: [`ABI_GUARD`] followed by `program`,
/// in the stored form, refused when the whole exceeds the kernel's limit
/// (the init would refuse to load it at boot).
fn stored(program: &[sock_filter]) -> Result<Vec<u8>, seccompiler::BackendError> {
    let len = ABI_GUARD.len() + program.len();
    if len > BPF_MAXINSNS {
        return Err(seccompiler::BackendError::FilterTooLarge(len));
    }
    let mut whole = ABI_GUARD.to_vec();
    whole.extend_from_slice(program);
    Ok(to_bytes(&whole))
}

/// The `struct sock_filter` array, little endian, as it is: the filters
/// this module compiles go out through [`stored`], which adds the guard.
pub fn to_bytes(program: &[sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * 8);
    for ins in program {
        out.extend_from_slice(&ins.code.to_le_bytes());
        out.push(ins.jt);
        out.push(ins.jf);
        out.extend_from_slice(&ins.k.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests;
