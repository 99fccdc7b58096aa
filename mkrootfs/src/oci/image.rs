//! An image from a layout: its layers applied into a [`Rootfs`] and the
//! defaults its config gives a container (image-spec `config.md`).

use super::blob::{Hasher, HashingReader};
use super::layer::Rootfs;
use super::layout::{self, Selected};
use super::OciError;
use oci_spec::image::{Descriptor, Digest, MediaType};
use std::fs;
use std::io::{BufReader, Read};
use std::path::Path;
use std::str::FromStr;

/// What the image config says a container runs, before profile keys
/// override it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    /// Entrypoint followed by Cmd.
    pub argv: Vec<String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved against the
    /// container's own `/etc/passwd` and `/etc/group`.
    pub user: Option<String>,
    /// A signal name (`SIGQUIT`) or number, sent first at shutdown.
    pub stop_signal: Option<String>,
}

/// An image read from a layout.
#[derive(Debug)]
pub struct Image {
    pub root: Rootfs,
    pub defaults: ImageDefaults,
    /// Things the build should tell the user (ignored config fields,
    /// extended attributes that cpio drops).
    pub notes: Vec<String>,
}

/// How a layer blob is compressed, from its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

impl LayerCompression {
    pub fn of(media: &MediaType) -> Option<LayerCompression> {
        Some(match media {
            MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => LayerCompression::None,
            MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
                LayerCompression::Gzip
            }
            MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
                LayerCompression::Zstd
            }
            MediaType::Other(t) => match t.as_str() {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
                | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                    LayerCompression::Gzip
                }
                "application/vnd.docker.image.rootfs.diff.tar" => LayerCompression::None,
                _ => return None,
            },
            _ => return None,
        })
    }

    /// The uncompressed stream of `r`.
    pub fn decoder<'a, R: Read + 'a>(self, r: R) -> std::io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            LayerCompression::None => Box::new(r),
            LayerCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            LayerCompression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

/// Reads the image `reference` of the layout at `dir`, verifying every
/// blob, and applies its layers with file contents spilled to `scratch`.
pub fn load_image(dir: &Path, reference: Option<&str>, scratch: &Path) -> Result<Image, OciError> {
    let sel = layout::select(dir, reference)?;
    let mut notes = Vec::new();
    let root = apply_layers(&sel, scratch, &mut notes)?;
    let defaults = defaults_of(&sel, &mut notes);
    Ok(Image {
        root,
        defaults,
        notes,
    })
}

fn apply_layers(
    sel: &Selected,
    scratch: &Path,
    notes: &mut Vec<String>,
) -> Result<Rootfs, OciError> {
    let layers = sel.manifest.layers();
    let diff_ids = sel.config.rootfs().diff_ids();
    if layers.len() != diff_ids.len() {
        return Err(OciError::Invalid {
            path: sel.config_path.clone(),
            message: format!(
                "rootfs.diff_ids lists {} layers, the manifest {}",
                diff_ids.len(),
                layers.len()
            ),
        });
    }
    let mut root = Rootfs::new(scratch);
    for (i, (desc, diff_id)) in layers.iter().zip(diff_ids).enumerate() {
        apply_layer(sel, &mut root, i, desc, diff_id)?;
    }
    for (path, name) in &root.xattrs {
        notes.push(format!(
            "{path} has the extended attribute {name}, which cpio cannot carry: dropped"
        ));
    }
    Ok(root)
}

fn apply_layer(
    sel: &Selected,
    root: &mut Rootfs,
    index: usize,
    desc: &Descriptor,
    diff_id: &str,
) -> Result<(), OciError> {
    let blobs = &sel.blobs;
    let path = blobs.path(desc.digest());
    let err = |message: String| OciError::Layer {
        digest: desc.digest().to_string(),
        path: path.clone(),
        message,
    };
    let Some(compression) = LayerCompression::of(desc.media_type()) else {
        return Err(err(format!(
            "media type {} is not a layer we can read (tar, tar+gzip, tar+zstd)",
            desc.media_type()
        )));
    };
    let want = Digest::from_str(diff_id).map_err(|e| OciError::Invalid {
        path: sel.config_path.clone(),
        message: format!("rootfs.diff_ids[{index}] {diff_id:?}: {e}"),
    })?;
    let Some(hasher) = Hasher::for_digest(&want) else {
        return Err(OciError::Invalid {
            path: sel.config_path.clone(),
            message: format!(
                "rootfs.diff_ids[{index}]: digest algorithm {} is not supported",
                want.algorithm()
            ),
        });
    };
    blobs.verify(desc)?;
    let file = fs::File::open(&path).map_err(|source| OciError::Read {
        path: path.clone(),
        source,
    })?;
    let decoded = compression
        .decoder(BufReader::new(file))
        .map_err(|e| err(format!("cannot decompress: {e}")))?;
    let mut hashing = HashingReader::new(decoded, hasher);
    root.apply(&mut hashing, index)
        .map_err(|e| err(mkrootfs_config::error_chain(&e)))?;
    let (_, hex) = hashing
        .finish()
        .map_err(|e| err(format!("cannot decompress: {e}")))?;
    if hex != want.digest() {
        return Err(err(format!(
            "uncompressed content hashes to {}:{hex}, but rootfs.diff_ids[{index}] of {} is {want}",
            want.algorithm(),
            sel.config_path.display()
        )));
    }
    Ok(())
}

fn defaults_of(sel: &Selected, notes: &mut Vec<String>) -> ImageDefaults {
    let Some(c) = sel.config.config() else {
        return ImageDefaults::default();
    };
    let mut argv = c.entrypoint().clone().unwrap_or_default();
    argv.extend(c.cmd().clone().unwrap_or_default());
    if let Some(ports) = c.exposed_ports() {
        if !ports.is_empty() {
            let mut ports = ports.clone();
            ports.sort();
            notes.push(format!(
                "{}: ExposedPorts ({}) ignored: the guest's network is configured by the profile",
                sel.config_path.display(),
                ports.join(", ")
            ));
        }
    }
    if let Some(v) = c.volumes() {
        if !v.is_empty() {
            let mut v = v.clone();
            v.sort();
            notes.push(format!(
                "{}: Volumes ({}) ignored: add mounts in the profile's container table",
                sel.config_path.display(),
                v.join(", ")
            ));
        }
    }
    ImageDefaults {
        argv,
        env: c.env().clone().unwrap_or_default(),
        cwd: c.working_dir().clone().filter(|s| !s.is_empty()),
        user: c.user().clone().filter(|s| !s.is_empty()),
        stop_signal: c.stop_signal().clone().filter(|s| !s.is_empty()),
    }
}
