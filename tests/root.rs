//! Boot tests of kernel modules and of leaving the initramfs: ext4 roots by
//! path, LABEL= and UUID=, erofs and squashfs roots, an overlay root, a
//! tmpfs root where pivot_root works, handing PID 1 over to the disk's own
//! /sbin/init, compressed modules, the microvm preset, and the clear
//! failures for a missing device or module.
//!
//! The disks are made once per run by mkrootfs itself (`image.format`,
//! which runs the real mkfs tools) from a profile holding a static busybox
//! and the scripts of `tests/fixtures/root/`; their main service (`/check`)
//! prints what the assertions look for. Boots are serialized (one QEMU at a time).

use mkrootfs::compress::{compress, Compression};
use mkrootfs::kmod::{self, ModuleCompression};
use mkrootfs_qemu::{Disk, Machine, Outcome};
use mkrootfs_tests::{assert_console, boot_with, build_image, kernel_modules, BUSYBOX_IMAGE};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

const APPEND: &str = "quiet mkrootfs.debug_exit=0xf4";
const CHECK: &str = include_str!("fixtures/root/check.sh");
const INIT: &str = include_str!("fixtures/root/init.sh");
const PIVOT: &str = include_str!("fixtures/root/pivot.sh");

/// One guest at a time: the machine has two cores shared by everyone.
static BOOT: Mutex<()> = Mutex::new(());

fn boot(image: &Path, append: &str, machine: Machine) -> Outcome {
    let _one = BOOT.lock().unwrap_or_else(|e| e.into_inner());
    let d = disks();
    let mut erofs = Disk::raw(&d.erofs);
    erofs.readonly = true;
    boot_with(
        image,
        &format!("{APPEND} {append}"),
        &[Disk::raw(&d.ext4), erofs, Disk::raw(&d.squashfs)],
        machine,
    )
}

/// The test disks: vda ext4 (label and UUID), vdb erofs (UUID), vdc squashfs.
struct Disks {
    ext4: PathBuf,
    erofs: PathBuf,
    squashfs: PathBuf,
    ext4_uuid: String,
    erofs_uuid: String,
}

/// A disk's profile: a static busybox, the scripts of `fixtures/root/`, and
/// `/etc/disk-id` naming the format (the disk's own `/sbin/init` is the
/// image's init: no `[init]` table).
fn disk_profile(format: &str, image: &str) -> String {
    format!(
        r#"[image]
format = "{format}"
init = "/sbin/init"
{image}
[[files]]
dest = "/bin/busybox"
src = "/bin/busybox"
[[symlinks]]
path = "/bin/sh"
target = "busybox"
[[files]]
dest = "/check"
mode = "0755"
content = '''
{CHECK}'''
[[files]]
dest = "/sbin/init"
mode = "0755"
content = '''
{INIT}'''
[[files]]
dest = "/etc/disk-id"
content = "{format}\n"
[[dirs]]
path = "/mnt"
"#
    )
}

/// The disks, written by mkrootfs itself (`image.format`).
fn disks() -> &'static Disks {
    static D: OnceLock<Disks> = OnceLock::new();
    D.get_or_init(|| {
        let build = |format: &str, image: &str| {
            let dir = mkrootfs_tests::work_dir();
            let path = dir.join(format!("root-disk-{format}.toml"));
            std::fs::write(&path, disk_profile(format, image)).unwrap();
            let p = mkrootfs::profile::load_path(&path).unwrap();
            let opts = mkrootfs::build::BuildOptions {
                output: Some(dir.join(format!("root-disk.{format}"))),
                ..Default::default()
            };
            let r = mkrootfs::build::build(&p, &opts)
                .unwrap_or_else(|e| panic!("{format} disk: {}", mkrootfs_tests::chain(&e)));
            let uuid = r.disk.as_ref().map(|d| d.uuid.clone()).unwrap_or_default();
            (r.path, uuid)
        };
        let (ext4, ext4_uuid) = build("ext4", "label = \"mkrootfs-ext4\"");
        let (erofs, erofs_uuid) = build("erofs", "");
        let (squashfs, _) = build("squashfs", "");
        Disks {
            ext4,
            erofs,
            squashfs,
            ext4_uuid,
            erofs_uuid,
        }
    })
}

/// A profile with busybox, the given modules and `[init]` body.
fn profile(modules: &str, init: &str, files: &str) -> String {
    format!(
        r#"{BUSYBOX_IMAGE}{files}
[modules]
{modules}
[init]
{init}
[init.shutdown]
grace_ms = 500
"#
    )
}

fn tree_line() -> String {
    format!("kernel = \"{}\"", kernel_modules().display())
}

/// Device mode, the disk's /check as the main service; the command line
/// picks the device.
fn device_image() -> &'static PathBuf {
    static I: OnceLock<PathBuf> = OnceLock::new();
    I.get_or_init(|| {
        let modules = format!("{}\nload = [\"virtio_pci\", \"virtio_blk\", \"erofs\", \"squashfs\"]", tree_line());
        let init = "[init.root]\nmode = \"device\"\ntimeout_ms = 8000\n[[init.services]]\nargv = [\"/check\"]";
        build_image("root-device", &profile(&modules, init, ""))
    })
}

#[track_caller]
fn assert_ok(out: &Outcome) {
    assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
    assert!(
        !out.console.contains("Kernel panic"),
        "console:\n{}",
        out.console
    );
}

#[test]
fn ext4_root_by_uuid_is_read_write() {
    let out = boot(
        device_image(),
        &format!("root=UUID={}", disks().ext4_uuid.to_uppercase()),
        Machine::Pc,
    );
    assert_console(&out, "DISK ext4\n");
    assert_console(&out, "MOUNT /dev/vda / ext4 rw");
    assert_console(&out, "WRITE-OK\n");
    assert_console(&out, "module virtio_blk loaded in");
    assert_ok(&out);
}

#[test]
fn ext4_root_by_label() {
    let out = boot(device_image(), "root=LABEL=mkrootfs-ext4", Machine::Pc);
    assert_console(&out, "DISK ext4\n");
    assert_console(&out, "MOUNT /dev/vda / ext4 rw");
    assert_ok(&out);
}

#[test]
fn erofs_root_by_path_is_read_only() {
    let out = boot(device_image(), "root=/dev/vdb", Machine::Pc);
    assert_console(&out, "DISK erofs\n");
    assert_console(&out, "MOUNT /dev/vdb / erofs ro");
    assert_console(&out, "WRITE-FAILED\n");
    assert_ok(&out);
}

#[test]
fn squashfs_root_by_path() {
    let out = boot(device_image(), "root=/dev/vdc", Machine::Pc);
    assert_console(&out, "DISK squashfs\n");
    assert_console(&out, "MOUNT /dev/vdc / squashfs ro");
    assert_ok(&out);
}

#[test]
fn missing_root_device_names_it_the_devices_and_the_modules() {
    let out = boot(
        device_image(),
        "root=LABEL=nosuch mkrootfs.rootwait=1500",
        Machine::Pc,
    );
    let fatal = out
        .fatal_line()
        .unwrap_or_else(|| panic!("no FATAL line; console:\n{}", out.console));
    assert!(
        fatal.starts_with(
            "mkrootfs-init: FATAL root: wait for root device LABEL=nosuch: not found after 1"
        ),
        "{fatal}"
    );
    let (ext4_uuid, erofs_uuid) = (&disks().ext4_uuid, &disks().erofs_uuid);
    assert!(
        fatal.contains(&format!(
            "; block devices: vda (ext4 LABEL=mkrootfs-ext4 UUID={ext4_uuid}), vdb (erofs UUID={erofs_uuid}), vdc (squashfs); modules loaded: "
        )),
        "{fatal}"
    );
    assert!(fatal.contains("virtio_blk"), "{fatal}");
    assert_eq!(out.exit_code(), 1, "console:\n{}", out.console);
}

#[test]
fn missing_disk_module_ends_with_a_clear_message() {
    let modules = format!("{}\nload = [\"virtio_pci\"]", tree_line());
    let init = "[init.root]\nmode = \"device\"\ndevice = \"/dev/vda\"\ntimeout_ms = 1500\n[[init.services]]\nargv = [\"/check\"]";
    let img = build_image("root-no-blk", &profile(&modules, init, ""));
    let out = boot(&img, "", Machine::Pc);
    let fatal = out
        .fatal_line()
        .unwrap_or_else(|| panic!("no FATAL line; console:\n{}", out.console));
    assert!(
        fatal.starts_with(
            "mkrootfs-init: FATAL root: wait for root device /dev/vda: not found after 1"
        ),
        "{fatal}"
    );
    // The load order of the dependencies varies between kernel builds;
    // the set does not.
    let (_, loaded) = fatal
        .split_once("; block devices: none; modules loaded: ")
        .unwrap_or_else(|| panic!("{fatal}"));
    let mut loaded: Vec<&str> = loaded.split(", ").collect();
    loaded.sort();
    assert_eq!(
        loaded,
        [
            "virtio",
            "virtio_pci",
            "virtio_pci_legacy_dev",
            "virtio_pci_modern_dev",
            "virtio_ring"
        ],
        "{fatal}"
    );
    assert_eq!(out.exit_code(), 1, "console:\n{}", out.console);
}

#[test]
fn overlay_root_writes_to_tmpfs_and_leaves_the_image_alone() {
    let before = std::fs::read(&disks().erofs).unwrap();
    let modules = format!(
        "{}\nload = [\"virtio_pci\", \"virtio_blk\", \"erofs\", \"overlay\"]",
        tree_line()
    );
    let init = "[init.root]\nmode = \"overlay\"\ndevice = \"/dev/vdb\"\n[[init.services]]\nargv = [\"/check\"]";
    let img = build_image("root-overlay", &profile(&modules, init, ""));
    let out = boot(&img, "", Machine::Pc);
    assert_console(&out, "DISK erofs\n");
    assert_console(&out, "MOUNT overlay / overlay rw,relatime,lowerdir=/run/mkrootfs/lower,upperdir=/run/mkrootfs/rw/upper,workdir=/run/mkrootfs/rw/work");
    assert_console(&out, "WRITE-OK\nLOWER-CLEAN\nUPPER-HAS-IT\n");
    assert_ok(&out);
    assert!(
        std::fs::read(&disks().erofs).unwrap() == before,
        "the lower image changed"
    );
}

#[test]
fn tmpfs_root_allows_pivot_root() {
    let files =
        format!("[[files]]\ndest = \"/pivot.sh\"\nmode = \"0755\"\ncontent = '''\n{PIVOT}'''\n");
    let init = "[init.root]\nmode = \"tmpfs\"\n[[init.services]]\nargv = [\"/pivot.sh\"]";
    let img = build_image("root-tmpfs", &profile("", init, &files));
    let out = boot(&img, "", Machine::Pc);
    assert_console(&out, "MOUNT tmpfs / tmpfs rw");
    assert_console(&out, "PIVOT-OK /old/pivot.sh\n");
    assert_ok(&out);
}

/// The control for the test above: the same script on the initramfs
/// itself, where the kernel refuses pivot_root (EINVAL before Linux 7.0).
#[test]
fn pivot_root_fails_on_the_initramfs_itself() {
    let files =
        format!("[[files]]\ndest = \"/pivot.sh\"\nmode = \"0755\"\ncontent = '''\n{PIVOT}'''\n");
    let init = "[[init.services]]\nargv = [\"/pivot.sh\"]";
    let img = build_image("root-initramfs-pivot", &profile("", init, &files));
    let out = boot(&img, "", Machine::Pc);
    // busybox prints "pivot_root: (null): Invalid argument".
    assert_console(&out, ": Invalid argument\nPIVOT-FAILED status=1\n");
}

#[test]
fn exec_hands_pid_1_to_the_disks_init() {
    let modules = format!("{}\nload = [\"virtio_pci\", \"virtio_blk\"]", tree_line());
    let init =
        "[init.root]\nmode = \"device\"\ndevice = \"LABEL=mkrootfs-ext4\"\nexec = \"/sbin/init\"";
    let img = build_image("root-exec", &profile(&modules, init, ""));
    let out = boot(&img, "", Machine::Pc);
    assert_console(&out, "EXEC-INIT pid=1 disk=ext4\n");
    // The init's timings are printed before the handover too (they used to
    // be lost in this mode).
    let timings = out.console.find(" timings: kernel_ms=");
    let handover = out.console.find("handing over to /sbin/init");
    assert!(
        matches!((timings, handover), (Some(t), Some(h)) if t < h),
        "console:\n{}",
        out.console
    );
    assert_console(&out, " coldplug_ms=");
    assert!(
        out.result.is_none(),
        "the disk's init ran, not the services; console:\n{}",
        out.console
    );
    assert!(
        !out.console.contains("Kernel panic"),
        "console:\n{}",
        out.console
    );
}

/// A copy of the modules the disk needs, alternately xz- and
/// zstd-compressed, with an index naming the compressed files.
fn compressed_tree() -> PathBuf {
    let src = kernel_modules();
    let kver = src.file_name().unwrap().to_owned();
    let dst = mkrootfs_tests::work_dir()
        .join("compressed-modules/lib/modules")
        .join(&kver);
    let _ = std::fs::remove_dir_all(&dst);
    let c = kmod::resolve(&src, &["virtio_pci".into(), "virtio_blk".into()]).unwrap();
    for (i, m) in c.modules.iter().enumerate() {
        let (ext, how) = if i % 2 == 0 {
            (".xz", Compression::Xz)
        } else {
            (".zst", Compression::Zstd)
        };
        let data = std::fs::read(src.join(&m.rel_path)).unwrap();
        let out = dst.join(format!("{}{ext}", m.rel_path));
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(out, compress(&data, how, None).unwrap()).unwrap();
    }
    std::fs::copy(src.join("modules.builtin"), dst.join("modules.builtin")).unwrap();
    // With no modules.dep yet, the builder reads each compressed module's
    // .modinfo; keeping the files as they are gives the index to write.
    let c = kmod::resolve(&dst, &["virtio_pci".into(), "virtio_blk".into()]).unwrap();
    for f in kmod::image_files(&c, ModuleCompression::Keep).unwrap() {
        for name in ["modules.dep", "modules.alias", "modules.softdep"] {
            if f.path.ends_with(&format!("/{name}")) {
                std::fs::write(dst.join(name), &f.data).unwrap();
            }
        }
    }
    // The index names the compressed files, and only them.
    let dep = std::fs::read_to_string(dst.join("modules.dep")).unwrap();
    assert!(dep.contains("kernel/drivers/block/virtio_blk.ko."), "{dep}");
    let paths: Vec<&str> = dep
        .split_whitespace()
        .map(|w| w.trim_end_matches(':'))
        .collect();
    assert!(paths.iter().any(|p| p.ends_with(".ko.xz")), "{dep}");
    assert!(paths.iter().any(|p| p.ends_with(".ko.zst")), "{dep}");
    assert!(
        paths
            .iter()
            .all(|p| p.ends_with(".ko.xz") || p.ends_with(".ko.zst")),
        "{dep}"
    );
    dst
}

#[test]
fn compressed_modules_xz_and_zstd_boot_a_read_only_ext4_root() {
    let tree = compressed_tree();
    let modules = format!(
        "kernel = \"{}\"\nload = [\"virtio_pci\", \"virtio_blk\"]\ncompressed = \"decompress\"",
        tree.display()
    );
    let init = "[init.root]\nmode = \"device\"\n[[init.services]]\nargv = [\"/check\"]";
    let img = build_image("root-compressed", &profile(&modules, init, ""));
    let out = boot(&img, "root=/dev/vda ro", Machine::Pc);
    assert_console(&out, "module virtio_pci loaded in");
    assert_console(&out, "MOUNT /dev/vda / ext4 ro");
    assert_console(&out, "WRITE-FAILED\n");
    assert_ok(&out);
}

/// Also module parameters: the profile's and the command line's reach
/// virtio_blk, loaded by coldplug once virtio_mmio finds the disk.
#[test]
fn microvm_preset_boots_a_disk_root_on_microvm() {
    let modules = format!(
        "{}\npreset = \"microvm\"\noptions = {{ virtio_blk = \"num_request_queues=1\" }}",
        tree_line()
    );
    let init = "[init.root]\nmode = \"device\"\ndevice = \"UUID=".to_owned()
        + &disks().ext4_uuid
        + "\"\n[[init.services]]\nargv = [\"/check\"]";
    let img = build_image("root-microvm", &profile(&modules, &init, ""));
    let out = boot(&img, "virtio-blk.queue_depth=32", Machine::Microvm);
    assert_console(&out, "module virtio_mmio loaded in");
    let blk = out
        .console
        .lines()
        .find(|l| l.contains("module virtio_blk loaded in "))
        .unwrap_or_default();
    assert!(
        blk.ends_with(" with num_request_queues=1 queue_depth=32"),
        "console:\n{}",
        out.console
    );
    assert_console(&out, "DISK ext4\n");
    assert_console(&out, "MOUNT /dev/vda / ext4 rw");
    assert_ok(&out);
}
