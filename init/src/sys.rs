//! The few raw system interfaces that nix does not wrap (or that must be
//! async-signal-safe between fork and exec), and `/proc/<pid>/stat` reading.
//! Every `unsafe` block of the init lives here.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The one return-code check of the raw calls here and in [`ns`] and
/// [`bpf`]: a negative result means the errno is set. (Calls that return 0
/// or -1 pass through it alike.)
pub(crate) fn check<T: Copy + Into<i64>>(r: T) -> io::Result<T> {
    if r.into() < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The fields of `/proc/<pid>/stat` the init needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub session: i32,
}

/// Parses a `/proc/<pid>/stat` line. `comm` may contain spaces and
/// parentheses, so the fields after it are found from the last `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    let comm = line.get(open + 1..close)?.to_string();
    let mut rest = line.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let _pgrp = rest.next()?;
    let session = rest.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid,
        session,
    })
}

/// Reads `/proc/<pid>/stat`; `None` once the process is gone (reaped).
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every user-space process except ourselves: kernel threads (kthreadd,
/// pid 2, and its children) are left out.
pub fn user_processes() -> Vec<ProcStat> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut v: Vec<ProcStat> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && pid != 2)
        .filter_map(proc_stat)
        .filter(|s| s.ppid != 2)
        .collect();
    v.sort_by_key(|s| s.pid);
    v
}

/// Child side of fork, before exec: everything here must be
/// async-signal-safe (no allocation, no locks), as the child of a
/// multi-threaded-capable process may only call such functions.
pub mod child {
    use super::*;

    /// Unblocks every signal and puts every disposition back to default:
    /// both survive exec, and the init blocks all the signals it handles.
    pub fn reset_signals() -> io::Result<()> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before
        // sigprocmask reads it; SIG_DFL is a valid disposition for every
        // signal that can be caught (SIGKILL/SIGSTOP fail harmlessly).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                &set,
                std::ptr::null_mut(),
            ))?;
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut sa.sa_mask);
            for sig in 1..libc::SIGRTMAX() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::sigaction(sig, &sa, std::ptr::null_mut());
                }
            }
        }
        Ok(())
    }

    /// New session, so the service (and whatever it starts) can be told
    /// apart from other processes by its session id, and can own a terminal.
    pub fn setsid() -> io::Result<()> {
        // SAFETY: setsid takes no arguments and only changes this process.
        check(unsafe { libc::setsid() })?;
        Ok(())
    }

    /// Opens the terminal, makes it the controlling terminal of the new
    /// session (TIOCSCTTY, steal = 1 so a previous session's claim does not
    /// block it) and puts it on fds 0, 1 and 2.
    pub fn controlling_tty(path: &CStr) -> io::Result<()> {
        // SAFETY: path is a valid NUL-terminated string; fd is checked
        // before use and only closed when it is not one of 0..=2.
        unsafe {
            let fd = check(libc::open(path.as_ptr(), libc::O_RDWR))?;
            check(libc::ioctl(fd, libc::TIOCSCTTY, 1))?;
            for target in 0..=2 {
                check(libc::dup2(fd, target))?;
            }
            if fd > 2 {
                libc::close(fd);
            }
        }
        Ok(())
    }

    /// chdir(2) to the service's working directory.
    pub fn chdir(dir: &CStr) -> io::Result<()> {
        // SAFETY: dir is a valid NUL-terminated string.
        check(unsafe { libc::chdir(dir.as_ptr()) })?;
        Ok(())
    }

    /// Drops to the service's credentials: groups first, then gid, then uid
    /// (after setuid the others are no longer allowed).
    pub fn set_credentials(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
        // SAFETY: groups points at groups.len() valid gid_t values.
        unsafe {
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
        }
        Ok(())
    }
}

/// A program ready to be exec'd: the path, argv and environment as C
/// strings with their NULL-terminated pointer arrays, all built before any
/// fork, so that the child allocates nothing.
pub struct Exec {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Exec {
    /// `path` is what execve(2) opens (already looked up in `PATH`), `argv`
    /// includes `argv[0]`, `env` holds `KEY=value` strings. A string with a
    /// NUL byte is an InvalidInput error naming it.
    pub fn new<'a>(
        path: &str,
        argv: impl IntoIterator<Item = &'a str>,
        env: impl IntoIterator<Item = String>,
    ) -> io::Result<Exec> {
        let c = |s: &str| {
            CString::new(s).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("NUL byte in {s:?}"))
            })
        };
        let path = c(path)?;
        let mut strings = Vec::new();
        for a in argv {
            strings.push(c(a)?);
        }
        let argc = strings.len();
        for e in env {
            strings.push(c(&e)?);
        }
        // The CStrings' heap buffers do not move when `strings` does.
        let ptrs = |v: &[CString]| {
            let mut p: Vec<*const libc::c_char> = v.iter().map(|s| s.as_ptr()).collect();
            p.push(std::ptr::null());
            p
        };
        let (argv, envp) = (ptrs(&strings[..argc]), ptrs(&strings[argc..]));
        Ok(Exec {
            path,
            _strings: strings,
            argv,
            envp,
        })
    }

    /// Replaces this process (execve(2)) keeping its own environment (the
    /// kernel's, for PID 1); the `env` given to [`Exec::new`] is ignored.
    /// Returns only on failure.
    pub fn exec_keeping_environment(&self) -> io::Error {
        extern "C" {
            static environ: *const *const libc::c_char;
        }
        // SAFETY: path and argv as in `exec`; `environ` is the C library's
        // NULL-terminated environment, which nothing in the init modifies.
        unsafe {
            libc::execve(self.path.as_ptr(), self.argv.as_ptr(), environ);
        }
        io::Error::last_os_error()
    }

    /// Replaces this process with the program in `fd` (execveat(2) with
    /// `AT_EMPTY_PATH`: no path is looked up, so nothing of the file system
    /// it runs in decides what runs); the path given to [`Exec::new`] is
    /// ignored. Returns only on failure.
    pub fn exec_fd(&self, fd: BorrowedFd<'_>) -> io::Error {
        // SAFETY: the empty path is NUL-terminated; argv and envp as in
        // `exec`; fd is a valid descriptor for the call.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                fd.as_raw_fd(),
                c"".as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
        }
        io::Error::last_os_error()
    }

    /// Replaces this process (execve(2)); returns only on failure.
    /// Async-signal-safe: usable between fork and exec.
    pub fn exec(&self) -> io::Error {
        // SAFETY: path is NUL-terminated; argv and envp are NULL-terminated
        // arrays of pointers into strings owned by `self`, alive for the call.
        unsafe {
            libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
        }
        io::Error::last_os_error()
    }
}

/// A sealed in-memory copy of the file `path` (memfd_create(2), then
/// `F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), as runc
/// clones its own binary (CVE-2019-5736): a program exec'd from it inside a
/// container has a `/proc/<pid>/exe` that nobody can write, and that is not
/// a file of the VM.
pub fn sealed_copy(name: &CStr, path: &str) -> io::Result<OwnedFd> {
    // SAFETY: name is NUL-terminated; the descriptor returned is new.
    let fd = check(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut from = std::fs::File::open(path)?;
    let mut to = std::fs::File::from(fd);
    io::copy(&mut from, &mut to)?;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl with integer arguments on a descriptor we own.
    check(unsafe { libc::fcntl(to.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(to.into())
}

/// A job for [`run_parallel`] and, once run, its result.
struct Job<'a, T> {
    work: Option<Box<dyn FnOnce() -> T + Send + 'a>>,
    result: Option<T>,
}

extern "C" fn job_main<T>(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `arg` is the `Job` run_parallel boxed for this thread; it
    // stays alive and untouched by others until pthread_join returns.
    let job = unsafe { &mut *arg.cast::<Job<'_, T>>() };
    if let Some(work) = job.work.take() {
        job.result = Some(work());
    }
    std::ptr::null_mut()
}

/// Runs each job on a POSIX thread of its own and waits for all of them;
/// the results come in the jobs' order. A job whose thread cannot be
/// created runs on the calling thread. (std::thread would do, but adds
/// 29 KB to the init.)
pub fn run_parallel<'a, T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + 'a>>) -> Vec<T> {
    let mut jobs: Vec<Box<Job<'a, T>>> = jobs
        .into_iter()
        .map(|w| {
            Box::new(Job {
                work: Some(w),
                result: None,
            })
        })
        .collect();
    let mut threads = Vec::with_capacity(jobs.len());
    for job in jobs.iter_mut() {
        let arg: *mut Job<'a, T> = &mut **job;
        // SAFETY: attr is initialised by pthread_attr_init before use and
        // destroyed after; `arg` points into a Box that outlives the
        // thread (joined below before `jobs` is dropped), and only the
        // thread touches it until then.
        let started = unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            libc::pthread_attr_init(&mut attr);
            libc::pthread_attr_setstacksize(&mut attr, 256 * 1024);
            let mut tid: libc::pthread_t = std::mem::zeroed();
            let r = libc::pthread_create(&mut tid, &attr, job_main::<T>, arg.cast());
            libc::pthread_attr_destroy(&mut attr);
            (r == 0).then_some(tid)
        };
        match started {
            Some(tid) => threads.push(tid),
            // No thread: run it here, now.
            None => {
                job_main::<T>(arg.cast());
            }
        }
    }
    for tid in threads {
        // SAFETY: each tid came from a successful pthread_create and is
        // joined exactly once.
        unsafe {
            libc::pthread_join(tid, std::ptr::null_mut());
        }
    }
    jobs.into_iter().filter_map(|j| j.result).collect()
}

/// `getrandom(buf, GRND_NONBLOCK)`: fills `buf` from the kernel's CRNG, or
/// fails with EAGAIN while the CRNG is not yet initialised, never waiting
/// (getrandom(2)).
pub fn getrandom_nonblock(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes for the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    // Negative means the errno is set; otherwise a count within buf.len().
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Bytes written to a terminal and not sent yet (`TIOCOUTQ`); an error
/// (ENOTTY) when `fd` is not a terminal.
pub fn output_queued(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int through the pointer, which points at
    // `n`; `fd` is a valid open descriptor for the call's duration.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) })?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Writes one byte at a physical address through `/dev/mem` (a device
/// register outside RAM: the kernel's STRICT_DEVMEM allows that). The page
/// is mapped shared and uncached, written once, and unmapped.
pub fn mmio_write_byte(addr: u64, value: u8) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_SYNC)
        .open("/dev/mem")
        .map_err(|e| io::Error::new(e.kind(), format!("open /dev/mem: {e}")))?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    };
    let base = addr & !(page - 1);
    let offset = libc::off_t::try_from(base)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "address out of range"))?;
    // SAFETY: a fresh shared mapping of one page of /dev/mem (no existing
    // Rust object is aliased); the result is checked against MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            mem.as_raw_fd(),
            offset,
        )
    };
    if p == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("mmap /dev/mem at {base:#x}: {e}"),
        ));
    }
    // SAFETY: `addr - base` < page, so the byte lies in the mapping made
    // above; a volatile write is exactly one store to the device; the
    // mapping is unmapped once and not used after.
    unsafe {
        std::ptr::write_volatile(p.cast::<u8>().add((addr - base) as usize), value);
        libc::munmap(p, page as usize);
    }
    Ok(())
}

/// Writes one byte to an x86 I/O port (after ioperm for that port).
#[cfg(target_arch = "x86_64")]
pub fn outb(port: u16, value: u8) -> io::Result<()> {
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    check(unsafe { libc::ioperm(libc::c_ulong::from(port), 1, 1) })?;
    // SAFETY: ioperm above granted access to `port`; a write to a port
    // without a device is ignored by the machine.
    unsafe {
        std::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags));
    }
    // The port access goes at once: fork and execve keep the I/O bitmap, and
    // every service and container started after this is a child of ours.
    // SAFETY: as above.
    check(unsafe { libc::ioperm(libc::c_ulong::from(port), 1, 0) })?;
    Ok(())
}

/// No I/O ports outside x86.
#[cfg(not(target_arch = "x86_64"))]
pub fn outb(_port: u16, _value: u8) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Writes the result to QEMU's isa-debug-exit device, which makes QEMU exit
/// at once with status `(value << 1) | 1`.
#[cfg(target_arch = "x86_64")]
pub fn debug_exit(port: u16, value: u32) -> io::Result<()> {
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    check(unsafe { libc::ioperm(libc::c_ulong::from(port), 4, 1) })?;
    // SAFETY: ioperm above granted access to the four ports at `port`; an
    // `out` to a port without a device is ignored by the machine.
    unsafe {
        std::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags));
    }
    Ok(())
}

/// No isa-debug-exit outside x86.
#[cfg(not(target_arch = "x86_64"))]
pub fn debug_exit(_port: u16, _value: u32) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let s = parse_stat("123 (my (odd) prog) S 1 123 123 0 -1 4194560 100 0").unwrap();
        assert_eq!(
            s,
            ProcStat {
                pid: 123,
                comm: "my (odd) prog".into(),
                state: 'S',
                ppid: 1,
                session: 123
            }
        );
        let z = parse_stat("7 (sh) Z 1 7 5 0").unwrap();
        assert_eq!((z.state, z.session), ('Z', 5));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn output_queued_is_an_error_on_a_non_terminal() {
        let f = tempfile::tempfile().unwrap();
        use std::os::fd::AsFd;
        let e = output_queued(f.as_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
    }

    #[test]
    fn own_stat_is_readable() {
        let me = proc_stat(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert_eq!(me.ppid, std::os::unix::process::parent_id() as i32);
    }
}

pub mod agent;
pub mod bpf;
pub mod dm;
pub mod ns;
pub mod rtc;
pub mod seam;
