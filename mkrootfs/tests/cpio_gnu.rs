//! The cpio reader, writer and extractor against GNU cpio and the real
//! gzip/xz/zstd (and, read only, bzip2/lzma/lz4) tools: committed fixtures (see
//! `fixtures/cpio/make-fixtures.sh`), then live round trips through the
//! tools when they are installed.

use mkrootfs_tests as util;

use mkrootfs::compress::{compress, Compression};
use mkrootfs::cpio::{read_archive, write_archive, Entry, Limits, Segment, S_IFMT};
use mkrootfs::extract::extract;
use mkrootfs::list::format_long;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cpio")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(bytes: &[u8]) -> Vec<Segment> {
    read_archive(bytes, &Limits::default()).unwrap()
}

/// `ls -l` of `fixtures/cpio/gnu.cpio`, as `cpio -itv` shows it too (with
/// mtimes in seconds, and the hard link shown as one).
const GNU_LISTING: &str = "\
drwxr-xr-x     0     0          0 1700000000 .
drwxr-xr-x     0     0          0 1700000000 bin
lrwxrwxrwx     0     0          5 1700000000 bin/hi -> hello
drwxr-xr-x     0     0          0 1700000000 etc
-rw-r--r--     0     0          0 1700000000 etc/empty
-rw-------     0     0          6 1700000000 etc/motd
drwx------     0     0          0 1700000000 run
prw--w----     0     0          0 1700000000 run/initctl
drwxr-xr-x     0     0          0 1700000000 usr
drwxr-xr-x     0     0          0 1700000000 usr/lib
-rwxr-xr-x     0     0         18 1700000000 bin/hello
-rwxr-xr-x     0     0         18 1700000000 usr/lib/hello-hardlink link to bin/hello
";

#[test]
fn gnu_fixture_reads_like_cpio_itv() {
    let segs = read(&fixture("gnu.cpio"));
    assert_eq!(segs.len(), 1);
    assert_eq!(format_long(&segs), GNU_LISTING);
    let e = &segs[0].entries;
    // GNU cpio keeps hard links for the end: same inode, nlink 2, data on
    // the last one only.
    let (a, b) = (&e[10], &e[11]);
    assert_eq!((a.ino, a.nlink, b.ino, b.nlink), (b.ino, 2, a.ino, 2));
    assert_eq!(b.data, b"#!/bin/sh\necho hi\n");
    assert!(e.iter().all(|x| x.mtime == 1_700_000_000));
}

#[test]
fn gnu_fixture_in_every_format_has_the_same_entries() {
    let plain = read(&fixture("gnu.cpio")).remove(0).entries;
    for (name, compression) in [
        ("gnu-crc.cpio", Compression::None),
        ("gnu.cpio.gz", Compression::Gzip),
        ("gnu.cpio.xz", Compression::Xz),
        ("gnu.cpio.zst", Compression::Zstd),
        // Issue 21: formats the kernel unpacks that `ls` refused.
        ("gnu.cpio.bz2", Compression::Bzip2),
        ("gnu.cpio.lzma", Compression::Lzma),
        ("gnu.cpio.lz4", Compression::Lz4),
    ] {
        let bytes = fixture(name);
        let segs = read(&bytes);
        assert_eq!(segs.len(), 1, "{name}");
        assert_eq!(segs[0].compression, compression, "{name}");
        assert_eq!(segs[0].entries, plain, "{name}");
        if compression != Compression::None {
            assert_eq!(segs[0].compressed_len, bytes.len() as u64, "{name}");
        }
    }
}

#[test]
fn early_microcode_layout_reads_as_two_segments() {
    let segs = read(&fixture("early-main.img"));
    let text = format_long(&segs);
    let expect_head = "\
# segment 1: offset 0, uncompressed, 5 entries
drwxr-xr-x     0     0          0 1700000000 .
drwxr-xr-x     0     0          0 1700000000 kernel
drwxr-xr-x     0     0          0 1700000000 kernel/x86
drwxr-xr-x     0     0          0 1700000000 kernel/x86/microcode
-rw-r--r--     0     0          5 1700000000 kernel/x86/microcode/GenuineIntel.bin
# segment 2: offset 1024, zstd, 252 bytes, 12 entries
";
    assert_eq!(text, format!("{expect_head}{GNU_LISTING}"));
}

/// Whether every tool can run; skips the test without them, except under
/// `CI=true`, where a missing tool fails it (see `util::require`).
fn have(tools: &[&str]) -> bool {
    tools.iter().all(|tool| {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        util::require(&format!("the `{tool}` program"), ok)
    })
}

/// Runs `sh -c script` in `dir` with `input` on stdin; returns stdout.
fn sh(dir: &Path, script: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A tree with files, directories, a symlink, a hard link and a fifo.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc/deep/er")).unwrap();
    fs::write(root.join("bin/tool"), b"\x7fELF pretend binary\n").unwrap();
    fs::write(root.join("etc/deep/er/conf"), vec![b'x'; 5000]).unwrap();
    fs::write(root.join("etc/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../bin/tool", root.join("etc/tool-link")).unwrap();
    fs::hard_link(root.join("bin/tool"), root.join("bin/tool-hard")).unwrap();
    sh(root, "mkfifo -m 0640 etc/fifo && chmod 0750 bin/tool", b"");
}

/// Path -> (type+mode, size, symlink target) of everything under `root`,
/// plus groups of hard-linked names, for comparing two trees.
type Snapshot = (
    BTreeMap<String, (u32, u64, Option<PathBuf>)>,
    Vec<Vec<String>>,
);

fn snapshot(root: &Path) -> Snapshot {
    let mut files = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for ent in fs::read_dir(&dir).unwrap() {
            let path = ent.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let md = fs::symlink_metadata(&path).unwrap();
            let target = md.is_symlink().then(|| fs::read_link(&path).unwrap());
            let size = if md.is_file() { md.len() } else { 0 };
            if md.is_file() && md.nlink() > 1 {
                inodes.entry(md.ino()).or_default().push(rel.clone());
            }
            files.insert(rel, (md.mode(), size, target));
            if md.is_dir() {
                stack.push(path);
            }
        }
    }
    let mut groups: Vec<Vec<String>> = inodes.into_values().collect();
    for g in &mut groups {
        g.sort();
    }
    (files, groups)
}

/// The snapshot of what an archive describes, names without `./`.
fn snapshot_of(entries: &[Entry]) -> Snapshot {
    let mut files = BTreeMap::new();
    let mut inodes: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut sizes: BTreeMap<u32, u64> = BTreeMap::new();
    for e in entries {
        let name = e.name.trim_start_matches("./").to_string();
        if name == "." {
            continue;
        }
        let is_link = e.mode & S_IFMT == mkrootfs::cpio::S_IFLNK;
        let target = is_link.then(|| PathBuf::from(String::from_utf8(e.data.clone()).unwrap()));
        let is_file = e.mode & S_IFMT == mkrootfs::cpio::S_IFREG;
        if is_file && e.nlink > 1 {
            inodes.entry(e.ino).or_default().push(name.clone());
            *sizes.entry(e.ino).or_default() += e.data.len() as u64;
        }
        let size = if is_file { e.data.len() as u64 } else { 0 };
        files.insert(name, (e.mode, size, target));
    }
    // Every name of a hard-link group has the group's one copy of the data.
    let mut groups: Vec<Vec<String>> = Vec::new();
    for (ino, mut names) in inodes {
        for n in &names {
            if let Some(f) = files.get_mut(n) {
                f.1 = sizes[&ino];
            }
        }
        names.sort();
        groups.push(names);
    }
    (files, groups)
}

fn all_entries(segs: &[Segment]) -> Vec<Entry> {
    segs.iter().flat_map(|s| s.entries.clone()).collect()
}

#[test]
fn archives_from_gnu_cpio_match_the_tree_in_every_compression() {
    if !have(&["cpio", "xz", "zstd", "gzip"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let want = snapshot(&tree);
    let plain = sh(&tree, "find . | cpio -o -H newc --quiet", b"");
    assert_eq!(snapshot_of(&all_entries(&read(&plain))), want);
    for (tool, compression) in [
        ("gzip -n -9", Compression::Gzip),
        ("xz --check=crc32", Compression::Xz),
        ("zstd -q -19", Compression::Zstd),
    ] {
        let packed = sh(&tree, tool, &plain);
        let segs = read(&packed);
        assert_eq!(segs.len(), 1, "{tool}");
        assert_eq!(segs[0].compression, compression, "{tool}");
        assert_eq!(snapshot_of(&segs[0].entries), want, "{tool}");
    }
    // The early-microcode layout: `cat early.cpio main.cpio.zst > img`.
    fs::create_dir_all(tmp.path().join("early/kernel/x86/microcode")).unwrap();
    fs::write(
        tmp.path()
            .join("early/kernel/x86/microcode/AuthenticAMD.bin"),
        b"amd",
    )
    .unwrap();
    let mut img = sh(
        &tmp.path().join("early"),
        "find . | cpio -o -H newc --quiet",
        b"",
    );
    let early_len = img.len() as u64;
    img.extend(sh(&tree, "zstd -q", &plain));
    let segs = read(&img);
    assert_eq!(segs.len(), 2);
    assert_eq!(
        (segs[1].offset, segs[1].compression),
        (early_len, Compression::Zstd)
    );
    assert_eq!(segs[0].entries.len(), 5);
    assert_eq!(snapshot_of(&segs[1].entries), want);
    // And our extraction of it reproduces the tree.
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let report = extract(&segs[1..], &out).unwrap();
    assert_eq!(report.skipped, Vec::<String>::new());
    assert_eq!(snapshot(&out), want);
}

/// Entries of `tree` as our builder would write them: sorted, the hard
/// link's data on its last name.
fn entries_of_tree(tree: &Path) -> Vec<Entry> {
    let listing = sh(tree, "find . -mindepth 1 | LC_ALL=C sort", b"");
    let names: Vec<String> = String::from_utf8(listing)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect();
    let mut out: Vec<Entry> = Vec::new();
    let mut last_of_ino: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let path = tree.join(name);
        let md = fs::symlink_metadata(&path).unwrap();
        let data = if md.is_symlink() {
            fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if md.is_file() {
            fs::read(&path).unwrap()
        } else {
            Vec::new()
        };
        if md.is_file() && md.nlink() > 1 {
            if let Some(prev) = last_of_ino.insert(md.ino(), i) {
                out[prev].data.clear();
            }
        }
        out.push(Entry {
            name: name.clone(),
            mode: md.mode(),
            uid: 0,
            gid: 0,
            nlink: md.nlink() as u32,
            mtime: 1_700_000_000,
            ino: (md.ino() % 1_000_000) as u32,
            dev: (0, 0),
            rdev: (0, 0),
            data,
        });
    }
    out
}

#[test]
fn gnu_cpio_reads_our_archives() {
    if !have(&["cpio"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let ours = entries_of_tree(&tree);
    let mut bytes = Vec::new();
    write_archive(&mut bytes, &ours).unwrap();
    let listed = String::from_utf8(sh(tmp.path(), "cpio -i -t --quiet", &bytes)).unwrap();
    let names: Vec<&str> = ours.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(listed.lines().collect::<Vec<_>>(), names);
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    sh(&out, "cpio -idm --quiet", &bytes);
    assert_eq!(snapshot(&out), snapshot(&tree));
    let fifo = fs::symlink_metadata(out.join("etc/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
}

#[test]
fn our_compressed_images_decompress_with_the_real_tools() {
    if !have(&["xz", "zstd", "gzip"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    fs::write(tree.join("etc/big"), text).unwrap();
    let mut data = Vec::new();
    write_archive(&mut data, &entries_of_tree(&tree)).unwrap();
    for (tool, c) in [
        ("gzip -d", Compression::Gzip),
        ("xz -d", Compression::Xz),
        ("zstd -d -q", Compression::Zstd),
    ] {
        let packed = compress(&data, c, None).unwrap();
        assert_eq!(sh(tmp.path(), tool, &packed), data, "{tool}");
    }
    // The kernel's xz decoder needs CRC32: `xz -lvv` names the check.
    let packed = compress(&data, Compression::Xz, None).unwrap();
    fs::write(tmp.path().join("img.xz"), &packed).unwrap();
    let info = String::from_utf8(sh(tmp.path(), "xz --robot -lvv img.xz", b"")).unwrap();
    let stream = info.lines().find(|l| l.starts_with("stream\t")).unwrap();
    assert_eq!(stream.split('\t').nth(8), Some("CRC32"), "{info}");
}

#[test]
fn hostile_archive_writes_nothing_outside_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let marker = format!("mkrootfs-cpio-gnu-{}", std::process::id());
    let file = |name: &str| Entry {
        name: name.to_string(),
        mode: 0o100644,
        nlink: 1,
        data: b"evil".to_vec(),
        ..Entry::default()
    };
    let abs = tmp.path().join(format!("{marker}-abs"));
    let entries = vec![
        file(&format!("../{marker}-dotdot")),
        file(&abs.display().to_string()),
        Entry {
            name: "link".into(),
            mode: 0o120777,
            nlink: 1,
            data: b"/tmp".to_vec(),
            ..Entry::default()
        },
        file(&format!("link/{marker}")),
    ];
    let mut bytes = Vec::new();
    // The writer refuses absolute names, so build that one by hand: write
    // it with a placeholder of the same length and patch the name.
    let placeholder = "x".repeat(abs.display().to_string().len());
    let mut for_writer = entries.clone();
    for_writer[1].name = placeholder.clone();
    write_archive(&mut bytes, &for_writer).unwrap();
    let at = bytes
        .windows(placeholder.len())
        .position(|w| w == placeholder.as_bytes())
        .unwrap();
    bytes[at..at + placeholder.len()].copy_from_slice(abs.display().to_string().as_bytes());
    let segs = read(&bytes);
    assert_eq!(all_entries(&segs), entries);
    let report = extract(&segs, &dest).unwrap();
    assert_eq!(report.symlinks, 1);
    assert_eq!(report.files, 0);
    assert_eq!(report.skipped.len(), 3, "{:?}", report.skipped);
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert!(!abs.exists());
    assert!(!tmp.path().join(format!("{marker}-dotdot")).exists());
    let names: Vec<_> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["link"]);
}
