//! `init = true`: the PID 1 of a container, a separate program as Docker's
//! `tini` is. It is this binary, exec'd under the name [`ARGV0`] from a
//! sealed in-memory copy ([`image`]) after the container's whole setup
//! (credentials, capabilities, seccomp): it holds no descriptor of the VM,
//! no memory of the init, and its `/proc/1/exe` is not a file of the VM, so
//! a container that ptraces it or opens its `/proc` files reaches nothing.
//!
//! It forks the program (searched in the container's `PATH` as execvp(3)
//! does), forwards every signal to it, reaps every orphan, and exits with
//! the program's status (128 + signal when killed).

use crate::sys::ns::{self, Cloned};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

/// The `argv[0]` under which the binary runs as the reaper: `main` checks
/// it before anything else, as the reaper is PID 1 of its namespace.
pub const ARGV0: &str = "mkrootfs-reaper";

/// The sealed copy of the init's own executable, made once, on first use.
pub fn image() -> std::io::Result<BorrowedFd<'static>> {
    static IMAGE: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = IMAGE.get() {
        return Ok(fd.as_fd());
    }
    let fd = crate::sys::sealed_copy(c"mkrootfs-reaper", "/proc/self/exe")?;
    Ok(IMAGE.get_or_init(|| fd).as_fd())
}

/// The reaper's whole life: `args` is `[ARGV0, program, arguments…]`, the
/// environment is the program's. Never returns.
pub fn main(args: &[String]) -> ! {
    let say = |what: &str| {
        eprintln!("{ARGV0}: {what}");
    };
    let Some(program) = args.get(1) else {
        say("no program to run");
        ns::exit_child(127)
    };
    // Not dumpable: a process of the container (same uid, no
    // CAP_SYS_PTRACE) cannot ptrace the reaper or open its /proc files.
    // The program's exec makes the program dumpable again.
    if let Err(e) = ns::not_dumpable() {
        say(&format!("set not dumpable: {e}"));
        ns::exit_child(127)
    }
    if let Err(e) = ns::block_all_signals() {
        say(&format!("block signals: {e}"));
        ns::exit_child(127)
    }
    let child = match ns::fork() {
        Ok(Cloned::Child) => {
            if let Err(e) = crate::sys::child::reset_signals() {
                say(&format!("reset signals: {e}"));
                ns::exit_child(127)
            }
            let e = exec(program, &args[1..]);
            say(&format!("exec {program}: {e}"));
            ns::exit_child(if e.raw_os_error() == Some(libc::ENOENT) {
                127
            } else {
                126
            })
        }
        Ok(Cloned::Parent(pid)) => Pid::from_raw(pid),
        Err(e) => {
            say(&format!("fork: {e}"));
            ns::exit_child(127)
        }
    };
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

/// execvp(3) in the reaper's environment: each candidate of `PATH` in turn,
/// a missing file moves on, EACCES is remembered.
fn exec(program: &str, argv: &[String]) -> std::io::Error {
    let env: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| {
            Some(format!(
                "{}={}",
                k.into_string().ok()?,
                v.into_string().ok()?
            ))
        })
        .collect();
    let path = env.iter().find_map(|e| e.strip_prefix("PATH="));
    let mut errno = libc::ENOENT;
    for candidate in crate::container::exec_candidates(program, path) {
        let e = match crate::sys::Exec::new(
            &candidate,
            argv.iter().map(String::as_str),
            env.iter().cloned(),
        ) {
            Ok(x) => x.exec(),
            Err(e) => return e,
        };
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => {}
            Some(libc::EACCES) => errno = libc::EACCES,
            _ => return e,
        }
    }
    std::io::Error::from_raw_os_error(errno)
}
