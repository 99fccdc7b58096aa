//! Finding the root device: by path, `LABEL=` or `UUID=`, scanning
//! `/sys/class/block` and probing `/dev/<name>`, and waiting for it with a
//! timeout while drivers probe (re-running coldplug now and then, since
//! devices can appear after the first pass).

use super::probe::{probe_path, Probed};
use super::RootError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the root device is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    Path(PathBuf),
    Label(String),
    Uuid(String),
}

impl Spec {
    pub fn parse(s: &str) -> Result<Spec, RootError> {
        if let Some(l) = s.strip_prefix("LABEL=") {
            Ok(Spec::Label(l.to_owned()))
        } else if let Some(u) = s.strip_prefix("UUID=") {
            Ok(Spec::Uuid(u.to_ascii_lowercase()))
        } else if s.starts_with('/') {
            Ok(Spec::Path(PathBuf::from(s)))
        } else {
            Err(RootError::BadDevice(s.to_owned()))
        }
    }

    fn matches(&self, path: &Path, p: Option<&Probed>) -> bool {
        match self {
            Spec::Path(want) => want == path,
            Spec::Label(l) => p.and_then(|p| p.label.as_deref()) == Some(l.as_str()),
            Spec::Uuid(u) => p.and_then(|p| p.uuid.as_deref()) == Some(u.as_str()),
        }
    }
}

/// A block device and what its superblock says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub probed: Option<Probed>,
}

/// Where block devices are listed and where their nodes are; tests use
/// temp directories with image files standing in for devices.
pub struct Dirs<'a> {
    pub sys_block: &'a Path,
    pub dev: &'a Path,
}

/// The real ones.
pub fn system() -> Dirs<'static> {
    Dirs {
        sys_block: Path::new("/sys/class/block"),
        dev: Path::new("/dev"),
    }
}

/// Every block device with a node, probed, sorted by name.
pub fn scan(dirs: &Dirs<'_>) -> Vec<Found> {
    let mut names: Vec<String> = std::fs::read_dir(dirs.sys_block)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|n| dirs.dev.join(n))
        .filter(|p| p.exists())
        .map(|path| Found {
            probed: probe_path(&path).ok().flatten(),
            path,
        })
        .collect()
}

/// One look for the device.
pub fn find(spec: &Spec, dirs: &Dirs<'_>) -> Option<Found> {
    if let Spec::Path(p) = spec {
        // A path is whatever node it names, listed in sysfs or not
        // (/dev/disk/… links exist only with udev, but any path works).
        if !p.exists() {
            return None;
        }
        return Some(Found {
            path: p.clone(),
            probed: probe_path(p).ok().flatten(),
        });
    }
    scan(dirs)
        .into_iter()
        .find(|f| spec.matches(&f.path, f.probed.as_ref()))
}

/// Polls every 20 ms until a device matching `spec` appears or `timeout`
/// passes, re-running coldplug every half second when `coldplug` (the
/// modules it loads are added to `loaded`), and saying once, after a
/// second, that it waits for `what`. The one wait of the root device and
/// the config drive.
pub fn poll(
    spec: &Spec,
    what: &str,
    timeout: Duration,
    coldplug: bool,
    loaded: &mut Vec<String>,
) -> Option<Found> {
    let start = Instant::now();
    let mut last_coldplug = start;
    let mut announced = false;
    loop {
        if let Some(f) = find(spec, &system()) {
            crate::debug!(
                "{what} is {} after {} ms",
                f.path.display(),
                start.elapsed().as_millis()
            );
            return Some(f);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        if !announced && start.elapsed() >= Duration::from_millis(1000) {
            crate::info!("waiting up to {} ms for {what}", timeout.as_millis());
            announced = true;
        }
        if coldplug && last_coldplug.elapsed() >= Duration::from_millis(500) {
            for m in crate::modules::coldplug() {
                if !loaded.contains(&m) {
                    loaded.push(m);
                }
            }
            last_coldplug = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The root device: [`poll`], and the timeout as an error listing the
/// devices seen and the modules loaded.
pub fn wait(
    spec_text: &str,
    timeout: Duration,
    loaded: &crate::modules::Loaded,
) -> Result<Found, RootError> {
    let spec = Spec::parse(spec_text)?;
    let start = Instant::now();
    let mut names = loaded.names.clone();
    let what = format!("root device {spec_text}");
    poll(&spec, &what, timeout, loaded.coldplug, &mut names).ok_or_else(|| RootError::Timeout {
        device: spec_text.to_owned(),
        waited_ms: start.elapsed().as_millis() as u64,
        devices: scan(&system()).iter().map(describe).collect(),
        modules: names,
    })
}

/// `vda (ext4 LABEL=root UUID=…)`, for messages.
pub fn describe(f: &Found) -> String {
    let name = f
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match &f.probed {
        None => format!("{name} (unknown)"),
        Some(p) => {
            let mut s = format!("{name} ({}", p.fstype);
            if let Some(l) = &p.label {
                s.push_str(&format!(" LABEL={l}"));
            }
            if let Some(u) = &p.uuid {
                s.push_str(&format!(" UUID={u}"));
            }
            s.push(')');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fake /sys/class/block + /dev with two "devices": an ext4-looking
    /// image and garbage.
    fn fake(dir: &Path) {
        fs::create_dir_all(dir.join("sys/vda")).unwrap();
        fs::create_dir_all(dir.join("sys/vdb")).unwrap();
        fs::create_dir_all(dir.join("sys/vdc")).unwrap(); // no node: skipped
        fs::create_dir_all(dir.join("dev")).unwrap();
        let mut ext = vec![0u8; 2048];
        ext[1024 + 56..1024 + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
        ext[1024 + 104..1024 + 120].copy_from_slice(&[0xAB; 16]);
        ext[1024 + 120..1024 + 124].copy_from_slice(b"root");
        fs::write(dir.join("dev/vda"), &ext).unwrap();
        fs::write(dir.join("dev/vdb"), [0u8; 100]).unwrap();
    }

    #[test]
    fn finds_by_label_uuid_and_path() {
        let tmp = tempfile::tempdir().unwrap();
        fake(tmp.path());
        let (sys, dev) = (tmp.path().join("sys"), tmp.path().join("dev"));
        let dirs = Dirs {
            sys_block: &sys,
            dev: &dev,
        };
        let vda = dev.join("vda");
        assert_eq!(
            find(&Spec::parse("LABEL=root").unwrap(), &dirs)
                .unwrap()
                .path,
            vda
        );
        let uuid = "UUID=ABABABAB-ABAB-ABAB-ABAB-ABABABABABAB";
        assert_eq!(find(&Spec::parse(uuid).unwrap(), &dirs).unwrap().path, vda);
        assert_eq!(find(&Spec::parse("LABEL=other").unwrap(), &dirs), None);
        let by_path = find(&Spec::Path(dev.join("vdb")), &dirs).unwrap();
        assert_eq!(by_path.probed, None);
        assert_eq!(find(&Spec::Path(dev.join("vdz")), &dirs), None);
        let all: Vec<String> = scan(&dirs).iter().map(describe).collect();
        assert_eq!(
            all,
            [
                "vda (ext4 LABEL=root UUID=abababab-abab-abab-abab-abababababab)",
                "vdb (unknown)"
            ]
        );
    }

    #[test]
    fn unsupported_device_syntax_is_an_error() {
        assert_eq!(
            Spec::parse("PARTUUID=1234").unwrap_err().to_string(),
            "root device \"PARTUUID=1234\": expected a /dev path, LABEL=… or UUID=…"
        );
    }
}
