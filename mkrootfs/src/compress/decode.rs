//! Bounded decompression of one compressed segment, the way the kernel's
//! `init/initramfs.c` consumes it.

use super::encode::zstd_error;
use super::Compression;
use std::io::{self, Read};
use thiserror::Error;
use xz2::stream::{Action, Status, Stream};
use zstd::zstd_safe::{DCtx, InBuffer, OutBuffer};

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
        Compression::Bzip2 => bunzip2(bytes, limit),
        Compression::Lzma => unlzma(bytes, limit),
        Compression::Lz4 => unlz4_legacy(bytes, limit).map_err(|e| match e {
            Lz4Error::TooLarge => DecompressError::TooLarge {
                compression: Compression::Lz4,
                limit,
            },
            Lz4Error::Corrupt(m) => DecompressError::Corrupt(Compression::Lz4, io::Error::other(m)),
        }),
    }
}

fn bunzip2(bytes: &[u8], limit: u64) -> Result<(Vec<u8>, usize), DecompressError> {
    let mut rest = bytes;
    let mut out = Vec::new();
    {
        // One stream, as the kernel's bunzip2 reads it; the `bufread`
        // decoder consumes exactly that stream.
        let dec = bzip2::bufread::BzDecoder::new(&mut rest);
        dec.take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| DecompressError::Corrupt(Compression::Bzip2, e))?;
    }
    if let Some(e) = too_large(Compression::Bzip2, &out, limit) {
        return Err(e);
    }
    Ok((out, bytes.len() - rest.len()))
}

fn unlzma(bytes: &[u8], limit: u64) -> Result<(Vec<u8>, usize), DecompressError> {
    let stream = Stream::new_lzma_decoder(limit.saturating_add(XZ_MEMLIMIT_EXTRA))
        .map_err(|e| DecompressError::Init(Compression::Lzma, e.into()))?;
    run_lzma(stream, Compression::Lzma, bytes, limit)
}

/// The largest block of the lz4 legacy frame, uncompressed.
pub(crate) const LZ4_LEGACY_BLOCK: usize = 8 << 20;
/// The lz4 legacy frame's magic (`lz4 -l`).
pub(crate) const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;

/// Why an lz4 legacy frame could not be read.
#[derive(Debug)]
pub(crate) enum Lz4Error {
    Corrupt(String),
    TooLarge,
}

/// The lz4 legacy frame: the magic, then blocks of a 4-byte little-endian
/// compressed size and the block, each at most 8 MiB uncompressed; another
/// magic may start a new frame (lib/decompress_unlz4.c). The format has no
/// end mark: the kernel reads to the end of the input. Here the stream also
/// ends where what follows cannot be a block (a size of 0, as zero padding
/// gives, or larger than the rest). Returns the output and the bytes used.
pub(crate) fn unlz4_legacy(stream: &[u8], limit: u64) -> Result<(Vec<u8>, usize), Lz4Error> {
    let mut rest = stream
        .strip_prefix(&LZ4_LEGACY_MAGIC.to_le_bytes()[..])
        .ok_or_else(|| Lz4Error::Corrupt("no lz4 legacy frame magic".into()))?;
    let mut out = Vec::new();
    let mut block = vec![0u8; LZ4_LEGACY_BLOCK];
    while rest.len() >= 4 {
        let size = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if size == LZ4_LEGACY_MAGIC {
            rest = &rest[4..];
            continue;
        }
        let size = size as usize;
        if size == 0 || size > rest.len() - 4 {
            if out.is_empty() {
                return Err(Lz4Error::Corrupt(format!(
                    "first block claims {size} bytes but only {} follow: truncated",
                    rest.len() - 4
                )));
            }
            break;
        }
        let n = lz4_flex::block::decompress_into(&rest[4..4 + size], &mut block).map_err(|e| {
            Lz4Error::Corrupt(format!("block at byte {}: {e}", stream.len() - rest.len()))
        })?;
        if out.len() as u64 + n as u64 > limit {
            return Err(Lz4Error::TooLarge);
        }
        out.extend_from_slice(&block[..n]);
        rest = &rest[4 + size..];
    }
    if out.is_empty() {
        return Err(Lz4Error::Corrupt("no blocks".to_string()));
    }
    Ok((out, stream.len() - rest.len()))
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
    // No LZMA_CONCATENATED: the stream ends where the kernel's xz_dec stops.
    let stream = Stream::new_stream_decoder(limit.saturating_add(XZ_MEMLIMIT_EXTRA), 0)
        .map_err(|e| DecompressError::Init(Compression::Xz, e.into()))?;
    run_lzma(stream, Compression::Xz, bytes, limit)
}

/// Runs a liblzma decoder (xz or the legacy lzma format) to its stream end.
fn run_lzma(
    mut stream: Stream,
    c: Compression,
    bytes: &[u8],
    limit: u64,
) -> Result<(Vec<u8>, usize), DecompressError> {
    let corrupt = |e: xz2::stream::Error| DecompressError::Corrupt(c, e.into());
    let mut out = Vec::new();
    loop {
        grow(&mut out, limit);
        let used = usize::try_from(stream.total_in()).unwrap_or(usize::MAX);
        let rest = bytes.get(used..).unwrap_or_default();
        let before = (stream.total_in(), out.len());
        let status = stream
            .process_vec(rest, &mut out, Action::Run)
            .map_err(corrupt)?;
        if let Some(e) = too_large(c, &out, limit) {
            return Err(e);
        }
        if status == Status::StreamEnd {
            break;
        }
        if before == (stream.total_in(), out.len()) && out.len() < out.capacity() {
            return Err(DecompressError::Corrupt(c, truncated()));
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
