//! A plan with a disk format: the assembled tree written as a file system
//! image (`crate::fsimage`), and with `split = true` the small initramfs
//! that mounts it (the init, its configuration with `root.mode = "overlay"`
//! on the image, and the modules that takes).

use super::*;
use crate::fsimage::{self, Format, FsCompression, FsOptions};
use serde::Serialize;

/// What a disk build wrote, beyond [`BuildReport`]'s common fields.
#[derive(Clone, Debug, Serialize)]
pub struct DiskReport {
    pub format: Format,
    pub fs_compression: FsCompression,
    pub level: Option<u32>,
    /// The file system's UUID (erofs and ext4; derived from the tree).
    pub uuid: String,
    /// Bytes of file data in the tree.
    pub data_bytes: u64,
    /// The file system alone, and the whole file (with a hash tree).
    pub fs_bytes: u64,
    pub image_bytes: u64,
    pub verity: Option<fsimage::verity::Verity>,
    /// The split initramfs and its size.
    pub initramfs: Option<(PathBuf, u64)>,
}

pub(super) fn build(
    plan: &Plan,
    fs: &FsOptions,
    start: Instant,
) -> Result<BuildReport, BuildError> {
    check_mountable(plan, fs)?;
    crate::progress::step(crate::progress::Step::Assemble);
    let assembled = assemble(plan)?;
    let written = fsimage::write(&assembled.tree, fs, &plan.output)?;
    if let Some(v) = &written.verity {
        let path = fsimage::verity::root_hash_path(&plan.output);
        write_atomically(&path, format!("{}\n", v.root_hash).as_bytes())?;
    }
    let initramfs = match &plan.split {
        None => None,
        Some(path) => Some(write_split(plan, &assembled, fs, &written, path)?),
    };
    let mut notes = assembled.notes.clone();
    // The layers' xattrs are reported by the OCI step for cpio; a disk
    // image keeps the ones the tree carries.
    notes.retain(|n| !(n.contains("which cpio cannot carry") && assembled.tree.has_xattrs()));
    Ok(BuildReport {
        path: plan.output.clone(),
        entries: written.entries,
        uncompressed: written.data_bytes,
        compressed: written.image_bytes,
        compression: plan.compression,
        level: plan.level,
        read_ahead_peak: 0,
        elapsed: start.elapsed(),
        notes,
        disk: Some(DiskReport {
            format: fs.format,
            fs_compression: fs.compression,
            level: fs.level,
            uuid: written.uuid,
            data_bytes: written.data_bytes,
            fs_bytes: written.fs_bytes,
            image_bytes: written.image_bytes,
            verity: written.verity,
            initramfs,
        }),
        sources: super::report::sources(&assembled.tree),
    })
}

/// The one-line summary of a disk build.
pub(super) fn summary(
    f: &mut std::fmt::Formatter<'_>,
    r: &BuildReport,
    d: &DiskReport,
) -> std::fmt::Result {
    write!(
        f,
        "{}: {} {}, {} entries, {} bytes of files, {} bytes",
        r.path.display(),
        d.format,
        match d.level {
            Some(l) => format!("{} -{l}", d.fs_compression),
            None => d.fs_compression.to_string(),
        },
        r.entries,
        d.data_bytes,
        d.image_bytes,
    )?;
    if d.format != Format::Squashfs {
        write!(f, ", UUID {}", d.uuid)?;
    }
    if let Some(v) = &d.verity {
        write!(f, ", verity root hash {}", v.root_hash)?;
    }
    if let Some((p, size)) = &d.initramfs {
        write!(f, "; initramfs {} ({size} bytes)", p.display())?;
    }
    write!(f, ", {:.2} s", r.elapsed.as_secs_f64())
}

/// With a module tree to judge by, the file system (and dm-verity, and
/// overlay for a split build) must be built in or a module of it.
fn check_mountable(plan: &Plan, fs: &FsOptions) -> Result<(), BuildError> {
    let Some(dir) = &plan.modules.tree else {
        return Ok(());
    };
    let fstype = fs.format.fstype().unwrap_or_default();
    let mut needs = vec![("image.format", fstype)];
    if plan.split.is_some() {
        needs.push(("image.split", "overlay"));
    }
    if fs.verity {
        needs.extend([("image.verity", "dm_mod"), ("image.verity", "dm_verity")]);
    }
    for (key, module) in needs {
        if kmod::resolve(dir, &[module.to_string()]).is_err() {
            return Err(plan
                .error_at(
                    key,
                    format!(
                        "the kernel of {} cannot mount {} images: {module} is neither built in nor a module of it",
                        dir.display(),
                        fs.format
                    ),
                )
                .into());
        }
    }
    Ok(())
}

/// The split initramfs: the skeleton, the init and its configuration with
/// the root on the image, and the modules that takes.
fn write_split(
    plan: &Plan,
    assembled: &Assembled,
    fs: &FsOptions,
    written: &fsimage::Written,
    path: &Path,
) -> Result<(PathBuf, u64), BuildError> {
    let no_init = || {
        BuildError::from(PlanError::NoInitConfig(
            plan.profile.path.display().to_string(),
        ))
    };
    let mut cfg = assembled.init.clone().ok_or_else(no_init)?;
    let mut p = plan.clone();
    let mut user = p.profile.init.clone().ok_or_else(no_init)?;
    user.root.mode = RootMode::Overlay;
    if user.root.device.is_none() {
        // squashfs has no UUID: the first disk.
        user.root.device = Some(match fs.format {
            Format::Squashfs => "/dev/vda".to_string(),
            _ => format!("UUID={}", written.uuid),
        });
    }
    user.root.fstype = fs.format.fstype().map(str::to_string);
    p.profile.init = Some(user.clone());
    if fs.verity {
        p.modules
            .load
            .extend(["dm_mod".to_string(), "dm_verity".to_string()]);
    }
    crate::progress::step(crate::progress::Step::Initramfs);
    let mut tree = Tree::new(&plan.sysroot);
    tree.add_skeleton()?;
    let mut modules = user.modules.clone();
    for m in add_modules(&mut tree, &p)? {
        if !modules.contains(&m) {
            modules.push(m);
        }
    }
    cfg.root = user.root;
    cfg.modules = modules;
    let init = assembled
        .tree
        .file_data("/init")
        .ok_or_else(|| BuildError::InitMissing("/init".into()))?
        .read()?;
    super::init::add(&mut tree, init, &cfg)?;
    // The init then always mounts the image through verity, with this hash
    // (init/src/root/verity.rs, ROOT_HASH_FILE).
    if let Some(v) = &written.verity {
        tree.add(
            "/etc/mkrootfs/root.verity",
            Node::File(format!("{}\n", v.root_hash).into_bytes().into()),
            Meta::root(0o644),
            "the image's verity root hash",
        )?;
    }
    let w = write::write_image(&tree, plan.mtime, plan.compression, Some(plan.level), path)?;
    Ok((path.to_path_buf(), w.compressed))
}
