//! `modules.alias` and modalias matching (fnmatch(3) rules, as kmod uses them).

use super::*;

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
