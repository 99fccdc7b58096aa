//! The calls: a decoded ttRPC request in, a response payload or a status
//! out (`None` when the answer comes later: WaitProcess, ReadStdout,
//! ReadStderr). Every refusal names what was refused.

use super::files::{self, Refusal};
use super::{exec, resync, Agent, Key, Proc, Reader, Reply};
use mkrootfs_config::agent::proto::*;
use mkrootfs_config::agent::ttrpc::code;
use prost::Message;
use std::collections::VecDeque;
use std::os::fd::AsFd;

type Answer = Option<Result<Vec<u8>, Refusal>>;

fn decode<M: Message + Default>(payload: &[u8], name: &str) -> Result<M, Refusal> {
    M::decode(payload).map_err(|e| (code::INVALID_ARGUMENT, format!("decode {name}: {e}")))
}

fn ok(m: &impl Message) -> Answer {
    Some(Ok(m.encode_to_vec()))
}

fn empty() -> Answer {
    ok(&Empty {})
}

/// Runs one call.
pub fn call(a: &mut Agent, to: Reply, req: &Request) -> Answer {
    let p = req.payload.as_slice();
    let r = (|| -> Result<Answer, Refusal> {
        Ok(match (req.service.as_str(), req.method.as_str()) {
            (AGENT_SERVICE, "ExecProcess") => exec_process(a, decode(p, "ExecProcessRequest")?)?,
            (AGENT_SERVICE, "WaitProcess") => {
                let r: WaitProcessRequest = decode(p, "WaitProcessRequest")?;
                let key = key_of(a, &r.container_id, &r.exec_id)?;
                if a.procs.get(&key).and_then(|p| p.status).is_some() {
                    a.deliver_status(&key, to);
                } else if let Some(p) = a.procs.get_mut(&key) {
                    p.waiters.push(to);
                }
                None
            }
            (AGENT_SERVICE, "SignalProcess") => {
                let r: SignalProcessRequest = decode(p, "SignalProcessRequest")?;
                let sig = nix::sys::signal::Signal::try_from(r.signal as i32).map_err(|_| {
                    (
                        code::INVALID_ARGUMENT,
                        format!("signal {}: unknown", r.signal),
                    )
                })?;
                if r.exec_id.is_empty() {
                    // Kata's special case: every process of the container.
                    signal_container(a, &r.container_id, sig)?;
                    return Ok(empty());
                }
                let key = key_of(a, &r.container_id, &r.exec_id)?;
                let proc = &a.procs[&key];
                // Until it is reaped its pid cannot be reused.
                if proc.status.is_none() {
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(proc.pid), sig).map_err(
                        |e| {
                            (
                                code::INTERNAL,
                                format!("kill {} {}: {e}", proc.pid, sig.as_str()),
                            )
                        },
                    )?;
                }
                empty()
            }
            (AGENT_SERVICE, "WriteStdin") => {
                let r: WriteStreamRequest = decode(p, "WriteStreamRequest")?;
                let key = key_of(a, &r.container_id, &r.exec_id)?;
                let proc = &a.procs[&key];
                let fd = if proc.tty { &proc.stdout } else { &proc.stdin };
                let Some(fd) = fd else {
                    return Err((code::FAILED_PRECONDITION, "stdin is closed".into()));
                };
                let len = match nix::unistd::write(fd, &r.data) {
                    Ok(n) => n as u32,
                    Err(nix::errno::Errno::EAGAIN) => 0,
                    Err(e) => return Err((code::FAILED_PRECONDITION, format!("write stdin: {e}"))),
                };
                ok(&WriteStreamResponse { len })
            }
            (AGENT_SERVICE, "CloseStdin") => {
                let r: CloseStdinRequest = decode(p, "CloseStdinRequest")?;
                let key = key_of(a, &r.container_id, &r.exec_id)?;
                if let Some(proc) = a.procs.get_mut(&key) {
                    if proc.tty {
                        // A terminal's end of input is its EOF character.
                        if let Some(m) = &proc.stdout {
                            let _ = nix::unistd::write(m, &[4]);
                        }
                    }
                    proc.stdin = None;
                }
                empty()
            }
            (AGENT_SERVICE, m @ ("ReadStdout" | "ReadStderr")) => {
                let r: ReadStreamRequest = decode(p, "ReadStreamRequest")?;
                let key = key_of(a, &r.container_id, &r.exec_id)?;
                let i = usize::from(m == "ReadStderr");
                let Some(proc) = a.procs.get_mut(&key) else {
                    return Ok(None);
                };
                let open = if i == 0 { &proc.stdout } else { &proc.stderr };
                if open.is_none() {
                    return Err(super::eof());
                }
                proc.readers[i].push_back(Reader { to, len: r.len });
                None
            }
            (AGENT_SERVICE, "TtyWinResize") => {
                let r: TtyWinResizeRequest = decode(p, "TtyWinResizeRequest")?;
                let key = key_of(a, &r.container_id, &r.exec_id)?;
                let proc = &a.procs[&key];
                match (&proc.stdout, proc.tty) {
                    (Some(m), true) => {
                        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
                        crate::sys::agent::set_winsize(m.as_fd(), clamp(r.row), clamp(r.column))
                            .map_err(|e| (code::INTERNAL, format!("TIOCSWINSZ: {e}")))?;
                    }
                    _ => {
                        return Err((
                            code::FAILED_PRECONDITION,
                            format!("{}: no terminal", r.exec_id),
                        ))
                    }
                }
                empty()
            }
            (AGENT_SERVICE, "CopyFile") => {
                let r: CopyFileRequest = decode(p, "CopyFileRequest")?;
                files::copy(&a.conf.copy_dirs, &r)?;
                empty()
            }
            (AGENT_SERVICE, "ReseedRandomDev") => {
                let r: ReseedRandomDevRequest = decode(p, "ReseedRandomDevRequest")?;
                resync::reseed(std::path::Path::new(resync::RANDOM_DEV), &r)?;
                super::say(format_args!("crng reseeded with {} bytes", r.data.len()));
                empty()
            }
            (AGENT_SERVICE, "SetGuestDateTime") => {
                let r: SetGuestDateTimeRequest = decode(p, "SetGuestDateTimeRequest")?;
                resync::set_time(&r)?;
                super::say(format_args!("clock set to {}.{:06}", r.sec, r.usec));
                empty()
            }
            (AGENT_SERVICE, "GetGuestDetails") => {
                let r: GuestDetailsRequest = decode(p, "GuestDetailsRequest")?;
                let block = if r.mem_block_size {
                    std::fs::read_to_string("/sys/devices/system/memory/block_size_bytes")
                        .ok()
                        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                        .unwrap_or(0)
                } else {
                    0
                };
                ok(&GuestDetailsResponse {
                    mem_block_size_bytes: block,
                    agent_details: Some(AgentDetails {
                        version: env!("CARGO_PKG_VERSION").into(),
                        init_daemon: false,
                        device_handlers: vec![],
                        storage_handlers: vec![],
                        supports_seccomp: true,
                    }),
                    support_mem_hotplug_probe: false,
                })
            }
            (HEALTH_SERVICE, "Check") => {
                let _: CheckRequest = decode(p, "CheckRequest")?;
                ok(&HealthCheckResponse { status: 1 })
            }
            (HEALTH_SERVICE, "Version") => {
                let _: CheckRequest = decode(p, "CheckRequest")?;
                ok(&VersionCheckResponse {
                    grpc_version: "ttrpc".into(),
                    agent_version: env!("CARGO_PKG_VERSION").into(),
                })
            }
            (FILES_SERVICE, "ReadFile") => {
                let r: ReadFileRequest = decode(p, "ReadFileRequest")?;
                ok(&files::read(&a.conf.copy_dirs, &r)?)
            }
            (s, m) => {
                return Err((code::UNIMPLEMENTED, format!("{s}/{m} is not implemented")));
            }
        })
    })();
    match r {
        Ok(answer) => answer,
        Err(e) => Some(Err(e)),
    }
}

/// The key of a known process, or NOT_FOUND naming it.
fn key_of(a: &Agent, container: &str, exec_id: &str) -> Result<Key, Refusal> {
    let key = (container.to_string(), exec_id.to_string());
    if a.procs.contains_key(&key) {
        Ok(key)
    } else {
        Err((
            code::NOT_FOUND,
            format!("no process {exec_id:?} in container {container:?}"),
        ))
    }
}

fn exec_process(a: &mut Agent, r: ExecProcessRequest) -> Result<Answer, Refusal> {
    let Some(process) = &r.process else {
        return Err((
            code::INVALID_ARGUMENT,
            "ExecProcess without a process".into(),
        ));
    };
    if r.exec_id.is_empty() || process.args.first().is_none_or(|a| a.is_empty()) {
        return Err((
            code::INVALID_ARGUMENT,
            "ExecProcess needs an exec_id and args".into(),
        ));
    }
    let key = (r.container_id.clone(), r.exec_id.clone());
    if a.procs.contains_key(&key) {
        return Err((
            code::ALREADY_EXISTS,
            format!(
                "process {:?} exists in container {:?}",
                r.exec_id, r.container_id
            ),
        ));
    }
    if a.procs.len() >= super::MAX_PROCESSES {
        return Err((code::RESOURCE_EXHAUSTED, "too many processes".into()));
    }
    let (target, plan) = if r.container_id.is_empty() {
        if !a.conf.allow_vm_exec {
            return Err((
                code::PERMISSION_DENIED,
                "exec in the VM (container id \"\") needs allow_vm_exec = true".into(),
            ));
        }
        (None, exec::vm_plan(process))
    } else {
        let t = exec::find(&a.cfg, &r.container_id).map_err(|e| (code::NOT_FOUND, e))?;
        let plan = exec::exec_plan(&t.loaded.plan, process);
        (Some(t), plan)
    };
    let (pid, streams) = exec::spawn(target.as_ref(), &plan).map_err(|e| {
        let c = match e.errno {
            libc::ENOENT => code::NOT_FOUND,
            libc::EACCES | libc::EPERM => code::PERMISSION_DENIED,
            _ => code::INTERNAL,
        };
        (c, format!("exec in {:?}: {e}", r.container_id))
    })?;
    let pidfd = crate::sys::agent::pidfd_open(pid).ok();
    if pidfd.is_none() {
        super::say(format_args!(
            "pidfd_open {pid} failed: its end will not be seen"
        ));
    }
    a.procs.insert(
        key,
        Proc {
            pid,
            pidfd,
            status: None,
            delivered: false,
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
            tty: process.terminal,
            waiters: Vec::new(),
            readers: [VecDeque::new(), VecDeque::new()],
        },
    );
    Ok(empty())
}

/// Sends `sig` to every process in the container's cgroup (exec'd ones
/// included: they were cloned into it).
fn signal_container(
    a: &Agent,
    container: &str,
    sig: nix::sys::signal::Signal,
) -> Result<(), Refusal> {
    if container.is_empty() {
        return Err((
            code::INVALID_ARGUMENT,
            "SignalProcess without exec_id needs a container".into(),
        ));
    }
    let t = exec::find(&a.cfg, container).map_err(|e| (code::NOT_FOUND, e))?;
    let procs = std::fs::read_to_string(format!("{}/cgroup.procs", t.cgroup))
        .map_err(|e| (code::INTERNAL, format!("{}/cgroup.procs: {e}", t.cgroup)))?;
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        // One that ended meanwhile is no error.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
    Ok(())
}
