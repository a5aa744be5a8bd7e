use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use offspring::{
    Backoff, Command, Next, Resource, Restart, Signal, StopReason, Supervisor, SupervisorEvent,
    WorkerId, Workers,
};

use crate::support::{fixture, ms, until_none_running, SpawnPath};

/// Collects events until one satisfies `done` (returned last), failing after `within`.
fn events_until(
    sup: &Supervisor,
    within: Duration,
    mut done: impl FnMut(&SupervisorEvent) -> bool,
) -> Vec<SupervisorEvent> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match sup.events().recv_deadline(deadline) {
            Ok(ev) => {
                let stop = done(&ev);
                seen.push(ev);
                if stop {
                    return seen;
                }
            }
            Err(_) => panic!("no matching event within {within:?}; saw {seen:#?}"),
        }
    }
}

fn worker(group: &str, index: usize) -> WorkerId {
    WorkerId { group: group.into(), index }
}

/// Whether `pid` is still a process (a zombie counts: it has not been reaped).
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn crashing_worker_backs_off_then_gives_up_with_history() {
    let cmd = fixture(SpawnPath::Vfork, ["exit", "3"]);
    let backoff = Backoff { min: ms(100), max: Duration::from_secs(5), jitter: 0.25 };
    let sup = Supervisor::start(vec![Workers::new("crash", cmd)
        .backoff(backoff)
        .max_restarts(4, Duration::from_secs(120))
        .min_uptime(Duration::from_secs(60))])
    .unwrap();
    let seen = events_until(&sup, Duration::from_secs(60), |e| {
        matches!(e, SupervisorEvent::GaveUp { .. })
    });
    assert!(
        matches!(seen.last(), Some(SupervisorEvent::GaveUp { worker, restarts: 4 }) if *worker == worker_id()),
        "{seen:#?}"
    );
    let runs = sup.history(&worker_id());
    assert_eq!(runs.len(), 5, "the first run and 4 restarts: {runs:#?}");
    let mut delays = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.status.and_then(|s| s.code()), Some(3), "{run:#?}");
        assert!(run.pid.is_some() && run.error.is_none());
        match run.next {
            Next::Restart(d) if i < 4 => delays.push(d),
            Next::GaveUp if i == 4 => {}
            other => panic!("run {i}: next {other:?}"),
        }
    }
    // Growing delays: 100ms doubling, less up to 25 % jitter.
    for (i, d) in delays.iter().enumerate() {
        let full = ms(100 * (1 << i));
        assert!(*d <= full && *d >= full * 3 / 4, "delay {i}: {d:?}");
        if i > 0 {
            assert!(*d > delays[i - 1], "delays must grow: {delays:?}");
        }
        // The next run really started no sooner than the delay after this one ended.
        let gap = runs[i + 1].started.duration_since(runs[i].started + runs[i].duration);
        assert!(gap >= *d, "run {} started {gap:?} after run {i} ended, delay {d:?}", i + 1);
    }
    // The worker stays down: nothing more happens.
    assert!(matches!(sup.events().recv_timeout(ms(1000)), Ok(SupervisorEvent::AllDown) | Err(_)));
    assert_eq!(sup.history(&worker_id()).len(), 5);
    assert!(sup.shutdown(ms(100)).unwrap().is_empty());

    fn worker_id() -> WorkerId {
        worker("crash", 0)
    }
}

/// A worker that serves connections on the inherited socket (`LISTEN_FDS`), answering each
/// with its worker index and pid, after checking `LISTEN_PID` is its own pid.
const PY_SERVER: &str = r#"
import os, socket, sys
assert os.environ["LISTEN_PID"] == str(os.getpid()), "LISTEN_PID is not my pid"
assert os.environ["LISTEN_FDS"] == "1" and os.environ["LISTEN_FDNAMES"] == "http"
s = socket.socket(fileno=3)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(("%s %d\n" % (os.environ["OFFSPRING_WORKER"], os.getpid())).encode())
    c.close()
"#;

fn python3() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: python3 is not installed");
    }
    ok
}

#[test]
fn cluster_of_four_shares_one_port_and_refuses_nothing_while_restarting() {
    if !python3() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PY_SERVER]).listen_fd("http", listener);
    let sup = Supervisor::start(vec![Workers::new("web", cmd)
        .count(4)
        .ready_line("^ready", Duration::from_secs(60))
        .stop_signal(Signal::TERM, Duration::from_secs(10))])
    .unwrap();
    let mut ready = 0;
    events_until(&sup, Duration::from_secs(60), |e| {
        ready += matches!(e, SupervisorEvent::Ready { .. }) as usize;
        ready == 4
    });

    // A client connects in a loop while every worker is replaced, one at a time, and
    // another is killed outright.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut refused, mut served_by) =
                (0, Vec::new(), std::collections::BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match TcpStream::connect(addr) {
                    Ok(mut c) => {
                        let mut reply = String::new();
                        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        let _ = c.read_to_string(&mut reply);
                        if let Some(pid) = reply.split_whitespace().nth(1) {
                            served_by.insert(pid.to_string());
                        }
                        ok += 1;
                    }
                    Err(e) => refused.push(e.to_string()),
                }
                #[allow(clippy::disallowed_methods)] // reason: paces the client's connects
                std::thread::sleep(ms(5));
            }
            (ok, refused, served_by)
        })
    };
    let before: Vec<_> = sup.workers();
    sup.rolling_restart().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, refused, served_by) = client.join().unwrap();
    assert!(refused.is_empty(), "refused connections: {refused:?}");
    assert!(ok > 0);
    // Served by old and new workers: more distinct pids than there are slots.
    assert!(served_by.len() > 4, "served by {served_by:?}");
    for w in &before {
        let runs = sup.history(w);
        assert_eq!(runs.len(), 1, "{w}: {runs:#?}");
        assert_eq!(runs[0].stopped, Some(StopReason::Rolling));
    }
    assert!(sup.shutdown(Duration::from_secs(10)).unwrap().is_empty());
}

#[test]
fn rolling_restart_goes_one_at_a_time_waiting_for_readiness() {
    // Ready 300 ms after start, then runs until stopped.
    let cmd = {
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 0.3; echo ready; exec sleep 600"]);
        c
    };
    let sup = Supervisor::start(vec![Workers::new("roll", cmd)
        .count(3)
        .ready_line("ready", Duration::from_secs(60))
        .stop_signal(Signal::TERM, Duration::from_secs(10))])
    .unwrap();
    let mut ready = 0;
    events_until(&sup, Duration::from_secs(60), |e| {
        ready += matches!(e, SupervisorEvent::Ready { .. }) as usize;
        ready == 3
    });
    // Healthy workers are not restarted on their own.
    assert!(sup.events().recv_timeout(ms(500)).is_err());
    sup.rolling_restart().unwrap();
    let seen: Vec<SupervisorEvent> = sup.events().try_iter().collect();
    // Exactly: stop i, start i, ready i, then the next; never two at once.
    let steps = rolling_steps(&seen);
    let want: Vec<(char, usize)> = (0..3).flat_map(|i| [('x', i), ('s', i), ('r', i)]).collect();
    assert_eq!(steps, want, "{seen:#?}");
    for i in 0..3 {
        assert_eq!(sup.history(&worker("roll", i)).len(), 1);
    }
    assert!(sup.shutdown(Duration::from_secs(10)).unwrap().is_empty());
}

#[test]
fn shutdown_stops_all_within_grace_and_kills_the_one_ignoring_sigterm() {
    let polite = fixture(SpawnPath::Vfork, ["sleep-forever"]);
    let mut stubborn = Command::new("sh");
    stubborn.args(["-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"]);
    // A worker with a grandchild in its process group.
    let mut family = Command::new("sh");
    family.args(["-c", "sleep 600 & echo ready; wait"]);
    let sup = Supervisor::start(vec![
        Workers::new("polite", polite).count(2),
        Workers::new("stubborn", stubborn).ready_line("ready", Duration::from_secs(60)),
        Workers::new("family", family).ready_line("ready", Duration::from_secs(60)),
    ])
    .unwrap();
    let mut pids = Vec::new();
    let mut ready = 0;
    events_until(&sup, Duration::from_secs(60), |e| {
        if let SupervisorEvent::Started { pid, .. } = e {
            pids.push(pid.as_raw_nonzero().get() as u32);
        }
        ready += matches!(e, SupervisorEvent::Ready { .. }) as usize;
        ready == 4
    });
    let grace = ms(1500);
    let t0 = Instant::now();
    let killed = sup.shutdown(grace).unwrap();
    let took = t0.elapsed();
    assert_eq!(killed, vec![worker("stubborn", 0)]);
    assert!(took >= grace, "the stubborn worker got its grace period: {took:?}");
    assert!(took < grace + Duration::from_secs(10), "took {took:?}");
    for &pid in &pids {
        // Our own child: reaped before the shutdown returned.
        assert!(!alive(pid), "worker {pid} is still in /proc");
        // Its group (the family's `sleep 600`) was killed with it.
        until_none_running(Duration::from_secs(10), &format!("group {pid}"), |p| p.pgrp == pid);
    }
}

#[test]
fn cpu_rlimit_kill_is_in_the_history() {
    let mut cmd = fixture(SpawnPath::Vfork, ["burn", "600000"]);
    cmd.rlimit(Resource::CpuTime, 1, 2);
    let sup = Supervisor::start(vec![Workers::new("burn", cmd).restart(Restart::Never)]).unwrap();
    let seen = events_until(&sup, Duration::from_secs(120), |e| {
        matches!(e, SupervisorEvent::Exited { .. })
    });
    let Some(SupervisorEvent::Exited { run, .. }) = seen.last() else { unreachable!() };
    assert_eq!(run.status.and_then(|s| s.signal()), Some(Signal::XCPU), "{run:#?}");
    assert_eq!(run.next, Next::Stay);
    let usage = run.usage.expect("resource usage");
    // The kernel checks the limit on its scheduler ticks and rusage samples differently:
    // only a rough lower bound holds.
    assert!(usage.user_time + usage.system_time >= ms(500), "{usage:?}");
    assert!(run.summary().contains("SIGXCPU"), "{}", run.summary());
    assert_eq!(sup.history(&worker("burn", 0)), vec![run.clone()]);
}

#[test]
fn bad_groups_are_refused() {
    let err =
        Supervisor::start(vec![Workers::new("a", Command::new("true")).count(0)]).unwrap_err();
    assert!(err.to_string().contains("count 0"), "{err}");
    let err = Supervisor::start(vec![
        Workers::new("a", Command::new("true")),
        Workers::new("a", Command::new("true")),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("two worker groups named \"a\""), "{err}");
}

#[test]
fn spawn_failure_is_a_failed_run() {
    let sup = Supervisor::start(vec![Workers::new("missing", Command::new("/no/such/program"))
        .backoff(Backoff { min: ms(10), max: ms(20), jitter: 0.0 })
        .max_restarts(1, Duration::from_secs(60))])
    .unwrap();
    events_until(&sup, Duration::from_secs(30), |e| matches!(e, SupervisorEvent::GaveUp { .. }));
    let runs = sup.history(&worker("missing", 0));
    assert_eq!(runs.len(), 2);
    assert!(runs[0].error.as_deref().is_some_and(|e| e.contains("/no/such/program")), "{runs:#?}");
    assert!(runs[0].pid.is_none());
}

#[test]
fn listen_pid_is_the_childs_own_pid_on_every_path() {
    for path in [SpawnPath::Vfork, SpawnPath::Fork, SpawnPath::PosixSpawn] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo $$ $LISTEN_PID $LISTEN_FDS $LISTEN_FDNAMES; [ -S /dev/fd/3 ] || readlink /proc/self/fd/3"]);
        cmd.force_spawn_path(path.name());
        cmd.env("LISTEN_PID", "1").env("LISTEN_FDS", "9");
        cmd.listen_fd("http", listener);
        let out = cmd.output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let f: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(f[0], f[1], "{path:?}: {text}");
        assert_eq!(&f[2..4], ["1", "http"], "{path:?}: {text}");
        assert!(f.get(4).map_or(true, |l| l.starts_with("socket:")), "{path:?}: {text}");
        // The command kept its socket: a second spawn gets it too.
        let again = cmd.output().unwrap();
        assert!(String::from_utf8_lossy(&again.stdout).contains("1 http"));
    }
    let mut bad = Command::new("true");
    bad.listen_fd("a:b", TcpListener::bind("127.0.0.1:0").unwrap());
    assert!(bad.status().unwrap_err().to_string().contains("without ':'"));
    let mut clash = Command::new("true");
    clash.listen_fd("a", TcpListener::bind("127.0.0.1:0").unwrap());
    clash.fd(offspring::ChildFd::new(3).unwrap(), offspring::Stdio::null());
    assert!(clash.status().unwrap_err().to_string().contains("collides"));
}

#[test]
fn shutdown_signals_arrive_as_a_channel() {
    // Installs process-wide handlers: in a process of its own.
    if !crate::support::isolated("supervisor::shutdown_signals_arrive_as_a_channel") {
        return;
    }
    let rx = offspring::shutdown_signals().unwrap();
    let second = offspring::shutdown_signals().unwrap();
    let me = std::process::id().to_string();
    for (name, sig) in [("-TERM", Signal::TERM), ("-INT", Signal::INT), ("-HUP", Signal::HUP)] {
        let status = Command::new("kill").args([name, &me]).status().unwrap();
        assert!(status.success());
        // The process was not ended by it: the signal arrives as a message, to every receiver.
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(sig));
        assert_eq!(second.recv_timeout(Duration::from_secs(10)), Ok(sig));
    }
    assert!(rx.try_recv().is_err());
}

#[test]
fn contained_workers_are_stopped_with_their_whole_tree() {
    let mut probe = Command::new("true");
    if let Err(e) = probe.contain(true).status() {
        eprintln!("skipped: no cgroup containment here ({e})");
        return;
    }
    // The grandchild leaves the worker's session and process group: only the cgroup holds it.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "setsid sleep 600 & echo $!; wait"]).contain(true);
    let sup = Supervisor::start(vec![Workers::new("tree", cmd)]).unwrap();
    let mut escaped = 0u32;
    events_until(&sup, Duration::from_secs(60), |e| match e {
        SupervisorEvent::Line { line, .. } => {
            escaped = line.trim().parse().unwrap();
            true
        }
        _ => false,
    });
    assert!(alive(escaped));
    assert!(sup.shutdown(Duration::from_secs(5)).unwrap().is_empty());
    // Killed with its cgroup.
    until_none_running(Duration::from_secs(10), "the setsid grandchild", |p| p.pid == escaped);
}

#[test]
fn ipc_ready_worker_is_ready_only_after_the_handshake() {
    // Attaches, waits 400 ms, sends the ready handshake, then echoes messages.
    let cmd = fixture(SpawnPath::Vfork, ["ipc-ready", "400"]);
    let sup = Supervisor::start(vec![Workers::new("ipc", cmd).ready_ipc(Duration::from_secs(60))])
        .unwrap();
    let w = worker("ipc", 0);
    let seen = events_until(&sup, Duration::from_secs(60), |e| {
        matches!(e, SupervisorEvent::Ready { .. } | SupervisorEvent::Exited { .. })
    });
    assert!(matches!(seen.first(), Some(SupervisorEvent::Started { worker, .. }) if *worker == w));
    match seen.last() {
        Some(SupervisorEvent::Ready { worker, after }) => {
            assert_eq!(*worker, w);
            assert!(*after >= ms(400), "ready {after:?} after the start, before the handshake");
        }
        other => panic!("{other:?}; saw {seen:#?}"),
    }
    // The channel is the user's too: what we send comes back as a message event.
    let tx = sup.sender(&w).expect("a running ipc worker has a sender");
    tx.send(br#"{"hello":[1,2]}"#).unwrap();
    let seen = events_until(&sup, Duration::from_secs(60), |e| {
        matches!(e, SupervisorEvent::Message { .. } | SupervisorEvent::Exited { .. })
    });
    assert_eq!(
        seen.last(),
        Some(&SupervisorEvent::Message { worker: w.clone(), data: br#"{"hello":[1,2]}"#.to_vec() })
    );
    drop(tx);
    assert!(sup.shutdown(Duration::from_secs(10)).unwrap().is_empty());
}

#[test]
fn ipc_worker_without_handshake_fails_its_start_and_is_given_up() {
    // Attaches and echoes, but never says it is ready.
    let cmd = fixture(SpawnPath::Vfork, ["ipc-echo"]);
    let sup = Supervisor::start(vec![Workers::new("mute", cmd)
        .ready_ipc(ms(300))
        .backoff(Backoff { min: ms(50), max: ms(50), jitter: 0.0 })
        .max_restarts(2, Duration::from_secs(120))
        .restart(Restart::OnFailure)])
    .unwrap();
    let w = worker("mute", 0);
    let seen = events_until(&sup, Duration::from_secs(60), |e| {
        matches!(e, SupervisorEvent::GaveUp { .. })
    });
    assert!(!seen.iter().any(|e| matches!(e, SupervisorEvent::Ready { .. })), "{seen:#?}");
    let runs = sup.history(&w);
    assert_eq!(runs.len(), 3, "the first run and 2 restarts: {runs:#?}");
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.stopped, Some(StopReason::NotReady), "run {i}: {run:#?}");
        assert_eq!(run.ready_after, None);
        assert!(run.duration >= ms(300), "stopped before its deadline: {run:#?}");
        assert!(run.pid.is_some() && run.error.is_none(), "{run:#?}");
        assert_eq!(run.next, if i < 2 { Next::Restart(ms(50)) } else { Next::GaveUp });
        assert!(run.summary().contains("stopped: NotReady"), "{}", run.summary());
    }
    assert!(sup.sender(&w).is_none(), "a worker that is down has no channel");
    assert!(sup.shutdown(ms(100)).unwrap().is_empty());
}

#[test]
fn rolling_restart_waits_for_each_ipc_handshake() {
    let cmd = fixture(SpawnPath::Vfork, ["ipc-ready", "300"]);
    let sup = Supervisor::start(vec![Workers::new("iroll", cmd)
        .count(2)
        .ready_ipc(Duration::from_secs(60))
        .stop_signal(Signal::TERM, Duration::from_secs(10))])
    .unwrap();
    let mut ready = 0;
    events_until(&sup, Duration::from_secs(60), |e| {
        ready += matches!(e, SupervisorEvent::Ready { .. }) as usize;
        ready == 2
    });
    sup.rolling_restart().unwrap();
    let seen: Vec<SupervisorEvent> = sup.events().try_iter().collect();
    // Stop i, start i, ready i (after its handshake), then the next; never two at once.
    let steps = rolling_steps(&seen);
    let want: Vec<(char, usize)> = (0..2).flat_map(|i| [('x', i), ('s', i), ('r', i)]).collect();
    assert_eq!(steps, want, "{seen:#?}");
    assert!(sup.shutdown(Duration::from_secs(10)).unwrap().is_empty());
}

#[test]
fn ipc_messages_sent_before_exit_come_before_exited() {
    // Sends {"i":0}...{"i":49} and "bye" as fast as it can, then exits at once.
    let cmd = fixture(SpawnPath::Vfork, ["ipc-send-exit", "50"]);
    let sup = Supervisor::start(vec![Workers::new("talk", cmd)
        .ready_ipc(Duration::from_secs(60))
        .restart(Restart::Never)])
    .unwrap();
    let seen = events_until(&sup, Duration::from_secs(60), |e| {
        matches!(e, SupervisorEvent::Exited { .. })
    });
    let got: Vec<String> = seen
        .iter()
        .filter_map(|e| match e {
            SupervisorEvent::Message { data, .. } => Some(String::from_utf8_lossy(data).into()),
            _ => None,
        })
        .collect();
    let mut want: Vec<String> = (0..50).map(|i| format!("{{\"i\":{i}}}")).collect();
    want.push("\"bye\"".into());
    assert_eq!(got, want);
    match seen.last() {
        Some(SupervisorEvent::Exited { run, .. }) => {
            assert_eq!(run.status.and_then(|s| s.code()), Some(0), "{run:#?}");
            assert_eq!(run.ready_after, None, "it never sent the handshake");
        }
        other => panic!("{other:?}"),
    }
    assert!(sup.shutdown(ms(100)).unwrap().is_empty());
}

/// A rolling restart's events as steps: `('x', i)` worker `i` stopped (for the rolling
/// restart), `('s', i)` started, `('r', i)` ready (at least 300 ms after its start, which the
/// workers of these tests take before they say they are ready).
fn rolling_steps(seen: &[SupervisorEvent]) -> Vec<(char, usize)> {
    seen.iter()
        .filter_map(|e| match e {
            SupervisorEvent::Exited { worker, run } => {
                assert_eq!(run.stopped, Some(StopReason::Rolling));
                Some(('x', worker.index))
            }
            SupervisorEvent::Started { worker, .. } => Some(('s', worker.index)),
            SupervisorEvent::Ready { worker, after } => {
                assert!(*after >= ms(300), "ready after {after:?}, before the worker said so");
                Some(('r', worker.index))
            }
            _ => None,
        })
        .collect()
}
