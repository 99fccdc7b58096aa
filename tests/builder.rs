//! The builder end to end: golden bytes, reproducibility, atomic output,
//! error messages for bad input, and boots of the example profiles in every
//! compression.

use mkrootfs::build::{self, BuildOptions};
use mkrootfs::cpio::{self, Limits};
use mkrootfs::profile;
use mkrootfs_tests::{assert_console, boot, build_image, chain, try_build, work_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn entries_of(image: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let bytes = std::fs::read(image).unwrap();
    let segs = cpio::read_archive(&bytes, &Limits::default()).unwrap();
    segs.into_iter()
        .flat_map(|s| s.entries)
        .map(|e| (e.name, e.mode, e.data))
        .collect()
}

const TINY: &str = r##"
[image]
init = "/init"
compression = "none"

[[files]]
dest = "/init"
mode = "0755"
content = "#!/bin/sh\necho tiny\n"

[[symlinks]]
path = "/bin/sh"
target = "busybox"

[[nodes]]
path = "/dev/ttyS0"
type = "char"
major = 4
minor = 64
"##;

/// The exact archive of a tiny profile: regenerate the fixture with
/// `MKROOTFS_BLESS=1` after a deliberate format change, and check the new
/// bytes with `cpio -itv < tests/fixtures/tiny.cpio`.
#[test]
fn golden_bytes_of_tiny_profile() {
    let dir = tempfile::tempdir().unwrap();
    // A sysroot with a merged /usr, independent of the host's layout.
    let sysroot = dir.path().join("sysroot");
    std::fs::create_dir_all(sysroot.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("usr/bin", sysroot.join("bin")).unwrap();
    let path = dir.path().join("tiny.toml");
    std::fs::write(
        &path,
        TINY.replace("[image]", "[image]\nsysroot = \"sysroot\""),
    )
    .unwrap();
    let p = profile::load_path(&path).unwrap();
    let out = dir.path().join("tiny.cpio");
    let opts = BuildOptions {
        output: Some(out.clone()),
        mtime: Some(1_700_000_000),
        ..Default::default()
    };
    build::build(&p, &opts).unwrap();
    let got = std::fs::read(&out).unwrap();
    let fixture = repo().join("tests/fixtures/tiny.cpio");
    if std::env::var_os("MKROOTFS_BLESS").is_some() {
        std::fs::write(&fixture, &got).unwrap();
    }
    let want = std::fs::read(&fixture).expect("tests/fixtures/tiny.cpio");
    assert_eq!(got, want, "archive bytes changed");
    // And GNU cpio reads it the way we meant it.
    let listing = Command::new("cpio")
        .args(["-itv", "--quiet", "-F"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.contains("crw-------   1 root     root       4,  64 Nov 14  2023 dev/ttyS0"),
        "{text}"
    );
    assert!(
        text.contains("lrwxrwxrwx   1 root     root            7 Nov 14  2023 bin -> usr/bin"),
        "{text}"
    );
    assert!(
        text.contains(
            "lrwxrwxrwx   1 root     root            7 Nov 14  2023 usr/bin/sh -> busybox"
        ),
        "{text}"
    );
    assert!(
        text.contains("-rwxr-xr-x   1 root     root           20 Nov 14  2023 init"),
        "{text}"
    );
}

fn build_twice(name: &str, toml: &str, tweak: impl Fn(&Path)) -> (Vec<u8>, Vec<u8>) {
    let mut images = Vec::new();
    for round in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        tweak(dir.path());
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml).unwrap();
        let p = profile::load_path(&path).unwrap();
        let out = dir.path().join("img");
        let opts = BuildOptions {
            output: Some(out.clone()),
            init_binary: Some(mkrootfs_tests::init_binary().to_path_buf()),
            ..Default::default()
        };
        if round == 1 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        build::build(&p, &opts).unwrap();
        images.push(std::fs::read(&out).unwrap());
    }
    let b = images.pop().unwrap();
    (images.pop().unwrap(), b)
}

/// Two builds of one profile, from different directories, at different
/// times, with a tree whose files were created in opposite orders, are
/// byte-identical, for every compression.
#[test]
fn builds_are_reproducible() {
    for comp in ["none", "gzip", "xz", "zstd"] {
        let toml = format!(
            "binaries = [\"bash\", \"ls\"]\n[image]\ncompression = \"{comp}\"\n[[trees]]\nsrc = \"data\"\ndest = \"/srv\"\n[init]\n[[init.services]]\nargv = [\"/bin/bash\"]\n"
        );
        let counter = std::cell::Cell::new(0);
        let (a, b) = build_twice("repro", &toml, |dir| {
            let data = dir.join("data");
            std::fs::create_dir_all(&data).unwrap();
            let mut names = vec!["a", "m", "z", "b"];
            if counter.get() == 1 {
                names.reverse();
            }
            counter.set(counter.get() + 1);
            for n in names {
                std::fs::write(data.join(n), n).unwrap();
            }
        });
        assert!(a == b, "{comp}: two builds differ");
    }
}

#[test]
fn failed_build_leaves_existing_image_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("img.cpio");
    std::fs::write(&out, b"previous image").unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "binaries = [\"no-such-program-xyz\"]\n[init]\n[[init.services]]\nargv=[\"/x\"]\n",
    )
    .unwrap();
    let p = profile::load_path(&path).unwrap();
    let opts = BuildOptions {
        output: Some(out.clone()),
        ..Default::default()
    };
    let err = build::build(&p, &opts).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "binary \"no-such-program-xyz\" (from {}:1:13) not found in PATH ",
            path.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous image");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "temporary files left behind: {left:?}");
}

fn build_err(name: &str, toml: &str) -> String {
    match try_build(name, toml) {
        Ok(r) => panic!("{name}: expected an error, built {}", r.path.display()),
        Err(e) => chain(&e),
    }
}

#[test]
fn unreadable_file_names_path_and_entry() {
    let e = build_err(
        "err-unreadable",
        "[image]\ninit=\"/init\"\n[[files]]\ndest=\"/init\"\nsrc=\"/nonexistent/file\"\n",
    );
    assert!(
        e.starts_with("read /nonexistent/file (for files entry /init at ")
            && e.ends_with("err-unreadable.toml:4:6): No such file or directory (os error 2)"),
        "{e}"
    );
}

#[test]
fn non_elf_library_is_a_one_line_error() {
    let e = build_err(
        "err-nonelf",
        "libraries = [\"/etc/passwd\"]\n[init]\n[[init.services]]\nargv=[\"/x\"]\n",
    );
    assert!(
        e.contains("/etc/passwd") && e.to_lowercase().contains("not an elf"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn profile_errors_name_file_line_column() {
    let e = build_err("err-key", "binaries = []\n[image]\ncompresion = \"xz\"\n");
    assert!(e.ends_with("err-key.toml:3:1: unknown field `compresion`, expected one of `compression`, `level`, `sysroot`, `init`, `binary_path`, `dlopen_notes`, `busybox_links`, `format`, `fs_compression`, `split`, `verity`, `label`"), "{e}");
}

#[test]
fn init_without_services_fails_the_build_not_the_boot() {
    let e = build_err("err-noinit", "binaries = [\"ls\"]\n");
    assert!(e.starts_with("profile ") && e.ends_with("uses the mkrootfs init but has no [init] table (add [[init.services]] or set image.init)"), "{e}");
}

#[test]
fn wrong_architecture_binary_is_named() {
    let dir = work_dir().join("m32");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("hello.c");
    std::fs::write(&src, "int main(void){return 0;}\n").unwrap();
    let exe = dir.join("hello32");
    let ok = Command::new("gcc")
        .args(["-m32", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mkrootfs_tests::require("gcc -m32 (gcc-multilib)", ok) {
        return;
    }
    let e = build_err(
        "err-arch",
        &format!(
            "binaries = [\"/usr/bin/bash\", \"{}\"]\n[init]\n[[init.services]]\nargv=[\"/x\"]\n",
            exe.display()
        ),
    );
    assert!(e.contains("hello32") && e.contains("ELF32"), "{e}");
}

#[test]
fn dynamic_profile_carries_the_loader_and_libc_with_their_symlinks() {
    let image = build_image(
        "dynamic-contents",
        &std::fs::read_to_string(repo().join("profiles/dynamic.toml")).unwrap(),
    );
    let entries = entries_of(&image);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    for want in [
        "init",
        "etc/mkrootfs/init.json",
        "dev/console",
        "usr/bin/bash",
        "usr/lib64/ld-linux-x86-64.so.2",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // merged /usr: /lib is a symlink, libc lives under usr/lib.
    let lib = entries.iter().find(|e| e.0 == "lib").unwrap();
    assert_eq!(
        (lib.1 & 0o170000, lib.2.as_slice()),
        (0o120000, &b"usr/lib"[..])
    );
    assert!(names.contains(&"usr/lib/x86_64-linux-gnu/libc.so.6"));
    // The interpreter keeps its host path (PT_INTERP /lib64/ld-linux-x86-64.so.2)
    // through the /lib64 -> usr/lib64 symlink and the link to the real file.
    let lib64 = entries.iter().find(|e| e.0 == "lib64").unwrap();
    assert_eq!(lib64.2.as_slice(), b"usr/lib64");
    let ld = entries
        .iter()
        .find(|e| e.0 == "usr/lib64/ld-linux-x86-64.so.2")
        .unwrap();
    assert_eq!(
        ld.2.as_slice(),
        b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    );
}

/// Every compression boots: the kernel unpacks it and the busybox /init runs.
#[test]
fn busybox_profile_boots_in_every_compression() {
    let base = repo().join("profiles/busybox.toml");
    for comp in ["none", "gzip", "xz", "zstd"] {
        let toml = format!(
            "extends = {:?}\n[image]\ncompression = \"{comp}\"\n",
            base.display().to_string()
        );
        let image = build_image(&format!("busybox-{comp}"), &toml);
        let out = boot(&image, "");
        assert_console(
            &out,
            &format!(
                "busybox rescue image: kernel {}",
                mkrootfs_tests::kernel().version
            ),
        );
        assert_eq!(out.exit_code(), 0, "{comp}: console:\n{}", out.console);
        assert!(
            !out.console.contains("Kernel panic"),
            "{comp}: {}",
            out.console
        );
    }
}

#[test]
fn dynamic_profile_boots_and_runs_bash() {
    let image = build_image(
        "dynamic",
        &std::fs::read_to_string(repo().join("profiles/dynamic.toml")).unwrap(),
    );
    let out = boot(&image, "");
    assert_console(&out, "bash 5.");
    assert_console(&out, &format!(" on {}", mkrootfs_tests::kernel().version));
    assert_console(&out, "uid=0(root) gid=0(root)");
    assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
}

/// The quick start: `mkrootfs run --profile hello` prints the greeting and
/// exits 0, and `run` exits with the service's own status otherwise.
#[test]
fn mkrootfs_run_exits_with_the_service_status() {
    let cli = mkrootfs_tests::mkrootfs_cli();
    let run = |profile: &Path, out: &str| {
        Command::new(cli)
            .current_dir(repo())
            .env("MKROOTFS_INIT", mkrootfs_tests::init_binary())
            .args(["run", "--timeout", "180", "--kernel"])
            .arg(&mkrootfs_tests::kernel().vmlinuz)
            .arg("--profile")
            .arg(profile)
            .arg("-o")
            .arg(work_dir().join(out))
            .output()
            .unwrap()
    };
    let hello = run(&repo().join("profiles/hello.toml"), "run-hello.cpio.zst");
    let text = String::from_utf8_lossy(&hello.stdout);
    assert!(
        text.contains("Hello from mkrootfs!"),
        "stdout:\n{text}\nstderr:\n{}",
        String::from_utf8_lossy(&hello.stderr)
    );
    assert_eq!(hello.status.code(), Some(0));

    let three = work_dir().join("exit3.toml");
    std::fs::write(&three, "extends = \"dynamic\"\n[init]\n[[init.services]]\nargv = [\"/bin/bash\", \"-c\", \"exit 3\"]\n").unwrap();
    let out = run(&three, "run-exit3.cpio.gz");
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The microVM example boots on QEMU's `microvm` machine: the preset's
/// drivers are coldplugged from virtio-mmio devices and `/` is a tmpfs.
#[test]
fn microvm_profile_boots_on_microvm_machine() {
    let toml = format!(
        "extends = {:?}\n[modules]\nkernel = {:?}\n",
        repo().join("profiles/microvm.toml").display().to_string(),
        mkrootfs_tests::kernel_modules().display().to_string()
    );
    let image = build_image("microvm-example", &toml);
    let out = mkrootfs_tests::boot_with(&image, "", &[], mkrootfs_qemu::Machine::Microvm);
    assert_console(&out, "tmpfs / tmpfs rw");
    assert_console(&out, "virtio drivers: ");
    assert_console(&out, "virtio_blk");
    assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
}

/// With `sysroot`, binaries and their libraries come from that tree (here
/// the unpacked dynamic image, which has no ld.so.cache), not from the host.
#[test]
fn sysroot_build_resolves_inside_the_sysroot() {
    let image = build_image(
        "sysroot-source",
        &std::fs::read_to_string(repo().join("profiles/dynamic.toml")).unwrap(),
    );
    let root = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&image).unwrap();
    let segs = cpio::read_archive(&bytes, &Limits::default()).unwrap();
    mkrootfs::extract::extract(&segs, root.path()).unwrap();
    // Mark the sysroot's libc so that the image provably took it from there.
    let libc = root.path().join("usr/lib/x86_64-linux-gnu/libc.so.6");
    let mut data = std::fs::read(&libc).unwrap();
    data.extend_from_slice(b"sysroot-marker");
    std::fs::write(&libc, &data).unwrap();
    let toml = format!(
        "binaries = [\"bash\"]\n[image]\ninit = \"/usr/bin/bash\"\ncompression = \"none\"\nsysroot = \"{}\"\n",
        root.path().display()
    );
    let built = build_image("sysroot-build", &toml);
    let entries = entries_of(&built);
    let libc = entries
        .iter()
        .find(|e| e.0 == "usr/lib/x86_64-linux-gnu/libc.so.6")
        .expect("libc in the image");
    assert!(libc.2.ends_with(b"sysroot-marker"));
    let init = entries.iter().find(|e| e.0 == "init").unwrap();
    assert_eq!(
        (init.1 & 0o170000, init.2.as_slice()),
        (0o120000, &b"/usr/bin/bash"[..])
    );
}
