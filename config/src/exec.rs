//! How a service is started, as both sides must agree: the environment it
//! gets and where execvp(3) finds its program. The builder checks with these
//! what the init will do.

use crate::{InitConfig, ServiceConfig, DEFAULT_ENV, DEFAULT_PATH};
use std::collections::BTreeMap;

/// A service's (or a container's) environment, built from scratch: the
/// defaults ([`DEFAULT_ENV`]), `HOME` of its user when it has one, the
/// configuration's `env`, then the service's own. Nothing comes from the
/// init's own environment (whatever the kernel passed).
pub fn service_environment(
    cfg: &InitConfig,
    svc: &ServiceConfig,
    home: Option<&str>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = DEFAULT_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(home) = home {
        env.insert("HOME".into(), home.to_string());
    }
    env.extend(cfg.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(svc.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// The files execve(2) should try for `program`, in order, as execvp(3)
/// searches: `program` itself when it has a `/`; else `<dir>/<program>` for
/// each directory of `path` (`None`: [`DEFAULT_PATH`]), an empty directory
/// meaning the current one (`.`), a trailing `/` dropped. The first that is
/// a regular file wins; the caller decides where (the image at build time,
/// the VM or the container root at boot). A candidate that does not start
/// with `/` depends on the working directory.
pub fn exec_candidates(program: &str, path: Option<&str>) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_string()];
    }
    path.unwrap_or(DEFAULT_PATH)
        .split(':')
        .map(|d| {
            let d = if d.is_empty() { "." } else { d };
            format!("{}/{program}", d.trim_end_matches('/'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_execvp() {
        assert_eq!(exec_candidates("/bin/sh", Some("/x")), ["/bin/sh"]);
        assert_eq!(exec_candidates("./a", None), ["./a"]);
        assert_eq!(
            exec_candidates("sh", Some("/usr/bin/::/bin/")),
            ["/usr/bin/sh", "./sh", "/bin/sh"]
        );
        assert_eq!(exec_candidates("sh", Some("/")), ["/sh"]);
        assert_eq!(
            exec_candidates("sh", None).len(),
            DEFAULT_PATH.split(':').count()
        );
    }

    #[test]
    fn environment_layers_in_order() {
        let mut cfg = InitConfig::default();
        cfg.env.insert("A".into(), "global".into());
        cfg.env.insert("HOME".into(), "/g".into());
        let svc: ServiceConfig =
            serde_json::from_str(r#"{"argv": ["/a"], "env": {"A": "own"}}"#).unwrap();
        let env = service_environment(&cfg, &svc, Some("/home/u"));
        assert_eq!(env["A"], "own");
        assert_eq!(env["HOME"], "/g");
        assert_eq!(env["PATH"], DEFAULT_PATH);
        let env = service_environment(&InitConfig::default(), &svc, Some("/home/u"));
        assert_eq!(env["HOME"], "/home/u");
    }
}
