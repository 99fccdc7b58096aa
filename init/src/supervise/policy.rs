//! How a service ended, and what to do about it: the restart policy with
//! backoff as a pure state machine, so it is tested without processes.

use mkrootfs_config::{Restart, ServiceConfig};
use nix::sys::signal::Signal;

/// The longest delay between restarts.
pub const MAX_DELAY_MS: u64 = 30_000;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(Signal),
}

impl Status {
    /// The shell-style status: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            Status::Exited(n) => n,
            Status::Signaled(s) => 128 + s as i32,
        }
    }

    pub fn success(self) -> bool {
        self == Status::Exited(0)
    }

    /// `exited=<n>` or `signal=<NAME>`, as in the RESULT line.
    pub fn how(self) -> String {
        match self {
            Status::Exited(n) => format!("exited={n}"),
            Status::Signaled(s) => format!("signal={}", s.as_str()),
        }
    }
}

/// What to do after a service ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after `delay_ms`; this is restart number `attempt`.
    Restart { delay_ms: u64, attempt: u32 },
    /// The policy does not restart on this status: it ended for good.
    Done,
    /// The policy wanted a restart but `max_restarts` is used up.
    GaveUp,
}

/// Restart bookkeeping of one service.
///
/// `max_restarts` counts every restart over the service's life. The delay
/// starts at `restart_delay_ms` and doubles after each consecutive failure,
/// up to [`MAX_DELAY_MS`]; a successful exit (under `always`) restarts after
/// the initial delay and resets the doubling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    policy: Restart,
    base_ms: u64,
    max_restarts: u32,
    restarts: u32,
    next_failure_delay_ms: u64,
}

impl Backoff {
    pub fn new(policy: Restart, base_ms: u64, max_restarts: u32) -> Backoff {
        let base_ms = base_ms.min(MAX_DELAY_MS);
        Backoff {
            policy,
            base_ms,
            max_restarts,
            restarts: 0,
            next_failure_delay_ms: base_ms,
        }
    }

    pub fn for_service(s: &ServiceConfig) -> Backoff {
        Backoff::new(s.restart, s.restart_delay_ms, s.max_restarts)
    }

    /// Restarts allowed.
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    pub fn on_exit(&mut self, status: Status) -> Decision {
        let wanted = match self.policy {
            Restart::No => false,
            Restart::OnFailure => !status.success(),
            Restart::Always => true,
        };
        if !wanted {
            return Decision::Done;
        }
        if self.restarts >= self.max_restarts {
            return Decision::GaveUp;
        }
        self.restarts += 1;
        let delay_ms = if status.success() {
            self.next_failure_delay_ms = self.base_ms;
            self.base_ms
        } else {
            let d = self.next_failure_delay_ms;
            self.next_failure_delay_ms = d.saturating_mul(2).min(MAX_DELAY_MS);
            d
        };
        Decision::Restart {
            delay_ms,
            attempt: self.restarts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Status = Status::Exited(1);
    const OK: Status = Status::Exited(0);

    fn delays(b: &mut Backoff, statuses: &[Status]) -> Vec<Decision> {
        statuses.iter().map(|s| b.on_exit(*s)).collect()
    }

    #[test]
    fn status_codes_and_names() {
        assert_eq!(Status::Exited(3).code(), 3);
        assert_eq!(Status::Signaled(Signal::SIGKILL).code(), 137);
        assert_eq!(Status::Signaled(Signal::SIGKILL).how(), "signal=SIGKILL");
        assert_eq!(Status::Exited(255).how(), "exited=255");
    }

    #[test]
    fn no_never_restarts() {
        let mut b = Backoff::new(Restart::No, 100, 5);
        assert_eq!(
            delays(&mut b, &[FAIL, OK]),
            [Decision::Done, Decision::Done]
        );
    }

    #[test]
    fn on_failure_doubles_up_to_the_cap_then_gives_up() {
        let mut b = Backoff::new(Restart::OnFailure, 10_000, 4);
        let r = |delay_ms, attempt| Decision::Restart { delay_ms, attempt };
        assert_eq!(
            delays(
                &mut b,
                &[FAIL, Status::Signaled(Signal::SIGSEGV), FAIL, FAIL, FAIL]
            ),
            [
                r(10_000, 1),
                r(20_000, 2),
                r(30_000, 3),
                r(30_000, 4),
                Decision::GaveUp
            ]
        );
        assert_eq!(b.restarts(), 4);
    }

    #[test]
    fn on_failure_stops_on_success() {
        let mut b = Backoff::new(Restart::OnFailure, 100, 5);
        let r = |delay_ms, attempt| Decision::Restart { delay_ms, attempt };
        assert_eq!(
            delays(&mut b, &[FAIL, FAIL, OK]),
            [r(100, 1), r(200, 2), Decision::Done]
        );
    }

    #[test]
    fn always_restarts_success_at_base_delay_and_resets_doubling() {
        let mut b = Backoff::new(Restart::Always, 50, 10);
        let r = |delay_ms, attempt| Decision::Restart { delay_ms, attempt };
        assert_eq!(
            delays(&mut b, &[FAIL, FAIL, OK, FAIL]),
            [r(50, 1), r(100, 2), r(50, 3), r(50, 4)]
        );
    }

    #[test]
    fn zero_max_restarts_gives_up_at_once() {
        let mut b = Backoff::new(Restart::Always, 100, 0);
        assert_eq!(b.on_exit(OK), Decision::GaveUp);
    }
}
