//! mkrootfs-init: the static PID 1 of mkrootfs images.
//!
//! The steps, in order: early mounts, console, configuration
//! (`/etc/mkrootfs/init.json`) with kernel-command-line overrides, hostname /
//! umask / rlimits, kernel modules, the root file system, extra mounts,
//! services, supervision, shutdown. Any failure on the way is fatal: a
//! `FATAL <step>: …` line, then power-off with status 1 (`docs/init.md`).
//!
//! Not running as PID 1, the binary refuses to touch the machine; it only
//! offers `--check-config <file>`.

mod acpi;
mod agent;
mod boot_timer;
mod cmdline;
mod console;
mod container;
mod entropy;
mod launch;
mod log;
mod modules;
mod mounts;
mod net;
mod reaper;
mod root;
mod settings;
mod shutdown;
mod supervise;
mod sys;
mod users;
mod vmgenid;

use mkrootfs_config::Restart;
use mkrootfs_config::{InitConfig, INIT_CONFIG_PATH};
use shutdown::{fatal, fatal_error};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use supervise::policy::{Backoff, Status};
use supervise::{spawn, Stop, Supervisor};

const USAGE: &str = "usage: init                      (as PID 1 only)\n       init --check-config <file>  parse and validate an init.json\n";

fn main() {
    // A container's reaper (`init = true`) is PID 1 of its namespace: it must
    // be told apart before anything of the VM's init runs.
    if std::env::args_os()
        .next()
        .is_some_and(|a| a == reaper::ARGV0)
    {
        let args: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        reaper::main(&args)
    }
    // The guest agent: a separate process the init starts (docs/agent.md).
    if std::env::args_os()
        .next()
        .is_some_and(|a| a == agent::ARGV0)
    {
        agent::main()
    }
    // Blocked before anything else: a handled signal that arrives before the
    // signalfd exists stays pending instead of being lost.
    let blocked = supervise::signals::block();
    // With panic = "abort" the hook runs before the abort, so it must end
    // the machine itself: an exiting PID 1 is a kernel panic.
    std::panic::set_hook(Box::new(|info| fatal("panic", info)));
    if std::process::id() != 1 {
        let args: Vec<String> = std::env::args().collect();
        std::process::exit(host_mode(&args));
    }
    if let Err(e) = blocked {
        fatal("block signals", &e);
    }
    boot()
}

/// Not PID 1: only the test modes, never mounts or reboot.
fn host_mode(args: &[String]) -> i32 {
    match args.get(1).map(String::as_str) {
        Some("--check-config") => match args.get(2) {
            Some(file) => match check_config(file) {
                Ok(line) => {
                    println!("{line}");
                    0
                }
                Err(line) => {
                    eprintln!("{line}");
                    1
                }
            },
            None => {
                eprint!("{USAGE}");
                2
            }
        },
        Some("--help" | "-h") => {
            print!("{USAGE}");
            0
        }
        Some("--version" | "-V") => {
            println!("mkrootfs-init {}", env!("CARGO_PKG_VERSION"));
            0
        }
        _ => {
            eprintln!(
                "init: not PID 1 (pid {}): refusing to mount or reboot",
                std::process::id()
            );
            eprint!("{USAGE}");
            2
        }
    }
}

/// The configuration could not be loaded; Display names the file, the I/O or
/// parse error is the source.
#[derive(Debug)]
enum ConfigError {
    Read(PathBuf, std::io::Error),
    Parse(PathBuf, serde_json::Error),
    Invalid(PathBuf, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read(p, _) => write!(f, "read {}", p.display()),
            ConfigError::Parse(p, _) => write!(f, "parse {}", p.display()),
            ConfigError::Invalid(p, e) => write!(f, "invalid {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read(_, e) => Some(e),
            ConfigError::Parse(_, e) => Some(e),
            ConfigError::Invalid(..) => None,
        }
    }
}

/// `init --check-config FILE`: the line to print, on stdout when the file
/// is good, on stderr with the whole error chain (as the FATAL lines print
/// it: the parser's line, column and reason) when it is not.
fn check_config(file: &str) -> Result<String, String> {
    match load_config(Path::new(file)) {
        Ok(cfg) => Ok(format!("{file}: ok ({} service(s))", cfg.services.len())),
        Err(e) => Err(format!("init: {}", log::Chain(&e))),
    }
}

/// Reads, parses and validates an init configuration.
fn load_config(path: &Path) -> Result<InitConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
    let cfg: InitConfig =
        serde_json::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e))?;
    cfg.validate()
        .map_err(|e| ConfigError::Invalid(path.into(), e))?;
    Ok(cfg)
}

/// Milestones of the boot, for the timings line.
struct Timings {
    start: Duration,
    marks: Vec<(&'static str, Duration)>,
    /// Durations inside a phase (`container_ms`: launching the main
    /// container, part of `start_ms`), printed after the phases.
    extra: Vec<(&'static str, u128)>,
}

impl Timings {
    fn mark(&mut self, name: &'static str) {
        self.marks.push((name, log::since_boot()));
    }

    /// `kernel_ms=812 init_ms=35 mounts_ms=3 config_ms=1 …`
    fn line(&self) -> String {
        let mut s = format!("kernel_ms={}", self.start.as_millis());
        let last = self.marks.last().map_or(self.start, |m| m.1);
        s.push_str(&format!(" init_ms={}", (last - self.start).as_millis()));
        let mut prev = self.start;
        for (name, at) in &self.marks {
            s.push_str(&format!(
                " {name}_ms={}",
                at.saturating_sub(prev).as_millis()
            ));
            prev = *at;
        }
        for (name, ms) in &self.extra {
            s.push_str(&format!(" {name}_ms={ms}"));
        }
        s
    }
}

fn boot() -> ! {
    let mut t = Timings {
        start: log::since_boot(),
        marks: Vec::new(),
        extra: Vec::new(),
    };
    // ctrl-alt-del then sends SIGINT to PID 1 instead of an immediate reboot.
    let cad = nix::sys::reboot::set_cad_enabled(false);
    if let Err(e) = mounts::early(&sys::seam::Real) {
        fatal_error("mount", &e);
    }
    t.mark("mounts");
    log::open_kmsg();
    if let Err(e) = console::attach() {
        warn!("{e}: keeping the console the kernel gave");
    }
    if let Err(e) = cad {
        warn!("reboot(RB_DISABLE_CAD): {e}");
    }
    t.mark("console");

    let line = std::fs::read_to_string("/proc/cmdline").unwrap_or_else(|e| {
        warn!("read /proc/cmdline: {e}: no overrides");
        String::new()
    });
    let (overrides, warnings) = cmdline::parse(&line);
    log::set_debug(overrides.debug);
    if let Some(t) = overrides.boot_timer {
        boot_timer::arm(t);
    }
    let sys_vendor = std::fs::read_to_string("/sys/class/dmi/id/sys_vendor").ok();
    let debug_exit = overrides.debug_exit.port(sys_vendor.as_deref());
    shutdown::set_debug_exit(debug_exit);
    info!("mkrootfs-init {} starting", env!("CARGO_PKG_VERSION"));
    for w in warnings {
        warn!("kernel command line: {w}");
    }
    let path = Path::new(INIT_CONFIG_PATH);
    let mut cfg = load_config(path).unwrap_or_else(|e| fatal_error("config", &e));
    overrides.apply(&mut cfg);
    if let Err(e) = cfg.validate() {
        fatal(
            "config",
            &format_args!(
                "{} with the kernel command line overrides: {e}",
                path.display()
            ),
        );
    }
    log::set_debug(cfg.debug);
    let mut vm = settings::Sources::new(&cfg, &line);
    shutdown::configure(
        cfg.shutdown.action,
        cfg.shutdown.grace_ms,
        debug_exit,
        cfg.emergency_shell.as_deref(),
    );
    debug!("configuration: {cfg:?}");
    system_setup(&cfg);
    t.mark("config");

    let mut loaded = modules::load(&cfg, &line);
    t.mark("modules");
    if cfg.coldplug {
        loaded.names.extend(modules::coldplug());
    }
    t.mark("coldplug");
    match root::enter(&cfg.root, &loaded, overrides.verity.as_deref()) {
        Ok(root::Entered::Initramfs) => {}
        Ok(root::Entered::Switched) => {
            // The root engineer moves /dev, /proc, /sys and /run along;
            // anything missing in the new root is mounted here.
            if let Err(e) = mounts::early(&sys::seam::Real) {
                fatal_error("mount", &e);
            }
        }
        Ok(root::Entered::Exec(program, argv)) => {
            // The timings end here: the root's own init takes over.
            t.mark("root");
            info!("timings: {}", t.line());
            exec_init(&program, &argv)
        }
        Err(e) => fatal_error("root", &e),
    }
    t.mark("root");
    if let Err(e) = mounts::configured(&sys::seam::Real, &cfg.mounts) {
        fatal_error("mount", &e);
    }
    t.mark("mounts2");
    // The config drive's driver is loaded and /run is the final one.
    vm.config_drive(&cfg.config_drive, &loaded);
    if let Some(n) = vm.network() {
        cfg.network = n.clone();
    }
    // After the modules (virtio_rng among them), the root and a seed: the
    // CRNG's state is noted, never waited for.
    if let Some(ms) = entropy::at_boot(t.start) {
        t.extra.push(("crng", ms));
    }
    // The kernel's ip= is the `network` key: refused like the others.
    let ip_line = if vm.allows("network") {
        line.as_str()
    } else {
        if cmdline::split_params(&line).iter().any(|(k, _)| k == "ip") {
            warn!(
                "settings: kernel command line: network (ip=): not in [init] overridable, refused"
            );
        }
        ""
    };
    let ip_hostname = network(&cfg, ip_line, &mut t);
    if let Some(m) = cfg.mmds.clone() {
        vm.mmds(&m);
    }
    let s = vm.result();
    settings::apply(&mut cfg, &s);
    // ip='s host name is the command line's too: only mkrootfs.hostname=
    // beats it.
    let hostname = s
        .hostname
        .as_ref()
        .filter(|_| ip_hostname.is_none() || vm.cmdline_hostname());
    if let Some(h) = hostname {
        if let Err(e) = nix::unistd::sethostname(h) {
            warn!("sethostname {h:?}: {e}");
        }
    }
    if let Err(e) = settings::write_secrets(&mut cfg, &s.secrets) {
        fatal("settings", &e);
    }
    settings::save_for_agent(&s);
    t.mark("settings");

    supervise_and_end(&cfg, t)
}

/// The interfaces, before services start; `address` in the timings is
/// the time from the init's start to the last address in place.
/// Returns the host name `ip=` gave, if any.
fn network(cfg: &InitConfig, cmdline: &str, t: &mut Timings) -> Option<String> {
    let (entries, ip_hostname) =
        net::entries(&cfg.network, cmdline).unwrap_or_else(|e| fatal_error("network", &e));
    if let Some(h) = &ip_hostname {
        if let Err(e) = nix::unistd::sethostname(h) {
            warn!("sethostname {h:?} (from ip=): {e}");
        }
    }
    let hostname = ip_hostname.as_deref().or(cfg.hostname.as_deref());
    match net::configure(&entries, hostname) {
        Ok(c) => {
            if let Some(at) = c.address_at {
                t.extra
                    .push(("address", at.saturating_sub(t.start).as_millis()));
            }
        }
        Err(e) => fatal_error("network", &e),
    }
    t.mark("network");
    ip_hostname
}

/// Hostname, umask and resource limits; failures are logged, not fatal.
fn system_setup(cfg: &InitConfig) {
    if let Some(h) = &cfg.hostname {
        if let Err(e) = nix::unistd::sethostname(h) {
            warn!("sethostname {h:?}: {e}");
        }
    }
    let umask = cfg.umask.map_or(0o022, |m| m.0);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        umask as libc::mode_t,
    ));
    for (name, value) in &cfg.rlimits {
        let Some(resource) = rlimit_resource(name) else {
            warn!("unknown rlimit {name:?}");
            continue;
        };
        let v = if *value < 0 {
            libc::RLIM_INFINITY
        } else {
            *value as libc::rlim_t
        };
        if let Err(e) = nix::sys::resource::setrlimit(resource, v, v) {
            warn!("setrlimit {name}={value}: {e}");
        }
    }
}

/// The resource for a name of `mkrootfs_config::RLIMITS` (the names are
/// there; this is nix's type for each resource number, in order).
fn rlimit_resource(name: &str) -> Option<nix::sys::resource::Resource> {
    use nix::sys::resource::Resource as R;
    const BY_NUMBER: [R; 16] = [
        R::RLIMIT_CPU,
        R::RLIMIT_FSIZE,
        R::RLIMIT_DATA,
        R::RLIMIT_STACK,
        R::RLIMIT_CORE,
        R::RLIMIT_RSS,
        R::RLIMIT_NPROC,
        R::RLIMIT_NOFILE,
        R::RLIMIT_MEMLOCK,
        R::RLIMIT_AS,
        R::RLIMIT_LOCKS,
        R::RLIMIT_SIGPENDING,
        R::RLIMIT_MSGQUEUE,
        R::RLIMIT_NICE,
        R::RLIMIT_RTPRIO,
        R::RLIMIT_RTTIME,
    ];
    BY_NUMBER
        .get(mkrootfs_config::rlimit_number(name)? as usize)
        .copied()
}

/// Hands PID 1 over to the new root's init (`root.exec`): same pid, the
/// kernel's environment, signals unblocked.
fn exec_init(program: &Path, argv: &[String]) -> ! {
    info!("handing over to {}", program.display());
    let path = program.to_string_lossy();
    let exe = match sys::Exec::new(&path, argv.iter().map(String::as_str), []) {
        Ok(exe) => exe,
        Err(e) => fatal("exec", &format_args!("{path}: {e}")),
    };
    if let Err(e) = sys::child::reset_signals() {
        warn!("reset signals before exec: {e}");
    }
    boot_timer::fire();
    let e = exe.exec_keeping_environment();
    fatal("exec", &format_args!("{path}: {e}"))
}

/// Starts the services, supervises them, and ends the machine.
fn supervise_and_end(cfg: &InitConfig, mut t: Timings) -> ! {
    let (passwd, groups) = users::load(Path::new("/"));
    let console = console::active_device();
    let mut services = Vec::with_capacity(cfg.services.len());
    for s in &cfg.services {
        match spawn::prepare(cfg, s, &passwd, &groups, console.clone()) {
            Ok(p) => services.push((p, Backoff::for_service(s))),
            Err(e) => fatal("service", &format_args!("{}: {e}", s.display_name())),
        }
    }
    let Some(main) = cfg.main_service() else {
        fatal("service", &"no main service")
    };
    if cfg.agent.is_some() {
        // After the configured services (the main index stays), restarted
        // whenever it ends.
        services.push((
            agent_service(),
            Backoff::new(Restart::Always, 100, u32::MAX),
        ));
    }
    let sigfd = supervise::signals::signalfd().unwrap_or_else(|e| fatal("signalfd", &e));
    let mut sup = Supervisor::new(services, main, sigfd);
    if let Err(e) = sup.start_all() {
        fatal_error("start", &e);
    }
    t.mark("start");
    if let Some(ms) = sup.container_ms {
        t.extra.push(("container", ms));
    }
    let boot_ms = log::since_boot().as_millis() as u64;
    info!("timings: {}", t.line());

    let stop = sup.run().unwrap_or_else(|e| fatal_error("start", &e));
    sup.begin_shutdown();
    sup.stop_containers();
    let fallback = match stop {
        Stop::MainEnded(status) => status,
        Stop::Signal(sig) => Status::Signaled(sig),
    };
    shutdown::finish(
        boot_ms,
        &mut Ended {
            sup: &mut sup,
            fallback,
        },
    )
}

/// The agent as a service: this binary under [`agent::ARGV0`] (spawn
/// execs `/proc/self/exe` for that name), as root in `/`.
fn agent_service() -> spawn::Prepared {
    spawn::Prepared::as_root("agent", vec![agent::ARGV0.into()], None)
}

/// The supervisor at the machine's end: [`shutdown::finish`] stops every
/// process (the services' ends recorded here), then asks for the outcome.
struct Ended<'a> {
    sup: &'a mut Supervisor,
    /// The status when the main service never reported one.
    fallback: Status,
}

impl shutdown::Ending for Ended<'_> {
    fn reaped(&mut self, pid: nix::unistd::Pid, status: Status) {
        self.sup.reaped(pid, status);
    }

    fn outcome(&mut self) -> shutdown::Outcome {
        self.sup.remove_containers();
        let service_ms = match self.sup.main_started {
            Some(start) => self
                .sup
                .main_ended
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(start)
                .as_millis() as u64,
            None => 0,
        };
        let status = self.sup.main_status.unwrap_or(self.fallback);
        agent::notify::send(&format!("EXIT_STATUS={}", status.code()));
        shutdown::Outcome {
            status,
            service_ms,
            container: self.sup.main_stats.clone(),
        }
    }
}

/// The tests' one CI-aware skip (a test that cannot run here says why, and
/// fails under `CI=true`), the test crates' own file: the init's tests
/// cannot depend on the builder's test crate.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../tests/util/require.rs"]
mod require;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn missing_config_names_the_path() {
        let e = load_config(Path::new("/nonexistent/init.json")).unwrap_err();
        assert_eq!(
            log::Chain(&e).to_string(),
            "read /nonexistent/init.json: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn bad_json_names_path_line_and_column() {
        let f = write("{\"services\": [{\"argv\": [\"/bin/true\"], \"restrat\": \"no\"}]}");
        let e = log::Chain(&load_config(f.path()).unwrap_err()).to_string();
        let want = format!("parse {}: unknown field `restrat`", f.path().display());
        assert!(e.starts_with(&want), "{e}");
        assert!(e.contains("line 1 column"), "{e}");
    }

    /// Issue 21: `init --check-config bad.json` printed `init: parse
    /// bad.json` without the parser's line, column and reason.
    #[test]
    fn check_config_prints_the_whole_error_chain() {
        let f = write("{\"services\": [}");
        let file = f.path().display().to_string();
        assert_eq!(
            check_config(&file),
            Err(format!(
                "init: parse {file}: expected value at line 1 column 15"
            ))
        );
        let missing = check_config("/nonexistent/init.json");
        assert_eq!(
            missing,
            Err("init: read /nonexistent/init.json: No such file or directory (os error 2)".into())
        );
    }

    #[test]
    fn invalid_config_is_reported_by_validate() {
        let f = write("{}");
        let e = load_config(f.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "invalid {}: init: no services and no root.exec: the init would have nothing to run",
                f.path().display()
            )
        );
    }

    #[test]
    fn good_config_loads() {
        let f =
            write(r#"{"hostname":"vm","services":[{"argv":["/bin/sh"],"restart":"on-failure"}]}"#);
        let cfg = load_config(f.path()).unwrap();
        assert_eq!(cfg.hostname.as_deref(), Some("vm"));
        assert_eq!(
            host_mode(&[
                "init".into(),
                "--check-config".into(),
                f.path().display().to_string()
            ]),
            0
        );
        assert_eq!(
            host_mode(&[
                "init".into(),
                "--check-config".into(),
                "/nonexistent".into()
            ]),
            1
        );
        assert_eq!(host_mode(&["init".into()]), 2);
    }

    #[test]
    fn every_config_rlimit_name_maps_to_a_resource() {
        for name in mkrootfs_config::RLIMIT_NAMES {
            assert!(rlimit_resource(name).is_some(), "{name}");
        }
        assert!(rlimit_resource("bogus").is_none());
    }

    #[test]
    fn timings_line_has_each_phase() {
        let t = Timings {
            start: Duration::from_millis(800),
            marks: vec![
                ("mounts", Duration::from_millis(803)),
                ("config", Duration::from_millis(810)),
            ],
            extra: vec![("container", 4)],
        };
        assert_eq!(
            t.line(),
            "kernel_ms=800 init_ms=10 mounts_ms=3 config_ms=7 container_ms=4"
        );
    }
}
