//! `modules.dep`: each module's file and the modules it depends on.

use super::*;

/// One line of `modules.dep`: a module file and the files it depends on,
/// all relative to `/lib/modules/<kver>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepEntry {
    /// Normalized module name, from the file name.
    pub name: String,
    /// Path of the module file, as written.
    pub path: String,
    /// Paths of every module it needs (depmod lists the whole transitive
    /// set), as written.
    pub deps: Vec<String>,
}

/// Parses `modules.dep`: `path: dep dep …` per line. Empty lines and `#`
/// comments are skipped; so is a line without `:` (libkmod finds no
/// module in it) and one naming a file that is not a module
/// (`*.ko[.xz|.zst|.gz]`, all that depmod writes), which could only give
/// an incomplete closure.
pub fn parse_dep(text: &str) -> Parsed<DepEntry> {
    const FILE: &str = "modules.dep";
    let mut out = Parsed::default();
    for (n, line) in content_lines(text) {
        let Some((path, deps)) = line.split_once(':') else {
            out.ignore(FILE, n, format!("no \"path: deps\" in {line:?}"));
            continue;
        };
        let path = path.trim();
        let Some(name) = module_name_from_path(path) else {
            out.ignore(FILE, n, format!("{path:?} is not a module file name"));
            continue;
        };
        let deps: Vec<String> = deps.split_whitespace().map(str::to_owned).collect();
        if let Some(bad) = deps.iter().find(|d| module_name_from_path(d).is_none()) {
            out.ignore(
                FILE,
                n,
                format!("dependency {bad:?} is not a module file name"),
            );
            continue;
        }
        out.entries.push(DepEntry {
            name,
            path: path.to_owned(),
            deps,
        });
    }
    out
}

/// Writes `modules.dep` lines in the order given.
pub fn format_dep(entries: &[DepEntry]) -> String {
    let mut s = String::new();
    for e in entries {
        s.push_str(&e.path);
        s.push(':');
        for d in &e.deps {
            s.push(' ');
            s.push_str(d);
        }
        s.push('\n');
    }
    s
}
