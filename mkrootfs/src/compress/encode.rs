//! Deterministic compression of whole images: [`compress`] and the
//! streaming [`Encoder`] (gzip, xz with a capped dictionary and CRC32, zstd
//! with at least one worker); see the module above for why.

use super::Compression;
use std::io::{self, Write};
use xz2::stream::{Check, Filters, LzmaOptions, MtStreamBuilder};
use zstd::zstd_safe;

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
pub(super) fn compress_with_threads(
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
            Compression::Bzip2 | Compression::Lzma | Compression::Lz4 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("mkrootfs reads {c} but does not write it"),
                ))
            }
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
pub(super) fn xz_dict_size(level: u32, len: u64) -> u32 {
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

pub(super) fn zstd_error(context: &str, code: usize) -> io::Error {
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
