//! OCI image layouts against umoci: a layout made here with `umoci` (base
//! and second layer gzip through `umoci raw add-layer`, a third zstd layer
//! written by hand with the manifest and config patched to match), unpacked
//! by `umoci raw unpack` and by our builder; the two roots must agree on
//! every path, type, mode, owner, link target, hard link and byte. Then
//! every bad input, each with its exact error.

use mkrootfs::oci::{self, OciError};
use mkrootfs::tree::Tree;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const REF: &str = "t";

fn umoci(args: &[&str]) {
    let out = Command::new("umoci")
        .args(args)
        .output()
        .expect("umoci is needed (Debian package umoci; .ci/run installs it)");
    assert!(
        out.status.success(),
        "umoci {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tar member: raw name, type, mode, owner, contents or link target.
struct M<'a> {
    name: &'a str,
    ty: tar::EntryType,
    mode: u32,
    owner: (u64, u64),
    data: Vec<u8>,
    link: &'a str,
}

fn f<'a>(name: &'a str, data: &[u8]) -> M<'a> {
    M {
        name,
        ty: tar::EntryType::Regular,
        mode: 0o644,
        owner: (0, 0),
        data: data.to_vec(),
        link: "",
    }
}

fn d(name: &str) -> M<'_> {
    M {
        ty: tar::EntryType::Directory,
        mode: 0o755,
        ..f(name, b"")
    }
}

fn l<'a>(name: &'a str, ty: tar::EntryType, target: &'a str) -> M<'a> {
    M {
        ty,
        mode: 0o777,
        link: target,
        ..f(name, b"")
    }
}

fn own(mut m: M<'_>, mode: u32, uid: u64, gid: u64) -> M<'_> {
    m.mode = mode;
    m.owner = (uid, gid);
    m
}

fn tar_of(members: &[M]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().unwrap().name[..m.name.len()].copy_from_slice(m.name.as_bytes());
        h.set_entry_type(m.ty);
        h.set_mode(m.mode);
        h.set_uid(m.owner.0);
        h.set_gid(m.owner.1);
        h.set_mtime(1_700_000_000);
        h.set_size(m.data.len() as u64);
        if !m.link.is_empty() {
            h.set_link_name(m.link).unwrap();
        }
        h.set_cksum();
        b.append(&h, &m.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn sha(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    layout.join("blobs").join(alg).join(hex)
}

/// Stores `data` as a blob; returns its digest and size.
fn put_blob(layout: &Path, data: &[u8]) -> (String, u64) {
    let digest = sha(data);
    fs::write(blob_path(layout, &digest), data).unwrap();
    (digest, data.len() as u64)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The manifest descriptor of `REF` in index.json, and its manifest and
/// config documents.
fn image_docs(layout: &Path) -> (Value, Value, Value) {
    let index = read_json(&layout.join("index.json"));
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == REF)
        .unwrap()
        .clone();
    let manifest = read_json(&blob_path(layout, desc["digest"].as_str().unwrap()));
    let config = read_json(&blob_path(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    (desc, manifest, config)
}

/// Rewrites the manifest and config of `REF` with `edit`, storing the new
/// blobs with correct digests and pointing index.json at them.
fn rewrite(layout: &Path, edit: impl FnOnce(&mut Value, &mut Value)) {
    let (_, mut manifest, mut config) = image_docs(layout);
    edit(&mut manifest, &mut config);
    let (cd, cs) = put_blob(layout, &serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = json!(cd);
    manifest["config"]["size"] = json!(cs);
    let (md, ms) = put_blob(layout, &serde_json::to_vec(&manifest).unwrap());
    let mut index = read_json(&layout.join("index.json"));
    for m in index["manifests"].as_array_mut().unwrap() {
        if m["annotations"]["org.opencontainers.image.ref.name"] == REF {
            m["digest"] = json!(md);
            m["size"] = json!(ms);
        }
    }
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// Appends an uncompressed `tar` as a layer of media type `media`,
/// compressed by `compress`.
fn add_layer(
    layout: &Path,
    tar: &[u8],
    media: &str,
    compress: impl Fn(&[u8]) -> Vec<u8>,
) -> String {
    let (digest, size) = put_blob(layout, &compress(tar));
    let diff_id = sha(tar);
    rewrite(layout, |m, c| {
        m["layers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"mediaType": media, "digest": digest, "size": size}));
        c["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(json!(diff_id));
    });
    digest
}

fn zstd_of(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

fn gzip_of(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The test image: busybox base, a gzip layer with a whiteout, an opaque
/// directory, a hard link to a base file and a symlink, and a zstd layer
/// (gzip when `zstd` is false: umoci 0.4 cannot read zstd layers, so it
/// unpacks that twin of the same tars).
fn make_layout(dir: &Path, zstd: bool) -> PathBuf {
    let layout = dir.join(if zstd { "layout" } else { "layout-gzip" });
    let lp = layout.to_str().unwrap();
    let image = format!("{lp}:{REF}");
    umoci(&["init", "--layout", lp]);
    umoci(&["new", "--image", &image]);
    let busybox = fs::read("/bin/busybox").expect("busybox-static is needed");
    let base = tar_of(&[
        d("./"),
        d("bin/"),
        own(f("bin/busybox", &busybox), 0o755, 0, 0),
        l("bin/sh", tar::EntryType::Symlink, "busybox"),
        d("etc/"),
        f(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        ),
        f("etc/group", b"root:x:0:\nuser:x:1000:\n"),
        f("etc/motd", b"base\n"),
        d("opt/"),
        f("opt/old", b"old\n"),
        d("opt/sub/"),
        f("opt/sub/deep", b"deep\n"),
        d("home/"),
        own(d("home/user/"), 0o700, 1000, 1000),
        own(f("home/user/.profile", b"export A=1\n"), 0o600, 1000, 1000),
        M {
            ty: tar::EntryType::Fifo,
            ..f("run-fifo", b"")
        },
    ]);
    let second = tar_of(&[
        d("etc/"),
        f("etc/.wh.motd", b""),
        own(d("opt/"), 0o750, 0, 0),
        f("opt/.wh..wh..opq", b""),
        f("opt/new", b"new\n"),
        d("bin/"),
        l("bin/hard", tar::EntryType::Link, "bin/busybox"),
        own(f("bin/suid", b"#!/bin/sh\n"), 0o4755, 0, 0),
        d("usr/"),
        d("usr/bin/"),
        l("usr/bin/env", tar::EntryType::Symlink, "../../bin/busybox"),
        l("abs", tar::EntryType::Symlink, "/etc/passwd"),
    ]);
    for (i, t) in [base, second].iter().enumerate() {
        let p = dir.join(format!("layer{i}-{zstd}.tar"));
        fs::write(&p, t).unwrap();
        umoci(&["raw", "add-layer", "--image", &image, p.to_str().unwrap()]);
    }
    let third = tar_of(&[
        d("srv/"),
        own(f("srv/data", b"zstd layer\n"), 0o640, 1000, 1000),
        f("opt/.wh.new", b""),
        d("home/user/"),
        l("home/user/busybox", tar::EntryType::Link, "bin/hard"),
    ]);
    if zstd {
        add_layer(
            &layout,
            &third,
            "application/vnd.oci.image.layer.v1.tar+zstd",
            zstd_of,
        );
    } else {
        add_layer(
            &layout,
            &third,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            gzip_of,
        );
    }
    rewrite(&layout, |_, c| {
        c["config"] = json!({
            "Entrypoint": ["/bin/busybox"],
            "Cmd": ["sh", "-c", "exit 7"],
            "Env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
            "WorkingDir": "/srv",
            "User": "user",
            "StopSignal": "SIGQUIT",
            "ExposedPorts": {"80/tcp": {}},
        });
    });
    layout
}

/// `path type perm uid:gid extra`, one line per path, for a host tree.
fn host_listing(root: &Path) -> Vec<String> {
    let mut first_of_inode: BTreeMap<u64, String> = BTreeMap::new();
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::from("."))];
    let mut all = Vec::new();
    while let Some((p, rel)) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                let child = if rel == "." {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                stack.push((e.path(), child));
            }
        }
        all.push((rel, p, md));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (rel, p, md) in &all {
        if md.is_file() && md.nlink() > 1 {
            first_of_inode
                .entry(md.ino())
                .or_insert_with(|| rel.clone());
        }
        let ft = md.file_type();
        let (ty, extra) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                format!("-> {}", fs::read_link(p).unwrap().display()),
            )
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            let data = fs::read(p).unwrap();
            let link = match first_of_inode.get(&md.ino()) {
                Some(first) if md.nlink() > 1 => format!(" = {first}"),
                _ => String::new(),
            };
            ("file", format!("{} {}{link}", data.len(), sha(&data)))
        };
        let perm = if ft.is_symlink() {
            0o777
        } else {
            md.mode() & 0o7777
        };
        out.push(
            format!("{rel} {ty} {perm:04o} {}:{} {extra}", md.uid(), md.gid())
                .trim_end()
                .to_string(),
        );
    }
    out
}

/// The same listing for the entries our builder writes under `/ctr`.
fn our_listing(tree: &Tree) -> Vec<String> {
    let entries = tree.to_entries(0).unwrap();
    let mut first_of_ino: BTreeMap<u32, String> = BTreeMap::new();
    let mut data_of_ino: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    for e in &entries {
        if e.mode & 0o170000 == 0o100000 && !e.data.is_empty() {
            data_of_ino.insert(e.ino, e.data.clone());
        }
    }
    let mut out = Vec::new();
    for e in &entries {
        let Some(rel) = e
            .name
            .strip_prefix("ctr")
            .map(|r| r.trim_start_matches('/'))
        else {
            continue;
        };
        if !(e.name == "ctr" || e.name.starts_with("ctr/")) {
            continue;
        }
        let rel = if rel.is_empty() {
            ".".to_string()
        } else {
            rel.to_string()
        };
        let (ty, extra) = match e.mode & 0o170000 {
            0o040000 => ("dir", String::new()),
            0o120000 => (
                "symlink",
                format!("-> {}", String::from_utf8_lossy(&e.data)),
            ),
            0o010000 => ("fifo", String::new()),
            _ => {
                let data = data_of_ino.get(&e.ino).cloned().unwrap_or_default();
                let link = if e.nlink > 1 {
                    format!(
                        " = {}",
                        first_of_ino.entry(e.ino).or_insert_with(|| rel.clone())
                    )
                } else {
                    String::new()
                };
                ("file", format!("{} {}{link}", data.len(), sha(&data)))
            }
        };
        out.push(
            format!(
                "{rel} {ty} {:04o} {}:{} {extra}",
                e.mode & 0o7777,
                e.uid,
                e.gid
            )
            .trim_end()
            .to_string(),
        );
    }
    out
}

fn load(layout: &Path) -> Result<(tempfile::TempDir, oci::Image), OciError> {
    let scratch = tempfile::tempdir().unwrap();
    let img = oci::load_image(layout, Some(REF), scratch.path())?;
    Ok((scratch, img))
}

fn load_err(layout: &Path) -> String {
    match load(layout) {
        Ok(_) => panic!("{}: loaded", layout.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn container_root_is_what_umoci_unpacks() {
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path(), true);
    let twin = make_layout(dir.path(), false);
    let rootfs = dir.path().join("umoci-rootfs");
    umoci(&[
        "raw",
        "unpack",
        "--image",
        &format!("{}:{REF}", twin.display()),
        rootfs.to_str().unwrap(),
    ]);
    let theirs = host_listing(&rootfs);
    let (_s, img) = load(&twin).unwrap();
    let mut tree = Tree::new("/");
    img.root
        .add_to_tree(&mut tree, "/ctr", "test image")
        .unwrap();
    assert_eq!(our_listing(&tree), theirs, "gzip twin");
    let (_scratch, img) = load(&layout).unwrap();
    let mut tree = Tree::new("/");
    img.root
        .add_to_tree(&mut tree, "/ctr", "test image")
        .unwrap();
    let ours = our_listing(&tree);
    assert_eq!(ours, theirs, "with the zstd layer");
    // What the layers did, spelled out (so that a umoci bug cannot hide ours).
    let has = |line: &str| ours.iter().any(|l| l.starts_with(line));
    assert!(!has("etc/motd"), "whiteout");
    assert!(
        !has("opt/old") && !has("opt/sub") && !has("opt/new"),
        "opaque dir, then whiteout"
    );
    assert!(has("opt dir 0750"));
    assert!(ours
        .iter()
        .any(|l| l.starts_with("bin/hard file 0755 0:0") && l.ends_with("= bin/busybox")));
    assert!(ours
        .iter()
        .any(|l| l.starts_with("home/user/busybox file") && l.ends_with("= bin/busybox")));
    assert!(has("usr/bin/env symlink 0777 0:0 -> ../../bin/busybox"));
    assert!(has("abs symlink 0777 0:0 -> /etc/passwd"));
    assert!(has("srv/data file 0640 1000:1000"));
    assert!(has("bin/suid file 4755 0:0"));
    assert!(has("run-fifo fifo 0644"));

    let d = &img.defaults;
    assert_eq!(d.argv, ["/bin/busybox", "sh", "-c", "exit 7"]);
    assert_eq!(d.env, ["PATH=/usr/bin:/bin", "GREETING=hello"]);
    assert_eq!(d.cwd.as_deref(), Some("/srv"));
    assert_eq!(d.user.as_deref(), Some("user"));
    assert_eq!(d.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(img.notes.len(), 1);
    assert!(
        img.notes[0].ends_with(
            "ExposedPorts (80/tcp) ignored: the guest's network is configured by the profile"
        ),
        "{:?}",
        img.notes
    );
}

/// A fresh test layout and the digest of its last (zstd) layer.
fn fresh() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path(), true);
    let (_, manifest, _) = image_docs(&layout);
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (dir, layout, last)
}

#[test]
fn bad_layouts_name_the_file_or_blob() {
    let (_d, layout, last) = fresh();
    let blob = blob_path(&layout, &last);
    let good = fs::read(&blob).unwrap();
    let named = |e: String| e.replace(&layout.display().to_string(), "L");

    // A blob missing, truncated, corrupt (same size).
    fs::remove_file(&blob).unwrap();
    assert_eq!(
        named(load_err(&layout)),
        format!(
            "blob {last} (L/blobs/sha256/{}): missing from the layout",
            &last[7..]
        )
    );
    fs::write(&blob, &good[..good.len() - 3]).unwrap();
    assert_eq!(
        named(load_err(&layout)),
        format!(
            "blob {last} (L/blobs/sha256/{}): size is {} bytes, the descriptor says {}",
            &last[7..],
            good.len() - 3,
            good.len()
        )
    );
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x40;
    fs::write(&blob, &bad).unwrap();
    assert_eq!(
        named(load_err(&layout)),
        format!(
            "blob {last} (L/blobs/sha256/{}): content does not match its digest (it hashes to {})",
            &last[7..],
            sha(&bad)
        )
    );
    fs::write(&blob, &good).unwrap();
    load(&layout).unwrap();

    // A ref that is not there; no index at all.
    let e = oci::load_image(&layout, Some("nope"), _d.path()).unwrap_err();
    assert_eq!(
        named(e.to_string()),
        "L/index.json: no manifest with ref \"nope\" (refs: t)"
    );
    fs::rename(layout.join("index.json"), layout.join("index.old")).unwrap();
    assert_eq!(
        named(load_err(&layout)),
        "L/index.json: missing: an OCI image layout needs its index"
    );
    fs::rename(layout.join("index.old"), layout.join("index.json")).unwrap();
    fs::write(
        layout.join("index.json"),
        b"{\"schemaVersion\": 2,\n \"manifests\": [}",
    )
    .unwrap();
    assert_eq!(
        named(load_err(&layout)),
        "L/index.json:2:16: invalid JSON: expected value"
    );
}

#[test]
fn bad_layers_name_the_layer() {
    let (_d, layout, _) = fresh();
    let garbage = b"this is not a tar archive, this is just text. ".repeat(20);
    let digest = add_layer(
        &layout,
        &garbage,
        "application/vnd.oci.image.layer.v1.tar",
        |b| b.to_vec(),
    );
    let named = |e: String| e.replace(&layout.display().to_string(), "L");
    assert_eq!(
        named(load_err(&layout)),
        format!(
            "layer {digest} (L/blobs/sha256/{}): not a tar archive, or a damaged one (at byte 512 of the uncompressed layer): numeric field was not a number: t a tar",
            &digest[7..]
        )
    );

    let (_d, layout, _) = fresh();
    let evil = tar_of(&[f("usr/../../etc/shadow", b"x")]);
    let digest = add_layer(
        &layout,
        &evil,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        gzip_of,
    );
    assert_eq!(
        load_err(&layout),
        format!(
            "layer {digest} ({}): member \"usr/../../etc/shadow\": `..` would leave the root",
            blob_path(&layout, &digest).display()
        )
    );

    let (_d, layout, _) = fresh();
    let abs = tar_of(&[f("/etc/shadow", b"x")]);
    let digest = add_layer(
        &layout,
        &abs,
        "application/vnd.oci.image.layer.v1.tar",
        |b| b.to_vec(),
    );
    assert_eq!(
        load_err(&layout),
        format!(
            "layer {digest} ({}): member \"/etc/shadow\": absolute names are refused",
            blob_path(&layout, &digest).display()
        )
    );

    let (_d, layout, _) = fresh();
    let t = tar_of(&[f("x", b"x")]);
    let digest = add_layer(
        &layout,
        &t,
        "application/vnd.oci.image.layer.v1.tar+lz4",
        |b| b.to_vec(),
    );
    assert_eq!(
        load_err(&layout),
        format!(
            "layer {digest} ({}): media type application/vnd.oci.image.layer.v1.tar+lz4 is not a layer we can read (tar, tar+gzip, tar+zstd)",
            blob_path(&layout, &digest).display()
        )
    );

    // The right blob, the wrong diff_id.
    let (_d, layout, last) = fresh();
    let wrong = sha(b"something else");
    let mut config_path = PathBuf::new();
    rewrite(&layout, |m, c| {
        c["rootfs"]["diff_ids"][2] = json!(wrong);
        let _ = m;
    });
    let (_, m, _) = image_docs(&layout);
    config_path.push(blob_path(&layout, m["config"]["digest"].as_str().unwrap()));
    let e = load_err(&layout);
    let want_prefix = format!(
        "layer {last} ({}): uncompressed content hashes to sha256:",
        blob_path(&layout, &last).display()
    );
    assert!(e.starts_with(&want_prefix), "{e}");
    assert!(
        e.ends_with(&format!(
            ", but rootfs.diff_ids[2] of {} is {wrong}",
            config_path.display()
        )),
        "{e}"
    );
}

#[test]
fn other_platforms_are_refused_naming_what_the_layout_offers() {
    // The config says arm64.
    let (_d, layout, _) = fresh();
    rewrite(&layout, |_, c| c["architecture"] = json!("arm64"));
    let (_, m, _) = image_docs(&layout);
    let cd = m["config"]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        load_err(&layout),
        format!(
            "blob {cd} ({}): the image is for linux/arm64, not linux/amd64",
            blob_path(&layout, &cd).display()
        )
    );
    // index.json offers only arm64 and s390x manifests for the ref.
    let (_d, layout, _) = fresh();
    let mut index = read_json(&layout.join("index.json"));
    let first = index["manifests"][0].clone();
    let mut arm = first.clone();
    arm["platform"] = json!({"architecture": "arm64", "os": "linux"});
    let mut s390 = first;
    s390["platform"] = json!({"architecture": "s390x", "os": "linux"});
    index["manifests"] = json!([arm, s390]);
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    assert_eq!(
        load_err(&layout),
        format!(
            "{}: no linux/amd64 manifest for ref \"t\" (the layout offers linux/arm64, linux/s390x)",
            layout.join("index.json").display()
        )
    );
}

fn assemble(profile_text: &str, dir: &Path) -> Result<mkrootfs::build::Assembled, String> {
    let p = dir.join("p.toml");
    fs::write(&p, profile_text).unwrap();
    let profile = mkrootfs::profile::load_path(&p).map_err(|e| e.to_string())?;
    let opts = mkrootfs::build::BuildOptions {
        // Any static ELF passes for the init here: only the tree is looked at.
        init_binary: Some("/bin/busybox".into()),
        ..Default::default()
    };
    mkrootfs::plan::Plan::new(&profile, &opts)
        .map_err(mkrootfs::build::BuildError::from)
        .and_then(|plan| mkrootfs::build::assemble(&plan))
        .map_err(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            s
        })
}

#[test]
fn an_image_becomes_a_container_plan_under_the_profiles_keys() {
    let (d, _layout, _) = fresh();
    let a = assemble(
        "[image]\ncompression = \"none\"\n[[init.services]]\nname = \"app\"\ncontainer = { image = { layout = \"layout\", ref = \"t\" } }\n",
        d.path(),
    )
    .unwrap();
    let svc = &a.init.as_ref().unwrap().services[0];
    let plan = svc.container_plan.as_ref().unwrap();
    assert_eq!(plan.root, "/containers/app");
    assert_eq!(plan.argv, ["/bin/busybox", "sh", "-c", "exit 7"]);
    assert!(
        plan.env.contains(&"GREETING=hello".to_string()),
        "{:?}",
        plan.env
    );
    assert!(
        plan.env.contains(&"PATH=/usr/bin:/bin".to_string()),
        "{:?}",
        plan.env
    );
    assert_eq!(plan.cwd, "/srv");
    assert_eq!((plan.uid, plan.gid), (1000, 1000));
    assert_eq!(plan.stop_signal, 3);
    // Owners shifted by the default map 0 100000 65536.
    let entries = a.tree.to_entries(0).unwrap();
    let owner = |name: &str| {
        let e = entries.iter().find(|e| e.name == name).unwrap();
        (e.uid, e.gid)
    };
    assert_eq!(owner("containers/app/srv/data"), (101000, 101000));
    assert_eq!(owner("containers/app/bin/busybox"), (100000, 100000));
    assert!(a
        .notes
        .iter()
        .any(|n| n.contains("ExposedPorts (80/tcp) ignored")));

    // Profile keys win: argv, user, cwd, env by name, hostname.
    let a = assemble(
        "[image]\ncompression = \"none\"\n[[init.services]]\nname = \"app\"\nargv = [\"sh\", \"-c\", \"exit 9\"]\nuser = \"root\"\ncwd = \"/\"\nenv = { GREETING = \"hi\" }\ncontainer = { image = { layout = \"layout\", ref = \"t\" }, hostname = \"box\", root = \"/srv/app\" }\n",
        d.path(),
    )
    .unwrap();
    let plan = a.init.as_ref().unwrap().services[0]
        .container_plan
        .clone()
        .unwrap();
    assert_eq!(plan.root, "/srv/app");
    assert_eq!(plan.argv, ["sh", "-c", "exit 9"]);
    assert_eq!((plan.uid, plan.gid, plan.cwd.as_str()), (0, 0, "/"));
    assert!(
        plan.env.contains(&"GREETING=hi".to_string()),
        "{:?}",
        plan.env
    );
    assert_eq!(plan.hostname.as_deref(), Some("box"));
    assert_eq!(plan.stop_signal, 3);
}

/// A runtime bundle: `config.json` from `spec` and a root with busybox,
/// `/etc/passwd` and `/etc/group`.
fn bundle(dir: &Path, spec: &str) -> PathBuf {
    let b = dir.join("bundle");
    let root = b.join("rootfs");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n",
    )
    .unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
    fs::write(b.join("config.json"), spec).unwrap();
    b
}

const SPEC: &str = r#"{
  "ociVersion": "1.2.0",
  "process": {
    "terminal": false,
    "user": {"uid": 1000, "gid": 1000},
    "args": ["/bin/busybox", "sh", "-c", "id"],
    "env": ["PATH=/bin", "MODE=bundle"],
    "cwd": "/etc",
    "capabilities": {
      "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "bundled",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m"]}
  ],
  "annotations": {"org.example": "x"},
  "linux": {
    "resources": {"memory": {"limit": 67108864}, "pids": {"limit": 64}},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}],
    "uidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}],
    "maskedPaths": ["/proc/kcore", "/etc/hidden"],
    "readonlyPaths": ["/proc/sys", "/srv/ro"]
  }
}"#;

const BUNDLE_PROFILE: &str = "[image]\ncompression = \"none\"\n[[init.services]]\nname = \"b\"\ncontainer = { bundle = \"bundle\" }\n";

#[test]
fn a_bundle_becomes_a_container_plan() {
    let d = tempfile::tempdir().unwrap();
    bundle(d.path(), SPEC);
    let a = assemble(BUNDLE_PROFILE, d.path()).unwrap();
    let plan = a.init.as_ref().unwrap().services[0]
        .container_plan
        .clone()
        .unwrap();
    assert_eq!(plan.root, "/containers/b");
    assert!(plan.readonly_root);
    assert_eq!(plan.argv, ["/bin/busybox", "sh", "-c", "id"]);
    assert!(plan.env.contains(&"MODE=bundle".to_string()));
    assert_eq!(
        (plan.uid, plan.gid, plan.cwd.as_str()),
        (1000, 1000, "/etc")
    );
    assert_eq!(plan.hostname.as_deref(), Some("bundled"));
    assert_eq!(plan.cgroup.memory_max, Some(64 << 20));
    assert_eq!(plan.cgroup.pids_max, Some(64));
    // CAP_KILL (5) and CAP_NET_BIND_SERVICE (10).
    let caps = (1 << 5) | (1 << 10);
    assert_eq!(
        (plan.capabilities.bounding, plan.capabilities.effective),
        (caps, caps)
    );
    assert_eq!(plan.uid_map, [[0, 200000, 65536]]);
    assert!(plan.masked_paths.contains(&"/etc/hidden".to_string()));
    assert!(plan.readonly_paths.contains(&"/srv/ro".to_string()));
    assert_eq!(plan.rlimits, [[7, 1024, 1024]]);
    assert!(plan.no_new_privs);
    // Time and cgroup namespaces are not listed: off. CLONE_NEWCGROUP, CLONE_NEWTIME.
    assert_eq!(plan.clone_flags & 0x0200_0000, 0);
    assert_eq!(plan.clone_flags & 0x80, 0);
    assert!(
        plan.mounts
            .iter()
            .any(|m| m.target == "/tmp" && m.fstype == "tmpfs"),
        "{:?}",
        plan.mounts
    );
    let note = format!(
        "{}/bundle/config.json:23:3: annotations ignored",
        d.path().display()
    );
    assert!(a.notes.contains(&note), "{:?}", a.notes);
    // Owners of the bundle's files (root) shifted by its map.
    let e = a.tree.to_entries(0).unwrap();
    let bb = e
        .iter()
        .find(|e| e.name == "containers/b/bin/busybox")
        .unwrap();
    assert_eq!((bb.uid, bb.gid), (200000, 200000));
}

/// The error for SPEC with `from` replaced by `to`.
fn bundle_err(from: &str, to: &str) -> String {
    assert!(SPEC.contains(from), "{from}");
    let d = tempfile::tempdir().unwrap();
    bundle(d.path(), &SPEC.replacen(from, to, 1));
    let e = assemble(BUNDLE_PROFILE, d.path()).unwrap_err();
    e.replace(&d.path().display().to_string(), "D")
}

#[test]
fn bad_bundles_fail_at_the_json_line_and_column() {
    assert_eq!(
        bundle_err("\"hostname\": \"bundled\",", "\"hostname\": \"bundled\""),
        "D/bundle/config.json:19:3: invalid JSON: expected `,` or `}`"
    );
    assert_eq!(
        bundle_err("\"cwd\": \"/etc\"", "\"cwd\": 7"),
        "D/bundle/config.json:8:12: does not match the schema: invalid type: integer `7`, expected path string"
    );
    assert_eq!(
        bundle_err(
            "\"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]",
            "\"CAP_KILL\", \"CAP_FLY\"]"
        ),
        "D/bundle/config.json:10:41: does not match the schema: unknown capability CAP_FLY"
    );
    assert_eq!(
        bundle_err("{\"type\": \"network\"}", "{\"type\": \"network\", \"path\": \"/proc/1/ns/net\"}"),
        "D/bundle/config.json:26:57: namespace network: a path (joining the VM's namespace) is refused"
    );
    assert_eq!(
        bundle_err("\"linux\": {", "\"linux\": {\"devices\": [{\"path\": \"/dev/sda\", \"type\": \"b\", \"major\": 8, \"minor\": 0}],"),
        "D/bundle/config.json:24:13: linux.devices is refused: the container gets only the default devices (null, zero, full, random, urandom, tty)"
    );
    assert_eq!(
        bundle_err(
            "\"hostname\": \"bundled\",",
            "\"hostname\": \"bundled\", \"hooks\": {\"prestart\": [{\"path\": \"/bin/true\"}]},"
        ),
        "D/bundle/config.json:18:26: hooks are refused: they run programs outside the container"
    );
    assert_eq!(
        bundle_err("\"linux\": {", "\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"mount\"], \"action\": \"SCMP_ACT_NOTIFY\"}]},"),
        "D/bundle/config.json:24:94: seccomp action SCMP_ACT_NOTIFY is refused: nothing in the guest would answer it"
    );
    assert_eq!(
        bundle_err("\"type\": \"tmpfs\", \"source\": \"tmpfs\"", "\"type\": \"nfs\", \"source\": \"server:/x\""),
        "D/bundle/config.json:21:5: mount of /tmp: type \"nfs\" is not supported (bind, tmpfs, and the default proc, sysfs, devpts, mqueue, cgroup mounts)"
    );
}

/// SPEC with sysctls and additional gids.
fn sysctl_spec(sysctl: &str, gids: &str) -> String {
    SPEC.replacen(
        "\"user\": {\"uid\": 1000, \"gid\": 1000}",
        &format!("\"user\": {{\"uid\": 1000, \"gid\": 1000, \"additionalGids\": {gids}}}"),
        1,
    )
    .replacen(
        "\"linux\": {",
        &format!("\"linux\": {{\"sysctl\": {sysctl},"),
        1,
    )
}

fn bundle_plan(spec: &str, profile: &str) -> Result<mkrootfs_config::ContainerPlan, String> {
    let d = tempfile::tempdir().unwrap();
    bundle(d.path(), spec);
    let a =
        assemble(profile, d.path()).map_err(|e| e.replace(&d.path().display().to_string(), "D"))?;
    Ok(a.init.unwrap().services[0].container_plan.clone().unwrap())
}

#[test]
fn bundle_sysctls_and_additional_gids_reach_the_plan() {
    let spec = sysctl_spec(
        r#"{"net.ipv4.ip_forward": "1", "kernel.shmmni": "8192"}"#,
        "[7, 3, 1000, 3]",
    );
    let plan = bundle_plan(&spec, BUNDLE_PROFILE).unwrap();
    // Sorted by name; the primary group is not repeated.
    assert_eq!(
        plan.sysctls,
        [
            ["kernel/shmmni".to_string(), "8192".to_string()],
            ["net/ipv4/ip_forward".to_string(), "1".to_string()]
        ]
    );
    assert_eq!((plan.gid, plan.additional_gids), (1000, vec![3, 7]));

    // Added to the groups /etc/group lists the user in.
    let d = tempfile::tempdir().unwrap();
    let b = bundle(d.path(), &spec);
    fs::write(
        b.join("rootfs/etc/group"),
        "root:x:0:\nuser:x:1000:\nwheel:x:10:root,user\nstaff:x:7:user\n",
    )
    .unwrap();
    let a = assemble(BUNDLE_PROFILE, d.path()).unwrap();
    let plan = a.init.unwrap().services[0].container_plan.clone().unwrap();
    assert_eq!(plan.additional_gids, [3, 7, 10]);

    // The profile's sysctl keys win by name; its additional_gids replace the bundle's.
    let profile = "[image]\ncompression = \"none\"\n[[init.services]]\nname = \"b\"\ncontainer = { bundle = \"bundle\", sysctl = { \"kernel.shmmni\" = \"4096\", \"fs.mqueue.msg_max\" = \"20\" }, additional_gids = [9] }\n";
    let plan = bundle_plan(&spec, profile).unwrap();
    assert_eq!(
        plan.sysctls,
        [
            ["fs/mqueue/msg_max".to_string(), "20".to_string()],
            ["kernel/shmmni".to_string(), "4096".to_string()],
            ["net/ipv4/ip_forward".to_string(), "1".to_string()]
        ]
    );
    assert_eq!(plan.additional_gids, [9]);
}

#[test]
fn bad_sysctls_and_unmapped_additional_gids_are_refused() {
    assert_eq!(
        bundle_plan(&sysctl_spec(r#"{"vm.swappiness": "10"}"#, "[]"), BUNDLE_PROFILE).unwrap_err(),
        "D/bundle/config.json:24:24: linux.sysctl: sysctl \"vm.swappiness\" is refused: it is not in a namespace of the container, so it would change the whole VM"
    );
    assert_eq!(
        bundle_plan(&sysctl_spec(r#"{"kernel.hostname": "x"}"#, "[]"), BUNDLE_PROFILE).unwrap_err(),
        "D/bundle/config.json:24:24: linux.sysctl: sysctl \"kernel.hostname\" is refused: set the host name with the hostname key"
    );
    let no_net = sysctl_spec(r#"{"net.ipv4.ip_forward": "1"}"#, "[]").replacen(
        "{\"type\": \"network\"}, ",
        "",
        1,
    );
    assert_eq!(
        bundle_plan(&no_net, BUNDLE_PROFILE).unwrap_err(),
        "D/bundle/config.json:24:24: linux.sysctl: sysctl \"net.ipv4.ip_forward\" needs the container's own network namespace: without it, it would change the VM's"
    );
    // The profile takes the network namespace away: the plan refuses the
    // bundle's net.* sysctl at the profile's container table.
    let host = "[image]\ncompression = \"none\"\n[[init.services]]\nname = \"b\"\ncontainer = { bundle = \"bundle\", network = \"host\" }\n";
    assert_eq!(
        bundle_plan(&sysctl_spec(r#"{"net.ipv4.ip_forward": "1"}"#, "[]"), host).unwrap_err(),
        "D/p.toml:5:1: init.services[0] (b).container: sysctl \"net.ipv4.ip_forward\" needs the container's own network namespace: without it, it would change the VM's"
    );
    let own = "[image]\ncompression = \"none\"\n[[init.services]]\nname = \"b\"\ncontainer = { bundle = \"bundle\", sysctl = { \"kernel.panic\" = \"1\" } }\n";
    assert_eq!(
        bundle_plan(&sysctl_spec("{}", "[]"), own).unwrap_err(),
        "D/p.toml:5:62: init.services[0] (b).container: sysctl \"kernel.panic\" is refused: it is not in a namespace of the container, so it would change the whole VM"
    );
    // Supplementary groups must be mapped, as the primary one.
    assert_eq!(
        bundle_plan(&sysctl_spec("{}", "[70000]"), BUNDLE_PROFILE).unwrap_err(),
        "D/p.toml:5:1: init.services[0] (b).container: the service's gid 70000 is not in gid_map"
    );
}

#[test]
fn a_bundle_seccomp_policy_is_compiled_with_mixed_actions() {
    let policy = r#""linux": {
    "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
      {"names": ["uname", "no_such_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
      {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}]}
    ]},"#;
    let d = tempfile::tempdir().unwrap();
    bundle(d.path(), &SPEC.replacen("\"linux\": {", policy, 1));
    let a = assemble(BUNDLE_PROFILE, d.path()).unwrap();
    let plan = a.init.as_ref().unwrap().services[0]
        .container_plan
        .clone()
        .unwrap();
    let path = plan.seccomp.clone().unwrap();
    assert_eq!(path, "/etc/mkrootfs/seccomp/b.bpf");
    let bpf = a.tree.file_data(&path).unwrap().read().unwrap();
    assert!(
        bpf.len() > 8 && bpf.len().is_multiple_of(8),
        "{} bytes",
        bpf.len()
    );
    let skipped = format!(
        "{}/bundle/config.json:26:7: seccomp rule for \"no_such_call\" skipped: not an x86_64 system call",
        d.path().display()
    );
    assert!(a.notes.contains(&skipped), "{:?}", a.notes);

    // Rules of different actions, as Docker-generated profiles have: one
    // chained filter per action, so the program returns each of them.
    let mixed = policy.replacen(
        "\"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 1, \"args\"",
        "\"action\": \"SCMP_ACT_KILL_PROCESS\", \"args\"",
        1,
    );
    let d = tempfile::tempdir().unwrap();
    bundle(d.path(), &SPEC.replacen("\"linux\": {", &mixed, 1));
    let a = assemble(BUNDLE_PROFILE, d.path()).unwrap();
    let bpf = a.tree.file_data(&path).unwrap().read().unwrap();
    let returns: std::collections::BTreeSet<u32> = bpf
        .chunks(8)
        .filter(|i| u16::from_le_bytes([i[0], i[1]]) == 0x06)
        .map(|i| u32::from_le_bytes([i[4], i[5], i[6], i[7]]))
        .collect();
    // ALLOW, ERRNO(1) for uname, KILL_PROCESS for personality (and the
    // architecture check's).
    assert_eq!(
        returns.into_iter().collect::<Vec<_>>(),
        [0x0005_0001, 0x7fff_0000, 0x8000_0000]
    );
}

#[test]
fn an_image_build_is_byte_identical_across_builds() {
    let (d, _layout, _) = fresh();
    let p = d.path().join("p.toml");
    fs::write(
        &p,
        "[image]\ncompression = \"gzip\"\nlevel = 1\n[[init.services]]\nname = \"app\"\ncontainer = { image = { layout = \"layout\", ref = \"t\" } }\n",
    )
    .unwrap();
    let profile = mkrootfs::profile::load_path(&p).unwrap();
    let mut images = Vec::new();
    for n in 0..2 {
        let out = d.path().join(format!("img{n}.cpio.gz"));
        let opts = mkrootfs::build::BuildOptions {
            output: Some(out.clone()),
            init_binary: Some("/bin/busybox".into()),
            mtime: Some(0),
            ..Default::default()
        };
        mkrootfs::build::build(&profile, &opts).unwrap();
        images.push(fs::read(&out).unwrap());
    }
    assert!(images[0] == images[1], "two builds differ");
    // The archive lists the container root like any part of the image.
    let segs =
        mkrootfs::cpio::read_archive(&images[0], &mkrootfs::cpio::Limits::default()).unwrap();
    let names: Vec<&str> = segs[0].entries.iter().map(|e| e.name.as_str()).collect();
    assert!(
        names.contains(&"containers/app/home/user/busybox"),
        "{names:?}"
    );
}

#[test]
fn the_example_profile_parses_and_names_its_layout() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/oci-busybox.toml");
    let profile = mkrootfs::profile::load_path(&p).unwrap();
    let svc = &profile.init.as_ref().unwrap().services[0];
    let image = svc.container.as_ref().unwrap().image.as_ref().unwrap();
    assert_eq!(image.layout, "busybox-oci");
    assert_eq!(image.reference.as_deref(), Some("latest"));
}
