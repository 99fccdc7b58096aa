//! The load-order walk: one link-map "namespace" per root, like one run of
//! `ld.so --list`, merged into one [`Closure`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::ldcache;
use super::object::{probe_arch, Arch, ElfObject};
use super::search::Layout;
use super::sysroot::{host_path, resolve_in_root};
use super::{Closure, Dep, ElfError, Resolver, Rule};

/// Parsed objects by their resolved path, shared by all roots of a call.
type ObjectCache = HashMap<PathBuf, Rc<ElfObject>>;

/// A file found at a candidate path.
struct Found {
    /// The candidate path, as the loader opens it.
    path: PathBuf,
    /// The same file with every symlink resolved (inside the sysroot).
    real: PathBuf,
    /// (st_dev, st_ino): the loader reuses an object loaded under another name.
    id: (u64, u64),
    rule: Rule,
}

/// One loaded object (glibc's `struct link_map`).
struct Loaded {
    path: PathBuf,
    /// Names that match this object: its path, the names it was requested
    /// under and its `DT_SONAME` (glibc's `_dl_name_match_p`).
    names: Vec<String>,
    id: (u64, u64),
    obj: Rc<ElfObject>,
    /// `$ORIGIN`: the directory of the path it was opened under (a root's
    /// real location, as `/proc/self/exe` gives it).
    origin: PathBuf,
    /// The object that caused this one to be loaded (`l_loader`).
    loader: Option<usize>,
}

/// What was tried, for the not-found error.
#[derive(Default)]
struct Tried {
    searched: Vec<String>,
    skipped: Vec<String>,
}

impl Tried {
    fn searched(&mut self, what: String) {
        if !self.searched.contains(&what) {
            self.searched.push(what);
        }
    }
}

pub(super) fn closure(resolver: &Resolver, roots: &[PathBuf]) -> Result<Closure, ElfError> {
    let mut cache = ObjectCache::new();
    let mut arch = resolver.arch;
    // Every root has the same arch, so one layout serves them all.
    let mut layout: Option<Layout> = None;
    let mut deps: Vec<Dep> = Vec::new();
    let mut seen: HashSet<PathBuf> = roots.iter().cloned().collect();
    for root in roots {
        let mut ns = Namespace {
            resolver,
            cache: &mut cache,
            objects: Vec::new(),
            deps: Vec::new(),
        };
        let root_arch = ns.load_root(root, arch)?;
        let expected = *arch.get_or_insert(root_arch);
        let layout = layout.get_or_insert_with(|| Layout::new(&resolver.sysroot, expected));
        ns.load_interp(layout)?;
        ns.load_all(layout)?;
        for dep in ns.deps {
            if seen.insert(dep.path.clone()) {
                deps.push(dep);
            }
        }
    }
    Ok(Closure { arch, deps })
}

pub(super) fn find_library(
    resolver: &Resolver,
    layout: &Layout,
    soname: &str,
) -> Result<PathBuf, ElfError> {
    let mut tried = Tried::default();
    if soname.contains('/') {
        let path = PathBuf::from(soname);
        tried.searched(soname.to_string());
        if let Some(found) = try_path(resolver, layout, path, Rule::Absolute, &mut tried)? {
            return Ok(found.path);
        }
    } else if let Some(found) = search_system(resolver, layout, soname, false, &mut tried)? {
        return Ok(found.path);
    }
    Err(ElfError::LibraryNotFound {
        name: soname.to_string(),
        searched: tried.searched,
        skipped: tried.skipped,
    })
}

struct Namespace<'a> {
    resolver: &'a Resolver,
    cache: &'a mut ObjectCache,
    objects: Vec<Loaded>,
    deps: Vec<Dep>,
}

impl Namespace<'_> {
    fn sysroot(&self) -> &Path {
        &self.resolver.sysroot
    }

    /// Loads the root as the main program; returns its arch, which must be
    /// `expected` when given.
    fn load_root(&mut self, root: &Path, expected: Option<Arch>) -> Result<Arch, ElfError> {
        if !root.is_absolute() {
            return Err(ElfError::RootNotAbsolute {
                path: root.to_path_buf(),
            });
        }
        let real = resolve_in_root(self.sysroot(), root).map_err(|source| ElfError::Resolve {
            path: root.to_path_buf(),
            sysroot: self.sysroot().to_path_buf(),
            source,
        })?;
        let id = file_id(&host_path(self.sysroot(), &real), root)?;
        let obj = self.parse(&real, root)?;
        if let Some(expected) = expected.filter(|e| *e != obj.arch) {
            return Err(ElfError::WrongArch {
                path: root.to_path_buf(),
                found: obj.arch,
                expected,
            });
        }
        let mut names = vec![root.to_string_lossy().into_owned()];
        names.extend(obj.soname.clone());
        let origin = real.parent().unwrap_or(Path::new("/")).to_path_buf();
        let arch = obj.arch;
        self.objects.push(Loaded {
            path: root.to_path_buf(),
            names,
            id,
            obj,
            origin,
            loader: None,
        });
        Ok(arch)
    }

    /// The root's `PT_INTERP`, at exactly the path written.
    fn load_interp(&mut self, layout: &Layout) -> Result<(), ElfError> {
        let root = &self.objects[0];
        let Some(interp) = root.obj.interp.clone() else {
            return Ok(());
        };
        let needed_by = root.path.clone();
        let path = PathBuf::from(&interp);
        let real =
            resolve_in_root(self.sysroot(), &path).map_err(|source| ElfError::MissingInterp {
                interp: interp.clone(),
                needed_by: needed_by.clone(),
                sysroot: self.sysroot().to_path_buf(),
                source,
            })?;
        let id = file_id(&host_path(self.sysroot(), &real), &path)?;
        let obj = self.parse(&real, &path)?;
        if obj.arch != layout.arch {
            return Err(ElfError::WrongArch {
                path,
                found: obj.arch,
                expected: layout.arch,
            });
        }
        // libc.so.6 needs "ld-linux-x86-64.so.2": its soname matches the
        // interpreter, so it is not loaded a second time.
        let mut names = vec![interp.clone()];
        names.extend(obj.soname.clone());
        let origin = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        self.objects.push(Loaded {
            path: path.clone(),
            names,
            id,
            obj,
            origin,
            loader: None,
        });
        self.deps.push(Dep {
            path,
            needed_by,
            name: interp,
            rule: Rule::Interp,
        });
        Ok(())
    }

    /// Breadth-first over `DT_NEEDED` from the root, like
    /// `_dl_map_object_deps`; then, when asked, the `.note.dlopen` entries of
    /// every loaded object (after startup, as a real `dlopen` would be).
    fn load_all(&mut self, layout: &Layout) -> Result<(), ElfError> {
        let mut queue = VecDeque::from([0usize]);
        let mut next_note = 0;
        loop {
            while let Some(i) = queue.pop_front() {
                let needed = self.objects[i].obj.needed.clone();
                for name in needed {
                    if self.load_by_name(i, &name, layout)? {
                        queue.push_back(self.objects.len() - 1);
                    }
                }
            }
            if !self.resolver.dlopen_notes || next_note >= self.objects.len() {
                return Ok(());
            }
            let i = next_note;
            next_note += 1;
            let entries =
                self.objects[i]
                    .obj
                    .dlopen
                    .clone()
                    .map_err(|reason| ElfError::DlopenNote {
                        path: self.objects[i].path.clone(),
                        reason,
                    })?;
            for entry in entries {
                if entry.soname.iter().any(|s| self.find_loaded(s).is_some()) {
                    continue;
                }
                let mut tried = Tried::default();
                let mut loaded = false;
                for soname in &entry.soname {
                    if let Some(found) = self.search(i, soname, layout, &mut tried)? {
                        if self.add(i, soname, found, Rule::DlopenNote)? {
                            queue.push_back(self.objects.len() - 1);
                        }
                        loaded = true;
                        break;
                    }
                }
                if !loaded && entry.required() {
                    return Err(ElfError::DlopenNotFound {
                        names: entry.soname.clone(),
                        needed_by: self.objects[i].path.clone(),
                        searched: tried.searched,
                        skipped: tried.skipped,
                    });
                }
            }
        }
    }

    /// Loads `name` needed by object `i`; true when a new object was added,
    /// false when an already loaded one matched.
    fn load_by_name(&mut self, i: usize, name: &str, layout: &Layout) -> Result<bool, ElfError> {
        if self.find_loaded(name).is_some() {
            return Ok(false);
        }
        let mut tried = Tried::default();
        let Some(found) = self.search(i, name, layout, &mut tried)? else {
            return Err(ElfError::NotFound {
                name: name.to_string(),
                needed_by: self.objects[i].path.clone(),
                searched: tried.searched,
                skipped: tried.skipped,
            });
        };
        let rule = found.rule.clone();
        self.add(i, name, found, rule)
    }

    fn find_loaded(&self, name: &str) -> Option<usize> {
        self.objects
            .iter()
            .position(|o| o.names.iter().any(|n| n == name))
    }

    /// Records `found` as loaded for `name` by object `loader`, unless it is
    /// a file already loaded under another path. Returns whether it is new.
    fn add(
        &mut self,
        loader: usize,
        name: &str,
        found: Found,
        rule: Rule,
    ) -> Result<bool, ElfError> {
        if let Some(existing) = self.objects.iter_mut().find(|o| o.id == found.id) {
            existing.names.push(name.to_string());
            return Ok(false);
        }
        let obj = self.parse(&found.real, &found.path)?;
        let mut names = vec![found.path.to_string_lossy().into_owned(), name.to_string()];
        names.extend(obj.soname.clone());
        let origin = found.path.parent().unwrap_or(Path::new("/")).to_path_buf();
        self.deps.push(Dep {
            path: found.path.clone(),
            needed_by: self.objects[loader].path.clone(),
            name: name.to_string(),
            rule,
        });
        self.objects.push(Loaded {
            path: found.path,
            names,
            id: found.id,
            obj,
            origin,
            loader: Some(loader),
        });
        Ok(true)
    }

    /// glibc's `_dl_map_object` search for `name` requested by object `i`.
    fn search(
        &self,
        i: usize,
        name: &str,
        layout: &Layout,
        tried: &mut Tried,
    ) -> Result<Option<Found>, ElfError> {
        let loader = &self.objects[i];
        if name.contains('/') {
            let path = PathBuf::from(layout.expand(name, &loader.origin));
            let path = if path.is_absolute() {
                path
            } else {
                Path::new("/").join(path)
            };
            tried.searched(path.display().to_string());
            return try_path(self.resolver, layout, path, Rule::Absolute, tried);
        }
        // DT_RPATH of the loader and its loaders, unless the loader has a
        // DT_RUNPATH. (An object with DT_RUNPATH has no DT_RPATH here.)
        if loader.obj.runpath.is_none() {
            let mut at = Some(i);
            while let Some(j) = at {
                let obj = &self.objects[j];
                for entry in &obj.obj.rpath {
                    let dir = PathBuf::from(layout.expand(entry, &obj.origin));
                    if let Some(found) = try_dir(
                        self.resolver,
                        layout,
                        &dir,
                        name,
                        Rule::Rpath(dir.clone()),
                        tried,
                    )? {
                        return Ok(Some(found));
                    }
                }
                at = obj.loader;
            }
        }
        for entry in loader.obj.runpath.iter().flatten() {
            let dir = PathBuf::from(layout.expand(entry, &loader.origin));
            if let Some(found) = try_dir(
                self.resolver,
                layout,
                &dir,
                name,
                Rule::Runpath(dir.clone()),
                tried,
            )? {
                return Ok(Some(found));
            }
        }
        search_system(self.resolver, layout, name, loader.obj.nodeflib, tried)
    }

    fn parse(&mut self, real: &Path, shown: &Path) -> Result<Rc<ElfObject>, ElfError> {
        if let Some(obj) = self.cache.get(real) {
            return Ok(Rc::clone(obj));
        }
        let obj = Rc::new(ElfObject::read(&host_path(self.sysroot(), real), shown)?);
        self.cache.insert(real.to_path_buf(), Rc::clone(&obj));
        Ok(obj)
    }
}

/// ld.so.cache (or the ld.so.conf directories), then the default
/// directories. With `nodeflib` (the loader's `DF_1_NODEFLIB`) neither the
/// default directories nor cache entries inside them are used.
fn search_system(
    resolver: &Resolver,
    layout: &Layout,
    name: &str,
    nodeflib: bool,
    tried: &mut Tried,
) -> Result<Option<Found>, ElfError> {
    if let Some(cache) = &resolver.cache {
        tried.searched("ld.so.cache".to_string());
        let flags = ldcache::expected_flags(layout.arch);
        for (path, entry_flags) in cache.get(name).into_iter().flatten() {
            // Like `_dl_cache_check_flags`: entries of other ABIs are not
            // candidates at all (the file's header is checked as well).
            if flags.is_some_and(|f| !f.contains(entry_flags)) {
                continue;
            }
            let in_default = path
                .parent()
                .is_some_and(|d| layout.default_dirs.iter().any(|x| x == d));
            if nodeflib && in_default {
                continue;
            }
            if let Some(found) = try_path(resolver, layout, path.clone(), Rule::LdCache, tried)? {
                return Ok(Some(found));
            }
        }
    } else {
        for dir in &resolver.conf_dirs {
            if let Some(found) = try_dir(
                resolver,
                layout,
                dir,
                name,
                Rule::LdSoConf(dir.clone()),
                tried,
            )? {
                return Ok(Some(found));
            }
        }
    }
    if nodeflib {
        return Ok(None);
    }
    for dir in &layout.default_dirs {
        if let Some(found) = try_dir(
            resolver,
            layout,
            dir,
            name,
            Rule::Default(dir.clone()),
            tried,
        )? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn try_dir(
    resolver: &Resolver,
    layout: &Layout,
    dir: &Path,
    name: &str,
    rule: Rule,
    tried: &mut Tried,
) -> Result<Option<Found>, ElfError> {
    tried.searched(rule_label(&rule));
    if !dir.is_absolute() {
        // Relative to the loader's working directory at run time: unknowable.
        return Ok(None);
    }
    try_path(resolver, layout, dir.join(name), rule, tried)
}

/// How a searched place is named in a not-found error.
fn rule_label(rule: &Rule) -> String {
    match rule {
        Rule::LdSoConf(dir) | Rule::Default(dir) => dir.display().to_string(),
        other => other.to_string(),
    }
}

/// Opens `path` like `open_verify`: missing is `None`; another class or
/// machine is skipped (`None`, noted); a non-ELF file is an error, as it is
/// for ld.so ("invalid ELF header").
fn try_path(
    resolver: &Resolver,
    layout: &Layout,
    path: PathBuf,
    rule: Rule,
    tried: &mut Tried,
) -> Result<Option<Found>, ElfError> {
    let root = &resolver.sysroot;
    let Ok(real) = resolve_in_root(root, &path) else {
        return Ok(None);
    };
    let host = host_path(root, &real);
    let Ok(meta) = std::fs::metadata(&host) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Ok(None);
    }
    match probe_arch(&host).map_err(|source| ElfError::Read {
        path: path.clone(),
        source,
    })? {
        None => Err(ElfError::NotElf {
            path,
            script_interpreter: None,
        }),
        Some(arch) if arch != layout.arch => {
            tried.skipped.push(format!("{} ({arch})", path.display()));
            Ok(None)
        }
        Some(_) => Ok(Some(Found {
            path,
            real,
            id: (meta.dev(), meta.ino()),
            rule,
        })),
    }
}

fn file_id(host: &Path, shown: &Path) -> Result<(u64, u64), ElfError> {
    let meta = std::fs::metadata(host).map_err(|source| ElfError::Read {
        path: shown.to_path_buf(),
        source,
    })?;
    Ok((meta.dev(), meta.ino()))
}
