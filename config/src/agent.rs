//! The guest agent: the `[init.agent]` table (what the profile allows), and
//! the wire both sides speak, so that the builder's host client and the
//! init's agent share one definition of every frame and message.
//!
//! - [`ttrpc`]: containerd's ttRPC framing (10-byte header, request,
//!   response, size limit) and its status codes;
//! - [`proto`]: the protobuf messages, with Kata's names and field numbers
//!   for the calls we serve (`grpc.AgentService`, `grpc.Health`), and our
//!   own file-read service (`mkrootfs.Files`).

pub mod proto;
pub mod ttrpc;

use serde::{Deserialize, Serialize};

/// The vsock port Kata's agent listens on, and ours by default.
pub const DEFAULT_PORT: u32 = 1024;

/// `[init.agent]`: a control channel over vsock (docs/agent.md). Off unless
/// the table is present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The vsock port the agent listens on (any CID). Default: 1024, as
    /// Kata's agent.
    #[serde(default = "default_port")]
    pub port: u32,
    /// Allow `ExecProcess` outside every container (container id `""`), as
    /// root in the VM. Default: false.
    #[serde(default)]
    pub allow_vm_exec: bool,
    /// Absolute VM directories below which `CopyFile` may write and files
    /// may be read out; paths are resolved beneath them without `..` or
    /// symbolic links. Default: none (every copy refused).
    #[serde(default)]
    pub copy_dirs: Vec<String>,
}

fn default_port() -> u32 {
    DEFAULT_PORT
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            port: DEFAULT_PORT,
            allow_vm_exec: false,
            copy_dirs: Vec::new(),
        }
    }
}

impl AgentConfig {
    /// Checks the table; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        // VMADDR_PORT_ANY is u32::MAX; ports below 1024 are only reserved
        // by convention on vsock, so they are allowed.
        if self.port == u32::MAX {
            return Err("init.agent.port: 4294967295 is VMADDR_PORT_ANY, not a port".into());
        }
        for d in &self.copy_dirs {
            let normal = d.starts_with('/')
                && !d.contains('\0')
                && d.split('/').all(|c| c != ".." && c != ".");
            if !normal || d == "/" {
                return Err(format!(
                    "init.agent.copy_dirs: {d:?} must be an absolute directory other than / without . or .."
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let a: AgentConfig = toml::from_str("").unwrap();
        assert_eq!(a, AgentConfig::default());
        assert_eq!(a.port, 1024);
        assert!(toml::from_str::<AgentConfig>("prot = 1")
            .unwrap_err()
            .to_string()
            .contains("unknown field `prot`"));
        let bad: AgentConfig = toml::from_str("copy_dirs = [\"/run/../etc\"]").unwrap();
        assert!(bad.validate().unwrap_err().contains("copy_dirs"));
        let bad: AgentConfig = toml::from_str("copy_dirs = [\"/\"]").unwrap();
        assert!(bad.validate().is_err());
        let good: AgentConfig = toml::from_str("copy_dirs = [\"/run/in\"]").unwrap();
        assert_eq!(good.validate(), Ok(()));
    }
}
