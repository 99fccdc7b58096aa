//! Secrets: files on their own tmpfs at `/run/secrets` (never swapped to a
//! disk image, never in `init.json`), mode 0400, owned by the user of the
//! service named in the secret (root without one; a container's user as
//! the VM sees it, through its uid and gid maps), and bound read-only at
//! the same path into that service's container. Only names reach a log.

use crate::sys::seam::{Real, Sys};
use crate::users;
use mkrootfs_config::container::linux::{MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY};
use mkrootfs_config::container::PlanMount;
use mkrootfs_config::settings::{Secret, SECRETS_DIR};
use mkrootfs_config::{InitConfig, ServiceConfig};
use nix::mount::MsFlags;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// An id through a user-namespace map (`[inside, outside, count]` lines):
/// the VM's id for a container's; `None` when no line maps it.
pub fn map_id(map: &[[u32; 3]], id: u32) -> Option<u32> {
    if map.is_empty() {
        return Some(id);
    }
    map.iter()
        .find(|[inside, _, count]| id >= *inside && id - inside < *count)
        .map(|[inside, outside, _]| outside + (id - inside))
}

/// The VM's uid and gid that own a service's secrets; `users` is the
/// image's `/etc/passwd` and `/etc/group`, read once.
fn owner(
    svc: &ServiceConfig,
    users: &(Vec<users::Passwd>, Vec<users::Group>),
) -> Result<(u32, u32), String> {
    if let Some(plan) = &svc.container_plan {
        let uid = map_id(&plan.uid_map, plan.uid)
            .ok_or_else(|| format!("the container's uid {} is not in its uid map", plan.uid))?;
        let gid = map_id(&plan.gid_map, plan.gid)
            .ok_or_else(|| format!("the container's gid {} is not in its gid map", plan.gid))?;
        return Ok((uid, gid));
    }
    let (passwd, groups) = users;
    let c = users::resolve(svc.user.as_deref(), svc.group.as_deref(), passwd, groups)
        .map_err(|e| e.to_string())?;
    Ok((c.uid, c.gid))
}

/// Writes the secrets and adds a read-only bind of each to its service's
/// container plan. A secret whose service does not exist is a warning and
/// is not written; one that cannot be written is an error naming it (never
/// its bytes).
pub fn write(cfg: &mut InitConfig, secrets: &BTreeMap<String, Secret>) -> Result<(), String> {
    if secrets.is_empty() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(SECRETS_DIR)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| format!("mkdir {SECRETS_DIR}: {e}"))?;
    Real.mount(
        Some("tmpfs"),
        SECRETS_DIR,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=16m"),
    )
    .map_err(|e| format!("mount tmpfs on {SECRETS_DIR}: {e}"))?;
    let databases = users::load(Path::new("/"));
    for (name, secret) in secrets {
        let path = format!("{SECRETS_DIR}/{name}");
        let svc = match &secret.service {
            None => None,
            Some(s) => match cfg.services.iter_mut().find(|svc| svc.display_name() == s) {
                Some(svc) => Some(svc),
                None => {
                    crate::warn!("settings: secrets.{name}: no service named {s:?}, not written");
                    continue;
                }
            },
        };
        let (uid, gid) = match &svc {
            Some(svc) => owner(svc, &databases).map_err(|e| format!("secret {name}: {e}"))?,
            None => (0, 0),
        };
        write_file(&path, &secret.data, uid, gid).map_err(|e| format!("secret {name}: {e}"))?;
        if let Some(plan) = svc.and_then(|s| s.container_plan.as_mut()) {
            plan.mounts.push(PlanMount {
                source: path.clone(),
                target: path.clone(),
                fstype: String::new(),
                flags: MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                data: String::new(),
            });
        }
        crate::info!("secret {path} written for uid {uid}");
    }
    Ok(())
}

/// Parents (0755, root's), then the file: created new, 0400, chowned.
fn write_file(path: &str, data: &[u8], uid: u32, gid: u32) -> Result<(), String> {
    if let Some(parent) = Path::new(path).parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("create {path}: {e}"))?;
    f.write_all(data)
        .map_err(|e| format!("write {path}: {e}"))?;
    std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
        .map_err(|e| format!("chown {path} to {uid}:{gid}: {e}"))?;
    Ok(())
}
