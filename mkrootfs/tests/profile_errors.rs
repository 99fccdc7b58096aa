//! Mistakes in a profile reported where they were written, before anything
//! is assembled: a compression level out of range (also when the
//! compression comes from the parent profile), an unknown module preset,
//! an `argv[0]` that is not in the image, two services of one name.

use mkrootfs::build::{build, BuildOptions};
use std::fs;
use std::path::Path;

/// Loads and builds `leaf` (in a directory holding `files`); the error as
/// the CLI prints it, with the directory shown as `DIR`.
fn build_error(files: &[(&str, &str)], leaf: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(tmp.path().join(name), text).unwrap();
    }
    let shown = |e: String| e.replace(&tmp.path().display().to_string(), "DIR");
    let profile = match mkrootfs::profile::load_path(&tmp.path().join(leaf)) {
        Ok(p) => p,
        Err(e) => return shown(e.to_string()),
    };
    let opts = BuildOptions {
        output: Some(tmp.path().join("out.cpio")),
        // Never read: the build fails before the init binary matters.
        init_binary: Some(Path::new("/nonexistent/init").into()),
        mtime: Some(0),
        ..BuildOptions::default()
    };
    let err = build(&profile, &opts).expect_err("the build should fail");
    assert!(!tmp.path().join("out.cpio").exists());
    shown(err.to_string())
}

#[test]
fn bad_compression_level_names_file_line_column() {
    assert_eq!(
        build_error(
            &[("p.toml", "[image]\ncompression = \"gzip\"\nlevel = 12\n")],
            "p.toml"
        ),
        "DIR/p.toml:3:9: gzip level 12 is out of range 0-9"
    );
    // The level is the child's, the compression the parent's: the error
    // points at the child's line.
    assert_eq!(
        build_error(
            &[
                ("base.toml", "[image]\ncompression = \"xz\"\n"),
                ("p.toml", "extends = \"base\"\n\n[image]\nlevel = 10\n"),
            ],
            "p.toml"
        ),
        "DIR/p.toml:4:9: xz level 10 is out of range 0-9"
    );
    assert_eq!(
        build_error(&[("p.toml", "image = { level = 0 }\n")], "p.toml"),
        "DIR/p.toml:1:19: zstd level 0 is out of range 1-22"
    );
}

#[test]
fn unknown_preset_names_file_line_column() {
    assert_eq!(
        build_error(
            &[(
                "p.toml",
                "[modules]\nkernel = \"/k\"\npreset = \"microvmm\"\n\
                 [[init.services]]\nargv = [\"/bin/sh\"]\n"
            )],
            "p.toml"
        ),
        "DIR/p.toml:3:10: modules.preset \"microvmm\" is not a known preset (known: microvm)"
    );
}

#[test]
fn missing_argv0_names_file_line_column() {
    if !mkrootfs_tests::require_file("/bin/busybox") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("p.toml");
    fs::write(
        &path,
        "[image]\ncompression = \"none\"\n[init]\n[[init.services]]\nargv = [\"/bin/nope\"]\n",
    )
    .unwrap();
    let profile = mkrootfs::profile::load_path(&path).unwrap();
    let opts = BuildOptions {
        output: Some(tmp.path().join("out.cpio")),
        init_binary: Some("/bin/busybox".into()),
        mtime: Some(0),
        ..BuildOptions::default()
    };
    let err = build(&profile, &opts).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:5:1: init.services[0] (nope): argv[0] /bin/nope is not a file of the image",
            path.display()
        )
    );
}

/// Issue 21: two services of the same name were accepted, and at boot the
/// second container took the first's cgroup (mkrootfs/<name>) as a
/// leftover and killed it. Names, given or from argv[0], must be unique.
#[test]
fn duplicate_service_names_are_an_error_at_file_line_column() {
    assert_eq!(
        build_error(
            &[(
                "p.toml",
                "[image]\ncompression = \"none\"\n\
                 [[init.services]]\nname = \"web\"\nargv = [\"/a\"]\n\
                 [[init.services]]\nargv = [\"/b\"]\nname = \"web\"\n"
            )],
            "p.toml"
        ),
        "DIR/p.toml:8:8: init.services[1]: name \"web\" is already init.services[0]'s: \
         service names must be unique (give one a `name`)"
    );
    assert_eq!(
        build_error(
            &[(
                "p.toml",
                "[init]\nservices = [{ argv = [\"/bin/sh\"] }, { argv = [\"sh\"] }]\n"
            )],
            "p.toml"
        ),
        "DIR/p.toml:2:39: init.services[1]: name (from argv[0]) \"sh\" is already \
         init.services[0]'s: service names must be unique (give one a `name`)"
    );
}

/// Issue 21: values that were accepted and silently did nothing are
/// errors where they were written: a level without compression, an
/// `[init]` table next to `image.init` (the image's own init never reads
/// it), a module to load at boot that the image does not hold.
#[test]
fn silent_acceptances_are_errors_at_file_line_column() {
    assert_eq!(
        build_error(
            &[("p.toml", "[image]\ncompression = \"none\"\nlevel = 9\n")],
            "p.toml"
        ),
        "DIR/p.toml:3:9: level 9 means nothing without compression (compression = \"none\"): remove it"
    );
    assert_eq!(
        build_error(
            &[(
                "p.toml",
                "[image]\ninit = \"/init\"\n[init]\n[[init.services]]\nargv = [\"/a\"]\n"
            )],
            "p.toml"
        ),
        "DIR/p.toml:2:8: image.init = \"/init\" runs the image's own program as PID 1, which \
         never reads the [init] table at DIR/p.toml:3:1: remove one of them"
    );
    assert_eq!(
        build_error(
            &[(
                "p.toml",
                "[init]\nmodules = [\"virtio_blk\", \"nosuchmod\"]\n\
                 [[init.services]]\nargv = [\"/a\"]\n[modules]\nkernel = \"/k\"\nload = [\"virtio-blk\"]\n"
            )],
            "p.toml"
        )
        .lines()
        .next()
        .unwrap(),
        "DIR/p.toml:2:26: init.modules: \"nosuchmod\" is not a module of the image: name it in \
         [modules] load, which adds it with its dependencies and loads it at boot"
    );
}

/// Issue 21: a bind mount of a path the image does not have was accepted
/// silently; it is a warning at its line (an earlier mount may bring it).
#[test]
fn bind_mount_source_not_in_the_image_is_a_warning_at_its_line() {
    if !mkrootfs_tests::require_file("/bin/busybox") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("p.toml");
    fs::write(
        &path,
        "[image]\ncompression = \"none\"\n[[files]]\ndest = \"/bin/app\"\ncontent = \"\"\nmode = \"0755\"\n\
         [init]\n[[init.mounts]]\nsource = \"/srv/data\"\ntarget = \"/data\"\nfstype = \"none\"\noptions = \"bind\"\n\
         [[init.mounts]]\nsource = \"/data/x\"\ntarget = \"/x\"\nfstype = \"none\"\noptions = \"bind,ro\"\n\
         [[init.mounts]]\nsource = \"/bin\"\ntarget = \"/b\"\nfstype = \"none\"\noptions = \"bind\"\n\
         [[init.services]]\nargv = [\"/bin/app\"]\n\
         [[init.services]]\nname = \"c\"\nargv = [\"/bin/app\"]\n\
         container = { mounts = [{ type = \"bind\", source = \"/var/nosuch\", target = \"/a\" }, \
         { type = \"bind\", source = \"/run/x\", target = \"/b\" }, { type = \"bind\", source = \"/data/y\", target = \"/c\" }] }\n",
    )
    .unwrap();
    let profile = mkrootfs::profile::load_path(&path).unwrap();
    let opts = BuildOptions {
        output: Some(tmp.path().join("out.cpio")),
        init_binary: Some("/bin/busybox".into()),
        mtime: Some(0),
        ..BuildOptions::default()
    };
    let report = build(&profile, &opts).unwrap();
    // A container's bind source under /run or a VM mount may appear at
    // boot; one that nothing brings is named.
    assert_eq!(
        report.notes,
        [
            format!(
                "{}:9:10: init.mounts[0]: bind source /srv/data is not in the image (nor under an \
                 earlier mount's target): the mount will fail at boot",
                path.display()
            ),
            format!(
                "{}:28:25: init.services[1] (c).container.mounts[0]: bind source /var/nosuch is not in \
                 the image (nor under one of the VM's mounts): the container will not start",
                path.display()
            )
        ]
    );
}

/// Issue 21: errors without a place: two entries for one path (both
/// described the same), a missing library, binary or `src`. Each names
/// the profile's file:line:column.
#[test]
fn missing_inputs_and_duplicate_entries_name_file_line_column() {
    assert_eq!(
        build_error(
            &[(
                "p.toml",
                "[image]\ninit = \"/init\"\n\
                 [[files]]\ndest = \"/init\"\ncontent = \"a\"\n\
                 [[symlinks]]\npath = \"/init\"\ntarget = \"b\"\n"
            )],
            "p.toml"
        ),
        "/init: already in the image as file (from files entry /init at DIR/p.toml:4:8), \
         now asked as a different symlink by symlinks entry /init at DIR/p.toml:7:8"
    );
    assert_eq!(
        build_error(
            &[(
                "p.toml",
                "[image]\ninit = \"/init\"\n[[files]]\ndest = \"/init\"\nsrc = \"nosuch\"\n"
            )],
            "p.toml"
        ),
        "read DIR/nosuch (for files entry /init at DIR/p.toml:4:8)"
    );
    assert_eq!(
        build_error(
            &[(
                "p.toml",
                "binaries = [\"sh\", \"mkrootfs-no-such-program\"]\n[image]\ninit = \"/bin/sh\"\n"
            )],
            "p.toml"
        ),
        "binary \"mkrootfs-no-such-program\" (from DIR/p.toml:1:19) not found in PATH \
         /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin (in /)"
    );
    let e = build_error(
        &[(
            "p.toml",
            "libraries = [\n  \"libnosuch.so.7\",\n]\n[image]\ninit = \"/bin/sh\"\n",
        )],
        "p.toml",
    );
    assert!(e.starts_with("DIR/p.toml:2:3: "), "{e}");
    assert!(e.contains("libnosuch.so.7"), "{e}");
}

/// Issue 21: a missing OCI layout or bundle was an error without the
/// profile's place.
#[test]
fn missing_oci_layout_or_bundle_names_file_line_column() {
    let e = build_error(
        &[(
            "p.toml",
            "[[init.services]]\nname = \"web\"\n\
             container = { image = { layout = \"nosuch\", ref = \"latest\" } }\n",
        )],
        "p.toml",
    );
    assert_eq!(
        e,
        "DIR/p.toml:3:34: DIR/nosuch/oci-layout: missing: not an OCI image layout"
    );
    let e = build_error(
        &[(
            "p.toml",
            "[[init.services]]\nname = \"web\"\n[init.services.container]\nbundle = \"nob\"\n",
        )],
        "p.toml",
    );
    assert!(e.starts_with("DIR/p.toml:4:10: read DIR/nob"), "{e}");
}

/// Issue 21: a module that is not in the tree was an error without the
/// profile's place.
#[test]
fn unknown_module_names_file_line_column() {
    let kernel =
        mkrootfs_qemu::debian_cloud_kernel().unwrap_or_else(|e| panic!("test kernel: {e}"));
    let tree = kernel.modules.expect("the test kernel has modules");
    let e = build_error(
        &[(
            "p.toml",
            &format!(
                "[modules]\nkernel = \"{}\"\nload = [\"virtio_blk\", \"nosuchmod\"]\n\
                 [[init.services]]\nargv = [\"/a\"]\n",
                tree.display()
            ),
        )],
        "p.toml",
    );
    assert!(
        e.starts_with(
            "DIR/p.toml:3:23: module or alias \"nosuchmod\" is neither a module nor built into the kernel of "
        ),
        "{e}"
    );
}

/// Issue 21: the search path of bare `binaries` names is the profile's
/// (`image.binary_path`), checked where it is written.
#[test]
fn binary_path_is_the_profiles_and_checked_at_its_line() {
    assert_eq!(
        build_error(
            &[("p.toml", "[image]\nbinary_path = \"usr/bin\"\n")],
            "p.toml"
        ),
        "DIR/p.toml:2:15: binary_path \"usr/bin\" must be absolute directories separated by `:`"
    );
    assert_eq!(
        build_error(
            &[(
                "p.toml",
                "binaries = [\"sh\"]\n[image]\ninit = \"/bin/sh\"\nbinary_path = \"/nonexistent/bin\"\n"
            )],
            "p.toml"
        ),
        "binary \"sh\" (from DIR/p.toml:1:13) not found in PATH /nonexistent/bin (in /)"
    );
}
