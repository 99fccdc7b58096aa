//! File permission modes as written in profiles: an octal string such as
//! `"0755"` or `"755"`. Validation happens while deserializing, so a bad mode
//! in a TOML profile is reported with the line and column of the value.

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use std::fmt;

/// Permission bits (at most `0o7777`), without the file-type bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mode(pub u32);

impl Mode {
    /// Parses an octal mode string: 1 to 4 octal digits, optionally prefixed by `0o`.
    pub fn parse(s: &str) -> Result<Mode, String> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        if digits.is_empty()
            || digits.len() > 4
            || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            return Err(format!(
                "invalid mode {s:?}: expected 1 to 4 octal digits such as \"0755\""
            ));
        }
        u32::from_str_radix(digits, 8)
            .map(Mode)
            .map_err(|e| format!("invalid mode {s:?}: {e}"))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal mode string such as \"0755\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                Mode::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_octal_strings() {
        assert_eq!(Mode::parse("0755"), Ok(Mode(0o755)));
        assert_eq!(Mode::parse("644"), Ok(Mode(0o644)));
        assert_eq!(Mode::parse("0o4755"), Ok(Mode(0o4755)));
        assert_eq!(Mode(0o22).to_string(), "0022");
    }

    #[test]
    fn rejects_non_octal() {
        assert_eq!(
            Mode::parse("0789"),
            Err("invalid mode \"0789\": expected 1 to 4 octal digits such as \"0755\"".into())
        );
        assert!(Mode::parse("").is_err());
        assert!(Mode::parse("07777 ").is_err());
        assert!(Mode::parse("17777").is_err());
    }
}
