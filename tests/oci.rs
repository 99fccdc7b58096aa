//! OCI inputs booted under QEMU: an image layout made with umoci runs its
//! Entrypoint + Cmd with its Env, WorkingDir and User, and its exit code
//! reaches `mkrootfs run`; a runtime bundle's `config.json` (hostname,
//! memory limit, read-only and masked paths, non-root user, reduced
//! capabilities, its own seccomp policy) is what the probe sees inside the
//! container.

use mkrootfs_tests::{
    assert_console, boot, build_image, kernel, mkrootfs_cli, probe_binary, work_dir,
};
use std::fs;
use std::path::Path;
use std::process::Command;

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd}: {e} (umoci: Debian package umoci, installed by .ci/run)")
    });
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A container root: static busybox with `sh`, the probe, a user and a group.
fn rootfs(dir: &Path) {
    for d in ["bin", "etc", "srv/ro", "tmp"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    fs::copy(probe_binary(), dir.join("bin/probe")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh")).unwrap();
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n",
    )
    .unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    fs::write(dir.join("etc/hidden"), "secret\n").unwrap();
    fs::write(dir.join("srv/greeting"), "from the image\n").unwrap();
}

#[test]
fn an_image_runs_its_entrypoint_and_cmd_with_env_workdir_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    rootfs(&root);
    let layer = dir.path().join("layer.tar");
    run(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "--owner=0",
            "--group=0",
            "-cf",
            layer.to_str().unwrap(),
            ".",
        ],
    );
    let layout = work_dir().join("oci-image-layout");
    let _ = fs::remove_dir_all(&layout);
    let l = layout.to_str().unwrap();
    let image = format!("{l}:v1");
    run("umoci", &["init", "--layout", l]);
    run("umoci", &["new", "--image", &image]);
    run(
        "umoci",
        &[
            "raw",
            "add-layer",
            "--image",
            &image,
            layer.to_str().unwrap(),
        ],
    );
    run(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.entrypoint",
            "/bin/sh",
            "--config.entrypoint",
            "-c",
            "--config.cmd",
            "echo \"PROBE who=$(id -u):$(id -g) cwd=$(pwd) greeting=$GREETING\"; cat greeting; exit 7",
            "--config.env",
            "GREETING=hello",
            "--config.workingdir",
            "/srv",
            "--config.user",
            "app",
        ],
    );
    let profile = format!(
        "[image]\ncompression = \"none\"\n[init]\n[[init.services]]\nname = \"app\"\ncontainer = {{ image = {{ layout = \"{l}\", ref = \"v1\" }} }}\n"
    );
    let img = build_image("oci-image", &profile);
    let out = boot(&img, "quiet");
    assert_console(&out, "PROBE who=1000:1000 cwd=/srv greeting=hello");
    assert_console(&out, "from the image");
    assert_console(&out, "mkrootfs-init: RESULT status=7 exited=7");
    // The exit code through `mkrootfs run`.
    let st = Command::new(mkrootfs_cli())
        .args(["run", "--timeout", "180", "--kernel"])
        .arg(&kernel().vmlinuz)
        .arg(&img)
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(7));
}

#[test]
fn a_bundle_config_json_is_what_the_container_gets() {
    let bundle = work_dir().join("oci-bundle");
    let _ = fs::remove_dir_all(&bundle);
    rootfs(&bundle.join("rootfs"));
    fs::write(
        bundle.join("config.json"),
        r#"{
  "ociVersion": "1.2.0",
  "process": {
    "user": {"uid": 1000, "gid": 1000, "additionalGids": [7, 3]},
    "args": ["/bin/sh", "-c", "probe facts; echo PROBE shmmni=$(cat /proc/sys/kernel/shmmni); echo PROBE ip_forward=$(cat /proc/sys/net/ipv4/ip_forward); echo PROBE groups=$(grep Groups: /proc/self/status); echo PROBE memory.max=$(cat /sys/fs/cgroup/memory.max); echo PROBE hidden=$(cat /etc/hidden | wc -c); touch /srv/ro/x 2>/dev/null && echo PROBE ro=writable || echo PROBE ro=refused; cd /srv 2>/dev/null && echo PROBE chdir=allowed || echo PROBE chdir=refused; exit 5"],
    "env": ["PATH=/bin"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs"},
  "hostname": "bundled",
  "linux": {
    "resources": {"memory": {"limit": 67108864}},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}],
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "maskedPaths": ["/etc/hidden"],
    "readonlyPaths": ["/srv/ro"],
    "sysctl": {"kernel.shmmni": "8192", "net.ipv4.ip_forward": "1"},
    "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
  }
}"#,
    )
    .unwrap();
    let profile = format!(
        "[image]\ncompression = \"none\"\n[init]\n[[init.services]]\nname = \"b\"\ncontainer = {{ bundle = \"{}\" }}\n",
        bundle.display()
    );
    let img = build_image("oci-bundle", &profile);
    let out = boot(&img, "quiet");
    let probe = |key: &str| mkrootfs_tests::said(&out, &format!("PROBE {key}="));
    assert_eq!(probe("hostname"), "bundled");
    assert_eq!(probe("memory.max"), "67108864");
    assert_eq!(probe("hidden"), "0");
    assert_eq!(probe("ro"), "refused");
    assert_eq!(probe("Uid"), "1000 1000 1000 1000");
    assert_eq!(probe("CapBnd"), "0000000000000420");
    assert_eq!(probe("CapEff"), "0000000000000000");
    assert_eq!(probe("uid_map"), "0 100000 65536");
    // linux.sysctl, set inside the container's IPC and network namespaces.
    assert_eq!(probe("shmmni"), "8192");
    assert_eq!(probe("ip_forward"), "1");
    // process.user.additionalGids as the supplementary groups, sorted.
    assert_eq!(probe("groups"), "Groups: 3 7");
    // The bundle's own seccomp policy, compiled at build time.
    assert_eq!(probe("Seccomp"), "2");
    assert_eq!(probe("chdir"), "refused");
    assert_console(&out, "mkrootfs-init: RESULT status=5 exited=5");
}
