//! Unit tests of the image tree.

use super::host::split_dev;
use super::plan::{S_IFCHR, S_IFREG};
use super::*;

#[test]
fn merged_usr_symlink_redirects_added_paths() {
    let mut t = Tree::new("/nonexistent");
    t.add_symlink("/lib", "usr/lib", "test").unwrap();
    let p = t
        .add(
            "/lib/x/libc.so.6",
            Node::File(b"elf".to_vec().into()),
            Meta::root(0o644),
            "test",
        )
        .unwrap();
    assert_eq!(p, "/usr/lib/x/libc.so.6");
    assert_eq!(t.get("/usr/lib/x"), Some(&Node::Dir));
}

#[test]
fn conflicting_node_names_both_origins() {
    let mut t = Tree::new("/");
    t.add(
        "/etc/x",
        Node::File(b"a".to_vec().into()),
        Meta::root(0o644),
        "files[0]",
    )
    .unwrap();
    let e = t
        .add(
            "/etc/x",
            Node::Symlink("y".into()),
            Meta::root(0o777),
            "symlinks[0]",
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "/etc/x: already in the image as file (from files[0]), now asked as a different symlink by symlinks[0]");
    // The same content twice is fine (two binaries needing one library).
    t.add(
        "/etc/x",
        Node::File(b"a".to_vec().into()),
        Meta::root(0o644),
        "files[1]",
    )
    .unwrap();
}

#[test]
fn hard_links_share_inode_and_last_name_carries_data() {
    let mut t = Tree::new("/");
    t.add(
        "/b/file",
        Node::File(b"data".to_vec().into()),
        Meta::root(0o755),
        "t",
    )
    .unwrap();
    t.add_hardlink("/a/link", "/b/file", "t").unwrap();
    t.add_hardlink("/c/link", "/b/file", "t").unwrap();
    let e = t.to_entries(0).unwrap();
    let find = |n: &str| e.iter().find(|x| x.name == n).unwrap();
    let (a, b, c) = (find("a/link"), find("b/file"), find("c/link"));
    assert_eq!((a.ino, a.nlink), (b.ino, 3));
    assert_eq!(c.ino, b.ino);
    assert!(a.ino != 0);
    assert_eq!(
        (a.data.len(), b.data.len(), c.data.as_slice()),
        (0, 0, &b"data"[..])
    );
    assert_eq!(a.mode, S_IFREG | 0o755);
}

#[test]
fn entries_are_sorted_with_sequential_inodes() {
    let mut t = Tree::new("/");
    t.add_dir("/z", Meta::root(0o700), "t").unwrap();
    t.add("/a/b", Node::Char(5, 1), Meta::root(0o600), "t")
        .unwrap();
    let e = t.to_entries(42).unwrap();
    let names: Vec<_> = e
        .iter()
        .map(|x| (x.name.as_str(), x.ino, x.mtime))
        .collect();
    assert_eq!(names, vec![("a", 1, 42), ("a/b", 2, 42), ("z", 3, 42)]);
    assert_eq!(e[1].rdev, (5, 1));
    assert_eq!(e[1].mode, S_IFCHR | 0o600);
}

#[test]
fn symlink_loop_is_an_error() {
    let mut t = Tree::new("/");
    t.add_symlink("/a", "b", "t").unwrap();
    t.add_symlink("/b", "a", "t").unwrap();
    assert_eq!(
        t.resolve("/a/x", true).unwrap_err().to_string(),
        "/a/x: too many levels of symbolic links"
    );
}

#[test]
fn sysroot_copy_keeps_symlink_chain() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
    fs::write(root.join("usr/lib/libz.so.1.2.13"), b"z").unwrap();
    std::os::unix::fs::symlink("libz.so.1.2.13", root.join("usr/lib/libz.so.1")).unwrap();
    let mut t = Tree::new(root);
    let p = t.add_from_sysroot("/lib/libz.so.1", "test").unwrap();
    assert_eq!(p, "/usr/lib/libz.so.1.2.13");
    assert_eq!(t.get("/lib"), Some(&Node::Symlink("usr/lib".into())));
    assert_eq!(
        t.get("/usr/lib/libz.so.1"),
        Some(&Node::Symlink("libz.so.1.2.13".into()))
    );
    // The file is recorded, not read: it is streamed when the image is written.
    let host = root.join("usr/lib/libz.so.1.2.13");
    assert_eq!(
        t.get("/usr/lib/libz.so.1.2.13"),
        Some(&Node::File(Data::Host { path: host, len: 1 }))
    );
    assert_eq!(t.to_entries(0).unwrap().last().unwrap().data, b"z");
}

#[test]
fn tree_copied_to_root_adds_no_root_entry() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("etc")).unwrap();
    fs::write(dir.path().join("etc/motd"), b"hi").unwrap();
    let mut t = Tree::new("/");
    t.add_host_tree(dir.path(), "/", "trees entry /").unwrap();
    t.add_dir("/", Meta::root(0o700), "dirs").unwrap();
    let names: Vec<String> = t
        .to_entries(0)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["etc", "etc/motd"]);
    let mut out = Vec::new();
    crate::cpio::write_archive(&mut out, &t.to_entries(0).unwrap()).unwrap();
}

#[test]
fn root_cannot_become_a_file() {
    let mut t = Tree::new("/");
    let e = t
        .add(
            "/",
            Node::File(Vec::new().into()),
            Meta::root(0o644),
            "files entry /",
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/: the image root is always a directory, it cannot be a file (asked by files entry /)"
    );
}

#[test]
fn hard_link_to_a_hard_link_joins_the_same_file() {
    let mut t = Tree::new("/");
    t.add(
        "/a",
        Node::File(b"x".to_vec().into()),
        Meta::root(0o644),
        "t",
    )
    .unwrap();
    t.add_hardlink("/b", "/a", "t").unwrap();
    t.add_hardlink("/c", "/b", "t").unwrap();
    assert_eq!(t.get("/c"), Some(&Node::HardLink("/a".into())));
    let e = t.to_entries(0).unwrap();
    let inos: Vec<(u32, u32)> = e.iter().map(|x| (x.ino, x.nlink)).collect();
    assert_eq!(inos, vec![(1, 3), (1, 3), (1, 3)]);
    assert_eq!(e[2].data, b"x");
}

#[test]
fn dev_numbers_split_like_glibc() {
    assert_eq!(split_dev(0x0501), (5, 1));
    assert_eq!(
        split_dev(0x03 | (259u64 << 8) | (0x1200u64 << 12)),
        (259, 0x1203)
    );
}

#[test]
fn dotdot_after_a_symlink_goes_up_from_its_target_and_never_above_root() {
    let mut t = Tree::new("/");
    t.add_symlink("/lib", "usr/lib", "t").unwrap();
    t.add_symlink("/abs", "/usr/share", "t").unwrap();
    assert_eq!(t.resolve("/lib/../etc", true).unwrap(), "/usr/etc");
    assert_eq!(t.resolve("/abs/./x/../y", true).unwrap(), "/usr/share/y");
    assert_eq!(t.resolve("/../../bin", true).unwrap(), "/bin");
    assert_eq!(t.resolve("/lib", false).unwrap(), "/lib");
}
