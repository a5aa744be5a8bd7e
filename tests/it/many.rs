//! Many children at once (issue 11): the multiplexer, pipelines, the concurrency limit and
//! shutting a set down. Counting tests look only at this process's own children and fds.

// The tests sample /proc from outside the code under test and pace a few steps with sleeps.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offspring::{
    cmd, exec, CancelHandle, Delivery, ErrorKind, Event, Jobs, Mux, Signal, Stdio, Stream,
};

use crate::support::{
    assert_no_new_fds, children, fixture, isolated, ms, noise, open_fds, proc_stat,
    until_no_children, until_none_running, SpawnPath, PATHS,
};

/// Makes room for `n` fds in this process, raising the soft limit toward the hard one.
fn allow_fds(n: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current.is_some_and(|c| c < n) {
        lim.current = Some(lim.maximum.map_or(n, |m| m.min(n)));
        setrlimit(Resource::Nofile, lim).unwrap();
    }
}

#[test]
fn a_thousand_children_are_captured_exactly_by_one_thread_leaving_no_zombie_and_no_fd() {
    if !isolated(
        "many::a_thousand_children_are_captured_exactly_by_one_thread_leaving_no_zombie_and_no_fd",
    ) {
        return;
    }
    allow_fds(8192);
    Command_warm_up();
    let before = open_fds();
    let threads_before = thread_count();
    let mut mux = Mux::new();
    let mut want = HashMap::new();
    for i in 0..1000 {
        let path = PATHS[i % 3];
        let id = mux.spawn(&mut fixture(path, ["echo", "line", &i.to_string()])).unwrap();
        want.insert(id, format!("line {i}").into_bytes());
    }
    // One thread: the mux adds none.
    assert_eq!(thread_count(), threads_before);
    let mut got: HashMap<_, Vec<Vec<u8>>> = HashMap::new();
    let mut exits = 0;
    for ev in &mut mux {
        match ev.unwrap() {
            Event::Line { id, stream, line } => {
                assert_eq!(stream, Stream::Stdout);
                got.entry(id).or_default().push(line);
            }
            Event::Exit { id, result } => {
                let out = result.unwrap();
                assert!(out.status.success(), "{id}: {out:?}");
                assert_eq!(out.bytes_seen(Stream::Stdout), want[&id].len() as u64 + 1);
                exits += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(exits, 1000);
    assert_eq!(got.len(), 1000);
    for (id, line) in &want {
        assert_eq!(got[id], std::slice::from_ref(line), "{id}");
    }
    assert!(mux.is_empty());
    drop(mux);
    assert!(children().is_empty(), "children left: {:?}", children());
    assert_no_new_fds(&before, Duration::from_secs(10));
}

/// The reaper thread and the rest of the engine are started before counting.
#[allow(non_snake_case)]
fn Command_warm_up() {
    offspring::Command::new("true").output().unwrap();
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn a_hung_child_is_killed_at_its_timeout_without_stalling_the_others() {
    let mut mux = Mux::new();
    let mut hung = exec("trap '' TERM; echo hung; while :; do sleep 1; done");
    hung.timeout(Duration::from_secs(3)).force_kill_after(Duration::from_secs(1));
    let hung = mux.spawn(&mut hung).unwrap();
    let ticker = mux
        .spawn(&mut exec("for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.05; done"))
        .unwrap();
    let mut quick = Vec::new();
    for i in 0..20 {
        quick.push(mux.spawn(&mut cmd!("echo", format!("quick {i}"))).unwrap());
    }
    let started = Instant::now();
    let mut order = Vec::new();
    let mut ticks = 0;
    let mut hung_result = None;
    while let Some(ev) = mux.next_event().unwrap() {
        match ev {
            Event::Line { id, .. } if id == ticker => ticks += 1,
            Event::Line { id, line, .. } if id == hung => assert_eq!(line, b"hung"),
            Event::Exit { id, result } => {
                order.push(id);
                if id == hung {
                    hung_result = Some(result);
                } else {
                    assert!(result.unwrap().status.success());
                }
            }
            _ => {}
        }
    }
    let err = hung_result.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(err.needed_kill(), "{err}");
    assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::KILL));
    // Its line came as an event, not kept in the error.
    assert!(err.stdout().is_empty());
    assert_eq!(ticks, 8);
    // Everything else finished while the hung one was still being stopped.
    assert_eq!(order.last(), Some(&hung));
    assert_eq!(order.len(), 22);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn per_child_input_merged_stderr_limits_and_delivery() {
    let mut mux = Mux::new();
    let fed = mux.spawn(cmd!("cat").input("a\nb\nno newline")).unwrap();
    let merged =
        mux.spawn(exec("echo out; sleep 0.05; echo err >&2").stderr_to_stdout(true)).unwrap();
    let split = mux.spawn(&mut exec("echo out; echo err >&2")).unwrap();
    let limited = mux.spawn_with(cmd!("yes").max_buffer(100_000), Delivery::Chunks).unwrap();
    let buffered = mux.spawn_with(&mut exec("printf 'x\\ny'"), Delivery::Buffered).unwrap();
    let mut lines: HashMap<_, Vec<(Stream, Vec<u8>)>> = HashMap::new();
    let mut chunk_bytes = 0;
    let mut exits = HashMap::new();
    for ev in &mut mux {
        match ev.unwrap() {
            Event::Line { id, stream, line } => lines.entry(id).or_default().push((stream, line)),
            Event::Output { id, data, .. } => {
                assert_eq!(id, limited);
                assert!(data.iter().all(|&b| b == b'y' || b == b'\n'));
                chunk_bytes += data.len();
            }
            Event::Exit { id, result } => {
                exits.insert(id, result);
            }
            Event::Error { error, .. } => panic!("{error}"),
            _ => {}
        }
    }
    let l = |v: &[(Stream, &str)]| -> Vec<(Stream, Vec<u8>)> {
        v.iter().map(|(s, t)| (*s, t.as_bytes().to_vec())).collect()
    };
    assert_eq!(
        lines[&fed],
        l(&[(Stream::Stdout, "a"), (Stream::Stdout, "b"), (Stream::Stdout, "no newline")])
    );
    assert_eq!(lines[&merged], l(&[(Stream::Stdout, "out"), (Stream::Stdout, "err")]));
    let s = &lines[&split];
    assert_eq!(s.len(), 2);
    for want in l(&[(Stream::Stdout, "out"), (Stream::Stderr, "err")]) {
        assert!(s.contains(&want), "{s:?}");
    }
    assert_eq!(chunk_bytes, 100_000);
    let err = exits.remove(&limited).unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutputLimit);
    assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::TERM));
    assert_eq!(exits.remove(&buffered).unwrap().unwrap().stdout, b"x\ny");
    assert!(exits.values().all(|r| r.as_ref().unwrap().status.success()));
}

#[test]
fn children_are_added_while_it_runs_and_try_next_event_does_not_block() {
    let mut mux = Mux::new();
    let slow = mux.spawn(&mut exec("echo first; sleep 0.3; echo last")).unwrap();
    let t = Instant::now();
    while mux.try_next_event().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(ms(1));
    }
    // Added between two events, while `slow` runs.
    let late = mux.spawn(&mut cmd!("echo", "late")).unwrap();
    let mut seen = Vec::new();
    for ev in &mut mux {
        if let Event::Line { id, line, .. } = ev.unwrap() {
            seen.push((id, line));
        }
    }
    assert!(seen.contains(&(late, b"late".to_vec())));
    assert_eq!(seen.last(), Some(&(slow, b"last".to_vec())));
    assert!(mux.next_event_timeout(ms(10)).unwrap().is_none());
}

#[test]
fn the_channel_form_is_fed_by_its_own_thread_and_takes_children_while_running() {
    let (tx, rx) = Mux::new().into_channel().unwrap();
    let first = tx.spawn(&mut exec("echo one; sleep 0.2; echo two")).unwrap();
    match rx.recv_timeout(Duration::from_secs(20)).unwrap() {
        Event::Line { id, line, .. } => assert_eq!((id, line.as_slice()), (first, &b"one"[..])),
        other => panic!("{other:?}"),
    }
    let tx2 = tx.clone();
    let second =
        std::thread::spawn(move || tx2.spawn(&mut cmd!("echo", "three")).unwrap()).join().unwrap();
    drop(tx);
    let mut exits = Vec::new();
    let mut lines = Vec::new();
    for ev in rx.iter() {
        match ev {
            Event::Line { line, .. } => lines.push(line),
            Event::Exit { id, result } => {
                assert!(result.unwrap().status.success());
                exits.push(id);
            }
            other => panic!("{other:?}"),
        }
    }
    exits.sort();
    assert_eq!(exits, [first, second]);
    lines.sort();
    assert_eq!(lines, [b"three".to_vec(), b"two".to_vec()]);
}

#[test]
fn shutting_a_group_down_halfway_leaves_nothing_running_and_says_who_needed_sigkill() {
    if !isolated(
        "many::shutting_a_group_down_halfway_leaves_nothing_running_and_says_who_needed_sigkill",
    ) {
        return;
    }
    Command_warm_up();
    let before = open_fds();
    let mut mux = Mux::new();
    let mut stubborn = Vec::new();
    for i in 0..12 {
        if i % 2 == 0 {
            // A child that ignores SIGTERM, with a grandchild that does too (an ignored
            // signal stays ignored across exec): only the stop's SIGKILL ends them.
            let id = mux.spawn(&mut exec("trap '' TERM; sleep 600 & echo up $!; wait")).unwrap();
            stubborn.push(id);
        } else {
            mux.spawn(&mut exec("echo up; exec sleep 30")).unwrap();
        }
    }
    let (mut up, mut grandchildren) = (0, Vec::new());
    while up < 12 {
        if let Event::Line { line, .. } = mux.next_event().unwrap().unwrap() {
            let line = String::from_utf8(line).unwrap();
            if let Some(pid) = line.strip_prefix("up ") {
                grandchildren.push(pid.parse::<u32>().unwrap());
            }
            up += 1;
        }
    }
    assert_eq!(grandchildren.len(), 6);
    let started = Instant::now();
    let grace = Duration::from_secs(2);
    let report = mux.shutdown(grace).unwrap();
    // One grace period for all of them together: one each would take at least 6 of them
    // (the rest is margin for a loaded machine).
    assert!(started.elapsed() < 6 * grace, "{:?}", started.elapsed());
    assert_eq!(report.signaled.len(), 12);
    let mut killed = report.needed_kill.clone();
    killed.sort();
    assert_eq!(killed, stubborn);
    let mut exits = 0;
    for ev in &mut mux {
        if let Event::Exit { result, .. } = ev.unwrap() {
            assert_eq!(result.unwrap_err().kind(), ErrorKind::Canceled);
            exits += 1;
        }
    }
    assert_eq!(exits, 12);
    // The children are reaped; the grandchildren, reparented, die with the SIGKILL.
    assert!(children().is_empty(), "{:?}", children());
    until_none_running(Duration::from_secs(10), "the grandchildren", |p| {
        grandchildren.contains(&p.pid)
    });
    drop(mux);
    assert_no_new_fds(&before, Duration::from_secs(10));
}

#[test]
fn shutting_down_a_thousand_children_takes_one_grace_period_not_one_per_child() {
    if !isolated("many::shutting_down_a_thousand_children_takes_one_grace_period_not_one_per_child")
    {
        return;
    }
    allow_fds(8192);
    Command_warm_up();
    let mut mux = Mux::new();
    let mut sleep = offspring::Command::new("sleep");
    sleep.arg("60");
    for _ in 0..1000 {
        mux.spawn(&mut sleep).unwrap();
    }
    // Each stop looks for the child's descendants. Done by scanning every /proc/<pid>/stat
    // per child, stopping a thousand took about 12 s here (the scan grows with the children
    // it counts), six grace periods of 2 s; walked from the child down, well under one.
    let grace = Duration::from_secs(2);
    let started = Instant::now();
    let report = mux.shutdown(grace).unwrap();
    let took = started.elapsed();
    assert_eq!(report.signaled.len(), 1000);
    assert!(report.needed_kill.is_empty(), "{:?}", report.needed_kill);
    assert!(took < 3 * grace, "shutdown took {took:?} for a grace of {grace:?}");
    let exits = (&mut mux).filter(|ev| matches!(ev, Ok(Event::Exit { .. }))).count();
    assert_eq!(exits, 1000);
    assert!(children().is_empty(), "{:?}", children());
}

#[test]
fn a_child_that_obeys_the_stop_signal_is_not_called_killed_when_the_loop_runs_late() {
    // On a loaded machine the loop may run again only after the grace period, when the
    // child has long died of SIGTERM: it looks at the child before escalating.
    let mut mux = Mux::new();
    let id = mux.spawn(exec("echo $$; exec sleep 30").force_kill_after(ms(100))).unwrap();
    let pid = loop {
        if let Event::Line { line, .. } = mux.next_event().unwrap().unwrap() {
            break String::from_utf8(line).unwrap().parse::<u32>().unwrap();
        }
    };
    mux.stop(id).unwrap();
    let stopped = Instant::now();
    // The loop does not run until the child has died and its grace period is over.
    while proc_stat(pid).is_some_and(|p| !p.is_dead()) || stopped.elapsed() < ms(300) {
        assert!(stopped.elapsed() < Duration::from_secs(60), "SIGTERM did not end {pid}");
        std::thread::sleep(ms(10));
    }
    let result = loop {
        if let Event::Exit { result, .. } = mux.next_event().unwrap().unwrap() {
            break result;
        }
    };
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Canceled, "{err}");
    assert!(!err.needed_kill(), "{err}");
    assert_eq!(err.exit_status().and_then(|s| s.signal()), Some(Signal::TERM), "{err}");
}

#[test]
fn a_three_stage_pipeline_moves_100_mib_through_cat_exactly() {
    let data = noise(100 << 20);
    let out = (cmd!("cat") | cmd!("cat") | cmd!("cat")).input(data.clone()).output().unwrap();
    assert_eq!(out.statuses.len(), 3);
    assert!(out.statuses.iter().all(|s| s.success()), "{:?}", out.statuses);
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "bytes differ");
}

#[test]
fn a_failing_middle_stage_is_reported_as_such() {
    for path in PATHS {
        let mut middle = fixture(path, ["exit", "3"]);
        middle.stdin(Stdio::inherit()); // not allowed: the pipeline owns it
        let err = (cmd!("echo", "x") | middle).output().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("stage 2 of 2"), "{err}");

        let mut p = cmd!("printf", "data\n") | fixture(path, ["exit", "3"]) | cmd!("cat");
        let out = p.output().unwrap();
        assert_eq!(out.statuses[1].code(), Some(3), "{path:?}");
        assert!(out.statuses[2].success());
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.failed_stage(), Some(1));
        let err = p.run().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ExitCode);
        assert!(err.to_string().contains("stage 2 of 3"), "{err}");
        let out = p.pipefail(false).output().unwrap();
        assert!(out.status.success());
        // The pipeline runs again: it keeps no fd of the last run.
        assert_eq!(p.output().unwrap().statuses.len(), 3);
    }
}

#[test]
fn a_pipeline_takes_a_timeout_limit_and_stderr_as_a_whole() {
    let mut p = cmd!("yes") | cmd!("cat") | exec("echo from-the-end >&2; exec cat");
    let err = p.max_buffer(1 << 16).output().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutputLimit);
    assert_eq!(err.stdout().len(), 1 << 16);
    assert_eq!(err.stderr(), b"from-the-end\n");

    let mut p = cmd!("sleep", "30") | cmd!("cat");
    let t = Instant::now();
    let err = p.timeout(ms(200)).output().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(20));
}

#[test]
fn killing_a_pipeline_halfway_or_failing_to_spawn_a_stage_leaves_nothing() {
    if !isolated("many::killing_a_pipeline_halfway_or_failing_to_spawn_a_stage_leaves_nothing") {
        return;
    }
    Command_warm_up();
    let before = open_fds();
    let mut last = cmd!("cat");
    last.stdout(Stdio::null());
    let mut running = (cmd!("yes") | cmd!("cat") | last).spawn().unwrap();
    assert_eq!(children().len(), 3);
    std::thread::sleep(ms(50));
    running.kill().unwrap();
    let statuses = running.wait().unwrap();
    // A later stage may see end of file and exit before its own SIGKILL lands.
    assert_eq!(statuses[0].signal(), Some(Signal::KILL), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s.signal() == Some(Signal::KILL) || s.success()),
        "{statuses:?}"
    );
    drop(running);
    until_no_children(Duration::from_secs(10));

    let terms =
        (cmd!("sleep", "30") | cmd!("sleep", "30")).spawn().unwrap().terminate(ms(500)).unwrap();
    assert!(terms.iter().all(|t| t.status.signal() == Some(Signal::TERM) && !t.needed_kill));

    for bad in [1, 2] {
        let stages = [cmd!("sleep", "30"), cmd!("sleep", "30"), cmd!("sleep", "30")];
        let mut stages: Vec<_> = stages.into_iter().collect();
        stages[bad] = cmd!("/no/such/program");
        let mut it = stages.into_iter();
        let mut p = offspring::Pipeline::new(it.next().unwrap());
        for s in it {
            p = p.pipe(s);
        }
        let err = p.output().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains(&format!("stage {} of 3", bad + 1)), "{err}");
        assert!(children().is_empty(), "{:?}", children());
    }
    assert_no_new_fds(&before, Duration::from_secs(10));
}

#[test]
fn the_limiter_never_has_more_than_n_children_alive() {
    if !isolated("many::the_limiter_never_has_more_than_n_children_alive") {
        return;
    }
    Command_warm_up();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(children().len(), Ordering::SeqCst);
                std::thread::sleep(ms(1));
            }
        })
    };
    let cmds = (0..40).map(|i| {
        let mut c = exec(format!("sleep 0.0{}; echo {i}", i % 7));
        c.timeout(Duration::from_secs(30));
        c
    });
    let mut seen = Vec::new();
    for (i, result) in Jobs::new(4).run(cmds) {
        assert_eq!(result.unwrap().stdout, format!("{i}\n").as_bytes());
        seen.push(i);
        assert!(children().len() <= 4);
    }
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    seen.sort();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 4, "{peak} children alive at once");
    assert!(peak >= 2, "never ran in parallel ({peak})");
}

#[test]
fn the_limiter_applies_each_timeout_and_stops_early_on_failure_or_cancel() {
    // Each command's own timeout.
    let mut hung = cmd!("sleep", "30");
    hung.timeout(ms(200));
    let results: HashMap<_, _> = Jobs::new(2).run([hung, cmd!("true"), cmd!("true")]).collect();
    assert_eq!(results[&0].as_ref().unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(results[&1].as_ref().unwrap().status.success());
    assert_eq!(results.len(), 3);

    // First failure: what runs is stopped, nothing more starts.
    let t = Instant::now();
    let cmds = [exec("sleep 0.1; exit 1"), cmd!("sleep", "30"), cmd!("sleep", "30")]
        .into_iter()
        .chain((0..10).map(|_| cmd!("echo", "never")));
    let results: Vec<_> = Jobs::new(3).fail_fast(true).run(cmds).collect();
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results.iter().all(|(i, _)| *i < 3));
    let canceled =
        results.iter().filter(|(_, r)| matches!(r, Err(e) if e.kind() == ErrorKind::Canceled));
    assert_eq!(canceled.count(), 2);
    assert!(t.elapsed() < Duration::from_secs(20));

    // A spawn error is a failure too.
    let results: Vec<_> =
        Jobs::new(1).fail_fast(true).run([cmd!("/no/such/program"), cmd!("true")]).collect();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].1.as_ref().unwrap_err().kind(), ErrorKind::NotFound);

    // A cancel from another thread.
    let cancel = CancelHandle::new();
    let c2 = cancel.clone();
    let canceler = std::thread::spawn(move || {
        std::thread::sleep(ms(200));
        c2.cancel();
    });
    let results: Vec<_> =
        Jobs::new(2).cancel_with(&cancel).run((0..50).map(|_| cmd!("sleep", "30"))).collect();
    canceler.join().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|(_, r)| r.as_ref().unwrap_err().kind() == ErrorKind::Canceled));
}

#[test]
fn spawn_paths_are_all_served() {
    let mut mux = Mux::new();
    for path in PATHS {
        mux.spawn(&mut fixture(path, ["echo", path.name()])).unwrap();
    }
    let mut lines: Vec<_> = (&mut mux)
        .filter_map(|e| match e.unwrap() {
            Event::Line { line, .. } => Some(String::from_utf8(line).unwrap()),
            _ => None,
        })
        .collect();
    lines.sort();
    let mut want: Vec<_> = PATHS.iter().map(|p| p.name().to_owned()).collect();
    want.sort();
    assert_eq!(lines, want);
    let _ = SpawnPath::PosixSpawn;
}

#[test]
fn the_many_children_suite_passes_on_the_sigchld_fallback() {
    crate::support::rerun_on_sigchld_fallback(&["many::"], &[], 12);
}

#[test]
fn the_channel_disconnects_when_the_last_sender_goes_even_with_no_child() {
    let (tx, rx) = Mux::new().into_channel().unwrap();
    let tx2 = tx.clone();
    drop(tx);
    assert!(rx.recv_timeout(ms(200)).is_err_and(|e| e.is_timeout()));
    drop(tx2);
    assert!(rx.recv_timeout(Duration::from_secs(20)).is_err_and(|e| e.is_disconnected()));
}

#[test]
fn the_new_types_are_send_and_sync_where_they_should_be() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Mux>();
    send::<offspring::MuxSender>();
    sync::<offspring::MuxSender>();
    send::<Event>();
    send::<offspring::Pipeline>();
    send::<offspring::PipelineChild>();
    sync::<offspring::PipelineChild>();
    send::<offspring::JobResults<std::vec::IntoIter<offspring::Command>>>();
}

#[test]
fn a_pipelines_ends_are_the_callers_files_pipes_or_captures() {
    let dir = std::env::temp_dir().join(format!("offspring-many-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, dst) = (dir.join("in"), dir.join("out"));
    std::fs::write(&src, "b\na\n").unwrap();
    let mut first = cmd!("cat");
    first.stdin(std::fs::File::open(&src).unwrap());
    let mut last = cmd!("tr", "a-z", "A-Z");
    last.stdout(std::fs::File::create(&dst).unwrap());
    let out = (first | cmd!("sort") | last).output().unwrap();
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&dst).unwrap(), "A\nB\n");

    // Spawned, with both ends piped to the caller.
    let mut first = cmd!("cat");
    first.stdin(Stdio::piped());
    let mut last = cmd!("sort");
    last.stdout(Stdio::piped());
    let mut p = (first | last).spawn().unwrap();
    use std::io::{Read, Write};
    p.stdin.take().unwrap().write_all(b"z\ny\n").unwrap();
    let mut s = String::new();
    p.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    assert_eq!(s, "y\nz\n");
    assert!(p.wait().unwrap().iter().all(|s| s.success()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_childs_own_cancel_handle_stops_that_child_and_the_muxs_stops_all() {
    let mut mux = Mux::new();
    let cancel = CancelHandle::new();
    let mut own = exec("echo up; exec sleep 30");
    own.cancel_with(&cancel);
    let canceled = mux.spawn(&mut own).unwrap();
    let other = mux.spawn(&mut exec("sleep 0.3; echo done")).unwrap();
    match mux.next_event().unwrap().unwrap() {
        Event::Line { id, .. } => assert_eq!(id, canceled),
        e => panic!("{e:?}"),
    }
    cancel.cancel();
    let mut exits = HashMap::new();
    for ev in &mut mux {
        if let Event::Exit { id, result } = ev.unwrap() {
            exits.insert(id, result);
        }
    }
    assert_eq!(exits.remove(&canceled).unwrap().unwrap_err().kind(), ErrorKind::Canceled);
    assert!(exits.remove(&other).unwrap().unwrap().status.success());

    let all = CancelHandle::new();
    let mut mux = Mux::new();
    mux.cancel_with(&all);
    for _ in 0..3 {
        mux.spawn(&mut cmd!("sleep", "30")).unwrap();
    }
    let t = Instant::now();
    all.cancel();
    let kinds: Vec<_> = (&mut mux)
        .filter_map(|e| match e.unwrap() {
            Event::Exit { result, .. } => Some(result.unwrap_err().kind()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [ErrorKind::Canceled; 3]);
    assert!(t.elapsed() < Duration::from_secs(20));
}
