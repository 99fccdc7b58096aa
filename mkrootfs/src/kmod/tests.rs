//! Closure and image-file tests on small synthetic module trees (tiny ELF
//! objects with a real `.modinfo` section), and on the Debian cloud kernel
//! when it is unpacked on this machine.

use super::*;
use std::fs;

/// A minimal ELF64 relocatable object with a `.modinfo` section holding
/// `info` as NUL-terminated strings.
fn fake_ko(info: &[&str]) -> Vec<u8> {
    let mut modinfo = Vec::new();
    for i in info {
        modinfo.extend_from_slice(i.as_bytes());
        modinfo.push(0);
    }
    let shstrtab = b"\0.modinfo\0.shstrtab\0";
    let data_off = 0x40usize;
    let str_off = data_off + modinfo.len();
    let sh_off = (str_off + shstrtab.len() + 7) & !7;
    let mut out = vec![0u8; sh_off];
    out[..6].copy_from_slice(b"\x7fELF\x02\x01");
    out[0x28..0x30].copy_from_slice(&(sh_off as u64).to_le_bytes());
    out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    out[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
    out[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
    out[data_off..str_off].copy_from_slice(&modinfo);
    out[str_off..str_off + shstrtab.len()].copy_from_slice(shstrtab);
    for (name, off, size) in [
        (0u32, 0usize, 0usize),
        (1, data_off, modinfo.len()),
        (10, str_off, shstrtab.len()),
    ] {
        let mut sh = [0u8; 64];
        sh[..4].copy_from_slice(&name.to_le_bytes());
        sh[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
        sh[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
        out.extend_from_slice(&sh);
    }
    out
}

/// A tree `lib/modules/6.0.0-test` under a temp dir:
/// blk → (ring, core), ring → core, blk softdep pre: crc, crc has an alias,
/// pci has a pci alias, ext4 is built in.
fn fake_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("lib/modules/6.0.0-test");
    let put = |rel: &str, data: &[u8]| {
        let p = tree.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    };
    put(
        "kernel/drivers/core.ko",
        &fake_ko(&["name=core", "depends="]),
    );
    put("kernel/drivers/ring.ko", &fake_ko(&["depends=core"]));
    put(
        "kernel/drivers/blk.ko",
        &fake_ko(&[
            "alias=virtio:d00000002v*",
            "depends=ring,core",
            "softdep=pre: crypto-crc",
            "firmware=test/fw.bin",
            "firmware=test/absent.bin",
        ]),
    );
    put(
        "kernel/crypto/crc-fast.ko",
        &fake_ko(&["alias=crypto-crc", "depends="]),
    );
    put(
        "kernel/drivers/pci.ko",
        &fake_ko(&["alias=pci:v00001AF4d*sv*sd*bc*sc*i*", "depends=core"]),
    );
    put("modules.builtin", b"kernel/fs/ext4/ext4.ko\n");
    put(
        "modules.builtin.modinfo",
        b"ext4.alias=fs-ext4\0ext4.license=GPL\0",
    );
    let fw = dir.join("lib/firmware/test/fw.bin");
    fs::create_dir_all(fw.parent().unwrap()).unwrap();
    fs::write(&fw, b"FW").unwrap();
    tree
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn summary(c: &ModuleClosure) -> Vec<(String, String)> {
    c.modules
        .iter()
        .map(|m| (m.name.clone(), m.requested_by.clone()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn closure_from_modinfo_orders_deps_first_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = fake_tree(tmp.path());
    let c = resolve(
        &tree,
        &names(&[
            "blk",
            "fs-ext4",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
        ]),
    )
    .unwrap();
    assert_eq!(c.kver, "6.0.0-test");
    assert_eq!(
        summary(&c),
        pairs(&[
            ("crc_fast", "softdep pre of blk"),
            ("core", "dependency of blk"),
            ("ring", "dependency of blk"),
            ("blk", "profile"),
            (
                "pci",
                "alias pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
            ),
        ])
    );
    assert_eq!(c.modules[3].deps, ["core", "ring"]);
    assert_eq!(c.modules[3].rel_path, "kernel/drivers/blk.ko");
    assert_eq!(c.builtin, ["fs-ext4"]);
    assert_eq!(c.firmware, [tmp.path().join("lib/firmware/test/fw.bin")]);
    assert_eq!(c.missing_firmware, ["test/absent.bin"]);
    let listing = format_closure(&c);
    assert!(
        listing.starts_with("kernel/crypto/crc-fast.ko  (softdep pre of blk)\n"),
        "{listing}"
    );
    assert!(listing.contains("\nfs-ext4  (built in)\n"), "{listing}");
    assert!(
        listing.ends_with("test/absent.bin  (firmware, not found)\n"),
        "{listing}"
    );
}

#[test]
fn dash_and_underscore_are_the_same_name() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = fake_tree(tmp.path());
    let c = resolve(&tree, &names(&["crc-fast", "ext4"])).unwrap();
    assert_eq!(summary(&c), pairs(&[("crc_fast", "profile")]));
    assert_eq!(c.builtin, ["ext4"]);
}

#[test]
fn unknown_name_is_an_error_naming_it_and_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = fake_tree(tmp.path());
    let err = resolve(&tree, &names(&["blk", "nosuch"]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "module or alias \"nosuch\" is neither a module nor built into the kernel of {} (5 modules)",
            tree.display()
        )
    );
}

#[test]
fn modules_dep_files_take_precedence_over_modinfo() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = fake_tree(tmp.path());
    // An index that disagrees with .modinfo: ring no longer needs core.
    fs::write(
        tree.join("modules.dep"),
        "kernel/drivers/ring.ko:\nkernel/drivers/blk.ko: kernel/drivers/ring.ko\nkernel/drivers/core.ko:\n",
    )
    .unwrap();
    fs::write(tree.join("modules.alias"), "alias virtio:d00000002v* blk\n").unwrap();
    fs::write(tree.join("modules.softdep"), "softdep blk post: core\n").unwrap();
    let c = resolve(&tree, &names(&["virtio:d00000002v00001AF4"])).unwrap();
    assert_eq!(
        summary(&c),
        pairs(&[
            ("ring", "dependency of blk"),
            ("blk", "alias virtio:d00000002v00001AF4"),
            ("core", "softdep post of blk")
        ])
    );
}

#[test]
fn dependency_missing_from_the_tree_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = fake_tree(tmp.path());
    fs::write(
        tree.join("modules.dep"),
        "kernel/drivers/blk.ko: kernel/drivers/gone.ko\n",
    )
    .unwrap();
    let err = resolve(&tree, &names(&["blk"])).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "module blk depends on gone, which is not in {}",
            tree.display()
        )
    );
}

#[test]
fn decompressed_image_files_are_renamed_and_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = fake_tree(tmp.path());
    let ring = fs::read(tree.join("kernel/drivers/ring.ko")).unwrap();
    let core = fs::read(tree.join("kernel/drivers/core.ko")).unwrap();
    fs::remove_file(tree.join("kernel/drivers/ring.ko")).unwrap();
    fs::remove_file(tree.join("kernel/drivers/core.ko")).unwrap();
    fs::write(
        tree.join("kernel/drivers/ring.ko.xz"),
        crate::compress::compress(&ring, Compression::Xz, None).unwrap(),
    )
    .unwrap();
    fs::write(
        tree.join("kernel/drivers/core.ko.zst"),
        crate::compress::compress(&core, Compression::Zstd, None).unwrap(),
    )
    .unwrap();
    let c = resolve(&tree, &names(&["blk"])).unwrap();
    assert_eq!(c.modules[1].rel_path, "kernel/drivers/core.ko.zst");

    let files = image_files(&c, ModuleCompression::Decompress).unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/lib/firmware/test/fw.bin",
            "/lib/modules/6.0.0-test/kernel/crypto/crc-fast.ko",
            "/lib/modules/6.0.0-test/kernel/drivers/blk.ko",
            "/lib/modules/6.0.0-test/kernel/drivers/core.ko",
            "/lib/modules/6.0.0-test/kernel/drivers/ring.ko",
            "/lib/modules/6.0.0-test/modules.alias",
            "/lib/modules/6.0.0-test/modules.builtin",
            "/lib/modules/6.0.0-test/modules.dep",
            "/lib/modules/6.0.0-test/modules.softdep",
        ]
    );
    let text = |p: &str| {
        String::from_utf8(
            files
                .iter()
                .find(|f| f.path.ends_with(p))
                .unwrap()
                .data
                .clone(),
        )
        .unwrap()
    };
    assert_eq!(files[3].data, core);
    assert_eq!(files[4].data, ring);
    assert_eq!(
        text("modules.dep"),
        "kernel/crypto/crc-fast.ko:\n\
         kernel/drivers/blk.ko: kernel/drivers/ring.ko kernel/drivers/core.ko\n\
         kernel/drivers/core.ko:\n\
         kernel/drivers/ring.ko: kernel/drivers/core.ko\n"
    );
    assert_eq!(
        text("modules.alias"),
        "alias virtio:d00000002v* blk\nalias crypto-crc crc_fast\n"
    );
    assert_eq!(text("modules.softdep"), "softdep blk pre: crypto-crc\n");
    assert_eq!(text("modules.builtin"), "kernel/fs/ext4/ext4.ko\n");

    // Kept as they are, the index names the compressed files.
    let kept = image_files(&c, ModuleCompression::Keep).unwrap();
    let dep = kept
        .iter()
        .find(|f| f.path.ends_with("modules.dep"))
        .unwrap();
    assert_eq!(
        String::from_utf8(dep.data.clone()).unwrap(),
        "kernel/crypto/crc-fast.ko:\n\
         kernel/drivers/blk.ko: kernel/drivers/ring.ko.xz kernel/drivers/core.ko.zst\n\
         kernel/drivers/core.ko.zst:\n\
         kernel/drivers/ring.ko.xz: kernel/drivers/core.ko.zst\n"
    );
    // The index written decompressed reads back to the same closure.
    let back = tmp.path().join("back/lib/modules/6.0.0-test");
    for f in &files {
        if let Some(rel) = f.path.strip_prefix("/lib/modules/6.0.0-test/") {
            fs::create_dir_all(back.join(rel).parent().unwrap()).unwrap();
            fs::write(back.join(rel), &f.data).unwrap();
        }
    }
    let again = resolve(&back, &names(&["blk"])).unwrap();
    assert_eq!(summary(&again), summary(&c));
}

#[test]
fn keep_refuses_compressed_modules_when_the_kernel_cannot_decompress() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = fake_tree(tmp.path());
    let core = fs::read(tree.join("kernel/drivers/core.ko")).unwrap();
    fs::remove_file(tree.join("kernel/drivers/core.ko")).unwrap();
    fs::write(
        tree.join("kernel/drivers/core.ko.xz"),
        crate::compress::compress(&core, Compression::Xz, None).unwrap(),
    )
    .unwrap();
    fs::create_dir_all(tmp.path().join("boot")).unwrap();
    let config = tmp.path().join("boot/config-6.0.0-test");
    fs::write(
        &config,
        "CONFIG_MODULES=y\n# CONFIG_MODULE_DECOMPRESS is not set\n",
    )
    .unwrap();
    let c = resolve(&tree, &names(&["core"])).unwrap();
    let err = image_files(&c, ModuleCompression::Keep)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "compressed = \"keep\" stores compressed modules (kernel/drivers/core.ko.xz), but the kernel configuration {} lacks CONFIG_MODULE_DECOMPRESS=y, so the kernel cannot load them: use compressed = \"decompress\"",
            config.display()
        )
    );
    fs::write(&config, "CONFIG_MODULE_DECOMPRESS=y\n").unwrap();
    let files = image_files(&c, ModuleCompression::Keep).unwrap();
    assert!(files
        .iter()
        .any(|f| f.path == "/lib/modules/6.0.0-test/kernel/drivers/core.ko.xz"));
}

#[test]
fn serde_names_are_lower_case() {
    #[derive(Deserialize)]
    struct T {
        c: ModuleCompression,
    }
    let t: T = toml::from_str("c = \"keep\"").unwrap();
    assert_eq!(t.c, ModuleCompression::Keep);
    let t: T = toml::from_str("c = \"decompress\"").unwrap();
    assert_eq!(t.c, ModuleCompression::Decompress);
}

/// The cloud kernel's tree, unpacked by the qemu crate's kernel cache; the
/// test is skipped without it unless CI is set.
fn cloud_tree() -> Option<PathBuf> {
    match mkrootfs_qemu::debian_cloud_kernel() {
        Ok(k) => k.modules,
        Err(e) => {
            mkrootfs_tests::require(&format!("the cloud kernel ({e})"), false);
            None
        }
    }
}

#[test]
fn microvm_preset_resolves_on_the_cloud_kernel() {
    let Some(tree) = cloud_tree() else { return };
    let mut want = names(MICROVM_PRESET);
    want.extend(names(&[
        "overlay",
        "erofs",
        "squashfs",
        "ext4",
        "fs-overlay",
    ]));
    let c = resolve(&tree, &want).unwrap();
    let order: Vec<&str> = c.modules.iter().map(|m| m.name.as_str()).collect();
    let pos = |n: &str| {
        order
            .iter()
            .position(|m| *m == n)
            .unwrap_or_else(|| panic!("{n} not in {order:?}"))
    };
    assert!(pos("virtio") < pos("virtio_ring") || pos("virtio_ring") < pos("virtio_blk"));
    assert!(pos("virtio_ring") < pos("virtio_blk"));
    assert!(pos("virtio_pci_modern_dev") < pos("virtio_pci"));
    assert!(pos("vsock") < pos("vmw_vsock_virtio_transport_common"));
    assert!(pos("libcrc32c") < pos("erofs"));
    let blk = &c.modules[pos("virtio_blk")];
    assert_eq!(blk.rel_path, "kernel/drivers/block/virtio_blk.ko");
    assert_eq!(blk.requested_by, "profile");
    assert_eq!(
        c.modules[pos("virtio_rng")].rel_path,
        "kernel/drivers/char/hw_random/virtio-rng.ko"
    );
    assert_eq!(c.builtin, ["ext4"]);
    let files = image_files(&c, ModuleCompression::Decompress).unwrap();
    let alias = files
        .iter()
        .find(|f| f.path.ends_with("/modules.alias"))
        .unwrap();
    let alias = String::from_utf8(alias.data.clone()).unwrap();
    assert!(
        alias.contains("alias virtio:d00000002v* virtio_blk\n"),
        "{alias}"
    );
    assert!(
        alias.contains("alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n"),
        "{alias}"
    );
}
