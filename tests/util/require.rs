//! What a test needs from the machine: the one CI-aware `require`. A test
//! that cannot run says why and passes, except under `CI=true`, where
//! `.ci/run` has installed everything and it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether a test that needs something this machine may lack can run.
/// Where it is missing the test is skipped with a note, except under
/// `CI=true`, where `.ci/run` has installed everything and a missing piece
/// means the CI script is broken: the test fails instead of passing empty.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true but {what} is missing: .ci/run must install it"
    );
    eprintln!("skipped: {what} is missing");
    false
}

/// [`require`] for a file (`/bin/busybox`: busybox-static).
pub fn require_file(path: &str) -> bool {
    require(path, Path::new(path).exists())
}

/// Whether `tool` can be run (`tool --version` or `tool --help` starts).
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty())
        .unwrap_or(false)
}

/// [`require`] for a program on `$PATH` (or `/usr/sbin`, `/sbin`, where
/// Debian puts `depmod` and `modprobe` outside a user's `$PATH`).
pub fn require_tool(tool: &str) -> Option<PathBuf> {
    let found = std::iter::once(PathBuf::from(tool))
        .chain(
            ["/usr/sbin", "/sbin"]
                .iter()
                .map(|d| Path::new(d).join(tool)),
        )
        .find(|p| have(&p.to_string_lossy()));
    if require(&format!("the `{tool}` program"), found.is_some()) {
        found
    } else {
        None
    }
}

/// The test kernel's unpacked package in the kernel cache (the layout the
/// qemu crate and `.ci/run` use): `<cache>/kernels/linux-image-*/`, the
/// newest by name.
pub fn test_kernel_package() -> Option<PathBuf> {
    let cache = std::env::var_os("MKROOTFS_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("mkrootfs")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mkrootfs")))?;
    let mut pkgs: Vec<PathBuf> = std::fs::read_dir(cache.join("kernels"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("linux-image-"))
                && p.join("lib/modules").is_dir()
        })
        .collect();
    pkgs.sort();
    pkgs.pop()
}
