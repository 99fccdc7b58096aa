//! The signals PID 1 handles, and what it does with each: forward it to the
//! main service, or shut the machine down. All of them are blocked from the
//! first instruction of `main` and read from a signalfd: no async handlers.
//!
//! Who sent a signal decides (the table is in `docs/init.md`): the kernel
//! (`ssi_pid` 0: ctrl-alt-del's SIGINT, a SIGPWR) and processes outside the
//! services ask for a shutdown with SIGTERM/SIGPWR; a service, or any process
//! in a service's session, that signals PID 1 means its main service, as
//! with tini. Every service leads its own session, so "in a service's
//! session" is read from `/proc/<pid>/stat`.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Signals forwarded to the main service.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Every signal PID 1 reads from its signalfd.
pub fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED.iter().chain(&[Signal::SIGCHLD, Signal::SIGPWR]) {
        set.add(*s);
    }
    set
}

/// Blocks the handled signals in the calling thread (and the threads it will
/// create); children unblock them before exec.
pub fn block() -> nix::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled()), None)
}

/// A non-blocking, close-on-exec signalfd for the handled signals.
pub fn signalfd() -> nix::Result<SignalFd> {
    SignalFd::with_flags(&handled(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// Who sent a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// `ssi_pid` 0: the kernel (ctrl-alt-del, power key via SIGPWR).
    Kernel,
    /// A service or a process in a service's session.
    Service,
    /// Some other process (an orphan, a daemon that left the session).
    Outside,
    /// The sender was gone before it could be looked up.
    Unknown,
}

/// What to do with a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Forward,
    Shutdown,
    /// SIGCHLD: just reap.
    Reap,
}

/// Looks the sender up: `sessions` are the session ids (= pids) of the
/// running services.
pub fn classify(sender_pid: u32, sessions: &[i32]) -> Sender {
    if sender_pid == 0 {
        return Sender::Kernel;
    }
    match crate::sys::proc_stat(sender_pid as i32) {
        None => Sender::Unknown,
        Some(st) if sessions.contains(&st.session) => Sender::Service,
        Some(_) => Sender::Outside,
    }
}

/// The decision table. A sender that cannot be identified any more is
/// treated like a service: forwarding a signal is the harmless choice.
pub fn decide(sig: Signal, from: Sender) -> Action {
    match (sig, from) {
        (Signal::SIGCHLD, _) => Action::Reap,
        (Signal::SIGPWR, _) => Action::Shutdown,
        (Signal::SIGTERM, Sender::Kernel | Sender::Outside) => Action::Shutdown,
        (Signal::SIGINT, Sender::Kernel) => Action::Shutdown,
        _ => Action::Forward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        use Action::*;
        use Sender::*;
        let rows = [
            (Signal::SIGTERM, Kernel, Shutdown),
            (Signal::SIGTERM, Outside, Shutdown),
            (Signal::SIGTERM, Service, Forward),
            (Signal::SIGTERM, Unknown, Forward),
            (Signal::SIGINT, Kernel, Shutdown),
            (Signal::SIGINT, Outside, Forward),
            (Signal::SIGPWR, Service, Shutdown),
            (Signal::SIGUSR1, Kernel, Forward),
            (Signal::SIGHUP, Outside, Forward),
            (Signal::SIGCHLD, Service, Reap),
        ];
        for (sig, from, want) in rows {
            assert_eq!(decide(sig, from), want, "{sig:?} from {from:?}");
        }
    }

    #[test]
    fn classify_by_session() {
        assert_eq!(classify(0, &[]), Sender::Kernel);
        let me = crate::sys::proc_stat(std::process::id() as i32).unwrap();
        assert_eq!(classify(std::process::id(), &[me.session]), Sender::Service);
        assert_eq!(classify(std::process::id(), &[]), Sender::Outside);
        // Pid numbers never reach i32::MAX - 1 (pid_max is at most 2^22).
        assert_eq!(classify(i32::MAX as u32 - 1, &[]), Sender::Unknown);
    }

    #[test]
    fn handled_set_has_every_forwarded_signal() {
        let set = handled();
        for s in FORWARDED {
            assert!(set.contains(*s));
        }
        assert!(set.contains(Signal::SIGCHLD) && set.contains(Signal::SIGPWR));
        assert!(!set.contains(Signal::SIGKILL));
    }
}
