//! File-system superblocks, read directly: which file system a block device
//! holds, and its UUID and label, so `root=LABEL=…`/`UUID=…` work without
//! blkid or udev.
//!
//! - ext2/3/4: magic 0xEF53 (le16) at 1024+56, UUID at 1024+104 (16 bytes),
//!   volume name at 1024+120 (16 bytes).
//! - erofs: magic 0xE0F5E1E2 (le32) at 1024, UUID at 1024+48 (16 bytes),
//!   volume name at 1024+64 (16 bytes).
//! - squashfs: magic `hsqs` at 0; it has neither UUID nor label.

use std::io::Read;
use std::path::Path;

/// Bytes needed from the start of a device to probe all supported types.
pub const PROBE_LEN: usize = 2048;

/// What a superblock says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probed {
    /// Kernel file-system type name: `ext4`, `erofs` or `squashfs`.
    pub fstype: &'static str,
    /// Lower-case `8-4-4-4-12` form, `None` when the file system has none
    /// (or it is all zeros).
    pub uuid: Option<String>,
    pub label: Option<String>,
}

/// Identifies the file system from the first [`PROBE_LEN`] bytes of a
/// device (fewer is fine: a short device just matches less).
pub fn probe(head: &[u8]) -> Option<Probed> {
    let at = |off: usize, len: usize| head.get(off..off + len);
    if at(0, 4) == Some(b"hsqs") {
        return Some(Probed {
            fstype: "squashfs",
            uuid: None,
            label: None,
        });
    }
    if at(1024, 4) == Some(&0xE0F5_E1E2u32.to_le_bytes()) {
        return Some(Probed {
            fstype: "erofs",
            uuid: at(1024 + 48, 16).and_then(uuid_string),
            label: at(1024 + 64, 16).and_then(label_string),
        });
    }
    if at(1024 + 56, 2) == Some(&0xEF53u16.to_le_bytes()) {
        return Some(Probed {
            fstype: "ext4",
            uuid: at(1024 + 104, 16).and_then(uuid_string),
            label: at(1024 + 120, 16).and_then(label_string),
        });
    }
    None
}

/// Reads the start of a device and probes it.
pub fn probe_path(path: &Path) -> std::io::Result<Option<Probed>> {
    let mut f = std::fs::File::open(path)?;
    let mut head = Vec::with_capacity(PROBE_LEN);
    f.by_ref().take(PROBE_LEN as u64).read_to_end(&mut head)?;
    Ok(probe(&head))
}

fn uuid_string(b: &[u8]) -> Option<String> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

fn label_string(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
    (end > 0).then(|| String::from_utf8_lossy(&b[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const UUID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

    /// Runs a mkfs tool; `None` (skip) when it is not installed, unless
    /// `CI=true`, where a missing tool fails the test.
    fn run(tool: &str, args: &[&str]) -> Option<()> {
        match Command::new(tool).args(args).output() {
            Ok(o) if o.status.success() => Some(()),
            Ok(o) => panic!("{tool} {args:?}: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::require::require(&format!("the `{tool}` program"), false);
                None
            }
            Err(e) => panic!("{tool}: {e}"),
        }
    }

    fn content(dir: &Path) -> std::path::PathBuf {
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("hello"), b"hi\n").unwrap();
        src
    }

    #[test]
    fn ext4_made_by_mkfs() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("ext4.img");
        let src = content(tmp.path());
        let (img_s, src_s) = (img.to_str().unwrap(), src.to_str().unwrap());
        if run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-d",
                src_s,
                "-L",
                "rootfs-label",
                "-U",
                UUID,
                img_s,
                "4M",
            ],
        )
        .is_none()
        {
            return;
        }
        let p = probe_path(&img).unwrap().unwrap();
        assert_eq!(
            p,
            Probed {
                fstype: "ext4",
                uuid: Some(UUID.into()),
                label: Some("rootfs-label".into())
            }
        );
    }

    #[test]
    fn erofs_made_by_mkfs() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("erofs.img");
        let src = content(tmp.path());
        let (img_s, src_s) = (img.to_str().unwrap(), src.to_str().unwrap());
        let uuid_arg = format!("-U{UUID}");
        if run("mkfs.erofs", &["--quiet", &uuid_arg, img_s, src_s]).is_none() {
            return;
        }
        let p = probe_path(&img).unwrap().unwrap();
        assert_eq!(
            p,
            Probed {
                fstype: "erofs",
                uuid: Some(UUID.into()),
                label: None
            }
        );
        // mkfs.erofs 1.5 cannot set a volume name (no -L): write one where
        // the kernel's struct erofs_super_block has it.
        let mut data = std::fs::read(&img).unwrap();
        data[1024 + 64..1024 + 74].copy_from_slice(b"erofs-root");
        assert_eq!(probe(&data).unwrap().label.as_deref(), Some("erofs-root"));
    }

    #[test]
    fn squashfs_made_by_mksquashfs() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("sq.img");
        let src = content(tmp.path());
        let (img_s, src_s) = (img.to_str().unwrap(), src.to_str().unwrap());
        if run("mksquashfs", &[src_s, img_s, "-quiet", "-noappend"]).is_none() {
            return;
        }
        let p = probe_path(&img).unwrap().unwrap();
        assert_eq!(
            p,
            Probed {
                fstype: "squashfs",
                uuid: None,
                label: None
            }
        );
    }

    #[test]
    fn flipped_magic_or_short_input_is_not_recognised() {
        let mut head = vec![0u8; PROBE_LEN];
        head[1024 + 56..1024 + 58].copy_from_slice(&[0x53, 0xEF]);
        assert_eq!(probe(&head).map(|p| p.fstype), Some("ext4"));
        assert_eq!(
            probe(&head).unwrap().uuid,
            None,
            "an all-zero UUID is no UUID"
        );
        head[1024 + 56] ^= 1;
        assert_eq!(probe(&head), None);
        assert_eq!(probe(&head[..1030]), None);
        assert_eq!(probe(b"hsq"), None);
    }
}
