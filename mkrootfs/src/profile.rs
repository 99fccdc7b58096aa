//! Profiles: the TOML description of an image.
//!
//! A file is parsed into raw serde structs that reject unknown keys; values
//! that can be judged alone (modes, image paths) are checked while
//! deserializing so that their errors carry the line and column. `extends`
//! chains are then merged (parent first) into one [`Profile`].
//!
//! ```toml
//! extends = "base"                  # another profile: bare name or path
//! binaries = ["busybox", "/usr/bin/python3"]
//! libraries = ["libgcc_s.so.1"]
//! [image]
//! compression = "zstd"
//! [[files]]
//! dest = "/etc/hostname"
//! content = "box\n"
//! [init]                            # mkrootfs_config::InitConfig
//! ```
//! The full schema is documented in `docs/profiles.md`.

use crate::compress::Compression;
use crate::kmod::ModuleCompression;
use mkrootfs_config::{InitConfig, Mode};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

mod position;
#[cfg(test)]
mod tests;

use mkrootfs_config::line_col;
use position::span_of;
pub use position::Seg;

/// Where bare profile names are looked up after `./profiles`.
pub const SYSTEM_PROFILE_DIR: &str = "/usr/share/mkrootfs/profiles";

/// A profile error, always naming the file and, where the parser knows it,
/// the line and column.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("read profile {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("profile {name:?} not found (looked in {searched})")]
    NotFound { name: String, searched: String },
    #[error("{path}: extends itself through {chain}")]
    Cycle { path: PathBuf, chain: String },
}

/// An absolute path inside the image, without `..`: checked while parsing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImagePath(pub String);

impl ImagePath {
    pub fn parse(s: &str) -> Result<ImagePath, String> {
        if !s.starts_with('/') {
            return Err(format!("image path {s:?} must be absolute"));
        }
        if Path::new(s).components().any(|c| c == Component::ParentDir) {
            return Err(format!("image path {s:?} escapes the image with `..`"));
        }
        if s.contains('\0') {
            return Err(format!("image path {s:?} contains a NUL byte"));
        }
        Ok(ImagePath(normalize(s)))
    }
}

/// `/a//b/./c/` → `/a/b/c`.
fn normalize(s: &str) -> String {
    let parts: Vec<&str> = s
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ImagePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ImagePath::parse(&s).map_err(de::Error::custom)
    }
}

/// `[image]`: how the archive is made.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    /// Default: `zstd`.
    pub compression: Option<Compression>,
    /// Compression level. Default: gzip 9, xz 6, zstd 19.
    pub level: Option<u32>,
    /// Resolve binaries and libraries in this tree instead of `/`
    /// (relative paths are relative to the profile file). Default: `/`.
    pub sysroot: Option<PathBuf>,
    /// The program the kernel runs: an image path (added as `/init` with a
    /// symlink when it is elsewhere), or `"mkrootfs"` for the project's own
    /// init. Default: `"mkrootfs"`.
    pub init: Option<String>,
    /// Where the names of `binaries` without a `/` are looked up, inside
    /// the sysroot, `:`-separated absolute directories (never the caller's
    /// `$PATH`). Default: the init's default `PATH`,
    /// `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`.
    pub binary_path: Option<String>,
    /// Also add the libraries named by `.note.dlopen` ELF notes.
    /// Default: false.
    pub dlopen_notes: Option<bool>,
    /// Add a symlink next to each listed busybox binary for every applet it
    /// reports (`busybox --list-full`; only when the binary can run here).
    /// Default: none.
    pub busybox_links: Option<ImagePath>,
    /// What is written: `cpio` (an initramfs), or a disk image `erofs`,
    /// `squashfs` or `ext4` (docs/profiles.md, "Disk images"). Default: cpio.
    pub format: Option<crate::fsimage::Format>,
    /// A disk image's compression: erofs `none` (default), `lz4`, `lz4hc`;
    /// squashfs `zstd` (default), `gzip`, `xz`, `lz4`, `none`; ext4 `none`.
    pub fs_compression: Option<crate::fsimage::FsCompression>,
    /// With a disk format: also write a small initramfs (the init, its
    /// modules, `root.mode = "overlay"` on the image). Default: false.
    pub split: Option<bool>,
    /// With a disk format: append a dm-verity hash tree and report its root
    /// hash. Default: false.
    pub verity: Option<bool>,
    /// The file system's label (ext4 only: up to 16 bytes). Default: none.
    pub label: Option<String>,
}

/// `[[files]]`: a host file or inline contents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub dest: ImagePath,
    /// Where the entry was written (its `dest`), for messages; none for
    /// an entry made in code.
    #[serde(skip)]
    pub at: Option<Position>,
    /// Host path (relative to the profile's directory). Exactly one of
    /// `src` and `content`.
    pub src: Option<PathBuf>,
    pub content: Option<String>,
    /// Default: the host file's permissions, or `0644` for `content`.
    pub mode: Option<Mode>,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

/// `[[trees]]`: a whole host directory copied to `dest`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSpec {
    pub src: PathBuf,
    pub dest: ImagePath,
    /// Owner of every entry copied. Default: 0 (root), as `gid`.
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    /// Where the entry was written (its `dest`).
    #[serde(skip)]
    pub at: Option<Position>,
}

/// `[[dirs]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    pub path: ImagePath,
    /// Where the entry was written (its `path`).
    #[serde(skip)]
    pub at: Option<Position>,
    /// Default: `0755`.
    pub mode: Option<Mode>,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

/// `[[symlinks]]`: `path` → `target` (target is stored as written).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkSpec {
    pub path: ImagePath,
    pub target: String,
    /// Where the entry was written (its `path`).
    #[serde(skip)]
    pub at: Option<Position>,
}

/// `[[hardlinks]]`: `path` is another name of the file at `target`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardlinkSpec {
    pub path: ImagePath,
    pub target: ImagePath,
    /// Where the entry was written (its `path`).
    #[serde(skip)]
    pub at: Option<Position>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// `[[nodes]]`: a device node or fifo, written as cpio header fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub path: ImagePath,
    /// Where the entry was written (its `path`).
    #[serde(skip)]
    pub at: Option<Position>,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    #[serde(default)]
    pub major: u32,
    #[serde(default)]
    pub minor: u32,
    /// Default: `0600`.
    pub mode: Option<Mode>,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

/// `[modules]`: kernel modules to add.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModulesSection {
    /// The module tree: a `lib/modules/<version>` directory, or `"auto"` for
    /// the kernel `mkrootfs run` would boot. Required when modules are asked.
    pub kernel: Option<String>,
    /// Module names or aliases. Default: none.
    #[serde(default)]
    pub load: Vec<String>,
    /// A named list: `"microvm"` (virtio block, network, console, vsock).
    pub preset: Option<String>,
    /// Default: `decompress`.
    pub compressed: Option<ModuleCompression>,
    /// Parameters per module, as a modprobe.d `options` line:
    /// `{ virtio_blk = "queue_depth=64" }`. Carried into the init's
    /// `module_options`. Default: none.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// One profile file as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: Option<String>,
    extends: Option<String>,
    #[serde(default)]
    binaries: Vec<String>,
    #[serde(default)]
    libraries: Vec<String>,
    #[serde(default)]
    image: ImageSection,
    #[serde(default)]
    files: Vec<FileSpec>,
    #[serde(default)]
    trees: Vec<TreeSpec>,
    #[serde(default)]
    dirs: Vec<DirSpec>,
    #[serde(default)]
    symlinks: Vec<SymlinkSpec>,
    #[serde(default)]
    hardlinks: Vec<HardlinkSpec>,
    #[serde(default)]
    nodes: Vec<NodeSpec>,
    modules: Option<ModulesSection>,
    init: Option<InitConfig>,
}

/// A profile with its `extends` chain merged. Lists accumulate, parent
/// first, except that a child's `files`/`dirs`/`symlinks`/`hardlinks`/
/// `nodes` entry replaces any parent entry for the same path; `[image]` and `[modules]` fields set by a child override the
/// parent's; a child's `[init]` table replaces the parent's as a whole.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// The profile's name (file stem of the leaf file).
    pub name: String,
    /// The leaf file.
    pub path: PathBuf,
    pub description: Option<String>,
    /// Each entry remembers the directory of the file that named it, for
    /// relative `src` paths.
    pub binaries: Vec<String>,
    pub libraries: Vec<String>,
    pub image: ImageSection,
    pub files: Vec<(PathBuf, FileSpec)>,
    pub trees: Vec<(PathBuf, TreeSpec)>,
    pub dirs: Vec<DirSpec>,
    pub symlinks: Vec<SymlinkSpec>,
    pub hardlinks: Vec<HardlinkSpec>,
    pub nodes: Vec<NodeSpec>,
    pub modules: ModulesSection,
    pub init: Option<InitConfig>,
    /// The file whose `[init]` table is used, for positions of checks made
    /// after merging and for paths relative to it (a container's
    /// `seccomp` policy).
    pub init_source: Option<Source>,
    /// Every file of the `extends` chain, the leaf first.
    pub sources: Vec<Source>,
    /// Directory of the leaf file, for relative paths in `[image]`.
    pub base_dir: PathBuf,
    /// Where the values that are validated after merging (see
    /// [`crate::plan`]) were written, by dotted key (`"image.level"`): the
    /// file that set the merged value, line and column. Empty for a profile
    /// built in code.
    pub positions: BTreeMap<&'static str, Position>,
    /// Where each name of `binaries`, `libraries` and `modules.load` was
    /// written, by `"binaries:NAME"` (the last file that names it).
    pub item_positions: BTreeMap<String, Position>,
}

impl Profile {
    /// Where `list` (`binaries`, `libraries`, `modules.load`) names `name`.
    pub fn item_position(&self, list: &str, name: &str) -> Option<&Position> {
        self.item_positions.get(&format!("{list}:{name}"))
    }
}

/// A place in a profile file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// The keys whose positions are kept for the checks made after merging.
const POSITIONED: [(&str, [&str; 2]); 11] = [
    ("image.label", ["image", "label"]),
    ("image.binary_path", ["image", "binary_path"]),
    ("image.compression", ["image", "compression"]),
    ("image.format", ["image", "format"]),
    ("image.fs_compression", ["image", "fs_compression"]),
    ("image.split", ["image", "split"]),
    ("image.verity", ["image", "verity"]),
    ("image.level", ["image", "level"]),
    ("image.init", ["image", "init"]),
    ("modules.kernel", ["modules", "kernel"]),
    ("modules.preset", ["modules", "preset"]),
];

/// One profile file: its path as named and its text.
#[derive(Clone, Debug, Default)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// An error at the value of `init.<key path>` in this file (or the
    /// deepest part of that path the file writes).
    pub fn init_error(&self, key: &[Seg], message: String) -> ProfileError {
        let mut path = vec![Seg::Key("init")];
        path.extend_from_slice(key);
        let (line, column) = span_of(&self.text, &path)
            .map(|s| line_col(&self.text, s.start))
            .unwrap_or((1, 1));
        ProfileError::Invalid {
            path: self.path.clone(),
            line,
            column,
            message,
        }
    }

    /// The directory of the file, for relative paths.
    pub fn dir(&self) -> PathBuf {
        dir_or_dot(self.path.parent().unwrap_or(Path::new(".")))
    }
}

/// Finds a profile: a path (one with a `/` or ending in `.toml`) as given,
/// or with `.toml` added when it has none (`-p profiles/shell`); a name
/// that is not absolute is then also looked up as `<name>.toml` in
/// `./profiles`, then [`SYSTEM_PROFILE_DIR`]. A bare name is never taken as
/// a file of the current directory, which may well hold a binary of that
/// name. The error lists every path tried, once each.
pub fn locate(name: &str) -> Result<PathBuf, ProfileError> {
    let dirs = [PathBuf::from("profiles"), PathBuf::from(SYSTEM_PROFILE_DIR)];
    locate_in(name, None, &dirs)
}

fn locate_in(name: &str, near: Option<&Path>, dirs: &[PathBuf]) -> Result<PathBuf, ProfileError> {
    let file = if name.ends_with(".toml") {
        name.to_string()
    } else {
        format!("{name}.toml")
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    // A path as given (on the command line: from the current directory;
    // in `extends` only an absolute one, others being the file's own).
    let path_like = name.contains('/') || name.ends_with(".toml");
    if (path_like && near.is_none()) || Path::new(name).is_absolute() {
        candidates.push(PathBuf::from(name));
        candidates.push(PathBuf::from(&file));
    }
    if !Path::new(name).is_absolute() {
        for dir in near.into_iter().chain(dirs.iter().map(|d| d.as_path())) {
            candidates.push(dir.join(&file));
        }
    }
    let mut tried: Vec<PathBuf> = Vec::new();
    for candidate in candidates {
        if tried.contains(&candidate) {
            continue;
        }
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate);
    }
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(ProfileError::NotFound {
        name: name.to_string(),
        searched: tried.join(", "),
    })
}

/// Loads a profile by path or bare name, following `extends`.
pub fn load(name: &str) -> Result<Profile, ProfileError> {
    let path = locate(name)?;
    load_path(&path)
}

/// Loads the profile file at `path`, following `extends`.
pub fn load_path(path: &Path) -> Result<Profile, ProfileError> {
    let mut chain: Vec<(PathBuf, RawProfileChecked)> = Vec::new();
    // Each file as named and its text, for positions found after merging.
    let mut sources: Vec<Source> = Vec::new();
    let mut next = Some(path.to_path_buf());
    while let Some(p) = next.take() {
        let canon = p.canonicalize().unwrap_or_else(|_| p.clone());
        if chain.iter().any(|(q, _)| q == &canon) {
            let names: Vec<String> = chain.iter().map(|(q, _)| q.display().to_string()).collect();
            return Err(ProfileError::Cycle {
                path: p,
                chain: names.join(" -> "),
            });
        }
        let text = std::fs::read_to_string(&p).map_err(|source| ProfileError::Read {
            path: p.clone(),
            source,
        })?;
        let raw = parse_str(&p, &text)?;
        if let Some(parent) = &raw.0.extends {
            let dir = p.parent().unwrap_or(Path::new("."));
            // Relative to the file that names it, then the search path;
            // a parent not found is an error at its `extends`.
            let parent_path = locate_in(
                parent,
                Some(dir),
                &[PathBuf::from("profiles"), PathBuf::from(SYSTEM_PROFILE_DIR)],
            )
            .map_err(|e| {
                let (line, column) = span_of(&text, &[Seg::Key("extends")])
                    .map(|s| line_col(&text, s.start))
                    .unwrap_or((1, 1));
                ProfileError::Invalid {
                    path: p.clone(),
                    line,
                    column,
                    message: format!("extends: {e}"),
                }
            })?;
            next = Some(parent_path);
        }
        chain.push((canon, raw));
        sources.push(Source { path: p, text });
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut profile = Profile {
        name,
        path: path.to_path_buf(),
        base_dir: dir_or_dot(&base_dir),
        ..Profile::default()
    };
    profile.sources = sources.clone();
    for ((file, raw), source) in chain.into_iter().rev().zip(sources.into_iter().rev()) {
        if raw.0.init.is_some() {
            profile.init_source = Some(source);
        }
        merge(&mut profile, &file, raw);
    }
    Ok(profile)
}

fn dir_or_dot(p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p.to_path_buf()
    }
}

/// A container plan is the builder's output (`mkrootfs::container`): one
/// written in a profile would skip every check the builder makes. Refused
/// before the fields are read, so that a partial plan is not reported as a
/// missing field. A text that is not TOML is left to the parser's error.
fn refuse_plans(text: &str) -> Result<(), (Vec<Seg<'static>>, String)> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Ok(());
    };
    let services = doc
        .get("init")
        .and_then(|i| i.get("services"))
        .and_then(|s| s.as_array());
    for (i, s) in services.into_iter().flatten().enumerate() {
        if s.get("container_plan").is_some() {
            let at = vec![
                Seg::Key("init"),
                Seg::Key("services"),
                Seg::Index(i),
                Seg::Key("container_plan"),
            ];
            return Err((at, format!("init.services[{i}].container_plan is what the builder writes, not a profile: describe the container with `container = {{ … }}`")));
        }
    }
    Ok(())
}

/// Parses one profile file's text; `path` is only used in messages.
/// Public so that fuzzing and tests can reach it without files.
///
/// Every TOML spelling of the same content (tables in any order, dotted
/// keys, inline tables, arrays of tables) gives the same result: serde sees
/// only values, and positions for checks made after deserializing come
/// from the document's own spans ([`position`]), looked up by key path.
pub fn parse_str(path: &Path, text: &str) -> Result<RawProfileChecked, ProfileError> {
    let path_buf = path.to_path_buf();
    let invalid = |at: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = at.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        ProfileError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    refuse_plans(text).map_err(|(at, message)| invalid(span_of(text, &at), message))?;
    let raw: RawProfile =
        toml::from_str(text).map_err(|e| invalid(e.span(), e.message().to_string()))?;
    if let Some(init) = &raw.init {
        init.validate_at().map_err(|e| {
            let mut at = vec![Seg::Key("init")];
            at.extend(Seg::path(&e.at));
            invalid(span_of(text, &at), e.message)
        })?;
    }
    for (i, f) in raw.files.iter().enumerate() {
        if f.src.is_some() == f.content.is_some() {
            // serde cannot point at a table that is missing a key: point at
            // the entry's `dest`, wherever and however it was written.
            let at = span_of(text, &[Seg::Key("files"), Seg::Index(i), Seg::Key("dest")]);
            return Err(invalid(
                at,
                format!(
                    "files entry for {}: give exactly one of `src` and `content`",
                    f.dest
                ),
            ));
        }
    }
    let mut raw = raw;
    let spans = position::Spans::new(text);
    let at = |path: &[Seg]| {
        spans.span_of(path).map(|s| {
            let (line, column) = line_col(text, s.start);
            Position {
                path: path_buf.clone(),
                line,
                column,
            }
        })
    };
    for (i, f) in raw.files.iter_mut().enumerate() {
        f.at = at(&[Seg::Key("files"), Seg::Index(i), Seg::Key("dest")]);
    }
    for (i, t) in raw.trees.iter_mut().enumerate() {
        t.at = at(&[Seg::Key("trees"), Seg::Index(i), Seg::Key("dest")]);
    }
    for (i, d) in raw.dirs.iter_mut().enumerate() {
        d.at = at(&[Seg::Key("dirs"), Seg::Index(i), Seg::Key("path")]);
    }
    for (i, l) in raw.symlinks.iter_mut().enumerate() {
        l.at = at(&[Seg::Key("symlinks"), Seg::Index(i), Seg::Key("path")]);
    }
    for (i, h) in raw.hardlinks.iter_mut().enumerate() {
        h.at = at(&[Seg::Key("hardlinks"), Seg::Index(i), Seg::Key("path")]);
    }
    for (i, n) in raw.nodes.iter_mut().enumerate() {
        n.at = at(&[Seg::Key("nodes"), Seg::Index(i), Seg::Key("path")]);
    }
    let mut items = Vec::new();
    for (list, keys, names) in [
        ("binaries", &[Seg::Key("binaries")][..], &raw.binaries),
        ("libraries", &[Seg::Key("libraries")][..], &raw.libraries),
    ]
    .into_iter()
    .chain(raw.modules.as_ref().map(|m| {
        (
            "modules.load",
            &[Seg::Key("modules"), Seg::Key("load")][..],
            &m.load,
        )
    })) {
        for (i, name) in names.iter().enumerate() {
            let mut p = keys.to_vec();
            p.push(Seg::Index(i));
            if let Some(pos) = at(&p) {
                items.push((format!("{list}:{name}"), pos));
            }
        }
    }
    let mut positions = Vec::new();
    for (key, [table, field]) in POSITIONED {
        if let Some(at) = span_of(text, &[Seg::Key(table), Seg::Key(field)]) {
            let (line, column) = line_col(text, at.start);
            let path = path.to_path_buf();
            positions.push((key, Position { path, line, column }));
        }
    }
    Ok(RawProfileChecked(raw, positions, items))
}

/// A parsed and checked profile file, before `extends` is merged, with
/// the positions of its [`POSITIONED`] keys and of its list items.
#[derive(Debug)]
pub struct RawProfileChecked(
    RawProfile,
    Vec<(&'static str, Position)>,
    Vec<(String, Position)>,
);

fn merge(
    p: &mut Profile,
    file: &Path,
    RawProfileChecked(raw, positions, items): RawProfileChecked,
) {
    let dir = dir_or_dot(file.parent().unwrap_or(Path::new(".")));
    // A key this file sets overrides the parent's value, and its position.
    p.positions.extend(positions);
    p.item_positions.extend(items);
    if raw.description.is_some() {
        p.description = raw.description;
    }
    p.binaries.extend(raw.binaries);
    p.libraries.extend(raw.libraries);
    let i = raw.image;
    let img = &mut p.image;
    img.compression = i.compression.or(img.compression);
    img.level = i.level.or(img.level);
    if let Some(s) = i.sysroot {
        img.sysroot = Some(if s.is_absolute() { s } else { dir.join(s) });
    }
    img.init = i.init.or(img.init.take());
    img.dlopen_notes = i.dlopen_notes.or(img.dlopen_notes);
    img.binary_path = i.binary_path.or(img.binary_path.take());
    img.busybox_links = i.busybox_links.or(img.busybox_links.take());
    img.format = i.format.or(img.format);
    img.fs_compression = i.fs_compression.or(img.fs_compression);
    img.split = i.split.or(img.split);
    img.verity = i.verity.or(img.verity);
    img.label = i.label.or(img.label.take());
    // A child's entry for a path replaces whatever its parents put there
    // (a base's /etc/hostname, say), as a child's `[image]` keys do;
    // otherwise the two would only meet later as a conflict in the tree.
    let mut mine: BTreeSet<&str> = BTreeSet::new();
    mine.extend(raw.files.iter().map(|f| f.dest.0.as_str()));
    mine.extend(raw.dirs.iter().map(|d| d.path.0.as_str()));
    mine.extend(raw.symlinks.iter().map(|s| s.path.0.as_str()));
    mine.extend(raw.hardlinks.iter().map(|h| h.path.0.as_str()));
    mine.extend(raw.nodes.iter().map(|n| n.path.0.as_str()));
    p.files.retain(|(_, f)| !mine.contains(f.dest.0.as_str()));
    p.dirs.retain(|d| !mine.contains(d.path.0.as_str()));
    p.symlinks.retain(|s| !mine.contains(s.path.0.as_str()));
    p.hardlinks.retain(|h| !mine.contains(h.path.0.as_str()));
    p.nodes.retain(|n| !mine.contains(n.path.0.as_str()));
    p.files
        .extend(raw.files.into_iter().map(|f| (dir.clone(), f)));
    p.trees
        .extend(raw.trees.into_iter().map(|t| (dir.clone(), t)));
    p.dirs.extend(raw.dirs);
    p.symlinks.extend(raw.symlinks);
    p.hardlinks.extend(raw.hardlinks);
    p.nodes.extend(raw.nodes);
    if let Some(m) = raw.modules {
        let pm = &mut p.modules;
        if let Some(k) = m.kernel {
            let as_path = Path::new(&k);
            pm.kernel = Some(if k == "auto" || as_path.is_absolute() {
                k
            } else {
                dir.join(as_path).display().to_string()
            });
        }
        pm.load.extend(m.load);
        pm.preset = m.preset.or(pm.preset.take());
        pm.compressed = m.compressed.or(pm.compressed);
        pm.options.extend(m.options);
    }
    if let Some(init) = raw.init {
        p.init = Some(init);
    }
}
