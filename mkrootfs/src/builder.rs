//! Images built from Rust code: a profile without TOML.
//!
//! [`ImageBuilder`] fills the same [`Profile`] a TOML file is parsed into,
//! with the same checks (image paths, modes, the init configuration's
//! [`InitConfig::validate`]) and the same build ([`crate::build`]), so an image
//! built here is byte-identical to one built from the equivalent profile.
//!
//! ```no_run
//! use mkrootfs::builder::ImageBuilder;
//! use mkrootfs::compress::Compression;
//!
//! let report = ImageBuilder::new("sandbox")
//!     .binary("busybox")
//!     .busybox_links("/bin/busybox")
//!     .file("/etc/motd", "hello\n")
//!     .modules_dir("/lib/modules/6.1.0-57-cloud-amd64")
//!     .module_preset("microvm")
//!     .command(["/bin/sh", "-c", "cat /etc/motd"])
//!     .compression(Compression::Zstd)
//!     .build("out/sandbox.cpio.zst")?;
//! println!("{report}");
//! # Ok::<(), mkrootfs::builder::BuilderError>(())
//! ```
//!
//! A mistake in a call (a relative image path, a bad mode, a service without
//! a program) is remembered and returned by `profile()`/`build()`/
//! `write_to()`, so calls chain without a `?` each.
#![deny(missing_docs)]

use crate::build::{self, BuildError, BuildOptions};
use crate::compress::Compression;
use crate::plan::Plan;
use crate::profile::{DirSpec, FileSpec, ImagePath, Profile, SymlinkSpec, TreeSpec};
use mkrootfs_config::{InitConfig, Mode, ServiceConfig};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A mistake in the builder calls, or a failed build.
#[derive(Debug, thiserror::Error)]
pub enum BuilderError {
    /// A value was rejected, as the TOML profile would reject it.
    #[error("image {image}: {what}: {message}")]
    Invalid {
        /// The builder's image name.
        image: String,
        /// Which call (e.g. `file /etc/motd`).
        what: String,
        /// Why, in the words of the profile check.
        message: String,
    },
    /// The build failed (a missing binary, module, init…).
    #[error("build image {image}")]
    Build {
        /// The builder's image name.
        image: String,
        /// What failed (boxed: build errors are large).
        #[source]
        source: Box<BuildError>,
    },
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct Built {
    /// The file written, or `None` for [`ImageBuilder::write_to`].
    pub path: Option<PathBuf>,
    /// Archive entries.
    pub entries: usize,
    /// Size of the cpio archive before compression.
    pub uncompressed: u64,
    /// Size written.
    pub compressed: u64,
    /// How it is compressed.
    pub compression: Compression,
    /// Time taken.
    pub elapsed: Duration,
}

impl fmt::Display for Built {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self
            .path
            .as_ref()
            .map_or_else(|| "(writer)".to_string(), |p| p.display().to_string());
        write!(
            f,
            "{path}: {} entries, {} bytes, {} bytes {}, {:.2} s",
            self.entries,
            self.uncompressed,
            self.compressed,
            self.compression,
            self.elapsed.as_secs_f64()
        )
    }
}

/// A profile built in code. Every method takes and returns the builder.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    profile: Profile,
    init: Option<InitConfig>,
    options: BuildOptions,
    error: Option<(String, String)>,
}

impl ImageBuilder {
    /// A new image called `name` (used in messages and for the default
    /// output `out/<name>.cpio.zst`). Relative host paths are relative to
    /// the current directory. Defaults are the profile defaults
    /// (docs/profiles.md): zstd, the host as sysroot, the mkrootfs init.
    pub fn new(name: &str) -> ImageBuilder {
        ImageBuilder {
            profile: Profile {
                name: name.to_string(),
                path: PathBuf::from(format!("<builder {name}>")),
                base_dir: PathBuf::from("."),
                ..Profile::default()
            },
            init: None,
            options: BuildOptions::default(),
            error: None,
        }
    }

    fn fail(mut self, what: impl Into<String>, message: String) -> Self {
        self.error.get_or_insert((what.into(), message));
        self
    }

    fn image_path(&mut self, what: &str, path: &str) -> Option<ImagePath> {
        match ImagePath::parse(path) {
            Ok(p) => Some(p),
            Err(message) => {
                self.error.get_or_insert((what.to_string(), message));
                None
            }
        }
    }

    fn mode(&mut self, what: &str, mode: Option<&str>) -> Option<Option<Mode>> {
        match mode.map(Mode::parse).transpose() {
            Ok(m) => Some(m),
            Err(message) => {
                self.error.get_or_insert((what.to_string(), message));
                None
            }
        }
    }

    /// A description, as the profile's `description`.
    pub fn description(mut self, text: &str) -> Self {
        self.profile.description = Some(text.to_string());
        self
    }

    /// A program by name (looked up in `PATH`, then the sysroot's default
    /// directories) or absolute path; its ELF closure (or script
    /// interpreter) comes with it.
    pub fn binary(mut self, name: &str) -> Self {
        self.profile.binaries.push(name.to_string());
        self
    }

    /// A library no `DT_NEEDED` names (soname or path), as `libraries`.
    pub fn library(mut self, name: &str) -> Self {
        self.profile.libraries.push(name.to_string());
        self
    }

    /// A file with inline contents, mode 0644.
    pub fn file(self, dest: &str, content: impl Into<String>) -> Self {
        self.file_with_mode(dest, content, "0644")
    }

    /// A file with inline contents and an octal mode such as `"0755"`.
    pub fn file_with_mode(mut self, dest: &str, content: impl Into<String>, mode: &str) -> Self {
        let what = format!("file {dest}");
        let (Some(dest), Some(mode)) = (self.image_path(&what, dest), self.mode(&what, Some(mode)))
        else {
            return self;
        };
        self.profile.files.push((
            self.profile.base_dir.clone(),
            FileSpec {
                dest,
                src: None,
                content: Some(content.into()),
                mode,
                uid: 0,
                gid: 0,
                at: None,
            },
        ));
        self
    }

    /// A copy of the host file `src`, keeping its mode.
    pub fn host_file(mut self, dest: &str, src: impl Into<PathBuf>) -> Self {
        let Some(dest) = self.image_path(&format!("file {dest}"), dest) else {
            return self;
        };
        self.profile.files.push((
            self.profile.base_dir.clone(),
            FileSpec {
                dest,
                src: Some(src.into()),
                content: None,
                mode: None,
                uid: 0,
                gid: 0,
                at: None,
            },
        ));
        self
    }

    /// The whole host directory `src` at `dest` (symlinks, hard links and
    /// device nodes kept), as `[[trees]]`.
    pub fn tree(mut self, src: impl Into<PathBuf>, dest: &str) -> Self {
        let Some(dest) = self.image_path(&format!("tree {dest}"), dest) else {
            return self;
        };
        self.profile.trees.push((
            self.profile.base_dir.clone(),
            TreeSpec {
                src: src.into(),
                dest,
                uid: 0,
                gid: 0,
                at: None,
            },
        ));
        self
    }

    /// A directory with an octal mode.
    pub fn dir(mut self, path: &str, mode: &str) -> Self {
        let what = format!("dir {path}");
        let (Some(path), Some(mode)) = (self.image_path(&what, path), self.mode(&what, Some(mode)))
        else {
            return self;
        };
        self.profile.dirs.push(DirSpec {
            path,
            mode,
            uid: 0,
            gid: 0,
            at: None,
        });
        self
    }

    /// A symbolic link `path` → `target` (stored as written).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let Some(path) = self.image_path(&format!("symlink {path}"), path) else {
            return self;
        };
        self.profile.symlinks.push(SymlinkSpec {
            path,
            target: target.to_string(),
            at: None,
        });
        self
    }

    /// A symlink next to the busybox at `path` for each of its applets.
    pub fn busybox_links(mut self, path: &str) -> Self {
        self.profile.image.busybox_links = self.image_path("busybox_links", path);
        self
    }

    /// Compression of the archive. Default: zstd.
    pub fn compression(mut self, c: Compression) -> Self {
        self.profile.image.compression = Some(c);
        self
    }

    /// What is written (`image.format`): a cpio initramfs (default) or an
    /// erofs, squashfs or ext4 disk image (with [`ImageBuilder::build`] only).
    pub fn format(mut self, format: crate::fsimage::Format) -> Self {
        self.profile.image.format = Some(format);
        self
    }

    /// A disk image's compression (`image.fs_compression`).
    pub fn fs_compression(mut self, c: crate::fsimage::FsCompression) -> Self {
        self.profile.image.fs_compression = Some(c);
        self
    }

    /// Append a dm-verity hash tree to a disk image (`image.verity`).
    pub fn verity(mut self, on: bool) -> Self {
        self.profile.image.verity = Some(on);
        self
    }

    /// Also write the initramfs that mounts a disk image (`image.split`).
    pub fn split(mut self, on: bool) -> Self {
        self.profile.image.split = Some(on);
        self
    }

    /// Compression level. Default: gzip 9, xz 6, zstd 19.
    pub fn level(mut self, level: u32) -> Self {
        self.profile.image.level = Some(level);
        self
    }

    /// Resolve binaries and libraries in this tree. Default: `/`.
    pub fn sysroot(mut self, dir: impl Into<PathBuf>) -> Self {
        self.profile.image.sysroot = Some(dir.into());
        self
    }

    /// Use a program of the image as `/init` instead of the mkrootfs init
    /// (as `image.init = "/path"`); the init configuration is then unused.
    pub fn own_init(mut self, path: &str) -> Self {
        if self.image_path("own_init", path).is_some() {
            self.profile.image.init = Some(path.to_string());
        }
        self
    }

    /// The static init binary to put in the image. Default: found as
    /// [`build::find_init`] says.
    pub fn init_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.init_binary = Some(path.into());
        self
    }

    /// The kernel's module tree (`lib/modules/<version>`), as `modules.kernel`.
    pub fn modules_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.profile.modules.kernel = Some(dir.as_ref().display().to_string());
        self
    }

    /// A kernel module (name or alias) to add and load at boot; its
    /// dependencies come with it.
    pub fn module(mut self, name: &str) -> Self {
        self.profile.modules.load.push(name.to_string());
        self
    }

    /// Parameters for a module, as a modprobe.d `options` line
    /// (`[modules] options = { name = "params" }`); the init passes them,
    /// then the kernel command line's `name.param=value`, when it loads it.
    pub fn module_options(mut self, module: &str, params: &str) -> Self {
        self.profile
            .modules
            .options
            .insert(module.to_string(), params.to_string());
        self
    }

    /// A named module list: `"microvm"` (virtio block, network, console, vsock).
    pub fn module_preset(mut self, preset: &str) -> Self {
        self.profile.modules.preset = Some(preset.to_string());
        self
    }

    /// The whole init configuration, replacing what the builder collected
    /// so far (as a profile's `[init]` table).
    pub fn init(mut self, init: InitConfig) -> Self {
        self.init = Some(init);
        self
    }

    /// Changes the init configuration in place (hostname, root, shutdown…),
    /// starting from an empty `[init]` table's defaults.
    pub fn with_init(mut self, f: impl FnOnce(&mut InitConfig)) -> Self {
        f(self.init.get_or_insert_with(empty_init));
        self
    }

    /// A service, as an `[[init.services]]` entry.
    pub fn service(self, service: ServiceConfig) -> Self {
        self.with_init(|i| i.services.push(service))
    }

    /// A service running `argv` with every default of `[[init.services]]`
    /// (deserialized like the TOML entry `argv = [...]`, so the defaults
    /// are the profile's).
    pub fn command<S: Into<String>>(self, argv: impl IntoIterator<Item = S>) -> Self {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        match serde_json::from_value::<ServiceConfig>(serde_json::json!({ "argv": argv })) {
            Ok(s) => self.service(s),
            Err(e) => self.fail("command", e.to_string()),
        }
    }

    /// The mtime of every entry. Default: `$SOURCE_DATE_EPOCH`, else 0.
    pub fn mtime(mut self, mtime: u32) -> Self {
        self.options.mtime = Some(mtime);
        self
    }

    /// The profile these calls describe, checked as a TOML profile is.
    pub fn profile(&self) -> Result<Profile, BuilderError> {
        let invalid = |what: &str, message: String| BuilderError::Invalid {
            image: self.profile.name.clone(),
            what: what.to_string(),
            message,
        };
        if let Some((what, message)) = &self.error {
            return Err(invalid(what, message.clone()));
        }
        let mut profile = self.profile.clone();
        if let Some(init) = &self.init {
            init.validate()
                .map_err(|m| invalid("init configuration", m))?;
            profile.init = Some(init.clone());
        }
        Ok(profile)
    }

    /// Builds the image into `path`, atomically.
    pub fn build(&self, path: impl Into<PathBuf>) -> Result<Built, BuilderError> {
        let profile = self.profile()?;
        let mut opts = self.options.clone();
        opts.output = Some(path.into());
        let r = build::build(&profile, &opts).map_err(|source| self.build_error(source))?;
        Ok(Built {
            path: Some(r.path),
            entries: r.entries,
            uncompressed: r.uncompressed,
            compressed: r.compressed,
            compression: r.compression,
            elapsed: r.elapsed,
        })
    }

    /// Builds the image and writes it to `out` (the same bytes
    /// [`ImageBuilder::build`] writes to a file).
    pub fn write_to(&self, mut out: impl Write) -> Result<Built, BuilderError> {
        let start = Instant::now();
        let profile = self.profile()?;
        let plan =
            Plan::new(&profile, &self.options).map_err(|source| self.build_error(source.into()))?;
        if plan.disk.is_some() {
            let message = "a disk image is written to a file: use build(), not write_to()".into();
            return Err(self.build_error(plan.error_at("image.format", message).into()));
        }
        let assembled = build::assemble(&plan).map_err(|source| self.build_error(source))?;
        let (_, written) = build::write::write_stream(
            &assembled.tree,
            plan.mtime,
            plan.compression,
            Some(plan.level),
            &mut out,
            Path::new("the output"),
        )
        .map_err(|source| self.build_error(source))?;
        Ok(Built {
            path: None,
            entries: written.entries,
            uncompressed: written.uncompressed,
            compressed: written.compressed,
            compression: plan.compression,
            elapsed: start.elapsed(),
        })
    }

    fn build_error(&self, source: BuildError) -> BuilderError {
        BuilderError::Build {
            image: self.profile.name.clone(),
            source: Box::new(source),
        }
    }
}

/// What an empty `[init]` table means. Not `InitConfig::default()`: the
/// derived `Default` leaves `coldplug` false, while the profile's (serde's)
/// default is true.
fn empty_init() -> InitConfig {
    serde_json::from_str("{}").unwrap_or_default()
}

#[cfg(test)]
mod tests;
