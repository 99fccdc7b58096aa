//! The boot-timer signal of microVM monitors: one byte written to a device
//! address at the moment the main service is exec'd, so that the monitor
//! logs how long the guest took to boot. Off unless the kernel command line
//! asks for it (`mkrootfs.boot_timer=`, see docs/init.md):
//!
//! - Firecracker (`--boot-timer`) logs `Guest-boot-time = … us` on a write
//!   of 123 to its boot-timer device: MMIO at the first device slot,
//!   0xc0000000 on x86_64 since v1.13 (0xd0000000 from v0.23 to v1.12,
//!   0x40000000 on aarch64), the I/O port 0x3f0 up to v0.22.
//! - Cloud Hypervisor logs a timestamp for every write to its debug port
//!   0x80, with codes 0x60-0x7f marked "Userspace".

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static ARMED: OnceLock<BootTimer> = OnceLock::new();
static FIRED: AtomicBool = AtomicBool::new(false);

/// Remembers the boot timer the command line asked for.
pub fn arm(t: BootTimer) {
    let _ = ARMED.set(t);
}

/// Signals the armed boot timer, the first time only: called when the main
/// service has been exec'd, or just before PID 1 is handed to the root's
/// own init.
pub fn fire() {
    if let Some(t) = ARMED.get() {
        if !FIRED.swap(true, Ordering::Relaxed) {
            signal(*t);
        }
    }
}

/// The value Firecracker's boot timer waits for
/// (`MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE`).
pub const FIRECRACKER_VALUE: u8 = 123;
/// Firecracker's boot-timer device on x86_64 since v1.13
/// (`BOOT_DEVICE_MEM_START` = `MMIO32_MEM_START` = 4 GiB - 1 GiB).
pub const FIRECRACKER_MMIO: u64 = 0xc000_0000;

/// Where the byte goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootTimer {
    /// A physical address, written through `/dev/mem`.
    Mmio { addr: u64, value: u8 },
    /// An x86 I/O port (`outb`).
    Pio { port: u16, value: u8 },
}

impl fmt::Display for BootTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootTimer::Mmio { addr, value } => write!(f, "byte {value} to MMIO {addr:#x}"),
            BootTimer::Pio { port, value } => write!(f, "byte {value} to I/O port {port:#x}"),
        }
    }
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses the value of `mkrootfs.boot_timer=`: `firecracker` (MMIO
/// 0xc0000000, byte 123), `mmio:<addr>[:<byte>]`, `pio:<port>[:<byte>]`
/// (numbers in hex `0x…` or decimal; byte default 123), or `off`.
/// `Ok(None)` means off.
pub fn parse(v: &str) -> Result<Option<BootTimer>, String> {
    let bad = || {
        format!(
            "mkrootfs.boot_timer={v}: expected firecracker, mmio:<addr>[:<byte>], pio:<port>[:<byte>] or off, ignored"
        )
    };
    match v {
        "off" | "no" | "0" => return Ok(None),
        "firecracker" => {
            return Ok(Some(BootTimer::Mmio {
                addr: FIRECRACKER_MMIO,
                value: FIRECRACKER_VALUE,
            }))
        }
        _ => {}
    }
    let mut parts = v.split(':');
    let kind = parts.next().unwrap_or("");
    let at = parts.next().and_then(number).ok_or_else(bad)?;
    let value = match parts.next() {
        None => FIRECRACKER_VALUE,
        Some(b) => number(b)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(bad)?,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    match kind {
        "mmio" => Ok(Some(BootTimer::Mmio { addr: at, value })),
        "pio" => Ok(Some(BootTimer::Pio {
            port: u16::try_from(at).map_err(|_| bad())?,
            value,
        })),
        _ => Err(bad()),
    }
}

/// Writes the byte; a failure is logged (the boot goes on).
pub fn signal(t: BootTimer) {
    let r = match t {
        BootTimer::Mmio { addr, value } => crate::sys::mmio_write_byte(addr, value),
        BootTimer::Pio { port, value } => crate::sys::outb(port, value),
    };
    match r {
        Ok(()) => crate::debug!("boot timer: wrote {t}"),
        Err(e) => crate::warn!("boot timer: write {t}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(
            parse("firecracker"),
            Ok(Some(BootTimer::Mmio {
                addr: 0xc000_0000,
                value: 123
            }))
        );
        assert_eq!(
            parse("mmio:0xd0000000"),
            Ok(Some(BootTimer::Mmio {
                addr: 0xd000_0000,
                value: 123
            }))
        );
        assert_eq!(
            parse("pio:0x3f0"),
            Ok(Some(BootTimer::Pio {
                port: 0x3f0,
                value: 123
            }))
        );
        assert_eq!(
            parse("pio:128:0x60"),
            Ok(Some(BootTimer::Pio {
                port: 0x80,
                value: 0x60
            }))
        );
        assert_eq!(parse("off"), Ok(None));
    }

    #[test]
    fn bad_values_are_named() {
        for v in [
            "mmio",
            "mmio:zz",
            "pio:0x10000",
            "pio:0x80:256",
            "mmio:1:2:3",
            "port:0x80",
        ] {
            assert_eq!(
                parse(v),
                Err(format!("mkrootfs.boot_timer={v}: expected firecracker, mmio:<addr>[:<byte>], pio:<port>[:<byte>] or off, ignored")),
                "{v}"
            );
        }
    }

    #[test]
    fn display_names_the_target() {
        let t = BootTimer::Mmio {
            addr: 0xc000_0000,
            value: 123,
        };
        assert_eq!(t.to_string(), "byte 123 to MMIO 0xc0000000");
        let t = BootTimer::Pio {
            port: 0x3f0,
            value: 123,
        };
        assert_eq!(t.to_string(), "byte 123 to I/O port 0x3f0");
    }
}
