//! The guest's network: the profile's `[[init.network]]` entries (what the
//! init configures before services start) and the kernel's `ip=` parameter
//! (Documentation/admin-guide/nfs/nfsroot.rst), which replaces them at boot.
//! Shared by the builder (checked at the profile's line and column) and the
//! init (the `ip=` of `/proc/cmdline`, and the same checks again).

pub mod dhcp;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// How long the init waits for an interface to appear and, with DHCP, for
/// a lease, unless an entry says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// One interface the init configures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The interface's name (`eth0`). Default: matched by `mac`, or, with
    /// neither, the first interface other than `lo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The interface's MAC address (`52:54:00:12:34:56`), as Firecracker
    /// and Cloud Hypervisor set it. Default: matched by `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// DHCPv4: address, router, DNS, MTU and host name from the server,
    /// the lease renewed while the VM runs. Default: false (static).
    #[serde(default, skip_serializing_if = "is_false")]
    pub dhcp: bool,
    /// Static addresses with their prefix length (`10.0.0.2/24`,
    /// `fd00::2/64`). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Cidr>,
    /// Default route's next hop; must lie in one of `addresses`' subnets.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Extra routes. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// The link's MTU. Default: the driver's (or the DHCP server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Name servers for `/etc/resolv.conf`, before the DHCP server's.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    /// Search domains for `/etc/resolv.conf`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// A missing interface or an unanswered DHCP is a warning instead of
    /// `FATAL network: …`. Default: false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
    /// How long to wait for the interface and the lease, in milliseconds.
    /// Default: 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A route: `{ to = "10.1.0.0/16", via = "10.0.0.1" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub to: Cidr,
    /// Next hop. Default: none (the destination is on the link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
}

impl NetworkConfig {
    /// The entry as it appears in messages: `eth0`, `52:54:00:…` or
    /// `the first interface`.
    pub fn display_name(&self) -> String {
        match (&self.name, &self.mac) {
            (Some(n), _) => n.clone(),
            (None, Some(m)) => m.to_string(),
            (None, None) => "the first interface".into(),
        }
    }

    /// The wait for the interface and the lease.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    /// The checks one entry needs beyond its values: the failing key and
    /// the message.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let who = self.display_name();
        if let Some(n) = &self.name {
            if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', ':']) || n == "." || n == ".."
            {
                return Err(("name", format!("{n:?} is not an interface name")));
            }
        }
        if self.dhcp && !self.addresses.is_empty() {
            return Err((
                "addresses",
                format!("{who}: give either dhcp = true or static addresses, not both"),
            ));
        }
        if let Some(gw) = self.gateway {
            if !self.dhcp && !self.addresses.iter().any(|a| a.contains(gw)) {
                return Err((
                    "gateway",
                    format!("{who}: gateway {gw} is outside every subnet of the interface"),
                ));
            }
        }
        if let Some(mtu) = self.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(("mtu", format!("{who}: mtu {mtu} is outside 68..65535")));
            }
        }
        for s in &self.search {
            if s.is_empty() || s.contains(char::is_whitespace) {
                return Err(("search", format!("{who}: {s:?} is not a domain")));
            }
        }
        Ok(())
    }

    /// Whether two entries name the same interface.
    pub fn same_interface(&self, other: &NetworkConfig) -> bool {
        (self.name.is_some() && self.name == other.name)
            || (self.mac.is_some() && self.mac == other.mac)
            || (self.name.is_none()
                && self.mac.is_none()
                && other.name.is_none()
                && other.mac.is_none())
    }
}

/// An address with its prefix length: `10.0.2.15/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this address's subnet (same family).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }

    /// The network address: `10.0.2.0/24` for `10.0.2.15/24`.
    pub fn network(&self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} has no prefix length (10.0.0.2/24)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{s:?}: prefix length {prefix:?} is outside 0..{max}"))?;
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A MAC address, written `52:54:00:12:34:56` (either case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Mac, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            *b = parts
                .next()
                .filter(|p| p.len() == 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("{s:?} is not a MAC address (52:54:00:12:34:56)"))?;
        }
        if parts.next().is_some() {
            return Err(format!("{s:?} is not a MAC address (52:54:00:12:34:56)"));
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What one `ip=` parameter says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpParam {
    /// `ip=off` / `ip=none`: no interface is configured.
    Off,
    /// An interface to configure, and the host name it gives.
    Interface(NetworkConfig, Option<String>),
}

/// Parses the value of the kernel's `ip=` parameter:
/// `dhcp`, `on`, `any`, `off`, `none`, dracut's `<device>:dhcp`, or
/// `<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>:<ntp0>`
/// (trailing fields may be left out). An empty autoconf is DHCP without a
/// client address, static with one. An empty netmask is the address
/// class's, as the kernel takes it; `server` and `ntp0` are accepted and
/// unused. `bootp` and `rarp` are refused: only DHCP is spoken.
pub fn parse_ip_param(value: &str) -> Result<IpParam, String> {
    let dhcp = |name: Option<&str>| {
        Ok(IpParam::Interface(
            NetworkConfig {
                name: name.map(str::to_string),
                dhcp: true,
                ..NetworkConfig::default()
            },
            None,
        ))
    };
    match value {
        "off" | "none" => return Ok(IpParam::Off),
        "dhcp" | "on" | "any" => return dhcp(None),
        "" => return Err("empty value".into()),
        _ => {}
    }
    let f: Vec<&str> = value.split(':').collect();
    if f.len() > 10 {
        return Err(format!("{} fields, at most 10", f.len()));
    }
    if let [dev, auto] = f[..] {
        if matches!(auto, "dhcp" | "on" | "any")
            && !dev.is_empty()
            && dev.parse::<Ipv4Addr>().is_err()
        {
            return dhcp(Some(dev));
        }
    }
    let field = |i: usize| f.get(i).copied().unwrap_or("");
    let v4 = |i: usize, what: &str| -> Result<Option<Ipv4Addr>, String> {
        let s = field(i);
        if s.is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .map_err(|_| format!("{what} {s:?} is not an IPv4 address"))
    };
    let client = v4(0, "client address")?;
    v4(1, "server address")?;
    let gateway = v4(2, "gateway")?;
    let netmask = v4(3, "netmask")?;
    let hostname = Some(field(4)).filter(|h| !h.is_empty());
    if let Some(h) = hostname {
        if h.len() > 64 {
            return Err(format!("host name {h:?} is longer than 64 bytes"));
        }
    }
    let device = Some(field(5)).filter(|d| !d.is_empty());
    let dns = [v4(7, "dns0")?, v4(8, "dns1")?];
    v4(9, "ntp0")?;
    let dhcp = match field(6) {
        "" => client.is_none(),
        "off" | "none" => false,
        "dhcp" | "on" | "any" => true,
        other => {
            return Err(format!(
                "autoconf {other:?} is not supported (off, none, dhcp, on, any)"
            ))
        }
    };
    let mut entry = NetworkConfig {
        name: device.map(str::to_string),
        dns: dns.into_iter().flatten().map(IpAddr::V4).collect(),
        ..NetworkConfig::default()
    };
    if dhcp {
        entry.dhcp = true;
    } else {
        let Some(client) = client else {
            return Err("no client address and autoconf off".into());
        };
        let prefix = match netmask {
            Some(m) => prefix_of(m).ok_or_else(|| format!("netmask {m} is not contiguous"))?,
            None => class_prefix(client),
        };
        let addr = Cidr {
            addr: IpAddr::V4(client),
            prefix,
        };
        entry.addresses = vec![addr];
        entry.gateway = gateway.map(IpAddr::V4);
        entry.check().map_err(|(_, e)| e)?;
    }
    Ok(IpParam::Interface(entry, hostname.map(str::to_string)))
}

/// The prefix length of a contiguous netmask (`255.255.255.0` is 24).
pub fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The classful prefix the kernel's ipconfig gives an address without a
/// netmask: 8 for class A, 16 for B, 24 for C.
fn class_prefix(ip: Ipv4Addr) -> u8 {
    match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// Checks a list of entries: each alone, then no two for one interface.
/// The error is the index, the key at fault and the message.
pub fn check_all(entries: &[NetworkConfig]) -> Result<(), (usize, &'static str, String)> {
    for (i, e) in entries.iter().enumerate() {
        e.check().map_err(|(k, m)| (i, k, m))?;
        if let Some(j) = entries[..i].iter().position(|o| o.same_interface(e)) {
            let k = if e.name.is_some() { "name" } else { "mac" };
            return Err((
                i,
                k,
                format!(
                    "{} has two entries (network[{j}] and network[{i}])",
                    e.display_name()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
