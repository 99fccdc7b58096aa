//! The module index of one kernel's module tree (`lib/modules/<kver>`):
//! read from the `depmod` files when they exist, or rebuilt from each
//! module's `.modinfo` section when they do not (an unpacked kernel package
//! has no `modules.dep`: depmod runs at install time).

use super::KmodError;
use crate::compress::{self, Compression};
use mkrootfs_config::kmod::{
    self as fmt, module_name_from_path, normalize, parse_modinfo, AliasEntry, Softdep,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The largest module accepted after decompression (the biggest in-tree
/// modules are around 20 MiB).
const MODULE_LIMIT: u64 = 256 << 20;

/// One loadable module of the tree.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// Path relative to the tree, as in `modules.dep`.
    pub path: String,
    /// Names of the modules it needs: all of them when read from
    /// `modules.dep`, the direct ones when rebuilt from `.modinfo`.
    pub deps: Vec<String>,
}

/// Everything [`super::resolve`] needs to know about a tree.
#[derive(Debug, Default)]
pub(super) struct Index {
    pub modules: BTreeMap<String, Entry>,
    pub aliases: Vec<AliasEntry>,
    pub softdeps: BTreeMap<String, Softdep>,
    /// Built-in module names.
    pub builtin: BTreeSet<String>,
    /// Aliases of built-in modules (`fs-ext4` → `ext4`), from
    /// `modules.builtin.modinfo`.
    pub builtin_aliases: Vec<AliasEntry>,
    /// The tree's `modules.builtin`, copied into images as is.
    pub builtin_text: String,
    /// Lines of the index files skipped as libkmod skips them (see
    /// [`mkrootfs_config::kmod::Parsed`]), for diagnostics.
    pub ignored: Vec<(PathBuf, fmt::IndexError)>,
}

impl Index {
    /// Reads the index of `tree`.
    pub fn load(tree: &Path) -> Result<Index, KmodError> {
        let meta = fs::metadata(tree).map_err(|e| KmodError::Read(tree.to_owned(), e))?;
        if !meta.is_dir() {
            return Err(KmodError::NotATree(tree.to_owned()));
        }
        let mut ix = if tree.join("modules.dep").exists() {
            Index::from_depmod_files(tree)?
        } else {
            Index::from_modinfo(tree)?
        };
        if let Some(text) = read_optional(&tree.join("modules.builtin"))? {
            ix.builtin = fmt::parse_builtin(&text).into_iter().collect();
            ix.builtin_text = text;
        }
        let bmi = tree.join("modules.builtin.modinfo");
        match fs::read(&bmi) {
            Ok(data) => {
                for (key, value) in parse_modinfo(&data) {
                    if let Some(module) = key.strip_suffix(".alias") {
                        ix.builtin_aliases.push(AliasEntry {
                            pattern: value,
                            module: normalize(module),
                        });
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(KmodError::Read(bmi, e)),
        }
        Ok(ix)
    }

    fn from_depmod_files(tree: &Path) -> Result<Index, KmodError> {
        let mut ix = Index::default();
        let dep_path = tree.join("modules.dep");
        let text =
            fs::read_to_string(&dep_path).map_err(|e| KmodError::Read(dep_path.clone(), e))?;
        let deps = fmt::parse_dep(&text);
        ix.note(&dep_path, deps.ignored);
        for d in deps.entries {
            // Every dependency path has a module name (parse_dep checked it).
            let names = d
                .deps
                .iter()
                .filter_map(|p| module_name_from_path(p))
                .collect();
            ix.modules.insert(
                d.name,
                Entry {
                    path: d.path,
                    deps: names,
                },
            );
        }
        let alias_path = tree.join("modules.alias");
        if let Some(text) = read_optional(&alias_path)? {
            let aliases = fmt::parse_alias(&text);
            ix.note(&alias_path, aliases.ignored);
            ix.aliases = aliases.entries;
        }
        let sd_path = tree.join("modules.softdep");
        if let Some(text) = read_optional(&sd_path)? {
            let softdeps = fmt::parse_softdep(&text);
            ix.note(&sd_path, softdeps.ignored);
            for sd in softdeps.entries {
                merge_softdep(&mut ix.softdeps, sd);
            }
        }
        Ok(ix)
    }

    fn note(&mut self, file: &Path, ignored: Vec<fmt::IndexError>) {
        self.ignored
            .extend(ignored.into_iter().map(|e| (file.to_owned(), e)));
    }

    /// What depmod would compute, from the `.modinfo` of every module file.
    fn from_modinfo(tree: &Path) -> Result<Index, KmodError> {
        let mut files = Vec::new();
        find_modules(tree, "", &mut files)?;
        files.sort();
        let mut ix = Index::default();
        for rel in files {
            let Some(name) = module_name_from_path(&rel) else {
                continue;
            };
            let info = module_modinfo(&tree.join(&rel))?;
            let mut deps = Vec::new();
            for (key, value) in info {
                match key.as_str() {
                    "depends" => {
                        deps.extend(value.split(',').filter(|d| !d.is_empty()).map(normalize))
                    }
                    "alias" => ix.aliases.push(AliasEntry {
                        pattern: value,
                        module: name.clone(),
                    }),
                    "softdep" => {
                        // Untagged words are ignored, as modprobe does.
                        let (sd, _) = fmt::parse_softdep_value(&name, &value);
                        merge_softdep(&mut ix.softdeps, sd);
                    }
                    _ => {}
                }
            }
            // The first file wins, as depmod prefers updates/ over kernel/
            // by search order; trees here have one file per name.
            ix.modules.entry(name).or_insert(Entry { path: rel, deps });
        }
        Ok(ix)
    }
}

/// The first softdep of a module is the one modprobe uses
/// (`kmod_module_get_softdeps`); depmod writes a module's `softdep`
/// modinfo values in order, so the same holds when rebuilding from them.
fn merge_softdep(map: &mut BTreeMap<String, Softdep>, sd: Softdep) {
    map.entry(sd.module.clone()).or_insert(sd);
}

fn read_optional(path: &Path) -> Result<Option<String>, KmodError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KmodError::Read(path.to_owned(), e)),
    }
}

/// Collects module files below `dir` (relative paths), not following
/// symlinks (`build` and `source` point into kernel headers).
fn find_modules(tree: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), KmodError> {
    let dir = tree.join(rel);
    let rd = fs::read_dir(&dir).map_err(|e| KmodError::ReadDir(dir.clone(), e))?;
    for ent in rd {
        let ent = ent.map_err(|e| KmodError::ReadDir(dir.clone(), e))?;
        let ft = ent
            .file_type()
            .map_err(|e| KmodError::Read(ent.path(), e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if ft.is_dir() {
            find_modules(tree, &child, out)?;
        } else if ft.is_file() && module_name_from_path(&name).is_some() {
            out.push(child);
        }
    }
    Ok(())
}

/// The bytes of a module file, decompressed when it is compressed (by
/// magic number, whatever its name says).
pub(super) fn read_module(path: &Path) -> Result<(Vec<u8>, Compression), KmodError> {
    let data = fs::read(path).map_err(|e| KmodError::Read(path.to_owned(), e))?;
    match compress::detect(&data) {
        Some(c @ (Compression::Gzip | Compression::Xz | Compression::Zstd)) => {
            let (out, _) = compress::decompress(&data, c, MODULE_LIMIT)
                .map_err(|e| KmodError::Decompress(path.to_owned(), e))?;
            Ok((out, c))
        }
        _ => Ok((data, Compression::None)),
    }
}

/// The `key=value` pairs of a module file's `.modinfo` section.
pub(super) fn module_modinfo(path: &Path) -> Result<Vec<(String, String)>, KmodError> {
    let (data, _) = read_module(path)?;
    let section = modinfo_section(&data).map_err(|what| KmodError::Elf(path.to_owned(), what))?;
    Ok(parse_modinfo(section))
}

/// Finds the `.modinfo` section of an ELF64 little-endian relocatable
/// object by reading the section headers directly (a module has thousands
/// of symbols and relocations that a full ELF parse would decode for nothing).
fn modinfo_section(data: &[u8]) -> Result<&[u8], String> {
    let u16_at = |o: usize| {
        data.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8).and_then(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            usize::try_from(u64::from_le_bytes(a)).ok()
        })
    };
    if !data.starts_with(b"\x7fELF\x02\x01") {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let bad = || "section headers out of bounds".to_string();
    let shoff = u64_at(0x28).ok_or_else(bad)?;
    let shentsize = u16_at(0x3a).ok_or_else(bad)?;
    let shnum = u16_at(0x3c).ok_or_else(bad)?;
    let shstrndx = u16_at(0x3e).ok_or_else(bad)?;
    let sh = |i: usize| -> Option<(usize, usize, usize)> {
        let base = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((u32_at(base)?, u64_at(base + 0x18)?, u64_at(base + 0x20)?))
    };
    let (_, str_off, str_size) = sh(shstrndx).ok_or_else(bad)?;
    let strtab = str_off
        .checked_add(str_size)
        .and_then(|end| data.get(str_off..end))
        .ok_or_else(bad)?;
    for i in 0..shnum {
        let (name, off, size) = sh(i).ok_or_else(bad)?;
        let name_bytes = strtab.get(name..).unwrap_or_default();
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        if &name_bytes[..end] == b".modinfo" {
            return off
                .checked_add(size)
                .and_then(|e| data.get(off..e))
                .ok_or_else(|| ".modinfo section out of bounds".to_string());
        }
    }
    Err("no .modinfo section".into())
}

/// Where firmware for `tree` is looked up: the same root's `lib/firmware`
/// and `usr/lib/firmware`, then the host's.
pub(super) fn firmware_bases(tree: &Path) -> Vec<PathBuf> {
    let mut bases = Vec::new();
    if let Some(root) = tree.parent().and_then(Path::parent).and_then(Path::parent) {
        bases.push(root.join("lib/firmware"));
        bases.push(root.join("usr/lib/firmware"));
    }
    for host in ["/lib/firmware", "/usr/lib/firmware"] {
        let p = PathBuf::from(host);
        if !bases.contains(&p) {
            bases.push(p);
        }
    }
    bases
}

/// The kernel configuration that goes with `tree`, when it can be found.
pub(super) fn kernel_config(tree: &Path, kver: &str) -> Option<PathBuf> {
    let name = format!("config-{kver}");
    let mut candidates = Vec::new();
    if let Some(root) = tree.parent().and_then(Path::parent).and_then(Path::parent) {
        candidates.push(root.join("boot").join(&name));
    }
    candidates.push(Path::new("/boot").join(&name));
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_section_rejects_garbage_without_panicking() {
        assert_eq!(
            modinfo_section(b"nope").unwrap_err(),
            "not a 64-bit little-endian ELF file"
        );
        let mut hdr = b"\x7fELF\x02\x01".to_vec();
        hdr.resize(0x40, 0xff);
        assert_eq!(
            modinfo_section(&hdr).unwrap_err(),
            "section headers out of bounds"
        );
    }
}
