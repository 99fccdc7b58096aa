//! The guest's interfaces: the profile's `[[init.network]]` or the kernel's
//! `ip=`, applied through netlink before services start (`docs/network.md`).
//! One log line per interface; a missing interface or an unanswered DHCP is
//! fatal unless the entry is optional. DHCP leases are renewed from the
//! supervisor's loop ([`Network::renew_due`]): no thread runs beside the
//! clone3 of services and containers.

pub mod dhcp;
pub mod netlink;
pub mod resolv;

use crate::cmdline;
use dhcp::wire::Reply;
use mkrootfs_config::network::{self as schema, Cidr, IpParam, NetworkConfig};
use netlink::{Link, Netlink, NetlinkError};
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub enum NetError {
    /// A bad `ip=` on the kernel command line: its value and what is wrong.
    IpParam(String, String),
    /// The entries together are wrong (two `ip=` for one interface).
    Invalid(String),
    /// The interface did not appear in time.
    Missing(String, u64),
    Netlink(NetlinkError),
    Dhcp(dhcp::DhcpError),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::IpParam(v, e) => write!(f, "ip={v}: {e}"),
            NetError::Invalid(e) => f.write_str(e),
            NetError::Missing(n, ms) => write!(f, "{n}: no such interface after {ms} ms"),
            NetError::Netlink(e) => e.fmt(f),
            NetError::Dhcp(e) => e.fmt(f),
        }
    }
}

/// As Display: a derived Debug would link Duration's and Errno's
/// formatters into PID 1 for messages nobody reads.
impl fmt::Debug for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for NetError {}

impl From<NetlinkError> for NetError {
    fn from(e: NetlinkError) -> Self {
        NetError::Netlink(e)
    }
}

/// The entries to apply: every `ip=` of the command line replaces the
/// profile's list (`ip=off` leaves none); the host name an `ip=` gives.
pub fn entries(
    profile: &[NetworkConfig],
    cmdline_text: &str,
) -> Result<(Vec<NetworkConfig>, Option<String>), NetError> {
    let mut from_cmdline = None::<Vec<NetworkConfig>>;
    let mut hostname = None;
    for (key, value) in cmdline::split_params(cmdline_text) {
        if key != "ip" {
            continue;
        }
        let value = value.unwrap_or_default();
        let list = from_cmdline.get_or_insert_with(Vec::new);
        match schema::parse_ip_param(&value) {
            Ok(IpParam::Off) => list.clear(),
            Ok(IpParam::Interface(e, h)) => {
                list.push(e);
                hostname = h.or(hostname);
            }
            Err(e) => return Err(NetError::IpParam(value, e)),
        }
    }
    let list = from_cmdline.unwrap_or_else(|| profile.to_vec());
    schema::check_all(&list).map_err(|(_, _, e)| NetError::Invalid(e))?;
    Ok((list, hostname))
}

/// What one interface got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub link: Link,
    pub addresses: Vec<Cidr>,
    pub gateway: Option<IpAddr>,
    pub routes: Vec<schema::Route>,
    pub mtu: Option<u32>,
    pub dns: Vec<IpAddr>,
    pub search: Vec<String>,
    /// The DHCP server's last ACK, when it was received, and when to try
    /// renewing next.
    pub lease: Option<(Reply, Instant, Instant)>,
}

/// Every configured interface, for renewals and for containers that take
/// one ([`take`]).
static APPLIED: Mutex<Vec<Applied>> = Mutex::new(Vec::new());

/// The outcome of [`configure`].
pub struct Configured {
    /// When the last address was in place (since boot), for the timings.
    pub address_at: Option<Duration>,
}

/// Applies `entries`; `hostname` is the configured one (a DHCP host name
/// is used only without it). Returns the first failure of an entry that is
/// not optional.
pub fn configure(
    entries: &[NetworkConfig],
    hostname: Option<&str>,
) -> Result<Configured, NetError> {
    let mut out = Configured { address_at: None };
    if entries.is_empty() {
        return Ok(out);
    }
    let mut nl = Netlink::open()?;
    if let Some(lo) = nl.links()?.into_iter().find(|l| l.name == "lo") {
        nl.set_up(&lo, None)?;
    }
    let mut applied = Vec::new();
    let mut dhcp_hostname = None;
    for entry in entries {
        let claimed: Vec<u32> = applied.iter().map(|a: &Applied| a.link.index).collect();
        match configure_one(&mut nl, entry, &claimed) {
            Ok(a) => {
                crate::info!("network: {}", describe(&a));
                if let Some((r, ..)) = &a.lease {
                    dhcp_hostname = dhcp_hostname.or(r.hostname.clone());
                }
                applied.push(a);
                out.address_at = Some(crate::log::since_boot());
            }
            Err(e) if entry.optional => {
                crate::warn!("network: {e} (optional: going on without it)");
            }
            Err(e) => return Err(e),
        }
    }
    if hostname.is_none() {
        if let Some(h) = &dhcp_hostname {
            if let Err(e) = nix::unistd::sethostname(h) {
                crate::warn!("sethostname {h:?} (from DHCP): {e}");
            }
        }
    }
    let name = hostname.map(str::to_string).or(dhcp_hostname);
    resolv::write_files(std::path::Path::new("/etc"), &applied, name.as_deref());
    if let Ok(mut all) = APPLIED.lock() {
        *all = applied;
    }
    Ok(out)
}

fn configure_one(
    nl: &mut Netlink,
    entry: &NetworkConfig,
    claimed: &[u32],
) -> Result<Applied, NetError> {
    let timeout = Duration::from_millis(entry.timeout_ms());
    let deadline = Instant::now() + timeout;
    let link = wait_for_link(nl, &entry.display_name(), timeout, |links| {
        find(links, entry, claimed)
    })?;
    nl.set_up(&link, entry.mtu)?;
    let mut a = Applied {
        link,
        addresses: entry.addresses.clone(),
        gateway: entry.gateway,
        routes: entry.routes.clone(),
        mtu: entry.mtu,
        dns: entry.dns.clone(),
        search: entry.search.clone(),
        lease: None,
    };
    if entry.dhcp {
        let mac = a.link.mac.map_or([0; 6], |m| m.0);
        let left = deadline.saturating_duration_since(Instant::now());
        let lease = dhcp::acquire(&a.link.name, mac, left).map_err(NetError::Dhcp)?;
        adopt(&mut a, &lease);
        if entry.mtu.is_none() {
            if let Some(mtu) = lease.mtu {
                a.mtu = Some(u32::from(mtu));
                nl.set_up(&a.link, a.mtu)?;
            }
        }
        let now = Instant::now();
        let next = dhcp::schedule(&lease, now).map_or(now + Duration::MAX / 4, |s| s.0);
        a.lease = Some((lease, now, next));
    }
    apply(nl, &a)?;
    Ok(a)
}

/// The address, router, DNS and search domain of a lease, after the
/// entry's own gateway, DNS and search.
fn adopt(a: &mut Applied, lease: &Reply) {
    let prefix = lease.prefix.unwrap_or(24);
    a.addresses = vec![Cidr {
        addr: IpAddr::V4(lease.addr),
        prefix,
    }];
    // The entry's own gateway wins; the server's router otherwise (QEMU's
    // user network sends none with restrict=on).
    if a.gateway.is_none() {
        a.gateway = lease.routers.first().copied().map(IpAddr::V4);
    }
    a.dns.extend(lease.dns.iter().copied().map(IpAddr::V4));
    if let Some(d) = &lease.domain {
        a.search.push(d.clone());
    }
}

/// Addresses, then routes, then the default route: what `a` says, on the
/// link `a.link` of the namespace `nl` is in.
pub fn apply(nl: &mut Netlink, a: &Applied) -> Result<(), NetError> {
    for addr in &a.addresses {
        nl.add_address(&a.link, addr)?;
    }
    for r in &a.routes {
        nl.add_route(&a.link, Some(&r.to), r.via)?;
    }
    if let Some(gw) = a.gateway {
        nl.add_route(&a.link, None, Some(gw))?;
    }
    Ok(())
}

/// Polls the links until `pick` finds one (an interface still being
/// probed, or given back by a container's namespace), for at most `timeout`:
/// then `Missing(what)`.
fn wait_for_link(
    nl: &mut Netlink,
    what: &str,
    timeout: Duration,
    pick: impl Fn(&[Link]) -> Option<Link>,
) -> Result<Link, NetError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(l) = pick(&nl.links()?) {
            return Ok(l);
        }
        if Instant::now() >= deadline {
            return Err(NetError::Missing(
                what.to_string(),
                timeout.as_millis() as u64,
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn find(links: &[Link], entry: &NetworkConfig, claimed: &[u32]) -> Option<Link> {
    links
        .iter()
        .find(|l| match (&entry.name, &entry.mac) {
            (Some(n), _) => &l.name == n,
            (None, Some(m)) => l.mac.as_ref() == Some(m),
            (None, None) => l.ethernet && l.name != "lo" && !claimed.contains(&l.index),
        })
        .cloned()
}

/// `eth0 52:54:00:12:34:56: 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3 mtu
/// 1500 (dhcp from 10.0.2.2, lease 86400 s)`
pub fn describe(a: &Applied) -> String {
    use std::fmt::Write;
    // write! into one String: no temporary String per piece.
    let mut s = a.link.name.clone();
    if let Some(m) = a.link.mac {
        let _ = write!(s, " {m}");
    }
    s.push(':');
    for addr in &a.addresses {
        let _ = write!(s, " {addr}");
    }
    if a.addresses.is_empty() {
        s.push_str(" up, no address");
    }
    if let Some(gw) = a.gateway {
        let _ = write!(s, " via {gw}");
    }
    for d in &a.dns {
        let _ = write!(s, " dns {d}");
    }
    if let Some(m) = a.mtu {
        let _ = write!(s, " mtu {m}");
    }
    match &a.lease {
        Some((r, ..)) => {
            s.push_str(" (dhcp from ");
            match r.server {
                Some(server) => {
                    let _ = write!(s, "{server}");
                }
                None => s.push('?'),
            }
            if let Some(l) = r.lease {
                let _ = write!(s, ", lease {l} s");
            }
            s.push(')');
        }
        None => s.push_str(" (static)"),
    }
    s
}

/// The next time a lease wants renewing, if any.
pub fn next_renewal() -> Option<Instant> {
    let all = APPLIED.lock().ok()?;
    all.iter()
        .filter_map(|a| a.lease.as_ref().map(|l| l.2))
        .min()
}

/// Renews the leases that are due (called from the supervisor's loop).
/// A failed renewal is retried after half the time left to T2 (to expiry
/// once past T2), at least a minute later (RFC 2131 4.4.5).
pub fn renew_due(now: Instant) {
    let Ok(mut all) = APPLIED.lock() else { return };
    for a in all.iter_mut() {
        let Some((lease, at, next)) = &mut a.lease else {
            continue;
        };
        if *next > now {
            continue;
        }
        let Some((_, t2, end)) = dhcp::schedule(lease, *at) else {
            continue;
        };
        let rebinding = now >= t2;
        let mac = a.link.mac.map_or([0; 6], |m| m.0);
        match dhcp::renew(&a.link.name, mac, lease, rebinding, Duration::from_secs(2)) {
            Ok(r) if r.addr == lease.addr => {
                crate::info!(
                    "network: {}: lease of {} renewed ({} s)",
                    a.link.name,
                    r.addr,
                    r.lease.unwrap_or(0)
                );
                *lease = r;
                *at = now;
                *next = dhcp::schedule(lease, now).map_or(now + Duration::MAX / 4, |s| s.0);
            }
            Ok(r) => {
                crate::warn!(
                    "network: {}: the server renewed with another address ({}): keeping {}",
                    a.link.name,
                    r.addr,
                    lease.addr
                );
                *next = now + Duration::from_secs(60);
            }
            Err(e) => {
                let until = if rebinding { end } else { t2 };
                let wait = (until.saturating_duration_since(now) / 2).max(Duration::from_secs(60));
                crate::warn!("network: renew: {e}: trying again in {} s", wait.as_secs());
                *next = now + wait;
            }
        }
    }
}

/// Interfaces handed to containers ([`take`]): a restarted container
/// takes its interface again.
static TAKEN: Mutex<Vec<Applied>> = Mutex::new(Vec::new());

/// Hands the interface `name` over to a container: its configuration, no
/// longer renewed or counted as the VM's. Taking it again (a restart)
/// gives the same configuration.
pub fn take(name: &str) -> Option<Applied> {
    let mut taken = TAKEN.lock().ok()?;
    if let Some(a) = taken.iter().find(|a| a.link.name == name) {
        return Some(a.clone());
    }
    let mut all = APPLIED.lock().ok()?;
    let i = all.iter().position(|a| a.link.name == name)?;
    let a = all.remove(i);
    if a.lease.is_some() {
        crate::warn!("network: {name}: its DHCP lease is not renewed inside the container");
    }
    taken.push(a.clone());
    Some(a)
}

/// Moves the interface of `a` from the VM's namespace into the network
/// namespace of process `pid` (the container's first process, not yet
/// released). When a container's namespace goes away the kernel gives a
/// physical interface back to the VM's namespace, bare: a restart waits
/// for it to be back.
pub fn move_into(a: &Applied, pid: i32) -> Result<(), NetError> {
    let path = format!("/proc/{pid}/ns/net");
    let ns: std::os::fd::OwnedFd = std::fs::File::open(&path)
        .map_err(|e| {
            NetError::Netlink(netlink::NetlinkError {
                what: format!("open {path}"),
                errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })
        })?
        .into();
    let mut nl = Netlink::open()?;
    let name = &a.link.name;
    let link = wait_for_link(&mut nl, name, Duration::from_secs(5), |links| {
        links.iter().find(|l| &l.name == name).cloned()
    })?;
    nl.move_to(&link, &ns)?;
    Ok(())
}

/// In the container's network namespace (the child, before it drops its
/// capabilities): the interface up with its MTU, its addresses and routes,
/// through a netlink socket opened here, so that it speaks to this
/// namespace.
pub fn configure_inside(a: &Applied) -> Result<(), NetError> {
    let mut nl = Netlink::open()?;
    let link = nl
        .links()?
        .into_iter()
        .find(|l| l.name == a.link.name)
        .ok_or_else(|| NetError::Missing(a.link.name.clone(), 0))?;
    nl.set_up(&link, a.mtu)?;
    let mut inside = a.clone();
    inside.link = link;
    apply(&mut nl, &inside)
}

impl NetError {
    /// The errno for a container step's error.
    pub fn errno(&self) -> i32 {
        match self {
            NetError::Netlink(e) => e.errno as i32,
            NetError::Missing(..) => libc::ENODEV,
            _ => libc::EINVAL,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
