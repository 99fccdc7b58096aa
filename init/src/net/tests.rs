use super::*;
use mkrootfs_config::network::Mac;

fn link(name: &str, index: u32) -> Link {
    Link {
        index,
        name: name.into(),
        mac: Some(Mac([0x52, 0x54, 0, 0x12, 0x34, index as u8])),
        ethernet: name != "lo",
    }
}

pub(crate) fn applied(name: &str) -> Applied {
    Applied {
        link: link(name, 2),
        addresses: vec!["10.0.2.15/24".parse().unwrap()],
        gateway: Some("10.0.2.2".parse().unwrap()),
        routes: Vec::new(),
        mtu: None,
        dns: vec!["10.0.2.3".parse().unwrap()],
        search: vec!["example.test".into()],
        lease: None,
    }
}

#[test]
fn ip_on_the_command_line_replaces_the_profile() {
    let profile = vec![NetworkConfig {
        name: Some("eth0".into()),
        dhcp: true,
        ..NetworkConfig::default()
    }];
    let (list, host) = entries(&profile, "console=ttyS0 quiet").unwrap();
    assert_eq!(list, profile);
    assert_eq!(host, None);
    let (list, host) = entries(
        &profile,
        "ip=10.0.2.21::10.0.2.2:255.255.255.0:web:eth0:off quiet",
    )
    .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].addresses, vec!["10.0.2.21/24".parse().unwrap()]);
    assert_eq!(host.as_deref(), Some("web"));
    let (list, _) = entries(&profile, "ip=off").unwrap();
    assert!(list.is_empty());
}

#[test]
fn bad_ip_is_the_fatal_message() {
    let e = entries(&[], "ip=10.0.2.300 quiet").unwrap_err();
    assert_eq!(
        e.to_string(),
        "ip=10.0.2.300: client address \"10.0.2.300\" is not an IPv4 address"
    );
    let e = entries(&[], "ip=eth0:dhcp ip=10.0.0.2:::255.0.0.0::eth0").unwrap_err();
    assert_eq!(
        e.to_string(),
        "eth0 has two entries (network[0] and network[1])"
    );
}

#[test]
fn links_are_matched_by_name_mac_or_first_ethernet() {
    let links = [link("lo", 1), link("eth0", 2), link("eth1", 3)];
    let by = |e: NetworkConfig, claimed: &[u32]| find(&links, &e, claimed).map(|l| l.name);
    let named = NetworkConfig {
        name: Some("eth1".into()),
        ..NetworkConfig::default()
    };
    assert_eq!(by(named, &[]).as_deref(), Some("eth1"));
    let mac = NetworkConfig {
        mac: Some(Mac([0x52, 0x54, 0, 0x12, 0x34, 3])),
        ..NetworkConfig::default()
    };
    assert_eq!(by(mac, &[]).as_deref(), Some("eth1"));
    assert_eq!(by(NetworkConfig::default(), &[]).as_deref(), Some("eth0"));
    assert_eq!(by(NetworkConfig::default(), &[2]).as_deref(), Some("eth1"));
    let missing = NetworkConfig {
        name: Some("eth7".into()),
        ..NetworkConfig::default()
    };
    assert_eq!(by(missing, &[]), None);
}

#[test]
fn one_line_per_interface() {
    assert_eq!(
        describe(&applied("eth0")),
        "eth0 52:54:00:12:34:02: 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3 (static)"
    );
    let mut a = applied("eth0");
    let reply = dhcp::tests::slirp_lease();
    a.lease = Some((reply, Instant::now(), Instant::now()));
    a.mtu = Some(1500);
    assert_eq!(
        describe(&a),
        "eth0 52:54:00:12:34:02: 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3 mtu 1500 (dhcp from 10.0.2.2, lease 86400 s)"
    );
}

#[test]
fn a_lease_adds_to_the_entry() {
    let mut a = applied("eth0");
    a.addresses.clear();
    a.gateway = None;
    a.dns = vec!["192.0.2.53".parse().unwrap()];
    let mut reply = dhcp::tests::slirp_lease();
    reply.domain = Some("lan".into());
    adopt(&mut a, &reply);
    assert_eq!(a.addresses, vec!["10.0.2.15/24".parse().unwrap()]);
    assert_eq!(a.gateway, Some("10.0.2.2".parse().unwrap()));
    let dns: Vec<String> = a.dns.iter().map(|d| d.to_string()).collect();
    assert_eq!(dns, ["192.0.2.53", "10.0.2.3"]);
    assert_eq!(a.search, ["example.test", "lan"]);
    // The entry's gateway wins over the server's router; without a router
    // (QEMU's restricted user network sends none) it stays.
    let mut b = applied("eth0");
    b.gateway = Some("10.0.2.9".parse().unwrap());
    adopt(&mut b, &reply);
    assert_eq!(b.gateway, Some("10.0.2.9".parse().unwrap()));
    let mut c = applied("eth0");
    reply.routers.clear();
    adopt(&mut c, &reply);
    assert_eq!(c.gateway, Some("10.0.2.2".parse().unwrap()));
    c.gateway = None;
    adopt(&mut c, &reply);
    assert_eq!(c.gateway, None);
}

#[test]
fn resolv_conf_and_hosts_text() {
    let a = applied("eth0");
    assert_eq!(
        resolv::resolv_conf(std::slice::from_ref(&a)).unwrap(),
        "# written by mkrootfs-init\nnameserver 10.0.2.3\nsearch example.test\n"
    );
    assert_eq!(resolv::resolv_conf(&[]), None);
    assert_eq!(
        resolv::hosts("127.0.0.1 localhost\n10.9.9.9 web\n# keep\n", "web", &[a]),
        "127.0.0.1 localhost\n# keep\n10.0.2.15 web\n"
    );
    assert_eq!(
        resolv::hosts("", "web", &[]),
        "127.0.0.1 localhost\n::1 localhost\n127.0.1.1 web\n"
    );
}

#[test]
fn files_are_written_under_etc_replacing_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        "/nonexistent/stub-resolv.conf",
        dir.path().join("resolv.conf"),
    )
    .unwrap();
    resolv::write_files(dir.path(), &[applied("eth0")], Some("web"));
    let conf = dir.path().join("resolv.conf");
    assert!(!conf.is_symlink());
    assert_eq!(
        std::fs::read_to_string(conf).unwrap(),
        "# written by mkrootfs-init\nnameserver 10.0.2.3\nsearch example.test\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hosts")).unwrap(),
        "127.0.0.1 localhost\n::1 localhost\n10.0.2.15 web\n"
    );
}
