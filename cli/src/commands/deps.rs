//! `mkrootfs deps [--why] ELF...` and `mkrootfs deps --module NAME...`.

use super::Out;
use anyhow::{bail, Context, Result};
use clap::Args;
use mkrootfs::{build, elf, kmod};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DepsArgs {
    /// ELF files or `#!` scripts (paths inside the sysroot, or names looked up
    /// as `binaries` names are), or module names with --module.
    #[arg(required = true)]
    pub items: Vec<String>,
    /// Explain which object needed each file and through which search rule.
    #[arg(long)]
    pub why: bool,
    /// Resolve inside this tree instead of /.
    #[arg(long, default_value = "/")]
    pub sysroot: PathBuf,
    /// Also follow .note.dlopen ELF notes.
    #[arg(long)]
    pub dlopen: bool,
    /// The items are kernel module names or aliases: show the module closure.
    #[arg(long, conflicts_with_all = ["why", "dlopen", "sysroot"])]
    pub module: bool,
    /// Module tree for --module. Default: the tree of the kernel `mkrootfs run`
    /// boots without --kernel ($MKROOTFS_KERNEL, the running kernel's, or the
    /// cached Debian cloud kernel).
    #[arg(long, requires = "module")]
    pub kernel_modules: Option<PathBuf>,
}

pub fn run(args: DepsArgs) -> Result<u8> {
    if args.module {
        let tree = match args.kernel_modules {
            Some(t) => t,
            None => run_kernel_modules()?,
        };
        let closure = kmod::resolve(&tree, &args.items)?;
        let mut out = Out::new();
        out.text(&kmod::format_closure(&closure))?;
        out.finish()?;
        return Ok(0);
    }
    let resolver = elf::Resolver::new(elf::ResolverOptions {
        sysroot: args.sysroot.clone(),
        dlopen_notes: args.dlopen,
        arch: None,
    })?;
    // With the host as sysroot, `deps ./prog` (or `deps prog` for a file
    // here) means that file, as for ldd; otherwise a bare name is looked up
    // as `binaries` names are (the default PATH inside the sysroot), and a
    // `#!` script stands for its interpreter (and env's program).
    let host = args.sysroot == std::path::Path::new("/");
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut interpreters: Vec<(String, String)> = Vec::new();
    for item in &args.items {
        let name = match std::path::absolute(item) {
            Ok(abs) if host && abs.is_file() => abs.display().to_string(),
            _ => item.clone(),
        };
        if !name.starts_with('/') && name.contains('/') {
            // A relative path inside another sysroot: as written.
            roots.push(PathBuf::from(&name));
            continue;
        }
        let found = build::locate_with_interpreters(
            &args.sysroot,
            &name,
            build::DEFAULT_PATH,
            "the command line",
        )?;
        if let Some(note) = found.note {
            eprintln!("mkrootfs: warning: {note}");
        }
        match found.paths.split_first() {
            Some((binary, [])) => roots.push(PathBuf::from(binary)),
            Some((_, interps)) => {
                for i in interps {
                    interpreters.push((i.clone(), item.clone()));
                    roots.push(PathBuf::from(i));
                }
            }
            None => {}
        }
    }
    let closure = resolver.closure(&roots)?;
    let mut out = Out::new();
    for (path, script) in &interpreters {
        if args.why {
            out.line(format_args!("{path} (interpreter of {script})"))?;
        } else {
            out.line(path)?;
        }
    }
    if args.why {
        out.text(&elf::format_why(&closure))?;
    } else {
        for dep in &closure.deps {
            out.line(dep.path.display())?;
        }
    }
    out.finish()?;
    Ok(0)
}

/// The module tree of the kernel `mkrootfs run` boots without `--kernel`
/// (`$MKROOTFS_KERNEL`, the running kernel's, or the cached Debian one).
fn run_kernel_modules() -> Result<PathBuf> {
    let kernel = mkrootfs_qemu::find_kernel()
        .context("find the kernel `mkrootfs run` boots (or pass --kernel-modules DIR)")?;
    match kernel.modules {
        Some(tree) => Ok(tree),
        None => bail!(
            "kernel {} (version {}, {}) has no module tree: pass --kernel-modules DIR",
            kernel.vmlinuz.display(),
            kernel.version,
            kernel.source
        ),
    }
}
