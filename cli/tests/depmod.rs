//! Kernel module trees as a distribution ships them after `depmod`: the
//! test kernel's package tree indexed by the real `depmod` (kmod), built
//! into an image, and its module closure compared with modprobe's own.

use mkrootfs_tests as util;

use mkrootfs::cpio::{read_archive, Limits};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The test kernel's `lib/modules/<kver>` copied (hard-linked where it can)
/// under `root`, then indexed by the real `depmod -b root kver`.
fn depmod_tree(root: &Path) -> Option<(PathBuf, String)> {
    let depmod = util::require_tool("depmod")?;
    let pkg = util::test_kernel_package();
    let pkg = if util::require(
        "the test kernel package (.ci/run unpacks it)",
        pkg.is_some(),
    ) {
        pkg?
    } else {
        return None;
    };
    let src = fs::read_dir(pkg.join("lib/modules"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("kernel").is_dir())
        .expect("a lib/modules/<kver> directory in the test kernel package");
    let kver = src.file_name().unwrap().to_string_lossy().into_owned();
    let modules = root.join("lib/modules");
    fs::create_dir_all(&modules).unwrap();
    let linked = Command::new("cp")
        .arg("-al")
        .arg(&src)
        .arg(&modules)
        .status()
        .is_ok_and(|s| s.success());
    if !linked {
        let _ = fs::remove_dir_all(modules.join(&kver));
        run(Command::new("cp").arg("-a").arg(&src).arg(&modules));
    }
    run(Command::new(depmod).arg("-b").arg(root).arg(&kver));
    Some((modules.join(&kver), kver))
}

/// Modules whose softdeps and dependencies cover what Debian's depmod
/// writes: untagged softdeps (cifs), several softdep lines for one module
/// of which modprobe uses the first (ksmbd, btrfs), a softdep naming an
/// alias of several modules (crc32) and one of a built-in (nfsd), plain
/// dependency chains (virtio_blk).
const MODULES: &[&str] = &["cifs", "ksmbd", "nfsd", "btrfs", "virtio_blk"];

fn mkrootfs(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "0"))
}

/// Issue 7: `softdep cifs gcm` (no `pre:`/`post:`) in a Debian
/// `modules.softdep` failed the whole build.
#[test]
fn tree_indexed_by_real_depmod_builds_into_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((tree, kver)) = depmod_tree(&tmp.path().join("root")) else {
        return;
    };
    let softdep = fs::read_to_string(tree.join("modules.softdep")).unwrap();
    assert!(
        softdep
            .lines()
            .any(|l| l.starts_with("softdep ") && !l.contains(" pre:") && !l.contains(" post:")),
        "this depmod output no longer has an untagged softdep line: the test \
         does not cover issue 7 any more\n{softdep}"
    );

    let profile = tmp.path().join("p.toml");
    let load: Vec<String> = MODULES.iter().map(|m| format!("{m:?}")).collect();
    fs::write(
        &profile,
        format!(
            "[image]\ninit = \"/init\"\ncompression = \"none\"\n\
             [[files]]\ndest = \"/init\"\ncontent = \"#!/bin/sh\\n\"\nmode = \"0755\"\n\
             [modules]\nkernel = {:?}\nload = [{}]\n",
            tree.display().to_string(),
            load.join(", ")
        ),
    )
    .unwrap();
    let image = tmp.path().join("out.cpio");
    mkrootfs(&[
        "build",
        "-p",
        profile.to_str().unwrap(),
        "-o",
        image.to_str().unwrap(),
    ]);

    let bytes = fs::read(&image).unwrap();
    let segments = read_archive(&bytes, &Limits::default()).unwrap();
    let entries: Vec<_> = segments.iter().flat_map(|s| s.entries.iter()).collect();
    let file = |name: &str| {
        // Under /usr/lib when /lib is the merged-/usr symlink.
        let path = format!("lib/modules/{kver}/{name}");
        let e = entries
            .iter()
            .find(|e| {
                let n = e.name.trim_start_matches('/');
                n == path || n.strip_prefix("usr/") == Some(path.as_str())
            })
            .unwrap_or_else(|| panic!("{path} not in the image"));
        String::from_utf8(e.data.clone()).unwrap()
    };
    // The image's index is what modprobe would use: the first softdep line
    // of each module, untagged words gone.
    assert_eq!(
        file("modules.softdep"),
        "softdep btrfs pre: blake2b-256\n\
         softdep ksmbd pre: crc32\n\
         softdep libcrc32c pre: crc32c\n\
         softdep nfsd pre: crypto-md5\n"
    );
    let dep = file("modules.dep");
    for m in [
        "kernel/fs/smb/client/cifs.ko:",
        "kernel/fs/smb/server/ksmbd.ko:",
        "kernel/crypto/crc32_generic.ko:",
        "kernel/drivers/block/virtio_blk.ko:",
    ] {
        assert!(
            dep.contains(m),
            "{m} missing from the image's modules.dep\n{dep}"
        );
    }
}

/// The module closure equals modprobe's (`--show-depends`, same kmod,
/// no host configuration) on the same depmod'ed tree.
#[test]
fn module_closure_of_a_depmod_tree_matches_modprobe() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let Some((tree, kver)) = depmod_tree(&root) else {
        return;
    };
    let Some(modprobe) = util::require_tool("modprobe") else {
        return;
    };
    let no_config = tmp.path().join("modprobe.d");
    fs::create_dir(&no_config).unwrap();
    let prefix = format!("insmod {}/", tree.display());
    let mut want = BTreeSet::new();
    for m in MODULES {
        let o = run(Command::new(&modprobe)
            .arg("-C")
            .arg(&no_config)
            .arg("-d")
            .arg(&root)
            .args(["-S", &kver, "--show-depends", m]));
        for line in String::from_utf8(o.stdout).unwrap().lines() {
            if let Some(path) = line.trim_end().strip_prefix(&prefix) {
                want.insert(path.to_string());
            }
        }
    }
    let mut args = vec![
        "deps",
        "--module",
        "--kernel-modules",
        tree.to_str().unwrap(),
    ];
    args.extend(MODULES);
    let o = mkrootfs(&args);
    let got: BTreeSet<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(')'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| p.contains(".ko"))
        .map(str::to_string)
        .collect();
    assert!(
        want.len() > MODULES.len(),
        "modprobe found too little: {want:?}"
    );
    assert_eq!(got, want);
}
