//! Per-VM settings at boot (docs/init.md "Per-VM settings"): the image's
//! `[init]` table, then a config drive, then Firecracker's MMDS, then the
//! kernel command line, later sources winning key by key. The document and
//! its checks are `mkrootfs_config::settings`, shared with the builder's
//! `mkrootfs config-drive`; this module finds the sources, reports their
//! problems (a warning, or `FATAL settings: …` for a `required` source),
//! refuses keys outside `[init] overridable`, credits seeds, and applies
//! the result to the configuration before any service starts.
//!
//! Never in a message: a secret's value, the seed, the MMDS token.

mod drive;
mod mmds;
mod secrets;

use crate::shutdown::fatal;
use mkrootfs_config::settings::{self, Problem, Settings};
use mkrootfs_config::{ConfigDriveConfig, InitConfig, MmdsConfig};

pub use secrets::write as write_secrets;

/// The sources read so far: the drive's and MMDS's merged, the command
/// line's kept apart to go on top whenever the result is asked for.
pub struct Sources {
    overridable: Vec<String>,
    read: Settings,
    cmdline: Settings,
    /// Which sources gave anything, for the log line.
    names: Vec<&'static str>,
}

impl Sources {
    /// The command line's settings (`mkrootfs.hostname=`, `mkrootfs.env.…`),
    /// its problems and refusals logged now.
    pub fn new(cfg: &InitConfig, cmdline: &str) -> Sources {
        let params = crate::cmdline::split_params(cmdline);
        let mut s = Sources {
            overridable: cfg.overridable.clone(),
            read: Settings::default(),
            cmdline: Settings::default(),
            names: Vec::new(),
        };
        let cmd = s.accept(
            "kernel command line",
            false,
            settings::from_cmdline(&params),
        );
        if cmd != Settings::default() {
            s.names.push("kernel command line");
        }
        s.cmdline = cmd;
        s
    }

    /// Whether the command line set the host name (`mkrootfs.hostname=`).
    pub fn cmdline_hostname(&self) -> bool {
        self.cmdline.hostname.is_some()
    }

    /// Whether a VM may set `key` (the kernel's `ip=` is the `network` key).
    pub fn allows(&self, key: &str) -> bool {
        settings::allowed(&self.overridable, key)
    }

    /// Reports a source's problems, drops what `overridable` refuses, and
    /// credits its seed. A required source's problem is fatal.
    fn accept(
        &self,
        source: &str,
        required: bool,
        (mut got, problems): (Settings, Vec<Problem>),
    ) -> Settings {
        for p in &problems {
            report(source, required, p);
        }
        for key in got.retain_allowed(&self.overridable) {
            crate::warn!("settings: {source}: {key}: not in [init] overridable, refused");
        }
        if let Some(seed) = got.seed.take() {
            match crate::entropy::credit(&seed.0) {
                Ok(()) => crate::info!(
                    "settings: {source}: seed of {} bytes credited to the kernel's pool",
                    seed.0.len()
                ),
                Err(e) => crate::warn!("settings: {source}: seed: {e}"),
            }
        }
        got
    }

    fn take(&mut self, name: &'static str, got: Settings) {
        if got != Settings::default() {
            self.names.push(name);
        }
        self.read.overlay(got);
    }

    /// The config drive, when enabled: found by its label (waiting up to
    /// `wait_ms`), mounted read-only, its document read and unmounted.
    pub fn config_drive(&mut self, c: &ConfigDriveConfig, loaded: &crate::modules::Loaded) {
        const NAME: &str = "config drive";
        if !c.enabled {
            return;
        }
        match drive::read(c, loaded) {
            Ok(Some((device, text))) => {
                let source = format!("{NAME} {device}");
                let got = self.accept(&source, c.required, settings::parse_document(&text));
                self.take(NAME, got);
            }
            Ok(None) if c.required => fatal(
                "settings",
                &format_args!(
                    "config drive: no block device with the label {:?} after {} ms",
                    c.label,
                    c.wait()
                ),
            ),
            Ok(None) => crate::debug!("settings: no config drive labelled {:?}", c.label),
            Err(e) => report(
                NAME,
                c.required,
                &Problem {
                    key: String::new(),
                    message: e,
                },
            ),
        }
    }

    /// Firecracker's MMDS (version 2), once the network is up. Its
    /// `network` key comes too late to apply and is refused with a warning.
    pub fn mmds(&mut self, m: &MmdsConfig) {
        let source = format!("MMDS http://{}:{}{}", m.address, m.port, m.path);
        match mmds::fetch(m) {
            Ok(text) => {
                let mut got = self.accept(&source, m.required, settings::parse_document(&text));
                if got.network.take().is_some() {
                    crate::warn!(
                        "settings: {source}: network: read after the network is up, ignored"
                    );
                }
                self.take("MMDS", got);
            }
            Err(e) => report(
                &source,
                m.required,
                &Problem {
                    key: String::new(),
                    message: e,
                },
            ),
        }
    }

    /// The interfaces a source set, replacing the image's (the kernel's
    /// `ip=` still replaces these: `net::entries` reads it).
    pub fn network(&self) -> Option<&Vec<mkrootfs_config::network::NetworkConfig>> {
        self.read.network.as_ref()
    }

    /// Everything, the command line on top; logs which sources gave what
    /// (keys only).
    pub fn result(&self) -> Settings {
        let mut s = self.read.clone();
        s.overlay(self.cmdline.clone());
        if !self.names.is_empty() {
            crate::info!(
                "settings from {}: {}",
                self.names.join(", "),
                s.keys().join(" ")
            );
        }
        s
    }
}

/// Where the init leaves the environment part of the applied settings
/// for the agent, which reads the image's `init.json` when it starts and
/// must run processes with the same environment as the services (never
/// secrets, the seed or the host name; root's, mode 0600, on /run, which
/// containers do not share).
pub const FOR_AGENT: &str = "/run/mkrootfs/settings.json";

/// Writes [`FOR_AGENT`] when the settings change any environment.
pub fn save_for_agent(s: &Settings) {
    if s.env.is_empty() && s.services.is_empty() {
        return;
    }
    if let Err(e) = write_private(FOR_AGENT, environment_document(s).as_bytes()) {
        crate::warn!("settings: {e}: the agent's processes get the image's environment");
    }
}

/// The environment part of `s` as a settings document. Written by hand
/// from escaped strings: serializing maps through serde would add a
/// serializer to PID 1 for these few bytes.
fn environment_document(s: &Settings) -> String {
    let string = |t: &str| serde_json::to_string(t).unwrap_or_default();
    let env = |m: &std::collections::BTreeMap<String, String>| {
        let pairs: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{}:{}", string(k), string(v)))
            .collect();
        format!("{{{}}}", pairs.join(","))
    };
    let services: Vec<String> = s
        .services
        .iter()
        .map(|(name, one)| format!("{}:{{\"env\":{}}}", string(name), env(&one.env)))
        .collect();
    format!(
        "{{\"env\":{},\"services\":{{{}}}}}",
        env(&s.env),
        services.join(",")
    )
}

/// A file only root reads (mode 0600), its directory made if missing.
fn write_private(path: &str, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("create {path}: {e}"))?;
    f.write_all(bytes).map_err(|e| format!("write {path}: {e}"))
}

/// The agent's side of [`save_for_agent`]: the environment settings onto
/// the configuration it read (nothing when the file is absent).
pub fn load_for_agent(cfg: &mut InitConfig) {
    if let Ok(text) = std::fs::read(FOR_AGENT) {
        apply(cfg, &settings::parse_document(&text).0);
    }
}

/// A problem of a source: a warning, or the end of the boot when required.
fn report(source: &str, required: bool, p: &Problem) {
    let what = if p.key.is_empty() {
        format!("{source}: {}", p.message)
    } else {
        format!("{source}: {}: {}", p.key, p.message)
    };
    if required {
        fatal("settings", &what);
    }
    crate::warn!("settings: {what}, ignored");
}

/// The hostname and environment onto the configuration: a VM's `env` goes
/// to every service (containers included, replacing the image's `Env` by
/// name), `services.NAME.env` to that one. A name no service has is a
/// warning.
pub fn apply(cfg: &mut InitConfig, s: &Settings) {
    if let Some(h) = &s.hostname {
        cfg.hostname = Some(h.clone());
    }
    for svc in cfg.services.iter_mut() {
        for (k, v) in &s.env {
            svc.set_env(k, v);
        }
    }
    for (name, one) in &s.services {
        match cfg
            .services
            .iter_mut()
            .find(|svc| svc.display_name() == name)
        {
            Some(svc) => {
                for (k, v) in &one.env {
                    svc.set_env(k, v);
                }
            }
            None => crate::warn!("settings: services.{name}: no service of that name, ignored"),
        }
    }
}

#[cfg(test)]
mod tests;
