//! Where the static init is found for an image that asks for mkrootfs's own,
//! and how it and its configuration enter a tree.

use super::BuildError;
use crate::tree::{Meta, Node, Tree};
use mkrootfs_config::{InitConfig, INIT_CONFIG_PATH};
use std::path::{Path, PathBuf};

/// Where `make init` puts the static init, under a cargo target directory.
pub const INIT_IN_TARGET: &str = "x86_64-unknown-linux-musl/release/init";

/// Adds the init binary at `/init` and `cfg` as its `init.json`.
pub(super) fn add(tree: &mut Tree, init: Vec<u8>, cfg: &InitConfig) -> Result<(), BuildError> {
    add_binary(tree, init)?;
    add_config(tree, cfg)
}

/// Adds the init binary at `/init`: before the services are checked, so
/// that they are checked against the finished tree (`/init --check-config`).
pub(super) fn add_binary(tree: &mut Tree, init: Vec<u8>) -> Result<(), BuildError> {
    tree.add(
        "/init",
        Node::File(init.into()),
        Meta::root(0o755),
        "the mkrootfs init",
    )?;
    Ok(())
}

/// Adds `cfg` as the init's `init.json`, once the container plans are in it.
pub(super) fn add_config(tree: &mut Tree, cfg: &InitConfig) -> Result<(), BuildError> {
    let json = serde_json::to_vec_pretty(cfg).map_err(BuildError::InitJson)?;
    tree.add(
        INIT_CONFIG_PATH,
        Node::File(json.into()),
        Meta::root(0o644),
        "the [init] table",
    )?;
    Ok(())
}

/// The static init: `$MKROOTFS_INIT`, next to this executable's target
/// directory, this workspace's target directory, or the system location.
pub fn find_init() -> Result<PathBuf, BuildError> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("MKROOTFS_INIT") {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/release/mkrootfs or target/debug/deps/test-binary
        for anc in exe.ancestors().skip(1).take(3) {
            candidates.push(anc.join(INIT_IN_TARGET));
        }
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(INIT_IN_TARGET),
    );
    candidates.push(PathBuf::from("/usr/lib/mkrootfs/init"));
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    let searched: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(BuildError::NoInit {
        searched: searched.join(", "),
    })
}
