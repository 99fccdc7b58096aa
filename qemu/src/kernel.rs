//! Finding a kernel to boot: an explicit file, the running kernel, or a Debian cloud
//! kernel fetched once into the cache (`<cache>/kernels/<package>/`, see
//! docs/ARCHITECTURE.md "Kernel cache").

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lock::FileLock;
use crate::QemuError;

/// A bootable kernel and where its modules are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub vmlinuz: PathBuf,
    /// `.../lib/modules/<version>` when the tree exists.
    pub modules: Option<PathBuf>,
    pub version: String,
    /// Where it came from, for humans: "running kernel /boot/vmlinuz-...", "Debian package ...".
    pub source: String,
}

/// The metapackage whose dependency names the current cloud kernel package.
const CLOUD_META_PACKAGE: &str = "linux-image-cloud-amd64";
const PACKAGE_PREFIX: &str = "linux-image-";
const CLOUD_SUFFIX: &str = "-cloud-amd64";

/// `$MKROOTFS_CACHE`, else `$XDG_CACHE_HOME/mkrootfs`, else `~/.cache/mkrootfs`
/// (`/tmp/mkrootfs-cache` when not even `$HOME` is set).
pub fn cache_dir() -> PathBuf {
    cache_dir_from(
        std::env::var_os("MKROOTFS_CACHE"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// The precedence of [`cache_dir`], on explicit values; empty values count as unset.
fn cache_dir_from(
    mkrootfs_cache: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(mkrootfs_cache) {
        dir
    } else if let Some(xdg) = set(xdg_cache_home) {
        xdg.join("mkrootfs")
    } else if let Some(home) = set(home) {
        home.join(".cache").join("mkrootfs")
    } else {
        PathBuf::from("/tmp/mkrootfs-cache")
    }
}

/// Reads the version from an x86 bzImage setup header (Documentation/arch/x86/boot.rst:
/// "HdrS" at 0x202; at 0x20e a pointer, minus 0x200, to a NUL-terminated string such as
/// "6.1.0-48-cloud-amd64 (debian-kernel@...) #1 SMP ..."), and looks for
/// `../lib/modules/<version>` (or `../usr/lib/modules/<version>`) next to the file.
pub fn kernel_from_path(vmlinuz: &Path) -> Result<Kernel, QemuError> {
    let read_err = |e| QemuError::ReadKernel(vmlinuz.to_path_buf(), e);
    let mut header = Vec::new();
    // The version string lives in the setup sectors, which are at most 64 sectors of 512.
    fs::File::open(vmlinuz)
        .and_then(|f| f.take(0x200 * 65).read_to_end(&mut header))
        .map_err(read_err)?;
    let version = if header.starts_with(b"\x7fELF") {
        // An ELF vmlinux (QEMU boots it through its PVH note): the version is
        // only in the banner, somewhere in the image.
        let image = fs::read(vmlinuz).map_err(read_err)?;
        elf_banner_version(&image)
            .ok_or_else(|| QemuError::NoKernelVersion(vmlinuz.to_path_buf()))?
    } else {
        bzimage_version(&header).map_err(|e| match e {
            HeaderError::NotBzImage => QemuError::NotBzImage(vmlinuz.to_path_buf()),
            HeaderError::NoVersion => QemuError::NoKernelVersion(vmlinuz.to_path_buf()),
        })?
    };
    let root = match vmlinuz.parent().and_then(Path::parent) {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(Kernel {
        vmlinuz: vmlinuz.to_path_buf(),
        modules: modules_dir(&root, &version),
        source: format!("file {}", vmlinuz.display()),
        version,
    })
}

#[derive(Debug, PartialEq, Eq)]
enum HeaderError {
    NotBzImage,
    NoVersion,
}

fn bzimage_version(header: &[u8]) -> Result<String, HeaderError> {
    if header.get(0x202..0x206) != Some(b"HdrS") {
        return Err(HeaderError::NotBzImage);
    }
    let field = header.get(0x20e..0x210).ok_or(HeaderError::NotBzImage)?;
    let offset = usize::from(u16::from_le_bytes([field[0], field[1]]));
    if offset == 0 {
        return Err(HeaderError::NoVersion);
    }
    let text = header.get(offset + 0x200..).ok_or(HeaderError::NoVersion)?;
    let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(text.len())];
    let version = text
        .split(|b| b.is_ascii_whitespace())
        .next()
        .unwrap_or_default();
    match std::str::from_utf8(version) {
        Ok(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(HeaderError::NoVersion),
    }
}

/// The release in the kernel's `linux_banner`:
/// `Linux version <release> (<builder>) ...`.
fn elf_banner_version(image: &[u8]) -> Option<String> {
    const BANNER: &[u8] = b"Linux version ";
    image
        .windows(BANNER.len())
        .enumerate()
        .filter(|(_, w)| *w == BANNER)
        .find_map(|(at, _)| {
            let rest = &image[at + BANNER.len()..];
            let end = rest.iter().take(256).position(|&b| b == b' ')?;
            let version = std::str::from_utf8(&rest[..end]).ok()?;
            let plausible = !version.is_empty()
                && rest[end..].starts_with(b" (")
                && version.bytes().all(|b| b.is_ascii_graphic() && b != b'%');
            plausible.then(|| version.to_string())
        })
}

fn modules_dir(root: &Path, version: &str) -> Option<PathBuf> {
    ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|dir| root.join(dir).join(version))
        .find(|p| p.is_dir())
}

/// The kernel for `mkrootfs run` without `--kernel`: `$MKROOTFS_KERNEL`; else the
/// running kernel's `/boot/vmlinuz-$(uname -r)` when readable (Ubuntu makes it
/// root-only); else [`debian_cloud_kernel`].
pub fn find_kernel() -> Result<Kernel, QemuError> {
    if let Some(path) = std::env::var_os("MKROOTFS_KERNEL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let mut kernel = kernel_from_path(&path)?;
        kernel.source = format!("$MKROOTFS_KERNEL {}", path.display());
        return Ok(kernel);
    }
    if let Ok(release) = fs::read_to_string("/proc/sys/kernel/osrelease") {
        let release = release.trim();
        let path = PathBuf::from(format!("/boot/vmlinuz-{release}"));
        if fs::File::open(&path).is_ok() {
            let mut kernel = kernel_from_path(&path)?;
            kernel.source = format!("running kernel {}", path.display());
            return Ok(kernel);
        }
    }
    debian_cloud_kernel()
}

/// The test kernel: the newest `linux-image-*-cloud-amd64` already unpacked in
/// `<cache>/kernels/`, else the package `linux-image-cloud-amd64` depends on, fetched
/// with `apt-get download` and unpacked with `dpkg-deb -x` (into a temporary
/// directory renamed into place, under a lock, so an interrupted or concurrent fetch
/// never exposes half a kernel). When apt fails, an already downloaded `.deb` is used.
pub fn debian_cloud_kernel() -> Result<Kernel, QemuError> {
    let dir = cache_dir().join("kernels");
    if let Some(kernel) = cached_cloud_kernel(&dir)? {
        return Ok(kernel);
    }
    fs::create_dir_all(&dir).map_err(|e| QemuError::CreateDir(dir.clone(), e))?;
    let _lock = FileLock::exclusive(&dir.join(".lock"))?;
    // Another process may have finished the fetch while we waited for the lock.
    if let Some(kernel) = cached_cloud_kernel(&dir)? {
        return Ok(kernel);
    }
    remove_stale_temporaries(&dir)?;
    let deb = match apt_fetch(&dir) {
        Ok(deb) => deb,
        Err(apt_err) => match newest(debs_in(&dir)?) {
            Some(deb) => deb,
            None => return Err(apt_err),
        },
    };
    let package = package_of_deb(&deb);
    let tmp = dir.join(format!(".tmp-{package}-{}", std::process::id()));
    run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
    let target = dir.join(&package);
    fs::rename(&tmp, &target).map_err(|e| QemuError::Rename(tmp.clone(), target.clone(), e))?;
    cloud_kernel_in(&target, &package)
}

fn cached_cloud_kernel(dir: &Path) -> Result<Option<Kernel>, QemuError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(QemuError::ReadDir(dir.to_path_buf(), e)),
    };
    let mut packages = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| QemuError::ReadDir(dir.to_path_buf(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_cloud_package(&name) && entry.path().is_dir() {
            packages.push(entry.path());
        }
    }
    match newest(packages) {
        Some(path) => {
            let package = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            cloud_kernel_in(&path, &package).map(Some)
        }
        None => Ok(None),
    }
}

fn is_cloud_package(name: &str) -> bool {
    name.starts_with(PACKAGE_PREFIX) && name.ends_with(CLOUD_SUFFIX) && name != CLOUD_META_PACKAGE
}

fn cloud_kernel_in(root: &Path, package: &str) -> Result<Kernel, QemuError> {
    let version = package.trim_start_matches(PACKAGE_PREFIX).to_string();
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{version}"));
    if !vmlinuz.is_file() {
        return Err(QemuError::PackageWithoutKernel(root.to_path_buf(), version));
    }
    Ok(Kernel {
        modules: modules_dir(root, &version),
        source: format!("Debian package {package} (cache {})", root.display()),
        vmlinuz,
        version,
    })
}

/// Leftovers of an interrupted `dpkg-deb -x`; only called while holding the cache lock.
fn remove_stale_temporaries(dir: &Path) -> Result<(), QemuError> {
    let entries = fs::read_dir(dir).map_err(|e| QemuError::ReadDir(dir.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| QemuError::ReadDir(dir.to_path_buf(), e))?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(|e| QemuError::Remove(path.clone(), e))?;
        }
    }
    Ok(())
}

/// Asks apt which package is current and downloads it into `dir`; returns the `.deb`.
fn apt_fetch(dir: &Path) -> Result<PathBuf, QemuError> {
    let depends = run_checked(Command::new("apt-cache").args(["depends", CLOUD_META_PACKAGE]))?;
    let package = cloud_package_from_depends(&depends).ok_or(QemuError::NoCloudKernelPackage)?;
    run_checked(
        Command::new("apt-get")
            .args(["download", "-q", &package])
            .current_dir(dir),
    )?;
    let prefix = format!("{package}_");
    let deb = debs_in(dir)?.into_iter().find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
    });
    deb.ok_or_else(|| QemuError::DownloadedDebMissing(package, dir.to_path_buf()))
}

/// Picks `linux-image-<ver>-cloud-amd64` out of `apt-cache depends` output.
fn cloud_package_from_depends(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let name = line.trim().strip_prefix("Depends:")?.trim();
        let name = name.trim_start_matches('<').trim_end_matches('>');
        is_cloud_package(name).then(|| name.to_string())
    })
}

fn debs_in(dir: &Path) -> Result<Vec<PathBuf>, QemuError> {
    let entries = fs::read_dir(dir).map_err(|e| QemuError::ReadDir(dir.to_path_buf(), e))?;
    let mut debs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| QemuError::ReadDir(dir.to_path_buf(), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".deb") && is_cloud_package(package_of_deb(Path::new(&name)).as_str()) {
            debs.push(entry.path());
        }
    }
    Ok(debs)
}

/// `linux-image-6.1.0-48-cloud-amd64_6.1.172-1_amd64.deb` -> `linux-image-6.1.0-48-cloud-amd64`.
fn package_of_deb(deb: &Path) -> String {
    let name = deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.split('_').next().unwrap_or_default().to_string()
}

/// The path whose file name sorts last with digit runs compared as numbers
/// (so `...-56-cloud...` beats `...-9-cloud...`).
fn newest(paths: Vec<PathBuf>) -> Option<PathBuf> {
    paths.into_iter().max_by(|a, b| {
        let key = |p: &PathBuf| natural_key(&p.file_name().unwrap_or_default().to_string_lossy());
        key(a).cmp(&key(b))
    })
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk {
    Text(String),
    Number(u64),
}

fn natural_key(s: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut rest = s;
    while let Some(first) = rest.chars().next() {
        let digit = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digit)
            .unwrap_or(rest.len());
        let (chunk, tail) = rest.split_at(end);
        chunks.push(match chunk.parse() {
            Ok(n) if digit => Chunk::Number(n),
            _ => Chunk::Text(chunk.to_string()),
        });
        rest = tail;
    }
    chunks
}

/// Runs a command to completion; its stdout on success, an error with its stderr otherwise.
fn run_checked(cmd: &mut Command) -> Result<String, QemuError> {
    let line = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| QemuError::Exec(line.clone(), e))?;
    if !out.status.success() {
        return Err(QemuError::CommandFailed {
            command: line,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_version_comes_from_the_linux_banner() {
        let mut image = b"\x7fELF....Linux version %s (%s)\0".to_vec();
        image.extend_from_slice(
            b"Linux version 6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) (gcc)",
        );
        assert_eq!(
            elf_banner_version(&image).as_deref(),
            Some("6.1.0-57-cloud-amd64")
        );
        assert_eq!(elf_banner_version(b"\x7fELF no banner"), None);
    }

    #[test]
    fn elf_vmlinux_without_banner_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinux");
        fs::write(&path, b"\x7fELF\x02\x01\x01").unwrap();
        assert_eq!(
            kernel_from_path(&path).unwrap_err().to_string(),
            format!(
                "kernel {} carries no version string (setup header, or Linux banner of an ELF)",
                path.display()
            )
        );
    }

    #[test]
    fn cache_dir_precedence() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(
            cache_dir_from(s("/c"), s("/x"), s("/h")),
            PathBuf::from("/c")
        );
        assert_eq!(
            cache_dir_from(None, s("/x"), s("/h")),
            PathBuf::from("/x/mkrootfs")
        );
        assert_eq!(
            cache_dir_from(s(""), s("/x"), s("/h")),
            PathBuf::from("/x/mkrootfs")
        );
        assert_eq!(
            cache_dir_from(None, None, s("/h")),
            PathBuf::from("/h/.cache/mkrootfs")
        );
        assert_eq!(
            cache_dir_from(None, s(""), s("/h")),
            PathBuf::from("/h/.cache/mkrootfs")
        );
        assert_eq!(
            cache_dir_from(None, None, None),
            PathBuf::from("/tmp/mkrootfs-cache")
        );
    }

    /// The version comes from the bzImage header and matches the file name
    /// Debian gives the image; the modules sit next to it in the package.
    #[test]
    fn version_of_the_debian_cloud_kernel() {
        let kernel = match debian_cloud_kernel() {
            Ok(k) => k,
            Err(e) => {
                mkrootfs_tests::require(&format!("the test kernel ({e})"), false);
                return;
            }
        };
        let name = kernel
            .vmlinuz
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(name, format!("vmlinuz-{}", kernel.version));
        assert!(
            kernel.version.ends_with("-cloud-amd64"),
            "{}",
            kernel.version
        );
        let package = kernel.vmlinuz.parent().unwrap().parent().unwrap();
        assert_eq!(
            kernel.modules,
            Some(package.join("lib/modules").join(&kernel.version))
        );
    }

    fn header_with_version(offset: u16, text: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 0x400];
        h[0x202..0x206].copy_from_slice(b"HdrS");
        h[0x20e..0x210].copy_from_slice(&offset.to_le_bytes());
        let at = usize::from(offset) + 0x200;
        h[at..at + text.len()].copy_from_slice(text);
        h
    }

    #[test]
    fn bzimage_version_reads_the_first_word() {
        let h = header_with_version(0x100, b"6.12.1-arch1 (builder@host) #1\0junk");
        assert_eq!(bzimage_version(&h), Ok("6.12.1-arch1".to_string()));
    }

    #[test]
    fn bzimage_version_without_magic_or_pointer() {
        let mut h = header_with_version(0x100, b"6.1\0");
        h[0x202] = b'X';
        assert_eq!(bzimage_version(&h), Err(HeaderError::NotBzImage));
        assert_eq!(bzimage_version(&h[..0x100]), Err(HeaderError::NotBzImage));
        let h = header_with_version(0, b"");
        assert_eq!(bzimage_version(&h), Err(HeaderError::NoVersion));
        // Pointer past the end of what was read.
        let mut h = header_with_version(0x100, b"6.1\0");
        h[0x20e..0x210].copy_from_slice(&0x7000u16.to_le_bytes());
        assert_eq!(bzimage_version(&h), Err(HeaderError::NoVersion));
    }

    #[test]
    fn kernel_from_path_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinuz");
        fs::write(&path, b"not a kernel").unwrap();
        let err = kernel_from_path(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is neither an x86 bzImage (no \"HdrS\" setup header at 0x202) nor an ELF vmlinux",
                path.display()
            )
        );
        let missing = dir.path().join("missing");
        let err = kernel_from_path(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot read kernel {}", missing.display())
        );
    }

    #[test]
    fn kernel_from_path_finds_modules_next_to_boot() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("boot")).unwrap();
        fs::create_dir_all(dir.path().join("lib/modules/6.9.0-test")).unwrap();
        let path = dir.path().join("boot/vmlinuz");
        fs::write(&path, header_with_version(0x10, b"6.9.0-test #1\0")).unwrap();
        let kernel = kernel_from_path(&path).unwrap();
        assert_eq!(kernel.version, "6.9.0-test");
        assert_eq!(
            kernel.modules,
            Some(dir.path().join("lib/modules/6.9.0-test"))
        );
        assert_eq!(kernel.source, format!("file {}", path.display()));
    }

    #[test]
    fn depends_output_names_the_package() {
        let out = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n";
        assert_eq!(
            cloud_package_from_depends(out),
            Some("linux-image-6.1.0-56-cloud-amd64".to_string())
        );
        assert_eq!(
            cloud_package_from_depends("linux-image-cloud-amd64\n"),
            None
        );
    }

    #[test]
    fn newest_compares_numbers_numerically() {
        let paths = vec![
            PathBuf::from("/k/linux-image-6.1.0-9-cloud-amd64"),
            PathBuf::from("/k/linux-image-6.1.0-56-cloud-amd64"),
            PathBuf::from("/k/linux-image-6.1.0-48-cloud-amd64"),
        ];
        assert_eq!(
            newest(paths),
            Some(PathBuf::from("/k/linux-image-6.1.0-56-cloud-amd64"))
        );
    }

    #[test]
    fn cache_lookup_ignores_debs_temporaries_and_other_flavours() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pkg = "linux-image-6.1.0-48-cloud-amd64";
        fs::create_dir_all(d.join(pkg).join("boot")).unwrap();
        fs::write(d.join(pkg).join("boot/vmlinuz-6.1.0-48-cloud-amd64"), b"").unwrap();
        fs::create_dir_all(d.join(format!(".tmp-{pkg}-1"))).unwrap();
        fs::create_dir_all(d.join("linux-image-6.1.0-99-amd64")).unwrap();
        fs::write(
            d.join("linux-image-6.1.0-99-cloud-amd64_6.1-1_amd64.deb"),
            b"",
        )
        .unwrap();
        let kernel = cached_cloud_kernel(d).unwrap().unwrap();
        assert_eq!(kernel.version, "6.1.0-48-cloud-amd64");
        assert_eq!(
            kernel.vmlinuz,
            d.join(pkg).join("boot/vmlinuz-6.1.0-48-cloud-amd64")
        );
        assert_eq!(kernel.modules, None);
        assert_eq!(
            kernel.source,
            format!("Debian package {pkg} (cache {})", d.join(pkg).display())
        );
        assert_eq!(
            debs_in(d).unwrap(),
            vec![d.join("linux-image-6.1.0-99-cloud-amd64_6.1-1_amd64.deb")]
        );
        remove_stale_temporaries(d).unwrap();
        assert!(!d.join(format!(".tmp-{pkg}-1")).exists());
    }

    #[test]
    fn package_without_vmlinuz_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("linux-image-6.1.0-1-cloud-amd64");
        fs::create_dir_all(&pkg).unwrap();
        let err = cached_cloud_kernel(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "package {} has no boot/vmlinuz-6.1.0-1-cloud-amd64",
                pkg.display()
            )
        );
    }
}
