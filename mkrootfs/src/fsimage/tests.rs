use super::*;

#[test]
fn compressions_and_levels_are_checked_per_format() {
    use FsCompression::{Gzip, Lz4, Lz4hc, Zstd};
    assert_eq!(Lz4hc.check(Format::Erofs, None), Ok(Some(9)));
    assert_eq!(Lz4hc.check(Format::Erofs, Some(12)), Ok(Some(12)));
    assert!(Lz4hc
        .check(Format::Erofs, Some(13))
        .unwrap_err()
        .contains("out of range for lz4hc in erofs (0..=12)"));
    assert_eq!(Lz4.check(Format::Erofs, None), Ok(None));
    assert!(Lz4
        .check(Format::Erofs, Some(3))
        .unwrap_err()
        .contains("takes no level"));
    assert!(Zstd
        .check(Format::Erofs, None)
        .unwrap_err()
        .contains("erofs images cannot be compressed with zstd (supported: none, lz4, lz4hc)"));
    assert_eq!(Zstd.check(Format::Squashfs, Some(22)), Ok(Some(22)));
    assert!(Gzip.check(Format::Ext4, None).is_err());
    assert_eq!(Format::Squashfs.compressions()[0], Zstd);
}

#[test]
fn ids_are_a_function_of_the_digest() {
    let a = Ids::from_digest(&[1; 32], Format::Erofs);
    let b = Ids::from_digest(&[1; 32], Format::Erofs);
    let c = Ids::from_digest(&[2; 32], Format::Erofs);
    let d = Ids::from_digest(&[1; 32], Format::Ext4);
    assert_eq!(a.uuid, b.uuid);
    assert_ne!(a.uuid, c.uuid);
    assert_ne!(a.uuid, d.uuid);
    assert_ne!(a.uuid, a.hash_seed);
    assert_eq!(a.uuid.len(), 36);
    assert_eq!(&a.uuid[14..15], "4");
}

#[test]
fn a_missing_writer_names_its_debian_package() {
    let e = run_tool(
        "mkfs.erofs",
        "erofs-utils",
        &mut Command::new("/nonexistent/mkfs.erofs"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "mkfs.erofs not found: install the Debian package erofs-utils"
    );
}
