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

/// An uncompressed image with 20,000 files: its listing (about 1.5 MB of
/// text, 3 MB of JSON) is far larger than a pipe's buffer.
fn large_image(dir: &Path) -> std::path::PathBuf {
    use mkrootfs::cpio::{write_archive, Entry, S_IFREG};
    let entries: Vec<Entry> = (0..20_000)
        .map(|i| Entry {
            name: format!(
                "usr/share/doc/package-{:03}/file-with-a-long-name-{i:05}",
                i / 100
            ),
            mode: S_IFREG | 0o644,
            nlink: 1,
            ino: i + 1,
            data: b"x".to_vec(),
            ..Entry::default()
        })
        .collect();
    let mut bytes = Vec::new();
    write_archive(&mut bytes, &entries).unwrap();
    let path = dir.join("large.cpio");
    fs::write(&path, bytes).unwrap();
    path
}

/// Issue 7: `mkrootfs ls IMAGE | head -1` panicked ("failed printing to
/// stdout: Broken pipe", exit 134). Every command that writes results to
/// stdout stops quietly with status 0 when the reader goes away, whether
/// it is gone before the first write or leaves after one line.
#[test]
fn listing_to_a_closed_pipe_exits_zero_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let image = large_image(tmp.path());
    let image = image.to_str().unwrap();
    let commands: [&[&str]; 5] = [
        &["ls", image],
        &["ls", "--json", image],
        &["deps", "/bin/true"],
        &["deps", "--why", "/bin/true"],
        &["-p", "p.toml", "-o", "out.cpio"],
    ];
    fs::write(tmp.path().join("p.toml"), SCRIPT_PROFILE).unwrap();
    for args in commands {
        // The reader is gone before the command writes anything.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
            .args(args)
            .current_dir(tmp.path())
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    // `| head -1` on the large listings: one line read, then the pipe closes.
    for args in &commands[..2] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
            .args(*args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{args:?}");
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}

/// Issue 21: usage errors exited 1, not 2 as the README says (`build`
/// without a profile, `run` without an image, `run -p P IMAGE`). The
/// README's promise: 0 success, 1 failure, 2 usage error.
#[test]
fn usage_error_exits_2_without_a_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("p.toml"), SCRIPT_PROFILE).unwrap();
    let usage: [&[&str]; 11] = [
        &[],
        &["run", "image.cpio", "--cpus", "0"],
        &["run", "image.cpio", "--memory", "0"],
        &["build"],
        &["build", "-o", "out.cpio"],
        &["run"],
        &["run", "-p", "p.toml", "image.cpio"],
        &["ls"],
        &["build", "-p", "p.toml", "--no-such-option"],
        &["no-such-command"],
        &["vm-config", "image.cpio"],
    ];
    for args in usage {
        let o = mkrootfs(dir, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}");
    }
    // A failure that is not a usage error: 1.
    let missing = mkrootfs(dir, &["build", "-p", "missing.toml"]);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    let ok = mkrootfs(dir, &["build", "-p", "p.toml", "-o", "out.cpio"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}

/// Issue 21: options written before the subcommand were parsed as the
/// short form's and dropped (`mkrootfs -o X build -p P` wrote
/// out/p.cpio), and `run IMAGE -o X` ignored `-o`. Both are usage errors
/// now, and nothing is written.
#[test]
fn options_before_the_subcommand_are_a_usage_error_not_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("p.toml"), SCRIPT_PROFILE).unwrap();
    let cases: [&[&str]; 7] = [
        &["deps", "--kernel-modules", "/lib/modules", "/bin/true"],
        &["deps", "--module", "--why", "virtio_blk"],
        &["-o", "x.cpio", "build", "-p", "p.toml"],
        &["--init", "/bin/true", "build", "-p", "p.toml"],
        &["--kernel-modules", "/lib/modules", "build", "-p", "p.toml"],
        &["--profile", "p.toml", "build", "-p", "p.toml"],
        &["run", "image.cpio", "-o", "x.cpio"],
    ];
    for args in cases {
        let o = mkrootfs(dir, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!dir.join("x.cpio").exists(), "{args:?}");
        assert!(!dir.join("out").exists(), "{args:?}");
    }
    // The short form keeps its options.
    let o = mkrootfs(dir, &["-p", "p.toml", "-o", "x.cpio"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.join("x.cpio").is_file());
}

/// Issue 21: `mkrootfs run` booted a truncated image; the user saw the
/// init's FATAL with "Initramfs unpacking failed" buried in the log. `run`
/// reads the image as `ls` does first and fails with `ls`'s error, before
/// looking for a kernel or starting QEMU.
#[test]
fn run_refuses_a_truncated_image_with_the_error_ls_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let zstd = SCRIPT_PROFILE.replace("compression = \"none\"", "compression = \"zstd\"");
    fs::write(dir.join("p.toml"), zstd).unwrap();
    let o = mkrootfs(dir, &["build", "-p", "p.toml", "-o", "good.cpio.zst"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(dir.join("good.cpio.zst")).unwrap();
    fs::write(dir.join("cut.cpio.zst"), &bytes[..bytes.len() - 9]).unwrap();
    let ls = mkrootfs(dir, &["ls", "cut.cpio.zst"]);
    assert_eq!(ls.status.code(), Some(1));
    assert!(
        stderr(&ls).starts_with("mkrootfs: read image cut.cpio.zst: segment 1 at byte 0 (zstd"),
        "{}",
        stderr(&ls)
    );
    let run = Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
        .args(["run", "cut.cpio.zst", "--kernel", "no-such-kernel"])
        .current_dir(dir)
        .env("MKROOTFS_QEMU", "/nonexistent/qemu")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(stderr(&run), stderr(&ls));
}

/// Issue 21: `-o -` wrote a file named `-`; it writes the image to
/// standard output (the summary goes to stderr), byte for byte the image
/// `-o FILE` writes.
#[test]
fn output_dash_writes_the_image_to_stdout_not_a_file_named_dash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("p.toml"), SCRIPT_PROFILE).unwrap();
    let o = mkrootfs(dir, &["build", "-p", "p.toml", "-o", "-"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!dir.join("-").exists());
    assert!(
        stderr(&o).starts_with("mkrootfs: standard output: "),
        "{}",
        stderr(&o)
    );
    let file = mkrootfs(dir, &["build", "-p", "p.toml", "-o", "out.cpio"]);
    assert!(file.status.success(), "{}", stderr(&file));
    assert_eq!(o.stdout, fs::read(dir.join("out.cpio")).unwrap());
}

/// Issue 21: bare `binaries` names were looked up in the caller's `$PATH`,
/// so the same profile gave another image under another `$PATH` (a pyenv
/// shim instead of /usr/bin/python3). They are looked up in a fixed search
/// path inside the sysroot.
#[test]
fn bare_binary_names_ignore_the_callers_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir(dir.join("shims")).unwrap();
    fs::write(dir.join("shims/true"), "#!/bin/sh\necho shim\n").unwrap();
    let mut perm = fs::metadata(dir.join("shims/true")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(dir.join("shims/true"), perm).unwrap();
    let profile = format!("binaries = [\"true\"]\n{SCRIPT_PROFILE}");
    fs::write(dir.join("p.toml"), profile).unwrap();
    let build = |path: &str, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
            .args(["build", "-p", "p.toml", "-o", out])
            .current_dir(dir)
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let shimmed = format!("{}:/usr/bin:/bin", dir.join("shims").display());
    let a = build(&shimmed, "a.cpio");
    assert!(a.status.success(), "{}", stderr(&a));
    let b = build("/bin", "b.cpio");
    assert!(b.status.success(), "{}", stderr(&b));
    let a = fs::read(dir.join("a.cpio")).unwrap();
    assert_eq!(a, fs::read(dir.join("b.cpio")).unwrap());
    let segments = mkrootfs::cpio::read_archive(&a, &Default::default()).unwrap();
    let names: Vec<&str> = segments[0]
        .entries
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(names.contains(&"usr/bin/true"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("shims")), "{names:?}");
}

/// Issue 21: a `#!/usr/bin/env bash` script brought `env` but not `bash`.
/// The program env runs comes too; when it cannot be told, a warning.
#[test]
fn env_script_brings_the_program_env_runs() {
    if !mkrootfs_tests::require_file("/bin/busybox") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = dir.join("root");
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    // Static ELF files: their closure is empty.
    for name in ["env", "bash"] {
        fs::copy("/bin/busybox", root.join("usr/bin").join(name)).unwrap();
    }
    fs::write(root.join("usr/bin/tool"), "#!/usr/bin/env bash\necho hi\n").unwrap();
    fs::write(root.join("usr/bin/other"), "#!/usr/bin/env -i\n").unwrap();
    let profile = format!(
        "binaries = [\"tool\", \"other\"]\n{}sysroot = \"root\"\n{}",
        "[image]\n",
        SCRIPT_PROFILE.trim_start_matches("[image]\n")
    );
    fs::write(dir.join("p.toml"), profile).unwrap();
    let o = mkrootfs(dir, &["build", "-p", "p.toml", "-o", "out.cpio"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(dir.join("out.cpio")).unwrap();
    let segments = mkrootfs::cpio::read_archive(&bytes, &Default::default()).unwrap();
    let names: Vec<&str> = segments[0]
        .entries
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    for want in [
        "usr/bin/tool",
        "usr/bin/env",
        "usr/bin/bash",
        "usr/bin/other",
    ] {
        assert!(names.contains(&want), "{want}: {names:?}");
    }
    assert_eq!(
        stderr(&o),
        "mkrootfs: warning: p.toml:1:21: other starts with `#!/usr/bin/env -i`: the program \
         env runs is not known, so it is not in the image unless named in binaries\n"
    );
}

/// Issue 21 (conveniences): `deps` finds bare names and follows `#!`
/// scripts as `binaries` does.
#[test]
fn deps_finds_bare_names_and_follows_scripts_like_binaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bare = mkrootfs(dir, &["deps", "sh"]);
    assert!(bare.status.success(), "{}", stderr(&bare));
    let sh = mkrootfs::build::locate_binary(Path::new("/"), "sh", "test").unwrap();
    let full = mkrootfs(dir, &["deps", &sh]);
    assert_eq!(bare.stdout, full.stdout);
    fs::write(dir.join("script"), "#!/usr/bin/env sh\necho hi\n").unwrap();
    let script = mkrootfs(dir, &["deps", "./script"]);
    assert!(script.status.success(), "{}", stderr(&script));
    let env = mkrootfs::build::locate_binary(Path::new("/"), "/usr/bin/env", "test").unwrap();
    let text = String::from_utf8_lossy(&script.stdout);
    assert!(text.starts_with(&format!("{env}\n{sh}\n")), "{text}");
    assert!(text.contains("libc.so.6"), "{text}");
}

/// Issue 21 (conveniences): `deps --module` used the running kernel's
/// modules, not those of the kernel `mkrootfs run` boots.
#[test]
fn deps_module_defaults_to_the_kernel_run_boots() {
    let kernel =
        mkrootfs_qemu::debian_cloud_kernel().unwrap_or_else(|e| panic!("test kernel: {e}"));
    let tree = kernel.modules.expect("the test kernel has modules");
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
            .args(args)
            .current_dir(tmp.path())
            .env("MKROOTFS_KERNEL", &kernel.vmlinuz)
            .output()
            .unwrap()
    };
    let default = run(&["deps", "--module", "virtio_blk"]);
    assert!(default.status.success(), "{}", stderr(&default));
    let named = run(&[
        "deps",
        "--module",
        "--kernel-modules",
        tree.to_str().unwrap(),
        "virtio_blk",
    ]);
    assert_eq!(default.stdout, named.stdout);
    assert!(String::from_utf8_lossy(&default.stdout).contains("virtio_blk.ko"));
}

/// Issue 21 (conveniences): `extract IMAGE DIR PATH...` for single files.
#[test]
fn extract_takes_paths_for_single_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("p.toml"), SCRIPT_PROFILE).unwrap();
    let o = mkrootfs(dir, &["build", "-p", "p.toml", "-o", "out.cpio"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = mkrootfs(dir, &["extract", "out.cpio", "x", "/init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(dir.join("x/init")).unwrap(), b"#!/bin/sh\n");
    assert!(!dir.join("x/dev").exists());
    let o = mkrootfs(dir, &["extract", "out.cpio", "y", "/nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "mkrootfs: extract from out.cpio: not in the image: /nosuch\n"
    );
}

/// Issue 21 (conveniences): `[[trees]]` take `uid`/`gid` like `[[files]]`.
#[test]
fn trees_take_uid_and_gid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("t/sub")).unwrap();
    fs::write(dir.join("t/sub/f"), "x").unwrap();
    std::os::unix::fs::symlink("f", dir.join("t/sub/l")).unwrap();
    let profile =
        format!("{SCRIPT_PROFILE}[[trees]]\nsrc = \"t\"\ndest = \"/srv\"\nuid = 1000\ngid = 100\n");
    fs::write(dir.join("p.toml"), profile).unwrap();
    let o = mkrootfs(dir, &["build", "-p", "p.toml", "-o", "out.cpio"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(dir.join("out.cpio")).unwrap();
    let segments = mkrootfs::cpio::read_archive(&bytes, &Default::default()).unwrap();
    let owners: Vec<(&str, u32, u32)> = segments[0]
        .entries
        .iter()
        .filter(|e| e.name.starts_with("srv"))
        .map(|e| (e.name.as_str(), e.uid, e.gid))
        .collect();
    assert_eq!(
        owners,
        [
            ("srv", 1000, 100),
            ("srv/sub", 1000, 100),
            ("srv/sub/f", 1000, 100),
            ("srv/sub/l", 1000, 100)
        ]
    );
}

/// Issue 21: `run` never said it fell back to TCG, so a boot many times
/// slower than under KVM went unexplained. It says so once, on stderr,
/// unless MKROOTFS_ACCEL=tcg asked for it. (QEMU here is /bin/false: the
/// KVM probe fails with it, and nothing boots.)
#[test]
fn run_says_once_on_stderr_that_it_falls_back_to_tcg() {
    let kernel =
        mkrootfs_qemu::debian_cloud_kernel().unwrap_or_else(|e| panic!("test kernel: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("p.toml"), SCRIPT_PROFILE).unwrap();
    let o = mkrootfs(dir, &["build", "-p", "p.toml", "-o", "out.cpio"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = |accel: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mkrootfs"));
        cmd.args(["run", "out.cpio", "--timeout", "20", "--kernel"])
            .arg(&kernel.vmlinuz)
            .current_dir(dir)
            // Its own cache: the probe's verdict for /bin/false stays here.
            .env("MKROOTFS_CACHE", dir.join("cache"))
            .env("MKROOTFS_QEMU", "/bin/false")
            .env_remove("MKROOTFS_ACCEL");
        if let Some(a) = accel {
            cmd.env("MKROOTFS_ACCEL", a);
        }
        cmd.output().unwrap()
    };
    const LINE: &str = "mkrootfs: KVM is not usable here (no /dev/kvm, or its probe boot failed): \
                        emulating with TCG, much slower (MKROOTFS_ACCEL=tcg says this is wanted)\n";
    let auto = run(None);
    assert_ne!(auto.status.code(), Some(0));
    assert_eq!(stderr(&auto).matches(LINE).count(), 1, "{}", stderr(&auto));
    let asked = run(Some("tcg"));
    assert_eq!(
        stderr(&asked).matches(LINE).count(),
        0,
        "{}",
        stderr(&asked)
    );
}
