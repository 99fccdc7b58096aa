use super::*;
use serde_json::Value;

/// Firecracker's API definitions reachable from `FullVmConfiguration`,
/// converted from src/firecracker/swagger/firecracker.yaml (commit in the
/// file's "source") with `yaml.safe_load` + `json.dump`.
const FIRECRACKER_SCHEMA: &str = include_str!("firecracker-schema.json");

/// Checks `value` against a swagger 2 schema: types, required fields, no
/// unknown fields, enums, integer bounds; `$ref`s resolved in `defs`.
fn check(schema: &Value, defs: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        return check(&defs[name], defs, value, at, errors);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = value.as_object() else {
                return errors.push(format!("{at}: expected an object, got {value}"));
            };
            let props = schema.get("properties").and_then(Value::as_object);
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let req = req.as_str().unwrap();
                if !obj.contains_key(req) {
                    errors.push(format!("{at}: missing required field {req}"));
                }
            }
            for (k, v) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => check(s, defs, v, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}: unknown field {k}")),
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, v) in items.iter().enumerate() {
                    check(&schema["items"], defs, v, &format!("{at}[{i}]"), errors);
                }
            }
            None => errors.push(format!("{at}: expected an array, got {value}")),
        },
        Some("string") => {
            if !value.is_string() {
                errors.push(format!("{at}: expected a string, got {value}"));
            }
        }
        Some("boolean") => {
            if !value.is_boolean() {
                errors.push(format!("{at}: expected a boolean, got {value}"));
            }
        }
        Some("integer") => match value.as_i64() {
            Some(n) => {
                if let Some(min) = schema.get("minimum").and_then(Value::as_i64) {
                    if n < min {
                        errors.push(format!("{at}: {n} is below the minimum {min}"));
                    }
                }
                if let Some(max) = schema.get("maximum").and_then(Value::as_i64) {
                    if n > max {
                        errors.push(format!("{at}: {n} is above the maximum {max}"));
                    }
                }
            }
            None => errors.push(format!("{at}: expected an integer, got {value}")),
        },
        other => errors.push(format!(
            "{at}: schema type {other:?} not handled by this check"
        )),
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
}

fn schema_errors(config: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(FIRECRACKER_SCHEMA).unwrap();
    let defs = &schema["definitions"];
    let mut errors = Vec::new();
    check(
        &defs["FullVmConfiguration"],
        defs,
        config,
        "config",
        &mut errors,
    );
    errors
}

fn full_guest() -> Guest {
    let mut g = Guest::new("/k/vmlinux", "/img/app.cpio.zst");
    g.disks = vec![
        GuestDisk {
            path: "/img/root.ext4".into(),
            read_only: false,
        },
        GuestDisk {
            path: "/img/data.erofs".into(),
            read_only: true,
        },
    ];
    g.root_disk = true;
    g.memory_mib = 256;
    g.cpus = 2;
    g.append = "quiet mkrootfs.debug".into();
    g.vsock = Some(GuestVsock {
        cid: 3,
        socket: "/run/app/vsock.sock".into(),
    });
    g
}

#[test]
fn firecracker_json_field_by_field() {
    assert_eq!(
        full_guest().firecracker().to_json(),
        r#"{
  "boot-source": {
    "kernel_image_path": "/k/vmlinux",
    "initrd_path": "/img/app.cpio.zst",
    "boot_args": "console=ttyS0 reboot=k panic=1 pci=off mkrootfs.shutdown=reboot quiet mkrootfs.debug"
  },
  "drives": [
    {
      "drive_id": "rootfs",
      "path_on_host": "/img/root.ext4",
      "is_root_device": true,
      "is_read_only": false
    },
    {
      "drive_id": "disk1",
      "path_on_host": "/img/data.erofs",
      "is_root_device": false,
      "is_read_only": true
    }
  ],
  "machine-config": {
    "vcpu_count": 2,
    "mem_size_mib": 256
  },
  "vsock": {
    "guest_cid": 3,
    "uds_path": "/run/app/vsock.sock"
  },
  "entropy": {}
}
"#
    );
}

#[test]
fn firecracker_json_is_valid_against_firecrackers_api_schema() {
    let mut no_rng = Guest::new("/k", "/i");
    no_rng.rng = false;
    for guest in [full_guest(), Guest::new("/k", "/i"), no_rng] {
        let json: Value = serde_json::from_str(&guest.firecracker().to_json()).unwrap();
        assert_eq!(schema_errors(&json), Vec::<String>::new(), "{json}");
    }
}

#[test]
fn the_schema_check_catches_missing_unknown_and_mistyped_fields() {
    let mut json: Value = serde_json::from_str(&full_guest().firecracker().to_json()).unwrap();
    json["boot-source"]
        .as_object_mut()
        .unwrap()
        .remove("kernel_image_path");
    json["machine-config"]["vcpu_count"] = Value::from(64);
    json["drives"][0]["is_read_only"] = Value::from("no");
    json["drives"][1]["read_only"] = Value::from(true);
    json["vsock"]["guest_cid"] = Value::from(2);
    json["entropy"]["rate_limiter"] = serde_json::json!({"bandwidth": {"size": -1}});
    assert_eq!(
        schema_errors(&json),
        [
            "config.boot-source: missing required field kernel_image_path",
            "config.drives[0].is_read_only: expected a boolean, got \"no\"",
            "config.drives[1]: unknown field read_only",
            "config.entropy.rate_limiter.bandwidth: missing required field refill_time",
            "config.entropy.rate_limiter.bandwidth.size: -1 is below the minimum 0",
            "config.machine-config.vcpu_count: 64 is above the maximum 32",
            "config.vsock.guest_cid: 2 is below the minimum 3",
        ]
    );
}

#[test]
fn firecracker_json_reads_back_and_rejects_unknown_fields() {
    let cfg = full_guest().firecracker();
    assert_eq!(FirecrackerConfig::from_json(&cfg.to_json()).unwrap(), cfg);
    let err = FirecrackerConfig::from_json(r#"{"boot-source":{"kernel_image_path":"k"},"drives":[],"machine-config":{"vcpu_count":1,"mem_size_mib":128},"balloon":{}}"#)
        .unwrap_err();
    assert!(
        err.to_string().starts_with("unknown field `balloon`"),
        "{err}"
    );
}

/// Cloud Hypervisor's documented options (`cloud-hypervisor --help`), from
/// cloud-hypervisor/src/main.rs and the `parse` functions of
/// vmm/src/config.rs at ae44c2971c83dd2b1bd704fa81102ec0dec4e7d4: each
/// option and, for `key=value` lists, the keys its parser accepts.
const CH_OPTIONS: &[(&str, Option<&[&str]>)] = &[
    ("--kernel", None),
    ("--rng", Some(&["src", "iommu"])),
    ("--initramfs", None),
    ("--cmdline", None),
    (
        "--disk",
        Some(&[
            "path",
            "readonly",
            "direct",
            "iommu",
            "num_queues",
            "queue_size",
            "vhost_user",
            "socket",
            "bw_size",
            "bw_one_time_burst",
            "bw_refill_time",
            "ops_size",
            "ops_one_time_burst",
            "ops_refill_time",
            "id",
            "pci_segment",
            "pci_device_id",
            "rate_limit_group",
            "queue_affinity",
            "serial",
            "backing_files",
            "sparse",
            "image_type",
            "lock_granularity",
        ]),
    ),
    (
        "--cpus",
        Some(&[
            "boot",
            "max",
            "topology",
            "kvm_hyperv",
            "max_phys_bits",
            "affinity",
            "features",
            "nested",
            "core_scheduling",
            "profile",
        ]),
    ),
    (
        "--memory",
        Some(&[
            "size",
            "file",
            "mergeable",
            "shared",
            "hugepages",
            "hugepage_size",
            "hotplug_method",
            "hotplug_size",
            "hotplugged_size",
            "prefault",
            "reserve",
            "thp",
        ]),
    ),
    (
        "--serial",
        Some(&["off", "pty", "tty", "null", "file", "socket"]),
    ),
    (
        "--console",
        Some(&["off", "pty", "tty", "null", "file", "socket"]),
    ),
    (
        "--net",
        Some(&[
            "tap",
            "ip",
            "mask",
            "mac",
            "host_mac",
            "mtu",
            "iommu",
            "num_queues",
            "queue_size",
            "id",
            "fd",
            "vhost_user",
            "socket",
            "vhost_mode",
            "bw_size",
            "bw_one_time_burst",
            "bw_refill_time",
            "ops_size",
            "ops_one_time_burst",
            "ops_refill_time",
            "pci_segment",
            "offload_tso",
            "offload_ufo",
            "offload_csum",
        ]),
    ),
    (
        "--vsock",
        Some(&[
            "cid",
            "socket",
            "iommu",
            "id",
            "pci_segment",
            "pci_device_id",
        ]),
    ),
];

/// Checks a Cloud Hypervisor argument list against [`CH_OPTIONS`] and the
/// value formats its parsers accept; returns the problems found.
fn ch_errors(args: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some((_, keys)) = CH_OPTIONS.iter().find(|(f, _)| f == flag) else {
            errors.push(format!("unknown option {flag}"));
            it.next();
            continue;
        };
        let Some(value) = it.next() else {
            errors.push(format!("{flag} has no value"));
            continue;
        };
        let Some(keys) = keys else { continue };
        for item in value.split(',') {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            if !keys.contains(&k) {
                errors.push(format!("{flag}: unknown key {k}"));
            }
            let ok = match (flag.as_str(), k) {
                ("--disk", "path") | ("--vsock", "socket") | ("--rng", "src") => v.starts_with('/'),
                ("--disk", "readonly") => v == "on" || v == "off",
                ("--cpus", "boot") => v.parse::<u8>().is_ok_and(|n| n >= 1),
                // ByteSized: a number with an optional K, M or G suffix.
                ("--memory", "size") => v
                    .strip_suffix(['K', 'M', 'G'])
                    .unwrap_or(v)
                    .parse::<u64>()
                    .is_ok(),
                ("--net", "mac") => v.parse::<mkrootfs_config::network::Mac>().is_ok(),
                ("--net", "tap") => !v.is_empty() && v.len() <= 15,
                ("--vsock", "cid") => v.parse::<u32>().is_ok_and(|n| n >= 3),
                ("--serial" | "--console", "off" | "pty" | "tty" | "null") => v.is_empty(),
                _ => true,
            };
            if !ok {
                errors.push(format!("{flag}: bad value {item:?}"));
            }
        }
    }
    errors
}

#[test]
fn cloud_hypervisor_command_line_option_by_option() {
    let args = full_guest().cloud_hypervisor();
    assert_eq!(
        args,
        [
            "--kernel",
            "/k/vmlinux",
            "--initramfs",
            "/img/app.cpio.zst",
            "--cmdline",
            "console=ttyS0 root=/dev/vda rw quiet mkrootfs.debug",
            "--disk",
            "path=/img/root.ext4",
            "--disk",
            "path=/img/data.erofs,readonly=on",
            "--cpus",
            "boot=2",
            "--memory",
            "size=256M",
            "--serial",
            "tty",
            "--console",
            "off",
            "--vsock",
            "cid=3,socket=/run/app/vsock.sock",
            "--rng",
            "src=/dev/urandom",
        ]
    );
    assert_eq!(ch_errors(&args), Vec::<String>::new());
    assert_eq!(
        ch_errors(&Guest::new("/k", "/i").cloud_hypervisor()),
        Vec::<String>::new()
    );
}

#[test]
fn the_cloud_hypervisor_check_catches_bad_options() {
    let args: Vec<String> = [
        "--kernal",
        "/k",
        "--memory",
        "size=512MiB",
        "--disk",
        "path=/d,ro=on",
        "--serial",
        "stdio",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        ch_errors(&args),
        [
            "unknown option --kernal",
            "--memory: bad value \"size=512MiB\"",
            "--disk: unknown key ro",
            "--serial: unknown key stdio",
        ]
    );
}

#[test]
fn bzimage_for_firecracker_or_cloud_hypervisor_says_how_to_extract() {
    let dir = tempfile::tempdir().unwrap();
    let bz = dir.path().join("vmlinuz");
    let mut bytes = vec![0u8; 0x400];
    bytes[0x202..0x206].copy_from_slice(b"HdrS");
    std::fs::write(&bz, &bytes).unwrap();
    let err = check_kernel(Target::Firecracker, &bz).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{0} is a bzImage, but Firecracker boots an uncompressed ELF vmlinux: run `mkrootfs kernel extract-vmlinux {0} -o vmlinux` and pass --kernel vmlinux",
            bz.display()
        )
    );
    let err = check_kernel(Target::CloudHypervisor, &bz).unwrap_err();
    assert!(
        err.to_string().contains("but Cloud Hypervisor boots"),
        "{err}"
    );
    check_kernel(Target::QemuMicrovm, &bz).unwrap();

    let elf = dir.path().join("vmlinux");
    std::fs::write(&elf, b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0").unwrap();
    check_kernel(Target::Firecracker, &elf).unwrap();

    let other = dir.path().join("Image");
    std::fs::write(&other, b"MZ").unwrap();
    assert_eq!(
        check_kernel(Target::CloudHypervisor, &other).unwrap_err().to_string(),
        format!("{} is not an ELF vmlinux, which Cloud Hypervisor needs (nor a bzImage to extract one from)", other.display())
    );
    let missing = dir.path().join("missing");
    assert_eq!(
        check_kernel(Target::Firecracker, &missing)
            .unwrap_err()
            .to_string(),
        format!("read kernel {}", missing.display())
    );
}

#[test]
fn shell_quoting() {
    assert_eq!(shell_quote("-append"), "-append");
    assert_eq!(shell_quote("file=/a,b"), "file=/a,b");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

fn networked_guest() -> Guest {
    let mut g = full_guest();
    g.net = Some(GuestNet {
        backend: NetBackend::Tap("tap-app".into()),
        mac: mac_for("app"),
        ip: Some(
            ip_param(
                "10.0.0.2/24".parse().unwrap(),
                Some("10.0.0.1".parse().unwrap()),
                None,
                "eth0",
            )
            .unwrap(),
        ),
    });
    g
}

#[test]
fn macs_are_stable_locally_administered_unicast_and_differ_by_name() {
    let a = mac_for("app");
    assert_eq!(a, mac_for("app"));
    assert_ne!(a, mac_for("app2"));
    for m in [a, mac_for(""), mac_for("web-1")] {
        assert_eq!(m.0[0] & 0x03, 0x02, "{m}: locally administered, unicast");
    }
}

#[test]
fn ip_param_is_the_kernels_syntax_and_refuses_what_the_init_would() {
    assert_eq!(
        ip_param(
            "10.0.0.2/24".parse().unwrap(),
            Some("10.0.0.1".parse().unwrap()),
            None,
            "eth0"
        )
        .unwrap(),
        "ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off"
    );
    assert_eq!(
        ip_param("192.168.7.9/16".parse().unwrap(), None, Some("web"), "eth1").unwrap(),
        "ip=192.168.7.9:::255.255.0.0:web:eth1:off"
    );
    assert!(ip_param("fd00::2/64".parse().unwrap(), None, None, "eth0").is_err());
    let outside = ip_param(
        "10.0.0.2/24".parse().unwrap(),
        Some("10.9.0.1".parse().unwrap()),
        None,
        "eth0",
    );
    assert!(outside.unwrap_err().contains("outside every subnet"));
}

#[test]
fn firecracker_network_interface_field_by_field() {
    let cfg = networked_guest().firecracker();
    let json: Value = serde_json::from_str(&cfg.to_json()).unwrap();
    let nics = json["network-interfaces"].as_array().unwrap();
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0]["iface_id"], "eth0");
    assert_eq!(nics[0]["host_dev_name"], "tap-app");
    assert_eq!(nics[0]["guest_mac"], mac_for("app").to_string());
    assert_eq!(nics[0].as_object().unwrap().len(), 3);
    assert_eq!(
        json["boot-source"]["boot_args"],
        "console=ttyS0 reboot=k panic=1 pci=off mkrootfs.shutdown=reboot ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off quiet mkrootfs.debug"
    );
    assert_eq!(schema_errors(&json), Vec::<String>::new(), "{json}");
    assert_eq!(FirecrackerConfig::from_json(&cfg.to_json()).unwrap(), cfg);
    // Without a network, no key at all (older configurations stay byte-identical).
    assert!(full_guest()
        .firecracker()
        .to_json()
        .find("network")
        .is_none());
}

#[test]
fn cloud_hypervisor_net_option() {
    let args = networked_guest().cloud_hypervisor();
    let i = args.iter().position(|a| a == "--net").unwrap();
    assert_eq!(args[i + 1], format!("tap=tap-app,mac={}", mac_for("app")));
    let c = args.iter().position(|a| a == "--cmdline").unwrap();
    assert_eq!(
        args[c + 1],
        "console=ttyS0 root=/dev/vda rw ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off quiet mkrootfs.debug"
    );
    assert_eq!(ch_errors(&args), Vec::<String>::new());
}

#[test]
fn run_net_specs_forward_only_from_loopback() {
    assert_eq!(parse_net("user"), Ok(NetBackend::User { hostfwd: vec![] }));
    assert_eq!(
        parse_net("user,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22"),
        Ok(NetBackend::User {
            hostfwd: vec![(8080, 80), (2222, 22)]
        })
    );
    assert_eq!(parse_net("tap=tap0"), Ok(NetBackend::Tap("tap0".into())));
    for (bad, why) in [
        ("user,hostfwd=tcp::8080-:80", "must be 127.0.0.1"),
        ("user,hostfwd=tcp:0.0.0.0:8080-:80", "must be 127.0.0.1"),
        ("user,hostfwd=tcp:8080-:80", "must be 127.0.0.1"),
        ("user,hostfwd=udp:127.0.0.1:53-:53", "only tcp"),
        ("user,restrict=off", "only hostfwd="),
        ("user,hostfwd=tcp:127.0.0.1:0-:80", "not a port"),
        ("user,hostfwd=tcp:127.0.0.1:80-10.0.2.15:80", "guest side"),
        ("bridge=br0", "expected user"),
        ("tap=", "not an interface name"),
    ] {
        let e = parse_net(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn entropy_device_field_by_field_and_left_out_on_request() {
    let cfg = full_guest().firecracker();
    let json: Value = serde_json::from_str(&cfg.to_json()).unwrap();
    // An EntropyDevice with no rate_limiter: unthrottled.
    assert_eq!(json["entropy"], serde_json::json!({}));
    assert_eq!(schema_errors(&json), Vec::<String>::new(), "{json}");
    assert_eq!(FirecrackerConfig::from_json(&cfg.to_json()).unwrap(), cfg);
    assert!(FirecrackerConfig::from_json(
        r#"{"boot-source":{"kernel_image_path":"k"},"drives":[],"machine-config":{"vcpu_count":1,"mem_size_mib":128},"entropy":{"rate":1}}"#
    )
    .unwrap_err()
    .to_string()
    .starts_with("unknown field `rate`"));

    let args = full_guest().cloud_hypervisor();
    let i = args.iter().position(|a| a == "--rng").unwrap();
    assert_eq!(args[i + 1], "src=/dev/urandom");
    assert_eq!(args.iter().filter(|a| *a == "--rng").count(), 1);

    let mut g = full_guest();
    g.rng = false;
    assert!(g.firecracker().entropy.is_none());
    assert!(!g.firecracker().to_json().contains("entropy"));
    assert!(!g.cloud_hypervisor().contains(&"--rng".to_string()));
    assert_eq!(ch_errors(&g.cloud_hypervisor()), Vec::<String>::new());
}

#[test]
fn firecracker_config_drive_field_by_field_after_the_disks() {
    let mut g = full_guest();
    g.config_drive = Some("/img/vm-1.cfg".into());
    let cfg = g.firecracker();
    let json: Value = serde_json::from_str(&cfg.to_json()).unwrap();
    let drives = json["drives"].as_array().unwrap();
    assert_eq!(drives.len(), 3);
    assert_eq!(drives[0]["drive_id"], "rootfs");
    assert_eq!(drives[1]["drive_id"], "disk1");
    let d = &drives[2];
    assert_eq!(d["drive_id"], "config");
    assert_eq!(d["path_on_host"], "/img/vm-1.cfg");
    assert_eq!(d["is_root_device"], false);
    assert_eq!(d["is_read_only"], true);
    assert_eq!(d.as_object().unwrap().len(), 4);
    assert_eq!(schema_errors(&json), Vec::<String>::new(), "{json}");
    assert_eq!(FirecrackerConfig::from_json(&cfg.to_json()).unwrap(), cfg);
    // Without one, the drives are as before.
    assert_eq!(full_guest().firecracker().drives.len(), 2);

    // Alone it is /dev/vda, and never the root device, even with root_disk.
    let mut alone = Guest::new("/k", "/i");
    alone.config_drive = Some("/c".into());
    alone.root_disk = true;
    let drives = alone.firecracker().drives;
    assert_eq!(
        drives,
        [FirecrackerDrive {
            drive_id: "config".into(),
            path_on_host: "/c".into(),
            is_root_device: false,
            is_read_only: true,
        }]
    );
    assert!(!alone.cmdline("").contains("root="));
}

#[test]
fn cloud_hypervisor_config_drive_is_the_last_disk_read_only() {
    let mut g = full_guest();
    g.config_drive = Some("/img/vm-1.cfg".into());
    let args = g.cloud_hypervisor();
    let disks: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--disk")
        .map(|w| w[1].as_str())
        .collect();
    assert_eq!(
        disks,
        [
            "path=/img/root.ext4",
            "path=/img/data.erofs,readonly=on",
            "path=/img/vm-1.cfg,readonly=on"
        ]
    );
    assert_eq!(ch_errors(&args), Vec::<String>::new());
    // The root stays /dev/vda.
    let c = args.iter().position(|a| a == "--cmdline").unwrap();
    assert!(args[c + 1].contains("root=/dev/vda rw"), "{}", args[c + 1]);
}

/// `mmds-config` is in Firecracker's schema, version 2 on the tap's
/// interface; a guest without a tap has none (nothing to answer on).
#[test]
fn firecracker_mmds_config_follows_the_schema() {
    let mut g = full_guest();
    g.mmds = Some(std::net::Ipv4Addr::new(169, 254, 169, 254));
    g.net = Some(GuestNet {
        backend: NetBackend::Tap("tap0".into()),
        mac: mac_for("vm-1"),
        ip: None,
    });
    let cfg = g.firecracker();
    let json: Value = serde_json::from_str(&cfg.to_json()).unwrap();
    assert_eq!(
        json["mmds-config"],
        serde_json::json!({"version": "V2", "network_interfaces": ["eth0"], "ipv4_address": "169.254.169.254"})
    );
    assert_eq!(schema_errors(&json), Vec::<String>::new(), "{json}");
    assert_eq!(FirecrackerConfig::from_json(&cfg.to_json()).unwrap(), cfg);
    g.net = None;
    assert_eq!(g.firecracker().mmds_config, None);
}
