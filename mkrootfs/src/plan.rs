//! The build plan: a merged [`Profile`] and the [`BuildOptions`] validated
//! once, before anything is read from disk (ripgrep's LowArgs → HiArgs).
//!
//! Every default is applied here and nowhere else, and every magic string of
//! the profile becomes a type: `image.init` an [`InitChoice`],
//! `modules.kernel` a module tree (`"auto"` resolved), `modules.preset` a [`Preset`], and the
//! compression level is checked against its format. An error names the
//! profile file, line and column of the value at fault.
//! [`crate::build::assemble`] takes only a [`Plan`]. The plan imports
//! nothing from the build: its inputs are here ([`options`]).

use crate::compress::Compression;
use crate::fsimage::{Format, FsOptions};
use crate::kmod::{self, ModuleCompression};
use crate::profile::{Profile, ProfileError, Seg, Source};
use mkrootfs_config::RootMode;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

mod options;
pub use options::{default_output, source_date_epoch, AutoKernel, BuildOptions};

/// A plan that cannot be made: a profile value or an option that does not
/// validate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A value of the profile, and where it was written.
    #[error("{at}: {message}")]
    Invalid {
        /// `file:line:column`, or `profile NAME` for a profile built in code.
        at: String,
        message: String,
    },
    #[error("profile {0} uses the mkrootfs init but has no [init] table (add [[init.services]] or set image.init)")]
    NoInitConfig(String),
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds between 0 and 4294967295 (the newc mtime field)")]
    SourceDateEpoch(String),
    #[error("[modules] asks for modules but names no kernel module tree (set modules.kernel or pass --kernel-modules)")]
    NoModuleTree,
    #[error("modules.kernel = \"auto\" stands for the kernel that boots the image, and none was given (pass --kernel-modules DIR)")]
    AutoKernelUnknown,
    #[error("modules.kernel = \"auto\": kernel {kernel} (version {version}) has no module tree {expected} (nor under usr/); its modules cannot come from another kernel's tree: pass --kernel-modules DIR for this kernel's modules")]
    AutoKernelNoModules {
        kernel: PathBuf,
        version: String,
        expected: PathBuf,
    },
}

/// What runs as PID 1 (`image.init`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitChoice {
    /// `"mkrootfs"` or unset: the project's static init, configured by the
    /// profile's `[init]` table.
    Mkrootfs,
    /// The image's own program at this path (`/init` links to it).
    Own(String),
}

/// A named list of modules (`modules.preset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `"microvm"`: [`kmod::MICROVM_PRESET`].
    Microvm,
}

impl Preset {
    /// Every preset, for parsing and messages.
    pub const ALL: [Preset; 1] = [Preset::Microvm];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Microvm => "microvm",
        }
    }

    /// The modules it stands for.
    pub fn modules(self) -> &'static [&'static str] {
        match self {
            Preset::Microvm => kmod::MICROVM_PRESET,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[modules]`, validated.
#[derive(Clone, Debug)]
pub struct ModulesPlan {
    /// The `lib/modules/<version>` directory the modules come from
    /// (`--kernel-modules`, else `modules.kernel`, `"auto"` resolved through
    /// [`BuildOptions::auto_kernel`]); `None` when no module is asked for.
    pub tree: Option<PathBuf>,
    pub preset: Option<Preset>,
    /// The modules asked for: `load`, the preset's, and the drivers of what
    /// the init's root step mounts (overlay, `root.fstype`) when a tree is
    /// named; in that order.
    pub names: Vec<String>,
    pub load: Vec<String>,
    pub compressed: ModuleCompression,
    pub options: BTreeMap<String, String>,
}

/// Everything a build needs, validated, with every default applied.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The merged profile, for its lists (binaries, files, ...) and its
    /// `[init]` table. Its `[image]` and `[modules]` scalars are the raw
    /// ones: read the validated fields below instead.
    pub profile: Profile,
    /// Default `/`.
    pub sysroot: PathBuf,
    /// Default false.
    pub dlopen_notes: bool,
    /// Where binaries named without a path are looked up inside the
    /// sysroot, `:`-separated. Default [`mkrootfs_config::DEFAULT_PATH`].
    pub binary_path: String,
    /// Default: [`Compression`]'s `Default` (zstd).
    pub compression: Compression,
    /// Default: [`Compression::default_level`]; checked for the format.
    /// With a disk format, `image.level` is the disk's (in [`Plan::disk`])
    /// and this is the default (for the split initramfs).
    pub level: u32,
    pub init: InitChoice,
    pub modules: ModulesPlan,
    /// Default `out/<profile>.cpio` plus the compression's extension.
    pub output: PathBuf,
    /// mtime of every entry: the option, else `$SOURCE_DATE_EPOCH`, else 0.
    pub mtime: u32,
    /// The static init binary; `None`: found by [`crate::build::find_init`].
    pub init_binary: Option<PathBuf>,
    /// `image.format`; default cpio.
    pub format: Format,
    /// A disk format's writer options (`None` for cpio).
    pub disk: Option<FsOptions>,
    /// `image.split`: the small initramfs written next to the disk image,
    /// at this path (`None` without split).
    pub split: Option<PathBuf>,
    /// Warnings for the user, each at the profile's file:line:column (or
    /// naming the option): values that are legal but probably not meant.
    pub notes: Vec<String>,
}

impl Plan {
    /// Validates `profile` and `opts` into a plan.
    pub fn new(profile: &Profile, opts: &BuildOptions) -> Result<Plan, PlanError> {
        let err = |key: &str, message: String| PlanError::Invalid {
            at: match profile.positions.get(key) {
                Some(p) => p.to_string(),
                None => position_fallback(profile),
            },
            message,
        };
        let img = &profile.image;
        let compression = img.compression.unwrap_or_default();
        let format = img.format.unwrap_or_default();
        let level = match img.level {
            Some(l) if format == Format::Cpio => {
                compression
                    .check_level(l)
                    .map_err(|m| err("image.level", m))?;
                l
            }
            _ => compression.default_level(),
        };
        // A disk format's level is its writer's (checked below).
        if let (Compression::None, Some(l), Format::Cpio) = (compression, img.level, format) {
            return Err(err(
                "image.level",
                format!("level {l} means nothing without compression (compression = \"none\"): remove it"),
            ));
        }
        let init = match img.init.as_deref() {
            None | Some("mkrootfs") => InitChoice::Mkrootfs,
            Some(path) => InitChoice::Own(path.to_string()),
        };
        if let (InitChoice::Own(path), Some(source)) = (&init, &profile.init_source) {
            // The image's own init never reads the [init] table.
            let table = init_position(source, &[]);
            return Err(err(
                "image.init",
                format!(
                    "image.init = {path:?} runs the image's own program as PID 1, which never \
                     reads the [init] table at {table}: remove one of them"
                ),
            ));
        }
        let binary_path = match &img.binary_path {
            None => mkrootfs_config::DEFAULT_PATH.to_string(),
            Some(p) => {
                if p.is_empty() || p.split(':').any(|d| !d.starts_with('/')) {
                    return Err(err(
                        "image.binary_path",
                        format!("binary_path {p:?} must be absolute directories separated by `:`"),
                    ));
                }
                p.clone()
            }
        };
        let mut notes = Vec::new();
        if let (Some(init), Some(source)) = (&profile.init, &profile.init_source) {
            if init.root.mode == RootMode::Overlay && init.root.device.is_none() {
                notes.push(format!(
                    "{}: init.root.mode = \"overlay\" without a device: the lower layer must \
                     then come from root= on the kernel command line, or the boot fails",
                    init_position(source, &[Seg::Key("root"), Seg::Key("mode")])
                ));
            }
        }
        if init == InitChoice::Mkrootfs && profile.init.is_none() {
            return Err(PlanError::NoInitConfig(profile.path.display().to_string()));
        }
        let m = &profile.modules;
        let preset = match m.preset.as_deref() {
            None => None,
            Some(name) => Some(
                Preset::ALL
                    .into_iter()
                    .find(|p| p.name() == name)
                    .ok_or_else(|| {
                        let known: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                        err(
                            "modules.preset",
                            format!(
                                "modules.preset {name:?} is not a known preset (known: {})",
                                known.join(", ")
                            ),
                        )
                    })?,
            ),
        };
        let named = opts.modules_dir.is_some() || m.kernel.is_some();
        let mut names: Vec<String> = m.load.clone();
        if let Some(preset) = preset {
            names.extend(preset.modules().iter().map(|s| s.to_string()));
        }
        // What the init's root step will mount needs its driver in the image;
        // a built-in one is simply recorded as such by the closure.
        if let (Some(init), true) = (&profile.init, named) {
            if init.root.mode == RootMode::Overlay {
                names.push("overlay".to_string());
            }
            if let Some(fstype) = &init.root.fstype {
                names.push(fstype.clone());
            }
            // The interfaces [[init.network]] configures are virtio-net
            // ones on every monitor, on PCI (QEMU pc, Cloud Hypervisor) or
            // MMIO (microvm, Firecracker); Debian builds all three as modules.
            let mut drivers: Vec<&str> = Vec::new();
            if !init.network.is_empty() {
                drivers.extend(["virtio_pci", "virtio_mmio", "virtio_net"]);
            }
            // A config drive the image requires is a virtio-blk disk; an
            // optional one is looked for only with the driver the profile
            // loads (docs/init.md "Per-VM settings").
            if init.config_drive.enabled && init.config_drive.required {
                drivers.extend(["virtio_pci", "virtio_mmio", "virtio_blk"]);
            }
            for m in drivers {
                if !names.iter().any(|n| n == m) {
                    names.push(m.to_string());
                }
            }
        }
        names.dedup();
        // A disk image's format is judged against a named tree even when no
        // module is asked for (build/disk.rs, check_mountable).
        let wants_tree = !names.is_empty() || (named && format != Format::Cpio);
        let tree = match (!wants_tree, &opts.modules_dir, m.kernel.as_deref()) {
            (true, _, _) => None,
            (false, Some(dir), _) => Some(dir.clone()),
            (false, None, Some("auto")) => match &opts.auto_kernel {
                Some(k) => Some(k.module_tree()?),
                None => return Err(PlanError::AutoKernelUnknown),
            },
            (false, None, Some(path)) => Some(PathBuf::from(path)),
            (false, None, None) => return Err(PlanError::NoModuleTree),
        };
        let mtime = match opts.mtime {
            Some(m) => m,
            None => source_date_epoch()?,
        };
        let only_disk = |key: &str, set: bool| -> Result<(), PlanError> {
            if set && format == Format::Cpio {
                let name = key.trim_start_matches("image.");
                return Err(err(
                    key,
                    format!("image.{name} is for disk images: set image.format to erofs, squashfs or ext4"),
                ));
            }
            Ok(())
        };
        only_disk("image.fs_compression", img.fs_compression.is_some())?;
        only_disk("image.split", img.split.unwrap_or(false))?;
        only_disk("image.verity", img.verity.unwrap_or(false))?;
        only_disk("image.label", img.label.is_some())?;
        if let Some(l) = &img.label {
            if format != Format::Ext4 {
                return Err(err(
                    "image.label",
                    format!("image.label: {format} images have no label here (ext4 only; mount erofs and squashfs by UUID or path)"),
                ));
            }
            crate::fsimage::check_label(l)
                .map_err(|e| err("image.label", format!("image.label {e}")))?;
        }
        let split = img.split.unwrap_or(false);
        let disk = match format {
            Format::Cpio => None,
            f => {
                let fs_compression = img.fs_compression.unwrap_or(f.compressions()[0]);
                let key = if img.level.is_some() {
                    "image.level"
                } else {
                    "image.fs_compression"
                };
                let level = fs_compression
                    .check(f, img.level)
                    .map_err(|m| err(key, m))?;
                Some(FsOptions {
                    format: f,
                    compression: fs_compression,
                    level,
                    verity: img.verity.unwrap_or(false),
                    label: img.label.clone(),
                    mtime,
                })
            }
        };
        let output = opts.output.clone().unwrap_or_else(|| match format {
            Format::Cpio => default_output(profile, compression),
            f => PathBuf::from("out").join(format!("{}{}", profile.name, f.extension())),
        });
        if let (Format::Cpio, Some(named)) = (format, output_name_compression(&output)) {
            if named != compression {
                let why = match profile.positions.get("image.compression") {
                    Some(p) => format!("image.compression at {p}"),
                    None => "the default compression".to_string(),
                };
                notes.push(format!(
                    "{}: the name says {named} but the image is {compression} ({why})",
                    output.display()
                ));
            }
        }
        let split = split.then(|| {
            let ext = format!("cpio{}", compression.extension());
            match output.with_extension(&ext) {
                // `-o root.cpio`: never the image's own name.
                p if p == output => output.with_extension(format!("initramfs.{ext}")),
                p => p,
            }
        });
        Ok(Plan {
            profile: profile.clone(),
            sysroot: img.sysroot.clone().unwrap_or_else(|| PathBuf::from("/")),
            dlopen_notes: img.dlopen_notes.unwrap_or(false),
            binary_path,
            compression,
            level,
            init,
            modules: ModulesPlan {
                tree,
                preset,
                names,
                load: m.load.clone(),
                compressed: m.compressed.unwrap_or_default(),
                options: m.options.clone(),
            },
            output,
            mtime,
            init_binary: opts.init_binary.clone(),
            format,
            disk,
            split,
            notes,
        })
    }
}

impl Plan {
    /// An error about the value of `key` (`"image.format"`), at its
    /// position in the profile.
    pub fn error_at(&self, key: &str, message: String) -> PlanError {
        PlanError::Invalid {
            at: match self.profile.positions.get(key) {
                Some(p) => p.to_string(),
                None => position_fallback(&self.profile),
            },
            message,
        }
    }
}

/// The compression an output file's name announces (`.cpio`, `.gz`,
/// `.xz`, `.zst`); `None` for a name that says nothing (`initrd.img`).
fn output_name_compression(path: &std::path::Path) -> Option<Compression> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".cpio") {
        return Some(Compression::None);
    }
    Compression::ALL
        .into_iter()
        .filter(|c| *c != Compression::None)
        .find(|c| name.ends_with(c.extension()))
}

/// `file:line:column` of `init.<key>` in the file that wrote `[init]`.
pub(crate) fn init_position(source: &Source, key: &[Seg]) -> String {
    match source.init_error(key, String::new()) {
        ProfileError::Invalid {
            path, line, column, ..
        } => format!("{}:{line}:{column}", path.display()),
        other => other.to_string(),
    }
}

/// Where an error points when the profile has no position for the key (a
/// profile built in code, or a value a parent file inherited unpositioned).
fn position_fallback(profile: &Profile) -> String {
    if profile.path.as_os_str().is_empty() {
        format!("profile {}", profile.name)
    } else {
        profile.path.display().to_string()
    }
}

#[cfg(test)]
mod tests;
