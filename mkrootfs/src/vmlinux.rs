//! The uncompressed ELF kernel (`vmlinux`) inside an x86 bzImage (`vmlinuz`).
//!
//! Firecracker and Cloud Hypervisor's direct kernel boot load an ELF
//! `vmlinux`, not the bzImage distributions ship. A bzImage is a real-mode
//! setup part, a decompressor, and the compressed kernel; the x86 boot
//! protocol (Documentation/arch/x86/boot.rst, version 2.08 and later) says
//! where the compressed part is: `payload_offset` (0x248) and
//! `payload_length` (0x24c), both counted from the start of the protected-mode
//! code, which begins at `(setup_sects + 1) * 512` (`setup_sects` at 0x1f1;
//! 0 means 4). The payload is `vmlinux.bin` (the stripped ELF, then the
//! relocation table on relocatable kernels), compressed with gzip, xz, zstd
//! or lz4 (legacy frame), followed by its uncompressed size as a 4-byte
//! little-endian number (`size_append` in scripts/Makefile.lib).
//!
//! Without a usable setup header (an old or damaged image) this falls back to
//! what the kernel's `scripts/extract-vmlinux` does: look for each
//! compressor's magic number and keep the first stream that decompresses to
//! an ELF.
//!
//! The result is checked: an ELF executable for the machine the bzImage is
//! for (x86_64 when `xloadflags` has `XLF_KERNEL_64`, else i386), trimmed to
//! the ELF's own extent (the relocation table after it is for the
//! decompressor only).
#![deny(missing_docs)]

use crate::compress::{self, Compression, DecompressError};
use goblin::elf::header::{EM_386, EM_X86_64, ET_EXEC};
use std::fmt;
use std::path::{Path, PathBuf};

/// The largest kernel this will write (a distribution vmlinux is 30-80 MiB).
const MAX_VMLINUX: u64 = 1 << 30;
/// How many magic-number candidates the scan tries before giving up.
const MAX_CANDIDATES: usize = 64;
/// `XLF_KERNEL_64` in `xloadflags`: the kernel has a 64-bit entry point.
const XLF_KERNEL_64: u16 = 1;
#[cfg(test)]
use crate::compress::{LZ4_LEGACY_BLOCK, LZ4_LEGACY_MAGIC};
/// The Xen ELF note type of the 32-bit PVH entry point, which lets QEMU
/// (`-kernel`) and Cloud Hypervisor boot the ELF directly.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// How the kernel inside a bzImage is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// gzip (`CONFIG_KERNEL_GZIP`).
    Gzip,
    /// xz with the x86 BCJ filter (`CONFIG_KERNEL_XZ`).
    Xz,
    /// zstd (`CONFIG_KERNEL_ZSTD`).
    Zstd,
    /// lz4 legacy frame (`CONFIG_KERNEL_LZ4`; Debian's choice).
    Lz4,
    /// bzip2: recognised, not supported.
    Bzip2,
    /// lzma: recognised, not supported.
    Lzma,
    /// lzo: recognised, not supported.
    Lzo,
}

impl Codec {
    /// Magic numbers, in the order `scripts/extract-vmlinux` tries them.
    const MAGICS: [(&'static [u8], Codec); 7] = [
        (&[0x1f, 0x8b, 0x08], Codec::Gzip),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Codec::Xz),
        (b"BZh", Codec::Bzip2),
        (&[0x5d, 0x00, 0x00, 0x00], Codec::Lzma),
        (&[0x89, b'L', b'Z', b'O'], Codec::Lzo),
        (&[0x02, 0x21, 0x4c, 0x18], Codec::Lz4),
        (&[0x28, 0xb5, 0x2f, 0xfd], Codec::Zstd),
    ];

    /// The codec whose magic starts `bytes`.
    pub fn detect(bytes: &[u8]) -> Option<Codec> {
        Codec::MAGICS
            .iter()
            .find(|(magic, _)| bytes.starts_with(magic))
            .map(|(_, c)| *c)
    }

    /// Lower-case name, as in `CONFIG_KERNEL_<NAME>`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Xz => "xz",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
            Codec::Bzip2 => "bzip2",
            Codec::Lzma => "lzma",
            Codec::Lzo => "lzo",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of kernel image a file is, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// An x86 bzImage (setup header `HdrS` at 0x202).
    BzImage,
    /// An ELF file (a `vmlinux`) for this `e_machine`.
    Elf(u16),
    /// Neither (an arm64 `Image`, a PE file, anything else).
    Other,
}

/// Tells a bzImage from an ELF `vmlinux` by their headers.
pub fn kernel_format(bytes: &[u8]) -> KernelFormat {
    if bytes.starts_with(b"\x7fELF") && bytes.len() >= 20 {
        let machine = if bytes[5] == 2 {
            u16::from_be_bytes([bytes[18], bytes[19]])
        } else {
            u16::from_le_bytes([bytes[18], bytes[19]])
        };
        KernelFormat::Elf(machine)
    } else if bytes.get(0x202..0x206) == Some(b"HdrS") {
        KernelFormat::BzImage
    } else {
        KernelFormat::Other
    }
}

/// Why a vmlinux could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum VmlinuxError {
    /// The input could not be read.
    #[error("read kernel {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// The input is already an ELF kernel.
    #[error("{0} is already an uncompressed ELF kernel: nothing to extract")]
    AlreadyElf(PathBuf),
    /// No setup header and no compressed kernel anywhere in the file.
    #[error("{0} is not a bzImage: no x86 boot setup header (\"HdrS\" at 0x202) and no compressed kernel (gzip, xz, zstd, lz4, bzip2, lzma, lzo) inside")]
    NotBzImage(PathBuf),
    /// The setup header points past the end of the file.
    #[error("{path}: truncated bzImage: the setup header puts the compressed kernel at bytes {start}..{end}, but the file has {len} bytes")]
    Truncated {
        /// The input.
        path: PathBuf,
        /// Payload start in the file.
        start: u64,
        /// Payload end in the file.
        end: u64,
        /// File size.
        len: u64,
    },
    /// The payload is compressed with a method this does not decompress.
    #[error("{path}: the kernel is compressed with {codec}, which mkrootfs cannot decompress (gzip, xz, zstd and lz4 can)")]
    Unsupported {
        /// The input.
        path: PathBuf,
        /// What it is compressed with.
        codec: Codec,
    },
    /// The payload at the header's offset starts with no known magic.
    #[error("{path}: the setup header's payload at offset {offset:#x} starts with no known compression magic")]
    UnknownPayload {
        /// The input.
        path: PathBuf,
        /// Payload start in the file.
        offset: u64,
    },
    /// The decoder failed.
    #[error("{path}: decompress the {codec} payload at offset {offset:#x}: {message}")]
    Decompress {
        /// The input.
        path: PathBuf,
        /// Its compression.
        codec: Codec,
        /// Payload start in the file.
        offset: u64,
        /// What the decoder said (with its cause chain).
        message: String,
    },
    /// The decompressed size differs from the one the build appended.
    #[error("{path}: the {codec} payload decompressed to {got} bytes, but the bzImage records {want}: truncated or corrupt")]
    SizeMismatch {
        /// The input.
        path: PathBuf,
        /// Its compression.
        codec: Codec,
        /// Bytes decompressed.
        got: u64,
        /// Bytes recorded after the payload.
        want: u64,
    },
    /// The payload is not an ELF executable.
    #[error("{path}: the decompressed {codec} payload is not an ELF executable: {reason}")]
    NotElf {
        /// The input.
        path: PathBuf,
        /// Its compression.
        codec: Codec,
        /// What is wrong with it.
        reason: String,
    },
    /// The ELF is for another machine than the bzImage.
    #[error("{path}: the decompressed kernel is an ELF for machine {found} ({found_name}), but the bzImage is for {want_name}")]
    WrongMachine {
        /// The input.
        path: PathBuf,
        /// `e_machine` found.
        found: u16,
        /// Its name.
        found_name: &'static str,
        /// The expected machine's name.
        want_name: &'static str,
    },
    /// The output could not be written.
    #[error(transparent)]
    Write(#[from] crate::build::WriteError),
}

/// A kernel taken out of its bzImage.
#[derive(Clone, Debug)]
pub struct Vmlinux {
    /// The ELF file.
    pub elf: Vec<u8>,
    /// How it was compressed.
    pub codec: Codec,
    /// Where the compressed stream started in the bzImage.
    pub payload_offset: u64,
    /// True when the setup header located it; false when found by scanning.
    pub from_header: bool,
    /// The ELF's `e_machine` (62 for x86_64).
    pub machine: u16,
    /// Whether the ELF has the PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`),
    /// so that QEMU `-kernel` and Cloud Hypervisor can boot it.
    pub pvh: bool,
    /// Bytes after the ELF in the decompressed payload (the relocation
    /// table of a relocatable kernel), not written.
    pub trailing: u64,
}

/// The fields of the setup header this needs.
struct SetupHeader {
    payload_start: u64,
    payload_len: u64,
    kernel_64: bool,
}

/// Reads the setup header; `None` without `HdrS` or before protocol 2.08.
fn setup_header(bytes: &[u8]) -> Option<SetupHeader> {
    if bytes.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    let version = u16_at(0x206)?;
    if version < 0x0208 {
        return None;
    }
    let setup_sects = match *bytes.get(0x1f1)? {
        0 => 4,
        n => u64::from(n),
    };
    let xloadflags = if version >= 0x020c { u16_at(0x236)? } else { 0 };
    Some(SetupHeader {
        payload_start: (setup_sects + 1) * 512 + u64::from(u32_at(0x248)?),
        payload_len: u64::from(u32_at(0x24c)?),
        kernel_64: xloadflags & XLF_KERNEL_64 != 0,
    })
}

/// Extracts the ELF kernel from the bzImage bytes `bytes`; `path` only
/// names the input in errors.
pub fn extract(path: &Path, bytes: &[u8]) -> Result<Vmlinux, VmlinuxError> {
    let path = path.to_path_buf();
    if let KernelFormat::Elf(_) = kernel_format(bytes) {
        return Err(VmlinuxError::AlreadyElf(path));
    }
    match setup_header(bytes) {
        Some(h) => from_header(&path, bytes, &h),
        None => scan(&path, bytes),
    }
}

fn from_header(path: &Path, bytes: &[u8], h: &SetupHeader) -> Result<Vmlinux, VmlinuxError> {
    let end = h.payload_start + h.payload_len;
    if end > bytes.len() as u64 || h.payload_len < 4 {
        return Err(VmlinuxError::Truncated {
            path: path.to_path_buf(),
            start: h.payload_start,
            end,
            len: bytes.len() as u64,
        });
    }
    let payload = &bytes[h.payload_start as usize..end as usize];
    let codec = Codec::detect(payload).ok_or_else(|| VmlinuxError::UnknownPayload {
        path: path.to_path_buf(),
        offset: h.payload_start,
    })?;
    let (stream, size) = payload.split_at(payload.len() - 4);
    let want = u64::from(u32::from_le_bytes([size[0], size[1], size[2], size[3]]));
    let data = decompress(path, stream, codec, h.payload_start)?;
    if data.len() as u64 != want {
        return Err(VmlinuxError::SizeMismatch {
            path: path.to_path_buf(),
            codec,
            got: data.len() as u64,
            want,
        });
    }
    let want_machine = if h.kernel_64 { EM_X86_64 } else { EM_386 };
    finish(path, data, codec, h.payload_start, true, Some(want_machine))
}

/// `scripts/extract-vmlinux`: try every magic number, keep the first stream
/// that decompresses to an ELF. Formats this cannot decompress are reported
/// only when no other candidate worked; at most [`MAX_CANDIDATES`] streams
/// are tried.
fn scan(path: &Path, bytes: &[u8]) -> Result<Vmlinux, VmlinuxError> {
    let mut first_error = None;
    let mut unsupported = None;
    let mut tried = 0;
    for offset in 0..bytes.len() {
        let Some(codec) = Codec::detect(&bytes[offset..]) else {
            continue;
        };
        if matches!(codec, Codec::Bzip2 | Codec::Lzma | Codec::Lzo) {
            unsupported.get_or_insert(VmlinuxError::Unsupported {
                path: path.to_path_buf(),
                codec,
            });
            continue;
        }
        tried += 1;
        if tried > MAX_CANDIDATES {
            break;
        }
        let attempt = decompress(path, &bytes[offset..], codec, offset as u64)
            .and_then(|data| finish(path, data, codec, offset as u64, false, None));
        match attempt {
            Ok(v) => return Ok(v),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error
        .or(unsupported)
        .unwrap_or_else(|| VmlinuxError::NotBzImage(path.to_path_buf())))
}

fn decompress(
    path: &Path,
    stream: &[u8],
    codec: Codec,
    offset: u64,
) -> Result<Vec<u8>, VmlinuxError> {
    let failed = |message: String| VmlinuxError::Decompress {
        path: path.to_path_buf(),
        codec,
        offset,
        message,
    };
    let common = |c: Compression| {
        compress::decompress(stream, c, MAX_VMLINUX)
            .map(|(out, _)| out)
            .map_err(|e: DecompressError| failed(mkrootfs_config::error_chain(&e)))
    };
    match codec {
        Codec::Gzip => common(Compression::Gzip),
        Codec::Xz => common(Compression::Xz),
        Codec::Zstd => common(Compression::Zstd),
        Codec::Lz4 => unlz4_legacy(stream).map_err(failed),
        Codec::Bzip2 | Codec::Lzma | Codec::Lzo => Err(VmlinuxError::Unsupported {
            path: path.to_path_buf(),
            codec,
        }),
    }
}

/// The lz4 legacy frame (`CONFIG_KERNEL_LZ4`), as the initramfs reader
/// reads it ([`compress::unlz4_legacy`]).
fn unlz4_legacy(stream: &[u8]) -> Result<Vec<u8>, String> {
    compress::unlz4_legacy(stream, MAX_VMLINUX)
        .map(|(out, _)| out)
        .map_err(|e| match e {
            compress::Lz4Error::Corrupt(m) => m,
            compress::Lz4Error::TooLarge => {
                format!("decompresses to more than {MAX_VMLINUX} bytes")
            }
        })
}

/// Checks the ELF, trims what follows it, and notes the PVH entry.
fn finish(
    path: &Path,
    mut data: Vec<u8>,
    codec: Codec,
    offset: u64,
    from_header: bool,
    want_machine: Option<u16>,
) -> Result<Vmlinux, VmlinuxError> {
    let not_elf = |reason: String| VmlinuxError::NotElf {
        path: path.to_path_buf(),
        codec,
        reason,
    };
    let elf = goblin::elf::Elf::parse(&data).map_err(|e| not_elf(e.to_string()))?;
    if elf.header.e_type != ET_EXEC {
        return Err(not_elf(format!(
            "ELF type {} is not ET_EXEC",
            elf.header.e_type
        )));
    }
    let machine = elf.header.e_machine;
    let want = want_machine.unwrap_or(if elf.is_64 { EM_X86_64 } else { EM_386 });
    if machine != want {
        return Err(VmlinuxError::WrongMachine {
            path: path.to_path_buf(),
            found: machine,
            found_name: goblin::elf::header::machine_to_str(machine),
            want_name: goblin::elf::header::machine_to_str(want),
        });
    }
    let pvh = elf
        .iter_note_headers(&data)
        .into_iter()
        .flatten()
        .flatten()
        .any(|n| n.n_type == XEN_ELFNOTE_PHYS32_ENTRY && n.name == "Xen");
    // Saturating: the offsets come from the (untrusted) payload.
    let h = &elf.header;
    let table = |off: u64, n: u16, size: u16| off.saturating_add(u64::from(n) * u64::from(size));
    let mut extent = u64::from(h.e_ehsize)
        .max(table(h.e_phoff, h.e_phnum, h.e_phentsize))
        .max(table(h.e_shoff, h.e_shnum, h.e_shentsize));
    for ph in &elf.program_headers {
        extent = extent.max(ph.p_offset.saturating_add(ph.p_filesz));
    }
    for sh in &elf.section_headers {
        if sh.sh_type != goblin::elf::section_header::SHT_NOBITS {
            extent = extent.max(sh.sh_offset.saturating_add(sh.sh_size));
        }
    }
    drop(elf);
    let extent = extent.min(data.len() as u64);
    let trailing = data.len() as u64 - extent;
    data.truncate(extent as usize);
    Ok(Vmlinux {
        elf: data,
        codec,
        payload_offset: offset,
        from_header,
        machine,
        pvh,
        trailing,
    })
}

/// Reads the bzImage at `input`, extracts its kernel and writes it to
/// `output` atomically (a temporary file renamed into place, mode 0644).
pub fn extract_file(input: &Path, output: &Path) -> Result<Vmlinux, VmlinuxError> {
    let bytes = std::fs::read(input).map_err(|e| VmlinuxError::Read(input.to_path_buf(), e))?;
    let v = extract(input, &bytes)?;
    crate::build::write_atomically(output, &v.elf)?;
    Ok(v)
}

#[cfg(test)]
mod tests;
