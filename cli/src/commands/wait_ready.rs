//! `mkrootfs run --vsock SOCKET --wait-ready`: the same run, detached
//! (console in `SOCKET.log`), and this command returns once the guest says
//! `READY=1` over vsock (systemd's `vmm.notify_socket` credential, which the
//! guest's agent honours; docs/agent.md), leaving it running for
//! `mkrootfs exec SOCKET …`.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The host port the guest notifies (vhost-device-vsock forwards it to
/// `SOCKET_<port>`).
pub const NOTIFY_PORT: u32 = 9999;

/// Re-runs this command without `--wait-ready`, detached, and waits for
/// READY=1. `argv` is this process's arguments.
pub fn detach(uds: &Path, argv: &[String], timeout: Duration) -> Result<u8> {
    let notify = format!("{}_{NOTIFY_PORT}", uds.display());
    let _ = std::fs::remove_file(&notify);
    let listener = UnixListener::bind(&notify).with_context(|| format!("bind {notify}"))?;
    listener.set_nonblocking(true)?;
    let log = format!("{}.log", uds.display());
    let out = std::fs::File::create(&log).with_context(|| format!("create {log}"))?;
    let mut args: Vec<String> = argv
        .iter()
        .skip(1)
        .filter(|a| *a != "--wait-ready")
        .cloned()
        .collect();
    let credential =
        format!("systemd.set_credential=vmm.notify_socket:vsock-stream:2:{NOTIFY_PORT}");
    // One --append: the user's, with the credential added.
    match args
        .iter()
        .position(|a| a == "--append" || a.starts_with("--append="))
    {
        Some(i) if args[i] == "--append" && i + 1 < args.len() => {
            args[i + 1] = format!("{} {credential}", args[i + 1]);
        }
        Some(i) => args[i] = format!("{} {credential}", args[i]),
        None => args.extend(["--append".to_string(), credential]),
    }
    let exe = std::env::current_exe().context("find the mkrootfs executable")?;
    let mut child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("start the detached run")?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((mut conn, _)) => {
                conn.set_nonblocking(false)?;
                conn.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut text = String::new();
                let _ = conn.read_to_string(&mut text);
                if text.lines().any(|l| l == "READY=1") {
                    eprintln!(
                        "mkrootfs: guest ready (pid {}); console in {log}; mkrootfs exec {} CONTAINER -- CMD",
                        child.id(),
                        uds.display()
                    );
                    return Ok(0);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("accept a notification"),
        }
        if let Some(st) = child.try_wait()? {
            bail!("the guest ended ({st}) before it was ready; console in {log}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the guest was not ready within {} s; console in {log}",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
