//! Unit tests of profile parsing: errors with positions, `extends`, and the
//! same result from every TOML spelling of a profile.

use super::position::{span_of, Seg};
use super::*;
use crate::compress::Compression;
use mkrootfs_config::line_col;
use toml::{Table, Value};

fn err(text: &str) -> String {
    parse_str(Path::new("p.toml"), text)
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_key_names_file_line_column() {
    assert_eq!(
        err("binaries = []\n[image]\ncompresion = \"xz\"\n"),
        "p.toml:3:1: unknown field `compresion`, expected one of `compression`, `level`, `sysroot`, `init`, `binary_path`, `dlopen_notes`, `busybox_links`, `format`, `fs_compression`, `split`, `verity`, `label`"
    );
}

#[test]
fn wrong_type_names_line_column() {
    assert_eq!(
        err("binaries = \"bash\"\n"),
        "p.toml:1:12: invalid type: string \"bash\", expected a sequence"
    );
}

#[test]
fn bad_mode_names_line_column() {
    assert_eq!(
        err("[[files]]\ndest = \"/x\"\ncontent = \"\"\nmode = \"0779\"\n"),
        "p.toml:4:8: invalid mode \"0779\": expected 1 to 4 octal digits such as \"0755\""
    );
}

#[test]
fn dotdot_destination_is_rejected_with_position() {
    assert_eq!(
        err("[[symlinks]]\npath = \"/etc/../../x\"\ntarget = \"y\"\n"),
        "p.toml:2:8: image path \"/etc/../../x\" escapes the image with `..`"
    );
}

#[test]
fn init_validation_points_at_init_table() {
    let e = err("[init]\nhostname = \"h\"\n");
    assert_eq!(
        e,
        "p.toml:1:1: init: no services and no root.exec: the init would have nothing to run"
    );
}

/// Checks of several `[init]` keys point at the key at fault, not at `[init]`.
#[test]
fn init_checks_point_at_the_key_at_fault() {
    assert_eq!(
        err("[init]\nhostname = \"\"\n[[init.services]]\nargv = [\"/a\"]\n"),
        "p.toml:2:12: init.hostname \"\" must be 1 to 64 bytes"
    );
    assert_eq!(
        err("[[init.services]]\nargv = [\"/a\"]\ncwd = \"tmp\"\n"),
        "p.toml:3:7: init.services[0]: cwd \"tmp\" must be absolute"
    );
}

#[test]
fn unknown_init_key_names_position() {
    assert_eq!(
        err("[init]\n[[init.services]]\nargv = [\"/bin/true\"]\nrestart = \"sometimes\"\n"),
        "p.toml:4:11: unknown variant `sometimes`, expected one of `no`, `on-failure`, `always`"
    );
}

#[test]
fn file_needs_src_or_content() {
    assert_eq!(
        err("[[files]]\ndest = \"/etc/x\"\n"),
        "p.toml:2:8: files entry for /etc/x: give exactly one of `src` and `content`"
    );
}

#[test]
fn column_counts_characters_and_never_splits_one() {
    assert_eq!(line_col("é = 1\nx", 7), (2, 1));
    assert_eq!(line_col("éé", 3), (1, 2));
}

#[test]
fn image_paths_are_normalized() {
    assert_eq!(ImagePath::parse("/a//b/./c/").unwrap().0, "/a/b/c");
    assert_eq!(
        ImagePath::parse("rel").unwrap_err(),
        "image path \"rel\" must be absolute"
    );
}

#[test]
fn extends_merges_parent_first_and_detects_cycles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.toml"),
        "binaries = [\"a\"]\n[image]\ncompression = \"xz\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("leaf.toml"),
        "extends = \"base\"\nbinaries = [\"b\"]\n[image]\nlevel = 3\n",
    )
    .unwrap();
    let p = load_path(&dir.path().join("leaf.toml")).unwrap();
    assert_eq!(p.binaries, vec!["a", "b"]);
    assert_eq!(p.image.compression, Some(Compression::Xz));
    assert_eq!(p.image.level, Some(3));
    assert_eq!(p.name, "leaf");

    std::fs::write(dir.path().join("c1.toml"), "extends = \"c2\"\n").unwrap();
    std::fs::write(dir.path().join("c2.toml"), "extends = \"c1\"\n").unwrap();
    let e = load_path(&dir.path().join("c1.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("extends itself through"), "{e}");
}

#[test]
fn module_options_merge_per_module_child_last() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.toml"),
        "[modules]\noptions = { virtio_blk = \"queue_depth=64\", loop = \"max_loop=8\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("leaf.toml"),
        "extends = \"base\"\n[modules]\noptions = { loop = \"max_loop=4\" }\n",
    )
    .unwrap();
    let p = load_path(&dir.path().join("leaf.toml")).unwrap();
    assert_eq!(
        p.modules.options,
        std::collections::BTreeMap::from([
            ("loop".to_string(), "max_loop=4".to_string()),
            ("virtio_blk".to_string(), "queue_depth=64".to_string()),
        ])
    );
}

#[test]
fn child_entry_replaces_parent_entry_for_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.toml"),
        "[[files]]\ndest = \"/etc/hostname\"\ncontent = \"base\"\n\
         [[files]]\ndest = \"/etc/motd\"\ncontent = \"hi\"\n\
         [[symlinks]]\npath = \"/bin/sh\"\ntarget = \"bash\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("leaf.toml"),
        "extends = \"base\"\n[[files]]\ndest = \"/etc//hostname\"\ncontent = \"leaf\"\n\
         [[files]]\ndest = \"/bin/sh\"\ncontent = \"#!\"\n",
    )
    .unwrap();
    let p = load_path(&dir.path().join("leaf.toml")).unwrap();
    let files: Vec<(&str, Option<&str>)> = p
        .files
        .iter()
        .map(|(_, f)| (f.dest.0.as_str(), f.content.as_deref()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("/etc/motd", Some("hi")),
            ("/etc/hostname", Some("leaf")),
            ("/bin/sh", Some("#!"))
        ]
    );
    assert!(p.symlinks.is_empty());
}

// ---------------------------------------------------------------------------
// Every valid TOML spelling of a profile gives the same profile.
//
// Each example below is written once; `spellings` rewrites it in every way
// TOML allows for the same document (headers parents first or children
// first, dotted keys, inline tables, headers with dotted keys inside), and
// the parsed results must all be equal. One example per table of the
// schema, nested tables included.

/// One example per table of the schema, as a profile needing nothing else.
const TABLES: &[(&str, &str)] = &[
    (
        "top level",
        r#"description = "d"
extends = "base"
binaries = ["busybox", "/usr/bin/env"]
libraries = ["libgcc_s.so.1"]
"#,
    ),
    (
        "image",
        r#"[image]
compression = "xz"
level = 3
sysroot = "/srv/root"
init = "/sbin/init"
dlopen_notes = true
busybox_links = "/bin/busybox"
"#,
    ),
    (
        "files",
        r#"[[files]]
dest = "/etc/hostname"
content = "box\n"
mode = "0600"
uid = 1
gid = 2
[[files]]
dest = "/etc/motd"
src = "motd"
"#,
    ),
    (
        "trees",
        r#"[[trees]]
src = "overlay"
dest = "/"
[[trees]]
src = "more"
dest = "/opt"
"#,
    ),
    (
        "dirs",
        r#"[[dirs]]
path = "/var/lib/app"
mode = "0700"
uid = 3
[[dirs]]
path = "/srv"
"#,
    ),
    (
        "symlinks",
        r#"[[symlinks]]
path = "/bin/sh"
target = "busybox"
[[symlinks]]
path = "/sbin"
target = "bin"
"#,
    ),
    (
        "hardlinks",
        r#"[[hardlinks]]
path = "/bin/b"
target = "/bin/a"
[[hardlinks]]
path = "/bin/c"
target = "/bin/a"
"#,
    ),
    (
        "nodes",
        r#"[[nodes]]
path = "/dev/ttyS0"
type = "char"
major = 4
minor = 64
mode = "0600"
[[nodes]]
path = "/run/fifo"
type = "fifo"
"#,
    ),
    (
        "modules",
        r#"[modules]
kernel = "/lib/modules/6.1.0"
load = ["virtio_blk", "ext4"]
preset = "microvm"
compressed = "keep"
"#,
    ),
    (
        "init (every nested table)",
        r#"[init]
hostname = "box"
umask = "0027"
modules = ["virtio_blk"]
coldplug = false
emergency_shell = "/bin/sh"
debug = true
[init.env]
LANG = "C"
"A B" = "quoted key"
[init.rlimits]
nofile = 4096
core = -1
[[init.mounts]]
source = "tmpfs"
target = "/run/a"
fstype = "tmpfs"
options = "mode=0755"
[[init.mounts]]
source = "/dev/vdb"
target = "/data"
fstype = "ext4"
required = false
[init.root]
mode = "tmpfs"
options = "size=50%"
timeout_ms = 500
exec = "/sbin/init"
[[init.services]]
name = "web"
argv = ["/bin/httpd", "-f"]
cwd = "/srv"
user = "www"
restart = "on-failure"
[init.services.env]
PORT = "80"
[[init.services]]
argv = ["/bin/sh"]
tty = true
main = true
[init.services.env]
PS1 = "$ "
[init.shutdown]
action = "reboot"
grace_ms = 10
"#,
    ),
    (
        "init.root alone",
        r#"[init.root]
mode = "device"
device = "LABEL=root"
exec = "/sbin/init"
"#,
    ),
];

fn is_table_array(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_table))
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|k| key(k)).collect::<Vec<_>>().join(".")
}

fn inline(v: &Value) -> String {
    match v {
        Value::Table(t) => {
            let items: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

/// The keys of `t` in the order a spelling writes them.
fn keys(t: &Table, reverse: bool) -> Vec<&String> {
    let mut k: Vec<&String> = t.keys().collect();
    if reverse {
        k.reverse();
    }
    k
}

/// `[a.b]` headers. Parents first: `[init]` then `[init.root]`; children
/// first: `[init.root]` before `[init]` (which TOML allows as long as
/// `[init]` is written once), keys in reverse order.
fn headers(out: &mut String, path: &[String], t: &Table, children_first: bool) {
    let sub = |k: &String| {
        let mut p = path.to_vec();
        p.push(k.clone());
        p
    };
    let write_own = |out: &mut String| {
        if !path.is_empty() {
            out.push_str(&format!("[{}]\n", dotted(path)));
        }
        for k in keys(t, children_first) {
            let v = &t[k];
            if !v.is_table() && !is_table_array(v) {
                out.push_str(&format!("{} = {}\n", key(k), inline(v)));
            }
        }
    };
    // The root's own keys must come before any header.
    if !children_first || path.is_empty() {
        write_own(out);
    }
    for k in keys(t, children_first) {
        if let Value::Table(s) = &t[k] {
            headers(out, &sub(k), s, children_first);
        }
    }
    if children_first && !path.is_empty() {
        write_own(out);
    }
    for k in keys(t, children_first) {
        if is_table_array(&t[k]) {
            for e in t[k].as_array().unwrap() {
                array_element(out, &sub(k), e.as_table().unwrap(), children_first);
            }
        }
    }
}

/// `[[a.b]]` and then its own sub-tables, which must follow it.
fn array_element(out: &mut String, path: &[String], t: &Table, children_first: bool) {
    out.push_str(&format!("[[{}]]\n", dotted(path)));
    let mut body = String::new();
    headers(&mut body, &[], t, children_first);
    // Re-root the element's own sub-headers under its path.
    for line in body.lines() {
        if let Some(h) = line.strip_prefix("[[") {
            out.push_str(&format!("[[{}.{h}\n", dotted(path)));
        } else if let Some(h) = line.strip_prefix('[') {
            out.push_str(&format!("[{}.{h}\n", dotted(path)));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// Dotted keys for every leaf under `prefix`; arrays of tables inline.
fn dotted_leaves(out: &mut String, prefix: &[String], t: &Table) {
    for (k, v) in t {
        let mut p = prefix.to_vec();
        p.push(k.clone());
        match v {
            Value::Table(s) if !s.is_empty() => dotted_leaves(out, &p, s),
            _ => out.push_str(&format!("{} = {}\n", dotted(&p), inline(v))),
        }
    }
}

/// Headers for top-level tables, dotted keys inside them, `[[...]]` for
/// arrays of tables with dotted keys inside each element.
fn mixed(out: &mut String, path: &[String], t: &Table) {
    let mut plain = Table::new();
    let mut arrays = Vec::new();
    let mut tables = Vec::new();
    for (k, v) in t {
        if is_table_array(v) {
            arrays.push((k, v));
        } else if path.is_empty() && v.is_table() {
            tables.push((k, v));
        } else {
            plain.insert(k.clone(), v.clone());
        }
    }
    dotted_leaves(out, &[], &plain);
    for (k, v) in tables {
        let p = vec![k.clone()];
        out.push_str(&format!("[{}]\n", dotted(&p)));
        mixed(out, &p, v.as_table().unwrap());
    }
    for (k, v) in arrays {
        let mut p = path.to_vec();
        p.push(k.clone());
        for e in v.as_array().unwrap() {
            out.push_str(&format!("[[{}]]\n", dotted(&p)));
            let mut elem = Table::new();
            for (ek, ev) in e.as_table().unwrap() {
                elem.insert(ek.clone(), ev.clone());
            }
            // Arrays of tables inside an element stay inline here.
            let mut body = String::new();
            dotted_leaves(&mut body, &[], &elem);
            out.push_str(&body);
        }
    }
}

/// The same document written every way TOML allows, labelled.
fn spellings(doc: &Table) -> Vec<(&'static str, String)> {
    let mut parents_first = String::new();
    headers(&mut parents_first, &[], doc, false);
    let mut children_first = String::new();
    headers(&mut children_first, &[], doc, true);
    let mut all_dotted = String::new();
    dotted_leaves(&mut all_dotted, &[], doc);
    let mut all_inline = String::new();
    for (k, v) in doc {
        all_inline.push_str(&format!("{} = {}\n", key(k), inline(v)));
    }
    let mut headers_dotted = String::new();
    mixed(&mut headers_dotted, &[], doc);
    vec![
        ("headers, parents first", parents_first),
        ("headers, children first", children_first),
        ("dotted keys", all_dotted),
        ("inline tables", all_inline),
        ("headers with dotted keys", headers_dotted),
    ]
}

fn parsed(text: &str) -> Result<String, String> {
    parse_str(Path::new("p.toml"), text)
        .map(|RawProfileChecked(mut raw, _, _)| {
            // Where each entry was written differs between spellings.
            raw.files.iter_mut().for_each(|e| e.at = None);
            raw.trees.iter_mut().for_each(|e| e.at = None);
            raw.dirs.iter_mut().for_each(|e| e.at = None);
            raw.symlinks.iter_mut().for_each(|e| e.at = None);
            raw.hardlinks.iter_mut().for_each(|e| e.at = None);
            raw.nodes.iter_mut().for_each(|e| e.at = None);
            format!("{raw:#?}")
        })
        .map_err(|e| e.to_string())
}

#[test]
fn every_toml_spelling_of_each_table_gives_the_same_profile() {
    let empty = format!("{:#?}", RawProfile::default());
    for (table, example) in TABLES {
        let doc: Table = example.parse().unwrap();
        let want = parsed(example).unwrap_or_else(|e| panic!("{table}: {e}"));
        assert_ne!(want, empty, "{table}: the example sets nothing");
        let all = spellings(&doc);
        for (how, text) in &all {
            // The spelling is the same TOML document (checks the generator).
            let again: Table = text
                .parse()
                .unwrap_or_else(|e| panic!("{table}, {how}: not TOML: {e}\n{text}"));
            assert_eq!(again, doc, "{table}, {how}:\n{text}");
            assert_eq!(
                parsed(text).as_ref(),
                Ok(&want),
                "{table}, {how}: a different profile from\n{text}"
            );
        }
        let distinct: BTreeSet<&String> = all.iter().map(|(_, t)| t).collect();
        let has_tables = doc.values().any(|v| v.is_table() || is_table_array(v));
        assert!(
            !has_tables || distinct.len() >= 3,
            "{table}: spellings do not differ"
        );
    }
}

/// The spelling from issue 7: `[init.root]` before `[[init.services]]`
/// with no `[init]` header, and the dotted `init.root.mode`.
#[test]
fn init_root_header_first_and_dotted_init_keys_are_accepted() {
    let a = "[init.root]\nmode = \"tmpfs\"\n[[init.services]]\nargv = [\"/bin/true\"]\n";
    let b = "init.root.mode = \"tmpfs\"\ninit.services = [{ argv = [\"/bin/true\"] }]\n";
    let c = "[init]\n[init.root]\nmode = \"tmpfs\"\n[[init.services]]\nargv = [\"/bin/true\"]\n";
    assert_eq!(parsed(a), parsed(c));
    assert_eq!(parsed(b), parsed(c));
    assert!(parsed(c).unwrap().contains("Tmpfs"));
}

/// Adds `bogus_key = 1` to the table at `path` (the last element of an
/// array of tables).
fn with_bogus_key(doc: &mut Table, path: &[&str]) {
    let mut t = doc;
    for k in path {
        let v = t.get_mut(*k).unwrap();
        t = match v {
            Value::Array(a) => a.last_mut().unwrap().as_table_mut().unwrap(),
            Value::Table(s) => s,
            _ => unreachable!(),
        };
    }
    t.insert("bogus_key".into(), Value::Integer(1));
}

#[test]
fn errors_point_at_the_offending_key_in_every_spelling() {
    let tables: &[(&str, &[&str])] = &[
        ("top level", &[]),
        ("image", &["image"]),
        ("files", &["files"]),
        ("trees", &["trees"]),
        ("dirs", &["dirs"]),
        ("symlinks", &["symlinks"]),
        ("hardlinks", &["hardlinks"]),
        ("nodes", &["nodes"]),
        ("modules", &["modules"]),
        ("init (every nested table)", &["init"]),
        ("init (every nested table)", &["init", "root"]),
        ("init (every nested table)", &["init", "shutdown"]),
        ("init (every nested table)", &["init", "mounts"]),
        ("init (every nested table)", &["init", "services"]),
    ];
    for (table, path) in tables {
        let example = TABLES.iter().find(|(t, _)| t == table).unwrap().1;
        let mut doc: Table = example.parse().unwrap();
        with_bogus_key(&mut doc, path);
        for (how, text) in spellings(&doc) {
            let e = parsed(&text).unwrap_err();
            let (line, column) = line_col(&text, text.find("bogus_key").unwrap());
            assert!(
                e.starts_with(&format!(
                    "p.toml:{line}:{column}: unknown field `bogus_key`"
                )),
                "{table} {path:?}, {how}: {e}\n{text}"
            );
        }
    }
}

#[test]
fn bad_values_point_at_the_value_in_every_spelling() {
    let example = TABLES
        .iter()
        .find(|(t, _)| t.starts_with("init ("))
        .unwrap()
        .1;
    for (bad, message) in [
        ("\"0779\"", "invalid mode \"0779\""),
        ("\"sometimes\"", "unknown variant `sometimes`"),
    ] {
        let text = example
            .replace("\"0027\"", if bad == "\"0779\"" { bad } else { "\"0027\"" })
            .replace(
                "\"on-failure\"",
                if bad == "\"sometimes\"" {
                    bad
                } else {
                    "\"on-failure\""
                },
            );
        let doc: Table = text.parse().unwrap();
        for (how, text) in spellings(&doc) {
            let e = parsed(&text).unwrap_err();
            let (line, column) = line_col(&text, text.find(bad).unwrap());
            assert!(
                e.starts_with(&format!("p.toml:{line}:{column}: {message}")),
                "{how}: {e}\n{text}"
            );
        }
    }
}

#[test]
fn checks_after_parsing_point_at_the_same_key_in_every_spelling() {
    // A files entry with neither src nor content: its `dest` value.
    let doc: Table = "[[files]]\ndest = \"/a\"\ncontent = \"\"\n[[files]]\ndest = \"/etc/x\"\n"
        .parse()
        .unwrap();
    for (how, text) in spellings(&doc) {
        let (line, column) = line_col(&text, text.find("\"/etc/x\"").unwrap());
        assert_eq!(
            parsed(&text).unwrap_err(),
            format!("p.toml:{line}:{column}: files entry for /etc/x: give exactly one of `src` and `content`"),
            "{how}\n{text}"
        );
    }
    // An init table that runs nothing: where `init` is defined, its
    // `[init]` header if it has one, else the first `init` key.
    let doc: Table = "[init]\nhostname = \"h\"\n[init.root]\nmode = \"tmpfs\"\n"
        .parse()
        .unwrap();
    for (how, text) in spellings(&doc) {
        let at = text.find("[init]\n").or_else(|| text.find("init")).unwrap();
        let (line, column) = line_col(&text, at);
        assert_eq!(
            parsed(&text).unwrap_err(),
            format!("p.toml:{line}:{column}: init: no services and no root.exec: the init would have nothing to run"),
            "{how}\n{text}"
        );
    }
}

#[test]
fn span_of_follows_key_paths_through_arrays_and_stops_at_the_deepest_known() {
    let text = "[[init.services]]\nargv = [\"/a\"]\n[[init.services]]\nargv = [\"/b\"]\n";
    let at = |path: &[Seg]| span_of(text, path).map(|s| line_col(text, s.start));
    assert_eq!(at(&[Seg::Key("init")]), Some((1, 3)));
    let second = [Seg::Key("init"), Seg::Key("services"), Seg::Index(1)];
    assert_eq!(at(&second), Some((3, 1)));
    let argv = [second[0], second[1], second[2], Seg::Key("argv")];
    assert_eq!(at(&argv), Some((4, 1)));
    let missing = [second[0], second[1], Seg::Index(7), Seg::Key("argv")];
    assert_eq!(at(&missing), Some((1, 1)));
    assert_eq!(span_of("not toml [", &[Seg::Key("init")]), None);
}

/// Issue 21: a missing `extends` parent was an error without a place.
#[test]
fn missing_extends_parent_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = dir.path().join("p.toml");
    std::fs::write(&leaf, "binaries = []\nextends = \"nosuch\"\n").unwrap();
    let e = load_path(&leaf).unwrap_err().to_string();
    let d = dir.path().display();
    assert_eq!(
        e,
        format!(
            "{d}/p.toml:2:11: extends: profile \"nosuch\" not found (looked in {d}/nosuch.toml, \
             profiles/nosuch.toml, /usr/share/mkrootfs/profiles/nosuch.toml)"
        )
    );
}

/// Issue 21: "profile not found" named paths it had not tried
/// (`profiles/p/x.toml` for `-p p/x.toml`, not `p/x.toml`), listed an
/// absolute path twice, and `-p p/shell` did not find `p/shell.toml`.
#[test]
fn profile_not_found_lists_the_paths_tried_and_a_path_gets_its_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::create_dir(dir.path().join("p")).unwrap();
    std::fs::write(dir.path().join("p/shell.toml"), "").unwrap();
    let shell = format!("{d}/p/shell");
    assert_eq!(locate(&shell).unwrap(), dir.path().join("p/shell.toml"));
    let x = format!("{d}/p/x.toml");
    assert_eq!(
        locate(&x).unwrap_err().to_string(),
        format!("profile \"{x}\" not found (looked in {x})")
    );
    assert_eq!(
        locate("q/x.toml").unwrap_err().to_string(),
        "profile \"q/x.toml\" not found (looked in q/x.toml, profiles/q/x.toml, \
         /usr/share/mkrootfs/profiles/q/x.toml)"
    );
    assert_eq!(
        locate("nosuch").unwrap_err().to_string(),
        "profile \"nosuch\" not found (looked in profiles/nosuch.toml, \
         /usr/share/mkrootfs/profiles/nosuch.toml)"
    );
}

/// The keys of a table of the init's schema, from serde's own list: a
/// document with an unknown key is refused with "expected one of ...".
fn schema_keys<T: serde::de::DeserializeOwned + std::fmt::Debug>(extra: &str) -> Vec<String> {
    let e = toml::from_str::<T>(&format!("{extra}mkrootfs_no_such_key = 1\n")).unwrap_err();
    let message = e.message().to_string();
    // serde writes "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, ...".
    let list = message
        .split_once("expected ")
        .unwrap_or_else(|| panic!("{message}"))
        .1;
    let list = list.strip_prefix("one of ").unwrap_or(list);
    list.split(", ")
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim_matches('`').to_string())
        .collect()
}

/// Issue 21: no page listed the keys of `[init]`, `[init.root]`,
/// `[init.shutdown]`, `[[init.services]]` and `[[init.mounts]]`. Every key
/// of the schema has its row (with type and default) in docs/profiles.md,
/// under its table's heading.
#[test]
fn profiles_md_documents_every_init_key() {
    use mkrootfs_config::{InitConfig, MountConfig, RootConfig, ServiceConfig, ShutdownConfig};
    const DOC: &str = include_str!("../../../docs/profiles.md");
    let section = |heading: &str| -> &str {
        let start = DOC
            .find(&format!("### `{heading}`\n"))
            .unwrap_or_else(|| panic!("no heading for {heading}"));
        let rest = &DOC[start + 4..];
        let end = rest.find("\n#").unwrap_or(rest.len());
        &rest[..end]
    };
    let tables = [
        ("[init]", schema_keys::<InitConfig>("")),
        ("[init.root]", schema_keys::<RootConfig>("")),
        ("[init.shutdown]", schema_keys::<ShutdownConfig>("")),
        (
            "[init.agent]",
            schema_keys::<mkrootfs_config::agent::AgentConfig>(""),
        ),
        (
            "[init.config_drive]",
            schema_keys::<mkrootfs_config::ConfigDriveConfig>(""),
        ),
        (
            "[init.mmds]",
            schema_keys::<mkrootfs_config::MmdsConfig>(""),
        ),
        ("[[init.services]]", schema_keys::<ServiceConfig>("")),
        ("[[init.mounts]]", schema_keys::<MountConfig>("")),
        (
            "[[init.network]]",
            schema_keys::<mkrootfs_config::network::NetworkConfig>(""),
        ),
    ];
    let mut missing = Vec::new();
    for (heading, keys) in &tables {
        assert!(keys.len() >= 2, "{heading}: {keys:?}");
        let text = section(heading);
        for key in keys {
            // A row: key, type, default, meaning.
            let row = text
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")));
            match row {
                Some(r) if r.matches(" | ").count() >= 3 => {}
                _ => missing.push(format!("{heading} {key}")),
            }
        }
    }
    assert!(missing.is_empty(), "not in docs/profiles.md: {missing:?}");
}
