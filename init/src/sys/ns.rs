//! The raw system calls containers need that nix does not wrap: clone3,
//! openat2, pivot_root, capabilities, no_new_privs, seccomp, bringing `lo`
//! up, close_range. Each returns the errno as an `io::Error`; the caller
//! names the step and the path.

use super::check;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `struct clone_args` of linux/sched.h (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP`
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Which side of [`clone3`] this is.
pub enum Cloned {
    Child,
    Parent(i32),
}

/// clone3(2) without `CLONE_VM`: a fork that starts in new namespaces
/// (`flags`, `CLONE_NEW*` only) and, with `cgroup`, directly in that cgroup
/// (`CLONE_INTO_CGROUP`), so no process of the container ever runs outside
/// its limits. The child gets SIGCHLD as its exit signal, as from fork.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Cloned> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: without CLONE_VM (and without a stack) clone3 behaves as
    // fork(2): the child runs on a copy of our address space and returns
    // here with 0. The init is single-threaded when it launches containers
    // (host tests run the launcher in a single-threaded child process), so
    // no lock is held by a thread that does not exist in the child. `args`
    // is a valid clone_args of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check(r)? {
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent(pid as i32)),
    }
}

/// `struct open_how` of linux/openat2.h.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `RESOLVE_NO_MAGICLINKS`
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `RESOLVE_IN_ROOT`
const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2(2) of `path` with `root` as `/`: `..` and absolute symlinks stay
/// inside it, and `/proc` magic links are refused, so a hostile container
/// root cannot point a mount target outside itself. `flags` gets O_CLOEXEC.
pub fn open_in_root(root: BorrowedFd<'_>, path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: path is NUL-terminated, `how` is a valid open_how of the size
    // passed; the returned descriptor is new and owned by nobody else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = check(r)? as RawFd;
    // SAFETY: fd was just returned by openat2 and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `RESOLVE_NO_SYMLINKS`
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// `RESOLVE_BENEATH`
const RESOLVE_BENEATH: u64 = 0x08;

/// openat2(2) of the relative `path` strictly beneath `dir`: no `..` above
/// it, no absolute path, and no symbolic link of any kind on the way, so
/// an earlier mount or a link planted in the image cannot redirect a mask,
/// a read-only path or a sysctl write (the CVE-2025-52881 class). `flags`
/// gets O_CLOEXEC.
pub fn open_beneath(dir: BorrowedFd<'_>, path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: as in open_in_root: a NUL-terminated path, a valid open_how
    // of the size passed, and a new descriptor owned by nobody else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = check(r)? as RawFd;
    // SAFETY: fd was just returned by openat2 and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The file system magic of `fd` (fstatfs(2) `f_type`): how a descriptor
/// is checked to be procfs or sysfs before anything is written through it.
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: statfs is plain data, filled by the kernel on success.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a valid descriptor and st a valid statfs to fill.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// Closes every descriptor from 3 on except those in `keep` (close_range(2),
/// Linux 5.9). Closed, not marked close-on-exec: a descriptor that is still
/// open can be reached through `/proc/self/fd/N` by a path the child follows
/// before its exec (a cwd, a mount source: CVE-2024-21626).
pub fn close_all_except(keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= 3)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for fd in keep.into_iter().chain([u32::MAX]) {
        if fd > first {
            let last = if fd == u32::MAX { u32::MAX } else { fd - 1 };
            // SAFETY: close_range only closes descriptors of this process;
            // the kept ones (and 0, 1, 2) are outside every range closed.
            check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) })?;
        }
        first = fd.saturating_add(1);
    }
    Ok(())
}

/// Whether `fd` is an open descriptor of this process (fcntl F_GETFD).
#[cfg(test)]
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed number
    // gives EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// prctl(PR_SET_DUMPABLE, 0): from the clone to the exec, no process of the
/// container (same uid, same user namespace) may ptrace this one or open
/// its `/proc/<pid>` files (CVE-2019-5736). execve sets it again.
pub fn not_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) })?;
    Ok(())
}

/// getcwd(2) as the kernel answers it: a path that starts with `/`, or one
/// that starts with `(unreachable)` when the directory is outside this
/// process's root (musl's getcwd does not turn that into ENOENT).
pub fn getcwd_raw() -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf is writable for the length passed.
    let n = check(unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) })?;
    buf.truncate(usize::try_from(n).unwrap_or(0).saturating_sub(1));
    Ok(buf)
}

/// dup2(2) of `from` onto `to` (stdio in the launcher's child); the copy
/// is not close-on-exec.
pub fn dup_onto(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only changes this process's descriptor table.
    check(unsafe { libc::dup2(from, to) })?;
    Ok(())
}

/// Marks every descriptor from `first` on close-on-exec
/// (close_range(2) with `CLOSE_RANGE_CLOEXEC`, Linux 5.11), so nothing of
/// the init leaks into the container while the error pipe stays usable up
/// to the exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags of this process.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) })?;
    Ok(())
}

/// prctl(PR_CAPBSET_DROP, cap).
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) })?;
    Ok(())
}

/// prctl(PR_SET_KEEPCAPS): keep the permitted set across the switch to a
/// non-root uid (cleared again after it).
pub fn keepcaps(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(on), 0, 0, 0) })?;
    Ok(())
}

/// Clears the ambient set, then raises each bit of `ambient`.
pub fn set_ambient(ambient: u64) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    for cap in (0..64).filter(|c| ambient & (1u64 << c) != 0) {
        // SAFETY: prctl with integer arguments only.
        check(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        })?;
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2) with `_LINUX_CAPABILITY_VERSION_3` (64-bit sets).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and the two data elements are the layout capset(2)
    // reads for version 3.
    check(unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) })?;
    Ok(())
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1).
pub fn no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    Ok(())
}

/// One classic-BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog).
pub fn seccomp_filter(prog: &[SockFilter], flags: u32) -> io::Result<()> {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = SockFprog {
        len,
        filter: prog.as_ptr(),
    };
    // SAFETY: fprog points at `len` valid instructions that outlive the
    // call (the kernel copies them).
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &fprog as *const SockFprog,
        )
    })?;
    Ok(())
}

/// Sets IFF_UP on the interface `name` (SIOCGIFFLAGS + SIOCSIFFLAGS on a
/// datagram socket), as `ip link set lo up` does.
pub fn interface_up(name: &[u8]) -> io::Result<()> {
    // SAFETY: ifreq is plain data, zero is a valid value; the name is copied
    // with room for the NUL; the socket is closed by OwnedFd.
    unsafe {
        let s = check(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let sock = OwnedFd::from_raw_fd(s);
        let mut req: libc::ifreq = std::mem::zeroed();
        if name.len() >= req.ifr_name.len() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        for (d, s) in req.ifr_name.iter_mut().zip(name) {
            *d = *s as libc::c_char;
        }
        check(libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as _,
            &mut req,
        ))?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req))?;
    }
    Ok(())
}

/// prlimit(2) on another process: the init sets the container's limits
/// from outside its user namespace, where raising a hard limit is allowed.
pub fn prlimit(pid: i32, resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let new = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `new` is a valid rlimit; the old value is not asked for.
    check(unsafe {
        libc::prlimit(
            pid,
            resource as _,
            &new as *const libc::rlimit,
            std::ptr::null_mut(),
        )
    })?;
    Ok(())
}

/// _exit(2): ends a child of the launcher without running anything of the
/// parent's (no atexit handlers, no destructors).
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Blocks every signal (the container reaper waits for them with sigwait).
pub fn block_all_signals() -> io::Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigfillset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        check(libc::sigprocmask(
            libc::SIG_SETMASK,
            &set,
            std::ptr::null_mut(),
        ))?;
    }
    Ok(())
}

/// fork(2) for the container reaper: the child execs the program.
pub fn fork() -> io::Result<Cloned> {
    // SAFETY: the container's process is single-threaded (it was cloned from
    // the single-threaded init and started no thread).
    match check(unsafe { libc::fork() })? {
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent(pid)),
    }
}

/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): the channel on which a
/// container's child hands its pty master to the init.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors; both are new and owned
    // by nobody else once the call succeeded.
    unsafe {
        check(libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        ))?;
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// Sends `fd` over the unix socket `sock` (SCM_RIGHTS, one byte of data).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut space = [0u64; 4];
    // SAFETY: the iovec points at `byte`; the control buffer `space` is
    // 32 bytes, 8-aligned, larger than CMSG_SPACE(sizeof(int)) = 24; the
    // header written through CMSG_FIRSTHDR lies inside it.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        check(libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) as libc::c_long)?;
    }
    Ok(())
}

/// Receives a descriptor sent with [`send_fd`]; `None` when the peer
/// closed the socket without sending one. Must not block: called after
/// the child has exec'd or failed, when whatever it sent is queued.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = [0u64; 4];
    // SAFETY: as in send_fd; the received descriptor is new (MSG_CMSG_CLOEXEC)
    // and owned only by the OwnedFd made from it.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&space) as _;
        let n = libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        );
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(None),
                _ => Err(e),
            };
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// Unlocks a pty master (TIOCSPTLCK 0) and returns its number (TIOCGPTN):
/// the slave is `/dev/pts/<n>` of the devpts the master came from.
pub fn pty_unlock(master: BorrowedFd<'_>) -> io::Result<u32> {
    let mut unlock: libc::c_int = 0;
    let mut n: libc::c_uint = 0;
    // SAFETY: both ioctls take a pointer to an int of ours.
    unsafe {
        check(libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSPTLCK as _,
            &mut unlock,
        ))?;
        check(libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN as _, &mut n))?;
    }
    Ok(n)
}
