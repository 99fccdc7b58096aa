//! Supervision on the host: a child test process makes itself a subreaper
//! (PR_SET_CHILD_SUBREAPER), so orphans are re-parented to it as they would
//! be to PID 1, and runs real services under the real supervisor.

use super::*;
use mkrootfs_config::Restart;
use std::process::Command;

const CHILD_ENV: &str = "MKROOTFS_INIT_SUBREAPER_CHILD";

fn service(script: &str, restart: Restart) -> (Prepared, Backoff) {
    let prep = Prepared {
        name: "t".into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: spawn::DEFAULT_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cwd: "/".into(),
        creds: crate::users::Credentials {
            uid: 0,
            gid: 0,
            groups: vec![0],
            home: None,
        },
        tty: None,
    };
    (prep, Backoff::new(restart, 10, 5))
}

fn supervisor(services: Vec<(Prepared, Backoff)>) -> Supervisor {
    let mut s = Supervisor::new(services, 0, signals::signalfd().unwrap());
    s.tick = Duration::from_millis(10);
    s
}

/// Zombie children of this process, from /proc.
fn zombies() -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(crate::sys::proc_stat)
        .filter(|s| s.ppid == me && s.state == 'Z')
        .map(|s| s.pid)
        .collect()
}

/// The body, run only in the re-executed child (see `supervision_in_a_subreaper`).
#[test]
fn subreaper_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    signals::block().unwrap();

    // Orphans: the subshells exit at once, their sleeps are re-parented to us.
    let mut sup = supervisor(vec![service(
        "(sleep 0.3 &); (sleep 0.2 &); exit 3",
        Restart::No,
    )]);
    sup.start_all().unwrap();
    assert_eq!(sup.run().unwrap(), Stop::MainEnded(Status::Exited(3)));
    let mut orphans = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !crate::shutdown::reap_all(&mut |pid, st| orphans.push((pid, st))) {
        assert!(Instant::now() < deadline, "orphans not reaped: {orphans:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(orphans.len(), 2, "{orphans:?}");
    assert!(
        orphans.iter().all(|(_, st)| *st == Status::Exited(0)),
        "{orphans:?}"
    );
    assert_eq!(zombies(), Vec::<i32>::new());

    // on-failure: fails twice (counter file), then succeeds.
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("n");
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; [ $n -ge 3 ]",
        c = counter.display()
    );
    let mut sup = supervisor(vec![service(&script, Restart::OnFailure)]);
    sup.start_all().unwrap();
    assert_eq!(sup.run().unwrap(), Stop::MainEnded(Status::Exited(0)));
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "3\n");

    // A signal-killed main service and a non-main service that cannot start.
    let mut missing = service("", Restart::No);
    missing.0.argv = vec!["/nonexistent/prog".into()];
    let mut sup = supervisor(vec![service("kill -KILL $$", Restart::No), missing]);
    sup.start_all().unwrap();
    assert_eq!(
        sup.run().unwrap(),
        Stop::MainEnded(Status::Signaled(Signal::SIGKILL))
    );

    // A main service that cannot start is an error naming the program.
    let mut sup = supervisor(vec![service("", Restart::No)]);
    sup.services[0].prep.argv = vec!["/nonexistent/prog".into()];
    let e = sup.start_all().unwrap_err();
    assert_eq!(
        e.to_string(),
        "service t: cannot execute /nonexistent/prog: No such file or directory (os error 2)"
    );
    println!("SUBREAPER-CHILD-OK");
}

#[test]
fn supervision_in_a_subreaper() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "supervise::tests::subreaper_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("SUBREAPER-CHILD-OK"),
        "{stdout}\n{stderr}"
    );
}
