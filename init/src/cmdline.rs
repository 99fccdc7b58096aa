//! Kernel command line: the `mkrootfs.*` overrides and the kernel's own root
//! parameters, read from `/proc/cmdline` (dotted parameters never reach init
//! as argv or environment). Every parameter is documented in `docs/init.md`.
//!
//! Parsing is pure ([`parse`]) and applying is pure ([`Overrides::apply`]) so
//! both are unit tested without a kernel. Bad values are reported as warnings
//! and ignored: a typo on the command line should not keep a machine from
//! booting with its built-in configuration.

use crate::boot_timer::{self, BootTimer};
use mkrootfs_config::{InitConfig, Restart, RootMode, ServiceConfig, ShutdownAction};

/// The isa-debug-exit port used when `mkrootfs.debug_exit` has no value.
pub const DEFAULT_DEBUG_EXIT_PORT: u16 = 0xf4;

/// Whether the result goes to QEMU's isa-debug-exit device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DebugExit {
    /// Port 0xf4 when the machine says it is QEMU (DMI `sys_vendor`), where
    /// a write to a port without a device is ignored. Default.
    #[default]
    Auto,
    /// `mkrootfs.debug_exit=off` (or `no`, `0`).
    Off,
    /// `mkrootfs.debug_exit` (0xf4) or `mkrootfs.debug_exit=<port>`.
    Port(u16),
}

impl DebugExit {
    /// The port to write, given the DMI `sys_vendor` (`None` when the
    /// machine has no DMI, as QEMU's microvm).
    pub fn port(self, sys_vendor: Option<&str>) -> Option<u16> {
        match self {
            DebugExit::Port(p) => Some(p),
            DebugExit::Off => None,
            DebugExit::Auto => {
                (sys_vendor.map(str::trim) == Some("QEMU")).then_some(DEFAULT_DEBUG_EXIT_PORT)
            }
        }
    }
}

/// What the command line asks for; `None` leaves the configuration alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `mkrootfs.cmd="prog arg 'two words'"`: the main service's argv.
    pub cmd: Option<Vec<String>>,
    /// `mkrootfs.debug`.
    pub debug: bool,
    /// `mkrootfs.shutdown=poweroff|reboot`.
    pub shutdown: Option<ShutdownAction>,
    /// `mkrootfs.grace=<ms>`.
    pub grace_ms: Option<u64>,
    /// `mkrootfs.shell=/bin/sh`.
    pub shell: Option<String>,
    /// `mkrootfs.restart=no|on-failure|always`: the main service's policy.
    pub restart: Option<Restart>,
    /// `mkrootfs.debug_exit[=<port>|off]`: write the result to QEMU's isa-debug-exit.
    pub debug_exit: DebugExit,
    /// `root=`.
    pub root: Option<String>,
    /// `rootfstype=`.
    pub rootfstype: Option<String>,
    /// `rootflags=`.
    pub rootflags: Option<String>,
    /// `ro` (true) or `rw` (false); the last one wins, as in the kernel.
    pub readonly: Option<bool>,
    /// `rootwait` (forever), `rootwait=<s>` or `mkrootfs.rootwait=<ms>`.
    pub rootwait_ms: Option<u64>,
    /// `mkrootfs.boot_timer=firecracker|mmio:<addr>[:<byte>]|pio:<port>[:<byte>]|off`.
    pub boot_timer: Option<BootTimer>,
    /// `mkrootfs.verity=<root hash>`: mount the root through dm-verity.
    pub verity: Option<String>,
}

/// How long a bare `rootwait` waits: "forever", in practice.
pub const ROOTWAIT_FOREVER_MS: u64 = u64::MAX / 2;

/// Splits a command line into `(key, value)` parameters the way the kernel's
/// `next_arg` does: whitespace separates parameters except inside double
/// quotes, and the quotes are removed (`a="b c"` gives `("a", Some("b c"))`).
pub fn split_params(line: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut any = false;
    for c in line.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
            any = true;
        } else if c.is_whitespace() && !in_quotes {
            if any {
                out.push(std::mem::take(&mut cur));
                any = false;
            }
        } else {
            cur.push(c);
            any = true;
        }
    }
    if any {
        out.push(cur);
    }
    out.into_iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (p, None),
        })
        .collect()
}

/// Splits a command the way a POSIX shell splits words, without expansions:
/// whitespace separates words; `'...'` is literal; inside `"..."` a backslash
/// escapes `"`, `\`, `$` and `` ` ``; outside quotes a backslash escapes the
/// next character.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated ' in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => cur.push(e),
                            Some(e) => {
                                cur.push('\\');
                                cur.push(e);
                            }
                            None => return Err(format!("unterminated \" in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated \" in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => cur.push(e),
                    None => return Err(format!("trailing \\ in {s:?}")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn parse_ms(key: &str, v: Option<&str>, warnings: &mut Vec<String>) -> Option<u64> {
    match v.map(str::parse::<u64>) {
        Some(Ok(n)) => Some(n),
        _ => {
            warnings.push(format!(
                "{key}={}: expected milliseconds, ignored",
                v.unwrap_or("")
            ));
            None
        }
    }
}

fn parse_port(v: &str) -> Option<u16> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Parses the whole command line. Returns the overrides and one warning per
/// parameter that was ours but had a bad value. Unknown parameters are left
/// to whoever they belong to.
pub fn parse(line: &str) -> (Overrides, Vec<String>) {
    let mut o = Overrides::default();
    let mut warnings = Vec::new();
    for (key, value) in split_params(line) {
        let v = value.as_deref();
        match key.as_str() {
            "mkrootfs.cmd" => match shell_split(v.unwrap_or("")) {
                Ok(argv) if !argv.is_empty() => o.cmd = Some(argv),
                Ok(_) => warnings.push("mkrootfs.cmd: empty command, ignored".into()),
                Err(e) => warnings.push(format!("mkrootfs.cmd: {e}, ignored")),
            },
            "mkrootfs.debug" => o.debug = !matches!(v, Some("0" | "no" | "false")),
            "mkrootfs.shutdown" => match v {
                Some("poweroff") => o.shutdown = Some(ShutdownAction::Poweroff),
                Some("reboot") => o.shutdown = Some(ShutdownAction::Reboot),
                _ => warnings.push(format!(
                    "mkrootfs.shutdown={}: expected poweroff or reboot, ignored",
                    v.unwrap_or("")
                )),
            },
            "mkrootfs.grace" => o.grace_ms = parse_ms(&key, v, &mut warnings).or(o.grace_ms),
            "mkrootfs.shell" => match v {
                Some(s) if !s.is_empty() => o.shell = Some(s.to_string()),
                _ => warnings.push("mkrootfs.shell: expected a program path, ignored".into()),
            },
            "mkrootfs.restart" => match v {
                Some("no") => o.restart = Some(Restart::No),
                Some("on-failure") => o.restart = Some(Restart::OnFailure),
                Some("always") => o.restart = Some(Restart::Always),
                _ => warnings.push(format!(
                    "mkrootfs.restart={}: expected no, on-failure or always, ignored",
                    v.unwrap_or("")
                )),
            },
            "mkrootfs.debug_exit" => match v {
                None | Some("") => o.debug_exit = DebugExit::Port(DEFAULT_DEBUG_EXIT_PORT),
                Some("off" | "no" | "0") => o.debug_exit = DebugExit::Off,
                Some(p) => match parse_port(p) {
                    Some(port) => o.debug_exit = DebugExit::Port(port),
                    None => warnings.push(format!(
                        "mkrootfs.debug_exit={p}: expected a port such as 0xf4, ignored"
                    )),
                },
            },
            "mkrootfs.boot_timer" => match boot_timer::parse(v.unwrap_or("")) {
                Ok(t) => o.boot_timer = t,
                Err(e) => warnings.push(e),
            },
            "mkrootfs.rootwait" => {
                o.rootwait_ms = parse_ms(&key, v, &mut warnings).or(o.rootwait_ms)
            }
            // Checked when the root is set up: a bad value is fatal there,
            // never a reason to mount the root unverified.
            "mkrootfs.verity" => o.verity = Some(v.unwrap_or("").to_string()),
            "root" => o.root = v.filter(|s| !s.is_empty()).map(str::to_string),
            "rootfstype" => o.rootfstype = v.filter(|s| !s.is_empty()).map(str::to_string),
            "rootflags" => o.rootflags = v.map(str::to_string),
            "ro" if v.is_none() => o.readonly = Some(true),
            "rw" if v.is_none() => o.readonly = Some(false),
            // The kernel's rootwait=<n> is in seconds; bare rootwait waits forever.
            "rootwait" => match v {
                None => o.rootwait_ms = Some(ROOTWAIT_FOREVER_MS),
                Some(s) => match s.parse::<u64>() {
                    Ok(secs) => o.rootwait_ms = Some(secs.saturating_mul(1000)),
                    Err(_) => warnings.push(format!("rootwait={s}: expected seconds, ignored")),
                },
            },
            k if k.starts_with("mkrootfs.") => {
                warnings.push(format!("{k}: unknown mkrootfs parameter, ignored"));
            }
            _ => {}
        }
    }
    (o, warnings)
}

impl Overrides {
    /// Applies the overrides to a configuration read from the image.
    pub fn apply(&self, cfg: &mut InitConfig) {
        if self.debug {
            cfg.debug = true;
        }
        if let Some(a) = self.shutdown {
            cfg.shutdown.action = a;
        }
        if let Some(g) = self.grace_ms {
            cfg.shutdown.grace_ms = g;
        }
        if let Some(s) = &self.shell {
            cfg.emergency_shell = Some(s.clone());
        }
        if let Some(argv) = &self.cmd {
            match cfg.main_service() {
                Some(i) => cfg.services[i].set_argv(argv.clone()),
                None => cfg.services.push(ServiceConfig::main_command(argv.clone())),
            }
        }
        if let (Some(r), Some(i)) = (self.restart, cfg.main_service()) {
            cfg.services[i].restart = r;
        }
        let root = &mut cfg.root;
        if let Some(dev) = &self.root {
            root.device = Some(dev.clone());
            if root.mode == RootMode::Initramfs {
                root.mode = RootMode::Device;
            }
        }
        if let Some(t) = &self.rootfstype {
            root.fstype = Some(t.clone());
        }
        if let Some(f) = &self.rootflags {
            root.options = f.clone();
        }
        if let Some(ro) = self.readonly {
            root.readonly = ro;
        }
        if let Some(ms) = self.rootwait_ms {
            root.timeout_ms = ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn kernel_style_splitting_removes_quotes() {
        let p = split_params("console=ttyS0 mkrootfs.cmd=\"sh -c 'echo hi'\"  ro \"x=a b\"");
        assert_eq!(
            p,
            vec![
                ("console".to_string(), Some("ttyS0".to_string())),
                (
                    "mkrootfs.cmd".to_string(),
                    Some("sh -c 'echo hi'".to_string())
                ),
                ("ro".to_string(), None),
                ("x".to_string(), Some("a b".to_string())),
            ]
        );
    }

    #[test]
    fn shell_split_handles_quotes_and_escapes() {
        assert_eq!(
            shell_split("sh -c 'echo hi'").unwrap(),
            s(&["sh", "-c", "echo hi"])
        );
        assert_eq!(
            shell_split(r#"a "b \"c\" \n" d\ e"#).unwrap(),
            s(&["a", "b \"c\" \\n", "d e"])
        );
        assert_eq!(shell_split("  x''  ''  ").unwrap(), s(&["x", ""]));
        assert_eq!(
            shell_split("a 'b").unwrap_err(),
            "unterminated ' in \"a 'b\""
        );
        assert_eq!(shell_split("a\\").unwrap_err(), "trailing \\ in \"a\\\\\"");
    }

    #[test]
    fn parses_every_parameter() {
        let (o, w) = parse(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 mkrootfs.cmd=\"/bin/sh -c 'exit 3'\" mkrootfs.debug \
             mkrootfs.shutdown=reboot mkrootfs.grace=250 mkrootfs.shell=/bin/sh \
             mkrootfs.restart=on-failure mkrootfs.debug_exit root=/dev/vda rootfstype=ext4 \
             rootflags=noatime ro rootwait=5 mkrootfs.boot_timer=pio:0x3f0 mkrootfs.verity=ab12\n",
        );
        assert_eq!(w, Vec::<String>::new());
        assert_eq!(
            o,
            Overrides {
                cmd: Some(s(&["/bin/sh", "-c", "exit 3"])),
                debug: true,
                shutdown: Some(ShutdownAction::Reboot),
                grace_ms: Some(250),
                shell: Some("/bin/sh".into()),
                restart: Some(Restart::OnFailure),
                debug_exit: DebugExit::Port(0xf4),
                root: Some("/dev/vda".into()),
                rootfstype: Some("ext4".into()),
                rootflags: Some("noatime".into()),
                readonly: Some(true),
                rootwait_ms: Some(5000),
                boot_timer: Some(BootTimer::Pio {
                    port: 0x3f0,
                    value: 123
                }),
                verity: Some("ab12".into()),
            }
        );
    }

    #[test]
    fn bad_values_are_warned_and_ignored() {
        let (o, w) = parse(
            "mkrootfs.grace=soon mkrootfs.restart=maybe mkrootfs.debug_exit=zz mkrootfs.typo=1 rw mkrootfs.boot_timer=mmio",
        );
        assert_eq!(
            o,
            Overrides {
                readonly: Some(false),
                ..Overrides::default()
            }
        );
        assert_eq!(
            w,
            s(&[
                "mkrootfs.grace=soon: expected milliseconds, ignored",
                "mkrootfs.restart=maybe: expected no, on-failure or always, ignored",
                "mkrootfs.debug_exit=zz: expected a port such as 0xf4, ignored",
                "mkrootfs.typo: unknown mkrootfs parameter, ignored",
                "mkrootfs.boot_timer=mmio: expected firecracker, mmio:<addr>[:<byte>], pio:<port>[:<byte>] or off, ignored",
            ])
        );
    }

    #[test]
    fn later_parameters_win_and_ports_parse() {
        let (o, _) = parse("ro rw mkrootfs.debug_exit=0x501 rootwait mkrootfs.rootwait=1500");
        assert_eq!(o.readonly, Some(false));
        assert_eq!(o.debug_exit, DebugExit::Port(0x501));
        assert_eq!(o.rootwait_ms, Some(1500));
        let (o, _) = parse("mkrootfs.debug_exit=off");
        assert_eq!(o.debug_exit, DebugExit::Off);
        let (o, _) = parse("rootwait");
        assert_eq!(o.rootwait_ms, Some(ROOTWAIT_FOREVER_MS));
    }

    #[test]
    fn debug_exit_is_automatic_only_on_qemu() {
        assert_eq!(DebugExit::Auto.port(Some("QEMU\n")), Some(0xf4));
        assert_eq!(DebugExit::Auto.port(Some("Dell Inc.\n")), None);
        assert_eq!(DebugExit::Auto.port(None), None);
        assert_eq!(DebugExit::Off.port(Some("QEMU\n")), None);
        assert_eq!(DebugExit::Port(0x501).port(None), Some(0x501));
    }

    #[test]
    fn apply_overrides_main_service_and_root() {
        let mut cfg: InitConfig = serde_json::from_str(
            r#"{"services":[{"argv":["/bin/a"]},{"argv":["/bin/b"],"main":true}]}"#,
        )
        .unwrap();
        let (o, _) = parse("mkrootfs.cmd=\"/bin/c x\" mkrootfs.restart=always root=LABEL=r rootflags=a,b ro mkrootfs.grace=10");
        o.apply(&mut cfg);
        assert_eq!(cfg.services[0].argv, s(&["/bin/a"]));
        assert_eq!(cfg.services[1].argv, s(&["/bin/c", "x"]));
        assert_eq!(cfg.services[1].restart, Restart::Always);
        assert_eq!(cfg.services[0].restart, Restart::No);
        assert_eq!(cfg.root.mode, RootMode::Device);
        assert_eq!(cfg.root.device.as_deref(), Some("LABEL=r"));
        assert_eq!(cfg.root.options, "a,b");
        assert!(cfg.root.readonly);
        assert_eq!(cfg.shutdown.grace_ms, 10);
    }

    /// Issue 20: `mkrootfs.cmd=` was ignored when the main service is a
    /// container (it runs `container_plan.argv`).
    #[test]
    fn cmd_replaces_a_main_containers_program_too() {
        let mut cfg: InitConfig = serde_json::from_str(
            r#"{"services":[{"argv":["/bin/app"],"container_plan":{"root":"/","clone_flags":0,"uid_map":[],"gid_map":[],"mounts":[],"masked_paths":[],"readonly_paths":[],"cgroup":{"path":"mkrootfs/app"},"argv":["/bin/app"],"env":[],"cwd":"/","uid":0,"gid":0,"capabilities":{"bounding":0,"effective":0,"permitted":0,"inheritable":0,"ambient":0},"no_new_privs":true,"seccomp":null}}]}"#,
        )
        .unwrap();
        let (o, _) = parse("mkrootfs.cmd=\"/bin/sh -c 'exit 3'\"");
        o.apply(&mut cfg);
        let want = s(&["/bin/sh", "-c", "exit 3"]);
        assert_eq!(cfg.services[0].argv, want);
        assert_eq!(cfg.services[0].container_plan.as_ref().unwrap().argv, want);
    }

    #[test]
    fn cmd_creates_a_main_service_when_there_is_none() {
        let mut cfg = InitConfig::default();
        let (o, _) = parse("mkrootfs.cmd=/bin/true");
        o.apply(&mut cfg);
        assert_eq!(cfg.services.len(), 1);
        assert_eq!(cfg.services[0].argv, s(&["/bin/true"]));
        assert_eq!(cfg.main_service(), Some(0));
    }

    #[test]
    fn root_keeps_overlay_mode() {
        let mut cfg = InitConfig::default();
        cfg.root.mode = RootMode::Overlay;
        let (o, _) = parse("root=/dev/vdb");
        o.apply(&mut cfg);
        assert_eq!(cfg.root.mode, RootMode::Overlay);
        assert_eq!(cfg.root.device.as_deref(), Some("/dev/vdb"));
    }
}
