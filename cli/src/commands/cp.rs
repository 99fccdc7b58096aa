//! `mkrootfs cp TARGET SRC DEST`: copies a file into a running guest
//! (`cp TARGET local :/vm/path`, CopyFile) or out of it
//! (`cp TARGET :/vm/path local`, ReadFile), through its agent, beneath
//! the directories its profile allows.

use anyhow::Context;
use clap::Args;
use mkrootfs::agent::{Client, Target};
use std::io::Write;

#[derive(Args)]
pub struct CpArgs {
    /// The agent: a hybrid-vsock Unix socket (PATH, or PATH@PORT) or
    /// vsock://CID:PORT.
    pub target: Target,
    /// Source: a local file, or `:PATH` in the guest.
    pub src: String,
    /// Destination: `:PATH` in the guest, or a local file (`-` for stdout).
    pub dest: String,
    /// Mode of a file copied in (octal). Default: the local file's.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<u32>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|_| format!("{s:?} is not an octal mode"))
}

pub fn run(a: CpArgs) -> anyhow::Result<u8> {
    let mut client = Client::connect(&a.target)?;
    match (a.src.strip_prefix(':'), a.dest.strip_prefix(':')) {
        (None, Some(guest)) => {
            use std::os::unix::fs::PermissionsExt;
            let data = std::fs::read(&a.src).with_context(|| format!("read {}", a.src))?;
            let mode = match a.mode {
                Some(m) => m,
                None => std::fs::metadata(&a.src)?.permissions().mode() & 0o7777,
            };
            client.copy_in(&data, guest, mode, (0, 0))?;
        }
        (Some(guest), None) if a.dest == "-" => {
            let mut out = std::io::stdout().lock();
            client.read_file(guest, &mut out)?;
            out.flush()?;
        }
        (Some(guest), None) => {
            let tmp = format!("{}.mkrootfs-cp", a.dest);
            let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {tmp}"))?;
            client.read_file(guest, &mut f)?;
            f.flush()?;
            std::fs::rename(&tmp, &a.dest).with_context(|| format!("rename to {}", a.dest))?;
        }
        _ => anyhow::bail!("exactly one of SRC and DEST must be a guest path (:PATH)"),
    }
    Ok(0)
}
