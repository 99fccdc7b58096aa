//! Per-VM settings booted (docs/init.md "Per-VM settings"): one image,
//! three config drives written by `mkrootfs config-drive`, a command-line
//! value over a drive's, a secret that reaches a container's file and
//! never the console, a key outside `[init] overridable` refused, and
//! Firecracker's MMDS v2 served by a host process on 127.0.0.1, reached
//! through QEMU user networking's `guestfwd`. Three boots.

use mkrootfs_qemu::{Disk, GuestFwd, Net, Nic, Outcome, VmConfig};
use mkrootfs_tests::{
    assert_console, build_image, chain, kernel, kernel_modules, mkrootfs_cli, work_dir,
    BUSYBOX_IMAGE,
};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the guest finds MMDS (through guestfwd): an address of QEMU's
/// user network that nothing else answers.
const MMDS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);

fn profile() -> String {
    format!(
        r##"{BUSYBOX_IMAGE}
[modules]
kernel = "{modules}"
load = ["virtio_pci", "virtio_blk", "vmw_vsock_virtio_transport"]

[[dirs]]
path = "/srv/done"
mode = "0777"

[init]
hostname = "image"
env = {{ COLOUR = "image", FROM = "image" }}
overridable = ["hostname", "network", "env", "secrets"]

[[init.network]]
name = "eth0"
dhcp = true
gateway = "10.0.2.2"
timeout_ms = 60000

[init.mmds]
address = "{MMDS_ADDR}"
timeout_ms = 3000

[init.shutdown]
grace_ms = 500

[init.agent]

[[init.services]]
name = "box"
user = "1000"
argv = ["sh", "-c", "echo \"BOX colour=$COLOUR from=$FROM\"; if [ -e /run/secrets/token ]; then echo \"BOX secret_sha256=$(sha256sum /run/secrets/token | cut -d' ' -f1) owner=$(stat -c '%a %u' /run/secrets/token)\"; cat /run/secrets/token > /dev/null && echo BOX secret_readable; echo x 2>/dev/null > /run/secrets/token || echo BOX secret_readonly; fi; touch /done/box; exec sleep 600"]
container = {{ root = "/", mounts = [{{ type = "bind", source = "/srv/done", target = "/done" }}] }}

[[init.services]]
name = "vm"
main = true
argv = ["sh", "-c", "i=0; while [ ! -e /srv/done/box ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done; echo \"VM host=$(hostname) colour=$COLOUR from=$FROM mmds=$MMDS\"; i=0; while [ -n \"$WAIT_AGENT\" ] && [ ! -e /srv/done/agent ] && [ $i -lt 1200 ]; do sleep 0.2; i=$((i+1)); done"]
"##,
        modules = kernel_modules().display(),
    )
}

/// `mkrootfs config-drive -o <work>/<name>.img ARGS…`.
fn config_drive(name: &str, args: &[&str]) -> PathBuf {
    let out = work_dir().join(format!("{name}.img"));
    let status = Command::new(mkrootfs_cli())
        .arg("config-drive")
        .arg("-o")
        .arg(&out)
        .args(args)
        .status()
        .expect("run mkrootfs config-drive");
    assert!(status.success(), "mkrootfs config-drive {args:?} failed");
    out
}

/// Firecracker's MMDS, version 2, on 127.0.0.1: a token from
/// `PUT /latest/api/token`, then `GET /mkrootfs` with it gives `doc`;
/// anything else is 401 or 404. Returns the port and the request lines seen.
fn serve_mmds(doc: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
            let mut r = BufReader::new(match conn.try_clone() {
                Ok(c) => c,
                Err(_) => continue,
            });
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let Some(request) = head.first().cloned() else {
                continue;
            };
            let header = |name: &str| {
                head.iter().find_map(|h| {
                    h.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_string())
                })
            };
            let (status, body) = if request.starts_with("PUT /latest/api/token ") {
                match header("X-metadata-token-ttl-seconds") {
                    Some(_) => ("200 OK", "token-7f3a".to_string()),
                    None => ("400 Bad Request", String::new()),
                }
            } else if header("X-metadata-token").as_deref() != Some("token-7f3a") {
                ("401 Unauthorized", String::new())
            } else if request.starts_with("GET /mkrootfs ") {
                ("200 OK", doc.to_string())
            } else {
                ("404 Not Found", String::new())
            };
            log.lock().unwrap().push(format!("{request} -> {status}"));
            let mut c = conn;
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = c.read(&mut [0u8; 1]);
        }
    });
    (port, seen)
}

fn boot(image: &Path, drive: Option<&Path>, append: &str, mmds_port: Option<u16>) -> Outcome {
    checked(
        mkrootfs_qemu::run(&vm(image, drive, append, mmds_port))
            .unwrap_or_else(|e| panic!("run QEMU: {}", chain(&e))),
    )
}

fn checked(out: Outcome) -> Outcome {
    assert!(
        !out.timed_out,
        "guest timed out; QEMU stderr:\n{}\nconsole:\n{}",
        out.stderr, out.console
    );
    out
}

fn vm(image: &Path, drive: Option<&Path>, append: &str, mmds_port: Option<u16>) -> VmConfig {
    let mut cfg = VmConfig::new(kernel().vmlinuz.clone(), image.to_path_buf());
    cfg.append = append.to_string();
    cfg.disks = drive.map(Disk::raw).into_iter().collect();
    cfg.net = Some(Nic::new(Net::User {
        hostfwd: Vec::new(),
        guestfwd: mmds_port
            .map(|host_port| GuestFwd {
                addr: MMDS_ADDR,
                port: 80,
                host_port,
            })
            .into_iter()
            .collect(),
    }));
    cfg.timeout = Duration::from_secs(300);
    cfg
}

#[test]
fn one_image_three_config_drives_a_command_line_a_secret_and_mmds() {
    let image = build_image("settings", &profile());
    let secret = format!("s3cret-{}-zebra-quartz", std::process::id());
    let secret_file = work_dir().join("settings-token");
    std::fs::write(&secret_file, &secret).unwrap();
    let secret_arg = format!("token=@{},service=box", secret_file.display());
    let one = config_drive(
        "settings-one",
        &[
            "--set",
            "hostname=vm-one",
            "--set",
            "env.COLOUR=red",
            "--set",
            "env.FROM=drive",
            "--set",
            "services.box.env.REFUSED=1",
            "--secret",
            &secret_arg,
            "--seed-from-host",
            "32",
        ],
    );
    let two = config_drive(
        "settings-two",
        &["--set", "hostname=vm-two", "--set", "env.COLOUR=green"],
    );
    let three = config_drive(
        "settings-three",
        &["--set", "hostname=vm-three", "--set", "env.COLOUR=blue"],
    );
    let (port, seen) = serve_mmds(r#"{"env": {"MMDS": "v2"}, "secrets": {"bad/../x": "nope"}}"#);

    // One: the drive's settings, the command line's FROM over the drive's,
    // a secret in the container, a refused key.
    let out = boot(&image, Some(&one), "mkrootfs.env.FROM=cmdline", None);
    assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
    assert_console(&out, "VM host=vm-one colour=red from=cmdline mmds=");
    assert_console(&out, "BOX colour=red from=cmdline");
    let sum: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_console(&out, &format!("BOX secret_sha256={sum} owner=400 1000"));
    assert_console(&out, "BOX secret_readable");
    // The seed went to the kernel's pool, its bytes to no log.
    assert_console(
        &out,
        "settings: config drive /dev/vda: seed of 32 bytes credited to the kernel's pool",
    );
    assert_console(&out, "BOX secret_readonly");
    assert_console(
        &out,
        "services.box.env.REFUSED: not in [init] overridable, refused",
    );
    // Without a guestfwd nothing answers at MMDS's address: a warning.
    assert_console(
        &out,
        "settings: MMDS http://10.0.2.100:80/mkrootfs: PUT /latest/api/token: ",
    );
    assert!(
        !out.console.contains(&secret) && !out.stderr.contains(&secret),
        "the secret's value is on the console:\n{}",
        out.console
    );

    // Two: another drive, another hostname and environment; a process the
    // agent starts in the container gets the VM's environment too.
    let out = boot_with_agent(&image, &two);
    assert_console(&out, "VM host=vm-two colour=green from=image mmds=");
    assert!(
        !out.console
            .lines()
            .any(|l| l.starts_with("BOX secret_sha256=")),
        "{}",
        out.console
    );

    // Three: the drive, then MMDS over the network: its env arrives, its
    // escaping secret path is refused by name, without its value.
    let out = boot(&image, Some(&three), "", Some(port));
    assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
    assert_console(&out, "VM host=vm-three colour=blue from=image mmds=v2");
    assert_console(
        &out,
        "settings: MMDS http://10.0.2.100:80/mkrootfs: secrets.bad/../x: \"bad/../x\" must be a path below /run/secrets, ignored",
    );
    assert_console(&out, "settings from config drive, MMDS: ");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "PUT /latest/api/token HTTP/1.1 -> 200 OK",
            "GET /mkrootfs HTTP/1.1 -> 200 OK"
        ]
    );
}

/// A required config drive that is not there ends the boot: a FATAL line
/// naming the source and the label, and status 1, before any service.
#[test]
fn a_required_config_drive_that_is_missing_is_fatal() {
    let profile = format!(
        "{}\n[init.config_drive]\nrequired = true\nwait_ms = 500\n",
        profile()
    );
    let image = build_image("settings-required", &profile);
    let out = boot(&image, None, "", None);
    assert_eq!(out.exit_code(), 1, "console:\n{}", out.console);
    assert_eq!(
        out.fatal_line(),
        Some(
            "mkrootfs-init: FATAL settings: config drive: no block device with the label \"MKROOTFS-CFG\" after 500 ms"
        ),
        "console:\n{}",
        out.console
    );
    assert!(!out.console.contains("started vm"), "{}", out.console);
}

/// Boots with the drive and a vsock device; through the agent, a process
/// in the `box` container prints its environment, then lets the VM end.
fn boot_with_agent(image: &Path, drive: &Path) -> Outcome {
    use mkrootfs::agent::{ExecOptions, Target};
    use mkrootfs_tests::vsock::{connect, qemu_args, start_daemon, vhost_device_vsock};
    let bin = vhost_device_vsock().expect("vhost-device-vsock");
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, vhost, uds) = start_daemon(&bin, dir.path());
    let mut cfg = vm(image, Some(drive), "mkrootfs.env.WAIT_AGENT=1", None);
    cfg.memory_mb = 512;
    cfg.extra_args = qemu_args(&vhost, cfg.memory_mb);
    let qemu = std::thread::spawn(move || {
        mkrootfs_qemu::run(&cfg).unwrap_or_else(|e| panic!("run QEMU: {}", chain(&e)))
    });
    let mut c = connect(&Target::Hybrid { uds, port: 1024 }, &qemu);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = c
        .exec(
            "box",
            &["sh", "-c", "i=0; while [ ! -e /done/box ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done; echo \"colour=$COLOUR wait=$WAIT_AGENT\"; touch /done/agent"],
            &ExecOptions::default(),
            &mut stdout,
            &mut stderr,
        )
        .unwrap_or_else(|e| panic!("exec in box: {}", chain(&e)));
    assert_eq!(
        (status, String::from_utf8_lossy(&stdout).trim()),
        (0, "colour=green wait=1"),
        "stderr: {}",
        String::from_utf8_lossy(&stderr)
    );
    drop(c);
    let out = checked(qemu.join().expect("the QEMU thread"));
    assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
    out
}
