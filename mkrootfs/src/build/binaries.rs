//! The binaries a profile names: looked up in a fixed search path inside
//! the sysroot (never the caller's `$PATH`, so that the image depends on
//! the profile and the sysroot only), the interpreters of `#!` scripts, and
//! busybox's applet links.

use super::*;

/// Finds a binary named in a profile: an absolute path as is, else the
/// first file of that name in the directories of `search` (`:`-separated,
/// [`DEFAULT_PATH`] unless the profile's `image.binary_path` says
/// otherwise), inside the sysroot. `origin` says who named it, for the
/// error. Returns the path inside the sysroot.
pub fn locate_binary_in(
    sysroot: &Path,
    name: &str,
    search: &str,
    origin: &str,
) -> Result<String, BuildError> {
    if name.starts_with('/') {
        if is_file_in(sysroot, name) {
            return Ok(name.to_string());
        }
        return Err(BuildError::BinaryNotFound {
            name: name.to_string(),
            profile: origin.to_string(),
            searched: sysroot
                .join(name.trim_start_matches('/'))
                .display()
                .to_string(),
        });
    }
    let mut seen = Vec::new();
    for dir in search.split(':').filter(|d| d.starts_with('/')) {
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir);
        let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
        if is_file_in(sysroot, &candidate) {
            return Ok(candidate);
        }
    }
    Err(BuildError::BinaryNotFound {
        name: name.to_string(),
        profile: origin.to_string(),
        searched: format!("PATH {} (in {})", seen.join(":"), sysroot.display()),
    })
}

/// [`locate_binary_in`] with the default search path, [`DEFAULT_PATH`].
pub fn locate_binary(sysroot: &Path, name: &str, origin: &str) -> Result<String, BuildError> {
    locate_binary_in(sysroot, name, DEFAULT_PATH, origin)
}

/// What a binary named in a profile brings: its own path, and the programs
/// its `#!` line runs (the interpreter; for `#!/usr/bin/env PROG`, also
/// `PROG`, looked up in the same search path). The last is what the ELF
/// closure starts from. A note when `env` names no program it can follow.
pub struct Located {
    pub paths: Vec<String>,
    pub note: Option<String>,
}

pub fn locate_with_interpreters(
    sysroot: &Path,
    name: &str,
    search: &str,
    origin: &str,
) -> Result<Located, BuildError> {
    let path = locate_binary_in(sysroot, name, search, origin)?;
    let mut paths = vec![path.clone()];
    let mut note = None;
    let host = elf::sysroot::resolve_in_root(sysroot, Path::new(&path))
        .map(|inside| elf::sysroot::host_path(sysroot, &inside))
        .unwrap_or_else(|_| sysroot.join(path.trim_start_matches('/')));
    if let Ok(Some((interp, arg))) = elf::script_shebang(&host) {
        let why = format!("interpreter of {name}");
        paths.push(locate_binary_in(sysroot, &interp, search, &why)?);
        if interp.rsplit('/').next() == Some("env") {
            match elf::env_program(&interp, arg.as_deref()) {
                Some(prog) => {
                    let why = format!("the program `#!{interp}` of {name} runs");
                    paths.push(locate_binary_in(sysroot, &prog, search, &why)?);
                }
                None => {
                    note = Some(format!(
                        "{origin}: {name} starts with `#!{interp}{}`: the program env runs is \
                         not known, so it is not in the image unless named in binaries",
                        arg.map(|a| format!(" {a}")).unwrap_or_default()
                    ))
                }
            }
        }
    }
    Ok(Located { paths, note })
}

/// Whether `path` names a regular file inside `sysroot`, following its
/// symlinks there: an absolute one (`/usr/bin/vi -> /etc/alternatives/vi`)
/// points into the sysroot, not at the host's file.
pub(super) fn is_file_in(sysroot: &Path, path: &str) -> bool {
    elf::sysroot::resolve_in_root(sysroot, Path::new(path))
        .map(|inside| elf::sysroot::host_path(sysroot, &inside).is_file())
        .unwrap_or(false)
}

/// Adds one symlink per applet of the busybox binary at `image_path`.
pub(super) fn add_busybox_links(
    tree: &mut Tree,
    sysroot: &Path,
    image_path: &str,
) -> Result<(), BuildError> {
    let host = sysroot.join(image_path.trim_start_matches('/'));
    let out = std::process::Command::new(&host)
        .arg("--list-full")
        .output()
        .map_err(|source| BuildError::Busybox {
            path: host.clone(),
            source,
        })?;
    if !out.status.success() {
        let msg = format!("exited with {}", out.status);
        return Err(BuildError::Busybox {
            path: host,
            source: std::io::Error::other(msg),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut applets: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    applets.sort();
    for applet in applets {
        let path = format!("/{applet}");
        if path == image_path || path == "/linuxrc" {
            continue;
        }
        let resolved = tree.resolve(&path, false)?;
        if tree.get(&resolved).is_none() {
            tree.add_symlink(&path, image_path, "busybox applet")?;
        }
    }
    Ok(())
}
