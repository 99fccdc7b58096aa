//! The end of the machine: stop every process (SIGTERM + SIGCONT, a grace
//! period, SIGKILL), reap, sync, unmount, print the RESULT line, write
//! QEMU's isa-debug-exit, power off or reboot. Also the fatal-error path,
//! which the panic hook shares: PID 1 must never exit ("Attempted to kill
//! init!" is a kernel panic).

use crate::supervise::policy::Status;
use crate::supervise::reap_all;
use mkrootfs_config::result::{ContainerCounters, ResultLine};
use mkrootfs_config::ShutdownAction;
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fmt::Display;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// What the fatal path needs, settable as soon as it is known and readable
// from the panic hook without locks.
static REBOOT: AtomicU8 = AtomicU8::new(0);
static GRACE_MS: AtomicU64 = AtomicU64::new(3000);
/// 0: no isa-debug-exit; otherwise the port + 1 (so port 0 is expressible).
static DEBUG_EXIT: AtomicU32 = AtomicU32::new(0);
static SHELL: OnceLock<String> = OnceLock::new();
static RESULT_PRINTED: AtomicBool = AtomicBool::new(false);
/// The code of the RESULT line once printed (for a failure after it).
static RESULT_CODE: AtomicI32 = AtomicI32::new(1);
static FINISHING: AtomicBool = AtomicBool::new(false);

/// Records the shutdown settings (after the command-line overrides).
pub fn configure(
    action: ShutdownAction,
    grace_ms: u64,
    debug_exit: Option<u16>,
    shell: Option<&str>,
) {
    REBOOT.store(
        u8::from(action == ShutdownAction::Reboot),
        Ordering::Relaxed,
    );
    GRACE_MS.store(grace_ms, Ordering::Relaxed);
    set_debug_exit(debug_exit);
    if let Some(s) = shell {
        let _ = SHELL.set(s.to_string());
    }
}

/// Records the isa-debug-exit port (known from the command line, before the
/// configuration is read, so an early fatal error still reaches the host).
pub fn set_debug_exit(port: Option<u16>) {
    if let Some(p) = port {
        DEBUG_EXIT.store(u32::from(p) + 1, Ordering::Relaxed);
    }
}

/// How the machine ended, for the RESULT line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    /// How long the main service ran (ms).
    pub service_ms: u64,
    /// The main container's counters and limits, for a container.
    pub container: Option<ContainerCounters>,
}

/// The documented result line (docs/ARCHITECTURE.md, "The result protocol").
pub fn result_line(outcome: &Outcome, boot_ms: u64) -> String {
    ResultLine {
        code: outcome.status.code(),
        signal: match outcome.status {
            Status::Signaled(s) => Some(s.as_str().to_string()),
            Status::Exited(_) => None,
        },
        boot_ms: Some(boot_ms),
        service_ms: Some(outcome.service_ms),
        container: outcome.container.clone(),
    }
    .to_string()
}

/// Reaps until no child is left or `deadline` passes; true when none is left.
fn reap_until(deadline: Instant, on_reaped: &mut dyn FnMut(Pid, Status)) -> bool {
    loop {
        if reap_all(on_reaped) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops every process but PID 1. As PID 1 every process descends from us,
/// and orphans are re-parented to us, so "no children" means "no processes".
/// Only ever called as PID 1: `kill(-1)` on a host would hit the whole user.
fn stop_all(grace_ms: u64, on_reaped: &mut dyn FnMut(Pid, Status)) {
    if reap_all(on_reaped) {
        return;
    }
    crate::info!("sending SIGTERM to all processes (grace period {grace_ms} ms)");
    // ESRCH just means there was nobody left.
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    // Stopped processes only act on SIGTERM once continued.
    let _ = kill(Pid::from_raw(-1), Signal::SIGCONT);
    if reap_until(Instant::now() + Duration::from_millis(grace_ms), on_reaped) {
        crate::info!("all processes ended");
        return;
    }
    let left = crate::sys::user_processes();
    let names: Vec<String> = left
        .iter()
        .map(|p| format!("{} ({})", p.pid, p.comm))
        .collect();
    crate::info!(
        "grace period of {grace_ms} ms over: SIGKILL to {} process(es): {}",
        left.len(),
        names.join(", ")
    );
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    if !reap_until(Instant::now() + Duration::from_secs(5), on_reaped) {
        crate::warn!("processes left after SIGKILL (uninterruptible?): shutting down anyway");
    }
}

/// Unmounts everything but `/`, newest first (children before parents),
/// detaching what is busy, then remounts `/` read-only.
pub fn unmount_all() {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        crate::warn!("read /proc/self/mountinfo: cannot unmount");
        return;
    };
    for target in crate::mounts::mount_points(&info)
        .iter()
        .rev()
        .filter(|t| *t != "/")
    {
        if let Err(e) = umount2(target.as_str(), MntFlags::empty()) {
            crate::debug!("umount {target}: {e}; detaching");
            if let Err(e) = umount2(target.as_str(), MntFlags::MNT_DETACH) {
                crate::debug!("umount -l {target}: {e}");
            }
        }
    }
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if let Err(e) = nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>) {
        crate::debug!("remount / read-only: {e}");
    }
}

/// What the end of the machine asks of whoever ran the services.
pub trait Ending {
    /// A child ended while every process was being stopped.
    fn reaped(&mut self, pid: Pid, status: Status);
    /// Every process has ended: what to report.
    fn outcome(&mut self) -> Outcome;
}

/// The end after a fatal error: no service to account for, status 1.
struct Failed;

impl Ending for Failed {
    fn reaped(&mut self, _: Pid, _: Status) {}
    fn outcome(&mut self) -> Outcome {
        Outcome {
            status: Status::Exited(1),
            service_ms: 0,
            container: None,
        }
    }
}

/// Ends the machine, once: stops every process (as PID 1), then reports
/// `ending`'s outcome (the main service's status, or 1 after a fatal
/// error). Never returns.
pub fn finish(boot_ms: u64, ending: &mut dyn Ending) -> ! {
    FINISHING.store(true, Ordering::Relaxed);
    let pid1 = std::process::id() == 1;
    if pid1 {
        stop_all(GRACE_MS.load(Ordering::Relaxed), &mut |pid, st| {
            ending.reaped(pid, st)
        });
    }
    let outcome = ending.outcome();
    report(&outcome, boot_ms);
    if !pid1 {
        std::process::exit(outcome.status.code());
    }
    nix::unistd::sync();
    unmount_all();
    signal_host_and_power_off()
}

/// Prints the RESULT line, once.
fn report(outcome: &Outcome, boot_ms: u64) {
    if !RESULT_PRINTED.swap(true, Ordering::Relaxed) {
        RESULT_CODE.store(outcome.status.code(), Ordering::Relaxed);
        crate::log::write_raw(&result_line(outcome, boot_ms));
    }
}

/// Writes the reported code to isa-debug-exit (if enabled), then powers off.
fn signal_host_and_power_off() -> ! {
    // write(2) on a tty returns once the bytes are in the tty buffer; the
    // UART sends them later. isa-debug-exit ends QEMU at once, so wait for
    // the console to drain or the RESULT line may never reach the host.
    // (Not a tty, e.g. in host tests: ENOTTY, nothing to wait for.)
    drain(std::io::stdout(), CONSOLE_STALL);
    drain(std::io::stderr(), CONSOLE_STALL);
    let port = DEBUG_EXIT.load(Ordering::Relaxed);
    if port != 0 {
        // Only the low 8 bits survive QEMU's exit status anyway.
        let value = (RESULT_CODE.load(Ordering::Relaxed) & 0xff) as u32;
        if let Err(e) = crate::sys::debug_exit((port - 1) as u16, value) {
            crate::warn!("isa-debug-exit at {:#x}: {e}", port - 1);
        }
    }
    power_off()
}

/// How long the console's output queue may stay stuck before the init gives
/// up waiting for it at power-off.
const CONSOLE_STALL: Duration = Duration::from_secs(1);

/// Waits for a terminal's output to be sent, while the queue keeps
/// shrinking. tcdrain(3) alone waits forever when the output is stopped
/// (XOFF typed on a serial console, a program's `tcflow(TCOOFF)`, hardware
/// flow control with nobody reading), and PID 1 would never power off.
fn drain(fd: impl std::os::fd::AsFd, stall: Duration) {
    let mut last = usize::MAX;
    let mut deadline = Instant::now() + stall;
    loop {
        match crate::sys::output_queued(fd.as_fd()) {
            // The queue is empty: tcdrain now only waits for the UART's
            // transmitter, which the driver bounds.
            Ok(0) => {
                let _ = nix::sys::termios::tcdrain(fd);
                return;
            }
            Ok(n) => {
                if n < last {
                    last = n;
                    deadline = Instant::now() + stall;
                } else if Instant::now() >= deadline {
                    crate::debug!("console output stuck with {n} bytes queued: not waiting");
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // Not a tty: nothing to wait for.
            Err(_) => return,
        }
    }
}

/// reboot(2) with the configured action; if that fails, wait forever rather
/// than exit (an exiting PID 1 panics the kernel).
/// Whether the firmware lets the kernel power off, read while `/sys` is
/// still mounted (at boot, [`note_power_off`]): at the end it is not.
static POWER_OFF: OnceLock<bool> = OnceLock::new();

/// Reads the ACPI tables once, at boot, after the early mounts.
pub fn note_power_off() {
    let _ = POWER_OFF.get_or_init(|| crate::acpi::can_power_off(Path::new(crate::acpi::TABLES)));
}

fn power_off_works() -> bool {
    *POWER_OFF.get_or_init(|| crate::acpi::can_power_off(Path::new(crate::acpi::TABLES)))
}

fn power_off() -> ! {
    use nix::sys::reboot::{reboot, RebootMode};
    let mode = if REBOOT.load(Ordering::Relaxed) == 1 {
        RebootMode::RB_AUTOBOOT
    } else if !power_off_works() {
        // RB_POWER_OFF would halt the CPU for good: the VM would never end.
        crate::info!(
            "power-off is not available (no ACPI S5 sleep state): rebooting to end the machine"
        );
        RebootMode::RB_AUTOBOOT
    } else {
        RebootMode::RB_POWER_OFF
    };
    let Err(e) = reboot(mode);
    crate::warn!("reboot({mode:?}): {e}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// [`fatal`] for an error: its text and its causes (the errno).
pub fn fatal_error(step: &str, e: &dyn std::error::Error) -> ! {
    fatal(step, &crate::log::Chain(e))
}

/// A fatal error: print `FATAL <step>: <what>`, run the emergency shell if
/// one is configured, then end the machine with status 1.
pub fn fatal(step: &str, what: &dyn Display) -> ! {
    // Without a timestamp: the documented, greppable format.
    crate::log::write_raw(&format!("{} FATAL {step}: {what}", crate::log::PREFIX));
    if FINISHING.swap(true, Ordering::Relaxed) {
        // A failure while already shutting down: report (unless done) and
        // power off without another round of stopping and unmounting.
        report(
            &Failed.outcome(),
            crate::log::since_boot().as_millis() as u64,
        );
        if std::process::id() != 1 {
            std::process::exit(1);
        }
        signal_host_and_power_off();
    }
    if std::process::id() == 1 {
        if let Some(shell) = SHELL.get() {
            emergency_shell(shell);
        }
    }
    let boot_ms = crate::log::since_boot().as_millis() as u64;
    FINISHING.store(false, Ordering::Relaxed);
    finish(boot_ms, &mut Failed)
}

/// Runs the emergency shell on the console with a controlling terminal and
/// waits for it (reaping whatever else ends meanwhile).
fn emergency_shell(shell: &str) {
    use crate::supervise::spawn::{self, Prepared};
    crate::info!("starting emergency shell {shell}; the machine powers off when it exits");
    let prep = Prepared::as_root(
        "emergency-shell",
        vec![shell.to_string()],
        crate::console::active_device(),
    );
    let pid = match spawn::spawn(&prep) {
        Ok(pid) => pid,
        Err(e) => {
            crate::warn!("emergency shell {shell}: {e}");
            return;
        }
    };
    // Through the one reap loop, polled: the shell is interactive, and
    // whatever else ends meanwhile is reaped too.
    loop {
        let mut ended = false;
        let none_left = reap_all(&mut |p, _| ended |= p == pid);
        if ended || none_left {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_format() {
        let outcome = |status, container| Outcome {
            status,
            service_ms: 56,
            container,
        };
        assert_eq!(
            result_line(&outcome(Status::Exited(3), None), 1234),
            "mkrootfs-init: RESULT status=3 exited=3 boot_ms=1234 service_ms=56"
        );
        let line = result_line(
            &outcome(
                Status::Signaled(Signal::SIGKILL),
                Some(ContainerCounters {
                    oom_kill: 1,
                    memory_max: Some(64),
                    ..ContainerCounters::default()
                }),
            ),
            900,
        );
        assert_eq!(
            line,
            "mkrootfs-init: RESULT status=137 signal=SIGKILL boot_ms=900 service_ms=56 oom_kill=1 pids_max_hits=0 memory_peak=0 cpu_usec=0 memory_max=64"
        );
        // What the host reads back.
        let back = ResultLine::parse(&line).unwrap();
        assert_eq!((back.code, back.signal.as_deref()), (137, Some("SIGKILL")));
        assert_eq!(back.container.unwrap().memory_max, Some(64));
    }
}
