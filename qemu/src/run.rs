//! Running one guest: take a machine-wide QEMU slot, spawn QEMU with the console on a
//! pipe, read it while the guest runs, and make sure QEMU is gone when we return.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::accel::qemu_binary;
use crate::config::VmConfig;
use crate::console::QuietFilter;
use crate::kernel::cache_dir;
use crate::lock::FileLock;
use crate::result::{parse_result_line, Outcome};
use crate::QemuError;

/// After the RESULT line, how long the guest gets to power off before we kill QEMU;
/// the result is already known, so a slow or stuck shutdown must not cost the timeout.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
const SLOT_POLL: Duration = Duration::from_millis(200);

/// Boots `cfg` and waits for the guest to end, at most `cfg.timeout` after a QEMU slot
/// is free (at most `$MKROOTFS_QEMU_JOBS`, default the number of CPUs, QEMUs run at once
/// machine-wide). QEMU is killed and reaped on timeout, on error and on unwinding.
/// A QEMU that fails before the guest printed anything is an error, not an outcome.
pub fn run(cfg: &VmConfig) -> Result<Outcome, QemuError> {
    let mut cmd = cfg.command();
    let _slot = acquire_slot()?;
    let start = Instant::now();
    let stdin = if cfg.interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (prctl, getppid), touching no shared state.
    unsafe {
        cmd.pre_exec(move || {
            // QEMU dies with the thread that started it, even if we are SIGKILLed and
            // the guard below never runs.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent as libc::pid_t {
                return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| QemuError::Spawn(qemu_binary(), e))?;
    let mut guard = KillOnDrop(child);
    let (stdout, stderr) = (guard.0.stdout.take(), guard.0.stderr.take());
    let seen_result = Arc::new(AtomicBool::new(false));
    let echo = cfg
        .echo_console
        .then(|| cfg.quiet_console.then(QuietFilter::new));
    let console = stdout.map(|out| spawn_console_reader(out, echo, seen_result.clone()));
    let errors = stderr.map(spawn_stderr_reader);

    let deadline = start + cfg.timeout;
    let mut grace_end: Option<Instant> = None;
    let mut timed_out = false;
    let qemu_status = loop {
        if let Some(status) = guard.0.try_wait().map_err(QemuError::Wait)? {
            break Some(status);
        }
        let now = Instant::now();
        if grace_end.is_none() && seen_result.load(Ordering::Relaxed) {
            grace_end = Some(now + SHUTDOWN_GRACE);
        }
        let past_grace = grace_end.is_some_and(|end| now >= end);
        if now >= deadline || past_grace {
            timed_out = grace_end.is_none();
            guard.kill()?;
            break None;
        }
        std::thread::sleep(POLL);
    };
    // QEMU is gone, so both pipes reach end of file and the readers finish.
    let raw = join(console)?;
    let stderr = String::from_utf8_lossy(&join(errors)?).into_owned();
    let console = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
    if let Some(status) = qemu_status {
        if console.is_empty() && qemu_failed(status.code()) {
            return Err(QemuError::QemuFailed {
                status,
                stderr: stderr.trim().to_string(),
            });
        }
    }
    Ok(Outcome {
        result: parse_result_line(&console),
        console,
        stderr,
        qemu_status: qemu_status.and_then(|s| s.code()),
        timed_out,
        elapsed: start.elapsed(),
    })
}

/// Whether a QEMU that printed no console output failed by itself: QEMU's errors exit 1
/// (or it died of a signal), while a silent guest can only end with 0 (power-off) or an
/// odd status above 1 (isa-debug-exit). Debug-exit code 0 also gives 1, but an init that
/// reports without printing its RESULT line first does not follow the protocol.
fn qemu_failed(code: Option<i32>) -> bool {
    match code {
        Some(0) => false,
        Some(c) => !(c > 1 && c % 2 == 1),
        None => true,
    }
}

/// Kills and reaps QEMU unless it has already been reaped.
struct KillOnDrop(Child);

impl KillOnDrop {
    fn kill(&mut self) -> Result<(), QemuError> {
        self.0.kill().map_err(QemuError::Kill)?;
        self.0.wait().map_err(QemuError::Wait)?;
        Ok(())
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // std keeps the status of a reaped child, so this is a no-op after a wait.
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads the console to its end; with `echo`, copies it to our stdout as it
/// arrives, through the filter if there is one.
fn spawn_console_reader(
    mut out: ChildStdout,
    mut echo: Option<Option<QuietFilter>>,
    seen_result: Arc<AtomicBool>,
) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut console = Vec::new();
        let mut buf = [0u8; 8192];
        // Where the current (unfinished) line starts, so the RESULT check scans each
        // completed line once.
        let mut line_start = 0;
        loop {
            let n = match out.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if let Some(filter) = &mut echo {
                let shown = match filter {
                    Some(f) => f.feed(&buf[..n]),
                    None => buf[..n].to_vec(),
                };
                let mut stdout = std::io::stdout().lock();
                // The echo is a convenience; a closed stdout must not stop the capture.
                let _ = stdout.write_all(&shown).and_then(|()| stdout.flush());
            }
            console.extend_from_slice(&buf[..n]);
            if let Some(last_nl) = console[line_start..].iter().rposition(|&b| b == b'\n') {
                let end = line_start + last_nl + 1;
                if parse_result_line(&String::from_utf8_lossy(&console[line_start..end])).is_some()
                {
                    seen_result.store(true, Ordering::Relaxed);
                }
                line_start = end;
            }
        }
        console
    })
}

fn spawn_stderr_reader(mut err: ChildStderr) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // Whatever was read before an error is still worth reporting.
        let _ = err.read_to_end(&mut bytes);
        bytes
    })
}

fn join(handle: Option<JoinHandle<Vec<u8>>>) -> Result<Vec<u8>, QemuError> {
    match handle {
        Some(h) => h.join().map_err(|_| QemuError::ReaderPanicked),
        None => Ok(Vec::new()),
    }
}

/// `$MKROOTFS_QEMU_JOBS` if a positive number, else the number of CPUs.
fn slot_count() -> usize {
    std::env::var("MKROOTFS_QEMU_JOBS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Holds `<cache>/qemu-slots/<n>.lock` for the first free `n`; polls while all are busy.
fn acquire_slot() -> Result<FileLock, QemuError> {
    acquire_slot_in(&cache_dir().join("qemu-slots"), slot_count())
}

fn acquire_slot_in(dir: &Path, count: usize) -> Result<FileLock, QemuError> {
    std::fs::create_dir_all(dir).map_err(|e| QemuError::CreateDir(dir.to_path_buf(), e))?;
    loop {
        for n in 0..count {
            if let Some(lock) = FileLock::try_exclusive(&dir.join(format!("{n}.lock")))? {
                return Ok(lock);
            }
        }
        std::thread::sleep(SLOT_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_exits_that_are_qemu_failures() {
        assert!(qemu_failed(Some(1)));
        assert!(qemu_failed(Some(2)));
        assert!(qemu_failed(None));
        assert!(!qemu_failed(Some(0)));
        assert!(!qemu_failed(Some(3)));
        assert!(!qemu_failed(Some(511)));
    }

    #[test]
    fn third_guest_waits_for_one_of_two_slots() {
        let dir = tempfile::tempdir().unwrap();
        let slots = dir.path().join("qemu-slots");
        let first = acquire_slot_in(&slots, 2).unwrap();
        let _second = acquire_slot_in(&slots, 2).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let slots = slots.clone();
            std::thread::spawn(move || {
                let lock = acquire_slot_in(&slots, 2).unwrap();
                tx.send(()).unwrap();
                drop(lock);
            })
        };
        assert!(rx.recv_timeout(Duration::from_millis(600)).is_err());
        drop(first);
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn slot_dir_that_cannot_be_created_names_it() {
        let err = acquire_slot_in(Path::new("/proc/mkrootfs-slots"), 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot create directory /proc/mkrootfs-slots"
        );
    }
}
