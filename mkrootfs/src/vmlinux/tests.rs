use super::*;

/// A minimal ELF executable: the 64-byte header, one PT_LOAD program header
/// covering `body`, then the body.
fn elf(machine: u16, body: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; 64];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2; // ELFCLASS64
    e[5] = 1; // little-endian
    e[6] = 1; // EV_CURRENT
    e[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    e[18..20].copy_from_slice(&machine.to_le_bytes());
    e[20..24].copy_from_slice(&1u32.to_le_bytes());
    e[24..32].copy_from_slice(&0x0100_0000u64.to_le_bytes()); // e_entry
    e[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    e[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    e[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    e[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    e[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    let mut ph = vec![0u8; 56];
    ph[..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // R+X
    ph[8..16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
    ph[16..24].copy_from_slice(&0x0100_0000u64.to_le_bytes());
    ph[24..32].copy_from_slice(&0x0100_0000u64.to_le_bytes());
    ph[32..40].copy_from_slice(&(body.len() as u64).to_le_bytes());
    ph[40..48].copy_from_slice(&(body.len() as u64).to_le_bytes());
    e.extend_from_slice(&ph);
    e.extend_from_slice(body);
    e
}

fn lz4_legacy(data: &[u8]) -> Vec<u8> {
    let mut out = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
    for chunk in data.chunks(LZ4_LEGACY_BLOCK) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

fn compressed(codec: Codec, data: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Gzip => compress::compress(data, Compression::Gzip, None).unwrap(),
        Codec::Xz => compress::compress(data, Compression::Xz, None).unwrap(),
        Codec::Zstd => compress::compress(data, Compression::Zstd, Some(3)).unwrap(),
        Codec::Lz4 => lz4_legacy(data),
        other => panic!("no encoder for {other}"),
    }
}

/// A bzImage-shaped file: 2 setup sectors (boot sector + 1), protocol 2.15,
/// a 64-bit kernel, a fake decompressor, then the payload and its size.
fn bzimage(payload_stream: &[u8], size: u32) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    b[0x1f1] = 1;
    b[0x1fe] = 0x55;
    b[0x1ff] = 0xaa;
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x236..0x238].copy_from_slice(&XLF_KERNEL_64.to_le_bytes());
    let decompressor = b"not the kernel: a decompressor stub";
    b.extend_from_slice(decompressor);
    let payload_offset = decompressor.len() as u32;
    let payload_len = payload_stream.len() as u32 + 4;
    b[0x248..0x24c].copy_from_slice(&payload_offset.to_le_bytes());
    b[0x24c..0x250].copy_from_slice(&payload_len.to_le_bytes());
    b.extend_from_slice(payload_stream);
    b.extend_from_slice(&size.to_le_bytes());
    b.extend_from_slice(b"trailing setup data");
    b
}

/// The kernel ELF followed by a relocation table, as `vmlinux.bin.all` is.
fn kernel_payload(machine: u16) -> (Vec<u8>, Vec<u8>) {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let e = elf(machine, &body);
    let mut all = e.clone();
    all.extend_from_slice(&[0xaau8; 4096]);
    (e, all)
}

#[test]
fn every_supported_codec_gives_the_elf_without_the_relocations() {
    for codec in [Codec::Gzip, Codec::Xz, Codec::Zstd, Codec::Lz4] {
        let (e, all) = kernel_payload(EM_X86_64);
        let img = bzimage(&compressed(codec, &all), all.len() as u32);
        let v = extract(Path::new("vmlinuz"), &img).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!(v.codec, codec);
        assert!(v.from_header);
        assert_eq!(v.payload_offset, 1024 + 35);
        assert_eq!(v.machine, EM_X86_64);
        assert_eq!(v.trailing, 4096);
        assert!(!v.pvh);
        assert_eq!(v.elf, e, "{codec}");
    }
}

#[test]
fn lz4_blocks_larger_than_one_legacy_block_and_repeated_magics() {
    let body: Vec<u8> = (0..(LZ4_LEGACY_BLOCK as u32 + 1000))
        .map(|i| (i % 13) as u8)
        .collect();
    let e = elf(EM_X86_64, &body);
    let mut stream = lz4_legacy(&e[..LZ4_LEGACY_BLOCK]);
    // A second frame starts with the magic again, as concatenated lz4 output does.
    stream.extend_from_slice(&lz4_legacy(&e[LZ4_LEGACY_BLOCK..]));
    let img = bzimage(&stream, e.len() as u32);
    let v = extract(Path::new("vmlinuz"), &img).unwrap();
    assert_eq!(v.elf, e);
}

#[test]
fn without_a_setup_header_the_payload_is_found_by_its_magic() {
    let (e, all) = kernel_payload(EM_X86_64);
    let mut img = bzimage(&compressed(Codec::Zstd, &all), all.len() as u32);
    img[0x202..0x206].copy_from_slice(b"XXXX");
    // A stray gzip magic before the real stream is tried and skipped.
    img[600..603].copy_from_slice(&[0x1f, 0x8b, 0x08]);
    let v = extract(Path::new("vmlinuz"), &img).unwrap();
    assert!(!v.from_header);
    assert_eq!(v.codec, Codec::Zstd);
    assert_eq!(v.payload_offset, 1024 + 35);
    assert_eq!(v.elf, e);
}

#[test]
fn not_a_bzimage_is_named_as_such() {
    let err = extract(
        Path::new("/boot/notes.txt"),
        b"just some text, no kernel here",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/boot/notes.txt is not a bzImage: no x86 boot setup header (\"HdrS\" at 0x202) and no compressed kernel (gzip, xz, zstd, lz4, bzip2, lzma, lzo) inside"
    );
}

#[test]
fn an_elf_input_is_already_a_vmlinux() {
    let err = extract(Path::new("vmlinux"), &elf(EM_X86_64, b"x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vmlinux is already an uncompressed ELF kernel: nothing to extract"
    );
}

#[test]
fn truncated_file_names_the_payload_range_and_the_file_size() {
    let (_, all) = kernel_payload(EM_X86_64);
    let img = bzimage(&compressed(Codec::Lz4, &all), all.len() as u32);
    let payload_end = img.len() - b"trailing setup data".len();
    let cut = &img[..payload_end - 100];
    let err = extract(Path::new("vmlinuz"), cut).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "vmlinuz: truncated bzImage: the setup header puts the compressed kernel at bytes 1059..{payload_end}, but the file has {} bytes",
            payload_end - 100
        )
    );
}

#[test]
fn payload_shorter_than_recorded_is_a_size_mismatch() {
    let (_, all) = kernel_payload(EM_X86_64);
    // The build recorded more than the stream holds: a payload cut short at a block boundary.
    let img = bzimage(&compressed(Codec::Lz4, &all), all.len() as u32 + 10);
    let err = extract(Path::new("vmlinuz"), &img).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "vmlinuz: the lz4 payload decompressed to {} bytes, but the bzImage records {}: truncated or corrupt",
            all.len(),
            all.len() + 10
        )
    );
}

#[test]
fn corrupt_gzip_payload_names_the_codec_and_offset() {
    let (_, all) = kernel_payload(EM_X86_64);
    let mut stream = compressed(Codec::Gzip, &all);
    let n = stream.len();
    stream[n - 8] ^= 0xff; // the CRC32 of the gzip trailer
    let img = bzimage(&stream, all.len() as u32);
    let err = extract(Path::new("vmlinuz"), &img).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("vmlinuz: decompress the gzip payload at offset 0x423: gzip data is corrupt or truncated: "),
        "{msg}"
    );
}

#[test]
fn unsupported_codec_is_named() {
    let mut stream = b"BZh91AY&SY".to_vec();
    stream.extend_from_slice(&[0u8; 64]);
    let img = bzimage(&stream, 1000);
    let err = extract(Path::new("vmlinuz"), &img).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vmlinuz: the kernel is compressed with bzip2, which mkrootfs cannot decompress (gzip, xz, zstd and lz4 can)"
    );
}

#[test]
fn payload_that_is_not_an_elf_is_rejected() {
    let data = vec![0x42u8; 5000];
    let img = bzimage(&compressed(Codec::Xz, &data), data.len() as u32);
    let err = extract(Path::new("vmlinuz"), &img).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vmlinuz: the decompressed xz payload is not an ELF executable: Invalid magic number: 0x4242424242424242"
    );
}

#[test]
fn elf_for_another_machine_is_rejected() {
    let (_, all) = kernel_payload(goblin::elf::header::EM_AARCH64);
    let img = bzimage(&compressed(Codec::Gzip, &all), all.len() as u32);
    let err = extract(Path::new("vmlinuz"), &img).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vmlinuz: the decompressed kernel is an ELF for machine 183 (AARCH64), but the bzImage is for X86_64"
    );
}

#[test]
fn kernel_format_tells_bzimage_elf_and_other() {
    let (_, all) = kernel_payload(EM_X86_64);
    assert_eq!(
        kernel_format(&bzimage(&compressed(Codec::Lz4, &all), 0)),
        KernelFormat::BzImage
    );
    assert_eq!(
        kernel_format(&elf(EM_X86_64, b"")),
        KernelFormat::Elf(EM_X86_64)
    );
    assert_eq!(kernel_format(b"MZ\x00\x00"), KernelFormat::Other);
}

#[test]
fn output_is_written_atomically_and_bad_input_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (e, all) = kernel_payload(EM_X86_64);
    let input = dir.path().join("vmlinuz");
    std::fs::write(
        &input,
        bzimage(&compressed(Codec::Zstd, &all), all.len() as u32),
    )
    .unwrap();
    let out = dir.path().join("sub/vmlinux");
    extract_file(&input, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), e);

    std::fs::write(&input, b"garbage").unwrap();
    let out2 = dir.path().join("vmlinux2");
    assert!(extract_file(&input, &out2).is_err());
    assert!(!out2.exists());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let err = extract_file(&dir.path().join("missing"), &out2).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("read kernel {}", dir.path().join("missing").display())
    );
}

#[test]
fn scan_names_an_unsupported_codec_only_when_nothing_else_decodes() {
    let mut bytes = b"some header bytes ".to_vec();
    bytes.extend_from_slice(b"BZh91AY&SY");
    bytes.extend_from_slice(&[0u8; 100]);
    let err = extract(Path::new("k"), &bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "k: the kernel is compressed with bzip2, which mkrootfs cannot decompress (gzip, xz, zstd and lz4 can)"
    );
    // A bzip2 magic before a real stream does not hide it.
    let (e, all) = kernel_payload(EM_X86_64);
    bytes.extend_from_slice(&compressed(Codec::Xz, &all));
    let v = extract(Path::new("k"), &bytes).unwrap();
    assert_eq!((v.codec, v.elf), (Codec::Xz, e));
}
