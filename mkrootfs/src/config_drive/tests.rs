use super::*;
use mkrootfs_config::settings::{Secret, Seed, CONFIG_DRIVE_LABEL};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn settings() -> Settings {
    let (s, problems) = parse_document(
        br#"{"hostname": "vm-1", "env": {"LOG": "debug"},
             "services": {"web": {"env": {"PORT": "8080"}}},
             "network": ["10.0.2.21::10.0.2.2:255.255.255.0::eth0:off"],
             "secrets": {"db/password": {"value": "TOPSECRET", "service": "web"}},
             "seed": "000102030405060708090a0b0c0d0e0f"}"#,
    );
    assert_eq!(problems, vec![]);
    s
}

/// debugfs and dumpe2fs (e2fsprogs), or the test is skipped (fails under CI=true).
fn tools() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    Some((
        mkrootfs_tests::require_tool("debugfs")?,
        mkrootfs_tests::require_tool("dumpe2fs")?,
    ))
}

fn run(tool: &Path, args: &[&str]) -> String {
    let o = Command::new(tool).args(args).output().unwrap();
    assert!(o.status.success(), "{tool:?} {args:?}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn config_drive_same_settings_give_the_same_bytes() {
    if tools().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.img"),
        dir.path().join("b.img"),
        dir.path().join("c.img"),
    );
    let wa = write(&settings(), CONFIG_DRIVE_LABEL, &a).unwrap();
    let wb = write(&settings(), CONFIG_DRIVE_LABEL, &b).unwrap();
    assert_eq!(wa, wb);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // Another value, another image (and UUID).
    let mut other = settings();
    other.hostname = Some("vm-2".into());
    let wc = write(&other, CONFIG_DRIVE_LABEL, &c).unwrap();
    assert_ne!(wa.uuid, wc.uuid);
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    // Small: the least mke2fs makes for a small document.
    assert_eq!(wa.image_bytes, 64 * 1024);
    assert_eq!(std::fs::metadata(&a).unwrap().len(), wa.image_bytes);
    // Nothing left next to the output.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.img", "b.img", "c.img"]);
}

#[test]
fn config_drive_reads_back_with_e2fsprogs_as_the_exact_document() {
    let Some((debugfs, dumpe2fs)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cfg.img");
    // An earlier file of that name is replaced, its mode with it.
    std::fs::write(&out, b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = settings();
    let w = write(&s, "VM1-CFG", &out).unwrap();
    let img = out.to_str().unwrap();

    let doc = run(&debugfs, &["-R", "cat /mkrootfs.json", img]);
    assert_eq!(doc.as_bytes(), document(&s).unwrap());
    assert_eq!(w.document_bytes, doc.len() as u64);
    let (again, problems) = parse_document(doc.as_bytes());
    assert_eq!(problems, vec![]);
    assert_eq!(again, s);
    assert_eq!(
        doc,
        "{\"env\":{\"LOG\":\"debug\"},\"hostname\":\"vm-1\",\
         \"network\":[{\"addresses\":[\"10.0.2.21/24\"],\"gateway\":\"10.0.2.2\",\"name\":\"eth0\"}],\
         \"secrets\":{\"db/password\":{\"service\":\"web\",\"value\":\"TOPSECRET\"}},\
         \"seed\":\"000102030405060708090a0b0c0d0e0f\",\"services\":{\"web\":{\"env\":{\"PORT\":\"8080\"}}}}\n"
    );

    let header = run(&dumpe2fs, &["-h", img]);
    let field = |name: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {header}"))
    };
    assert_eq!(field("Filesystem volume name:"), "VM1-CFG");
    assert_eq!(field("Filesystem UUID:"), w.uuid);
    assert!(
        !field("Filesystem features:").contains("has_journal"),
        "{header}"
    );
    assert_eq!(field("Block size:"), "1024");

    // The document is root's, 0400, and every time is 0.
    let stat = run(&debugfs, &["-R", "stat /mkrootfs.json", img]);
    assert!(
        stat.contains("Mode:  0400") && stat.contains("User:     0   Group:     0"),
        "{stat}"
    );
    assert!(stat.contains("mtime: 0x00000000"), "{stat}");
    let root = run(&debugfs, &["-R", "stat /", img]);
    assert!(
        root.contains("Mode:  0755") && root.contains("User:     0   Group:     0"),
        "{root}"
    );
    // The image file may hold secrets: its owner's only.
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    if let Some(e2fsck) = mkrootfs_tests::require_tool("e2fsck") {
        run(&e2fsck, &["-fn", img]);
    }
}

#[test]
fn config_drive_refuses_settings_the_init_would_not_take_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cfg.img");
    let mut s = settings();
    s.hostname = Some("bad_name".into());
    s.env.insert("A=B".into(), "x".into());
    s.secrets.insert(
        "../escape".into(),
        Secret {
            data: b"TOPSECRET".to_vec(),
            service: None,
        },
    );
    s.seed = Some(Seed(vec![1; 4]));
    let e = write(&s, CONFIG_DRIVE_LABEL, &out).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("TOPSECRET"), "{text}");
    let ConfigDriveError::Refused { problems, .. } = &e else {
        panic!("{e:?}")
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["env.A=B", "hostname", "secrets.../escape", "seed"]);
    assert!(
        text.starts_with(&format!(
            "config drive {}: env.A=B: \"A=B\" is not a variable name; hostname: ",
            out.display()
        )),
        "{text}"
    );
    assert!(!out.exists());
}

#[test]
fn config_drive_labels_are_1_to_16_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cfg.img");
    for bad in ["", "A-LABEL-OF-17-BYT"] {
        let e = write(&settings(), bad, &out).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "config drive {}: label {bad:?}: 1 to 16 bytes",
                out.display()
            )
        );
    }
    assert!(!out.exists());
}

#[test]
fn config_drive_sizes_grow_with_the_document_in_whole_4k() {
    assert_eq!(size_bytes(1), 64 << 10);
    assert_eq!(size_bytes(16 << 10), 64 << 10);
    assert_eq!(size_bytes(17 << 10), 68 << 10);
    let max = mkrootfs_config::settings::MAX_DOCUMENT as u64;
    assert_eq!(size_bytes(max), (1024 + 48) << 10);
}

#[test]
fn config_drive_holds_a_document_up_to_the_limit_and_refuses_a_larger_one() {
    let Some((debugfs, _)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cfg.img");
    let max = mkrootfs_config::settings::MAX_DOCUMENT;
    let mut s = Settings::default();
    let secret = |n: usize| Secret {
        data: vec![b'x'; n],
        service: None,
    };
    // {"secrets":{"k":{"value":"…"}}} and a newline: 31 bytes around the value.
    s.secrets.insert("k".into(), secret(max - 31));
    let w = write(&s, CONFIG_DRIVE_LABEL, &out).unwrap();
    assert_eq!(w.document_bytes, max as u64);
    let doc = run(
        &debugfs,
        &["-R", "cat /mkrootfs.json", out.to_str().unwrap()],
    );
    assert_eq!(doc.len(), max);
    s.secrets.insert("k".into(), secret(max - 30));
    let e = write(&s, CONFIG_DRIVE_LABEL, &out).unwrap_err();
    assert!(
        e.to_string()
            .ends_with(&format!(": {} bytes: larger than {max}", max + 1)),
        "{e}"
    );
}
