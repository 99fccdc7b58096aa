//! The cpio "newc" format as the Linux kernel unpacks it (init/initramfs.c):
//! a writer for one archive, and a reader for whole initramfs images made of
//! several segments, each optionally compressed.
//!
//! Format: each entry is a 110-byte header (`070701` and 13 fields of 8 hex
//! digits), the NUL-terminated name padded to 4 bytes, then the data padded to
//! 4 bytes. An entry named `TRAILER!!!` ends the archive. The reader also
//! accepts `070702` (the same with a checksum of the file data in `check`).

use std::io::{self, Write};

mod read;
pub use read::{read_archive, CpioError, Limits, Problem, Segment};

/// One archive member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image, without a leading `/` (`bin/sh`). The writer
    /// never writes `.`: the kernel's rootfs already exists.
    pub name: String,
    /// Full `st_mode`: file type (`S_IFMT` bits) and permissions.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count; hard links need `nlink >= 2` and a shared `ino`.
    pub nlink: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    /// Inode number; the kernel pairs hard links by (dev, ino).
    pub ino: u32,
    /// Device of the file (major, minor); part of the hard-link key.
    pub dev: (u32, u32),
    /// Device number of a char or block device (major, minor).
    pub rdev: (u32, u32),
    /// File contents, or the target of a symlink. Empty for directories,
    /// devices and fifos, and for every hard link but the last of its group.
    pub data: Vec<u8>,
}

/// File type bits of `st_mode`, as in `<sys/stat.h>` (same on every Linux
/// architecture, and in the cpio header).
pub const S_IFMT: u32 = 0o170000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Block device.
pub const S_IFBLK: u32 = 0o060000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;
/// Fifo.
pub const S_IFIFO: u32 = 0o010000;

/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
/// Size of a newc header.
pub const HEADER_LEN: usize = 110;

impl Entry {
    /// The file type bits of `mode`.
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
}

/// Rounds up to the next multiple of 4.
pub(crate) fn align4(n: u64) -> u64 {
    n.saturating_add(3) & !3
}

fn invalid(name: &str, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("cpio entry {name:?}: {what}"),
    )
}

/// Writes one header, name and data with their padding; returns the bytes
/// written.
fn write_entry<W: Write>(out: &mut W, e: &Entry) -> io::Result<u64> {
    let filesize = u32::try_from(e.data.len())
        .map_err(|_| invalid(&e.name, "data larger than 4 GiB (newc sizes are 32-bit)"))?;
    // namesize counts the NUL.
    let namesize =
        u32::try_from(e.name.len() + 1).map_err(|_| invalid(&e.name, "name longer than 4 GiB"))?;
    let fields = [
        e.ino, e.mode, e.uid, e.gid, e.nlink, e.mtime, filesize, e.dev.0, e.dev.1, e.rdev.0,
        e.rdev.1, namesize, 0,
    ];
    let mut head = Vec::with_capacity(HEADER_LEN + e.name.len() + 4);
    head.extend_from_slice(b"070701");
    for f in fields {
        // Upper-case hex like GNU cpio and the kernel's gen_init_cpio.
        head.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    head.extend_from_slice(e.name.as_bytes());
    head.push(0);
    let padded = align4(head.len() as u64) as usize;
    head.resize(padded, 0);
    out.write_all(&head)?;
    out.write_all(&e.data)?;
    let data_pad = (align4(e.data.len() as u64) - e.data.len() as u64) as usize;
    out.write_all(&[0u8; 3][..data_pad])?;
    Ok(padded as u64 + e.data.len() as u64 + data_pad as u64)
}

/// Writes `entries` as one newc archive ending with `TRAILER!!!`, and
/// returns the number of bytes written (a multiple of 4, so that another
/// segment may follow directly).
///
/// Entries are written in the given order; an entry named `.` is skipped.
/// Names must be relative (no leading `/`), non-empty and without NUL.
pub fn write_archive<W: Write>(out: &mut W, entries: &[Entry]) -> io::Result<u64> {
    let mut total = 0;
    for e in entries {
        if e.name == "." {
            continue;
        }
        if e.name.is_empty() || e.name.starts_with('/') || e.name.contains('\0') {
            return Err(invalid(
                &e.name,
                "name must be relative, non-empty and without NUL",
            ));
        }
        if e.name == TRAILER {
            return Err(invalid(&e.name, "name would end the archive early"));
        }
        total += write_entry(out, e)?;
    }
    let trailer = Entry {
        name: TRAILER.to_string(),
        nlink: 1,
        ..Entry::default()
    };
    total += write_entry(out, &trailer)?;
    Ok(total)
}

#[cfg(test)]
mod tests;
