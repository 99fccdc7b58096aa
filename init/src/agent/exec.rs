//! ExecProcess: a process started inside a running container (or, where
//! the profile allows it, in the VM), through the init's launcher
//! ([`crate::launch::launch`]): the child is not dumpable and holds no
//! descriptor but its own from the clone on.
//!
//! The container is found from the init's configuration (its plan, its
//! filter read again from the VM's `/etc/mkrootfs`, which no container can
//! reach) and its cgroup: its first process is the child of PID 1 in
//! `cgroup.procs`. The agent enters the container's PID namespace for its
//! children only (setns on `pid_for_children`, undone after the clone),
//! clones into the container's cgroup (`CLONE_INTO_CGROUP`); the child
//! joins the user namespace first, then mount, UTS, IPC, network, cgroup
//! and time, and applies what the container launcher applies: the working
//! directory checked inside the root, the session, the user and
//! capabilities, no_new_privs, the seccomp filter last; the agent sets the
//! rlimits and oom_score_adj from outside before it releases the child.

use crate::container::{self, Loaded, StepError};
use crate::sys::agent as sys;
use crate::sys::ns;
use crate::sys::Exec;
use mkrootfs_config::agent::proto::Process;
use mkrootfs_config::container::{
    ContainerPlan, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID,
    CLONE_NEWTIME, CLONE_NEWUSER, CLONE_NEWUTS,
};
use mkrootfs_config::InitConfig;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// A running container the agent can exec into.
pub struct Target {
    /// Its first process, in the VM's PID namespace.
    pub pid: i32,
    /// Its cgroup directory.
    pub cgroup: String,
    pub loaded: Loaded,
}

/// Namespaces joined, in order: the user namespace first, so that the
/// others (owned by it) can be joined with its capabilities. The PID
/// namespace is joined by the agent for its children.
const NAMESPACES: [(&str, u64); 7] = [
    ("user", CLONE_NEWUSER),
    ("mnt", CLONE_NEWNS),
    ("uts", CLONE_NEWUTS),
    ("ipc", CLONE_NEWIPC),
    ("net", CLONE_NEWNET),
    ("cgroup", CLONE_NEWCGROUP),
    ("time", CLONE_NEWTIME),
];

/// Finds the container `name` of `cfg` and its first process.
pub fn find(cfg: &InitConfig, name: &str) -> Result<Target, String> {
    let svc = cfg
        .services
        .iter()
        .find(|s| s.container_plan.is_some() && s.display_name() == name)
        .ok_or_else(|| format!("no container {name:?}"))?;
    let Some(plan) = &svc.container_plan else {
        return Err(format!("no container {name:?}"));
    };
    let rel = if plan.cgroup.path.is_empty() {
        format!("mkrootfs/{name}")
    } else {
        plan.cgroup.path.clone()
    };
    let cgroup = format!("{}/{rel}", container::cgroups::CGROUP_ROOT);
    let procs = std::fs::read_to_string(format!("{cgroup}/cgroup.procs"))
        .map_err(|e| format!("container {name:?} is not running ({cgroup}: {e})"))?;
    // The container's first process is the init's child; the others are
    // its descendants (or, without a PID namespace, orphans re-parented
    // to PID 1 later: the lowest pid is the first).
    let pid = procs
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .filter(|&p| crate::sys::proc_stat(p).is_some_and(|s| s.ppid == 1))
        .min()
        .ok_or_else(|| format!("container {name:?} is not running"))?;
    let loaded = Loaded::read(plan).map_err(|e| format!("container {name:?}: {e}"))?;
    Ok(Target {
        pid,
        cgroup,
        loaded,
    })
}

/// The exec'd process's standard streams, agent side.
pub struct Streams {
    pub stdin: Option<OwnedFd>,
    /// stdout, or the pty master with a terminal.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// What the child is handed.
struct ChildSide {
    /// stdin, stdout, stderr ends (pipes) when there is no terminal.
    stdio: Option<[RawFd; 3]>,
    tty: Option<OwnedFd>,
    namespaces: Vec<(OwnedFd, u64)>,
}

fn err(step: &str, path: &str) -> impl FnOnce(std::io::Error) -> StepError {
    let (step, path) = (step.to_string(), path.to_string());
    move |e| StepError::new(&step, &path, e.raw_os_error().unwrap_or(libc::EIO))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), StepError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| StepError::new("pipe", "", e as i32))
}

/// Whether two namespace files are the same namespace.
fn same_ns(a: &str, b: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
        _ => false,
    }
}

/// The plan the exec'd process runs under: the container's, with the
/// request's arguments, and its environment, working directory and user
/// where it gives them.
pub fn exec_plan(base: &ContainerPlan, p: &Process) -> ContainerPlan {
    let mut plan = base.clone();
    plan.argv = p.args.clone();
    if !p.env.is_empty() {
        plan.env = p.env.clone();
    }
    if !p.cwd.is_empty() {
        plan.cwd = p.cwd.clone();
    }
    // Kata's runtime always sends a user; all zero means "the container's".
    if let Some(u) = &p.user {
        if u.uid != 0 || u.gid != 0 || !u.additional_gids.is_empty() {
            plan.uid = u.uid;
            plan.gid = u.gid;
            plan.additional_gids = u.additional_gids.clone();
        }
    }
    plan.no_new_privs |= p.no_new_privileges;
    plan.terminal = p.terminal;
    plan
}

/// The plan of a process in the VM itself (`allow_vm_exec`): root, every
/// capability, no filter, the default environment unless given.
pub fn vm_plan(p: &Process) -> ContainerPlan {
    use mkrootfs_config::container::CapSets;
    let env = if p.env.is_empty() {
        mkrootfs_config::DEFAULT_ENV
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    } else {
        p.env.clone()
    };
    // The agent's own sets (every capability, in the VM): nothing more.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let (bounding, permitted) = (cap("CapBnd:"), cap("CapPrm:"));
    ContainerPlan {
        root: "/".into(),
        readonly_root: false,
        clone_flags: 0,
        uid_map: vec![],
        gid_map: vec![],
        setgroups: true,
        hostname: None,
        mounts: vec![],
        symlinks: vec![],
        masked_paths: vec![],
        readonly_paths: vec![],
        sysctls: vec![],
        cgroup: Default::default(),
        rlimits: vec![],
        oom_score_adj: None,
        argv: p.args.clone(),
        env,
        cwd: if p.cwd.is_empty() {
            "/".into()
        } else {
            p.cwd.clone()
        },
        uid: p.user.as_ref().map_or(0, |u| u.uid),
        gid: p.user.as_ref().map_or(0, |u| u.gid),
        additional_gids: p
            .user
            .as_ref()
            .map_or_else(Vec::new, |u| u.additional_gids.clone()),
        capabilities: CapSets {
            bounding,
            effective: permitted,
            permitted,
            inheritable: 0,
            ambient: 0,
        },
        no_new_privs: p.no_new_privileges,
        seccomp: None,
        seccomp_flags: 0,
        device_filter: None,
        terminal: p.terminal,
        init: false,
        stop_signal: 15,
        interface: None,
    }
}

/// Starts `plan`'s program in `target` (the VM itself when `None`);
/// returns its pid (in the VM's PID namespace) and the agent's ends of its
/// streams once it has exec'd, or the step that failed.
pub fn spawn(target: Option<&Target>, plan: &ContainerPlan) -> Result<(i32, Streams), StepError> {
    let argv0 = plan.argv.first().map(String::as_str).unwrap_or("");
    if argv0.is_empty() {
        return Err(StepError::new("exec", "", libc::EINVAL));
    }
    let path = plan.env.iter().find_map(|e| e.strip_prefix("PATH="));
    let mut execs = Vec::new();
    for c in container::exec_candidates(argv0, path) {
        execs.push(
            Exec::new(
                &c,
                plan.argv.iter().map(String::as_str),
                plan.env.iter().cloned(),
            )
            .map_err(err("exec", argv0))?,
        );
    }
    let filter = target.and_then(|t| t.loaded.filter.clone());
    // The namespaces that differ from the agent's own.
    let mut namespaces = Vec::new();
    let mut pidns = None;
    if let Some(t) = target {
        for (name, flag) in NAMESPACES {
            let theirs = format!("/proc/{}/ns/{name}", t.pid);
            if same_ns(&theirs, &format!("/proc/self/ns/{name}")) {
                continue;
            }
            match std::fs::File::open(&theirs) {
                Ok(f) => namespaces.push((OwnedFd::from(f), flag)),
                // A kernel without time namespaces has no such file.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(err("open", &theirs)(e)),
            }
        }
        let theirs = format!("/proc/{}/ns/pid", t.pid);
        if !same_ns(&theirs, "/proc/self/ns/pid") {
            pidns = Some(OwnedFd::from(
                std::fs::File::open(&theirs).map_err(err("open", &theirs))?,
            ));
        }
    }
    let cgroup = match target {
        Some(t) => Some(OwnedFd::from(
            std::fs::File::open(&t.cgroup).map_err(err("open", &t.cgroup))?,
        )),
        None => None,
    };
    let (streams, child_side) = if plan.terminal {
        let (agent_end, child_end) = ns::socketpair().map_err(err("socketpair", ""))?;
        (
            (Some(agent_end), None),
            ChildSide {
                stdio: None,
                tty: Some(child_end),
                namespaces,
            },
        )
    } else {
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        // Output in 1 MiB steps (ReadStdout's limit) rather than 64 KiB:
        // fewer round trips for a large output. Best effort.
        for fd in [&out_r, &err_r] {
            let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        }
        let fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
        (
            (None, Some((in_w, out_r, err_r, [in_r, out_w, err_w]))),
            ChildSide {
                stdio: Some(fds),
                tty: None,
                namespaces,
            },
        )
    };
    let mut keep: Vec<RawFd> = child_side
        .namespaces
        .iter()
        .map(|(fd, _)| fd.as_raw_fd())
        .collect();
    keep.extend(child_side.stdio.iter().flatten());
    keep.extend(child_side.tty.as_ref().map(|fd| fd.as_raw_fd()));
    // Children of the agent are born in the container's PID namespace
    // from here to the restore below.
    let own_pidns = match &pidns {
        Some(theirs) => {
            let own = OwnedFd::from(
                std::fs::File::open("/proc/self/ns/pid")
                    .map_err(err("open", "/proc/self/ns/pid"))?,
            );
            sys::setns(theirs.as_fd(), CLONE_NEWPID).map_err(err("setns", "pid"))?;
            Some(own)
        }
        None => None,
    };
    let last_cap = container::caps::last_cap();
    let launched = crate::launch::launch(
        0,
        cgroup.as_ref().map(|c| c.as_fd()),
        &keep,
        &mut |pid| parent_setup(plan, pid.as_raw()),
        &mut |_| child(plan, &child_side, &execs, filter.as_deref(), last_cap),
    );
    if let Some(own) = own_pidns {
        if let Err(e) = sys::setns(own.as_fd(), CLONE_NEWPID) {
            // Every later exec would start in that container: stop here,
            // the init restarts the agent.
            eprintln!("mkrootfs-agent: setns back to the VM's PID namespace: {e}");
            ns::exit_child(1);
        }
    }
    let pid = launched?.as_raw();
    let (tty_sock, pipes) = streams;
    let streams = match (tty_sock, pipes) {
        (Some(sock), _) => {
            let master = ns::recv_fd(sock.as_fd())
                .map_err(err("receive the pty", ""))?
                .ok_or_else(|| StepError::new("receive the pty", "", libc::EPROTO))?;
            Streams {
                stdin: None,
                stdout: Some(master),
                stderr: None,
            }
        }
        (None, Some((in_w, out_r, err_r, child_ends))) => {
            drop(child_ends);
            Streams {
                stdin: Some(in_w),
                stdout: Some(out_r),
                stderr: Some(err_r),
            }
        }
        (None, None) => Streams {
            stdin: None,
            stdout: None,
            stderr: None,
        },
    };
    for fd in [&streams.stdin, &streams.stdout, &streams.stderr]
        .into_iter()
        .flatten()
    {
        sys::set_nonblocking(fd.as_fd()).map_err(err("set non-blocking", ""))?;
    }
    Ok((pid, streams))
}

/// From outside, before the release: the container's rlimits and
/// oom_score_adj, as the container launcher sets them.
fn parent_setup(plan: &ContainerPlan, pid: i32) -> Result<(), StepError> {
    for [resource, soft, hard] in &plan.rlimits {
        let r = u32::try_from(*resource).unwrap_or(u32::MAX);
        ns::prlimit(pid, r, *soft, *hard).map_err(err("setrlimit", &resource.to_string()))?;
    }
    if let Some(adj) = plan.oom_score_adj {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, adj.to_string()).map_err(err("write", &path))?;
    }
    Ok(())
}

fn child(
    plan: &ContainerPlan,
    io: &ChildSide,
    execs: &[Exec],
    filter: Option<&[ns::SockFilter]>,
    last_cap: u32,
) -> StepError {
    match sequence(plan, io, execs, filter, last_cap) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn sequence(
    plan: &ContainerPlan,
    io: &ChildSide,
    execs: &[Exec],
    filter: Option<&[ns::SockFilter]>,
    last_cap: u32,
) -> Result<std::convert::Infallible, StepError> {
    crate::sys::child::reset_signals()
        .map_err(|e| StepError::new("reset signals", "", errno(&e)))?;
    if let Some(fds) = io.stdio {
        for (to, from) in fds.iter().enumerate() {
            ns::dup_onto(*from, to as RawFd)
                .map_err(|e| StepError::new("dup2", "stdio", errno(&e)))?;
        }
        for fd in fds {
            if fd > 2 {
                let _ = nix::unistd::close(fd);
            }
        }
    }
    for (fd, flag) in &io.namespaces {
        let name = NAMESPACES
            .iter()
            .find(|(_, f)| f == flag)
            .map_or("?", |(n, _)| n);
        sys::setns(fd.as_fd(), *flag).map_err(|e| StepError::new("setns", name, errno(&e)))?;
    }
    for (fd, _) in &io.namespaces {
        let _ = nix::unistd::close(fd.as_raw_fd());
    }
    nix::unistd::setsid().map_err(|e| StepError::new("setsid", "", e as i32))?;
    if let Some(sock) = &io.tty {
        container::terminal::attach(sock)?;
    }
    // What is still open (the error pipe, the pty socket) is no directory
    // and closes at exec.
    ns::cloexec_from(3).map_err(|e| StepError::new("close_range", "", errno(&e)))?;
    nix::unistd::chdir(plan.cwd.as_str())
        .map_err(|e| StepError::new("chdir", &plan.cwd, e as i32))?;
    match ns::getcwd_raw() {
        Ok(cwd) if cwd.first() == Some(&b'/') => {}
        Ok(_) => {
            return Err(StepError::new(
                "chdir: outside the root",
                &plan.cwd,
                libc::EPERM,
            ))
        }
        Err(e) => return Err(StepError::new("getcwd", &plan.cwd, errno(&e))),
    }
    let load = |when_nnp: bool| -> Result<(), StepError> {
        match filter {
            Some(f) if plan.no_new_privs == when_nnp => ns::seccomp_filter(f, plan.seccomp_flags)
                .map_err(|e| {
                    StepError::new("seccomp", plan.seccomp.as_deref().unwrap_or(""), errno(&e))
                }),
            _ => Ok(()),
        }
    };
    load(false)?;
    container::caps::apply(&crate::sys::seam::Real, plan, last_cap)?;
    if plan.no_new_privs {
        ns::no_new_privs().map_err(|e| StepError::new("no_new_privs", "", errno(&e)))?;
    }
    load(true)?;
    let argv0 = plan.argv.first().map(String::as_str).unwrap_or("");
    let mut errno = libc::ENOENT;
    for e in execs {
        match e.exec().raw_os_error().unwrap_or(libc::ENOEXEC) {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => errno = libc::EACCES,
            other => return Err(StepError::new("exec", argv0, other)),
        }
    }
    Err(StepError::new("exec", argv0, errno))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrootfs_config::agent::proto::User;

    #[test]
    fn the_request_overrides_only_what_it_gives() {
        let base = vm_plan(&Process {
            args: vec!["x".into()],
            ..Default::default()
        });
        let mut base = base;
        base.uid = 1000;
        base.env = vec!["PATH=/bin".into()];
        let p = Process {
            args: vec!["sh".into()],
            user: Some(User::default()),
            ..Default::default()
        };
        let plan = exec_plan(&base, &p);
        assert_eq!(plan.argv, ["sh"]);
        assert_eq!(plan.uid, 1000, "an all-zero user is the container's");
        assert_eq!(plan.env, ["PATH=/bin"]);
        let p = Process {
            args: vec!["sh".into()],
            user: Some(User {
                uid: 5,
                gid: 6,
                ..Default::default()
            }),
            cwd: "/tmp".into(),
            ..Default::default()
        };
        let plan = exec_plan(&base, &p);
        assert_eq!((plan.uid, plan.gid, plan.cwd.as_str()), (5, 6, "/tmp"));
    }
}
