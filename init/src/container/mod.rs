//! Containers: a service whose `container_plan` the builder resolved is
//! started in its own namespaces, cgroup, root, capabilities and seccomp
//! filter (docs/init.md, "Containers"). The init only executes the plan:
//! every name, policy and default was resolved at build time.
//!
//! - [`cgroups`]: the cgroup v2 directory, limits and end-of-life counters;
//! - [`launch`]: clone3, the sync and error pipes, the parent's writes
//!   (id maps, rlimits, oom_score_adj) and the child's sequence;
//! - the device policy ([`crate::sys::bpf`]) attached to the cgroup before the clone;
//! - [`namespaces`], [`rootfs`], [`caps`], [`seccomp`]: the child's steps.

pub mod caps;
pub mod cgroups;
pub mod launch;
pub mod namespaces;
pub mod rootfs;
pub mod seccomp;
pub mod terminal;

pub use crate::launch::StepError;
use crate::sys::ns::SockFilter;
use crate::sys::Exec;
use mkrootfs_config::ContainerPlan;
use nix::unistd::Pid;

/// A container's plan with the files it names read at boot, once: a
/// restart never reads again a file a container could have changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub plan: ContainerPlan,
    /// The seccomp filter (`plan.seccomp`).
    pub filter: Option<Vec<SockFilter>>,
    /// The device policy's program (`plan.device_filter`), loaded into the
    /// kernel at each start.
    pub devices: Option<Vec<u8>>,
    /// The VM's interface `plan.interface` names, as the init configured
    /// it ([`Loaded::take_interface`]).
    pub net: Option<crate::net::Applied>,
}

impl Loaded {
    /// Reads what `plan` names.
    pub fn read(plan: &ContainerPlan) -> Result<Loaded, StepError> {
        let filter = match &plan.seccomp {
            Some(p) => Some(seccomp::read(p).map_err(|e| {
                StepError::new(
                    "read seccomp filter",
                    p,
                    e.raw_os_error().unwrap_or(libc::EINVAL),
                )
            })?),
            None => None,
        };
        let devices = match &plan.device_filter {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                StepError::new(
                    "read device policy",
                    p,
                    e.raw_os_error().unwrap_or(libc::EINVAL),
                )
            })?),
            None => None,
        };
        Ok(Loaded {
            plan: plan.clone(),
            filter,
            devices,
            net: None,
        })
    }

    /// Takes the interface the plan names from the VM
    /// ([`crate::net::take`]): the init, which configured it, only.
    pub fn take_interface(mut self) -> Result<Loaded, StepError> {
        if let Some(name) = &self.plan.interface {
            let a = crate::net::take(name).ok_or_else(|| {
                StepError::new(
                    "take interface (not configured by the init)",
                    name,
                    libc::ENODEV,
                )
            })?;
            self.net = Some(a);
        }
        Ok(self)
    }
}

/// A container ready to launch: the plan and everything the child needs,
/// built before the clone (the filter, the exec candidates).
pub struct Container {
    pub plan: ContainerPlan,
    pub filter: Option<Vec<SockFilter>>,
    /// execve candidates in `PATH` order (one when argv[0] has a `/`).
    pub execs: Vec<Exec>,
    /// `init = true`: the reaper's command line, exec'd from its sealed
    /// image ([`crate::reaper`]) in place of the program.
    pub reaper: Option<Exec>,
    pub last_cap: u32,
    /// Empty VM directories: the container root's mount point and, for the
    /// initramfs workaround, the whole `/`'s.
    pub staging: String,
    pub vm_staging: String,
    /// The interface moved into the container's network namespace.
    pub net: Option<crate::net::Applied>,
}

/// Where the init makes the staging directories (a tmpfs of the VM).
pub const STAGING_DIR: &str = "/run/mkrootfs/containers";

/// The paths execve should try for `argv0`: execvp(3)'s search, the rule
/// the builder checks with too, decided when the child is in its root.
pub use mkrootfs_config::exec_candidates;

impl Container {
    /// Builds the exec candidates and makes the staging directories.
    /// `staging_base` is normally [`STAGING_DIR`].
    pub fn prepare(
        name: &str,
        loaded: &Loaded,
        staging_base: &str,
    ) -> Result<Container, StepError> {
        let io = |step: &'static str, path: &str| {
            let path = path.to_string();
            move |e: std::io::Error| {
                StepError::new(step, &path, e.raw_os_error().unwrap_or(libc::EINVAL))
            }
        };
        let plan = &loaded.plan;
        let argv0 = plan.argv.first().map(String::as_str).unwrap_or("");
        let path = plan.env.iter().find_map(|e| e.strip_prefix("PATH="));
        let mut execs = Vec::new();
        for c in exec_candidates(argv0, path) {
            execs.push(
                Exec::new(
                    &c,
                    plan.argv.iter().map(String::as_str),
                    plan.env.iter().cloned(),
                )
                .map_err(io("exec", argv0))?,
            );
        }
        let reaper = if plan.init {
            let argv =
                std::iter::once(crate::reaper::ARGV0).chain(plan.argv.iter().map(String::as_str));
            Some(Exec::new("", argv, plan.env.iter().cloned()).map_err(io("exec", argv0))?)
        } else {
            None
        };
        let base = format!("{staging_base}/{name}");
        let staging = format!("{base}/root");
        let vm_staging = format!("{base}/vm");
        for d in [&staging, &vm_staging] {
            std::fs::create_dir_all(d).map_err(io("mkdir", d))?;
        }
        let mut plan = plan.clone();
        if let Some(a) = &loaded.net {
            // The container's name service files, from its interface, bound
            // read-only over the root's (as Docker does).
            let hostname = match &plan.hostname {
                Some(h) => h.clone(),
                None => nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| name.to_string()),
            };
            let files = [
                (
                    "resolv.conf",
                    crate::net::resolv::resolv_conf(std::slice::from_ref(a)),
                ),
                (
                    "hosts",
                    Some(crate::net::resolv::hosts(
                        "",
                        &hostname,
                        std::slice::from_ref(a),
                    )),
                ),
            ];
            for (file, text) in files {
                let Some(text) = text else { continue };
                let path = format!("{base}/{file}");
                std::fs::write(&path, text).map_err(io("write", &path))?;
                // The bind needs a target: in a container root of its own
                // (owners shifted to the container's ids) the child makes
                // it; in the VM's own root, whose /etc the mapped root may
                // not write, the init does.
                let target = format!("/etc/{file}");
                if plan.root == "/" && std::fs::symlink_metadata(&target).is_err() {
                    std::fs::write(&target, "").map_err(io("create", &target))?;
                }
                plan.mounts.push(mkrootfs_config::container::PlanMount {
                    source: path,
                    target: format!("/etc/{file}"),
                    fstype: String::new(),
                    flags: mkrootfs_config::container::MS_BIND
                        | mkrootfs_config::container::MS_RDONLY,
                    data: String::new(),
                });
            }
        }
        Ok(Container {
            plan,
            filter: loaded.filter.clone(),
            execs,
            reaper,
            last_cap: caps::last_cap(),
            staging,
            vm_staging,
            net: loaded.net.clone(),
        })
    }
}

/// A started container.
#[derive(Debug)]
pub struct Running {
    pub pid: Pid,
    pub cgroup: cgroups::Cgroup,
    pub stop_signal: i32,
    /// The plan's limits, reported with the counters.
    pub limits: cgroups::Stats,
}

/// Creates the cgroup, launches the container, and returns once its
/// program has been exec'd (or the failing step).
pub fn spawn(name: &str, loaded: &Loaded) -> Result<Running, StepError> {
    let plan = &loaded.plan;
    let root = std::path::Path::new(cgroups::CGROUP_ROOT);
    cgroups::ensure_mounted(root)?;
    // The builder writes the path (`mkrootfs/<name>`): no default here.
    let cgroup = cgroups::Cgroup::create(root, &plan.cgroup.path, &plan.cgroup)?;
    let started = Container::prepare(name, loaded, STAGING_DIR).and_then(|c| {
        if c.filter.is_none() {
            crate::info!("container {name}: seccomp none: no system call filter");
        }
        let fd = cgroup.open()?;
        if let Some(program) = &loaded.devices {
            let path = plan.device_filter.as_deref().unwrap_or("");
            let io = |step: &'static str| {
                move |e: std::io::Error| {
                    StepError::new(step, path, e.raw_os_error().unwrap_or(libc::EINVAL))
                }
            };
            let prog = crate::sys::bpf::load(program).map_err(io("load device policy"))?;
            crate::sys::bpf::attach(
                std::os::fd::AsFd::as_fd(&prog),
                std::os::fd::AsFd::as_fd(&fd),
            )
            .map_err(io("attach device policy"))?;
        }
        launch::launch(&c, Some(std::os::fd::AsFd::as_fd(&fd)))
    });
    match started {
        Ok(pid) => Ok(Running {
            pid,
            cgroup,
            stop_signal: plan.stop_signal,
            limits: cgroups::Stats {
                memory_max: plan.cgroup.memory_max,
                pids_max: plan.cgroup.pids_max,
                ..Default::default()
            },
        }),
        Err(e) => {
            cgroup.destroy();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD_ENV: &str = "MKROOTFS_CONTAINER_LAUNCH_CHILD";

    /// A Docker-like plan for `root` running `argv`.
    pub fn docker_plan(root: &str, argv: &[&str]) -> ContainerPlan {
        use mkrootfs_config::container::*;
        ContainerPlan {
            root: root.into(),
            readonly_root: false,
            clone_flags: CLONE_NAMESPACES,
            uid_map: vec![[0, 100000, 65536]],
            gid_map: vec![[0, 100000, 65536]],
            setgroups: true,
            hostname: Some("box".into()),
            mounts: docker_mounts(),
            symlinks: docker_symlinks(),
            masked_paths: DOCKER_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            readonly_paths: DOCKER_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            sysctls: vec![],
            cgroup: CgroupPlan::default(),
            rlimits: vec![[7, 512, 1024]],
            oom_score_adj: Some(100),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into(), "HOME=/".into()],
            cwd: "/tmp".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            capabilities: CapSets::docker(DOCKER_CAPABILITY_MASK),
            no_new_privs: true,
            seccomp: None,
            seccomp_flags: 0,
            device_filter: None,
            terminal: false,
            init: false,
            stop_signal: 15,
            interface: None,
        }
    }

    /// A container that takes an interface gets the interface's
    /// resolv.conf and hosts, written beside its staging directories and
    /// bound read-only over the root's, after the plan's own mounts.
    #[test]
    fn an_interface_brings_resolv_conf_and_hosts_binds() {
        let d = tempfile::tempdir().unwrap();
        let staging = d.path().to_str().unwrap().to_string();
        let mut plan = docker_plan("/srv/c", &["/bin/sh"]);
        plan.interface = Some("eth0".into());
        let n = plan.mounts.len();
        let mut loaded = Loaded::read(&plan).unwrap();
        loaded.net = Some(crate::net::tests::applied("eth0"));
        let c = Container::prepare("web", &loaded, &staging).unwrap();
        assert_eq!(c.net, loaded.net);
        let added: Vec<(&str, &str, u64)> = c.plan.mounts[n..]
            .iter()
            .map(|m| (m.source.as_str(), m.target.as_str(), m.flags))
            .collect();
        let resolv = format!("{staging}/web/resolv.conf");
        let hosts = format!("{staging}/web/hosts");
        let ro_bind = mkrootfs_config::container::MS_BIND | mkrootfs_config::container::MS_RDONLY;
        assert_eq!(
            added,
            [
                (resolv.as_str(), "/etc/resolv.conf", ro_bind),
                (hosts.as_str(), "/etc/hosts", ro_bind)
            ]
        );
        assert_eq!(
            std::fs::read_to_string(&resolv).unwrap(),
            "# written by mkrootfs-init\nnameserver 10.0.2.3\nsearch example.test\n"
        );
        assert_eq!(
            std::fs::read_to_string(&hosts).unwrap(),
            "127.0.0.1 localhost\n::1 localhost\n10.0.2.15 box\n"
        );
        // Without an interface, nothing is added.
        let plain = Container::prepare(
            "plain",
            &Loaded::read(&docker_plan("/srv/c", &["/bin/sh"])).unwrap(),
            &staging,
        )
        .unwrap();
        assert_eq!(plain.plan.mounts.len(), n);
    }

    /// The body, run only in a re-executed single-threaded test process
    /// that made itself a private mount namespace (see
    /// `launch_in_a_throwaway_namespace`).
    #[test]
    #[ignore = "run by launch_in_a_throwaway_namespace in a child process"]
    fn launch_child() {
        use std::os::unix::fs::chown;
        assert!(
            std::env::var_os(CHILD_ENV).is_some(),
            "run only by launch_in_a_throwaway_namespace: it changes the test process's namespaces"
        );
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        for d in ["bin", "tmp", "etc"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
        // The owners the builder would shift by the map.
        for p in ["", "bin", "bin/busybox", "tmp", "etc"] {
            chown(root.join(p), Some(100000), Some(100000)).unwrap();
        }
        let script = "cd /tmp; echo pwd=$(pwd); echo pid=$$; echo host=$(busybox hostname); \
            echo map=$(busybox cat /proc/self/uid_map); busybox grep -E 'Cap|NoNewPrivs' /proc/self/status; \
            echo lo=$(busybox cat /sys/class/net/lo/flags) nets=$(busybox ls /sys/class/net); \
            echo timer_list=$(busybox wc -c < /proc/timer_list); echo firmware=$(busybox ls /sys/firmware | busybox wc -l); \
            echo 1 > /proc/sys/kernel/domainname || echo sysro; echo nofile=$(ulimit -n) $(ulimit -Hn); \
            echo oom=$(busybox cat /proc/self/oom_score_adj); busybox ls -l /dev/ptmx; exit 7";
        let plan = docker_plan(
            &root.display().to_string(),
            &["/bin/busybox", "sh", "-c", script],
        );
        let staging = tmp.path().join("staging").display().to_string();
        let c = Container::prepare("t", &Loaded::read(&plan).unwrap(), &staging).unwrap();
        let pid = launch::launch(&c, None).unwrap();
        let st = nix::sys::wait::waitpid(pid, None).unwrap();
        println!("STATUS {st:?}");
        // A seccomp filter from a file: mkdir(2) fails with EPERM, the rest
        // is allowed (ld nr; jeq 83; ret ERRNO|EPERM; ret ALLOW).
        let mut bpf = Vec::new();
        for (code, jt, jf, k) in [
            (0x20u16, 0u8, 0u8, 0u32),
            (0x15, 0, 1, 83),
            (0x06, 0, 0, 0x0005_0001),
            (0x06, 0, 0, 0x7fff_0000),
        ] {
            bpf.extend_from_slice(&code.to_ne_bytes());
            bpf.extend([jt, jf]);
            bpf.extend_from_slice(&k.to_ne_bytes());
        }
        let filter = tmp.path().join("filter.bpf");
        std::fs::write(&filter, bpf).unwrap();
        let mut filtered = plan.clone();
        filtered.seccomp = Some(filter.display().to_string());
        filtered.argv = [
            "/bin/busybox",
            "sh",
            "-c",
            "busybox grep Seccomp: /proc/self/status; busybox mkdir /tmp/d || echo mkdir-refused",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = Container::prepare("t", &Loaded::read(&filtered).unwrap(), &staging).unwrap();
        let pid = launch::launch(&c, None).unwrap();
        nix::sys::wait::waitpid(pid, None).unwrap();
        // A step that fails is reported with its path and errno.
        let mut bad = plan.clone();
        bad.cwd = "/nonexistent".into();
        let c = Container::prepare("t", &Loaded::read(&bad).unwrap(), &staging).unwrap();
        let e = launch::launch(&c, None).unwrap_err();
        println!("ERROR {e}");
        let mut bad = plan.clone();
        bad.argv = vec!["nosuch".into()];
        let c = Container::prepare("t", &Loaded::read(&bad).unwrap(), &staging).unwrap();
        let e = launch::launch(&c, None).unwrap_err();
        println!("ERROR {e}");
        // CVE-2024-21626's shape: a directory of the VM held open by the
        // launcher (here without close-on-exec) and a cwd through its
        // magic link. The child closed it before following any path.
        let held: std::os::fd::OwnedFd = std::fs::File::open(tmp.path()).unwrap().into();
        nix::fcntl::fcntl(
            &held,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
        use std::os::fd::AsRawFd;
        let n = held.as_raw_fd();
        for fd in (3..12).chain([n]) {
            let mut bad = plan.clone();
            bad.cwd = format!("/proc/self/fd/{fd}");
            let c = Container::prepare("t", &Loaded::read(&bad).unwrap(), &staging).unwrap();
            match launch::launch(&c, None) {
                Ok(pid) => {
                    let _ = nix::sys::wait::waitpid(pid, None);
                    println!("CWDFD {fd} ESCAPED");
                }
                Err(e) => println!("CWDFD {fd} {} {}", e.step, e.errno),
            }
        }
        println!("HELD {n}");
        println!("LAUNCH-CHILD-OK");
    }

    #[test]
    fn launch_in_a_throwaway_namespace() {
        if !crate::require::require("root (for namespaces)", nix::unistd::geteuid().is_root()) {
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "container::tests::launch_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stdout.contains("LAUNCH-CHILD-OK"), "{stdout}\n{stderr}");
        let cwd_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("CWDFD ")).collect();
        assert_eq!(cwd_lines.len(), 10, "{stdout}");
        for l in &cwd_lines {
            assert!(
                l.ends_with("chdir 2") || l.ends_with("chdir 20"),
                "a cwd through a descriptor: {l}\n{stdout}"
            );
        }
        for want in [
            "pwd=/tmp",
            "pid=1\n",
            "host=box",
            "map= 0 100000 65536",
            "CapInh:\t0000000000000000",
            "CapPrm:\t00000000a80425fb",
            "CapEff:\t00000000a80425fb",
            "CapBnd:\t00000000a80425fb",
            "CapAmb:\t0000000000000000",
            "NoNewPrivs:\t1",
            "lo=0x9 nets=lo",
            "timer_list=0",
            "firmware=0",
            "Read-only file system",
            "sysro",
            "nofile=512 1024",
            "oom=100",
            "/dev/ptmx -> pts/ptmx",
            "STATUS Exited(Pid(",
            "), 7)",
            "Seccomp:\t2",
            "mkdir: can't create directory '/tmp/d': Operation not permitted",
            "mkdir-refused",
            "ERROR chdir /nonexistent: No such file or directory (os error 2)",
            "ERROR exec nosuch: No such file or directory (os error 2)",
        ] {
            assert!(
                stdout.contains(want) || stderr.contains(want),
                "missing {want:?} in:\n{stdout}\n{stderr}"
            );
        }
    }
}
