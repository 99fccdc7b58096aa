//! Finding the root file system and leaving the initramfs for it.
//!
//! Modes (`root.mode`): `initramfs` stays; `device` mounts a block device
//! (ext4 read-write by default, erofs/squashfs read-only); `overlay` puts a
//! tmpfs over a read-only image; `tmpfs` copies the initramfs into a tmpfs
//! so that `pivot_root` works afterwards (container runtimes need it). With
//! `root.exec` the init then hands PID 1 over to the new root's program.

pub mod probe;
pub mod switch_root;
pub mod verity;
pub mod wait;

use mkrootfs_config::{RootConfig, RootMode};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switch_root::{copy_tree, make_private, mkdir_p, move_api_mounts, switch};

/// Where the new root is assembled before the switch.
pub const NEWROOT: &str = "/sysroot";
/// Overlay mode: the read-only lower image and the tmpfs holding the upper
/// and work directories. Under /run, which moves into the new root, so
/// they stay visible there.
pub const OVERLAY_LOWER: &str = "/run/mkrootfs/lower";
pub const OVERLAY_RW: &str = "/run/mkrootfs/rw";

/// Where the init runs after [`enter`].
pub enum Entered {
    /// Still on the initramfs.
    Initramfs,
    /// Switched into the new root (`/dev`, `/proc`, `/sys`, `/run` moved along).
    Switched,
    /// Switched, and this program of the new root should now be exec'd as
    /// PID 1, with this argv (argv[0] included).
    Exec(PathBuf, Vec<String>),
}

/// A failed step of finding, mounting or entering the root.
#[derive(Debug)]
pub enum RootError {
    NoDevice(RootMode),
    BadDevice(String),
    Timeout {
        device: String,
        waited_ms: u64,
        devices: Vec<String>,
        modules: Vec<String>,
    },
    UnknownFs(PathBuf),
    NoFsDriver {
        fstype: String,
        device: String,
    },
    Mount {
        source: String,
        target: PathBuf,
        fstype: String,
        data: String,
        errno: Errno,
    },
    Step {
        step: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    ExecMissing(PathBuf),
    /// dm-verity could not be set up, or the image does not match the root
    /// hash (`mkrootfs.verity=`).
    Verity {
        device: String,
        message: String,
    },
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl fmt::Display for RootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootError::NoDevice(m) => write!(
                f,
                "root mode {m:?} needs a device: set root.device or root= on the kernel command line"
            ),
            RootError::BadDevice(d) => {
                write!(f, "root device {d:?}: expected a /dev path, LABEL=… or UUID=…")
            }
            RootError::Timeout { device, waited_ms, devices, modules } => write!(
                f,
                "wait for root device {device}: not found after {waited_ms} ms; block devices: {}; modules loaded: {}",
                list(devices),
                list(modules)
            ),
            RootError::UnknownFs(p) => write!(
                f,
                "probe {}: no ext4, erofs or squashfs superblock; set root.fstype (rootfstype=)",
                p.display()
            ),
            RootError::NoFsDriver { fstype, device } => write!(
                f,
                "mount {device}: the kernel has no {fstype} file system and the image has no module for it (add \"{fstype}\" to the profile's [modules] load)"
            ),
            RootError::Mount { source, target, fstype, data, .. } => write!(
                f,
                "mount {source} on {} (type {fstype}, options {data:?})",
                target.display()
            ),
            RootError::Step { step, path, .. } => write!(f, "{step} {}", path.display()),
            RootError::Verity { device, message } => write!(f, "verity: {device}: {message}"),
            RootError::ExecMissing(p) => {
                write!(f, "root.exec {}: no such program in the new root", p.display())
            }
        }
    }
}

impl std::error::Error for RootError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RootError::Mount { errno, .. } | RootError::Step { errno, .. } => Some(errno),
            _ => None,
        }
    }
}

/// Mounts and enters the configured root; with `verity` (a root hash from
/// `mkrootfs.verity=`), through a dm-verity device over the root device.
pub fn enter(
    root: &RootConfig,
    loaded: &crate::modules::Loaded,
    verity: Option<&str>,
) -> Result<Entered, RootError> {
    let start = Instant::now();
    let newroot = Path::new(NEWROOT);
    let verity = match root.mode {
        RootMode::Device | RootMode::Overlay => {
            verity::root_hash(verity, Path::new(verity::ROOT_HASH_FILE))?
        }
        _ => None,
    };
    let verity = verity.as_deref();
    let what = match root.mode {
        RootMode::Initramfs => return Ok(Entered::Initramfs),
        RootMode::Tmpfs => {
            make_private(&crate::sys::seam::Real)?;
            mkdir_p(newroot)?;
            mount_checked("tmpfs", newroot, "tmpfs", MsFlags::empty(), "mode=0755")?;
            copy_tree(Path::new("/"), newroot)?;
            "a tmpfs copy of the initramfs".to_owned()
        }
        RootMode::Device => {
            let (dev, fstype) = root_device(root, loaded, verity)?;
            // A verity device is read-only whatever the file system.
            let ro = root.readonly
                || verity.is_some()
                || matches!(fstype.as_str(), "erofs" | "squashfs");
            let flags = if ro {
                MsFlags::MS_RDONLY
            } else {
                MsFlags::empty()
            };
            make_private(&crate::sys::seam::Real)?;
            mkdir_p(newroot)?;
            mount_verified(&dev, newroot, &fstype, flags, &root.options, verity)?;
            format!("{dev} ({fstype}, {})", if ro { "ro" } else { "rw" })
        }
        RootMode::Overlay => {
            let (dev, fstype) = root_device(root, loaded, verity)?;
            make_private(&crate::sys::seam::Real)?;
            ensure_run_mounted()?;
            let (lower, rw) = (Path::new(OVERLAY_LOWER), Path::new(OVERLAY_RW));
            mkdir_p(lower)?;
            let ro = MsFlags::MS_RDONLY;
            mount_verified(&dev, lower, &fstype, ro, &root.options, verity)?;
            mkdir_p(rw)?;
            mount_checked("tmpfs", rw, "tmpfs", MsFlags::empty(), "mode=0755")?;
            let (upper, work) = (rw.join("upper"), rw.join("work"));
            mkdir_p(&upper)?;
            mkdir_p(&work)?;
            ensure_fs("overlay", "overlay")?;
            mkdir_p(newroot)?;
            let data = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            );
            mount_checked("overlay", newroot, "overlay", MsFlags::empty(), &data)?;
            format!("an overlay of {dev} ({fstype}) and a tmpfs")
        }
    };
    move_api_mounts(&crate::sys::seam::Real, newroot)?;
    switch(&crate::sys::seam::Real, newroot)?;
    crate::info!(
        "switched root to {what} in {} ms",
        start.elapsed().as_millis()
    );
    let Some(exec) = &root.exec else {
        return Ok(Entered::Switched);
    };
    let argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
    let program = PathBuf::from(argv.first().map(String::as_str).unwrap_or(""));
    if !program.is_absolute() || !program.exists() {
        return Err(RootError::ExecMissing(program));
    }
    Ok(Entered::Exec(program, argv))
}

/// Waits for the configured device and works out its file-system type;
/// with a root hash, returns the verity device over it instead.
fn root_device(
    root: &RootConfig,
    loaded: &crate::modules::Loaded,
    verity: Option<&str>,
) -> Result<(String, String), RootError> {
    let spec = root
        .device
        .as_deref()
        .ok_or(RootError::NoDevice(root.mode))?;
    let found = wait::wait(spec, Duration::from_millis(root.timeout_ms), loaded)?;
    let dev = found.path.display().to_string();
    let fstype = match (&root.fstype, &found.probed) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => p.fstype.to_owned(),
        (None, None) => return Err(RootError::UnknownFs(found.path)),
    };
    crate::info!("root device {spec} is {}", wait::describe(&found));
    ensure_fs(&fstype, &dev)?;
    match verity {
        Some(hash) => {
            let node = verity::setup(&found.path, hash)?;
            Ok((node.display().to_string(), fstype))
        }
        None => Ok((dev, fstype)),
    }
}

/// Mounts the root; on a verity device an I/O error is the image not
/// matching its root hash, reported with the first block that fails.
fn mount_verified(
    dev: &str,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
    data: &str,
    verity: Option<&str>,
) -> Result<(), RootError> {
    match mount_checked(dev, target, fstype, flags, data) {
        Err(RootError::Mount { errno, .. }) if verity.is_some() && errno == Errno::EIO => {
            let block = match verity::first_bad_block(Path::new(dev)) {
                Some(b) => format!("block {b} fails verification"),
                None => "no block fails verification now".to_string(),
            };
            Err(RootError::Verity {
                device: verity::describe(dev),
                message: format!(
                    "the image does not match root hash {}: {block} (mount {fstype}: EIO)",
                    verity.unwrap_or_default()
                ),
            })
        }
        other => other,
    }
}

/// Whether `/proc/filesystems` lists `fstype`.
fn kernel_has_fs(fstype: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some(fstype))
    })
}

/// Makes sure the kernel knows `fstype`, loading its module if needed.
fn ensure_fs(fstype: &str, device: &str) -> Result<(), RootError> {
    if kernel_has_fs(fstype) {
        return Ok(());
    }
    crate::modules::ensure(fstype, &format!("file system of {device}"));
    if kernel_has_fs(fstype) {
        Ok(())
    } else {
        Err(RootError::NoFsDriver {
            fstype: fstype.to_owned(),
            device: device.to_owned(),
        })
    }
}

/// Overlay mode keeps its layers under /run so they move with it; mount a
/// tmpfs there if the early mounts did not.
fn ensure_run_mounted() -> Result<(), RootError> {
    let run = Path::new("/run");
    mkdir_p(run)?;
    let same = |a: &str, b: &str| -> Result<bool, RootError> {
        let st = |p: &str| {
            nix::sys::stat::stat(p).map_err(|errno| RootError::Step {
                step: "stat",
                path: p.into(),
                errno,
            })
        };
        Ok(st(a)?.st_dev == st(b)?.st_dev)
    };
    if same("/run", "/")? {
        mount_checked(
            "tmpfs",
            run,
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=0755",
        )?;
    }
    Ok(())
}

fn mount_checked(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> Result<(), RootError> {
    let d = (!data.is_empty()).then_some(data);
    mount(Some(source), target, Some(fstype), flags, d).map_err(|errno| RootError::Mount {
        source: source.to_owned(),
        target: target.to_owned(),
        fstype: fstype.to_owned(),
        data: data.to_owned(),
        errno,
    })
}
