//! Kernel modules at boot: the configured ones, each after its dependencies
//! (from the image's `/lib/modules/$(uname -r)/modules.dep`), then coldplug:
//! the modules that unbound devices ask for through their `modalias` files
//! ([`coldplug`]), matched against `modules.alias`.
//!
//! Loading is planned first (the closure of what is asked, with softdeps),
//! then done in dependency levels: the modules of one level depend only on
//! earlier levels and are loaded in parallel, one thread each, as booster
//! does (a module's init often waits on its device while another's runs).
//!
//! Nothing here is fatal: a module that fails is logged with its errno and
//! the others are still loaded; the root-device wait reports what is
//! missing later, with the list of loaded modules.

pub mod coldplug;
pub mod options;

use mkrootfs_config::kmod::{self, normalize, AliasEntry, Softdep};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a module file is loaded: `finit_module` at boot, a fake in tests.
type Insmod = fn(&Path, &str) -> Result<(), nix::errno::Errno>;

/// The boot's loader, kept for the root-device wait (more coldplug) and
/// the root's file system: the index and the devices seen are read once.
static LOADER: Mutex<Option<Loader<Insmod>>> = Mutex::new(None);

/// The modules loaded at boot.
pub struct Loaded {
    pub names: Vec<String>,
    /// Coldplug is enabled: the root-device wait may run it again.
    pub coldplug: bool,
}

/// Coldplug repeats its scan while a pass loads something (a bus driver
/// creates devices that want more drivers), at most this many times.
const COLDPLUG_PASSES: usize = 8;

/// Loads `cfg.modules` in dependency order, each module with its
/// parameters from `cfg.module_options` and from the kernel command line
/// `cmdline`. Never fatal. Coldplug comes next, from [`coldplug`].
pub fn load(cfg: &mkrootfs_config::InitConfig, cmdline: &str) -> Loaded {
    let mut loader = match Loader::open(Paths::system(), finit as Insmod) {
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
    loader.options = options::join(&cfg.module_options, &options::from_cmdline(cmdline));
    let asked: Vec<(String, String)> = cfg
        .modules
        .iter()
        .map(|m| (m.clone(), "configuration".to_string()))
        .collect();
    loader.request_all(&asked);
    let names = loader.names.clone();
    if let Ok(mut g) = LOADER.lock() {
        *g = Some(loader);
    }
    Loaded {
        names,
        coldplug: cfg.coldplug,
    }
}

/// Coldplug with the boot's loader: after [`load`], and again for devices
/// that appear late, while the root device is awaited. Returns the names
/// of the modules it loaded.
pub fn coldplug() -> Vec<String> {
    let Ok(mut g) = LOADER.lock() else {
        return Vec::new();
    };
    match g.as_mut() {
        Some(l) => {
            let before = l.names.len();
            l.coldplug();
            l.names[before..].to_vec()
        }
        None => Vec::new(),
    }
}

/// Loads one module by name or alias (the file-system or overlay module a
/// root mode needs). Returns false when it is neither loaded nor loadable.
pub fn ensure(name: &str, why: &str) -> bool {
    let Ok(mut g) = LOADER.lock() else {
        return false;
    };
    match g.as_mut() {
        Some(l) => l.request(name, why),
        None => false,
    }
}

/// Where the loader looks; tests point these at temp directories.
#[derive(Clone, Debug)]
pub(crate) struct Paths {
    /// `/lib/modules/<release>`.
    pub modules: PathBuf,
    /// `/sys/bus`.
    pub bus: PathBuf,
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
            bus: PathBuf::from("/sys/bus"),
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

/// One module to load, after the modules in `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    name: String,
    rel: String,
    after: Vec<String>,
    why: String,
}

pub(crate) struct Loader<F: Fn(&Path, &str) -> Result<(), nix::errno::Errno> + Sync> {
    paths: Paths,
    index: Index,
    insmod: F,
    /// Planned or loaded (Ok), or why not (Err).
    state: BTreeMap<String, Result<(), Failure>>,
    /// Devices whose modalias coldplug has read.
    seen: BTreeMap<PathBuf, bool>,
    /// Modules this loader loaded, in order.
    pub names: Vec<String>,
    /// Parameters by module name ([`options::join`]).
    pub options: BTreeMap<String, String>,
}

impl<F: Fn(&Path, &str) -> Result<(), nix::errno::Errno> + Sync> Loader<F> {
    /// Reads the index under `paths.modules`. Only `modules.dep` is required.
    pub fn open(paths: Paths, insmod: F) -> Result<Self, String> {
        let read = |name: &str| std::fs::read_to_string(paths.modules.join(name));
        let dep_path = paths.modules.join("modules.dep");
        let dep = read("modules.dep").map_err(|e| format!("read {}: {e}", dep_path.display()))?;
        let mut index = Index::default();
        // Lines libkmod would skip are skipped (the builder wrote these files).
        for e in kmod::parse_dep(&dep).entries {
            let deps = e
                .deps
                .iter()
                .rev()
                .filter_map(|d| kmod::module_name_from_path(d))
                .collect();
            index.modules.insert(e.name, (e.path, deps));
        }
        // The other files are optional.
        if let Ok(t) = read("modules.alias") {
            index.aliases = kmod::parse_alias(&t).entries;
        }
        if let Ok(t) = read("modules.softdep") {
            let s = kmod::parse_softdep(&t).entries;
            index.softdeps = s.into_iter().map(|s| (s.module.clone(), s)).collect();
        }
        if let Ok(t) = read("modules.builtin") {
            index.builtin = kmod::parse_builtin(&t).into_iter().collect();
        }
        Ok(Loader {
            paths,
            index,
            insmod,
            state: BTreeMap::new(),
            seen: BTreeMap::new(),
            names: Vec::new(),
            options: BTreeMap::new(),
        })
    }

    /// Loads a module by name or alias, with its dependencies. Returns
    /// whether it (or every module the alias names) is now loaded.
    pub fn request(&mut self, raw: &str, why: &str) -> bool {
        self.request_all(&[(raw.to_string(), why.to_string())])
    }

    /// Loads several modules (names or aliases, each with why it is asked
    /// for) in one plan, so that independent ones load in parallel.
    /// Returns whether all of them are now loaded.
    // Not inlined (here and in `run`, `coldplug`): one copy for the boot
    // and the root-device wait keeps 4 KB out of the binary.
    #[inline(never)]
    pub fn request_all(&mut self, asked: &[(String, String)]) -> bool {
        let mut steps = Vec::new();
        let mut wanted = Vec::new();
        let mut ok = true;
        for (raw, why) in asked {
            let name = normalize(raw);
            if self.index.modules.contains_key(&name) {
                ok &= self.plan(&name, why, &mut steps).is_ok();
                wanted.push(name);
                continue;
            }
            if self.index.builtin.contains(&name) {
                crate::debug!("module {name}: built in");
                continue;
            }
            let targets = self.alias_targets(raw);
            if targets.is_empty() {
                if !self.is_live(&name) {
                    crate::warn!(
                        "module {raw} ({why}): not in {}/modules.dep, not built in, no alias matches",
                        self.paths.modules.display()
                    );
                    ok = false;
                }
                continue;
            }
            for t in targets {
                ok &= self
                    .plan(&t, &format!("{why}, alias {raw}"), &mut steps)
                    .is_ok();
                wanted.push(t);
            }
        }
        self.run(steps);
        ok && wanted
            .iter()
            .all(|n| matches!(self.state.get(n), Some(Ok(()))))
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

    /// Adds `name` and what it needs to `steps`, dependencies first. Only
    /// a module without a file (and not built in), or one whose dependency
    /// is such, fails here; load failures come in [`Loader::run`].
    fn plan(&mut self, name: &str, why: &str, steps: &mut Vec<Step>) -> Result<(), Failure> {
        if let Some(s) = self.state.get(name) {
            return s.clone();
        }
        let Some((rel, deps)) = self.index.modules.get(name).cloned() else {
            let r = if self.index.builtin.contains(name) {
                Ok(())
            } else {
                Err(Failure::Unknown)
            };
            self.state.insert(name.to_owned(), r.clone());
            return r;
        };
        // Mark first: a dependency cycle then ends here instead of recursing.
        self.state.insert(name.to_owned(), Ok(()));
        let softdep = self.index.softdeps.get(name).cloned().unwrap_or_default();
        let mut after = Vec::new();
        for pre in &softdep.pre {
            after.extend(self.optional(pre, &format!("softdep of {name}"), steps));
        }
        for d in &deps {
            if let Err(e) = self.plan(d, &format!("dependency of {name}"), steps) {
                crate::warn!("module {name} ({why}): not loaded: its dependency {d} failed");
                let f = match e {
                    Failure::Dependency(x) => Failure::Dependency(x),
                    _ => Failure::Dependency(d.clone()),
                };
                self.state.insert(name.to_owned(), Err(f.clone()));
                return Err(f);
            }
            after.push(d.clone());
        }
        steps.push(Step {
            name: name.to_owned(),
            rel,
            after,
            why: why.to_owned(),
        });
        for post in &softdep.post {
            // After this module: a post softdep only needs to come later.
            let at = steps.len();
            for n in self.optional(post, &format!("softdep of {name}"), steps) {
                if let Some(s) = steps[at..].iter_mut().find(|s| s.name == n) {
                    s.after.push(name.to_owned());
                }
            }
        }
        Ok(())
    }

    /// A soft dependency: planned if the image has it, silently skipped if
    /// not. Returns the modules it names that are planned or loaded.
    fn optional(&mut self, raw: &str, why: &str, steps: &mut Vec<Step>) -> Vec<String> {
        let name = normalize(raw);
        let targets: Vec<String> = if self.index.modules.contains_key(&name) {
            vec![name]
        } else {
            self.alias_targets(raw).into_iter().collect()
        };
        targets
            .into_iter()
            .filter(|t| self.plan(t, why, steps).is_ok())
            .collect()
    }

    /// Loads planned steps level by level: a step's level is one more than
    /// its latest dependency's; the steps of a level load in parallel. A
    /// step whose dependency failed is not loaded.
    #[inline(never)]
    fn run(&mut self, steps: Vec<Step>) {
        let mut level: BTreeMap<&str, usize> = BTreeMap::new();
        let mut levels: Vec<Vec<&Step>> = Vec::new();
        for s in &steps {
            let l = s
                .after
                .iter()
                .filter_map(|d| level.get(d.as_str()))
                .map(|l| l + 1)
                .max()
                .unwrap_or(0);
            level.insert(&s.name, l);
            if levels.len() <= l {
                levels.resize_with(l + 1, Vec::new);
            }
            levels[l].push(s);
        }
        for batch in levels {
            let mut todo = Vec::new();
            for s in batch {
                let failed = s
                    .after
                    .iter()
                    .find(|d| matches!(self.state.get(d.as_str()), Some(Err(_))));
                if let Some(d) = failed {
                    crate::warn!(
                        "module {} ({}): not loaded: its dependency {d} failed",
                        s.name,
                        s.why
                    );
                    self.state
                        .insert(s.name.clone(), Err(Failure::Dependency(d.clone())));
                } else if self.is_live(&s.name) {
                    // Loaded before this loader ran: not new.
                    crate::debug!("module {}: already loaded", s.name);
                } else {
                    todo.push(s);
                }
            }
            let results = self.insmod_parallel(&todo);
            for (s, (r, took)) in todo.into_iter().zip(results) {
                self.finished(s, r, took);
            }
        }
    }

    /// finit_module for each step at once (one thread each when there are
    /// several, [`crate::sys::run_parallel`]); results in the steps' order.
    fn insmod_parallel(&self, todo: &[&Step]) -> Vec<(Result<(), nix::errno::Errno>, Duration)> {
        let one = |s: &Step| {
            let path = self.paths.modules.join(&s.rel);
            let params = self.options.get(&s.name).map_or("", String::as_str);
            let start = Instant::now();
            let r = (self.insmod)(&path, params);
            (r, start.elapsed())
        };
        if todo.len() <= 1 {
            return todo.iter().map(|s| one(s)).collect();
        }
        let one = &one;
        crate::sys::run_parallel(
            todo.iter()
                .map(|&s| Box::new(move || one(s)) as Box<dyn FnOnce() -> _ + Send + '_>)
                .collect(),
        )
    }

    /// Records and logs one finit_module result.
    fn finished(&mut self, s: &Step, r: Result<(), nix::errno::Errno>, took: Duration) {
        let params = self.options.get(&s.name).map_or("", String::as_str);
        let (name, why) = (&s.name, &s.why);
        match r {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {
                // Tenths of a millisecond, without float formatting (which
                // would add 10 KB to the binary).
                let t = took.as_micros() / 100;
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
                self.names.push(name.clone());
                self.state.insert(name.clone(), Ok(()));
            }
            Err(e) => {
                let with = if params.is_empty() {
                    String::new()
                } else {
                    format!(" (parameters {params:?})")
                };
                crate::warn!(
                    "module {name} ({why}): finit_module {}{with}: {e}",
                    self.paths.modules.join(&s.rel).display()
                );
                self.state.insert(name.clone(), Err(Failure::Insmod(e)));
            }
        }
    }

    /// Loads what unbound devices ask for, repeating while a pass loads
    /// something (its driver may create devices that want more drivers),
    /// and stopping as soon as no device is left without a driver or no
    /// new device appeared. Returns how many modules it loaded.
    #[inline(never)]
    pub fn coldplug(&mut self) -> usize {
        let before = self.names.len();
        for _ in 0..COLDPLUG_PASSES {
            let scan = coldplug::scan(&self.paths.bus, &mut self.seen);
            crate::debug!(
                "coldplug: {} device(s), {} without a driver, {} new",
                scan.devices,
                scan.unbound,
                scan.fresh.len()
            );
            let mut asked: BTreeMap<String, String> = BTreeMap::new();
            for (_, modalias) in &scan.fresh {
                for t in self.alias_targets(modalias) {
                    if !self.state.contains_key(&t) {
                        asked
                            .entry(t)
                            .or_insert_with(|| format!("device {modalias}"));
                    }
                }
            }
            if asked.is_empty() {
                break;
            }
            let loaded_before = self.names.len();
            let mut steps = Vec::new();
            for (t, why) in &asked {
                let _ = self.plan(t, why, &mut steps);
            }
            self.run(steps);
            if self.names.len() == loaded_before {
                break;
            }
        }
        self.names.len() - before
    }
}

#[cfg(test)]
mod tests;
