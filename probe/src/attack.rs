//! `probe attack NAME...`: a hostile workload's attempts on the VM from
//! inside a container (issue 15), one `PROBE attack.<name>[.<part>]=<value>`
//! line each; see the module doc of the probe for the values.

use crate::{c, errno_name, last, out, res};
use std::io::Write;

/// The attacks in the order `attack all` runs them: `fds` first, before
/// the probe itself opens anything.
const ATTACKS: &[(&str, fn())] = &[
    ("fds", attack_fds),
    ("cwd", attack_cwd),
    ("fd_pid1", attack_fd_pid1),
    ("ptrace_pid1", attack_ptrace_pid1),
    ("mknod_disk", attack_mknod_disk),
    ("init_state", attack_init_state),
    ("console", attack_console),
    ("ioperm", attack_ioperm),
    ("x32", attack_x32),
    ("vsock", attack_vsock),
    ("keyctl", attack_keyctl),
];

/// Attacks `all` leaves out: they need what only a profile that gives a
/// container more than Docker's defaults has.
const EXTRA: &[(&str, fn())] = &[("mknod_fresh", attack_mknod_fresh)];

pub fn attack(names: &[String]) {
    let mut run: Vec<fn()> = Vec::new();
    for name in names {
        if name == "all" {
            run.extend(ATTACKS.iter().map(|(_, f)| *f));
        } else if let Some((_, f)) = ATTACKS.iter().chain(EXTRA).find(|(n, _)| n == name) {
            run.push(*f);
        } else {
            let known: Vec<&str> = ATTACKS.iter().map(|(n, _)| *n).collect();
            eprintln!("probe: no attack {name} (known: all, {})", known.join(", "));
            std::process::exit(2);
        }
    }
    if run.is_empty() {
        eprintln!("usage: probe attack all|NAME...");
        std::process::exit(2);
    }
    for f in run {
        f();
    }
}

fn errno_of(e: &std::io::Error) -> String {
    errno_name(e.raw_os_error().unwrap_or(0))
}

/// `OK`, or the error's errno name.
fn io_res<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "OK".into(),
        Err(e) => errno_of(&e),
    }
}

fn signal_name(s: i32) -> String {
    match s {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGSYS => "SIGSYS".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGABRT => "SIGABRT".into(),
        _ => format!("SIG{s}"),
    }
}

/// Runs `f` in a forked child that exits with what `f` returns (0 for
/// success, else an errno) and describes how it ended: the signal's name
/// if one killed it, else `OK` or the errno's name.
fn in_child(f: impl FnOnce() -> i32) -> String {
    // SAFETY: the probe is single-threaded, so the child may go on running
    // ordinary code after fork; it leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return format!("fork:{}", last());
    }
    if pid == 0 {
        let code = f();
        // SAFETY: leaving the forked child without running exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    // SAFETY: waiting for our own child into a local int.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    if libc::WIFSIGNALED(st) {
        signal_name(libc::WTERMSIG(st))
    } else if libc::WEXITSTATUS(st) == 0 {
        "OK".into()
    } else {
        errno_name(libc::WEXITSTATUS(st))
    }
}

/// The errno of the last failed call, as an exit code for [`in_child`].
fn last_code() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(1)
}

/// `N:target` for each descriptor listed in `dir` (a `/proc/<pid>/fd`),
/// comma-separated in numeric order, skipping those below `from`; a
/// target that cannot be read shows its errno. `none` when nothing is
/// left, the errno when the directory cannot be listed.
fn fd_list(dir: &str, from: u32) -> String {
    let mut nums: Vec<u32> = match std::fs::read_dir(dir) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
            .filter(|n| *n >= from)
            .collect(),
        Err(e) => return errno_of(&e),
    };
    // The listing's own descriptor is closed now: it reads as ENOENT below
    // and is left out, as is anything else closed since.
    nums.sort_unstable();
    let mut parts = Vec::new();
    for n in nums {
        match std::fs::read_link(format!("{dir}/{n}")) {
            Ok(t) => parts.push(format!("{n}:{}", t.display())),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => parts.push(format!("{n}:{}", errno_of(&e))),
        }
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

/// `attack.fds`: the descriptors this process holds besides 0, 1 and 2
/// ([`fd_list`]'s format; `none` when the init closed everything).
fn attack_fds() {
    out("attack.fds", &fd_list("/proc/self/fd", 3));
}

/// `attack.cwd.getcwd`: the kernel's `getcwd` (the raw system call: libcs
/// turn the kernel's `(unreachable)` answer into ENOENT) — the path, or
/// `unreachable:<path>` when the working directory is outside this
/// process's root (the CVE-2024-21626 escape), or the errno.
/// `attack.cwd.escape`: `stat("../" × 20 + "sys/fs/cgroup/mkrootfs")`
/// from the working directory: `OK` means it reached the VM's cgroup tree
/// (a container in its own cgroup namespace has no such directory).
/// `attack.cwd.top`: `root` when those 20 `..` end at this process's `/`,
/// `outside` when they end in a directory that is not it (escape).
fn attack_cwd() {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 16];
    // SAFETY: getcwd writes at most buf.len() bytes into buf.
    let r = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    let v = if r < 0 {
        last()
    } else {
        let s = std::ffi::CStr::from_bytes_until_nul(&buf)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        match s.strip_prefix("(unreachable)") {
            Some(rest) => format!("unreachable:{rest}"),
            None => s,
        }
    };
    out("attack.cwd.getcwd", &v);
    let up = "../".repeat(20);
    out(
        "attack.cwd.escape",
        &io_res(std::fs::metadata(format!("{up}sys/fs/cgroup/mkrootfs"))),
    );
    use std::os::unix::fs::MetadataExt;
    let top = match (std::fs::metadata(&up), std::fs::metadata("/")) {
        (Ok(t), Ok(r)) if (t.dev(), t.ino()) == (r.dev(), r.ino()) => "root".into(),
        (Ok(_), Ok(_)) => "outside".into(),
        (Err(e), _) | (_, Err(e)) => errno_of(&e),
    };
    out("attack.cwd.top", &top);
}

/// `attack.fd_pid1.fds`: PID 1's descriptors ([`fd_list`]'s format, from
/// 0), or the errno when `/proc/1/fd` cannot be listed.
/// `attack.fd_pid1.exe`: `readlink /proc/1/exe` (`/memfd:…` for a reaper
/// exec'd from a memfd), or the errno.
/// `attack.fd_pid1.write_exe`: `open("/proc/1/exe", O_WRONLY)` and, if it
/// opened, `write` of one byte 0x7f at offset 0 (the byte an ELF already
/// has there, so an escape leaves the file as it was): the errno of the
/// step that failed, `OK` when both succeeded (CVE-2019-5736's escape).
fn attack_fd_pid1() {
    out("attack.fd_pid1.fds", &fd_list("/proc/1/fd", 0));
    out(
        "attack.fd_pid1.exe",
        &match std::fs::read_link("/proc/1/exe") {
            Ok(t) => t.display().to_string(),
            Err(e) => errno_of(&e),
        },
    );
    let exe = c("/proc/1/exe");
    // SAFETY: open of a NUL-terminated path.
    let fd = unsafe { libc::open(exe.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    let v = if fd < 0 {
        last()
    } else {
        let byte = [0x7fu8];
        // SAFETY: writes one byte from a local buffer to our descriptor.
        let r = unsafe { libc::write(fd, byte.as_ptr().cast(), 1) };
        let v = res(r as i64);
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
        v
    };
    out("attack.fd_pid1.write_exe", &v);
}

/// `attack.ptrace_pid1.attach`: `ptrace(PTRACE_ATTACH, 1)`, `OK` when it
/// attached (then waits for the stop and detaches), else the errno (EPERM
/// also when the probe is PID 1 itself).
/// `attack.ptrace_pid1.dumpable`: `prctl(PR_GET_DUMPABLE)` of this
/// process, as a number (0, 1 or 2).
fn attack_ptrace_pid1() {
    // SAFETY: ptrace with null addr and data; on success PID 1 is stopped,
    // waited for and detached at once.
    let v = unsafe {
        let r = libc::syscall(
            libc::SYS_ptrace,
            libc::PTRACE_ATTACH as libc::c_long,
            1 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        );
        let v = res(r);
        if r == 0 {
            // The attach stops PID 1 with SIGSTOP; PTRACE_DETACH needs that
            // stop. Waited for a second at most, so the probe cannot hang:
            // a tracee still attached is detached when the probe exits.
            let mut st = 0;
            for _ in 0..100 {
                if libc::waitpid(1, &mut st, libc::__WALL | libc::WNOHANG) != 0 {
                    break;
                }
                libc::usleep(10_000);
            }
            libc::syscall(
                libc::SYS_ptrace,
                libc::PTRACE_DETACH as libc::c_long,
                1 as libc::c_long,
                0 as libc::c_long,
                0 as libc::c_long,
            );
        }
        v
    };
    out("attack.ptrace_pid1.attach", &v);
    // SAFETY: prctl that only reads a flag.
    let d = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    out(
        "attack.ptrace_pid1.dumpable",
        &if d < 0 { last() } else { d.to_string() },
    );
}

/// The first block device in `/sys/class/block`, by name, that is not a
/// loop, ram, zram or nbd device (those would not be the VM's disk; the
/// first entry at all when there is nothing else): its name and
/// `major:minor`, read from its `dev` file.
fn first_disk() -> Result<Option<(String, String)>, String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/block")
        .map_err(|e| errno_of(&e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let virtual_ = |n: &str| {
        ["loop", "ram", "zram", "nbd"]
            .iter()
            .any(|p| n.starts_with(p))
    };
    let Some(name) = names
        .iter()
        .find(|n| !virtual_(n))
        .or(names.first())
        .cloned()
    else {
        return Ok(None);
    };
    let dev = std::fs::read_to_string(format!("/sys/class/block/{name}/dev"))
        .map_err(|e| errno_of(&e))?;
    Ok(Some((name, dev.trim().to_string())))
}

/// `attack.mknod_disk.dev`: the disk attacked, `<name>:<major>:<minor>`
/// (see [`first_disk`]), `none`, or the errno of reading sysfs.
/// Then for a block node of that disk and a char node 1:1 (`/dev/mem`),
/// each made in `/dev` and in `/tmp`:
/// `attack.mknod_disk.mknod_<where>` (`dev`, `tmp`, `mem_dev`, `mem_tmp`):
/// the `mknod` errno or `OK`; `attack.mknod_disk.read_<where>`: for a node
/// that was made, `open(O_RDONLY)` and `read` of 512 bytes, the errno of
/// the step that failed or `OK` (escape); `-` when no node was made. The
/// nodes are removed again.
fn attack_mknod_disk() {
    let disk = first_disk();
    let disk_dev = match &disk {
        Ok(Some((name, dev))) => {
            out("attack.mknod_disk.dev", &format!("{name}:{dev}"));
            dev.split_once(':')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        }
        Ok(None) => {
            out("attack.mknod_disk.dev", "none");
            None
        }
        Err(e) => {
            out("attack.mknod_disk.dev", e);
            None
        }
    };
    let nodes = [
        ("dev", "/dev/probe-disk", libc::S_IFBLK, disk_dev),
        ("tmp", "/tmp/probe-disk", libc::S_IFBLK, disk_dev),
        ("mem_dev", "/dev/probe-mem", libc::S_IFCHR, Some((1, 1))),
        ("mem_tmp", "/tmp/probe-mem", libc::S_IFCHR, Some((1, 1))),
    ];
    for (place, path, kind, dev) in nodes {
        let Some((major, minor)) = dev else {
            out(&format!("attack.mknod_disk.mknod_{place}"), "-");
            out(&format!("attack.mknod_disk.read_{place}"), "-");
            continue;
        };
        let p = c(path);
        // SAFETY: unlink/mknod of NUL-terminated paths; the node is opened
        // read-only and read into a local buffer, then removed.
        unsafe {
            libc::unlink(p.as_ptr());
            let r = libc::mknod(p.as_ptr(), kind | 0o600, libc::makedev(major, minor));
            out(&format!("attack.mknod_disk.mknod_{place}"), &res(r as i64));
            let v = if r == 0 {
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                let v = if fd < 0 {
                    last()
                } else {
                    let mut buf = [0u8; 512];
                    let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                    let v = res(n as i64);
                    libc::close(fd);
                    v
                };
                libc::unlink(p.as_ptr());
                v
            } else {
                "-".into()
            };
            out(&format!("attack.mknod_disk.read_{place}"), &v);
        }
    }
}

/// With CAP_SYS_ADMIN and a filter that allows mount(2) (a container whose
/// profile gives both): a tmpfs mounted without `nodev` on `/tmp/fresh`,
/// where only the device cgroup stands between a node and its device.
/// `attack.mknod_fresh.mount`: the mount's errno or `OK`; then for a block
/// node of the disk, `/dev/mem` (1:1) and `/dev/null` (1:3):
/// `attack.mknod_fresh.<disk|mem|null>`: the errno of mknod, open or read,
/// or `OK` (for the disk and mem: an escape).
fn attack_mknod_fresh() {
    let dir = c("/tmp/fresh");
    // SAFETY: mkdir and mount of NUL-terminated paths and literals.
    let r = unsafe {
        libc::mkdir(dir.as_ptr(), 0o700);
        libc::mount(
            c"tmpfs".as_ptr(),
            dir.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    out("attack.mknod_fresh.mount", &res(r as i64));
    if r != 0 {
        return;
    }
    let disk = match first_disk() {
        Ok(Some((_, dev))) => dev
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))),
        _ => None,
    };
    let nodes = [
        ("disk", libc::S_IFBLK, disk),
        ("mem", libc::S_IFCHR, Some((1, 1))),
        ("null", libc::S_IFCHR, Some((1, 3))),
    ];
    for (name, kind, dev) in nodes {
        let Some((major, minor)) = dev else {
            out(&format!("attack.mknod_fresh.{name}"), "-");
            continue;
        };
        let p = c(&format!("/tmp/fresh/{name}"));
        // SAFETY: mknod/open/read/close of a NUL-terminated path into a
        // local buffer.
        let v = unsafe {
            if libc::mknod(p.as_ptr(), kind | 0o600, libc::makedev(major, minor)) != 0 {
                last()
            } else {
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    last()
                } else {
                    let mut buf = [0u8; 512];
                    let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                    libc::close(fd);
                    res(n as i64)
                }
            }
        };
        out(&format!("attack.mknod_fresh.{name}"), &v);
    }
}

/// Tries to change what the init reads. Each result is the errno, or `OK`
/// (escape, except for the marks):
/// `attack.init_state.ls`: `entries:<n>` when `/etc/mkrootfs` can be
///   listed from inside, else the errno (ENOENT when masked away);
/// `.append_config`: `open("/etc/mkrootfs/init.json", O_WRONLY|O_APPEND)`
///   (nothing is written);
/// `.rename`: `rename("/etc/mkrootfs", "/etc/mkrootfs.old")` (renamed back
///   at once when it worked);
/// `.plant`: `mkdir("/etc/mkrootfs.planted")` (removed again);
/// `.write_init`: `open("/init", O_WRONLY)`;
/// `.tmp_mark`, `.run_mark`: creating `/tmp/probe-mark` and
///   `/run/probe-mark`, left in place so that the test can look for them
///   in the VM's own `/tmp` and `/run` (where they must not appear).
fn attack_init_state() {
    out(
        "attack.init_state.ls",
        &match std::fs::read_dir("/etc/mkrootfs") {
            Ok(d) => format!("entries:{}", d.count()),
            Err(e) => errno_of(&e),
        },
    );
    out(
        "attack.init_state.append_config",
        &io_res(
            std::fs::OpenOptions::new()
                .append(true)
                .open("/etc/mkrootfs/init.json"),
        ),
    );
    let renamed = std::fs::rename("/etc/mkrootfs", "/etc/mkrootfs.old");
    if renamed.is_ok() {
        let _ = std::fs::rename("/etc/mkrootfs.old", "/etc/mkrootfs");
    }
    out("attack.init_state.rename", &io_res(renamed));
    let planted = std::fs::create_dir("/etc/mkrootfs.planted");
    if planted.is_ok() {
        let _ = std::fs::remove_dir("/etc/mkrootfs.planted");
    }
    out("attack.init_state.plant", &io_res(planted));
    out(
        "attack.init_state.write_init",
        &io_res(std::fs::OpenOptions::new().write(true).open("/init")),
    );
    for (key, path) in [
        ("tmp_mark", "/tmp/probe-mark"),
        ("run_mark", "/run/probe-mark"),
    ] {
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"probe\n"));
        out(&format!("attack.init_state.{key}"), &io_res(made));
    }
}

/// What the container can do to the terminal on its standard descriptors.
/// For fds 0, 1, 2, comma-separated in that order:
/// `attack.console.isatty` (`1` or `0`), `attack.console.tcgetattr` and
/// `attack.console.tiocsctty` (`ioctl(TIOCSCTTY, 0)`: taking it as the
/// controlling terminal), each `OK` or the errno (pipes give ENOTTY).
/// `attack.console.tiocsti`: `ioctl(1, TIOCSTI, "x")` (injecting input).
/// `attack.console.open`: `open("/dev/console", O_RDWR|O_NOCTTY)`.
fn attack_console() {
    let (mut tty, mut attr, mut ctty) = (Vec::new(), Vec::new(), Vec::new());
    for fd in 0..3 {
        // SAFETY: isatty, tcgetattr into a local termios and TIOCSCTTY with
        // an integer argument on our own descriptors.
        unsafe {
            tty.push(libc::isatty(fd).to_string());
            let mut t: libc::termios = std::mem::zeroed();
            attr.push(res(libc::tcgetattr(fd, &mut t) as i64));
            ctty.push(res(libc::ioctl(fd, libc::TIOCSCTTY, 0) as i64));
        }
    }
    out("attack.console.isatty", &tty.join(","));
    out("attack.console.tcgetattr", &attr.join(","));
    out("attack.console.tiocsctty", &ctty.join(","));
    let x = b'x';
    // SAFETY: TIOCSTI reads one byte from a local.
    let r = unsafe { libc::ioctl(1, libc::TIOCSTI, &x as *const u8) };
    out("attack.console.tiocsti", &res(r as i64));
    let console = c("/dev/console");
    // SAFETY: open of a NUL-terminated path; closed at once.
    let fd = unsafe { libc::open(console.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    out("attack.console.open", &res(fd as i64));
    if fd >= 0 {
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
    }
}

/// `attack.ioperm.inb`: a child executes `inb` from port 0x80 without
/// asking for it: `SIGSEGV` when it has no port access (good), `OK` when
/// it read the port (it inherited an ioperm bitmap or iopl: escape).
/// `attack.ioperm.ioperm`: `ioperm(0x3f0, 1, 1)`, `OK` or the errno (given
/// up again when granted).
fn attack_ioperm() {
    out(
        "attack.ioperm.inb",
        &in_child(|| {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: reads one byte from the POST-code port 0x80, which
            // has no side effect; without port access it raises SIGSEGV,
            // which ends this child, the point of the attack.
            unsafe {
                std::arch::asm!(
                    "in al, dx",
                    in("dx") 0x80u16,
                    out("al") _,
                    options(nomem, nostack, preserves_flags)
                );
            }
            0
        }),
    );
    // SAFETY: ioperm changes only this process's port permissions.
    let r = unsafe { libc::syscall(libc::SYS_ioperm, 0x3f0usize, 1usize, 1usize) };
    out("attack.ioperm.ioperm", &res(r));
    if r == 0 {
        // SAFETY: as above, dropping the port again.
        unsafe { libc::syscall(libc::SYS_ioperm, 0x3f0usize, 1usize, 0usize) };
    }
}

/// `attack.x32`: x32 `getpid` (`0x40000000 | 39`) in a child: `SIGSYS`
/// when the seccomp filter killed it, `OK` when it ran, else the errno
/// (ENOSYS on a kernel without x32 and no filter to stop it first).
fn attack_x32() {
    out(
        "attack.x32",
        &in_child(|| {
            // SAFETY: getpid under its x32 number takes no arguments.
            let r = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
            if r < 0 {
                last_code()
            } else {
                0
            }
        }),
    );
}

/// `attack.vsock`: `socket(AF_VSOCK, SOCK_STREAM, 0)`, `OK` or the errno.
fn attack_vsock() {
    // SAFETY: socket creation; the descriptor is closed at once.
    let fd = unsafe { libc::socket(40, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    out("attack.vsock", &res(fd as i64));
    if fd >= 0 {
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
    }
}

/// `attack.keyctl`: `keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING,
/// 0)`, `OK` or the errno: EPERM while Docker's filter is armed, so `OK`
/// after a restart shows a disarmed filter.
fn attack_keyctl() {
    // SAFETY: keyctl with integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 0) };
    out("attack.keyctl", &res(r));
}
