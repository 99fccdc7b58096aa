use super::wire::{Reply, ACK};
use super::*;

/// A lease as QEMU's user-network server gives it: 86400 s, no T1/T2.
pub(crate) fn slirp_lease() -> Reply {
    Reply {
        kind: ACK,
        xid: 1,
        chaddr: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        addr: Ipv4Addr::new(10, 0, 2, 15),
        prefix: Some(24),
        routers: vec![Ipv4Addr::new(10, 0, 2, 2)],
        dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
        hostname: None,
        domain: None,
        mtu: None,
        lease: Some(86400),
        renew: None,
        rebind: None,
        server: Some(Ipv4Addr::new(10, 0, 2, 2)),
    }
}

#[test]
fn renewal_schedule_follows_rfc2131() {
    let at = Instant::now();
    let mut r = slirp_lease();
    let s = |n: u64| at + Duration::from_secs(n);
    assert_eq!(schedule(&r, at), Some((s(43200), s(75600), s(86400))));
    r.renew = Some(100);
    r.rebind = Some(50);
    assert_eq!(
        schedule(&r, at),
        Some((s(100), s(100), s(86400))),
        "T2 never before T1"
    );
    r.lease = Some(u32::MAX);
    assert_eq!(schedule(&r, at), None, "infinite lease");
}
