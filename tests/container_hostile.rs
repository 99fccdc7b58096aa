//! Issue 15: containers started by the init, tried as a hostile workload
//! would. One boot runs the probe's attacks (`probe attack all`) in every
//! shape at once: with and without a user namespace, on the VM's shared
//! root and on a subdirectory root, with `init = true` (the reaper), and
//! twice through a restart, while a plain service of the VM waits for them
//! and then reports the state the init depends on. The assertions name the
//! errno (or signal) the design gives each attack (docs/init.md,
//! "Containers": what a container can reach).

use mkrootfs::cpio::{self, Limits};
use mkrootfs_qemu::{Disk, Machine};
use mkrootfs_tests::{boot_with, build_image, kernel_modules, probe_binary};
use std::collections::BTreeMap;

/// The shapes: (service name, container table, restarts).
const SHAPES: [(&str, &str, u32); 4] = [
    (
        "userns-root",
        r#"{ init = true, mounts = [{ type = "bind", source = "/var/marks", target = "/var/marks" }] }"#,
        1,
    ),
    (
        "plain-root",
        r#"{ namespaces = { user = false }, mounts = [{ type = "bind", source = "/var/marks", target = "/var/marks" }] }"#,
        1,
    ),
    (
        "userns-sub",
        r#"{ root = "/srv/box", init = true, mounts = [{ type = "bind", source = "/var/marks", target = "/var/marks" }] }"#,
        0,
    ),
    (
        "plain-sub",
        r#"{ root = "/srv/box2", init = true, namespaces = { user = false }, mounts = [{ type = "bind", source = "/var/marks", target = "/var/marks" }] }"#,
        0,
    ),
];

/// A container that its profile gives more than Docker's defaults
/// (CAP_SYS_ADMIN, no seccomp, no user namespace): it can mount a tmpfs
/// without `nodev`, where only the device cgroup stands between a node and
/// the device.
const ADMIN: &str = r#"{ root = "/srv/box3", namespaces = { user = false }, seccomp = "none", capabilities = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE", "SYS_ADMIN"], mounts = [{ type = "bind", source = "/var/marks", target = "/var/marks" }] }"#;

/// Every attack's lines, prefixed with the container's host name (its
/// service name), then a mark in the VM's `/var/marks`; exits 1 so that
/// `restart = "on-failure"` starts it again.
const ATTACK: &str =
    "h=$(busybox hostname); probe attack all 2>&1 | busybox sed \"s/^PROBE /PROBE $h./\"; \
     busybox touch /var/marks/$h.$(busybox ls /var/marks | busybox wc -l); exit 1";

/// The VM's side: waits for every run, then prints what the init reads
/// and what a container could have planted.
const CHECK: &str = "i=0; while [ $(busybox ls /var/marks | busybox wc -l) -lt 7 ] && [ $i -lt 600 ]; do busybox sleep 0.2; i=$((i+1)); done; \
     echo CHECK marks=$(busybox ls /var/marks | busybox wc -l); \
     for f in /etc/mkrootfs/init.json /etc/mkrootfs/devices.bpf /etc/mkrootfs/seccomp/*.bpf; do echo CHECK sha $(busybox sha256sum $f); done; \
     echo CHECK planted=$(busybox ls -d /tmp/probe-mark /run/probe-mark /etc/mkrootfs.old /etc/mkrootfs.planted 2>/dev/null | busybox wc -l); \
     echo CHECK init=$(busybox ls /etc/mkrootfs | busybox wc -l)";

fn profile() -> String {
    let mut services = format!(
        "[[init.services]]\nname = \"check\"\nargv = [\"/bin/busybox\", \"sh\", \"-c\", {check:?}]\n",
        check = CHECK
    );
    for (name, table, restarts) in SHAPES {
        let restart = if restarts > 0 {
            format!("restart = \"on-failure\"\nrestart_delay_ms = 100\nmax_restarts = {restarts}\n")
        } else {
            String::new()
        };
        services.push_str(&format!(
            "[[init.services]]\nname = \"{name}\"\nargv = [\"/bin/busybox\", \"sh\", \"-c\", {ATTACK:?}]\n{restart}container = {table}\n"
        ));
    }
    // Two subdirectory roots, one per shape: what one leaves in its /tmp
    // does not decide what the other can do.
    let subdirs: String = ["box", "box2", "box3"]
        .iter()
        .map(|d| {
            format!(
                "[[files]]\ndest = \"/srv/{d}/bin/probe\"\nsrc = \"{probe}\"\nmode = \"0755\"\n\n\
                 [[files]]\ndest = \"/srv/{d}/bin/busybox\"\nsrc = \"{busybox}\"\nmode = \"0755\"\n\n\
                 [[dirs]]\npath = \"/srv/{d}/var/marks\"\nmode = \"0755\"\n\n\
                 [[dirs]]\npath = \"/srv/{d}/tmp\"\nmode = \"1777\"\n",
                probe = probe_binary().display(),
                busybox = busybox_path(),
            )
        })
        .collect();
    services.push_str(&format!(
        "[[init.services]]\nname = \"admin-sub\"\nargv = [\"/bin/busybox\", \"sh\", \"-c\", {:?}]\ncontainer = {ADMIN}\n",
        ATTACK.replace("attack all", "attack mknod_fresh")
    ));
    format!(
        r#"binaries = ["busybox"]
[image]
busybox_links = "/bin/busybox"
compression = "none"

[[files]]
dest = "/bin/probe"
src = "{probe}"
mode = "0755"

{subdirs}
[[dirs]]
path = "/var/marks"
mode = "0777"

[modules]
kernel = "{modules}"
load = ["virtio_pci", "virtio_blk"]

[init]
[init.shutdown]
grace_ms = 500
{services}"#,
        probe = probe_binary().display(),
        modules = kernel_modules().display(),
    )
}

/// The static busybox of the host (busybox-static), for the subdirectory root.
fn busybox_path() -> String {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("busybox-static is installed (.ci/run)")
        .to_string()
}

/// The image's own bytes of the init's files, hashed as sha256sum prints.
fn image_hashes(image: &std::path::Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(image).unwrap();
    let segs = cpio::read_archive(&bytes, &Limits::default()).unwrap();
    mkrootfs::extract::extract(&segs, dir.path()).unwrap();
    let mut out = BTreeMap::new();
    let mut files = vec!["etc/mkrootfs/init.json".to_string()];
    files.push("etc/mkrootfs/devices.bpf".to_string());
    for e in std::fs::read_dir(dir.path().join("etc/mkrootfs/seccomp")).unwrap() {
        files.push(format!(
            "etc/mkrootfs/seccomp/{}",
            e.unwrap().file_name().to_string_lossy()
        ));
    }
    for f in files {
        let data = std::fs::read(dir.path().join(&f)).unwrap();
        let hex: String = sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.insert(format!("/{f}"), hex);
    }
    out
}

#[test]
fn hostile_containers_reach_nothing_of_the_vm() {
    let img = build_image("container-hostile", &profile());
    // A disk for the raw-device attacks to find (vda).
    let disk = mkrootfs_tests::work_dir().join("container-hostile.disk");
    std::fs::write(&disk, vec![0x5a; 1 << 20]).unwrap();
    let out = boot_with(&img, "quiet", &[Disk::raw(&disk)], Machine::Pc);
    let console = &out.console;
    // Every value printed for `key` (one per run of the container).
    let all = |key: &str| -> Vec<String> {
        let marker = format!("PROBE {key}=");
        console
            .lines()
            .filter_map(|l| {
                l.find(&marker)
                    .map(|at| l[at + marker.len()..].trim_end().to_string())
            })
            .collect()
    };
    let check = |name: &str, key: &str, want: &str| {
        let got = all(&format!("{name}.attack.{key}"));
        assert!(
            !got.is_empty(),
            "{name}: no attack.{key}; console:\n{console}"
        );
        for g in &got {
            assert_eq!(g, want, "{name}: attack.{key}; console:\n{console}");
        }
    };
    assert_eq!(out.exit_code(), 0, "console:\n{console}");
    assert!(console.contains("CHECK marks=7"), "console:\n{console}");

    for (name, _, restarts) in SHAPES {
        let userns = name.starts_with("userns");
        let shared = name.ends_with("-root");
        // Each run printed its lines (a restart ran it twice).
        assert_eq!(
            all(&format!("{name}.attack.keyctl")).len(),
            1 + restarts as usize,
            "{name} runs; console:\n{console}"
        );
        // Seccomp stays armed on every run, restarts included; x32 calls
        // are killed; the agent's vsock is out of reach.
        check(name, "keyctl", "EPERM");
        check(name, "vsock", "EPERM");
        check(name, "x32", "SIGSYS");
        // No descriptor of the VM, no working directory outside the root.
        check(name, "fds", "none");
        check(name, "cwd.escape", "ENOENT");
        check(name, "cwd.top", "root");
        // No port access inherited from the boot timer; ioperm refused.
        check(name, "ioperm.inb", "SIGSEGV");
        check(name, "ioperm.ioperm", "EPERM");
        // No console: /dev/null in, a pipe out.
        check(name, "console.isatty", "0,0,0");
        check(name, "console.tcgetattr", "ENOTTY,ENOTTY,ENOTTY");
        check(name, "console.tiocsctty", "ENOTTY,ENOTTY,ENOTTY");
        check(name, "console.tiocsti", "ENOTTY");
        check(name, "console.open", "ENOENT");
        // Raw devices: no node can be made (user namespace) or opened (nodev
        // wherever one can be made; the device cgroup behind it).
        for dev in all(&format!("{name}.attack.mknod_disk.dev")) {
            assert!(dev.starts_with("vda:"), "{name}: no disk found: {dev}");
        }
        for at in ["dev", "tmp", "mem_dev", "mem_tmp"] {
            let (mknod, read) = if userns {
                ("EPERM", "-")
            } else {
                ("OK", "EACCES")
            };
            check(name, &format!("mknod_disk.mknod_{at}"), mknod);
            check(name, &format!("mknod_disk.read_{at}"), read);
        }
        // The init's own state: the shared root is read-only and the
        // init's directory hidden; a subdirectory root has none of it.
        if shared {
            check(name, "init_state.ls", "entries:0");
            check(name, "init_state.append_config", "ENOENT");
            check(name, "init_state.rename", "EROFS");
            check(name, "init_state.plant", "EROFS");
            // Not even opened: the VM's /init is not the container's (a
            // user namespace sees it owned by nobody) and it is running.
            check(
                name,
                "init_state.write_init",
                if userns { "EACCES" } else { "ETXTBSY" },
            );
            check(name, "init_state.run_mark", "OK");
        } else {
            check(name, "init_state.ls", "ENOENT");
        }
        check(name, "init_state.tmp_mark", "OK");
        // PID 1 of the container: the reaper, exec'd from a sealed memfd
        // and not dumpable: nothing of it can be read, written or traced.
        if name.ends_with("-sub") || name == "userns-root" {
            check(name, "fd_pid1.fds", "0:EACCES,1:EACCES,2:EACCES");
            check(name, "fd_pid1.exe", "EACCES");
            check(name, "fd_pid1.write_exe", "EACCES");
            check(name, "ptrace_pid1.attach", "EPERM");
        }
        check(name, "ptrace_pid1.dumpable", "1");
    }
    // With the mount and the capability a profile gave it, a container
    // makes a node on a file system without nodev: the device cgroup alone
    // refuses the disk and /dev/mem, and lets /dev/null through.
    assert_eq!(
        all("admin-sub.attack.mknod_fresh.mount"),
        ["OK"],
        "console:\n{console}"
    );
    assert_eq!(
        all("admin-sub.attack.mknod_fresh.disk"),
        ["EPERM"],
        "console:\n{console}"
    );
    assert_eq!(
        all("admin-sub.attack.mknod_fresh.mem"),
        ["EPERM"],
        "console:\n{console}"
    );
    assert_eq!(
        all("admin-sub.attack.mknod_fresh.null"),
        ["OK"],
        "console:\n{console}"
    );
    // The init's configuration and filters are byte-identical after all of
    // it, and nothing was planted in the VM's /tmp, /run or /etc.
    let want = image_hashes(&img);
    for (path, sha) in &want {
        assert!(
            console.contains(&format!("CHECK sha {sha} {path}")),
            "{path} changed (want {sha}); console:\n{console}"
        );
    }
    assert!(console.contains("CHECK planted=0"), "console:\n{console}");
}
