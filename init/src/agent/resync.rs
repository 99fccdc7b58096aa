//! What a clone restored from a snapshot is told by its host before its
//! services carry on (issue 18): fresh entropy for the CRNG
//! (`ReseedRandomDev`; every clone of one snapshot starts with the same
//! CRNG state) and the wall-clock time (`SetGuestDateTime`; the snapshot's
//! clock is as old as the snapshot). The bytes are never logged.

use super::files::Refusal;
use mkrootfs_config::agent::proto::{ReseedRandomDevRequest, SetGuestDateTimeRequest};
use mkrootfs_config::agent::ttrpc::code;
use nix::errno::Errno;
use std::os::fd::AsFd;
use std::path::Path;

/// Where the bytes go: `RNDADDENTROPY` works on either random device.
pub const RANDOM_DEV: &str = "/dev/random";

/// At most this many bytes in one ReseedRandomDev (the kernel takes any
/// size; 4096 bytes is 32768 bits, far beyond what a reseed needs).
pub const MAX_RESEED: usize = 4096;

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The gRPC code of a failed system call.
fn code_of(e: Errno) -> i32 {
    match e {
        Errno::EPERM | Errno::EACCES => code::PERMISSION_DENIED,
        Errno::EINVAL => code::INVALID_ARGUMENT,
        Errno::ENOENT => code::NOT_FOUND,
        _ => code::INTERNAL,
    }
}

/// ReseedRandomDev: `r.data` (1 to [`MAX_RESEED`] bytes) into the kernel's
/// pool through `dev`, credited 8 bits per byte.
pub fn reseed(dev: &Path, r: &ReseedRandomDevRequest) -> Result<(), Refusal> {
    let n = r.data.len();
    if n == 0 || n > MAX_RESEED {
        return Err((
            code::INVALID_ARGUMENT,
            format!("ReseedRandomDev: {n} bytes (1 to {MAX_RESEED})"),
        ));
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dev)
        .map_err(|e| {
            let e = errno(&e);
            (code_of(e), format!("open {}: {e:?}", dev.display()))
        })?;
    crate::sys::agent::add_entropy(f.as_fd(), &r.data).map_err(|(op, e)| {
        let e = errno(&e);
        (code_of(e), format!("{op} on {}: {e:?}", dev.display()))
    })
}

/// SetGuestDateTime's time, checked: seconds not negative, microseconds
/// within 0..1_000_000.
pub fn time_of(r: &SetGuestDateTimeRequest) -> Result<nix::sys::time::TimeSpec, Refusal> {
    if r.sec < 0 || !(0..1_000_000).contains(&r.usec) {
        return Err((
            code::INVALID_ARGUMENT,
            format!(
                "SetGuestDateTime: sec {} usec {} (sec >= 0, usec 0 to 999999)",
                r.sec, r.usec
            ),
        ));
    }
    Ok(nix::sys::time::TimeSpec::new(r.sec, r.usec * 1000))
}

/// SetGuestDateTime: steps `CLOCK_REALTIME`.
pub fn set_time(r: &SetGuestDateTimeRequest) -> Result<(), Refusal> {
    let t = time_of(r)?;
    nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, t)
        .map_err(|e| (code_of(e), format!("clock_settime(CLOCK_REALTIME): {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reseed_refuses_sizes_and_names_the_ioctl() {
        let big = ReseedRandomDevRequest {
            data: vec![0; MAX_RESEED + 1],
        };
        assert_eq!(
            reseed(Path::new(RANDOM_DEV), &big),
            Err((
                code::INVALID_ARGUMENT,
                "ReseedRandomDev: 4097 bytes (1 to 4096)".into()
            ))
        );
        let none = ReseedRandomDevRequest::default();
        assert_eq!(
            reseed(Path::new(RANDOM_DEV), &none).map_err(|e| e.1),
            Err("ReseedRandomDev: 0 bytes (1 to 4096)".into())
        );
        // A file that is no random device: the ioctl's own errno, named.
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("random");
        std::fs::write(&plain, b"").unwrap();
        let r = ReseedRandomDevRequest { data: vec![7; 64] };
        assert_eq!(
            reseed(&plain, &r),
            Err((
                code::INTERNAL,
                format!("RNDADDENTROPY on {}: ENOTTY", plain.display())
            ))
        );
        let missing = dir.path().join("nope");
        assert_eq!(
            reseed(&missing, &r),
            Err((
                code::NOT_FOUND,
                format!("open {}: ENOENT", missing.display())
            ))
        );
        // The bytes appear in no message: the messages above are exact (a
        // check for the byte's digit failed when the temporary directory's
        // random name held a 7).
    }

    #[test]
    fn time_is_checked_before_the_clock_is_touched() {
        let t = |sec, usec| SetGuestDateTimeRequest { sec, usec };
        assert_eq!(
            time_of(&t(1_700_000_000, 999_999)).map(|ts| (ts.tv_sec(), ts.tv_nsec())),
            Ok((1_700_000_000, 999_999_000))
        );
        for (sec, usec) in [(1, -1), (1, 1_000_000), (-1, 0)] {
            assert_eq!(
                time_of(&t(sec, usec)).map_err(|e| e.0),
                Err(code::INVALID_ARGUMENT),
                "{sec} {usec}"
            );
        }
        assert_eq!(
            set_time(&t(5, 1_000_000)),
            Err((
                code::INVALID_ARGUMENT,
                "SetGuestDateTime: sec 5 usec 1000000 (sec >= 0, usec 0 to 999999)".into()
            ))
        );
    }
}
