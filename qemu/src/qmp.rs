//! A small QMP client (QEMU Machine Protocol, docs/interop/qmp-spec): the
//! greeting, `qmp_capabilities`, commands with their `return` or `error`,
//! and asynchronous events kept until asked for. Enough for a test to
//! hot-plug devices, migrate and resume a guest (`-qmp unix:PATH,server=on,wait=off`).

use crate::QemuError;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A QMP connection in command mode.
pub struct Qmp {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events received while waiting for something else.
    events: Vec<Value>,
}

impl Qmp {
    /// Connects to the QMP socket `path` (retrying until it exists and
    /// accepts, at most `timeout`), reads the greeting and enters command
    /// mode.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QemuError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(QemuError::Qmp(path.to_path_buf(), "connect".into(), e))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let io = |what: &str| {
            let what = what.to_string();
            let path = path.to_path_buf();
            move |e| QemuError::Qmp(path, what, e)
        };
        let writer = stream.try_clone().map_err(io("clone the socket"))?;
        let mut qmp = Qmp {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = qmp.read(deadline)?;
        if greeting.get("QMP").is_none() {
            return Err(qmp.protocol(format!("no greeting: {greeting}")));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn protocol(&self, what: String) -> QemuError {
        QemuError::QmpProtocol(self.path.clone(), what)
    }

    /// One message, at most until `deadline`.
    fn read(&mut self, deadline: Instant) -> Result<Value, QemuError> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let path = self.path.clone();
        self.reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(|e| QemuError::Qmp(path.clone(), "set a read timeout".into(), e))?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(self.protocol("QEMU closed the connection".into())),
            Ok(_) => serde_json::from_str(&line)
                .map_err(|e| self.protocol(format!("not JSON ({e}): {}", line.trim()))),
            Err(e) => Err(QemuError::Qmp(path, "read".into(), e)),
        }
    }

    /// Runs `command` with `arguments` (an object) and returns its
    /// `return` value; an `error` answer is [`QemuError::QmpCommand`].
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QemuError> {
        let mut msg = json!({ "execute": command });
        if arguments.as_object().is_some_and(|o| !o.is_empty()) {
            msg["arguments"] = arguments;
        }
        let mut text = msg.to_string();
        text.push('\n');
        let path = self.path.clone();
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| QemuError::Qmp(path, format!("send {command}"), e))?;
        // Commands answer promptly; what takes long (migration, unplug)
        // reports through events or queries.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.read(deadline)?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QemuError::QmpCommand {
                    command: command.to_string(),
                    class: e["class"].as_str().unwrap_or("").to_string(),
                    desc: e["desc"].as_str().unwrap_or("").to_string(),
                });
            }
            if v.get("event").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Waits (at most `timeout`) for the event `name` whose `data` has
    /// every field of `data` (e.g. `{"device": "vsock0"}`), and returns it;
    /// one already received counts.
    pub fn wait_event(
        &mut self,
        name: &str,
        data: &Value,
        timeout: Duration,
    ) -> Result<Value, QemuError> {
        let matches = |v: &Value| {
            v["event"] == name
                && data
                    .as_object()
                    .is_none_or(|want| want.iter().all(|(k, w)| &v["data"][k] == w))
        };
        if let Some(i) = self.events.iter().position(matches) {
            return Ok(self.events.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if Instant::now() >= deadline {
                return Err(self.protocol(format!("no {name} event {data} in {timeout:?}")));
            }
            match self.read(deadline) {
                Ok(v) if matches(&v) => return Ok(v),
                Ok(v) => {
                    if v.get("event").is_some() {
                        self.events.push(v);
                    }
                }
                Err(QemuError::Qmp(_, _, e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Polls `query-migrate` until the migration has `completed` (at most
    /// `timeout`); a `failed` one is an error with QEMU's reason.
    pub fn wait_migration(&mut self, timeout: Duration) -> Result<Value, QemuError> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.execute("query-migrate", json!({}))?;
            match st["status"].as_str() {
                Some("completed") => return Ok(st),
                Some("failed") | Some("cancelled") => {
                    return Err(self.protocol(format!("migration failed: {st}")))
                }
                _ if Instant::now() >= deadline => {
                    return Err(self.protocol(format!("migration not done in {timeout:?}: {st}")))
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Polls `query-status` until the guest has left `state` (at most
    /// `timeout`; e.g. `inmigrate` while an incoming migration loads) and
    /// returns the new run state.
    pub fn wait_leaving(&mut self, state: &str, timeout: Duration) -> Result<String, QemuError> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.execute("query-status", json!({}))?;
            let now = st["status"].as_str().unwrap_or("").to_string();
            if now != state {
                return Ok(now);
            }
            if Instant::now() >= deadline {
                return Err(self.protocol(format!("still {state} after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    /// A QMP server that checks each request line against `script` and
    /// answers with the given lines.
    fn fake(
        path: &Path,
        script: Vec<(&'static str, Vec<&'static str>)>,
    ) -> std::thread::JoinHandle<()> {
        let l = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            for (want, answers) in script {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                assert_eq!(line.trim(), want);
                for a in answers {
                    s.write_all(a.as_bytes()).unwrap();
                    s.write_all(b"\n").unwrap();
                }
            }
            // Until the client goes.
            let _ = r.read_to_end(&mut Vec::new());
        })
    }

    #[test]
    fn commands_errors_and_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let server = fake(
            &path,
            vec![
                (
                    r#"{"execute":"qmp_capabilities"}"#,
                    vec![r#"{"return": {}}"#],
                ),
                (
                    r#"{"arguments":{"id":"vsock0"},"execute":"device_del"}"#,
                    vec![
                        r#"{"event": "DEVICE_DELETED", "data": {"device": "other"}}"#,
                        r#"{"return": {}}"#,
                        r#"{"event": "DEVICE_DELETED", "data": {"device": "vsock0"}}"#,
                    ],
                ),
                (
                    r#"{"execute":"cont"}"#,
                    vec![
                        r#"{"error": {"class": "GenericError", "desc": "Migration is not finalized yet"}}"#,
                    ],
                ),
                (
                    r#"{"execute":"query-status"}"#,
                    vec![r#"{"return": {"status": "paused", "running": false}}"#],
                ),
            ],
        );
        let mut q = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        assert_eq!(
            q.execute("device_del", json!({"id": "vsock0"})).unwrap(),
            json!({})
        );
        let e = q
            .wait_event(
                "DEVICE_DELETED",
                &json!({"device": "vsock0"}),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(e["data"]["device"], "vsock0");
        // The other device's event, received while waiting, is kept.
        assert_eq!(q.events.len(), 1);
        let err = q.execute("cont", json!({})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "QMP command cont: GenericError: Migration is not finalized yet"
        );
        assert_eq!(
            q.wait_leaving("inmigrate", Duration::from_secs(5)).unwrap(),
            "paused"
        );
        drop(q);
        server.join().unwrap();
    }
}
