use super::*;
use crate::compress::Compression;
use crate::cpio::Entry;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

fn entry(name: &str, mode: u32, data: &[u8]) -> Entry {
    Entry {
        name: name.into(),
        mode,
        nlink: 1,
        mtime: 1_000_000,
        data: data.to_vec(),
        ..Entry::default()
    }
}

fn seg(entries: Vec<Entry>) -> Segment {
    Segment {
        offset: 0,
        compression: Compression::None,
        compressed_len: 0,
        entries,
    }
}

fn lmode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode()
}

#[test]
fn extracts_every_kind_of_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path();
    let link = |name: &str, data: &[u8]| Entry {
        ino: 9,
        nlink: 2,
        ..entry(name, S_IFREG | 0o755, data)
    };
    let entries = vec![
        entry("./etc", S_IFDIR | 0o750, b""),
        entry("./etc/motd", S_IFREG | 0o640, b"hello\n"),
        entry("bin/sh", S_IFLNK | 0o777, b"busybox"),
        link("bin/busybox", b""),
        link("bin/ls", b"ELF"),
        entry("run/fifo", S_IFIFO | 0o620, b""),
        Entry {
            rdev: (5, 1),
            ..entry("dev/console", S_IFCHR | 0o600, b"")
        },
    ];
    let report = extract_with(&[seg(entries)], dest, false).unwrap();
    assert_eq!(
        report,
        ExtractReport {
            files: 3,
            dirs: 1,
            symlinks: 1,
            devices_created: 1,
            skipped: vec!["dev/console: char device 5:1 not created (not root)".into()],
        }
    );
    assert_eq!(fs::read(dest.join("etc/motd")).unwrap(), b"hello\n");
    assert_eq!(lmode(&dest.join("etc/motd")), S_IFREG | 0o640);
    assert_eq!(lmode(&dest.join("etc")), S_IFDIR | 0o750);
    assert_eq!(
        fs::metadata(dest.join("etc/motd")).unwrap().mtime(),
        1_000_000
    );
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let (a, b) = (
        fs::metadata(dest.join("bin/busybox")).unwrap(),
        fs::metadata(dest.join("bin/ls")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    assert_eq!(fs::read(dest.join("bin/busybox")).unwrap(), b"ELF");
    let fifo = fs::symlink_metadata(dest.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);
    assert!(!dest.join("dev/console").exists());
}

#[test]
fn device_nodes_are_created_as_root() {
    // CI runs as root: there a skip would hide a test that never runs.
    // SAFETY: geteuid() has no preconditions.
    if !mkrootfs_tests::require("root (euid 0)", unsafe { libc::geteuid() } == 0) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let e = Entry {
        rdev: (1, 3),
        ..entry("dev/null", S_IFCHR | 0o666, b"")
    };
    let report = extract_with(&[seg(vec![e])], tmp.path(), true).unwrap();
    assert_eq!(report.devices_created, 1, "{report:?}");
    let md = fs::symlink_metadata(tmp.path().join("dev/null")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), libc::makedev(1, 3));
    assert_eq!(md.mode() & 0o7777, 0o666);
}

/// Lists every path under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for ent in fs::read_dir(&d).unwrap() {
            let p = ent.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn never_writes_outside_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("target"), b"precious").unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    // A symlink already in the destination, pointing out.
    std::os::unix::fs::symlink(outside.join("target"), dest.join("pre")).unwrap();
    let abs = outside.join("abs");
    let out = outside.display().to_string();
    let hard = |name: &str, data: &[u8]| Entry {
        ino: 4,
        nlink: 2,
        ..entry(name, S_IFREG | 0o644, data)
    };
    let entries = vec![
        entry("../evil", S_IFREG | 0o644, b"x"),
        entry("a/../../evil2", S_IFREG | 0o644, b"x"),
        entry(&abs.display().to_string(), S_IFREG | 0o644, b"x"),
        entry("link", S_IFLNK | 0o777, out.as_bytes()),
        entry("link/x", S_IFREG | 0o644, b"x"),
        entry("link/sub/y", S_IFDIR | 0o755, b""),
        // Replaces the pre-existing symlink: must not write through it.
        entry("pre", S_IFREG | 0o644, b"new"),
        // A directory turned into a symlink, then used as a parent.
        entry("d", S_IFDIR | 0o755, b""),
        entry("d", S_IFLNK | 0o777, out.as_bytes()),
        entry("d/z", S_IFREG | 0o644, b"x"),
        // A hard-link group whose first name became a symlink meanwhile.
        hard("h1", b""),
        entry(
            "h1",
            S_IFLNK | 0o777,
            outside.join("target").as_os_str().as_bytes(),
        ),
        hard("h2", b"pwned"),
    ];
    let report = extract_with(&[seg(entries)], &dest, false).unwrap();
    assert_eq!(
        report.skipped,
        vec![
            "../evil: name has a `..` component, not extracted".to_string(),
            "a/../../evil2: name has a `..` component, not extracted".to_string(),
            format!("{}: absolute name, not extracted", abs.display()),
            "link/x: parent link is a symlink, not extracted".to_string(),
            "link/sub/y: parent link is a symlink, not extracted".to_string(),
            "d/z: parent d is a symlink, not extracted".to_string(),
            "h2: hard link target is no longer a regular file, not extracted".to_string(),
        ]
    );
    assert_eq!(tree(&outside), ["target"]);
    assert_eq!(fs::read(outside.join("target")).unwrap(), b"precious");
    assert_eq!(tree(tmp.path()).len(), 2 + 5, "{:?}", tree(tmp.path()));
    assert_eq!(fs::read(dest.join("pre")).unwrap(), b"new");
    assert!(fs::symlink_metadata(dest.join("pre")).unwrap().is_file());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = vec![
        entry("x", S_IFREG | 0o644, b"first"),
        entry("x", S_IFDIR | 0o700, b""),
        entry("f", S_IFREG | 0o644, b"long first version"),
        entry("f", S_IFREG | 0o600, b"second"),
    ];
    let mut later = vec![entry("x", S_IFLNK | 0o777, b"f")];
    later.push(entry("x2", S_IFREG | 0o644, b""));
    extract_with(&[seg(entries), seg(later)], tmp.path(), false).unwrap();
    assert_eq!(fs::read_link(tmp.path().join("x")).unwrap(), Path::new("f"));
    assert_eq!(fs::read(tmp.path().join("f")).unwrap(), b"second");
    assert_eq!(lmode(&tmp.path().join("f")), S_IFREG | 0o600);
}

#[test]
fn read_only_directories_still_receive_their_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = vec![
        entry("ro", S_IFDIR | 0o555, b""),
        entry("ro/f", S_IFREG | 0o444, b"data"),
        entry("ro/sub", S_IFDIR | 0o500, b""),
        entry("ro/sub/g", S_IFREG | 0o400, b"more"),
    ];
    let report = extract_with(&[seg(entries)], tmp.path(), false).unwrap();
    assert_eq!((report.files, report.dirs), (2, 2));
    assert_eq!(lmode(&tmp.path().join("ro")), S_IFDIR | 0o555);
    assert_eq!(lmode(&tmp.path().join("ro/sub")), S_IFDIR | 0o500);
    assert_eq!(fs::read(tmp.path().join("ro/sub/g")).unwrap(), b"more");
    // Let the temp dir be removed by a non-root user too.
    for d in ["ro/sub", "ro"] {
        fs::set_permissions(tmp.path().join(d), Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn destination_must_be_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    let e = extract(&[], &file).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("destination {} is not a directory", file.display())
    );
}

#[test]
fn missing_destination_is_created_with_its_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("new/root");
    let entries = vec![entry("etc/motd", S_IFREG | 0o644, b"hi")];
    let report = extract_with(&[seg(entries)], &dest, false).unwrap();
    assert_eq!((report.files, report.dirs), (1, 0));
    assert_eq!(fs::read(dest.join("etc/motd")).unwrap(), b"hi");
}

#[test]
fn destination_under_a_file_names_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    let dest = file.join("sub");
    let e = extract(&[], &dest).unwrap_err();
    assert_eq!(e.to_string(), format!("cannot inspect {}", dest.display()));
}

/// Issue 21 (conveniences): `extract IMAGE DIR PATH...` for single files:
/// only those paths (a directory with what is under it), parents created;
/// a hard link's other name gets the file's data; a missing path is named.
#[test]
fn select_keeps_the_paths_asked_for() {
    let link = |name: &str, data: &[u8]| Entry {
        ino: 9,
        nlink: 2,
        ..entry(name, S_IFREG | 0o755, data)
    };
    let segs = vec![seg(vec![
        entry("./etc", S_IFDIR | 0o755, b""),
        entry("./etc/motd", S_IFREG | 0o644, b"hi\n"),
        entry("./etc/motdx", S_IFREG | 0o644, b"no\n"),
        entry("./usr/lib/x/a", S_IFREG | 0o644, b"a"),
        link("./bin/a", b""),
        link("./bin/b", b"#!x\n"),
    ])];
    let names = |paths: &[&str]| -> Vec<(String, Vec<u8>)> {
        let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        select(&segs, &paths).unwrap()[0]
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.data.clone()))
            .collect()
    };
    assert_eq!(
        names(&["/etc/motd", "usr/lib/"]),
        [
            ("./etc/motd".to_string(), b"hi\n".to_vec()),
            ("./usr/lib/x/a".to_string(), b"a".to_vec())
        ]
    );
    assert_eq!(
        names(&["bin/a"]),
        [("./bin/a".to_string(), b"#!x\n".to_vec())]
    );
    let paths = ["/etc/nosuch".to_string(), "/etc/motd".to_string()];
    assert_eq!(
        select(&segs, &paths).unwrap_err().to_string(),
        "not in the image: /etc/nosuch"
    );
    let tmp = tempfile::tempdir().unwrap();
    let picked = select(&segs, &["/usr/lib/x/a".to_string()]).unwrap();
    extract(&picked, tmp.path()).unwrap();
    assert_eq!(fs::read(tmp.path().join("usr/lib/x/a")).unwrap(), b"a");
    assert!(!tmp.path().join("etc").exists());
}
