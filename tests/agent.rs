//! The guest agent booted under QEMU and driven through vhost-device-vsock,
//! the vhost-user backend that exposes guest vsock ports as a Unix socket
//! with Firecracker's hybrid-vsock handshake: the same host path a
//! Firecracker or Cloud Hypervisor user takes. The host side is the
//! `mkrootfs::agent` client and the `mkrootfs exec` command.

use mkrootfs::agent::proto::{self, AGENT_SERVICE, FILES_SERVICE, HEALTH_SERVICE};
use mkrootfs::agent::ttrpc::code;
use mkrootfs::agent::{AgentError, Client, ExecOptions, Target};
use mkrootfs_qemu::VmConfig;
use mkrootfs_tests::vsock::{connect, qemu_args, start_daemon, vhost_device_vsock};
use mkrootfs_tests::{build_image, chain, kernel, probe_binary, BUSYBOX_IMAGE};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn status_code(e: &AgentError) -> i32 {
    match e {
        AgentError::Status { code, .. } => *code,
        other => panic!("not a status: {}", chain(other)),
    }
}

fn run(c: &mut Client, container: &str, script: &str) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let st = c
        .exec(
            container,
            &["sh", "-c", script],
            &ExecOptions::default(),
            &mut out,
            &mut err,
        )
        .unwrap_or_else(|e| panic!("exec {script:?}: {}", chain(&e)));
    (
        st,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// The mkrootfs command, built once.
fn mkrootfs_command() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let st = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["build", "-q", "-p", "mkrootfs-cli"])
        .status()
        .expect("cargo build mkrootfs-cli");
    assert!(st.success());
    root.join("target/debug/mkrootfs")
}

#[test]
fn exec_signal_and_copy_through_vhost_device_vsock() {
    let Some(daemon_bin) = vhost_device_vsock() else {
        return;
    };
    let profile = format!(
        r#"{BUSYBOX_IMAGE}
[[files]]
dest = "/bin/probe"
src = "{probe}"
mode = "0755"
[[files]]
dest = "/srv/agent/README"
content = "files copied in land here\n"
[[symlinks]]
path = "/srv/agent/etc"
target = "/etc"

[modules]
kernel = "{modules}"
load = ["virtio_pci", "vmw_vsock_virtio_transport"]

[init]
[init.shutdown]
grace_ms = 500
[init.agent]
copy_dirs = ["/srv/agent"]
[[init.services]]
name = "box"
argv = ["sh", "-c", "while [ ! -e /tmp/stop ]; do sleep 0.2; done; echo box-stopped"]
container = {{}}
"#,
        probe = probe_binary().display(),
        modules = mkrootfs_tests::kernel_modules().display(),
    );
    let img = build_image("agent", &profile);
    let work = tempfile::tempdir().unwrap();
    let (_daemon, vhost, uds) = start_daemon(&daemon_bin, work.path());
    // The host's sd_notify socket: vhost-device-vsock forwards a guest's
    // connection to host port P to `<uds>_P`.
    let notify = std::os::unix::net::UnixListener::bind(format!("{}_9999", uds.display()))
        .expect("bind the notify socket");
    let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = notes.clone();
    std::thread::spawn(move || {
        for conn in notify.incoming() {
            let mut text = String::new();
            if conn.and_then(|mut c| c.read_to_string(&mut text)).is_ok() {
                if let Ok(mut v) = seen.lock() {
                    v.push(text);
                }
            }
        }
    });
    let mut cfg = VmConfig::new(kernel().vmlinuz.clone(), img);
    cfg.append = "quiet systemd.set_credential=vmm.notify_socket:vsock-stream:2:9999".into();
    cfg.memory_mb = 512;
    cfg.timeout = Duration::from_secs(420);
    cfg.extra_args = qemu_args(&vhost, cfg.memory_mb);
    let qemu = std::thread::spawn(move || {
        mkrootfs_qemu::run(&cfg).unwrap_or_else(|e| panic!("run QEMU: {}", chain(&e)))
    });
    let target = Target::Hybrid {
        uds: uds.clone(),
        port: 1024,
    };
    let mut c = connect(&target, &qemu);

    // Health and details, with Kata's names.
    let h: proto::HealthCheckResponse = c
        .call(HEALTH_SERVICE, "Check", &proto::CheckRequest::default())
        .unwrap();
    assert_eq!(h.status, 1);
    let d: proto::GuestDetailsResponse = c
        .call(
            AGENT_SERVICE,
            "GetGuestDetails",
            &proto::GuestDetailsRequest::default(),
        )
        .unwrap();
    assert!(d.agent_details.unwrap().supports_seccomp);

    // READY=1 came over vsock before the first exec.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !notes.lock().unwrap().iter().any(|n| n == "READY=1") {
        assert!(
            Instant::now() < deadline,
            "no READY=1: {:?}",
            notes.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Output, errors and the status of a command in the container.
    let (st, out, err) = run(&mut c, "box", "echo out; echo err >&2; exit 7");
    assert_eq!((st, out.as_str(), err.as_str()), (7, "out\n", "err\n"));

    // The exec'd process is inside the container: its namespaces are
    // those of the container's PID 1, its cgroup is the container's root
    // cgroup, Docker's capabilities and the seccomp filter apply.
    let (st, out, err) = run(
        &mut c,
        "box",
        "for n in mnt uts ipc net pid cgroup user; do \
           [ \"$(readlink /proc/self/ns/$n)\" = \"$(readlink /proc/1/ns/$n)\" ] && echo same-$n; done; \
         cat /proc/self/cgroup; hostname; grep -E '^(Seccomp|CapEff|NoNewPrivs):' /proc/self/status; \
         probe attack vsock",
    );
    assert_eq!(st, 0, "{out}{err}");
    for want in [
        "same-mnt",
        "same-uts",
        "same-ipc",
        "same-net",
        "same-pid",
        "same-cgroup",
        "same-user",
        "0::/\n",
        "box\n",
        "Seccomp:\t2",
        "CapEff:\t00000000a80425fb",
        "NoNewPrivs:\t1",
        "PROBE attack.vsock=EPERM",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}{err}");
    }

    // The same through the command line: output and status are its own.
    let cli = mkrootfs_command();
    let o = Command::new(&cli)
        .arg("exec")
        .arg(&uds)
        .args(["box", "--", "sh", "-c", "echo out; echo err >&2; exit 7"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // And stdin with -i.
    let mut child = Command::new(&cli)
        .arg("exec")
        .arg(&uds)
        .args(["box", "-i", "--", "sh", "-c", "wc -c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[b'x'; 100_000])
        .unwrap();
    let mut wc = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut wc)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(wc.trim(), "100000");

    // -t: a pty of the container's own devpts.
    let mut out = Vec::new();
    let tty = ExecOptions {
        terminal: true,
        ..ExecOptions::default()
    };
    let st = c
        .exec(
            "box",
            &["sh", "-c", "tty; exit 3"],
            &tty,
            &mut out,
            &mut Vec::new(),
        )
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(st, 3, "{out}");
    assert!(out.starts_with("/dev/pts/"), "{out}");

    // SignalProcess ends a long-running exec; WaitProcess gives 128+15.
    let opts = ExecOptions {
        exec_id: "sleeper".into(),
        ..ExecOptions::default()
    };
    c.start("box", &["sleep", "1000"], &opts).unwrap();
    c.signal("box", "sleeper", 15).unwrap();
    let st = c
        .finish("box", "sleeper", false, &mut Vec::new(), &mut Vec::new())
        .unwrap();
    assert_eq!(st, 143);
    // An empty exec_id signals every process of the container (Kata's
    // special case); its PID 1 has no handler for SIGUSR1 and stays.
    let opts = ExecOptions {
        exec_id: "sleeper2".into(),
        ..ExecOptions::default()
    };
    c.start("box", &["sleep", "1000"], &opts).unwrap();
    let _: proto::Empty = c
        .call(
            AGENT_SERVICE,
            "SignalProcess",
            &proto::SignalProcessRequest {
                container_id: "box".into(),
                exec_id: String::new(),
                signal: 10,
            },
        )
        .unwrap();
    let st = c
        .finish("box", "sleeper2", false, &mut Vec::new(), &mut Vec::new())
        .unwrap();
    assert_eq!(st, 138);

    // A 64 MiB file in, then out again, byte-identical.
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let t = Instant::now();
    c.copy_in(&data, "/srv/agent/big/blob", 0o640, (0, 0))
        .unwrap_or_else(|e| panic!("copy in: {}", chain(&e)));
    let copy_in = t.elapsed();
    let mut back = Vec::new();
    let t = Instant::now();
    assert_eq!(
        c.read_file("/srv/agent/big/blob", &mut back).unwrap(),
        data.len() as u64
    );
    let copy_out = t.elapsed();
    assert!(back == data, "the file read back differs");
    eprintln!("64 MiB: in {copy_in:?}, out {copy_out:?}");

    // Refusals, each a status that names the reason; the connection
    // keeps serving.
    for (path, want) in [
        ("/etc/passwd", code::PERMISSION_DENIED),
        ("/srv/agent/../etc/passwd", code::INVALID_ARGUMENT),
        ("/srv/agent/etc/passwd", code::PERMISSION_DENIED),
        ("relative", code::INVALID_ARGUMENT),
    ] {
        let e = c.copy_in(b"x", path, 0o644, (0, 0)).unwrap_err();
        assert_eq!(status_code(&e), want, "{path}: {}", chain(&e));
        let e = c.read_file(path, &mut Vec::new()).unwrap_err();
        assert_eq!(status_code(&e), want, "{path}: {}", chain(&e));
    }
    let mut out = Vec::new();
    let e = c
        .exec(
            "nosuch",
            &["true"],
            &ExecOptions::default(),
            &mut out,
            &mut Vec::new(),
        )
        .unwrap_err();
    assert_eq!(status_code(&e), code::NOT_FOUND, "{}", chain(&e));
    let e = c
        .exec(
            "",
            &["true"],
            &ExecOptions::default(),
            &mut out,
            &mut Vec::new(),
        )
        .unwrap_err();
    assert_eq!(status_code(&e), code::PERMISSION_DENIED, "{}", chain(&e));
    let e = c
        .call::<proto::Empty>(AGENT_SERVICE, "CreateContainer", &proto::Empty {})
        .unwrap_err();
    assert_eq!(status_code(&e), code::UNIMPLEMENTED);
    let e = c
        .call::<proto::Empty>(
            FILES_SERVICE,
            "ReadFile",
            &proto::WaitProcessResponse { status: -1 },
        )
        .unwrap_err();
    assert_eq!(status_code(&e), code::INVALID_ARGUMENT, "{}", chain(&e));

    // A hostile client: a frame over the limit and a payload that is no
    // request, on a connection of its own; the agent answers each with a
    // status and both connections go on.
    let mut raw = target.connect_raw().unwrap();
    let big = mkrootfs::agent::ttrpc::header(5 << 20, 1, 1, 0);
    raw.write_all(&big).unwrap();
    raw.write_all(&vec![0u8; 5 << 20]).unwrap();
    raw.write_all(&mkrootfs::agent::ttrpc::encode(3, 1, &[0x0a, 0x7f]).unwrap())
        .unwrap();
    let mut raw_client = Client::over(raw);
    let (s1, r1) = raw_client.recv().unwrap();
    let (s2, r2) = raw_client.recv().unwrap();
    assert_eq!((s1, s2), (1, 3));
    assert_eq!(r1.status.unwrap().code, code::RESOURCE_EXHAUSTED);
    assert_eq!(r2.status.unwrap().code, code::INVALID_ARGUMENT);
    let h: proto::HealthCheckResponse = raw_client
        .call(HEALTH_SERVICE, "Check", &proto::CheckRequest::default())
        .unwrap();
    assert_eq!(h.status, 1);

    // bench: exec round trip (100 `true`) and stdout throughput (64 MiB),
    // printed for bench/results.md.
    let mut times = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let st = c
            .exec(
                "box",
                &["true"],
                &ExecOptions::default(),
                &mut Vec::new(),
                &mut Vec::new(),
            )
            .unwrap();
        times.push(t.elapsed());
        assert_eq!(st, 0);
    }
    times.sort();
    let mut sink = CountingSink(0);
    let t = Instant::now();
    let st = c
        .exec(
            "box",
            &["head", "-c", "67108864", "/dev/zero"],
            &ExecOptions::default(),
            &mut sink,
            &mut Vec::new(),
        )
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!((st, sink.0), (0, 64 << 20));
    eprintln!(
        "BENCH exec round trip p50={:?} p99={:?}; stdout {:.1} MB/s; CopyFile in {:.1} MB/s; ReadFile out {:.1} MB/s",
        times[49],
        times[98],
        67.108864 / secs,
        67.108864 / copy_in.as_secs_f64(),
        67.108864 / copy_out.as_secs_f64(),
    );

    // containerd's ttRPC client (the `ttrpc` crate) over the same hybrid
    // socket: Health.Check and an exec's WaitProcess with Kata's messages.
    {
        use prost::Message;
        use std::os::fd::IntoRawFd;
        let fd = target.connect_raw().unwrap().into_raw_fd();
        let client = ttrpc::sync::Client::new(fd).unwrap();
        let call = |service: &str, method: &str, payload: Vec<u8>| {
            let mut req = ttrpc::Request::new();
            req.service = service.into();
            req.method = method.into();
            req.payload = payload;
            req.timeout_nano = 60_000_000_000;
            let r = client.request(req).unwrap();
            assert_eq!(r.status.code.value(), 0, "{}", r.status.message);
            r.payload
        };
        let h = call(HEALTH_SERVICE, "Check", Vec::new());
        assert_eq!(
            proto::HealthCheckResponse::decode(h.as_slice())
                .unwrap()
                .status,
            1
        );
        let exec = proto::ExecProcessRequest {
            container_id: "box".into(),
            exec_id: "ttrpc".into(),
            process: Some(proto::Process {
                args: vec!["sh".into(), "-c".into(), "exit 9".into()],
                ..Default::default()
            }),
        };
        call(AGENT_SERVICE, "ExecProcess", exec.encode_to_vec());
        let wait = proto::WaitProcessRequest {
            container_id: "box".into(),
            exec_id: "ttrpc".into(),
        };
        let w = call(AGENT_SERVICE, "WaitProcess", wait.encode_to_vec());
        assert_eq!(
            proto::WaitProcessResponse::decode(w.as_slice())
                .unwrap()
                .status,
            9
        );
    }

    // End the guest from inside the container: its main service ends 0.
    let (st, _, _) = run(&mut c, "box", "touch /tmp/stop");
    assert_eq!(st, 0);
    let outcome = qemu.join().unwrap();
    assert!(
        !outcome.timed_out,
        "timed out; console:\n{}",
        outcome.console
    );
    assert!(
        outcome.console.contains("listening on vsock port 1024"),
        "{}",
        outcome.console
    );
    assert_eq!(outcome.exit_code(), 0, "console:\n{}", outcome.console);
    // The result came over vsock as well as on the console.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !notes.lock().unwrap().iter().any(|n| n == "EXIT_STATUS=0") {
        assert!(
            Instant::now() < deadline,
            "no EXIT_STATUS=0: {:?}",
            notes.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Counts what is written to it.
struct CountingSink(usize);

impl Write for CountingSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `mkrootfs run --vsock SOCKET` starts the backend itself; `mkrootfs exec`
/// and `mkrootfs cp` reach the guest through SOCKET while it runs.
#[test]
fn run_exposes_the_socket_for_exec_and_cp() {
    if vhost_device_vsock().is_none() {
        return;
    }
    let profile = format!(
        r#"{BUSYBOX_IMAGE}
[[files]]
dest = "/srv/agent/README"
content = "in\n"
[modules]
kernel = "{modules}"
load = ["virtio_pci", "vmw_vsock_virtio_transport"]
[init]
[init.shutdown]
grace_ms = 500
[init.agent]
copy_dirs = ["/srv/agent"]
[[init.services]]
name = "box"
argv = ["sh", "-c", "while [ ! -e /tmp/stop ]; do sleep 0.2; done; exit 5"]
container = {{}}
"#,
        modules = mkrootfs_tests::kernel_modules().display(),
    );
    let img = build_image("agent-run", &profile);
    let cli = mkrootfs_command();
    let work = tempfile::tempdir().unwrap();
    let uds = work.path().join("vm.vsock");
    // vhost-device-vsock is found on PATH by `mkrootfs run`.
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(bin) = vhost_device_vsock().and_then(|p| p.parent().map(Path::to_path_buf)) {
        path =
            std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path))).unwrap();
    }
    let mut run = Command::new(&cli)
        .env("PATH", &path)
        .arg("run")
        .arg(&img)
        .arg("--kernel")
        .arg(&kernel().vmlinuz)
        .arg("--vsock")
        .arg(&uds)
        .args(["--timeout", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exec = |args: &[&str]| {
        Command::new(&cli)
            .arg("exec")
            .arg(&uds)
            .arg("box")
            .arg("--")
            .args(args)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let o = exec(&["hostname"]);
        if o.status.success() {
            assert_eq!(String::from_utf8_lossy(&o.stdout), "box\n");
            break;
        }
        assert!(
            run.try_wait().unwrap().is_none(),
            "mkrootfs run ended early"
        );
        assert!(Instant::now() < deadline, "no exec: {o:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let local = work.path().join("local");
    std::fs::write(&local, b"round trip\n").unwrap();
    let cp = |a: &str, b: &str| {
        Command::new(&cli)
            .arg("cp")
            .arg(&uds)
            .args([a, b])
            .status()
            .unwrap()
    };
    assert!(cp(&local.display().to_string(), ":/srv/agent/x").success());
    let back = work.path().join("back");
    assert!(cp(":/srv/agent/x", &back.display().to_string()).success());
    assert_eq!(std::fs::read(&back).unwrap(), b"round trip\n");
    assert!(!cp(&local.display().to_string(), ":/etc/x").success());
    assert!(exec(&["touch", "/tmp/stop"]).status.success());
    let st = run.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = run.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(err.contains("guest vsock at"), "{err}");
    assert_eq!(st.code(), Some(5), "{err}");
}

/// `mkrootfs run --vsock S --wait-ready` returns once READY=1 came over
/// vsock: the first exec right after it works, no retry.
#[test]
fn run_wait_ready_returns_once_the_agent_listens() {
    let Some(daemon) = vhost_device_vsock() else {
        return;
    };
    let img = build_image(
        "agent-ready",
        &format!(
            r#"{BUSYBOX_IMAGE}
[modules]
kernel = "{modules}"
load = ["virtio_pci", "vmw_vsock_virtio_transport"]
[init]
[init.shutdown]
grace_ms = 500
[init.agent]
[[init.services]]
name = "box"
argv = ["sh", "-c", "while [ ! -e /tmp/stop ]; do sleep 0.2; done; exit 6"]
container = {{}}
"#,
            modules = mkrootfs_tests::kernel_modules().display(),
        ),
    );
    let cli = mkrootfs_command();
    let work = tempfile::tempdir().unwrap();
    let uds = work.path().join("vm.vsock");
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(bin) = daemon.parent() {
        let dirs = std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path));
        path = std::env::join_paths(dirs.collect::<Vec<_>>()).unwrap();
    }
    let st = Command::new(&cli)
        .env("PATH", &path)
        .arg("run")
        .arg(&img)
        .arg("--kernel")
        .arg(&kernel().vmlinuz)
        .arg("--vsock")
        .arg(&uds)
        .args(["--wait-ready", "--timeout", "300"])
        .status()
        .unwrap();
    assert!(st.success(), "{st}");
    let o = Command::new(&cli)
        .arg("exec")
        .arg(&uds)
        .args(["box", "--", "sh", "-c", "echo ready; touch /tmp/stop"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ready\n", "{o:?}");
    let log = PathBuf::from(format!("{}.log", uds.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("RESULT status=6") {
            break;
        }
        assert!(Instant::now() < deadline, "no RESULT in:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
