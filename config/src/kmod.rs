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
/// comments are skipped.
pub fn parse_dep(text: &str) -> Result<Vec<DepEntry>, IndexError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |what: String| IndexError {
            file: "modules.dep",
            line: i + 1,
            what,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((path, deps)) = line.split_once(':') else {
            return Err(err(format!("expected \"path: deps\", found {line:?}")));
        };
        let path = path.trim();
        let Some(name) = module_name_from_path(path) else {
            return Err(err(format!(
                "{path:?} is not a module file name (*.ko[.xz|.zst|.gz])"
            )));
        };
        let deps: Vec<String> = deps.split_whitespace().map(str::to_owned).collect();
        if let Some(bad) = deps.iter().find(|d| module_name_from_path(d).is_none()) {
            return Err(err(format!("dependency {bad:?} is not a module file name")));
        }
        out.push(DepEntry {
            name,
            path: path.to_owned(),
            deps,
        });
    }
    Ok(out)
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

/// Parses `modules.alias`. Empty lines and `#` comments are skipped.
pub fn parse_alias(text: &str) -> Result<Vec<AliasEntry>, IndexError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("alias"), Some(pattern), Some(module), None) => out.push(AliasEntry {
                pattern: pattern.to_owned(),
                module: normalize(module),
            }),
            _ => {
                return Err(IndexError {
                    file: "modules.alias",
                    line: i + 1,
                    what: format!("expected \"alias PATTERN MODULE\", found {line:?}"),
                })
            }
        }
    }
    Ok(out)
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

/// Parses `modules.softdep`: `softdep <module> pre: a b post: c`. A module
/// may appear on several lines; each line is one entry.
pub fn parse_softdep(text: &str) -> Result<Vec<Softdep>, IndexError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |what: String| IndexError {
            file: "modules.softdep",
            line: i + 1,
            what,
        };
        let mut words = line.split_whitespace();
        let (Some("softdep"), Some(module)) = (words.next(), words.next()) else {
            return Err(err(format!(
                "expected \"softdep MODULE pre: … post: …\", found {line:?}"
            )));
        };
        let sd = parse_softdep_value(module, &words.collect::<Vec<_>>().join(" ")).map_err(err)?;
        out.push(sd);
    }
    Ok(out)
}

/// Parses the value of a `softdep` (`pre: a b post: c`), as found in
/// `modules.softdep` after the module name and in a module's `.modinfo`.
pub fn parse_softdep_value(module: &str, value: &str) -> Result<Softdep, String> {
    let mut sd = Softdep {
        module: normalize(module),
        ..Softdep::default()
    };
    let mut list: Option<&mut Vec<String>> = None;
    for w in value.split_whitespace() {
        match w {
            "pre:" => list = Some(&mut sd.pre),
            "post:" => list = Some(&mut sd.post),
            _ => match list.as_deref_mut() {
                Some(l) => l.push(w.to_owned()),
                None => return Err(format!("{w:?} before \"pre:\" or \"post:\"")),
            },
        }
    }
    Ok(sd)
}

/// Writes `modules.softdep` lines in the order given.
pub fn format_softdep(entries: &[Softdep]) -> String {
    let mut s = String::new();
    for e in entries {
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
        let deps = parse_dep(text).unwrap();
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

    #[test]
    fn dep_errors_name_the_line() {
        assert_eq!(
            parse_dep("a.ko:\nno colon here\n").unwrap_err().to_string(),
            "modules.dep line 2: expected \"path: deps\", found \"no colon here\""
        );
        assert_eq!(
            parse_dep("a.ko: b.txt\n").unwrap_err().to_string(),
            "modules.dep line 1: dependency \"b.txt\" is not a module file name"
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
        let a =
            parse_alias("# Aliases\nalias virtio:d00000002v* virtio_blk\nalias fs-erofs erofs\n")
                .unwrap();
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
        assert_eq!(
            parse_alias("alias x\n").unwrap_err().to_string(),
            "modules.alias line 1: expected \"alias PATTERN MODULE\", found \"alias x\""
        );
        let s = parse_softdep("softdep ext4 pre: crc32c post: a b\nsoftdep x post: y\n").unwrap();
        assert_eq!(s[0].module, "ext4");
        assert_eq!(s[0].pre, ["crc32c"]);
        assert_eq!(s[0].post, ["a", "b"]);
        assert_eq!(
            format_softdep(&s),
            "softdep ext4 pre: crc32c post: a b\nsoftdep x post: y\n"
        );
        assert_eq!(
            parse_softdep("softdep x y\n").unwrap_err().to_string(),
            "modules.softdep line 1: \"y\" before \"pre:\" or \"post:\""
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
