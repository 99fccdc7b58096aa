//! Compression of whole images (none, gzip, xz, zstd), detection of a
//! segment's format from its magic bytes, and bounded decompression of one
//! compressed segment the way the kernel's `init/initramfs.c` consumes it:
//! every format the kernel unpacks (also bzip2, lzma and lz4, which
//! mkrootfs only reads) except lzo, for which no permissively licensed
//! decoder is at hand (the one Rust port is GPL-2.0).
//!
//! Compression is deterministic: the same input and level give the same bytes
//! on any machine, whatever its number of cores. That takes care with the
//! multithreaded encoders:
//! - liblzma's multithreaded encoder cuts the input into blocks of a fixed
//!   size; the output depends on the block size, never on the thread count,
//!   so the block size is set explicitly from the level and the input size.
//! - zstd's output with `nbWorkers >= 1` is the same for any number of
//!   workers but differs from single-threaded mode (`nbWorkers = 0`), so at
//!   least one worker is always used; the job size follows from the level
//!   and the pledged input size only.
//!
//! Kernel constraints (lib/decompress_unxz.c, lib/xz/): the xz decoder
//! checks CRC32 or nothing, never CRC64 or SHA-256, so images use
//! `--check=crc32`. The initramfs unpacker runs xz in multi-call mode
//! (`xz_dec_init(XZ_DYNALLOC, (uint32_t)-1)`): any dictionary size is
//! accepted, and the kernel allocates the dictionary size named in the stream
//! header while it unpacks. The dictionary is therefore capped at the input
//! size (rounded up to a power of two): a larger one cannot improve the ratio
//! and would only make the kernel allocate more memory at boot.
#![deny(missing_docs)]

mod decode;
mod encode;

pub use decode::{decompress, DecompressError};
pub(crate) use decode::{unlz4_legacy, Lz4Error};
#[cfg(test)]
pub(crate) use decode::{LZ4_LEGACY_BLOCK, LZ4_LEGACY_MAGIC};
pub use encode::{compress, Encoder};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// How an image (or one segment of it) is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain cpio.
    None,
    /// gzip (deflate); every kernel can read it.
    Gzip,
    /// xz with CRC32 check and LZMA2 (`CONFIG_RD_XZ`).
    Xz,
    /// zstd (`CONFIG_RD_ZSTD`, kernel 5.9 and later). Default: decompresses
    /// fastest for its ratio, and boot time is what matters.
    #[default]
    Zstd,
    /// bzip2 (`CONFIG_RD_BZIP2`): read only, never written.
    #[serde(skip_deserializing)]
    Bzip2,
    /// The legacy `.lzma` format (`CONFIG_RD_LZMA`): read only.
    #[serde(skip_deserializing)]
    Lzma,
    /// The lz4 legacy frame, `lz4 -l` (`CONFIG_RD_LZ4`; Ubuntu's default
    /// for years): read only.
    #[serde(skip_deserializing)]
    Lz4,
}

impl Compression {
    /// The lower-case name used in profiles, on the command line and in JSON.
    pub fn name(self) -> &'static str {
        self.format().name
    }

    /// The level used when none is given, chosen from measurements
    /// (docs/compression.md, `bench/levels`): the kernel unpacks zstd and
    /// gzip about as fast at any level, so the fast levels win: zstd 3
    /// (1/27 of level 19's build time for a 30% larger image) and gzip 6
    /// (level 9 takes 2.5 times as long for 0.6% less). xz is only worth
    /// choosing for the smallest image, which its fast levels lose (xz 1 is
    /// larger than zstd 19 and unpacks 2.7 times slower): xz 6.
    pub fn default_level(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 6,
            Compression::Xz => 6,
            Compression::Zstd => 3,
            Compression::Bzip2 | Compression::Lzma | Compression::Lz4 => 0,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compression name that is not one of `none`, `gzip`, `xz`, `zstd`.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown compression {0:?}: expected none, gzip, xz or zstd")]
pub struct UnknownCompression(pub String);

impl FromStr for Compression {
    type Err = UnknownCompression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCompression(s.to_string()))
    }
}

/// What mkrootfs knows about one compression format, in one row of
/// [`FORMATS`]: every list of formats (names, output extensions, detection
/// by magic) is derived from that table.
#[derive(Debug, PartialEq, Eq)]
pub struct Format {
    /// The format this row describes.
    pub compression: Compression,
    /// The lower-case name used in profiles, on the command line and in JSON.
    pub name: &'static str,
    /// Appended to `.cpio` for a default output name (`""` for none).
    pub extension: &'static str,
    /// The magic numbers a segment in this format starts with (the kernel's
    /// lib/decompress.c table; a cpio header for none).
    pub magics: &'static [&'static [u8]],
    /// Whether mkrootfs writes this format (the others it only reads).
    pub writable: bool,
    /// The levels the encoder takes (`None`: the format has no level; a
    /// profile that gives one is refused by [`crate::plan`]).
    pub levels: Option<(u32, u32)>,
}

/// One row per format, in [`Compression::READABLE`]'s order.
pub const FORMATS: [Format; 7] = [
    Format {
        compression: Compression::None,
        name: "none",
        extension: "",
        magics: &[b"070701", b"070702"],
        writable: true,
        levels: None,
    },
    Format {
        compression: Compression::Gzip,
        name: "gzip",
        extension: ".gz",
        // 1f 9e is the "old gzip" magic the kernel also accepts.
        magics: &[&[0x1f, 0x8b], &[0x1f, 0x9e]],
        writable: true,
        levels: Some((0, 9)),
    },
    Format {
        compression: Compression::Xz,
        name: "xz",
        extension: ".xz",
        magics: &[&[0xfd, b'7', b'z', b'X', b'Z', 0x00]],
        writable: true,
        levels: Some((0, 9)),
    },
    Format {
        compression: Compression::Zstd,
        name: "zstd",
        extension: ".zst",
        magics: &[&[0x28, 0xb5, 0x2f, 0xfd]],
        writable: true,
        // zstd's own maximum (ZSTD_maxCLevel), checked by a test.
        levels: Some((1, 22)),
    },
    Format {
        compression: Compression::Bzip2,
        name: "bzip2",
        extension: ".bz2",
        magics: &[b"BZh"],
        writable: false,
        levels: None,
    },
    Format {
        compression: Compression::Lzma,
        name: "lzma",
        extension: ".lzma",
        // lib/decompress.c's magic: the properties byte of `lzma -6` (lc=3,
        // lp=0, pb=2), then the low byte of the dictionary size.
        magics: &[&[0x5d, 0x00]],
        writable: false,
        levels: None,
    },
    Format {
        compression: Compression::Lz4,
        name: "lz4",
        extension: ".lz4",
        magics: &[&[0x02, 0x21, 0x4c, 0x18]],
        writable: false,
        levels: None,
    },
];

impl Compression {
    /// Every format mkrootfs writes, in the order of [`FORMATS`].
    pub const ALL: [Compression; 4] = [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
    ];

    /// Every format mkrootfs reads: [`Compression::ALL`], then the formats
    /// it only reads; the order of [`FORMATS`].
    pub const READABLE: [Compression; 7] = [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
        Compression::Bzip2,
        Compression::Lzma,
        Compression::Lz4,
    ];

    /// This format's row of [`FORMATS`].
    pub fn format(self) -> &'static Format {
        // READABLE and FORMATS share their order (checked by a test).
        &FORMATS[self as usize]
    }

    /// The output extension after `.cpio`: `""`, `.gz`, `.xz` or `.zst`.
    pub fn extension(self) -> &'static str {
        self.format().extension
    }

    /// Checks `level` against [`Format::levels`], with the encoder's message.
    pub fn check_level(self, level: u32) -> Result<(), String> {
        match self.format().levels {
            Some((lo, hi)) if level < lo || level > hi => {
                Err(format!("{self} level {level} is out of range {lo}-{hi}"))
            }
            _ => Ok(()),
        }
    }
}

/// The format of the data at the start of `bytes`, from its magic number:
/// `Some(None)` for a cpio header, `None` when it is not a format mkrootfs
/// reads (see [`unsupported_name`]).
pub fn detect(bytes: &[u8]) -> Option<Compression> {
    FORMATS
        .iter()
        .find(|f| f.magics.iter().any(|m| bytes.starts_with(m)))
        .map(|f| f.compression)
}

/// Names the formats mkrootfs cannot read, so the error says which one it
/// met: lzo, which the kernel unpacks (lib/decompress.c's magic table), and
/// the lz4 frame format, which it does not (only the legacy frame).
pub fn unsupported_name(bytes: &[u8]) -> Option<&'static str> {
    const TABLE: [(&[u8], &str); 2] = [
        (
            &[0x04, 0x22, 0x4d, 0x18],
            "an lz4 frame: the kernel, and mkrootfs, read only lz4's legacy frame (`lz4 -l`)",
        ),
        (
            &[0x89, b'L', b'Z', b'O'],
            "lzo: mkrootfs reads every format the kernel unpacks except lzo (no permissively \
             licensed decoder); unpack it with `lzop -d`",
        ),
    ];
    TABLE
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests;
