//! Turning a service's configuration into a process: its environment, its
//! credentials, and the fork/exec with the child-side setup.

use crate::launch::StepError;
use crate::sys::child;
use crate::sys::Exec;
use crate::users::{self, Credentials, Group, Passwd};
use mkrootfs_config::{InitConfig, ServiceConfig};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::PathBuf;

/// The environment every service starts from (before the configuration's).
pub use mkrootfs_config::DEFAULT_ENV;

/// A service ready to start: everything that can fail on configuration is
/// resolved before the first fork.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub name: String,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: String,
    pub creds: Credentials,
    /// The console device to make the controlling terminal.
    pub tty: Option<PathBuf>,
    /// Started as a container from this plan instead ([`crate::container`]).
    pub container: Option<crate::container::Loaded>,
}

impl Prepared {
    /// A root process in `/` with the default environment: the emergency
    /// shell, and the supervisor's tests.
    pub fn as_root(name: &str, argv: Vec<String>, tty: Option<PathBuf>) -> Prepared {
        Prepared {
            name: name.into(),
            argv,
            env: default_env(),
            cwd: "/".into(),
            creds: Credentials {
                uid: 0,
                gid: 0,
                groups: vec![0],
                home: Some("/root".into()),
            },
            tty,
            container: None,
        }
    }
}

/// [`DEFAULT_ENV`] as an owned map.
pub fn default_env() -> BTreeMap<String, String> {
    DEFAULT_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Why a service cannot be prepared.
#[derive(Debug, PartialEq, Eq)]
pub enum PrepareError {
    Lookup(users::LookupError),
    /// A file a container's plan names (its seccomp filter) cannot be read.
    Container(crate::container::StepError),
}

impl std::fmt::Display for PrepareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrepareError::Lookup(e) => e.fmt(f),
            PrepareError::Container(e) => e.fmt(f),
        }
    }
}

/// Resolves one service against the image's user databases; a container's
/// files are read here, once, at boot.
pub fn prepare(
    cfg: &InitConfig,
    svc: &ServiceConfig,
    passwd: &[Passwd],
    groups: &[Group],
    console: Option<PathBuf>,
) -> Result<Prepared, PrepareError> {
    if let Some(plan) = &svc.container_plan {
        // Everything was resolved by the builder, inside the container root.
        let mut p = Prepared::as_root(svc.display_name(), plan.argv.clone(), None);
        p.creds.uid = plan.uid;
        p.creds.gid = plan.gid;
        p.container = Some(
            crate::container::Loaded::read(plan)
                .and_then(crate::container::Loaded::take_interface)
                .map_err(PrepareError::Container)?,
        );
        return Ok(p);
    }
    let creds = users::resolve(svc.user.as_deref(), svc.group.as_deref(), passwd, groups)
        .map_err(PrepareError::Lookup)?;
    if svc.tty && console.is_none() {
        crate::warn!(
            "{}: tty = true but /sys/class/tty/console/active names no console: no controlling terminal",
            svc.display_name()
        );
    }
    Ok(Prepared {
        name: svc.display_name().to_string(),
        argv: svc.argv.clone(),
        env: mkrootfs_config::service_environment(cfg, svc, creds.home.as_deref()),
        cwd: svc.cwd.clone().unwrap_or_else(|| "/".into()),
        creds,
        tty: if svc.tty { console } else { None },
        container: None,
    })
}

/// The file execve(2) should open for `program`: itself when it has a `/`,
/// else the first regular file of that name in the directories of `path`
/// (the service's `PATH`), as execvp(3) searches
/// ([`mkrootfs_config::exec_candidates`], the builder's rule too). Not
/// found: ENOENT.
pub fn lookup(program: &str, path: Option<&str>) -> std::io::Result<String> {
    if program.contains('/') {
        return Ok(program.to_string());
    }
    mkrootfs_config::exec_candidates(program, path)
        .into_iter()
        .find(|c| std::fs::metadata(c).is_ok_and(|m| m.is_file()))
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))
}

/// Forks and execs the service. The child resets its signals, starts a new
/// session (the supervisor tells a service's processes apart by session id),
/// takes the console as controlling terminal if asked, changes directory
/// and drops privileges. An exec failure (missing program…) comes back as
/// the error ([`crate::launch::launch`]).
pub fn spawn(p: &Prepared) -> Result<Pid, StepError> {
    let Some(program) = p.argv.first() else {
        return Err(StepError::new("exec", "", libc::EINVAL));
    };
    let errno = |e: &std::io::Error| e.raw_os_error().unwrap_or(libc::EINVAL);
    // A failed chdir in the child would read like a missing program: name it.
    if let Err(e) = std::fs::metadata(&p.cwd) {
        return Err(StepError::new("working directory", &p.cwd, errno(&e)));
    }
    // Likewise a missing console device.
    if let Some(t) = &p.tty {
        if let Err(e) = std::fs::metadata(t) {
            let t = t.display().to_string();
            return Err(StepError::new("controlling terminal", &t, errno(&e)));
        }
    }
    // The agent is the init's own binary under another name.
    let path = if program == crate::agent::ARGV0 {
        "/proc/self/exe".to_string()
    } else {
        lookup(program, p.env.get("PATH").map(String::as_str))
            .map_err(|e| StepError::new("exec", program, errno(&e)))?
    };
    let exe = Exec::new(
        &path,
        p.argv.iter().map(String::as_str),
        p.env.iter().map(|(k, v)| format!("{k}={v}")),
    )
    .map_err(|e| StepError::new("exec", program, errno(&e)))?;
    let cstring = |s: &[u8], what: &'static str| {
        CString::new(s).map_err(|_| StepError::new(what, &String::from_utf8_lossy(s), libc::EINVAL))
    };
    let cwd = cstring(p.cwd.as_bytes(), "working directory")?;
    let tty = match &p.tty {
        Some(t) => Some(cstring(
            t.as_os_str().as_encoded_bytes(),
            "controlling terminal",
        )?),
        None => None,
    };
    let Credentials {
        uid, gid, groups, ..
    } = &p.creds;
    // Only root can change credentials; unprivileged (host tests) keeps its own.
    let change_creds = nix::unistd::geteuid().is_root();
    // Runs between fork and exec: only async-signal-safe calls (see
    // sys::child), nothing allocated (every string was built above).
    let setup = || {
        child::reset_signals()?;
        child::setsid()?;
        if let Some(t) = &tty {
            child::controlling_tty(t)?;
        }
        child::chdir(&cwd)?;
        if change_creds {
            child::set_credentials(*uid, *gid, groups)?;
        }
        Ok(())
    };
    // The launcher containers use too, with no namespaces and no cgroup.
    // The supervisor reaps with waitpid(-1).
    crate::launch::launch(0, None, &[], &mut |_| Ok(()), &mut |_| {
        let err = match setup() {
            Ok(()) => exe.exec(),
            Err(e) => e,
        };
        StepError::new("exec", &path, err.raw_os_error().unwrap_or(libc::EINVAL))
    })
}

/// A started workload, plain or container: its pid and, for a container,
/// what the end of it needs (the cgroup, the stop signal).
#[derive(Debug)]
pub struct Started {
    pub pid: Pid,
    container: Option<crate::container::Running>,
}

impl Started {
    /// The signal a shutdown sends first: a container's PID 1 ignores the
    /// signals it does not handle, so it gets its own stop signal. `None`:
    /// the usual SIGTERM to everyone is enough.
    pub fn stop_signal(&self) -> Option<i32> {
        self.container.as_ref().map(|c| c.stop_signal)
    }

    /// After the process ended: for a container, its cgroup's counters,
    /// read before the cgroup is killed and removed.
    pub fn end(self) -> Option<crate::container::cgroups::Stats> {
        let c = self.container?;
        let stats = c.cgroup.stats();
        c.cgroup.destroy();
        Some(crate::container::cgroups::Stats {
            memory_max: c.limits.memory_max,
            pids_max: c.limits.pids_max,
            ..stats
        })
    }
}

impl Prepared {
    /// Starts the workload through the one launcher; returns once it has
    /// exec'd, or the step that failed.
    pub fn start(&self) -> Result<Started, StepError> {
        match &self.container {
            Some(loaded) => crate::container::spawn(&self.name, loaded).map(|r| Started {
                pid: r.pid,
                container: Some(r),
            }),
            None => spawn(self).map(|pid| Started {
                pid,
                container: None,
            }),
        }
    }

    /// The program, as the log and errors name it.
    pub fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_is_built_fresh_in_order() {
        let cfg: InitConfig = serde_json::from_str(
            r#"{"env":{"TERM":"vt100","A":"global"},"services":[{"argv":["/x"],"env":{"A":"svc","B":"b"}}]}"#,
        )
        .unwrap();
        let creds = Credentials {
            uid: 1000,
            gid: 1000,
            groups: vec![1000],
            home: Some("/home/u".into()),
        };
        let env =
            mkrootfs_config::service_environment(&cfg, &cfg.services[0], creds.home.as_deref());
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("A", "svc"),
                ("B", "b"),
                ("HOME", "/home/u"),
                (
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                ),
                ("TERM", "vt100"),
            ]
        );
    }

    #[test]
    fn lookup_searches_path_like_execvp() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("prog"), "").unwrap();
        let path = format!("/nonexistent:{d}/sub:{d}");
        assert_eq!(lookup("prog", Some(&path)).unwrap(), format!("{d}/prog"));
        // A directory of that name is skipped; a name with a slash is kept.
        assert_eq!(
            lookup("sub", Some(&path)).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        assert_eq!(lookup("./x/y", None).unwrap(), "./x/y");
        // No PATH: the default one, as the builder checked.
        assert_eq!(
            lookup("prog", None).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn missing_console_device_is_named_not_reported_as_a_missing_program() {
        let p = Prepared::as_root(
            "t",
            vec!["/bin/sh".into()],
            Some("/nonexistent/ttyS9".into()),
        );
        let e = spawn(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "controlling terminal /nonexistent/ttyS9: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn prepare_resolves_user_and_tty() {
        let cfg: InitConfig = serde_json::from_str(
            r#"{"services":[{"argv":["/bin/sh"],"user":"nobody","tty":true,"cwd":"/tmp"}]}"#,
        )
        .unwrap();
        let pw = users::parse_passwd("nobody:x:65534:65534::/nonexistent:/bin/false\n");
        let p = prepare(&cfg, &cfg.services[0], &pw, &[], Some("/dev/ttyS0".into())).unwrap();
        assert_eq!(p.name, "sh");
        assert_eq!(p.creds.uid, 65534);
        assert_eq!(p.env["HOME"], "/nonexistent");
        assert_eq!(p.cwd, "/tmp");
        assert_eq!(p.tty, Some(PathBuf::from("/dev/ttyS0")));
        let err = prepare(&cfg, &cfg.services[0], &[], &[], None).unwrap_err();
        assert_eq!(
            err,
            PrepareError::Lookup(users::LookupError::UnknownUser("nobody".into()))
        );
    }
}
