//! The raw calls of the guest agent: an AF_VSOCK listening socket,
//! pidfd_open(2), setns(2) on a namespace descriptor, TIOCSWINSZ, and
//! RNDADDENTROPY (random(4)).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `VMADDR_CID_ANY`.
const VMADDR_CID_ANY: u32 = u32::MAX;

/// A non-blocking, close-on-exec AF_VSOCK stream socket listening on
/// `port` of any CID.
pub fn vsock_listen(port: u32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the descriptor is new and
    // owned only by the OwnedFd made from it.
    let fd = unsafe {
        OwnedFd::from_raw_fd(check(libc::socket(
            libc::AF_VSOCK,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        ))?)
    };
    // SAFETY: sockaddr_vm is plain data; zero is valid for its padding.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_port = port;
    addr.svm_cid = VMADDR_CID_ANY;
    // SAFETY: addr is a valid sockaddr_vm of the length passed.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    })?;
    // SAFETY: listen on a socket we own.
    check(unsafe { libc::listen(fd.as_raw_fd(), 16) })?;
    Ok(fd)
}

/// A connection to the host's vsock `port` (CID 2), blocking, close-on-exec:
/// the sd_notify channel.
pub fn vsock_connect(cid: u32, port: u32) -> io::Result<OwnedFd> {
    // SAFETY: as in vsock_listen.
    let fd = unsafe {
        OwnedFd::from_raw_fd(check(libc::socket(
            libc::AF_VSOCK,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?)
    };
    // SAFETY: sockaddr_vm is plain data; zero is valid for its padding.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_port = port;
    addr.svm_cid = cid;
    // SAFETY: addr is a valid sockaddr_vm of the length passed.
    check(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// accept4(2): a non-blocking, close-on-exec connection, or `None` when
/// none is waiting.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    // SAFETY: no address is asked for; the descriptor returned is new.
    let r = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ECONNABORTED) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: r is a new descriptor owned by nobody else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(r) }))
}

/// pidfd_open(2): a descriptor that polls readable when `pid` has ended.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; the descriptor returned is new.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: r is a new descriptor owned by nobody else (it fits an int).
    Ok(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) })
}

/// setns(2) into the namespace `fd` (of type `nstype`, a `CLONE_NEW*` flag).
pub fn setns(fd: BorrowedFd<'_>, nstype: u64) -> io::Result<()> {
    // SAFETY: integer arguments; the descriptor is valid for the call.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype as libc::c_int) })?;
    Ok(())
}

/// TIOCSWINSZ on a pty master.
pub fn set_winsize(master: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize of ours.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ as _, &ws) })?;
    Ok(())
}

/// O_NONBLOCK on a descriptor (pipes and the pty master the agent polls).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a valid descriptor.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// `RNDADDENTROPY`: `_IOW('R', 0x03, int[2])` (linux/random.h; the libc
/// crate does not define it).
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;

/// `RNDRESEEDCRNG`: `_IO('R', 0x07)` (Linux 4.17 and later).
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

/// Mixes `data` into the kernel's entropy pool through `fd` (an open
/// `/dev/random` or `/dev/urandom`), crediting 8 bits per byte: random(4)'s
/// `RNDADDENTROPY`, which needs CAP_SYS_ADMIN. Unlike a plain write, it
/// counts towards the CRNG's (re)seeding; then `RNDRESEEDCRNG`, so that
/// what follows is drawn from a CRNG keyed with `data`.
/// The error names the ioctl that failed.
pub fn add_entropy(fd: BorrowedFd<'_>, data: &[u8]) -> Result<(), (&'static str, io::Error)> {
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }:
    // built in u32 words so that the header is aligned.
    let words = 2 + data.len().div_ceil(4);
    let mut info = vec![0u32; words];
    let bits = i32::try_from(data.len() * 8)
        .map_err(|_| ("RNDADDENTROPY", io::Error::from_raw_os_error(libc::EINVAL)))?;
    info[0] = bits as u32;
    info[1] = data.len() as u32;
    // SAFETY: info has room for the header and data.len() bytes after it;
    // the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            data.as_ptr(),
            info.as_mut_ptr().add(2).cast::<u8>(),
            data.len(),
        );
    }
    // SAFETY: RNDADDENTROPY reads a rand_pool_info of the size its
    // buf_size field gives, which info holds.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), RNDADDENTROPY as _, info.as_ptr()) })
        .map_err(|e| ("RNDADDENTROPY", e))?;
    // Credit alone rekeys nothing once the CRNG is ready (Linux 5.18 and
    // later reseed it on a timer, up to a minute away): two clones of one
    // snapshot handed different bytes kept producing the same output until
    // then. RNDRESEEDCRNG reseeds it from the pool now, as Kata's agent does.
    // SAFETY: RNDRESEEDCRNG takes no argument.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), RNDRESEEDCRNG as _) })
        .map_err(|e| ("RNDRESEEDCRNG", e))?;
    Ok(())
}
