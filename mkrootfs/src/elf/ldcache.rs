//! The loader's configured search list: `/etc/ld.so.cache` (glibc's
//! "glibc-ld.so.cache1.1" format, optionally behind the old "ld.so-1.7.0"
//! table) and, when there is no cache, `/etc/ld.so.conf` with its `include`
//! globs, read the way ldconfig reads it.
//!
//! Layout (glibc `sysdeps/generic/dl-cache.h`): a 48-byte header — magic (17),
//! version (3), `nlibs` u32, `len_strings` u32, a flags byte (2 = little,
//! 3 = big endian), 3 padding bytes, `extension_offset` u32, 3 unused u32 —
//! then `nlibs` 24-byte entries: `flags` i32, `key` u32, `value` u32,
//! `osversion` u32, `hwcap` u64. `key` and `value` are offsets of
//! NUL-terminated strings from the start of that header.

use std::path::{Path, PathBuf};

use super::object::Arch;
use super::sysroot::{host_path, resolve_in_root};

const MAGIC_NEW: &[u8] = b"glibc-ld.so.cache1.1";
const MAGIC_OLD: &[u8] = b"ld.so-1.7.0";
const NEW_HEADER_LEN: usize = 48;
const NEW_ENTRY_LEN: usize = 24;
const OLD_HEADER_LEN: usize = 16;
const OLD_ENTRY_LEN: usize = 12;
/// `FLAG_ELF_LIBC6`: the low byte of an entry's flags for glibc libraries.
const FLAG_ELF_LIBC6: i32 = 0x0003;
const FLAG_TYPE_MASK: i32 = 0x00ff;
/// `include` nesting limit, so a conf that includes itself ends.
const MAX_INCLUDE_DEPTH: usize = 16;

/// One library the cache knows: `soname` -> `path` (inside the sysroot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheEntry {
    pub soname: String,
    pub path: PathBuf,
    /// glibc's per-entry flags: type in the low byte, ABI (e.g. 0x0300 for
    /// x86-64) in the high byte.
    pub flags: i32,
    /// Non-zero for entries of a `glibc-hwcaps` or legacy hwcap subdirectory.
    pub hwcap: u64,
}

impl CacheEntry {
    /// Entries the resolver may use: glibc libraries for the baseline CPU.
    /// hwcap-specific entries are for a CPU the image may not run on.
    pub fn usable(&self) -> bool {
        self.flags & FLAG_TYPE_MASK == FLAG_ELF_LIBC6 && self.hwcap == 0
    }
}

/// The entry flags glibc's loader accepts for `arch`
/// (`_dl_cache_check_flags`; values from glibc's `ldconfig.h`), or `None`
/// for an arch not listed here, where only the file's ELF header decides.
pub(crate) fn expected_flags(arch: Arch) -> Option<&'static [i32]> {
    use goblin::elf::header::{
        ELFCLASS32, ELFCLASS64, EM_386, EM_AARCH64, EM_ARM, EM_PPC64, EM_RISCV, EM_S390, EM_X86_64,
    };
    Some(match (arch.machine, arch.class) {
        (EM_X86_64, ELFCLASS64) => &[0x0303],
        (EM_X86_64, ELFCLASS32) => &[0x0803],
        (EM_386, _) => &[0x0003],
        (EM_AARCH64, ELFCLASS64) => &[0x0a03],
        (EM_S390, ELFCLASS64) => &[0x0403],
        (EM_PPC64, _) => &[0x0503],
        (EM_RISCV, ELFCLASS64) => &[0x1003, 0x0f03],
        (EM_ARM, _) => &[0x0903, 0x0b03, 0x0003],
        _ => return None,
    })
}

/// Parses the bytes of an `ld.so.cache`, in file order (which is the order
/// glibc tries entries with the same key). Errors say what is malformed.
pub(crate) fn parse_cache(bytes: &[u8]) -> Result<Vec<CacheEntry>, String> {
    if bytes.starts_with(MAGIC_NEW) {
        return parse_new(bytes);
    }
    if !bytes.starts_with(MAGIC_OLD) {
        return Err("unknown magic (expected glibc-ld.so.cache1.1 or ld.so-1.7.0)".into());
    }
    // Old format, possibly followed by a new-format cache at the next 8-byte
    // boundary, which glibc then prefers.
    let nlibs = read_u32(bytes, 12, false)? as usize;
    let entries_end = nlibs
        .checked_mul(OLD_ENTRY_LEN)
        .and_then(|n| n.checked_add(OLD_HEADER_LEN))
        .ok_or("entry count overflows")?;
    if entries_end > bytes.len() {
        return Err(format!(
            "{nlibs} entries do not fit in {} bytes",
            bytes.len()
        ));
    }
    let new_start = entries_end.next_multiple_of(8);
    if let Some(tail) = bytes.get(new_start..) {
        if tail.starts_with(MAGIC_NEW) {
            return parse_new(tail);
        }
    }
    // Old-only: string offsets count from the end of the entry table.
    let strings = &bytes[entries_end..];
    let mut out = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = OLD_HEADER_LEN + i * OLD_ENTRY_LEN;
        out.push(CacheEntry {
            flags: read_u32(bytes, at, false)? as i32,
            soname: read_str(strings, read_u32(bytes, at + 4, false)? as usize)?,
            path: PathBuf::from(read_str(strings, read_u32(bytes, at + 8, false)? as usize)?),
            hwcap: 0,
        });
    }
    Ok(out)
}

fn parse_new(bytes: &[u8]) -> Result<Vec<CacheEntry>, String> {
    if bytes.len() < NEW_HEADER_LEN {
        return Err(format!("header truncated at {} bytes", bytes.len()));
    }
    let big = match bytes[28] {
        0 => cfg!(target_endian = "big"),
        2 => false,
        3 => true,
        other => return Err(format!("invalid endianness flag {other}")),
    };
    let nlibs = read_u32(bytes, 20, big)? as usize;
    let table_end = nlibs
        .checked_mul(NEW_ENTRY_LEN)
        .and_then(|n| n.checked_add(NEW_HEADER_LEN))
        .ok_or("entry count overflows")?;
    if table_end > bytes.len() {
        return Err(format!(
            "{nlibs} entries do not fit in {} bytes",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = NEW_HEADER_LEN + i * NEW_ENTRY_LEN;
        let hwcap = u64::from(read_u32(bytes, at + 16, big)?)
            | u64::from(read_u32(bytes, at + 20, big)?) << 32;
        let hwcap = if big { hwcap.rotate_left(32) } else { hwcap };
        out.push(CacheEntry {
            flags: read_u32(bytes, at, big)? as i32,
            soname: read_str(bytes, read_u32(bytes, at + 4, big)? as usize)?,
            path: PathBuf::from(read_str(bytes, read_u32(bytes, at + 8, big)? as usize)?),
            hwcap,
        });
    }
    Ok(out)
}

fn read_u32(bytes: &[u8], at: usize, big: bool) -> Result<u32, String> {
    let raw: [u8; 4] = bytes
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("truncated at offset {at}"))?;
    Ok(if big {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    })
}

fn read_str(bytes: &[u8], at: usize) -> Result<String, String> {
    let tail = bytes
        .get(at..)
        .ok_or_else(|| format!("string offset {at} out of range"))?;
    let end = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| format!("string at offset {at} is not terminated"))?;
    String::from_utf8(tail[..end].to_vec())
        .map_err(|_| format!("string at offset {at} is not UTF-8"))
}

/// The directories of `conf` (a path inside `root`, normally
/// `/etc/ld.so.conf`) in ldconfig's order, following `include` lines. A
/// missing conf file is an empty list, as it is for ldconfig.
pub(crate) fn read_conf(
    root: &Path,
    conf: &Path,
) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
    let mut dirs = Vec::new();
    read_conf_into(root, conf, 0, &mut dirs)?;
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    Ok(dirs)
}

fn read_conf_into(
    root: &Path,
    conf: &Path,
    depth: usize,
    dirs: &mut Vec<PathBuf>,
) -> Result<(), (PathBuf, std::io::Error)> {
    if depth > MAX_INCLUDE_DEPTH {
        return Ok(());
    }
    let text = match resolve_in_root(root, conf) {
        Ok(real) => {
            std::fs::read_to_string(host_path(root, &real)).map_err(|e| (conf.to_path_buf(), e))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err((conf.to_path_buf(), e)),
    };
    let base = conf.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("include")
            .filter(|r| r.starts_with([' ', '\t']))
        {
            for pattern in rest.split_whitespace() {
                for file in glob_in_root(root, &base.join(pattern)) {
                    read_conf_into(root, &file, depth + 1, dirs)?;
                }
            }
        } else if line.starts_with("hwcap") && line[5..].starts_with([' ', '\t']) {
            // Legacy hwcap declarations name no directory.
        } else {
            // Old confs may append "=libc6" to a directory.
            let dir = line.split('=').next().unwrap_or(line).trim_end();
            let trimmed = dir.trim_end_matches('/');
            dirs.push(PathBuf::from(if trimmed.is_empty() {
                "/"
            } else {
                trimmed
            }));
        }
    }
    Ok(())
}

/// Expands a glob pattern (absolute, inside `root`) like glob(3): each
/// component may hold `*`, `?` and `[...]`; results are sorted; hidden names
/// match only a pattern that starts with `.`.
pub(crate) fn glob_in_root(root: &Path, pattern: &Path) -> Vec<PathBuf> {
    let mut matches = vec![PathBuf::from("/")];
    for component in pattern.components() {
        let std::path::Component::Normal(part) = component else {
            continue;
        };
        let part = part.to_string_lossy();
        let mut next = Vec::new();
        for dir in &matches {
            if !part.contains(['*', '?', '[']) {
                let candidate = dir.join(&*part);
                if resolve_in_root(root, &candidate).is_ok() {
                    next.push(candidate);
                }
                continue;
            }
            let Ok(real) = resolve_in_root(root, dir) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(host_path(root, &real)) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| (!n.starts_with('.') || part.starts_with('.')) && fnmatch(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        matches = next;
    }
    matches
}

/// Shell-style matching of one path component (`*`, `?`, `[a-z]`, `[!x]`).
pub(crate) fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fnmatch_at(&p, &n)
}

fn fnmatch_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|skip| fnmatch_at(&p[1..], &n[skip..])),
        Some('?') => !n.is_empty() && fnmatch_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(&c) = n.first() else { return false };
            match match_class(&p[1..], c) {
                Some((matched, rest)) => matched && fnmatch_at(rest, &n[1..]),
                // An unclosed `[` is an ordinary character.
                None => c == '[' && fnmatch_at(&p[1..], &n[1..]),
            }
        }
        Some(&lit) => n.first() == Some(&lit) && fnmatch_at(&p[1..], &n[1..]),
    }
}

/// Matches `c` against a bracket expression whose `[` is already consumed;
/// returns whether it matched and the pattern after the closing `]`.
fn match_class(p: &[char], c: char) -> Option<(bool, &[char])> {
    let (negate, mut i) = match p.first() {
        Some('!') | Some('^') => (true, 1),
        _ => (false, 0),
    };
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, &p[i + 1..]));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            matched |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_ld_so_cache_entries_exist() {
        let Ok(bytes) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("skipped: no /etc/ld.so.cache on this machine");
            return;
        };
        let entries = parse_cache(&bytes).unwrap();
        assert!(entries.len() > 10, "only {} entries", entries.len());
        for e in &entries {
            assert!(e.path.exists(), "{e:?} does not exist");
            assert_eq!(
                e.path.file_name().unwrap().to_str().unwrap(),
                e.soname,
                "{e:?}"
            );
        }
        // This machine has biarch libcs: only one entry is for x86-64.
        let libc: Vec<&CacheEntry> = entries
            .iter()
            .filter(|e| e.soname == "libc.so.6" && e.usable())
            .filter(|e| expected_flags(Arch::X86_64).unwrap().contains(&e.flags))
            .collect();
        assert_eq!(libc.len(), 1, "{libc:?}");
        assert_eq!(
            libc[0].path,
            PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")
        );
    }

    /// A hand-made new-format cache with two entries, checked field by field.
    #[test]
    fn parses_new_format_bytes() {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC_NEW);
        b.extend_from_slice(&2u32.to_le_bytes()); // nlibs
        b.extend_from_slice(&0u32.to_le_bytes()); // len_strings (unused here)
        b.extend_from_slice(&[2, 0, 0, 0]); // little endian
        b.extend_from_slice(&[0; 16]); // extension_offset + unused
        let strings = NEW_HEADER_LEN + 2 * NEW_ENTRY_LEN;
        let s = |o: usize| ((strings + o) as u32).to_le_bytes();
        for (flags, key, value, hwcap) in [(0x0303, 0, 8, 0u64), (0x0003, 0, 30, 1 << 62)] {
            b.extend_from_slice(&(flags as u32).to_le_bytes());
            b.extend_from_slice(&s(key));
            b.extend_from_slice(&s(value));
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&hwcap.to_le_bytes());
        }
        b.extend_from_slice(b"libz.so\0/lib64/libz.so\0\0\0\0\0\0\0\0/lib32/libz.so\0");
        let entries = parse_cache(&b).unwrap();
        assert_eq!(
            entries,
            vec![
                CacheEntry {
                    soname: "libz.so".into(),
                    path: "/lib64/libz.so".into(),
                    flags: 0x0303,
                    hwcap: 0
                },
                CacheEntry {
                    soname: "libz.so".into(),
                    path: "/lib32/libz.so".into(),
                    flags: 0x0003,
                    hwcap: 1 << 62
                },
            ]
        );
        assert!(entries[0].usable());
        assert!(!entries[1].usable());
        // Truncation anywhere is an error, never a panic.
        for len in 0..b.len() - 1 {
            assert!(parse_cache(&b[..len]).is_err(), "accepted {len} bytes");
        }
    }

    #[test]
    fn rejects_unknown_magic() {
        assert_eq!(
            parse_cache(b"not a cache").unwrap_err(),
            "unknown magic (expected glibc-ld.so.cache1.1 or ld.so-1.7.0)"
        );
    }

    #[test]
    fn conf_follows_relative_and_absolute_include_globs_in_order() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc/ld.so.conf.d")).unwrap();
        std::fs::create_dir_all(r.join("etc/more")).unwrap();
        std::fs::write(
            r.join("etc/ld.so.conf"),
            "# comment\n/opt/first/  # trailing comment\ninclude ld.so.conf.d/*.conf\ninclude /etc/more/[a-b]?.conf\n/opt/last=libc6\nhwcap 0 nosegneg\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/b.conf"), "/opt/b\n").unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/a.conf"), "/opt/a\n\n/opt/first\n").unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/c.txt"), "/opt/not-a-conf\n").unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/.hidden.conf"), "/opt/hidden\n").unwrap();
        std::fs::write(r.join("etc/more/a1.conf"), "/opt/more-a1\n").unwrap();
        std::fs::write(r.join("etc/more/c1.conf"), "/opt/more-c1\n").unwrap();
        // A conf that includes itself ends at the depth limit.
        std::fs::write(r.join("etc/more/b2.conf"), "include /etc/more/b2.conf\n").unwrap();
        let dirs = read_conf(r, Path::new("/etc/ld.so.conf")).unwrap();
        let want: Vec<PathBuf> = [
            "/opt/first",
            "/opt/a",
            "/opt/b",
            "/opt/more-a1",
            "/opt/last",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(dirs, want);
    }

    #[test]
    fn missing_conf_is_empty() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            read_conf(root.path(), Path::new("/etc/ld.so.conf")).unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn fnmatch_classes_and_stars() {
        assert!(fnmatch("*.conf", "x86_64-linux-gnu.conf"));
        assert!(!fnmatch("*.conf", "x.conf.bak"));
        assert!(fnmatch("[a-c]?", "b9"));
        assert!(!fnmatch("[!a-c]?", "b9"));
        assert!(fnmatch("[]x]", "]"));
        assert!(fnmatch("a[", "a["));
        assert!(fnmatch("*", ""));
    }
}
