//! The config drive: a block device whose file system carries the
//! configured label, holding one JSON document at its root (LinuxKit's
//! metadata disk, cloud-init's NoCloud). Found by reading superblocks
//! (`root::wait`, the root device's search), mounted read-only without
//! devices, set-id or exec, read with a size bound, and unmounted.

use crate::root::wait::{self, Spec};
use crate::sys::seam::{Real, Sys};
use mkrootfs_config::settings::{CONFIG_DRIVE_FILE, MAX_DOCUMENT};
use mkrootfs_config::ConfigDriveConfig;
use nix::mount::{MntFlags, MsFlags};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// Where the drive is mounted while it is read.
const MOUNT_POINT: &str = "/run/mkrootfs/config-drive";

/// The device and its document; `None` when no device has the label
/// within the wait.
pub fn read(
    c: &ConfigDriveConfig,
    loaded: &crate::modules::Loaded,
) -> Result<Option<(String, Vec<u8>)>, String> {
    let spec = Spec::Label(c.label.clone());
    let what = format!("config drive LABEL={}", c.label);
    let mut names = loaded.names.clone();
    let wait = Duration::from_millis(c.wait());
    let Some(found) = wait::poll(&spec, &what, wait, loaded.coldplug, &mut names) else {
        return Ok(None);
    };
    let device = found.path.to_string_lossy().into_owned();
    let fstype = found.probed.as_ref().map_or("ext4", |p| p.fstype);
    std::fs::create_dir_all(MOUNT_POINT).map_err(|e| format!("mkdir {MOUNT_POINT}: {e}"))?;
    Real.mount(
        Some(&device),
        MOUNT_POINT,
        Some(fstype),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )
    .map_err(|e| format!("mount {device} ({fstype}) on {MOUNT_POINT}: {e}"))?;
    let text = read_document(&format!("{MOUNT_POINT}/{CONFIG_DRIVE_FILE}"));
    if let Err(e) = Real.umount2(MOUNT_POINT, MntFlags::MNT_DETACH) {
        crate::warn!("umount {MOUNT_POINT}: {e}");
    }
    let _ = std::fs::remove_dir(MOUNT_POINT);
    Ok(Some((device, text?)))
}

/// A regular file (not through a symbolic link) of at most
/// [`MAX_DOCUMENT`] bytes.
pub fn read_document(path: &str) -> Result<Vec<u8>, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))?;
    let meta = f.metadata().map_err(|e| format!("stat {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    let mut text = Vec::new();
    f.take(MAX_DOCUMENT as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("read {path}: {e}"))?;
    if text.len() > MAX_DOCUMENT {
        return Err(format!("{path} is larger than {MAX_DOCUMENT} bytes"));
    }
    Ok(text)
}
