//! Kernel modules for an image: the closure of the modules a profile asks
//! for (dependencies, soft dependencies, aliases, firmware) in one kernel's
//! module tree, and the files that put them into the image with an index
//! (`modules.dep`, `modules.alias`, `modules.softdep`, `modules.builtin`)
//! restricted to that closure, which the init reads at boot.
//!
//! Modules may be compressed in the tree (`.ko.xz`, `.ko.zst`, `.ko.gz`).
//! [`ModuleCompression::Decompress`] stores them decompressed (renamed
//! `.ko`), so any kernel can load them and the image compressor sees the
//! raw code; [`ModuleCompression::Keep`] stores them as they are, for
//! kernels with `CONFIG_MODULE_DECOMPRESS` (the init then passes
//! `MODULE_INIT_COMPRESSED_FILE` to `finit_module`).

mod index;

use crate::compress::{Compression, DecompressError};
use index::Index;
use mkrootfs_config::kmod::{
    alias_matches, format_alias, format_dep, format_softdep, normalize, AliasEntry, DepEntry,
    Softdep, COMPRESSED_SUFFIXES,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// How module files are stored in the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleCompression {
    /// Decompress at build time and store `.ko` files. Default.
    #[default]
    Decompress,
    /// Store the files as they are in the tree.
    Keep,
}

/// What a virtual machine (QEMU `pc`/`microvm`, Firecracker, Cloud
/// Hypervisor) needs: the virtio transports, disk, network, console,
/// entropy and vsock. Checked against Debian's cloud kernel, where they are
/// all modules; names that another kernel builds in are fine too.
/// The names `modules.preset` accepts.
pub const PRESETS: &[&str] = &["microvm"];

/// The modules of a named preset.
pub fn preset(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "microvm" => Some(MICROVM_PRESET),
        _ => None,
    }
}

pub const MICROVM_PRESET: &[&str] = &[
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_rng",
    "vmw_vsock_virtio_transport",
];

/// Errors computing a module closure or its image files.
#[derive(Debug, Error)]
pub enum KmodError {
    #[error("{0} is not a kernel module tree (expected a lib/modules/<kver> directory)")]
    NotATree(PathBuf),
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] io::Error),
    #[error("cannot list {0}")]
    ReadDir(PathBuf, #[source] io::Error),
    #[error("cannot decompress module {0}")]
    Decompress(PathBuf, #[source] DecompressError),
    #[error("cannot read the .modinfo section of {0}: {1}")]
    Elf(PathBuf, String),
    #[error("module or alias {name:?} is neither a module nor built into the kernel of {tree} ({count} modules)")]
    Unknown {
        name: String,
        tree: PathBuf,
        count: usize,
    },
    #[error("module {module} depends on {dep}, which is not in {tree}")]
    MissingDependency {
        module: String,
        dep: String,
        tree: PathBuf,
    },
    #[error("compressed = \"keep\" stores compressed modules ({example}), but the kernel configuration {config} lacks CONFIG_MODULE_DECOMPRESS=y, so the kernel cannot load them: use compressed = \"decompress\"")]
    KernelCannotDecompress { example: String, config: PathBuf },
}

/// The modules an image needs, in load order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleClosure {
    /// Kernel release: the tree's directory name.
    pub kver: String,
    /// The host's `lib/modules/<kver>` directory.
    pub tree: PathBuf,
    /// Dependency order: every module comes after what it needs.
    pub modules: Vec<Module>,
    /// Asked-for names (or aliases) that are built into the kernel.
    pub builtin: Vec<String>,
    /// Host paths of the firmware files the modules declare.
    pub firmware: Vec<PathBuf>,
    /// Firmware the modules declare that no firmware directory has
    /// (common and usually harmless: drivers list every variant).
    pub missing_firmware: Vec<String>,
}

/// One module of a closure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Normalized name (`-` → `_`).
    pub name: String,
    /// Path relative to the tree, as in `modules.dep`
    /// (`kernel/drivers/block/virtio_blk.ko`, maybe with `.xz`/`.zst`/`.gz`).
    pub rel_path: String,
    /// Names of the modules it needs, in load order.
    pub deps: Vec<String>,
    /// Why it is in the image: `profile`, `dependency of X`,
    /// `softdep pre of X`, `softdep post of X`, `alias <name>`.
    pub requested_by: String,
}

/// One file to put into the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    /// Absolute path in the image.
    pub path: String,
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// Computes the closure of `names` (module names or aliases, `-` and `_`
/// equivalent) in `tree` (a `lib/modules/<kver>` directory).
pub fn resolve(tree: &Path, names: &[String]) -> Result<ModuleClosure, KmodError> {
    let ix = Index::load(tree)?;
    let kver = tree
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| KmodError::NotATree(tree.to_owned()))?;
    let mut walk = Walk {
        ix: &ix,
        tree,
        order: Vec::new(),
        seen: BTreeSet::new(),
    };
    let mut builtin = Vec::new();
    for raw in names {
        let name = normalize(raw);
        if ix.modules.contains_key(&name) {
            walk.visit(&name, "profile")?;
            continue;
        }
        if ix.builtin.contains(&name) {
            builtin.push(name);
            continue;
        }
        // Not a module name: an alias, which may match several modules
        // (modprobe loads them all) or a built-in one.
        let targets = ix.alias_targets(raw);
        let is_builtin_alias = ix
            .builtin_aliases
            .iter()
            .any(|a| alias_matches(&a.pattern, raw));
        if targets.is_empty() && !is_builtin_alias {
            return Err(KmodError::Unknown {
                name: raw.clone(),
                tree: tree.to_owned(),
                count: ix.modules.len(),
            });
        }
        if is_builtin_alias {
            builtin.push(raw.clone());
        }
        for t in targets {
            walk.visit(&t, &format!("alias {raw}"))?;
        }
    }
    let order = walk.order;
    let mut modules = Vec::with_capacity(order.len());
    for (name, requested_by) in order {
        let Some(entry) = ix.modules.get(&name) else {
            continue;
        };
        modules.push(Module {
            deps: ix.load_order(&name),
            name,
            rel_path: entry.path.clone(),
            requested_by,
        });
    }
    let (firmware, missing_firmware) = find_firmware(tree, &modules)?;
    Ok(ModuleClosure {
        kver,
        tree: tree.to_owned(),
        modules,
        builtin,
        firmware,
        missing_firmware,
    })
}

impl Index {
    /// Modules whose alias patterns match `name`, sorted, without duplicates.
    fn alias_targets(&self, name: &str) -> Vec<String> {
        let set: BTreeSet<String> = self
            .aliases
            .iter()
            .filter(|a| alias_matches(&a.pattern, name))
            .map(|a| a.module.clone())
            .collect();
        set.into_iter().collect()
    }

    /// Every module `name` needs, deps before dependents.
    fn load_order(&self, name: &str) -> Vec<String> {
        fn go(ix: &Index, name: &str, seen: &mut BTreeSet<String>, out: &mut Vec<String>) {
            let Some(e) = ix.modules.get(name) else {
                return;
            };
            // modules.dep lists the dependency loaded first last (modprobe
            // walks it backwards); walking it backwards keeps that order.
            for d in e.deps.iter().rev() {
                if seen.insert(d.clone()) {
                    go(ix, d, seen, out);
                    out.push(d.clone());
                }
            }
        }
        let mut seen = BTreeSet::from([name.to_owned()]);
        let mut out = Vec::new();
        go(self, name, &mut seen, &mut out);
        out
    }
}

/// Depth-first walk that appends each module after everything it needs.
struct Walk<'a> {
    ix: &'a Index,
    tree: &'a Path,
    order: Vec<(String, String)>,
    seen: BTreeSet<String>,
}

impl Walk<'_> {
    fn visit(&mut self, name: &str, why: &str) -> Result<(), KmodError> {
        if !self.seen.insert(name.to_owned()) {
            return Ok(());
        }
        let ix = self.ix;
        let Some(entry) = ix.modules.get(name) else {
            return Ok(());
        };
        let softdep = ix.softdeps.get(name);
        for pre in softdep.map(|s| s.pre.as_slice()).unwrap_or_default() {
            self.visit_optional(pre, &format!("softdep pre of {name}"))?;
        }
        for d in entry.deps.iter().rev() {
            if !ix.modules.contains_key(d) && !ix.builtin.contains(d) {
                return Err(KmodError::MissingDependency {
                    module: name.to_owned(),
                    dep: d.clone(),
                    tree: self.tree.to_owned(),
                });
            }
            self.visit(d, &format!("dependency of {name}"))?;
        }
        self.order.push((name.to_owned(), why.to_owned()));
        for post in softdep.map(|s| s.post.as_slice()).unwrap_or_default() {
            self.visit_optional(post, &format!("softdep post of {name}"))?;
        }
        Ok(())
    }

    /// A soft dependency: a name or alias, skipped when absent.
    fn visit_optional(&mut self, raw: &str, why: &str) -> Result<(), KmodError> {
        let name = normalize(raw);
        if self.ix.modules.contains_key(&name) {
            return self.visit(&name, why);
        }
        for t in self.ix.alias_targets(raw) {
            self.visit(&t, why)?;
        }
        Ok(())
    }
}

/// Looks up every `firmware=` the modules declare.
fn find_firmware(
    tree: &Path,
    modules: &[Module],
) -> Result<(Vec<PathBuf>, Vec<String>), KmodError> {
    let bases = index::firmware_bases(tree);
    let mut found = BTreeSet::new();
    let mut missing = BTreeSet::new();
    for m in modules {
        for (key, fw) in index::module_modinfo(&tree.join(&m.rel_path))? {
            if key != "firmware" {
                continue;
            }
            let hit = bases.iter().find_map(|b| {
                std::iter::once("")
                    .chain(COMPRESSED_SUFFIXES.iter().copied())
                    .map(|sfx| b.join(format!("{fw}{sfx}")))
                    .find(|p| p.is_file())
            });
            match hit {
                Some(p) => found.insert(p),
                None => missing.insert(fw),
            };
        }
    }
    Ok((found.into_iter().collect(), missing.into_iter().collect()))
}

/// The image path of a module file: decompressed ones lose their suffix.
fn image_rel_path(rel: &str, mode: ModuleCompression) -> String {
    match mode {
        ModuleCompression::Keep => rel.to_owned(),
        ModuleCompression::Decompress => COMPRESSED_SUFFIXES
            .iter()
            .find_map(|s| rel.strip_suffix(s))
            .unwrap_or(rel)
            .to_owned(),
    }
}

/// The files that put the closure into an image: the modules under
/// `/lib/modules/<kver>/`, an index restricted to them, and the firmware
/// under `/lib/firmware/`. Sorted by path.
pub fn image_files(
    c: &ModuleClosure,
    mode: ModuleCompression,
) -> Result<Vec<ImageFile>, KmodError> {
    let ix = Index::load(&c.tree)?;
    let base = format!("/lib/modules/{}", c.kver);
    let mut files = Vec::new();
    let mut kept_compressed: Option<String> = None;
    for m in &c.modules {
        let host = c.tree.join(&m.rel_path);
        let rel = image_rel_path(&m.rel_path, mode);
        let data = match mode {
            ModuleCompression::Decompress => index::read_module(&host)?.0,
            ModuleCompression::Keep => {
                let data = std::fs::read(&host).map_err(|e| KmodError::Read(host.clone(), e))?;
                if kept_compressed.is_none()
                    && !matches!(
                        crate::compress::detect(&data),
                        None | Some(Compression::None)
                    )
                {
                    kept_compressed = Some(m.rel_path.clone());
                }
                data
            }
        };
        files.push(ImageFile {
            path: format!("{base}/{rel}"),
            data,
            mode: 0o644,
        });
    }
    if let Some(example) = kept_compressed {
        if let Some(config) = index::kernel_config(&c.tree, &c.kver) {
            let text =
                std::fs::read_to_string(&config).map_err(|e| KmodError::Read(config.clone(), e))?;
            if !text
                .lines()
                .any(|l| l.trim() == "CONFIG_MODULE_DECOMPRESS=y")
            {
                return Err(KmodError::KernelCannotDecompress { example, config });
            }
        }
    }
    for (name, text) in index_files(c, &ix, mode) {
        files.push(ImageFile {
            path: format!("{base}/{name}"),
            data: text.into_bytes(),
            mode: 0o644,
        });
    }
    let bases = index::firmware_bases(&c.tree);
    for host in &c.firmware {
        let rel = bases
            .iter()
            .find_map(|b| host.strip_prefix(b).ok())
            .unwrap_or(host);
        let data = std::fs::read(host).map_err(|e| KmodError::Read(host.clone(), e))?;
        files.push(ImageFile {
            path: format!("/lib/firmware/{}", rel.display()),
            data,
            mode: 0o644,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok(files)
}

/// `modules.dep`, `modules.alias`, `modules.softdep` and `modules.builtin`
/// for the image, naming the files as the image stores them.
fn index_files(
    c: &ModuleClosure,
    ix: &Index,
    mode: ModuleCompression,
) -> Vec<(&'static str, String)> {
    let in_image: BTreeMap<&str, String> = c
        .modules
        .iter()
        .map(|m| (m.name.as_str(), image_rel_path(&m.rel_path, mode)))
        .collect();
    let mut dep: Vec<DepEntry> = c
        .modules
        .iter()
        .map(|m| DepEntry {
            name: m.name.clone(),
            path: in_image[m.name.as_str()].clone(),
            // depmod's order: the dependency to load first comes last.
            deps: m
                .deps
                .iter()
                .rev()
                .filter_map(|d| in_image.get(d.as_str()).cloned())
                .collect(),
        })
        .collect();
    dep.sort_by(|a, b| a.path.cmp(&b.path));
    let mut alias: Vec<AliasEntry> = ix
        .aliases
        .iter()
        .filter(|a| in_image.contains_key(a.module.as_str()))
        .cloned()
        .collect();
    alias.sort_by(|a, b| (&a.module, &a.pattern).cmp(&(&b.module, &b.pattern)));
    alias.dedup();
    let softdep: Vec<Softdep> = ix
        .softdeps
        .values()
        .filter(|s| in_image.contains_key(s.module.as_str()))
        .cloned()
        .collect();
    vec![
        ("modules.alias", format_alias(&alias)),
        ("modules.builtin", ix.builtin_text.clone()),
        ("modules.dep", format_dep(&dep)),
        ("modules.softdep", format_softdep(&softdep)),
    ]
}

/// One line per module (`path  (why)`), then the built-in names and the
/// firmware, for `mkrootfs deps --module`.
pub fn format_closure(c: &ModuleClosure) -> String {
    let mut s = String::new();
    let width = c
        .modules
        .iter()
        .map(|m| m.rel_path.len())
        .max()
        .unwrap_or(0);
    for m in &c.modules {
        let _ = writeln!(s, "{:width$}  ({})", m.rel_path, m.requested_by);
    }
    for b in &c.builtin {
        let _ = writeln!(s, "{b}  (built in)");
    }
    for f in &c.firmware {
        let _ = writeln!(s, "{}  (firmware)", f.display());
    }
    for f in &c.missing_firmware {
        let _ = writeln!(s, "{f}  (firmware, not found)");
    }
    s
}

#[cfg(test)]
mod tests;
