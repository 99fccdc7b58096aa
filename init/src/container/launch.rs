//! A container through the shared launcher ([`crate::launch`]): clone3
//! into the namespaces and the cgroup; the init writes the id maps, the
//! rlimits and oom_score_adj from outside the user namespace before it
//! releases the child.
//!
//! The child's sequence (runc, crun, youki agree): not dumpable and every
//! descriptor it does not need closed (the launcher), stdio, become root
//! of the user namespace, cgroup namespace, root file system and pivot,
//! sysctls, masked and read-only paths, host name and `lo`, setsid, cwd
//! (checked to be inside the root), credentials and capabilities,
//! no_new_privs, seccomp last, execve of the program or of the reaper
//! ([`crate::reaper`]).

use super::{caps, namespaces, rootfs, Container, StepError};
use crate::sys::ns;
use mkrootfs_config::container::{CLONE_NEWCGROUP, CLONE_NEWNS};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The child's standard streams when it has no terminal: `/dev/null` in,
/// a pipe out (stdout and stderr, in order) that the init relays to the
/// console, as Docker's non-tty mode: the container never holds the console
/// device, so it cannot change its settings, take it as controlling
/// terminal or push input into it.
struct Pipes {
    null: OwnedFd,
    out_r: OwnedFd,
    out_w: OwnedFd,
}

fn pipes() -> Result<Pipes, StepError> {
    let null: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| StepError::new("open", "/dev/null", e.raw_os_error().unwrap_or(libc::EIO)))?
        .into();
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| StepError::new("pipe", "stdout", e as i32))?;
    Ok(Pipes { null, out_r, out_w })
}

/// Starts the container; returns the pid (in the init's namespace) once
/// its program is exec'd, or the step that failed (the child is reaped).
pub fn launch(c: &Container, cgroup: Option<BorrowedFd<'_>>) -> Result<Pid, StepError> {
    let tty =
        if c.plan.terminal {
            Some(ns::socketpair().map_err(|e| {
                StepError::new("socketpair", "", e.raw_os_error().unwrap_or(libc::EIO))
            })?)
        } else {
            None
        };
    let stdio = if c.plan.terminal {
        None
    } else {
        Some(pipes()?)
    };
    let reaper = match &c.reaper {
        Some(_) => Some(crate::reaper::image().map_err(|e| {
            StepError::new(
                "copy the reaper",
                "/proc/self/exe",
                e.raw_os_error().unwrap_or(libc::EIO),
            )
        })?),
        None => None,
    };
    // What the child needs beyond its pipes; everything else is closed in it.
    let mut keep = Vec::new();
    if let Some((_, child_end)) = &tty {
        keep.push(child_end.as_raw_fd());
    }
    if let Some(p) = &stdio {
        keep.extend([p.null.as_raw_fd(), p.out_w.as_raw_fd()]);
    }
    if let Some(fd) = reaper {
        keep.push(fd.as_raw_fd());
    }
    // The cgroup namespace is entered by the child once it is in its cgroup.
    let flags = c.plan.clone_flags & !CLONE_NEWCGROUP;
    let child_io = ChildIo {
        tty: tty.as_ref().map(|(_, child_end)| child_end),
        stdio: stdio
            .as_ref()
            .map(|p| (p.null.as_raw_fd(), p.out_w.as_raw_fd())),
        reaper,
    };
    let pid = crate::launch::launch(
        flags,
        cgroup,
        &keep,
        &mut |pid| parent_setup(c, pid.as_raw()),
        &mut |_| child(c, &child_io),
    )?;
    if let Some((init_end, _)) = &tty {
        match ns::recv_fd(std::os::fd::AsFd::as_fd(init_end)) {
            Ok(Some(master)) => super::terminal::relay(master),
            Ok(None) => crate::warn!("terminal: the container sent no pty"),
            Err(e) => crate::warn!("terminal: receive the pty: {e}"),
        }
    }
    if let Some(Pipes { out_r, out_w, .. }) = stdio {
        // Only the container holds the write end now: the relay ends at
        // its end of file.
        drop(out_w);
        super::terminal::relay_output(out_r);
    }
    Ok(pid)
}

/// What the child is handed besides its plan.
struct ChildIo<'a> {
    tty: Option<&'a OwnedFd>,
    /// `/dev/null` and the output pipe's write end, for 0 and 1, 2.
    stdio: Option<(RawFd, RawFd)>,
    reaper: Option<BorrowedFd<'static>>,
}

/// What the init does for the child from outside its namespaces: the id
/// maps, then the rlimits (raising a hard limit needs CAP_SYS_RESOURCE in
/// the VM's user namespace) and oom_score_adj (lowering it likewise).
fn parent_setup(c: &Container, pid: i32) -> Result<(), StepError> {
    namespaces::write_maps("/proc", pid, &c.plan)?;
    for [resource, soft, hard] in &c.plan.rlimits {
        let r = u32::try_from(*resource).unwrap_or(u32::MAX);
        ns::prlimit(pid, r, *soft, *hard).map_err(|e| {
            StepError::new(
                "setrlimit",
                &format!("resource {resource}"),
                e.raw_os_error().unwrap_or(libc::EINVAL),
            )
        })?;
    }
    if let Some(a) = &c.net {
        crate::net::move_into(a, pid)
            .map_err(|e| StepError::new("move interface", &a.link.name, e.errno()))?;
    }
    if let Some(adj) = c.plan.oom_score_adj {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, adj.to_string())
            .map_err(|e| StepError::new("write", &path, e.raw_os_error().unwrap_or(libc::EIO)))?;
    }
    Ok(())
}

/// The child: waits for the release, then runs the sequence; returns only
/// the error of the step that failed (success is an execve).
fn child(c: &Container, io: &ChildIo<'_>) -> StepError {
    match sequence(c, io) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn sequence(c: &Container, io: &ChildIo<'_>) -> Result<std::convert::Infallible, StepError> {
    let p = &c.plan;
    crate::sys::child::reset_signals()
        .map_err(|e| StepError::new("reset signals", "", errno(&e)))?;
    // The standard streams first, and their originals closed, before any
    // path is followed.
    if let Some((null, out)) = io.stdio {
        for (from, to) in [(null, 0), (out, 1), (out, 2)] {
            ns::dup_onto(from, to).map_err(|e| StepError::new("dup2", "stdio", errno(&e)))?;
        }
        let _ = nix::unistd::close(null);
        let _ = nix::unistd::close(out);
    }
    let sys = &crate::sys::seam::Real;
    namespaces::enter(sys, p)?;
    if p.clone_flags & CLONE_NEWNS != 0 {
        rootfs::enter(sys, p, &c.staging, &c.vm_staging)?;
        rootfs::finish(sys, p)?;
    }
    namespaces::identity(sys, p)?;
    if let Some(a) = &c.net {
        crate::net::configure_inside(a)
            .map_err(|e| StepError::new("configure interface", &a.link.name, e.errno()))?;
    }
    nix::unistd::setsid().map_err(|e| StepError::new("setsid", "", e as i32))?;
    if let Some(sock) = io.tty {
        super::terminal::attach(sock)?;
    }
    // What is still open (the error pipe, the pty socket, the reaper's
    // image) is no directory and was opened close-on-exec; this is the net
    // for anything a step above opened without the flag.
    ns::cloexec_from(3).map_err(|e| StepError::new("close_range", "", errno(&e)))?;
    nix::unistd::chdir(p.cwd.as_str()).map_err(|e| StepError::new("chdir", &p.cwd, e as i32))?;
    // runc's check after CVE-2024-21626: a working directory reached
    // through anything outside the root reads as "(unreachable)/…".
    match ns::getcwd_raw() {
        Ok(cwd) if cwd.first() == Some(&b'/') => {}
        Ok(_) => {
            return Err(StepError::new(
                "chdir: outside the root",
                &p.cwd,
                libc::EPERM,
            ))
        }
        Err(e) => return Err(StepError::new("getcwd", &p.cwd, errno(&e))),
    }
    let load = |when_nnp: bool| -> Result<(), StepError> {
        match &c.filter {
            Some(f) if p.no_new_privs == when_nnp => ns::seccomp_filter(f, p.seccomp_flags)
                .map_err(|e| {
                    StepError::new("seccomp", p.seccomp.as_deref().unwrap_or(""), errno(&e))
                }),
            _ => Ok(()),
        }
    };
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
    // while the capabilities are still there (runc does the same).
    load(false)?;
    caps::apply(sys, p, c.last_cap)?;
    if p.no_new_privs {
        ns::no_new_privs().map_err(|e| StepError::new("no_new_privs", "", errno(&e)))?;
    }
    load(true)?;
    match (io.reaper, &c.reaper) {
        (Some(fd), Some(exec)) => Err(StepError::new(
            "exec",
            crate::reaper::ARGV0,
            errno(&exec.exec_fd(fd)),
        )),
        _ => Err(exec(c)),
    }
}

/// execve of each candidate in turn, as execvp(3): a missing file moves on,
/// EACCES is remembered, anything else is the error.
fn exec(c: &Container) -> StepError {
    let argv0 = c.plan.argv.first().map(String::as_str).unwrap_or("");
    let mut errno = libc::ENOENT;
    for e in &c.execs {
        let err = e.exec().raw_os_error().unwrap_or(libc::ENOEXEC);
        match err {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => errno = libc::EACCES,
            other => return StepError::new("exec", argv0, other),
        }
    }
    StepError::new("exec", argv0, errno)
}
