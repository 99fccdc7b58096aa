//! The kernel's CRNG, watched and never waited for: `getrandom` without
//! `GRND_NONBLOCK` blocks until the CRNG is initialised, which on a guest
//! without a virtio-rng device (and without RDRAND) can take seconds
//! (firecracker-containerd #325). The init asks with `GRND_NONBLOCK` once
//! at boot, puts the time in the timings line when the CRNG is ready then
//! (`crng_ms`, from the init's start), and otherwise asks again from the
//! supervisor's loop until it is, then logs `crng ready at N ms`.

use nix::errno::Errno;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the supervisor asks again while the CRNG is not ready.
const RECHECK: Duration = Duration::from_millis(100);

/// What one non-blocking `getrandom` said.
#[derive(Debug, PartialEq, Eq)]
pub enum Crng {
    Ready,
    /// EAGAIN: not initialised yet.
    NotYet,
    /// Anything else (ENOSYS on a kernel before 3.17): nothing to watch.
    Failed(Errno),
}

/// Classifies the result of `getrandom(buf, GRND_NONBLOCK)`.
fn classify(r: io::Result<usize>) -> Crng {
    match r {
        Ok(_) => Crng::Ready,
        Err(e) => match Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)) {
            Errno::EAGAIN => Crng::NotYet,
            errno => Crng::Failed(errno),
        },
    }
}

/// Asks the kernel, without waiting. (EINTR cannot happen: a
/// non-blocking call that is not yet able to return says EAGAIN.)
pub fn probe() -> Crng {
    let mut byte = [0u8; 1];
    classify(crate::sys::getrandom_nonblock(&mut byte))
}

/// While the CRNG is not ready: when the supervisor asks again, and the
/// init's start (since boot) the logged time counts from. `None` once it
/// is ready (or cannot be asked).
static PENDING: Mutex<Option<(Instant, Duration)>> = Mutex::new(None);

fn pending() -> std::sync::MutexGuard<'static, Option<(Instant, Duration)>> {
    // A poisoned lock still holds usable plain data.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The boot's check: the milliseconds from `start` (the init's start, since
/// boot) to now when the CRNG is ready, for the timings line; otherwise
/// `None`, with a recheck scheduled (EAGAIN) or the error logged.
pub fn at_boot(start: Duration) -> Option<u128> {
    match probe() {
        Crng::Ready => Some(crate::log::since_boot().saturating_sub(start).as_millis()),
        Crng::NotYet => {
            crate::debug!("crng not ready yet: not waiting for it");
            *pending() = Some((Instant::now() + RECHECK, start));
            None
        }
        Crng::Failed(e) => {
            crate::warn!("getrandom(GRND_NONBLOCK): {e:?}");
            None
        }
    }
}

/// When the supervisor's loop should call [`check_due`] next.
pub fn next_check() -> Option<Instant> {
    pending().map(|(at, _)| at)
}

/// The supervisor's recheck, at or after [`next_check`]: logs the time the
/// CRNG was found ready (from the init's start) once, and stops asking.
pub fn check_due(now: Instant) {
    let mut slot = pending();
    let Some((at, start)) = *slot else { return };
    if at > now {
        return;
    }
    match probe() {
        Crng::NotYet => *slot = Some((now + RECHECK, start)),
        Crng::Ready => {
            *slot = None;
            let ms = crate::log::since_boot().saturating_sub(start).as_millis();
            crate::info!("crng ready at {ms} ms");
        }
        Crng::Failed(e) => {
            *slot = None;
            crate::warn!("getrandom(GRND_NONBLOCK): {e:?}");
        }
    }
}

/// Adds `seed` to the kernel's input pool and credits 8 bits per byte
/// (`RNDADDENTROPY` on `/dev/random`, [`crate::sys::agent::add_entropy`],
/// as the agent's ReseedRandomDev), so a VM given a seed by its host has a
/// ready CRNG at once. Never logs the bytes.
pub fn credit(seed: &[u8]) -> Result<(), String> {
    use std::os::fd::AsFd;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/random")
        .map_err(|e| format!("open /dev/random: {e}"))?;
    crate::sys::agent::add_entropy(f.as_fd(), seed)
        .map_err(|(op, e)| format!("{op} on /dev/random: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eagain_is_not_yet_and_other_errors_fail() {
        assert_eq!(classify(Ok(1)), Crng::Ready);
        assert_eq!(
            classify(Err(io::Error::from_raw_os_error(libc::EAGAIN))),
            Crng::NotYet
        );
        let Crng::Failed(e) = classify(Err(io::Error::from_raw_os_error(libc::ENOSYS))) else {
            panic!("ENOSYS is a failure");
        };
        // The message names the operation and the errno's name.
        assert_eq!(
            format!("getrandom(GRND_NONBLOCK): {e:?}"),
            "getrandom(GRND_NONBLOCK): ENOSYS"
        );
    }

    #[test]
    fn the_host_crng_is_ready_and_nothing_is_rechecked_before_due() {
        // The test host is long booted: its CRNG is ready.
        assert_eq!(probe(), Crng::Ready);
        // Nothing scheduled: a check does nothing and schedules nothing.
        check_due(Instant::now());
        assert_eq!(next_check(), None);
    }
}
