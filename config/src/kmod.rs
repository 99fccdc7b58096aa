//! The kernel's module index files, as `depmod` writes them under
//! `/lib/modules/<kver>/`, and modalias matching.
//!
//! Shared by the builder (which computes a module closure and writes a
//! restricted index into the image) and the init (which loads modules and
//! coldplugs devices from that index), so both read the files identically.
//!
//! Module names are compared after [`normalize`]: the kernel treats `-` and
//! `_` in module names as the same character (`virtio-rng` is `virtio_rng`).

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

/// One line of `modules.alias`: `alias <pattern> <module>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasEntry {
    /// A glob (`*`, `?`, `[...]`) matched against a device's modalias or a
    /// requested name.
    pub pattern: String,
    /// Normalized module name.
    pub module: String,
}

/// Parses `modules.alias`: `alias PATTERN MODULE` lines, read as
/// libkmod reads its configuration: words after the module are ignored,
/// and so is any other line (another command, a missing word, a module
/// name with an unbalanced `[`). Empty lines and `#` comments are skipped.
pub fn parse_alias(text: &str) -> Parsed<AliasEntry> {
    const FILE: &str = "modules.alias";
    let mut out = Parsed::default();
    for (n, line) in content_lines(text) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("alias"), Some(pattern), Some(module)) if balanced(pattern) => {
                out.entries.push(AliasEntry {
                    pattern: pattern.to_owned(),
                    module: normalize(module),
                })
            }
            _ => out.ignore(FILE, n, format!("not \"alias PATTERN MODULE\": {line:?}")),
        }
    }
    out
}

/// Whether every `[` has its `]` and no `]` stands alone (libkmod's
/// `underscores()` refuses the word otherwise).
fn balanced(word: &str) -> bool {
    let mut open = false;
    for c in word.chars() {
        match c {
            '[' if !open => open = true,
            ']' if open => open = false,
            ']' => return false,
            _ => {}
        }
    }
    !open
}

/// Writes `modules.alias` lines in the order given.
pub fn format_alias(entries: &[AliasEntry]) -> String {
    entries
        .iter()
        .map(|a| format!("alias {} {}\n", a.pattern, a.module))
        .collect()
}

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

/// Whether a modalias (or a requested name) matches an alias pattern, with
/// fnmatch(3) rules as kmod uses them: `*` any run, `?` one character,
/// `[abc]`, `[a-z]`, `[!a]` / `[^a]` a set. No escapes (modaliases have none).
pub fn alias_matches(pattern: &str, modalias: &str) -> bool {
    let p = pattern.as_bytes();
    let s = modalias.as_bytes();
    let (mut pi, mut si) = (0, 0);
    // Where to resume after the last `*`: pattern index after it, and the
    // subject index it currently swallows up to.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, si));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match match_class(&p[pi..], s[si]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                // An unterminated `[` is an ordinary character.
                None => (s[si] == b'[').then_some(1),
            },
            Some(&c) => (c == s[si]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                si += 1;
            }
            (None, Some((sp, ss))) => {
                pi = sp;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class at the start of `p` (which begins with
/// `[`). Returns whether it matched and the length of the class, or `None`
/// when there is no closing `]`.
fn match_class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&hi| hi != b']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_lines_parse_and_round_trip() {
        let text = "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
                    # comment\n\nkernel/drivers/virtio/virtio.ko:\nkernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko\n";
        let parsed = parse_dep(text);
        assert_eq!(parsed.ignored, []);
        let deps = parsed.entries;
        assert_eq!(deps.len(), 3);
        assert_eq!(deps[0].name, "virtio_blk");
        assert_eq!(
            deps[0].deps,
            [
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko"
            ]
        );
        assert_eq!(deps[1].deps, Vec::<String>::new());
        assert_eq!(deps[2].name, "virtio_rng");
        assert_eq!(
            format_dep(&deps),
            "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
             kernel/drivers/virtio/virtio.ko:\nkernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko\n"
        );
    }

    fn ignored<T>(p: &Parsed<T>) -> Vec<String> {
        p.ignored.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn dep_lines_kmod_cannot_use_are_skipped_and_named() {
        let p = parse_dep("a.ko:\nno colon here\nc.ko: b.txt\nnotes.txt:\nd.ko: a.ko\n");
        let names: Vec<&str> = p.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(
            ignored(&p),
            [
                "modules.dep line 2: no \"path: deps\" in \"no colon here\"",
                "modules.dep line 3: dependency \"b.txt\" is not a module file name",
                "modules.dep line 4: \"notes.txt\" is not a module file name",
            ]
        );
    }

    #[test]
    fn module_names_from_paths() {
        assert_eq!(
            module_name_from_path("a/b/virtio-rng.ko.zst").as_deref(),
            Some("virtio_rng")
        );
        assert_eq!(module_name_from_path("x.ko.gz").as_deref(), Some("x"));
        assert_eq!(module_name_from_path("x.ko").as_deref(), Some("x"));
        assert_eq!(module_name_from_path("x.o"), None);
        assert_eq!(module_name_from_path(".ko"), None);
    }

    #[test]
    fn alias_and_softdep_parse() {
        let parsed =
            parse_alias("# Aliases\nalias virtio:d00000002v* virtio_blk\nalias fs-erofs erofs\n");
        assert_eq!(parsed.ignored, []);
        let a = parsed.entries;
        assert_eq!(
            a,
            [
                AliasEntry {
                    pattern: "virtio:d00000002v*".into(),
                    module: "virtio_blk".into()
                },
                AliasEntry {
                    pattern: "fs-erofs".into(),
                    module: "erofs".into()
                },
            ]
        );
        assert_eq!(
            format_alias(&a),
            "alias virtio:d00000002v* virtio_blk\nalias fs-erofs erofs\n"
        );
        let s = parse_softdep("softdep ext4 pre: crc32c post: a b\nsoftdep x post: y\n").entries;
        assert_eq!(s[0].module, "ext4");
        assert_eq!(s[0].pre, ["crc32c"]);
        assert_eq!(s[0].post, ["a", "b"]);
        assert_eq!(
            format_softdep(&s),
            "softdep ext4 pre: crc32c post: a b\nsoftdep x post: y\n"
        );
    }

    /// libkmod's configuration parser skips what it cannot use: other
    /// commands, missing words, unbalanced brackets; extra words after
    /// the module are ignored.
    #[test]
    fn alias_lines_kmod_ignores_are_skipped_and_named() {
        let p = parse_alias(
            "alias x\nalias a[b c\nalias a]b c\noptions m x=1\nalias p m extra words\nalias q[0-9] n\n",
        );
        assert_eq!(
            p.entries,
            [
                AliasEntry {
                    pattern: "p".into(),
                    module: "m".into()
                },
                AliasEntry {
                    pattern: "q[0-9]".into(),
                    module: "n".into()
                },
            ]
        );
        assert_eq!(
            ignored(&p),
            [
                "modules.alias line 1: not \"alias PATTERN MODULE\": \"alias x\"",
                "modules.alias line 2: not \"alias PATTERN MODULE\": \"alias a[b c\"",
                "modules.alias line 3: not \"alias PATTERN MODULE\": \"alias a]b c\"",
                "modules.alias line 4: not \"alias PATTERN MODULE\": \"options m x=1\"",
            ]
        );
    }

    /// Debian 12's depmod (kmod 30) writes `softdep cifs gcm`: a module's
    /// `softdep` modinfo copied verbatim, with no `pre:` or `post:`.
    /// modprobe uses only tagged words, and so must we.
    #[test]
    fn softdep_words_without_pre_or_post_are_ignored_like_modprobe() {
        let text = "# Soft dependencies extracted from modules themselves.\n\
                    softdep cifs gcm\n\
                    softdep cifs pre: ccm\n\
                    softdep snd-pcm pre: snd-pcm-oss post: a \\\n  b\n\
                    softdep m junk pre: x\n\
                    softdep lonely\n\
                    weakdep m n\n";
        let p = parse_softdep(text);
        assert_eq!(
            p.entries,
            [
                Softdep {
                    module: "cifs".into(),
                    pre: vec![],
                    post: vec![],
                },
                Softdep {
                    module: "snd_pcm".into(),
                    pre: vec!["snd-pcm-oss".into()],
                    post: vec!["a".into(), "b".into()],
                },
                Softdep {
                    module: "m".into(),
                    pre: vec!["x".into()],
                    post: vec![],
                },
            ]
        );
        assert_eq!(
            ignored(&p),
            [
                "modules.softdep line 2: softdep cifs: gcm before \"pre:\" or \"post:\"",
                "modules.softdep line 3: softdep cifs: only the module's first softdep line counts",
                "modules.softdep line 6: softdep m: junk before \"pre:\" or \"post:\"",
                "modules.softdep line 7: not a softdep line: \"softdep lonely\"",
                "modules.softdep line 8: not a softdep line: \"weakdep m n\"",
            ]
        );
        // A bare entry is not written back (libkmod would skip the line).
        assert_eq!(
            format_softdep(&p.entries),
            "softdep snd_pcm pre: snd-pcm-oss post: a b\nsoftdep m pre: x\n"
        );
    }

    #[test]
    fn builtin_and_modinfo() {
        assert_eq!(
            parse_builtin("kernel/fs/ext4/ext4.ko\n\nkernel/crypto/crc32c_generic.ko\n"),
            ["ext4", "crc32c_generic"]
        );
        assert_eq!(
            parse_modinfo(b"alias=virtio:d00000002v*\0depends=virtio,virtio_ring\0\0\0junk\0name=virtio_blk\0"),
            [
                ("alias".to_owned(), "virtio:d00000002v*".to_owned()),
                ("depends".to_owned(), "virtio,virtio_ring".to_owned()),
                ("name".to_owned(), "virtio_blk".to_owned()),
            ]
        );
    }

    #[test]
    fn alias_globs() {
        assert!(alias_matches(
            "virtio:d00000002v*",
            "virtio:d00000002v00001AF4"
        ));
        assert!(!alias_matches(
            "virtio:d00000002v*",
            "virtio:d00000001v00001AF4"
        ));
        assert!(alias_matches(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(!alias_matches(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00"
        ));
        assert!(alias_matches("acpi*:LNRO0005:*", "acpi:LNRO0005:"));
        assert!(alias_matches("a?c", "abc"));
        assert!(!alias_matches("a?c", "ac"));
        assert!(alias_matches(
            "cpu:type:x86,ven*fam*mod*:feature:*0081*",
            "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0081,"
        ));
        assert!(alias_matches("x[0-9A-F]y", "xBy"));
        assert!(!alias_matches("x[0-9A-F]y", "xby"));
        assert!(alias_matches("x[!0-9]y", "xay"));
        assert!(!alias_matches("x[^0-9]y", "x5y"));
        assert!(alias_matches("x[]]y", "x]y"));
        assert!(alias_matches("x[ab", "x[ab"));
        assert!(alias_matches("**", ""));
        assert!(!alias_matches("a", ""));
        assert!(alias_matches("fs-erofs", "fs-erofs"));
        assert!(!alias_matches("fs-erofs", "fs-erofsx"));
        assert!(alias_matches("*a*b*c", "xxaxxbxxbxxc"));
    }
}
