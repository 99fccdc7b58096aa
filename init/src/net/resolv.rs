//! `/etc/resolv.conf` and `/etc/hosts` from the configured interfaces, for
//! the VM and for a container that took an interface.

use super::Applied;
use std::net::IpAddr;
use std::path::Path;

/// `nameserver` lines (at most three, as resolv.conf(5) reads) and one
/// `search` line; `None` when there is nothing to say.
pub fn resolv_conf(applied: &[Applied]) -> Option<String> {
    let mut dns: Vec<IpAddr> = Vec::new();
    let mut search: Vec<&str> = Vec::new();
    for a in applied {
        for d in &a.dns {
            if !dns.contains(d) {
                dns.push(*d);
            }
        }
        for s in &a.search {
            if !search.contains(&s.as_str()) {
                search.push(s);
            }
        }
    }
    if dns.is_empty() && search.is_empty() {
        return None;
    }
    let mut text = String::from("# written by mkrootfs-init\n");
    for d in dns.iter().take(3) {
        text.push_str(&format!("nameserver {d}\n"));
    }
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    Some(text)
}

/// `existing` (the image's `/etc/hosts`, if any) with localhost and the
/// host name's line: the first address of the interfaces, or 127.0.1.1
/// without one (as Debian does).
pub fn hosts(existing: &str, hostname: &str, applied: &[Applied]) -> String {
    let addr = applied
        .iter()
        .flat_map(|a| &a.addresses)
        .map(|c| c.addr.to_string())
        .next()
        .unwrap_or_else(|| "127.0.1.1".into());
    let mut text = String::new();
    let mut localhost = false;
    for line in existing.lines() {
        let mut words = line.split_whitespace();
        let _addr = words.next();
        if words.clone().any(|w| w == hostname) {
            continue;
        }
        localhost |= words.any(|w| w == "localhost");
        text.push_str(line);
        text.push('\n');
    }
    if !localhost {
        text.push_str("127.0.0.1 localhost\n::1 localhost\n");
    }
    text.push_str(&format!("{addr} {hostname}\n"));
    text
}

/// Writes both files under `etc` (replacing a symlink rather than writing
/// through it); failures are warnings.
pub fn write_files(etc: &Path, applied: &[Applied], hostname: Option<&str>) {
    if let Some(text) = resolv_conf(applied) {
        replace(&etc.join("resolv.conf"), &text);
    }
    if let Some(h) = hostname {
        let path = etc.join("hosts");
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        replace(&path, &hosts(&existing, h, applied));
    }
}

fn replace(path: &Path, text: &str) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".mkrootfs-new");
    let tmp = std::path::PathBuf::from(tmp);
    let r = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        crate::warn!("network: write {}: {e}", path.display());
        let _ = std::fs::remove_file(&tmp);
    }
}
