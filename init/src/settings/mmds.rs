//! Firecracker's MMDS, version 2: `PUT /latest/api/token` with
//! `X-metadata-token-ttl-seconds` gives a session token, then `GET <path>`
//! with `X-metadata-token` and `Accept: application/json` gives the
//! settings document. Plain HTTP/1.1 over TCP, one request per connection
//! (`Connection: close`), every read bounded in size and time. Written
//! here: an HTTP client crate (hyper, ureq) would add hundreds of KB and
//! threads to PID 1 for two requests whose answers Firecracker always sends
//! with a `Content-Length`.

use mkrootfs_config::settings::MAX_DOCUMENT;
use mkrootfs_config::MmdsConfig;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The token's lifetime asked for: the fetch is over long before.
const TOKEN_TTL_S: u32 = 60;

/// One response: status code and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The settings document from MMDS, or what went wrong (never the token).
pub fn fetch(m: &MmdsConfig) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + Duration::from_millis(m.timeout_ms);
    let addr = SocketAddr::from((m.address, m.port));
    let ttl = TOKEN_TTL_S.to_string();
    let token = request(
        addr,
        deadline,
        "PUT",
        "/latest/api/token",
        &[("X-metadata-token-ttl-seconds", &ttl)],
    )
    .map_err(|e| format!("PUT /latest/api/token: {e}"))?;
    if token.status != 200 {
        return Err(format!(
            "PUT /latest/api/token: status {} (is MMDS version 2 configured?)",
            token.status
        ));
    }
    let token = String::from_utf8(token.body)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or("PUT /latest/api/token: the token is not printable ASCII")?;
    let doc = request(
        addr,
        deadline,
        "GET",
        &m.path,
        &[("X-metadata-token", &token), ("Accept", "application/json")],
    )
    .map_err(|e| format!("GET {}: {e}", m.path))?;
    match doc.status {
        200 => Ok(doc.body),
        404 => Err(format!("GET {}: status 404: no such object", m.path)),
        s => Err(format!("GET {}: status {s}", m.path)),
    }
}

fn left(deadline: Instant) -> Result<Duration, String> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        return Err("timed out".into());
    }
    Ok(d)
}

/// One request on a fresh connection.
fn request(
    addr: SocketAddr,
    deadline: Instant,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, left(deadline)?)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", addr.ip());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "PUT" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    s.set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    // Head and body, bounded: a document and its headers.
    let limit = MAX_DOCUMENT + 16 * 1024;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        s.set_read_timeout(Some(left(deadline)?))
            .map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("receive from {addr}: {e}")),
        }
        if raw.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
        if let Some(r) = parse_response(&raw, false)? {
            return Ok(r);
        }
    }
    parse_response(&raw, true)?.ok_or_else(|| "the connection closed before a whole answer".into())
}

/// A whole response, `None` while more bytes are needed. The body is
/// `Content-Length` bytes; without one, it runs to the end of the
/// connection (the caller parses again at EOF). Chunked bodies are refused.
pub fn parse_response(raw: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the header is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("bad status line {status_line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(
                v.parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {v:?}"))?,
            );
        } else if k.eq_ignore_ascii_case("transfer-encoding") && !v.eq_ignore_ascii_case("identity")
        {
            return Err(format!("Transfer-Encoding {v:?} is not supported"));
        }
    }
    let body = &raw[end + 4..];
    match length {
        Some(n) if n > MAX_DOCUMENT => {
            Err(format!("Content-Length {n} is larger than {MAX_DOCUMENT}"))
        }
        Some(n) if body.len() < n => Ok(None),
        Some(n) => Ok(Some(Response {
            status,
            body: body[..n].to_vec(),
        })),
        None if !eof => Ok(None),
        None => Ok(Some(Response {
            status,
            body: body.to_vec(),
        })),
    }
}
