//! Fault injection for the runners (issue 8, defects 4, 5, 14 and 15): a `Command` stays
//! reusable and holds no fd after a run, and errors stay bounded and complete.

use std::io::Write;
use std::time::{Duration, Instant};

use offspring::{Command, ErrorKind, Stage};

use crate::support::{fixture, open_fds, PATHS};

/// The fds of this process that are pipes, counted from `/proc/self/fd`.
fn pipes_open() -> Vec<i32> {
    open_fds()
        .into_iter()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|l| l.to_string_lossy().starts_with("pipe:"))
        })
        .collect()
}

/// Defect 4: `stderr_to_stdout(true)` kept the merged pipe's write end in the `Command`: the
/// run waited out the whole drain timeout, an fd stayed open, and a second run failed.
#[test]
fn merged_output_keeps_no_write_end_and_runs_again() {
    for path in PATHS {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo one; echo two >&2"]).force_spawn_path(path.name());
        cmd.stderr_to_stdout(true).drain_timeout(Duration::from_secs(20));
        for round in 0..3 {
            let t0 = Instant::now();
            let out = cmd.output().unwrap_or_else(|e| panic!("{path:?} round {round}: {e}"));
            assert_eq!(out.stdout, b"one\ntwo\n", "{path:?}");
            // With the write end held, the run would wait out the 20 s drain timeout.
            assert!(!out.drain_expired(), "{path:?} round {round}");
            assert!(t0.elapsed() < Duration::from_secs(10), "{path:?}: {:?}", t0.elapsed());
        }
        // The command holds no pipe: its Debug shows stdout and stderr unset.
        let dbg = format!("{cmd:?}");
        assert!(dbg.contains("stdout: None") && dbg.contains("stderr: None"), "{dbg}");
    }
}

/// Defect 5: `input_file` stored the opened file as the command's stdin: the second run
/// failed ("both stdin and input are set") and the file stayed open.
#[test]
fn input_file_command_runs_again_and_closes_the_file() {
    let dir = std::env::temp_dir().join(format!("offspring-faults-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("input");
    std::fs::File::create(&file).unwrap().write_all(b"from the file\n").unwrap();
    let file_is_open = || {
        open_fds()
            .iter()
            .any(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|l| l == file))
    };
    for path in PATHS {
        let mut cmd = fixture(path, ["cat"]);
        cmd.input_file(&file);
        for round in 0..3 {
            let out = cmd.run().unwrap_or_else(|e| panic!("{path:?} round {round}: {e}"));
            assert_eq!(out.stdout, b"from the file\n");
            assert!(!file_is_open(), "{path:?}: the Command keeps the input file open");
        }
        // status() and spawn() honour it too.
        assert!(cmd.stdout(offspring::Stdio::null()).status().unwrap().success());
        let child = cmd.spawn().unwrap();
        assert!(child.wait().unwrap().success());
        assert!(!file_is_open());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Defects 4 and 5 together leave no pipe behind over many runs.
#[test]
fn reused_commands_leak_no_pipe() {
    let before = pipes_open().len();
    let mut merged = Command::new("/bin/sh");
    merged.args(["-c", "echo out; echo err >&2"]).stderr_to_stdout(true);
    for _ in 0..20 {
        merged.run().unwrap();
    }
    // Other tests of this binary open pipes at the same time: allow for a few of theirs,
    // never one per run.
    let after = pipes_open().len();
    assert!(after < before + 10, "pipes before {before}, after 20 runs {after}");
}

/// Defect 14: an `E2BIG` error quoted the whole argv (a 4 MB message). The command is cut in
/// the middle, saying how much was cut; `argv()` keeps everything.
#[test]
fn e2big_error_message_is_bounded() {
    let big = "x".repeat(300 * 1024);
    for path in PATHS {
        let e = fixture(path, ["echo"]).arg(&big).arg("last-arg").status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentListTooLong, "{path:?}");
        let msg = e.to_string();
        assert!(msg.len() < 4096, "{path:?}: a {}-byte message", msg.len());
        assert!(msg.contains("bytes cut"), "{msg}");
        assert!(msg.contains("last-arg"), "the end of the command stays: {msg}");
        assert!(msg.contains("E2BIG"), "{msg}");
        assert_eq!(e.argv().len(), 4, "the error keeps the whole argv");
        assert_eq!(e.argv()[2].len(), big.len());
    }
}

/// Every message stays bounded, whatever its parts: a huge working directory too.
#[test]
fn chdir_error_with_a_huge_path_is_bounded() {
    let dir = format!("/no/such/{}", "d".repeat(3000));
    let e = Command::new("true").current_dir(&dir).status().unwrap_err();
    assert_eq!(e.stage(), Stage::Chdir);
    assert!(e.to_string().len() < 4096, "{}", e.to_string().len());
}

/// Defect 15: a PATH-lookup error attached the program alone as the argv.
#[test]
fn lookup_error_quotes_the_whole_command() {
    for path in PATHS {
        let e = Command::new("no-such-prog-offspring")
            .args(["bar", "two words"])
            .force_spawn_path(path.name())
            .spawn()
            .unwrap_err();
        assert_eq!((e.kind(), e.stage()), (ErrorKind::NotFound, Stage::Lookup));
        assert_eq!(e.argv(), ["no-such-prog-offspring", "bar", "two words"]);
        assert!(e.to_string().contains("no-such-prog-offspring bar 'two words'"), "{e}");
        // The same for a program found but not executable, and for output().
        let e = Command::new("no-such-prog-offspring").arg("x").output().unwrap_err();
        assert_eq!(e.argv(), ["no-such-prog-offspring", "x"]);
    }
    // `which` names the program it was given.
    let e = offspring::which("no-such-prog-offspring").unwrap_err();
    assert_eq!(e.argv(), ["no-such-prog-offspring"]);
}
