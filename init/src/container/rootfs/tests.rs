use super::*;
use crate::sys::seam::Recorder;
use nix::errno::Errno;

/// Docker's mounts for a container whose root is `/srv/c`; the staging
/// directories are real (targets are opened and created in them).
fn plan() -> ContainerPlan {
    use mkrootfs_config::container::*;
    ContainerPlan {
        root: "/srv/c".into(),
        readonly_root: true,
        clone_flags: CLONE_NAMESPACES,
        uid_map: vec![[0, 100000, 65536]],
        gid_map: vec![[0, 100000, 65536]],
        setgroups: true,
        hostname: Some("box".into()),
        mounts: docker_mounts(),
        symlinks: docker_symlinks(),
        masked_paths: vec![],
        readonly_paths: vec![],
        sysctls: vec![],
        cgroup: CgroupPlan::default(),
        rlimits: vec![],
        oom_score_adj: None,
        argv: vec!["/bin/sh".into()],
        env: vec![],
        cwd: "/".into(),
        uid: 1000,
        gid: 1000,
        additional_gids: vec![10],
        capabilities: CapSets::docker(DOCKER_CAPABILITY_MASK),
        no_new_privs: true,
        seccomp: None,
        seccomp_flags: 0,
        device_filter: None,
        terminal: false,
        init: false,
        stop_signal: 15,
    }
}

fn staging() -> (tempfile::TempDir, String, String) {
    let d = tempfile::tempdir().unwrap();
    let (root, vm) = (d.path().join("root"), d.path().join("vm"));
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&vm).unwrap();
    let s = |p: std::path::PathBuf| p.display().to_string();
    (d, s(root), s(vm))
}

/// The mounts `enter` makes for Docker's defaults, in order, between
/// the rslave and the remount of the root.
const DOCKER_MOUNT_LINES: [&str; 14] = [
    "mount /srv/c ROOT/root - MsFlags(MS_BIND | MS_REC)",
    "mount proc ROOT/root/proc proc MsFlags(MS_NOSUID | MS_NODEV | MS_NOEXEC)",
    "mount tmpfs ROOT/root/dev tmpfs MsFlags(MS_NOSUID | MS_NODEV | MS_STRICTATIME) mode=755,size=65536k",
    "mount devpts ROOT/root/dev/pts devpts MsFlags(MS_NOSUID | MS_NOEXEC) newinstance,ptmxmode=0666,mode=0620,gid=5",
    "mount shm ROOT/root/dev/shm tmpfs MsFlags(MS_NOSUID | MS_NODEV | MS_NOEXEC) mode=1777,size=65536k",
    "mount mqueue ROOT/root/dev/mqueue mqueue MsFlags(MS_NOSUID | MS_NODEV | MS_NOEXEC)",
    "mount sysfs ROOT/root/sys sysfs MsFlags(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)",
    "mount cgroup ROOT/root/sys/fs/cgroup cgroup2 MsFlags(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)",
    "mount /dev/null ROOT/root/dev/null - MsFlags(MS_BIND)",
    "mount /dev/zero ROOT/root/dev/zero - MsFlags(MS_BIND)",
    "mount /dev/full ROOT/root/dev/full - MsFlags(MS_BIND)",
    "mount /dev/random ROOT/root/dev/random - MsFlags(MS_BIND)",
    "mount /dev/urandom ROOT/root/dev/urandom - MsFlags(MS_BIND)",
    "mount /dev/tty ROOT/root/dev/tty - MsFlags(MS_BIND)",
];

/// The root's remount: nodev and read-only, plus whatever locked flags
/// the test's own file system has.
fn remount_line(root: &str) -> String {
    let f = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_NODEV
        | MsFlags::MS_RDONLY
        | locked_flags(root);
    format!("mount - ROOT/root - {f:?}")
}

#[test]
fn enter_runs_the_steps_in_runcs_order() {
    let (d, root, vm) = staging();
    let sys = Recorder::new(d.path());
    enter(&sys, &plan(), &root, &vm).unwrap();
    let mut want = vec!["mount - / - MsFlags(MS_REC | MS_SLAVE)".to_string()];
    want.extend(DOCKER_MOUNT_LINES.iter().map(|l| l.to_string()));
    want.push(remount_line(&root));
    want.extend(
        [
            "chdir ROOT/root",
            "pivot_root . .",
            "umount2 . MntFlags(MNT_DETACH)",
            "chdir /",
        ]
        .map(String::from),
    );
    assert_eq!(sys.lines(), want);
    // Targets and symlinks were made inside the staging root.
    let r = std::path::Path::new(&root);
    assert!(r.join("dev/null").is_file());
    assert_eq!(
        std::fs::read_link(r.join("dev/ptmx")).unwrap(),
        std::path::Path::new("pts/ptmx")
    );
}

#[test]
fn on_the_initramfs_pivot_root_goes_through_crun_s_workaround() {
    let (d, root, vm) = staging();
    let sys = Recorder::new(d.path()).failing("pivot_root", Errno::EINVAL, 1);
    enter(&sys, &plan(), &root, &vm).unwrap();
    let lines = sys.lines();
    let at = lines.iter().position(|l| l == "pivot_root . .").unwrap();
    assert_eq!(
        lines[at..],
        [
            "pivot_root . .",
            "mount / ROOT/vm - MsFlags(MS_BIND | MS_REC)",
            "chdir ROOT/vm",
            "mount ROOT/vm / - MsFlags(MS_MOVE)",
            "chroot .",
            "chdir ROOT/root",
            "pivot_root . .",
            "umount2 . MntFlags(MNT_DETACH)",
            "chdir /",
        ]
    );
}

#[test]
fn each_failing_step_names_its_step_path_and_errno() {
    for (prefix, errno, want) in [
        ("mount - / ", Errno::EPERM, ("make rslave", "/")),
        ("mount /srv/c", Errno::ENOENT, ("bind root", "/srv/c")),
        ("mount proc", Errno::EPERM, ("mount", "/proc")),
        ("mount /dev/tty", Errno::ENODEV, ("mount", "/dev/tty")),
        (
            "mount - ROOT/root",
            Errno::EPERM,
            ("remount root", "/srv/c"),
        ),
        ("pivot_root", Errno::EBUSY, ("pivot_root", "ROOT")),
        ("umount2", Errno::EBUSY, ("detach old root", "/")),
    ] {
        let (d, root, vm) = staging();
        let sys = Recorder::new(d.path()).failing(prefix, errno, 1);
        let e = enter(&sys, &plan(), &root, &vm).unwrap_err();
        let shown = e.path.replacen(&d.path().display().to_string(), "ROOT", 1);
        let shown = if want.1 == "ROOT" {
            "ROOT".to_string()
        } else {
            shown
        };
        assert_eq!(
            (e.step.as_str(), shown.as_str(), e.errno),
            (want.0, want.1, errno as i32),
            "{prefix}"
        );
        // Nothing runs after the failing step.
        assert!(
            sys.lines().last().unwrap().starts_with(prefix),
            "{prefix}: {:?}",
            sys.lines()
        );
    }
}

#[test]
fn sysfs_refused_in_a_user_namespace_is_bound_read_only_from_the_vm() {
    let (d, root, vm) = staging();
    let sys = Recorder::new(d.path()).failing("mount sysfs", Errno::EPERM, 1);
    enter(&sys, &plan(), &root, &vm).unwrap();
    let lines = sys.lines();
    let at = lines
        .iter()
        .position(|l| l.starts_with("mount sysfs"))
        .unwrap();
    assert_eq!(
        lines[at + 1],
        "mount /sys ROOT/root/sys - MsFlags(MS_BIND | MS_REC)"
    );
    assert!(
        lines[at + 2].starts_with("mount - ROOT/root/sys - MsFlags(MS_RDONLY")
            && lines[at + 2].contains("MS_REMOUNT | MS_BIND"),
        "{}",
        lines[at + 2]
    );
}

#[test]
fn star_components_expand_to_every_entry() {
    let d = tempfile::tempdir().unwrap();
    for c in ["cpu0", "cpu1"] {
        std::fs::create_dir_all(d.path().join(c).join("thermal_throttle")).unwrap();
    }
    let base = d.path().display().to_string();
    assert_eq!(
        expand(&format!("{base}/*/thermal_throttle")),
        [
            format!("{base}/cpu0/thermal_throttle"),
            format!("{base}/cpu1/thermal_throttle")
        ]
    );
    assert_eq!(expand("/proc/kcore"), ["/proc/kcore"]);
    assert_eq!(expand("/nonexistent/*/x"), Vec::<String>::new());
}

#[test]
fn targets_are_created_and_resolved_inside_the_root() {
    let d = tempfile::tempdir().unwrap();
    // A hostile root: /proc -> / and /dev -> /etc (absolute symlinks).
    std::os::unix::fs::symlink("/", d.path().join("proc")).unwrap();
    std::fs::create_dir(d.path().join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc", d.path().join("dev")).unwrap();
    let root: OwnedFd = std::fs::File::open(d.path()).unwrap().into();
    let fd = ensure_in_root(root.as_fd(), "/dev/null", true).unwrap();
    // Created in the root's /etc, not the host's.
    assert!(d.path().join("etc/null").is_file());
    let link = std::fs::read_link(fd_path(&fd)).unwrap();
    assert_eq!(link, d.path().join("etc/null"));
    let fd = ensure_in_root(root.as_fd(), "/proc/../../x/y", false).unwrap();
    assert_eq!(
        std::fs::read_link(fd_path(&fd)).unwrap(),
        d.path().join("x/y")
    );
    assert!(d.path().join("x/y").is_dir());
}
