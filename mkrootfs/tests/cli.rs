//! The `mkrootfs` command line, run as a user would, from a scratch
//! directory.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn mkrootfs(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A profile with no host binaries and its own `/init` script.
const SCRIPT_PROFILE: &str = "[image]\ninit = \"/init\"\ncompression = \"none\"\n\
[[files]]\ndest = \"/init\"\ncontent = \"#!/bin/sh\\n\"\nmode = \"0755\"\n";

#[test]
fn bare_profile_name_ignores_a_same_named_file_in_cwd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A binary that happens to share the profile's name.
    fs::write(dir.join("busybox"), b"\x7fELF\x02\x01\x01\0\xff\xfe").unwrap();
    fs::create_dir(dir.join("profiles")).unwrap();
    fs::write(dir.join("profiles/busybox.toml"), SCRIPT_PROFILE).unwrap();
    let o = mkrootfs(dir, &["-p", "busybox", "-o", "out.cpio"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.join("out.cpio").is_file());
}

#[test]
fn profile_path_with_slash_or_toml_is_taken_as_given() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("mine"), SCRIPT_PROFILE).unwrap();
    fs::write(dir.join("other.toml"), SCRIPT_PROFILE).unwrap();
    for name in ["./mine", "other.toml"] {
        let o = mkrootfs(dir, &["build", "-p", name, "-o", "out.cpio"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
    }
}

#[test]
fn deps_accepts_a_path_relative_to_the_current_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::copy("/bin/true", dir.join("prog")).unwrap();
    let rel = mkrootfs(dir, &["deps", "prog"]);
    assert!(rel.status.success(), "{}", stderr(&rel));
    let abs = mkrootfs(dir, &["deps", "/bin/true"]);
    assert_eq!(
        String::from_utf8_lossy(&rel.stdout),
        String::from_utf8_lossy(&abs.stdout)
    );
    assert!(String::from_utf8_lossy(&rel.stdout).contains("libc.so.6"));
}

#[test]
fn malformed_source_date_epoch_fails_the_build() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("p.toml"), SCRIPT_PROFILE).unwrap();
    let run = |epoch: &str| {
        Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
            .args(["build", "-p", "p.toml", "-o", "out.cpio"])
            .current_dir(dir)
            .env("SOURCE_DATE_EPOCH", epoch)
            .output()
            .unwrap()
    };
    let bad = run("yesterday");
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        stderr(&bad),
        "mkrootfs: SOURCE_DATE_EPOCH=\"yesterday\" is not a number of seconds between 0 and 4294967295 (the newc mtime field)\n"
    );
    assert!(!dir.join("out.cpio").exists());
    let good = run("1700000000");
    assert!(good.status.success(), "{}", stderr(&good));
    // Every header's mtime field (offset 46, 8 hex digits) is the epoch.
    let bytes = fs::read(dir.join("out.cpio")).unwrap();
    assert_eq!(&bytes[46..54], b"6553F100");
}

#[test]
fn init_that_is_not_a_static_elf_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let profile = "[init]\n[[init.services]]\nargv = [\"/bin/true\"]\n";
    fs::write(dir.join("p.toml"), profile).unwrap();
    fs::write(dir.join("script"), "#!/bin/sh\n").unwrap();
    let script = mkrootfs(
        dir,
        &["build", "-p", "p.toml", "--init", "script", "-o", "o"],
    );
    assert_eq!(
        stderr(&script),
        "mkrootfs: script is not an ELF executable: the mkrootfs init must be the static `init` binary (`make init`)\n"
    );
    let dynamic = mkrootfs(
        dir,
        &["build", "-p", "p.toml", "--init", "/bin/true", "-o", "o"],
    );
    assert_eq!(
        stderr(&dynamic),
        "mkrootfs: /bin/true has a PT_INTERP: the init must be a static executable\n"
    );
    assert!(!dir.join("o").exists());
}
