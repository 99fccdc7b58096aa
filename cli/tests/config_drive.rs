//! `mkrootfs config-drive` as a user runs it: the image it writes, read
//! back with e2fsprogs, and the errors that name the key (issue 18).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mkrootfs(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// debugfs and blkid (e2fsprogs, util-linux), or the test is skipped.
fn tools() -> Option<(PathBuf, PathBuf)> {
    Some((
        mkrootfs_tests::require_tool("debugfs")?,
        mkrootfs_tests::require_tool("blkid")?,
    ))
}

fn document(debugfs: &Path, image: &Path) -> String {
    let o = Command::new(debugfs)
        .args(["-R", "cat /mkrootfs.json"])
        .arg(image)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    stdout(&o)
}

fn blkid(blkid: &Path, image: &Path, tag: &str) -> String {
    let o = Command::new(blkid)
        .args(["-p", "-o", "value", "-s", tag])
        .arg(image)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    stdout(&o).trim().to_string()
}

const ARGS: [&str; 12] = [
    "--set",
    "hostname=vm-1",
    "--set",
    "env.LOG=debug",
    "--set",
    "services.web.env.PORT=8080",
    "--set",
    "network=10.0.2.21::10.0.2.2:255.255.255.0::eth0:off",
    "--set",
    "network=eth1:dhcp",
    "--secret",
    "db/password=@pw,service=web",
];

#[test]
fn config_drive_writes_the_same_bytes_twice_and_e2fsprogs_reads_the_document_back() {
    let Some((debugfs, blkid_bin)) = tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("pw"), "TOPSECRET").unwrap();
    let mut images = Vec::new();
    for name in ["a.img", "b.img"] {
        let args: Vec<&str> = ["config-drive", "-o", name]
            .into_iter()
            .chain(ARGS)
            .collect();
        let o = mkrootfs(dir, &args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!(
                "{name}: config drive MKROOTFS-CFG, 65536 bytes, 5 settings \
                 (hostname, env.LOG, services.web.env.PORT, network, secrets.db/password)\n"
            )
        );
        assert!(!stdout(&o).contains("TOPSECRET") && !stderr(&o).contains("TOPSECRET"));
        images.push(fs::read(dir.join(name)).unwrap());
        let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    assert!(
        images[0] == images[1],
        "the same settings gave different images"
    );

    let a = dir.join("a.img");
    assert_eq!(
        document(&debugfs, &a),
        "{\"env\":{\"LOG\":\"debug\"},\"hostname\":\"vm-1\",\"network\":[\
         {\"addresses\":[\"10.0.2.21/24\"],\"gateway\":\"10.0.2.2\",\"name\":\"eth0\"},\
         {\"dhcp\":true,\"name\":\"eth1\"}],\
         \"secrets\":{\"db/password\":{\"service\":\"web\",\"value\":\"TOPSECRET\"}},\
         \"services\":{\"web\":{\"env\":{\"PORT\":\"8080\"}}}}\n"
    );
    assert_eq!(blkid(&blkid_bin, &a, "LABEL"), "MKROOTFS-CFG");
    assert_eq!(blkid(&blkid_bin, &a, "TYPE"), "ext4");

    // --label, and --from with --set over it.
    fs::write(
        dir.join("doc.json"),
        r#"{"hostname": "base", "env": {"A": "1", "LOG": "info"}}"#,
    )
    .unwrap();
    let o = mkrootfs(
        dir,
        &[
            "config-drive",
            "-o",
            "c.img",
            "--label",
            "VM1",
            "--from",
            "doc.json",
            "--set",
            "env.LOG=debug",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = dir.join("c.img");
    assert_eq!(blkid(&blkid_bin, &c, "LABEL"), "VM1");
    assert_eq!(
        document(&debugfs, &c),
        "{\"env\":{\"A\":\"1\",\"LOG\":\"debug\"},\"hostname\":\"base\"}\n"
    );
}

#[test]
fn config_drive_seed_from_host_is_new_bytes_each_time() {
    let Some((debugfs, _)) = tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut seeds = Vec::new();
    for name in ["a.img", "b.img"] {
        let o = mkrootfs(dir, &["config-drive", "-o", name, "--seed-from-host", "32"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let doc = document(&debugfs, &dir.join(name));
        let seed = doc
            .strip_prefix("{\"seed\":\"")
            .and_then(|s| s.strip_suffix("\"}\n"))
            .unwrap_or_else(|| panic!("{doc}"))
            .to_string();
        assert_eq!(seed.len(), 64, "{doc}");
        assert!(!stdout(&o).contains(&seed));
        seeds.push(seed);
    }
    assert_ne!(seeds[0], seeds[1]);
}

/// Bad keys and values are usage errors (status 2) naming the key, and
/// nothing is written; a secret's value is never shown.
#[test]
fn config_drive_usage_errors_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (args, message) in [
        (
            &["--set", "colour=red"][..],
            "mkrootfs: --set colour: unknown key (known: hostname, env.NAME, services.SERVICE.env.NAME, network)\n",
        ),
        (
            &["--set", "hostname=vm_1"],
            "mkrootfs: --set hostname: \"vm_1\" has '_': only letters, digits, '-' and '.'\n",
        ),
        (
            &["--set", "env.A=1", "--set", "services.web.port=80"],
            "mkrootfs: --set services.web.port: expected services.SERVICE.env.NAME\n",
        ),
        (
            &["--set", "secrets.db=TOPSECRET"],
            "mkrootfs: --set secrets.db: give secrets with --secret NAME=@FILE (a command line is visible to every process)\n",
        ),
        (
            &["--secret", "db=TOPSECRET"],
            "mkrootfs: --secret db: expected NAME=@FILE[,service=SVC]: the value is read from a file (a command line is visible to every process)\n",
        ),
        (
            &["--secret", "../db=@pw"],
            "mkrootfs: --secret ../db: \"../db\" must be a path below /run/secrets\n",
        ),
    ] {
        let full: Vec<&str> = ["config-drive", "-o", "x.img"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let o = mkrootfs(dir, &full);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), message, "{args:?}");
        assert_eq!(stdout(&o), "");
        assert!(!dir.join("x.img").exists());
    }
    let o = mkrootfs(
        dir,
        &[
            "config-drive",
            "-o",
            "x.img",
            "--set",
            "network=10.0.0.300::::::off",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("mkrootfs: --set network: [0]: ip= syntax: "),
        "{}",
        stderr(&o)
    );
    // clap's own: a label too long, a seed too small, no -o.
    for args in [
        &["-o", "x.img", "--label", "A-LABEL-OF-17-BYT"][..],
        &["-o", "x.img", "--seed-from-host", "8"],
        &["--set", "hostname=a"],
    ] {
        let full: Vec<&str> = std::iter::once("config-drive")
            .chain(args.iter().copied())
            .collect();
        let o = mkrootfs(dir, &full);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    // A bad document or an unreadable file is a failure (1) naming the file.
    fs::write(dir.join("doc.json"), r#"{"hostname": 7, "colour": 1}"#).unwrap();
    let o = mkrootfs(dir, &["config-drive", "-o", "x.img", "--from", "doc.json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "mkrootfs: doc.json: colour: unknown key (known: hostname, env, services, network, secrets, seed); \
         hostname: expected a string, found a number\n"
    );
    let o = mkrootfs(
        dir,
        &["config-drive", "-o", "x.img", "--secret", "k=@missing"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "mkrootfs: --secret k: read missing: No such file or directory (os error 2)\n"
    );
    assert!(!dir.join("x.img").exists());
}
