//! `mkrootfs run --vsock SOCKET`: the guest's vsock through
//! vhost-device-vsock (the vhost-user backend with Firecracker's
//! hybrid-vsock handshake), so that `mkrootfs exec SOCKET …` reaches the
//! guest's agent while it runs (docs/agent.md).

use anyhow::{bail, Context, Result};
use mkrootfs_qemu::{Machine, VmConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running backend; stopped (and its sockets removed) when dropped.
pub struct Backend {
    child: Child,
    vhost: PathBuf,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.vhost);
    }
}

/// Starts vhost-device-vsock for guest CID 3 with the hybrid socket `uds`
/// and adds the device (and the shared memory vhost-user needs) to `cfg`.
pub fn attach(cfg: &mut VmConfig, uds: &Path) -> Result<Backend> {
    let device = match cfg.machine {
        Machine::Pc => "vhost-user-vsock-pci",
        Machine::Microvm => "vhost-user-vsock-device",
        other => bail!("--vsock: the {other:?} machine is not supported (use pc or microvm)"),
    };
    let vhost = PathBuf::from(format!("{}.vhost", uds.display()));
    for p in [uds, &vhost] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", p.display())),
        }
    }
    let child = Command::new("vhost-device-vsock")
        .arg("--vm")
        .arg(format!(
            "guest-cid=3,socket={},uds-path={}",
            vhost.display(),
            uds.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("start vhost-device-vsock (cargo install --locked vhost-device-vsock)")?;
    let backend = Backend {
        child,
        vhost: vhost.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !vhost.exists() {
        if Instant::now() > deadline {
            bail!("vhost-device-vsock made no socket at {}", vhost.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mem = cfg.memory_mb;
    cfg.extra_args.extend([
        "-object".to_string(),
        format!("memory-backend-memfd,id=vsockmem,size={mem}M,share=on"),
        "-machine".into(),
        "memory-backend=vsockmem".into(),
        "-chardev".into(),
        format!("socket,id=vsock0,path={}", vhost.display()),
        "-device".into(),
        format!("{device},chardev=vsock0"),
    ]);
    Ok(backend)
}
