//! `modules.softdep` (and `softdep` lines of modprobe.d): pre- and post-dependencies.

use super::*;

/// One line of `modules.softdep`: modules to load before (`pre:`) and
/// after (`post:`) a module, by name or alias. They are optional: a missing
/// one is skipped, as modprobe does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Softdep {
    /// Normalized module name.
    pub module: String,
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

/// Parses `modules.softdep` the way libkmod reads it (as a configuration
/// file): lines continue after a trailing `\\`; `softdep MODULE WORDS…`
/// lines give an entry, any other line is skipped. Words before the first
/// `pre:` or `post:` are ignored: depmod copies a module's `softdep`
/// modinfo verbatim and modprobe uses only tagged words (Debian 12 has
/// `softdep cifs gcm`). Only the first line for a module counts
/// (`kmod_module_get_softdeps` stops there, as module-init-tools did), even
/// when it names nothing to load; later ones are skipped. So the result has
/// at most one entry per module, in file order.
pub fn parse_softdep(text: &str) -> Parsed<Softdep> {
    const FILE: &str = "modules.softdep";
    let mut out: Parsed<Softdep> = Parsed::default();
    for (n, line) in logical_lines(text) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some("softdep"), Some(module)) = (words.next(), words.next()) else {
            out.ignore(FILE, n, format!("not a softdep line: {line:?}"));
            continue;
        };
        let rest = words.collect::<Vec<_>>().join(" ");
        if rest.is_empty() {
            out.ignore(FILE, n, format!("not a softdep line: {line:?}"));
            continue;
        }
        let (sd, untagged) = parse_softdep_value(module, &rest);
        if out.entries.iter().any(|e| e.module == sd.module) {
            out.ignore(
                FILE,
                n,
                format!("softdep {module}: only the module's first softdep line counts"),
            );
            continue;
        }
        if !untagged.is_empty() {
            out.ignore(
                FILE,
                n,
                format!(
                    "softdep {module}: {} before \"pre:\" or \"post:\"",
                    untagged.join(" ")
                ),
            );
        }
        out.entries.push(sd);
    }
    out
}

/// Lines joined where one ends in a backslash (libkmod's
/// `freadline_wrapped`), each with the number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (n, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                pending = Some((n, acc));
            }
            None => {
                acc.push_str(line);
                out.push((n, acc));
            }
        }
    }
    out.extend(pending);
    out
}

/// Parses the value of a `softdep` (`pre: a b post: c`), as found in
/// `modules.softdep` after the module name and in a module's `.modinfo`.
/// Returns the words before the first tag too, which modprobe ignores.
pub fn parse_softdep_value<'a>(module: &str, value: &'a str) -> (Softdep, Vec<&'a str>) {
    let mut sd = Softdep {
        module: normalize(module),
        ..Softdep::default()
    };
    let mut untagged = Vec::new();
    let mut list: Option<&mut Vec<String>> = None;
    for w in value.split_whitespace() {
        match w {
            "pre:" => list = Some(&mut sd.pre),
            "post:" => list = Some(&mut sd.post),
            _ => match list.as_deref_mut() {
                Some(l) => l.push(w.to_owned()),
                None => untagged.push(w),
            },
        }
    }
    (sd, untagged)
}

/// Writes `modules.softdep` lines in the order given, leaving out entries
/// with nothing to load (libkmod would skip a bare `softdep MODULE` line).
pub fn format_softdep(entries: &[Softdep]) -> String {
    let mut s = String::new();
    for e in entries
        .iter()
        .filter(|e| !e.pre.is_empty() || !e.post.is_empty())
    {
        s.push_str("softdep ");
        s.push_str(&e.module);
        for (tag, list) in [("pre:", &e.pre), ("post:", &e.post)] {
            if !list.is_empty() {
                s.push(' ');
                s.push_str(tag);
                for m in list {
                    s.push(' ');
                    s.push_str(m);
                }
            }
        }
        s.push('\n');
    }
    s
}
