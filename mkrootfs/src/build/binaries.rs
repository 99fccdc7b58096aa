//! The binaries a profile names: `$PATH` (or the default PATH inside a
//! sysroot) lookup, and busybox's applet links.

use super::*;

/// Finds a binary named in a profile: an absolute path as is, else the
/// first executable of that name in `$PATH` (sysroot `/`) or the default
/// PATH inside the sysroot. Returns the path inside the sysroot.
pub fn locate_binary(sysroot: &Path, name: &str, profile: &str) -> Result<String, BuildError> {
    if name.starts_with('/') {
        if is_file_in(sysroot, name) {
            return Ok(name.to_string());
        }
        return Err(BuildError::BinaryNotFound {
            name: name.to_string(),
            profile: profile.to_string(),
            searched: sysroot
                .join(name.trim_start_matches('/'))
                .display()
                .to_string(),
        });
    }
    let host_path = std::env::var("PATH").unwrap_or_default();
    let search = if sysroot == Path::new("/") && !host_path.is_empty() {
        format!("{host_path}:{DEFAULT_PATH}")
    } else {
        DEFAULT_PATH.to_string()
    };
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
        profile: profile.to_string(),
        searched: format!("PATH {} (in {})", seen.join(":"), sysroot.display()),
    })
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
