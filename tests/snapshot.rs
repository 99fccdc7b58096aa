//! Clones from one snapshot (issue 18): a guest with the agent is booted
//! under QEMU, saved to a file by a migration (QEMU 7.2 has no `file:`
//! URI: `exec:cat > FILE`), and two clones are started from that file
//! (`-incoming 'exec:cat FILE'`). Each is resynced through its agent
//! (`mkrootfs resync`: ReseedRandomDev + SetGuestDateTime); then their
//! `/dev/urandom` output and random UUIDs differ and their clocks match
//! the host's.
//!
//! vhost-user-vsock cannot be migrated (QEMU 7.2's `migrate` answers
//! "State blocked by non-migratable device '0000:00:02.0/vhost-user-vsock'";
//! vhost-device-vsock lacks VHOST_USER_PROTOCOL_F_LOG_SHMFD too), and this
//! host has no /dev/vhost-vsock for vhost-vsock-pci. So the source's device is hot-unplugged (`device_del`,
//! the guest's ACPI PCI hotplug ejects it) before the snapshot, and each
//! clone starts paused (`-S`), gets a fresh device with its own
//! vhost-device-vsock (`device_add`), and only then runs (`cont`): the
//! agent's listening socket outlives the transport, and the vsock driver
//! modules stay loaded. `-device vmgenid,guid=auto` gives every clone a new
//! generation ID; with a kernel that has `CONFIG_VMGENID` the init logs
//! `vm generation changed` (Debian 12's cloud kernel has none: checked from
//! its config, see [`kernel_has_vmgenid`]).

use mkrootfs::agent::{Client, ExecOptions, Target};
use mkrootfs_qemu::{Outcome, Qmp, VmConfig};
use mkrootfs_tests::vsock::{connect, start_daemon, vhost_device_vsock};
use mkrootfs_tests::{build_image, chain, kernel, mkrootfs_cli, BUSYBOX_IMAGE};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MEMORY_MB: u32 = 256;
/// TCG boots and migrations are slow on a shared 2-core host.
const QMP_WAIT: Duration = Duration::from_secs(300);

/// Whether the test kernel was built with the vmgenid driver (its config
/// sits next to the vmlinuz: `boot/config-<version>`).
fn kernel_has_vmgenid() -> bool {
    let k = kernel();
    let config = k
        .vmlinuz
        .parent()
        .map(|boot| boot.join(format!("config-{}", k.version)));
    config
        .and_then(|c| std::fs::read_to_string(c).ok())
        .is_some_and(|t| {
            t.lines()
                .any(|l| l == "CONFIG_VMGENID=y" || l == "CONFIG_VMGENID=m")
        })
}

/// The same machine for the source and the clones (a migration needs
/// equal devices): shared memory for vhost-user, the vsock chardev
/// (its device is plugged apart, see the module's comment), vmgenid, QMP.
fn machine(img: &Path, vhost: &Path, qmp: &Path) -> VmConfig {
    let mut cfg = VmConfig::new(kernel().vmlinuz.clone(), img);
    cfg.append = "quiet".into();
    cfg.memory_mb = MEMORY_MB;
    cfg.timeout = Duration::from_secs(900);
    cfg.extra_args = [
        "-object",
        &format!("memory-backend-memfd,id=mem,size={MEMORY_MB}M,share=on"),
        "-machine",
        "memory-backend=mem",
        "-chardev",
        &format!("socket,id=vsockchr,path={}", vhost.display()),
        "-device",
        "vmgenid,guid=auto",
        "-qmp",
        &format!("unix:{},server=on,wait=off", qmp.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cfg
}

/// The vsock device, as `device_add` arguments (also the source's
/// command line: the same id and slot everywhere).
fn vsock_device() -> serde_json::Value {
    json!({"driver": "vhost-user-vsock-pci", "id": "vsock0", "chardev": "vsockchr", "addr": "0x5"})
}

fn start(cfg: VmConfig) -> JoinHandle<Outcome> {
    std::thread::spawn(move || {
        mkrootfs_qemu::run(&cfg).unwrap_or_else(|e| panic!("run QEMU: {}", chain(&e)))
    })
}

fn qmp(path: &Path) -> Qmp {
    Qmp::connect(path, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("QMP {}: {}", path.display(), chain(&e)))
}

/// Runs `script` in the VM (container ""), returns its stdout.
fn sh(c: &mut Client, script: &str) -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let st = c
        .exec(
            "",
            &["sh", "-c", script],
            &ExecOptions::default(),
            &mut out,
            &mut err,
        )
        .unwrap_or_else(|e| panic!("exec {script:?}: {}", chain(&e)));
    let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    assert_eq!(st, 0, "{script}: {out}{err}");
    out.trim().to_string()
}

fn host_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What one clone showed after its resync.
struct Seen {
    random: String,
    uuid: String,
    console: String,
}

/// Starts a clone from `snapshot`, plugs in its vsock, resyncs it with
/// `mkrootfs resync` and reads its randomness and clock.
fn clone(name: &str, img: &Path, snapshot: &Path, work: &Path, daemon: &Path) -> Seen {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (_daemon, vhost, uds) = start_daemon(daemon, &dir);
    let qmp_path = dir.join("qmp.sock");
    let mut cfg = machine(img, &vhost, &qmp_path);
    cfg.extra_args.extend([
        "-incoming".to_string(),
        format!("exec:cat {}", snapshot.display()),
        "-S".to_string(),
    ]);
    let vm = start(cfg);
    let mut q = qmp(&qmp_path);
    let state = q
        .wait_leaving("inmigrate", QMP_WAIT)
        .unwrap_or_else(|e| panic!("{name}: incoming migration: {}", chain(&e)));
    assert_eq!(state, "paused", "{name}: after the incoming migration");
    q.execute("device_add", vsock_device())
        .unwrap_or_else(|e| panic!("{name}: device_add: {}", chain(&e)));
    q.execute("cont", json!({}))
        .unwrap_or_else(|e| panic!("{name}: cont: {}", chain(&e)));
    let target = Target::Hybrid {
        uds: uds.clone(),
        port: 1024,
    };
    let mut c = connect(&target, &vm);
    let stale = sh(&mut c, "date +%s");
    let before = sh(
        &mut c,
        "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'",
    );
    eprintln!(
        "{name}: before resync: clock {stale} (host {}), random {before}",
        host_secs()
    );

    let o = Command::new(mkrootfs_cli())
        .args(["resync", "--vsock"])
        .arg(&uds)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{name}: mkrootfs resync: {o:?}");
    assert!(
        said.contains("crng reseeded with 64 bytes") && said.contains("clock set to"),
        "{said}"
    );
    eprintln!("{name}: {}", said.trim());

    let random = sh(
        &mut c,
        "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'",
    );
    let uuid = sh(&mut c, "cat /proc/sys/kernel/random/uuid");
    let t0 = host_secs();
    let guest: i64 = sh(&mut c, "date +%s").parse().unwrap();
    let t1 = host_secs();
    assert!(
        (t0 - 1..=t1 + 1).contains(&guest),
        "{name}: guest clock {guest}, host {t0}..{t1}"
    );
    assert_eq!(random.len(), 64, "{random}");
    drop(c);
    let _ = q.execute("quit", json!({}));
    let out = vm.join().expect("the QEMU thread");
    Seen {
        random,
        uuid,
        console: out.console,
    }
}

#[test]
fn clones_from_one_snapshot_get_their_own_randomness_and_the_time() {
    let Some(daemon) = vhost_device_vsock() else {
        return;
    };
    let profile = format!(
        r#"{BUSYBOX_IMAGE}
[modules]
kernel = "{modules}"
load = ["virtio_pci", "vmw_vsock_virtio_transport"]

[init]
[init.shutdown]
grace_ms = 500
[init.agent]
allow_vm_exec = true
[[init.services]]
name = "idle"
argv = ["sh", "-c", "while :; do sleep 1; done"]
"#,
        modules = mkrootfs_tests::kernel_modules().display(),
    );
    let img = build_image("snapshot", &profile);
    let work = tempfile::tempdir().unwrap();
    let snapshot = work.path().join("vm.snapshot");

    // The source: boot, wait for the agent, unplug the vsock, save.
    let src = work.path().join("source");
    std::fs::create_dir_all(&src).unwrap();
    let (source_daemon, vhost, uds) = start_daemon(&daemon, &src);
    let qmp_path = src.join("qmp.sock");
    let mut cfg = machine(&img, &vhost, &qmp_path);
    cfg.extra_args.extend([
        "-device".to_string(),
        "vhost-user-vsock-pci,id=vsock0,chardev=vsockchr,addr=0x5".to_string(),
    ]);
    let vm = start(cfg);
    let target = Target::Hybrid { uds, port: 1024 };
    let mut c = connect(&target, &vm);
    assert_eq!(sh(&mut c, "echo up"), "up");
    // QEMU's vmgenid is in the guest's ACPI namespace whether or not the
    // kernel has a driver for it.
    let acpi = sh(&mut c, "ls /sys/bus/acpi/devices | grep QEMUVGID || true");
    eprintln!(
        "source: vmgenid ACPI device: {acpi:?}; driver: {}",
        kernel_has_vmgenid()
    );
    drop(c);
    let mut q = qmp(&qmp_path);
    q.execute("device_del", json!({"id": "vsock0"}))
        .unwrap_or_else(|e| panic!("device_del: {}", chain(&e)));
    q.wait_event("DEVICE_DELETED", &json!({"device": "vsock0"}), QMP_WAIT)
        .unwrap_or_else(|e| panic!("unplug vsock0: {}", chain(&e)));
    drop(source_daemon);
    q.execute(
        "migrate",
        json!({"uri": format!("exec:cat > {}", snapshot.display())}),
    )
    .unwrap_or_else(|e| panic!("migrate: {}", chain(&e)));
    let done = q
        .wait_migration(QMP_WAIT)
        .unwrap_or_else(|e| panic!("save the snapshot: {}", chain(&e)));
    eprintln!(
        "snapshot: {} bytes in {} ms",
        std::fs::metadata(&snapshot).map_or(0, |m| m.len()),
        done["total-time"]
    );
    let _ = q.execute("quit", json!({}));
    let source = vm.join().expect("the source's QEMU thread");
    assert!(!source.timed_out, "source timed out:\n{}", source.console);
    // The init's uevent socket opened (it warns naming the call otherwise).
    assert!(
        !source.console.contains("NETLINK_KOBJECT_UEVENT"),
        "{}",
        source.console
    );

    // Two clones, one after the other (a core each would starve the
    // other engineers' guests; their randomness is compared afterwards).
    let a = clone("clone1", &img, &snapshot, work.path(), &daemon);
    let b = clone("clone2", &img, &snapshot, work.path(), &daemon);
    assert_ne!(a.random, b.random, "the clones' /dev/urandom output");
    assert_ne!(a.uuid, b.uuid, "the clones' random UUIDs");
    for (name, s) in [("clone1", &a), ("clone2", &b)] {
        assert!(
            s.console
                .contains("mkrootfs-agent: crng reseeded with 64 bytes"),
            "{name}:\n{}",
            s.console
        );
        if kernel_has_vmgenid() {
            assert!(
                s.console.contains("vm generation changed"),
                "{name}:\n{}",
                s.console
            );
        } else {
            eprintln!("{name}: the test kernel has no CONFIG_VMGENID: no generation change to see");
        }
    }
}
