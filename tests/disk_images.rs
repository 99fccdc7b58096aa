//! Disk images (`image.format` erofs, squashfs, ext4): byte-identical
//! rebuilds from different directories, each format's own fsck, the
//! dm-verity hash tree checked by `veritysetup verify`, and boots under QEMU
//! (a profile's root as a disk, the split erofs + overlay build with
//! verity, and a flipped byte refused as FATAL).

use mkrootfs::build::{self, BuildOptions, BuildReport, DiskReport};
use mkrootfs::profile;
use mkrootfs_qemu::{Disk, Machine, Outcome};
use mkrootfs_tests::{
    assert_console, boot_with, build_image, chain, init_binary, kernel_modules, work_dir,
    BUSYBOX_IMAGE,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const CHECK: &str = include_str!("fixtures/root/check.sh");
const APPEND: &str = "quiet mkrootfs.debug_exit=0xf4";

/// One guest at a time: the machine has two cores shared by everyone.
static BOOT: Mutex<()> = Mutex::new(());

/// A profile whose image is the root a disk boots into: busybox, the
/// `/check` service of the root tests, `/etc/disk-id` naming the format.
fn root_profile(format: &str, image: &str, init: &str) -> String {
    format!(
        r#"{BUSYBOX_IMAGE}format = "{format}"
{image}
[[files]]
dest = "/check"
mode = "0755"
content = '''
{CHECK}'''
[[files]]
dest = "/etc/disk-id"
content = "{format}\n"
[[dirs]]
path = "/mnt"
[modules]
kernel = "{}"
load = ["virtio_pci", "virtio_blk"]
[init]
{init}
[[init.services]]
argv = ["/check"]
[init.shutdown]
grace_ms = 500
"#,
        kernel_modules().display()
    )
}

/// Builds `text` as `<dir>/<name>.toml` into `<dir>/<name>.img`.
fn build_in(dir: &Path, name: &str, text: &str, mtime: Option<u32>) -> BuildReport {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let p = profile::load_path(&path).unwrap_or_else(|e| panic!("{}", chain(&e)));
    let opts = BuildOptions {
        output: Some(dir.join(format!("{name}.img"))),
        init_binary: Some(init_binary().to_path_buf()),
        mtime,
        ..Default::default()
    };
    build::build(&p, &opts).unwrap_or_else(|e| panic!("build {name}: {}", chain(&e)))
}

fn disk(r: &BuildReport) -> &DiskReport {
    r.disk.as_ref().expect("a disk build reports its disk")
}

#[track_caller]
fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd} {args:?}: {text}");
    text
}

/// Each format twice, from two directories (profile and output), with
/// `SOURCE_DATE_EPOCH`-style times: the same bytes; and each image passes
/// its own checker.
#[test]
fn every_format_rebuilds_byte_identical_from_another_directory_and_passes_its_fsck() {
    let base = work_dir().join("disk-repro");
    let _ = std::fs::remove_dir_all(&base);
    for (format, image) in [
        ("erofs", "fs_compression = \"lz4hc\"\nlevel = 12"),
        ("erofs", "verity = true"),
        ("squashfs", "fs_compression = \"zstd\""),
        ("squashfs", "fs_compression = \"xz\""),
        ("ext4", ""),
    ] {
        let text = root_profile(format, image, "");
        let a = build_in(&base.join("a"), format, &text, Some(1_700_000_000));
        let b = build_in(
            &base.join("b/elsewhere"),
            format,
            &text,
            Some(1_700_000_000),
        );
        let (ba, bb) = (
            std::fs::read(&a.path).unwrap(),
            std::fs::read(&b.path).unwrap(),
        );
        assert_eq!(ba.len() as u64, disk(&a).image_bytes);
        assert!(
            ba == bb,
            "{format} {image:?}: the rebuild differs (first at byte {:?})",
            ba.iter().zip(&bb).position(|(x, y)| x != y)
        );
        // The report names the format and every entry's source.
        let json: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(json["format"], format);
        assert_eq!(json["entries"], a.entries);
        let busybox = json["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["origin"] == "binary busybox")
            .unwrap_or_else(|| panic!("{json}"));
        assert!(
            busybox["host"].as_str().unwrap().ends_with("/busybox"),
            "{busybox}"
        );
        let img = a.path.to_str().unwrap();
        match format {
            "erofs" => {
                run_ok("fsck.erofs", &[img]);
            }
            "squashfs" => {
                let s = run_ok("unsquashfs", &["-s", img]);
                assert!(
                    s.contains("Creation or last append time Tue Nov 14 22:13:20 2023"),
                    "{s}"
                );
                let l = run_ok("unsquashfs", &["-lls", img]);
                assert!(l.contains("crw------- root/root             5,  1 2023-11-14 22:13 squashfs-root/dev/console"), "{l}");
                assert!(l.contains("-rwxr-xr-x root/root"), "{l}");
            }
            _ => {
                run_ok("e2fsck", &["-fn", img]);
                let stat = run_ok("debugfs", &["-R", "stat /check", img]);
                assert!(stat.contains("ctime: 0x6553f100"), "{stat}");
            }
        }
        // Another time gives another image.
        if image.is_empty() {
            let c = build_in(&base.join("c"), format, &text, Some(1_700_000_001));
            assert_ne!(std::fs::read(&c.path).unwrap(), ba, "{format}");
        }
        if disk(&a).verity.is_some() {
            verity_accepted_by_veritysetup(&a);
        }
    }
}

/// `veritysetup verify` (Debian's cryptsetup-bin) accepts the tree and the
/// root hash we report, and refuses the image with a byte flipped.
fn verity_accepted_by_veritysetup(r: &BuildReport) {
    let v = disk(r).verity.clone().unwrap();
    let img = r.path.to_str().unwrap();
    let offset = format!("--hash-offset={}", v.hash_offset);
    let dump = run_ok("veritysetup", &["dump", img, &offset]);
    assert!(
        dump.contains(&format!("Salt:            \t{}", v.salt)),
        "{dump}"
    );
    assert!(
        dump.contains(&format!("Data blocks:     \t{}", v.data_blocks)),
        "{dump}"
    );
    run_ok("veritysetup", &["verify", img, img, &v.root_hash, &offset]);
    let bad = r.path.with_extension("flipped");
    let mut bytes = std::fs::read(&r.path).unwrap();
    bytes[4096 + 17] ^= 1;
    std::fs::write(&bad, bytes).unwrap();
    let b = bad.to_str().unwrap();
    let out = Command::new("veritysetup")
        .args(["verify", b, b, &v.root_hash, &offset])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a flipped byte was accepted");
}

/// The bad values of a disk profile, at their line and column.
#[test]
fn disk_options_are_checked_at_their_position() {
    let dir = work_dir().join("disk-errors");
    std::fs::create_dir_all(&dir).unwrap();
    for (image, want) in [
        (
            "format = \"erofs\"\nfs_compression = \"zstd\"",
            ":4:18: erofs images cannot be compressed with zstd (supported: none, lz4, lz4hc)",
        ),
        (
            "format = \"squashfs\"\nlevel = 23",
            ":4:9: image.level 23 is out of range for zstd in squashfs (1..=22)",
        ),
        (
            "format = \"cpio\"\nverity = true",
            ":4:10: image.verity is for disk images",
        ),
        (
            "format = \"erofs\"\nlabel = \"root\"",
            ":4:9: image.label: erofs images have no label here (ext4 only",
        ),
    ] {
        let text = format!("binaries = [\"busybox\"]\n[image]\n{image}\n[init]\n[[init.services]]\nargv = [\"/bin/busybox\", \"true\"]\n");
        let path = dir.join("p.toml");
        std::fs::write(&path, &text).unwrap();
        let p = profile::load_path(&path).unwrap();
        let opts = BuildOptions {
            output: Some(dir.join("p.img")),
            init_binary: Some(init_binary().to_path_buf()),
            ..Default::default()
        };
        let e = chain(&build::build(&p, &opts).unwrap_err());
        assert!(e.contains(want), "{image:?}: {e}");
    }
    // A module tree whose kernel has no erofs, built in or as a module.
    let tree = dir.join("lib/modules/9.9.9");
    std::fs::create_dir_all(&tree).unwrap();
    for f in [
        "modules.dep",
        "modules.builtin",
        "modules.alias",
        "modules.softdep",
    ] {
        std::fs::write(tree.join(f), "").unwrap();
    }
    let text = format!(
        "binaries = [\"busybox\"]\n[image]\nformat = \"erofs\"\n[modules]\nkernel = \"{}\"\n[init]\n[[init.services]]\nargv = [\"/bin/busybox\", \"true\"]\n",
        tree.display()
    );
    let path = dir.join("nofs.toml");
    std::fs::write(&path, &text).unwrap();
    let p = profile::load_path(&path).unwrap();
    let opts = BuildOptions {
        output: Some(dir.join("nofs.img")),
        init_binary: Some(init_binary().to_path_buf()),
        ..Default::default()
    };
    let e = chain(&build::build(&p, &opts).unwrap_err());
    assert!(
        e.contains("nofs.toml:3:10: the kernel of ")
            && e.ends_with(
                "cannot mount erofs images: erofs is neither built in nor a module of it"
            ),
        "{e}"
    );
}

fn boot(initramfs: &Path, append: &str, disks: &[Disk]) -> Outcome {
    let _one = BOOT.lock().unwrap_or_else(|e| e.into_inner());
    boot_with(initramfs, &format!("{APPEND} {append}"), disks, Machine::Pc)
}

/// An initramfs that mounts the root given by `root=` (device mode).
fn device_initramfs() -> PathBuf {
    let modules = format!(
        "kernel = \"{}\"\nload = [\"virtio_pci\", \"virtio_blk\", \"erofs\", \"squashfs\", \"dm_verity\"]",
        kernel_modules().display()
    );
    build_image(
        "disk-device",
        &format!("{BUSYBOX_IMAGE}[modules]\n{modules}\n[init.root]\nmode = \"device\"\ntimeout_ms = 8000\n[[init.services]]\nargv = [\"/check\"]\n[init.shutdown]\ngrace_ms = 500\n"),
    )
}

#[track_caller]
fn assert_ok(out: &Outcome) {
    assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
}

#[test]
fn erofs_ext4_and_squashfs_images_of_a_profile_boot_as_the_root() {
    let dir = work_dir().join("disk-boot");
    let initramfs = device_initramfs();
    let ext4 = build_in(&dir, "ext4", &root_profile("ext4", "", ""), None);
    let sq = build_in(&dir, "squashfs", &root_profile("squashfs", "", ""), None);
    let ero = build_in(
        &dir,
        "erofs",
        &root_profile("erofs", "fs_compression = \"lz4\"", ""),
        None,
    );
    let disks = [
        Disk::raw(&ext4.path),
        Disk::raw(&sq.path),
        Disk::raw(&ero.path),
    ];
    let out = boot(
        &initramfs,
        &format!("root=UUID={}", disk(&ext4).uuid),
        &disks,
    );
    assert_console(&out, "DISK ext4\n");
    assert_console(&out, "MOUNT /dev/vda / ext4 rw");
    assert_console(&out, "WRITE-OK\n");
    assert_ok(&out);
    let out = boot(&initramfs, "root=/dev/vdb", &disks);
    assert_console(&out, "DISK squashfs\n");
    assert_console(&out, "MOUNT /dev/vdb / squashfs ro");
    assert_ok(&out);
    let out = boot(
        &initramfs,
        &format!("root=UUID={}", disk(&ero).uuid),
        &disks,
    );
    assert_console(&out, "DISK erofs\n");
    assert_console(&out, "MOUNT /dev/vdc / erofs ro");
    assert_console(&out, "WRITE-FAILED\n");
    assert_ok(&out);
    // ext4 with verity: the device mode mounts the verity device, read-only.
    let v = build_in(
        &dir,
        "ext4v",
        &root_profile("ext4", "verity = true", ""),
        None,
    );
    let hash = &disk(&v).verity.as_ref().unwrap().root_hash;
    let out = boot(
        &initramfs,
        &format!("root=UUID={} mkrootfs.verity={hash}", disk(&v).uuid),
        &[Disk::raw(&v.path)],
    );
    assert_console(&out, "verity: /dev/vda checked against root hash");
    assert_console(&out, "MOUNT /dev/dm-0 / ext4 ro");
    assert_console(&out, "WRITE-FAILED\n");
    assert_ok(&out);
}

/// The split build: the erofs root image and the initramfs that mounts it
/// as the lower layer of an overlay, through dm-verity with the root hash
/// the initramfs records (the command line may repeat it); then one flipped
/// byte makes the boot fail.
#[test]
fn split_erofs_with_verity_boots_and_a_flipped_byte_is_fatal() {
    let dir = work_dir().join("disk-split");
    let r = build_in(
        &dir,
        "erofs",
        &root_profile("erofs", "split = true\nverity = true", ""),
        None,
    );
    let d = disk(&r);
    let (initramfs, _) = d.initramfs.clone().expect("split writes an initramfs");
    let segments = mkrootfs::cpio::read_archive(
        &std::fs::read(&initramfs).unwrap(),
        &mkrootfs::cpio::Limits::default(),
    )
    .unwrap();
    let listing = mkrootfs::list::format_long(&segments);
    assert!(listing.contains("dm-verity.ko"), "{listing}");
    assert!(
        !listing.contains("bin/busybox"),
        "the root's files stay on the disk: {listing}"
    );
    let hash = &d.verity.as_ref().unwrap().root_hash;
    let mut erofs = Disk::raw(&r.path);
    erofs.readonly = true;
    assert!(listing.contains("etc/mkrootfs/root.verity"), "{listing}");
    // No mkrootfs.verity= on the command line: the initramfs knows the hash.
    let out = boot(&initramfs, "", &[erofs]);
    assert_console(
        &out,
        &format!("verity: /dev/vda checked against root hash {hash}"),
    );
    assert_console(&out, "DISK erofs\n");
    assert_console(&out, "verity: /dev/vda checked against root hash");
    assert_console(&out, "MOUNT overlay / overlay rw");
    assert_console(&out, "WRITE-OK\nLOWER-CLEAN\nUPPER-HAS-IT\n");
    assert_ok(&out);

    // A byte of the first data block (erofs ignores its first 1024 bytes,
    // verity does not).
    let bad = dir.join("flipped.erofs");
    let mut bytes = std::fs::read(&r.path).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&bad, bytes).unwrap();
    let mut disk = Disk::raw(&bad);
    disk.readonly = true;
    let out = boot(&initramfs, &format!("mkrootfs.verity={hash}"), &[disk]);
    let fatal = out
        .fatal_line()
        .unwrap_or_else(|| panic!("no FATAL line; console:\n{}", out.console));
    assert!(
        fatal.starts_with("mkrootfs-init: FATAL root: verity"),
        "{fatal}"
    );
    assert!(fatal.contains("/dev/vda"), "{fatal}");
    assert!(fatal.contains("block 0"), "{fatal}");
    assert_eq!(out.exit_code(), 1, "console:\n{}", out.console);
}

/// `security.capability` (cap_setuid,cap_net_raw=ep: binary, with a 0x80
/// byte) on a file of the tree, as an OCI layer's pax record puts it there
/// (`oci::layer` tests), is kept by erofs and ext4: `debugfs` reads it back
/// from the ext4 image, and `getcap` from the erofs image mounted where the
/// host can.
#[test]
fn security_capability_is_kept_on_erofs_and_ext4() {
    use mkrootfs::fsimage::{self, Format, FsCompression, FsOptions};
    use mkrootfs::tree::{Meta, Node, Tree};
    let cap: &[u8] =
        b"\x01\x00\x00\x02\x80\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let mut tree = Tree::new("/");
    tree.add_dir("/bin", Meta::root(0o755), "t").unwrap();
    let ping = tree
        .add(
            "/bin/ping",
            Node::File(b"ping".to_vec().into()),
            Meta::root(0o755),
            "t",
        )
        .unwrap();
    tree.set_xattr(&ping, "security.capability", cap);
    let dir = work_dir().join("disk-xattr");
    std::fs::create_dir_all(&dir).unwrap();
    for format in [Format::Erofs, Format::Ext4] {
        let out = dir.join(format!("x.{format}"));
        let opts = FsOptions {
            format,
            compression: FsCompression::None,
            level: None,
            verity: false,
            label: None,
            mtime: 0,
        };
        fsimage::write(&tree, &opts, &out).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let img = out.to_str().unwrap();
        if format == Format::Ext4 {
            let got = run_ok(
                "debugfs",
                &["-R", "ea_get -x /bin/ping security.capability", img],
            );
            assert!(got.contains("01 00 00 02 80 20 00 00"), "{got}");
            continue;
        }
        run_ok("fsck.erofs", &[img]);
        let bytes = std::fs::read(&out).unwrap();
        assert!(
            bytes.windows(cap.len()).any(|w| w == cap),
            "no capability in the erofs image"
        );
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let mounted = Command::new("mount")
            .args(["-o", "loop,ro", img, mnt.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            let got = Command::new("getcap").arg(mnt.join("bin/ping")).output();
            let _ = Command::new("umount").arg(&mnt).status();
            let got = String::from_utf8_lossy(&got.unwrap().stdout).into_owned();
            assert!(got.contains("cap_setuid,cap_net_raw=ep"), "{got}");
        } else {
            eprintln!("erofs: no loop mount here; checked the bytes only");
        }
    }
}

/// An OCI image layout (made with umoci, one layer written by GNU tar
/// with its xattrs) as a container root on an erofs disk: the split build
/// boots it, the container's exit code is the result, and the layer's
/// `security.capability` is on the image.
#[test]
fn an_oci_image_runs_as_a_container_from_an_erofs_disk_and_keeps_file_capabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    for d in ["bin", "etc", "srv"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/ping")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("srv/greeting"), "from the erofs disk\n").unwrap();
    let ping = root.join("bin/ping");
    run_ok("setcap", &["cap_net_raw=ep", ping.to_str().unwrap()]);
    let layer = tmp.path().join("layer.tar");
    run_ok(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "--owner=0",
            "--group=0",
            "--xattrs",
            "--xattrs-include=security.capability",
            "-cf",
            layer.to_str().unwrap(),
            ".",
        ],
    );
    let layout = work_dir().join("disk-oci-layout");
    let _ = std::fs::remove_dir_all(&layout);
    let l = layout.to_str().unwrap();
    let image = format!("{l}:v1");
    run_ok("umoci", &["init", "--layout", l]);
    run_ok("umoci", &["new", "--image", &image]);
    run_ok(
        "umoci",
        &[
            "raw",
            "add-layer",
            "--image",
            &image,
            layer.to_str().unwrap(),
        ],
    );
    run_ok(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.entrypoint",
            "/bin/sh",
            "--config.entrypoint",
            "-c",
            "--config.cmd",
            "cat /srv/greeting; exit 7",
        ],
    );
    let text = format!(
        r#"[image]
format = "erofs"
split = true
[modules]
kernel = "{}"
load = ["virtio_pci", "virtio_blk"]
[init]
[[init.services]]
name = "app"
container = {{ image = {{ layout = "{l}", ref = "v1" }} }}
"#,
        kernel_modules().display()
    );
    let dir = work_dir().join("disk-oci");
    let r = build_in(&dir, "oci", &text, None);
    assert!(
        !r.notes.iter().any(|n| n.contains("cannot carry")),
        "{:?}",
        r.notes
    );
    let (initramfs, _) = disk(&r).initramfs.clone().unwrap();
    let bytes = std::fs::read(&r.path).unwrap();
    // cap_net_raw=ep: version 2, effective, permitted bit 13.
    let cap: &[u8] = b"\x01\x00\x00\x02\x00\x20\x00\x00";
    assert!(
        bytes.windows(cap.len()).any(|w| w == cap),
        "the layer's capability is not on the image"
    );
    let mut d = Disk::raw(&r.path);
    d.readonly = true;
    let out = boot(&initramfs, "", &[d]);
    assert_console(&out, "from the erofs disk\n");
    assert_console(&out, "mkrootfs-init: RESULT status=7 exited=7");
}
