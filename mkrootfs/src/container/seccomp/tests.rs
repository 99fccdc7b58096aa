//! The filters' decisions, checked by running them: a throwaway child
//! installs the filter from its stored bytes and makes each probe call; a
//! second child makes the same calls without a filter. A call the filter
//! refuses must fail with the filter's errno under it and with something
//! else without it (so a kernel's own EPERM cannot pass for the filter's);
//! a call the filter allows must give the same result in both children.
//! Every probe's arguments make the kernel fail harmlessly (bad pointers,
//! bad flags) when the call is let through, even as root.

use super::*;
use crate::container::caps::mask;
use mkrootfs_config::container::DOCKER_CAPABILITIES as DOCKER_DEFAULT;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    Allowed,
    Errno(i32),
    /// Allowed and logged (SECCOMP_RET_LOG).
    Logged,
}

struct Probe {
    name: &'static str,
    nr: i64,
    args: [u64; 6],
    want: Want,
}

const BAD_PTR: u64 = 1;
const EPERM: Want = Want::Errno(libc::EPERM);

fn probe(name: &'static str, args: &[u64], want: Want) -> Probe {
    let nr = syscalls::number(name).unwrap_or_else(|| panic!("no syscall {name}")) as i64;
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    Probe {
        name,
        nr,
        args: a,
        want,
    }
}

/// Decodes the stored form, as the init will.
fn decode(bytes: &[u8]) -> Vec<sock_filter> {
    assert_eq!(bytes.len() % 8, 0);
    bytes
        .chunks(8)
        .map(|c| sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// Runs the probes in a forked child, under `filter` if given; returns each
/// call's raw result (`-errno` on failure).
fn run(filter: Option<&[sock_filter]>, probes: &[Probe]) -> Vec<i64> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe() writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let prog = filter.map(|f| libc::sock_fprog {
        len: f.len() as u16,
        filter: f.as_ptr() as *mut libc::sock_filter,
    });
    // SAFETY: the child only makes raw system calls (no allocation, no
    // locks) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: raw system calls on memory prepared before fork.
        unsafe {
            libc::close(fds[0]);
            if let Some(p) = &prog {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        0,
                        p as *const libc::sock_fprog,
                    ) != 0
                {
                    libc::_exit(3);
                }
            }
            for p in probes {
                let a = p.args;
                let r = libc::syscall(p.nr, a[0], a[1], a[2], a[3], a[4], a[5]);
                let v: i64 = if r < 0 {
                    -(*libc::__errno_location() as i64)
                } else {
                    r
                };
                libc::write(fds[1], &v as *const i64 as *const libc::c_void, 8);
            }
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut out = Vec::new();
    let mut buf = [0u8; 8];
    loop {
        // SAFETY: reading into a local buffer of 8 bytes.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr() as *mut libc::c_void, 8) };
        if n != 8 {
            break;
        }
        out.push(i64::from_le_bytes(buf));
    }
    let mut status = 0;
    // SAFETY: waiting for our own child; closing our read end.
    unsafe {
        libc::waitpid(pid, &mut status, 0);
        libc::close(fds[0]);
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "probe child ended with status {status:#x} after {} probes",
        out.len()
    );
    out
}

fn check(bytes: &[u8], probes: &[Probe]) {
    let filter = decode(bytes);
    let without = run(None, probes);
    let with = run(Some(&filter), probes);
    assert_eq!(with.len(), probes.len());
    let mut wrong = Vec::new();
    for ((p, w), b) in probes.iter().zip(&with).zip(&without) {
        let verdict = interpret(&filter, p.nr as u32, &p.args);
        let expected = match p.want {
            Want::Allowed => libc::SECCOMP_RET_ALLOW,
            Want::Errno(e) => libc::SECCOMP_RET_ERRNO | e as u32,
            Want::Logged => libc::SECCOMP_RET_LOG,
        };
        if verdict != expected {
            wrong.push(format!("{}{:x?}: interpreted {verdict:#x}", p.name, p.args));
        }
        let ok = match p.want {
            Want::Allowed | Want::Logged => w == b,
            Want::Errno(e) => *w == -(e as i64) && *b != -(e as i64),
        };
        if !ok {
            wrong.push(format!(
                "{}{:x?}: want {:?}, filtered {w}, unfiltered {b}",
                p.name, p.args, p.want
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const CLONE_NEWNS: u64 = libc::CLONE_NEWNS as u64;
const CLONE_NEWUSER: u64 = libc::CLONE_NEWUSER as u64;

fn docker_probes() -> Vec<Probe> {
    vec![
        // The escapes the containers issue lists, each refused with EPERM.
        probe("mount", &[0, 0, 0, 0, 0], EPERM),
        probe("umount2", &[BAD_PTR, 0], EPERM),
        probe("pivot_root", &[BAD_PTR, BAD_PTR], EPERM),
        probe("init_module", &[BAD_PTR, 0, BAD_PTR], EPERM),
        probe("finit_module", &[u64::MAX, BAD_PTR, 0], EPERM),
        probe("delete_module", &[BAD_PTR, 0], EPERM),
        probe("settimeofday", &[BAD_PTR, 0], EPERM),
        probe("clock_settime", &[0, BAD_PTR], EPERM),
        probe("reboot", &[0, 0, 0, 0], EPERM),
        probe("swapon", &[BAD_PTR, 0], EPERM),
        probe("swapoff", &[BAD_PTR], EPERM),
        probe("kexec_load", &[0, 0, 0, 0xdead_0000], EPERM),
        probe(
            "kexec_file_load",
            &[u64::MAX, u64::MAX, 0, 0, 0xdead_0000],
            EPERM,
        ),
        // Invalid flag bit 0: EINVAL when let through.
        probe("unshare", &[1], EPERM),
        probe("setns", &[u64::MAX, 0], EPERM),
        probe("keyctl", &[0xdead, 0, 0, 0, 0], EPERM),
        probe("add_key", &[BAD_PTR, BAD_PTR, 0, 0, 0], EPERM),
        probe("request_key", &[BAD_PTR, BAD_PTR, 0, 0], EPERM),
        probe("bpf", &[0xffff, 0, 0], EPERM),
        probe(
            "perf_event_open",
            &[BAD_PTR, 0, u64::MAX, u64::MAX, 0],
            EPERM,
        ),
        probe("userfaultfd", &[0xffff_ffff], EPERM),
        probe("io_uring_setup", &[0, 0], EPERM),
        probe("io_uring_enter", &[u64::MAX, 0, 0, 0, 0, 0], EPERM),
        probe("io_uring_register", &[u64::MAX, 0, 0, 0], EPERM),
        probe("open_by_handle_at", &[u64::MAX, BAD_PTR, 0], EPERM),
        probe("iopl", &[4], EPERM),
        probe("ioperm", &[0, 0, 0], EPERM),
        probe("acct", &[BAD_PTR], EPERM),
        probe("syslog", &[9999, 0, 0], EPERM),
        probe("sethostname", &[BAD_PTR, 1000], EPERM),
        probe("setdomainname", &[BAD_PTR, 1000], EPERM),
        probe("quotactl", &[0, BAD_PTR, 0, 0], EPERM),
        probe("fsopen", &[BAD_PTR, 0], EPERM),
        probe("open_tree", &[u64::MAX, BAD_PTR, 0], EPERM),
        probe(
            "move_mount",
            &[u64::MAX, BAD_PTR, u64::MAX, BAD_PTR, 0],
            EPERM,
        ),
        probe("mount_setattr", &[u64::MAX, BAD_PTR, 0, BAD_PTR, 0], EPERM),
        probe("lookup_dcookie", &[0, BAD_PTR, 0], EPERM),
        probe("vhangup", &[], EPERM),
        probe("ustat", &[0, BAD_PTR], EPERM),
        probe("sysfs", &[99, 0, 0], EPERM),
        probe("kcmp", &[0, 0, 99, 0, 0], EPERM),
        probe("pidfd_getfd", &[u64::MAX, 0, 0], EPERM),
        probe("process_madvise", &[u64::MAX, BAD_PTR, 1, 0, 0], EPERM),
        probe("mbind", &[0, 0, 99, 0, 0, 0], EPERM),
        probe("get_mempolicy", &[BAD_PTR, BAD_PTR, 0, 0, 0xffff], EPERM),
        probe("set_mempolicy", &[99, 0, 0], EPERM),
        probe("migrate_pages", &[0, 0, BAD_PTR, BAD_PTR], EPERM),
        probe("move_pages", &[0, 1, BAD_PTR, 0, BAD_PTR, 0xffff], EPERM),
        // Newer than Docker's profile: refused like any number it does not list.
        probe("listns", &[BAD_PTR, BAD_PTR, 0, 0xffff], EPERM),
        probe(
            "file_setattr",
            &[u64::MAX, BAD_PTR, BAD_PTR, 0, 0xffff],
            EPERM,
        ),
        // clone3 says ENOSYS, so that libcs fall back to clone.
        probe("clone3", &[0, 0], Want::Errno(libc::ENOSYS)),
        // clone with a namespace flag is refused (NEWNS|FS is EINVAL when
        // let through); clone without one is not (SIGHAND without VM: EINVAL).
        probe(
            "clone",
            &[CLONE_NEWNS | libc::CLONE_FS as u64, 0, 0, 0, 0],
            EPERM,
        ),
        probe(
            "clone",
            &[
                CLONE_NEWUSER | libc::CLONE_FS as u64 | CLONE_NEWNS,
                0,
                0,
                0,
                0,
            ],
            EPERM,
        ),
        probe(
            "clone",
            &[libc::CLONE_SIGHAND as u64, 0, 0, 0, 0],
            Want::Allowed,
        ),
        // socket: AF_ALG and AF_VSOCK refused, also with high bits set
        // (the kernel reads an int), others not.
        probe("socket", &[38, libc::SOCK_SEQPACKET as u64, 0], EPERM),
        probe("socket", &[40, libc::SOCK_STREAM as u64, 0], EPERM),
        probe(
            "socket",
            &[38 | 1 << 32, libc::SOCK_SEQPACKET as u64, 0],
            EPERM,
        ),
        probe("socket", &[1, 0xffff, 0], Want::Allowed),
        probe("socket", &[39, 0xffff, 0], Want::Allowed),
        probe("socket", &[41, 0xffff, 0], Want::Allowed),
        // personality: only the five personas Docker lists.
        probe("personality", &[0xffff_ffff], Want::Allowed),
        probe("personality", &[0x0040_0000], EPERM),
        // Ordinary calls go through untouched.
        probe("getppid", &[], Want::Allowed),
        probe("read", &[u64::MAX, 0, 0], Want::Allowed),
        probe("uname", &[BAD_PTR], Want::Allowed),
        probe("ptrace", &[0xffff, 0, 0, 0], Want::Allowed),
        probe("chroot", &[BAD_PTR], Want::Allowed),
        probe("mseal", &[BAD_PTR, 0, 0xffff], Want::Allowed),
        probe("futex_wake", &[BAD_PTR, 0, 0, 0xffff], Want::Allowed),
        probe("seccomp", &[0xffff, 0, 0], Want::Allowed),
    ]
}

#[test]
fn docker_default_decisions_in_a_child() {
    let bytes = docker_default(mask(DOCKER_DEFAULT).unwrap()).unwrap();
    check(&bytes, &docker_probes());
}

#[test]
fn docker_default_refuses_numbers_past_the_table() {
    let bytes = docker_default(mask(DOCKER_DEFAULT).unwrap()).unwrap();
    let past = Probe {
        name: "syscall 1000",
        nr: 1000,
        args: [0; 6],
        want: EPERM,
    };
    check(&bytes, &[past]);
}

#[test]
fn capabilities_give_syscalls_back_as_under_docker() {
    let mut caps = DOCKER_DEFAULT.to_vec();
    caps.extend(["CAP_SYS_ADMIN", "CAP_SYS_TIME"]);
    let bytes = docker_default(mask(&caps).unwrap()).unwrap();
    check(
        &bytes,
        &[
            probe("mount", &[0, 0, 0, 0, 0], Want::Allowed),
            probe("unshare", &[1], Want::Allowed),
            probe("clone3", &[0, 0], Want::Allowed),
            probe(
                "clone",
                &[CLONE_NEWNS | libc::CLONE_FS as u64, 0, 0, 0, 0],
                Want::Allowed,
            ),
            probe("settimeofday", &[BAD_PTR, 0], Want::Allowed),
            probe("reboot", &[0, 0, 0, 0], EPERM),
            probe("init_module", &[BAD_PTR, 0, BAD_PTR], EPERM),
        ],
    );
    // Without CAP_SYS_CHROOT, chroot goes.
    let bytes = docker_default(mask(&["CAP_KILL"]).unwrap()).unwrap();
    check(&bytes, &[probe("chroot", &[BAD_PTR], EPERM)]);
}

/// A BPF interpreter for the instructions seccompiler emits (loads of
/// `struct seccomp_data` words, `JEQ`/`JGT`/`JGE`/`JSET`/`JA` with
/// constants, `AND` with a constant, `RET`), to ask the filter about every
/// number of the table without making calls that would be unsafe to let
/// through (`exit`, `pause`, `fork`…). [`check`] makes sure it agrees with
/// the kernel on every probe.
fn interpret(filter: &[sock_filter], nr: u32, args: &[u64; 6]) -> u32 {
    interpret_as(filter, AUDIT_ARCH_X86_64, nr, args)
}

/// [`interpret`] for a call made with the audit arch `arch`.
fn interpret_as(filter: &[sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
    let mut data = Vec::new();
    data.extend_from_slice(&nr.to_le_bytes());
    data.extend_from_slice(&arch.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes()); // instruction pointer
    for a in args {
        data.extend_from_slice(&a.to_le_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let ins = &filter[pc];
        pc += 1;
        match ins.code {
            0x20 => {
                let o = ins.k as usize;
                acc = u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
            }
            0x54 => acc &= ins.k,
            0x05 => pc += ins.k as usize,
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match ins.code {
                    0x15 => acc == ins.k,
                    0x25 => acc > ins.k,
                    0x35 => acc >= ins.k,
                    _ => acc & ins.k != 0,
                };
                pc += if taken { ins.jt } else { ins.jf } as usize;
            }
            0x06 => return ins.k,
            other => panic!("instruction {other:#x} at {} not interpreted", pc - 1),
        }
    }
}

#[test]
fn docker_default_refuses_exactly_these_75() {
    let bytes = docker_default(mask(DOCKER_DEFAULT).unwrap()).unwrap();
    let filter = decode(&bytes);
    let mut refused = Vec::new();
    for (nr, name) in syscalls::SYSCALLS_X86_64 {
        // Zero arguments: clone's flags 0, socket's AF_UNSPEC and
        // personality's PER_LINUX are all allowed.
        match interpret(&filter, *nr, &[0; 6]) {
            0x7fff_0000 => {}
            0x0005_0001 => refused.push(*name),
            0x0005_0026 => assert_eq!(*name, "clone3"),
            r => panic!("{name}: {r:#x}"),
        }
    }
    refused.sort();
    assert_eq!(
        refused,
        [
            "_sysctl",
            "acct",
            "add_key",
            "afs_syscall",
            "bpf",
            "clock_settime",
            "create_module",
            "delete_module",
            "fanotify_init",
            "file_getattr",
            "file_setattr",
            "finit_module",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "get_kernel_syms",
            "get_mempolicy",
            "getpmsg",
            "init_module",
            "io_uring_enter",
            "io_uring_register",
            "io_uring_setup",
            "ioperm",
            "iopl",
            "kcmp",
            "kexec_file_load",
            "kexec_load",
            "keyctl",
            "listns",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mbind",
            "migrate_pages",
            "mount",
            "mount_setattr",
            "move_mount",
            "move_pages",
            "nfsservctl",
            "open_by_handle_at",
            "open_tree",
            "open_tree_attr",
            "perf_event_open",
            "pidfd_getfd",
            "pivot_root",
            "process_madvise",
            "putpmsg",
            "query_module",
            "quotactl",
            "quotactl_fd",
            "reboot",
            "request_key",
            "rseq_slice_yield",
            "security",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "setdomainname",
            "sethostname",
            "setns",
            "settimeofday",
            "swapoff",
            "swapon",
            "sysfs",
            "syslog",
            "tuxcall",
            "umount2",
            "unshare",
            "uprobe",
            "uselib",
            "userfaultfd",
            "ustat",
            "vhangup",
            "vserver",
        ]
    );
}

/// The signal that ends a forked child making probe `p` under `filter`,
/// if given (0 when it exits normally).
fn fatal_signal(filter: Option<&[sock_filter]>, p: &Probe) -> i32 {
    let a = p.args;
    dies_of(filter, p.name, &|| {
        // SAFETY: a raw system call whose arguments make it fail harmlessly.
        unsafe { libc::syscall(p.nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    })
}

/// The signal that ends a forked child running `call` under `filter`, if
/// given (0 when it exits normally). `call` must only make raw system
/// calls.
fn dies_of(filter: Option<&[sock_filter]>, name: &str, call: &dyn Fn()) -> i32 {
    let prog = filter.map(|f| libc::sock_fprog {
        len: f.len() as u16,
        filter: f.as_ptr() as *mut libc::sock_filter,
    });
    // SAFETY: the child only makes raw system calls and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: raw system calls on memory prepared before fork.
        unsafe {
            if let Some(prog) = &prog {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        0,
                        prog as *const libc::sock_fprog,
                    ) != 0
                {
                    libc::_exit(3);
                }
            }
            call();
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFSIGNALED(status) {
        libc::WTERMSIG(status)
    } else {
        assert_eq!(libc::WEXITSTATUS(status), 0, "{name}: child failed");
        0
    }
}

/// A profile in Docker's (and the runtime-spec's) form whose rules have
/// different actions, as Docker-generated profiles do: each call gets the
/// strongest action among the rules it matches, else the default.
const MIXED: &str = r#"{
  "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
  "syscalls": [
    {"names": ["write", "exit", "exit_group", "socket", "umount2", "setns"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
    {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42,
     "args": [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
    {"names": ["setns"], "action": "SCMP_ACT_KILL_PROCESS"},
    {"names": ["unshare"], "action": "SCMP_ACT_KILL"},
    {"names": ["acct"], "action": "SCMP_ACT_TRAP"}
  ]
}"#;

#[test]
fn mixed_action_profile_chains_one_filter_per_action() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.json");
    std::fs::write(&path, MIXED).unwrap();
    let bytes = compile_file(&path, 0).unwrap();
    check(
        &bytes,
        &[
            probe("mount", &[0, 0, 0, 0, 0], Want::Errno(libc::EACCES)),
            // The ERRNO rule beats the unconditional ALLOW of socket.
            probe(
                "socket",
                &[40, libc::SOCK_STREAM as u64, 0],
                Want::Errno(42),
            ),
            probe("socket", &[1, 0xffff, 0], Want::Allowed),
            probe("uname", &[BAD_PTR], Want::Errno(libc::ENOSYS)),
            probe("umount2", &[BAD_PTR, 0], Want::Allowed),
            probe("getppid", &[], Want::Logged),
            // Not listed: the default.
            probe("chdir", &[BAD_PTR], EPERM),
        ],
    );
    let filter = decode(&bytes);
    for (name, args, ret) in [
        // KILL_PROCESS beats setns's ALLOW.
        ("setns", [u64::MAX, 0], libc::SECCOMP_RET_KILL_PROCESS),
        ("unshare", [0, 0], libc::SECCOMP_RET_KILL_THREAD),
        ("acct", [BAD_PTR, 0], libc::SECCOMP_RET_TRAP),
    ] {
        let p = probe(name, &args, Want::Allowed);
        assert_eq!(interpret(&filter, p.nr as u32, &p.args), ret, "{name}");
        assert_eq!(fatal_signal(Some(&filter), &p), libc::SIGSYS, "{name}");
        // Without the filter the same call fails harmlessly.
        assert_eq!(fatal_signal(None, &p), 0, "{name}");
    }
}

#[test]
fn profile_files_refuse_what_they_cannot_express() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    std::fs::write(
        &path,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    )
    .unwrap();
    assert_eq!(
        compile_file(&path, 0).unwrap_err().to_string(),
        format!(
            "seccomp profile {}: [\"mount\"]: action SCMP_ACT_NOTIFY is not supported (ALLOW, ERRNO, KILL, KILL_THREAD, KILL_PROCESS, TRAP, LOG are)",
            path.display()
        )
    );
    std::fs::write(&path, r#"{"defaultAction": 7}"#).unwrap();
    assert_eq!(
        compile_file(&path, 0).unwrap_err().to_string(),
        format!("seccomp profile {} does not parse", path.display())
    );
    // Only ALLOW: one filter that allows everything.
    std::fs::write(&path, r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ALLOW"}]}"#).unwrap();
    let bytes = compile_file(&path, 0).unwrap();
    check(&bytes, &[probe("mount", &[0, 0, 0, 0, 0], Want::Allowed)]);
}

#[test]
fn json_policy_compiles_and_decides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.json");
    std::fs::write(
        &path,
        r#"{ "main": {
            "default_action": "allow",
            "filter_action": { "errno": 13 },
            "filter": [
                { "syscall": "mount" },
                { "syscall": "socket", "args": [
                    { "index": 0, "type": "dword", "op": "eq", "val": 40 } ] }
            ] } }"#,
    )
    .unwrap();
    let bytes = compile_json(&path).unwrap();
    check(
        &bytes,
        &[
            probe("mount", &[0, 0, 0, 0, 0], Want::Errno(libc::EACCES)),
            probe(
                "socket",
                &[40, libc::SOCK_STREAM as u64, 0],
                Want::Errno(libc::EACCES),
            ),
            probe("socket", &[1, 0xffff, 0], Want::Allowed),
            probe("umount2", &[BAD_PTR, 0], Want::Allowed),
        ],
    );
}

#[test]
fn json_policy_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"{ "main": { "default_action": "allow", "filter_action": "trap",
             "filter": [ { "syscall": "mountt" } ] } }"#,
    )
    .unwrap();
    assert_eq!(
        compile_json(&path).unwrap_err().to_string(),
        format!(
            "seccomp policy {}: Json Frontend error: Invalid syscall name: mountt for given arch: x86_64.",
            path.display()
        )
    );
    std::fs::write(
        &path,
        "{ \"main\": { \"default_action\": \"allow\",\n \"filter\": [] } }",
    )
    .unwrap();
    let err = compile_json(&path).unwrap_err().to_string();
    assert!(
        err.contains("missing field `match_action` at line 2 column 15"),
        "{err}"
    );
    std::fs::write(
        &path,
        r#"{ "b": { "default_action": "allow", "filter_action": "trap", "filter": [] },
             "a": { "default_action": "allow", "filter_action": "trap", "filter": [] } }"#,
    )
    .unwrap();
    assert_eq!(
        compile_json(&path).unwrap_err().to_string(),
        format!(
            "seccomp policy {} defines 2 filters (a, b): it must define exactly one",
            path.display()
        )
    );
    let missing = dir.path().join("missing.json");
    assert_eq!(
        compile_json(&missing).unwrap_err().to_string(),
        format!("read seccomp policy {}", missing.display())
    );
}

#[test]
fn stored_form_is_little_endian_sock_filter() {
    let prog = [
        sock_filter {
            code: 0x20,
            jt: 0,
            jf: 0,
            k: 4,
        },
        sock_filter {
            code: 0x15,
            jt: 1,
            jf: 2,
            k: 0xc000_003e,
        },
    ];
    assert_eq!(
        to_bytes(&prog),
        [0x20, 0, 0, 0, 4, 0, 0, 0, 0x15, 0, 1, 2, 0x3e, 0, 0, 0xc0]
    );
}

const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// i386 `getpid` (20) through `int 0x80`, which a 64-bit process may make:
/// the kernel runs it as a compat call, with `AUDIT_ARCH_I386`.
fn i386_getpid() {
    // SAFETY: `int 0x80` with eax = 20 is i386 getpid, which takes no
    // arguments and returns in eax; the kernel preserves the other
    // registers (older ones zeroed r8-r11, hence the clobbers) and no
    // memory is touched. Without IA32 emulation it raises SIGSEGV instead.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inout("eax") 20u32 => _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack),
        );
    }
}

/// The filters of every source: Docker's default, a Docker-form profile
/// that mixes actions, one that allows everything, and a seccompiler JSON
/// policy whose default is ALLOW (a denylist, where an x32 number that
/// got past the arch check would be allowed).
fn every_kind_of_filter(dir: &Path) -> Vec<(&'static str, Vec<sock_filter>)> {
    let mixed = dir.join("mixed.json");
    std::fs::write(&mixed, MIXED).unwrap();
    let allow_all = dir.join("allow.json");
    std::fs::write(&allow_all, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    let json = dir.join("policy.json");
    std::fs::write(
        &json,
        r#"{ "main": { "default_action": "allow", "filter_action": { "errno": 13 },
             "filter": [ { "syscall": "mount" } ] } }"#,
    )
    .unwrap();
    vec![
        (
            "docker default",
            decode(&docker_default(mask(DOCKER_DEFAULT).unwrap()).unwrap()),
        ),
        ("mixed profile", decode(&compile_file(&mixed, 0).unwrap())),
        (
            "allow-all profile",
            decode(&compile_file(&allow_all, 0).unwrap()),
        ),
        ("json policy", decode(&compile_file(&json, 0).unwrap())),
    ]
}

#[test]
fn every_filter_begins_with_the_abi_guard() {
    let dir = tempfile::tempdir().unwrap();
    for (name, filter) in every_kind_of_filter(dir.path()) {
        assert_eq!(filter[..ABI_GUARD.len()], ABI_GUARD, "{name}");
        // The program proper still starts with seccompiler's arch check,
        // so nothing was lost or shifted.
        assert_eq!(
            filter[ABI_GUARD.len()..ABI_GUARD.len() + 2]
                .iter()
                .map(|i| (i.code, i.k))
                .collect::<Vec<_>>(),
            [(0x20, 4), (0x15, AUDIT_ARCH_X86_64)],
            "{name}"
        );
    }
}

#[test]
fn i386_and_x32_calls_kill_the_process_under_every_filter() {
    let dir = tempfile::tempdir().unwrap();
    let kill = libc::SECCOMP_RET_KILL_PROCESS;
    let getpid = libc::SYS_getpid as u32;
    for (name, filter) in every_kind_of_filter(dir.path()) {
        for nr in [getpid, 0, 165 /* mount */, 512, 1000] {
            let x32 = X32_SYSCALL_BIT | nr;
            assert_eq!(interpret(&filter, x32, &[0; 6]), kill, "{name}: {x32:#x}");
            assert_eq!(
                interpret_as(&filter, AUDIT_ARCH_I386, nr, &[0; 6]),
                kill,
                "{name}: i386 {nr}"
            );
        }
        // Every number with the bit set, not only the x32 table's.
        for nr in [X32_SYSCALL_BIT, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe] {
            assert_eq!(interpret(&filter, nr, &[0; 6]), kill, "{name}: {nr:#x}");
        }
        // -1 (a call a tracer skipped) and x86_64 numbers go on to the
        // program proper.
        assert_ne!(interpret(&filter, u32::MAX, &[0; 6]), kill, "{name}: -1");
        assert_ne!(interpret(&filter, getpid, &[0; 6]), kill, "{name}");

        // The kernel agrees: x32 getpid dies of SIGSYS under the filter,
        // even on a kernel without CONFIG_X86_X32_ABI (where it would
        // fail with ENOSYS), and is harmless without it.
        let p = Probe {
            name: "x32 getpid",
            nr: (X32_SYSCALL_BIT | getpid) as i64,
            args: [0; 6],
            want: Want::Allowed,
        };
        assert_eq!(fatal_signal(Some(&filter), &p), libc::SIGSYS, "{name}");
        assert_eq!(fatal_signal(None, &p), 0, "{name}");
    }
}

#[test]
fn i386_int_0x80_kills_the_process_under_the_docker_filter() {
    let filter = decode(&docker_default(mask(DOCKER_DEFAULT).unwrap()).unwrap());
    let under = dies_of(Some(&filter), "int 0x80", &i386_getpid);
    match dies_of(None, "int 0x80", &i386_getpid) {
        0 => assert_eq!(under, libc::SIGSYS),
        // A kernel without IA32 emulation (or booted with
        // ia32_emulation=0) refuses the call before seccomp sees it.
        signal => {
            eprintln!("int 0x80 dies of signal {signal} on this kernel without a filter: only the interpreter checks i386");
            assert_eq!(under, signal);
        }
    }
}

#[test]
fn a_skipped_call_gets_the_default_action() {
    // -1 is what a ptrace tracer sets to skip a call: Docker's default
    // refuses it with EPERM like any unlisted number (ENOSYS unfiltered).
    let bytes = docker_default(mask(DOCKER_DEFAULT).unwrap()).unwrap();
    let skipped = Probe {
        name: "syscall -1",
        nr: -1,
        args: [0; 6],
        want: EPERM,
    };
    check(&bytes, &[skipped]);
}

#[test]
fn chains_longer_than_the_kernel_takes_are_refused() {
    let long = vec![ABI_GUARD[5].clone(); BPF_MAXINSNS - ABI_GUARD.len() + 1];
    assert!(matches!(
        stored(&long),
        Err(seccompiler::BackendError::FilterTooLarge(4097))
    ));
    assert_eq!(stored(&long[1..]).unwrap().len(), BPF_MAXINSNS * 8);
}
