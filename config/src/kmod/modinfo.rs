//! `modules.builtin` and `.modinfo` sections (`key=value` strings).

use super::*;

/// Parses `modules.builtin` (one module path per line) into normalized
/// module names. Lines that are not module paths are skipped.
pub fn parse_builtin(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| module_name_from_path(l.trim()))
        .collect()
}

/// Splits a `.modinfo` section (or `modules.builtin.modinfo`): NUL-separated
/// `key=value` strings. Empty strings (padding) and strings without `=` are
/// skipped; invalid UTF-8 is replaced.
pub fn parse_modinfo(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            let (k, v) = s.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}
