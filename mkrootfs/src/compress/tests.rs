use super::encode::{compress_with_threads, xz_dict_size};
use super::*;
use std::io::Write;
use zstd::zstd_safe;

/// Compressible but not trivial: text-like lines with a counter.
fn sample(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut i = 0u64;
    while v.len() < len {
        v.extend_from_slice(format!("line {i} {}\n", i.wrapping_mul(2654435761) % 1000).as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

#[test]
fn names_round_trip_through_fromstr_display_and_serde() {
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
    ] {
        assert_eq!(c.to_string().parse::<Compression>(), Ok(c));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, format!("\"{c}\""));
        assert_eq!(serde_json::from_str::<Compression>(&json).unwrap(), c);
    }
    assert_eq!(
        "lz4".parse::<Compression>().unwrap_err().to_string(),
        "unknown compression \"lz4\": expected none, gzip, xz or zstd"
    );
}

#[test]
fn round_trip_and_detect_each_format() {
    let data = sample(300_000);
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let packed = compress(&data, c, Some(3)).unwrap();
        let mut with_tail = packed.clone();
        with_tail.extend_from_slice(b"NEXT");
        let (out, used) = decompress(&with_tail, c, u64::MAX).unwrap();
        if c == Compression::None {
            // Stored as is; with no frame to end it, "decompressing"
            // takes everything up to the limit.
            assert!(packed == data, "none changed the bytes");
            assert_eq!((out.len(), used), (with_tail.len(), with_tail.len()));
            assert!(out[..data.len()] == data[..] && out.ends_with(b"NEXT"));
            let (out, used) = decompress(&with_tail, c, data.len() as u64).unwrap();
            assert!(out == data && used == data.len(), "none ignored the limit");
        } else {
            assert_eq!(detect(&packed), Some(c));
            assert!(packed.len() < data.len() / 2, "{c} did not compress");
            assert_eq!(used, packed.len(), "{c} used the wrong length");
            assert!(out == data, "{c} did not give the data back");
        }
    }
}

// Regression guard for the determinism promise: the thread count must
// never change the bytes. 9 MiB spans several xz blocks and zstd jobs.
#[test]
fn xz_and_zstd_output_does_not_depend_on_thread_count() {
    let data = sample(9 << 20);
    for c in [Compression::Xz, Compression::Zstd] {
        let one = compress_with_threads(&data, c, Some(1), 1).unwrap();
        let two = compress_with_threads(&data, c, Some(1), 2).unwrap();
        assert!(one == two, "{c} output differs between 1 and 2 threads");
    }
}

// The image is streamed through the encoder in pieces of any size: the
// bytes must be those of the archive compressed in one piece.
#[test]
fn output_does_not_depend_on_how_the_input_is_split() {
    let data = sample(3 << 20);
    for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
        let whole = compress(&data, c, Some(1)).unwrap();
        let mut enc = Encoder::new(Vec::new(), c, Some(1), data.len() as u64).unwrap();
        let mut rest = &data[..];
        let mut n = 1;
        while !rest.is_empty() {
            let take = n.min(rest.len());
            enc.write_all(&rest[..take]).unwrap();
            enc.flush().unwrap();
            rest = &rest[take..];
            n = n * 7 + 3;
        }
        assert!(
            enc.finish().unwrap() == whole,
            "{c}: split input changed the output"
        );
    }
}

#[test]
fn input_must_match_the_promised_length() {
    let mut enc = Encoder::new(Vec::new(), Compression::Zstd, None, 4).unwrap();
    enc.write_all(b"abc").unwrap();
    let e = enc.finish().unwrap_err();
    assert_eq!(e.to_string(), "compressor input ended 1 bytes short");
    let mut enc = Encoder::new(Vec::new(), Compression::None, None, 2).unwrap();
    let e = enc.write_all(b"abc").unwrap_err();
    assert_eq!(e.to_string(), "compressor input longer than promised");
}

#[test]
fn gzip_header_has_no_mtime_and_no_name() {
    let packed = compress(b"abc", Compression::Gzip, None).unwrap();
    // magic, deflate, flags 0, mtime 0, xfl 0 (default level 6), OS 255.
    assert_eq!(&packed[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let packed = compress(b"abc", Compression::Gzip, Some(9)).unwrap();
    // xfl 2: level 9.
    assert_eq!(&packed[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff]);
}

#[test]
fn xz_uses_crc32_check_and_a_dictionary_no_larger_than_the_input() {
    let packed = compress(&sample(1000), Compression::Xz, Some(9)).unwrap();
    // Stream flags: 0x00, check id 0x01 (CRC32).
    assert_eq!(&packed[6..8], &[0x00, 0x01]);
    assert_eq!(xz_dict_size(9, 1000), 4096);
    assert_eq!(xz_dict_size(9, 5 << 20), 8 << 20);
    assert_eq!(xz_dict_size(6, 100 << 20), 8 << 20);
}

#[test]
fn levels_out_of_range_are_errors() {
    let e = compress(b"x", Compression::Xz, Some(10)).unwrap_err();
    assert_eq!(e.to_string(), "xz level 10 is out of range 0-9");
    let e = compress(b"x", Compression::Zstd, Some(0)).unwrap_err();
    assert_eq!(e.to_string(), "zstd level 0 is out of range 1-22");
}

#[test]
fn decompression_stops_at_the_limit() {
    let data = sample(100_000);
    for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
        let packed = compress(&data, c, Some(1)).unwrap();
        let e = decompress(&packed, c, 99_999).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{c} data decompresses to more than the limit of 99999 bytes")
        );
        assert_eq!(decompress(&packed, c, 100_000).unwrap().0.len(), 100_000);
    }
}

#[test]
fn truncated_streams_are_errors() {
    let data = sample(50_000);
    for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
        let packed = compress(&data, c, Some(1)).unwrap();
        for cut in [packed.len() - 1, packed.len() / 2, 5] {
            let e = decompress(&packed[..cut], c, u64::MAX).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{c} data is corrupt or truncated"),
                "{c} cut at {cut}"
            );
        }
    }
}

#[test]
fn unsupported_formats_are_named() {
    assert_eq!(detect(&[0x02, 0x21, 0x4c, 0x18, 0]), Some(Compression::Lz4));
    assert_eq!(detect(b"BZh91AY"), Some(Compression::Bzip2));
    assert_eq!(detect(&[0x5d, 0, 0, 0x80, 0]), Some(Compression::Lzma));
    assert_eq!(unsupported_name(&[0x02, 0x21, 0x4c, 0x18, 0]), None);
    assert!(unsupported_name(b"\x89LZO\0").unwrap().starts_with("lzo: "));
    assert_eq!(unsupported_name(b"hello"), None);
    assert_eq!(detect(b"070701"), Some(Compression::None));
    assert_eq!(detect(b"hello"), None);
}

#[test]
fn format_table_rows_match_their_compression_and_names_round_trip() {
    for (c, f) in Compression::READABLE.into_iter().zip(FORMATS.iter()) {
        assert_eq!(f.writable, Compression::ALL.contains(&c), "{c}");
        assert_eq!(f.compression, c);
        assert_eq!(c.format(), f);
        if f.writable {
            assert_eq!(c.name().parse::<Compression>(), Ok(c));
        }
        for m in f.magics {
            assert_eq!(detect(m), Some(c), "{c}");
        }
    }
    assert_eq!(
        Compression::Zstd.format().levels,
        Some((1, zstd_safe::max_c_level() as u32))
    );
    for c in Compression::ALL {
        if let Some((lo, hi)) = c.format().levels {
            for level in [lo, c.default_level(), hi] {
                assert_eq!(c.check_level(level), Ok(()), "{c} {level}");
                compress(b"x", c, Some(level)).unwrap();
            }
            for bad in [lo.checked_sub(1), Some(hi + 1)].into_iter().flatten() {
                let want = compress(b"x", c, Some(bad)).unwrap_err().to_string();
                assert_eq!(c.check_level(bad), Err(want));
            }
        }
    }
    assert_eq!(Compression::None.check_level(99), Ok(()));
    let names: Vec<&str> = Compression::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["none", "gzip", "xz", "zstd"]);
    let exts: Vec<&str> = Compression::ALL.iter().map(|c| c.extension()).collect();
    assert_eq!(exts, ["", ".gz", ".xz", ".zst"]);
    assert_eq!(
        "lz4".parse::<Compression>(),
        Err(UnknownCompression("lz4".to_string()))
    );
}
