use super::*;
use crate::compress::{compress, Compression};

fn dir(name: &str) -> Entry {
    Entry {
        name: name.into(),
        mode: S_IFDIR | 0o755,
        nlink: 2,
        mtime: 0x5F5E_1000,
        ino: 1,
        ..Entry::default()
    }
}

fn file(name: &str, data: &[u8]) -> Entry {
    Entry {
        name: name.into(),
        mode: S_IFREG | 0o644,
        uid: 1000,
        gid: 100,
        nlink: 1,
        mtime: 0x5F5E_1000,
        ino: 2,
        data: data.to_vec(),
        ..Entry::default()
    }
}

fn sample() -> Vec<Entry> {
    vec![dir("d"), file("d/f", b"hi\n")]
}

fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = write_archive(&mut out, entries).unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

/// The golden archive below, checked field by field against the newc
/// layout: entry "d" at 0 (112 bytes), "d/f" at 112 (116 + 4 data),
/// trailer at 232 (124), 356 in all.
const GOLDEN: &[u8] = concat!(
    // magic, ino, mode, uid, gid, nlink, mtime, filesize,
    // devmajor, devminor, rdevmajor, rdevminor, namesize, check
    "070701",
    "00000001",
    "000041ED",
    "00000000",
    "00000000",
    "00000002",
    "5F5E1000",
    "00000000",
    "00000000",
    "00000000",
    "00000000",
    "00000000",
    "00000002",
    "00000000",
    "d\0", // 110 + 2: aligned
    "070701",
    "00000002",
    "000081A4",
    "000003E8",
    "00000064",
    "00000001",
    "5F5E1000",
    "00000003",
    "00000000",
    "00000000",
    "00000000",
    "00000000",
    "00000004",
    "00000000",
    "d/f\0\0\0", // 110 + 4, padded to 116
    "hi\n\0",    // 3 bytes of data, padded to 4
    "070701",
    "00000000",
    "00000000",
    "00000000",
    "00000000",
    "00000001",
    "00000000",
    "00000000",
    "00000000",
    "00000000",
    "00000000",
    "00000000",
    "0000000B",
    "00000000",
    "TRAILER!!!\0\0\0\0", // 110 + 11, padded to 124
)
.as_bytes();

fn read(bytes: &[u8]) -> Result<Vec<Segment>, CpioError> {
    read_archive(bytes, &Limits::default())
}

fn err(bytes: &[u8]) -> String {
    read(bytes).unwrap_err().to_string()
}

#[test]
fn writes_golden_bytes() {
    let out = archive(&sample());
    assert_eq!(out.len(), 356);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(GOLDEN)
    );
    assert_eq!(out, GOLDEN);
}

#[test]
fn dot_is_never_written_and_bad_names_are_refused() {
    let mut entries = sample();
    entries.insert(0, dir("."));
    assert_eq!(archive(&entries), GOLDEN);
    for name in ["", "/abs", "a\0b", TRAILER] {
        let e = write_archive(&mut Vec::new(), &[file(name, b"")]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
    }
}

#[test]
fn round_trip() {
    let mut entries = sample();
    entries.push(Entry {
        name: "dev/console".into(),
        mode: S_IFCHR | 0o600,
        nlink: 1,
        ino: 3,
        rdev: (5, 1),
        ..Entry::default()
    });
    entries.push(Entry {
        name: "bin".into(),
        mode: S_IFLNK | 0o777,
        nlink: 1,
        ino: 4,
        data: b"usr/bin".to_vec(),
        ..Entry::default()
    });
    let bytes = archive(&entries);
    let segments = read(&bytes).unwrap();
    assert_eq!(
        segments,
        vec![Segment {
            offset: 0,
            compression: Compression::None,
            compressed_len: bytes.len() as u64,
            entries,
        }]
    );
}

#[test]
fn hard_links_share_the_inode_and_only_the_last_has_data() {
    let link = |name: &str, data: &[u8]| Entry {
        ino: 7,
        nlink: 2,
        ..file(name, data)
    };
    let entries = vec![link("a", b""), link("b", b"shared")];
    let bytes = archive(&entries);
    // Both headers carry ino 7 and nlink 2; only the second has a size.
    assert_eq!(&bytes[6..14], b"00000007");
    assert_eq!(&bytes[38..46], b"00000002");
    assert_eq!(&bytes[54..62], b"00000000");
    let read_back = &read(&bytes).unwrap()[0].entries;
    assert_eq!(read_back, &entries);
}

/// The lz4 legacy frame (`lz4 -l`), as the kernel's build writes it.
fn lz4_legacy(data: &[u8]) -> Vec<u8> {
    let mut out = crate::compress::LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
    for chunk in data.chunks(crate::compress::LZ4_LEGACY_BLOCK) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

/// The legacy `.lzma` format (`lzma -6`), through liblzma.
fn lzma_alone(data: &[u8]) -> Vec<u8> {
    let opts = xz2::stream::LzmaOptions::new_preset(6).unwrap();
    let stream = xz2::stream::Stream::new_lzma_encoder(&opts).unwrap();
    let mut enc = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
    std::io::Write::write_all(&mut enc, data).unwrap();
    enc.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut enc = ::bzip2::write::BzEncoder::new(Vec::new(), ::bzip2::Compression::best());
    std::io::Write::write_all(&mut enc, data).unwrap();
    enc.finish().unwrap()
}

/// Issue 21: `ls` said "any compression" but refused bzip2, lzma and lz4
/// (the legacy frame, the kernel's format and Ubuntu's default for
/// years). Every format the kernel unpacks is read, except lzo, which is
/// named exactly.
#[test]
fn every_compression_the_kernel_unpacks_is_read_but_lzo_which_is_named() {
    let main = archive(&sample());
    for (c, packed) in [
        (Compression::Bzip2, bzip2(&main)),
        (Compression::Lzma, lzma_alone(&main)),
        (Compression::Lz4, lz4_legacy(&main)),
    ] {
        let mut img = GOLDEN.to_vec();
        img.extend_from_slice(&packed);
        let segs = read(&img).unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(segs.len(), 2, "{c}");
        assert_eq!(segs[1].offset, GOLDEN.len() as u64, "{c}");
        assert_eq!(segs[1].compression, c);
        assert_eq!(segs[1].compressed_len, packed.len() as u64, "{c}");
        assert_eq!(segs[1].entries, sample(), "{c}");
        // The same format again after it (lz4 runs to a size it cannot
        // take as a block, such as zero padding's).
        img.resize(img.len().next_multiple_of(4) + 4, 0);
        img.extend_from_slice(&packed);
        assert_eq!(read(&img).unwrap().len(), 3, "{c}");
    }
    let mut img = GOLDEN.to_vec();
    img.extend_from_slice(b"\x89LZO\0\r\n\x1a\n");
    assert_eq!(
        err(&img),
        "segment 2 at byte 356: compressed segment in lzo: mkrootfs reads every format the kernel \
         unpacks except lzo (no permissively licensed decoder); unpack it with `lzop -d`"
    );
}

/// Issue 21: an empty file was listed as an image with nothing in it, and a
/// compressed segment holding only zeros (which the kernel, first in an
/// image, reads as a header without cpio magic) too.
#[test]
fn empty_file_and_compressed_zeros_are_not_images() {
    assert_eq!(
        err(b""),
        "segment 1 at byte 0: no cpio archive: the image is empty"
    );
    assert_eq!(
        err(&[0; 512]),
        "segment 1 at byte 0: no cpio archive: the image holds only zero bytes"
    );
    let zeros = compress(&[0; 1024], Compression::Gzip, None).unwrap();
    assert_eq!(
        err(&zeros),
        "segment 1 at byte 0 (gzip, offsets decompressed): the compressed data holds only zero \
         bytes, no cpio archive"
    );
    // After an archive the kernel's state skips zeros: accepted, as there.
    let mut img = GOLDEN.to_vec();
    img.extend_from_slice(&zeros);
    assert_eq!(read(&img).unwrap()[1].entries, vec![]);
}

#[test]
fn segments_follow_padding_and_compressed_streams() {
    let early = archive(&[file("kernel/x86/microcode/GenuineIntel.bin", b"ucode")]);
    let main = archive(&sample());
    let mut img = early.clone();
    img.resize(512, 0);
    img.extend(compress(&main, Compression::Zstd, None).unwrap());
    let zstd_end = img.len();
    img.extend(compress(&main, Compression::Gzip, None).unwrap());
    let segs = read(&img).unwrap();
    let summary: Vec<_> = segs
        .iter()
        .map(|s| (s.offset, s.compression, s.entries.len()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, Compression::None, 1),
            (512, Compression::Zstd, 2),
            (zstd_end as u64, Compression::Gzip, 2),
        ]
    );
    assert_eq!(segs[0].compressed_len, early.len() as u64);
    assert_eq!(segs[1].compressed_len, (zstd_end - 512) as u64);
    assert_eq!(segs[2].entries, sample());
}

#[test]
fn a_compressed_stream_may_hold_several_archives() {
    let mut both = archive(&sample());
    both.extend_from_slice(&[0; 8]);
    both.extend(archive(&[file("x", b"1")]));
    let img = compress(&both, Compression::Xz, Some(0)).unwrap();
    let segs = read(&img).unwrap();
    assert_eq!(segs.len(), 1);
    let names: Vec<_> = segs[0].entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["d", "d/f", "x"]);
}

#[test]
fn crc_format_is_read_and_its_checksum_checked() {
    let mut bytes = GOLDEN.to_vec();
    for at in [0, 112, 232] {
        bytes[at + 5] = b'2';
    }
    // check field of "d/f": 'h' + 'i' + '\n' = 0xdb.
    bytes[112 + 102..112 + 110].copy_from_slice(b"000000DB");
    assert_eq!(read(&bytes).unwrap()[0].entries, sample());
    bytes[112 + 109] = b'C';
    assert_eq!(
        err(&bytes),
        "segment 1 at byte 0: entry \"d/f\" at offset 112: data checksum 0x000000db does not match header 0x000000dc"
    );
}

#[test]
fn truncated_archives_name_the_offset() {
    let cases: [(usize, &str); 5] = [
        (50, "header at offset 0: truncated, 50 of 110 bytes"),
        (
            224,
            "header at offset 112: name of 4 bytes runs past end of data",
        ),
        (
            230,
            "entry \"d/f\" at offset 112: file size 3 runs past end of data",
        ),
        (232, "archive ends at offset 232 without TRAILER!!!"),
        (300, "header at offset 232: truncated, 68 of 110 bytes"),
    ];
    for (cut, want) in cases {
        assert_eq!(err(&GOLDEN[..cut]), format!("segment 1 at byte 0: {want}"));
    }
    // A trailer without its final padding is complete.
    assert_eq!(read(&GOLDEN[..353]).unwrap()[0].entries, sample());
}

fn patched(at: usize, with: &[u8]) -> Vec<u8> {
    let mut bytes = GOLDEN.to_vec();
    bytes[at..at + with.len()].copy_from_slice(with);
    bytes
}

#[test]
fn corrupt_headers_give_exact_errors() {
    let cases: [(usize, &[u8], &str); 7] = [
        (5, b"7", "header at offset 0: bad magic \"070707\" (expected 070701 or 070702, as written by `cpio -H newc`)"),
        (112 + 94, b"FFFFFFFF", "header at offset 112: name size 4294967295 over the limit of 4096"),
        (112 + 94, b"00000000", "header at offset 112: name size 0"),
        (112 + 225 - 112, b"x", "entry \"d/f\" at offset 112: name is not NUL-terminated"),
        (112 + 166 - 112, b"00099999", "entry \"d/f\" at offset 112: file size 629145 runs past end of data"),
        (112 + 14, b"0000+1A4", "header at offset 112: field mode is not 8 hex digits: \"0000+1A4\""),
        (223, b"\0", "entry \"d\\0f\" at offset 112: name contains a NUL byte"),
    ];
    for (at, with, want) in cases {
        assert_eq!(
            err(&patched(at, with)),
            format!("segment 1 at byte 0: {want}")
        );
    }
}

#[test]
fn errors_in_later_segments_name_the_segment() {
    let mut img = GOLDEN.to_vec();
    let mut bad = GOLDEN.to_vec();
    bad.truncate(300);
    img.extend(compress(&bad, Compression::Gzip, None).unwrap());
    assert_eq!(
        err(&img),
        "segment 2 at byte 356 (gzip, offsets decompressed): header at offset 232: truncated, 68 of 110 bytes"
    );
    let mut img = GOLDEN.to_vec();
    img.extend_from_slice(&[0x02, 0x21, 0x4c, 0x18, 1, 2, 3, 4]);
    assert_eq!(
        err(&img),
        "segment 2 at byte 356 (lz4, offsets decompressed): lz4 data is corrupt or truncated"
    );
    let mut img = GOLDEN.to_vec();
    img.extend_from_slice(b"\0\0junk");
    assert_eq!(
        err(&img),
        "segment 2 at byte 358: unrecognised data 6a 75 6e 6b: not a cpio header nor compressed \
         data the kernel unpacks (gzip, bzip2, lzma, xz, lzo, lz4, zstd)"
    );
    let mut img = GOLDEN.to_vec();
    img.extend_from_slice(b"\x00\x00070701");
    assert_eq!(
        err(&img),
        "segment 2 at byte 358: cpio header at unaligned offset (the kernel reads headers only at multiples of 4)"
    );
}

#[test]
fn junk_after_a_trailer_inside_a_compressed_stream_is_an_error() {
    let mut inner = GOLDEN.to_vec();
    inner.extend_from_slice(b"\0\0\0\0garbage!");
    let img = compress(&inner, Compression::Zstd, None).unwrap();
    assert_eq!(
        err(&img),
        "segment 1 at byte 0 (zstd, offsets decompressed): junk at offset 360 after an archive's trailer (byte 0x67)"
    );
}

#[test]
fn limits_bound_entries_names_and_decompressed_size() {
    let tight = Limits {
        max_total: 300,
        max_name: 3,
        max_entries: 1,
    };
    let e = read_archive(GOLDEN, &tight).unwrap_err().to_string();
    assert_eq!(
        e,
        "segment 1 at byte 0: header at offset 112: name size 4 over the limit of 3"
    );
    let few = Limits {
        max_entries: 1,
        ..Limits::default()
    };
    let e = read_archive(GOLDEN, &few).unwrap_err().to_string();
    assert_eq!(
        e,
        "segment 1 at byte 0: entry at offset 112: more than 1 entries"
    );
    let img = compress(GOLDEN, Compression::Gzip, None).unwrap();
    let e = read_archive(&img, &tight).unwrap_err().to_string();
    assert_eq!(
        e,
        "segment 1 at byte 0 (gzip, offsets decompressed): gzip data decompresses to more than the limit of 300 bytes"
    );
}

/// Every truncation and many single-byte changes of small images, plain and
/// compressed: reading returns, it never panics.
#[test]
fn no_panic_on_truncation_or_byte_flips() {
    let mut multi = GOLDEN.to_vec();
    multi.extend(compress(GOLDEN, Compression::Gzip, Some(1)).unwrap());
    let images = [
        GOLDEN.to_vec(),
        multi,
        compress(GOLDEN, Compression::Zstd, Some(1)).unwrap(),
        compress(GOLDEN, Compression::Xz, Some(0)).unwrap(),
    ];
    let limits = Limits {
        max_total: 1 << 20,
        ..Limits::default()
    };
    let (mut cases, mut accepted) = (0, 0);
    let mut check = |bytes: &[u8]| {
        cases += 1;
        // What the reader accepts, the writer must reproduce (the fuzz
        // target's oracle too).
        if let Ok(segs) = read_archive(bytes, &limits) {
            accepted += 1;
            for seg in segs {
                let kept: Vec<Entry> = seg.entries.into_iter().filter(|e| e.name != ".").collect();
                let mut again = Vec::new();
                if write_archive(&mut again, &kept).is_ok() {
                    assert_eq!(read(&again).unwrap()[0].entries, kept);
                }
            }
        }
    };
    for img in &images {
        for cut in 0..=img.len() {
            check(&img[..cut]);
        }
        for at in 0..img.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = img.clone();
                bad[at] ^= flip;
                check(&bad);
            }
        }
    }
    assert!(cases > 3000, "only {cases} cases");
    assert!(accepted > 100, "only {accepted} accepted");
}

#[test]
fn streamed_entries_write_the_same_bytes() {
    let entries = sample();
    let mut w = Writer::new(Vec::new());
    for e in &entries {
        w.header(e, e.data.len() as u64).unwrap();
        for piece in e.data.chunks(3) {
            w.data(piece).unwrap();
        }
        w.end_data().unwrap();
    }
    let (out, len) = w.finish().unwrap();
    assert_eq!(out, GOLDEN);
    assert_eq!(len, GOLDEN.len() as u64);
    let planned: u64 = entries
        .iter()
        .map(|e| entry_len(&e.name, e.data.len() as u64))
        .sum::<u64>()
        + trailer_len();
    assert_eq!(planned, GOLDEN.len() as u64);
}

#[test]
fn streamed_data_must_match_the_header_size() {
    let e = file("a", b"");
    let mut w = Writer::new(Vec::new());
    w.header(&e, 3).unwrap();
    w.data(b"ab").unwrap();
    let err = w.data(b"cd").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cpio entry \"a\": more data than its header's file size"
    );
    let err = w.end_data().unwrap_err();
    assert_eq!(
        err.to_string(),
        "cpio entry \"a\": 1 bytes short of its header's file size"
    );
}

// The `cpio` crate (0.4.2) against our format. We keep our own writer and
// reader: these tests show why (see docs/ARCHITECTURE.md, "The cpio crate").

/// Writes `entries` and the trailer with the `cpio` crate's newc writer.
fn crate_archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut w = cpio::NewcBuilder::new(&e.name)
            .ino(e.ino)
            .mode(e.mode)
            .uid(e.uid)
            .gid(e.gid)
            .nlink(e.nlink)
            .mtime(e.mtime)
            .dev_major(e.dev.0)
            .dev_minor(e.dev.1)
            .rdev_major(e.rdev.0)
            .rdev_minor(e.rdev.1)
            .write(&mut out, e.data.len() as u32);
        std::io::Write::write_all(&mut w, &e.data).unwrap();
        w.finish().unwrap();
    }
    cpio::newc::trailer(&mut out).unwrap();
    out
}

/// The crate writes the header fields in lower-case hex (`{:08x}`); GNU
/// cpio, the kernel's gen_init_cpio and our golden bytes use upper case.
/// Layout, padding and trailer are otherwise the same bytes.
#[test]
fn cpio_crate_writes_lower_case_hex_so_it_cannot_write_our_golden_bytes() {
    let theirs = crate_archive(&sample());
    assert_eq!(theirs.len(), GOLDEN.len());
    assert_ne!(theirs, GOLDEN);
    let mut upper = theirs.clone();
    for header in [0, 112, 232] {
        upper[header + 6..header + HEADER_LEN].make_ascii_uppercase();
    }
    assert_eq!(upper, GOLDEN);
}

/// Its reader agrees with ours on what we write.
#[test]
fn cpio_crate_reads_our_archives() {
    let mut rest: &[u8] = GOLDEN;
    let mut seen = Vec::new();
    loop {
        let mut r = cpio::NewcReader::new(rest).unwrap();
        if r.entry().is_trailer() {
            rest = r.finish().unwrap();
            break;
        }
        let (name, mode, ino) = (
            r.entry().name().to_string(),
            r.entry().mode(),
            r.entry().ino(),
        );
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut data).unwrap();
        seen.push((name, mode, ino, data));
        rest = r.finish().unwrap();
    }
    assert!(rest.is_empty());
    let ours: Vec<_> = read(GOLDEN).unwrap()[0]
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.mode, e.ino, e.data.clone()))
        .collect();
    assert_eq!(seen, ours);
}

/// The kernel takes any bytes but NUL in a name; the crate's `Entry::name`
/// is a `String`, so a name that is not UTF-8 is refused, with no offset.
/// (Our reader refuses it too, as its `Entry::name` is a `String` as well,
/// but says where.)
#[test]
fn cpio_crate_refuses_non_utf8_names_without_a_position() {
    let mut img = archive(&[file("x", b"")]);
    img[HEADER_LEN] = 0xff;
    let e = cpio::NewcReader::new(&img[..]).err().unwrap();
    assert_eq!(e.to_string(), "Entry name was not valid UTF-8");
    assert_eq!(
        err(&img),
        "segment 1 at byte 0: entry \"\u{fffd}\" at offset 0: name is not UTF-8"
    );
}
