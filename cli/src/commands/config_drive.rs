//! `mkrootfs config-drive -o OUT [--set KEY=VALUE]... [--secret
//! NAME=@FILE[,service=SVC]]... [--seed-from-host BYTES] [--from DOC]`: one
//! VM's settings as a config drive (`mkrootfs::config_drive`).
//!
//! The keys and their checks are the settings module's
//! (`mkrootfs::config_drive::settings`): `--set` goes through the kernel command
//! line's parser (the same dotted keys), `network` and the secrets through
//! the document's. Here only what a command line adds: where each value
//! comes from, and which option to blame.

use super::{Out, Usage};
use anyhow::{Context, Result};
use clap::Args;
use mkrootfs::config_drive::settings::{
    check_secret_name, from_cmdline, parse_document, Secret, Seed, Settings, CONFIG_DRIVE_LABEL,
    MAX_DOCUMENT, SEED_BYTES,
};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ConfigDriveArgs {
    /// The image to write (mode 0600: it may hold secrets).
    #[arg(long, short)]
    pub output: PathBuf,
    /// The file system's label: the image's `[init.config_drive] label`.
    #[arg(long, default_value = CONFIG_DRIVE_LABEL, value_parser = parse_label)]
    pub label: String,
    /// A setting: `hostname=NAME`, `env.NAME=VALUE`,
    /// `services.SVC.env.NAME=VALUE`, or `network=IP` in the kernel's ip=
    /// syntax (repeat it for several interfaces; they replace the image's
    /// and --from's). Over --from's.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A secret read from FILE (never from the command line), written to
    /// /run/secrets/NAME in the VM: root's, or SVC's user's and bound into
    /// its container.
    #[arg(long, value_name = "NAME=@FILE[,service=SVC]")]
    pub secret: Vec<String>,
    /// Add a seed of BYTES (16 to 512) from the host's /dev/urandom for the
    /// guest's entropy pool (each drive then differs).
    #[arg(long, value_name = "BYTES", value_parser = parse_seed_bytes)]
    pub seed_from_host: Option<usize>,
    /// Start from this document (the JSON a config drive holds).
    #[arg(long, value_name = "DOC.json")]
    pub from: Option<PathBuf>,
}

fn parse_label(s: &str) -> Result<String, String> {
    mkrootfs::fsimage::check_label(s).map(|()| s.to_string())
}

fn parse_seed_bytes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if SEED_BYTES.contains(&n) => Ok(n),
        _ => Err(format!(
            "a seed has {} to {} bytes",
            SEED_BYTES.start(),
            SEED_BYTES.end()
        )),
    }
}

pub fn run(args: ConfigDriveArgs) -> Result<u8> {
    let mut s = match &args.from {
        Some(path) => from_document(path)?,
        None => Settings::default(),
    };
    s.overlay(from_set(&args.set)?);
    for spec in &args.secret {
        let (name, secret) = secret(spec)?;
        s.secrets.insert(name, secret);
    }
    if let Some(n) = args.seed_from_host {
        s.seed = Some(Seed(host_random(n)?));
    }
    let written = mkrootfs::config_drive::write(&s, &args.label, &args.output)?;
    let keys = s.keys();
    let mut out = Out::new();
    out.line(format_args!(
        "{}: config drive {}, {} bytes, {} settings ({})",
        args.output.display(),
        args.label,
        written.image_bytes,
        keys.len(),
        keys.join(", ")
    ))?;
    out.finish()?;
    Ok(0)
}

/// At most `limit` bytes of `path` (a bigger file is an error, not a hang
/// on `/dev/zero`).
fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut bytes))
        .with_context(|| format!("read {}", path.display()))?;
    if bytes.len() > limit {
        anyhow::bail!(
            "{}: larger than a settings document ({limit} bytes)",
            path.display()
        );
    }
    Ok(bytes)
}

/// `--from`: a whole document, every key of it good.
fn from_document(path: &Path) -> Result<Settings> {
    let (s, problems) = parse_document(&read_bounded(path, MAX_DOCUMENT)?);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::bail!("{}: {}", path.display(), list.join("; "));
    }
    Ok(s)
}

/// The `--set` values, each judged by the settings module; a bad one is a
/// usage error naming its key.
fn from_set(set: &[String]) -> Result<Settings> {
    let mut s = Settings::default();
    let mut network = Vec::new();
    for item in set {
        let Some((key, value)) = item.split_once('=') else {
            return Err(Usage(format!("--set {item}: expected KEY=VALUE")).into());
        };
        let usage = |message: &str| Usage(format!("--set {key}: {message}"));
        match key {
            "network" => network.push(value.to_string()),
            "seed" => return Err(usage("give it with --seed-from-host BYTES").into()),
            _ if key == "secrets" || key.starts_with("secrets.") => {
                return Err(usage(
                    "give secrets with --secret NAME=@FILE (a command line is visible to every process)",
                )
                .into())
            }
            _ => {
                let (one, problems) = from_cmdline(&[(format!("mkrootfs.{key}"), Some(value.into()))]);
                if let Some(p) = problems.first() {
                    return Err(Usage(format!("--set {p}")).into());
                }
                if one.keys().is_empty() {
                    return Err(usage(
                        "unknown key (known: hostname, env.NAME, services.SERVICE.env.NAME, network)",
                    )
                    .into());
                }
                s.overlay(one);
            }
        }
    }
    if !network.is_empty() {
        // The document's parser: each entry, then the entries together.
        let doc = serde_json::json!({ "network": network });
        let (n, problems) = parse_document(doc.to_string().as_bytes());
        if let Some(p) = problems.first() {
            return Err(Usage(format!("--set {p}")).into());
        }
        s.network = n.network;
    }
    Ok(s)
}

/// `--secret NAME=@FILE[,service=SVC]`. Messages name the secret and the
/// file, never what follows `NAME=` when it is not a file.
fn secret(spec: &str) -> Result<(String, Secret)> {
    let form = "expected NAME=@FILE[,service=SVC]";
    let Some((name, rest)) = spec.split_once('=') else {
        return Err(Usage(format!("--secret: {form}")).into());
    };
    let Some(rest) = rest.strip_prefix('@') else {
        return Err(Usage(format!(
            "--secret {name}: {form}: the value is read from a file (a command line is visible to every process)"
        ))
        .into());
    };
    check_secret_name(name).map_err(|e| Usage(format!("--secret {name}: {e}")))?;
    let (file, service) = match rest.rsplit_once(",service=") {
        Some((_, "")) => {
            return Err(Usage(format!("--secret {name}: service= names no service")).into())
        }
        Some((file, svc)) => (file, Some(svc.to_string())),
        None => (rest, None),
    };
    if file.is_empty() {
        return Err(Usage(format!("--secret {name}: {form}")).into());
    }
    let data =
        read_bounded(Path::new(file), MAX_DOCUMENT).with_context(|| format!("--secret {name}"))?;
    Ok((name.to_string(), Secret { data, service }))
}

/// `n` bytes of the host's CRNG.
fn host_random(n: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("read /dev/urandom")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(r: Result<impl std::fmt::Debug>) -> String {
        let e = r.unwrap_err();
        assert!(e.is::<Usage>(), "{e:#}");
        e.to_string()
    }

    #[test]
    fn set_keys_are_the_settings_keys_and_errors_name_them() {
        let s = from_set(&[
            "hostname=vm-1".into(),
            "env.LOG=a=b".into(),
            "services.web.env.PORT=8080".into(),
            "network=10.0.2.21::10.0.2.2:255.255.255.0::eth0:off".into(),
            "network=eth1:dhcp".into(),
        ])
        .unwrap();
        assert_eq!(
            s.keys(),
            ["hostname", "env.LOG", "services.web.env.PORT", "network"]
        );
        assert_eq!(s.env["LOG"], "a=b");
        assert_eq!(s.network.as_ref().map(Vec::len), Some(2));
        for (arg, message) in [
            ("hostname", "--set hostname: expected KEY=VALUE"),
            ("colour=red", "--set colour: unknown key (known: hostname, env.NAME, services.SERVICE.env.NAME, network)"),
            ("env=x", "--set env: unknown key (known: hostname, env.NAME, services.SERVICE.env.NAME, network)"),
            ("hostname=a_b", "--set hostname: \"a_b\" has '_': only letters, digits, '-' and '.'"),
            ("env.=1", "--set env.: \"\" is not a variable name"),
            ("services.web.PORT=1", "--set services.web.PORT: expected services.SERVICE.env.NAME"),
            ("seed=00", "--set seed: give it with --seed-from-host BYTES"),
            ("secrets.db=hunter2", "--set secrets.db: give secrets with --secret NAME=@FILE (a command line is visible to every process)"),
        ] {
            assert_eq!(usage(from_set(&[arg.into()])), message, "{arg}");
        }
        // The network entries are judged one by one, then together.
        let bad = usage(from_set(&["network=10.0.0.300::::::off".into()]));
        assert!(bad.starts_with("--set network: [0]: ip= syntax: "), "{bad}");
        let twice = usage(from_set(&[
            "network=eth0:dhcp".into(),
            "network=eth0:dhcp".into(),
        ]));
        assert!(twice.starts_with("--set network: [1].name: "), "{twice}");
    }

    #[test]
    fn secrets_come_from_files_and_errors_never_show_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, b"hunter2").unwrap();
        let (name, s) = secret(&format!("db/password=@{},service=web", f.display())).unwrap();
        assert_eq!(name, "db/password");
        assert_eq!(s.data, b"hunter2");
        assert_eq!(s.service.as_deref(), Some("web"));
        let (_, s) = secret(&format!("plain=@{}", f.display())).unwrap();
        assert_eq!(s.service, None);

        let shown = usage(secret("db=hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.starts_with("--secret db: expected NAME=@FILE"),
            "{shown}"
        );
        assert_eq!(
            usage(secret("../x=@/dev/null")),
            "--secret ../x: \"../x\" must be a path below /run/secrets"
        );
        assert_eq!(
            usage(secret("x=@/dev/null,service=")),
            "--secret x: service= names no service"
        );
        let missing = secret("x=@/nonexistent/pw").unwrap_err();
        assert!(!missing.is::<Usage>());
        assert_eq!(
            format!("{missing:#}"),
            "--secret x: read /nonexistent/pw: No such file or directory (os error 2)"
        );
        let big = secret("x=@/dev/zero").unwrap_err();
        assert_eq!(
            format!("{big:#}"),
            format!(
                "--secret x: /dev/zero: larger than a settings document ({MAX_DOCUMENT} bytes)"
            )
        );
    }

    #[test]
    fn seed_sizes_are_the_settings_module_s() {
        assert_eq!(parse_seed_bytes("16"), Ok(16));
        assert_eq!(parse_seed_bytes("512"), Ok(512));
        for bad in ["15", "513", "x", "-1"] {
            assert_eq!(
                parse_seed_bytes(bad),
                Err("a seed has 16 to 512 bytes".into())
            );
        }
    }
}
