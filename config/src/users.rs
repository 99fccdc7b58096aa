//! Users and groups from an image's `/etc/passwd` and `/etc/group`, parsed
//! directly: glibc's `getpwnam` goes through NSS, which needs shared modules
//! that a static init cannot load. Shared by the init (at boot) and the
//! builder (which checks services' and containers' users at build time), so
//! both apply the same rules.

use std::fmt;
use std::path::Path;

/// One `/etc/passwd` entry (the fields the init uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passwd {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One `/etc/group` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses `/etc/passwd` text; malformed lines and comments are skipped.
pub fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(Passwd {
                name: f[0].into(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].into(),
            })
        })
        .collect()
}

/// Parses `/etc/group` text; malformed lines and comments are skipped.
pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(Group {
                name: f[0].into(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Who a service runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary one included, sorted.
    pub groups: Vec<u32>,
    /// From `/etc/passwd`; `None` for a numeric user without an entry.
    pub home: Option<String>,
}

/// A user or group that could not be resolved.
#[derive(Debug, PartialEq, Eq)]
pub enum LookupError {
    UnknownUser(String),
    UnknownGroup(String),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::UnknownUser(u) => {
                write!(f, "user {u:?} is not a number and not in /etc/passwd")
            }
            LookupError::UnknownGroup(g) => {
                write!(f, "group {g:?} is not a number and not in /etc/group")
            }
        }
    }
}

/// Resolves a service's `user` and `group` against parsed databases.
///
/// A user named or numbered in `/etc/passwd` gets its primary group and every
/// group that lists its name; a number without an entry gets the group of
/// the same number and no supplementary groups. `group` replaces the primary
/// group. No user means root.
pub fn resolve(
    user: Option<&str>,
    group: Option<&str>,
    passwd: &[Passwd],
    groups: &[Group],
) -> Result<Credentials, LookupError> {
    let entry = match user {
        None => passwd.iter().find(|p| p.uid == 0),
        Some(u) => match u.parse::<u32>() {
            Ok(n) => passwd.iter().find(|p| p.uid == n),
            Err(_) => Some(
                passwd
                    .iter()
                    .find(|p| p.name == u)
                    .ok_or_else(|| LookupError::UnknownUser(u.into()))?,
            ),
        },
    };
    let (uid, mut gid, home) = match (entry, user) {
        (Some(p), _) => (p.uid, p.gid, Some(p.home.clone())),
        (None, Some(u)) => {
            let n = u
                .parse::<u32>()
                .map_err(|_| LookupError::UnknownUser(u.into()))?;
            (n, n, None)
        }
        (None, None) => (0, 0, Some("/root".to_string())),
    };
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| LookupError::UnknownGroup(g.into()))?,
        };
    }
    let mut sup = vec![gid];
    if let Some(p) = entry {
        sup.extend(
            groups
                .iter()
                .filter(|g| g.members.contains(&p.name))
                .map(|g| g.gid),
        );
    }
    sup.sort_unstable();
    sup.dedup();
    Ok(Credentials {
        uid,
        gid,
        groups: sup,
        home,
    })
}

/// Reads both databases under `root` (missing files are empty databases).
pub fn load(root: &Path) -> (Vec<Passwd>, Vec<Group>) {
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
    (
        parse_passwd(&read("etc/passwd")),
        parse_group(&read("etc/group")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # comment\n\
                          daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n\
                          broken:x:notanumber:1::/:/bin/sh\n\
                          short:x:5\n\
                          alice:x:1000:1000:Alice,,,:/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
                         wheel:x:10:alice,bob\n\
                         alice:x:1000:\n\
                         audio:x:29:bob,alice\n\
                         bad:x:zz:alice\n";

    fn dbs() -> (Vec<Passwd>, Vec<Group>) {
        (parse_passwd(PASSWD), parse_group(GROUP))
    }

    #[test]
    fn parses_entries_and_skips_malformed_lines() {
        let (p, g) = dbs();
        let names: Vec<&str> = p.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "daemon", "alice"]);
        assert_eq!(
            p[2],
            Passwd {
                name: "alice".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/alice".into()
            }
        );
        assert_eq!(g.len(), 4);
        assert_eq!(g[1].members, ["alice", "bob"]);
        assert_eq!(g[0].members, Vec::<String>::new());
    }

    #[test]
    fn named_user_gets_primary_and_supplementary_groups() {
        let (p, g) = dbs();
        let c = resolve(Some("alice"), None, &p, &g).unwrap();
        assert_eq!(
            c,
            Credentials {
                uid: 1000,
                gid: 1000,
                groups: vec![10, 29, 1000],
                home: Some("/home/alice".into())
            }
        );
    }

    #[test]
    fn numeric_user_and_group_override() {
        let (p, g) = dbs();
        let c = resolve(Some("1000"), Some("wheel"), &p, &g).unwrap();
        assert_eq!((c.uid, c.gid, c.groups), (1000, 10, vec![10, 29]));
        let c = resolve(Some("4242"), None, &p, &g).unwrap();
        assert_eq!(
            c,
            Credentials {
                uid: 4242,
                gid: 4242,
                groups: vec![4242],
                home: None
            }
        );
        let c = resolve(Some("4242"), Some("7"), &p, &g).unwrap();
        assert_eq!((c.gid, c.groups), (7, vec![7]));
    }

    #[test]
    fn default_is_root() {
        let c = resolve(None, None, &[], &[]).unwrap();
        assert_eq!(
            c,
            Credentials {
                uid: 0,
                gid: 0,
                groups: vec![0],
                home: Some("/root".into())
            }
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        let (p, g) = dbs();
        assert_eq!(
            resolve(Some("mallory"), None, &p, &g),
            Err(LookupError::UnknownUser("mallory".into()))
        );
        assert_eq!(
            resolve(Some("alice"), Some("staff"), &p, &g),
            Err(LookupError::UnknownGroup("staff".into()))
        );
        assert_eq!(
            LookupError::UnknownUser("mallory".into()).to_string(),
            "user \"mallory\" is not a number and not in /etc/passwd"
        );
    }
}
