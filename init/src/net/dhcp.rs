//! The DHCPv4 client: DISCOVER, OFFER, REQUEST, ACK on one interface
//! (RFC 2131 3.1), and the renewal of the lease while the VM runs (4.4.5).
//!
//! A UDP socket bound to port 68 on the interface (`SO_BINDTODEVICE`) sends
//! to 255.255.255.255 before the interface has an address; the broadcast
//! flag asks the server to answer by broadcast, which that socket receives.
//! No raw packet socket is needed.

/// The message codec, shared with the fuzz target: `mkrootfs_config::network::dhcp`.
pub use mkrootfs_config::network::dhcp as wire;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use std::ffi::OsString;
use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};
use wire::{Reply, Request};

pub enum DhcpError {
    /// A socket call failed: the operation and the interface.
    Socket(&'static str, String, Errno),
    /// No usable answer before the deadline.
    Timeout(String, Duration),
    /// The server refused the request.
    Nak(String, Ipv4Addr),
}

impl fmt::Display for DhcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DhcpError::Socket(op, ifname, e) => write!(f, "dhcp: {op} on {ifname}: {e:?}"),
            DhcpError::Timeout(ifname, d) => {
                write!(f, "dhcp: no answer on {ifname} in {} ms", d.as_millis())
            }
            DhcpError::Nak(ifname, server) => {
                write!(f, "dhcp: {server} refused the lease on {ifname}")
            }
        }
    }
}

impl fmt::Debug for DhcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for DhcpError {}

/// The client socket of one interface.
struct Client<'a> {
    ifname: &'a str,
    mac: [u8; 6],
    fd: OwnedFd,
    xid: u32,
    started: Instant,
}

impl<'a> Client<'a> {
    fn open(ifname: &'a str, mac: [u8; 6]) -> Result<Client<'a>, DhcpError> {
        let e = |op| move |e| DhcpError::Socket(op, ifname.to_string(), e);
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(e("open a UDP socket"))?;
        socket::setsockopt(&fd, sockopt::Broadcast, &true).map_err(e("set SO_BROADCAST"))?;
        socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(ifname))
            .map_err(e("set SO_BINDTODEVICE"))?;
        socket::bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, 68))
            .map_err(e("bind port 68"))?;
        Ok(Client {
            ifname,
            mac,
            fd,
            xid: random_u32(),
            started: Instant::now(),
        })
    }

    fn send(&self, msg: &[u8], to: Ipv4Addr) -> Result<(), DhcpError> {
        let [a, b, c, d] = to.octets();
        socket::sendto(
            self.fd.as_raw_fd(),
            msg,
            &SockaddrIn::new(a, b, c, d, 67),
            socket::MsgFlags::empty(),
        )
        .map(drop)
        .map_err(|e| DhcpError::Socket("send", self.ifname.to_string(), e))
    }

    /// The first reply of one of `kinds` for this exchange before `until`;
    /// malformed or foreign replies are skipped (a warning for the first).
    fn receive(&self, kinds: &[u8], until: Instant) -> Result<Option<Reply>, DhcpError> {
        let mut buf = [0u8; wire::MAX_REPLY + 1];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(DhcpError::Socket("poll", self.ifname.to_string(), e)),
            }
            let n = match socket::recv(self.fd.as_raw_fd(), &mut buf, socket::MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(DhcpError::Socket("receive", self.ifname.to_string(), e)),
            };
            match wire::decode(&buf[..n]) {
                Ok(r) if r.xid == self.xid && r.chaddr == self.mac && kinds.contains(&r.kind) => {
                    return Ok(Some(r))
                }
                Ok(_) => {}
                Err(e) => crate::warn!("network: {}: DHCP reply ignored: {e}", self.ifname),
            }
        }
    }

    fn secs(&self) -> u16 {
        u16::try_from(self.started.elapsed().as_secs()).unwrap_or(u16::MAX)
    }

    /// Sends `msg` (rebuilt per try for `secs`) and waits for one of
    /// `kinds`, retransmitting after 1, 2, 4, 4… seconds until `deadline`.
    fn exchange(
        &self,
        to: Ipv4Addr,
        request: Option<Request>,
        kinds: &[u8],
        deadline: Instant,
    ) -> Result<Option<Reply>, DhcpError> {
        let mut wait = Duration::from_secs(1);
        while Instant::now() < deadline {
            self.send(&wire::encode(self.xid, self.mac, self.secs(), request), to)?;
            let until = (Instant::now() + wait).min(deadline);
            if let Some(r) = self.receive(kinds, until)? {
                return Ok(Some(r));
            }
            wait = (wait * 2).min(Duration::from_secs(4));
        }
        Ok(None)
    }
}

/// Obtains a lease on `ifname` (which is up) within `timeout`.
pub fn acquire(ifname: &str, mac: [u8; 6], timeout: Duration) -> Result<Reply, DhcpError> {
    let deadline = Instant::now() + timeout;
    let client = Client::open(ifname, mac)?;
    let timed_out = || DhcpError::Timeout(ifname.to_string(), timeout);
    loop {
        let offer = client
            .exchange(Ipv4Addr::BROADCAST, None, &[wire::OFFER], deadline)?
            .ok_or_else(timed_out)?;
        let Some(server) = offer.server else {
            crate::warn!("network: {ifname}: DHCP offer without a server identifier ignored");
            continue;
        };
        let request = Request::Selecting {
            addr: offer.addr,
            server,
        };
        match client.exchange(
            Ipv4Addr::BROADCAST,
            Some(request),
            &[wire::ACK, wire::NAK],
            deadline,
        )? {
            Some(r) if r.kind == wire::ACK => return Ok(r),
            Some(_) => crate::warn!("network: {ifname}: DHCP NAK from {server}: starting over"),
            None => return Err(timed_out()),
        }
    }
}

/// Renews `lease` (unicast to its server), or rebinds it (broadcast) once
/// past T2. Returns the server's new ACK.
pub fn renew(
    ifname: &str,
    mac: [u8; 6],
    lease: &Reply,
    rebinding: bool,
    timeout: Duration,
) -> Result<Reply, DhcpError> {
    let client = Client::open(ifname, mac)?;
    let to = match (rebinding, lease.server) {
        (false, Some(s)) => s,
        _ => Ipv4Addr::BROADCAST,
    };
    let request = Request::Renewing { addr: lease.addr };
    match client.exchange(
        to,
        Some(request),
        &[wire::ACK, wire::NAK],
        Instant::now() + timeout,
    )? {
        Some(r) if r.kind == wire::ACK => Ok(r),
        Some(_) => Err(DhcpError::Nak(
            ifname.to_string(),
            lease.server.unwrap_or(to),
        )),
        None => Err(DhcpError::Timeout(ifname.to_string(), timeout)),
    }
}

/// When to renew and rebind a lease obtained at `at` (RFC 2131 4.4.5: T1
/// and T2 default to 0.5 and 0.875 of the lease), and when it expires.
/// `None` for an infinite lease (0xffffffff).
pub fn schedule(lease: &Reply, at: Instant) -> Option<(Instant, Instant, Instant)> {
    let total = lease.lease.unwrap_or(3600);
    if total == u32::MAX {
        return None;
    }
    let t1 = lease.renew.unwrap_or(total / 2).min(total);
    let t2 = lease
        .rebind
        .unwrap_or((u64::from(total) * 7 / 8) as u32)
        .clamp(t1, total);
    let s = |n: u32| at + Duration::from_secs(u64::from(n));
    Some((s(t1), s(t2), s(total)))
}

/// A transaction id from the kernel's random pool: std's hash seed
/// (getrandom(2)), whose code the init already has for its HashMaps.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let h = std::collections::hash_map::RandomState::new().build_hasher();
    h.finish() as u32
}

#[cfg(test)]
pub(crate) mod tests;
