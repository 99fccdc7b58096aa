use super::*;

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn entry(toml_text: &str) -> Result<NetworkConfig, String> {
    toml::from_str(toml_text).map_err(|e| e.message().to_string())
}

#[test]
fn ip_param_static_gives_address_gateway_device_host_name_and_dns() {
    let p =
        parse_ip_param("10.0.2.20::10.0.2.2:255.255.255.0:vm1:eth0:off:10.0.2.3:1.1.1.1").unwrap();
    let IpParam::Interface(e, host) = p else {
        panic!("{p:?}")
    };
    assert_eq!(host.as_deref(), Some("vm1"));
    assert_eq!(e.name.as_deref(), Some("eth0"));
    assert_eq!(e.addresses, vec![cidr("10.0.2.20/24")]);
    assert_eq!(e.gateway, Some("10.0.2.2".parse().unwrap()));
    assert_eq!(
        e.dns,
        vec![
            "10.0.2.3".parse::<IpAddr>().unwrap(),
            "1.1.1.1".parse().unwrap()
        ]
    );
    assert!(!e.dhcp);
}

#[test]
fn ip_param_without_netmask_takes_the_address_class() {
    let IpParam::Interface(e, _) = parse_ip_param("10.1.2.3").unwrap() else {
        panic!()
    };
    assert_eq!(e.addresses, vec![cidr("10.1.2.3/8")]);
    assert_eq!(e.name, None);
    let IpParam::Interface(e, _) = parse_ip_param("192.168.7.9:::::eth1").unwrap() else {
        panic!()
    };
    assert_eq!(e.addresses, vec![cidr("192.168.7.9/24")]);
    assert_eq!(e.name.as_deref(), Some("eth1"));
}

#[test]
fn ip_param_dhcp_forms() {
    for v in ["dhcp", "on", "any", ":::::eth0:dhcp", "eth0:dhcp"] {
        let IpParam::Interface(e, _) = parse_ip_param(v).unwrap() else {
            panic!("{v}")
        };
        assert!(e.dhcp, "{v}");
        assert!(e.addresses.is_empty(), "{v}");
    }
    let IpParam::Interface(e, _) = parse_ip_param("eth0:dhcp").unwrap() else {
        panic!()
    };
    assert_eq!(e.name.as_deref(), Some("eth0"));
    assert_eq!(parse_ip_param("off"), Ok(IpParam::Off));
    assert_eq!(parse_ip_param("none"), Ok(IpParam::Off));
}

#[test]
fn ip_param_the_kernel_would_reject_is_an_error_naming_the_field() {
    let cases = [
        ("", "empty value"),
        (
            "10.0.2.300",
            "client address \"10.0.2.300\" is not an IPv4 address",
        ),
        (
            "10.0.2.20::10.0.2.2:255.0.255.0",
            "netmask 255.0.255.0 is not contiguous",
        ),
        (
            "10.0.2.20::10.0.2.2:255.255.255.0::eth0:bootp",
            "autoconf \"bootp\" is not supported (off, none, dhcp, on, any)",
        ),
        (
            "10.0.2.20::10.0.9.1:255.255.255.0",
            "the first interface: gateway 10.0.9.1 is outside every subnet of the interface",
        ),
        ("::::::off", "no client address and autoconf off"),
        ("1:2:3:4:5:6:7:8:9:10:11", "11 fields, at most 10"),
        (
            "10.0.2.20:::::eth0:off:8.8.8",
            "dns0 \"8.8.8\" is not an IPv4 address",
        ),
    ];
    for (v, want) in cases {
        assert_eq!(parse_ip_param(v), Err(want.to_string()), "ip={v}");
    }
}

#[test]
fn prefix_and_subnets() {
    assert_eq!(prefix_of("255.255.255.0".parse().unwrap()), Some(24));
    assert_eq!(prefix_of("0.0.0.0".parse().unwrap()), Some(0));
    assert_eq!(prefix_of("255.255.255.255".parse().unwrap()), Some(32));
    assert_eq!(prefix_of("255.255.0.255".parse().unwrap()), None);
    assert!(cidr("10.0.2.15/24").contains("10.0.2.2".parse().unwrap()));
    assert!(!cidr("10.0.2.15/24").contains("10.0.3.2".parse().unwrap()));
    assert!(cidr("fd00::2/64").contains("fd00::1".parse().unwrap()));
    assert!(!cidr("fd00::2/64").contains("10.0.2.2".parse().unwrap()));
    assert!(cidr("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
    assert_eq!(cidr("10.0.2.15/24").network(), cidr("10.0.2.0/24"));
    assert_eq!(cidr("fd00::2/64").to_string(), "fd00::2/64");
}

#[test]
fn bad_values_are_refused_while_deserializing() {
    assert_eq!(
        entry("name = \"eth0\"\naddresses = [\"10.0.0.2/33\"]"),
        Err("\"10.0.0.2/33\": prefix length \"33\" is outside 0..32".into())
    );
    assert_eq!(
        entry("name = \"eth0\"\naddresses = [\"10.0.0.x/24\"]"),
        Err("\"10.0.0.x\" is not an IP address".into())
    );
    assert_eq!(
        entry("name = \"eth0\"\naddresses = [\"10.0.0.2\"]"),
        Err("\"10.0.0.2\" has no prefix length (10.0.0.2/24)".into())
    );
    assert_eq!(
        entry("mac = \"52:54:00:12:34\""),
        Err("\"52:54:00:12:34\" is not a MAC address (52:54:00:12:34:56)".into())
    );
    assert!(entry("name = \"eth0\"\nadresses = []")
        .unwrap_err()
        .starts_with("unknown field `adresses`"));
}

#[test]
fn checks_of_several_fields() {
    let e =
        entry("name = \"eth0\"\naddresses = [\"10.0.0.2/24\"]\ngateway = \"10.0.1.1\"").unwrap();
    assert_eq!(
        check_all(&[e]),
        Err((
            0,
            "gateway",
            "eth0: gateway 10.0.1.1 is outside every subnet of the interface".into()
        ))
    );
    let a = entry("name = \"eth0\"\ndhcp = true").unwrap();
    assert_eq!(
        check_all(&[a.clone(), a.clone()]),
        Err((
            1,
            "name",
            "eth0 has two entries (network[0] and network[1])".into()
        ))
    );
    let both = entry("name = \"eth0\"\ndhcp = true\naddresses = [\"10.0.0.2/24\"]").unwrap();
    assert_eq!(
        check_all(&[both]),
        Err((
            0,
            "addresses",
            "eth0: give either dhcp = true or static addresses, not both".into()
        ))
    );
    let mtu = entry("mac = \"52:54:00:AB:cd:01\"\ndhcp = true\nmtu = 20").unwrap();
    assert_eq!(
        check_all(&[mtu]),
        Err((
            0,
            "mtu",
            "52:54:00:ab:cd:01: mtu 20 is outside 68..65535".into()
        ))
    );
    let v6 = entry(
        "name = \"eth0\"\naddresses = [\"10.0.0.2/24\", \"fd00::2/64\"]\ngateway = \"fd00::1\"",
    )
    .unwrap();
    let eth1 = entry("name = \"eth1\"\ndhcp = true").unwrap();
    assert_eq!(check_all(&[v6, eth1]), Ok(()));
}

#[test]
fn json_round_trip_leaves_defaults_out() {
    let e = entry("name = \"eth0\"\naddresses = [\"10.0.0.2/24\"]\nroutes = [{ to = \"10.1.0.0/16\", via = \"10.0.0.1\" }]").unwrap();
    let json = serde_json::to_string(&e).unwrap();
    assert_eq!(
        json,
        r#"{"name":"eth0","addresses":["10.0.0.2/24"],"routes":[{"to":"10.1.0.0/16","via":"10.0.0.1"}]}"#
    );
    assert_eq!(serde_json::from_str::<NetworkConfig>(&json).unwrap(), e);
}
