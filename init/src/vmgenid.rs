//! The VM generation ID, as the kernel gives it: a clone restored from a
//! snapshot (or a VM after an incoming migration, with QEMU's
//! `-device vmgenid,guid=auto`) sees a new generation. Linux's `vmgenid`
//! driver (`CONFIG_VMGENID`, 5.18+) then reseeds the CRNG itself and sends a
//! `KOBJ_CHANGE` uevent carrying `NEW_VMGENID=1`. The init listens for it on
//! a `NETLINK_KOBJECT_UEVENT` socket from the supervisor's loop, logs
//! `vm generation changed`, and steps the wall clock from the RTC
//! (`/dev/rtc0`), whose time the monitor keeps across the snapshot while
//! the guest's clock stood still in it.

use nix::sys::socket::{self, AddressFamily, SockFlag, SockProtocol, SockType};
use nix::time::{clock_gettime, clock_settime, ClockId};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

/// The RTC the clock is stepped from.
const RTC: &str = "/dev/rtc0";

/// The kernel's uevent multicast group (user space's udev sends on others).
const KERNEL_GROUP: u32 = 1;

/// The uevent socket, opened on first use, in PID 1 only (host tests of the
/// supervisor must not react to the host's uevents); `None` when it cannot
/// be opened (logged once).
pub fn socket() -> Option<BorrowedFd<'static>> {
    static SOCKET: OnceLock<Option<OwnedFd>> = OnceLock::new();
    SOCKET
        .get_or_init(|| {
            if std::process::id() != 1 {
                return None;
            }
            open().map_err(|e| crate::warn!("{e}")).ok()
        })
        .as_ref()
        .map(|fd| fd.as_fd())
}

fn open() -> Result<OwnedFd, String> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .map_err(|e| format!("socket(NETLINK_KOBJECT_UEVENT): {e:?}"))?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &socket::NetlinkAddr::new(0, KERNEL_GROUP),
    )
    .map_err(|e| format!("bind NETLINK_KOBJECT_UEVENT group {KERNEL_GROUP}: {e:?}"))?;
    Ok(fd)
}

/// Whether a uevent datagram (`ACTION@DEVPATH\0KEY=VALUE\0…`, as the
/// kernel sends them) announces a new VM generation.
pub fn is_new_generation(msg: &[u8]) -> bool {
    let mut fields = msg.split(|&b| b == 0);
    let Some(head) = fields.next() else {
        return false;
    };
    // udev's re-broadcasts start with "libudev\0" and a binary header.
    if !head.starts_with(b"change@") {
        return false;
    }
    let (mut change, mut new) = (false, false);
    for f in fields {
        change |= f == b"ACTION=change";
        new |= f == b"NEW_VMGENID=1";
    }
    change && new
}

/// Reads every waiting uevent (the socket is non-blocking); on a new
/// generation, logs it and steps the clock from the RTC.
pub fn drain() {
    let Some(fd) = socket() else { return };
    let mut buf = vec![0u8; 8192];
    let mut changed = false;
    loop {
        match socket::recvfrom::<socket::NetlinkAddr>(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &mut buf,
        ) {
            // Only the kernel's own (sender port 0): a root process of the
            // VM could multicast a forged one to the group.
            Ok((n, Some(from))) if from.pid() == 0 => {
                changed |= is_new_generation(&buf[..n.min(buf.len())]);
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            // EAGAIN: drained. ENOBUFS: uevents were lost while the init was
            // busy; the ones still queued are read on the next round.
            Err(_) => break,
        }
    }
    if changed {
        crate::info!("vm generation changed");
        step_from_rtc();
    }
}

/// Sets CLOCK_REALTIME to the RTC's time and logs the step.
fn step_from_rtc() {
    let rtc = match std::fs::File::open(RTC) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::info!("no {RTC}: clock not stepped");
            return;
        }
        Err(e) => return crate::warn!("open {RTC}: {e}"),
    };
    let t = match crate::sys::rtc::read(rtc.as_fd()) {
        Ok(t) => t,
        Err(e) => return crate::warn!("RTC_RD_TIME on {RTC}: {e}"),
    };
    let Some(secs) = epoch_seconds(&t) else {
        return crate::warn!("RTC_RD_TIME on {RTC}: not a date: {t:?}");
    };
    let now = match clock_gettime(ClockId::CLOCK_REALTIME) {
        Ok(n) => n,
        Err(e) => return crate::warn!("clock_gettime(CLOCK_REALTIME): {e:?}"),
    };
    // The RTC counts whole seconds: its time is somewhere in that second,
    // so the clock goes to the second's middle (at most 0.5 s off).
    let to = nix::sys::time::TimeSpec::new(secs, 500_000_000);
    let step_ms = (to.tv_sec() - now.tv_sec()) * 1000 + (to.tv_nsec() - now.tv_nsec()) / 1_000_000;
    if step_ms.abs() < 1000 {
        crate::info!("clock within 1 s of the RTC ({step_ms} ms): not stepped");
        return;
    }
    match clock_settime(ClockId::CLOCK_REALTIME, to) {
        Ok(()) => crate::info!("clock stepped by {step_ms} ms from {RTC}"),
        Err(e) => crate::warn!("clock_settime(CLOCK_REALTIME): {e:?}"),
    }
}

/// Seconds since the Epoch of an RTC time (UTC), or `None` when a field is
/// out of range. Days from the civil date: H. Hinnant's `days_from_civil`.
fn epoch_seconds(t: &crate::sys::rtc::RtcTime) -> Option<i64> {
    if !(0..12).contains(&t.mon)
        || !(1..=31).contains(&t.mday)
        || !(0..24).contains(&t.hour)
        || !(0..60).contains(&t.min)
        || !(0..61).contains(&t.sec)
        || t.year < 70
    {
        return None;
    }
    let (m, d) = (i64::from(t.mon) + 1, i64::from(t.mday));
    let y = i64::from(t.year) + 1900 - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.min) * 60 + i64::from(t.sec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::rtc::RtcTime;

    /// What Linux 6.1's vmgenid driver sends (`kobject_uevent_env` on the
    /// ACPI device, `KOBJ_CHANGE`, `NEW_VMGENID=1`), byte for byte.
    const VMGENID_EVENT: &[u8] = b"change@/devices/LNXSYSTM:00/LNXSYBUS:00/QEMUVGID:00\0\
ACTION=change\0DEVPATH=/devices/LNXSYSTM:00/LNXSYBUS:00/QEMUVGID:00\0\
SUBSYSTEM=acpi\0NEW_VMGENID=1\0MODALIAS=acpi:QEMUVGID:VM_GEN_COUNTER:\0SEQNUM=1234\0";

    #[test]
    fn only_the_kernels_new_generation_event_counts() {
        assert!(is_new_generation(VMGENID_EVENT));
        // Without the trailing NUL too.
        assert!(is_new_generation(&VMGENID_EVENT[..VMGENID_EVENT.len() - 1]));
        // Another change event of the same device, an add, udev's copy.
        assert!(!is_new_generation(
            b"change@/devices/x\0ACTION=change\0DEVPATH=/devices/x\0SEQNUM=2\0"
        ));
        assert!(!is_new_generation(
            b"add@/devices/x\0ACTION=add\0NEW_VMGENID=1\0"
        ));
        assert!(!is_new_generation(
            b"libudev\0\xfe\xed\xca\xfe\0ACTION=change\0NEW_VMGENID=1\0"
        ));
        // A value that only starts like it.
        assert!(!is_new_generation(
            b"change@/devices/x\0ACTION=change\0NEW_VMGENID=10\0"
        ));
        assert!(!is_new_generation(b""));
    }

    #[test]
    fn rtc_time_to_epoch_seconds() {
        let t = |year, mon, mday, hour, min, sec| RtcTime {
            year,
            mon,
            mday,
            hour,
            min,
            sec,
            ..RtcTime::default()
        };
        assert_eq!(epoch_seconds(&t(70, 0, 1, 0, 0, 0)), Some(0));
        // 2023-11-14 22:13:20 UTC
        assert_eq!(
            epoch_seconds(&t(123, 10, 14, 22, 13, 20)),
            Some(1_700_000_000)
        );
        // 2024-02-29 12:00:00 UTC (a leap day)
        assert_eq!(epoch_seconds(&t(124, 1, 29, 12, 0, 0)), Some(1_709_208_000));
        assert_eq!(epoch_seconds(&t(124, 12, 1, 0, 0, 0)), None);
        assert_eq!(epoch_seconds(&t(69, 0, 1, 0, 0, 0)), None);
    }
}
