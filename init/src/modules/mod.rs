//! Kernel modules at boot: the configured ones, each after its dependencies
//! (from the image's `/lib/modules/$(uname -r)/modules.dep`), then coldplug:
//! the modules that the devices under `/sys/devices` ask for through their
//! `modalias` files, matched against `modules.alias`.
//!
//! Nothing here is fatal: a module that fails is logged with its errno and
//! the others are still loaded; the root-device wait reports what is
//! missing later, with the list of loaded modules.

pub mod options;

use mkrootfs_config::kmod::{self, normalize, AliasEntry, Softdep};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

/// Module name → parameters to load it with (the image's, then the kernel
/// command line's), set once by [`load`] for every later loader.
static OPTIONS: OnceLock<BTreeMap<String, String>> = OnceLock::new();

/// How a module file is loaded: `finit_module` at boot, a fake in tests.
type Insmod = fn(&Path, &str) -> Result<(), nix::errno::Errno>;

fn system_loader() -> Result<Loader<Insmod>, String> {
    let mut l = Loader::open(Paths::system(), finit as Insmod)?;
    if let Some(o) = OPTIONS.get() {
        l.options = o.clone();
    }
    Ok(l)
}

/// The modules loaded at boot.
pub struct Loaded {
    pub names: Vec<String>,
    /// Coldplug is enabled: the root-device wait may run it again.
    pub coldplug: bool,
}

/// Coldplug repeats its walk while a pass loads something (a bus driver
/// creates devices that want more drivers), at most this many times.
const COLDPLUG_PASSES: usize = 8;

/// Loads `cfg.modules` in dependency order, then coldplugs if
/// `cfg.coldplug`, each module with its parameters from
/// `cfg.module_options` and from the kernel command line `cmdline`. Never
/// fatal.
pub fn load(cfg: &mkrootfs_config::InitConfig, cmdline: &str) -> Loaded {
    let _ = OPTIONS.set(options::join(
        &cfg.module_options,
        &options::from_cmdline(cmdline),
    ));
    let mut loader = match system_loader() {
        Ok(l) => l,
        Err(e) => {
            if cfg.modules.is_empty() {
                crate::debug!("{e}: no modules");
            } else {
                crate::warn!(
                    "{e}: the {} configured module(s) are not loaded",
                    cfg.modules.len()
                );
            }
            return Loaded {
                names: Vec::new(),
                coldplug: cfg.coldplug,
            };
        }
    };
    for name in &cfg.modules {
        loader.request(name, "configuration");
    }
    if cfg.coldplug {
        loader.coldplug();
    }
    Loaded {
        names: loader.names,
        coldplug: cfg.coldplug,
    }
}

/// One coldplug pass more (for devices that appear late, while the root
/// device is awaited). Returns the names of the modules it loaded.
pub fn coldplug_again() -> Vec<String> {
    match system_loader() {
        Ok(mut l) => {
            l.coldplug();
            l.names
        }
        Err(_) => Vec::new(),
    }
}

/// Loads one module by name or alias (the file-system or overlay module a
/// root mode needs). Returns false when it is neither loaded nor loadable.
pub fn ensure(name: &str, why: &str) -> bool {
    match system_loader() {
        Ok(mut l) => l.request(name, why),
        Err(_) => false,
    }
}

/// Where the loader looks; tests point these at temp directories.
#[derive(Clone, Debug)]
pub(crate) struct Paths {
    /// `/lib/modules/<release>`.
    pub modules: PathBuf,
    /// `/sys/devices`.
    pub devices: PathBuf,
    /// `/sys/module`: a loaded module has `<name>/initstate` there.
    pub sys_module: PathBuf,
}

impl Paths {
    fn system() -> Paths {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Paths {
            modules: Path::new("/lib/modules").join(release),
            devices: PathBuf::from("/sys/devices"),
            sys_module: PathBuf::from("/sys/module"),
        }
    }
}

/// Loads a module file into the kernel with its parameters
/// (`"param=value param2"`). Compressed files are passed to the kernel as
/// they are (it needs `CONFIG_MODULE_DECOMPRESS`; the builder checks this
/// when it can).
fn finit(path: &Path, params: &str) -> Result<(), nix::errno::Errno> {
    use nix::kmod::{finit_module, ModuleInitFlags};
    let f = std::fs::File::open(path)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let name = path.to_string_lossy();
    let compressed = kmod::COMPRESSED_SUFFIXES.iter().any(|s| name.ends_with(s));
    // MODULE_INIT_COMPRESSED_FILE (linux/module.h, 5.17+); nix has no name for it.
    let flags = if compressed {
        ModuleInitFlags::from_bits_retain(4)
    } else {
        ModuleInitFlags::empty()
    };
    let params = std::ffi::CString::new(params).map_err(|_| nix::errno::Errno::EINVAL)?;
    finit_module(&f, &params, flags)
}

/// The image's module index.
#[derive(Debug, Default)]
struct Index {
    /// name → (path relative to the modules dir, deps in load order).
    modules: BTreeMap<String, (String, Vec<String>)>,
    aliases: Vec<AliasEntry>,
    softdeps: BTreeMap<String, Softdep>,
    builtin: BTreeSet<String>,
}

/// Why a module is not loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Failure {
    Unknown,
    Insmod(nix::errno::Errno),
    Dependency(String),
}

pub(crate) struct Loader<F: FnMut(&Path, &str) -> Result<(), nix::errno::Errno>> {
    paths: Paths,
    index: Index,
    insmod: F,
    state: BTreeMap<String, Result<(), Failure>>,
    /// Modaliases already matched by coldplug.
    seen: BTreeSet<String>,
    /// Modules this loader loaded, in order.
    pub names: Vec<String>,
    /// Parameters by module name ([`options::join`]).
    pub options: BTreeMap<String, String>,
}

impl<F: FnMut(&Path, &str) -> Result<(), nix::errno::Errno>> Loader<F> {
    /// Reads the index under `paths.modules`. Only `modules.dep` is required.
    pub fn open(paths: Paths, insmod: F) -> Result<Self, String> {
        let read = |name: &str| std::fs::read_to_string(paths.modules.join(name));
        let dep_path = paths.modules.join("modules.dep");
        let dep = read("modules.dep").map_err(|e| format!("read {}: {e}", dep_path.display()))?;
        let mut index = Index::default();
        let entries = kmod::parse_dep(&dep).map_err(|e| format!("{}: {e}", dep_path.display()))?;
        for e in entries {
            let deps = e
                .deps
                .iter()
                .rev()
                .filter_map(|d| kmod::module_name_from_path(d))
                .collect();
            index.modules.insert(e.name, (e.path, deps));
        }
        // The other files are optional; a bad one costs its feature only.
        if let Ok(t) = read("modules.alias") {
            match kmod::parse_alias(&t) {
                Ok(a) => index.aliases = a,
                Err(e) => crate::warn!("{}: {e}", paths.modules.display()),
            }
        }
        if let Ok(t) = read("modules.softdep") {
            match kmod::parse_softdep(&t) {
                Ok(s) => index.softdeps = s.into_iter().map(|s| (s.module.clone(), s)).collect(),
                Err(e) => crate::warn!("{}: {e}", paths.modules.display()),
            }
        }
        if let Ok(t) = read("modules.builtin") {
            index.builtin = kmod::parse_builtin(&t).into_iter().collect();
        }
        Ok(Loader {
            paths,
            index,
            insmod,
            state: BTreeMap::new(),
            seen: BTreeSet::new(),
            names: Vec::new(),
            options: BTreeMap::new(),
        })
    }

    /// Loads a module by name or alias, with its dependencies. Returns
    /// whether it (or every module the alias names) is now loaded.
    pub fn request(&mut self, raw: &str, why: &str) -> bool {
        let name = normalize(raw);
        if self.index.modules.contains_key(&name) {
            return self.load(&name, why).is_ok();
        }
        if self.index.builtin.contains(&name) {
            crate::debug!("module {name}: built in");
            return true;
        }
        let targets = self.alias_targets(raw);
        if targets.is_empty() {
            if self.is_live(&name) {
                return true;
            }
            crate::warn!(
                "module {raw} ({why}): not in {}/modules.dep, not built in, no alias matches",
                self.paths.modules.display()
            );
            return false;
        }
        let mut ok = true;
        for t in targets {
            ok &= self.load(&t, &format!("{why}, alias {raw}")).is_ok();
        }
        ok
    }

    /// Whether the kernel has the module loaded (built-in modules with
    /// parameters also appear in /sys/module, but without `initstate`).
    fn is_live(&self, name: &str) -> bool {
        self.paths.sys_module.join(name).join("initstate").exists()
    }

    /// The modules whose aliases match a device's `modalias`.
    fn alias_targets(&self, modalias: &str) -> BTreeSet<String> {
        self.index
            .aliases
            .iter()
            .filter(|a| kmod::alias_matches(&a.pattern, modalias))
            .map(|a| a.module.clone())
            .collect()
    }

    fn load(&mut self, name: &str, why: &str) -> Result<(), Failure> {
        if let Some(s) = self.state.get(name) {
            return s.clone();
        }
        // Mark first: a dependency cycle then ends here instead of recursing.
        self.state.insert(name.to_owned(), Ok(()));
        let r = self.load_uncached(name, why);
        self.state.insert(name.to_owned(), r.clone());
        r
    }

    fn load_uncached(&mut self, name: &str, why: &str) -> Result<(), Failure> {
        let Some((rel, deps)) = self.index.modules.get(name).cloned() else {
            return if self.index.builtin.contains(name) {
                Ok(())
            } else {
                Err(Failure::Unknown)
            };
        };
        let softdep = self.index.softdeps.get(name).cloned().unwrap_or_default();
        for pre in &softdep.pre {
            self.optional(pre, &format!("softdep of {name}"));
        }
        for d in &deps {
            if let Err(e) = self.load(d, &format!("dependency of {name}")) {
                crate::warn!("module {name} ({why}): not loaded: its dependency {d} failed");
                return Err(match e {
                    Failure::Dependency(x) => Failure::Dependency(x),
                    _ => Failure::Dependency(d.clone()),
                });
            }
        }
        if self.is_live(name) {
            // Loaded before this loader ran (an earlier pass): not new.
            crate::debug!("module {name}: already loaded");
        } else {
            let path = self.paths.modules.join(&rel);
            let params = self.options.get(name).map_or("", String::as_str);
            let start = Instant::now();
            match (self.insmod)(&path, params) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {
                    // Tenths of a millisecond, without float formatting
                    // (which would add 10 KB to the binary).
                    let t = start.elapsed().as_micros() / 100;
                    let with = if params.is_empty() {
                        String::new()
                    } else {
                        format!(" with {params}")
                    };
                    crate::info!(
                        "module {name} loaded in {}.{} ms ({why}){with}",
                        t / 10,
                        t % 10
                    );
                    self.names.push(name.to_owned());
                }
                Err(e) => {
                    let with = if params.is_empty() {
                        String::new()
                    } else {
                        format!(" (parameters {params:?})")
                    };
                    crate::warn!(
                        "module {name} ({why}): finit_module {}{with}: {e}",
                        path.display()
                    );
                    return Err(Failure::Insmod(e));
                }
            }
        }
        for post in &softdep.post {
            self.optional(post, &format!("softdep of {name}"));
        }
        Ok(())
    }

    /// A soft dependency: loaded if the image has it, silently skipped if not.
    fn optional(&mut self, raw: &str, why: &str) {
        let name = normalize(raw);
        if self.index.modules.contains_key(&name) {
            let _ = self.load(&name, why);
            return;
        }
        let targets = self.alias_targets(raw);
        for t in targets {
            let _ = self.load(&t, why);
        }
    }

    /// Loads what the devices ask for, repeating while a pass loads
    /// something new. Returns how many modules it loaded.
    pub fn coldplug(&mut self) -> usize {
        let before = self.names.len();
        for _ in 0..COLDPLUG_PASSES {
            let mut aliases = BTreeSet::new();
            collect_modaliases(&self.paths.devices, &mut aliases);
            let fresh: Vec<String> = aliases
                .into_iter()
                .filter(|a| !self.seen.contains(a))
                .collect();
            if fresh.is_empty() {
                break;
            }
            let loaded_before = self.names.len();
            for modalias in fresh {
                let targets: BTreeSet<String> = self
                    .index
                    .aliases
                    .iter()
                    .filter(|a| kmod::alias_matches(&a.pattern, &modalias))
                    .map(|a| a.module.clone())
                    .collect();
                for t in targets {
                    let _ = self.load(&t, &format!("device {modalias}"));
                }
                self.seen.insert(modalias);
            }
            if self.names.len() == loaded_before {
                break;
            }
        }
        self.names.len() - before
    }
}

/// Reads every `modalias` file below `dir`, without following symlinks
/// (sysfs links back up the tree: following them would loop).
fn collect_modaliases(dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for ent in rd.flatten() {
        let Ok(ft) = ent.file_type() else { continue };
        if ft.is_dir() {
            collect_modaliases(&ent.path(), out);
        } else if ft.is_file() && ent.file_name() == "modalias" {
            if let Ok(s) = std::fs::read_to_string(ent.path()) {
                let s = s.trim();
                if !s.is_empty() {
                    out.insert(s.to_owned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;
    use std::cell::RefCell;
    use std::fs;
    use std::rc::Rc;

    /// A modules dir and a fake sysfs: virtio_pci (needs virtio_ring, which
    /// needs virtio) drives a PCI device; when it loads, a virtio block
    /// device appears that wants virtio_blk. `bad` fails with ENOEXEC.
    fn setup(dir: &Path) -> Paths {
        let m = dir.join("lib/modules/6.1.0");
        fs::create_dir_all(&m).unwrap();
        fs::write(
            m.join("modules.dep"),
            "kernel/virtio.ko:\n\
             kernel/virtio_ring.ko: kernel/virtio.ko\n\
             kernel/virtio_pci.ko: kernel/virtio_ring.ko kernel/virtio.ko\n\
             kernel/virtio_blk.ko: kernel/virtio_ring.ko kernel/virtio.ko\n\
             kernel/bad.ko:\nkernel/needs-bad.ko: kernel/bad.ko\n\
             kernel/crc.ko.xz:\nkernel/ext.ko:\n",
        )
        .unwrap();
        fs::write(
            m.join("modules.alias"),
            "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias virtio:d00000002v* virtio_blk\nalias crypto-crc crc\n",
        )
        .unwrap();
        fs::write(
            m.join("modules.softdep"),
            "softdep ext pre: crypto-crc nosuch\n",
        )
        .unwrap();
        fs::write(m.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        let pci = dir.join("sys/devices/pci0000:00/0000:00:02.0");
        fs::create_dir_all(&pci).unwrap();
        fs::write(
            pci.join("modalias"),
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
        )
        .unwrap();
        fs::write(dir.join("sys/devices/pci0000:00/modalias"), "\n").unwrap();
        // A symlink loop, as sysfs has (subsystem -> ../../bus/pci).
        std::os::unix::fs::symlink("..", pci.join("subsystem")).unwrap();
        fs::create_dir_all(dir.join("sys/module/ext4")).unwrap();
        Paths {
            modules: m,
            devices: dir.join("sys/devices"),
            sys_module: dir.join("sys/module"),
        }
    }

    /// An insmod that records file names and plugs in the virtio device
    /// when virtio_pci loads.
    fn fake(
        dir: &Path,
        calls: Rc<RefCell<Vec<String>>>,
    ) -> impl FnMut(&Path, &str) -> Result<(), Errno> {
        let dev = dir.join("sys/devices/pci0000:00/0000:00:02.0/virtio0");
        move |p: &Path, params: &str| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            let call = if params.is_empty() {
                f.clone()
            } else {
                format!("{f} {params}")
            };
            calls.borrow_mut().push(call);
            match f.as_str() {
                "bad.ko" => Err(Errno::ENOEXEC),
                "virtio.ko" if calls.borrow().len() > 1 => Err(Errno::EEXIST),
                "virtio_pci.ko" => {
                    fs::create_dir_all(&dev).unwrap();
                    fs::write(dev.join("modalias"), "virtio:d00000002v00001AF4\n").unwrap();
                    Ok(())
                }
                _ => Ok(()),
            }
        }
    }

    #[test]
    fn coldplug_follows_devices_that_drivers_create() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = setup(tmp.path());
        let calls = Rc::new(RefCell::new(Vec::new()));
        let mut l = Loader::open(paths, fake(tmp.path(), calls.clone())).unwrap();
        assert_eq!(l.coldplug(), 4);
        assert_eq!(
            *calls.borrow(),
            [
                "virtio.ko",
                "virtio_ring.ko",
                "virtio_pci.ko",
                "virtio_blk.ko"
            ]
        );
        assert_eq!(
            l.names,
            ["virtio", "virtio_ring", "virtio_pci", "virtio_blk"]
        );
        // Nothing new: a second run loads nothing and calls nothing.
        assert_eq!(l.coldplug(), 0);
        assert_eq!(calls.borrow().len(), 4);
    }

    #[test]
    fn each_load_gets_its_module_parameters_dependencies_and_coldplug_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = setup(tmp.path());
        let calls = Rc::new(RefCell::new(Vec::new()));
        let mut l = Loader::open(paths, fake(tmp.path(), calls.clone())).unwrap();
        let configured = BTreeMap::from([("virtio-blk".to_string(), "queue_depth=64".to_string())]);
        l.options = options::join(
            &configured,
            &options::from_cmdline(
                "virtio_ring.x=1 virtio_blk.num_request_queues=2 virtio-pci.force_legacy=1 quiet",
            ),
        );
        // virtio_ring is a dependency, virtio_pci and virtio_blk come from
        // coldplug: each gets exactly its own parameters.
        assert_eq!(l.coldplug(), 4);
        assert_eq!(
            *calls.borrow(),
            [
                "virtio.ko",
                "virtio_ring.ko x=1",
                "virtio_pci.ko force_legacy=1",
                "virtio_blk.ko queue_depth=64 num_request_queues=2"
            ]
        );
    }

    #[test]
    fn failures_are_per_module_and_softdeps_are_optional() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = setup(tmp.path());
        let calls = Rc::new(RefCell::new(Vec::new()));
        let mut l = Loader::open(paths, fake(tmp.path(), calls.clone())).unwrap();
        assert!(!l.request("needs_bad", "configuration"));
        assert_eq!(
            l.state.get("bad"),
            Some(&Err(Failure::Insmod(Errno::ENOEXEC)))
        );
        assert_eq!(
            l.state.get("needs_bad"),
            Some(&Err(Failure::Dependency("bad".into())))
        );
        assert!(l.request("ext", "configuration"));
        assert!(l.request("ext4", "configuration"), "built in");
        assert!(l.request("virtio", "configuration"));
        assert!(!l.request("nosuch", "configuration"));
        // crc comes before ext (softdep pre), compressed files keep their name.
        assert_eq!(
            *calls.borrow(),
            ["bad.ko", "crc.ko.xz", "ext.ko", "virtio.ko"]
        );
        assert_eq!(l.names, ["crc", "ext", "virtio"]);
        // The second virtio.ko call answered EEXIST: still loaded, no new call.
        assert!(l.request("virtio-ring", "configuration"));
        assert_eq!(calls.borrow().last().unwrap(), "virtio_ring.ko");
    }

    #[test]
    fn missing_modules_dir_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths {
            modules: tmp.path().join("none"),
            devices: tmp.path().into(),
            sys_module: tmp.path().into(),
        };
        let err = Loader::open(paths, |_: &Path, _: &str| Ok(()))
            .err()
            .unwrap();
        assert_eq!(
            err,
            format!(
                "read {}/none/modules.dep: No such file or directory (os error 2)",
                tmp.path().display()
            )
        );
    }
}
