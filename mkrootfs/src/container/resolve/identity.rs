//! The identity step of a container: credentials, supplementary groups,
//! environment, program and working directory, from the container root's
//! own files.

use super::*;

/// Credentials, environment, program and working directory, from the
/// container root's own files.
pub(super) struct Identity {
    pub(super) creds: users::Credentials,
    pub(super) additional_gids: Vec<u32>,
    pub(super) env: BTreeMap<String, String>,
    pub(super) cwd: String,
}

pub(super) fn identity(cx: &Step, root: &str, user_ns: bool) -> Result<Identity, ProfileError> {
    let Step {
        tree,
        cfg,
        i,
        svc,
        c,
        name,
        in_image,
        ..
    } = *cx;
    let fail = |k: &'static str, msg: String| cx.fail(k, msg);
    let at = cx.at;
    let view = View { tree, root };
    // Credentials and the program, from the container root's own files.
    let (passwd, groups) = view.users();
    let creds = if in_image {
        users::resolve(svc.user.as_deref(), svc.group.as_deref(), &passwd, &groups).map_err(
            |e| {
                let k = match e {
                    users::LookupError::UnknownUser(_) => "user",
                    users::LookupError::UnknownGroup(_) => "group",
                };
                at(
                    &[Seg::Key("services"), Seg::Index(i), Seg::Key(k)],
                    format!("init.services[{i}] ({name}): {e} of the container root {root}"),
                )
            },
        )?
    } else {
        let num = |k: &'static str, v: Option<&str>| {
            match v.map(str::parse::<u32>) {
            None => Ok(None),
            Some(Ok(n)) => Ok(Some(n)),
            Some(Err(_)) => Err(at(
                &[Seg::Key("services"), Seg::Index(i), Seg::Key(k)],
                format!("init.services[{i}] ({name}): the container root is not in the image (root.mode = {:?}): {k} must be a number", cfg.root.mode),
            )),
        }
        };
        let uid = num("user", svc.user.as_deref())?.unwrap_or(0);
        let gid = num("group", svc.group.as_deref())?.unwrap_or(uid);
        users::Credentials {
            uid,
            gid,
            groups: vec![gid],
            home: None,
        }
    };
    // Supplementary groups: the user's from /etc/group and the table's,
    // sorted, without the primary group.
    let additional_gids: Vec<u32> = creds
        .groups
        .iter()
        .chain(&c.additional_gids)
        .copied()
        .filter(|g| *g != creds.gid)
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .collect();
    if user_ns {
        if idmap::to_outside(&c.uid_map, creds.uid).is_none() {
            return Err(fail(
                "uid_map",
                format!("the service's uid {} is not in uid_map", creds.uid),
            ));
        }
        if let Some(g) = std::iter::once(&creds.gid)
            .chain(&additional_gids)
            .find(|g| idmap::to_outside(&c.gid_map, **g).is_none())
        {
            return Err(fail(
                "gid_map",
                format!("the service's gid {g} is not in gid_map"),
            ));
        }
    }
    let env = service_environment(cfg, svc, creds.home.as_deref());
    let argv0 = svc.argv.first().map(String::as_str).unwrap_or("");
    let path = env.get("PATH").map(String::as_str).unwrap_or(DEFAULT_PATH);
    if in_image && view.lookup(argv0, path).is_none() {
        return Err(at(
            &[Seg::Key("services"), Seg::Index(i), Seg::Key("argv")],
            check::not_found(i, name, argv0, path, &format!("the container root {root}")),
        ));
    }
    let cwd = svc.cwd.clone().unwrap_or_else(|| "/".into());
    // The links of /proc/<pid>/fd and /proc/<pid>/cwd lead out of any root
    // (CVE-2024-21626): no working directory there, whatever the image's
    // own links make of the path.
    let proc = |p: &str| p == "/proc" || p.starts_with("/proc/");
    if proc(&cwd) || (in_image && view.inside(&cwd).is_some_and(|p| proc(&p))) {
        return Err(at(
            &[Seg::Key("services"), Seg::Index(i), Seg::Key("cwd")],
            format!("init.services[{i}] ({name}): cwd {cwd} is below /proc, whose links lead out of the container root"),
        ));
    }
    if in_image && !view.is_dir(&cwd) {
        return Err(at(
            &[Seg::Key("services"), Seg::Index(i), Seg::Key("cwd")],
            format!("init.services[{i}] ({name}): cwd {cwd} is not a directory of the container root {root}"),
        ));
    }

    Ok(Identity {
        creds,
        additional_gids,
        env,
        cwd,
    })
}
