//! The dm-verity hash tree, laid out as `veritysetup format --hash-offset`
//! writes it onto the data device itself: the file system padded to 4096
//! bytes, then the verity superblock (one 4096-byte block), then the hash
//! levels, the one nearest the root first (cryptsetup's
//! `lib/verity/verity_hash.c`, format version 1: `sha256(salt || block)`,
//! 4096-byte data and hash blocks, 128 digests per hash block, each block
//! zero-padded). The kernel's table line for it is [`Verity::table`].

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Data and hash block size.
pub const BLOCK: u64 = 4096;
const DIGEST: usize = 32;
#[cfg(test)]
const PER_BLOCK: u64 = BLOCK / DIGEST as u64;

/// What the kernel needs to check the image, and how it was laid out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verity {
    /// The root hash, lower-case hex (the trusted value: the kernel command
    /// line's `mkrootfs.verity=`).
    pub root_hash: String,
    /// Lower-case hex.
    pub salt: String,
    pub data_blocks: u64,
    /// Byte offset of the verity superblock (= the padded data size).
    pub hash_offset: u64,
}

impl Verity {
    /// The device-mapper table line for the image on `dev` (`/dev/vda` or
    /// `major:minor`).
    pub fn table(&self, dev: &str) -> String {
        table(dev, self.data_blocks, &self.root_hash, &self.salt)
    }
}

/// `0 <sectors> verity 1 <dev> <dev> 4096 4096 <blocks> <hash_start> sha256
/// <root> <salt>`, with the hash tree after a superblock that follows the
/// data (hash_start counts hash blocks from the device's start).
pub fn table(dev: &str, data_blocks: u64, root_hash: &str, salt: &str) -> String {
    format!(
        "0 {} verity 1 {dev} {dev} {BLOCK} {BLOCK} {data_blocks} {} sha256 {root_hash} {salt}",
        data_blocks * (BLOCK / 512),
        data_blocks + 1
    )
}

/// Where a verity image's root hash is written next to it
/// (`<image>.roothash`, as `veritysetup --root-hash-file` reads it).
pub fn root_hash_path(image: &Path) -> std::path::PathBuf {
    let mut name = image.as_os_str().to_owned();
    name.push(".roothash");
    name.into()
}

/// The kernel parameter for a disk that has a root hash file next to it:
/// `mkrootfs.verity=<hash>` (what `mkrootfs run` and `vm-config` add).
pub fn kernel_param(image: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root_hash_path(image)).ok()?;
    let hash = text.trim();
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("mkrootfs.verity={hash}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hash(salt: &[u8], block: &[u8]) -> [u8; DIGEST] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

/// The 512-byte verity superblock (version 1, sha256), zero-padded to a block.
pub fn superblock(uuid: &[u8; 16], salt: &[u8], data_blocks: u64) -> Vec<u8> {
    let mut sb = Vec::with_capacity(BLOCK as usize);
    sb.extend_from_slice(b"verity\0\0");
    sb.extend_from_slice(&1u32.to_le_bytes()); // version
    sb.extend_from_slice(&1u32.to_le_bytes()); // hash type: normal
    sb.extend_from_slice(uuid);
    let mut alg = [0u8; 32];
    alg[..6].copy_from_slice(b"sha256");
    sb.extend_from_slice(&alg);
    sb.extend_from_slice(&(BLOCK as u32).to_le_bytes());
    sb.extend_from_slice(&(BLOCK as u32).to_le_bytes());
    sb.extend_from_slice(&data_blocks.to_le_bytes());
    sb.extend_from_slice(&(salt.len() as u16).to_le_bytes());
    sb.extend_from_slice(&[0u8; 6]);
    let mut s = [0u8; 256];
    s[..salt.len()].copy_from_slice(salt);
    sb.extend_from_slice(&s);
    sb.resize(BLOCK as usize, 0);
    sb
}

/// The hash levels of `data` (whole blocks), lowest (over the data) first,
/// each zero-padded to whole hash blocks; and the root hash.
pub fn levels(
    mut data: impl Read,
    data_blocks: u64,
    salt: &[u8],
) -> io::Result<(Vec<Vec<u8>>, [u8; DIGEST])> {
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut block = vec![0u8; BLOCK as usize];
    let mut level = Vec::with_capacity((data_blocks as usize) * DIGEST);
    for _ in 0..data_blocks {
        data.read_exact(&mut block)?;
        level.extend_from_slice(&hash(salt, &block));
    }
    // cryptsetup: as many levels as it takes for one block to hold them.
    loop {
        let padded = (level.len() as u64).div_ceil(BLOCK).max(1) * BLOCK;
        level.resize(padded as usize, 0);
        let blocks = padded / BLOCK;
        levels.push(level);
        let last = levels.last().expect("just pushed");
        if blocks == 1 {
            let root = hash(salt, last);
            return Ok((levels, root));
        }
        level = last
            .chunks(BLOCK as usize)
            .flat_map(|b| hash(salt, b))
            .collect();
    }
}

/// Pads the file at `path` to whole blocks and appends the superblock and
/// the hash tree.
pub fn append(path: &Path, salt: &[u8], uuid: &[u8; 16]) -> io::Result<Verity> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let data_size = len.div_ceil(BLOCK) * BLOCK;
    f.set_len(data_size)?;
    let data_blocks = data_size / BLOCK;
    if data_blocks < 2 {
        return Err(io::Error::other(
            "a verity image needs at least two data blocks",
        ));
    }
    f.seek(SeekFrom::Start(0))?;
    let (levels, root) = levels(io::BufReader::new(&mut f), data_blocks, salt)?;
    debug_assert_eq!(levels.len() as u32, tree_depth(data_blocks));
    f.seek(SeekFrom::Start(data_size))?;
    let mut w = io::BufWriter::new(&mut f);
    w.write_all(&superblock(uuid, salt, data_blocks))?;
    for level in levels.iter().rev() {
        w.write_all(level)?;
    }
    w.flush()?;
    Ok(Verity {
        root_hash: hex(&root),
        salt: hex(salt),
        data_blocks,
        hash_offset: data_size,
    })
}

/// cryptsetup's level count: the smallest L with `(blocks - 1) >> 7L == 0`.
fn tree_depth(data_blocks: u64) -> u32 {
    let mut l = 0;
    while (data_blocks - 1) >> (7 * l) != 0 {
        l += 1;
    }
    l.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_match_cryptsetups_count_and_sizes() {
        for (blocks, depth) in [(2u64, 1u32), (128, 1), (129, 2), (16384, 2), (16385, 3)] {
            assert_eq!(tree_depth(blocks), depth, "{blocks}");
            let data = vec![7u8; (blocks * BLOCK) as usize];
            let (levels, _) = levels(&data[..], blocks, b"salt").unwrap();
            assert_eq!(levels.len() as u32, depth, "{blocks}");
            assert_eq!(levels[0].len() as u64, blocks.div_ceil(PER_BLOCK) * BLOCK);
        }
    }

    #[test]
    fn superblock_is_512_meaningful_bytes_in_a_block() {
        let sb = superblock(&[1; 16], &[0xab; 32], 10);
        assert_eq!(sb.len(), 4096);
        assert_eq!(&sb[..8], b"verity\0\0");
        assert_eq!(&sb[64..72], &4096u32.to_le_bytes().repeat(2)[..]);
        assert_eq!(u64::from_le_bytes(sb[72..80].try_into().unwrap()), 10);
        assert_eq!(u16::from_le_bytes(sb[80..82].try_into().unwrap()), 32);
        assert!(sb[88 + 32..].iter().all(|&b| b == 0));
    }

    #[test]
    fn table_line() {
        assert_eq!(
            table("/dev/vda", 10, "ab", "cd"),
            "0 80 verity 1 /dev/vda /dev/vda 4096 4096 10 11 sha256 ab cd"
        );
    }
}
