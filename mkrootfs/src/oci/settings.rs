//! What an OCI input says about a container, as profile-level settings,
//! and how the profile's own keys override it. The result is an ordinary
//! service with a `container` table, checked and resolved into the init's
//! plan by the same code as a hand-written one (`crate::container`).

use super::image::ImageDefaults;
use mkrootfs_config::{ContainerConfig, ServiceConfig};
use std::collections::BTreeSet;

/// Container settings from an image config or a `config.json`.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The `container` table the input amounts to (defaults elsewhere).
    pub container: ContainerConfig,
    pub argv: Vec<String>,
    /// In the input's order.
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// A bundle's `linux.seccomp` as a profile in Docker's form, written to
    /// a file that becomes the container's `seccomp` (unless the profile
    /// sets one).
    pub seccomp_policy: Option<serde_json::Value>,
    pub notes: Vec<String>,
}

impl Settings {
    pub fn from_image(d: &ImageDefaults) -> Settings {
        let mut s = Settings {
            argv: d.argv.clone(),
            cwd: d.cwd.clone(),
            ..Settings::default()
        };
        for e in &d.env {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            s.env.push((k.to_string(), v.to_string()));
        }
        // `user`, `uid`, `user:group`, `uid:gid` (image-spec config.md).
        if let Some(u) = &d.user {
            match u.split_once(':') {
                Some((user, group)) => {
                    s.user = Some(user.to_string());
                    s.group = Some(group.to_string());
                }
                None => s.user = Some(u.clone()),
            }
        }
        s.container.stop_signal = d.stop_signal.clone();
        s
    }
}

/// Applies `s` to `svc` under the profile: keys the profile wrote (named in
/// `written_service` and `written_container`) win; everything else comes
/// from the input. Lists of mounts and paths add up (input first), and
/// rlimits and env merge by name.
pub fn apply(
    svc: &mut ServiceConfig,
    s: &Settings,
    written_service: &BTreeSet<String>,
    written_container: &BTreeSet<String>,
) {
    let w = |k: &str| written_service.contains(k);
    if !w("argv") {
        svc.argv = s.argv.clone();
    }
    let mut env = std::collections::BTreeMap::new();
    for (k, v) in &s.env {
        env.insert(k.clone(), v.clone());
    }
    env.extend(std::mem::take(&mut svc.env));
    svc.env = env;
    if !w("cwd") {
        svc.cwd = s.cwd.clone();
    }
    if !w("user") && !w("group") {
        svc.user = s.user.clone();
        svc.group = s.group.clone();
    }
    let Some(c) = svc.container.as_mut() else {
        return;
    };
    let from = &s.container;
    let w = |k: &str| written_container.contains(k);
    macro_rules! take {
        ($($f:ident),*) => { $( if !w(stringify!($f)) { c.$f = from.$f.clone(); } )* };
    }
    take!(
        readonly_root,
        namespaces,
        uid_map,
        gid_map,
        setgroups,
        hostname,
        network,
        memory_max,
        pids_max,
        cpu_max,
        oom_score_adj,
        capabilities,
        no_new_privs,
        seccomp,
        terminal,
        init,
        stop_signal
    );
    let mut mounts = from.mounts.clone();
    mounts.append(&mut c.mounts);
    c.mounts = mounts;
    for (list, extra) in [
        (&mut c.masked_paths, &from.masked_paths),
        (&mut c.readonly_paths, &from.readonly_paths),
    ] {
        let mut all = extra.clone();
        for p in list.drain(..) {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        *list = all;
    }
    let mut rl = from.rlimits.clone();
    rl.extend(std::mem::take(&mut c.rlimits));
    c.rlimits = rl;
    let mut sysctl = from.sysctl.clone();
    sysctl.extend(std::mem::take(&mut c.sysctl));
    c.sysctl = sysctl;
    if !w("additional_gids") {
        c.additional_gids = from.additional_gids.clone();
    }
}
