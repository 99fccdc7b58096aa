//! Unit tests of the init configuration: positions of errors, defaults, checks.
use super::*;

#[test]
fn toml_and_json_agree() {
    let cfg: InitConfig = toml::from_str(
        r#"
        hostname = "vm"
        umask = "0027"
        [rlimits]
        nofile = 4096
        [[services]]
        argv = ["/bin/echo", "hi"]
        restart = "on-failure"
        [root]
        mode = "device"
        device = "LABEL=root"
        "#,
    )
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.umask, Some(Mode(0o27)));
    assert_eq!(cfg.services[0].restart, Restart::OnFailure);
    assert_eq!(cfg.services[0].display_name(), "echo");
    assert!(cfg.coldplug);
    let json = serde_json::to_string(&cfg).unwrap();
    let back: InitConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let err = toml::from_str::<InitConfig>("[[services]]\nargv = [\"/a\"]\nrestrat = \"no\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3, column 1"), "{err}");
    assert!(err.contains("unknown field `restrat`"), "{err}");
}

#[test]
fn bad_umask_is_an_error_with_position() {
    let err = toml::from_str::<InitConfig>("umask = \"999\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1, column 9"), "{err}");
    assert!(err.contains("invalid mode \"999\""), "{err}");
}

#[test]
fn module_options_are_checked() {
    let cfg: InitConfig = toml::from_str(
        "[module_options]\nvirtio-blk = \"queue_depth=64\"\n[[services]]\nargv=[\"/a\"]\n",
    )
    .unwrap();
    assert_eq!(cfg.validate(), Ok(()));
    let cfg: InitConfig = toml::from_str(
        "[module_options]\n\"virtio_blk.x\" = \"a=1\"\n[[services]]\nargv=[\"/a\"]\n",
    )
    .unwrap();
    assert_eq!(
        cfg.validate(),
        Err("init.module_options: \"virtio_blk.x\" is not a module name".into())
    );
    let cfg: InitConfig = toml::from_str(
        "[module_options]\nloop = \"max_loop=8\\nx=1\"\n[[services]]\nargv=[\"/a\"]\n",
    )
    .unwrap();
    assert_eq!(
        cfg.validate(),
        Err("init.module_options.loop: the parameters \"max_loop=8\\nx=1\" contain a NUL or newline".into())
    );
}

/// Issue 21: two services of the same name were accepted, and at boot
/// the second container took the first's cgroup (mkrootfs/<name>) as a
/// leftover and killed it.
#[test]
fn duplicate_service_names_are_refused_with_the_key_at_fault() {
    let cfg: InitConfig = toml::from_str(
        "[[services]]\nname=\"web\"\nargv=[\"/a\"]\n[[services]]\nname=\"web\"\nargv=[\"/b\"]\n",
    )
    .unwrap();
    assert_eq!(
        cfg.check_service_names(),
        Err(InvalidInit {
            at: vec![key("services"), KeyStep::Index(1), key("name")],
            message: "init.services[1]: name \"web\" is already init.services[0]'s: \
                      service names must be unique (give one a `name`)"
                .into()
        })
    );
    // Unnamed services are named after argv[0]'s basename.
    let cfg: InitConfig =
        toml::from_str("[[services]]\nargv=[\"/bin/sh\"]\n[[services]]\nargv=[\"sh\", \"-c\"]\n")
            .unwrap();
    assert_eq!(
        cfg.check_service_names().map_err(|e| e.message),
        Err(
            "init.services[1]: name (from argv[0]) \"sh\" is already init.services[0]'s: \
             service names must be unique (give one a `name`)"
                .into()
        )
    );
    let cfg: InitConfig = toml::from_str(
        "[[services]]\nargv=[\"/bin/sh\"]\n[[services]]\nname=\"sh2\"\nargv=[\"sh\"]\n",
    )
    .unwrap();
    assert_eq!(cfg.check_service_names(), Ok(()));
}

#[test]
fn validate_rejects_two_main_services() {
    let cfg: InitConfig = toml::from_str(
        "[[services]]\nargv=[\"/a\"]\nmain=true\n[[services]]\nargv=[\"/b\"]\nmain=true\n",
    )
    .unwrap();
    assert_eq!(
        cfg.validate(),
        Err("init.services: more than one service has main = true".into())
    );
}
