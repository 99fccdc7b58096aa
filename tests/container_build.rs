//! Containers as a profile writes them (`container = {…}`), resolved and
//! compiled by the builder, booted under QEMU: the plan the builder wrote
//! into init.json, Docker's seccomp profile compiled with seccompiler and
//! the owners shifted by the default map are what the probe sees inside.

use mkrootfs_tests::{
    assert_console, boot, build_image, probe_binary, BUSYBOX_IMAGE, SECCOMP_ESCAPES,
};

#[test]
fn empty_container_table_gives_docker_isolation_with_the_compiled_filter() {
    let profile = format!(
        r#"{BUSYBOX_IMAGE}
[[files]]
dest = "/bin/probe"
src = "{probe}"
mode = "0755"

[init]
[init.shutdown]
grace_ms = 500
[[init.services]]
name = "box"
argv = ["probe", "all"]
container = {{}}
"#,
        probe = probe_binary().display(),
    );
    let img = build_image("container-from-table", &profile);
    let out = boot(&img, "quiet");
    let probe = |key: &str| mkrootfs_tests::said(&out, &format!("PROBE {key}="));
    assert_eq!(out.exit_code(), 0, "console:\n{}", out.console);
    assert_eq!(probe("pid"), "1");
    assert_eq!(probe("hostname"), "box");
    assert_eq!(probe("uid_map"), "0 100000 65536");
    assert_eq!(probe("netdevs"), "lo");
    assert_eq!(probe("CapEff"), "00000000a80425fb");
    assert_eq!(probe("CapInh"), "0000000000000000");
    assert_eq!(probe("CapAmb"), "0000000000000000");
    assert_eq!(probe("NoNewPrivs"), "1");
    assert_eq!(probe("Seccomp"), "2");
    // Docker's profile as the builder compiled it: every escape refused.
    for name in SECCOMP_ESCAPES {
        assert_eq!(probe(&format!("escape {name}")), "EPERM", "{name}");
    }
    assert_eq!(probe("escape clone3"), "ENOSYS");
    assert_console(&out, "mkrootfs-init: RESULT status=0 exited=0");
}

/// Issue 20: `mkrootfs.cmd=` was silently ignored when the main service is
/// a container (the init ran `container_plan.argv`).
#[test]
fn cmd_on_the_command_line_replaces_a_main_containers_program() {
    let profile = format!(
        r#"{BUSYBOX_IMAGE}
[[files]]
dest = "/bin/probe"
src = "{probe}"
mode = "0755"

[init]
[[init.services]]
name = "box"
argv = ["probe", "exit", "0"]
container = {{}}
"#,
        probe = probe_binary().display(),
    );
    let img = build_image("container-cmd-override", &profile);
    let out = boot(&img, "quiet mkrootfs.cmd=\"probe exit 5\"");
    assert_eq!(out.exit_code(), 5, "console:\n{}", out.console);
    assert_console(&out, "started box (pid ");
    assert_console(&out, "): probe exit 5");
}
