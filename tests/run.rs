//! `mkrootfs run` as a user sees it: real boots of the test kernel under
//! QEMU (TCG), asserting on what the command prints.

use std::process::{Command, Output};

use mkrootfs_tests::{init_binary, mkrootfs_cli, repo};

fn run(args: &[&str]) -> Output {
    let kernel = mkrootfs_qemu::debian_cloud_kernel()
        .unwrap_or_else(|e| panic!("test kernel: {e}"))
        .vmlinuz;
    Command::new(mkrootfs_cli())
        .current_dir(repo())
        .env("MKROOTFS_INIT", init_binary())
        .args(["run", "--timeout", "180", "--kernel"])
        .arg(kernel)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Lines every boot of the kernel prints at info level or below.
const ORDINARY_KERNEL_LINES: &[&str] = &["Linux version", "Command line:", "Freeing unused"];

/// Issue 7: `mkrootfs run --profile hello` showed about a hundred kernel
/// lines before the service's one. By default only the init's and the
/// service's lines (and kernel errors) are shown; `-v` shows everything.
#[test]
fn run_shows_the_service_not_the_kernel_boot_unless_verbose() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("hello.cpio.zst");
    let image = image.to_str().unwrap();
    let quiet = run(&["--profile", "profiles/hello.toml", "-o", image]);
    let (out, err) = text(&quiet);
    assert_eq!(
        quiet.status.code(),
        Some(0),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("Hello from mkrootfs!"), "{out}");
    assert!(out.contains("mkrootfs-init: RESULT status=0"), "{out}");
    for line in ORDINARY_KERNEL_LINES {
        assert!(!out.contains(line), "default output shows {line:?}:\n{out}");
    }
    assert!(!err.contains("console log"), "{err}");

    let verbose = run(&["-v", image]);
    let (out, err) = text(&verbose);
    assert_eq!(
        verbose.status.code(),
        Some(0),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("Hello from mkrootfs!"), "{out}");
    for line in ORDINARY_KERNEL_LINES {
        assert!(out.contains(line), "-v output lacks {line:?}:\n{out}");
    }
    // -v shows the QEMU command line: a virtio-rng device on the host's
    // /dev/urandom (issue 18).
    for arg in [
        "rng-random,filename=/dev/urandom,id=rng0",
        "virtio-rng-pci,rng=rng0",
    ] {
        assert!(err.contains(arg), "-v command line lacks {arg:?}:\n{err}");
    }
}

/// When the boot fails, the whole console log is printed, kernel messages
/// included, so nothing a diagnosis needs stays hidden.
#[test]
fn failed_boot_prints_the_whole_console_log() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("noroot.toml");
    std::fs::write(
        &profile,
        "binaries = [\"echo\"]\n[image]\ncompression = \"none\"\n\
         [init.root]\nmode = \"device\"\ndevice = \"/dev/vdz\"\ntimeout_ms = 300\n\
         [[init.services]]\nargv = [\"echo\", \"never runs\"]\n",
    )
    .unwrap();
    let image = tmp.path().join("noroot.cpio");
    let o = run(&[
        "--profile",
        profile.to_str().unwrap(),
        "-o",
        image.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("mkrootfs-init: FATAL"), "{out}");
    assert!(!out.contains("Linux version"), "{out}");
    let log = err
        .split_once("mkrootfs: the boot failed; the whole console log follows\n")
        .map(|(_, log)| log)
        .unwrap_or_else(|| panic!("no console log on stderr:\n{err}"));
    for line in ORDINARY_KERNEL_LINES {
        assert!(log.contains(line), "the log lacks {line:?}:\n{log}");
    }
    assert!(log.contains("mkrootfs-init: FATAL"), "{log}");
    assert!(log.contains("/dev/vdz"), "{log}");
    // Shown as the kernel's plain format prints it, without `<6>`.
    assert!(!log.lines().any(|l| l.starts_with("<6>[")), "{log}");
    assert!(log.ends_with("mkrootfs: end of the console log\n"), "{log}");
}
