use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use offspring::{Command, ProcessGroup, Signal, Stdio};

use crate::support::{fixture, isolated, ms, running, until_none_running, PATHS};

fn ready(child: &mut offspring::Child) {
    let mut buf = [0u8; 6];
    child.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
}

#[test]
fn terminate_without_needing_kill() {
    for path in PATHS {
        let mut child = fixture(path, ["sleep-forever"]).stdout(Stdio::piped()).spawn().unwrap();
        ready(&mut child);
        let t = child.terminate(Duration::from_secs(10)).unwrap();
        assert!(!t.needed_kill);
        assert_eq!(t.status.signal(), Some(Signal::TERM));
    }
}

#[test]
fn terminate_with_another_signal_then_kill() {
    for path in PATHS {
        let mut child =
            fixture(path, ["ignore", "INT", "TERM"]).stdout(Stdio::piped()).spawn().unwrap();
        ready(&mut child);
        let t0 = Instant::now();
        let t = child.terminate_with(Signal::INT, ms(200)).unwrap();
        assert!(t.needed_kill);
        assert_eq!(t.status.signal(), Some(Signal::KILL));
        assert!(t0.elapsed() >= ms(200), "killed before the grace period ended");
    }
}

#[test]
fn signalling_an_exited_child_is_a_no_op() {
    for path in PATHS {
        let child = fixture(path, ["exit", "0"]).spawn().unwrap();
        assert!(child.wait().unwrap().success());
        child.signal(Signal::TERM).unwrap();
        child.kill().unwrap();
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn signal_group_reaches_the_grandchild() {
    for path in PATHS {
        let mut child = fixture(path, ["grandchild", "60000"])
            .stdout(Stdio::piped())
            .process_group(ProcessGroup::New)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        assert!(child.wait().unwrap().success());
        // The leader is gone, its group is not.
        assert!(running(grandchild as u32));
        child.signal_group(Signal::KILL).unwrap();
        until_none_running(Duration::from_secs(10), "the grandchild after the group kill", |p| {
            p.pid == grandchild as u32
        });
    }
    // Without a group of its own, signal_group is refused rather than guessed.
    let child = Command::new("true").spawn().unwrap();
    let e = child.signal_group(Signal::TERM).unwrap_err();
    assert_eq!(e.kind(), offspring::ErrorKind::InvalidInput);
    child.wait().unwrap();
}

/// Writes `pid - 1` to `ns_last_pid`, so the next process created gets `pid` (if free).
fn aim_next_pid(pid: u32) -> bool {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_ok()
}

#[allow(clippy::disallowed_methods)] // a pause to let a wrongly sent signal land
/// A stale handle, whose child was reaped and whose pid now belongs to someone else, must
/// not signal that someone else. Runs in a fresh pid namespace (unshare) so the test can
/// steer pid allocation without touching the host's.
fn pid_reuse_body() {
    for path in PATHS {
        let mut stale = fixture(path, ["sleep-forever"]).stdout(Stdio::piped()).spawn().unwrap();
        ready(&mut stale);
        let pid = stale.id();
        stale.kill().unwrap();
        stale.wait().unwrap();
        // Make a stranger (not ours: spawned with std) take the same pid.
        let mut stranger = None;
        for _ in 0..50 {
            // Root in a fresh pid namespace (the caller made one) may steer its pids.
            assert!(aim_next_pid(pid), "cannot write ns_last_pid");
            let c = std::process::Command::new(env!("CARGO_BIN_EXE_offspring-fixture"))
                .arg("sleep-forever")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            if c.id() == pid {
                stranger = Some(c);
                break;
            }
            let mut c = c;
            c.kill().unwrap();
            c.wait().unwrap();
        }
        let mut stranger = stranger.expect("could not get the pid reused");
        stale.signal(Signal::KILL).unwrap();
        stale.kill().unwrap();
        std::thread::sleep(ms(100));
        assert!(stranger.try_wait().unwrap().is_none(), "{path:?}: the stranger was killed");
        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }
}

#[test]
fn a_signal_after_reap_reaches_no_recycled_pid() {
    const NAME: &str = "signal::a_signal_after_reap_reaches_no_recycled_pid";
    if std::env::var("OFFSPRING_ISOLATED").as_deref() == Ok(NAME) {
        pid_reuse_body();
        return;
    }
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        eprintln!("skipped: no `unshare --pid` here (needs root or user namespaces)");
        return;
    }
    let unshare = ["unshare", "--pid", "--fork", "--mount-proc"];
    for reaper in ["pidfd", "sigchld"] {
        let env = [("OFFSPRING_ISOLATED", NAME), ("OFFSPRING_REAPER", reaper)];
        let passed = crate::support::rerun(&unshare, &[NAME, "--exact", "--test-threads=1"], &env);
        assert_eq!(passed, 1, "{reaper}");
    }
}

#[test]
fn kill_on_drop_and_terminate_on_drop() {
    if !isolated("signal::kill_on_drop_and_terminate_on_drop") {
        return;
    }
    for path in PATHS {
        let mut child = fixture(path, ["sleep-forever"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        ready(&mut child);
        let rx = child.exit_receiver();
        drop(child);
        let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(exit.status().unwrap().signal(), Some(Signal::KILL));

        // SIGTERM is ignored: the reaper sends SIGKILL after the grace period; drop returns at once.
        let mut child = fixture(path, ["ignore", "TERM"])
            .stdout(Stdio::piped())
            .terminate_on_drop(ms(300))
            .spawn()
            .unwrap();
        ready(&mut child);
        let rx = child.exit_receiver();
        let t0 = Instant::now();
        drop(child);
        assert!(t0.elapsed() < ms(200), "drop blocked");
        let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(t0.elapsed() >= ms(300), "killed before the grace period");
        assert_eq!(exit.status().unwrap().signal(), Some(Signal::KILL));

        // Terminate-on-drop with a polite child: SIGTERM is enough.
        let mut child = fixture(path, ["sleep-forever"])
            .stdout(Stdio::piped())
            .terminate_on_drop(ms(5000))
            .spawn()
            .unwrap();
        ready(&mut child);
        let rx = child.exit_receiver();
        drop(child);
        let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(exit.status().unwrap().signal(), Some(Signal::TERM));
    }
}
