//! `mkrootfs vm-config` as a user runs it: what it prints, and what it
//! refuses (issue 21, item 7).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn mkrootfs(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
        .args(args)
        .current_dir(cwd)
        .env_remove("MKROOTFS_QEMU")
        .env_remove("MKROOTFS_ACCEL")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory with a valid (empty) image and an ELF "kernel" (the
/// monitors' configurations only need its first bytes to be an ELF).
fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut image = Vec::new();
    mkrootfs::cpio::write_archive(&mut image, &[]).unwrap();
    fs::write(tmp.path().join("image.cpio"), image).unwrap();
    fs::copy("/bin/true", tmp.path().join("vmlinux")).unwrap();
    fs::write(tmp.path().join("disk.raw"), [0u8; 512]).unwrap();
    tmp
}

const TARGETS: [&str; 3] = ["firecracker", "cloud-hypervisor", "qemu-microvm"];

/// A missing image printed a configuration with status 0.
#[test]
fn vm_config_refuses_a_missing_or_damaged_image() {
    let tmp = setup();
    let dir = tmp.path();
    fs::write(dir.join("junk.cpio"), b"not an image").unwrap();
    for target in TARGETS {
        let o = mkrootfs(
            dir,
            &[
                "vm-config",
                "--target",
                target,
                "missing.cpio",
                "--kernel",
                "vmlinux",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{target}: {}", stderr(&o));
        assert_eq!(stdout(&o), "", "{target}");
        assert!(
            stderr(&o).starts_with("mkrootfs: read missing.cpio: "),
            "{target}: {}",
            stderr(&o)
        );
        let o = mkrootfs(
            dir,
            &[
                "vm-config",
                "--target",
                target,
                "junk.cpio",
                "--kernel",
                "vmlinux",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{target}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("mkrootfs: read image junk.cpio: "),
            "{target}: {}",
            stderr(&o)
        );
        let o = mkrootfs(
            dir,
            &[
                "vm-config",
                "--target",
                target,
                "image.cpio",
                "--kernel",
                "nokernel",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{target}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("mkrootfs: read kernel nokernel: "),
            "{target}: {}",
            stderr(&o)
        );
    }
}

/// `--cpus 0` became 1, `--memory 0` was written as `mem_size_mib: 0`, and
/// `--root-disk` / `--read-only` without `--disk` were ignored: usage errors.
#[test]
fn vm_config_zero_cpus_zero_memory_and_root_disk_without_disk_are_usage_errors() {
    let tmp = setup();
    let dir = tmp.path();
    let base = [
        "vm-config",
        "--target",
        "firecracker",
        "image.cpio",
        "--kernel",
        "vmlinux",
    ];
    for extra in [
        &["--cpus", "0"][..],
        &["--memory", "0"],
        &["--root-disk"],
        &["--read-only"],
        &["--vsock-socket", "v.sock"],
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let o = mkrootfs(dir, &args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), "", "{extra:?}");
    }
}

/// The QEMU line carried this host's `-accel` choice and `tsc_early_khz`,
/// dropped `--vsock`, and put `--append` first, replacing same-named
/// parameters (`console=tty0` lost `console=ttyS0`).
#[test]
fn vm_config_qemu_microvm_line_is_for_a_kvm_host_with_vsock_and_append_last() {
    let tmp = setup();
    let dir = tmp.path();
    let o = mkrootfs(
        dir,
        &[
            "vm-config",
            "--target",
            "qemu-microvm",
            "image.cpio",
            "--kernel",
            "vmlinux",
            "--cpus",
            "2",
            "--append",
            "console=tty0",
            "--vsock",
            "7",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = dir.canonicalize().unwrap();
    let d = d.display();
    assert_eq!(
        stdout(&o),
        format!(
            "qemu-system-x86_64 -nodefaults -no-user-config -machine microvm,x-option-roms=off,rtc=on \
             -accel kvm -cpu host -m 512 -smp 2 -display none -serial stdio -no-reboot \
             -kernel {d}/vmlinux -initrd {d}/image.cpio \
             -append 'panic=-1 console=ttyS0 mkrootfs.debug_exit=0xf4 console=tty0' \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-device,rng=rng0 \
             -device vhost-vsock-device,guest-cid=7\n"
        )
    );
    // QEMU's vhost-vsock has no Unix socket to name.
    let o = mkrootfs(
        dir,
        &[
            "vm-config",
            "--target",
            "qemu-microvm",
            "image.cpio",
            "--kernel",
            "vmlinux",
            "--vsock",
            "7",
            "--vsock-socket",
            "v.sock",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "mkrootfs: --vsock-socket: QEMU's vhost-vsock device has no Unix socket \
         (the host connects to the guest's CID over AF_VSOCK)\n"
    );
}

/// Firecracker's boot arguments keep its own parameters first, the user's after.
#[test]
fn vm_config_firecracker_append_goes_after_the_monitor_parameters() {
    let tmp = setup();
    let dir = tmp.path();
    let o = mkrootfs(
        dir,
        &[
            "vm-config",
            "--target",
            "firecracker",
            "image.cpio",
            "--kernel",
            "vmlinux",
            "--append",
            "console=tty0",
            "--disk",
            "disk.raw",
            "--root-disk",
            "--read-only",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cfg = mkrootfs::vmconfig::FirecrackerConfig::from_json(&stdout(&o)).unwrap();
    assert_eq!(
        cfg.boot_source.boot_args.as_deref(),
        Some("console=ttyS0 reboot=k panic=1 pci=off mkrootfs.shutdown=reboot console=tty0")
    );
    assert!(cfg.drives[0].is_root_device && cfg.drives[0].is_read_only);
    assert!(cfg.entropy.is_some());
}

/// Every monitor gets an entropy device unless `--no-rng` says otherwise.
#[test]
fn vm_config_entropy_device_by_default_and_none_with_no_rng() {
    let tmp = setup();
    let dir = tmp.path();
    for (target, device) in [
        ("firecracker", "\"entropy\": {}"),
        ("cloud-hypervisor", " --rng src=/dev/urandom"),
        (
            "qemu-microvm",
            " -object rng-random,filename=/dev/urandom,id=rng0 -device virtio-rng-device,rng=rng0",
        ),
    ] {
        let base = [
            "vm-config",
            "--target",
            target,
            "image.cpio",
            "--kernel",
            "vmlinux",
        ];
        let o = mkrootfs(dir, &base);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o).matches(device).count(), 1, "{}", stdout(&o));
        let o = mkrootfs(dir, &[&base[..], &["--no-rng"]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!stdout(&o).contains("rng"), "{}", stdout(&o));
        assert!(!stdout(&o).contains("entropy"), "{}", stdout(&o));
    }
}

/// `--tap` on each monitor: the same MAC (derived from the image's name)
/// in each configuration, `ip=` in the boot args, and a bad `--ip` refused
/// by the init's own parser before anything is printed.
#[test]
fn vm_config_attaches_a_tap_with_a_stable_mac_and_ip_in_the_boot_args() {
    let tmp = setup();
    let dir = tmp.path();
    let mac = mkrootfs::vmconfig::mac_for("image").to_string();
    let args = |target: &'static str| {
        [
            "vm-config",
            "--target",
            target,
            "image.cpio",
            "--kernel",
            "vmlinux",
            "--tap",
            "tap7",
            "--ip",
            "172.16.0.2/24",
            "--gateway",
            "172.16.0.1",
        ]
    };
    let ip = "ip=172.16.0.2::172.16.0.1:255.255.255.0::eth0:off";
    let fc = mkrootfs(dir, &args("firecracker"));
    assert_eq!(fc.status.code(), Some(0), "{}", stderr(&fc));
    let cfg = mkrootfs::vmconfig::FirecrackerConfig::from_json(&stdout(&fc)).unwrap();
    assert_eq!(cfg.network_interfaces.len(), 1);
    let nic = &cfg.network_interfaces[0];
    assert_eq!(nic.iface_id, "eth0");
    assert_eq!(nic.host_dev_name, "tap7");
    assert_eq!(nic.guest_mac.as_deref(), Some(mac.as_str()));
    assert!(cfg.boot_source.boot_args.unwrap().contains(ip));
    let ch = stdout(&mkrootfs(dir, &args("cloud-hypervisor")));
    assert!(ch.contains(&format!(" --net tap=tap7,mac={mac}")), "{ch}");
    assert!(ch.contains(ip), "{ch}");
    let q = stdout(&mkrootfs(dir, &args("qemu-microvm")));
    assert!(
        q.contains(" -netdev tap,id=net0,ifname=tap7,script=no,downscript=no "),
        "{q}"
    );
    assert!(
        q.contains(&format!(" -device virtio-net-device,netdev=net0,mac={mac}")),
        "{q}"
    );
    assert!(q.contains(ip), "{q}");
    // A MAC given wins; a gateway outside the subnet is what the init
    // would refuse at boot.
    let mut with_mac = args("cloud-hypervisor").to_vec();
    with_mac.extend(["--mac", "02:00:00:00:00:07"]);
    let ch = stdout(&mkrootfs(dir, &with_mac));
    assert!(ch.contains("--net tap=tap7,mac=02:00:00:00:00:07"), "{ch}");
    let mut bad = args("firecracker").to_vec();
    bad[11] = "10.9.9.9";
    let o = mkrootfs(dir, &bad);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("outside every subnet"),
        "{}",
        stderr(&o)
    );
}

/// `--config FILE`: the config drive attached read-only after the disks on
/// every monitor (the root stays /dev/vda), field by field.
#[test]
fn vm_config_attaches_the_config_drive_read_only_after_the_disks() {
    let tmp = setup();
    let dir = tmp.path();
    fs::write(dir.join("vm-1.cfg"), [0u8; 512]).unwrap();
    let d = dir.canonicalize().unwrap();
    let args = |target: &'static str| {
        [
            "vm-config",
            "--target",
            target,
            "image.cpio",
            "--kernel",
            "vmlinux",
            "--disk",
            "disk.raw",
            "--root-disk",
            "--config",
            "vm-1.cfg",
        ]
    };
    let fc = mkrootfs(dir, &args("firecracker"));
    assert_eq!(fc.status.code(), Some(0), "{}", stderr(&fc));
    let cfg = mkrootfs::vmconfig::FirecrackerConfig::from_json(&stdout(&fc)).unwrap();
    assert_eq!(cfg.drives.len(), 2);
    assert_eq!(cfg.drives[0].drive_id, "rootfs");
    assert!(cfg.drives[0].is_root_device);
    let drive = &cfg.drives[1];
    assert_eq!(drive.drive_id, "config");
    assert_eq!(drive.path_on_host, format!("{}/vm-1.cfg", d.display()));
    assert!(!drive.is_root_device);
    assert!(drive.is_read_only);

    let ch = stdout(&mkrootfs(dir, &args("cloud-hypervisor")));
    assert!(
        ch.contains(&format!(
            " --disk path={0}/disk.raw --disk path={0}/vm-1.cfg,readonly=on --cpus ",
            d.display()
        )),
        "{ch}"
    );
    assert!(ch.contains("root=/dev/vda rw"), "{ch}");

    let q = stdout(&mkrootfs(dir, &args("qemu-microvm")));
    assert!(
        q.contains(&format!(
            " -drive file={0}/disk.raw,format=raw,if=none,id=disk0 -device virtio-blk-device,drive=disk0 \
             -drive file={0}/vm-1.cfg,format=raw,if=none,id=disk1,readonly=on -device virtio-blk-device,drive=disk1 ",
            d.display()
        )),
        "{q}"
    );

    // A missing file is an error naming it, before anything is printed.
    let mut missing = args("firecracker");
    missing[10] = "nope.cfg";
    let o = mkrootfs(dir, &missing);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).starts_with("mkrootfs: --config: open the config drive nope.cfg: "),
        "{}",
        stderr(&o)
    );
}

/// `--mmds` gives Firecracker's `mmds-config` (version 2, on the tap's
/// interface, at Firecracker's default or the given link-local address);
/// elsewhere, or at an address Firecracker refuses, it is a usage error.
#[test]
fn vm_config_mmds_is_firecrackers_version_2_on_the_tap() {
    let tmp = setup();
    let d = tmp.path();
    let fc = |extra: &[&str]| {
        let mut args = vec![
            "vm-config",
            "--target",
            "firecracker",
            "image.cpio",
            "--kernel",
            "vmlinux",
            "--tap",
            "tap0",
        ];
        args.extend_from_slice(extra);
        mkrootfs(d, &args)
    };
    let o = fc(&["--mmds"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        json["mmds-config"],
        serde_json::json!({"version": "V2", "network_interfaces": ["eth0"], "ipv4_address": "169.254.169.254"})
    );
    assert_eq!(json["network-interfaces"][0]["iface_id"], "eth0");
    let o = fc(&["--mmds", "169.254.170.2"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["mmds-config"]["ipv4_address"], "169.254.170.2");
    // Without --mmds, no mmds-config.
    let json: serde_json::Value = serde_json::from_str(&stdout(&fc(&[]))).unwrap();
    assert!(json.get("mmds-config").is_none(), "{json}");

    let o = fc(&["--mmds", "10.0.2.100"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "mkrootfs: --mmds 10.0.2.100: Firecracker answers MMDS only at a link-local address (169.254.x.y)\n"
    );
    let o = mkrootfs(
        d,
        &[
            "vm-config",
            "--target",
            "cloud-hypervisor",
            "image.cpio",
            "--kernel",
            "vmlinux",
            "--tap",
            "tap0",
            "--mmds",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--mmds: MMDS is Firecracker's"),
        "{}",
        stderr(&o)
    );
    // It needs the interface MMDS answers on.
    let o = mkrootfs(
        d,
        &[
            "vm-config",
            "--target",
            "firecracker",
            "image.cpio",
            "--kernel",
            "vmlinux",
            "--mmds",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
