use super::*;
use std::os::unix::fs::symlink;

/// A profile with its own /init that asks for modules from the "auto" tree.
fn auto_modules_profile(dir: &Path) -> Profile {
    let path = dir.join("auto.toml");
    fs::write(
        &path,
        "[image]\ninit = \"/init\"\ncompression = \"none\"\n\
         [[files]]\ndest = \"/init\"\ncontent = \"#!/bin/sh\\n\"\nmode = \"0755\"\n\
         [modules]\nkernel = \"auto\"\nload = [\"virtio_blk\"]\n",
    )
    .unwrap();
    crate::profile::load_path(&path).unwrap()
}

/// `mkrootfs run --kernel K` with K lacking a module tree used to take the
/// modules of whatever kernel the harness found by itself.
#[test]
fn auto_kernel_without_module_tree_names_the_kernel_and_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let p = auto_modules_profile(dir.path());
    let opts = BuildOptions {
        output: Some(dir.path().join("out.cpio")),
        auto_kernel: Some(AutoKernel {
            vmlinuz: PathBuf::from("/k/boot/vmlinuz-9.9.9-test"),
            version: "9.9.9-test".to_string(),
            modules: None,
        }),
        mtime: Some(0),
        ..Default::default()
    };
    let err = build(&p, &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "modules.kernel = \"auto\": kernel /k/boot/vmlinuz-9.9.9-test (version 9.9.9-test) \
         has no module tree /k/lib/modules/9.9.9-test (nor under usr/); its modules cannot \
         come from another kernel's tree: pass --kernel-modules DIR for this kernel's modules"
    );
    assert!(!dir.path().join("out.cpio").exists());
}

#[test]
fn auto_kernel_not_given_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = auto_modules_profile(dir.path());
    let opts = BuildOptions {
        output: Some(dir.path().join("out.cpio")),
        mtime: Some(0),
        ..Default::default()
    };
    let err = build(&p, &opts).unwrap_err();
    assert!(
        matches!(err, BuildError::Plan(PlanError::AutoKernelUnknown)),
        "{err}"
    );
}

#[test]
fn binary_behind_an_absolute_symlink_in_the_sysroot_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::create_dir_all(root.join("etc/mkrootfs-alt")).unwrap();
    fs::write(root.join("usr/bin/mkrootfs-vi.real"), b"\x7fELF").unwrap();
    // Absolute targets: meaningless (or another file) on the host.
    symlink(
        "/usr/bin/mkrootfs-vi.real",
        root.join("etc/mkrootfs-alt/vi"),
    )
    .unwrap();
    symlink("/etc/mkrootfs-alt/vi", root.join("usr/bin/mkrootfs-vi")).unwrap();
    assert_eq!(
        locate_binary(root, "mkrootfs-vi", "p").unwrap(),
        "/usr/bin/mkrootfs-vi"
    );
    assert_eq!(
        locate_binary(root, "/usr/bin/mkrootfs-vi", "p").unwrap(),
        "/usr/bin/mkrootfs-vi"
    );
    let e = locate_binary(root, "/etc/mkrootfs-alt", "p").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "binary \"/etc/mkrootfs-alt\" (from p) not found in {}",
            root.join("etc/mkrootfs-alt").display()
        )
    );
}
