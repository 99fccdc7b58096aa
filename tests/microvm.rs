//! Boot tests of microVM guests without Firecracker or Cloud Hypervisor:
//! QEMU's `microvm` machine stands in, shaped like each monitor
//! (`Machine::FirecrackerLike`, `Machine::CloudHypervisorLike`), booting
//! the ELF vmlinux `mkrootfs kernel extract-vmlinux` writes from the Debian
//! cloud kernel, an initramfs with the microvm virtio modules, and an ext4
//! root disk whose `/check` (tests/fixtures/microvm/check.sh) is the main
//! service and exits 42. Also: the vmlinux under plain `-kernel`, and
//! `examples/embed.rs`.
//!
//! One guest at a time (two cores shared by everyone).

use mkrootfs::vmconfig::FirecrackerConfig;
use mkrootfs_cli::qemu::FirecrackerOnQemu;
use mkrootfs_qemu::{Machine, Outcome, VmConfig};
use mkrootfs_tests::{
    build_image, chain, init_binary, kernel, kernel_modules, mkrootfs_cli, work_dir, BUSYBOX_IMAGE,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const CHECK: &str = include_str!("fixtures/microvm/check.sh");
static BOOT: Mutex<()> = Mutex::new(());

fn one_guest() -> std::sync::MutexGuard<'static, ()> {
    BOOT.lock().unwrap_or_else(|e| e.into_inner())
}

/// `mkrootfs ARGS`, with the test init; panics if it cannot run.
fn cli(args: &[&str]) -> Output {
    Command::new(mkrootfs_cli())
        .args(args)
        .env("MKROOTFS_INIT", init_binary())
        .output()
        .unwrap_or_else(|e| panic!("run mkrootfs {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

/// The Debian cloud kernel's vmlinux, extracted once by the CLI.
fn vmlinux() -> &'static Path {
    static V: OnceLock<PathBuf> = OnceLock::new();
    V.get_or_init(|| {
        let out = work_dir().join("vmlinux-cloud");
        let vmlinuz = kernel().vmlinuz.to_str().unwrap().to_string();
        let o = cli(&[
            "kernel",
            "extract-vmlinux",
            &vmlinuz,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "extract-vmlinux: {}", text(&o.stderr));
        let line = text(&o.stdout);
        assert!(
            line.contains(": ELF X86_64, ")
                && line.contains(" bytes, from the lz4 payload at 0x")
                && line.contains(" (setup header), PVH entry note"),
            "{line}"
        );
        out
    })
}

/// The ext4 root disk: static busybox, /etc/disk-id, /check.
fn root_disk() -> &'static Path {
    static D: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &D.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for d in ["bin", "etc", "dev", "proc", "sys", "run", "tmp"] {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", src.join("bin/busybox"))
            .expect("busybox-static at /bin/busybox");
        std::fs::write(src.join("etc/disk-id"), "ext4\n").unwrap();
        std::fs::write(src.join("check"), CHECK).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(src.join("check"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let img = dir.path().join("root.ext4");
        let o = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(&src)
            .arg(&img)
            .arg("32M")
            .output()
            .expect("mkfs.ext4");
        assert!(o.status.success(), "mkfs.ext4: {}", text(&o.stderr));
        (dir, img)
    })
    .1
}

/// The initramfs: busybox, the microvm virtio modules, `/check` of the root
/// disk as the main service (the root comes from `root=` on the command line).
fn guest_image() -> &'static Path {
    static I: OnceLock<PathBuf> = OnceLock::new();
    I.get_or_init(|| {
        let profile = format!(
            "{BUSYBOX_IMAGE}[modules]\nkernel = \"{}\"\npreset = \"microvm\"\n\
             [init]\n[init.root]\nmode = \"device\"\ntimeout_ms = 20000\n[[init.services]]\nargv = [\"/check\"]\n\
             [init.shutdown]\ngrace_ms = 500\n",
            kernel_modules().display()
        );
        build_image("microvm-guest", &profile)
    })
}

fn run_qemu(cfg: &VmConfig) -> Outcome {
    let out = mkrootfs_qemu::run(cfg).unwrap_or_else(|e| panic!("run QEMU: {}", chain(&e)));
    assert!(
        !out.timed_out,
        "guest timed out; QEMU stderr:\n{}\nconsole:\n{}",
        out.stderr, out.console
    );
    out
}

#[track_caller]
fn assert_has(console: &str, needle: &str) {
    assert!(
        console.contains(needle),
        "console lacks {needle:?}; console:\n{console}"
    );
}

#[test]
fn firecracker_like_guest_boots_from_the_emitted_configuration() {
    let image = guest_image().to_str().unwrap().to_string();
    let disk = root_disk().to_str().unwrap().to_string();
    let o = cli(&[
        "vm-config",
        "--target",
        "firecracker",
        &image,
        "--kernel",
        vmlinux().to_str().unwrap(),
        "--disk",
        &disk,
        "--root-disk",
        "--memory",
        "384",
        "--append",
        "mkrootfs.boot_timer=firecracker",
    ]);
    assert!(o.status.success(), "vm-config: {}", text(&o.stderr));
    let config = FirecrackerConfig::from_json(&text(&o.stdout)).unwrap();
    assert_eq!(
        config.boot_source.boot_args.as_deref(),
        Some("console=ttyS0 reboot=k panic=1 pci=off mkrootfs.shutdown=reboot mkrootfs.boot_timer=firecracker")
    );
    assert_eq!(config.drives.len(), 1);
    assert!(config.drives[0].is_root_device);
    // The entropy device by default, attached on QEMU after the disk.
    assert!(config.entropy.is_some());

    let mut cfg = config.to_qemu();
    let log = work_dir().join("firecracker-like-qemu.log");
    let _ = std::fs::remove_file(&log);
    // QEMU logs guest writes to unassigned memory: where the boot timer lands.
    cfg.extra_args = vec![
        "-d".into(),
        "guest_errors,unimp".into(),
        "-D".into(),
        log.to_str().unwrap().into(),
    ];
    cfg.timeout = Duration::from_secs(240);
    let out = {
        let _one = one_guest();
        run_qemu(&cfg)
    };
    let c = &out.console;
    // The disk was found through the ACPI tables, as Firecracker 1.8+ describes it.
    assert_has(c, "ACPI yes\n");
    assert_has(c, "VIRTIO LNRO0005:00 virtio_blk\n");
    assert_has(c, "DISK ext4\n");
    assert_has(c, "MOUNT /dev/vda / ext4 rw");
    // The entropy device, found through ACPI and bound to virtio_rng.
    assert!(
        c.lines()
            .any(|l| l.starts_with("VIRTIO LNRO0005:") && l.ends_with(" virtio_rng")),
        "no virtio_rng device; console:\n{c}"
    );
    // The init noted when the CRNG became ready without waiting for it: in
    // the timings line if it already was, else in a line of its own later.
    assert!(
        c.lines()
            .any(|l| l.contains(" timings: kernel_ms=") && l.contains(" crng_ms="))
            || c.contains("mkrootfs-init: crng ready at "),
        "no CRNG-ready time; console:\n{c}"
    );
    // Shutdown through reboot=k: the i8042 reset, which -no-reboot turns into QEMU's exit.
    assert_has(c, "reboot: Restarting system");
    assert_eq!(
        out.result.as_ref().map(|r| r.code),
        Some(42),
        "console:\n{c}"
    );
    assert_eq!(
        out.qemu_status,
        Some(0),
        "no isa-debug-exit on this machine"
    );
    let qemu_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        qemu_log
            .lines()
            .any(|l| l.contains("0xC0000000") || l.contains("0xc0000000")),
        "the boot-timer write to 0xc0000000 is not in QEMU's log:\n{qemu_log}\nconsole:\n{c}"
    );

    // `mkrootfs run` boots the same shape and exits with the service's code.
    let o = {
        let _one = one_guest();
        cli(&[
            "run",
            &image,
            "--kernel",
            vmlinux().to_str().unwrap(),
            "--machine",
            "firecracker-like",
            "--disk",
            &disk,
            "--root-disk",
            "--timeout",
            "240",
        ])
    };
    let console = text(&o.stdout);
    assert_has(&console, "reboot: Restarting system");
    assert_eq!(
        o.status.code(),
        Some(42),
        "stderr:\n{}\nconsole:\n{console}",
        text(&o.stderr)
    );
}

/// Firecracker's legacy announcement, `virtio_mmio.device=` on the command
/// line: the init hands the parameter to the virtio_mmio module as modprobe
/// would, but Debian's cloud kernel is built without
/// `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`, so the module has no such parameter
/// and no disk appears; the guest must say so and still end through
/// `reboot=k` with its result.
#[test]
fn firecracker_legacy_like_announcement_needs_cmdline_devices_in_the_kernel() {
    let image = guest_image().to_str().unwrap().to_string();
    let mut cfg = {
        let mut g = mkrootfs::vmconfig::Guest::new(vmlinux(), guest_image());
        g.disks = vec![mkrootfs::vmconfig::GuestDisk {
            path: root_disk().to_path_buf(),
            read_only: false,
        }];
        g.root_disk = true;
        g.append = "mkrootfs.rootwait=3000".into();
        g.firecracker().to_qemu()
    };
    cfg.machine = Machine::FirecrackerLegacyLike;
    cfg.timeout = Duration::from_secs(240);
    let out = {
        let _one = one_guest();
        run_qemu(&cfg)
    };
    let c = &out.console;
    assert!(!image.is_empty());
    assert_has(c, "virtio_mmio.device=512@0xfeb00000:5");
    assert_has(c, "module virtio_mmio loaded in ");
    // The disk's transport, then the entropy device's (Firecracker
    // attaches its entropy device last).
    assert_has(c, " with device=512@0xfeb00000:5 device=512@0xfeb00200:6\n");
    assert_has(c, "virtio_mmio: unknown parameter 'device' ignored");
    assert_has(
        c,
        "FATAL root: wait for root device /dev/vda: not found after ",
    );
    assert_has(c, "reboot: Restarting system");
    assert_eq!(
        out.result.as_ref().map(|r| r.code),
        Some(1),
        "console:\n{c}"
    );
    assert_eq!(out.qemu_status, Some(0));
}

#[test]
fn cloud_hypervisor_like_guest_uses_virtio_pci_and_acpi_power_off() {
    let image = guest_image().to_str().unwrap().to_string();
    let disk = root_disk().to_str().unwrap().to_string();
    let vmlinux = vmlinux().to_str().unwrap().to_string();
    let o = cli(&[
        "vm-config",
        "--target",
        "cloud-hypervisor",
        &image,
        "--kernel",
        &vmlinux,
        "--disk",
        &disk,
        "--root-disk",
    ]);
    assert!(o.status.success(), "vm-config: {}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!(
            "cloud-hypervisor --kernel {vmlinux} --initramfs {image} --cmdline 'console=ttyS0 root=/dev/vda rw' \
             --disk path={disk} --cpus boot=1 --memory size=512M --serial tty --console off \
             --rng src=/dev/urandom\n"
        )
    );
    let o = {
        let _one = one_guest();
        cli(&[
            "run",
            &image,
            "--kernel",
            &vmlinux,
            "--machine",
            "cloud-hypervisor-like",
            "--disk",
            &disk,
            "--root-disk",
            "--timeout",
            "240",
        ])
    };
    let c = text(&o.stdout);
    assert_has(&c, "ACPI yes\n");
    assert_has(&c, "VIRTIO 0000:00:");
    assert_has(&c, "virtio_blk\n");
    assert_has(&c, "DISK ext4\n");
    assert_has(&c, "MOUNT /dev/vda / ext4 rw");
    assert_has(&c, "reboot: Power down");
    assert!(!c.contains("virtio_mmio.device="), "console:\n{c}");
    assert_eq!(
        o.status.code(),
        Some(42),
        "stderr:\n{}\nconsole:\n{c}",
        text(&o.stderr)
    );
}

#[test]
fn extracted_vmlinux_boots_with_qemu_kernel() {
    let image = build_image(
        "microvm-vmlinux",
        &format!(
            "{BUSYBOX_IMAGE}[init]\n[[init.services]]\nargv = [\"/bin/sh\", \"-c\", \"echo booted $(uname -r); exit 5\"]\n[init.shutdown]\ngrace_ms = 300\n"
        ),
    );
    // The Debian kernel has CONFIG_PVH: QEMU's pc machine loads the ELF
    // through its PVH entry note.
    let mut cfg = VmConfig::new(vmlinux(), &image);
    cfg.machine = Machine::Pc;
    cfg.timeout = Duration::from_secs(180);
    let out = {
        let _one = one_guest();
        run_qemu(&cfg)
    };
    assert_has(&out.console, &format!("booted {}\n", kernel().version));
    assert_eq!(out.exit_code(), 5, "console:\n{}", out.console);
}

#[test]
fn vm_config_refuses_a_bzimage_for_firecracker() {
    let vmlinuz = kernel().vmlinuz.to_str().unwrap().to_string();
    let o = cli(&[
        "vm-config",
        "--target",
        "firecracker",
        "/nonexistent.cpio",
        "--kernel",
        &vmlinuz,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!(
            "mkrootfs: {vmlinuz} is a bzImage, but Firecracker boots an uncompressed ELF vmlinux: \
             run `mkrootfs kernel extract-vmlinux {vmlinuz} -o vmlinux` and pass --kernel vmlinux\n"
        )
    );
}

#[test]
fn extract_vmlinux_of_a_non_kernel_fails_clearly() {
    let not_kernel = work_dir().join("not-a-kernel.bin");
    std::fs::write(&not_kernel, vec![0x5au8; 4096]).unwrap();
    let out = work_dir().join("never-vmlinux");
    let o = cli(&[
        "kernel",
        "extract-vmlinux",
        not_kernel.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let p = not_kernel.display();
    assert_eq!(
        text(&o.stderr),
        format!(
            "mkrootfs: extract vmlinux from {p}: {p} is not a bzImage: no x86 boot setup header (\"HdrS\" at 0x202) \
             and no compressed kernel (gzip, xz, zstd, lz4, bzip2, lzma, lzo) inside\n"
        )
    );
    assert!(!out.exists());
}

#[test]
fn embed_example_builds_and_boots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = {
        let _one = one_guest();
        Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "run",
                "-q",
                "-p",
                "mkrootfs-cli",
                "--example",
                "embed",
                "--",
                "microvm",
            ])
            .env("MKROOTFS_KERNEL", &kernel().vmlinuz)
            .env("MKROOTFS_INIT", init_binary())
            .output()
            .expect("cargo run --example embed")
    };
    let stdout = text(&o.stdout);
    let stderr = text(&o.stderr);
    assert_has(
        &stdout,
        &format!("embed: built in Rust on embed, {}\n", kernel().version),
    );
    assert_has(&stderr, "embed: guest service ended with status 3\n");
    assert_eq!(
        o.status.code(),
        Some(3),
        "stderr:\n{stderr}\nstdout:\n{stdout}"
    );
}
