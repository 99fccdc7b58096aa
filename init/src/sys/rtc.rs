//! The real-time clock's one read: `RTC_RD_TIME` (rtc(4)).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `struct rtc_time` (linux/rtc.h): the fields of `struct tm`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcTime {
    pub sec: i32,
    pub min: i32,
    pub hour: i32,
    pub mday: i32,
    /// 0-11.
    pub mon: i32,
    /// Years since 1900.
    pub year: i32,
    pub wday: i32,
    pub yday: i32,
    pub isdst: i32,
}

/// `RTC_RD_TIME`: `_IOR('p', 0x09, struct rtc_time)` (36 bytes; the libc
/// crate does not define it).
const RTC_RD_TIME: libc::c_ulong = 0x8024_7009;

/// Reads the RTC's time (UTC on a VM whose monitor sets it so, as QEMU's
/// default `-rtc base=utc` does).
pub fn read(fd: BorrowedFd<'_>) -> io::Result<RtcTime> {
    let mut t = RtcTime::default();
    // SAFETY: RTC_RD_TIME writes one struct rtc_time, which t is (repr(C),
    // nine ints).
    super::check(unsafe { libc::ioctl(fd.as_raw_fd(), RTC_RD_TIME as _, &mut t) })?;
    Ok(t)
}
