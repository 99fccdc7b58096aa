//! Compression of whole images (none, gzip, xz, zstd), detection of a
//! segment's format from its magic bytes, and bounded decompression of one
//! compressed segment the way the kernel's `init/initramfs.c` consumes it.
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

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use thiserror::Error;
use xz2::stream::{Action, Check, Filters, LzmaOptions, MtStreamBuilder, Status, Stream};
use zstd::zstd_safe::{self, DCtx, InBuffer, OutBuffer};

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
    /// The levels the encoder takes (`None`: the format has no level, and
    /// one given is ignored).
    pub levels: Option<(u32, u32)>,
}

/// One row per format, in [`Compression::ALL`]'s order.
pub const FORMATS: [Format; 4] = [
    Format {
        compression: Compression::None,
        name: "none",
        extension: "",
        magics: &[b"070701", b"070702"],
        levels: None,
    },
    Format {
        compression: Compression::Gzip,
        name: "gzip",
        extension: ".gz",
        // 1f 9e is the "old gzip" magic the kernel also accepts.
        magics: &[&[0x1f, 0x8b], &[0x1f, 0x9e]],
        levels: Some((0, 9)),
    },
    Format {
        compression: Compression::Xz,
        name: "xz",
        extension: ".xz",
        magics: &[&[0xfd, b'7', b'z', b'X', b'Z', 0x00]],
        levels: Some((0, 9)),
    },
    Format {
        compression: Compression::Zstd,
        name: "zstd",
        extension: ".zst",
        magics: &[&[0x28, 0xb5, 0x2f, 0xfd]],
        // zstd's own maximum (ZSTD_maxCLevel), checked by a test.
        levels: Some((1, 22)),
    },
];

impl Compression {
    /// Every format, in the order of [`FORMATS`].
    pub const ALL: [Compression; 4] = [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
    ];

    /// This format's row of [`FORMATS`].
    pub fn format(self) -> &'static Format {
        // ALL and FORMATS share their order (checked by a test).
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

/// Compresses `data` deterministically, using every core for xz and zstd.
///
/// `level` defaults to [`Compression::default_level`]; gzip takes 0-9, xz
/// 0-9, zstd 1-22. gzip output has mtime 0, no file name and OS "unknown".
pub fn compress(data: &[u8], c: Compression, level: Option<u32>) -> io::Result<Vec<u8>> {
    compress_with_threads(data, c, level, default_threads())
}

/// The number of cores: compression threads (never changes the output).
fn default_threads() -> u32 {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// [`compress`] with an explicit thread count (which never changes the
/// output: the determinism tests compare 1 and 2 threads).
fn compress_with_threads(
    data: &[u8],
    c: Compression,
    level: Option<u32>,
    threads: u32,
) -> io::Result<Vec<u8>> {
    let cap = data.len() / 3 + 4096;
    let mut enc = Encoder::with_threads(
        Vec::with_capacity(cap),
        c,
        level,
        data.len() as u64,
        threads,
    )?;
    enc.write_all(data)?;
    enc.finish()
}

/// A streaming compressor writing into `W`: the archive goes through it as
/// it is produced, so the whole image is never held in memory.
///
/// The input length must be given up front (the archive's size is known
/// before it is written): zstd records it in the frame header and sizes its
/// window and jobs from it, and xz sizes its dictionary from it. The output
/// is the same bytes however the input is split into `write` calls; `flush`
/// is a no-op, since a zstd flush would end a job early and change them.
pub struct Encoder<W: Write> {
    inner: Inner<W>,
    /// Bytes still promised by the input length.
    remaining: u64,
}

enum Inner<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Xz(xz2::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// A compressor for `input_len` bytes at `level` (default
    /// [`Compression::default_level`]), using every core for xz and zstd.
    pub fn new(out: W, c: Compression, level: Option<u32>, input_len: u64) -> io::Result<Self> {
        Self::with_threads(out, c, level, input_len, default_threads())
    }

    fn with_threads(
        out: W,
        c: Compression,
        level: Option<u32>,
        input_len: u64,
        threads: u32,
    ) -> io::Result<Self> {
        let level = level.unwrap_or(c.default_level());
        let threads = threads.max(1);
        let inner = match c {
            Compression::None => Inner::None(out),
            Compression::Gzip => Inner::Gzip(gzip(out, level)?),
            Compression::Xz => Inner::Xz(xz(out, level, input_len, threads)?),
            Compression::Zstd => Inner::Zstd(zstd(out, level, input_len, threads)?),
        };
        Ok(Encoder {
            inner,
            remaining: input_len,
        })
    }

    /// Ends the stream and returns the writer. Fails if fewer bytes were
    /// written than promised.
    pub fn finish(self) -> io::Result<W> {
        if self.remaining != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("compressor input ended {} bytes short", self.remaining),
            ));
        }
        match self.inner {
            Inner::None(w) => Ok(w),
            Inner::Gzip(e) => e.finish(),
            Inner::Xz(e) => e.finish(),
            Inner::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len() as u64;
        if len > self.remaining {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "compressor input longer than promised",
            ));
        }
        let n = match &mut self.inner {
            Inner::None(w) => w.write(buf)?,
            Inner::Gzip(e) => e.write(buf)?,
            Inner::Xz(e) => e.write(buf)?,
            Inner::Zstd(e) => e.write(buf)?,
        };
        self.remaining -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn bad_level(c: Compression, level: u32, range: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{c} level {level} is out of range {range}"),
    )
}

fn gzip<W: Write>(out: W, level: u32) -> io::Result<flate2::write::GzEncoder<W>> {
    if level > 9 {
        return Err(bad_level(Compression::Gzip, level, "0-9"));
    }
    // mtime 0 and no name (like `gzip -n`): the header then depends only on
    // the data and the level.
    Ok(flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::new(level)))
}

/// Dictionary sizes of the xz presets 0-9 (liblzma's `lzma_lzma_preset`).
const XZ_PRESET_DICT: [u32; 10] = [
    256 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
    4 << 20,
    8 << 20,
    8 << 20,
    16 << 20,
    32 << 20,
    64 << 20,
];

/// The xz dictionary: the preset's, but no larger than the input rounded up
/// to a power of two (see the module docs), and at least liblzma's minimum.
fn xz_dict_size(level: u32, len: u64) -> u32 {
    let preset = XZ_PRESET_DICT[level.min(9) as usize];
    let needed = u32::try_from(len)
        .ok()
        .and_then(u32::checked_next_power_of_two)
        .unwrap_or(u32::MAX);
    preset.min(needed).max(4096)
}

fn xz<W: Write>(
    out: W,
    level: u32,
    input_len: u64,
    threads: u32,
) -> io::Result<xz2::write::XzEncoder<W>> {
    if level > 9 {
        return Err(bad_level(Compression::Xz, level, "0-9"));
    }
    let dict = xz_dict_size(level, input_len);
    let mut opts = LzmaOptions::new_preset(level).map_err(io::Error::from)?;
    opts.dict_size(dict);
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    // One block per dictionary-sized piece (at least 1 MiB): smaller than
    // liblzma's default of 3 * dict so that images of a few dictionaries
    // still spread over the cores; fixed here so the thread count never
    // changes the output.
    let block = u64::from(dict).max(1 << 20);
    let stream = MtStreamBuilder::new()
        .threads(threads)
        .block_size(block)
        .filters(filters)
        .check(Check::Crc32)
        .encoder()
        .map_err(io::Error::from)?;
    Ok(xz2::write::XzEncoder::new_stream(out, stream))
}

fn zstd_error(context: &str, code: usize) -> io::Error {
    io::Error::other(format!("{context}: {}", zstd_safe::get_error_name(code)))
}

fn zstd<W: Write>(
    out: W,
    level: u32,
    input_len: u64,
    threads: u32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let max = u32::try_from(zstd_safe::max_c_level()).unwrap_or(22);
    if level == 0 || level > max {
        return Err(bad_level(Compression::Zstd, level, &format!("1-{max}")));
    }
    let mut e = zstd::stream::write::Encoder::new(out, level as i32)?;
    // With at least one worker the output is the same for any number of
    // workers (see the module docs). The job size is left to zstd, which
    // derives it from the level's window (4 windows: 8 MiB at level 3,
    // 32 MiB at 19), exactly as the zstd tool does: smaller jobs re-read
    // a full window of overlap each and made big trees slower than
    // `zstd -T0`, for a ratio no better.
    e.multithread(threads)?;
    e.include_checksum(true)?;
    // The frame records the size, and the window shrinks to fit small
    // inputs (as when zstd compresses a file of known size).
    e.set_pledged_src_size(Some(input_len))?;
    Ok(e)
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

/// Names the formats the kernel can unpack but mkrootfs cannot read, so the
/// error says which one it met (lib/decompress.c's magic table).
pub fn unsupported_name(bytes: &[u8]) -> Option<&'static str> {
    const TABLE: [(&[u8], &str); 5] = [
        (&[0x02, 0x21, 0x4c, 0x18], "lz4 (unsupported)"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4 frame (unsupported)"),
        (b"BZh", "bzip2 (unsupported)"),
        (&[0x5d, 0x00, 0x00], "lzma (unsupported)"),
        (&[0x89, b'L', b'Z', b'O'], "lzo (unsupported)"),
    ];
    TABLE
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, name)| *name)
}

/// Why one compressed segment could not be decompressed.
#[derive(Debug, Error)]
pub enum DecompressError {
    /// The decoder rejected the data (bad header, bad check, truncated).
    #[error("{0} data is corrupt or truncated")]
    Corrupt(Compression, #[source] io::Error),
    /// The decompressed size passed the caller's limit.
    #[error("{compression} data decompresses to more than the limit of {limit} bytes")]
    TooLarge {
        /// The format being decompressed.
        compression: Compression,
        /// The caller's limit in bytes.
        limit: u64,
    },
    /// The decoder could not be created.
    #[error("cannot set up the {0} decoder")]
    Init(Compression, #[source] io::Error),
}

/// Extra memory the xz decoder may use beyond the output limit: enough for
/// the 64 MiB dictionary of `xz -9` and the decoder state.
const XZ_MEMLIMIT_EXTRA: u64 = 96 << 20;

/// Decompresses the single compressed stream at the start of `bytes` (one
/// gzip member, one xz stream, one zstd frame, as the kernel does per
/// segment), producing at most `limit` bytes. Returns the output and how
/// many input bytes the stream used; whatever follows is the next segment.
pub fn decompress(
    bytes: &[u8],
    c: Compression,
    limit: u64,
) -> Result<(Vec<u8>, usize), DecompressError> {
    match c {
        Compression::None => {
            let len = bytes
                .len()
                .min(usize::try_from(limit).unwrap_or(usize::MAX));
            Ok((bytes[..len].to_vec(), len))
        }
        Compression::Gzip => gunzip(bytes, limit),
        Compression::Xz => unxz(bytes, limit),
        Compression::Zstd => unzstd(bytes, limit),
    }
}

/// Grows `out` for the next decoder call, by doubling but never beyond
/// `limit + 1` bytes (one more than allowed, to notice an overflow).
fn grow(out: &mut Vec<u8>, limit: u64) {
    let cap_max = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    if out.len() == out.capacity() && out.capacity() < cap_max {
        let want = out.capacity().max(64 << 10).min(cap_max - out.capacity());
        out.reserve_exact(want);
    }
}

fn too_large(compression: Compression, out: &[u8], limit: u64) -> Option<DecompressError> {
    (out.len() as u64 > limit).then_some(DecompressError::TooLarge { compression, limit })
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected end of input")
}

fn gunzip(bytes: &[u8], limit: u64) -> Result<(Vec<u8>, usize), DecompressError> {
    let mut rest = bytes;
    let mut out = Vec::new();
    {
        // The `bufread` decoder consumes exactly the member, trailer included.
        let dec = flate2::bufread::GzDecoder::new(&mut rest);
        dec.take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| DecompressError::Corrupt(Compression::Gzip, e))?;
    }
    if let Some(e) = too_large(Compression::Gzip, &out, limit) {
        return Err(e);
    }
    Ok((out, bytes.len() - rest.len()))
}

fn unxz(bytes: &[u8], limit: u64) -> Result<(Vec<u8>, usize), DecompressError> {
    let corrupt = |e: xz2::stream::Error| DecompressError::Corrupt(Compression::Xz, e.into());
    // No LZMA_CONCATENATED: the stream ends where the kernel's xz_dec stops.
    let mut stream = Stream::new_stream_decoder(limit.saturating_add(XZ_MEMLIMIT_EXTRA), 0)
        .map_err(|e| DecompressError::Init(Compression::Xz, e.into()))?;
    let mut out = Vec::new();
    loop {
        grow(&mut out, limit);
        let used = usize::try_from(stream.total_in()).unwrap_or(usize::MAX);
        let rest = bytes.get(used..).unwrap_or_default();
        let before = (stream.total_in(), out.len());
        let status = stream
            .process_vec(rest, &mut out, Action::Run)
            .map_err(corrupt)?;
        if let Some(e) = too_large(Compression::Xz, &out, limit) {
            return Err(e);
        }
        if status == Status::StreamEnd {
            break;
        }
        if before == (stream.total_in(), out.len()) && out.len() < out.capacity() {
            return Err(DecompressError::Corrupt(Compression::Xz, truncated()));
        }
    }
    let used = usize::try_from(stream.total_in()).unwrap_or(bytes.len());
    Ok((out, used))
}

fn unzstd(bytes: &[u8], limit: u64) -> Result<(Vec<u8>, usize), DecompressError> {
    let err = |code| zstd_error("zstd", code);
    let mut dctx = DCtx::try_create().ok_or_else(|| {
        DecompressError::Init(
            Compression::Zstd,
            io::Error::other("ZSTD_createDCtx failed"),
        )
    })?;
    let mut input = InBuffer::around(bytes);
    let mut out = Vec::new();
    loop {
        grow(&mut out, limit);
        let before = (input.pos(), out.len());
        let pos = out.len();
        let hint = {
            let mut ob = OutBuffer::around_pos(&mut out, pos);
            dctx.decompress_stream(&mut ob, &mut input)
                .map_err(|e| DecompressError::Corrupt(Compression::Zstd, err(e)))?
        };
        if let Some(e) = too_large(Compression::Zstd, &out, limit) {
            return Err(e);
        }
        // 0: the frame is complete and fully flushed.
        if hint == 0 {
            break;
        }
        if before == (input.pos(), out.len()) && out.len() < out.capacity() {
            return Err(DecompressError::Corrupt(Compression::Zstd, truncated()));
        }
    }
    Ok((out, input.pos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compressible but not trivial: text-like lines with a counter.
    fn sample(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(
                format!("line {i} {}\n", i.wrapping_mul(2654435761) % 1000).as_bytes(),
            );
            i += 1;
        }
        v.truncate(len);
        v
    }

    #[test]
    fn names_round_trip_through_fromstr_display_and_serde() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
        ] {
            assert_eq!(c.to_string().parse::<Compression>(), Ok(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{c}\""));
            assert_eq!(serde_json::from_str::<Compression>(&json).unwrap(), c);
        }
        assert_eq!(
            "lz4".parse::<Compression>().unwrap_err().to_string(),
            "unknown compression \"lz4\": expected none, gzip, xz or zstd"
        );
    }

    #[test]
    fn round_trip_and_detect_each_format() {
        let data = sample(300_000);
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let packed = compress(&data, c, Some(3)).unwrap();
            let mut with_tail = packed.clone();
            with_tail.extend_from_slice(b"NEXT");
            let (out, used) = decompress(&with_tail, c, u64::MAX).unwrap();
            if c == Compression::None {
                // Stored as is; with no frame to end it, "decompressing"
                // takes everything up to the limit.
                assert!(packed == data, "none changed the bytes");
                assert_eq!((out.len(), used), (with_tail.len(), with_tail.len()));
                assert!(out[..data.len()] == data[..] && out.ends_with(b"NEXT"));
                let (out, used) = decompress(&with_tail, c, data.len() as u64).unwrap();
                assert!(out == data && used == data.len(), "none ignored the limit");
            } else {
                assert_eq!(detect(&packed), Some(c));
                assert!(packed.len() < data.len() / 2, "{c} did not compress");
                assert_eq!(used, packed.len(), "{c} used the wrong length");
                assert!(out == data, "{c} did not give the data back");
            }
        }
    }

    // Regression guard for the determinism promise: the thread count must
    // never change the bytes. 9 MiB spans several xz blocks and zstd jobs.
    #[test]
    fn xz_and_zstd_output_does_not_depend_on_thread_count() {
        let data = sample(9 << 20);
        for c in [Compression::Xz, Compression::Zstd] {
            let one = compress_with_threads(&data, c, Some(1), 1).unwrap();
            let two = compress_with_threads(&data, c, Some(1), 2).unwrap();
            assert!(one == two, "{c} output differs between 1 and 2 threads");
        }
    }

    // The image is streamed through the encoder in pieces of any size: the
    // bytes must be those of the archive compressed in one piece.
    #[test]
    fn output_does_not_depend_on_how_the_input_is_split() {
        let data = sample(3 << 20);
        for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
            let whole = compress(&data, c, Some(1)).unwrap();
            let mut enc = Encoder::new(Vec::new(), c, Some(1), data.len() as u64).unwrap();
            let mut rest = &data[..];
            let mut n = 1;
            while !rest.is_empty() {
                let take = n.min(rest.len());
                enc.write_all(&rest[..take]).unwrap();
                enc.flush().unwrap();
                rest = &rest[take..];
                n = n * 7 + 3;
            }
            assert!(
                enc.finish().unwrap() == whole,
                "{c}: split input changed the output"
            );
        }
    }

    #[test]
    fn input_must_match_the_promised_length() {
        let mut enc = Encoder::new(Vec::new(), Compression::Zstd, None, 4).unwrap();
        enc.write_all(b"abc").unwrap();
        let e = enc.finish().unwrap_err();
        assert_eq!(e.to_string(), "compressor input ended 1 bytes short");
        let mut enc = Encoder::new(Vec::new(), Compression::None, None, 2).unwrap();
        let e = enc.write_all(b"abc").unwrap_err();
        assert_eq!(e.to_string(), "compressor input longer than promised");
    }

    #[test]
    fn gzip_header_has_no_mtime_and_no_name() {
        let packed = compress(b"abc", Compression::Gzip, None).unwrap();
        // magic, deflate, flags 0, mtime 0, xfl 0 (default level 6), OS 255.
        assert_eq!(&packed[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        let packed = compress(b"abc", Compression::Gzip, Some(9)).unwrap();
        // xfl 2: level 9.
        assert_eq!(&packed[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff]);
    }

    #[test]
    fn xz_uses_crc32_check_and_a_dictionary_no_larger_than_the_input() {
        let packed = compress(&sample(1000), Compression::Xz, Some(9)).unwrap();
        // Stream flags: 0x00, check id 0x01 (CRC32).
        assert_eq!(&packed[6..8], &[0x00, 0x01]);
        assert_eq!(xz_dict_size(9, 1000), 4096);
        assert_eq!(xz_dict_size(9, 5 << 20), 8 << 20);
        assert_eq!(xz_dict_size(6, 100 << 20), 8 << 20);
    }

    #[test]
    fn levels_out_of_range_are_errors() {
        let e = compress(b"x", Compression::Xz, Some(10)).unwrap_err();
        assert_eq!(e.to_string(), "xz level 10 is out of range 0-9");
        let e = compress(b"x", Compression::Zstd, Some(0)).unwrap_err();
        assert_eq!(e.to_string(), "zstd level 0 is out of range 1-22");
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let data = sample(100_000);
        for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
            let packed = compress(&data, c, Some(1)).unwrap();
            let e = decompress(&packed, c, 99_999).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{c} data decompresses to more than the limit of 99999 bytes")
            );
            assert_eq!(decompress(&packed, c, 100_000).unwrap().0.len(), 100_000);
        }
    }

    #[test]
    fn truncated_streams_are_errors() {
        let data = sample(50_000);
        for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
            let packed = compress(&data, c, Some(1)).unwrap();
            for cut in [packed.len() - 1, packed.len() / 2, 5] {
                let e = decompress(&packed[..cut], c, u64::MAX).unwrap_err();
                assert_eq!(
                    e.to_string(),
                    format!("{c} data is corrupt or truncated"),
                    "{c} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn unsupported_formats_are_named() {
        assert_eq!(
            unsupported_name(&[0x02, 0x21, 0x4c, 0x18, 0]),
            Some("lz4 (unsupported)")
        );
        assert_eq!(unsupported_name(b"BZh91AY"), Some("bzip2 (unsupported)"));
        assert_eq!(unsupported_name(b"hello"), None);
        assert_eq!(detect(b"070701"), Some(Compression::None));
        assert_eq!(detect(b"hello"), None);
    }

    #[test]
    fn format_table_rows_match_their_compression_and_names_round_trip() {
        for (c, f) in Compression::ALL.into_iter().zip(FORMATS.iter()) {
            assert_eq!(f.compression, c);
            assert_eq!(c.format(), f);
            assert_eq!(c.name().parse::<Compression>(), Ok(c));
            for m in f.magics {
                assert_eq!(detect(m), Some(c), "{c}");
            }
        }
        assert_eq!(
            Compression::Zstd.format().levels,
            Some((1, zstd_safe::max_c_level() as u32))
        );
        for c in Compression::ALL {
            if let Some((lo, hi)) = c.format().levels {
                for level in [lo, c.default_level(), hi] {
                    assert_eq!(c.check_level(level), Ok(()), "{c} {level}");
                    compress(b"x", c, Some(level)).unwrap();
                }
                for bad in [lo.checked_sub(1), Some(hi + 1)].into_iter().flatten() {
                    let want = compress(b"x", c, Some(bad)).unwrap_err().to_string();
                    assert_eq!(c.check_level(bad), Err(want));
                }
            }
        }
        assert_eq!(Compression::None.check_level(99), Ok(()));
        let names: Vec<&str> = Compression::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["none", "gzip", "xz", "zstd"]);
        let exts: Vec<&str> = Compression::ALL.iter().map(|c| c.extension()).collect();
        assert_eq!(exts, ["", ".gz", ".xz", ".zst"]);
        assert_eq!(
            "lz4".parse::<Compression>(),
            Err(UnknownCompression("lz4".to_string()))
        );
    }
}
