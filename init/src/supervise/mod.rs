//! Supervision: start the services, reap every child and orphan, apply the
//! restart policies, forward signals, and notice when the main service has
//! ended for good or a shutdown was asked for.

pub mod policy;
pub mod signals;
pub mod spawn;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use policy::{Backoff, Decision, Status};
use signals::Action;
use spawn::Prepared;
use std::fmt;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The main service could not be started: which, what it runs, and the
/// step that failed (its path and errno), for plain services and
/// containers alike.
#[derive(Debug)]
pub struct SpawnError {
    pub service: String,
    pub program: String,
    pub step: crate::launch::StepError,
    pub container: bool,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.container {
            return write!(f, "container {}: {}", self.service, self.step);
        }
        write!(
            f,
            "service {}: cannot execute {}: ",
            self.service, self.program
        )?;
        if self.step.step == "exec" {
            // The program is already named: only the errno.
            write!(f, "{}", std::io::Error::from_raw_os_error(self.step.errno))
        } else {
            write!(f, "{}", self.step)
        }
    }
}

impl std::error::Error for SpawnError {}

/// Why supervision stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The main service ended and its policy does not restart it.
    MainEnded(Status),
    /// A signal asked for an orderly shutdown.
    Signal(Signal),
}

struct Service {
    prep: Prepared,
    backoff: Backoff,
    pid: Option<Pid>,
    started: Option<Instant>,
    restart_at: Option<Instant>,
    /// What the running workload's end needs.
    running: Option<spawn::Started>,
}

/// The supervisor's state.
pub struct Supervisor {
    services: Vec<Service>,
    main: usize,
    sigfd: SignalFd,
    /// Longest sleep without a signal. PID 1 relies on SIGCHLD; host tests
    /// run inside a multi-threaded test harness whose other threads may take
    /// process-directed signals, so they poll.
    pub tick: Duration,
    shutting_down: bool,
    /// First start of the main service (for boot_ms / service_ms).
    pub main_started: Option<Instant>,
    pub main_ended: Option<Instant>,
    /// The main service's last status.
    pub main_status: Option<Status>,
    /// The main container's counters when it last ended, with its plan's
    /// memory.max and pids.max, for the RESULT line.
    pub main_stats: Option<crate::container::cgroups::Stats>,
    /// Time spent launching the main container (clone to exec), for the
    /// timings line.
    pub container_ms: Option<u128>,
}

impl Supervisor {
    /// `main` indexes `services`.
    pub fn new(services: Vec<(Prepared, Backoff)>, main: usize, sigfd: SignalFd) -> Supervisor {
        let services = services
            .into_iter()
            .map(|(prep, backoff)| Service {
                prep,
                backoff,
                pid: None,
                started: None,
                restart_at: None,
                running: None,
            })
            .collect();
        Supervisor {
            services,
            main,
            sigfd,
            tick: Duration::from_secs(60),
            shutting_down: false,
            main_started: None,
            main_ended: None,
            main_status: None,
            main_stats: None,
            container_ms: None,
        }
    }

    /// Pid of the running main service.
    pub fn main_pid(&self) -> Option<Pid> {
        self.services.get(self.main).and_then(|s| s.pid)
    }

    /// Starts service `i`. A service that cannot start counts as exited
    /// with 127 (like a shell's "command not found") for its policy, except
    /// the main one, whose failure is returned (a fatal configuration error).
    fn start(&mut self, i: usize) -> Result<(), SpawnError> {
        let is_main = i == self.main;
        let s = &mut self.services[i];
        s.restart_at = None;
        let t0 = Instant::now();
        match s.prep.start() {
            Ok(started) => {
                let pid = started.pid;
                if is_main && self.container_ms.is_none() && started.stop_signal().is_some() {
                    self.container_ms = Some(t0.elapsed().as_millis());
                }
                s.running = Some(started);
                if is_main && self.main_started.is_none() {
                    // The main service has exec'd: the guest has booted.
                    crate::boot_timer::fire();
                }
                crate::info!(
                    "started {} (pid {pid}): {}",
                    s.prep.name,
                    s.prep.argv.join(" ")
                );
                s.pid = Some(pid);
                s.started = Some(Instant::now());
                if is_main && self.main_started.is_none() {
                    self.main_started = s.started;
                }
                Ok(())
            }
            Err(step) => {
                let e = SpawnError {
                    service: s.prep.name.clone(),
                    program: s.prep.program().to_string(),
                    step,
                    container: s.prep.container.is_some(),
                };
                if is_main {
                    return Err(e);
                }
                crate::warn!("{e}");
                self.ended(i, Status::Exited(127));
                Ok(())
            }
        }
    }

    /// Starts every service, in configuration order.
    pub fn start_all(&mut self) -> Result<(), SpawnError> {
        for i in 0..self.services.len() {
            self.start(i)?;
        }
        Ok(())
    }

    /// Records that service `i` ended and applies its policy. Returns the
    /// final status when it was the main service and it ended for good.
    fn ended(&mut self, i: usize, status: Status) -> Option<Status> {
        let is_main = i == self.main;
        let s = &mut self.services[i];
        s.pid = None;
        if let Some(stats) = s.running.take().and_then(spawn::Started::end) {
            crate::info!("container {}: {stats}", s.prep.name);
            if is_main {
                self.main_stats = Some(stats);
            }
        }
        let ran = s.started.map(|t| t.elapsed().as_millis()).unwrap_or(0);
        crate::info!(
            "{} ended: {} (status {}) after {ran} ms",
            s.prep.name,
            status.how(),
            status.code()
        );
        if is_main {
            self.main_status = Some(status);
        }
        if self.shutting_down {
            return None;
        }
        match s.backoff.on_exit(status) {
            Decision::Restart { delay_ms, attempt } => {
                crate::info!(
                    "restarting {} in {delay_ms} ms (restart {attempt} of {})",
                    s.prep.name,
                    s.backoff.max_restarts()
                );
                s.restart_at = Some(Instant::now() + Duration::from_millis(delay_ms));
                None
            }
            Decision::GaveUp => {
                crate::warn!(
                    "{}: giving up after {} restarts",
                    s.prep.name,
                    s.backoff.restarts()
                );
                is_main.then_some(status)
            }
            Decision::Done => is_main.then_some(status),
        }
    }

    /// Records a child's end, whoever it was. Returns the main service's
    /// final status if this ended it for good.
    pub fn reaped(&mut self, pid: Pid, status: Status) -> Option<Status> {
        match self.services.iter().position(|s| s.pid == Some(pid)) {
            Some(i) => {
                let fin = self.ended(i, status);
                if i == self.main && (fin.is_some() || self.shutting_down) {
                    self.main_ended = Some(Instant::now());
                }
                fin
            }
            None => {
                crate::debug!("reaped pid {pid}: {}", status.how());
                None
            }
        }
    }

    /// Reaps every child that has ended (one SIGCHLD can stand for many).
    /// Returns the main service's final status if it ended for good.
    pub fn reap(&mut self) -> Option<Status> {
        let mut fin = None;
        reap_all(&mut |pid, status| fin = self.reaped(pid, status).or(fin));
        fin
    }

    /// From now on ended services are recorded but not restarted.
    pub fn begin_shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// Sends each running container its stop signal (the PID 1 of a PID
    /// namespace ignores signals it does not handle, so this may do
    /// nothing; the grace period and SIGKILL follow).
    pub fn stop_containers(&self) {
        for s in &self.services {
            let stop = s.running.as_ref().and_then(spawn::Started::stop_signal);
            if let (Some(stop), Some(pid)) = (stop, s.pid) {
                let Ok(sig) = Signal::try_from(stop) else {
                    continue;
                };
                crate::info!("container {}: sending {}", s.prep.name, sig.as_str());
                if let Err(e) = kill(pid, sig) {
                    crate::warn!("kill {pid} {}: {e}", sig.as_str());
                }
            }
        }
    }

    /// Kills and removes the cgroups of containers still recorded as running.
    pub fn remove_containers(&mut self) {
        for s in &mut self.services {
            if let Some(r) = s.running.take() {
                r.end();
            }
        }
    }

    fn sessions(&self) -> Vec<i32> {
        self.services
            .iter()
            .filter_map(|s| s.pid)
            .map(Pid::as_raw)
            .collect()
    }

    /// Reads every pending signal; returns a shutdown request if any.
    fn read_signals(&mut self) -> Option<Signal> {
        let mut shutdown = None;
        while let Ok(Some(si)) = self.sigfd.read_signal() {
            let Ok(sig) = Signal::try_from(si.ssi_signo as i32) else {
                continue;
            };
            let from = signals::classify(si.ssi_pid, &self.sessions());
            match signals::decide(sig, from) {
                Action::Reap => {}
                Action::Shutdown => {
                    crate::info!(
                        "{} from pid {} ({from:?}): shutting down",
                        sig.as_str(),
                        si.ssi_pid
                    );
                    shutdown = Some(sig);
                }
                Action::Forward => match self.main_pid() {
                    Some(pid) => {
                        crate::debug!(
                            "forwarding {} from pid {} to {pid}",
                            sig.as_str(),
                            si.ssi_pid
                        );
                        if let Err(e) = kill(pid, sig) {
                            crate::warn!("forward {} to {pid}: {e}", sig.as_str());
                        }
                    }
                    None => crate::debug!(
                        "{} from pid {}: no main service to forward to",
                        sig.as_str(),
                        si.ssi_pid
                    ),
                },
            }
        }
        shutdown
    }

    /// Runs until the main service ends for good or a shutdown is asked for.
    pub fn run(&mut self) -> Result<Stop, SpawnError> {
        loop {
            // Signals before reaping: a sender that is our orphan is still a
            // zombie here, so its session can still be read.
            if let Some(sig) = self.read_signals() {
                return Ok(Stop::Signal(sig));
            }
            if let Some(status) = self.reap() {
                return Ok(Stop::MainEnded(status));
            }
            let now = Instant::now();
            for i in 0..self.services.len() {
                if self.services[i].restart_at.is_some_and(|t| t <= now) {
                    self.start(i)?;
                }
            }
            if let Some(status) = self.reap() {
                return Ok(Stop::MainEnded(status));
            }
            // Each does only what is due at `now`.
            crate::net::renew_due(now);
            crate::entropy::check_due(now);
            let next = self
                .services
                .iter()
                .filter_map(|s| s.restart_at)
                .chain(crate::net::next_renewal())
                .chain(crate::entropy::next_check())
                .min();
            let wait = next.map_or(self.tick, |t| {
                t.saturating_duration_since(Instant::now()).min(self.tick)
            });
            let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            let mut fds: Vec<PollFd> = std::iter::once(self.sigfd.as_fd())
                .chain(crate::vmgenid::socket())
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    crate::warn!("poll signalfd: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            crate::vmgenid::drain();
        }
    }
}

/// The one reap loop: reaps every child that has ended, handing each to
/// `on_reaped`. Returns true when there are no children left at all.
pub fn reap_all(on_reaped: &mut dyn FnMut(Pid, Status)) -> bool {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => on_reaped(pid, Status::Exited(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => on_reaped(pid, Status::Signaled(sig)),
            Ok(WaitStatus::StillAlive) => return false,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(Errno::ECHILD) => return true,
            Err(e) => {
                crate::warn!("waitpid: {e}");
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // Supervision on the host: a child test process makes itself a subreaper
    // (PR_SET_CHILD_SUBREAPER), so orphans are re-parented to it as they would
    // be to PID 1, and runs real services under the real supervisor.

    use super::*;
    use mkrootfs_config::Restart;
    use std::process::Command;

    const CHILD_ENV: &str = "MKROOTFS_INIT_SUBREAPER_CHILD";

    fn service(script: &str, restart: Restart) -> (Prepared, Backoff) {
        let prep = Prepared::as_root(
            "t",
            vec!["/bin/sh".into(), "-c".into(), script.into()],
            None,
        );
        (prep, Backoff::new(restart, 10, 5))
    }

    fn supervisor(services: Vec<(Prepared, Backoff)>) -> Supervisor {
        let mut s = Supervisor::new(services, 0, signals::signalfd().unwrap());
        s.tick = Duration::from_millis(10);
        s
    }

    /// Zombie children of this process, from /proc.
    fn zombies() -> Vec<i32> {
        let me = std::process::id() as i32;
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(crate::sys::proc_stat)
            .filter(|s| s.ppid == me && s.state == 'Z')
            .map(|s| s.pid)
            .collect()
    }

    /// The body, run only in the re-executed child (see `supervision_in_a_subreaper`):
    /// ignored in a normal run, so that it never counts as a pass without running.
    #[test]
    #[ignore = "run by supervision_in_a_subreaper in a child process"]
    fn subreaper_child() {
        assert!(
            std::env::var_os(CHILD_ENV).is_some(),
            "run only by supervision_in_a_subreaper: it makes the test process a subreaper"
        );
        nix::sys::prctl::set_child_subreaper(true).unwrap();
        signals::block().unwrap();

        // Orphans: the subshells exit at once, their sleeps are re-parented to us.
        let mut sup = supervisor(vec![service(
            "(sleep 0.3 &); (sleep 0.2 &); exit 3",
            Restart::No,
        )]);
        sup.start_all().unwrap();
        assert_eq!(sup.run().unwrap(), Stop::MainEnded(Status::Exited(3)));
        let mut orphans = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !reap_all(&mut |pid, st| orphans.push((pid, st))) {
            assert!(Instant::now() < deadline, "orphans not reaped: {orphans:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(orphans.len(), 2, "{orphans:?}");
        assert!(
            orphans.iter().all(|(_, st)| *st == Status::Exited(0)),
            "{orphans:?}"
        );
        assert_eq!(zombies(), Vec::<i32>::new());

        // on-failure: fails twice (counter file), then succeeds.
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("n");
        let script = format!(
            "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; [ $n -ge 3 ]",
            c = counter.display()
        );
        let mut sup = supervisor(vec![service(&script, Restart::OnFailure)]);
        sup.start_all().unwrap();
        assert_eq!(sup.run().unwrap(), Stop::MainEnded(Status::Exited(0)));
        assert_eq!(std::fs::read_to_string(&counter).unwrap(), "3\n");

        // A signal-killed main service and a non-main service that cannot start.
        let mut missing = service("", Restart::No);
        missing.0.argv = vec!["/nonexistent/prog".into()];
        let mut sup = supervisor(vec![service("kill -KILL $$", Restart::No), missing]);
        sup.start_all().unwrap();
        assert_eq!(
            sup.run().unwrap(),
            Stop::MainEnded(Status::Signaled(Signal::SIGKILL))
        );

        // A non-main service with an empty argv is reported and ended with
        // 127 (it was an index panic in the report).
        let mut empty = service("", Restart::No);
        empty.0.argv = Vec::new();
        let mut sup = supervisor(vec![service("exit 4", Restart::No), empty]);
        sup.start_all().unwrap();
        assert_eq!(sup.run().unwrap(), Stop::MainEnded(Status::Exited(4)));

        // A main service that cannot start is an error naming the program.
        let mut sup = supervisor(vec![service("", Restart::No)]);
        sup.services[0].prep.argv = vec!["/nonexistent/prog".into()];
        let e = sup.start_all().unwrap_err();
        assert_eq!(
            crate::log::Chain(&e).to_string(),
            "service t: cannot execute /nonexistent/prog: No such file or directory (os error 2)"
        );
        // A missing working directory is named as such.
        let mut sup = supervisor(vec![service("", Restart::No)]);
        sup.services[0].prep.cwd = "/nonexistent/dir".into();
        let e = sup.start_all().unwrap_err();
        assert_eq!(
            crate::log::Chain(&e).to_string(),
            "service t: cannot execute /bin/sh: working directory /nonexistent/dir: No such file or directory (os error 2)"
        );
        println!("SUBREAPER-CHILD-OK");
    }

    #[test]
    fn supervision_in_a_subreaper() {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([
                "supervise::tests::subreaper_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("SUBREAPER-CHILD-OK"),
            "{stdout}\n{stderr}"
        );
    }
}
