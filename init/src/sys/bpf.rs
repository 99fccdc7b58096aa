//! bpf(2) for a container's device policy on cgroup v2 (docs/init.md, "Containers"):
//! the `BPF_PROG_TYPE_CGROUP_DEVICE` program the builder compiled
//! (mkrootfs/src/container/devices.rs), read at boot, loaded at each start with bpf(BPF_PROG_LOAD)
//! and attached with bpf(BPF_PROG_ATTACH) to each container's cgroup before
//! the clone, so that the container's first instruction already runs under
//! it. The kernel then runs it on every mknod and device open of a process
//! in that cgroup or below; without it, CAP_MKNOD in a container without a
//! user namespace opens the VM's disk.
//!
//! nix has no bpf(2): the two calls are raw syscalls with the leading
//! fields of `union bpf_attr` (include/uapi/linux/bpf.h). The kernel
//! accepts a shorter attr and reads the fields it lacks as zero.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `union bpf_attr` for BPF_PROG_LOAD, up to `prog_name` (Linux 4.15, as
/// old as CGROUP_DEVICE programs).
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// The name `bpftool prog` and /proc/<pid>/fdinfo show.
const PROG_NAME: &[u8; 14] = b"mkrootfs_devs\0";

/// The license only gates GPL-only helpers; the program calls none.
const LICENSE: &[u8] = b"MIT OR Apache-2.0\0";

fn bpf<T>(cmd: libc::c_long, attr: &T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] prefix of `union
    // bpf_attr` for `cmd` (ProgLoad or ProgAttach), and its size is passed
    // with it, so the kernel reads no more than it. The pointers it holds
    // (insns, license) point to memory borrowed for the whole call. Neither
    // command writes to user memory here (no log buffer is given).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    super::check(r)
}

/// Loads the builder's program: the raw array of `struct bpf_insn`
/// (8 bytes each, little-endian), 1 to 4096 of them. The descriptor is
/// close-on-exec; the program lives while it is open or attached.
///
/// The verifier checks it again here; errno EPERM means no CAP_BPF (or
/// CAP_SYS_ADMIN) or, before Linux 5.11, RLIMIT_MEMLOCK too low for its
/// one page.
pub fn load(bytes: &[u8]) -> io::Result<OwnedFd> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes is not an eBPF program (1 to 4096 instructions of 8 bytes)",
                bytes.len()
            ),
        ));
    }
    let mut prog_name = [0; 16];
    prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: (bytes.len() / 8) as u32,
        insns: bytes.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
    };
    let fd = bpf(BPF_PROG_LOAD, &attr)?;
    // SAFETY: on success BPF_PROG_LOAD returns a new descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches the loaded program to the cgroup v2 directory open as
/// `cgroup`, for it and every cgroup below it.
///
/// With `BPF_F_ALLOW_MULTI`, as runc, crun and systemd attach theirs: a
/// program attached later below (a container runtime or systemd inside the
/// container) runs in addition to this one, and a device is allowed only
/// when every program from the container's cgroup up to the root allows
/// it, so nothing below can widen the policy. The default (no flag) would
/// refuse any program below with EPERM, breaking nested runtimes, and
/// `BPF_F_ALLOW_OVERRIDE` would let one below replace this one.
pub fn attach(prog: BorrowedFd, cgroup: BorrowedFd) -> io::Result<()> {
    let attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &attr).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsFd;
    use std::path::{Path, PathBuf};

    /// Docker's default policy as the builder compiles it; the builder's
    /// `golden_bytes_of_docker_policy` checks these bytes.
    const DOCKER: &[u8] = include_bytes!("testdata/docker-devices.bpf");
    const CHILD_ENV: &str = "MKROOTFS_DEVICES_CHILD";

    #[test]
    fn refuses_what_is_not_a_program() {
        for bytes in [&[][..], &DOCKER[..7], &DOCKER[..DOCKER.len() - 1]] {
            let e = load(bytes).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        }
        assert_eq!(
            load(&DOCKER[..12]).unwrap_err().to_string(),
            "12 bytes is not an eBPF program (1 to 4096 instructions of 8 bytes)"
        );
    }

    /// A test that cannot run says why; under CI that is a failure.
    fn cannot_run(what: &str) {
        crate::require::require(what, false);
    }

    /// The first cgroup2 mount in /proc/self/mountinfo (`/sys/fs/cgroup`
    /// in the guest, `/sys/fs/cgroup/unified` on a hybrid host).
    fn cgroup2_mount() -> Option<PathBuf> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        info.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mnt = left.split(' ').nth(4)?;
            (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(mnt))
        })
    }

    /// Removes the scratch cgroup, even when an assertion failed.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    /// (name, block?, major, minor) of the nodes the child makes.
    fn nodes() -> Vec<(&'static str, bool, u64, u64)> {
        let mut v = vec![
            ("null", false, 1, 3),
            ("kmsg", false, 1, 11),
            ("loop", true, 7, 0),
        ];
        // The VM's (here: the host's) root disk, the node an attacker wants.
        let dev = nix::sys::stat::stat("/").map(|s| s.st_dev).unwrap_or(0);
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        if major != 0 {
            v.push(("disk", true, major.into(), minor.into()));
        }
        v
    }

    fn errno(r: Result<(), nix::Error>) -> String {
        match r {
            Ok(()) => "ok".into(),
            Err(e) => format!("{e:?}"),
        }
    }

    fn try_open(path: &Path, block: bool) -> String {
        let flags = if block { libc::O_RDONLY } else { libc::O_RDWR };
        errno(
            nix::fcntl::open(
                path,
                nix::fcntl::OFlag::from_bits_truncate(flags | libc::O_NONBLOCK | libc::O_CLOEXEC),
                nix::sys::stat::Mode::empty(),
            )
            .map(drop),
        )
    }

    fn try_mknod(path: &Path, block: bool, major: u64, minor: u64) -> String {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let kind = if block {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFCHR
        };
        errno(mknod(
            path,
            kind,
            Mode::from_bits_truncate(0o600),
            makedev(major, minor),
        ))
    }

    /// The child: in a private tmpfs (mountable with device nodes), makes
    /// and opens each node, says READY, waits until the parent has moved
    /// it into the cgroup, then does it again.
    #[test]
    #[ignore = "run by mknod_and_open_of_the_disk_is_refused_in_the_cgroup in a child process"]
    fn device_child() {
        assert!(
            std::env::var_os(CHILD_ENV).is_some(),
            "run only by mknod_and_open_of_the_disk_is_refused_in_the_cgroup: it changes the test process's namespaces"
        );
        use nix::mount::{mount, MsFlags};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        // Off the line where libtest names the test.
        println!();
        for (name, block, major, minor) in nodes() {
            let p = dir.path().join(name);
            let made = try_mknod(&p, block, major, minor);
            println!("before {name} mknod={made} open={}", try_open(&p, block));
        }
        println!("READY");
        let mut line = String::new();
        io::stdin().read_line(&mut line).unwrap();
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        println!(
            "cgroup {}",
            cgroup.lines().find(|l| l.starts_with("0::")).unwrap_or("")
        );
        for (name, block, major, minor) in nodes() {
            let old = dir.path().join(name);
            let new = dir.path().join(format!("{name}2"));
            let made = try_mknod(&new, block, major, minor);
            println!(
                "after {name} open={} mknod={made} open_new={}",
                try_open(&old, block),
                try_open(&new, block)
            );
        }
        nix::mount::umount(dir.path()).unwrap();
        println!("DEVICE-CHILD-OK");
    }

    /// Loads Docker's policy into the kernel, attaches it to a scratch
    /// cgroup, and plays the container that mknods and opens the disk:
    /// /dev/null still opens, the disk, loop and kmsg nodes that opened a
    /// moment before give EPERM once the process is in the cgroup.
    #[test]
    fn mknod_and_open_of_the_disk_is_refused_in_the_cgroup() {
        if !nix::unistd::geteuid().is_root() {
            return cannot_run("root (for bpf(2), cgroups and mknod)");
        }
        let Some(mnt) = cgroup2_mount() else {
            return cannot_run("a cgroup2 mount in /proc/self/mountinfo");
        };
        let prog = match load(DOCKER) {
            Ok(p) => p,
            Err(e) => return cannot_run(&format!("bpf(BPF_PROG_LOAD) on this host ({e})")),
        };
        let scratch = Scratch(mnt.join(format!("mkrootfs-devices-test-{}", std::process::id())));
        std::fs::create_dir(&scratch.0).unwrap();
        let dir = std::fs::File::open(&scratch.0).unwrap();
        if let Err(e) = attach(prog.as_fd(), dir.as_fd()) {
            return cannot_run(&format!("bpf(BPF_PROG_ATTACH) on this host ({e})"));
        }
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sys::bpf::tests::device_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut text = String::new();
        while !text.ends_with("READY\n") {
            if out.read_line(&mut text).unwrap() == 0 {
                panic!("the child ended before READY:\n{text}");
            }
        }
        std::fs::write(scratch.0.join("cgroup.procs"), child.id().to_string()).unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        std::io::Read::read_to_string(&mut out, &mut text).unwrap();
        assert!(child.wait().unwrap().success(), "{text}");
        println!("{text}");
        assert!(text.contains("DEVICE-CHILD-OK"), "{text}");
        let name = scratch
            .0
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            text.lines()
                .any(|l| l.starts_with("cgroup 0::/") && l.ends_with(&name)),
            "{text}"
        );
        let want = [
            "before null mknod=ok open=ok",
            "after null open=ok mknod=ok open_new=ok",
            "after kmsg open=EPERM mknod=ok open_new=EPERM",
            "after loop open=EPERM mknod=ok open_new=EPERM",
        ];
        for w in want {
            assert!(text.lines().any(|l| l == w), "missing {w:?} in:\n{text}");
        }
        if nodes().len() == 4 {
            let w = "after disk open=EPERM mknod=ok open_new=EPERM";
            assert!(text.lines().any(|l| l == w), "missing {w:?} in:\n{text}");
        }
        // The EPERMs are the program's: outside the cgroup the same nodes
        // opened (loop may fail with ENXIO without the loop driver). The
        // disk proves nothing alone: a host may refuse it to root anyway.
        for name in ["kmsg", "loop"] {
            let before = format!("before {name} mknod=ok open=");
            let line = text.lines().find(|l| l.starts_with(&before));
            assert!(
                line.is_some_and(|l| !l.ends_with("EPERM")),
                "{name}: opening it already failed outside the cgroup:\n{text}"
            );
        }
    }
}
