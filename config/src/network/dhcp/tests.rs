use super::*;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

/// An ACK as QEMU's user-network server (slirp's bootp.c) sends it:
/// 10.0.2.15/24, router and server 10.0.2.2, DNS 10.0.2.3, lease 86400 s.
fn slirp_ack(xid: u32) -> Vec<u8> {
    let mut m = vec![0u8; HEADER_LEN];
    m[0] = 2;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[16..20].copy_from_slice(&[10, 0, 2, 15]);
    m[20..24].copy_from_slice(&[10, 0, 2, 2]);
    m[28..34].copy_from_slice(&MAC);
    m[236..240].copy_from_slice(&[99, 130, 83, 99]);
    m.extend([53, 1, 5]);
    m.extend([54, 4, 10, 0, 2, 2]);
    m.extend([51, 4, 0, 1, 0x51, 0x80]);
    m.extend([1, 4, 255, 255, 255, 0]);
    m.extend([3, 4, 10, 0, 2, 2]);
    m.extend([6, 4, 10, 0, 2, 3]);
    m.push(255);
    m.resize(300, 0);
    m
}

#[test]
fn discover_bytes() {
    let m = encode(0x01020304, MAC, 0, None);
    let mut want = vec![0u8; 240];
    want[..4].copy_from_slice(&[1, 1, 6, 0]);
    want[4..8].copy_from_slice(&[1, 2, 3, 4]);
    want[10] = 0x80;
    want[28..34].copy_from_slice(&MAC);
    want[236..240].copy_from_slice(&[99, 130, 83, 99]);
    want.extend([53, 1, 1, 61, 7, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    want.extend([57, 2, 0x05, 0xdc]);
    want.extend([55, 11, 1, 3, 6, 12, 15, 26, 28, 51, 54, 58, 59, 255]);
    assert_eq!(m, want);
}

#[test]
fn requests_carry_the_offer_or_ciaddr() {
    let addr = "10.0.2.15".parse().unwrap();
    let server = "10.0.2.2".parse().unwrap();
    let m = encode(7, MAC, 3, Some(Request::Selecting { addr, server }));
    assert_eq!(&m[8..12], &[0, 3, 0x80, 0]);
    assert_eq!(&m[12..16], &[0, 0, 0, 0]);
    assert_eq!(&m[240..243], &[53, 1, 3]);
    assert_eq!(&m[252..264], &[50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2]);
    let r = encode(7, MAC, 0, Some(Request::Renewing { addr }));
    assert_eq!(
        &r[10..16],
        &[0, 0, 10, 0, 2, 15],
        "no broadcast flag, ciaddr set"
    );
    assert_eq!(&r[252..254], &[57, 2], "no requested address nor server id");
}

#[test]
fn slirp_ack_decodes() {
    let r = decode(&slirp_ack(9)).unwrap();
    assert_eq!(
        r,
        Reply {
            kind: ACK,
            xid: 9,
            chaddr: MAC,
            addr: "10.0.2.15".parse().unwrap(),
            prefix: Some(24),
            routers: vec!["10.0.2.2".parse().unwrap()],
            dns: vec!["10.0.2.3".parse().unwrap()],
            hostname: None,
            domain: None,
            mtu: None,
            lease: Some(86400),
            renew: None,
            rebind: None,
            server: Some("10.0.2.2".parse().unwrap()),
        }
    );
}

/// Each hostile reply is an error naming what is wrong, never a panic.
#[test]
fn hostile_replies_are_errors() {
    let ack = slirp_ack(1);
    let with = |opts: &[u8]| {
        let mut m = ack[..240].to_vec();
        m.extend([53, 1, 5]);
        m.extend(opts);
        m
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (ack[..100].to_vec(), "100 bytes, shorter than a DHCP header"),
        (vec![2; 1501], "1501 bytes, longer than 1500"),
        (
            with(&[6, 200, 10, 0, 2, 3]),
            "option 6 at byte 243: 200 bytes run past the end (249)",
        ),
        (
            with(&[6, 5, 10, 0, 2, 3, 4]),
            "option 6: length 5, must be a non-zero multiple of 4",
        ),
        (
            with(&[3, 0]),
            "option 3: length 0, must be a non-zero multiple of 4",
        ),
        (with(&[1, 3, 255, 255, 0]), "option 1: length 3, must be 4"),
        (
            with(&[1, 4, 255, 0, 255, 0]),
            "subnet mask 255.0.255.0 is not contiguous",
        ),
        (with(&[26, 2, 0, 10]), "option 26: MTU 10 is below 68"),
        (
            with(&[12, 3, b'a', b'\n', b'b']),
            "option 12: not a printable name",
        ),
        (with(&[53, 1, 2]), "two message types"),
        (with(&[54]), "option 54 at byte 243 has no length"),
        (ack[..240].to_vec(), "no message type (option 53)"),
    ];
    for (bytes, want) in cases {
        assert_eq!(decode(&bytes), Err(want.to_string()));
    }
    let mut request = ack.clone();
    request[0] = 1;
    assert_eq!(decode(&request), Err("op 1 is not a reply".into()));
    let mut cookie = ack.clone();
    cookie[239] = 0;
    assert_eq!(decode(&cookie), Err("no DHCP magic cookie".into()));
}

/// Every truncation and every single-byte flip of a good reply decodes or
/// fails, without panicking (the fuzz target does the same at random).
#[test]
fn truncated_and_flipped_replies_never_panic() {
    let ack = slirp_ack(3);
    for n in 0..ack.len() {
        let _ = decode(&ack[..n]);
    }
    for i in 0..ack.len() {
        for v in [0u8, 1, 4, 255] {
            let mut m = ack.clone();
            m[i] = v;
            let _ = decode(&m);
        }
    }
}

/// Oversized options: the longest an option can say (255 bytes) is read
/// within bounds when it fits, refused by length when it does not.
#[test]
fn oversized_options_are_bounded() {
    let mut m = slirp_ack(4)[..240].to_vec();
    m.extend([53, 1, 5]);
    while m.len() + 257 <= MAX_REPLY {
        m.push(224); // site-specific, skipped
        m.push(255);
        m.extend([0x41; 255]);
    }
    let r = decode(&m).unwrap();
    assert_eq!((r.kind, r.dns.len()), (ACK, 0));
    let mut dns = slirp_ack(4)[..240].to_vec();
    dns.extend([53, 1, 5, 6, 255]);
    dns.extend([10; 255]);
    assert_eq!(
        decode(&dns),
        Err("option 6: length 255, must be a non-zero multiple of 4".into())
    );
    let mut name = slirp_ack(4)[..240].to_vec();
    name.extend([53, 1, 5, 12, 255]);
    name.extend([b'a'; 254]);
    assert_eq!(
        decode(&name),
        Err("option 12 at byte 243: 255 bytes run past the end (499)".into())
    );
}
