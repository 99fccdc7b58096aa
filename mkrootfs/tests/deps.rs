//! The ELF resolver against the real loader and against fixtures.
//!
//! `ldd` is run here, by the tests only, as the reference; the library never
//! runs it. Fixtures are C sources compiled with gcc by
//! `fixtures/elf/build.sh` into a fresh directory once per test run.

use mkrootfs_tests as util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mkrootfs::elf::{format_why, script_interpreter, Arch, Dep, Resolver, ResolverOptions, Rule};

fn host_resolver() -> Resolver {
    Resolver::new(ResolverOptions::default()).unwrap()
}

fn opts(sysroot: &Path, arch: Option<Arch>, dlopen_notes: bool) -> ResolverOptions {
    ResolverOptions {
        sysroot: sysroot.to_path_buf(),
        dlopen_notes,
        arch,
    }
}

/// What `ldd` says `bin` loads (right-hand sides plus the interpreter, no
/// vDSO); `None` when it is not dynamic or ldd itself cannot resolve it.
fn ldd_paths(bin: &Path) -> Option<BTreeSet<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success()
        || text.contains("not a dynamic executable")
        || text.contains("statically linked")
    {
        return None;
    }
    let mut paths = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("=> not found") {
            return None;
        }
        let path = match line.split_once(" => ") {
            Some((_, rhs)) => rhs,
            None => line,
        };
        let path = path.split(" (0x").next().unwrap().trim();
        if path.starts_with('/') {
            paths.insert(PathBuf::from(path));
        }
    }
    Some(paths)
}

fn closure_paths(resolver: &Resolver, bin: &Path) -> BTreeSet<PathBuf> {
    let closure = resolver
        .closure(&[bin.to_path_buf()])
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    closure.deps.into_iter().map(|d| d.path).collect()
}

#[test]
fn matches_ldd_for_common_programs() {
    let resolver = host_resolver();
    let mut checked = 0;
    for name in ["bash", "python3", "perl", "ls", "ssh", "gpg", "git", "curl"] {
        let Some(bin) = ["/usr/bin", "/bin", "/usr/local/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
        else {
            eprintln!("skipped {name}: not installed");
            continue;
        };
        let bin = bin.canonicalize().unwrap();
        let Some(want) = ldd_paths(&bin) else {
            eprintln!("skipped {}: ldd reports no dynamic closure", bin.display());
            continue;
        };
        assert_eq!(closure_paths(&resolver, &bin), want, "{}", bin.display());
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} programs checked");
}

/// Every dynamic ELF in /usr/bin (bounded), as a regression net for the
/// search order. Roots are canonical so that `$ORIGIN` means the same for
/// ldd (which uses the path given) and for the resolver (the real location).
#[test]
fn matches_ldd_for_every_elf_in_usr_bin() {
    compare_dir_with_ldd(Path::new("/usr/bin"), 1200, 50);
}

/// Shared libraries as roots. A library has no PT_INTERP, but ldd loads it
/// under /lib64/ld-linux-x86-64.so.2, whose soname then satisfies libc's
/// DT_NEEDED; the resolver finds that same file through ld.so.cache as
/// /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2. Only that name is compared
/// loosely here.
#[test]
fn matches_ldd_for_libraries() {
    compare_dir_with_ldd(Path::new("/usr/lib/x86_64-linux-gnu"), 1000, 50);
}

fn compare_dir_with_ldd(dir: &Path, limit: usize, at_least: usize) {
    let loose_interp = dir != Path::new("/usr/bin");
    let normalize = |paths: BTreeSet<PathBuf>| -> BTreeSet<PathBuf> {
        paths
            .into_iter()
            .map(|p| {
                if loose_interp && p.file_name().is_some_and(|n| n == "ld-linux-x86-64.so.2") {
                    PathBuf::from("<ld-linux-x86-64.so.2>")
                } else {
                    p
                }
            })
            .collect()
    };
    let resolver = host_resolver();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in entries {
        let Ok(real) = path.canonicalize() else {
            continue;
        };
        if !real.is_file() || !seen.insert(real.clone()) || checked >= limit {
            continue;
        }
        let mut head = [0u8; 4];
        let is_elf = std::fs::File::open(&real)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .is_ok_and(|()| &head == b"\x7fELF");
        if !is_elf {
            continue;
        }
        let Some(want) = ldd_paths(&real).map(normalize) else {
            continue;
        };
        checked += 1;
        match resolver.closure(std::slice::from_ref(&real)) {
            Ok(c) => {
                let got = normalize(c.deps.into_iter().map(|d| d.path).collect());
                if got != want {
                    failures.push(format!(
                        "{}: only resolver {:?}, only ldd {:?}",
                        real.display(),
                        got.difference(&want).collect::<Vec<_>>(),
                        want.difference(&got).collect::<Vec<_>>()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", real.display())),
        }
    }
    eprintln!("compared {checked} ELF files of {} with ldd", dir.display());
    assert!(
        checked >= at_least,
        "only {checked} ELF files of {} compared",
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The fixture directory, built once per run of this test binary. Each
/// process has its own (concurrent `cargo test` runs must not clobber each
/// other); directories of processes that are gone are removed.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("elf-fixtures-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let out = tmp.join(format!("elf-fixtures-{}", std::process::id()));
        if out.exists() {
            std::fs::remove_dir_all(&out).unwrap();
        }
        std::fs::create_dir_all(&out).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/elf");
        let status = Command::new("sh")
            .arg(src.join("build.sh"))
            .arg(&src)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "fixtures/elf/build.sh failed");
        out
    })
}

fn fx(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

fn find<'a>(deps: &'a [Dep], name: &str) -> &'a Dep {
    deps.iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{name} not in {deps:#?}"))
}

/// Whether the 32-bit fixtures were built; skips the test without them,
/// except under `CI=true`, where it fails (see `util::require`).
fn has_m32() -> bool {
    let missing = fx("no-m32").exists();
    util::require(
        &format!(
            "gcc -m32 (gcc-multilib): {}",
            std::fs::read_to_string(fx("m32.log")).unwrap_or_default()
        ),
        !missing,
    )
}

#[test]
fn runpath_and_rpath_rules_are_reported() {
    let r = host_resolver();
    let c = r.closure(&[fx("t/exe_rpath")]).unwrap();
    assert_eq!(
        find(&c.deps, "libmkrfsmid.so").rule,
        Rule::Rpath(fx("t/mid"))
    );
    let c = r.closure(&[fx("o/exe_symlinked_lib")]).unwrap();
    assert_eq!(
        find(&c.deps, "libmkrfsfoo.so").rule,
        Rule::Runpath(fx("o/dir2"))
    );
    assert_eq!(c.arch, Some(Arch::X86_64));
}

/// ld.so searches DT_RPATH of the loader's loaders too, but DT_RUNPATH only
/// for the object's own DT_NEEDED.
#[test]
fn rpath_is_inherited_and_runpath_is_not() {
    let r = host_resolver();
    let c = r.closure(&[fx("t/exe_rpath")]).unwrap();
    let inner = find(&c.deps, "libmkrfsinner.so");
    assert_eq!(inner.path, fx("t/inner/libmkrfsinner.so"));
    assert_eq!(inner.needed_by, fx("t/mid/libmkrfsmid.so"));
    assert_eq!(inner.rule, Rule::Rpath(fx("t/inner")));
    assert_eq!(
        closure_paths(&r, &fx("t/exe_rpath")),
        ldd_paths(&fx("t/exe_rpath")).unwrap()
    );

    let err = r.closure(&[fx("t/exe_runpath")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "libmkrfsinner.so (needed by {}) not found in ld.so.cache, /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib, /usr/lib",
            fx("t/mid/libmkrfsmid.so").display()
        )
    );
    assert!(
        ldd_paths(&fx("t/exe_runpath")).is_none(),
        "ldd found libmkrfsinner.so too"
    );
}

#[test]
fn origin_is_the_executables_real_directory() {
    let r = host_resolver();
    // Through a symlink, $ORIGIN is where the executable really is, as
    // /proc/self/exe reports when it runs.
    let c = r.closure(&[fx("o/link/exe")]).unwrap();
    let dep = find(&c.deps, "libmkrfsorigin.so");
    assert_eq!(dep.path, fx("o/bin/../lib/libmkrfsorigin.so"));
    assert_eq!(dep.rule, Rule::Runpath(fx("o/bin/../lib")));
    assert_eq!(dep.needed_by, fx("o/link/exe"));
}

/// For a library, glibc takes $ORIGIN from the path it opened, not from
/// where a symlink points (libmkrfsbar.so exists only next to the symlink).
#[test]
fn library_origin_is_the_directory_it_was_opened_from() {
    let r = host_resolver();
    let c = r.closure(&[fx("o/exe_symlinked_lib")]).unwrap();
    let bar = find(&c.deps, "libmkrfsbar.so");
    assert_eq!(bar.path, fx("o/dir2/libmkrfsbar.so"));
    assert_eq!(bar.rule, Rule::Rpath(fx("o/dir2")));
    assert_eq!(
        closure_paths(&r, &fx("o/exe_symlinked_lib")),
        ldd_paths(&fx("o/exe_symlinked_lib")).unwrap()
    );
}

#[test]
fn lib_token_expands_like_debians_loader() {
    let r = host_resolver();
    let c = r.closure(&[fx("d/exe")]).unwrap();
    let dep = find(&c.deps, "libmkrfsdst.so");
    assert_eq!(dep.path, fx("d/lib/x86_64-linux-gnu/libmkrfsdst.so"));
    assert_eq!(dep.rule, Rule::Runpath(fx("d/lib/x86_64-linux-gnu")));
    assert_eq!(
        closure_paths(&r, &fx("d/exe")),
        ldd_paths(&fx("d/exe")).unwrap()
    );
}

/// DF_1_NODEFLIB hides ld.so.cache entries in system directories and the
/// system directories; ldd reports libc.so.6 as not found too.
#[test]
fn nodeflib_skips_system_directories() {
    let err = host_resolver().closure(&[fx("nd/exe")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "libc.so.6 (needed by {}) not found in DT_RUNPATH {}, ld.so.cache",
            fx("nd/exe").display(),
            fx("nd/lib").display()
        )
    );
    assert!(ldd_paths(&fx("nd/exe")).is_none());
}

#[test]
fn needed_path_is_used_as_is() {
    let r = host_resolver();
    let c = r.closure(&[fx("a/exe")]).unwrap();
    let name = fx("a/libmkrfsabs.so").to_string_lossy().into_owned();
    let dep = find(&c.deps, &name);
    assert_eq!(dep.path, fx("a/libmkrfsabs.so"));
    assert_eq!(dep.rule, Rule::Absolute);
    assert_eq!(
        closure_paths(&r, &fx("a/exe")),
        ldd_paths(&fx("a/exe")).unwrap()
    );
}

#[test]
fn static_executable_has_no_deps() {
    let c = host_resolver().closure(&[fx("static")]).unwrap();
    assert_eq!(c.deps, vec![]);
    assert_eq!(c.arch, Some(Arch::X86_64));
}

#[test]
fn missing_library_names_it_and_its_needer() {
    let err = host_resolver().closure(&[fx("m/exe")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "libmkrfsgone.so (needed by {}) not found in DT_RUNPATH {}, ld.so.cache, /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib, /usr/lib",
            fx("m/exe").display(),
            fx("m/nowhere").display()
        )
    );
}

#[test]
fn a_32_bit_library_in_an_earlier_runpath_dir_is_skipped() {
    if !has_m32() {
        return;
    }
    let r = host_resolver();
    let c = r.closure(&[fx("s/exe")]).unwrap();
    let dep = find(&c.deps, "libmkrfsshadow.so");
    assert_eq!(dep.path, fx("s/64/libmkrfsshadow.so"));
    assert_eq!(dep.rule, Rule::Runpath(fx("s/64")));
    assert_eq!(
        closure_paths(&r, &fx("s/exe")),
        ldd_paths(&fx("s/exe")).unwrap()
    );

    // With only the 32-bit one on the path, the error says it was skipped.
    let err = r.closure(&[fx("s/exe_only32")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "libmkrfsshadow.so (needed by {}) not found in DT_RUNPATH {}, ld.so.cache, /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib, /usr/lib; skipped {} (i386 (ELF32))",
            fx("s/exe_only32").display(),
            fx("s/32").display(),
            fx("s/32/libmkrfsshadow.so").display()
        )
    );
}

#[test]
fn a_library_of_another_machine_is_skipped() {
    let r = host_resolver();
    let c = r.closure(&[fx("s/exe_machine")]).unwrap();
    let dep = find(&c.deps, "libmkrfsmachine.so");
    assert_eq!(dep.path, fx("s/64/libmkrfsmachine.so"));
    assert_eq!(
        closure_paths(&r, &fx("s/exe_machine")),
        ldd_paths(&fx("s/exe_machine")).unwrap()
    );
}

/// The loader reuses an object whose file (dev, inode) is already loaded,
/// whatever name found it.
#[test]
fn one_file_under_two_names_is_loaded_once() {
    let r = host_resolver();
    let c = r.closure(&[fx("i/exe")]).unwrap();
    let ours: Vec<&Dep> = c
        .deps
        .iter()
        .filter(|d| d.name.starts_with("libmkrfs"))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert_eq!(ours[0].path, fx("i/libmkrfsone.so"));
    assert_eq!(
        closure_paths(&r, &fx("i/exe")),
        ldd_paths(&fx("i/exe")).unwrap()
    );
}

#[test]
fn wrong_arch_root_is_an_error() {
    if !has_m32() {
        return;
    }
    let r = Resolver::new(opts(Path::new("/"), Some(Arch::X86_64), false)).unwrap();
    let err = r.closure(&[fx("s/exe32")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is i386 (ELF32), expected x86-64 (ELF64)",
            fx("s/exe32").display()
        )
    );
    // Alone and without a given arch it resolves as i386, like ldd does.
    let c = host_resolver().closure(&[fx("s/exe32")]).unwrap();
    assert_eq!(c.arch, Some(Arch::I386));
    assert_eq!(
        closure_paths(&host_resolver(), &fx("s/exe32")),
        ldd_paths(&fx("s/exe32")).unwrap()
    );
    // Without a given arch the first root sets it.
    let err = host_resolver()
        .closure(&[fx("s/exe"), fx("s/exe32")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is i386 (ELF32), expected x86-64 (ELF64)",
            fx("s/exe32").display()
        )
    );
}

#[test]
fn non_elf_roots_are_one_line_errors() {
    let r = host_resolver();
    let err = r.closure(&[fx("script.sh")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not an ELF file but a #! script for /bin/sh",
            fx("script.sh").display()
        )
    );
    let err = r.closure(&[fx("text")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} is not an ELF file", fx("text").display())
    );
    assert_eq!(
        script_interpreter(&fx("script.sh")).unwrap().as_deref(),
        Some("/bin/sh")
    );
    assert_eq!(script_interpreter(&fx("m/exe")).unwrap(), None);
    let err = r.closure(&[PathBuf::from("relative/bin")]).unwrap_err();
    assert_eq!(err.to_string(), "root relative/bin is not an absolute path");
}

/// Absolute symlinks inside the sysroot point into the sysroot (the host has
/// no /opt/real), the interpreter keeps its PT_INTERP path, and without an
/// ld.so.cache the ld.so.conf include glob is followed.
#[test]
fn sysroot_lookups_stay_inside_the_sysroot() {
    let sysroot = fx("sysroot");
    let r = Resolver::new(opts(&sysroot, None, false)).unwrap();
    let c = r.closure(&[PathBuf::from("/usr/bin/hello")]).unwrap();
    let why = format_why(&c);
    assert_eq!(
        why,
        "/lib64/ld-linux-x86-64.so.2: /lib64/ld-linux-x86-64.so.2 needed by /usr/bin/hello, found via PT_INTERP\n\
         /lib/x86_64-linux-gnu/libmkrfshello.so.1: libmkrfshello.so.1 needed by /usr/bin/hello, found via default directory /lib/x86_64-linux-gnu\n\
         /opt/lib/libmkrfsextra.so: libmkrfsextra.so needed by /usr/bin/hello, found via ld.so.conf /opt/lib\n\
         /lib/x86_64-linux-gnu/libc.so.6: libc.so.6 needed by /usr/bin/hello, found via default directory /lib/x86_64-linux-gnu\n"
    );
    assert_eq!(
        r.find_library("libmkrfsextra.so").unwrap(),
        PathBuf::from("/opt/lib/libmkrfsextra.so")
    );
    assert_eq!(
        r.find_library("libc.so.6").unwrap(),
        PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")
    );
    assert_eq!(
        r.find_library("libmkrfs-nope.so.1").unwrap_err().to_string(),
        "libmkrfs-nope.so.1 not found in /opt/lib, /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib, /usr/lib"
    );
    // The host's resolver finds the host's libc, through ld.so.cache.
    assert_eq!(
        host_resolver().find_library("libc.so.6").unwrap(),
        PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")
    );
}

#[test]
fn dlopen_notes_are_followed_only_when_asked() {
    let without = host_resolver().closure(&[fx("n/exe")]).unwrap();
    assert!(
        without.deps.iter().all(|d| d.rule != Rule::DlopenNote),
        "{without:#?}"
    );

    let r = Resolver::new(opts(Path::new("/"), None, true)).unwrap();
    let c = r.closure(&[fx("n/exe")]).unwrap();
    let noted = find(&c.deps, "libmkrfsnoted.so");
    assert_eq!(noted.path, fx("n/lib/libmkrfsnoted.so"));
    assert_eq!(noted.rule, Rule::DlopenNote);
    assert_eq!(noted.needed_by, fx("n/exe"));
    // Its own DT_NEEDED are resolved too; the "suggested" entry that exists
    // nowhere is not an error.
    assert_eq!(
        find(&c.deps, "libmkrfsinner.so").rule,
        Rule::Runpath(fx("t/inner"))
    );

    let err = r.closure(&[fx("n/exe_absent")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "none of libmkrfs-absent.so.1 (required by the .note.dlopen of {}) found in ld.so.cache, /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib, /usr/lib",
            fx("n/exe_absent").display()
        )
    );
}

/// A malformed note matters only when notes are followed.
#[test]
fn malformed_dlopen_note_is_an_error_only_when_asked() {
    let c = host_resolver().closure(&[fx("n/exe_badjson")]).unwrap();
    assert_eq!(c.deps.len(), 2, "{c:#?}");
    let r = Resolver::new(opts(Path::new("/"), None, true)).unwrap();
    let err = r.closure(&[fx("n/exe_badjson")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "malformed .note.dlopen in {}: EOF while parsing a value at line 1 column 11",
            fx("n/exe_badjson").display()
        )
    );
}

#[test]
fn several_roots_share_deps_and_exclude_roots() {
    let r = host_resolver();
    let inner = fx("t/inner/libmkrfsinner.so");
    let c = r
        .closure(&[fx("t/exe_rpath"), inner.clone(), fx("o/bin/exe")])
        .unwrap();
    let paths: Vec<&Path> = c.deps.iter().map(|d| d.path.as_path()).collect();
    let unique: BTreeSet<&Path> = paths.iter().copied().collect();
    assert_eq!(paths.len(), unique.len(), "duplicates in {paths:?}");
    assert!(
        !unique.contains(inner.as_path()),
        "a root is listed as a dependency"
    );
    assert!(unique.contains(fx("t/mid/libmkrfsmid.so").as_path()));
    assert_eq!(c.deps[0].rule, Rule::Interp);
    assert_eq!(c.deps[0].path, PathBuf::from("/lib64/ld-linux-x86-64.so.2"));
    assert!(unique.contains(fx("o/bin/../lib/libmkrfsorigin.so").as_path()));
}
