//! Fuzzes the profile parser: any text gives a profile or a positioned
//! error, never a panic (for example on a byte offset inside a multi-byte
//! character when computing the column).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mkrootfs::profile::parse_str(Path::new("fuzz.toml"), text);
    }
});
