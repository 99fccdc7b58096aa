use super::*;

fn keys(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(|p| p.to_string()).collect()
}

#[test]
fn a_full_document_parses_into_every_setting() {
    let doc = br#"{
        "hostname": "vm-1",
        "env": {"LOG": "debug"},
        "services": {"web": {"env": {"PORT": "8080"}}},
        "network": [{"name": "eth0", "addresses": ["10.0.2.21/24"]}, "10.0.3.5::10.0.3.1:255.255.255.0::eth1:off"],
        "secrets": {"db/password": {"value": "hunter2", "service": "web"}, "raw": {"hex": "00ff"}, "plain": "text"},
        "seed": "000102030405060708090a0b0c0d0e0f"
    }"#;
    let (s, problems) = parse_document(doc);
    assert_eq!(problems, vec![]);
    assert_eq!(s.hostname.as_deref(), Some("vm-1"));
    assert_eq!(s.env["LOG"], "debug");
    assert_eq!(s.services["web"].env["PORT"], "8080");
    let net = s.network.as_ref().unwrap();
    assert_eq!(net.len(), 2);
    assert_eq!(net[1].name.as_deref(), Some("eth1"));
    assert_eq!(
        s.secrets["db/password"],
        Secret {
            data: b"hunter2".to_vec(),
            service: Some("web".into())
        }
    );
    assert_eq!(s.secrets["raw"].data, vec![0, 0xff]);
    assert_eq!(s.secrets["plain"].data, b"text");
    assert_eq!(s.seed.as_ref().unwrap().0, (0u8..16).collect::<Vec<_>>());
    assert_eq!(
        s.keys(),
        [
            "hostname",
            "env.LOG",
            "services.web.env.PORT",
            "network",
            "secrets.db/password",
            "secrets.plain",
            "secrets.raw",
            "seed"
        ]
    );
}

#[test]
fn bad_keys_are_problems_and_the_good_ones_still_apply() {
    let doc = br#"{"hostname": 7, "colour": "red", "env": {"A": "1", "B": 2, "C=D": "x"},
                   "services": {"web": {"envv": {}}}, "seed": "abc"}"#;
    let (s, problems) = parse_document(doc);
    assert_eq!(s.env.len(), 1);
    assert_eq!(s.env["A"], "1");
    assert_eq!(
        keys(&problems),
        [
            "colour: unknown key (known: hostname, env, services, network, secrets, seed)",
            "env.B: expected a string, found a number",
            "env.C=D: \"C=D\" is not a variable name",
            "hostname: expected a string, found a number",
            "seed: not an even number of hex digits",
            "services.web.envv: unknown key (known: env)",
        ]
    );
}

#[test]
fn a_document_that_does_not_parse_is_one_problem_with_its_position() {
    let (s, problems) = parse_document(b"{\"hostname\": \"a\",\n  oops}");
    assert_eq!(s, Settings::default());
    assert_eq!(
        keys(&problems),
        ["not JSON: key must be a string at line 2 column 3"]
    );
    let (_, problems) = parse_document(b"[1]");
    assert_eq!(keys(&problems), ["expected a JSON object, found an array"]);
}

#[test]
fn secret_paths_that_escape_the_secrets_dir_are_refused_without_their_value() {
    let doc = br#"{"secrets": {"../etc/shadow": "TOPSECRET", "/abs": "TOPSECRET", "a//b": "TOPSECRET",
                   "ok/./x": "TOPSECRET", "n": {"value": 5}, "two": {"value": "TOPSECRET", "hex": "00"}}}"#;
    let (s, problems) = parse_document(doc);
    assert!(s.secrets.is_empty());
    let text = keys(&problems).join("\n");
    assert!(!text.contains("TOPSECRET"), "{text}");
    assert_eq!(
        keys(&problems),
        [
            "secrets.../etc/shadow: \"../etc/shadow\" must be a path below /run/secrets",
            "secrets./abs: \"/abs\" must be a path below /run/secrets",
            "secrets.a//b: \"a//b\" must be a path below /run/secrets",
            "secrets.n: value: expected a string, found a number",
            "secrets.ok/./x: \"ok/./x\" must be a path below /run/secrets",
            "secrets.two: give one of value and hex",
        ]
    );
}

#[test]
fn debug_output_never_shows_secret_or_seed_bytes() {
    let (s, _) = parse_document(
        br#"{"secrets": {"k": "TOPSECRET"}, "seed": "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"}"#,
    );
    let shown = format!("{s:?}");
    assert!(!shown.contains("TOPSECRET") && !shown.contains("5e5e") && !shown.contains("94, 94"));
    assert!(
        shown.contains("Secret { 9 bytes, service: None }"),
        "{shown}"
    );
    assert!(shown.contains("Seed(16 bytes)"), "{shown}");
}

#[test]
fn a_bad_network_entry_fails_the_whole_network_key() {
    let (s, problems) = parse_document(
        br#"{"network": [{"name": "eth0", "dhcp": true}, {"name": "eth1", "addresses": ["nope"]}]}"#,
    );
    assert_eq!(s.network, None);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "network");
}

#[test]
fn overridable_allows_a_key_and_everything_below_it() {
    let o: Vec<String> = ["hostname", "env.PORT", "services.web"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(allowed(&o, "hostname"));
    assert!(allowed(&o, "env.PORT"));
    assert!(!allowed(&o, "env.PORTS"));
    assert!(!allowed(&o, "env"));
    assert!(allowed(&o, "services.web.env.X"));
    assert!(!allowed(&o, "services.webx.env.X"));
    assert!(!allowed(&o, "network"));
    assert!(allowed(&o, "seed"));

    let (mut s, _) = parse_document(
        br#"{"hostname": "h", "env": {"PORT": "1", "DEBUG": "1"}, "secrets": {"k": "v"},
             "services": {"web": {"env": {"A": "1"}}, "db": {"env": {"B": "2"}}}}"#,
    );
    let refused = s.retain_allowed(&o);
    assert_eq!(refused, ["env.DEBUG", "services.db.env.B", "secrets.k"]);
    assert_eq!(s.keys(), ["hostname", "env.PORT", "services.web.env.A"]);
}

#[test]
fn overridable_entries_must_be_settings_keys() {
    assert_eq!(
        check_overridable(&["env.X".into(), "secrets".into()]),
        Ok(())
    );
    assert_eq!(
        check_overridable(&["colour".into()]),
        Err("\"colour\" is not a settings key (keys start with hostname, env, services, network, secrets, seed)".into())
    );
    assert!(check_overridable(&["env.".into()]).is_err());
}

#[test]
fn later_sources_win_key_by_key() {
    let (mut a, _) = parse_document(br#"{"hostname": "a", "env": {"X": "1", "Y": "1"}}"#);
    let (b, _) =
        parse_document(br#"{"env": {"Y": "2"}, "services": {"web": {"env": {"Z": "3"}}}}"#);
    a.overlay(b);
    assert_eq!(a.hostname.as_deref(), Some("a"));
    assert_eq!(a.env["X"], "1");
    assert_eq!(a.env["Y"], "2");
    assert_eq!(a.services["web"].env["Z"], "3");
}

#[test]
fn the_command_line_spells_the_same_keys_and_refuses_secrets() {
    let params = crate_split("mkrootfs.hostname=vm-9 mkrootfs.env.A=\"x y\" mkrootfs.services.web.env.PORT=81 \
                  mkrootfs.secrets.k=v mkrootfs.seed=00 mkrootfs.services.web=1 mkrootfs.hostname2=x quiet");
    let (s, problems) = from_cmdline(&params);
    assert_eq!(s.hostname.as_deref(), Some("vm-9"));
    assert_eq!(s.env["A"], "x y");
    assert_eq!(s.services["web"].env["PORT"], "81");
    assert_eq!(
        keys(&problems),
        [
            "secrets.k: not taken from the kernel command line (every process can read /proc/cmdline)",
            "seed: not taken from the kernel command line (every process can read /proc/cmdline)",
            "services.web: expected services.SERVICE.env.NAME",
        ]
    );
}

/// The kernel's splitting, enough for these tests (quotes removed).
fn crate_split(line: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars().chain(std::iter::once(' ')) {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    let p = std::mem::take(&mut cur);
                    out.push(match p.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (p, None),
                    });
                }
            }
            c => cur.push(c),
        }
    }
    out
}

#[test]
fn a_document_round_trips_through_its_writer() {
    let doc = br#"{"hostname": "vm-1", "env": {"A": "1"}, "services": {"web": {"env": {"P": "2"}}},
                   "secrets": {"t": {"value": "v", "service": "web"}, "b": {"hex": "ff00"}},
                   "seed": "000102030405060708090a0b0c0d0e0f"}"#;
    let (s, problems) = parse_document(doc);
    assert!(problems.is_empty());
    let text = serde_json::to_vec(&s.to_document()).unwrap();
    let (again, problems) = parse_document(&text);
    assert!(problems.is_empty());
    assert_eq!(again, s);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        r#"{"env":{"A":"1"},"hostname":"vm-1","secrets":{"b":{"hex":"ff00"},"t":{"service":"web","value":"v"}},"seed":"000102030405060708090a0b0c0d0e0f","services":{"web":{"env":{"P":"2"}}}}"#
    );
}

#[test]
fn an_ip_string_names_the_vm_unless_the_document_does() {
    let (s, problems) =
        parse_document(br#"{"network": ["10.0.3.5::10.0.3.1:255.255.255.0:vm-ip:eth1:off"]}"#);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(s.hostname.as_deref(), Some("vm-ip"));
    assert_eq!(s.keys(), ["hostname", "network"]);
    let (s, _) = parse_document(
        br#"{"hostname": "named", "network": ["10.0.3.5::10.0.3.1:255.255.255.0:vm-ip:eth1:off"]}"#,
    );
    assert_eq!(s.hostname.as_deref(), Some("named"));
    let (s, problems) =
        parse_document(br#"{"network": ["10.0.3.5::10.0.3.1:255.255.255.0:bad_name:eth1:off"]}"#);
    assert_eq!(s.network, None);
    assert_eq!(
        problems[0].to_string(),
        "network: [0]: host name \"bad_name\" has '_': only letters, digits, '-' and '.'"
    );
}
