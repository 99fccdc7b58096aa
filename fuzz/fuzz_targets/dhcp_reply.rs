//! The init's DHCP decoder on untrusted bytes (a server's reply, or
//! anything else that reaches port 68): it must return a reply or an
//! error, never panic, and what it accepts must be what the init writes
//! into /etc/resolv.conf and /etc/hosts without adding lines.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mkrootfs_config::network::dhcp;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = dhcp::decode(data) {
        assert!(data.len() >= dhcp::HEADER_LEN && data.len() <= dhcp::MAX_REPLY);
        for name in r.hostname.iter().chain(&r.domain) {
            assert!(!name.is_empty() && name.bytes().all(|c| c.is_ascii_graphic()));
        }
        if let Some(p) = r.prefix {
            assert!(p <= 32);
        }
    }
});
