//! `mkrootfs resync --vsock TARGET`: after a guest is restored from a
//! snapshot, gives it fresh entropy and the time through its agent
//! (ReseedRandomDev with 64 bytes of the host's getrandom, then
//! SetGuestDateTime with the host's clock; docs/agent.md, "Clones").
//! Prints what it did, never the bytes.

use clap::Args;
use mkrootfs::agent::{Client, Target, RESYNC_SEED_BYTES};

#[derive(Args)]
pub struct ResyncArgs {
    /// The agent: a hybrid-vsock Unix socket (PATH, or PATH@PORT) or
    /// vsock://CID:PORT.
    #[arg(long)]
    pub vsock: Target,
}

pub fn run(a: ResyncArgs) -> anyhow::Result<u8> {
    // The connection and the address syntax are exec's and cp's (the
    // library's `Client` and `Target`).
    let mut client = Client::connect(&a.vsock)?;
    let time = client.resync()?;
    let t = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = super::Out::new();
    out.line(format_args!(
        "{}: crng reseeded with {RESYNC_SEED_BYTES} bytes of the host's getrandom; clock set to {}.{:06} (the host's)",
        a.vsock,
        t.as_secs(),
        t.subsec_micros()
    ))?;
    out.finish()?;
    Ok(0)
}
