//! Profile → tree → cpio → compressed image, written atomically.

use crate::compress::Compression;
use crate::elf::{self, ElfError, Resolver, ResolverOptions};
use crate::kmod::{self, KmodError};
pub use crate::plan::{default_output, source_date_epoch, AutoKernel, BuildOptions};
use crate::plan::{InitChoice, Plan, PlanError};
use crate::profile::{NodeKind, Profile, ProfileError, Seg};
use crate::tree::{Meta, Node, Tree, TreeError};
use mkrootfs_config::{InitConfig, RootMode};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod binaries;
mod checks;
mod disk;
mod entries;
mod init;
mod modules;
pub mod report;
pub(crate) mod write;

use binaries::add_busybox_links;
pub use binaries::{
    locate_binary, locate_binary_in, locate_with_interpreters, Located as LocatedBinary,
};
pub use disk::DiskReport;
use entries::add_profile_entries;
pub use init::{find_init, INIT_IN_TARGET};
use modules::add_modules;
pub use write::{write_atomically, WriteError};

/// Directories searched for binaries named without a path, inside the
/// sysroot (whatever the sysroot, never the caller's `$PATH`), unless the
/// profile's `image.binary_path` names others: the init's own default `PATH`.
pub use mkrootfs_config::DEFAULT_PATH;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error(transparent)]
    Kmod(#[from] KmodError),
    #[error(transparent)]
    Container(#[from] crate::container::ContainerError),
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
    #[error(transparent)]
    FsImage(#[from] crate::fsimage::FsImageError),
    #[error(transparent)]
    At(Box<Located>),
    #[error("binary {name:?} (from {profile}) not found in {searched}")]
    BinaryNotFound {
        name: String,
        profile: String,
        searched: String,
    },
    #[error("the mkrootfs init binary was not found (looked at {searched}); build it with `make init` or set MKROOTFS_INIT")]
    NoInit { searched: String },
    #[error("{0} has a PT_INTERP: the init must be a static executable")]
    InitNotStatic(PathBuf),
    #[error("{0} is not an ELF executable: the mkrootfs init must be the static `init` binary (`make init`)")]
    InitNotElf(PathBuf),
    #[error("read init binary {path}")]
    ReadInit {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("profile {profile}: [modules] options: {message}")]
    ModuleOptions { profile: String, message: String },
    #[error("profile {profile}: {message}")]
    InitInvalid { profile: String, message: String },
    #[error("image.init {0} is not in the image")]
    InitMissing(String),
    #[error("busybox_links: run {path} --list-full")]
    Busybox {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serialize the init configuration")]
    InitJson(#[source] serde_json::Error),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct BuildReport {
    pub path: PathBuf,
    pub entries: usize,
    pub uncompressed: u64,
    pub compressed: u64,
    pub compression: Compression,
    /// The level used (the format's default when the profile gives none).
    pub level: u32,
    /// The most file data held in memory at once, read ahead of the
    /// archive writer (bounded; see [`write`]).
    pub read_ahead_peak: u64,
    pub elapsed: Duration,
    /// Warnings for the user, printed by the CLI.
    pub notes: Vec<String>,
    /// A disk image's details (`image.format` other than cpio).
    pub disk: Option<disk::DiskReport>,
    /// Every entry of the image and where it came from.
    pub sources: Vec<report::Source>,
}

impl std::fmt::Display for BuildReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(d) = &self.disk {
            return disk::summary(f, self, d);
        }
        write!(
            f,
            "{}: {} entries, {} bytes, {} bytes {}{} ({:.1}%), {:.2} s",
            self.path.display(),
            self.entries,
            self.uncompressed,
            self.compressed,
            self.compression,
            match self.compression {
                Compression::None => String::new(),
                _ => format!(" -{}", self.level),
            },
            100.0 * self.compressed as f64 / self.uncompressed.max(1) as f64,
            self.elapsed.as_secs_f64()
        )
    }
}

/// The assembled image before it is archived.
#[derive(Debug)]
pub struct Assembled {
    pub tree: Tree,
    /// The configuration written for the mkrootfs init, if it is used.
    pub init: Option<InitConfig>,
    /// Warnings for the user (OCI fields ignored, xattrs dropped).
    pub notes: Vec<String>,
    /// Scratch directories of OCI layers, read when the image is written.
    pub scratch: Vec<tempfile::TempDir>,
}

/// Builds `profile` into an image file. Files are read from disk while the
/// image is written (see [`write`]), so memory stays bounded.
/// The profile is validated first ([`Plan::new`]), so a bad value is
/// reported with its position before anything is read.
pub fn build(profile: &Profile, opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let start = Instant::now();
    let plan = Plan::new(profile, opts)?;
    if let Some(fs) = &plan.disk {
        return disk::build(&plan, fs, start);
    }
    crate::progress::step(crate::progress::Step::Assemble);
    let assembled = assemble(&plan)?;
    crate::progress::step(crate::progress::Step::Archive);
    let written = write::write_image(
        &assembled.tree,
        plan.mtime,
        plan.compression,
        Some(plan.level),
        &plan.output,
    )?;
    Ok(BuildReport {
        path: plan.output,
        entries: written.entries,
        uncompressed: written.uncompressed,
        compressed: written.compressed,
        compression: plan.compression,
        level: plan.level,
        read_ahead_peak: written.read_ahead_peak,
        elapsed: start.elapsed(),
        notes: plan.notes.iter().chain(&assembled.notes).cloned().collect(),
        disk: None,
        sources: report::sources(&assembled.tree),
    })
}

/// Assembles the tree of a validated plan without archiving it.
pub fn assemble(plan: &Plan) -> Result<Assembled, BuildError> {
    let profile = &plan.profile;
    let sysroot = plan.sysroot.clone();
    let mut tree = Tree::new(&sysroot);
    tree.add_skeleton()?;
    let resolver = Resolver::new(ResolverOptions {
        sysroot: sysroot.clone(),
        dlopen_notes: plan.dlopen_notes,
        arch: None,
    })?;

    let mut roots = Vec::new();
    let mut notes = Vec::new();
    for name in &profile.binaries {
        // Where the profile named it, for its errors.
        let origin = match profile.item_position("binaries", name) {
            Some(at) => at.to_string(),
            None => format!("profile {}", profile.name),
        };
        let found = locate_with_interpreters(&sysroot, name, &plan.binary_path, &origin)?;
        notes.extend(found.note);
        let (binary, interpreters) = found.paths.split_first().expect("the binary itself");
        tree.add_from_sysroot(binary, &format!("binary {name}"))?;
        for path in interpreters {
            tree.add_from_sysroot(path, &format!("interpreter of {name}"))?;
        }
        // The closure starts from ELF files: a script's interpreters.
        match interpreters {
            [] => roots.push(PathBuf::from(binary)),
            _ => roots.extend(interpreters.iter().map(PathBuf::from)),
        }
    }
    for lib in &profile.libraries {
        let path = if lib.starts_with('/') {
            PathBuf::from(lib)
        } else {
            resolver
                .find_library(lib)
                .map_err(|e| located(profile.item_position("libraries", lib), BuildError::Elf(e)))?
        };
        tree.add_from_sysroot(&path.to_string_lossy(), &format!("library {lib}"))?;
        roots.push(path);
    }
    if !roots.is_empty() {
        let closure = resolver.closure(&roots)?;
        for dep in &closure.deps {
            let why = format!("{} needed by {}", dep.name, dep.needed_by.display());
            tree.add_from_sysroot(&dep.path.to_string_lossy(), &why)?;
        }
    }
    if let Some(bb) = &profile.image.busybox_links {
        add_busybox_links(&mut tree, &sysroot, &bb.0)?;
    }

    add_profile_entries(&mut tree, profile)?;
    if plan.init == InitChoice::Mkrootfs {
        checks::check_init_modules(profile, plan)?;
    }
    let module_names = add_modules(&mut tree, plan).map_err(|e| match &e {
        BuildError::Kmod(KmodError::Unknown { name, .. }) => {
            let at = profile.item_position("modules.load", name);
            located(at, e)
        }
        _ => e,
    })?;

    let mut oci = crate::oci::prepare::Prepared::default();
    let init = match &plan.init {
        InitChoice::Mkrootfs => {
            let mut cfg = profile
                .init
                .clone()
                .ok_or_else(|| PlanError::NoInitConfig(profile.path.display().to_string()))?;
            cfg.modules.extend(module_names);
            cfg.module_options.extend(plan.modules.options.clone());
            // OCI images and bundles: their roots into the tree, their
            // settings into the services, under the profile's own keys.
            oci = crate::oci::prepare::prepare(&mut tree, profile, &mut cfg)?;
            // Checked again now that [modules] options and the OCI inputs
            // are merged in; the names are final once OCI images have
            // filled argv in.
            cfg.validate_at()
                .and_then(|()| cfg.check_service_names())
                .map_err(|e| init_invalid(plan, e))?;
            let bin = match &plan.init_binary {
                Some(p) => p.clone(),
                None => find_init()?,
            };
            let data = fs::read(&bin).map_err(|source| BuildError::ReadInit {
                path: bin.clone(),
                source,
            })?;
            match goblin::elf::Elf::parse(&data) {
                Err(_) => return Err(BuildError::InitNotElf(bin)),
                Ok(elf) if elf.interpreter.is_some() => return Err(BuildError::InitNotStatic(bin)),
                Ok(_) => {}
            }
            // The builder's own entries first, so that the services are
            // checked against the finished tree (`/init --check-config`).
            init::add_binary(&mut tree, data)?;
            // The services and containers checked against the image, the
            // container plans resolved and their filters added.
            crate::container::resolve(&mut tree, profile, &mut cfg, &oci.seccomp)?;
            oci.notes
                .extend(checks::bind_sources_missing(profile, &tree));
            init::add_config(&mut tree, &cfg)?;
            Some(cfg)
        }
        InitChoice::Own(path) => {
            let path = path.as_str();
            let resolved = tree.resolve(path, true)?;
            if !matches!(tree.get(&resolved), Some(Node::File(_))) {
                return Err(BuildError::InitMissing(path.to_string()));
            }
            if path != "/init" {
                tree.add_symlink("/init", path, "image.init")?;
            }
            None
        }
    };
    notes.extend(oci.notes);
    Ok(Assembled {
        tree,
        init,
        notes,
        scratch: oci.scratch,
    })
}

/// A failure of the merged `[init]` table: at its `file:line:column` in the
/// profile, or named for `[modules] options` when the key came from there.
fn init_invalid(plan: &Plan, e: mkrootfs_config::InvalidInit) -> BuildError {
    use mkrootfs_config::KeyStep;
    let profile = &plan.profile;
    if let [KeyStep::Key(table), KeyStep::Key(name), ..] = e.at.as_slice() {
        if table == "module_options" && plan.modules.options.contains_key(name) {
            return BuildError::ModuleOptions {
                profile: profile.path.display().to_string(),
                message: e.message,
            };
        }
    }
    match &profile.init_source {
        Some(source) => {
            let at: Vec<Seg> = Seg::path(&e.at).collect();
            BuildError::Profile(source.init_error(&at, e.message))
        }
        None => BuildError::InitInvalid {
            profile: profile.name.clone(),
            message: e.message,
        },
    }
}

/// `error` at the profile's `file:line:column`, when known.
fn located(at: Option<&crate::profile::Position>, error: BuildError) -> BuildError {
    match at {
        Some(at) => BuildError::At(Box::new(Located {
            at: at.clone(),
            error,
        })),
        None => error,
    }
}

/// A build error at the place in the profile that caused it.
#[derive(Debug)]
pub struct Located {
    pub at: crate::profile::Position,
    pub error: BuildError,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.error)
    }
}

impl std::error::Error for Located {
    // The error's own text is in the message; its cause comes next.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

#[cfg(test)]
mod tests;
