//! The kernel's module index files, as `depmod` writes them under
//! `/lib/modules/<kver>/`, and modalias matching.
//!
//! Shared by the builder (which computes a module closure and writes a
//! restricted index into the image) and the init (which loads modules and
//! coldplugs devices from that index), so both read the files identically.
//!
//! Module names are compared after [`normalize`]: the kernel treats `-` and
//! `_` in module names as the same character (`virtio-rng` is `virtio_rng`).

mod alias;
mod dep;
mod modinfo;
mod softdep;

pub use alias::{alias_matches, format_alias, parse_alias, AliasEntry};
pub use dep::{format_dep, parse_dep, DepEntry};
pub use modinfo::{parse_builtin, parse_modinfo};
pub use softdep::{format_softdep, parse_softdep, parse_softdep_value, Softdep};
use std::fmt;

/// A line of an index file that could not be understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexError {
    /// Which file format (`modules.dep`, `modules.alias`, …).
    pub file: &'static str,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line.
    pub what: String,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.what)
    }
}

impl std::error::Error for IndexError {}

/// The module name as the kernel compares it: `-` replaced by `_`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Compression suffixes a module file may carry after `.ko`.
pub const COMPRESSED_SUFFIXES: &[&str] = &[".xz", ".zst", ".gz"];

/// The module name of a module file path (`kernel/drivers/char/virtio-rng.ko.xz`
/// → `virtio_rng`), or `None` when the file name does not end in `.ko` with
/// an optional compression suffix.
pub fn module_name_from_path(path: &str) -> Option<String> {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = COMPRESSED_SUFFIXES
        .iter()
        .find_map(|s| base.strip_suffix(s))
        .unwrap_or(base);
    let stem = base.strip_suffix(".ko")?;
    if stem.is_empty() {
        return None;
    }
    Some(normalize(stem))
}

/// What an index parser read, and the lines it skipped.
///
/// The files are read the way libkmod reads them: a line it would not use
/// is skipped (libkmod logs it and goes on), never a reason to refuse the
/// whole tree, since modprobe would not refuse it either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed<T> {
    pub entries: Vec<T>,
    /// Each skipped line (or part of a line), with why.
    pub ignored: Vec<IndexError>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Parsed {
            entries: Vec::new(),
            ignored: Vec::new(),
        }
    }
}

impl<T> Parsed<T> {
    fn ignore(&mut self, file: &'static str, line: usize, what: String) {
        self.ignored.push(IndexError { file, line, what });
    }
}

/// The lines of a file with their 1-based numbers, without empty lines
/// and `#` comments.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests;
