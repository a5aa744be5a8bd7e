//! The buffered runners and their options: `exec`/`exec_file`, `run`/`read`, checked errors,
//! input, merged stderr, cancellation.

use std::io::Write;
use std::time::{Duration, Instant};

use offspring::{exec, exec_file, CancelHandle, Command, ErrorKind, Signal, Stdio, Stream};

use crate::capture::fixture_sh;
use crate::support::{fixture, ms, PATHS};

#[test]
fn exec_is_shell_code_and_exec_file_is_not() {
    assert_eq!(exec("echo $((6 * 7)) | tr 4 X").read().unwrap(), "X2");
    let tricky = "a b; echo $HOME 'q' \"d\" \\ *";
    assert_eq!(exec_file("printf", ["%s", tricky]).read().unwrap(), tricky);
    // Options apply to both: they are ordinary commands.
    assert_eq!(exec("echo $X").env("X", "from env").read().unwrap(), "from env");
    assert_eq!(exec("pwd").current_dir("/").read().unwrap(), "/");
}

#[test]
fn read_family() {
    for path in PATHS {
        let mut cmd = fixture(path, ["echo", "a", "b"]);
        assert_eq!(cmd.read().unwrap(), "a b");
        // The command can run again.
        assert_eq!(cmd.read_bytes().unwrap(), b"a b\n");
        assert_eq!(fixture_sh(path, "printf 'x\\r\\ny\\n\\n'").read().unwrap(), "x\r\ny");
        assert_eq!(fixture_sh(path, "printf 'x\\r\\ny\\n'").read_lines().unwrap(), ["x", "y"]);
        let err = fixture_sh(path, r"printf '\377'").read().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        assert_eq!(err.stdout(), b"\xff");
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
    }
}

#[test]
fn checked_runs_report_code_signal_command_and_stderr_tail() {
    for path in PATHS {
        let err = fixture_sh(path, "echo some output; echo 'fatal: bad thing' >&2; exit 7")
            .run()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ExitCode);
        assert_eq!(err.stage(), offspring::Stage::Run);
        assert_eq!(err.exit_status().unwrap().code(), Some(7));
        assert_eq!(err.stdout(), b"some output\n");
        let msg = err.to_string();
        assert!(msg.starts_with("/bin/sh -c "), "{msg}");
        assert!(msg.contains("exit code 7"), "{msg}");
        assert!(msg.contains("--- stderr ---\nfatal: bad thing"), "{msg}");

        let err = fixture(path, ["kill-self", "USR1"]).read().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Signaled);
        assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::USR1));
        assert!(err.to_string().contains("SIGUSR1"), "{err}");

        // output() and unchecked runs treat both as data.
        let out = fixture(path, ["exit", "7"]).output().unwrap();
        assert_eq!(out.status.code(), Some(7));
        let out = fixture(path, ["kill-self", "USR1"]).unchecked(true).run().unwrap();
        assert_eq!(out.status.signal(), Some(Signal::USR1));
        assert_eq!(fixture(path, ["exit", "1"]).unchecked(true).read().unwrap(), "");
    }
}

#[test]
fn stderr_tail_is_bounded_and_merged_output_is_quoted() {
    let err =
        exec("head -c 100000 /dev/zero | tr '\\0' e >&2; echo LAST >&2; exit 1").run().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("(last 4096 of 100005 bytes)"), "{}", &msg[..200]);
    assert!(msg.ends_with("LAST"), "{}", &msg[msg.len() - 100..]);
    assert_eq!(err.stderr().len(), 100_005);

    let err = exec("echo out; echo err >&2; exit 2").stderr_to_stdout(true).run().unwrap_err();
    assert_eq!(err.stdout(), b"out\nerr\n");
    assert!(err.stderr().is_empty());
    assert!(err.to_string().contains("--- stdout+stderr ---\nout\nerr"), "{err}");
}

#[test]
fn input_bytes_and_file() {
    for path in PATHS {
        let out = fixture(path, ["cat"]).input("hello\n").read().unwrap();
        assert_eq!(out, "hello");
        // Empty input is EOF at once.
        assert_eq!(fixture(path, ["count-stdin"]).input("").read().unwrap(), "0");
        // Without input, stdin is /dev/null.
        assert_eq!(fixture(path, ["count-stdin"]).read().unwrap(), "0");
    }
    let mut file = tempfile("input_bytes_and_file");
    file.1.write_all(&vec![b'z'; 300_000]).unwrap();
    let n = fixture(PATHS[0], ["count-stdin"]).input_file(&file.0).read().unwrap();
    assert_eq!(n, "300000");
    std::fs::remove_file(&file.0).unwrap();

    let err = fixture(PATHS[0], ["cat"]).input_file("/no/such/input").run().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.stage(), offspring::Stage::Setup);
    assert_eq!(err.path(), Some(std::path::Path::new("/no/such/input")));

    let err = fixture(PATHS[0], ["cat"]).input("x").stdin(Stdio::null()).run().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

fn tempfile(name: &str) -> (std::path::PathBuf, std::fs::File) {
    let p = std::env::temp_dir().join(format!("offspring-{}-{name}", std::process::id()));
    let f = std::fs::File::create(&p).unwrap();
    (p, f)
}

#[test]
fn stderr_to_stdout_interleaves_in_order() {
    for path in PATHS {
        let out = fixture_sh(path, "echo 1; echo 2 >&2; echo 3; echo 4 >&2")
            .stderr_to_stdout(true)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"1\n2\n3\n4\n");
        assert!(out.stderr.is_empty());
        // Large and exact.
        let out = fixture(path, ["flood", "1000000"]).stderr_to_stdout(true).run().unwrap();
        assert_eq!(out.stdout.len(), 2_000_000);
        // A limit counts the merged stream.
        let err = fixture(path, ["flood", "1000"])
            .stderr_to_stdout(true)
            .max_buffer(1500)
            .run()
            .unwrap_err();
        assert_eq!(err.over_limit(), Some((Stream::Stdout, 1500)));
    }
    let err = exec("true").stderr_to_stdout(true).stderr(Stdio::null()).run().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = exec("true").stderr_to_stdout(true).stdout(Stdio::null()).run().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn stdout_or_stderr_not_captured() {
    let out = exec("echo out; echo err >&2").stdout(Stdio::null()).output().unwrap();
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr, b"err\n");
    let out = exec("echo out; echo err >&2").stderr(Stdio::null()).output().unwrap();
    assert_eq!(out.stdout, b"out\n");
    let out = exec("echo out >&2").stdout(Stdio::null()).stderr(Stdio::null()).output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
    // Nothing captured, a timeout still applies.
    let err = exec("sleep 10")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .timeout(ms(100))
        .output()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[test]
fn a_child_that_closes_its_pipes_but_keeps_running_still_times_out() {
    let t0 = Instant::now();
    let err = exec("exec >&- 2>&-; sleep 10").timeout(ms(200)).output().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn kill_signal_is_used_and_sigkill_needs_no_grace() {
    for path in PATHS {
        let err = fixture(path, ["sleep-forever"])
            .timeout(ms(100))
            .kill_signal(Signal::HUP)
            .output()
            .unwrap_err();
        assert_eq!(err.signal_sent(), Some(Signal::HUP));
        assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::HUP));

        let t0 = Instant::now();
        let err = fixture(path, ["ignore", "TERM"])
            .timeout(ms(100))
            .kill_signal(Signal::KILL)
            .force_kill_after(Duration::from_secs(60))
            .output()
            .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::KILL));
        assert!(!err.needed_kill());
        assert!(err.to_string().contains("killed it with SIGKILL"), "{err}");
    }
}

#[test]
fn cancel_from_another_thread_stops_the_run_and_keeps_the_output() {
    for path in PATHS {
        let marker = std::env::temp_dir().join(format!(
            "offspring-{}-cancel-{}",
            std::process::id(),
            path.name()
        ));
        let _ = std::fs::remove_file(&marker);
        let cancel = CancelHandle::new();
        let mut cmd =
            fixture_sh(path, r#"echo partial; : > "$1"; exec "$0" sleep-forever >/dev/null"#);
        cmd.arg(&marker).cancel_with(&cancel);
        let t0 = Instant::now();
        let err = std::thread::scope(|s| {
            let run = s.spawn(|| cmd.output());
            // Cancel from this thread once the child is running (it creates the marker).
            while !marker.exists() {
                assert!(t0.elapsed() < Duration::from_secs(20), "the child never started");
                std::thread::yield_now();
            }
            cancel.cancel();
            run.join().unwrap().unwrap_err()
        });
        std::fs::remove_file(&marker).unwrap();
        assert_eq!(err.kind(), ErrorKind::Canceled, "{err}");
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::TERM));
        assert_eq!(err.stdout(), b"partial\n");
        let io: std::io::Error = err.into();
        // Not Interrupted: read and retry loops would take that as "try again".
        assert_eq!(io.kind(), std::io::ErrorKind::Other);
        assert_eq!(ErrorKind::from_io(&io), ErrorKind::Canceled);

        // A cancelled handle fails the next run before anything is spawned.
        let err = fixture(path, ["exit", "0"]).cancel_with(&cancel).output().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Canceled);
        assert!(err.exit_status().is_none());
    }
}

#[test]
fn cancel_one_handle_many_runs() {
    let cancel = CancelHandle::new();
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let cancel = &cancel;
                s.spawn(move || {
                    fixture(PATHS[i % 2], ["sleep-forever"]).cancel_with(cancel).output()
                })
            })
            .collect();
        // Let them all reach their poll() (or not: a cancel before the loop starts is seen
        // too), then cancel all at once.
        let deadline = Instant::now() + ms(200);
        while Instant::now() < deadline {
            std::thread::yield_now();
        }
        cancel.cancel();
        for r in runs {
            assert_eq!(r.join().unwrap().unwrap_err().kind(), ErrorKind::Canceled);
        }
    });
}

#[test]
fn output_keeps_working_like_std() {
    // The std-shaped surface: Output's fields, a reusable Command.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo out; echo err >&2"]);
    for _ in 0..3 {
        let out = cmd.output().unwrap();
        assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b"out\n"[..], &b"err\n"[..]));
    }
    let std_out = std::process::Command::new("sh").args(["-c", "echo out"]).output().unwrap();
    let ours = exec("echo out").output().unwrap();
    assert_eq!(std_out.stdout, ours.stdout);
    assert_eq!(std_out.status.code(), ours.status.code());
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert<T: Send + Sync>() {}
    assert::<offspring::Output>();
    assert::<CancelHandle>();
    assert::<offspring::OutputReader>();
    assert::<offspring::Communication<'static>>();
}
