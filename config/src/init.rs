//! The init configuration: the `[init]` table of a profile, and the JSON the
//! init reads at boot. Every default is in the field's doc comment.
//!
//! Unknown keys are errors (`deny_unknown_fields`), and values are checked
//! while deserializing wherever one value alone can be judged, so that TOML
//! errors carry a line and column. Checks that need several fields together
//! are in [`InitConfig::validate`].

use crate::Mode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything the init does, in the order it does it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InitConfig {
    /// Hostname to set. Default: leave the kernel's (`(none)`).
    pub hostname: Option<String>,
    /// Environment for every service, on top of the init's defaults
    /// (`PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    /// `HOME=/root`, `TERM=linux`). Default: empty.
    pub env: BTreeMap<String, String>,
    /// umask for the init and its services. Default: `0022`.
    pub umask: Option<Mode>,
    /// Resource limits set on the init (inherited by services), by name
    /// without the `RLIMIT_` prefix, lower case: `nofile`, `nproc`, `core`…
    /// ([`crate::RLIMITS`], the table containers share). Each value sets both
    /// soft and hard limits; `-1` means unlimited. Default: the kernel's.
    pub rlimits: BTreeMap<String, i64>,
    /// Interfaces to configure before services start (`[[init.network]]`,
    /// [`crate::network`]); the kernel's `ip=` replaces them. Default: none
    /// (left out of the JSON when empty, so images without it stay
    /// byte-identical).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<crate::network::NetworkConfig>,
    /// Extra mounts made after the early ones (and, when the root is switched,
    /// inside the new root). Default: none.
    pub mounts: Vec<MountConfig>,
    /// Kernel modules to load at boot, by name, in addition to coldplug.
    /// Dependencies come from the image's `modules.dep`. Default: none
    /// (the builder fills this from the profile's `[modules]` table).
    pub modules: Vec<String>,
    /// Parameters for kernel modules, by module name (dashes and underscores
    /// are the same), as a modprobe.d `options` line gives them:
    /// `{ virtio_blk = "queue_depth=64" }`. When the init loads a module it
    /// passes these, then the module's parameters from the kernel command
    /// line (`virtio_blk.queue_depth=128`), space-separated, as modprobe
    /// does. Default: none (the builder fills this from the profile's
    /// `[modules] options`). Left out of the JSON when empty, so that
    /// images without it stay byte-identical.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub module_options: BTreeMap<String, String>,
    /// Load the modules that the devices under `/sys/devices` ask for
    /// (their `modalias`), using the image's `modules.alias`. Default: true.
    #[serde(default = "yes")]
    pub coldplug: bool,
    /// Where the final root filesystem comes from. Default: stay in the
    /// initramfs.
    pub root: RootConfig,
    /// The supervised workloads. Default: none, which is only valid when
    /// `root.exec` hands over to another init.
    pub services: Vec<ServiceConfig>,
    /// What happens when the main service ends for good.
    pub shutdown: ShutdownConfig,
    /// A shell to run on the console instead of powering off after a fatal
    /// error, for debugging (for example `/bin/sh`). Default: none.
    pub emergency_shell: Option<String>,
    /// Verbose init messages. Default: false.
    pub debug: bool,
    /// The guest agent on vsock ([`crate::agent::AgentConfig`],
    /// docs/agent.md). Default: none (no agent). Left out of the JSON when
    /// absent, so that images without it stay byte-identical.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::agent::AgentConfig>,
    /// The settings keys a VM may change ([`crate::settings`], docs/init.md
    /// "Per-VM settings"): an entry allows itself and every key below it
    /// (`env` allows `env.PORT`). Default: `["hostname", "network"]` (left
    /// out of the JSON then, so images without it stay byte-identical).
    #[serde(
        default = "default_overridable",
        skip_serializing_if = "is_default_overridable"
    )]
    pub overridable: Vec<String>,
    /// The config drive: a block device whose file system has this label,
    /// holding [`crate::settings::CONFIG_DRIVE_FILE`]. Default: looked for
    /// under the label `MKROOTFS-CFG`, not required.
    #[serde(default, skip_serializing_if = "ConfigDriveConfig::is_default")]
    pub config_drive: ConfigDriveConfig,
    /// Firecracker's MMDS (version 2) as a settings source, read once the
    /// network is up. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmds: Option<MmdsConfig>,
}

fn default_overridable() -> Vec<String> {
    crate::settings::DEFAULT_OVERRIDABLE
        .iter()
        .map(|k| k.to_string())
        .collect()
}

fn is_default_overridable(v: &[String]) -> bool {
    v == default_overridable().as_slice()
}

/// `[init.config_drive]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigDriveConfig {
    /// Look for one at all. Default: true.
    pub enabled: bool,
    /// The file-system label (1 to 16 bytes). Default: `MKROOTFS-CFG`.
    pub label: String,
    /// A missing drive, a document that does not parse or a bad key is
    /// fatal instead of a warning. Default: false.
    pub required: bool,
    /// How long to wait for the drive to appear after the modules are
    /// loaded, in milliseconds. Default: 0 (one look), 5000 when required.
    pub wait_ms: Option<u64>,
}

impl Default for ConfigDriveConfig {
    fn default() -> Self {
        ConfigDriveConfig {
            enabled: true,
            label: crate::settings::CONFIG_DRIVE_LABEL.to_string(),
            required: false,
            wait_ms: None,
        }
    }
}

impl ConfigDriveConfig {
    fn is_default(&self) -> bool {
        *self == ConfigDriveConfig::default()
    }

    /// [`ConfigDriveConfig::wait_ms`] with its default applied.
    pub fn wait(&self) -> u64 {
        self.wait_ms.unwrap_or(if self.required { 5000 } else { 0 })
    }
}

/// `[init.mmds]`: Firecracker's metadata service, version 2 (a session
/// token from `PUT /latest/api/token`, then `GET` with it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MmdsConfig {
    /// IPv4 address. Default: `169.254.169.254` (Firecracker's).
    pub address: std::net::Ipv4Addr,
    /// TCP port. Default: 80.
    pub port: u16,
    /// The object holding the settings document. Default: `/mkrootfs`.
    pub path: String,
    /// No answer, an error status or a bad key is fatal instead of a
    /// warning. Default: false.
    pub required: bool,
    /// The whole exchange's time limit, in milliseconds. Default: 2000.
    pub timeout_ms: u64,
}

impl Default for MmdsConfig {
    fn default() -> Self {
        MmdsConfig {
            address: std::net::Ipv4Addr::new(169, 254, 169, 254),
            port: 80,
            path: "/mkrootfs".into(),
            required: false,
            timeout_ms: 2000,
        }
    }
}

fn yes() -> bool {
    true
}

/// One mount, like a line of fstab.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// Device or pseudo source (`tmpfs`, `/dev/vdb`, `LABEL=data`).
    pub source: String,
    /// Absolute mount point; created when missing.
    pub target: String,
    /// File-system type (`ext4`, `tmpfs`, …).
    pub fstype: String,
    /// Comma-separated options as for mount(8): flags such as `ro`,
    /// `nosuid`, `nodev`, `noexec` become mount flags, the rest is data.
    /// Default: empty.
    #[serde(default)]
    pub options: String,
    /// A failed required mount is fatal; an optional one is logged.
    /// Default: true.
    #[serde(default = "yes")]
    pub required: bool,
}

/// How the init leaves the initramfs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootMode {
    /// Stay on the initramfs (`/` is the kernel's rootfs). Default.
    #[default]
    Initramfs,
    /// Copy the initramfs into a fresh tmpfs and switch to it, so that
    /// `pivot_root` works afterwards (container runtimes need it).
    Tmpfs,
    /// Mount a block device and switch to it.
    Device,
    /// A read-only image (erofs, squashfs, …) on a block device as the lower
    /// layer and a tmpfs as the upper layer of an overlay, switched to.
    Overlay,
}

/// The root file system. The kernel command line (`root=`, `rootfstype=`,
/// `rootflags=`, `ro`, `rw`, `rootwait=`) overrides these fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RootConfig {
    /// Default: `initramfs`, or `device` when the command line has `root=`.
    pub mode: RootMode,
    /// `/dev/vda`, `LABEL=root` or `UUID=…` (for `device` and `overlay`).
    pub device: Option<String>,
    /// File-system type; default: probed from the superblock (ext4, erofs,
    /// squashfs).
    pub fstype: Option<String>,
    /// Mount data, as `rootflags=`. Default: empty.
    pub options: String,
    /// Mount the device read-only. Default: false (`rw`), except that
    /// erofs, squashfs and overlay lower layers are always read-only.
    pub readonly: bool,
    /// How long to wait for the device to appear, in milliseconds.
    /// Default: 10000.
    pub timeout_ms: u64,
    /// After switching, exec this program of the new root as PID 1 (for
    /// example `/sbin/init` of a full distribution) instead of running
    /// `services`. Default: none.
    pub exec: Option<String>,
}

impl Default for RootConfig {
    fn default() -> Self {
        RootConfig {
            mode: RootMode::Initramfs,
            device: None,
            fstype: None,
            options: String::new(),
            readonly: false,
            timeout_ms: 10_000,
            exec: None,
        }
    }
}

/// When a service is started again after it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never. Default.
    #[default]
    No,
    /// When it exits non-zero or is killed by a signal.
    OnFailure,
    /// Whenever it ends.
    Always,
}

/// One supervised workload. A `container` table turns a service into a
/// container (namespaces, cgroup limits, capabilities, seccomp) without
/// changing how it is supervised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Name used in log lines. Default: the basename of `argv[0]`.
    #[serde(default)]
    pub name: Option<String>,
    /// Program and arguments; `argv[0]` is an absolute path or a name looked
    /// up in the service's `PATH`. Must not be empty, except for a container
    /// whose OCI `image` or `bundle` gives it.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Environment added to the global one. Default: empty.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory. Default: `/`.
    #[serde(default)]
    pub cwd: Option<String>,
    /// User: a number or a name from the image's `/etc/passwd`. Default: root.
    #[serde(default)]
    pub user: Option<String>,
    /// Group: a number or a name from `/etc/group`. Default: the user's
    /// primary group.
    #[serde(default)]
    pub group: Option<String>,
    /// Give the service the console as its controlling terminal (`setsid` +
    /// `TIOCSCTTY` on the device `/sys/class/tty/console/active` names), as
    /// an interactive shell needs. Default: false.
    #[serde(default)]
    pub tty: bool,
    /// Default: `no`.
    #[serde(default)]
    pub restart: Restart,
    /// Delay before the first restart, in milliseconds; doubled after each
    /// consecutive failure, up to 30 s. Default: 100.
    #[serde(default = "default_restart_delay")]
    pub restart_delay_ms: u64,
    /// Restarts allowed before the service is given up on. Default: 5.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// When the main service ends for good, the machine shuts down and its
    /// status is the machine's result. Default: the first service is main.
    #[serde(default)]
    pub main: bool,
    /// Run the service as a container ([`crate::container`]). Written in
    /// profiles; the builder resolves it into `container_plan` and never
    /// writes it into `init.json`: the init neither reads nor compiles it
    /// (the `profile` feature). Default: none (a plain service).
    #[cfg(feature = "profile")]
    #[serde(default, skip_serializing)]
    pub container: Option<crate::ContainerConfig>,
    /// The resolved container plan the init executes. Written only by the
    /// builder (from `container` or an OCI bundle), never in a profile; when
    /// present, the plan's argv/env/cwd/uid/gid replace the service's.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_plan: Option<crate::ContainerPlan>,
}

fn default_restart_delay() -> u64 {
    100
}

fn default_max_restarts() -> u32 {
    5
}

impl ServiceConfig {
    /// A plain main service running `argv`, every other key at its default
    /// (what `mkrootfs.cmd=` starts in an image without services).
    pub fn main_command(argv: Vec<String>) -> ServiceConfig {
        ServiceConfig {
            name: None,
            argv,
            env: BTreeMap::new(),
            cwd: None,
            user: None,
            group: None,
            tty: false,
            restart: Restart::No,
            restart_delay_ms: default_restart_delay(),
            max_restarts: default_max_restarts(),
            main: true,
            #[cfg(feature = "profile")]
            container: None,
            container_plan: None,
        }
    }

    /// The name used in messages.
    pub fn display_name(&self) -> &str {
        match &self.name {
            Some(n) => n,
            None => self
                .argv
                .first()
                .map(|a| a.rsplit('/').next().unwrap_or(a))
                .unwrap_or("service"),
        }
    }

    /// Replaces the program the service runs, plain or container alike
    /// (`mkrootfs.cmd=`): the one place a workload's argv is overridden.
    pub fn set_argv(&mut self, argv: Vec<String>) {
        if let Some(plan) = &mut self.container_plan {
            plan.argv = argv.clone();
        }
        self.argv = argv;
    }

    /// Sets one variable of the workload's environment, plain or container
    /// alike (per-VM settings): a container's plan holds its whole
    /// environment (the image's `Env` among it), where the name is replaced
    /// in place or added at the end.
    pub fn set_env(&mut self, name: &str, value: &str) {
        if let Some(plan) = &mut self.container_plan {
            let entry = format!("{name}={value}");
            let same = |e: &String| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == name;
            match plan.env.iter_mut().find(|e| same(e)) {
                Some(e) => *e = entry,
                None => plan.env.push(entry),
            }
        }
        self.env.insert(name.to_string(), value.to_string());
    }
}

/// What ends the machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShutdownAction {
    /// `reboot(RB_POWER_OFF)`. Default.
    #[default]
    Poweroff,
    /// `reboot(RB_AUTOBOOT)`: how a Firecracker guest ends (with `reboot=k`).
    Reboot,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Default: `poweroff`.
    pub action: ShutdownAction,
    /// Time between SIGTERM and SIGKILL to the remaining processes, in
    /// milliseconds. Default: 3000.
    pub grace_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            action: ShutdownAction::Poweroff,
            grace_ms: 3000,
        }
    }
}

/// One step of the key path of a failed check, from the `[init]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStep {
    /// A table key.
    Key(String),
    /// An index in an array (of tables).
    Index(usize),
}

/// A failed check of [`InitConfig::validate_at`]: the key it is about
/// (empty: the table as a whole), and the message, which names it too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidInit {
    pub at: Vec<KeyStep>,
    pub message: String,
}

fn invalid(at: &[KeyStep], message: String) -> InvalidInit {
    InvalidInit {
        at: at.to_vec(),
        message,
    }
}

fn key(k: &str) -> KeyStep {
    KeyStep::Key(k.to_string())
}

impl InitConfig {
    /// Checks that need more than one field. The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_at().map_err(|e| e.message)
    }

    /// [`InitConfig::validate`], saying which key is at fault, so that the
    /// builder can point at its line and column.
    pub fn validate_at(&self) -> Result<(), InvalidInit> {
        if let Some(h) = &self.hostname {
            if h.is_empty() || h.len() > 64 {
                return Err(invalid(
                    &[key("hostname")],
                    format!("init.hostname {h:?} must be 1 to 64 bytes"),
                ));
            }
        }
        for name in self.rlimits.keys() {
            if crate::rlimit_number(name).is_none() {
                return Err(invalid(
                    &[key("rlimits"), key(name)],
                    format!(
                        "init.rlimits: unknown limit {name:?} (known: {})",
                        crate::RLIMIT_NAMES.join(", ")
                    ),
                ));
            }
        }
        for (name, opts) in &self.module_options {
            let at = [key("module_options"), key(name)];
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '.' || c == '=')
            {
                return Err(invalid(
                    &at,
                    format!("init.module_options: {name:?} is not a module name"),
                ));
            }
            if opts.contains(['\0', '\n']) {
                return Err(invalid(
                    &at,
                    format!(
                        "init.module_options.{name}: the parameters {opts:?} contain a NUL or newline"
                    ),
                ));
            }
        }
        crate::network::check_all(&self.network).map_err(|(i, k, m)| {
            invalid(
                &[key("network"), KeyStep::Index(i), key(k)],
                format!("init.network[{i}]: {m}"),
            )
        })?;
        for (i, m) in self.mounts.iter().enumerate() {
            if !m.target.starts_with('/') {
                return Err(invalid(
                    &[key("mounts"), KeyStep::Index(i), key("target")],
                    format!("init.mounts: target {:?} must be absolute", m.target),
                ));
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            let at = |k: &str| vec![key("services"), KeyStep::Index(i), key(k)];
            // An OCI image or bundle fills argv in at build time.
            #[cfg(feature = "profile")]
            let from_oci = s
                .container
                .as_ref()
                .is_some_and(|c| c.image.is_some() || c.bundle.is_some());
            #[cfg(not(feature = "profile"))]
            let from_oci = false;
            if (s.argv.is_empty() && !from_oci) || s.argv.first().is_some_and(|a| a.is_empty()) {
                return Err(invalid(
                    &at("argv"),
                    format!("init.services[{i}]: argv must name a program"),
                ));
            }
            if let Some(p) = &s.container_plan {
                p.validate().map_err(|e| {
                    invalid(
                        &[key("services"), KeyStep::Index(i)],
                        format!("init.services[{i}].container_plan: {e}"),
                    )
                })?;
            }
            if let Some(cwd) = &s.cwd {
                if !cwd.starts_with('/') {
                    return Err(invalid(
                        &at("cwd"),
                        format!("init.services[{i}]: cwd {cwd:?} must be absolute"),
                    ));
                }
            }
        }
        if let Some((i, _)) = self
            .services
            .iter()
            .enumerate()
            .filter(|(_, s)| s.main)
            .nth(1)
        {
            return Err(invalid(
                &[key("services"), KeyStep::Index(i), key("main")],
                "init.services: more than one service has main = true".into(),
            ));
        }
        let r = &self.root;
        match r.mode {
            RootMode::Device | RootMode::Overlay if r.device.is_none() => {
                // root= on the kernel command line may still provide it; the
                // init reports a missing device at boot.
            }
            RootMode::Initramfs if r.exec.is_some() => {
                return Err(invalid(
                    &[key("root"), key("exec")],
                    "init.root.exec needs a root.mode other than initramfs".into(),
                ));
            }
            _ => {}
        }
        if let Some(a) = &self.agent {
            let field = if a.port == u32::MAX {
                "port"
            } else {
                "copy_dirs"
            };
            a.validate()
                .map_err(|e| invalid(&[key("agent"), key(field)], e))?;
        }
        crate::settings::check_overridable(&self.overridable)
            .map_err(|e| invalid(&[key("overridable")], format!("init.overridable: {e}")))?;
        let label = &self.config_drive.label;
        if label.is_empty() || label.len() > 16 {
            return Err(invalid(
                &[key("config_drive"), key("label")],
                format!("init.config_drive.label {label:?} must be 1 to 16 bytes"),
            ));
        }
        if let Some(m) = &self.mmds {
            if !m.path.starts_with('/')
                || m.path
                    .contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control())
            {
                return Err(invalid(
                    &[key("mmds"), key("path")],
                    format!("init.mmds.path {:?} must be an absolute URL path", m.path),
                ));
            }
        }
        if self.services.is_empty() && r.exec.is_none() {
            return Err(invalid(
                &[],
                "init: no services and no root.exec: the init would have nothing to run".into(),
            ));
        }
        Ok(())
    }

    /// Service names must be unique: each names its log lines and a
    /// container's cgroup (`mkrootfs/<name>`), which a second service of
    /// the same name would take over (and kill as a leftover). The builder
    /// checks this once OCI images have filled argv in, the names then
    /// being final.
    pub fn check_service_names(&self) -> Result<(), InvalidInit> {
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, s) in self.services.iter().enumerate() {
            let name = s.display_name();
            if let Some(first) = names.insert(name, i) {
                let (k, how) = match &s.name {
                    Some(_) => ("name", "name"),
                    None => ("argv", "name (from argv[0])"),
                };
                return Err(invalid(
                    &[key("services"), KeyStep::Index(i), key(k)],
                    format!(
                        "init.services[{i}]: {how} {name:?} is already init.services[{first}]'s: \
                         service names must be unique (give one a `name`)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Index of the main service: the one with `main = true`, else the first.
    pub fn main_service(&self) -> Option<usize> {
        if self.services.is_empty() {
            return None;
        }
        Some(self.services.iter().position(|s| s.main).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests;
