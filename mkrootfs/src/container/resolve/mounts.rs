//! The mounts step of a container: Docker's mounts less those whose
//! namespace is off, the table's own, the masked and read-only paths.

use super::*;

/// Docker's mounts and the table's, the masked and read-only paths.
pub(super) struct Mounts {
    pub(super) mounts: Vec<PlanMount>,
    pub(super) masked_paths: Vec<String>,
    pub(super) readonly_paths: Vec<String>,
    /// The VM's own root, shared read-only.
    pub(super) shared_root: bool,
}

pub(super) fn mounts(cx: &Step, root: &str, flags: u64) -> Result<Mounts, ProfileError> {
    let Step { i, c, name, .. } = *cx;
    let fail = |k: &'static str, msg: String| cx.fail(k, msg);
    let at = cx.at;
    // Mounts: Docker's, less those whose namespace is off, then the profile's.
    let mut mounts: Vec<PlanMount> = Vec::new();
    if flags & CLONE_NEWNS != 0 {
        mounts = docker_mounts()
            .into_iter()
            .filter(|m| match m.fstype.as_str() {
                "mqueue" => flags & CLONE_NEWIPC != 0,
                "cgroup2" => flags & CLONE_NEWCGROUP != 0,
                _ => true,
            })
            .collect();
        // The default root is the VM's own `/`: the container gets it
        // read-only (below), with a `/tmp` and a `/run` of its own, so that
        // nothing it writes is VM state (docs/init.md, "Containers").
        if root == "/" {
            for (target, data) in [("/tmp", "mode=1777"), ("/run", "mode=755")] {
                if !c
                    .mounts
                    .iter()
                    .any(|m| m.target.trim_end_matches('/') == target)
                {
                    mounts.push(PlanMount {
                        source: "tmpfs".into(),
                        target: target.into(),
                        fstype: "tmpfs".into(),
                        flags: MS_NOSUID | MS_NODEV,
                        data: data.into(),
                    });
                }
            }
        }
        for (n, m) in c.mounts.iter().enumerate() {
            let bad = |msg: String| {
                at(
                    &[
                        Seg::Key("services"),
                        Seg::Index(i),
                        Seg::Key("container"),
                        Seg::Key("mounts"),
                        Seg::Index(n),
                    ],
                    format!("init.services[{i}] ({name}).container.mounts[{n}]: {msg}"),
                )
            };
            if !m.target.starts_with('/') || m.target.split('/').any(|p| p == "..") {
                return Err(bad(format!(
                    "target {:?} must be an absolute path without `..`",
                    m.target
                )));
            }
            let ro = if m.readonly { MS_RDONLY } else { 0 };
            mounts.push(match m.kind {
                MountKind::Bind => {
                    let Some(src) = m.source.as_deref().filter(|s| s.starts_with('/')) else {
                        return Err(bad("a bind mount needs an absolute source in the VM".into()));
                    };
                    PlanMount {
                        source: src.into(),
                        target: m.target.clone(),
                        fstype: String::new(),
                        flags: MS_BIND | MS_REC | MS_NOSUID | MS_NODEV | ro,
                        data: m.options.clone(),
                    }
                }
                MountKind::Tmpfs => {
                    if m.source.is_some() {
                        return Err(bad("a tmpfs mount takes no source".into()));
                    }
                    PlanMount {
                        source: "tmpfs".into(),
                        target: m.target.clone(),
                        fstype: "tmpfs".into(),
                        flags: MS_NOSUID | MS_NODEV | ro,
                        data: m.options.clone(),
                    }
                }
            });
        }
    }
    let abs_list =
        |k: &'static str, extra: &[String], base: &[&str]| -> Result<Vec<String>, ProfileError> {
            let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            for p in extra {
                if !p.starts_with('/') {
                    return Err(fail(k, format!("{p:?} must be an absolute path")));
                }
                v.push(p.clone());
            }
            Ok(v)
        };
    let mount_ns = flags & CLONE_NEWNS != 0;
    let (mut masked_paths, readonly_paths) = if mount_ns {
        (
            abs_list("masked_paths", &c.masked_paths, DOCKER_MASKED_PATHS)?,
            abs_list("readonly_paths", &c.readonly_paths, DOCKER_READONLY_PATHS)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    // The VM's root shared read-only: the init's own configuration and
    // filters are not the container's to read either.
    let shared_root = mount_ns && root == "/";
    if shared_root {
        masked_paths.push(mkrootfs_config::INIT_CONFIG_DIR.into());
    }

    Ok(Mounts {
        mounts,
        masked_paths,
        readonly_paths,
        shared_root,
    })
}
