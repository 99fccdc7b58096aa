//! The builder's entry point for OCI inputs: for each service whose
//! `container` table names an `image` or a `bundle`, put the container
//! root into the image and fill the service from the input, under the
//! profile's own keys. `crate::container` then validates and resolves it
//! like any other container.

use super::bundle::load_bundle;
use super::settings::{self, Settings};
use super::{load_image, OciError};
use crate::container::seccomp::BundlePolicy;
use crate::profile::Profile;
use crate::tree::Tree;
use mkrootfs_config::InitConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What preparing OCI inputs leaves for the rest of the build.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Scratch directories holding layer contents: they must live until
    /// the image is written.
    pub scratch: Vec<tempfile::TempDir>,
    pub notes: Vec<String>,
    /// The seccomp policies of bundles, by service index.
    pub seccomp: BTreeMap<usize, BundlePolicy>,
}

/// Keys written in the profile under `init.services[i]` and under its
/// `container` table.
fn written_keys(profile: &Profile, i: usize) -> (BTreeSet<String>, BTreeSet<String>) {
    let Some(src) = &profile.init_source else {
        return Default::default();
    };
    let Ok(doc) = src.text.parse::<toml::Table>() else {
        return Default::default();
    };
    let svc = doc
        .get("init")
        .and_then(|v| v.get("services"))
        .and_then(|v| v.get(i))
        .and_then(|v| v.as_table());
    let keys = |t: Option<&toml::Table>| -> BTreeSet<String> {
        t.map(|t| t.keys().cloned().collect()).unwrap_or_default()
    };
    let container = svc
        .and_then(|s| s.get("container"))
        .and_then(|v| v.as_table());
    (keys(svc), keys(container))
}

/// `error` at `init.services[i].container.<keys>` of the profile, when it
/// has a file: a missing or unreadable input (errors that name a place in
/// the input, a JSON line or a blob, are kept as they are).
fn at_key(profile: &Profile, i: usize, keys: &[&str], error: OciError) -> OciError {
    let (Some(source), OciError::Read { .. } | OciError::Invalid { .. }) =
        (&profile.init_source, &error)
    else {
        return error;
    };
    let mut path = vec![
        crate::profile::Seg::Key("services"),
        crate::profile::Seg::Index(i),
        crate::profile::Seg::Key("container"),
    ];
    path.extend(keys.iter().map(|k| crate::profile::Seg::Key(k)));
    OciError::At(Box::new(super::At {
        at: crate::plan::init_position(source, &path),
        error,
    }))
}

/// Fills `cfg`'s OCI-backed services and adds their roots to `tree`.
pub fn prepare(
    tree: &mut Tree,
    profile: &Profile,
    cfg: &mut InitConfig,
) -> Result<Prepared, OciError> {
    let mut out = Prepared::default();
    let base = profile
        .init_source
        .as_ref()
        .map(|s| s.dir())
        .unwrap_or_else(|| profile.base_dir.clone());
    for i in 0..cfg.services.len() {
        let Some(c) = cfg.services[i].container.clone() else {
            continue;
        };
        if c.image.is_none() && c.bundle.is_none() {
            continue;
        }
        let name = cfg.services[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("service-{i}"));
        let root = if c.root == "/" {
            format!("/containers/{name}")
        } else {
            c.root.clone()
        };
        let origin = format!("container root of service {name}");
        let settings: Settings = match (&c.image, &c.bundle) {
            (Some(_), Some(_)) => {
                return Err(OciError::Invalid {
                    path: profile.path.clone(),
                    message: format!(
                        "init.services[{i}].container: image and bundle exclude each other"
                    ),
                })
            }
            (Some(img), None) => {
                let dir = base.join(&img.layout);
                let scratch = tempfile::Builder::new()
                    .prefix("mkrootfs-oci.")
                    .tempdir()
                    .map_err(|source| OciError::Scratch {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                let image = load_image(&dir, img.reference.as_deref(), scratch.path())
                    .map_err(|e| at_key(profile, i, &["image", "layout"], e))?;
                image.root.add_to_tree(tree, &root, &origin)?;
                out.scratch.push(scratch);
                out.notes.extend(image.notes);
                Settings::from_image(&image.defaults)
            }
            (None, Some(b)) => {
                let dir = base.join(b);
                let mut bundle =
                    load_bundle(&dir).map_err(|e| at_key(profile, i, &["bundle"], e))?;
                if let Some(policy) = bundle.settings.seccomp_policy.take() {
                    // Passed on in memory; the container's `seccomp` names
                    // where it came from (unless the profile's own key wins).
                    let origin = dir.join("config.json");
                    bundle.settings.container.seccomp = origin.to_string_lossy().into_owned();
                    out.seccomp.insert(i, BundlePolicy { origin, policy });
                }
                add_host_root(tree, &bundle.root, &root, &origin)?;
                out.notes.extend(bundle.settings.notes.iter().cloned());
                bundle.settings
            }
            (None, None) => continue,
        };
        let (ws, wc) = written_keys(profile, i);
        let svc = &mut cfg.services[i];
        settings::apply(svc, &settings, &ws, &wc);
        if svc.argv.is_empty() {
            return Err(OciError::Invalid {
                path: profile.path.clone(),
                message: format!(
                    "init.services[{i}]: the {} gives no command (Entrypoint/Cmd or process.args) and the service has no argv",
                    if c.image.is_some() { "image" } else { "bundle" }
                ),
            });
        }
        if let Some(c) = svc.container.as_mut() {
            c.root = root;
        }
        if svc.name.is_none() {
            svc.name = Some(name);
        }
    }
    Ok(out)
}

/// Copies a bundle's root directory to `dest`, keeping owners (the tree's
/// host copy makes everything root's).
fn add_host_root(tree: &mut Tree, src: &Path, dest: &str, origin: &str) -> Result<(), OciError> {
    tree.add_host_tree(src, dest, origin)?;
    let host_of = |path: &str| -> PathBuf {
        let rel = path
            .strip_prefix(dest)
            .unwrap_or("")
            .trim_start_matches('/');
        src.join(rel)
    };
    tree.map_owners(dest, |path, _, _| {
        let host = host_of(path);
        let md = std::fs::symlink_metadata(&host).map_err(|source| OciError::Read {
            path: host.clone(),
            source,
        })?;
        Ok((md.uid(), md.gid()))
    })
}
