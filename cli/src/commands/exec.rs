//! `mkrootfs exec TARGET CONTAINER [-t] [-i] -- CMD…`: runs a command in a
//! running guest's container through its agent (docs/agent.md) and exits
//! with the command's status.

use clap::Args;
use mkrootfs::agent::{Client, ExecOptions, Target};
use std::io::Read;

#[derive(Args)]
pub struct ExecArgs {
    /// The agent: a hybrid-vsock Unix socket (PATH, or PATH@PORT) or
    /// vsock://CID:PORT.
    pub target: Target,
    /// The container (its service name); "" for the VM itself where the
    /// profile allows it.
    pub container: String,
    /// Give the command a terminal (a pty in the container).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Pass standard input to the command (read to its end first).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Environment for the command, KEY=value (repeatable); default: the
    /// container's.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory; default: the container's.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(a: ExecArgs) -> anyhow::Result<u8> {
    let stdin = if a.interactive {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Some(v)
    } else {
        None
    };
    let mut client = Client::connect(&a.target)?;
    let args: Vec<&str> = a.command.iter().map(String::as_str).collect();
    let opts = ExecOptions {
        terminal: a.tty,
        env: a.env,
        cwd: a.workdir.unwrap_or_default(),
        stdin,
        ..ExecOptions::default()
    };
    let status = client.exec(
        &a.container,
        &args,
        &opts,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )?;
    Ok(u8::try_from(status).unwrap_or(255))
}
