//! JSON inputs with positions: parse into a type with `file:line:column`
//! errors, and find where a value named by its path was written, so that a
//! refused field of a `config.json` is reported at its line and column.

use super::OciError;
use mkrootfs_config::line_col;
use serde::de::DeserializeOwned;
use std::path::Path;

/// One step of a path into a JSON document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Parses `text` (read from `path`) as `T`. Syntax errors and schema errors
/// both carry serde_json's line and column.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, OciError> {
    // Syntax first, so that "not JSON" and "not this schema" read differently.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(error_at(path, &e, "invalid JSON"));
    }
    serde_json::from_str(text).map_err(|e| error_at(path, &e, "does not match the schema"))
}

fn error_at(path: &Path, e: &serde_json::Error, what: &str) -> OciError {
    let mut message = e.to_string();
    // serde_json appends " at line L column C": the position is in front.
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    // oci-spec's capability parser says "no variant for CAP_X (converted to X)".
    if let Some(rest) = message.strip_prefix("no variant for CAP_") {
        let name = rest.split(' ').next().unwrap_or(rest);
        message = format!("unknown capability CAP_{name}");
    }
    OciError::Json {
        path: path.to_path_buf(),
        line: e.line().max(1),
        column: e.column().max(1),
        message: format!("{what}: {message}"),
    }
}

/// An error at the value `at` of the document `text` read from `path`.
pub fn error_at_path(path: &Path, text: &str, at: &[Seg], message: String) -> OciError {
    let (line, column) = line_col(text, offset_of(text, at).unwrap_or(0));
    OciError::Json {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// Byte offset where the value at `path` was written: the key of an object
/// member, the value of an array element. When the path goes further than
/// the document, the deepest part that exists. `None` for an empty path or
/// text that is not JSON.
pub fn offset_of(text: &str, path: &[Seg]) -> Option<usize> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
    let mut best = None;
    s.ws();
    for seg in path {
        match (*seg, s.peek()?) {
            (Seg::Key(want), b'{') => {
                s.i += 1;
                loop {
                    s.ws();
                    if s.peek()? != b'"' {
                        return best;
                    }
                    let start = s.i;
                    let key = s.string()?;
                    s.ws();
                    if s.peek()? != b':' {
                        return best;
                    }
                    s.i += 1;
                    s.ws();
                    let decoded: String = serde_json::from_str(&text[start..key]).ok()?;
                    if decoded == want {
                        best = Some(start);
                        break;
                    }
                    s.value()?;
                    s.ws();
                    match s.peek()? {
                        b',' => s.i += 1,
                        _ => return best,
                    }
                }
            }
            (Seg::Index(n), b'[') => {
                s.i += 1;
                let mut k = 0;
                loop {
                    s.ws();
                    if s.peek()? == b']' {
                        return best;
                    }
                    if k == n {
                        best = Some(s.i);
                        break;
                    }
                    s.value()?;
                    s.ws();
                    match s.peek()? {
                        b',' => s.i += 1,
                        _ => return best,
                    }
                    k += 1;
                }
            }
            _ => return best,
        }
    }
    best
}

/// A forward scanner over JSON text that skips values.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Skips a string starting at its quote; returns the offset after it.
    fn string(&mut self) -> Option<usize> {
        self.i += 1;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(self.i);
                }
                _ => self.i += 1,
            }
        }
    }

    /// Skips one value of any kind.
    fn value(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                loop {
                    self.ws();
                    if self.peek()? == close {
                        self.i += 1;
                        return Some(());
                    }
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.i += 1; // ':'
                    }
                    self.value()?;
                    self.ws();
                    if self.peek()? == b',' {
                        self.i += 1;
                    }
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.i += 1;
                }
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        "{\n  \"a\": [1, {\"b\": \"x\\\"\"}, {\"c\": {\"d\": null}}],\n  \"e\": true\n}";

    #[test]
    fn positions_of_keys_and_elements() {
        let at = |p: &[Seg]| offset_of(DOC, p).map(|o| line_col(DOC, o));
        assert_eq!(at(&[Seg::Key("a")]), Some((2, 3)));
        assert_eq!(at(&[Seg::Key("e")]), Some((3, 3)));
        assert_eq!(at(&[Seg::Key("a"), Seg::Index(1)]), Some((2, 12)));
        assert_eq!(
            at(&[Seg::Key("a"), Seg::Index(2), Seg::Key("c"), Seg::Key("d")]),
            Some((2, 33))
        );
        // Past the document: the deepest part that exists.
        assert_eq!(at(&[Seg::Key("a"), Seg::Index(7)]), Some((2, 3)));
        assert_eq!(at(&[Seg::Key("zz")]), None);
    }

    #[test]
    fn syntax_and_schema_errors_carry_line_and_column() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let p = Path::new("/b/config.json");
        let e = parse::<T>(p, "{\n  \"n\": 1,\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/b/config.json:3:1: invalid JSON: key must be a string"
        );
        let e = parse::<T>(p, "{\n  \"n\": \"one\"\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/b/config.json:2:12: does not match the schema: invalid type: string \"one\", expected u32"
        );
    }
}
