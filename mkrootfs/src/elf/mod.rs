//! ELF dependency closure computed the way glibc's `ld.so` would load it,
//! without running anything (`ldd` executes the host's loader: wrong for a
//! foreign sysroot and unsafe on untrusted binaries).
//!
//! Per root: `PT_INTERP` at exactly the path written, then `DT_NEEDED`
//! breadth-first like `_dl_map_object_deps`. Each name is searched in
//! `DT_RPATH` of the loading object and of its loaders up the chain (only
//! while the loading object has no `DT_RUNPATH`), then the loading object's
//! `DT_RUNPATH` (never inherited), then `/etc/ld.so.cache` (or, without one,
//! the `/etc/ld.so.conf` directories), then the default directories; an
//! object marked `DF_1_NODEFLIB` skips the last two. Candidates of another
//! ELF class or machine are skipped. An already loaded object is reused when
//! a name matches its path, a name it was loaded under or its `DT_SONAME`, or
//! when the file found is the same inode. Everything is looked up inside the
//! sysroot with its own symlinks (absolute ones point inside the sysroot).
//!
//! Not modelled: `LD_LIBRARY_PATH`/`LD_PRELOAD` (not part of an image),
//! `glibc-hwcaps` and legacy hwcap subdirectories (they depend on the CPU
//! that will run the image; the baseline library is chosen), secure-mode
//! `$ORIGIN` restrictions, and byte order (an [`Arch`] is class + machine).

mod closure;
mod ldcache;
mod object;
mod search;
pub(crate) mod sysroot;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use object::{env_program, script_interpreter, script_shebang, Arch};

use search::Layout;

/// How to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverOptions {
    /// The root the loader's paths are looked up in. Default: `/`.
    pub sysroot: PathBuf,
    /// Also follow `.note.dlopen` notes (systemd's dlopen metadata).
    /// Default: false.
    pub dlopen_notes: bool,
    /// The arch every object must have. Default (`None`): the first root's;
    /// for [`Resolver::find_library`], the sysroot's `/bin/sh`, else the
    /// host's.
    pub arch: Option<Arch>,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        ResolverOptions {
            sysroot: PathBuf::from("/"),
            dlopen_notes: false,
            arch: None,
        }
    }
}

/// Why a dependency was found where it was.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The root's `PT_INTERP`.
    Interp,
    /// A `DT_NEEDED` entry containing a `/`, used as a path.
    Absolute,
    /// In this `DT_RPATH` directory (of the loader or one of its loaders).
    Rpath(PathBuf),
    /// In this `DT_RUNPATH` directory of the loader.
    Runpath(PathBuf),
    /// The entry of `/etc/ld.so.cache`.
    LdCache,
    /// In this `/etc/ld.so.conf` directory (used when there is no cache).
    LdSoConf(PathBuf),
    /// In this default (system) directory.
    Default(PathBuf),
    /// Listed in the needing object's `.note.dlopen`.
    DlopenNote,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Interp => write!(f, "PT_INTERP"),
            Rule::Absolute => write!(f, "absolute DT_NEEDED path"),
            Rule::Rpath(dir) => write!(f, "DT_RPATH {}", dir.display()),
            Rule::Runpath(dir) => write!(f, "DT_RUNPATH {}", dir.display()),
            Rule::LdCache => write!(f, "ld.so.cache"),
            Rule::LdSoConf(dir) => write!(f, "ld.so.conf {}", dir.display()),
            Rule::Default(dir) => write!(f, "default directory {}", dir.display()),
            Rule::DlopenNote => write!(f, ".note.dlopen"),
        }
    }
}

/// One file the roots need at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    /// The path inside the sysroot as `ld.so` opens it (not canonicalized),
    /// e.g. `/lib/x86_64-linux-gnu/libc.so.6`; may contain `..` when a
    /// `$ORIGIN/../lib` search path found it.
    pub path: PathBuf,
    /// The object whose `DT_NEEDED` (or `PT_INTERP`, or note) asked for it.
    pub needed_by: PathBuf,
    /// The `DT_NEEDED` string, the `PT_INTERP` path or the note's soname.
    pub name: String,
    pub rule: Rule,
}

/// The files a set of roots needs: deduplicated by path, in load order
/// (roots in the order given, each breadth-first), roots excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    /// The arch the objects were checked against (`None`: no roots and no
    /// arch given).
    pub arch: Option<Arch>,
    pub deps: Vec<Dep>,
}

/// Errors of the resolver; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("sysroot {} is not a usable directory", path.display())]
    Sysroot { path: PathBuf, source: io::Error },
    #[error("root {} is not an absolute path", path.display())]
    RootNotAbsolute { path: PathBuf },
    #[error("cannot find {} in sysroot {}", path.display(), sysroot.display())]
    Resolve {
        path: PathBuf,
        sysroot: PathBuf,
        source: io::Error,
    },
    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not an ELF file{}", path.display(), match script_interpreter {
        Some(interp) => format!(" but a #! script for {interp}"),
        None => String::new(),
    })]
    NotElf {
        path: PathBuf,
        script_interpreter: Option<String>,
    },
    #[error("cannot parse ELF file {}", path.display())]
    Parse {
        path: PathBuf,
        source: goblin::error::Error,
    },
    #[error("{} is {found}, expected {expected}", path.display())]
    WrongArch {
        path: PathBuf,
        found: Arch,
        expected: Arch,
    },
    #[error("interpreter {interp} (PT_INTERP of {}) not found in sysroot {}", needed_by.display(), sysroot.display())]
    MissingInterp {
        interp: String,
        needed_by: PathBuf,
        sysroot: PathBuf,
        source: io::Error,
    },
    #[error("{name} (needed by {}) not found in {}{}", needed_by.display(), searched.join(", "), skipped_note(skipped))]
    NotFound {
        name: String,
        needed_by: PathBuf,
        searched: Vec<String>,
        skipped: Vec<String>,
    },
    #[error("none of {} (required by the .note.dlopen of {}) found in {}{}", names.join(", "), needed_by.display(), searched.join(", "), skipped_note(skipped))]
    DlopenNotFound {
        names: Vec<String>,
        needed_by: PathBuf,
        searched: Vec<String>,
        skipped: Vec<String>,
    },
    #[error("{name} not found in {}{}", searched.join(", "), skipped_note(skipped))]
    LibraryNotFound {
        name: String,
        searched: Vec<String>,
        skipped: Vec<String>,
    },
    #[error("malformed ld.so.cache {}: {reason}", path.display())]
    LdCache { path: PathBuf, reason: String },
    #[error("cannot read ld.so.conf file {}", path.display())]
    LdConf { path: PathBuf, source: io::Error },
    #[error("malformed .note.dlopen in {}: {reason}", path.display())]
    DlopenNote { path: PathBuf, reason: String },
    #[error("no arch to check against: give one, or a root")]
    NoArch,
}

fn skipped_note(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!("; skipped {}", skipped.join(", "))
    }
}

/// Resolves dependencies inside one sysroot. Cheap to reuse: the cache and
/// conf are read once by [`Resolver::new`].
#[derive(Debug)]
pub struct Resolver {
    /// The sysroot on the host, canonical.
    sysroot: PathBuf,
    dlopen_notes: bool,
    arch: Option<Arch>,
    /// soname -> (path, flags) of `/etc/ld.so.cache`, usable entries only,
    /// in file order.
    cache: Option<HashMap<String, Vec<(PathBuf, i32)>>>,
    /// `/etc/ld.so.conf` directories, used only when there is no cache.
    conf_dirs: Vec<PathBuf>,
}

const LD_SO_CACHE: &str = "/etc/ld.so.cache";
const LD_SO_CONF: &str = "/etc/ld.so.conf";

impl Resolver {
    /// Reads the sysroot's `/etc/ld.so.cache`, or when it has none its
    /// `/etc/ld.so.conf`. A malformed cache is an error (ld.so would ignore
    /// it, but then the image would differ from what was intended).
    pub fn new(opts: ResolverOptions) -> Result<Resolver, ElfError> {
        let sysroot = std::fs::canonicalize(&opts.sysroot)
            .and_then(|p| {
                if p.is_dir() {
                    Ok(p)
                } else {
                    Err(io::Error::from(io::ErrorKind::NotADirectory))
                }
            })
            .map_err(|source| ElfError::Sysroot {
                path: opts.sysroot.clone(),
                source,
            })?;
        let mut cache = None;
        let mut conf_dirs = Vec::new();
        match sysroot::resolve_in_root(&sysroot, Path::new(LD_SO_CACHE)) {
            Ok(real) => {
                let bytes =
                    std::fs::read(sysroot::host_path(&sysroot, &real)).map_err(|source| {
                        ElfError::Read {
                            path: PathBuf::from(LD_SO_CACHE),
                            source,
                        }
                    })?;
                let entries = ldcache::parse_cache(&bytes).map_err(|reason| ElfError::LdCache {
                    path: PathBuf::from(LD_SO_CACHE),
                    reason,
                })?;
                let mut map: HashMap<String, Vec<(PathBuf, i32)>> = HashMap::new();
                for entry in entries.into_iter().filter(ldcache::CacheEntry::usable) {
                    map.entry(entry.soname)
                        .or_default()
                        .push((entry.path, entry.flags));
                }
                cache = Some(map);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                conf_dirs = ldcache::read_conf(&sysroot, Path::new(LD_SO_CONF))
                    .map_err(|(path, source)| ElfError::LdConf { path, source })?;
            }
            Err(source) => {
                return Err(ElfError::Read {
                    path: PathBuf::from(LD_SO_CACHE),
                    source,
                })
            }
        }
        Ok(Resolver {
            sysroot,
            dlopen_notes: opts.dlopen_notes,
            arch: opts.arch,
            cache,
            conf_dirs,
        })
    }

    /// The dependency closure of `roots` (absolute paths inside the sysroot).
    pub fn closure(&self, roots: &[PathBuf]) -> Result<Closure, ElfError> {
        closure::closure(self, roots)
    }

    /// Finds a library by soname (e.g. `libgcc_s.so.1`, which glibc dlopens)
    /// through ld.so.cache (or ld.so.conf) and the default directories, as
    /// `dlopen` from the main program would. A name with a `/` is a path.
    pub fn find_library(&self, soname: &str) -> Result<PathBuf, ElfError> {
        let arch = match self.arch {
            Some(arch) => arch,
            None => self.guess_arch().ok_or(ElfError::NoArch)?,
        };
        let layout = Layout::new(&self.sysroot, arch);
        closure::find_library(self, &layout, soname)
    }

    /// The arch of the sysroot's `/bin/sh`, else the host's.
    fn guess_arch(&self) -> Option<Arch> {
        sysroot::resolve_in_root(&self.sysroot, Path::new("/bin/sh"))
            .ok()
            .and_then(|real| {
                object::probe_arch(&sysroot::host_path(&self.sysroot, &real))
                    .ok()
                    .flatten()
            })
            .or_else(Arch::host)
    }
}

/// Entry points for `cargo fuzz` targets: the parsers that read untrusted
/// bytes. Not a stable API.
#[doc(hidden)]
pub mod fuzz {
    use std::path::Path;

    /// Parses ELF bytes the way the resolver does (headers, dynamic section,
    /// `.note.dlopen`); returns whether they were accepted.
    pub fn elf_object(bytes: &[u8]) -> bool {
        super::object::ElfObject::parse(bytes, Path::new("fuzz")).is_ok()
    }

    /// Parses `ld.so.cache` bytes; returns the number of entries.
    pub fn ld_so_cache(bytes: &[u8]) -> Option<usize> {
        super::ldcache::parse_cache(bytes).ok().map(|e| e.len())
    }
}

/// One line per dependency: `<path>: <name> needed by <object>, found via <rule>`.
pub fn format_why(closure: &Closure) -> String {
    let mut out = String::new();
    for dep in &closure.deps {
        out.push_str(&format!(
            "{}: {} needed by {}, found via {}\n",
            dep.path.display(),
            dep.name,
            dep.needed_by.display(),
            dep.rule
        ));
    }
    out
}
