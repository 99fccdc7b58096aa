//! What the loader's built-in search depends on for one arch and sysroot:
//! the default directories, and the values of `$LIB` and `$PLATFORM`; plus
//! the expansion of those dynamic string tokens (ld.so(8) "Dynamic string
//! tokens").

use std::path::{Path, PathBuf};

use super::object::Arch;
use super::sysroot::resolve_in_root;

/// The loader's compiled-in facts for one arch, as found in one sysroot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub arch: Arch,
    /// The value of `$LIB`.
    pub lib: String,
    /// The value of `$PLATFORM`.
    pub platform: &'static str,
    /// The system search path, after ld.so.cache.
    pub default_dirs: Vec<PathBuf>,
}

impl Layout {
    /// A sysroot with `/lib/<triplet>` is a Debian-style multiarch system:
    /// its glibc is built with `slibdir=/lib/<triplet>`, so the system path
    /// is `/lib/<triplet>:/usr/lib/<triplet>:/lib:/usr/lib` and `$LIB` is
    /// `lib/<triplet>` (what `ld.so --help` and `LD_DEBUG=libs` show on
    /// Debian 12). Otherwise the upstream defaults: `lib64` for 64-bit.
    pub fn new(sysroot: &Path, arch: Arch) -> Layout {
        let triplet = arch.multiarch_triplet().filter(|t| is_dir_in(sysroot, t));
        let (lib, default_dirs) = match triplet {
            Some(t) => (
                format!("lib/{t}"),
                vec![
                    format!("/lib/{t}"),
                    format!("/usr/lib/{t}"),
                    "/lib".into(),
                    "/usr/lib".into(),
                ],
            ),
            None if arch.class == goblin::elf::header::ELFCLASS64 => (
                "lib64".to_string(),
                vec![
                    "/lib64".into(),
                    "/usr/lib64".into(),
                    "/lib".into(),
                    "/usr/lib".into(),
                ],
            ),
            None => ("lib".to_string(), vec!["/lib".into(), "/usr/lib".into()]),
        };
        Layout {
            arch,
            lib,
            platform: arch.platform(),
            default_dirs: default_dirs.into_iter().map(PathBuf::from).collect(),
        }
    }

    /// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` (also `${...}`) in one
    /// search path entry or `DT_NEEDED` name. `origin` is the directory of
    /// the object the string came from. Unknown `$` sequences stay as they
    /// are, as in glibc's `_dl_dst_substitute`.
    pub fn expand(&self, input: &str, origin: &Path) -> String {
        let origin = origin.to_string_lossy();
        let mut out = String::with_capacity(input.len());
        let mut rest = input;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let token = [
                ("ORIGIN", &*origin),
                ("PLATFORM", self.platform),
                ("LIB", &*self.lib),
            ]
            .into_iter()
            .find_map(|(name, value)| dst_len(rest, name).map(|len| (len, value)));
            match token {
                Some((len, value)) => {
                    out.push_str(value);
                    rest = &rest[len..];
                }
                None => out.push('$'),
            }
        }
        out.push_str(rest);
        out
    }
}

/// Whether `/lib/<triplet>` is a directory inside the sysroot.
fn is_dir_in(sysroot: &Path, triplet: &str) -> bool {
    resolve_in_root(sysroot, &Path::new("/lib").join(triplet))
        .is_ok_and(|real| super::sysroot::host_path(sysroot, &real).is_dir())
}

/// Length of the token `name` at the start of `s` (after the `$`): `NAME`
/// not followed by a name character, or `{NAME}`.
fn dst_len(s: &str, name: &str) -> Option<usize> {
    if let Some(inner) = s.strip_prefix('{') {
        return inner
            .strip_prefix(name)?
            .starts_with('}')
            .then_some(name.len() + 2);
    }
    let after = s.strip_prefix(name)?;
    let continues = after
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    (!continues).then_some(name.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian_layout() -> (tempfile::TempDir, Layout) {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.path().join("lib")).unwrap();
        let layout = Layout::new(root.path(), Arch::X86_64);
        (root, layout)
    }

    #[test]
    fn debian_multiarch_layout_matches_ld_so_help() {
        let (_root, layout) = debian_layout();
        assert_eq!(layout.lib, "lib/x86_64-linux-gnu");
        assert_eq!(layout.platform, "x86_64");
        let dirs: Vec<&str> = layout
            .default_dirs
            .iter()
            .map(|d| d.to_str().unwrap())
            .collect();
        assert_eq!(
            dirs,
            [
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib",
                "/usr/lib"
            ]
        );
    }

    #[test]
    fn non_multiarch_layout_uses_lib64() {
        let root = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path(), Arch::X86_64);
        assert_eq!(layout.lib, "lib64");
        assert_eq!(layout.default_dirs[0], PathBuf::from("/lib64"));
        assert_eq!(Layout::new(root.path(), Arch::I386).lib, "lib");
    }

    #[test]
    fn expands_origin_lib_platform_braced_and_bare() {
        let (_root, l) = debian_layout();
        let o = Path::new("/opt/app/bin");
        assert_eq!(l.expand("$ORIGIN/../lib", o), "/opt/app/bin/../lib");
        assert_eq!(
            l.expand("${ORIGIN}/x:$LIB", o),
            "/opt/app/bin/x:lib/x86_64-linux-gnu"
        );
        assert_eq!(
            l.expand("/usr/$LIB/$PLATFORM/${PLATFORM}", o),
            "/usr/lib/x86_64-linux-gnu/x86_64/x86_64"
        );
        // Not a token: a longer name, an unknown one, an unclosed brace.
        assert_eq!(l.expand("$ORIGINAL/$FOO/${LIB", o), "$ORIGINAL/$FOO/${LIB");
        assert_eq!(l.expand("$", o), "$");
        assert_eq!(l.expand("plain", o), "plain");
    }
}
