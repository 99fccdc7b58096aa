//! Content-addressed blobs of an image layout (`blobs/<alg>/<hex>`), each
//! checked against its descriptor's size and digest before it is used.

use super::OciError;
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The largest JSON blob (index, manifest, config) read into memory.
const MAX_JSON_BLOB: u64 = 16 << 20;

/// A running hash of one of the algorithms OCI names.
pub enum Hasher {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for `digest`'s algorithm; `None` for an algorithm we lack.
    pub fn for_digest(digest: &Digest) -> Option<Hasher> {
        Some(match digest.algorithm() {
            DigestAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgorithm::Sha384 => Hasher::Sha384(Sha384::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
            _ => return None,
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The lowercase hex digest.
    pub fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, hasher: Hasher) -> Self {
        HashingReader {
            inner,
            hasher,
            count: 0,
        }
    }

    /// Reads what is left, then gives the byte count and hex digest.
    pub fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.count, self.hasher.hex()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// The blob store of the layout at `dir`.
#[derive(Clone, Debug)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub fn new(layout: &Path) -> Blobs {
        Blobs {
            dir: layout.to_path_buf(),
        }
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    fn err(&self, desc: &Descriptor, message: String) -> OciError {
        OciError::Blob {
            digest: desc.digest().to_string(),
            path: self.path(desc.digest()),
            message,
        }
    }

    /// Checks the blob of `desc` (present, a regular file, of its size and
    /// digest) and returns its path.
    pub fn verify(&self, desc: &Descriptor) -> Result<PathBuf, OciError> {
        let path = self.path(desc.digest());
        let Some(hasher) = Hasher::for_digest(desc.digest()) else {
            return Err(self.err(
                desc,
                format!(
                    "digest algorithm {} is not supported (sha256, sha384, sha512)",
                    desc.digest().algorithm()
                ),
            ));
        };
        let md = match fs::metadata(&path) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.err(desc, "missing from the layout".to_string()))
            }
            Err(source) => return Err(OciError::Read { path, source }),
        };
        if !md.is_file() {
            return Err(self.err(desc, "is not a regular file".to_string()));
        }
        if md.len() != desc.size() {
            return Err(self.err(
                desc,
                format!(
                    "size is {} bytes, the descriptor says {}",
                    md.len(),
                    desc.size()
                ),
            ));
        }
        let file = fs::File::open(&path).map_err(|source| OciError::Read {
            path: path.clone(),
            source,
        })?;
        let reader = HashingReader::new(file.take(desc.size() + 1), hasher);
        let (len, hex) = reader.finish().map_err(|source| OciError::Read {
            path: path.clone(),
            source,
        })?;
        if len != desc.size() {
            return Err(self.err(desc, format!("changed size while read ({len} bytes)")));
        }
        if hex != desc.digest().digest() {
            return Err(self.err(
                desc,
                format!(
                    "content does not match its digest (it hashes to {}:{hex})",
                    desc.digest().algorithm()
                ),
            ));
        }
        Ok(path)
    }

    /// Reads and verifies a JSON blob; returns the path and its text.
    pub fn read_json(&self, desc: &Descriptor) -> Result<(PathBuf, String), OciError> {
        if desc.size() > MAX_JSON_BLOB {
            return Err(self.err(
                desc,
                format!("{} bytes is too big for a JSON document", desc.size()),
            ));
        }
        let path = self.verify(desc)?;
        let bytes = fs::read(&path).map_err(|source| OciError::Read {
            path: path.clone(),
            source,
        })?;
        // Verified above; a change in between is caught here.
        let mut h =
            Hasher::for_digest(desc.digest()).ok_or_else(|| self.err(desc, String::new()))?;
        h.update(&bytes);
        if h.hex() != desc.digest().digest() {
            return Err(self.err(desc, "changed while read".to_string()));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| self.err(desc, "is not UTF-8 JSON".to_string()))?;
        Ok((path, text))
    }
}
