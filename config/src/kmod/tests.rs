use super::*;

#[test]
fn dep_lines_parse_and_round_trip() {
    let text = "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
                # comment\n\nkernel/drivers/virtio/virtio.ko:\nkernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko\n";
    let parsed = parse_dep(text);
    assert_eq!(parsed.ignored, []);
    let deps = parsed.entries;
    assert_eq!(deps.len(), 3);
    assert_eq!(deps[0].name, "virtio_blk");
    assert_eq!(
        deps[0].deps,
        [
            "kernel/drivers/virtio/virtio.ko",
            "kernel/drivers/virtio/virtio_ring.ko"
        ]
    );
    assert_eq!(deps[1].deps, Vec::<String>::new());
    assert_eq!(deps[2].name, "virtio_rng");
    assert_eq!(
        format_dep(&deps),
        "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
         kernel/drivers/virtio/virtio.ko:\nkernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko\n"
    );
}

fn ignored<T>(p: &Parsed<T>) -> Vec<String> {
    p.ignored.iter().map(|e| e.to_string()).collect()
}

#[test]
fn dep_lines_kmod_cannot_use_are_skipped_and_named() {
    let p = parse_dep("a.ko:\nno colon here\nc.ko: b.txt\nnotes.txt:\nd.ko: a.ko\n");
    let names: Vec<&str> = p.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "d"]);
    assert_eq!(
        ignored(&p),
        [
            "modules.dep line 2: no \"path: deps\" in \"no colon here\"",
            "modules.dep line 3: dependency \"b.txt\" is not a module file name",
            "modules.dep line 4: \"notes.txt\" is not a module file name",
        ]
    );
}

#[test]
fn module_names_from_paths() {
    assert_eq!(
        module_name_from_path("a/b/virtio-rng.ko.zst").as_deref(),
        Some("virtio_rng")
    );
    assert_eq!(module_name_from_path("x.ko.gz").as_deref(), Some("x"));
    assert_eq!(module_name_from_path("x.ko").as_deref(), Some("x"));
    assert_eq!(module_name_from_path("x.o"), None);
    assert_eq!(module_name_from_path(".ko"), None);
}

#[test]
fn alias_and_softdep_parse() {
    let parsed =
        parse_alias("# Aliases\nalias virtio:d00000002v* virtio_blk\nalias fs-erofs erofs\n");
    assert_eq!(parsed.ignored, []);
    let a = parsed.entries;
    assert_eq!(
        a,
        [
            AliasEntry {
                pattern: "virtio:d00000002v*".into(),
                module: "virtio_blk".into()
            },
            AliasEntry {
                pattern: "fs-erofs".into(),
                module: "erofs".into()
            },
        ]
    );
    assert_eq!(
        format_alias(&a),
        "alias virtio:d00000002v* virtio_blk\nalias fs-erofs erofs\n"
    );
    let s = parse_softdep("softdep ext4 pre: crc32c post: a b\nsoftdep x post: y\n").entries;
    assert_eq!(s[0].module, "ext4");
    assert_eq!(s[0].pre, ["crc32c"]);
    assert_eq!(s[0].post, ["a", "b"]);
    assert_eq!(
        format_softdep(&s),
        "softdep ext4 pre: crc32c post: a b\nsoftdep x post: y\n"
    );
}

/// libkmod's configuration parser skips what it cannot use: other
/// commands, missing words, unbalanced brackets; extra words after
/// the module are ignored.
#[test]
fn alias_lines_kmod_ignores_are_skipped_and_named() {
    let p = parse_alias(
        "alias x\nalias a[b c\nalias a]b c\noptions m x=1\nalias p m extra words\nalias q[0-9] n\n",
    );
    assert_eq!(
        p.entries,
        [
            AliasEntry {
                pattern: "p".into(),
                module: "m".into()
            },
            AliasEntry {
                pattern: "q[0-9]".into(),
                module: "n".into()
            },
        ]
    );
    assert_eq!(
        ignored(&p),
        [
            "modules.alias line 1: not \"alias PATTERN MODULE\": \"alias x\"",
            "modules.alias line 2: not \"alias PATTERN MODULE\": \"alias a[b c\"",
            "modules.alias line 3: not \"alias PATTERN MODULE\": \"alias a]b c\"",
            "modules.alias line 4: not \"alias PATTERN MODULE\": \"options m x=1\"",
        ]
    );
}

/// Debian 12's depmod (kmod 30) writes `softdep cifs gcm`: a module's
/// `softdep` modinfo copied verbatim, with no `pre:` or `post:`.
/// modprobe uses only tagged words, and so must we.
#[test]
fn softdep_words_without_pre_or_post_are_ignored_like_modprobe() {
    let text = "# Soft dependencies extracted from modules themselves.\n\
                softdep cifs gcm\n\
                softdep cifs pre: ccm\n\
                softdep snd-pcm pre: snd-pcm-oss post: a \\\n  b\n\
                softdep m junk pre: x\n\
                softdep lonely\n\
                weakdep m n\n";
    let p = parse_softdep(text);
    assert_eq!(
        p.entries,
        [
            Softdep {
                module: "cifs".into(),
                pre: vec![],
                post: vec![],
            },
            Softdep {
                module: "snd_pcm".into(),
                pre: vec!["snd-pcm-oss".into()],
                post: vec!["a".into(), "b".into()],
            },
            Softdep {
                module: "m".into(),
                pre: vec!["x".into()],
                post: vec![],
            },
        ]
    );
    assert_eq!(
        ignored(&p),
        [
            "modules.softdep line 2: softdep cifs: gcm before \"pre:\" or \"post:\"",
            "modules.softdep line 3: softdep cifs: only the module's first softdep line counts",
            "modules.softdep line 6: softdep m: junk before \"pre:\" or \"post:\"",
            "modules.softdep line 7: not a softdep line: \"softdep lonely\"",
            "modules.softdep line 8: not a softdep line: \"weakdep m n\"",
        ]
    );
    // A bare entry is not written back (libkmod would skip the line).
    assert_eq!(
        format_softdep(&p.entries),
        "softdep snd_pcm pre: snd-pcm-oss post: a b\nsoftdep m pre: x\n"
    );
}

#[test]
fn builtin_and_modinfo() {
    assert_eq!(
        parse_builtin("kernel/fs/ext4/ext4.ko\n\nkernel/crypto/crc32c_generic.ko\n"),
        ["ext4", "crc32c_generic"]
    );
    assert_eq!(
        parse_modinfo(
            b"alias=virtio:d00000002v*\0depends=virtio,virtio_ring\0\0\0junk\0name=virtio_blk\0"
        ),
        [
            ("alias".to_owned(), "virtio:d00000002v*".to_owned()),
            ("depends".to_owned(), "virtio,virtio_ring".to_owned()),
            ("name".to_owned(), "virtio_blk".to_owned()),
        ]
    );
}

#[test]
fn alias_globs() {
    assert!(alias_matches(
        "virtio:d00000002v*",
        "virtio:d00000002v00001AF4"
    ));
    assert!(!alias_matches(
        "virtio:d00000002v*",
        "virtio:d00000001v00001AF4"
    ));
    assert!(alias_matches(
        "pci:v00001AF4d*sv*sd*bc*sc*i*",
        "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
    ));
    assert!(!alias_matches(
        "pci:v00001AF4d*sv*sd*bc*sc*i*",
        "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00"
    ));
    assert!(alias_matches("acpi*:LNRO0005:*", "acpi:LNRO0005:"));
    assert!(alias_matches("a?c", "abc"));
    assert!(!alias_matches("a?c", "ac"));
    assert!(alias_matches(
        "cpu:type:x86,ven*fam*mod*:feature:*0081*",
        "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0081,"
    ));
    assert!(alias_matches("x[0-9A-F]y", "xBy"));
    assert!(!alias_matches("x[0-9A-F]y", "xby"));
    assert!(alias_matches("x[!0-9]y", "xay"));
    assert!(!alias_matches("x[^0-9]y", "x5y"));
    assert!(alias_matches("x[]]y", "x]y"));
    assert!(alias_matches("x[ab", "x[ab"));
    assert!(alias_matches("**", ""));
    assert!(!alias_matches("a", ""));
    assert!(alias_matches("fs-erofs", "fs-erofs"));
    assert!(!alias_matches("fs-erofs", "fs-erofsx"));
    assert!(alias_matches("*a*b*c", "xxaxxbxxbxxc"));
}
