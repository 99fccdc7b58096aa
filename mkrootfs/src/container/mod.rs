//! Containers, the builder's half, and the init's configuration checked
//! against the image. A service's `container` table is checked against the
//! image and resolved into the [`ContainerPlan`] the init executes
//! ([`resolve`]); its seccomp policy is compiled to BPF here ([`seccomp`]) and
//! stored in the image; the owners of the container root's files are
//! shifted by its user-namespace map ([`idmap`]). Plain services are
//! checked too ([`check`]). Every error names the profile's file, line and
//! column.
//!
//! [`ContainerPlan`]: mkrootfs_config::ContainerPlan

pub mod caps;
pub mod check;
pub mod devices;
pub mod idmap;
pub mod resolve;
pub mod seccomp;
pub mod syscalls;
pub mod sysctl;
pub mod view;

use crate::profile::{Profile, ProfileError, Seg};
use crate::tree::{Meta, Node, Tree, TreeError};
use mkrootfs_config::InitConfig;

/// Makes an error at `init.<key path>` of the profile.
pub type At<'a> = dyn Fn(&[Seg], String) -> ProfileError + 'a;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// Checks `cfg` against the assembled `tree`, resolves every container
/// table into its plan (in `cfg`), adds the compiled seccomp filters and
/// shifts the owners of container roots by their maps. `policies`: the
/// seccomp policies bundles brought, by service index.
pub fn resolve(
    tree: &mut Tree,
    profile: &Profile,
    cfg: &mut InitConfig,
    policies: &std::collections::BTreeMap<usize, seccomp::BundlePolicy>,
) -> Result<(), ContainerError> {
    let source = profile.init_source.clone();
    let at = |key: &[Seg], message: String| match &source {
        Some(s) => s.init_error(key, message),
        None => ProfileError::Invalid {
            path: profile.path.clone(),
            line: 1,
            column: 1,
            message,
        },
    };
    // The plan is the builder's output: one written by the profile (or
    // an ImageBuilder's service) would skip every check below.
    if let Some(i) = cfg.services.iter().position(|s| s.container_plan.is_some()) {
        return Err(at(
            &[Seg::Key("services"), Seg::Index(i), Seg::Key("container_plan")],
            format!("init.services[{i}].container_plan is what the builder writes, not a profile: describe the container with `container = {{ … }}`"),
        )
        .into());
    }
    check::check(tree, cfg, &at)?;
    let policy_dir = source
        .as_ref()
        .map(|s| s.dir())
        .unwrap_or_else(|| profile.base_dir.clone());
    let mut bpfs = Vec::new();
    // Each root whose owners were shifted: (plan, service index).
    let mut shifted: Vec<(mkrootfs_config::ContainerPlan, usize)> = Vec::new();
    for i in 0..cfg.services.len() {
        let svc = &cfg.services[i];
        let Some(c) = &svc.container else { continue };
        let from = resolve::Policies {
            dir: &policy_dir,
            bundle: policies.get(&i),
        };
        let r = resolve::resolve(tree, cfg, i, svc, c, from, &at)?;
        let p = &r.plan;
        if let (Some(path), Some(bpf)) = (&p.seccomp, r.bpf) {
            bpfs.push((
                path.clone(),
                bpf,
                cfg.services[i].display_name().to_string(),
            ));
        }
        if !p.uid_map.is_empty() && check::image_is_root(cfg) {
            let same_maps = |q: &mkrootfs_config::ContainerPlan| {
                q.uid_map == p.uid_map && q.gid_map == p.gid_map
            };
            // Overlapping roots share files: only with the same maps.
            if let Some((q, j)) = shifted
                .iter()
                .find(|(q, _)| nested(&q.root, &p.root) && !same_maps(q))
            {
                return Err(at(
                    &[Seg::Key("services"), Seg::Index(i), Seg::Key("container"), Seg::Key("root")],
                    format!(
                        "init.services[{i}].container: root {} overlaps root {} of init.services[{j}] with another user-namespace map: their files cannot belong to both",
                        p.root, q.root
                    ),
                )
                .into());
            }
            // Shifted once: a root inside one already shifted is done, and
            // the roots inside this one that are done are left out.
            let covered = shifted.iter().any(|(q, _)| inside(&p.root, &q.root));
            if !covered {
                let done: Vec<String> = shifted.iter().map(|(q, _)| q.root.clone()).collect();
                shift_owners(
                    tree,
                    p,
                    &done,
                    &|m| {
                        at(
                            &[
                                Seg::Key("services"),
                                Seg::Index(i),
                                Seg::Key("container"),
                                Seg::Key(m),
                            ],
                            String::new(),
                        )
                    },
                    i,
                )?;
                shifted.push((p.clone(), i));
            }
        }
        cfg.services[i].container_plan = Some(r.plan);
    }
    if cfg.services.iter().any(|s| s.container_plan.is_some()) {
        tree.add(
            resolve::DEVICES_BPF,
            Node::File(devices::compile(&devices::docker_default_rules()).into()),
            Meta::root(0o644),
            "device policy of the containers",
        )?;
    }
    for (path, bpf, name) in bpfs {
        tree.add(
            &path,
            Node::File(bpf.into()),
            Meta::root(0o644),
            &format!("seccomp filter of service {name}"),
        )?;
    }
    Ok(())
}

/// Whether the image directory `x` is `y` or below it.
fn inside(x: &str, y: &str) -> bool {
    x == y || y == "/" || x.starts_with(&format!("{y}/"))
}

/// Whether one of two image directories contains the other.
fn nested(a: &str, b: &str) -> bool {
    inside(a, b) || inside(b, a)
}

/// Rewrites the owners below the container root from container ids to VM
/// ids; a file owned by an id the map does not have fails the build.
fn shift_owners(
    tree: &mut Tree,
    p: &mkrootfs_config::ContainerPlan,
    done: &[String],
    at: &dyn Fn(&str) -> ProfileError,
    i: usize,
) -> Result<(), ProfileError> {
    let to_maps = |t: &[[u32; 3]]| -> Vec<mkrootfs_config::container::IdMap> {
        t.iter()
            .map(
                |[inside, outside, count]| mkrootfs_config::container::IdMap {
                    inside: *inside,
                    outside: *outside,
                    count: *count,
                },
            )
            .collect()
    };
    let (um, gm) = (to_maps(&p.uid_map), to_maps(&p.gid_map));
    tree.map_owners(&p.root, |path, uid, gid| {
        // The files the VM itself runs on stay the VM's: a container root
        // that is `/` must not own the init or its configuration.
        let vm_file = path == "/init"
            || path == mkrootfs_config::INIT_CONFIG_DIR
            || path.starts_with(&format!("{}/", mkrootfs_config::INIT_CONFIG_DIR));
        if (vm_file && p.root == "/") || done.iter().any(|d| inside(path, d)) {
            return Ok((uid, gid));
        }
        let u = idmap::to_outside(&um, uid)
            .ok_or_else(|| owner_error(at("uid_map"), i, path, "uid", uid, &p.root))?;
        let g = idmap::to_outside(&gm, gid)
            .ok_or_else(|| owner_error(at("gid_map"), i, path, "gid", gid, &p.root))?;
        Ok((u, g))
    })
}

fn owner_error(
    mut e: ProfileError,
    i: usize,
    path: &str,
    kind: &str,
    id: u32,
    root: &str,
) -> ProfileError {
    if let ProfileError::Invalid { message, .. } = &mut e {
        *message = format!(
            "init.services[{i}].container: {path} (in the container root {root}) is owned by {kind} {id}, which the {kind}_map does not map"
        );
    }
    e
}

#[cfg(test)]
mod tests;
