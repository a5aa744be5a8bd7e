//! The `offspring` command-line tool, driven as a user would: exit codes, the JSON report,
//! supervise with signals, and supervise in a real terminal (tmux) stopped with Ctrl-C.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use offspring::{Command, Signal};

use crate::support::until_none_running;

const BIN: &str = env!("CARGO_BIN_EXE_offspring");
const FIXTURE: &str = env!("CARGO_BIN_EXE_offspring-fixture");

fn tool<const N: usize>(args: [&str; N]) -> offspring::Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn code(out: &offspring::Output) -> i32 {
    out.status.code().unwrap_or_else(|| panic!("killed: {out:?}"))
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("offspring-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        #[allow(clippy::disallowed_methods)] // reason: files and a tmux pane give no wake-up
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The one JSON report on stderr's last line, and a field of it as text.
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {json}"));
    let rest = &json[start + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap();
    &rest[..end]
}

#[test]
fn run_propagates_exit_codes_like_timeout() {
    assert_eq!(code(&tool(["run", "--", FIXTURE, "exit", "0"])), 0);
    let out = tool(["run", "--", FIXTURE, "exit", "3"]);
    assert_eq!(code(&out), 3);
    let err = out.stderr_lossy();
    assert!(err.contains("exit code 3") && err.contains("max rss"), "{err}");
    assert_eq!(code(&tool(["run", "--", "no-such-program-anywhere"])), 127);
    assert_eq!(code(&tool(["run", "--", "/etc/passwd"])), 126);
    assert_eq!(code(&tool(["run", "--", FIXTURE, "kill-self", "KILL"])), 128 + 9);
    assert_eq!(code(&tool(["run", "--", FIXTURE, "kill-self", "TERM"])), 128 + 15);
    // Its own failures: 125, with a message that says what to fix.
    let out = tool(["run", "--timeout", "soon", "--", "true"]);
    assert_eq!(code(&out), 125);
    assert!(out.stderr_lossy().contains("--timeout \"soon\": expected a duration"));
    let out = tool(["run", "true"]);
    assert_eq!(code(&out), 125);
    assert!(out.stderr_lossy().contains("missing `-- COMMAND"));
    assert_eq!(code(&tool(["frobnicate"])), 125);
    // Output passes through.
    let out = tool(["run", "--", FIXTURE, "echo", "hello"]);
    assert_eq!(out.stdout, b"hello\n");
}

#[test]
fn run_times_out_with_124_and_escalates() {
    let t0 = Instant::now();
    let out = tool(["run", "--timeout", "200ms", "--json", "--", FIXTURE, "sleep-forever"]);
    assert_eq!(code(&out), 124);
    assert!(t0.elapsed() < Duration::from_secs(20));
    let json = out.stderr_lossy();
    assert_eq!(field(&json, "timed_out"), "true", "{json}");
    assert_eq!(field(&json, "signal"), "\"SIGTERM\"");
    assert_eq!(field(&json, "killed"), "false");
    assert_eq!(field(&json, "exit"), "124");
    assert!(field(&json, "wall_ms").parse::<f64>().unwrap() >= 200.0, "{json}");

    // One that ignores SIGTERM gets SIGKILL after --kill-after.
    let out = tool([
        "run",
        "--timeout",
        "200ms",
        "--kill-after",
        "300ms",
        "--json",
        "--",
        FIXTURE,
        "ignore",
        "TERM",
    ]);
    assert_eq!(code(&out), 124);
    let json = out.stderr_lossy();
    assert_eq!(field(&json, "killed"), "true", "{json}");
    assert_eq!(field(&json, "signal"), "\"SIGKILL\"", "{json}");
}

#[test]
fn run_json_reports_status_time_and_memory() {
    let out = tool(["run", "--json", "--", FIXTURE, "burn", "300"]);
    assert_eq!(code(&out), 0);
    let json = out.stderr_lossy();
    let json = json.trim();
    assert!(json.starts_with('{') && json.ends_with('}') && !json.contains('\n'), "{json}");
    assert_eq!(field(json, "status"), "\"exit code 0\"");
    assert_eq!(field(json, "exit_code"), "0");
    assert_eq!(field(json, "signal"), "null");
    assert_eq!(field(json, "timed_out"), "false");
    let cpu: f64 = field(json, "cpu_ms").parse().unwrap();
    let wall: f64 = field(json, "wall_ms").parse().unwrap();
    let user: f64 = field(json, "user_ms").parse().unwrap();
    let sys: f64 = field(json, "sys_ms").parse().unwrap();
    assert!(cpu >= 250.0 && wall >= cpu * 0.9 && (user + sys - cpu).abs() < 0.01, "{json}");
    assert!(field(json, "max_rss_kb").parse::<u64>().unwrap() > 100, "{json}");
    assert!(field(json, "command").starts_with('['));

    // Over --max-output: stopped, status says by which signal.
    let out = tool(["run", "--max-output", "1K", "--json", "--", FIXTURE, "write", "100000"]);
    let json = out.stderr_lossy();
    assert_eq!(field(&json, "over_limit"), "\"stdout\"", "{json}");
    assert_eq!(code(&out), 128 + 15);
    assert!(out.stdout.len() <= 1024);

    // Not found, as JSON.
    let out = tool(["run", "--json", "--", "no-such-program-anywhere"]);
    assert_eq!(code(&out), 127);
    assert!(out.stderr_lossy().contains("\"error\":"), "{:?}", out.stderr_lossy());
}

#[test]
fn help_is_clear() {
    for args in [["help", "run"], ["run", "--help"]] {
        let out = tool(args);
        assert_eq!(code(&out), 0);
        let text = out.stdout_lossy();
        assert!(text.contains("--timeout") && text.contains("124"), "{text}");
    }
    let out = tool(["supervise", "--help"]);
    let text = out.stdout_lossy();
    assert!(text.contains("--max-restarts K/WINDOW") && text.contains("Ctrl-C"), "{text}");
    let out = tool(["supervise", "-n", "0", "--", "true"]);
    assert_eq!(code(&out), 125);
    assert!(out.stderr_lossy().contains("-n \"0\""), "{}", out.stderr_lossy());
}

#[test]
fn supervise_restarts_then_gives_up() {
    let out = Command::new(BIN)
        .args(["supervise", "--backoff", "50ms..1s", "--max-restarts", "2/60s", "--name", "crash"])
        .args(["--", FIXTURE, "exit", "3"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let err = out.stderr_lossy();
    assert_eq!(err.matches("[offspring] crash.0 started").count(), 3, "{err}");
    assert!(err.contains("restart in") && err.contains("giving up"), "{err}");
}

#[test]
fn supervise_ready_ipc_gives_up_on_a_mute_worker_and_logs_messages() {
    // Attaches but never sends the handshake: each start fails at the deadline.
    let out = Command::new(BIN)
        .args(["supervise", "--ready-ipc", "--ready-timeout", "300ms", "--backoff", "50ms..1s"])
        .args(["--max-restarts", "1/60s", "--name", "mute", "--", FIXTURE, "ipc-echo"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let err = out.stderr_lossy();
    assert_eq!(err.matches("(stopped: NotReady)").count(), 2, "{err}");
    assert!(!err.contains("ready after") && err.contains("giving up"), "{err}");
    // Messages from a worker are logged.
    let out = Command::new(BIN)
        .args(["supervise", "--ready-ipc", "--restart", "never", "--name", "talk"])
        .args(["--", FIXTURE, "ipc-send-exit", "2"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = out.stderr_lossy();
    assert!(err.contains(r#"[offspring] talk.0 message: {"i":1}"#), "{err}");
    assert!(err.contains(r#"[offspring] talk.0 message: "bye""#), "{err}");
    assert!(!err.contains("ready after"), "{err}");
    assert_eq!(code(&out), 0, "{err}");
}

/// Pids the workers wrote to `dir/pids`, one a line.
fn worker_pids(dir: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A worker that records its pid, says it is up, and runs until stopped; `stubborn` ignores
/// SIGTERM.
fn worker_script(dir: &std::path::Path, stubborn: bool) -> String {
    let trap = if stubborn { "trap '' TERM; " } else { "" };
    format!(
        "{trap}echo $$ >> {}; echo up $OFFSPRING_WORKER; while :; do sleep 0.2; done",
        dir.join("pids").display()
    )
}

#[test]
fn supervise_stops_everything_on_sigterm() {
    let dir = scratch("sigterm");
    let log = std::fs::File::create(dir.join("stderr")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["supervise", "-n", "3", "--grace", "1s", "--ready-line", "^up", "--"])
        .args(["sh", "-c", &worker_script(&dir, false)])
        .stdout(offspring::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    let sup = cmd.spawn().unwrap();
    wait_until(Duration::from_secs(60), "3 workers", || worker_pids(&dir).len() == 3);
    let pids = worker_pids(&dir);
    sup.signal(Signal::TERM).unwrap();
    let status = sup.wait_timeout(Duration::from_secs(30)).unwrap().expect("supervise exited");
    // It ends "killed by SIGTERM", as a shell expects of a program stopped by SIGTERM.
    assert_eq!(status.signal(), Some(Signal::TERM), "{status}");
    for pid in pids {
        assert!(!alive(pid), "worker {pid} left behind");
    }
    let err = std::fs::read_to_string(dir.join("stderr")).unwrap();
    assert!(err.contains("SIGTERM: stopping 3 worker(s)") && err.contains("all workers stopped"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn supervise_kills_a_worker_that_ignores_sigterm() {
    let dir = scratch("stubborn");
    let log = std::fs::File::create(dir.join("stderr")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["supervise", "--grace", "500ms", "--ready-line", "up", "--"])
        .args(["sh", "-c", &worker_script(&dir, true)])
        .stdout(offspring::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    let sup = cmd.spawn().unwrap();
    // The script sets its trap before it writes its pid.
    wait_until(Duration::from_secs(60), "the worker", || worker_pids(&dir).len() == 1);
    let pids = worker_pids(&dir);
    let t0 = Instant::now();
    sup.signal(Signal::TERM).unwrap();
    let status = sup.wait_timeout(Duration::from_secs(30)).unwrap().expect("supervise exited");
    assert!(t0.elapsed() >= Duration::from_millis(500));
    assert_eq!(status.signal(), Some(Signal::TERM));
    assert!(!alive(pids[0]));
    let err = std::fs::read_to_string(dir.join("stderr")).unwrap();
    assert!(err.contains("needed SIGKILL"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tmux(socket: &str, args: &[&str]) -> offspring::Output {
    Command::new("tmux").args(["-L", socket]).args(args).output().unwrap()
}

#[test]
fn supervise_in_a_terminal_stops_cleanly_on_ctrl_c() {
    if offspring::which("tmux").is_err() {
        eprintln!("skipped: tmux is not installed (.ci/run installs it)");
        return;
    }
    let dir = scratch("tmux");
    let socket = format!("offspring-test-{}", std::process::id());
    let status_file = dir.join("status");
    // A user at an interactive shell in a real terminal types the command, then Ctrl-C.
    let line = format!(
        "{} supervise -n 2 -- sh -c {}",
        BIN,
        offspring::quote::quote_str(&worker_script(&dir, false)).unwrap(),
    );
    let out =
        tmux(&socket, &["-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", "sh"]);
    assert!(out.status.success(), "tmux: {}", out.stderr_lossy());
    let result = std::panic::catch_unwind(|| {
        assert!(tmux(&socket, &["send-keys", "-l", &line]).status.success());
        assert!(tmux(&socket, &["send-keys", "Enter"]).status.success());
        wait_until(Duration::from_secs(60), "2 workers", || worker_pids(&dir).len() == 2);
        // Their output is on the terminal, tagged.
        let pane = || tmux(&socket, &["capture-pane", "-p"]).stdout_lossy().into_owned();
        wait_until(Duration::from_secs(30), "tagged output in the pane", || {
            let p = pane();
            p.contains("[sh.0] up 0") && p.contains("[sh.1] up 1")
        });
        let pids = worker_pids(&dir);
        assert!(tmux(&socket, &["send-keys", "C-c"]).status.success());
        wait_until(Duration::from_secs(30), "the supervisor to stop", || {
            pane().contains("all workers stopped")
        });
        let echo = format!("echo $? > {}", status_file.display());
        assert!(tmux(&socket, &["send-keys", "-l", &echo]).status.success());
        assert!(tmux(&socket, &["send-keys", "Enter"]).status.success());
        wait_until(Duration::from_secs(30), "the status", || {
            std::fs::read_to_string(&status_file).is_ok_and(|s| s.ends_with('\n'))
        });
        // Killed by SIGINT, as the shell reports it: 130.
        assert_eq!(std::fs::read_to_string(&status_file).unwrap().trim(), "130", "{}", pane());
        for pid in pids {
            assert!(!alive(pid), "worker {pid} left behind");
        }
    });
    let _ = tmux(&socket, &["kill-server"]);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn supervise_killed_with_sigkill_takes_its_workers_along() {
    // No handler runs on SIGKILL: the workers' parent-death signal does the job.
    let dir = scratch("sigkill");
    let mut cmd = Command::new(BIN);
    cmd.args(["supervise", "-n", "2", "--"])
        .args(["sh", "-c", &worker_script(&dir, true)])
        .stdout(offspring::Stdio::null())
        .stderr(offspring::Stdio::null())
        .kill_on_drop(true);
    let sup = cmd.spawn().unwrap();
    wait_until(Duration::from_secs(60), "2 workers", || worker_pids(&dir).len() == 2);
    let pids = worker_pids(&dir);
    sup.kill().unwrap();
    assert_eq!(sup.wait().unwrap().signal(), Some(Signal::KILL));
    until_none_running(Duration::from_secs(10), "the workers killed with it", |p| {
        pids.contains(&p.pid)
    });
    let _ = std::fs::remove_dir_all(&dir);
}
