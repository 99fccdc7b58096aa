//! dm-verity for the root image, set up by the init itself (no
//! `veritysetup` in the image): the root hash is the trusted value and
//! comes from the kernel command line (`mkrootfs.verity=<hex>`); the rest is
//! read from the device, laid out as `mkrootfs build` (and `veritysetup
//! format --hash-offset`) writes it: the file system, padded to 4096 bytes,
//! then the verity superblock, then the hash tree. A superblock that lies
//! only makes the hashes disagree with the root hash.
//!
//! A block that does not match its hash reads as EIO; when the mount fails
//! that way, [`first_bad_block`] finds which block it was.

use super::RootError;
use crate::sys::dm;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The device-mapper name of the verified root.
pub const NAME: &str = "mkrootfs-root";
const BLOCK: u64 = 4096;

/// Where a split build's initramfs records the root hash of its image:
/// with it, the root is always mounted through verity.
pub const ROOT_HASH_FILE: &str = "/etc/mkrootfs/root.verity";

/// The root hash to check the root against: the image's own
/// ([`ROOT_HASH_FILE`]), which the command line may repeat but not change,
/// else the command line's.
pub fn root_hash(cmdline: Option<&str>, file: &Path) -> Result<Option<String>, RootError> {
    let recorded = match std::fs::read_to_string(file) {
        Ok(text) => Some(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(RootError::Verity {
                device: "root".into(),
                message: format!("read {}: {e}", file.display()),
            })
        }
    };
    match (recorded, cmdline) {
        (Some(r), Some(c)) if !r.eq_ignore_ascii_case(c) => Err(RootError::Verity {
            device: "root".into(),
            message: format!(
                "mkrootfs.verity={c} is not the root hash this initramfs was built for ({r})"
            ),
        }),
        (Some(r), _) => Ok(Some(r)),
        (None, c) => Ok(c.map(str::to_string)),
    }
}

/// Checks a root hash from the command line: 64 hex digits (sha256).
pub fn parse_root_hash(s: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("{s:?} is not a sha256 root hash (64 hex digits)"))
    }
}

fn err(device: &Path, message: String) -> RootError {
    RootError::Verity {
        device: device.display().to_string(),
        message,
    }
}

/// The file system's size in bytes, from its superblock (ext4, erofs,
/// squashfs), rounded up to 4096.
pub fn fs_size(head: &[u8]) -> Option<u64> {
    let u32_at = |o: usize| Some(u32::from_le_bytes(head.get(o..o + 4)?.try_into().ok()?));
    let size = match super::probe::probe(head)?.fstype {
        "squashfs" => u64::from_le_bytes(head.get(40..48)?.try_into().ok()?),
        "erofs" => {
            let bits = *head.get(1024 + 12)? as u32;
            (u32_at(1024 + 36)? as u64) << bits
        }
        "ext4" => {
            let log = u32_at(1024 + 24)?;
            let lo = u32_at(1024 + 4)? as u64;
            let incompat = u32_at(1024 + 96)?;
            // INCOMPAT_64BIT: s_blocks_count_hi at 0x150.
            let hi = if incompat & 0x80 != 0 {
                u32_at(1024 + 0x150)? as u64
            } else {
                0
            };
            ((hi << 32) | lo) << (10 + log)
        }
        _ => return None,
    };
    Some(size.div_ceil(BLOCK) * BLOCK)
}

/// The parameters of the verity superblock at `offset`, checked.
struct Super {
    data_blocks: u64,
    salt: String,
}

fn read_super(dev: &Path, f: &File, offset: u64) -> Result<Super, RootError> {
    let mut sb = [0u8; 512];
    f.read_exact_at(&mut sb, offset).map_err(|e| {
        err(
            dev,
            format!("read the verity superblock at byte {offset}: {e}"),
        )
    })?;
    let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().expect("4 bytes"));
    if &sb[..8] != b"verity\0\0" {
        return Err(err(
            dev,
            format!("no verity superblock at byte {offset} (after the file system): build the image with verity = true"),
        ));
    }
    let alg_end = sb[32..64].iter().position(|&b| b == 0).unwrap_or(32);
    let alg = String::from_utf8_lossy(&sb[32..32 + alg_end]);
    let salt_size = u16::from_le_bytes([sb[80], sb[81]]) as usize;
    let data_blocks = u64::from_le_bytes(sb[72..80].try_into().expect("8 bytes"));
    if u32_at(8) != 1
        || u32_at(12) != 1
        || alg != "sha256"
        || u32_at(64) != BLOCK as u32
        || u32_at(68) != BLOCK as u32
        || salt_size > 256
        || data_blocks * BLOCK != offset
    {
        return Err(err(
            dev,
            format!("the verity superblock at byte {offset} is not version 1, sha256, 4096-byte blocks covering the file system"),
        ));
    }
    let salt = sb[88..88 + salt_size]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Super { data_blocks, salt })
}

/// The data device under the verity device, once set up (for messages).
static DATA: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `/dev/vda (as /dev/dm-0)` for the verity node, else the node itself.
pub fn describe(node: &str) -> String {
    match DATA.get() {
        Some(data) => format!("{data} (as {node})"),
        None => node.to_string(),
    }
}

/// Creates the verity device over `dev` and returns its node.
pub fn setup(dev: &Path, root_hash: &str) -> Result<PathBuf, RootError> {
    let root_hash =
        &parse_root_hash(root_hash).map_err(|m| err(dev, format!("mkrootfs.verity={m}")))?;
    for m in ["dm_mod", "dm_verity"] {
        crate::modules::ensure(m, &format!("verity of {}", dev.display()));
    }
    let f = File::open(dev).map_err(|e| err(dev, format!("open: {e}")))?;
    let mut head = Vec::with_capacity(4096);
    (&f).take(4096)
        .read_to_end(&mut head)
        .map_err(|e| err(dev, format!("read the file system's superblock: {e}")))?;
    let offset = fs_size(&head).ok_or_else(|| {
        err(
            dev,
            "no ext4, erofs or squashfs superblock to size the data by".into(),
        )
    })?;
    let sb = read_super(dev, &f, offset)?;
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/mapper/control")
        .map_err(|e| {
            err(dev, format!("open /dev/mapper/control: {e} (the initramfs needs the dm_mod and dm_verity modules: [modules] load)"))
        })?;
    let (major, minor) = dm::create(&control, NAME)
        .map_err(|e| err(dev, format!("create device-mapper device {NAME}: {e}")))?;
    let data = dev.display().to_string();
    let params = format!(
        "1 {data} {data} {BLOCK} {BLOCK} {} {} sha256 {root_hash} {}",
        sb.data_blocks,
        sb.data_blocks + 1,
        if sb.salt.is_empty() { "-" } else { &sb.salt }
    );
    dm::load(
        &control,
        NAME,
        dm::READONLY,
        (0, sb.data_blocks * (BLOCK / 512), "verity", &params),
    )
    .map_err(|e| err(dev, format!("load the verity table ({params}): {e}")))?;
    dm::resume(&control, NAME).map_err(|e| err(dev, format!("resume {NAME}: {e}")))?;
    // devtmpfs names the node after the minor number.
    let node = PathBuf::from(format!("/dev/dm-{minor}"));
    if !node.exists() {
        let _ = (major, minor);
        return Err(err(dev, format!("{} did not appear", node.display())));
    }
    let _ = DATA.set(data.clone());
    crate::info!(
        "verity: {data} checked against root hash {root_hash} as {} ({} blocks)",
        node.display(),
        sb.data_blocks
    );
    Ok(node)
}

/// The first block of the verity device that does not read (a hash
/// mismatch reads as EIO), or `None`.
pub fn first_bad_block(node: &Path) -> Option<u64> {
    let f = File::open(node).ok()?;
    let mut buf = vec![0u8; BLOCK as usize];
    let mut block = 0u64;
    loop {
        match f.read_at(&mut buf, block * BLOCK) {
            Ok(0) => return None,
            Ok(_) => block += 1,
            Err(_) => return Some(block),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_hash_is_64_hex_digits() {
        assert_eq!(parse_root_hash(&"AB".repeat(32)), Ok("ab".repeat(32)));
        assert!(parse_root_hash("abc").is_err());
        assert!(parse_root_hash(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn the_images_root_hash_wins_and_the_command_line_cannot_change_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root.verity");
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        assert_eq!(root_hash(None, &file).unwrap(), None);
        assert_eq!(root_hash(Some(&a), &file).unwrap(), Some(a.clone()));
        std::fs::write(&file, format!("{a}\n")).unwrap();
        assert_eq!(root_hash(None, &file).unwrap(), Some(a.clone()));
        assert_eq!(root_hash(Some(&a), &file).unwrap(), Some(a.clone()));
        let e = root_hash(Some(&b), &file).unwrap_err().to_string();
        assert!(
            e.contains("is not the root hash this initramfs was built for"),
            "{e}"
        );
    }

    #[test]
    fn sizes_from_superblocks() {
        let mut sq = vec![0u8; 2048];
        sq[..4].copy_from_slice(b"hsqs");
        sq[40..48].copy_from_slice(&5000u64.to_le_bytes());
        assert_eq!(fs_size(&sq), Some(8192));
        let mut ero = vec![0u8; 2048];
        ero[1024..1028].copy_from_slice(&0xE0F5_E1E2u32.to_le_bytes());
        ero[1024 + 12] = 12;
        ero[1024 + 36..1024 + 40].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(fs_size(&ero), Some(3 * 4096));
    }
}
