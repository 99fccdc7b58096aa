//! DHCPv4 messages (RFC 2131, options of RFC 2132) as bytes: the client's
//! DISCOVER and REQUEST, and the decoder of a server's reply.
//!
//! Written here rather than taken from `dhcproto` (0.15): that crate brings
//! a DNS library and `rand` along and adds 254 KB to a static binary, a
//! quarter of the init's 1 MiB budget, for the dozen fields a guest needs.
//! The decoder reads untrusted bytes: every length is checked, nothing
//! panics, and a reply that is malformed is an error naming what is wrong
//! (fuzzed by `fuzz/fuzz_targets/dhcp_reply.rs`). It lives here, beside the
//! profile's schema, so that the fuzz crate reaches it; the client that
//! sends and receives these messages is the init's `net/dhcp.rs`.

use std::net::Ipv4Addr;

/// The fixed part of a message, up to and including the magic cookie.
pub const HEADER_LEN: usize = 240;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// The largest reply read: a server may not send more than the client's
/// maximum message size (576 unless told), but some pad to 1500.
pub const MAX_REPLY: usize = 1500;

pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;

/// The options asked for (option 55): subnet mask, router, DNS, host
/// name, domain name, MTU, broadcast, lease time, server id, T1, T2.
const PARAMS: [u8; 11] = [1, 3, 6, 12, 15, 26, 28, 51, 54, 58, 59];

/// What the client puts in a REQUEST besides the common fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Answering an OFFER: the address and the server chosen.
    Selecting { addr: Ipv4Addr, server: Ipv4Addr },
    /// Renewing or rebinding a lease it holds (`ciaddr` set, RFC 2131
    /// 4.3.2: no requested address, no server identifier).
    Renewing { addr: Ipv4Addr },
}

/// A DISCOVER (`request` none) or a REQUEST, with the broadcast flag set
/// (the client has no address to receive unicast on) except when renewing.
pub fn encode(xid: u32, mac: [u8; 6], secs: u16, request: Option<Request>) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER_LEN + 40);
    m.resize(HEADER_LEN, 0);
    m[0] = 1; // BOOTREQUEST
    m[1] = 1; // Ethernet
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[8..10].copy_from_slice(&secs.to_be_bytes());
    if !matches!(request, Some(Request::Renewing { .. })) {
        m[10] = 0x80;
    }
    if let Some(Request::Renewing { addr }) = request {
        m[12..16].copy_from_slice(&addr.octets());
    }
    m[28..34].copy_from_slice(&mac);
    m[236..240].copy_from_slice(&MAGIC);
    let kind = if request.is_some() { REQUEST } else { DISCOVER };
    // One call per option (not inlined): the init is size-bound.
    option(&mut m, 53, &[kind]);
    let mut id = [1u8; 7];
    id[1..].copy_from_slice(&mac);
    option(&mut m, 61, &id);
    if let Some(Request::Selecting { addr, server }) = request {
        option(&mut m, 50, &addr.octets());
        option(&mut m, 54, &server.octets());
    }
    option(&mut m, 57, &(MAX_REPLY as u16).to_be_bytes());
    option(&mut m, 55, &PARAMS);
    m.push(255);
    m
}

/// Appends option `code` with `value` (at most 255 bytes).
#[inline(never)]
fn option(m: &mut Vec<u8>, code: u8, value: &[u8]) {
    m.push(code);
    m.push(value.len() as u8);
    m.extend_from_slice(value);
}

/// The fields of a server's reply a guest uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub kind: u8,
    pub xid: u32,
    pub chaddr: [u8; 6],
    /// `yiaddr`: the address offered or acknowledged.
    pub addr: Ipv4Addr,
    /// Option 1 as a prefix length.
    pub prefix: Option<u8>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    pub mtu: Option<u16>,
    /// Seconds.
    pub lease: Option<u32>,
    pub renew: Option<u32>,
    pub rebind: Option<u32>,
    pub server: Option<Ipv4Addr>,
}

/// Decodes a BOOTREPLY. Options are read to `end` (255) or the end of the
/// bytes; pad (0) is skipped; unknown options are skipped; a known option
/// with a wrong length, an option running past the end, a second message
/// type, or a reply without a message type is an error.
pub fn decode(b: &[u8]) -> Result<Reply, String> {
    if b.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than a DHCP header", b.len()));
    }
    if b.len() > MAX_REPLY {
        return Err(format!("{} bytes, longer than {MAX_REPLY}", b.len()));
    }
    if b[0] != 2 {
        return Err(format!("op {} is not a reply", b[0]));
    }
    if b[1] != 1 || b[2] != 6 {
        return Err(format!(
            "hardware type {} length {}, not Ethernet",
            b[1], b[2]
        ));
    }
    if b[236..240] != MAGIC {
        return Err("no DHCP magic cookie".into());
    }
    let mut r = Reply {
        kind: 0,
        xid: u32::from_be_bytes(array4(&b[4..8])),
        chaddr: [b[28], b[29], b[30], b[31], b[32], b[33]],
        addr: ip(&b[16..20]),
        prefix: None,
        routers: Vec::new(),
        dns: Vec::new(),
        hostname: None,
        domain: None,
        mtu: None,
        lease: None,
        renew: None,
        rebind: None,
        server: None,
    };
    let mut kind = None;
    let mut i = HEADER_LEN;
    while i < b.len() {
        let code = b[i];
        if code == 0 {
            i += 1;
            continue;
        }
        if code == 255 {
            break;
        }
        let Some(&len) = b.get(i + 1) else {
            return Err(format!("option {code} at byte {i} has no length"));
        };
        let start = i + 2;
        let end = start + usize::from(len);
        let Some(v) = b.get(start..end) else {
            return Err(format!(
                "option {code} at byte {i}: {len} bytes run past the end ({})",
                b.len()
            ));
        };
        let fixed = |n: usize| {
            if v.len() == n {
                Ok(v)
            } else {
                Err(format!("option {code}: length {len}, must be {n}"))
            }
        };
        let list = || {
            if !v.is_empty() && v.len() % 4 == 0 {
                Ok(v.chunks_exact(4).map(ip).collect())
            } else {
                Err(format!(
                    "option {code}: length {len}, must be a non-zero multiple of 4"
                ))
            }
        };
        match code {
            53 => {
                if kind.is_some() {
                    return Err("two message types".into());
                }
                kind = Some(fixed(1)?[0]);
            }
            1 => {
                let m = u32::from_be_bytes(array4(fixed(4)?));
                let ones = m.leading_ones();
                if m.checked_shl(ones).unwrap_or(0) != 0 {
                    return Err(format!("subnet mask {} is not contiguous", ip(v)));
                }
                r.prefix = Some(ones as u8);
            }
            3 => r.routers = list()?,
            6 => r.dns = list()?,
            12 => r.hostname = Some(text(code, v)?),
            15 => r.domain = Some(text(code, v)?),
            26 => {
                let mtu = u16::from_be_bytes([fixed(2)?[0], v[1]]);
                if mtu < 68 {
                    return Err(format!("option 26: MTU {mtu} is below 68"));
                }
                r.mtu = Some(mtu);
            }
            51 => r.lease = Some(u32::from_be_bytes(array4(fixed(4)?))),
            54 => r.server = Some(ip(fixed(4)?)),
            58 => r.renew = Some(u32::from_be_bytes(array4(fixed(4)?))),
            59 => r.rebind = Some(u32::from_be_bytes(array4(fixed(4)?))),
            _ => {}
        }
        i = end;
    }
    r.kind = kind.ok_or("no message type (option 53)")?;
    Ok(r)
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn array4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

/// A host or domain name: printable ASCII without spaces, as written to
/// `/etc/hosts` and `/etc/resolv.conf` (a hostile server must not add lines).
fn text(code: u8, v: &[u8]) -> Result<String, String> {
    let s = std::str::from_utf8(v)
        .ok()
        .map(|s| s.trim_end_matches('\0'))
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| format!("option {code}: not a printable name"))?;
    Ok(s.to_string())
}

#[cfg(test)]
mod tests;
