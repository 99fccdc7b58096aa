//! rtnetlink (rtnetlink(7)), only what the init needs: list the links, set
//! one up (with an MTU, or into another network namespace), add addresses
//! and routes. Each request asks for an ACK, so every failure comes back
//! as the kernel's errno, named with the operation and the interface.
//!
//! Written here rather than with `netlink-packet-route` 0.34 and
//! `netlink-sys` 0.9: those two add 676 KB to a static binary (a hello
//! world goes from 365 KB to 1,040 KB), more than the init's whole budget
//! left; the five messages below are a few hundred bytes of code.

use mkrootfs_config::network::{Cidr, Mac};
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType};
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const IFF_UP: u32 = 1;
const ARPHRD_ETHER: u16 = 1;

/// A failed request: what was asked, of which interface, and the errno.
#[derive(Debug)]
pub struct NetlinkError {
    pub what: String,
    pub errno: Errno,
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "netlink: {}: {:?}", self.what, self.errno)
    }
}

impl std::error::Error for NetlinkError {}

fn err(what: impl Into<String>, errno: Errno) -> NetlinkError {
    NetlinkError {
        what: what.into(),
        errno,
    }
}

/// One interface of the dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// None for links without an Ethernet address (`lo` has zeros, `sit0`
    /// none).
    pub mac: Option<Mac>,
    pub ethernet: bool,
}

/// A NETLINK_ROUTE socket in the network namespace of the thread that
/// opened it (it stays there when the thread moves on).
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetlinkError> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| err("open a NETLINK_ROUTE socket", e))?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| err("bind the NETLINK_ROUTE socket", e))?;
        Ok(Netlink { fd, seq: 0 })
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let what = "list the links";
        let msg = self.message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &ifinfo(0, 0, 0));
        self.send(&msg).map_err(|e| err(what, e))?;
        let mut links = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = socket::recv(self.fd.as_raw_fd(), &mut buf, socket::MsgFlags::empty())
                .map_err(|e| err(what, e))?;
            for (kind, body) in messages(&buf[..n]) {
                match kind {
                    NLMSG_DONE => return Ok(links),
                    NLMSG_ERROR => return Err(err(what, ack_errno(body))),
                    RTM_NEWLINK => {
                        if let Some(l) = parse_link(body) {
                            links.push(l);
                        }
                    }
                    _ => {}
                }
            }
            if n == 0 {
                return Ok(links);
            }
        }
    }

    /// Sets the link up, with an MTU when given.
    pub fn set_up(&mut self, link: &Link, mtu: Option<u32>) -> Result<(), NetlinkError> {
        let mut body = ifinfo(link.index, IFF_UP, IFF_UP);
        if let Some(mtu) = mtu {
            attr(&mut body, IFLA_MTU, &mtu.to_ne_bytes());
        }
        let what = match mtu {
            Some(m) => format!("set {} up with mtu {m}", link.name),
            None => format!("set {} up", link.name),
        };
        self.request(RTM_NEWLINK, 0, &body, &what)
    }

    /// Moves the link into the network namespace `netns` (an open
    /// `/proc/<pid>/ns/net`); its addresses and routes stay behind.
    pub fn move_to(&mut self, link: &Link, netns: &OwnedFd) -> Result<(), NetlinkError> {
        let mut body = ifinfo(link.index, 0, 0);
        attr(
            &mut body,
            IFLA_NET_NS_FD,
            &(netns.as_raw_fd() as u32).to_ne_bytes(),
        );
        let what = format!("move {} into the container's network namespace", link.name);
        self.request(RTM_NEWLINK, 0, &body, &what)
    }

    pub fn add_address(&mut self, link: &Link, a: &Cidr) -> Result<(), NetlinkError> {
        let what = format!("add address {a} to {}", link.name);
        self.request(
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            &address_body(link.index, a),
            &what,
        )
    }

    /// A route through `link`: to `to` (the default route when `None`),
    /// via `via` (on the link itself when `None`).
    pub fn add_route(
        &mut self,
        link: &Link,
        to: Option<&Cidr>,
        via: Option<IpAddr>,
    ) -> Result<(), NetlinkError> {
        let family = to
            .map(|c| c.addr)
            .or(via)
            .map_or(IpAddr::V4(0.into()), |a| a);
        // `add route default via 10.0.2.2 on eth0`, `add route 10.1.0.0/16 on eth0`
        let mut what = String::from("add route ");
        match to {
            Some(c) => {
                let _ = write!(what, "{c}");
            }
            None => what.push_str("default"),
        }
        if let Some(v) = via {
            let _ = write!(what, " via {v}");
        }
        let _ = write!(what, " on {}", link.name);
        self.request(
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_EXCL,
            &route_body(link.index, family, to, via),
            &what,
        )
    }

    fn message(&mut self, kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        message(kind, flags, self.seq, body)
    }

    fn send(&self, msg: &[u8]) -> Result<(), Errno> {
        socket::send(self.fd.as_raw_fd(), msg, socket::MsgFlags::empty()).map(drop)
    }

    /// Sends a request with NLM_F_ACK and reads its acknowledgement.
    fn request(
        &mut self,
        kind: u16,
        flags: u16,
        body: &[u8],
        what: &str,
    ) -> Result<(), NetlinkError> {
        let msg = self.message(kind, NLM_F_REQUEST | NLM_F_ACK | flags, body);
        self.send(&msg).map_err(|e| err(what, e))?;
        let mut buf = [0u8; 4096];
        loop {
            let n = socket::recv(self.fd.as_raw_fd(), &mut buf, socket::MsgFlags::empty())
                .map_err(|e| err(what, e))?;
            if n == 0 {
                return Err(err(what, Errno::EPROTO));
            }
            for (kind, body) in messages(&buf[..n]) {
                if kind == NLMSG_ERROR {
                    return match ack_errno(body) {
                        Errno::UnknownErrno => Ok(()),
                        e => Err(err(what, e)),
                    };
                }
            }
        }
    }
}

/// `struct nlmsghdr` and the body, padded to 4 bytes.
fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend((len as u32).to_ne_bytes());
    m.extend(kind.to_ne_bytes());
    m.extend(flags.to_ne_bytes());
    m.extend(seq.to_ne_bytes());
    m.extend(0u32.to_ne_bytes());
    m.extend(body);
    m
}

/// `struct ifinfomsg`.
fn ifinfo(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// A `struct rtattr` and its value, padded to 4 bytes.
fn attr(b: &mut Vec<u8>, kind: u16, value: &[u8]) {
    b.extend(((4 + value.len()) as u16).to_ne_bytes());
    b.extend(kind.to_ne_bytes());
    b.extend(value);
    b.resize(b.len().next_multiple_of(4), 0);
}

fn family(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `struct ifaddrmsg` with IFA_LOCAL and IFA_ADDRESS (equal: not a
/// point-to-point link), universe scope.
fn address_body(index: u32, a: &Cidr) -> Vec<u8> {
    let mut b = vec![family(a.addr), a.prefix, 0, 0];
    b.extend(index.to_ne_bytes());
    attr(&mut b, IFA_LOCAL, &octets(a.addr));
    attr(&mut b, IFA_ADDRESS, &octets(a.addr));
    b
}

/// `struct rtmsg` for the main table, protocol `boot` (as iproute2's
/// default), link scope without a gateway, and the attributes.
fn route_body(index: u32, fam: IpAddr, to: Option<&Cidr>, via: Option<IpAddr>) -> Vec<u8> {
    let scope = if via.is_some() { 0 } else { 253 };
    let dst_len = to.map_or(0, |c| c.prefix);
    let mut b = vec![family(fam), dst_len, 0, 0, 254, 3, scope, 1, 0, 0, 0, 0];
    if let Some(to) = to {
        attr(&mut b, RTA_DST, &octets(to.network().addr));
    }
    if let Some(via) = via {
        attr(&mut b, RTA_GATEWAY, &octets(via));
    }
    attr(&mut b, RTA_OIF, &index.to_ne_bytes());
    b
}

/// The messages of one datagram as (type, body); stops at the first
/// header whose length does not fit.
fn messages(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < 16 || len > b.len() {
            break;
        }
        out.push((u16::from_ne_bytes([b[4], b[5]]), &b[16..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

/// The errno of an NLMSG_ERROR body (0, an ACK, is `UnknownErrno`).
fn ack_errno(body: &[u8]) -> Errno {
    match body.get(..4) {
        Some(b) => {
            let e = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            if e == 0 {
                Errno::UnknownErrno
            } else {
                Errno::from_raw(-e)
            }
        }
        None => Errno::EPROTO,
    }
}

/// The attributes of a message body after its fixed part.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        if len < 4 || len > b.len() {
            break;
        }
        out.push((u16::from_ne_bytes([b[2], b[3]]), &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

fn parse_link(body: &[u8]) -> Option<Link> {
    let fixed = body.get(..16)?;
    let kind = u16::from_ne_bytes([fixed[2], fixed[3]]);
    let index = u32::from_ne_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let mut name = None;
    let mut mac = None;
    for (t, v) in attrs(&body[16..]) {
        match t {
            IFLA_IFNAME => {
                let v = v.split(|&c| c == 0).next().unwrap_or(v);
                name = Some(String::from_utf8_lossy(v).into_owned());
            }
            IFLA_ADDRESS if v.len() == 6 => {
                mac = Some(Mac([v[0], v[1], v[2], v[3], v[4], v[5]]));
            }
            _ => {}
        }
    }
    Some(Link {
        index,
        name: name?,
        mac,
        ethernet: kind == ARPHRD_ETHER,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `ip addr add 10.0.2.15/24 dev <index 2>` sends, as strace
    /// shows them (little-endian host), after the header.
    #[test]
    fn address_message_bytes() {
        let a: Cidr = "10.0.2.15/24".parse().unwrap();
        let m = message(
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            7,
            &address_body(2, &a),
        );
        assert_eq!(
            m,
            [
                40, 0, 0, 0, 20, 0, 0x05, 0x06, 7, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr
                2, 24, 0, 0, 2, 0, 0, 0, // ifaddrmsg: AF_INET, /24, index 2
                8, 0, 2, 0, 10, 0, 2, 15, // IFA_LOCAL
                8, 0, 1, 0, 10, 0, 2, 15, // IFA_ADDRESS
            ]
        );
    }

    #[test]
    fn default_route_and_subnet_route_bytes() {
        let gw: IpAddr = "10.0.2.2".parse().unwrap();
        assert_eq!(
            route_body(2, gw, None, Some(gw)),
            [
                2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0, // rtmsg: main, boot, universe, unicast
                8, 0, 5, 0, 10, 0, 2, 2, // RTA_GATEWAY
                8, 0, 4, 0, 2, 0, 0, 0, // RTA_OIF
            ]
        );
        let to: Cidr = "10.1.2.3/16".parse().unwrap();
        assert_eq!(
            route_body(3, to.addr, Some(&to), None),
            [
                2, 16, 0, 0, 254, 3, 253, 1, 0, 0, 0, 0, // link scope
                8, 0, 1, 0, 10, 1, 0, 0, // RTA_DST: the network
                8, 0, 4, 0, 3, 0, 0, 0,
            ]
        );
    }

    #[test]
    fn link_dump_entry_is_parsed_and_truncated_ones_are_skipped() {
        let mut body = ifinfo(2, 0, 0);
        body[2..4].copy_from_slice(&ARPHRD_ETHER.to_ne_bytes());
        attr(&mut body, IFLA_IFNAME, b"eth0\0");
        attr(&mut body, IFLA_ADDRESS, &[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let msg = message(RTM_NEWLINK, 2, 1, &body);
        let got = messages(&msg);
        assert_eq!(got.len(), 1);
        assert_eq!(
            parse_link(got[0].1),
            Some(Link {
                index: 2,
                name: "eth0".into(),
                mac: Some("52:54:00:12:34:56".parse().unwrap()),
                ethernet: true
            })
        );
        // A header that claims more than the datagram holds ends the walk.
        let mut short = msg.clone();
        short[0] = 200;
        assert!(messages(&short).is_empty());
        assert_eq!(parse_link(&body[..10]), None);
    }

    #[test]
    fn ack_and_error_codes() {
        assert_eq!(ack_errno(&0i32.to_ne_bytes()), Errno::UnknownErrno);
        assert_eq!(ack_errno(&(-17i32).to_ne_bytes()), Errno::EEXIST);
        assert_eq!(ack_errno(&[1]), Errno::EPROTO);
        assert_eq!(
            err("add address 10.0.2.15/24 to eth0", Errno::EEXIST).to_string(),
            "netlink: add address 10.0.2.15/24 to eth0: EEXIST"
        );
    }
}
