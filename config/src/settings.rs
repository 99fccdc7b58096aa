//! Per-VM settings (docs/init.md "Per-VM settings"): what one VM of an image
//! may change without a rebuild, from a config drive, Firecracker's MMDS or
//! the kernel command line, applied over the image's `[init]` table.
//!
//! One document shape for every source that carries JSON (the config drive's
//! file, the MMDS object):
//!
//! ```json
//! { "hostname": "vm-1",
//!   "env": { "LOG_LEVEL": "debug" },
//!   "services": { "web": { "env": { "PORT": "8080" } } },
//!   "network": [ { "name": "eth0", "addresses": ["10.0.2.21/24"] } ],
//!   "secrets": { "db/password": { "value": "…", "service": "web" } },
//!   "seed": "<hex>" }
//! ```
//!
//! Every setting has a dotted key (`hostname`, `network`, `env.NAME`,
//! `services.SVC.env.NAME`, `secrets.NAME`, `seed`): the kernel command line
//! spells the same keys after `mkrootfs.`, and `[init] overridable` allows
//! them by prefix. The parser is lenient key by key: a bad key is a
//! [`Problem`] and the rest still applies (the init warns, or stops when the
//! source is `required`; the config-drive writer refuses). No message ever
//! holds a secret's value or the seed: [`Secret`] and the seed redact
//! themselves in `Debug`, and values are judged here, not by serde's
//! messages (which quote what they reject).

use crate::network::{parse_ip_param, IpParam, NetworkConfig};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The file-system label the init looks for (ext4 volume names hold 16 bytes).
pub const CONFIG_DRIVE_LABEL: &str = "MKROOTFS-CFG";

/// The document's file at the root of a config drive.
pub const CONFIG_DRIVE_FILE: &str = "mkrootfs.json";

/// The largest document read from any source.
pub const MAX_DOCUMENT: usize = 1 << 20;

/// Where secrets are written in the VM (a tmpfs), and bound read-only at
/// the same path into a container.
pub const SECRETS_DIR: &str = "/run/secrets";

/// Keys a VM may change when the image does not say: `[init] overridable`.
pub const DEFAULT_OVERRIDABLE: [&str; 2] = ["hostname", "network"];

/// The first components a key may have.
pub const KEY_ROOTS: [&str; 6] = ["hostname", "env", "services", "network", "secrets", "seed"];

/// Seed sizes accepted, in bytes (`RNDADDENTROPY` credits 8 bits per byte).
pub const SEED_BYTES: std::ops::RangeInclusive<usize> = 16..=512;

/// A secret: bytes written to `/run/secrets/<name>` with mode 0400, owned by
/// its service's user (root without one), bound into that service's
/// container. `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub data: Vec<u8>,
    /// The service that owns it; `None`: root's, bound into no container.
    pub service: Option<String>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Secret {{ {} bytes, service: {:?} }}",
            self.data.len(),
            self.service
        )
    }
}

/// Entropy for the kernel's pool; `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed(pub Vec<u8>);

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seed({} bytes)", self.0.len())
    }
}

/// One service's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSettings {
    pub env: BTreeMap<String, String>,
}

/// What one source (or several, merged) sets; `None`/empty: nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub hostname: Option<String>,
    /// Every service's environment (containers included).
    pub env: BTreeMap<String, String>,
    /// By service name.
    pub services: BTreeMap<String, ServiceSettings>,
    /// Replaces the image's `[[init.network]]` entries.
    pub network: Option<Vec<NetworkConfig>>,
    /// By path below [`SECRETS_DIR`].
    pub secrets: BTreeMap<String, Secret>,
    pub seed: Option<Seed>,
}

/// A key that could not be taken: which, and why (never its value when it
/// is a secret or the seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

fn problem(key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: key.to_string(),
        message: message.into(),
    }
}

/// A value of the document, kept as its text until its key is judged:
/// parsing into `serde_json::Value` would add a second deserializer to
/// PID 1 (about 100 KB); each value is read here into its own type with the
/// one the init's configuration uses.
type Raw = serde_json::value::RawValue;

/// JSON type names for messages (never the value itself).
fn kind(v: &Raw) -> &'static str {
    match v.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn as_string(v: &Raw) -> Option<String> {
    (kind(v) == "a string")
        .then(|| serde_json::from_str(v.get()).ok())
        .flatten()
}

fn as_object(v: &Raw) -> Option<BTreeMap<String, Box<Raw>>> {
    (kind(v) == "an object")
        .then(|| serde_json::from_str(v.get()).ok())
        .flatten()
}

fn expected(what: &str, v: &Raw) -> String {
    format!("expected {what}, found {}", kind(v))
}

/// A host name as the kernel and resolvers take it: 1 to 64 bytes of
/// letters, digits, `-` and `.`.
pub fn check_hostname(h: &str) -> Result<(), String> {
    if h.is_empty() || h.len() > 64 {
        return Err(format!("{h:?} must be 1 to 64 bytes"));
    }
    if let Some(c) = h
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "{h:?} has {c:?}: only letters, digits, '-' and '.'"
        ));
    }
    Ok(())
}

/// An environment variable's name: not empty, without `=` or NUL.
pub fn check_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(format!("{name:?} is not a variable name"));
    }
    Ok(())
}

/// A secret's name: a relative path that stays below [`SECRETS_DIR`]:
/// components that are neither empty, `.` nor `..`, no NUL, at most 255
/// bytes each and 8 deep.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let bad = || Err(format!("{name:?} must be a path below {SECRETS_DIR}"));
    if name.starts_with('/') || name.contains('\0') {
        return bad();
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 8
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == ".." || p.len() > 255)
    {
        return bad();
    }
    Ok(())
}

/// Lower- or upper-case hex to bytes; `None` when not hex or odd.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Lower-case hex.
pub fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn string_map(key: &str, v: &Raw, out: &mut BTreeMap<String, String>, problems: &mut Vec<Problem>) {
    let Some(m) = as_object(v) else {
        problems.push(problem(key, expected("an object", v)));
        return;
    };
    for (name, value) in m {
        let at = format!("{key}.{name}");
        if let Err(e) = check_env_name(&name) {
            problems.push(problem(&at, e));
            continue;
        }
        match as_string(&value) {
            Some(s) if s.contains('\0') => {
                problems.push(problem(&at, "the value holds a NUL byte"))
            }
            Some(s) => {
                out.insert(name, s);
            }
            None => problems.push(problem(&at, expected("a string", &value))),
        }
    }
}

fn parse_services(v: &Raw, s: &mut Settings, problems: &mut Vec<Problem>) {
    let Some(m) = as_object(v) else {
        problems.push(problem("services", expected("an object", v)));
        return;
    };
    for (name, body) in m {
        let at = format!("services.{name}");
        let Some(fields) = as_object(&body) else {
            problems.push(problem(&at, expected("an object", &body)));
            continue;
        };
        let mut svc = ServiceSettings::default();
        for (k, v) in fields {
            match k.as_str() {
                "env" => string_map(&format!("{at}.env"), &v, &mut svc.env, problems),
                _ => problems.push(problem(&format!("{at}.{k}"), "unknown key (known: env)")),
            }
        }
        s.services.insert(name, svc);
    }
}

/// One `network` entry: an `[[init.network]]` object, or a string in the
/// kernel's `ip=` syntax (whose host name field comes back too).
fn parse_network_entry(at: &str, v: &Raw) -> Result<(NetworkConfig, Option<String>), String> {
    let mut hostname = None;
    let entry = if let Some(ip) = as_string(v) {
        match parse_ip_param(&ip) {
            Ok(IpParam::Interface(e, h)) => {
                if let Some(h) = h {
                    check_hostname(&h).map_err(|e| format!("{at}: host name {e}"))?;
                    hostname = Some(h);
                }
                e
            }
            Ok(IpParam::Off) => {
                return Err(format!(
                    "{at}: \"off\" is not an interface (use [] for none)"
                ))
            }
            Err(e) => return Err(format!("{at}: ip= syntax: {e}")),
        }
    } else if kind(v) == "an object" {
        serde_json::from_str::<NetworkConfig>(v.get()).map_err(|e| format!("{at}: {e}"))?
    } else {
        return Err(format!(
            "{at}: {}",
            expected("an object or an ip= string", v)
        ));
    };
    entry.check().map_err(|(k, m)| format!("{at}.{k}: {m}"))?;
    Ok((entry, hostname))
}

fn parse_network(v: &Raw, s: &mut Settings, problems: &mut Vec<Problem>) {
    let items: Vec<Box<Raw>> = match (kind(v), serde_json::from_str(v.get())) {
        ("an array", Ok(items)) => items,
        _ => {
            problems.push(problem("network", expected("an array", v)));
            return;
        }
    };
    let mut list = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse_network_entry(&format!("[{i}]"), item) {
            Ok((e, h)) => {
                list.push(e);
                // As the kernel's ip=: the host name field names the VM,
                // unless the document's `hostname` does.
                if s.hostname.is_none() {
                    s.hostname = h;
                }
            }
            Err(e) => {
                // Half a network is worse than the image's: the key fails whole.
                problems.push(problem("network", e));
                return;
            }
        }
    }
    if let Err((i, k, m)) = crate::network::check_all(&list) {
        problems.push(problem("network", format!("[{i}].{k}: {m}")));
        return;
    }
    s.network = Some(list);
}

fn parse_secret(name: &str, v: &Raw) -> Result<Secret, String> {
    check_secret_name(name)?;
    if let Some(text) = as_string(v) {
        return Ok(Secret {
            data: text.into_bytes(),
            service: None,
        });
    }
    let Some(m) = as_object(v) else {
        return Err(expected("a string or an object", v));
    };
    let mut data = None;
    let mut service = None;
    for (k, v) in m {
        if !matches!(k.as_str(), "value" | "hex" | "service") {
            return Err(format!("{k}: unknown key (known: value, hex, service)"));
        }
        let Some(t) = as_string(&v) else {
            return Err(format!("{k}: {}", expected("a string", &v)));
        };
        match k.as_str() {
            "service" => service = Some(t),
            _ if data.is_some() => return Err("give one of value and hex".into()),
            "hex" => data = Some(hex_decode(&t).ok_or("hex: not an even number of hex digits")?),
            _ => data = Some(t.into_bytes()),
        }
    }
    Ok(Secret {
        data: data.ok_or("needs a value (or hex)")?,
        service,
    })
}

fn parse_secrets(v: &Raw, s: &mut Settings, problems: &mut Vec<Problem>) {
    let Some(m) = as_object(v) else {
        problems.push(problem("secrets", expected("an object", v)));
        return;
    };
    for (name, value) in m {
        match parse_secret(&name, &value) {
            Ok(secret) => {
                s.secrets.insert(name, secret);
            }
            Err(e) => problems.push(problem(&format!("secrets.{name}"), e)),
        }
    }
}

fn parse_seed(v: &Raw) -> Result<Seed, String> {
    let Some(t) = as_string(v) else {
        return Err(expected("a hex string", v));
    };
    let bytes = hex_decode(&t).ok_or("not an even number of hex digits")?;
    if !SEED_BYTES.contains(&bytes.len()) {
        return Err(format!(
            "{} bytes: a seed has {} to {} bytes",
            bytes.len(),
            SEED_BYTES.start(),
            SEED_BYTES.end()
        ));
    }
    Ok(Seed(bytes))
}

/// Parses a document. The settings hold every key that was good; the
/// problems name every key that was not (a document that is not a JSON
/// object is one problem with an empty key: the caller names the source).
pub fn parse_document(text: &[u8]) -> (Settings, Vec<Problem>) {
    let mut s = Settings::default();
    let mut problems = Vec::new();
    if text.len() > MAX_DOCUMENT {
        problems.push(problem(
            "",
            format!("{} bytes: larger than {MAX_DOCUMENT}", text.len()),
        ));
        return (s, problems);
    }
    let Ok(text) = std::str::from_utf8(text) else {
        problems.push(problem("", "not UTF-8"));
        return (s, problems);
    };
    let whole: Box<Raw> = match serde_json::from_str(text) {
        Ok(v) => v,
        // serde_json's syntax errors name a line and column, not a value.
        Err(e) => {
            problems.push(problem("", format!("not JSON: {e}")));
            return (s, problems);
        }
    };
    let Some(root) = as_object(&whole) else {
        problems.push(problem("", expected("a JSON object", &whole)));
        return (s, problems);
    };
    for (k, v) in &root {
        match k.as_str() {
            "hostname" => match as_string(v) {
                Some(h) => match check_hostname(&h) {
                    Ok(()) => s.hostname = Some(h),
                    Err(e) => problems.push(problem(k, e)),
                },
                None => problems.push(problem(k, expected("a string", v))),
            },
            "env" => string_map("env", v, &mut s.env, &mut problems),
            "services" => parse_services(v, &mut s, &mut problems),
            "network" => parse_network(v, &mut s, &mut problems),
            "secrets" => parse_secrets(v, &mut s, &mut problems),
            "seed" => match parse_seed(v) {
                Ok(seed) => s.seed = Some(seed),
                Err(e) => problems.push(problem(k, e)),
            },
            _ => problems.push(problem(
                k,
                format!("unknown key (known: {})", KEY_ROOTS.join(", ")),
            )),
        }
    }
    (s, problems)
}

/// Whether `[init] overridable` lets a VM set `key`: an entry allows the key
/// itself and every key below it (`env` allows `env.PORT`; `services.web`
/// allows `services.web.env.PORT`). The seed is always taken: it only adds
/// to the kernel's pool, which no input can weaken.
pub fn allowed(overridable: &[String], key: &str) -> bool {
    key == "seed"
        || overridable.iter().any(|o| {
            key == o
                || (key.len() > o.len()
                    && key.starts_with(o.as_str())
                    && key.as_bytes()[o.len()] == b'.')
        })
}

/// Checks `[init] overridable`: each entry's first component is a key root.
pub fn check_overridable(list: &[String]) -> Result<(), String> {
    for o in list {
        let root = o.split('.').next().unwrap_or("");
        if !KEY_ROOTS.contains(&root) || o.split('.').any(str::is_empty) {
            return Err(format!(
                "{o:?} is not a settings key (keys start with {})",
                KEY_ROOTS.join(", ")
            ));
        }
    }
    Ok(())
}

impl Settings {
    /// Every key this holds, in order (for `overridable` and messages).
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        if self.hostname.is_some() {
            keys.push("hostname".to_string());
        }
        keys.extend(self.env.keys().map(|k| format!("env.{k}")));
        for (svc, s) in &self.services {
            keys.extend(s.env.keys().map(|k| format!("services.{svc}.env.{k}")));
        }
        if self.network.is_some() {
            keys.push("network".to_string());
        }
        keys.extend(self.secrets.keys().map(|k| format!("secrets.{k}")));
        if self.seed.is_some() {
            keys.push("seed".to_string());
        }
        keys
    }

    /// Drops what `overridable` does not allow; returns the refused keys.
    pub fn retain_allowed(&mut self, overridable: &[String]) -> Vec<String> {
        let mut refused = Vec::new();
        let mut keep = |key: String| {
            let ok = allowed(overridable, &key);
            if !ok {
                refused.push(key);
            }
            ok
        };
        if self.hostname.is_some() && !keep("hostname".into()) {
            self.hostname = None;
        }
        self.env.retain(|k, _| keep(format!("env.{k}")));
        for (svc, s) in self.services.iter_mut() {
            s.env.retain(|k, _| keep(format!("services.{svc}.env.{k}")));
        }
        self.services.retain(|_, s| !s.env.is_empty());
        if self.network.is_some() && !keep("network".into()) {
            self.network = None;
        }
        self.secrets.retain(|k, _| keep(format!("secrets.{k}")));
        refused
    }

    /// `later` over `self`, key by key (later wins); the seed is not merged:
    /// each source's is credited when it is read.
    pub fn overlay(&mut self, later: Settings) {
        if later.hostname.is_some() {
            self.hostname = later.hostname;
        }
        self.env.extend(later.env);
        for (name, s) in later.services {
            self.services.entry(name).or_default().env.extend(s.env);
        }
        if later.network.is_some() {
            self.network = later.network;
        }
        self.secrets.extend(later.secrets);
    }

    /// The document for these settings, as `mkrootfs config-drive` writes
    /// it (keys sorted: the same settings give the same bytes).
    pub fn to_document(&self) -> Value {
        let mut root = Map::new();
        if let Some(h) = &self.hostname {
            root.insert("hostname".into(), Value::String(h.clone()));
        }
        if !self.env.is_empty() {
            root.insert("env".into(), to_value(&self.env));
        }
        if !self.services.is_empty() {
            let services = self
                .services
                .iter()
                .map(|(name, s)| {
                    let mut m = Map::new();
                    m.insert("env".into(), to_value(&s.env));
                    (name.clone(), Value::Object(m))
                })
                .collect();
            root.insert("services".into(), Value::Object(services));
        }
        if let Some(n) = &self.network {
            root.insert("network".into(), to_value(n));
        }
        if !self.secrets.is_empty() {
            let secrets = self
                .secrets
                .iter()
                .map(|(name, s)| {
                    let mut m = Map::new();
                    match std::str::from_utf8(&s.data) {
                        Ok(t) => m.insert("value".into(), Value::String(t.into())),
                        Err(_) => m.insert("hex".into(), Value::String(hex_encode(&s.data))),
                    };
                    if let Some(svc) = &s.service {
                        m.insert("service".into(), Value::String(svc.clone()));
                    }
                    (name.clone(), Value::Object(m))
                })
                .collect();
            root.insert("secrets".into(), Value::Object(secrets));
        }
        if let Some(seed) = &self.seed {
            root.insert("seed".into(), Value::String(hex_encode(&seed.0)));
        }
        Value::Object(root)
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    // Maps of strings and network entries always serialize.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The kernel command line's settings: `mkrootfs.hostname=`,
/// `mkrootfs.env.NAME=`, `mkrootfs.services.SVC.env.NAME=` (the first
/// `.env.` ends the service's name). Secrets and seeds are refused there:
/// `/proc/cmdline` is readable by every process. Returns the settings and
/// a problem per bad parameter; parameters that are not settings are
/// skipped.
pub fn from_cmdline(params: &[(String, Option<String>)]) -> (Settings, Vec<Problem>) {
    let mut s = Settings::default();
    let mut problems = Vec::new();
    for (k, v) in params {
        let Some(key) = k.strip_prefix("mkrootfs.") else {
            continue;
        };
        let value = v.clone().unwrap_or_default();
        if key == "hostname" {
            match check_hostname(&value) {
                Ok(()) => s.hostname = Some(value),
                Err(e) => problems.push(problem(key, e)),
            }
        } else if let Some(name) = key.strip_prefix("env.") {
            match check_env_name(name) {
                Ok(()) => {
                    s.env.insert(name.to_string(), value);
                }
                Err(e) => problems.push(problem(key, e)),
            }
        } else if let Some(rest) = key.strip_prefix("services.") {
            match rest.split_once(".env.") {
                Some((svc, name)) if !svc.is_empty() && check_env_name(name).is_ok() => {
                    s.services
                        .entry(svc.to_string())
                        .or_default()
                        .env
                        .insert(name.to_string(), value);
                }
                _ => problems.push(problem(key, "expected services.SERVICE.env.NAME")),
            }
        } else if key.starts_with("secrets") || key == "seed" {
            problems.push(problem(
                key,
                "not taken from the kernel command line (every process can read /proc/cmdline)",
            ));
        }
    }
    (s, problems)
}

#[cfg(test)]
mod tests;
