//! The guest agent (`[init.agent]`, docs/agent.md): Kata's agent API over
//! ttRPC on vsock, so a host can exec into a running container, stream its
//! output, signal it, copy files in and read them out.
//!
//! It is this binary exec'd under the name [`ARGV0`] as a VM-side service
//! that the init starts and restarts: nothing the agent does (or a peer
//! makes it do) can take PID 1 down. It is one thread around poll(2):
//! requests that must wait (WaitProcess, ReadStdout, ReadStderr) are
//! answered when their process ends or writes, so many connections and
//! processes are served at once, and the launcher's clone3 is never made
//! from a multi-threaded process.
//!
//! - [`rpc`]: the calls, request to response;
//! - [`exec`]: a process started inside a container;
//! - [`files`]: CopyFile and ReadFile beneath the allowed directories;
//! - [`notify`]: `READY=1` and `EXIT_STATUS=` to the host (sd_notify);
//! - [`resync`]: ReseedRandomDev and SetGuestDateTime, for clones.

pub mod exec;
pub mod files;
pub mod notify;
pub mod resync;
pub mod rpc;

use mkrootfs_config::agent::proto::{Request, Response, Status};
use mkrootfs_config::agent::ttrpc::{self, code, Frame};
use mkrootfs_config::agent::AgentConfig;
use mkrootfs_config::InitConfig;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use prost::Message;
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};

/// The `argv[0]` under which the init's binary runs as the agent: `main`
/// checks it before anything else.
pub const ARGV0: &str = "mkrootfs-agent";

/// Connections served at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 64;
/// Exec'd processes tracked at once.
const MAX_PROCESSES: usize = 1024;
/// A connection whose unsent responses exceed this is not read from
/// until they drain.
const MAX_QUEUED: usize = 8 << 20;

fn say(what: std::fmt::Arguments<'_>) {
    eprintln!("{ARGV0}: {what}");
}

/// The agent's whole life. Never returns; exits 1 when it cannot serve
/// (the init restarts it).
pub fn main() -> ! {
    let path = std::path::Path::new(mkrootfs_config::INIT_CONFIG_PATH);
    let mut cfg = match crate::load_config(path) {
        Ok(c) => c,
        Err(e) => {
            say(format_args!("{}", crate::log::Chain(&e)));
            crate::sys::ns::exit_child(1)
        }
    };
    // The VM's environment settings, as the services got them.
    crate::settings::load_for_agent(&mut cfg);
    let Some(conf) = cfg.agent.clone() else {
        say(format_args!("{} has no agent table", path.display()));
        crate::sys::ns::exit_child(1)
    };
    let listener = match crate::sys::agent::vsock_listen(conf.port) {
        Ok(l) => l,
        Err(e) => {
            say(format_args!("listen on vsock port {}: {e}", conf.port));
            crate::sys::ns::exit_child(1)
        }
    };
    say(format_args!("listening on vsock port {}", conf.port));
    notify::send("READY=1");
    let mut agent = Agent::new(cfg, conf, listener);
    loop {
        agent.turn(PollTimeout::NONE);
    }
}

/// Where a response goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub conn: u64,
    pub stream: u32,
}

struct Conn {
    id: u64,
    fd: OwnedFd,
    dec: ttrpc::Decoder,
    out: Vec<u8>,
}

/// A pending ReadStdout/ReadStderr.
struct Reader {
    to: Reply,
    len: u32,
}

/// One exec'd process.
pub struct Proc {
    pid: i32,
    pidfd: Option<OwnedFd>,
    status: Option<i32>,
    delivered: bool,
    stdin: Option<OwnedFd>,
    /// stdout, or the pty master.
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    tty: bool,
    waiters: Vec<Reply>,
    readers: [VecDeque<Reader>; 2],
}

/// (container id, exec id)
type Key = (String, String);

/// What a poll slot stands for.
#[derive(Clone, Debug)]
enum Slot {
    Listener,
    Conn(u64),
    Exit(Key),
    Stream(Key, usize),
}

/// The agent's state.
pub struct Agent {
    cfg: InitConfig,
    conf: AgentConfig,
    listener: Option<OwnedFd>,
    conns: Vec<Conn>,
    procs: BTreeMap<Key, Proc>,
    next_conn: u64,
}

impl Agent {
    pub fn new(cfg: InitConfig, conf: AgentConfig, listener: OwnedFd) -> Agent {
        Agent {
            cfg,
            conf,
            listener: Some(listener),
            conns: Vec::new(),
            procs: BTreeMap::new(),
            next_conn: 1,
        }
    }

    /// Serves `fd` as one more connection (in-process tests use a socket
    /// pair); returns its id.
    pub fn add_connection(&mut self, fd: OwnedFd) -> u64 {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.push(Conn {
            id,
            fd,
            dec: ttrpc::Decoder::new(ttrpc::MAX_PAYLOAD),
            out: Vec::new(),
        });
        id
    }

    /// One round: poll, then handle whatever is ready.
    pub fn turn(&mut self, timeout: PollTimeout) {
        let mut slots = Vec::new();
        let ready: Vec<(Slot, PollFlags)> = {
            let mut fds = Vec::new();
            if let Some(l) = &self.listener {
                fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
                slots.push(Slot::Listener);
            }
            for c in &self.conns {
                let mut f = PollFlags::empty();
                if c.out.len() < MAX_QUEUED {
                    f |= PollFlags::POLLIN;
                }
                if !c.out.is_empty() {
                    f |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(c.fd.as_fd(), f));
                slots.push(Slot::Conn(c.id));
            }
            for (key, p) in &self.procs {
                if let Some(fd) = &p.pidfd {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    slots.push(Slot::Exit(key.clone()));
                }
                for (i, fd) in [&p.stdout, &p.stderr].into_iter().enumerate() {
                    if let (Some(fd), false) = (fd, p.readers[i].is_empty()) {
                        fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                        slots.push(Slot::Stream(key.clone(), i));
                    }
                }
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    say(format_args!("poll: {e}"));
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            fds.iter()
                .zip(slots)
                .filter_map(|(fd, s)| {
                    let r = fd.revents().unwrap_or(PollFlags::empty());
                    (!r.is_empty()).then_some((s, r))
                })
                .collect()
        };
        for (slot, flags) in ready {
            match slot {
                Slot::Listener => self.accept(),
                Slot::Conn(id) => self.conn_ready(id, flags),
                Slot::Exit(key) => self.exited(&key),
                Slot::Stream(key, i) => self.stream_ready(&key, i),
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(l) = &self.listener else { return };
            match crate::sys::agent::accept(l.as_fd()) {
                Ok(Some(fd)) if self.conns.len() < MAX_CONNECTIONS => {
                    self.add_connection(fd);
                }
                Ok(Some(fd)) => {
                    say(format_args!(
                        "{MAX_CONNECTIONS} connections already: closing a new one"
                    ));
                    drop(fd);
                }
                Ok(None) => return,
                Err(e) => {
                    say(format_args!("accept: {e}"));
                    return;
                }
            }
        }
    }

    fn conn_ready(&mut self, id: u64, flags: PollFlags) {
        if flags.contains(PollFlags::POLLOUT) {
            self.flush(id);
        }
        if flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            let mut buf = vec![0u8; 256 << 10];
            let mut frames = Vec::new();
            let mut closed = false;
            if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                // A few reads per round keep large copies quick while the
                // other connections still get their turn.
                for _ in 0..8 {
                    match nix::unistd::read(c.fd.as_fd(), &mut buf) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(n) => {
                            c.dec.push(&buf[..n]);
                            while let Some(f) = c.dec.next_frame() {
                                frames.push(f);
                            }
                        }
                        Err(Errno::EAGAIN) | Err(Errno::EINTR) => break,
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            for f in frames {
                self.frame(id, f);
            }
            if closed {
                self.close(id);
            }
        }
    }

    /// One frame from connection `conn`.
    fn frame(&mut self, conn: u64, f: Frame) {
        match f {
            Frame::Oversized { stream, kind, len } => {
                if kind == ttrpc::TYPE_REQUEST {
                    let to = Reply { conn, stream };
                    self.respond(
                        to,
                        Err((
                            code::RESOURCE_EXHAUSTED,
                            format!(
                                "message length {len} exceeds maximum message size of {}",
                                ttrpc::MAX_PAYLOAD
                            ),
                        )),
                    );
                }
            }
            Frame::Message {
                stream,
                kind,
                payload,
                ..
            } => {
                if kind != ttrpc::TYPE_REQUEST {
                    // Streams from the client are not used by any call here.
                    return;
                }
                let to = Reply { conn, stream };
                match Request::decode(payload.as_slice()) {
                    Ok(req) => {
                        if let Some(result) = rpc::call(self, to, &req) {
                            self.respond(to, result);
                        }
                    }
                    Err(e) => self.respond(
                        to,
                        Err((code::INVALID_ARGUMENT, format!("decode request: {e}"))),
                    ),
                }
            }
        }
    }

    /// Queues the response on its connection (gone: dropped).
    pub fn respond(&mut self, to: Reply, result: Result<Vec<u8>, files::Refusal>) {
        let resp = match result {
            Ok(payload) => Response {
                status: Some(Status {
                    code: code::OK,
                    message: String::new(),
                }),
                payload,
            },
            Err((code, message)) => Response {
                status: Some(Status { code, message }),
                payload: Vec::new(),
            },
        };
        let Some(frame) = ttrpc::encode(to.stream, ttrpc::TYPE_RESPONSE, &resp.encode_to_vec())
        else {
            return;
        };
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == to.conn) {
            c.out.extend_from_slice(&frame);
        }
        self.flush(to.conn);
    }

    fn flush(&mut self, id: u64) {
        let mut closed = false;
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
            while !c.out.is_empty() {
                match nix::unistd::write(&c.fd, &c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if closed {
            self.close(id);
        }
    }

    /// Forgets a connection and every request of it still waiting.
    fn close(&mut self, id: u64) {
        self.conns.retain(|c| c.id != id);
        for p in self.procs.values_mut() {
            p.waiters.retain(|w| w.conn != id);
            for r in &mut p.readers {
                r.retain(|r| r.to.conn != id);
            }
        }
    }

    /// The process of `key` has ended: reap it, answer its waiters.
    fn exited(&mut self, key: &Key) {
        let Some(p) = self.procs.get_mut(key) else {
            return;
        };
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        let status = match waitpid(
            nix::unistd::Pid::from_raw(p.pid),
            Some(WaitPidFlag::WNOHANG),
        ) {
            Ok(WaitStatus::Exited(_, code)) => code,
            Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
            Ok(_) => return,
            // Not our child any more (cannot happen): report it as lost.
            Err(_) => 255,
        };
        p.status = Some(status);
        p.pidfd = None;
        let waiters = std::mem::take(&mut p.waiters);
        for w in waiters {
            self.deliver_status(key, w);
        }
    }

    /// Answers a WaitProcess with the status (known) of `key`.
    pub fn deliver_status(&mut self, key: &Key, to: Reply) {
        let Some(p) = self.procs.get_mut(key) else {
            return;
        };
        let Some(status) = p.status else { return };
        p.delivered = true;
        let body = mkrootfs_config::agent::proto::WaitProcessResponse { status };
        self.respond(to, Ok(body.encode_to_vec()));
        self.maybe_forget(key);
    }

    /// A process whose status was delivered and whose output is all read
    /// is forgotten.
    fn maybe_forget(&mut self, key: &Key) {
        if self
            .procs
            .get(key)
            .is_some_and(|p| p.delivered && p.stdout.is_none() && p.stderr.is_none())
        {
            self.procs.remove(key);
        }
    }

    /// Output (or its end) on stream `i` (0 stdout, 1 stderr) of `key`.
    fn stream_ready(&mut self, key: &Key, i: usize) {
        let Some(p) = self.procs.get_mut(key) else {
            return;
        };
        let Some(reader) = p.readers[i].front() else {
            return;
        };
        let fd = if i == 0 { &p.stdout } else { &p.stderr };
        let Some(fd) = fd else { return };
        let mut buf = vec![0u8; reader.len.clamp(1, files::MAX_READ) as usize];
        // Everything there is, up to the reader's length.
        let mut got = 0;
        let read = loop {
            match nix::unistd::read(fd.as_fd(), &mut buf[got..]) {
                Ok(n) if n > 0 => {
                    got += n;
                    if got == buf.len() {
                        break Ok(got);
                    }
                }
                Err(Errno::EINTR) => {}
                // What was read goes out first; the end (or the error)
                // is seen again on the next read.
                _ if got > 0 => break Ok(got),
                other => break other,
            }
        };
        match read {
            Ok(n) if n > 0 => {
                buf.truncate(n);
                let to = reader.to;
                p.readers[i].pop_front();
                let body = mkrootfs_config::agent::proto::ReadStreamResponse { data: buf };
                self.respond(to, Ok(body.encode_to_vec()));
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            // End of file (a pty master reads EIO once the slave is gone).
            _ => {
                if i == 0 {
                    p.stdout = None;
                } else {
                    p.stderr = None;
                }
                let readers = std::mem::take(&mut p.readers[i]);
                for r in readers {
                    self.respond(r.to, Err(eof()));
                }
                self.maybe_forget(key);
            }
        }
    }
}

/// The answer to a read at end of file: an error, as Kata's agent gives
/// ("read meet eof"); clients stop reading on it.
pub fn eof() -> files::Refusal {
    (code::OUT_OF_RANGE, "eof".into())
}

#[cfg(test)]
mod tests;
