//! Checks of the `[init]` table against the assembled image, for what the
//! profile says but the image cannot do: a module to load that the image
//! does not hold (an error), a bind mount of a path that is not in it (a
//! warning: an earlier mount may bring it at boot). Both at the profile's
//! file:line:column.

use super::*;
use crate::plan::init_position;
use crate::profile::Seg;
use mkrootfs_config::container::MountKind;

/// The names `[modules]` put in the image, dashes and underscores alike.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Every name of `[init] modules` must be a module `[modules]` adds
/// (loaded, in its preset, or built in): the init loads them from the
/// image's own `modules.dep`.
/// Checked before the module tree is read, so that the error is the
/// profile's.
pub(super) fn check_init_modules(profile: &Profile, plan: &Plan) -> Result<(), BuildError> {
    let (Some(init), Some(source)) = (&profile.init, &profile.init_source) else {
        return Ok(());
    };
    let mut known: Vec<String> = plan.modules.load.iter().map(|n| normalize(n)).collect();
    if let Some(preset) = plan.modules.preset {
        known.extend(preset.modules().iter().map(|n| normalize(n)));
    }
    // What the root step mounts, which [modules] adds by itself.
    if plan.modules.tree.is_some() {
        if init.root.mode == RootMode::Overlay {
            known.push("overlay".to_string());
        }
        known.extend(init.root.fstype.iter().map(|n| normalize(n)));
    }
    for (i, name) in init.modules.iter().enumerate() {
        if !known.contains(&normalize(name)) {
            let at = [Seg::Key("modules"), Seg::Index(i)];
            return Err(BuildError::Profile(source.init_error(
                &at,
                format!(
                    "init.modules: {name:?} is not a module of the image: name it in \
                     [modules] load, which adds it with its dependencies and loads it at boot"
                ),
            )));
        }
    }
    Ok(())
}

/// A bind mount of `[[init.mounts]]` whose source is not in the image.
pub(super) fn bind_sources_missing(profile: &Profile, tree: &Tree) -> Vec<String> {
    let (Some(init), Some(source)) = (&profile.init, &profile.init_source) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for (i, m) in init.mounts.iter().enumerate() {
        let bind = m.options.split(',').any(|o| o == "bind" || o == "rbind");
        if !bind || !m.source.starts_with('/') {
            continue;
        }
        // Under an earlier mount's target, it may come with that mount.
        let earlier = init.mounts[..i].iter().any(|e| {
            let t = e.target.trim_end_matches('/');
            m.source == t || m.source.starts_with(&format!("{t}/"))
        });
        let present = tree
            .resolve(&m.source, true)
            .map(|p| tree.get(&p).is_some())
            .unwrap_or(false);
        if !earlier && !present {
            let at = [Seg::Key("mounts"), Seg::Index(i), Seg::Key("source")];
            notes.push(format!(
                "{}: init.mounts[{i}]: bind source {} is not in the image (nor under an \
                 earlier mount's target): the mount will fail at boot",
                init_position(source, &at),
                m.source
            ));
        }
    }
    // A container's bind source is a VM path at boot: in the image, under
    // one of the VM's mounts, or in a file system the init mounts itself.
    const RUNTIME: [&str; 5] = ["/dev", "/proc", "/sys", "/run", "/tmp"];
    for (i, svc) in init.services.iter().enumerate() {
        let Some(c) = &svc.container else { continue };
        for (n, m) in c.mounts.iter().enumerate() {
            let Some(src) = m.source.as_deref().filter(|_| m.kind == MountKind::Bind) else {
                continue;
            };
            let under = |t: &str| {
                let t = t.trim_end_matches('/');
                src == t || src.starts_with(&format!("{t}/"))
            };
            let present = tree
                .resolve(src, true)
                .map(|p| tree.get(&p).is_some())
                .unwrap_or(false);
            if present
                || RUNTIME.iter().any(|t| under(t))
                || init.mounts.iter().any(|e| under(&e.target))
            {
                continue;
            }
            let at = [
                Seg::Key("services"),
                Seg::Index(i),
                Seg::Key("container"),
                Seg::Key("mounts"),
                Seg::Index(n),
            ];
            notes.push(format!(
                "{}: init.services[{i}] ({}).container.mounts[{n}]: bind source {src} is not in \
                 the image (nor under one of the VM's mounts): the container will not start",
                init_position(source, &at),
                svc.display_name()
            ));
        }
    }
    notes
}
