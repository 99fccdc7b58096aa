//! The seccomp filter: read by the init from the file the builder wrote
//! (compiled from the policy with seccompiler), loaded by the child last,
//! just before execve.

use crate::sys::ns::SockFilter;
use std::io;

/// Parses a BPF file: `struct sock_filter` records, 8 bytes each
/// (u16 code, u8 jt, u8 jf, u32 k, native endian), at most 4096 of them
/// (BPF_MAXINSNS).
pub fn parse(bytes: &[u8]) -> io::Result<Vec<SockFilter>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes is not a BPF program (1 to 4096 instructions of 8 bytes)",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| SockFilter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// Reads and parses the filter at `path`.
pub fn read(path: &str) -> io::Result<Vec<SockFilter>> {
    parse(&std::fs::read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_are_8_bytes_native_endian() {
        let mut b = Vec::new();
        b.extend_from_slice(&0x06u16.to_ne_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&0x7fff_0000u32.to_ne_bytes());
        assert_eq!(
            parse(&b).unwrap(),
            [SockFilter {
                code: 6,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000
            }]
        );
        assert_eq!(
            parse(&b[..7]).unwrap_err().to_string(),
            "7 bytes is not a BPF program (1 to 4096 instructions of 8 bytes)"
        );
        assert!(parse(&[]).is_err());
    }
}
