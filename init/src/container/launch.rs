//! The launcher: clone3 into the namespaces and the cgroup, a sync pipe
//! (the init releases the child once it has written the id maps, the
//! rlimits and oom_score_adj from outside the user namespace) and an error
//! pipe (close-on-exec: end of file means the program was exec'd; a record
//! means the child failed at a step and exits 127).
//!
//! The child's sequence (runc, crun, youki agree): become root of the user
//! namespace, cgroup namespace, root file system and pivot, sysctls,
//! masked and read-only paths, host name and `lo`, setsid, close every
//! other descriptor, cwd, credentials and capabilities, no_new_privs,
//! seccomp last, execve.

use super::{caps, namespaces, rootfs, Container, StepError};
use crate::sys::ns::{self, Cloned};
use mkrootfs_config::container::{CLONE_NEWCGROUP, CLONE_NEWNS};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

fn pipe() -> Result<(OwnedFd, OwnedFd), StepError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| StepError::new("pipe", "", e as i32))
}

/// Starts the container; returns the pid (in the init's namespace) once
/// its program is exec'd, or the step that failed (the child is reaped).
pub fn launch(c: &Container, cgroup: Option<BorrowedFd<'_>>) -> Result<Pid, StepError> {
    let (sync_r, sync_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let tty =
        if c.plan.terminal {
            Some(ns::socketpair().map_err(|e| {
                StepError::new("socketpair", "", e.raw_os_error().unwrap_or(libc::EIO))
            })?)
        } else {
            None
        };
    // The cgroup namespace is entered by the child once it is in its cgroup.
    let flags = c.plan.clone_flags & !CLONE_NEWCGROUP;
    let cloned = ns::clone3(flags, cgroup)
        .map_err(|e| StepError::new("clone3", "", e.raw_os_error().unwrap_or(libc::EINVAL)))?;
    let pid = match cloned {
        Cloned::Child => {
            drop(sync_w);
            drop(err_r);
            let tty = tty.map(|(_, child_end)| child_end);
            let e = child(c, sync_r, &err_w, tty.as_ref());
            let _ = nix::unistd::write(&err_w, &e.encode());
            ns::exit_child(127)
        }
        Cloned::Parent(pid) => Pid::from_raw(pid),
    };
    drop(sync_r);
    drop(err_w);
    let fail = |e: StepError| {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        Err(e)
    };
    if let Err(e) = parent_setup(c, pid.as_raw()) {
        return fail(e);
    }
    let mut w = std::fs::File::from(sync_w);
    if let Err(e) = w.write_all(&[0]) {
        return fail(StepError::new(
            "release child",
            "",
            e.raw_os_error().unwrap_or(libc::EPIPE),
        ));
    }
    drop(w);
    let mut report = Vec::new();
    let mut r = std::fs::File::from(err_r);
    if let Err(e) = r.read_to_end(&mut report) {
        return fail(StepError::new(
            "read error pipe",
            "",
            e.raw_os_error().unwrap_or(libc::EIO),
        ));
    }
    if report.is_empty() {
        if let Some((init_end, _)) = &tty {
            match ns::recv_fd(std::os::fd::AsFd::as_fd(init_end)) {
                Ok(Some(master)) => super::terminal::relay(master),
                Ok(None) => crate::warn!("terminal: the container sent no pty"),
                Err(e) => crate::warn!("terminal: receive the pty: {e}"),
            }
        }
        return Ok(pid);
    }
    // It exits 127 after the report: reap it here, it never ran.
    let _ = waitpid(pid, None);
    Err(StepError::decode(&report))
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
    if let Some(adj) = c.plan.oom_score_adj {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, adj.to_string())
            .map_err(|e| StepError::new("write", &path, e.raw_os_error().unwrap_or(libc::EIO)))?;
    }
    Ok(())
}

/// The child: waits for the release, then runs the sequence; returns only
/// the error of the step that failed (success is an execve).
fn child(c: &Container, sync: OwnedFd, err: &OwnedFd, tty: Option<&OwnedFd>) -> StepError {
    match sequence(c, sync, err, tty) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn sequence(
    c: &Container,
    sync: OwnedFd,
    err: &OwnedFd,
    tty: Option<&OwnedFd>,
) -> Result<std::convert::Infallible, StepError> {
    let p = &c.plan;
    let mut byte = [0u8; 1];
    let mut s = std::fs::File::from(sync);
    match s.read(&mut byte) {
        Ok(1) => {}
        // The init gave up on us (and kills us); nothing to report.
        _ => ns::exit_child(127),
    }
    drop(s);
    crate::sys::child::reset_signals()
        .map_err(|e| StepError::new("reset signals", "", e.raw_os_error().unwrap_or(0)))?;
    namespaces::enter(p)?;
    if p.clone_flags & CLONE_NEWNS != 0 {
        rootfs::enter(p, &c.staging, &c.vm_staging)?;
        rootfs::finish(p)?;
    }
    namespaces::identity(p)?;
    nix::unistd::setsid().map_err(|e| StepError::new("setsid", "", e as i32))?;
    if let Some(sock) = tty {
        super::terminal::attach(sock)?;
    }
    // stdio: the pty, or the console the init has on 0, 1 and 2; everything else
    // closes at exec (the error pipe included, which is how the init knows).
    ns::cloexec_from(3)
        .map_err(|e| StepError::new("close_range", "", e.raw_os_error().unwrap_or(0)))?;
    nix::unistd::chdir(p.cwd.as_str()).map_err(|e| StepError::new("chdir", &p.cwd, e as i32))?;
    let load = |when_nnp: bool| -> Result<(), StepError> {
        match &c.filter {
            Some(f) if p.no_new_privs == when_nnp => ns::seccomp_filter(f, p.seccomp_flags)
                .map_err(|e| {
                    StepError::new(
                        "seccomp",
                        p.seccomp.as_deref().unwrap_or(""),
                        e.raw_os_error().unwrap_or(0),
                    )
                }),
            _ => Ok(()),
        }
    };
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
    // while the capabilities are still there (runc does the same).
    load(false)?;
    caps::apply(p, c.last_cap)?;
    if p.no_new_privs {
        ns::no_new_privs()
            .map_err(|e| StepError::new("no_new_privs", "", e.raw_os_error().unwrap_or(0)))?;
    }
    load(true)?;
    if p.init {
        reaper(err)?;
    }
    Err(exec(c))
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

/// `init = true`: this process stays PID 1 of the container, forks the
/// program, forwards every signal to it, reaps every orphan, and exits
/// with the program's status (128 + signal when killed), as tini does.
/// Returns only in the program's process.
fn reaper(err: &OwnedFd) -> Result<(), StepError> {
    ns::block_all_signals()
        .map_err(|e| StepError::new("block signals", "", e.raw_os_error().unwrap_or(0)))?;
    let child = match ns::fork()
        .map_err(|e| StepError::new("fork", "", e.raw_os_error().unwrap_or(0)))?
    {
        Cloned::Child => {
            crate::sys::child::reset_signals()
                .map_err(|e| StepError::new("reset signals", "", e.raw_os_error().unwrap_or(0)))?;
            return Ok(());
        }
        Cloned::Parent(pid) => Pid::from_raw(pid),
    };
    // Our copy of the error pipe must not keep the init waiting: only the
    // program's copy closes at its exec.
    let _ = nix::unistd::close(err.as_raw_fd());
    let all = SigSet::all();
    loop {
        match all.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == child => ns::exit_child(code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                        ns::exit_child(128 + sig as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            },
            Ok(sig) => {
                let _ = kill(child, sig);
            }
            Err(_) => {}
        }
    }
}
