//! A container through the shared launcher ([`crate::launch`]): clone3
//! into the namespaces and the cgroup; the init writes the id maps, the
//! rlimits and oom_score_adj from outside the user namespace before it
//! releases the child.
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
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

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
    // The cgroup namespace is entered by the child once it is in its cgroup.
    let flags = c.plan.clone_flags & !CLONE_NEWCGROUP;
    let pid = crate::launch::launch(
        flags,
        cgroup,
        &mut |pid| parent_setup(c, pid.as_raw()),
        &mut |err| child(c, err, tty.as_ref().map(|(_, child_end)| child_end)),
    )?;
    if let Some((init_end, _)) = &tty {
        match ns::recv_fd(std::os::fd::AsFd::as_fd(init_end)) {
            Ok(Some(master)) => super::terminal::relay(master),
            Ok(None) => crate::warn!("terminal: the container sent no pty"),
            Err(e) => crate::warn!("terminal: receive the pty: {e}"),
        }
    }
    Ok(pid)
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
fn child(c: &Container, err: &OwnedFd, tty: Option<&OwnedFd>) -> StepError {
    match sequence(c, err, tty) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn sequence(
    c: &Container,
    err: &OwnedFd,
    tty: Option<&OwnedFd>,
) -> Result<std::convert::Infallible, StepError> {
    let p = &c.plan;
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
