//! Reading whole initramfs images: segments walked exactly as the kernel's
//! `unpack_to_rootfs()` does, every length checked against the data that is
//! really there, every allocation bounded by the input or by [`Limits`].
//!
//! The kernel's walk: at a 4-byte aligned offset, a `0` starts an
//! uncompressed archive, which runs up to its `TRAILER!!!`; zero bytes
//! between segments are padding; anything else must be a compressed stream
//! whose decompressed contents are one or more complete archives (zero
//! padding allowed between and after them). The stream's end starts the
//! next segment.

use super::{align4, Entry, HEADER_LEN, S_IFLNK, S_IFMT, S_IFREG, TRAILER};
use crate::compress::{self, Compression, DecompressError};
use std::fmt;
use thiserror::Error;

/// One archive of an image: an uncompressed cpio, or one compressed stream
/// (which may itself hold several concatenated archives).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Byte offset of the segment in the image.
    pub offset: u64,
    /// How the segment is stored.
    pub compression: Compression,
    /// Bytes of the image the segment occupies (for an uncompressed one: up
    /// to the end of its trailer; zero padding after it is not counted).
    pub compressed_len: u64,
    /// The entries in archive order, trailers left out; names exactly as
    /// stored (GNU cpio's `./bin` keeps its `./`).
    pub entries: Vec<Entry>,
}

/// Bounds on what reading an image may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Total decompressed bytes over all compressed segments. Default: 4 GiB.
    pub max_total: u64,
    /// Longest name or symlink target, NUL included. Default: 4096
    /// (`PATH_MAX`, which the kernel also enforces).
    pub max_name: usize,
    /// Entries over all segments. Default: 1 000 000.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total: 4 << 30,
            max_name: 4096,
            max_entries: 1_000_000,
        }
    }
}

/// What went wrong, and where inside the segment.
#[derive(Debug, Error)]
pub enum Problem {
    /// Fewer than 110 bytes left for a header.
    #[error("header at offset {at}: truncated, {have} of 110 bytes")]
    TruncatedHeader { at: u64, have: usize },
    /// The header does not start with `070701` or `070702`.
    #[error("header at offset {at}: bad magic {found:?} (expected 070701 or 070702, as written by `cpio -H newc`)")]
    BadMagic { at: u64, found: String },
    /// A header field is not 8 hex digits.
    #[error("header at offset {at}: field {field} is not 8 hex digits: {value:?}")]
    BadField {
        at: u64,
        field: &'static str,
        value: String,
    },
    /// `namesize` is 0: not even the NUL.
    #[error("header at offset {at}: name size 0")]
    EmptyName { at: u64 },
    /// `namesize` is over [`Limits::max_name`].
    #[error("header at offset {at}: name size {size} over the limit of {max}")]
    NameTooLong { at: u64, size: u64, max: usize },
    /// The name goes past the end of the data.
    #[error("header at offset {at}: name of {size} bytes runs past end of data")]
    NamePastEnd { at: u64, size: u64 },
    /// The name's last byte is not NUL.
    #[error("entry {name:?} at offset {at}: name is not NUL-terminated")]
    NameNotTerminated { at: u64, name: String },
    /// A NUL before the end of the name.
    #[error("entry {name:?} at offset {at}: name contains a NUL byte")]
    NameHasNul { at: u64, name: String },
    /// The name is not UTF-8.
    #[error("entry {name:?} at offset {at}: name is not UTF-8")]
    NameNotUtf8 { at: u64, name: String },
    /// The data goes past the end of the segment.
    #[error("entry {name:?} at offset {at}: file size {size} runs past end of data")]
    DataPastEnd { at: u64, name: String, size: u64 },
    /// A symlink target over [`Limits::max_name`].
    #[error(
        "entry {name:?} at offset {at}: symlink target of {size} bytes over the limit of {max}"
    )]
    TargetTooLong {
        at: u64,
        name: String,
        size: u64,
        max: usize,
    },
    /// A `070702` entry whose data does not match its checksum.
    #[error("entry {name:?} at offset {at}: data checksum {actual:#010x} does not match header {expected:#010x}")]
    BadChecksum {
        at: u64,
        name: String,
        expected: u32,
        actual: u32,
    },
    /// More entries than [`Limits::max_entries`].
    #[error("entry at offset {at}: more than {max} entries")]
    TooManyEntries { at: u64, max: usize },
    /// The data ends before `TRAILER!!!`.
    #[error("archive ends at offset {at} without TRAILER!!!")]
    MissingTrailer { at: u64 },
    /// Inside a decompressed stream, after an archive: neither zero padding
    /// nor another archive (the kernel's "junk within compressed archive").
    #[error("junk at offset {at} after an archive's trailer (byte {byte:#04x})")]
    Junk { at: u64, byte: u8 },
    /// A header starting at an offset that is not a multiple of 4.
    #[error("cpio header at unaligned offset (the kernel reads headers only at multiples of 4)")]
    Unaligned,
    /// A compressed segment in a format mkrootfs cannot read.
    #[error("compressed segment in {0}")]
    Unsupported(&'static str),
    /// Neither a cpio header nor a known compression magic.
    #[error("unrecognised data {0}: not a cpio header nor compressed data the kernel unpacks (gzip, bzip2, lzma, xz, lzo, lz4, zstd)")]
    UnknownFormat(String),
    /// No archive at all: an empty file, or only zero bytes.
    #[error("no cpio archive: {0}")]
    NoArchive(&'static str),
    /// A compressed stream, first in the image, holding only zero bytes:
    /// the kernel reads them as a header ("no cpio magic").
    #[error("the compressed data holds only zero bytes, no cpio archive")]
    OnlyZeros,
    /// The compressed stream could not be decompressed.
    #[error(transparent)]
    Decompress(DecompressError),
}

/// An image that cannot be read: the segment (numbered from 1) and its
/// offset in the image, then the problem.
#[derive(Debug)]
pub struct CpioError {
    /// Segment number, from 1.
    pub segment: usize,
    /// Byte offset of the segment in the image.
    pub offset: u64,
    /// Compression of the segment.
    pub compression: Compression,
    /// What went wrong.
    pub problem: Problem,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let zipped = if self.compression == Compression::None {
            String::new()
        } else {
            format!(" ({}, offsets decompressed)", self.compression)
        };
        write!(
            f,
            "segment {} at byte {}{zipped}: {}",
            self.segment, self.offset, self.problem
        )
    }
}

impl std::error::Error for CpioError {
    // The problem is already in the message; its own cause (a decoder's
    // error) comes next in the chain.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.problem)
    }
}

/// Reads every segment of an initramfs image.
pub fn read_archive(bytes: &[u8], limits: &Limits) -> Result<Vec<Segment>, CpioError> {
    let mut segments = Vec::new();
    let mut budget = Budget {
        limits,
        entries: 0,
        total: 0,
    };
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest[0] == 0 {
            pos += 1;
            continue;
        }
        let fail = |compression, problem| CpioError {
            segment: segments.len() + 1,
            offset: pos as u64,
            compression,
            problem,
        };
        // Like the kernel, any '0' starts a cpio header (so that a wrong
        // cpio format gets a precise error), but only at a multiple of 4.
        let format = match rest[0] {
            b'0' => Some(Compression::None),
            _ => compress::detect(rest),
        };
        match format {
            Some(Compression::None) if !pos.is_multiple_of(4) => {
                return Err(fail(Compression::None, Problem::Unaligned))
            }
            Some(Compression::None) => {
                // Offsets in an uncompressed segment are the image's.
                let mut entries = Vec::new();
                let end = read_one(bytes, pos, &mut budget, &mut entries)
                    .map_err(|p| fail(Compression::None, p))?;
                segments.push(Segment {
                    offset: pos as u64,
                    compression: Compression::None,
                    compressed_len: (end - pos) as u64,
                    entries,
                });
                pos = end;
            }
            Some(c) => {
                let remaining = limits.max_total.saturating_sub(budget.total);
                let (data, used) = compress::decompress(rest, c, remaining)
                    .map_err(|e| fail(c, Problem::Decompress(e)))?;
                budget.total += data.len() as u64;
                // The kernel skips zeros at the start of a stream only
                // after another archive (its state is then Reset).
                if segments.is_empty() && !data.is_empty() && data.iter().all(|b| *b == 0) {
                    return Err(fail(c, Problem::OnlyZeros));
                }
                let entries = read_stream(&data, &mut budget).map_err(|p| fail(c, p))?;
                segments.push(Segment {
                    offset: pos as u64,
                    compression: c,
                    compressed_len: used as u64,
                    entries,
                });
                // A decoder always uses at least its magic; never loop.
                pos += used.max(1);
            }
            None => {
                let problem = match compress::unsupported_name(rest) {
                    Some(name) => Problem::Unsupported(name),
                    None => Problem::UnknownFormat(hex_prefix(rest)),
                };
                return Err(fail(Compression::None, problem));
            }
        }
    }
    if segments.is_empty() {
        let why = if bytes.is_empty() {
            "the image is empty"
        } else {
            "the image holds only zero bytes"
        };
        return Err(CpioError {
            segment: 1,
            offset: 0,
            compression: Compression::None,
            problem: Problem::NoArchive(why),
        });
    }
    Ok(segments)
}

/// What is left of the limits while reading.
struct Budget<'a> {
    limits: &'a Limits,
    entries: usize,
    total: u64,
}

fn hex_prefix(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    shown.join(" ")
}

/// The contents of a compressed stream: archives, each possibly followed by
/// zero padding, up to the end (the kernel's `flush_buffer()`).
fn read_stream(data: &[u8], budget: &mut Budget) -> Result<Vec<Entry>, Problem> {
    let mut entries = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        match data[pos] {
            0 => pos += 1,
            b'0' if pos.is_multiple_of(4) => pos = read_one(data, pos, budget, &mut entries)?,
            byte => {
                return Err(Problem::Junk {
                    at: pos as u64,
                    byte,
                })
            }
        }
    }
    if pos == 0 {
        // An empty stream holds no archive: the kernel's state is not Reset.
        return Err(Problem::MissingTrailer { at: 0 });
    }
    Ok(entries)
}

const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

fn parse_fields(head: &[u8], at: u64) -> Result<[u32; 13], Problem> {
    let mut fields = [0u32; 13];
    for (i, field) in fields.iter_mut().enumerate() {
        let raw = &head[6 + 8 * i..14 + 8 * i];
        let bad = || Problem::BadField {
            at,
            field: FIELDS[i],
            value: String::from_utf8_lossy(raw).into_owned(),
        };
        // from_str_radix would accept a leading '+'.
        if !raw.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        let text = std::str::from_utf8(raw).map_err(|_| bad())?;
        *field = u32::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(fields)
}

/// Reads one archive starting at `start`, up to and including its trailer;
/// returns the offset just after the trailer's padding.
fn read_one(
    data: &[u8],
    start: usize,
    budget: &mut Budget,
    entries: &mut Vec<Entry>,
) -> Result<usize, Problem> {
    let limits = budget.limits;
    let len = data.len() as u64;
    let mut pos = start as u64;
    loop {
        let at = pos;
        if pos >= len {
            return Err(Problem::MissingTrailer { at });
        }
        let rest = &data[pos as usize..];
        if rest.len() < HEADER_LEN {
            return Err(Problem::TruncatedHeader {
                at,
                have: rest.len(),
            });
        }
        let head = &rest[..HEADER_LEN];
        let crc = match &head[..6] {
            b"070701" => false,
            b"070702" => true,
            magic => {
                return Err(Problem::BadMagic {
                    at,
                    found: String::from_utf8_lossy(magic).into_owned(),
                })
            }
        };
        let f = parse_fields(head, at)?;
        let (filesize, namesize) = (u64::from(f[6]), u64::from(f[11]));
        if namesize == 0 {
            return Err(Problem::EmptyName { at });
        }
        if namesize > limits.max_name as u64 {
            return Err(Problem::NameTooLong {
                at,
                size: namesize,
                max: limits.max_name,
            });
        }
        let name_start = pos + HEADER_LEN as u64;
        let name_end = name_start + namesize;
        if name_end > len {
            return Err(Problem::NamePastEnd { at, size: namesize });
        }
        let raw = &data[name_start as usize..name_end as usize];
        let shown = || String::from_utf8_lossy(&raw[..raw.len() - 1]).into_owned();
        if raw[raw.len() - 1] != 0 {
            return Err(Problem::NameNotTerminated { at, name: shown() });
        }
        let raw_name = &raw[..raw.len() - 1];
        if raw_name.contains(&0) {
            return Err(Problem::NameHasNul { at, name: shown() });
        }
        let name = std::str::from_utf8(raw_name)
            .map_err(|_| Problem::NameNotUtf8 { at, name: shown() })?
            .to_string();
        let data_start = align4(name_end);
        let data_end = data_start + filesize;
        if data_end > len {
            if filesize == 0 && name == TRAILER {
                // A trailer whose padding was cut off: nothing is missing.
                return Ok(data.len());
            }
            return Err(Problem::DataPastEnd {
                at,
                name,
                size: filesize,
            });
        }
        pos = align4(data_end).min(len);
        if name == TRAILER {
            return Ok(pos as usize);
        }
        let mode = f[1];
        let body = &data[data_start as usize..data_end as usize];
        if mode & S_IFMT == S_IFLNK && filesize > limits.max_name as u64 {
            return Err(Problem::TargetTooLong {
                at,
                name,
                size: filesize,
                max: limits.max_name,
            });
        }
        if crc && mode & S_IFMT == S_IFREG {
            let actual = body
                .iter()
                .fold(0u32, |sum, b| sum.wrapping_add(u32::from(*b)));
            if actual != f[12] {
                return Err(Problem::BadChecksum {
                    at,
                    name,
                    expected: f[12],
                    actual,
                });
            }
        }
        if budget.entries >= limits.max_entries {
            return Err(Problem::TooManyEntries {
                at,
                max: limits.max_entries,
            });
        }
        budget.entries += 1;
        entries.push(Entry {
            name,
            mode,
            uid: f[2],
            gid: f[3],
            nlink: f[4],
            mtime: f[5],
            ino: f[0],
            dev: (f[7], f[8]),
            rdev: (f[9], f[10]),
            data: body.to_vec(),
        });
    }
}
