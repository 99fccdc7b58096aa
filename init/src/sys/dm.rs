//! The device-mapper control interface (`include/uapi/linux/dm-ioctl.h`):
//! one `struct dm_ioctl` header, optionally followed by target specs, sent
//! with `ioctl` on `/dev/mapper/control`. Just what the verity root needs:
//! create a device, load a one-target table, resume it.

use std::io;
use std::os::fd::AsRawFd;

/// `sizeof(struct dm_ioctl)`.
const HEADER: usize = 312;
/// `sizeof(struct dm_target_spec)`.
const SPEC: usize = 40;
const NAME_LEN: usize = 128;
/// The interface version we speak (the kernel accepts any 4.x up to its own).
const VERSION: [u32; 3] = [4, 0, 0];

/// `_IOWR(0xfd, nr, struct dm_ioctl)`.
const fn iowr(nr: u32) -> u32 {
    (3 << 30) | ((HEADER as u32) << 16) | (0xfd << 8) | nr
}
const DM_DEV_CREATE: u32 = iowr(3);
const DM_DEV_SUSPEND: u32 = iowr(6);
const DM_TABLE_LOAD: u32 = iowr(9);
/// `DM_READONLY_FLAG`.
pub const READONLY: u32 = 1;

/// A header for device `name` with `flags`, and room for `extra` bytes.
fn header(name: &str, flags: u32, extra: usize) -> io::Result<Vec<u8>> {
    if name.len() >= NAME_LEN {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    let size = HEADER + extra;
    let mut b = vec![0u8; size];
    for (i, v) in VERSION.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    b[12..16].copy_from_slice(&(size as u32).to_ne_bytes()); // data_size
    b[16..20].copy_from_slice(&(HEADER as u32).to_ne_bytes()); // data_start
    b[28..32].copy_from_slice(&flags.to_ne_bytes());
    b[48..48 + name.len()].copy_from_slice(name.as_bytes());
    Ok(b)
}

/// Sends one request; the kernel writes its answer into `buf`.
fn call(control: &std::fs::File, request: u32, buf: &mut [u8]) -> io::Result<()> {
    // The kernel reads and writes at most data_size (= buf.len()) bytes.
    debug_assert!(buf.len() >= HEADER);
    // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes whose
    // header says exactly that size, as the dm ioctls require; the kernel
    // copies it in and out and keeps no reference.
    let rc = unsafe {
        libc::ioctl(
            control.as_raw_fd(),
            request as libc::Ioctl,
            buf.as_mut_ptr(),
        )
    };
    super::check(rc).map(drop)
}

/// `DM_DEV_CREATE`: a new (empty, suspended) device; returns its
/// `(major, minor)`.
pub fn create(control: &std::fs::File, name: &str) -> io::Result<(u32, u32)> {
    let mut b = header(name, 0, 0)?;
    call(control, DM_DEV_CREATE, &mut b)?;
    let dev = u64::from_ne_bytes(b[40..48].try_into().expect("8 bytes"));
    Ok((libc::major(dev), libc::minor(dev)))
}

/// `DM_TABLE_LOAD` of one target `(start, length, type, params)` in sectors.
pub fn load(
    control: &std::fs::File,
    name: &str,
    flags: u32,
    (start, length, kind, params): (u64, u64, &str, &str),
) -> io::Result<()> {
    // The spec, the parameters and their NUL, padded to 8 bytes.
    let extra = (SPEC + params.len() + 1).div_ceil(8) * 8;
    let mut b = header(name, flags, extra)?;
    b[20..24].copy_from_slice(&1u32.to_ne_bytes()); // target_count
    let s = HEADER;
    b[s..s + 8].copy_from_slice(&start.to_ne_bytes());
    b[s + 8..s + 16].copy_from_slice(&length.to_ne_bytes());
    b[s + 20..s + 24].copy_from_slice(&(extra as u32).to_ne_bytes()); // next
    if kind.len() >= 16 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    b[s + 24..s + 24 + kind.len()].copy_from_slice(kind.as_bytes());
    b[s + SPEC..s + SPEC + params.len()].copy_from_slice(params.as_bytes());
    call(control, DM_TABLE_LOAD, &mut b)
}

/// `DM_DEV_SUSPEND` without `DM_SUSPEND_FLAG`: resume, which makes the
/// loaded table live.
pub fn resume(control: &std::fs::File, name: &str) -> io::Result<()> {
    let mut b = header(name, 0, 0)?;
    call(control, DM_DEV_SUSPEND, &mut b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_are_the_kernels() {
        assert_eq!(DM_DEV_CREATE, 0xc138_fd03);
        assert_eq!(DM_DEV_SUSPEND, 0xc138_fd06);
        assert_eq!(DM_TABLE_LOAD, 0xc138_fd09);
    }

    #[test]
    fn header_layout() {
        let b = header("root", READONLY, 8).unwrap();
        assert_eq!(b.len(), 320);
        assert_eq!(&b[0..4], &4u32.to_ne_bytes());
        assert_eq!(&b[12..16], &320u32.to_ne_bytes());
        assert_eq!(&b[16..20], &312u32.to_ne_bytes());
        assert_eq!(&b[28..32], &1u32.to_ne_bytes());
        assert_eq!(&b[48..52], b"root");
        assert!(header(&"x".repeat(128), 0, 0).is_err());
    }
}
