//! The agent in-process: a socket pair as the connection, the test as the
//! client, `turn` driven by hand. Exec runs in the test host itself
//! (`allow_vm_exec`), so it needs root, as the launcher's own tests.

use super::*;
use mkrootfs_config::agent::proto::{self, *};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

struct Harness {
    agent: Agent,
    client: UnixStream,
    dec: ttrpc::Decoder,
    next: u32,
}

impl Harness {
    fn new(copy_dirs: Vec<String>) -> Harness {
        let cfg: InitConfig =
            serde_json::from_str(r#"{"services":[{"argv":["/bin/true"]}]}"#).unwrap_or_default();
        let conf = AgentConfig {
            allow_vm_exec: true,
            copy_dirs,
            ..AgentConfig::default()
        };
        let (ours, theirs) = UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        let mut agent = Agent {
            cfg,
            conf,
            listener: None,
            conns: Vec::new(),
            procs: BTreeMap::new(),
            next_conn: 1,
        };
        agent.add_connection(OwnedFd::from(theirs));
        ours.set_nonblocking(true).unwrap();
        Harness {
            agent,
            client: ours,
            dec: ttrpc::Decoder::new(ttrpc::MAX_PAYLOAD),
            next: 1,
        }
    }

    /// Writes everything, running the agent whenever the socket is full.
    fn send_raw(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.client.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.agent.turn(PollTimeout::from(5u8));
                }
                Err(e) => panic!("write: {e}"),
            }
        }
    }

    fn send(&mut self, service: &str, method: &str, m: &impl Message) -> u32 {
        let id = self.next;
        self.next += 2;
        let req = Request {
            service: service.into(),
            method: method.into(),
            payload: m.encode_to_vec(),
            timeout_nano: 0,
            metadata: vec![],
        };
        let f = ttrpc::encode(id, ttrpc::TYPE_REQUEST, &req.encode_to_vec()).unwrap();
        self.send_raw(&f);
        id
    }

    /// Runs the agent until a response arrives.
    fn recv(&mut self) -> (u32, Response) {
        let mut buf = [0u8; 65536];
        for _ in 0..2000 {
            if let Some(Frame::Message {
                stream, payload, ..
            }) = self.dec.next_frame()
            {
                return (stream, Response::decode(payload.as_slice()).unwrap());
            }
            self.agent.turn(PollTimeout::from(5u8));
            while let Ok(n) = self.client.read(&mut buf) {
                if n == 0 {
                    break;
                }
                self.dec.push(&buf[..n]);
            }
        }
        panic!("no response");
    }

    fn call<R: Message + Default>(
        &mut self,
        service: &str,
        method: &str,
        m: &impl Message,
    ) -> Result<R, (i32, String)> {
        let id = self.send(service, method, m);
        let (s, r) = self.recv();
        assert_eq!(s, id);
        let st = r.status.unwrap_or_default();
        if st.code != 0 {
            return Err((st.code, st.message));
        }
        Ok(R::decode(r.payload.as_slice()).unwrap())
    }

    /// Exec in the VM (here: the host), then its output and status.
    fn exec(&mut self, id: &str, args: &[&str]) -> (String, String, i32) {
        let req = ExecProcessRequest {
            container_id: String::new(),
            exec_id: id.into(),
            process: Some(proto::Process {
                args: args.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
        };
        let _: Empty = self.call(AGENT_SERVICE, "ExecProcess", &req).unwrap();
        let read = |len| ReadStreamRequest {
            container_id: String::new(),
            exec_id: id.into(),
            len,
        };
        let mut out = [Vec::new(), Vec::new()];
        let mut pending = BTreeMap::new();
        pending.insert(self.send(AGENT_SERVICE, "ReadStdout", &read(7)), 0);
        pending.insert(self.send(AGENT_SERVICE, "ReadStderr", &read(7)), 1);
        let wait = self.send(
            AGENT_SERVICE,
            "WaitProcess",
            &WaitProcessRequest {
                container_id: String::new(),
                exec_id: id.into(),
            },
        );
        let mut status = None;
        while status.is_none() || !pending.is_empty() {
            let (s, r) = self.recv();
            let st = r.status.clone().unwrap_or_default();
            if s == wait {
                status = Some(
                    WaitProcessResponse::decode(r.payload.as_slice())
                        .unwrap()
                        .status,
                );
            } else if let Some(i) = pending.remove(&s) {
                if st.code == 0 {
                    let d = ReadStreamResponse::decode(r.payload.as_slice()).unwrap();
                    out[i].extend(d.data);
                    let m = if i == 0 { "ReadStdout" } else { "ReadStderr" };
                    pending.insert(self.send(AGENT_SERVICE, m, &read(7)), i);
                } else {
                    assert_eq!(st.message, "eof");
                }
            }
        }
        let [o, e] = out;
        (
            String::from_utf8(o).unwrap(),
            String::from_utf8(e).unwrap(),
            status.unwrap(),
        )
    }
}

fn root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: exec needs root");
        return false;
    }
    true
}

const CHILD_ENV: &str = "MKROOTFS_AGENT_EXEC_CHILD";

/// The exec tests' body, run only in a re-executed single-threaded test
/// process (the launcher's clone3 must not copy a multi-threaded process):
/// see `exec_in_a_single_threaded_child`.
#[test]
#[ignore = "run by exec_in_a_single_threaded_child in a child process"]
fn exec_child() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "run by exec_in_a_single_threaded_child"
    );
    exec_streams_output_and_status();
    the_exec_child_holds_no_agent_descriptor();
    println!("AGENT-EXEC-CHILD-OK");
}

#[test]
fn exec_in_a_single_threaded_child() {
    if !root() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "agent::tests::exec_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("AGENT-EXEC-CHILD-OK"),
        "{stdout}\n{stderr}"
    );
}

fn exec_streams_output_and_status() {
    let mut h = Harness::new(vec![]);
    let (o, e, st) = h.exec(
        "one",
        &["/bin/sh", "-c", "echo out; echo a longer error >&2; exit 7"],
    );
    assert_eq!(
        (o.as_str(), e.as_str(), st),
        ("out\n", "a longer error\n", 7)
    );
    // Forgotten once waited for and read to the end.
    assert!(h.agent.procs.is_empty());
    // A signal: 128 + 9.
    let (_, _, st) = h.exec("two", &["/bin/sh", "-c", "kill -9 $$"]);
    assert_eq!(st, 137);
    // A missing program is a NOT_FOUND status naming it.
    let req = ExecProcessRequest {
        container_id: String::new(),
        exec_id: "three".into(),
        process: Some(proto::Process {
            args: vec!["/nonexistent/prog".into()],
            ..Default::default()
        }),
    };
    let e = h
        .call::<Empty>(AGENT_SERVICE, "ExecProcess", &req)
        .unwrap_err();
    assert_eq!(e.0, code::NOT_FOUND, "{e:?}");
    assert!(e.1.contains("/nonexistent/prog"), "{e:?}");
}

fn the_exec_child_holds_no_agent_descriptor() {
    let mut h = Harness::new(vec![]);
    // Only 0, 1, 2 (and the directory ls itself opens) are open in it.
    let (o, _, st) = h.exec("fds", &["/bin/sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]);
    assert_eq!(st, 0);
    let fds: Vec<i32> = o
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(fds.iter().filter(|&&fd| fd > 3).count() == 0, "{o}");
}

#[test]
fn malformed_input_gets_a_status_and_the_connection_goes_on() {
    let mut h = Harness::new(vec![]);
    // A payload that is no Request.
    h.send_raw(&ttrpc::encode(1, ttrpc::TYPE_REQUEST, &[0x0a, 0x7f]).unwrap());
    let (s, r) = h.recv();
    assert_eq!((s, r.status.unwrap().code), (1, code::INVALID_ARGUMENT));
    // A frame over the limit: skipped, answered, not buffered.
    h.send_raw(&ttrpc::header(5 << 20, 3, ttrpc::TYPE_REQUEST, 0));
    let (s, r) = h.recv();
    assert_eq!((s, r.status.unwrap().code), (3, code::RESOURCE_EXHAUSTED));
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..5 {
        h.send_raw(&chunk);
        h.agent.turn(PollTimeout::from(5u8));
    }
    // Unknown calls, processes and containers.
    let e = h
        .call::<Empty>(AGENT_SERVICE, "CreateContainer", &Empty {})
        .unwrap_err();
    assert_eq!(e.0, code::UNIMPLEMENTED);
    let e = h
        .call::<WaitProcessResponse>(
            AGENT_SERVICE,
            "WaitProcess",
            &WaitProcessRequest {
                container_id: "c".into(),
                exec_id: "nope".into(),
            },
        )
        .unwrap_err();
    assert_eq!(e.0, code::NOT_FOUND);
    let r: HealthCheckResponse = h
        .call(HEALTH_SERVICE, "Check", &CheckRequest::default())
        .unwrap();
    assert_eq!(r.status, 1);
    let v: VersionCheckResponse = h
        .call(HEALTH_SERVICE, "Version", &CheckRequest::default())
        .unwrap();
    assert_eq!(v.agent_version, env!("CARGO_PKG_VERSION"));
}

/// A clone's resync calls over the wire: refusals before any system call
/// (the host's clock and pool are never touched here).
#[test]
fn resync_calls_refuse_bad_input_by_name() {
    let mut h = Harness::new(vec![]);
    let e = h
        .call::<Empty>(
            AGENT_SERVICE,
            "ReseedRandomDev",
            &ReseedRandomDevRequest {
                data: vec![0xaa; 4097],
            },
        )
        .unwrap_err();
    assert_eq!(
        e,
        (
            code::INVALID_ARGUMENT,
            "ReseedRandomDev: 4097 bytes (1 to 4096)".into()
        )
    );
    let e = h
        .call::<Empty>(
            AGENT_SERVICE,
            "SetGuestDateTime",
            &SetGuestDateTimeRequest {
                sec: 1_700_000_000,
                usec: -1,
            },
        )
        .unwrap_err();
    assert_eq!(
        e,
        (
            code::INVALID_ARGUMENT,
            "SetGuestDateTime: sec 1700000000 usec -1 (sec >= 0, usec 0 to 999999)".into()
        )
    );
    // A payload of the wrong shape (field 2 as a varint, not bytes).
    let e = h
        .call::<Empty>(
            AGENT_SERVICE,
            "ReseedRandomDev",
            &SetGuestDateTimeRequest { sec: 0, usec: 3 },
        )
        .unwrap_err();
    assert_eq!(e.0, code::INVALID_ARGUMENT);
    assert!(
        e.1.starts_with("decode ReseedRandomDevRequest: "),
        "{}",
        e.1
    );
}

/// containerd's ttRPC for Rust (the `ttrpc` crate, sync client) as the
/// client: its framing, stream ids, Request and Response, and status codes
/// against ours; the payloads are Kata's messages as proto.rs defines them.
#[test]
fn containerds_ttrpc_client_talks_to_the_agent() {
    use std::os::fd::IntoRawFd;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().display().to_string();
    let mut h = Harness::new(vec![dir.clone()]);
    let (spare, _) = UnixStream::pair().unwrap();
    let ours = std::mem::replace(&mut h.client, spare);
    ours.set_nonblocking(false).unwrap();
    let client = ::ttrpc::sync::Client::new(ours.into_raw_fd()).unwrap();
    let call = move |service: &str, method: &str, payload: Vec<u8>| {
        let mut req = ::ttrpc::Request::new();
        req.service = service.into();
        req.method = method.into();
        req.payload = payload;
        req.timeout_nano = 10_000_000_000;
        client.request(req).map(|r| {
            let st = r.status.clone().unwrap_or_default();
            (st.code.value(), st.message.clone(), r.payload)
        })
    };
    let path = format!("{dir}/f");
    let worker = std::thread::spawn(move || {
        let mut out = Vec::new();
        out.push(call(
            HEALTH_SERVICE,
            "Check",
            CheckRequest::default().encode_to_vec(),
        ));
        let copy = CopyFileRequest {
            path: path.clone(),
            file_size: 5,
            file_mode: 0o100644,
            dir_mode: 0o755,
            uid: -1,
            gid: -1,
            offset: 0,
            data: b"hello".to_vec(),
        };
        out.push(call(AGENT_SERVICE, "CopyFile", copy.encode_to_vec()));
        let read = ReadFileRequest {
            path,
            offset: 0,
            len: 100,
        };
        out.push(call(FILES_SERVICE, "ReadFile", read.encode_to_vec()));
        let wait = WaitProcessRequest {
            container_id: "c".into(),
            exec_id: "e".into(),
        };
        out.push(call(AGENT_SERVICE, "WaitProcess", wait.encode_to_vec()));
        out
    });
    while !worker.is_finished() {
        h.agent.turn(PollTimeout::from(5u8));
    }
    let out = worker.join().unwrap();
    let ok = |i: usize| match &out[i] {
        Ok((0, _, p)) => p.clone(),
        other => panic!("call {i}: {other:?}"),
    };
    assert_eq!(
        HealthCheckResponse::decode(ok(0).as_slice())
            .unwrap()
            .status,
        1
    );
    ok(1);
    let r = ReadFileResponse::decode(ok(2).as_slice()).unwrap();
    assert_eq!((r.data.as_slice(), r.eof), (&b"hello"[..], true));
    // A status the ttrpc crate hands back (as an error or in the response).
    match &out[3] {
        Ok((c, m, _)) => assert_eq!(*c, code::NOT_FOUND, "{m}"),
        Err(e) => assert!(e.to_string().contains("no process"), "{e}"),
    }
}
