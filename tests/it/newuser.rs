//! What a new user hits (issue 9): a stop reaches what the command started, options are
//! honoured or refused, std's shapes work, errors convert without loss, one result shape.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use offspring::{
    exec, Command, Error, ErrorKind, ExitStatus, OutputReader, ProcessGroup, Signal, Stdio, Stop,
};

use crate::support::{fixture, ms, proc_stats, until_none_running, PATHS};

/// A mark no other process carries: set in a command's environment, it is inherited by every
/// process the command starts, even one that left its group and its tree.
fn mark(tag: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{tag}-{}-{n}", std::process::id())
}

/// Whether process `pid`'s environment carries `OFFSPRING_MARK=mark`.
fn has_mark(pid: u32, mark: &str) -> bool {
    let needle = format!("OFFSPRING_MARK={mark}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
}

/// The running (not dead) processes that carry `mark`, from `/proc`.
fn marked(mark: &str) -> Vec<u32> {
    proc_stats()
        .into_iter()
        .filter(|p| !p.is_dead() && has_mark(p.pid, mark))
        .map(|p| p.pid)
        .collect()
}

/// Waits (generously: the machine is loaded) until no process that carries `mark` is left
/// running; kills those left before failing.
fn assert_none_left(mark: &str, what: &str) {
    let check = || until_none_running(Duration::from_secs(20), what, |p| has_mark(p.pid, mark));
    if let Err(panic) = std::panic::catch_unwind(check) {
        kill_marked(mark);
        std::panic::resume_unwind(panic);
    }
}

fn kill_marked(mark: &str) {
    for pid in marked(mark) {
        let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Point 1, the job runner: a timed-out `sh -c 'sleep 1000 & sleep 1000'` leaves nothing
/// running, whichever group the child is in (the default, a new one, this process's own).
#[test]
fn timed_out_job_leaves_no_process_running() {
    for group in [None, Some(ProcessGroup::New), Some(ProcessGroup::Inherit)] {
        for path in PATHS {
            let m = mark("job");
            let mut cmd = exec("sleep 1000 & sleep 1000");
            cmd.env("OFFSPRING_MARK", &m).force_spawn_path(path.name()).timeout(ms(300));
            if let Some(g) = group {
                cmd.process_group(g);
            }
            let t0 = Instant::now();
            let err = cmd.run().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
            assert_eq!(err.stopped_by(), Some(Stop::Timeout));
            assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
            assert!(!err.drain_expired(), "{group:?} {path:?}: {err}");
            assert_none_left(&m, &format!("{group:?} {path:?}"));
        }
    }
}

/// A grandchild whose parent exited before the stop (a double fork) is no longer in the
/// child's tree, but still in its group: the default group reaches it.
#[test]
fn default_group_reaches_an_orphaned_grandchild() {
    let m = mark("orphan");
    let err = exec("(sleep 1000 &); sleep 1000")
        .env("OFFSPRING_MARK", &m)
        .process_group(ProcessGroup::New)
        .timeout(ms(300))
        .output()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_none_left(&m, "double fork");
}

/// What escapes (it left the group and the tree, and nothing contains it) is named in the
/// error, with `drain_expired()` on the error as on `Output`.
#[test]
fn an_escaped_process_holding_the_pipes_is_reported() {
    if offspring::which("setsid").is_err() {
        eprintln!("skipped: needs setsid(1) (util-linux, which .ci/run installs)");
        return;
    }
    let m = mark("escape");
    let err = exec("(setsid sleep 1000 &); sleep 1000")
        .env("OFFSPRING_MARK", &m)
        .timeout(ms(300))
        .drain_timeout(ms(300))
        .output()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(err.drain_expired(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "the pipes were still held open after the child exited: \
             a process it started may still be running"
        ),
        "{msg}"
    );
    let out = err.into_run_output().unwrap();
    assert!(out.drain_expired());
    assert_eq!(marked(&m).len(), 1, "the setsid sleep escaped, as documented");
    kill_marked(&m);

    // Without a stop, the same holds for a run that returns Ok.
    let m = mark("escape-ok");
    let out = exec("(setsid sleep 1000 &); echo done")
        .env("OFFSPRING_MARK", &m)
        .drain_timeout(ms(200))
        .output()
        .unwrap();
    assert!(out.drain_expired());
    kill_marked(&m);
}

/// An output limit and a cancel stop the whole command too.
#[test]
fn output_limit_and_cancel_stop_the_tree() {
    let m = mark("limit");
    let err = exec("sleep 1000 & yes")
        .env("OFFSPRING_MARK", &m)
        .max_buffer(1 << 16)
        .output()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutputLimit);
    assert_none_left(&m, "max_buffer");

    let m = mark("cancel");
    let cancel = offspring::CancelHandle::new();
    let c2 = cancel.clone();
    let t = std::thread::spawn(move || {
        let _ = crossbeam_channel::after(ms(300)).recv();
        c2.cancel();
    });
    let err = exec("sleep 1000 & sleep 1000")
        .env("OFFSPRING_MARK", &m)
        .cancel_with(&cancel)
        .output()
        .unwrap_err();
    t.join().unwrap();
    assert_eq!(err.kind(), ErrorKind::Canceled);
    assert_none_left(&m, "cancel");
}

/// A run that may stop its child puts it in a new group when this process is not the
/// foreground group of a terminal, and leaves it in ours when it is (so `Ctrl-C` reaches
/// it). The terminal case re-runs this test under `script`, which gives it a terminal.
#[test]
fn group_follows_the_terminal() {
    let pgrp = |out: &[u8]| -> (u32, u32) {
        let text = String::from_utf8_lossy(out);
        let mut it = text.split_whitespace().map(|w| w.parse::<u32>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    // `ps`-free: the shell prints its pid and its process group from /proc.
    let script = "echo $$ $(cut -d' ' -f5 /proc/$$/stat)";
    let me = rustix::process::getpgrp().as_raw_nonzero().get() as u32;
    let foreground = rustix::termios::tcgetpgrp(rustix::stdio::stdin())
        .is_ok_and(|pg| pg.as_raw_nonzero().get() as u32 == me);
    let (pid, group) = pgrp(&exec(script).timeout(Duration::from_secs(30)).read_bytes().unwrap());
    if foreground {
        assert_eq!(group, me, "in the terminal's foreground: the child stays in our group");
    } else {
        assert_eq!(group, pid, "no terminal: the child leads a group of its own");
    }
    // Without a stop option, nothing changes: our group, as std.
    let (_, group) = pgrp(&exec(script).read_bytes().unwrap());
    assert_eq!(group, me);

    if std::env::var_os("OFFSPRING_UNDER_SCRIPT").is_some() {
        assert!(foreground, "script gave no terminal");
        return;
    }
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: the terminal half needs script(1) (util-linux)");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let line = format!(
        "{} newuser::group_follows_the_terminal --exact --nocapture --test-threads=1",
        exe.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("OFFSPRING_UNDER_SCRIPT", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("1 passed"), "under script: {text}");
}

/// Point 2: `status()` and `spawn()` honour the timeout, the kill signal and the grace
/// period; what they cannot honour is an error naming the option.
#[test]
fn status_and_spawn_honour_the_timeout() {
    for path in PATHS {
        let t0 = Instant::now();
        let err = fixture(path, ["sleep", "20000"]).timeout(ms(200)).status().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::TERM));
        assert!(t0.elapsed() < Duration::from_secs(10));

        let child = fixture(path, ["sleep", "20000"])
            .timeout(ms(200))
            .kill_signal(Signal::INT)
            .spawn()
            .unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(Signal::INT), "{path:?}");

        // A child that ignores the kill signal gets SIGKILL after the grace period.
        let child = fixture(path, ["ignore", "TERM"])
            .timeout(ms(100))
            .force_kill_after(ms(200))
            .spawn()
            .unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL), "{path:?}");
        let err = fixture(path, ["ignore", "TERM"])
            .timeout(ms(100))
            .force_kill_after(ms(200))
            .status()
            .unwrap_err();
        assert!(err.needed_kill(), "{err}");
    }
    // The reaper's stop reaches the child's group: here a new one, asked for.
    let m = mark("spawn-group");
    let child = exec("sleep 1000 & sleep 1000")
        .env("OFFSPRING_MARK", &m)
        .process_group(ProcessGroup::New)
        .timeout(ms(200))
        .spawn()
        .unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(Signal::TERM));
    assert_none_left(&m, "spawn with a timeout");

    // A child that ends before its deadline is not signalled later.
    let child = Command::new("true").timeout(Duration::from_secs(3600)).spawn().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn options_a_method_cannot_honour_are_refused_by_name() {
    type Case = (&'static str, fn(&mut Command) -> Result<(), Error>);
    let cases: [Case; 6] = [
        ("input", |c| c.input("x").spawn().map(drop)),
        ("cancel_with", |c| c.cancel_with(&offspring::CancelHandle::new()).spawn().map(drop)),
        ("max_buffer", |c| c.max_buffer(10).spawn().map(drop)),
        ("max_buffer", |c| c.max_buffer(10).status().map(drop)),
        ("stderr_to_stdout", |c| c.stderr_to_stdout(true).status().map(drop)),
        ("drain_timeout", |c| c.drain_timeout(ms(5)).status().map(drop)),
    ];
    for (option, run) in cases {
        let err = run(&mut Command::new("true")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{option}: {err}");
        assert!(err.to_string().contains(option), "{option}: {err}");
    }
    // What status() can honour, it does: input is fed, as by output().
    let st = Command::new("grep").arg("-q").arg("needle").input("hay\nneedle\n").status();
    assert!(st.unwrap().success());
}

/// Point 3: a std-shaped program (spawn with piped stdin, write, then wait) does not hang,
/// and std's `wait_with_output` exists with std's meaning.
#[test]
fn std_shaped_programs_work() {
    for path in PATHS {
        let mut child =
            fixture(path, ["cat"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        child.stdin.as_mut().unwrap().write_all(b"b\na\n").unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let st = child.wait();
            let _ = tx.send((st, child));
        });
        let (st, child) =
            rx.recv_timeout(Duration::from_secs(20)).expect("wait() hangs on the open stdin");
        assert!(st.unwrap().success());
        // The closed stdin says so instead of writing into the void.
        let e = child.stdin.as_ref().unwrap().write(b"late").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);

        let mut child = Command::new("sort")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .force_spawn_path(path.name())
            .spawn()
            .unwrap();
        child.stdin.as_mut().unwrap().write_all(b"b\na\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.stdout, b"a\nb\n");
    }
    // A taken stdin is left alone by wait (as in std).
    let mut child =
        Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    assert_eq!(child.wait_timeout(ms(50)).unwrap(), None);
    stdin.write_all(b"still open\n").unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn exit_status_helpers_for_job_runners() {
    assert_eq!(ExitStatus::from_code(0).shell_code(), 0);
    assert_eq!(ExitStatus::from_code(42).shell_code(), 42);
    assert_eq!(ExitStatus::from_signal(Signal::TERM, false).shell_code(), 143);
    let st = exec("kill -KILL $$").status().unwrap();
    assert_eq!(st.shell_code(), 137);
    assert_eq!(st.exit_ok().unwrap_err().kind(), ErrorKind::Signaled);
    assert_eq!(exec("exit 5").status().unwrap().exit_ok().unwrap_err().kind(), ErrorKind::ExitCode);
}

/// Point 4: `raw_os_error()` survives the conversion to `io::Error`; a cancel is not
/// `Interrupted`; one way tells a timeout from a failure, whichever error you hold.
#[test]
fn errors_convert_without_loss() {
    let err = Command::new("/no/such/program").arg("x").spawn().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let io: std::io::Error = err.into();
    assert_eq!(io.raw_os_error(), Some(libc::ENOENT));
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(ErrorKind::from_io(&io), ErrorKind::NotFound);

    fn through_io(e: Error) -> std::io::Error {
        e.into()
    }
    let timed_out = exec("sleep 10").timeout(ms(50)).run().unwrap_err();
    let io = through_io(timed_out);
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(ErrorKind::from_io(&io), ErrorKind::TimedOut);
    let inner = io.get_ref().unwrap().downcast_ref::<Error>().unwrap();
    assert!(inner.exit_status().is_some(), "the payload is the whole error");

    let mut child =
        Command::new("sleep").arg("5").stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut out = child.stdout_reader().unwrap();
    let e = out.read_timeout(&mut [0; 8], ms(20)).unwrap_err();
    assert_eq!(ErrorKind::from_io(&e), ErrorKind::TimedOut);
}

/// Point 5: the four forms exist where the docs promise them, and the `try_` forms make
/// progress.
#[test]
fn four_forms_exist_and_try_forms_progress() {
    use std::time::Instant as I;
    // Compile-time: each family is complete.
    type ReadTimeout = fn(&mut OutputReader, &mut [u8], Duration) -> std::io::Result<usize>;
    let _: ReadTimeout = OutputReader::read_timeout;
    let _: fn(&mut OutputReader, &mut [u8], I) -> std::io::Result<usize> =
        OutputReader::read_deadline;
    let _: fn(&mut OutputReader, &mut [u8]) -> std::io::Result<usize> = OutputReader::try_read;
    let _: fn(&mut OutputReader, u8, &mut Vec<u8>, Duration) -> std::io::Result<usize> =
        OutputReader::read_until_timeout;
    let _: fn(&mut OutputReader, u8, &mut Vec<u8>) -> std::io::Result<usize> =
        OutputReader::try_read_until;
    let _: fn(&mut OutputReader, &mut String) -> std::io::Result<usize> =
        OutputReader::try_read_line;
    let _ = OutputReader::fill_buf_timeout;
    let _ = OutputReader::try_fill_buf;

    let mut child = Command::new("sh")
        .args(["-c", "printf 'a\\nb'; exec sleep 5"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = child.stdout_reader().unwrap();
    let mut line = String::new();
    out.read_line_timeout(&mut line, Duration::from_secs(20)).unwrap();
    assert_eq!(line, "a\n");
    let mut rec = Vec::new();
    let e = out.try_read_until(b'\n', &mut rec).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    assert_eq!(out.try_fill_buf().unwrap(), b"b");
    out.consume(1);

    // Communication::try_wait finishes a child that has exited, in a few non-blocking calls.
    let mut child = Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn().unwrap();
    child.wait_timeout(Duration::from_secs(20)).unwrap().unwrap();
    let mut comm = child.communicate(b"").unwrap();
    let mut got = None;
    for _ in 0..50 {
        got = comm.try_wait().unwrap();
        if got.is_some() {
            break;
        }
        #[allow(clippy::disallowed_methods)] // reason: the try_ form is what is tested
        std::thread::sleep(ms(10));
    }
    assert_eq!(got.expect("try_wait made no progress").stdout, b"hi\n");
}

/// Point 6: a job runner pattern-matches a timeout and a non-zero exit from one `Output`.
#[test]
fn one_output_shape_for_every_finished_run() {
    let judge = |script: &str| -> String {
        let out = exec(script)
            .timeout(ms(300))
            .max_buffer(1000)
            .run()
            .or_else(Error::into_run_output)
            .unwrap();
        match (out.stopped_by(), out.status.code()) {
            (Some(Stop::Timeout), _) => format!("timeout after {:?}", out.stdout_lossy()),
            (Some(Stop::Limit(s)), _) => format!("{s} over the limit"),
            (Some(_), _) => "stopped".into(),
            (None, Some(0)) => "ok".into(),
            (None, Some(c)) => format!("exit {c}"),
            (None, None) => format!("signal {}", out.status.shell_code()),
        }
    };
    assert_eq!(judge("true"), "ok");
    assert_eq!(judge("exit 3"), "exit 3");
    assert_eq!(judge("echo partial; exec sleep 10"), "timeout after \"partial\\n\"");
    assert_eq!(judge("yes"), "stdout over the limit");
    assert_eq!(judge("kill -9 $$"), "signal 137");
    // A child that never ran stays an error.
    assert!(Command::new("/no/such").output().or_else(Error::into_run_output).is_err());
}

/// Point 7: messages say things once, and the PATH is shown deduplicated and short.
#[test]
fn error_wording_says_things_once() {
    let dirs: Vec<String> = (0..40).map(|i| format!("/opt/tool-{i:02}/bin")).collect();
    let path = format!("/usr/bin:/usr/bin:/bin:{}:/bin", dirs.join(":"));
    let err = Command::new("no-such-tool").env("PATH", &path).spawn().unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains("not found: program not found"), "{msg}");
    assert_eq!(msg.matches("/usr/bin").count(), 1, "deduplicated: {msg}");
    assert!(msg.contains("more"), "shortened: {msg}");
    assert!(msg.len() < 400, "{} bytes: {msg}", msg.len());

    let msg = exec("exit 3").run().unwrap_err().to_string();
    assert!(msg.contains("failed: exit code 3"), "{msg}");
    assert!(!msg.contains("non-zero exit code: exit code"), "{msg}");
}

#[test]
fn newuser_suite_passes_on_the_sigchld_fallback() {
    crate::support::rerun_on_sigchld_fallback(
        &["newuser::", "faults_run::", "--skip", "sigchld_fallback"],
        &[],
        15,
    );
}
