//! Fault injection for the capture loop (issue 8, defects 6, 7 and 16): zero and past
//! deadlines, sizes and deadlines at their maximum, and how an output-limit stop ends the
//! child. Each test failed before its fix; the next capture defect of this kind lands here.

use std::time::{Duration, Instant};

use offspring::{exec, Command, ErrorKind, Mux, Overflow, Signal, Stdio, Stream};

/// Defect 6: `Communication::wait_timeout(ZERO)` and `wait_deadline(past)` checked the deadline
/// before any poll or read, so a child that finished long ago was never collected that way.
#[test]
fn zero_and_past_deadlines_still_make_progress() {
    for past in [false, true] {
        let mut child = Command::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut comm = child.communicate(b"").unwrap();
        assert!(comm.child().wait().unwrap().success());
        // The child is gone; its pipes hold its output and then end of file. One call with a
        // deadline already passed must collect all of it.
        let out = if past {
            comm.wait_deadline(Instant::now() - Duration::from_millis(10)).unwrap()
        } else {
            comm.wait_timeout(Duration::ZERO).unwrap()
        };
        let out = out.unwrap_or_else(|| panic!("past={past}: nothing collected"));
        assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
        assert!(out.status.success());
    }
}

/// Defect 6, the other side: a zero deadline on a child that still runs returns at once, and
/// keeps what it read.
#[test]
fn zero_deadline_on_a_running_child_returns_at_once_and_keeps_the_bytes() {
    let mut child = Command::new("sh")
        .args(["-c", "echo early; exec sleep 30"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut comm = child.communicate(b"").unwrap();
    let started = Instant::now();
    while comm.captured(Stream::Stdout) != b"early\n" {
        assert!(comm.wait_timeout(Duration::ZERO).unwrap().is_none());
        assert!(started.elapsed() < Duration::from_secs(20), "the line never arrived");
        std::thread::yield_now();
    }
    comm.child().kill().unwrap();
    let out = comm.wait().unwrap();
    assert_eq!(out.stdout, b"early\n");
    assert_eq!(out.status.signal(), Some(Signal::KILL));
}

/// Defect 7: `max_buffer(usize::MAX)` overflowed (`l + 1 - len`): a panic in debug builds, all
/// output dropped in release. Every limit, timeout, grace and drain at its maximum must work.
#[test]
fn maximum_sizes_and_durations_overflow_nothing() {
    for overflow in [Overflow::Kill, Overflow::Truncate] {
        let out = exec("printf hello; printf oops >&2")
            .max_buffer(usize::MAX)
            .on_overflow(overflow)
            .timeout(Duration::MAX)
            .force_kill_after(Duration::MAX)
            .drain_timeout(Duration::MAX)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"hello", "{overflow:?}");
        assert_eq!(out.stderr, b"oops", "{overflow:?}");
        assert!(out.status.success());
        assert!(!out.is_truncated());
    }
    // A limit one below the maximum, and the per-stream form.
    let out = exec("head -c 100000 /dev/zero")
        .max_buffer_for(Stream::Stdout, usize::MAX - 1)
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), 100_000);

    // The same through communicate and a mux.
    let mut child =
        Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let out = child.communicate(b"abc").unwrap().wait_timeout(Duration::MAX).unwrap().unwrap();
    assert_eq!(out.stdout, b"abc");
    let mut mux = Mux::new();
    mux.spawn(exec("echo in-a-mux").max_buffer(usize::MAX).timeout(Duration::MAX)).unwrap();
    let mut lines = Vec::new();
    while let Some(ev) = mux.next_event_timeout(Duration::MAX).unwrap() {
        if let offspring::Event::Line { line, .. } = ev {
            lines.push(line);
        }
    }
    assert_eq!(lines, [b"in-a-mux".to_vec()]);
}

/// Defect 16: an output-limit stop closed the read end on the first byte over the limit and
/// only then sent the kill signal, so `yes` often died of `SIGPIPE` (48 of 300 runs). The
/// signal must be what ends the child, and the error must say so.
#[test]
fn an_output_limit_stop_ends_the_child_with_the_kill_signal_not_sigpipe() {
    for (signal, runs) in [(Signal::TERM, 150), (Signal::KILL, 150)] {
        for run in 0..runs {
            let err =
                Command::new("yes").max_buffer(1 << 20).kill_signal(signal).output().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::OutputLimit);
            let status = err.exit_status().unwrap();
            assert_eq!(status.signal(), Some(signal), "run {run}: {err}");
            assert_eq!(err.signal_sent(), Some(signal));
            assert_eq!(err.stdout().len(), 1 << 20);
            assert!(err.to_string().contains(&format!("ended with {status}")), "{err}");
        }
    }
}
