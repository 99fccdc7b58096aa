//! The cpio "newc" format as the Linux kernel unpacks it (init/initramfs.c):
//! a writer for one archive, and a reader for whole initramfs images made of
//! several segments, each optionally compressed.
//!
//! Format: each entry is a 110-byte header (`070701` and 13 fields of 8 hex
//! digits), the NUL-terminated name padded to 4 bytes, then the data padded to
//! 4 bytes. An entry named `TRAILER!!!` ends the archive. The reader also
//! accepts `070702` (the same with a checksum of the file data in `check`).
//!
//! Why not the `cpio` crate (0.4.2, the current release), which the design
//! names: its newc writer formats the header fields as lower-case hex
//! (`{:08x}`) where GNU cpio, the kernel's `usr/gen_init_cpio.c` and our
//! golden bytes use upper case, so every image would change; its reader
//! takes an `io::Read`, with no offsets in its errors and none of our limits
//! or multi-segment handling. Names that are not UTF-8 (the kernel takes any
//! bytes but NUL) it refuses, as `Entry::name` here does too. The crate is a
//! dev-dependency: the `cpio_crate_*` tests in `cpio/tests.rs` show each
//! point and check that its reader reads what we write.

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

/// Bytes one entry takes in an archive: header and name padded to 4 bytes,
/// then the data padded to 4 bytes.
pub fn entry_len(name: &str, data_len: u64) -> u64 {
    align4(HEADER_LEN as u64 + name.len() as u64 + 1) + align4(data_len)
}

/// Bytes of the `TRAILER!!!` entry that ends every archive.
pub fn trailer_len() -> u64 {
    entry_len(TRAILER, 0)
}

/// A newc archive written entry by entry, with file data streamed in pieces
/// after its header (so a file is never held whole in memory).
pub struct Writer<W: Write> {
    out: W,
    written: u64,
    /// The entry whose data is being written, and how much is still due.
    open: Option<(String, u64, u64)>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer {
            out,
            written: 0,
            open: None,
        }
    }

    /// Writes `e` whole: header, name and `e.data`. An entry named `.` is
    /// skipped (the kernel's rootfs root already exists).
    pub fn entry(&mut self, e: &Entry) -> io::Result<()> {
        if e.name == "." {
            return Ok(());
        }
        self.header(e, e.data.len() as u64)?;
        self.data(&e.data)?;
        self.end_data()
    }

    /// Writes the header and name of `e` with a file size of `data_len`
    /// (`e.data` is ignored); [`Writer::data`] must then supply exactly
    /// that many bytes, and [`Writer::end_data`] close the entry.
    ///
    /// Names must be relative (no leading `/`), non-empty and without NUL.
    pub fn header(&mut self, e: &Entry, data_len: u64) -> io::Result<()> {
        if let Some((name, ..)) = &self.open {
            return Err(invalid(name, "data not finished before the next entry"));
        }
        if e.name.is_empty() || e.name.starts_with('/') || e.name.contains('\0') || e.name == "." {
            return Err(invalid(
                &e.name,
                "name must be relative, non-empty, not \".\" and without NUL",
            ));
        }
        if e.name == TRAILER {
            return Err(invalid(&e.name, "name would end the archive early"));
        }
        self.raw_header(e, data_len)
    }

    fn raw_header(&mut self, e: &Entry, data_len: u64) -> io::Result<()> {
        let filesize = u32::try_from(data_len)
            .map_err(|_| invalid(&e.name, "data larger than 4 GiB (newc sizes are 32-bit)"))?;
        // namesize counts the NUL.
        let namesize = u32::try_from(e.name.len() + 1)
            .map_err(|_| invalid(&e.name, "name longer than 4 GiB"))?;
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
        self.out.write_all(&head)?;
        self.written += padded as u64;
        self.open = Some((e.name.clone(), data_len, data_len));
        Ok(())
    }

    /// Writes the next piece of the open entry's data.
    pub fn data(&mut self, piece: &[u8]) -> io::Result<()> {
        let Some((name, _, due)) = &mut self.open else {
            return Err(invalid("", "data written with no entry open"));
        };
        if piece.len() as u64 > *due {
            return Err(invalid(name, "more data than its header's file size"));
        }
        *due -= piece.len() as u64;
        self.out.write_all(piece)?;
        self.written += piece.len() as u64;
        Ok(())
    }

    /// Pads the open entry's data to 4 bytes; all of it must have been
    /// written.
    pub fn end_data(&mut self) -> io::Result<()> {
        match self.open.take() {
            None => Ok(()),
            Some((name, _, due)) if due > 0 => Err(invalid(
                &name,
                &format!("{due} bytes short of its header's file size"),
            )),
            Some((_, len, _)) => {
                let pad = (align4(len) - len) as usize;
                self.out.write_all(&[0u8; 3][..pad])?;
                self.written += pad as u64;
                Ok(())
            }
        }
    }

    /// Writes `TRAILER!!!` and returns the writer and the archive's length
    /// (a multiple of 4, so that another segment may follow directly).
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.end_data()?;
        let trailer = Entry {
            name: TRAILER.to_string(),
            nlink: 1,
            ..Entry::default()
        };
        self.raw_header(&trailer, 0)?;
        self.end_data()?;
        Ok((self.out, self.written))
    }
}

/// Writes `entries` as one newc archive ending with `TRAILER!!!`, and
/// returns the number of bytes written (a multiple of 4, so that another
/// segment may follow directly).
///
/// Entries are written in the given order; an entry named `.` is skipped.
/// Names must be relative (no leading `/`), non-empty and without NUL.
pub fn write_archive<W: Write>(out: &mut W, entries: &[Entry]) -> io::Result<u64> {
    let mut w = Writer::new(out);
    for e in entries {
        w.entry(e)?;
    }
    Ok(w.finish()?.1)
}

#[cfg(test)]
mod tests;
