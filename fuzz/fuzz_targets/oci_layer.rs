//! Fuzzes the OCI layer reader: one to three tar layers from untrusted
//! bytes applied in order into a staged container root (whiteouts, opaque
//! directories, hard links, symlinked parents). It must return Ok or Err,
//! never panic; what it stages never names a path outside the root, and it
//! can be added to an image tree (or refused with an error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mkrootfs::oci::Rootfs;
use mkrootfs::tree::Tree;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let layers = 1 + usize::from(n % 3);
    let size = rest.len().div_ceil(layers).max(1);
    let Ok(scratch) = tempfile::tempdir() else {
        return;
    };
    let mut root = Rootfs::new(scratch.path());
    for (i, chunk) in rest.chunks(size).enumerate() {
        if root.apply(chunk, i).is_err() {
            return;
        }
    }
    for line in root.listing() {
        let path = line.split(' ').next().unwrap_or("");
        assert!(path.starts_with('/'), "{line}");
        assert!(
            !path.split('/').any(|c| c == ".." || c == "."),
            "staged path leaves the root: {line}"
        );
    }
    let mut tree = Tree::new("/");
    let _ = root.add_to_tree(&mut tree, "/ctr", "fuzz");
});
