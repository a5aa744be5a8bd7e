use std::collections::HashSet;
use std::io::Read;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Select};
use offspring::{Signal, Stdio};

use crate::support::{fixture, ms, PATHS};

/// Spawns `sleep-forever` and waits until it has printed `ready`.
fn sleeper(path: crate::support::SpawnPath, args: &[&str]) -> offspring::Child {
    let mut child = fixture(path, args).stdout(Stdio::piped()).spawn().unwrap();
    let mut buf = [0u8; 6];
    child.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    child
}

#[test]
fn try_wait_and_wait_timeout_on_a_running_child() {
    for path in PATHS {
        let child = sleeper(path, &["sleep-forever"]);
        assert_eq!(child.try_wait().unwrap(), None);
        let t0 = Instant::now();
        assert_eq!(child.wait_timeout(ms(100)).unwrap(), None);
        let waited = t0.elapsed();
        assert!(waited >= ms(100), "returned early: {waited:?}");
        assert!(waited < ms(2000), "returned late: {waited:?}");
        child.kill().unwrap();
        let status = child.wait_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(status.signal(), Some(Signal::KILL));
        // Once collected, every wait form returns the same status at once.
        assert_eq!(child.try_wait().unwrap(), Some(status));
        assert_eq!(child.wait().unwrap(), status);
        assert_eq!(child.wait_deadline(Instant::now()).unwrap(), Some(status));
    }
}

#[test]
fn wait_timeout_returns_on_time_with_a_child_that_ignores_sigterm() {
    for path in PATHS {
        let child = sleeper(path, &["ignore", "TERM"]);
        child.signal(Signal::TERM).unwrap();
        let t0 = Instant::now();
        assert_eq!(child.wait_timeout(ms(300)).unwrap(), None, "SIGTERM was ignored");
        let waited = t0.elapsed();
        assert!(waited >= ms(300) && waited < ms(3000), "{waited:?}");
        let t = child.terminate(ms(200)).unwrap();
        assert!(t.needed_kill, "a child that ignores SIGTERM needs SIGKILL");
        assert_eq!(t.status.signal(), Some(Signal::KILL));
    }
}

#[test]
fn exit_wakes_the_waiter_promptly() {
    for path in PATHS {
        let child = fixture(path, ["sleep", "50"]).spawn().unwrap();
        let t0 = Instant::now();
        let status = child.wait_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(status.map(|s| s.success()), Some(true));
        // Generous bound for a loaded 2-core machine; the point is "not a polling interval".
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn eight_threads_waiting_on_one_child_see_the_same_status() {
    for path in PATHS {
        let child = sleeper(path, &["sleep-forever"]);
        let barrier = Barrier::new(9);
        let statuses: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (child, barrier) = (&child, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        match i % 3 {
                            0 => child.wait().unwrap(),
                            1 => child.wait_timeout(Duration::from_secs(30)).unwrap().unwrap(),
                            _ => child.exit_receiver().recv().unwrap().status().unwrap(),
                        }
                    })
                })
                .collect();
            barrier.wait();
            child.signal(Signal::USR2).unwrap();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(statuses.len(), 8);
        for s in &statuses {
            assert_eq!(s.signal(), Some(Signal::USR2), "{path:?}");
        }
    }
}

#[test]
fn std_children_alongside_ours_keep_their_status() {
    for path in PATHS {
        let mut std_child = std::process::Command::new(env!("CARGO_BIN_EXE_offspring-fixture"))
            .args(["exit", "42"])
            .spawn()
            .unwrap();
        let ours: Vec<_> =
            (0..20).map(|i| fixture(path, ["exit", &i.to_string()]).spawn().unwrap()).collect();
        for (i, c) in ours.iter().enumerate() {
            assert_eq!(c.wait().unwrap().code(), Some(i as i32));
        }
        // Our reaper never waited for "any child": std still gets its own status.
        assert_eq!(std_child.wait().unwrap().code(), Some(42));
        let out = std::process::Command::new("sh").args(["-c", "exit 3"]).output().unwrap();
        assert_eq!(out.status.code(), Some(3));
    }
}

#[test]
fn select_over_100_children_sees_each_exit_exactly_once() {
    for path in PATHS {
        let children: Vec<_> = (0..100)
            .map(|i| fixture(path, ["sleep", &((i % 10) * 5).to_string()]).spawn().unwrap())
            .collect();
        let receivers: Vec<_> = children.iter().map(|c| c.exit_receiver()).collect();
        let mut sel = Select::new();
        for rx in &receivers {
            sel.recv(rx);
        }
        let mut seen = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.len() < 100 {
            let op = sel.select_deadline(deadline).expect("all 100 exits within 60 s");
            let i = op.index();
            let exit = op.recv(&receivers[i]).unwrap();
            assert_eq!(exit.pid(), children[i].pid());
            assert!(exit.status().unwrap().success());
            assert!(seen.insert(i), "child {i} reported twice");
            sel.remove(i);
        }
        // Each channel delivers once: nothing more arrives.
        for rx in &receivers {
            assert!(rx.try_recv().is_err());
        }
        // A receiver made after the exit gets the exit at once.
        assert!(children[0].exit_receiver().recv_timeout(ms(1000)).is_ok());
    }
}

#[test]
fn exit_channel_mixes_with_timers_in_select() {
    let child = sleeper(crate::support::SpawnPath::PosixSpawn, &["sleep-forever"]);
    let rx = child.exit_receiver();
    let timer = crossbeam_channel::after(ms(50));
    select! {
        recv(rx) -> _ => panic!("sleep-forever exited"),
        recv(timer) -> _ => {}
    }
    child.kill().unwrap();
    let exit = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(exit.status().unwrap().signal(), Some(Signal::KILL));
}

#[test]
fn resource_usage_is_reported_with_the_status() {
    for path in PATHS {
        let child = fixture(path, ["burn", "200"]).spawn().unwrap();
        let exit = child.wait_exit().unwrap();
        let usage = exit.resource_usage().expect("usage collected by offspring");
        assert!(usage.user_time + usage.system_time >= ms(100), "{usage:?}");
        assert!(usage.max_rss_bytes > 0);
        assert_eq!(child.resource_usage(), Some(usage));

        let exit = fixture(path, ["alloc", "64"]).spawn().unwrap().wait_exit().unwrap();
        let rss = exit.resource_usage().unwrap().max_rss_bytes;
        assert!(rss >= 64 << 20, "max RSS {rss} below the 64 MiB touched");
    }
}

#[test]
fn status_of_a_child_reaped_by_someone_else_is_recovered_or_unavailable_never_a_hang() {
    const NAME: &str =
        "wait::status_of_a_child_reaped_by_someone_else_is_recovered_or_unavailable_never_a_hang";
    if !crate::support::isolated(NAME) {
        return;
    }
    for path in PATHS {
        // A careless library calls waitpid(-1): it races offspring for the status.
        let child = fixture(path, ["exit", "7"]).spawn().unwrap();
        steal_any_child();
        expect_recovered_or_unavailable(&child, 7);
    }
    // SIGCHLD set to SIG_IGN: the kernel reaps every child itself. On Linux >= 6.15
    // offspring recovers the status from the pidfd; otherwise it says it is unavailable.
    ignore_sigchld();
    for path in PATHS {
        let child = fixture(path, ["exit", "9"]).spawn().unwrap();
        expect_recovered_or_unavailable(&child, 9);
        assert!(child.kill().is_ok(), "signalling a vanished child is a no-op");
    }
}

fn expect_recovered_or_unavailable(child: &offspring::Child, code: i32) {
    match child.wait_timeout(Duration::from_secs(10)) {
        Ok(Some(status)) => assert_eq!(status.code(), Some(code)),
        Ok(None) => panic!("wait hung on a child reaped by someone else"),
        Err(e) => {
            assert_eq!(e.kind(), offspring::ErrorKind::StatusUnavailable, "{e}");
            assert!(e.to_string().contains("waitpid(-1)"), "{e}");
        }
    }
}

/// `waitpid(-1, 0)`: exactly what offspring forbids others to do.
#[allow(unsafe_code)]
fn steal_any_child() {
    let mut status = 0;
    // SAFETY: waitpid with a valid out-pointer; runs in an isolated test process.
    unsafe { libc::waitpid(-1, &mut status, 0) };
}

#[allow(unsafe_code)]
fn ignore_sigchld() {
    // SAFETY: setting a disposition to SIG_IGN; runs in an isolated test process.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
}
