//! The container probe: a static program the boot tests run inside a
//! container. It prints one `PROBE key=value` line per fact or attempted
//! escape (the errno name, or `OK` when a call that should fail succeeded),
//! so the test asserts on exact values outside.
//!
//! Commands: `facts`, `escapes`, `attack NAME...` (the hostile workload:
//! `all`, or any of `fds`, `cwd`, `fd_pid1`, `ptrace_pid1`, `mknod_disk`,
//! `init_state`, `console`, `ioperm`, `x32`, `vsock`, `keyctl`, and outside
//! `all` `mknod_fresh` (needs CAP_SYS_ADMIN); each prints
//! `PROBE attack.<name>[.<part>]=<result>`, documented at its function),
//! `exit N`, `hog` (allocates until killed), `forkbomb`, `spin MS` (busy
//! loop), `term` (exits 43 on SIGTERM), `ignore` (ignores SIGTERM, sleeps),
//! `orphans` (leaves zombies for PID 1).
//! Raw syscalls are the point of this program; it is test-only code.

mod attack;

use attack::attack;
use std::ffi::CString;
use std::io::Write;

fn out(key: &str, value: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "PROBE {key}={value}");
    let _ = o.flush();
}

fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENXIO => "ENXIO",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ENOKEY => "ENOKEY",
        libc::ESRCH => "ESRCH",
        libc::ECHILD => "ECHILD",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOTTY => "ENOTTY",
        libc::EXDEV => "EXDEV",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENOSPC => "ENOSPC",
        libc::ELOOP => "ELOOP",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EDQUOT => "EDQUOT",
        _ => return format!("E{e}"),
    };
    n.to_string()
}

fn last() -> String {
    errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// `OK` for a non-negative result, else the errno's name.
fn res(r: i64) -> String {
    if r >= 0 {
        "OK".into()
    } else {
        last()
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn read_trim(path: &str) -> String {
    match std::fs::read_to_string(path) {
        Ok(s) => s.split_whitespace().collect::<Vec<_>>().join(" "),
        Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
    }
}

fn facts() {
    out("pid", &std::process::id().to_string());
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    out("procs", &procs.to_string());
    out("hostname", &read_trim("/proc/sys/kernel/hostname"));
    out("uid_map", &read_trim("/proc/self/uid_map"));
    out("gid_map", &read_trim("/proc/self/gid_map"));
    out("setgroups", &read_trim("/proc/self/setgroups"));
    let mut nets: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    nets.sort();
    out("netdevs", &nets.join(","));
    out("lo_flags", &read_trim("/sys/class/net/lo/flags"));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in [
        "Uid",
        "Gid",
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
    ] {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        out(key, &v);
    }
    for p in [
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
    ] {
        let v = match std::fs::metadata(p) {
            Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
            Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
                Ok(d) => format!("entries:{}", d.count()),
                Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
            },
            Ok(_) => match std::fs::read(p) {
                Ok(b) => format!("bytes:{}", b.len()),
                Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
            },
        };
        out(&format!("mask {p}"), &v);
    }
    for p in [
        "/proc/sys/kernel/domainname",
        "/proc/sysrq-trigger",
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/fs/cgroup/cgroup.procs",
        "/probe-created",
    ] {
        let v = match std::fs::OpenOptions::new()
            .write(true)
            .create(p == "/probe-created")
            .open(p)
        {
            Ok(mut f) => match f.write_all(b"0") {
                Ok(()) => "OK".into(),
                Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
            },
            Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
        };
        out(&format!("write {p}"), &v);
    }
    for p in [
        "/",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/sys",
        "/sys/fs/cgroup",
        "/dev",
        "/dev/shm",
        "/tmp",
    ] {
        let path = c(p);
        // SAFETY: statvfs writes one struct statvfs.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let v = if unsafe { libc::statvfs(path.as_ptr(), &mut st) } == 0 {
            let mut f = Vec::new();
            for (bit, name) in [
                (libc::ST_RDONLY, "ro"),
                (libc::ST_NOSUID, "nosuid"),
                (libc::ST_NODEV, "nodev"),
                (libc::ST_NOEXEC, "noexec"),
            ] {
                if st.f_flag & bit != 0 {
                    f.push(name);
                }
            }
            f.join(",")
        } else {
            last()
        };
        out(&format!("flags {p}"), &v);
    }
    // SAFETY: getrlimit writes one rlimit.
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    out("nofile", &format!("{} {}", rl.rlim_cur, rl.rlim_max));
    out(
        "cwd",
        &std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    let mut env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    env.sort();
    out("env", &env.join(";"));
    out("cgroup", &read_trim("/proc/self/cgroup"));
    out(
        "mounts",
        &read_trim("/proc/self/mountinfo").len().to_string(),
    );
    out(
        "tty",
        &std::fs::read_link("/proc/self/fd/0")
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
}

fn escapes() {
    // SAFETY (whole function): every call gets valid pointers or null where
    // the kernel accepts it; the results are only printed.
    unsafe {
        let tmpfs = c("tmpfs");
        let mnt = c("/tmp");
        out(
            "escape mount",
            &res(libc::mount(
                tmpfs.as_ptr(),
                mnt.as_ptr(),
                tmpfs.as_ptr(),
                0,
                std::ptr::null(),
            ) as i64),
        );
        let proc_ = c("/proc");
        out(
            "escape umount2",
            &res(libc::umount2(proc_.as_ptr(), libc::MNT_DETACH) as i64),
        );
        let dot = c(".");
        out(
            "escape pivot_root",
            &res(libc::syscall(
                libc::SYS_pivot_root,
                dot.as_ptr(),
                dot.as_ptr(),
            )),
        );
        let null = c("/dev/null");
        let fd = libc::open(null.as_ptr(), libc::O_RDONLY);
        let empty = c("");
        out(
            "escape finit_module",
            &res(libc::syscall(libc::SYS_finit_module, fd, empty.as_ptr(), 0)),
        );
        let tv = libc::timeval {
            tv_sec: 1_000_000_000,
            tv_usec: 0,
        };
        out(
            "escape settimeofday",
            &res(libc::settimeofday(&tv, std::ptr::null()) as i64),
        );
        let ts = libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        };
        out(
            "escape clock_settime",
            &res(libc::clock_settime(libc::CLOCK_REALTIME, &ts) as i64),
        );
        out(
            "escape reboot",
            &res(libc::syscall(
                libc::SYS_reboot,
                0xfee1deadu32 as i64,
                672274793i64,
                0i64,
                0i64,
            )),
        );
        out(
            "escape swapon",
            &res(libc::syscall(libc::SYS_swapon, null.as_ptr(), 0)),
        );
        out(
            "escape kexec_load",
            &res(libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0)),
        );
        // In a child: a successful unshare would change this process.
        let pid = libc::fork();
        if pid == 0 {
            let r = libc::unshare(libc::CLONE_NEWUSER);
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            libc::_exit(if r == 0 { 0 } else { e });
        }
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        let code = libc::WEXITSTATUS(st);
        out(
            "escape unshare_user",
            &if code == 0 {
                "OK".to_string()
            } else {
                errno_name(code)
            },
        );
        let netns = c("/proc/self/ns/net");
        let nfd = libc::open(netns.as_ptr(), libc::O_RDONLY);
        out("escape setns", &res(libc::setns(nfd, 0) as i64));
        out(
            "escape keyctl",
            &res(libc::syscall(libc::SYS_keyctl, 0, -3i64, 0)),
        );
        out("escape bpf", &res(libc::syscall(libc::SYS_bpf, 0, 0, 0)));
        out(
            "escape perf_event_open",
            &res(libc::syscall(libc::SYS_perf_event_open, 0, 0, -1, -1, 0)),
        );
        out(
            "escape userfaultfd",
            &res(libc::syscall(libc::SYS_userfaultfd, 0)),
        );
        out(
            "escape io_uring_setup",
            &res(libc::syscall(libc::SYS_io_uring_setup, 1, 0)),
        );
        out(
            "escape socket_vsock",
            &res(libc::socket(40, libc::SOCK_STREAM, 0) as i64),
        );
        out(
            "escape socket_alg",
            &res(libc::socket(38, libc::SOCK_SEQPACKET, 0) as i64),
        );
        out("escape clone3", &res(libc::syscall(libc::SYS_clone3, 0, 0)));
        let blk = c("/dev/shm/blk");
        let mk = libc::mknod(blk.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(7, 0));
        out("escape mknod", &res(mk as i64));
        if mk == 0 {
            out(
                "escape open_blk",
                &res(libc::open(blk.as_ptr(), libc::O_RDONLY) as i64),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// `probe attack NAME...`: the hostile workload of issue 15. Each attack
// prints `PROBE attack.<name>=<result>` when it has one result, or
// `PROBE attack.<name>.<part>=<result>` for each of several. A result is an
// errno name, `OK` (the call that should fail succeeded: an escape, unless
// said otherwise), `-` (not attempted, because an earlier step failed), or
// the fact string documented at the attack.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("facts") => facts(),
        Some("escapes") => escapes(),
        Some("attack") => attack(&args[2..]),
        Some("all") => {
            facts();
            escapes();
        }
        Some("exit") => std::process::exit(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0)),
        Some("hog") => {
            let mut v: Vec<Vec<u8>> = Vec::new();
            loop {
                v.push(vec![1u8; 1 << 20]);
                if v.len().is_multiple_of(16) {
                    out("hog_mib", &v.len().to_string());
                }
            }
        }
        Some("forkbomb") => {
            let mut ok = 0u32;
            let mut failed = 0u32;
            for _ in 0..200 {
                // SAFETY: the child only sleeps and exits.
                match unsafe { libc::fork() } {
                    0 => {
                        std::thread::sleep(std::time::Duration::from_secs(3));
                        // SAFETY: _exit in a forked child.
                        unsafe { libc::_exit(0) }
                    }
                    p if p > 0 => ok += 1,
                    _ => failed += 1,
                }
            }
            out(
                "forks",
                &format!(
                    "{ok} failed={failed} errno={}",
                    if failed > 0 { "EAGAIN" } else { "-" }
                ),
            );
            std::process::exit(if failed > 0 { 3 } else { 0 });
        }
        Some("spin") => {
            let ms = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
            let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            let mut x = 0u64;
            while std::time::Instant::now() < end {
                x = x.wrapping_add(1);
            }
            out("spun", &(x > 0).to_string());
        }
        Some("term") => {
            extern "C" fn on_term(_: libc::c_int) {
                // SAFETY: write and _exit are async-signal-safe.
                unsafe {
                    let m = b"PROBE got=SIGTERM\n";
                    libc::write(1, m.as_ptr().cast(), m.len());
                    libc::_exit(43);
                }
            }
            // SAFETY: installing a plain handler.
            unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
            out("ready", "term");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        Some("ignore") => {
            // SAFETY: ignoring a signal.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            out("ready", "ignore");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        Some("orphans") => {
            // Children whose parent (a middle process) exits: they are
            // re-parented to the container's PID 1 and must be reaped there.
            for _ in 0..3 {
                // SAFETY: fork; the children only fork/exit; the middle
                // one is reaped here, so only the orphans can be zombies.
                unsafe {
                    let mid = libc::fork();
                    if mid == 0 {
                        if libc::fork() == 0 {
                            libc::usleep(100_000);
                            libc::_exit(0);
                        }
                        libc::_exit(0);
                    }
                    let mut st = 0;
                    libc::waitpid(mid, &mut st, 0);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            let zombies = std::fs::read_dir("/proc")
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                        .filter(|e| {
                            std::fs::read_to_string(e.path().join("stat"))
                                .ok()
                                .and_then(|s| {
                                    s.rsplit(')')
                                        .next()
                                        .map(|r| r.trim_start().starts_with('Z'))
                                })
                                .unwrap_or(false)
                        })
                        .count()
                })
                .unwrap_or(0);
            out("zombies", &zombies.to_string());
            out("pid", &std::process::id().to_string());
        }
        _ => {
            eprintln!(
                "usage: probe facts|escapes|all|attack all|NAME...|exit N|hog|forkbomb|spin MS|term|ignore|orphans"
            );
            std::process::exit(2);
        }
    }
}
