//! The ttRPC client: requests on odd stream ids, responses matched back to
//! their stream, several calls in flight on one connection (an exec reads
//! stdout, stderr and waits at once, from one thread).

use super::proto::*;
use super::transport::{Stream, Target};
use super::ttrpc::{self, code, Frame};
use super::AgentError;
use prost::Message;
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// How to run an exec'd process.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// A pty as its stdio (`-t`).
    pub terminal: bool,
    /// Environment `KEY=value`; empty: the container's.
    pub env: Vec<String>,
    /// Working directory; empty: the container's.
    pub cwd: String,
    /// uid and gid; `None`: the container's user.
    pub user: Option<(u32, u32)>,
    /// Bytes for its stdin (`-i`), then end of file; `None`: stdin is
    /// closed at once.
    pub stdin: Option<Vec<u8>>,
    /// The exec id; empty: one is made up.
    pub exec_id: String,
}

/// A connection to the agent.
pub struct Client {
    stream: Stream,
    next: u32,
    dec: ttrpc::Decoder,
    /// Responses read while waiting for another stream.
    early: BTreeMap<u32, Response>,
}

/// Bytes per CopyFile or ReadFile call (a quarter of the frame limit).
pub const CHUNK: usize = 1 << 20;

impl Client {
    pub fn connect(target: &Target) -> Result<Client, AgentError> {
        Ok(Client::over(target.connect()?.0))
    }

    /// A client over any connected stream (tests use a socket pair).
    pub fn over(file: std::fs::File) -> Client {
        Client {
            stream: Stream(file),
            next: 1,
            dec: ttrpc::Decoder::new(ttrpc::MAX_PAYLOAD + 1024),
            early: BTreeMap::new(),
        }
    }

    /// Sends a request; returns its stream id.
    pub fn send(
        &mut self,
        service: &str,
        method: &str,
        m: &impl Message,
    ) -> Result<u32, AgentError> {
        let id = self.next;
        self.next = self.next.wrapping_add(2);
        let req = Request {
            service: service.into(),
            method: method.into(),
            payload: m.encode_to_vec(),
            timeout_nano: 0,
            metadata: vec![],
        };
        let frame = ttrpc::encode(id, ttrpc::TYPE_REQUEST, &req.encode_to_vec())
            .ok_or(AgentError::Io(std::io::ErrorKind::InvalidInput.into()))?;
        self.stream.0.write_all(&frame).map_err(AgentError::Io)?;
        Ok(id)
    }

    /// The next response, from whichever stream.
    pub fn recv(&mut self) -> Result<(u32, Response), AgentError> {
        if let Some((&id, _)) = self.early.iter().next() {
            if let Some(r) = self.early.remove(&id) {
                return Ok((id, r));
            }
        }
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match self.dec.next_frame() {
                Some(Frame::Message {
                    stream,
                    kind: ttrpc::TYPE_RESPONSE,
                    payload,
                    ..
                }) => {
                    let r = Response::decode(payload.as_slice()).map_err(|source| {
                        AgentError::Decode {
                            what: "response",
                            source,
                        }
                    })?;
                    return Ok((stream, r));
                }
                Some(Frame::Oversized { stream, len, .. }) => {
                    return Ok((
                        stream,
                        Response {
                            status: Some(Status {
                                code: code::RESOURCE_EXHAUSTED,
                                message: format!("response of {len} bytes over the limit"),
                            }),
                            payload: vec![],
                        },
                    ))
                }
                Some(_) => continue,
                None => {}
            }
            match self.stream.0.read(&mut buf) {
                Ok(0) => return Err(AgentError::Closed),
                Ok(n) => self.dec.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(AgentError::Io(e)),
            }
        }
    }

    /// The response of stream `id` (others read meanwhile are kept).
    pub fn wait_for(&mut self, id: u32) -> Result<Response, AgentError> {
        if let Some(r) = self.early.remove(&id) {
            return Ok(r);
        }
        loop {
            let (s, r) = self.recv()?;
            if s == id {
                return Ok(r);
            }
            self.early.insert(s, r);
        }
    }

    /// One call, waited for.
    pub fn call<R: Message + Default>(
        &mut self,
        service: &str,
        method: &str,
        m: &impl Message,
    ) -> Result<R, AgentError> {
        let id = self.send(service, method, m)?;
        let r = self.wait_for(id)?;
        payload(&format!("{service}/{method}"), r)
    }

    /// Runs `args` in `container` (`""`: the VM itself, where allowed),
    /// copies its output to `out` and `err` as it comes, and returns its
    /// status (128 + signal when killed).
    pub fn exec(
        &mut self,
        container: &str,
        args: &[&str],
        o: &ExecOptions,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<i32, AgentError> {
        let exec_id = self.start(container, args, o)?;
        self.finish(container, &exec_id, o.terminal, out, err)
    }

    /// ExecProcess (and the stdin given, then its end); returns the exec id.
    pub fn start(
        &mut self,
        container: &str,
        args: &[&str],
        o: &ExecOptions,
    ) -> Result<String, AgentError> {
        let exec_id = if o.exec_id.is_empty() {
            use std::time::{SystemTime, UNIX_EPOCH};
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("exec-{}-{t}", std::process::id())
        } else {
            o.exec_id.clone()
        };
        let req = ExecProcessRequest {
            container_id: container.into(),
            exec_id: exec_id.clone(),
            process: Some(Process {
                terminal: o.terminal,
                console_size: None,
                user: o.user.map(|(uid, gid)| User {
                    uid,
                    gid,
                    ..Default::default()
                }),
                args: args.iter().map(|s| s.to_string()).collect(),
                env: o.env.clone(),
                cwd: o.cwd.clone(),
                no_new_privileges: false,
            }),
        };
        let _: Empty = self.call(AGENT_SERVICE, "ExecProcess", &req)?;
        let id = |c: &str| WaitProcessRequest {
            container_id: c.into(),
            exec_id: exec_id.clone(),
        };
        if let Some(input) = &o.stdin {
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let n = rest.len().min(CHUNK);
                let w: WriteStreamResponse = self.call(
                    AGENT_SERVICE,
                    "WriteStdin",
                    &WriteStreamRequest {
                        container_id: container.into(),
                        exec_id: exec_id.clone(),
                        data: rest[..n].to_vec(),
                    },
                )?;
                if w.len == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                rest = &rest[w.len as usize..];
            }
        }
        let _: Empty = self.call(AGENT_SERVICE, "CloseStdin", &id(container))?;
        Ok(exec_id)
    }

    /// Streams the output of a started process and waits for its status.
    pub fn finish(
        &mut self,
        container: &str,
        exec_id: &str,
        terminal: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> Result<i32, AgentError> {
        let read = |len| ReadStreamRequest {
            container_id: container.into(),
            exec_id: exec_id.into(),
            len,
        };
        let mut streams: BTreeMap<u32, usize> = BTreeMap::new();
        streams.insert(
            self.send(AGENT_SERVICE, "ReadStdout", &read(CHUNK as u32))?,
            0,
        );
        if !terminal {
            streams.insert(
                self.send(AGENT_SERVICE, "ReadStderr", &read(CHUNK as u32))?,
                1,
            );
        }
        let wait = self.send(
            AGENT_SERVICE,
            "WaitProcess",
            &WaitProcessRequest {
                container_id: container.into(),
                exec_id: exec_id.into(),
            },
        )?;
        let mut status = None;
        while status.is_none() || !streams.is_empty() {
            let (id, r) = self.recv()?;
            if id == wait {
                let w: WaitProcessResponse = payload("WaitProcess", r)?;
                status = Some(w.status);
                continue;
            }
            let Some(which) = streams.remove(&id) else {
                continue;
            };
            // An error status is the end of that stream.
            if let Ok(data) = payload::<ReadStreamResponse>("ReadStream", r) {
                let sink: &mut dyn Write = if which == 0 { &mut *out } else { &mut *err };
                sink.write_all(&data.data).map_err(AgentError::Output)?;
                sink.flush().map_err(AgentError::Output)?;
                let method = if which == 0 {
                    "ReadStdout"
                } else {
                    "ReadStderr"
                };
                streams.insert(
                    self.send(AGENT_SERVICE, method, &read(CHUNK as u32))?,
                    which,
                );
            }
        }
        Ok(status.unwrap_or(255))
    }

    /// SignalProcess.
    pub fn signal(&mut self, container: &str, exec_id: &str, sig: u32) -> Result<(), AgentError> {
        let _: Empty = self.call(
            AGENT_SERVICE,
            "SignalProcess",
            &SignalProcessRequest {
                container_id: container.into(),
                exec_id: exec_id.into(),
                signal: sig,
            },
        )?;
        Ok(())
    }

    /// ReseedRandomDev: `data` (1 to 4096 bytes) mixed into the guest's CRNG.
    pub fn reseed(&mut self, data: &[u8]) -> Result<(), AgentError> {
        let _: Empty = self.call(
            AGENT_SERVICE,
            "ReseedRandomDev",
            &ReseedRandomDevRequest {
                data: data.to_vec(),
            },
        )?;
        Ok(())
    }

    /// SetGuestDateTime: the guest's wall clock to `time` (microseconds).
    pub fn set_time(&mut self, time: std::time::SystemTime) -> Result<(), AgentError> {
        let since = time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let _: Empty = self.call(
            AGENT_SERVICE,
            "SetGuestDateTime",
            &SetGuestDateTimeRequest {
                sec: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
                usec: i64::from(since.subsec_micros()),
            },
        )?;
        Ok(())
    }

    /// After a restore from a snapshot (docs/agent.md, "Clones"): 64 bytes
    /// of the host's `getrandom` into the guest's CRNG, then the host's
    /// time into its clock. Returns the time sent.
    pub fn resync(&mut self) -> Result<std::time::SystemTime, AgentError> {
        let mut seed = [0u8; RESYNC_SEED_BYTES];
        host_random(&mut seed).map_err(AgentError::Random)?;
        self.reseed(&seed)?;
        let now = std::time::SystemTime::now();
        self.set_time(now)?;
        Ok(now)
    }

    /// Writes `data` to the VM file `path` (CopyFile, in chunks, several in
    /// flight), with `mode` and owner `uid:gid`.
    pub fn copy_in(
        &mut self,
        data: &[u8],
        path: &str,
        mode: u32,
        owner: (i32, i32),
    ) -> Result<(), AgentError> {
        let mut in_flight = std::collections::VecDeque::new();
        let mut offset = 0usize;
        loop {
            let end = (offset + CHUNK).min(data.len());
            let req = CopyFileRequest {
                path: path.into(),
                file_size: data.len() as i64,
                file_mode: libc::S_IFREG | (mode & 0o7777),
                dir_mode: 0o755,
                uid: owner.0,
                gid: owner.1,
                offset: offset as i64,
                data: data[offset..end].to_vec(),
            };
            in_flight.push_back(self.send(AGENT_SERVICE, "CopyFile", &req)?);
            offset = end;
            while in_flight.len() >= 4 || (offset >= data.len() && !in_flight.is_empty()) {
                if let Some(id) = in_flight.pop_front() {
                    let r = self.wait_for(id)?;
                    let _: Empty = payload("CopyFile", r)?;
                }
            }
            if offset >= data.len() {
                return Ok(());
            }
        }
    }

    /// Reads the VM file `path` out (ReadFile, in chunks) into `out`;
    /// returns its size.
    pub fn read_file(&mut self, path: &str, out: &mut dyn Write) -> Result<u64, AgentError> {
        let mut offset = 0u64;
        loop {
            let r: ReadFileResponse = self.call(
                FILES_SERVICE,
                "ReadFile",
                &ReadFileRequest {
                    path: path.into(),
                    offset,
                    len: CHUNK as u32,
                },
            )?;
            out.write_all(&r.data).map_err(AgentError::Output)?;
            offset += r.data.len() as u64;
            if r.eof || r.data.is_empty() {
                return Ok(offset);
            }
        }
    }
}

/// The payload of a successful response, or its status as the error.
fn payload<R: Message + Default>(call: &str, r: Response) -> Result<R, AgentError> {
    if let Some(s) = r.status {
        if s.code != code::OK {
            return Err(AgentError::Status {
                call: call.into(),
                code: s.code,
                message: s.message,
            });
        }
    }
    R::decode(r.payload.as_slice()).map_err(|source| AgentError::Decode {
        what: "payload",
        source,
    })
}

/// How many bytes [`Client::resync`] sends: 512 bits, the kernel CRNG's own
/// reseed size (two BLAKE2s outputs) and then some.
pub const RESYNC_SEED_BYTES: usize = 64;

/// Fills `buf` from the host kernel's CRNG (getrandom(2), blocking until it
/// is initialised, which on a host it long is).
fn host_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: getrandom writes at most rest.len() bytes into rest.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}
