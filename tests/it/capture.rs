//! The capture loop: no deadlock at any size, exact limits, timeouts with grandchildren and
//! stubborn children, early exits, repeated runs, `communicate`, `OutputReader`.

use std::io::BufRead;
use std::time::{Duration, Instant};

use offspring::{Command, ErrorKind, Overflow, ProcessGroup, Signal, Stdio, Stream};

use crate::support::{fixture, ms, running, until_none_running, SpawnPath, PATHS};

/// The fixture's pattern: byte `i` is `i % 251`.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// FNV-1a 64, as the fixture's `pump` reports it.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// `sh -c script`, with the fixture's path as `$0`.
pub fn fixture_sh(path: SpawnPath, script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script, env!("CARGO_BIN_EXE_offspring-fixture")]);
    cmd.force_fork_path(path == SpawnPath::Fork);
    cmd
}

/// Kills a process that is not our child (a grandchild), best effort.
fn kill_pid(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

fn first_line_pid(out: &[u8]) -> i32 {
    let line = out.split(|&b| b == b'\n').next().unwrap();
    std::str::from_utf8(line).unwrap().trim().parse().unwrap()
}

#[test]
fn sixty_four_mib_on_every_pipe_every_byte_exact() {
    const N: usize = 64 << 20;
    let input: Vec<u8> = (0..N).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let expected = pattern(N);
    for path in PATHS {
        // pump: all of stdout, then all of stderr, then all of stdin. The parent must drain
        // both outputs while the input waits, and feed the input at the end.
        let out = fixture(path, ["pump", &N.to_string()]).input(input.clone()).output().unwrap();
        assert!(out.status.success(), "{path:?}: {}", out.status);
        assert_eq!(out.stdout.len(), N);
        assert!(out.stdout == expected, "{path:?}: stdout differs");
        let (pat, tail) = out.stderr.split_at(N);
        assert!(pat == &expected[..], "{path:?}: stderr differs");
        assert_eq!(tail, format!("stdin {N} {:016x}\n", fnv1a(&input)).as_bytes(), "{path:?}");

        // All three at the same time: a cat echoes stdin to stdout while a sibling floods
        // stderr.
        let out = fixture_sh(path, &format!(r#""$0" write-err {N} & "$0" cat; wait"#))
            .input(input.clone())
            .run()
            .unwrap();
        assert!(out.stdout == input, "{path:?}: cat output differs");
        assert!(out.stderr == expected, "{path:?}: stderr differs");
    }
}

#[test]
fn max_buffer_at_exactly_n_passes_and_n_plus_one_kills() {
    const N: usize = 100_000;
    for path in PATHS {
        for (stream, write) in [(Stream::Stdout, "write"), (Stream::Stderr, "write-err")] {
            let out = fixture(path, [write, &N.to_string()]).max_buffer(N).run().unwrap();
            assert_eq!(out.bytes_seen(stream), N as u64);
            let got = if stream == Stream::Stdout { &out.stdout } else { &out.stderr };
            assert!(*got == pattern(N));

            // One byte more, and the child stays alive afterwards: it must be stopped.
            let script = format!(r#""$0" {write} {}; exec "$0" sleep-forever >/dev/null"#, N + 1);
            let t0 = Instant::now();
            let err = fixture_sh(path, &script).max_buffer(N).run().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::OutputLimit, "{err}");
            assert_eq!(err.over_limit(), Some((stream, N)));
            let kept = if stream == Stream::Stdout { err.stdout() } else { err.stderr() };
            assert!(kept == &pattern(N)[..], "the first N bytes are kept");
            // Killed (by the kill signal) and reaped: the status was collected.
            assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::TERM), "{err}");
            assert!(!err.needed_kill());
            assert!(t0.elapsed() < Duration::from_secs(4), "took {:?}", t0.elapsed());
            let msg = err.to_string();
            assert!(msg.contains(&format!("{stream} went over its limit of {N} bytes")), "{msg}");
        }
    }
}

#[test]
fn max_buffer_truncate_keeps_the_head_and_lets_the_child_finish() {
    for path in PATHS {
        let out = fixture(path, ["flood", "300000"])
            .max_buffer(1000)
            .on_overflow(Overflow::Truncate)
            .run()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, pattern(1000));
        assert_eq!(out.stderr, pattern(1000));
        assert_eq!(out.bytes_seen(Stream::Stdout), 300_000);
        assert_eq!(out.bytes_seen(Stream::Stderr), 300_000);
        assert!(out.is_truncated());
        // At exactly the limit nothing is truncated.
        let out = fixture(path, ["write", "1000"])
            .max_buffer(1000)
            .on_overflow(Overflow::Truncate)
            .run()
            .unwrap();
        assert!(!out.is_truncated());
    }
}

#[test]
fn timeout_with_a_grandchild_holding_stdout_returns_within_timeout_plus_drain() {
    // The timeout leaves a loaded machine time to start the shell, the fixture and its
    // grandchild (two execs of a debug build) and print `ready` before it runs out.
    let (timeout, drain) = (ms(1500), ms(300));
    for path in PATHS {
        let t0 = Instant::now();
        // In this process's group, an orphaned grandchild is out of the stop's reach (by
        // default a run with a timeout gets a group of its own, which reaches it).
        let err = fixture_sh(path, r#""$0" grandchild 30000; exec "$0" sleep-forever"#)
            .process_group(ProcessGroup::Inherit)
            .timeout(timeout)
            .drain_timeout(drain)
            .output()
            .unwrap_err();
        let took = t0.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert_eq!(err.timeout(), Some(timeout));
        assert!(took >= timeout, "{took:?}");
        assert!(took < timeout + drain + Duration::from_secs(2), "{path:?}: took {took:?}");
        assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::TERM));
        let grandchild = first_line_pid(err.stdout());
        assert!(err.stdout().ends_with(b"ready\n"), "partial output kept: {err:?}");
        // Not in a group of its own: the grandchild survives, only the drain bound saved us,
        // and the error says so.
        assert!(running(grandchild as u32));
        assert!(err.drain_expired(), "{err}");
        assert!(err.to_string().contains("a process it started may still be running"), "{err}");
        kill_pid(grandchild);
    }
}

#[test]
fn timeout_kills_the_whole_process_group() {
    for path in PATHS {
        let t0 = Instant::now();
        let err = fixture_sh(path, r#""$0" grandchild 30000; exec "$0" sleep-forever"#)
            .process_group(ProcessGroup::New)
            .timeout(ms(300))
            .drain_timeout(Duration::from_secs(20))
            .output()
            .unwrap_err();
        // The group kill closed the grandchild's copy of the pipe too: no drain wait.
        assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        let grandchild = first_line_pid(err.stdout());
        until_none_running(Duration::from_secs(10), "the grandchild after the group kill", |p| {
            p.pid == grandchild as u32
        });
    }
}

#[test]
fn a_child_that_leaves_a_grandchild_behind_returns_after_the_drain_bound() {
    for path in PATHS {
        let t0 = Instant::now();
        let out = fixture(path, ["grandchild", "30000"]).drain_timeout(ms(200)).run().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
        assert!(out.status.success());
        assert!(out.drain_expired());
        let grandchild = first_line_pid(&out.stdout);
        kill_pid(grandchild);
    }
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace_period_and_the_error_says_so() {
    for path in PATHS {
        let t0 = Instant::now();
        let err = fixture(path, ["ignore", "TERM"])
            .timeout(ms(200))
            .force_kill_after(ms(300))
            .output()
            .unwrap_err();
        let took = t0.elapsed();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(err.needed_kill());
        assert_eq!(err.signal_sent(), Some(Signal::TERM));
        assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::KILL));
        assert_eq!(err.stdout(), b"ready\n");
        assert!(took >= ms(500), "killed before the grace period ended: {took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        let msg = err.to_string();
        assert!(msg.contains("SIGTERM") && msg.contains("SIGKILL"), "{msg}");
        assert!(msg.contains("300ms grace period"), "{msg}");
        assert!(msg.contains("offspring-fixture ignore TERM"), "{msg}");
    }
}

#[test]
fn a_child_that_exits_while_the_parent_still_writes_stdin_neither_kills_nor_hangs_it() {
    let input = vec![b'x'; 64 << 20];
    for path in PATHS {
        let t0 = Instant::now();
        let out = fixture(path, ["exit-early"]).input(input.clone()).run().unwrap();
        assert!(out.status.success());
        // One that reads a little first, then closes stdin and keeps running.
        let out = fixture_sh(path, r#"head -c 10 >/dev/null; echo "still here""#)
            .input(input.clone())
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"still here\n");
        // And one that never reads stdin and exits with an error.
        let err = fixture(path, ["exit", "3"]).input(input.clone()).run().unwrap_err();
        assert_eq!(err.exit_status().unwrap().code(), Some(3));
        assert!(t0.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn one_thousand_runs_of_one_mib_are_captured_exactly() {
    let expected = pattern(1 << 20);
    for i in 0..1000 {
        let path = PATHS[i % 2];
        let out = fixture(path, ["write", "1048576"]).output().unwrap();
        assert!(out.status.success(), "run {i}: {}", out.status);
        assert!(out.stdout == expected, "run {i} ({path:?}): {} bytes, differs", out.stdout.len());
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn communicate_resumes_after_a_deadline_without_losing_bytes() {
    for path in PATHS {
        let mut child = fixture_sh(path, r#""$0" write 200000; read line; "$0" write-err 5000"#)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Hold the input back: the child waits for a line on its stdin, so the first
        // deadline must pass with stdout already collected.
        let mut stdin = child.stdin.take().unwrap();
        let mut comm = child.communicate(b"").unwrap();
        // Deadlines of 300 ms pass one after another (none may return the output) until all of
        // stdout has come in; a loaded machine may need several.
        let give_up = Instant::now() + Duration::from_secs(60);
        while comm.captured(Stream::Stdout).len() < 200_000 && Instant::now() < give_up {
            assert!(comm.wait_deadline(Instant::now() + ms(300)).unwrap().is_none());
        }
        assert_eq!(comm.captured(Stream::Stdout).len(), 200_000);
        assert!(comm.status().is_none());
        std::io::Write::write_all(&mut stdin, b"go\n").unwrap();
        drop(stdin);
        let out = comm.wait().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, pattern(200_000));
        assert_eq!(out.stderr, pattern(5000));
    }
}

#[test]
fn communicate_feeds_input_larger_than_any_pipe() {
    let input: Vec<u8> = (0..10u32 << 20).map(|i| (i % 253) as u8).collect();
    for path in PATHS {
        let mut child = fixture(path, ["cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.communicate(&input).unwrap().wait().unwrap();
        assert!(out.stdout == input);
        // Input without a stdin pipe is refused.
        let mut child = fixture(path, ["exit", "0"]).spawn().unwrap();
        assert_eq!(child.communicate(b"x").unwrap_err().kind(), ErrorKind::InvalidInput);
        child.wait().unwrap();
    }
}

#[test]
fn output_reader_gives_lines_and_chunks_with_deadlines() {
    for path in PATHS {
        let mut child = fixture_sh(
            path,
            r#"echo one; "$0" sleep 300; printf 'tw'; "$0" sleep 1500; echo o; "$0" write 100000"#,
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        let mut out = child.stdout_reader().unwrap();
        let mut line = String::new();
        out.read_line_timeout(&mut line, Duration::from_secs(10)).unwrap();
        assert_eq!(line, "one\n");
        line.clear();
        // "tw" arrives after 300 ms, "o\n" after 1800 ms: at 700 ms the line is not complete.
        // Timed out, and nothing consumed.
        let e = out.read_line_timeout(&mut line, ms(700)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(line, "");
        out.read_line_deadline(&mut line, Instant::now() + Duration::from_secs(10)).unwrap();
        assert_eq!(line, "two\n");
        // The rest in chunks.
        let mut rest = Vec::new();
        let mut chunk = vec![0u8; 7000];
        loop {
            let n = out.read_timeout(&mut chunk, Duration::from_secs(10)).unwrap();
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(rest, pattern(100_000));
        assert!(child.wait().unwrap().success());

        // Blocking use through BufRead, with a stderr reader.
        let mut child =
            fixture_sh(path, "echo a >&2; echo b >&2").stderr(Stdio::piped()).spawn().unwrap();
        let lines: Vec<String> =
            child.stderr_reader().unwrap().lines().collect::<Result<_, _>>().unwrap();
        assert_eq!(lines, ["a", "b"]);
        child.wait().unwrap();
    }
}

#[test]
fn output_reader_takes_what_is_there_even_past_its_deadline() {
    for path in PATHS {
        let mut child = fixture(path, ["echo", "x"]).stdout(Stdio::piped()).spawn().unwrap();
        child.wait().unwrap();
        let mut out = child.stdout_reader().unwrap();
        let mut line = String::new();
        let past = Instant::now();
        assert_eq!(out.read_line_deadline(&mut line, past).unwrap(), 2);
        assert_eq!(line, "x\n");
        assert_eq!(out.read_line_deadline(&mut line, past).unwrap(), 0, "end of file");
    }
}

#[test]
fn many_threads_capture_at_once() {
    std::thread::scope(|s| {
        for t in 0..8 {
            s.spawn(move || {
                for i in 0..20 {
                    let n = 1000 * (t * 20 + i) + 1;
                    let out = fixture(PATHS[i % 2], ["flood", &n.to_string()]).run().unwrap();
                    assert!(out.stdout == pattern(n) && out.stderr == pattern(n));
                }
            });
        }
    });
}

/// The SIGCHLD fallback (no pidfd to poll for the child's exit) runs these tests and the exec
/// tests again.
#[test]
fn capture_suite_passes_on_the_sigchld_fallback() {
    crate::support::rerun_on_sigchld_fallback(
        &["capture::", "exec::", "--skip", "one_thousand_runs"],
        &[],
        15,
    );
}
