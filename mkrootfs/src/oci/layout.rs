//! An OCI image layout: `oci-layout`, `index.json` and the manifest chosen
//! by ref and platform (linux/amd64, the only guest we build for).

use super::blob::Blobs;
use super::json;
use super::OciError;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The annotation that names a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The platform of the guest.
pub const OS: &str = "linux";
pub const ARCH: &str = "amd64";
/// Nested indexes followed from `index.json`.
const MAX_INDEX_DEPTH: usize = 4;

/// The manifest and config chosen from a layout.
#[derive(Debug)]
pub struct Selected {
    pub blobs: Blobs,
    pub manifest: ImageManifest,
    pub manifest_desc: Descriptor,
    pub config: ImageConfiguration,
    pub config_path: PathBuf,
}

fn read_text(path: &Path, what: &str) -> Result<String, OciError> {
    match fs::read(path) {
        Ok(b) => String::from_utf8(b).map_err(|_| OciError::Invalid {
            path: path.to_path_buf(),
            message: "is not UTF-8 JSON".to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(OciError::Invalid {
            path: path.to_path_buf(),
            message: format!("missing: {what}"),
        }),
        Err(source) => Err(OciError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Opens the layout at `dir` and picks the linux/amd64 manifest named
/// `reference` (or the only one when no ref is given), verifying the
/// manifest and config blobs.
pub fn select(dir: &Path, reference: Option<&str>) -> Result<Selected, OciError> {
    let layout_path = dir.join("oci-layout");
    let text = read_text(&layout_path, "not an OCI image layout")?;
    let layout: oci_spec::image::OciLayout = json::parse(&layout_path, &text)?;
    if !layout.image_layout_version().starts_with("1.") {
        return Err(OciError::Invalid {
            path: layout_path,
            message: format!(
                "imageLayoutVersion {:?} is not supported (1.x)",
                layout.image_layout_version()
            ),
        });
    }
    let index_path = dir.join("index.json");
    let text = read_text(&index_path, "an OCI image layout needs its index")?;
    let index: ImageIndex = json::parse(&index_path, &text)?;
    let blobs = Blobs::new(dir);

    let named: Vec<&Descriptor> = match reference {
        Some(r) => index
            .manifests()
            .iter()
            .filter(|d| ref_of(d) == Some(r))
            .collect(),
        None => index.manifests().iter().collect(),
    };
    if named.is_empty() {
        let refs: Vec<&str> = index.manifests().iter().filter_map(ref_of).collect();
        let refs = if refs.is_empty() {
            "none".to_string()
        } else {
            refs.join(", ")
        };
        return Err(OciError::Invalid {
            path: index_path,
            message: match reference {
                Some(r) => format!("no manifest with ref {r:?} (refs: {refs})"),
                None => "lists no manifest".to_string(),
            },
        });
    }
    if reference.is_none() {
        let refs: std::collections::BTreeSet<&str> =
            named.iter().filter_map(|d| ref_of(d)).collect();
        if refs.len() > 1 {
            return Err(OciError::Invalid {
                path: index_path,
                message: format!(
                    "holds several images ({}): say which with ref",
                    refs.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }

    // Manifests (nested indexes opened), each with the platform it claims.
    let mut manifests = Vec::new();
    let mut offered = Vec::new();
    let mut queue: Vec<(Descriptor, usize)> = named.into_iter().map(|d| (d.clone(), 0)).collect();
    while !queue.is_empty() {
        let (d, depth) = queue.remove(0);
        if let Some(p) = d.platform() {
            let name = format!("{}/{}", p.os(), p.architecture());
            if !offered.contains(&name) {
                offered.push(name.clone());
            }
            if name != format!("{OS}/{ARCH}") {
                continue;
            }
        }
        match d.media_type() {
            MediaType::ImageManifest => manifests.push(d),
            MediaType::Other(t) if t == DOCKER_MANIFEST => manifests.push(d),
            MediaType::ImageIndex if depth < MAX_INDEX_DEPTH => {
                let (path, text) = blobs.read_json(&d)?;
                let nested: ImageIndex = json::parse(&path, &text)?;
                queue.extend(nested.manifests().iter().map(|n| (n.clone(), depth + 1)));
            }
            MediaType::Other(t) if t == DOCKER_LIST && depth < MAX_INDEX_DEPTH => {
                let (path, text) = blobs.read_json(&d)?;
                let nested: ImageIndex = json::parse(&path, &text)?;
                queue.extend(nested.manifests().iter().map(|n| (n.clone(), depth + 1)));
            }
            other => {
                return Err(OciError::Blob {
                    digest: d.digest().to_string(),
                    path: blobs.path(d.digest()),
                    message: format!("media type {other} is not an image manifest or index"),
                })
            }
        }
    }
    let Some(manifest_desc) = manifests.into_iter().next() else {
        return Err(OciError::Invalid {
            path: index_path,
            message: format!(
                "no {OS}/{ARCH} manifest{} (the layout offers {})",
                reference
                    .map(|r| format!(" for ref {r:?}"))
                    .unwrap_or_default(),
                offered.join(", ")
            ),
        });
    };
    let (manifest_path, text) = blobs.read_json(&manifest_desc)?;
    let manifest: ImageManifest = json::parse(&manifest_path, &text)?;
    let config_desc = manifest.config().clone();
    match config_desc.media_type() {
        MediaType::ImageConfig => {}
        MediaType::Other(t) if t == DOCKER_CONFIG => {}
        other => {
            return Err(OciError::Blob {
                digest: config_desc.digest().to_string(),
                path: blobs.path(config_desc.digest()),
                message: format!("media type {other} is not an image config"),
            })
        }
    }
    let (config_path, text) = blobs.read_json(&config_desc)?;
    let config: ImageConfiguration = json::parse(&config_path, &text)?;
    let platform = format!("{}/{}", config.os(), config.architecture());
    if platform != format!("{OS}/{ARCH}") {
        return Err(OciError::Blob {
            digest: config_desc.digest().to_string(),
            path: config_path,
            message: format!("the image is for {platform}, not {OS}/{ARCH}"),
        });
    }
    Ok(Selected {
        blobs,
        manifest,
        manifest_desc,
        config,
        config_path,
    })
}

/// Docker's schema 2 media types, which `skopeo --preserve-digests` and
/// older tools leave in OCI layouts.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

fn ref_of(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}
