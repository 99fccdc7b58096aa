//! vhost-device-vsock for boot tests: the vhost-user backend that exposes
//! guest vsock ports as a Unix socket with Firecracker's hybrid-vsock
//! handshake (tests/agent.rs, tests/snapshot.rs).

use crate::chain;
use mkrootfs::agent::{Client, Target};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// vhost-device-vsock on PATH or in ~/.cargo/bin; `None` (the test says
/// why) when absent, a failure under CI=true.
pub fn vhost_device_vsock() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    let found = dirs
        .into_iter()
        .map(|d| d.join("vhost-device-vsock"))
        .find(|p| p.is_file());
    crate::require(
        "vhost-device-vsock (cargo install --locked vhost-device-vsock)",
        found.is_some(),
    );
    found
}

/// The daemon, killed when dropped.
pub struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts vhost-device-vsock for guest CID 3; returns it, the vhost-user
/// socket for QEMU and the hybrid socket for the host.
pub fn start_daemon(bin: &Path, dir: &Path) -> (Daemon, PathBuf, PathBuf) {
    let vhost = dir.join("vhost.sock");
    let uds = dir.join("vm.vsock");
    let _ = std::fs::remove_file(&vhost);
    let _ = std::fs::remove_file(&uds);
    let child = Command::new(bin)
        .arg("--vm")
        .arg(format!(
            "guest-cid=3,socket={},uds-path={}",
            vhost.display(),
            uds.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vhost-device-vsock");
    let d = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !vhost.exists() {
        assert!(
            Instant::now() < deadline,
            "vhost-device-vsock made no socket"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (d, vhost, uds)
}

/// QEMU arguments for a vhost-user vsock device on `vhost` (a pc machine:
/// vhost-user needs the guest's memory shared with the backend).
pub fn qemu_args(vhost: &Path, memory_mb: u32) -> Vec<String> {
    [
        "-object",
        &format!("memory-backend-memfd,id=mem,size={memory_mb}M,share=on"),
        "-machine",
        "memory-backend=mem",
        "-chardev",
        &format!("socket,id=vsock0,path={}", vhost.display()),
        "-device",
        "vhost-user-vsock-pci,chardev=vsock0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Connects once the guest's agent listens.
pub fn connect(target: &Target, qemu: &std::thread::JoinHandle<mkrootfs_qemu::Outcome>) -> Client {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        match Client::connect(target) {
            Ok(c) => return c,
            Err(e) => {
                assert!(
                    !qemu.is_finished(),
                    "the guest ended before its agent answered"
                );
                assert!(
                    Instant::now() < deadline,
                    "agent never answered: {}",
                    chain(&e)
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}
