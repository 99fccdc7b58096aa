//! The one test-helper crate (the boot tests here, and the integration tests
//! of mkrootfs, mkrootfs-cli and mkrootfs-qemu): build an image from profile
//! text with the mkrootfs library, boot it under QEMU with the Debian cloud
//! kernel, [`require`] what the machine may lack.
//!
//! Boot tests decide pass/fail from what the guest printed and reported
//! (the init's RESULT line); every boot has a timeout, and QEMU's own slot
//! limit keeps at most one guest per core running.

mod require;
pub mod vsock;
pub use require::{have, require, require_file, require_tool, test_kernel_package};

use mkrootfs::build::{self, BuildError, BuildOptions, BuildReport};
use mkrootfs::profile;
use mkrootfs_qemu::{Disk, Kernel, Machine, Outcome, VmConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The start of a test profile: busybox with every applet linked, stored
/// uncompressed (the quickest to build); tests append their own tables.
/// The probe's escape attempts that Docker's seccomp profile refuses with
/// EPERM (`probe escape NAME`; clone3 gets ENOSYS and is checked apart).
pub const SECCOMP_ESCAPES: [&str; 18] = [
    "mount",
    "umount2",
    "pivot_root",
    "finit_module",
    "settimeofday",
    "clock_settime",
    "reboot",
    "swapon",
    "kexec_load",
    "unshare_user",
    "setns",
    "keyctl",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "socket_vsock",
    "socket_alg",
];

pub const BUSYBOX_IMAGE: &str =
    "binaries = [\"busybox\"]\n[image]\nbusybox_links = \"/bin/busybox\"\ncompression = \"none\"\n";

/// Where test images and profiles are written.
pub fn work_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-images");
    std::fs::create_dir_all(&d).expect("create target/test-images");
    d
}

/// The Debian cloud kernel (fetched into the cache on first use).
pub fn kernel() -> &'static Kernel {
    static K: OnceLock<Kernel> = OnceLock::new();
    K.get_or_init(|| {
        mkrootfs_qemu::debian_cloud_kernel().unwrap_or_else(|e| panic!("test kernel: {e}"))
    })
}

/// The cloud kernel's module tree (`lib/modules/<version>`).
pub fn kernel_modules() -> PathBuf {
    kernel()
        .modules
        .clone()
        .expect("the Debian cloud kernel comes with its modules")
}

/// Builds the static init (a no-op when it is up to date) and returns it.
pub fn init_binary() -> &'static Path {
    static INIT: OnceLock<PathBuf> = OnceLock::new();
    INIT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        // One recipe for the static init: the Makefile's.
        let status = Command::new("make")
            .current_dir(&root)
            .env("CARGO", env!("CARGO"))
            .args(["-s", "init"])
            .status()
            .expect("run make to build the init");
        assert!(status.success(), "building the static init failed");
        root.join("target").join(mkrootfs::build::INIT_IN_TARGET)
    })
}

/// The static container probe (`probe/`), built by the Makefile like the init.
pub fn probe_binary() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = Command::new("make")
            .current_dir(&root)
            .env("CARGO", env!("CARGO"))
            .args(["-s", "probe"])
            .status()
            .expect("run make to build the probe");
        assert!(status.success(), "building the probe failed");
        root.join("target/x86_64-unknown-linux-musl/release/probe")
    })
}

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `mkrootfs` command (the CLI package, `mkrootfs-cli`), built on first
/// use: never a stale binary.
pub fn mkrootfs_cli() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let root = repo();
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "-q", "-p", "mkrootfs-cli"])
            .status()
            .expect("run cargo to build mkrootfs");
        assert!(status.success(), "building mkrootfs failed");
        root.join("target/debug/mkrootfs")
    })
}

/// Builds `profile_toml` (written to `<work>/<name>.toml`) into
/// `<work>/<name>.cpio*`, returning the report or the build error.
pub fn try_build(name: &str, profile_toml: &str) -> Result<BuildReport, BuildError> {
    let dir = work_dir();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, profile_toml).expect("write test profile");
    let p = profile::load_path(&path)?;
    let ext = p.image.compression.unwrap_or_default().extension();
    let opts = BuildOptions {
        output: Some(dir.join(format!("{name}.cpio{ext}"))),
        init_binary: Some(init_binary().to_path_buf()),
        modules_dir: None,
        auto_kernel: None,
        mtime: None,
    };
    build::build(&p, &opts)
}

/// Builds a profile given as TOML text; panics with the whole error chain.
pub fn build_image(name: &str, profile_toml: &str) -> PathBuf {
    match try_build(name, profile_toml) {
        Ok(r) => r.path,
        Err(e) => panic!("build {name}: {}", chain(&e)),
    }
}

/// `err: cause: cause` (the one formatter, from mkrootfs-config).
pub use mkrootfs_config::error_chain as chain;

/// Gives services of a built `image` hand-written container plans. The
/// init's own boot tests run plans the builder would not write (a test
/// filter, the twin of a crun bundle), but a profile cannot carry a plan:
/// the builder refuses `container_plan`. So the image's `init.json` is read
/// back, each named service gets its plan (and runs the plan's argv), and
/// the result is appended as a later, uncompressed cpio segment, which the
/// kernel unpacks over the first one (at a 4-byte boundary, as its
/// unpacker requires).
pub fn with_plans(image: &Path, plans: &[(String, mkrootfs_config::ContainerPlan)]) {
    use mkrootfs::cpio::{read_archive, write_archive, Entry, Limits, S_IFREG};
    let mut bytes = std::fs::read(image).expect("read the built image");
    let segments = read_archive(&bytes, &Limits::default()).expect("read the built image");
    let json = segments
        .iter()
        .flat_map(|s| &s.entries)
        .rfind(|e| e.name == mkrootfs_config::INIT_CONFIG_PATH.trim_start_matches('/'))
        .expect("the image has an init.json");
    let mut cfg: mkrootfs_config::InitConfig =
        serde_json::from_slice(&json.data).expect("the image's init.json");
    for (name, plan) in plans {
        let svc = cfg
            .services
            .iter_mut()
            .find(|s| s.name.as_deref() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no service {name} in {}", image.display()));
        let mut plan = plan.clone();
        if plan.cgroup.path.is_empty() {
            // What the builder writes: the init resolves no defaults.
            plan.cgroup.path = format!("mkrootfs/{name}");
        }
        svc.argv = plan.argv.clone();
        svc.container_plan = Some(plan);
    }
    let entry = Entry {
        name: json.name.clone(),
        mode: S_IFREG | 0o644,
        nlink: 1,
        mtime: json.mtime,
        ino: 1,
        data: serde_json::to_vec_pretty(&cfg).expect("serialize init.json"),
        ..Entry::default()
    };
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    write_archive(&mut bytes, &[entry]).expect("write the plans' segment");
    std::fs::write(image, bytes).expect("write the image back");
}

/// The value after `marker` (`PROBE hostname=`, `addr=`) on the last
/// console line that has it; the console in the panic message otherwise.
#[track_caller]
pub fn said(out: &Outcome, marker: &str) -> String {
    out.console
        .lines()
        .rev()
        .find_map(|l| {
            l.find(marker)
                .map(|at| l[at + marker.len()..].trim_end().to_string())
        })
        .unwrap_or_else(|| panic!("no {marker}; console:\n{}", out.console))
}

/// Boots `image` on a PC machine with no disks.
pub fn boot(image: &Path, append: &str) -> Outcome {
    boot_with(image, append, &[], Machine::Pc)
}

/// Boots `image` with disks on the given machine, with a 180 s timeout
/// (TCG on a loaded 2-core machine).
pub fn boot_with(image: &Path, append: &str, disks: &[Disk], machine: Machine) -> Outcome {
    let mut cfg = VmConfig::new(kernel().vmlinuz.clone(), image.to_path_buf());
    cfg.append = append.to_string();
    cfg.disks = disks.to_vec();
    cfg.machine = machine;
    cfg.timeout = Duration::from_secs(180);
    let out = mkrootfs_qemu::run(&cfg).unwrap_or_else(|e| panic!("run QEMU: {}", chain(&e)));
    if out.timed_out {
        panic!(
            "guest timed out; QEMU stderr:\n{}\nconsole:\n{}",
            out.stderr, out.console
        );
    }
    out
}

/// Asserts that the console contains `needle`, showing the console if not.
#[track_caller]
pub fn assert_console(out: &Outcome, needle: &str) {
    assert!(
        out.console.contains(needle),
        "console lacks {needle:?}; console:\n{}",
        out.console
    );
}
