//! `mkrootfs deps [--why] ELF...` and `mkrootfs deps --module NAME...`.

use super::Out;
use anyhow::{bail, Result};
use clap::Args;
use mkrootfs::{elf, kmod};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DepsArgs {
    /// ELF files (paths inside the sysroot), or module names with --module.
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
    #[arg(long)]
    pub module: bool,
    /// Module tree for --module. Default: /lib/modules/$(uname -r).
    #[arg(long)]
    pub kernel_modules: Option<PathBuf>,
}

pub fn run(args: DepsArgs) -> Result<u8> {
    if args.module {
        let tree = match args.kernel_modules {
            Some(t) => t,
            None => PathBuf::from("/lib/modules").join(kernel_release()?),
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
    // With the host as sysroot, `deps ./prog` means the file here, as for
    // ldd; inside another sysroot a relative path has no meaning.
    let host = args.sysroot == std::path::Path::new("/");
    let roots: Vec<PathBuf> = args
        .items
        .iter()
        .map(|item| match std::path::absolute(item) {
            Ok(abs) if host => abs,
            _ => PathBuf::from(item),
        })
        .collect();
    let closure = resolver.closure(&roots)?;
    let mut out = Out::new();
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

fn kernel_release() -> Result<String> {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let r = r.trim();
    if r.is_empty() {
        bail!("cannot tell the running kernel's release; pass --kernel-modules");
    }
    Ok(r.to_string())
}
