use super::mmds::{parse_response, Response};
use super::secrets::map_id;
use super::*;
use mkrootfs_config::ServiceConfig;

fn cfg(json: &str) -> InitConfig {
    serde_json::from_str(json).unwrap()
}

#[test]
fn env_reaches_every_service_and_replaces_a_containers_image_env_by_name() {
    let mut c = cfg(r#"{"services": [
        {"name": "web", "argv": ["/bin/web"], "env": {"PORT": "80"}},
        {"name": "box", "argv": ["/x"], "container_plan": {"root": "/", "clone_flags": 0,
         "argv": ["/x"], "env": ["PATH=/bin", "LEVEL=info", "KEEP=1"],
         "capabilities": {"bounding": 0, "effective": 0, "permitted": 0, "inheritable": 0, "ambient": 0},
         "seccomp": null}}]}"#);
    let (s, problems) = settings::parse_document(
        br#"{"hostname": "vm-7", "env": {"LEVEL": "debug"},
             "services": {"web": {"env": {"PORT": "8080"}}, "box": {"env": {"NEW": "x"}}, "ghost": {"env": {"A": "1"}}}}"#,
    );
    assert!(problems.is_empty());
    apply(&mut c, &s);
    assert_eq!(c.hostname.as_deref(), Some("vm-7"));
    assert_eq!(c.services[0].env["PORT"], "8080");
    assert_eq!(c.services[0].env["LEVEL"], "debug");
    let plan = c.services[1].container_plan.as_ref().unwrap();
    assert_eq!(plan.env, ["PATH=/bin", "LEVEL=debug", "KEEP=1", "NEW=x"]);
    // The plain service's environment as it is started: the VM's value wins
    // over the image's service env.
    let env = mkrootfs_config::service_environment(&c, &c.services[0], None);
    assert_eq!(env["PORT"], "8080");
}

#[test]
fn set_env_is_the_one_override_of_a_workloads_environment() {
    let mut svc = ServiceConfig::main_command(vec!["/bin/true".into()]);
    svc.set_env("A", "1");
    svc.set_env("A", "2");
    assert_eq!(svc.env["A"], "2");
    assert_eq!(svc.env.len(), 1);
}

#[test]
fn ids_map_through_user_namespace_lines() {
    assert_eq!(map_id(&[], 1000), Some(1000));
    let map = [[0, 100_000, 65536]];
    assert_eq!(map_id(&map, 0), Some(100_000));
    assert_eq!(map_id(&map, 1000), Some(101_000));
    assert_eq!(map_id(&map, 65536), None);
    assert_eq!(map_id(&[[0, 5000, 1], [1, 100_001, 10]], 3), Some(100_003));
}

#[test]
fn mmds_answers_parse_with_and_without_content_length() {
    let raw =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 4\r\n\r\n{}\r\n";
    assert_eq!(
        parse_response(raw, false),
        Ok(Some(Response {
            status: 200,
            body: b"{}\r\n".to_vec()
        }))
    );
    // Not all of the body yet.
    assert_eq!(parse_response(&raw[..raw.len() - 1], false), Ok(None));
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK\r\nContent-", false),
        Ok(None)
    );
    // To the end of the connection.
    assert_eq!(
        parse_response(b"HTTP/1.0 401 Unauthorized\r\n\r\nno", false),
        Ok(None)
    );
    assert_eq!(
        parse_response(b"HTTP/1.0 401 Unauthorized\r\n\r\nno", true),
        Ok(Some(Response {
            status: 401,
            body: b"no".to_vec()
        }))
    );
}

#[test]
fn hostile_mmds_answers_are_errors_not_panics() {
    assert_eq!(
        parse_response(b"SSH-2.0-x\r\n\r\n", true),
        Err("bad status line \"SSH-2.0-x\"".into())
    );
    assert_eq!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
            false
        ),
        Err("Content-Length 99999999 is larger than 1048576".into())
    );
    assert_eq!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false
        ),
        Err("Transfer-Encoding \"chunked\" is not supported".into())
    );
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n", false),
        Err("bad header line \"broken\"".into())
    );
    assert_eq!(
        parse_response(b"HTTP/1.1 abc OK\r\n\r\n", true),
        Err("bad status line \"HTTP/1.1 abc OK\"".into())
    );
}

#[test]
fn mmds_v2_token_then_document_from_a_local_server() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let body: &[u8] = if head.starts_with("PUT /latest/api/token ") {
                assert!(
                    head.contains("X-metadata-token-ttl-seconds: 60\r\n"),
                    "{head}"
                );
                b"tok-123"
            } else {
                assert!(head.starts_with("GET /mkrootfs "), "{head}");
                assert!(head.contains("X-metadata-token: tok-123\r\n"), "{head}");
                assert!(head.contains("Accept: application/json\r\n"), "{head}");
                br#"{"hostname": "from-mmds"}"#
            };
            let mut s = s;
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .unwrap();
            s.write_all(body).unwrap();
            let _ = r.read(&mut [0u8; 1]);
            seen.push(head.lines().next().unwrap().to_string());
        }
        seen
    });
    let m = MmdsConfig {
        address: std::net::Ipv4Addr::LOCALHOST,
        port,
        ..MmdsConfig::default()
    };
    let doc = mmds::fetch(&m).unwrap();
    assert_eq!(doc, br#"{"hostname": "from-mmds"}"#);
    assert_eq!(
        server.join().unwrap(),
        ["PUT /latest/api/token HTTP/1.1", "GET /mkrootfs HTTP/1.1"]
    );
}

#[test]
fn an_mmds_that_does_not_answer_is_an_error_naming_the_request() {
    // A port nothing listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let m = MmdsConfig {
        address: std::net::Ipv4Addr::LOCALHOST,
        port,
        timeout_ms: 500,
        ..MmdsConfig::default()
    };
    let e = mmds::fetch(&m).unwrap_err();
    assert!(
        e.starts_with(&format!(
            "PUT /latest/api/token: connect 127.0.0.1:{port}: "
        )),
        "{e}"
    );
}

#[test]
fn a_config_drive_document_must_be_a_small_regular_file() {
    let d = std::env::temp_dir().join(format!("mkrootfs-drive-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let file = d.join("mkrootfs.json");
    std::fs::write(&file, b"{}").unwrap();
    let link = d.join("link.json");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let big = d.join("big.json");
    std::fs::write(&big, vec![b' '; (1 << 20) + 1]).unwrap();
    let p = |f: &std::path::Path| f.to_str().unwrap().to_string();
    assert_eq!(drive::read_document(&p(&file)), Ok(b"{}".to_vec()));
    let e = drive::read_document(&p(&link)).unwrap_err();
    assert!(e.starts_with(&format!("open {}: ", p(&link))), "{e}");
    assert_eq!(
        drive::read_document(&p(&big)),
        Err(format!("{} is larger than 1048576 bytes", p(&big)))
    );
    assert_eq!(
        drive::read_document(&p(&d)),
        Err(format!("{} is not a regular file", p(&d)))
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_agent_gets_the_environment_and_nothing_else() {
    let (s, problems) = settings::parse_document(
        br#"{"hostname": "h", "env": {"A": "x \"quoted\"\n"}, "services": {"web": {"env": {"P": "1"}}},
             "secrets": {"k": "TOPSECRET"}, "seed": "000102030405060708090a0b0c0d0e0f"}"#,
    );
    assert!(problems.is_empty());
    let doc = environment_document(&s);
    assert_eq!(
        doc,
        r#"{"env":{"A":"x \"quoted\"\n"},"services":{"web":{"env":{"P":"1"}}}}"#
    );
    let (back, problems) = settings::parse_document(doc.as_bytes());
    assert!(problems.is_empty());
    assert_eq!(back.env, s.env);
    assert_eq!(back.services, s.services);
    assert!(back.secrets.is_empty() && back.seed.is_none() && back.hostname.is_none());
}
