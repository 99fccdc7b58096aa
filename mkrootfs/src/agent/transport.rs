//! Where the agent is and how to reach it.

use super::AgentError;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// How long the hybrid socket's `OK` may take.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An agent's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A hybrid-vsock Unix socket and the guest port.
    Hybrid { uds: PathBuf, port: u32 },
    /// `vsock://CID:PORT`.
    Vsock { cid: u32, port: u32 },
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `vsock://CID:PORT`, or the path of a hybrid-vsock Unix socket
    /// (the guest port is [`super::DEFAULT_PORT`]; `PATH@PORT` names another).
    fn from_str(s: &str) -> Result<Target, String> {
        if let Some(rest) = s.strip_prefix("vsock://") {
            let (cid, port) = rest
                .split_once(':')
                .ok_or_else(|| format!("{s:?}: expected vsock://CID:PORT"))?;
            let num = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| format!("{s:?}: {v:?} is not a number"))
            };
            return Ok(Target::Vsock {
                cid: num(cid)?,
                port: num(port)?,
            });
        }
        if s.is_empty() {
            return Err("empty target".into());
        }
        match s.rsplit_once('@') {
            Some((path, port)) if port.parse::<u32>().is_ok() => Ok(Target::Hybrid {
                uds: path.into(),
                port: port.parse().unwrap_or(super::DEFAULT_PORT),
            }),
            _ => Ok(Target::Hybrid {
                uds: s.into(),
                port: super::DEFAULT_PORT,
            }),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Hybrid { uds, port } => write!(f, "{} port {port}", uds.display()),
            Target::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
        }
    }
}

/// A connected byte stream to the agent.
pub(super) struct Stream(pub(super) std::fs::File);

impl Target {
    /// The connected stream itself, for a client of one's own.
    pub fn connect_raw(&self) -> Result<std::fs::File, AgentError> {
        Ok(self.connect()?.0)
    }

    /// Connects, and for a hybrid socket performs the handshake.
    pub(super) fn connect(&self) -> Result<Stream, AgentError> {
        match self {
            Target::Hybrid { uds, port } => {
                let s = std::os::unix::net::UnixStream::connect(uds)
                    .map_err(|e| AgentError::Connect(self.to_string(), e))?;
                // A guest whose vsock driver is not up yet never answers:
                // the handshake has a deadline, the stream after it none.
                let timeout = |t| {
                    s.set_read_timeout(t)
                        .map_err(|e| AgentError::Connect(self.to_string(), e))
                };
                timeout(Some(HANDSHAKE_TIMEOUT))?;
                let mut f = std::fs::File::from(OwnedFd::from(
                    s.try_clone()
                        .map_err(|e| AgentError::Connect(self.to_string(), e))?,
                ));
                f.write_all(format!("CONNECT {port}\n").as_bytes())
                    .map_err(|e| AgentError::Connect(self.to_string(), e))?;
                // The reply is one line; read it byte by byte so nothing of
                // the stream after it is consumed.
                let mut line = Vec::new();
                let mut b = [0u8; 1];
                while line.len() < 256 {
                    match f.read(&mut b) {
                        Ok(0) => break,
                        Ok(_) if b[0] == b'\n' => break,
                        Ok(_) => line.push(b[0]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(AgentError::Connect(self.to_string(), e)),
                    }
                }
                let reply = String::from_utf8_lossy(&line).into_owned();
                if !reply.starts_with("OK ") && reply != "OK" {
                    return Err(AgentError::Handshake {
                        target: self.to_string(),
                        reply: if reply.is_empty() {
                            "no reply (is the guest's agent listening on that port?)".into()
                        } else {
                            reply
                        },
                    });
                }
                timeout(None)?;
                Ok(Stream(f))
            }
            Target::Vsock { cid, port } => vsock_connect(*cid, *port)
                .map(|fd| Stream(std::fs::File::from(fd)))
                .map_err(|e| AgentError::Connect(self.to_string(), e)),
        }
    }
}

fn vsock_connect(cid: u32, port: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the descriptor is new and
    // owned only by the OwnedFd made from it.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2).
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_vm is plain data; zero is valid for its padding.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = cid;
    addr.svm_port = port;
    // SAFETY: addr is a valid sockaddr_vm of the length passed.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            "vsock://3:1024".parse(),
            Ok(Target::Vsock { cid: 3, port: 1024 })
        );
        assert_eq!(
            "/run/vm.sock".parse(),
            Ok(Target::Hybrid {
                uds: "/run/vm.sock".into(),
                port: 1024
            })
        );
        assert_eq!(
            "/run/vm.sock@52".parse(),
            Ok(Target::Hybrid {
                uds: "/run/vm.sock".into(),
                port: 52
            })
        );
        assert!("vsock://3".parse::<Target>().is_err());
    }
}
