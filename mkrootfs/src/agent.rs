//! The host side of the guest agent (docs/agent.md): a ttRPC client of the
//! Kata agent API our init serves on vsock, over the two transports a host
//! has: a hybrid-vsock Unix socket (Firecracker, Cloud Hypervisor,
//! vhost-device-vsock: connect, `CONNECT <port>\n`, `OK …`) or `AF_VSOCK`
//! itself (`vsock://CID:PORT`, where the host has vhost-vsock).
//!
//! ```no_run
//! use mkrootfs::agent::{Client, ExecOptions, Target};
//! let target: Target = "/run/mkrootfs/vm.vsock".parse().unwrap();
//! let mut client = Client::connect(&target).unwrap();
//! let status = client
//!     .exec("box", &["sh", "-c", "echo hi"], &ExecOptions::default(),
//!           &mut std::io::stdout(), &mut std::io::stderr())
//!     .unwrap();
//! assert_eq!(status, 0);
//! ```

mod client;
mod transport;

pub use client::{Client, ExecOptions, RESYNC_SEED_BYTES};
pub use mkrootfs_config::agent::{proto, ttrpc, DEFAULT_PORT};
pub use transport::Target;

/// An agent call or connection that failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("connect to {0}")]
    Connect(String, #[source] std::io::Error),
    #[error("handshake with {target}: {reply}")]
    Handshake { target: String, reply: String },
    #[error("agent connection")]
    Io(#[source] std::io::Error),
    #[error("the agent closed the connection")]
    Closed,
    #[error("decode the agent's {what}")]
    Decode {
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    /// The agent answered with an error status (a gRPC code).
    #[error("{call}: {message} (code {code})")]
    Status {
        call: String,
        code: i32,
        message: String,
    },
    #[error("read {0}")]
    Local(std::path::PathBuf, #[source] std::io::Error),
    #[error("getrandom on the host")]
    Random(#[source] std::io::Error),
    #[error("write output")]
    Output(#[source] std::io::Error),
}
