//! Guest networking booted under QEMU user networking (`restrict=on`, the
//! forward bound to 127.0.0.1: nothing leaves this machine): DHCP from
//! QEMU's server, `ip=` on the command line, and a container that owns the
//! VM's interface and serves a page to the host. Three boots in all.

use mkrootfs_qemu::{HostFwd, Net, Nic, Outcome, VmConfig};
use mkrootfs_tests::{assert_console, build_image, chain, kernel, kernel_modules, BUSYBOX_IMAGE};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The page the container serves; the host checks these bytes.
const PAGE: &str = "served from the container's own eth0\n";

fn boot_on_net(image: &Path, append: &str, hostfwd: Vec<HostFwd>) -> Outcome {
    let mut cfg = VmConfig::new(kernel().vmlinuz.clone(), image.to_path_buf());
    cfg.append = append.to_string();
    cfg.net = Some(Nic::new(Net::User {
        hostfwd,
        guestfwd: Vec::new(),
    }));
    cfg.timeout = Duration::from_secs(300);
    let started = Instant::now();
    let out = mkrootfs_qemu::run(&cfg).unwrap_or_else(|e| panic!("run QEMU: {}", chain(&e)));
    eprintln!(
        "boot of {} took {:.1} s",
        image.display(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        !out.timed_out,
        "guest timed out; QEMU stderr:\n{}\nconsole:\n{}",
        out.stderr, out.console
    );
    out
}

/// The value after `KEY=` on the last console line that has it.
#[track_caller]
fn said(out: &Outcome, key: &str) -> String {
    mkrootfs_tests::said(out, &format!("{key}="))
}

/// The `address_ms` of the init's timings line.
fn address_ms(out: &Outcome) -> u64 {
    said(out, "address_ms")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no address_ms; console:\n{}", out.console))
}

/// `GET path` over HTTP/1.0 at 127.0.0.1:port: the whole response, or
/// None when nothing answered (the guest's server not up yet: QEMU accepts
/// the connection and closes it).
fn get(port: u16, path: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(5))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    (!text.is_empty()).then_some(text)
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// One boot: DHCP on eth0 from QEMU's server, then a container that takes
/// eth0 (`network = { interface = "eth0" }`) and runs busybox httpd, which
/// the host reaches through hostfwd on 127.0.0.1; a `network = "none"`
/// container cannot reach it; the VM's namespace no longer lists eth0.
#[test]
fn dhcp_lease_then_a_container_owns_eth0_and_serves_the_host() {
    let profile = format!(
        r##"{BUSYBOX_IMAGE}
[modules]
kernel = "{modules}"

[[dirs]]
path = "/srv/done"
mode = "0777"

[[files]]
dest = "/www/index.html"
content = "{page}"
mode = "0644"

[[files]]
dest = "/www/cgi-bin/done"
content = "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho bye\ntouch /done/flag\n"
mode = "0755"

[init]
hostname = "vm"
# QEMU's DHCP server sends no router and no DNS under restrict=on (libslirp
# leaves them out of a restricted network's replies): the entry gives its
# own, which a lease only adds to.
[[init.network]]
name = "eth0"
dhcp = true
gateway = "10.0.2.2"
dns = ["10.0.2.3"]
timeout_ms = 60000

[init.shutdown]
grace_ms = 500

[[init.services]]
name = "web"
argv = ["sh", "-c", "echo \"WEB addr=$(ip -4 -o addr show dev eth0 | awk '{{print $4}}')\"; echo \"WEB route=$(ip route | awk '/^default/ {{print $3}}')\"; echo \"WEB dns=$(awk '/^nameserver/ {{print $2}}' /etc/resolv.conf)\"; echo \"WEB hosts=$(grep web /etc/hosts)\"; echo \"WEB links=$(ls /sys/class/net | tr '\\n' ' ')\"; exec httpd -f -p 80 -h /www"]
container = {{ root = "/", hostname = "web", network = {{ interface = "eth0" }}, mounts = [{{ type = "bind", source = "/srv/done", target = "/done" }}] }}

[[init.services]]
name = "isolated"
argv = ["sh", "-c", "while [ ! -e /done/flag ]; do sleep 0.5; done; said=$(printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.0.2.15 80 2>&1); rc=$?; echo \"NONE fetch_rc=$rc links=$(ls /sys/class/net | tr '\\n' ' ')\"; echo \"NONE said=$said\"; touch /done/isolated; sleep 1000"]
container = {{ root = "/", network = "none", mounts = [{{ type = "bind", source = "/srv/done", target = "/done" }}] }}

[[init.services]]
name = "check"
main = true
argv = ["sh", "-c", "i=0; while [ ! -e /srv/done/isolated ] && [ $i -lt 600 ]; do sleep 0.5; i=$((i+1)); done; echo \"VM links=$(ls /sys/class/net | tr '\\n' ' ')\"; [ -e /srv/done/isolated ]"]
"##,
        modules = kernel_modules().display(),
        page = PAGE.trim_end().to_string() + "\\n",
    );
    let img = build_image("network-dhcp-container", &profile);
    let port = free_port();
    let stop = Arc::new(AtomicBool::new(false));
    let fetched = Arc::new(Mutex::new(None::<String>));
    let fetcher = {
        let (stop, fetched) = (stop.clone(), fetched.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(page) = get(port, "/index.html") {
                    *fetched.lock().unwrap() = Some(page);
                    // Tells the guest's main service the host has its page.
                    while !stop.load(Ordering::Relaxed) && get(port, "/cgi-bin/done").is_none() {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let out = boot_on_net(
        &img,
        "quiet",
        vec![HostFwd {
            host_port: port,
            guest_port: 80,
        }],
    );
    stop.store(true, Ordering::Relaxed);
    fetcher.join().unwrap();
    assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
    // QEMU's DHCP server (10.0.2.2) leases 10.0.2.15/24 for a day; the
    // route and the DNS are the entry's (see the profile).
    assert_console(
        &out,
        "network: eth0 52:54:00:12:34:56: 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3 (dhcp from 10.0.2.2, lease 86400 s)",
    );
    // Inside the container that took eth0: the same configuration.
    assert_eq!(said(&out, "WEB addr"), "10.0.2.15/24");
    assert_eq!(said(&out, "WEB route"), "10.0.2.2");
    assert_eq!(said(&out, "WEB dns"), "10.0.2.3");
    assert_eq!(said(&out, "WEB hosts"), "10.0.2.15 web");
    assert_eq!(said(&out, "WEB links"), "eth0 lo");
    // The host fetched the page's exact bytes through 127.0.0.1.
    let page = fetched.lock().unwrap().clone();
    let page = page.unwrap_or_else(|| panic!("the host got no page; console:\n{}", out.console));
    let (head, body) = page.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    assert_eq!(body, PAGE);
    // The VM's namespace gave eth0 away; the isolated container has only lo
    // and reaches nothing.
    assert_eq!(said(&out, "VM links"), "lo");
    assert_eq!(said(&out, "NONE fetch_rc"), "1 links=lo");
    let refused = said(&out, "NONE said");
    assert!(refused.contains("Network is unreachable"), "{refused}");
    assert!(!refused.contains(PAGE.trim_end()), "{refused}");
    eprintln!("DHCP: address_ms={}", address_ms(&out));
}

/// One image, two command lines: each `ip=` gives its own address (and
/// host name), replacing the profile's DHCP entry.
#[test]
fn one_image_two_ip_command_lines_two_addresses() {
    let profile = format!(
        r#"{BUSYBOX_IMAGE}
[modules]
kernel = "{modules}"

[init]
[[init.network]]
name = "eth0"
dhcp = true

[[init.services]]
name = "show"
argv = ["sh", "-c", "echo \"SHOW addr=$(ip -4 -o addr show dev eth0 | awk '{{print $4}}') host=$(hostname) route=$(ip route | awk '/^default/ {{print $3}}') dns=$(awk '/^nameserver/ {{print $2}}' /etc/resolv.conf | tr '\\n' ' ')\""]
"#,
        modules = kernel_modules().display(),
    );
    let img = build_image("network-ip-param", &profile);
    let mut ms = Vec::new();
    for (ip, want) in [
        (
            "ip=10.0.2.21::10.0.2.2:255.255.255.0:one:eth0:off:10.0.2.3",
            "10.0.2.21/24 host=one route=10.0.2.2 dns=10.0.2.3",
        ),
        (
            "ip=10.0.2.22:::255.255.0.0:two:eth0:off",
            "10.0.2.22/16 host=two route= dns=",
        ),
    ] {
        let out = boot_on_net(&img, &format!("quiet {ip}"), Vec::new());
        assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
        assert_eq!(said(&out, "SHOW addr"), want, "{ip}");
        assert_console(&out, "(static)");
        ms.push(address_ms(&out));
    }
    eprintln!("static: address_ms={ms:?}");
}
