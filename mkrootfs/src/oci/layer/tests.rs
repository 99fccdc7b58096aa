use super::*;

/// A tar member for tests: raw name (may be hostile), type, mode, owner,
/// contents or link target.
pub(crate) struct M<'a> {
    pub name: &'a str,
    pub ty: tar::EntryType,
    pub mode: u32,
    pub owner: (u64, u64),
    pub data: &'a [u8],
    pub link: &'a str,
    pub pax: Vec<(&'a str, &'a [u8])>,
}

pub(crate) fn file<'a>(name: &'a str, data: &'a [u8]) -> M<'a> {
    M {
        name,
        ty: tar::EntryType::Regular,
        mode: 0o644,
        owner: (0, 0),
        data,
        link: "",
        pax: Vec::new(),
    }
}

pub(crate) fn dir(name: &str) -> M<'_> {
    M {
        ty: tar::EntryType::Directory,
        mode: 0o755,
        ..file(name, b"")
    }
}

pub(crate) fn link<'a>(name: &'a str, ty: tar::EntryType, target: &'a str) -> M<'a> {
    M {
        ty,
        mode: 0o777,
        link: target,
        ..file(name, b"")
    }
}

/// A tar archive of `members`, names written raw into the header so that
/// absolute and `..` names can be made.
pub(crate) fn tar_of(members: &[M]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        if !m.pax.is_empty() {
            b.append_pax_extensions(m.pax.iter().copied()).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().unwrap().name[..m.name.len()].copy_from_slice(m.name.as_bytes());
        h.set_entry_type(m.ty);
        h.set_mode(m.mode);
        h.set_uid(m.owner.0);
        h.set_gid(m.owner.1);
        h.set_size(m.data.len() as u64);
        if !m.link.is_empty() {
            h.set_link_name(m.link).unwrap();
        }
        h.set_cksum();
        b.append(&h, m.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn apply_all(layers: &[Vec<u8>]) -> (tempfile::TempDir, Rootfs) {
    let scratch = tempfile::tempdir().unwrap();
    let mut root = Rootfs::new(scratch.path());
    for (i, l) in layers.iter().enumerate() {
        root.apply(&l[..], i).unwrap();
    }
    (scratch, root)
}

fn apply_err(layers: &[Vec<u8>]) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let mut root = Rootfs::new(scratch.path());
    for (i, l) in layers.iter().enumerate() {
        if let Err(e) = root.apply(&l[..], i) {
            return e.to_string();
        }
    }
    panic!("no error");
}

fn contents(root: &Rootfs, path: &str) -> Vec<u8> {
    root.file_data(path).unwrap().read().unwrap()
}

#[test]
fn whiteouts_and_opaque_dirs_hide_only_lower_layers() {
    let base = tar_of(&[
        dir("etc/"),
        file("etc/a", b"a1"),
        file("etc/b", b"b1"),
        dir("opq/"),
        file("opq/lower", b"x"),
        dir("gone/"),
        file("gone/deep", b"y"),
    ]);
    let upper = tar_of(&[
        file("etc/.wh.a", b""),
        // Same layer: a whiteout does not hide what its own layer adds.
        file("etc/c", b"c2"),
        file("etc/.wh.c", b""),
        dir("opq/"),
        file("opq/upper", b"u"),
        file("opq/.wh..wh..opq", b""),
        file(".wh.gone", b""),
        file(".wh.never-there", b""),
    ]);
    let (_s, root) = apply_all(&[base, upper]);
    assert_eq!(
        root.listing(),
        [
            "/ dir 0755 0:0",
            "/etc directory 0755 0:0",
            "/etc/b file 0644 0:0 file#1",
            "/etc/c file 0644 0:0 file#4",
            "/opq directory 0755 0:0",
            "/opq/upper file 0644 0:0 file#5",
        ]
    );
    assert_eq!(contents(&root, "etc/c"), b"c2");
}

#[test]
fn hard_links_to_lower_layers_share_the_file_and_survive_its_whiteout() {
    let base = tar_of(&[dir("bin/"), file("bin/busybox", b"BB")]);
    let upper = tar_of(&[
        link("bin/sh", tar::EntryType::Link, "bin/busybox"),
        link("bin/ls", tar::EntryType::Symlink, "busybox"),
    ]);
    let top = tar_of(&[file("bin/.wh.busybox", b"")]);
    let (_s, root) = apply_all(&[base.clone(), upper.clone()]);
    assert_eq!(
        root.listing(),
        [
            "/ dir 0755 0:0",
            "/bin directory 0755 0:0",
            "/bin/busybox file 0644 0:0 file#0",
            "/bin/ls symlink 0777 0:0 -> busybox",
            "/bin/sh file 0644 0:0 file#0",
        ]
    );
    let (_s, root) = apply_all(&[base, upper, top]);
    assert_eq!(root.listing()[2], "/bin/ls symlink 0777 0:0 -> busybox");
    assert_eq!(contents(&root, "bin/sh"), b"BB");
    assert!(root.file_data("bin/busybox").is_none());
}

#[test]
fn parents_resolve_through_symlinks_but_never_above_the_root() {
    let base = tar_of(&[
        link("up", tar::EntryType::Symlink, "../../.."),
        link("abs", tar::EntryType::Symlink, "/etc"),
        dir("etc/"),
    ]);
    let upper = tar_of(&[file("up/passwd", b"p"), file("abs/shadow", b"s")]);
    let (_s, root) = apply_all(&[base, upper]);
    assert_eq!(
        root.listing(),
        [
            "/ dir 0755 0:0",
            "/abs symlink 0777 0:0 -> /etc",
            "/etc directory 0755 0:0",
            "/etc/shadow file 0644 0:0 file#1",
            "/passwd file 0644 0:0 file#0",
            "/up symlink 0777 0:0 -> ../../..",
        ]
    );
}

#[test]
fn escaping_and_absolute_members_are_refused() {
    assert_eq!(
        apply_err(&[tar_of(&[file("a/../../etc/passwd", b"x")])]),
        "member \"a/../../etc/passwd\": `..` would leave the root"
    );
    assert_eq!(
        apply_err(&[tar_of(&[file("/etc/passwd", b"x")])]),
        "member \"/etc/passwd\": absolute names are refused"
    );
    assert_eq!(
        apply_err(&[tar_of(&[link("x", tar::EntryType::Link, "../etc/passwd")])]),
        "hard link \"x\": target \"../etc/passwd\" is outside the root"
    );
    assert_eq!(
        apply_err(&[tar_of(&[file("f", b"x"), file("f/g", b"y")])]),
        "member \"f/g\": parent /f is a file, not a directory"
    );
}

#[test]
fn replacing_a_directory_by_a_file_drops_what_was_below() {
    let base = tar_of(&[dir("d/"), file("d/x", b"x")]);
    let upper = tar_of(&[file("d", b"now a file")]);
    let (_s, root) = apply_all(&[base, upper]);
    assert_eq!(
        root.listing(),
        ["/ dir 0755 0:0", "/d file 0644 0:0 file#1"]
    );
}

#[test]
fn owners_modes_nodes_and_xattrs_are_kept_or_reported() {
    let mut ping = file("bin/ping", b"P");
    ping.mode = 0o4755;
    ping.owner = (1000, 1001);
    ping.pax = vec![("SCHILY.xattr.security.capability", b"\x01\x00")];
    let mut big = file("big-owner", b"");
    big.pax = vec![("uid", b"3000000"), ("gid", b"3000001")];
    let mut null = file("dev/null", b"");
    null.ty = tar::EntryType::Char;
    null.mode = 0o666;
    let (_s, root) = apply_all(&[tar_of(&[ping, big, null])]);
    assert_eq!(
        root.listing(),
        [
            "/ dir 0755 0:0",
            "/big-owner file 0644 3000000:3000001 file#1",
            "/bin directory 0755 0:0",
            "/bin/ping file 4755 1000:1001 file#0",
            "/dev directory 0755 0:0",
            "/dev/null char device 0666 0:0 0:0",
        ]
    );
    assert_eq!(
        root.xattrs,
        [("/bin/ping".to_string(), "security.capability".to_string())]
    );
}

#[test]
fn garbage_is_not_a_tar() {
    let e = apply_err(&[b"this is not a tar archive at all, not even close".repeat(20)]);
    assert!(
        e.starts_with(
            "not a tar archive, or a damaged one (at byte 512 of the uncompressed layer)"
        ),
        "{e}"
    );
}

#[test]
fn added_to_the_tree_under_the_container_root() {
    let l = tar_of(&[
        dir("bin/"),
        file("bin/busybox", b"BB"),
        link("bin/sh", tar::EntryType::Link, "bin/busybox"),
        link("lib", tar::EntryType::Symlink, "/usr/lib"),
        file("usr/lib/x", b"X"),
    ]);
    let (_s, root) = apply_all(&[l]);
    let mut tree = Tree::new("/");
    root.add_to_tree(&mut tree, "/ctr", "image").unwrap();
    assert_eq!(
        tree.get("/ctr/bin/sh"),
        Some(&Node::HardLink("/ctr/bin/busybox".into()))
    );
    assert_eq!(
        tree.get("/ctr/lib"),
        Some(&Node::Symlink("/usr/lib".into()))
    );
    assert!(matches!(tree.get("/ctr/usr/lib/x"), Some(Node::File(_))));
    // A symlink already in the image must not redirect the container root.
    let mut tree = Tree::new("/");
    tree.add_symlink("/ctr", "/etc", "test").unwrap();
    let e = root.add_to_tree(&mut tree, "/ctr", "image").unwrap_err();
    assert_eq!(
        e.to_string(),
        "container root path /ctr would land at /etc through a symlink already in the image"
    );
}

#[test]
fn truncated_and_flipped_layers_never_panic() {
    let mut ping = file("bin/ping", b"P");
    ping.pax = vec![("SCHILY.xattr.security.capability", b"\x01\x00")];
    let layer = tar_of(&[
        dir("bin/"),
        file("bin/busybox", b"BB"),
        link("bin/sh", tar::EntryType::Link, "bin/busybox"),
        link("up", tar::EntryType::Symlink, "../.."),
        file("up/x", b"x"),
        file("bin/.wh.sh", b""),
        file(".wh..wh..opq", b""),
        ping,
    ]);
    let scratch = tempfile::tempdir().unwrap();
    for cut in (0..layer.len()).step_by(17) {
        let mut root = Rootfs::new(scratch.path());
        let _ = root.apply(&layer[..cut], 0);
        let mut flipped = layer.clone();
        flipped[cut] ^= 0x5a;
        let mut root = Rootfs::new(scratch.path());
        let _ = root.apply(&flipped[..], 0);
        let _ = root.add_to_tree(&mut Tree::new("/"), "/c", "t");
    }
}

/// A capability set is binary (here CAP_SETUID's bit 7 gives 0x80): its
/// bytes are kept, and reach the tree for the disk image formats.
#[test]
fn binary_xattr_values_are_kept_for_the_tree() {
    let cap: &[u8] =
        b"\x01\x00\x00\x02\x80\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let mut ping = file("bin/ping", b"P");
    ping.pax = vec![("SCHILY.xattr.security.capability", cap)];
    let (_s, root) = apply_all(&[tar_of(&[ping])]);
    assert_eq!(
        root.xattr_values.get("bin/ping"),
        Some(&vec![("security.capability".to_string(), cap.to_vec())])
    );
    let mut tree = Tree::new("/");
    root.add_to_tree(&mut tree, "/c", "t").unwrap();
    let got: Vec<_> = tree.xattrs("/c/bin/ping").collect();
    assert_eq!(got, [("security.capability", cap)]);
}
