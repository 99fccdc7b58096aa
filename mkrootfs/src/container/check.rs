//! The init's configuration checked against the image it will run in: each
//! plain service's `argv[0]` (through its `PATH`, as the init searches),
//! `user`/`group` (against the image's `/etc/passwd` and `/etc/group`, with
//! the init's own rules), `cwd`, the `emergency_shell` and `root.exec`. Done
//! only while the image is the root the services run from (`root.mode`
//! `initramfs` or `tmpfs`): from a disk, those files are not known here.

use super::view::View;
use super::At;
use crate::profile::{ProfileError, Seg};
use crate::tree::Tree;
use mkrootfs_config::{users, InitConfig, RootMode, ServiceConfig, DEFAULT_PATH};

/// Whether the services run from the image's own files.
pub fn image_is_root(cfg: &InitConfig) -> bool {
    matches!(cfg.root.mode, RootMode::Initramfs | RootMode::Tmpfs)
}

/// The `PATH` a service starts with: its own, else the global one, else
/// the default.
pub fn service_path<'a>(cfg: &'a InitConfig, svc: &'a ServiceConfig) -> &'a str {
    svc.env
        .get("PATH")
        .or_else(|| cfg.env.get("PATH"))
        .map(String::as_str)
        .unwrap_or(DEFAULT_PATH)
}

/// Checks the plain services (containers are checked by the plan), the
/// emergency shell and `root.exec`.
pub fn check(tree: &Tree, cfg: &InitConfig, at: &At) -> Result<(), ProfileError> {
    if !image_is_root(cfg) {
        return Ok(());
    }
    let view = View { tree, root: "/" };
    let (passwd, groups) = view.users();
    for (i, svc) in cfg.services.iter().enumerate() {
        // Containers are checked inside their own root by the plan; a plan
        // given as is (an OCI bundle's, a test's) is taken as resolved.
        if svc.container.is_some() || svc.container_plan.is_some() {
            continue;
        }
        let key = |k: &'static str| [Seg::Key("services"), Seg::Index(i), Seg::Key(k)];
        let name = svc.display_name();
        let argv0 = svc.argv.first().map(String::as_str).unwrap_or("");
        let path = service_path(cfg, svc);
        if view.lookup(argv0, path).is_none() {
            return Err(at(
                &key("argv"),
                not_found(i, name, argv0, path, "the image"),
            ));
        }
        if let Err(e) = users::resolve(svc.user.as_deref(), svc.group.as_deref(), &passwd, &groups)
        {
            let k = match e {
                users::LookupError::UnknownUser(_) => "user",
                users::LookupError::UnknownGroup(_) => "group",
            };
            return Err(at(
                &key(k),
                format!("init.services[{i}] ({name}): {e} of the image"),
            ));
        }
        if let Some(cwd) = &svc.cwd {
            if !view.is_dir(cwd) {
                return Err(at(
                    &key("cwd"),
                    format!(
                        "init.services[{i}] ({name}): cwd {cwd} is not a directory of the image"
                    ),
                ));
            }
        }
    }
    if let Some(shell) = &cfg.emergency_shell {
        if view.lookup(shell, DEFAULT_PATH).is_none() {
            return Err(at(
                &[Seg::Key("emergency_shell")],
                format!("init.emergency_shell {shell} is not a file of the image"),
            ));
        }
    }
    if let (Some(exec), RootMode::Tmpfs) = (&cfg.root.exec, cfg.root.mode) {
        if !view.is_file(exec) {
            return Err(at(
                &[Seg::Key("root"), Seg::Key("exec")],
                format!("init.root.exec {exec} is not a file of the image (root.mode = \"tmpfs\" runs it from a copy of the image)"),
            ));
        }
    }
    Ok(())
}

/// The message for an `argv[0]` that is not there.
pub fn not_found(i: usize, name: &str, argv0: &str, path: &str, place: &str) -> String {
    if argv0.contains('/') {
        format!("init.services[{i}] ({name}): argv[0] {argv0} is not a file of {place}")
    } else {
        format!("init.services[{i}] ({name}): argv[0] {argv0:?} is not in {place} (searched PATH {path})")
    }
}
