//! Readiness and result over vsock, systemd's convention (systemd >= 254,
//! mkosi): when the kernel command line carries
//! `systemd.set_credential=vmm.notify_socket:vsock-stream:CID:PORT`
//! (`vsock:` is taken as the same), each notification is one connection
//! to that host port carrying `READY=1` (the agent, once it listens) or
//! `EXIT_STATUS=N` (the init, with the RESULT line).

/// The credential systemd reads the host's notify socket from.
const CREDENTIAL: &str = "systemd.set_credential=vmm.notify_socket:";

/// The (CID, port) the command line names.
pub fn address(cmdline: &str) -> Option<(u32, u32)> {
    let value = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(CREDENTIAL))?;
    let rest = value
        .strip_prefix("vsock-stream:")
        .or_else(|| value.strip_prefix("vsock:"))?;
    let (cid, port) = rest.split_once(':')?;
    Some((cid.parse().ok()?, port.parse().ok()?))
}

/// Sends `message` when the command line names a notify socket; a failure
/// is reported on stderr and otherwise ignored.
pub fn send(message: &str) {
    let line = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let Some((cid, port)) = address(&line) else {
        return;
    };
    let sent = crate::sys::agent::vsock_connect(cid, port).and_then(|fd| {
        use std::io::Write;
        std::fs::File::from(fd).write_all(message.as_bytes())
    });
    if let Err(e) = sent {
        eprintln!("mkrootfs: notify vsock {cid}:{port} {message:?}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_names_the_port() {
        let c = "quiet systemd.set_credential=vmm.notify_socket:vsock-stream:2:9999 x=1";
        assert_eq!(address(c), Some((2, 9999)));
        assert_eq!(
            address("systemd.set_credential=vmm.notify_socket:vsock:2:5"),
            Some((2, 5))
        );
        assert_eq!(address("quiet"), None);
        assert_eq!(
            address("systemd.set_credential=vmm.notify_socket:unix:/x"),
            None
        );
    }
}
