use super::command::tsc_khz_from_cpuinfo;
use super::*;
use std::ffi::OsString;

fn strings(args: Vec<OsString>) -> Vec<String> {
    args.into_iter().map(|a| a.into_string().unwrap()).collect()
}

#[test]
fn pc_command_line_with_defaults() {
    let cfg = VmConfig::new("/k/vmlinuz", "/i/initrd.img");
    assert_eq!(
        strings(cfg.args(Accel::Tcg, 2_100_000)),
        [
            "-nodefaults",
            "-no-user-config",
            "-machine",
            "pc",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "512",
            "-smp",
            "1",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            "/k/vmlinuz",
            "-initrd",
            "/i/initrd.img",
            "-append",
            "panic=-1 console=ttyS0 no_timer_check",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]
    );
}

#[test]
fn pc_command_line_with_disks_net_and_extras() {
    let mut cfg = VmConfig::new("/k", "/i");
    cfg.append = " root=/dev/vda quiet ".to_string();
    cfg.memory_mb = 256;
    cfg.cpus = 2;
    cfg.disks = vec![
        Disk::raw("/img/a,b.raw"),
        Disk {
            path: "/img/ro.raw".into(),
            format: "raw".into(),
            readonly: true,
            serial: Some("data".into()),
        },
    ];
    cfg.net = Some(Nic::new(Net::User {
        hostfwd: Vec::new(),
        guestfwd: Vec::new(),
    }));
    cfg.debug_exit = false;
    cfg.extra_args = vec!["-s".into()];
    assert_eq!(
        strings(cfg.args(Accel::Kvm, 2_100_000)),
        [
            "-nodefaults",
            "-no-user-config",
            "-machine",
            "pc",
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-m",
            "256",
            "-smp",
            "2",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            "/k",
            "-initrd",
            "/i",
            "-append",
            "panic=-1 console=ttyS0 root=/dev/vda quiet",
            "-drive",
            "file=/img/a,,b.raw,format=raw,if=none,id=disk0",
            "-device",
            "virtio-blk-pci,drive=disk0",
            "-drive",
            "file=/img/ro.raw,format=raw,if=none,id=disk1,readonly=on",
            "-device",
            "virtio-blk-pci,drive=disk1,serial=data",
            "-netdev",
            "user,id=net0,restrict=on",
            "-device",
            "virtio-net-pci,netdev=net0,romfile=",
            "-s",
        ]
    );
}

#[test]
fn microvm_command_line() {
    let mut cfg = VmConfig::new("/k", "/i");
    cfg.machine = Machine::Microvm;
    cfg.append = "console=hvc0 panic=5".to_string();
    cfg.disks = vec![Disk::raw("/d.raw")];
    cfg.net = Some(Nic::new(Net::User {
        hostfwd: Vec::new(),
        guestfwd: Vec::new(),
    }));
    assert_eq!(
        strings(cfg.args(Accel::Tcg, 2_100_000)),
        [
            "-nodefaults",
            "-no-user-config",
            "-machine",
            "microvm,x-option-roms=off,rtc=on",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "512",
            "-smp",
            "1",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            "/k",
            "-initrd",
            "/i",
            "-append",
            "panic=-1 console=ttyS0 tsc_early_khz=2100000 no_timer_check mkrootfs.debug_exit=0xf4 \
             console=hvc0 panic=5",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive",
            "file=/d.raw,format=raw,if=none,id=disk0",
            "-device",
            "virtio-blk-device,drive=disk0",
            "-netdev",
            "user,id=net0,restrict=on",
            "-device",
            "virtio-net-device,netdev=net0",
        ]
    );
}

#[test]
fn microvm_cmdline_gets_the_tsc_rate_only_without_kvm() {
    let mut cfg = VmConfig::new("/k", "/i");
    cfg.machine = Machine::Microvm;
    cfg.debug_exit = false;
    assert_eq!(
        cfg.cmdline(Accel::Tcg, 1_500),
        "panic=-1 console=ttyS0 tsc_early_khz=1500 no_timer_check"
    );
    assert_eq!(cfg.cmdline(Accel::Kvm, 1_500), "panic=-1 console=ttyS0");
    cfg.append = "tsc_early_khz=9".to_string();
    assert_eq!(
        cfg.cmdline(Accel::Tcg, 1_500),
        "panic=-1 console=ttyS0 tsc_early_khz=1500 no_timer_check tsc_early_khz=9"
    );
    cfg.machine = Machine::Pc;
    cfg.append = String::new();
    assert_eq!(
        cfg.cmdline(Accel::Tcg, 1_500),
        "panic=-1 console=ttyS0 no_timer_check"
    );
}

#[test]
fn firecracker_legacy_like_announces_each_mmio_device_and_has_no_debug_exit() {
    let mut cfg = VmConfig::new("/k/vmlinux", "/i");
    cfg.machine = Machine::FirecrackerLegacyLike;
    cfg.append = "console=ttyS0 reboot=k panic=1 pci=off".to_string();
    cfg.disks = vec![Disk::raw("/root.ext4"), Disk::raw("/data.raw")];
    cfg.net = Some(Nic::new(Net::User {
        hostfwd: Vec::new(),
        guestfwd: Vec::new(),
    }));
    cfg.rng = true;
    assert_eq!(
        strings(cfg.args(Accel::Tcg, 2_100_000)),
        [
            "-nodefaults",
            "-no-user-config",
            "-machine",
            "microvm,acpi=off,auto-kernel-cmdline=off,x-option-roms=off,rtc=off",
            "-device",
            "i8042",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "512",
            "-smp",
            "1",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            "/k/vmlinux",
            "-initrd",
            "/i",
            "-append",
            "panic=-1 tsc_early_khz=2100000 no_timer_check console=ttyS0 reboot=k panic=1 pci=off \
             virtio_mmio.device=512@0xfeb00000:5 virtio_mmio.device=512@0xfeb00200:6 \
             virtio_mmio.device=512@0xfeb00400:7 virtio_mmio.device=512@0xfeb00600:8",
            "-drive",
            "file=/root.ext4,format=raw,if=none,id=disk0",
            "-device",
            "virtio-blk-device,drive=disk0,bus=virtio-mmio-bus.0",
            "-drive",
            "file=/data.raw,format=raw,if=none,id=disk1",
            "-device",
            "virtio-blk-device,drive=disk1,bus=virtio-mmio-bus.1",
            "-netdev",
            "user,id=net0,restrict=on",
            "-device",
            "virtio-net-device,netdev=net0,bus=virtio-mmio-bus.2",
            "-object",
            "rng-random,filename=/dev/urandom,id=rng0",
            "-device",
            "virtio-rng-device,rng=rng0,bus=virtio-mmio-bus.3",
        ]
    );
}

#[test]
fn firecracker_like_has_acpi_an_i8042_and_no_cmdline_devices() {
    let mut cfg = VmConfig::new("/k/vmlinux", "/i");
    cfg.machine = Machine::FirecrackerLike;
    cfg.append = "console=ttyS0 reboot=k panic=1 pci=off".to_string();
    cfg.disks = vec![Disk::raw("/root.ext4")];
    let args = strings(cfg.args(Accel::Tcg, 2_100_000));
    assert_eq!(
        &args[2..6],
        [
            "-machine",
            "microvm,acpi=on,auto-kernel-cmdline=off,x-option-roms=off,rtc=off",
            "-device",
            "i8042"
        ]
    );
    assert_eq!(
        &args[23..],
        [
            "-append",
            "panic=-1 tsc_early_khz=2100000 no_timer_check console=ttyS0 reboot=k panic=1 pci=off",
            "-drive",
            "file=/root.ext4,format=raw,if=none,id=disk0",
            "-device",
            "virtio-blk-device,drive=disk0",
        ]
    );
}

#[test]
fn cloud_hypervisor_like_uses_pcie_and_acpi_and_adds_nothing_to_the_cmdline() {
    let mut cfg = VmConfig::new("/k", "/i");
    cfg.machine = Machine::CloudHypervisorLike;
    cfg.disks = vec![Disk::raw("/root.ext4")];
    assert_eq!(
        strings(cfg.args(Accel::Kvm, 2_100_000)),
        [
            "-nodefaults",
            "-no-user-config",
            "-machine",
            "microvm,acpi=on,pcie=on,auto-kernel-cmdline=off,x-option-roms=off,rtc=on",
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-m",
            "512",
            "-smp",
            "1",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
            "/k",
            "-initrd",
            "/i",
            "-append",
            "panic=-1 console=ttyS0",
            "-drive",
            "file=/root.ext4,format=raw,if=none,id=disk0",
            "-device",
            "virtio-blk-pci,drive=disk0",
        ]
    );
}

/// Issue 21: `vm-config --append console=tty0` lost `console=ttyS0`: a
/// parameter given in `append` replaced the harness's same-named one,
/// and came first. The harness's own come first and stay; the user's
/// follow (the kernel takes the last `panic=`; every `console=` is one).
#[test]
fn append_goes_after_the_harness_parameters_and_replaces_none() {
    let mut cfg = VmConfig::new("/k", "/i");
    cfg.append = "console=tty0 panic=3".to_string();
    assert_eq!(
        cfg.cmdline(Accel::Kvm, 1_500),
        "panic=-1 console=ttyS0 console=tty0 panic=3"
    );
    // The very same word is not written twice.
    cfg.append = "console=ttyS0 quiet".to_string();
    assert_eq!(
        cfg.cmdline(Accel::Kvm, 1_500),
        "panic=-1 console=ttyS0 quiet"
    );
}

#[test]
fn tsc_rate_from_cpuinfo() {
    let info = "processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2100.000\ncpu MHz\t\t: 800.5\n";
    assert_eq!(tsc_khz_from_cpuinfo(info), Some(2_100_000));
    assert_eq!(tsc_khz_from_cpuinfo("cpu MHz : fast\n"), None);
    assert_eq!(tsc_khz_from_cpuinfo("processor : 0\n"), None);
}

#[test]
fn explicit_accel_is_not_probed() {
    let mut cfg = VmConfig::new("/k", "/i");
    cfg.accel = Accel::Tcg;
    let cmd = cfg.command();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
    assert_eq!(&args[4..8], ["-accel", "tcg", "-cpu", "max"]);
}

#[test]
fn user_network_is_restricted_and_forwards_only_loopback_ports() {
    let mut cfg = VmConfig::new("/k", "/i");
    cfg.net = Some(Nic {
        backend: Net::User {
            hostfwd: vec![
                HostFwd {
                    host_port: 8080,
                    guest_port: 80,
                },
                HostFwd {
                    host_port: 2222,
                    guest_port: 22,
                },
            ],
            guestfwd: vec![GuestFwd {
                addr: std::net::Ipv4Addr::new(10, 0, 2, 100),
                port: 80,
                host_port: 8081,
            }],
        },
        mac: Some("02:aa:bb:cc:dd:ee".into()),
    });
    let args = strings(cfg.args(Accel::Tcg, 2_100_000));
    let i = args.iter().position(|a| a == "-netdev").unwrap();
    assert_eq!(
        args[i + 1],
        "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22,\
         guestfwd=tcp:10.0.2.100:80-cmd:socat STDIO TCP:127.0.0.1:8081"
    );
    assert_eq!(args[i + 2], "-device");
    assert_eq!(
        args[i + 3],
        "virtio-net-pci,netdev=net0,romfile=,mac=02:aa:bb:cc:dd:ee"
    );
}

#[test]
fn tap_network_on_microvm_is_a_virtio_mmio_device() {
    let mut cfg = VmConfig::new("/k", "/i");
    cfg.machine = Machine::Microvm;
    cfg.net = Some(Nic::new(Net::Tap("tap,0".into())));
    let args = strings(cfg.args(Accel::Kvm, 2_100_000));
    let i = args.iter().position(|a| a == "-netdev").unwrap();
    assert_eq!(
        args[i + 1..i + 4],
        [
            "tap,id=net0,ifname=tap,,0,script=no,downscript=no",
            "-device",
            "virtio-net-device,netdev=net0"
        ]
    );
}

#[test]
fn rng_is_virtio_rng_on_urandom_after_the_other_devices() {
    let mut cfg = VmConfig::new("/k", "/i");
    cfg.rng = true;
    cfg.debug_exit = false;
    cfg.extra_args = vec!["-s".into()];
    let args = strings(cfg.args(Accel::Kvm, 2_100_000));
    let i = args.iter().position(|a| a == "-object").unwrap();
    assert_eq!(
        args[i..],
        [
            "-object",
            "rng-random,filename=/dev/urandom,id=rng0",
            "-device",
            "virtio-rng-pci,rng=rng0",
            "-s",
        ]
    );
    cfg.machine = Machine::CloudHypervisorLike;
    let args = strings(cfg.args(Accel::Kvm, 2_100_000));
    assert!(
        args.contains(&"virtio-rng-pci,rng=rng0".to_string()),
        "{args:?}"
    );
    for machine in [Machine::Microvm, Machine::FirecrackerLike] {
        cfg.machine = machine;
        cfg.disks = vec![Disk::raw("/d.raw")];
        let args = strings(cfg.args(Accel::Kvm, 2_100_000));
        let i = args.iter().position(|a| a == "-object").unwrap();
        assert_eq!(
            args[i..],
            [
                "-object",
                "rng-random,filename=/dev/urandom,id=rng0",
                "-device",
                "virtio-rng-device,rng=rng0",
                "-s",
            ],
            "{machine:?}"
        );
    }
    cfg.rng = false;
    let args = strings(cfg.args(Accel::Kvm, 2_100_000));
    assert!(!args.iter().any(|a| a.contains("rng")), "{args:?}");
}
