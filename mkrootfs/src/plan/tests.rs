//! Unit tests of the plan: defaults applied once, magic strings typed,
//! errors at the profile's line and column.

use super::*;
use crate::profile;
use std::path::Path;

fn load(dir: &Path, name: &str, text: &str) -> Profile {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("{text}{INIT}")).unwrap();
    profile::load_path(&path).unwrap()
}

/// An `[init]` table the init accepts, appended after the lines under test.
const INIT: &str = "[[init.services]]\nargv = [\"/bin/true\"]\n";

fn opts() -> BuildOptions {
    BuildOptions {
        mtime: Some(0),
        ..Default::default()
    }
}

fn plan_err(p: &Profile) -> String {
    Plan::new(p, &opts()).unwrap_err().to_string()
}

#[test]
fn bad_compression_level_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = load(
        dir.path(),
        "lvl",
        "[image]\ncompression = \"zstd\"\nlevel   = 23\n",
    );
    assert_eq!(
        plan_err(&p),
        format!(
            "{}:3:11: zstd level 23 is out of range 1-22",
            dir.path().join("lvl.toml").display()
        )
    );
}

/// The level is checked against the merged compression: a child's level
/// is judged by its parent's format, and reported at the child's line.
#[test]
fn level_set_by_child_is_checked_against_parents_compression() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.toml"),
        format!("[image]\ncompression = \"gzip\"\n{INIT}"),
    )
    .unwrap();
    let p = load(
        dir.path(),
        "child",
        "extends = \"base\"\n\n[image]\nlevel = 10\n",
    );
    assert_eq!(
        plan_err(&p),
        format!(
            "{}:4:9: gzip level 10 is out of range 0-9",
            dir.path().join("child.toml").display()
        )
    );
}

#[test]
fn unknown_preset_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = load(
        dir.path(),
        "preset",
        "[modules]\nkernel = \"/k\"\npreset = \"microvn\"\n",
    );
    assert_eq!(
        plan_err(&p),
        format!(
            "{}:3:10: modules.preset \"microvn\" is not a known preset (known: microvm)",
            dir.path().join("preset.toml").display()
        )
    );
}

#[test]
fn defaults_are_applied_and_magic_strings_typed() {
    let dir = tempfile::tempdir().unwrap();
    let p = load(
        dir.path(),
        "plain",
        "[modules]\nkernel = \"auto\"\npreset = \"microvm\"\n",
    );
    // "auto" is resolved in the plan: to the tree of the kernel given.
    let auto = BuildOptions {
        auto_kernel: Some(AutoKernel {
            vmlinuz: PathBuf::from("/k/boot/vmlinuz-1"),
            version: "1".to_string(),
            modules: Some(PathBuf::from("/k/lib/modules/1")),
        }),
        ..opts()
    };
    let plan = Plan::new(&p, &auto).unwrap();
    assert_eq!(plan.compression, Compression::Zstd);
    assert_eq!(plan.level, Compression::Zstd.default_level());
    assert_eq!(plan.output, PathBuf::from("out/plain.cpio.zst"));
    assert_eq!(plan.sysroot, PathBuf::from("/"));
    assert!(!plan.dlopen_notes);
    assert_eq!(plan.init, InitChoice::Mkrootfs);
    assert_eq!(plan.modules.tree, Some(PathBuf::from("/k/lib/modules/1")));
    assert_eq!(plan.modules.names, kmod::MICROVM_PRESET);
    assert_eq!(plan.modules.preset, Some(Preset::Microvm));
    assert_eq!(plan.modules.compressed, ModuleCompression::Decompress);

    // The image's own init: no [init] table (it would never be read).
    let own_path = dir.path().join("own.toml");
    std::fs::write(
        &own_path,
        "[image]\ninit = \"/sbin/app\"\ncompression = \"none\"\n",
    )
    .unwrap();
    let own = profile::load_path(&own_path).unwrap();
    let plan = Plan::new(&own, &opts()).unwrap();
    assert_eq!(plan.init, InitChoice::Own("/sbin/app".to_string()));
    assert_eq!(plan.output, PathBuf::from("out/own.cpio"));
    assert_eq!(plan.modules.tree, None);

    // --kernel-modules wins over the profile's tree.
    let o = BuildOptions {
        modules_dir: Some(PathBuf::from("/m")),
        ..opts()
    };
    let plan = Plan::new(&p, &o).unwrap();
    assert_eq!(plan.modules.tree, Some(PathBuf::from("/m")));
}

/// A profile built in code has no positions: the error names the profile.
#[test]
fn profile_without_positions_is_named() {
    let p = Profile {
        name: "inline".to_string(),
        init: Some(Default::default()),
        ..Default::default()
    };
    let mut p = p;
    p.image.level = Some(0);
    assert_eq!(
        plan_err(&p),
        "profile inline: zstd level 0 is out of range 1-22"
    );
}

#[test]
fn a_split_initramfs_is_named_after_the_image_and_never_is_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        "[image]\nformat = \"erofs\"\nsplit = true\ncompression = \"none\"\n[init]\n[[init.services]]\nargv = [\"/bin/true\"]\n",
    )
    .unwrap();
    let p = crate::profile::load_path(&path).unwrap();
    for (out, want) in [
        ("out/r.erofs", "out/r.cpio"),
        ("r.cpio", "r.initramfs.cpio"),
    ] {
        let mut o = opts();
        o.output = Some(PathBuf::from(out));
        let plan = Plan::new(&p, &o).unwrap();
        assert_eq!(plan.split, Some(PathBuf::from(want)), "{out}");
    }
}

/// Issue 21: `-o x.cpio` wrote a zstd image under a name that says
/// uncompressed, and an overlay root without a device was accepted
/// silently: warnings, at the option or at the profile's line.
#[test]
fn output_name_and_overlay_without_device_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let p = load(
        dir.path(),
        "w",
        "[image]\ncompression = \"zstd\"\n[init.root]\nmode = \"overlay\"\n",
    );
    let mut o = opts();
    o.output = Some("x.cpio".into());
    let plan = Plan::new(&p, &o).unwrap();
    let file = dir.path().join("w.toml");
    let file = file.display();
    assert_eq!(
        plan.notes,
        [
            format!(
                "{file}:4:8: init.root.mode = \"overlay\" without a device: the lower layer must \
                 then come from root= on the kernel command line, or the boot fails"
            ),
            format!("x.cpio: the name says none but the image is zstd (image.compression at {file}:2:15)"),
        ]
    );
    // A name that says nothing, or the right thing: no warning.
    for name in ["initrd.img", "x.cpio.zst", "-"] {
        let p = load(dir.path(), "q", "");
        let mut o = opts();
        o.output = Some(name.into());
        assert_eq!(
            Plan::new(&p, &o).unwrap().notes,
            Vec::<String>::new(),
            "{name}"
        );
    }
}

/// A scratch directory with an empty module tree, and the `[modules]`
/// table that names it and loads ext4.
fn ext4_tree() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("lib/modules/6.1.0-test");
    std::fs::create_dir_all(&tree).unwrap();
    let modules = format!(
        "[modules]\nkernel = \"{}\"\nload = [\"ext4\"]\n",
        tree.display()
    );
    (dir, modules)
}

/// `[[init.network]]` with a module tree brings the virtio-net driver and
/// both transports (PCI for QEMU pc and Cloud Hypervisor, MMIO for microvm
/// and Firecracker), once each next to the microvm preset; without any
/// network entry, none of them.
#[test]
fn network_entries_bring_the_virtio_net_driver_and_its_transports() {
    let (dir, modules) = ext4_tree();
    let net = "[[init.network]]\nname = \"eth0\"\ndhcp = true\n";
    let with = load(dir.path(), "net", &format!("{modules}{net}"));
    let plan = Plan::new(&with, &opts()).unwrap();
    assert_eq!(
        plan.modules.names,
        ["ext4", "virtio_pci", "virtio_mmio", "virtio_net"]
    );
    let preset = load(
        dir.path(),
        "preset",
        &format!("{modules}preset = \"microvm\"\n{net}"),
    );
    let names = Plan::new(&preset, &opts()).unwrap().modules.names;
    for m in ["virtio_pci", "virtio_mmio", "virtio_net"] {
        assert_eq!(
            names.iter().filter(|n| *n == m).count(),
            1,
            "{m}: {names:?}"
        );
    }
    let without = load(dir.path(), "plain", &modules);
    assert_eq!(
        Plan::new(&without, &opts()).unwrap().modules.names,
        ["ext4"]
    );
}

/// A required config drive is a virtio-blk disk: its driver comes along;
/// an optional one (the default) adds nothing.
#[test]
fn a_required_config_drive_brings_the_virtio_blk_driver() {
    let (dir, modules) = ext4_tree();
    let argv = "[[init.services]]\nargv = [\"/bin/sh\"]\n";
    let required = load(
        dir.path(),
        "drive",
        &format!("{modules}[init.config_drive]\nrequired = true\n{argv}"),
    );
    assert_eq!(
        Plan::new(&required, &opts()).unwrap().modules.names,
        ["ext4", "virtio_pci", "virtio_mmio", "virtio_blk"]
    );
    let optional = load(dir.path(), "nodrive", &format!("{modules}[init]\n{argv}"));
    assert_eq!(
        Plan::new(&optional, &opts()).unwrap().modules.names,
        ["ext4"]
    );
}
