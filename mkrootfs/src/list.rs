//! Listings of an image's contents for `mkrootfs ls`: an `ls -l`-like text
//! form and a JSON form for tools.

use crate::cpio::{
    Entry, Segment, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use serde::Serialize;
use std::fmt::Write as _;

/// The file type of an entry, as named in the JSON listing.
fn type_name(mode: u32) -> &'static str {
    match mode & S_IFMT {
        S_IFREG => "file",
        S_IFDIR => "dir",
        S_IFLNK => "symlink",
        S_IFCHR => "char",
        S_IFBLK => "block",
        S_IFIFO => "fifo",
        S_IFSOCK => "socket",
        _ => "unknown",
    }
}

/// `drwxr-xr-x`, `crw-------`, `-rwsr-xr-x`, like `ls -l`.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        S_IFREG => '-',
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        S_IFCHR => 'c',
        S_IFBLK => 'b',
        S_IFIFO => 'p',
        S_IFSOCK => 's',
        _ => '?',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    // (read bit, write bit, exec bit, special bit, special char) per class.
    let classes = [
        (0o400, 0o200, 0o100, 0o4000, 's'),
        (0o040, 0o020, 0o010, 0o2000, 's'),
        (0o004, 0o002, 0o001, 0o1000, 't'),
    ];
    for (r, w, x, special, ch) in classes {
        s.push(if mode & r != 0 { 'r' } else { '-' });
        s.push(if mode & w != 0 { 'w' } else { '-' });
        s.push(match (mode & x != 0, mode & special != 0) {
            (true, true) => ch,
            (false, true) => ch.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn is_device(e: &Entry) -> bool {
    matches!(e.mode & S_IFMT, S_IFCHR | S_IFBLK)
}

/// For each entry of a segment, the file it is a hard link to (the first
/// name of its inode in archive order: the archive stores the names of one
/// file as entries of the same `dev`/`ino` with `nlink` > 1, the data on
/// one of them, the last for GNU cpio and mkrootfs), and the file's size
/// (the data of whichever entry holds it).
fn hard_links(entries: &[Entry]) -> Vec<(Option<&str>, usize)> {
    use std::collections::BTreeMap;
    let key = |e: &Entry| (e.dev, e.ino);
    let linked = |e: &Entry| e.mode & S_IFMT == S_IFREG && e.nlink > 1;
    let mut first: BTreeMap<_, &str> = BTreeMap::new();
    let mut size: BTreeMap<_, usize> = BTreeMap::new();
    for e in entries.iter().filter(|e| linked(e)) {
        first.entry(key(e)).or_insert(e.name.as_str());
        let s = size.entry(key(e)).or_insert(0);
        *s = (*s).max(e.data.len());
    }
    entries
        .iter()
        .map(|e| {
            if !linked(e) {
                return (None, e.data.len());
            }
            let to = first[&key(e)];
            ((to != e.name).then_some(to), size[&key(e)])
        })
        .collect()
}

/// One line per entry: mode, uid, gid, size (or `major, minor` for a
/// device), mtime (seconds since the epoch, as `SOURCE_DATE_EPOCH` gives
/// it), path, and `-> target` for a symlink or `link to FIRST` for another
/// name of a hard-linked file (its size is the file's). With more than one
/// segment, each starts with a `# segment N: ...` line, numbered from 1 as
/// in errors and in the JSON listing.
pub fn format_long(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, seg) in segments.iter().enumerate() {
        if segments.len() > 1 {
            let how = match seg.compression {
                crate::compress::Compression::None => "uncompressed".to_string(),
                c => format!("{c}, {} bytes", seg.compressed_len),
            };
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "# segment {}: offset {}, {how}, {} entries",
                i + 1,
                seg.offset,
                seg.entries.len()
            );
        }
        for (e, (link, len)) in seg.entries.iter().zip(hard_links(&seg.entries)) {
            let size = if is_device(e) {
                format!("{}, {}", e.rdev.0, e.rdev.1)
            } else {
                len.to_string()
            };
            let _ = write!(
                out,
                "{} {:>5} {:>5} {:>10} {:>10} {}",
                mode_string(e.mode),
                e.uid,
                e.gid,
                size,
                e.mtime,
                e.name
            );
            if e.mode & S_IFMT == S_IFLNK {
                let _ = write!(out, " -> {}", String::from_utf8_lossy(&e.data));
            }
            if let Some(to) = link {
                let _ = write!(out, " link to {to}");
            }
            out.push('\n');
        }
    }
    out
}

#[derive(Serialize)]
struct JsonSegment<'a> {
    /// Number of the segment, from 1, as in the text listing and errors.
    segment: usize,
    offset: u64,
    compression: crate::compress::Compression,
    compressed_len: u64,
    entries: Vec<JsonEntry<'a>>,
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    path: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    /// Permission bits, setuid/setgid/sticky included, as 4 octal digits.
    mode: String,
    uid: u32,
    gid: u32,
    size: usize,
    mtime: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    /// Another name of a hard-linked file: the first name of that file.
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rdev: Option<[u32; 2]>,
    ino: u32,
    nlink: u32,
}

/// The listing as JSON: an array of segments (numbered from 1), each with
/// its entries. `target` appears only for symlinks, `rdev` only for
/// devices, `link` only for the later names of a hard-linked file.
pub fn to_json(segments: &[Segment]) -> String {
    let list: Vec<JsonSegment> = segments
        .iter()
        .enumerate()
        .map(|(i, seg)| JsonSegment {
            segment: i + 1,
            offset: seg.offset,
            compression: seg.compression,
            compressed_len: seg.compressed_len,
            entries: seg
                .entries
                .iter()
                .zip(hard_links(&seg.entries))
                .map(|(e, (link, size))| JsonEntry {
                    path: &e.name,
                    kind: type_name(e.mode),
                    mode: format!("{:04o}", e.mode & 0o7777),
                    uid: e.uid,
                    gid: e.gid,
                    size,
                    mtime: e.mtime,
                    target: (e.mode & S_IFMT == S_IFLNK)
                        .then(|| String::from_utf8_lossy(&e.data).into_owned()),
                    link,
                    rdev: is_device(e).then_some([e.rdev.0, e.rdev.1]),
                    ino: e.ino,
                    nlink: e.nlink,
                })
                .collect(),
        })
        .collect();
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(&list).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;

    fn seg(offset: u64, compression: Compression, entries: Vec<Entry>) -> Segment {
        Segment {
            offset,
            compression,
            compressed_len: 40,
            entries,
        }
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                name: "bin".into(),
                mode: S_IFDIR | 0o755,
                nlink: 2,
                ..Entry::default()
            },
            Entry {
                name: "bin/su".into(),
                mode: S_IFREG | 0o4755,
                uid: 0,
                gid: 0,
                nlink: 1,
                ino: 2,
                data: b"#!/bin/sh\n".to_vec(),
                ..Entry::default()
            },
            Entry {
                name: "sh".into(),
                mode: S_IFLNK | 0o777,
                nlink: 1,
                data: b"bin/busybox".to_vec(),
                ..Entry::default()
            },
            Entry {
                name: "dev/console".into(),
                mode: S_IFCHR | 0o600,
                nlink: 1,
                rdev: (5, 1),
                ..Entry::default()
            },
            Entry {
                name: "tmp".into(),
                mode: S_IFDIR | 0o1777,
                uid: 1000,
                gid: 100,
                nlink: 2,
                ..Entry::default()
            },
        ]
    }

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(S_IFDIR | 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(S_IFCHR | 0o600), "crw-------");
        assert_eq!(mode_string(S_IFREG | 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(S_IFREG | 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(S_IFDIR | 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(S_IFIFO | 0o644), "prw-r--r--");
    }

    #[test]
    fn long_listing_of_one_segment_has_no_header() {
        let text = format_long(&[seg(0, Compression::Zstd, entries())]);
        assert_eq!(
            text,
            "drwxr-xr-x     0     0          0          0 bin\n\
             -rwsr-xr-x     0     0         10          0 bin/su\n\
             lrwxrwxrwx     0     0         11          0 sh -> bin/busybox\n\
             crw-------     0     0       5, 1          0 dev/console\n\
             drwxrwxrwt  1000   100          0          0 tmp\n"
        );
    }

    #[test]
    fn long_listing_of_several_segments_has_headers() {
        let early = vec![entries().remove(0)];
        let text = format_long(&[
            seg(0, Compression::None, early),
            seg(512, Compression::Zstd, vec![]),
        ]);
        assert_eq!(
            text,
            "# segment 1: offset 0, uncompressed, 1 entries\n\
             drwxr-xr-x     0     0          0          0 bin\n\
             # segment 2: offset 512, zstd, 40 bytes, 0 entries\n"
        );
    }

    #[test]
    fn json_listing() {
        let json = to_json(&[seg(0, Compression::Zstd, entries()[2..4].to_vec())]);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!([{
                "segment": 1, "offset": 0, "compression": "zstd", "compressed_len": 40,
                "entries": [
                    {"path": "sh", "type": "symlink", "mode": "0777", "uid": 0, "gid": 0,
                     "size": 11, "mtime": 0, "target": "bin/busybox", "ino": 0, "nlink": 1},
                    {"path": "dev/console", "type": "char", "mode": "0600", "uid": 0, "gid": 0,
                     "size": 0, "mtime": 0, "rdev": [5, 1], "ino": 0, "nlink": 1},
                ]
            }])
        );
    }

    /// Issue 21: the JSON numbered segments from 0 and the text from 1;
    /// neither showed mtimes (so `SOURCE_DATE_EPOCH` could not be
    /// checked); hard links showed as empty files.
    #[test]
    fn listings_number_segments_alike_show_mtimes_and_hard_links() {
        let file = |name: &str, data: &[u8]| Entry {
            name: name.into(),
            mode: S_IFREG | 0o755,
            nlink: 2,
            ino: 7,
            mtime: 1_700_000_000,
            data: data.to_vec(),
            ..Entry::default()
        };
        // GNU cpio's and mkrootfs's way: the data on the last name.
        let segs = [
            seg(0, Compression::None, vec![]),
            seg(
                512,
                Compression::Gzip,
                vec![file("bin/a", b""), file("bin/b", b"#!x\n")],
            ),
        ];
        assert_eq!(
            format_long(&segs),
            "# segment 1: offset 0, uncompressed, 0 entries\n\
             # segment 2: offset 512, gzip, 40 bytes, 2 entries\n\
             -rwxr-xr-x     0     0          4 1700000000 bin/a\n\
             -rwxr-xr-x     0     0          4 1700000000 bin/b link to bin/a\n"
        );
        let value: serde_json::Value = serde_json::from_str(&to_json(&segs)).unwrap();
        assert_eq!(value[0]["segment"], 1);
        assert_eq!(value[1]["segment"], 2);
        let b = &value[1]["entries"][1];
        assert_eq!(
            (&b["link"], &b["size"], &b["mtime"]),
            (
                &serde_json::json!("bin/a"),
                &serde_json::json!(4),
                &serde_json::json!(1_700_000_000)
            )
        );
        assert_eq!(value[1]["entries"][0].get("link"), None);
    }
}
