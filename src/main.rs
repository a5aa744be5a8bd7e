//! `offspring`: run a command with a timeout and report what it used, or keep N copies of one
//! running. Built with `--features cli`.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use offspring::{
    Backoff, Command, ErrorKind, ExitStatus, Next, ResourceUsage, Restart, Signal, Stage, Stdio,
    Stream, Supervisor, SupervisorEvent, Workers,
};

const USAGE: &str = "\
offspring: run a command under a timeout, or supervise copies of it

USAGE:
    offspring run [OPTIONS] -- COMMAND [ARGS...]
    offspring supervise [OPTIONS] -- COMMAND [ARGS...]
    offspring help [run|supervise]

Durations are a number with an optional unit: 500ms, 10s (the default unit), 2m, 1h.
";

const RUN_USAGE: &str = "\
offspring run: timeout(1) and time(1) in one

USAGE:
    offspring run [OPTIONS] -- COMMAND [ARGS...]

Runs COMMAND (no shell), stops it at the timeout, then writes what it printed (stdout to
stdout, stderr to stderr) and a report on stderr: status, wall time, CPU time, peak memory.

OPTIONS:
    --timeout D        send the kill signal after D (default: no timeout)
    --kill-signal S    the signal sent at the timeout: TERM (default), INT, KILL, ...
    --kill-after D     send SIGKILL if the command is still running D after the kill signal
                       (default: 5s)
    --max-output N     stop the command when it writes more than N bytes to stdout or to
                       stderr (suffixes K, M, G)
    --json             write the report as one JSON object (on stderr)
    -h, --help         show this help

EXIT STATUS (as timeout(1)):
    the command's own exit code; 124 if it timed out; 125 if offspring itself failed;
    126 if the command was found but could not be executed; 127 if it was not found;
    128+N if it was killed by signal N (also when stopped for going over --max-output).
";

const SUPERVISE_USAGE: &str = "\
offspring supervise: keep copies of a command running

USAGE:
    offspring supervise [OPTIONS] -- COMMAND [ARGS...]

Starts N workers running COMMAND (no shell), restarts them when they exit, and prints their
output line by line, tagged with the worker (`[app.0] ...`): stdout on stdout, stderr and
the supervisor's own messages on stderr. Ctrl-C or SIGTERM stops every worker (SIGTERM, then
SIGKILL after the grace period) and exits. Each worker gets OFFSPRING_WORKER=<index>.

OPTIONS:
    -n, --workers N          how many workers (default 1)
    --name NAME              the tag in the logs (default: the command's file name)
    --restart POLICY         always (default), on-failure or never
    --max-restarts K/WINDOW  give up on a worker restarted more than K times within WINDOW
                             (default 5/60s)
    --backoff MIN..MAX       delay before a restart: MIN, doubling up to MAX
                             (default 100ms..30s)
    --min-uptime D           a run this long is healthy and resets the backoff (default 5s)
    --ready-line PAT         a worker is ready once a stdout line contains PAT (^PAT: starts
                             with PAT); plain text, not a regular expression
    --ready-ipc              a worker is ready once it sends the IPC ready handshake on the
                             Node channel at fd 3 (NODE_CHANNEL_FD); its messages are logged
    --ready-timeout D        stop a worker not ready within D (default 30s)
    --grace D                time between SIGTERM and SIGKILL at shutdown (default 5s)
    -h, --help               show this help

EXIT STATUS:
    after Ctrl-C or SIGTERM: killed by that signal (the shell shows 130 or 143);
    0 if every worker exited successfully and was not restarted; 1 if workers were given up
    on or failed; 125 on bad usage or a failure of offspring itself.
";

/// Exit code for offspring's own failures (bad usage included), as timeout(1).
const OWN_FAILURE: u8 = 125;

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let sub = if args.is_empty() { None } else { Some(args.remove(0)) };
    let result = match sub.as_ref().and_then(|s| s.to_str()) {
        Some("run") => run(args),
        Some("supervise") => supervise(args),
        Some("help" | "-h" | "--help") => {
            let text = match args.first().and_then(|a| a.to_str()) {
                Some("run") => RUN_USAGE,
                Some("supervise") => SUPERVISE_USAGE,
                _ => USAGE,
            };
            print!("{text}");
            Ok(0)
        }
        Some("-V" | "--version") => {
            println!("offspring {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Some(other) => Err(format!("unknown subcommand {other:?}: expected run or supervise")),
        None => Err("no subcommand: expected run or supervise".to_string()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            eprintln!("offspring: {msg}\n(see `offspring help`)");
            ExitCode::from(OWN_FAILURE)
        }
    }
}

/// Splits `args` at `--` into options and the command; the command must not be empty.
fn split_command(mut args: Vec<OsString>) -> Result<(Vec<String>, Vec<OsString>), String> {
    let Some(dash) = args.iter().position(|a| a == "--") else {
        if args.iter().any(|a| a == "-h" || a == "--help") {
            return Ok((vec!["--help".into()], Vec::new()));
        }
        return Err("missing `-- COMMAND [ARGS...]` after the options".into());
    };
    let command = args.split_off(dash + 1);
    args.pop();
    let opts = args
        .into_iter()
        .map(|a| a.into_string().map_err(|a| format!("option {a:?} is not UTF-8")))
        .collect::<Result<Vec<_>, _>>()?;
    if command.is_empty() && !opts.iter().any(|o| o == "-h" || o == "--help") {
        return Err("no command after `--`".into());
    }
    Ok((opts, command))
}

/// Iterates over `--opt value` / `--opt=value` pairs.
struct Opts {
    items: std::vec::IntoIter<String>,
}

impl Opts {
    fn next(&mut self) -> Option<(String, Option<String>)> {
        let item = self.items.next()?;
        match item.split_once('=') {
            Some((k, v)) if k.starts_with("--") => Some((k.to_string(), Some(v.to_string()))),
            _ => Some((item, None)),
        }
    }

    fn value(&mut self, opt: &str, inline: Option<String>) -> Result<String, String> {
        inline.or_else(|| self.items.next()).ok_or_else(|| format!("{opt} needs a value"))
    }
}

/// `500ms`, `10s`, `10` (seconds), `1.5s`, `2m`, `1h`.
fn parse_duration(opt: &str, s: &str) -> Result<Duration, String> {
    let bad = || format!("{opt} {s:?}: expected a duration such as 500ms, 10s, 2m or 1h");
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// `4096`, `64K`, `10M`, `1G`.
fn parse_size(opt: &str, s: &str) -> Result<usize, String> {
    let bad = || format!("{opt} {s:?}: expected a byte count such as 4096, 64K, 10M or 1G");
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1usize << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().map_err(|_| bad())?.checked_mul(mult).ok_or_else(bad)
}

fn parse_signal(opt: &str, s: &str) -> Result<Signal, String> {
    match s.parse::<i32>() {
        Ok(n) => Signal::from_raw(n),
        Err(_) => s.parse().ok(),
    }
    .ok_or_else(|| format!("{opt} {s:?}: expected a signal such as TERM, INT, KILL or 15"))
}

/// Milliseconds, for the report.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The exit code that stands for `status`, as a shell would report it.
fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => (128 + sig.as_raw()).min(255) as u8,
        _ => OWN_FAILURE,
    }
}

fn run(args: Vec<OsString>) -> Result<u8, String> {
    let (opts, command) = split_command(args)?;
    let mut timeout = None;
    let mut kill_signal = Signal::TERM;
    let mut kill_after = Duration::from_secs(5);
    let mut max_output = None;
    let mut json = false;
    let mut it = Opts { items: opts.into_iter() };
    while let Some((opt, inline)) = it.next() {
        match opt.as_str() {
            "--timeout" => timeout = Some(parse_duration(&opt, &it.value(&opt, inline)?)?),
            "--kill-signal" => kill_signal = parse_signal(&opt, &it.value(&opt, inline)?)?,
            "--kill-after" => kill_after = parse_duration(&opt, &it.value(&opt, inline)?)?,
            "--max-output" => max_output = Some(parse_size(&opt, &it.value(&opt, inline)?)?),
            "--json" => json = true,
            "-h" | "--help" => {
                print!("{RUN_USAGE}");
                return Ok(0);
            }
            _ => return Err(format!("run: unknown option {opt:?}")),
        }
    }

    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).stdin(Stdio::inherit());
    cmd.kill_signal(kill_signal).force_kill_after(kill_after);
    if let Some(t) = timeout {
        cmd.timeout(t);
    }
    if let Some(n) = max_output {
        cmd.max_buffer(n);
    }
    let started = Instant::now();
    let result = cmd.output();
    let wall = started.elapsed();

    let (status, stdout, stderr, usage, timed_out, over_limit, killed) = match result {
        Ok(out) => {
            let usage = out.resource_usage();
            (out.status, out.stdout, out.stderr, usage, false, None, false)
        }
        Err(err) => {
            let kind = err.kind();
            let Some(status) = err.exit_status() else {
                // It never ran: 127 not found, 126 not executable, 125 anything else.
                let code = match (kind, err.stage()) {
                    (ErrorKind::NotFound, Stage::Lookup | Stage::Exec) => 127,
                    (ErrorKind::PermissionDenied | ErrorKind::ExecFormat, Stage::Exec) => 126,
                    _ => OWN_FAILURE,
                };
                if json {
                    eprintln!(
                        "{{\"command\":{},\"error\":{},\"exit\":{code}}}",
                        json_argv(&command),
                        json_str(&err.to_string())
                    );
                } else {
                    eprintln!("offspring: {err}");
                }
                return Ok(code);
            };
            let usage = err.resource_usage();
            let limit = err.over_limit().map(|(s, _)| s);
            let killed = err.needed_kill();
            let (out, errs) = err.into_output();
            (status, out, errs, usage, kind == ErrorKind::TimedOut, limit, killed)
        }
    };
    let _ = std::io::stdout().write_all(&stdout);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(&stderr);
    let code = if timed_out { 124 } else { status_code(status) };
    let usage = usage.unwrap_or_default();
    if json {
        let sig = status.signal().map_or("null".into(), |s| json_str(s.name()));
        let code_json = status.code().map_or("null".into(), |c| c.to_string());
        let over = over_limit.map_or("null".into(), |s: Stream| json_str(&s.to_string()));
        eprintln!(
            "{{\"command\":{},\"status\":{},\"exit_code\":{code_json},\"signal\":{sig},\
             \"timed_out\":{timed_out},\"killed\":{killed},\"over_limit\":{over},\
             \"wall_ms\":{:.3},\"user_ms\":{:.3},\"sys_ms\":{:.3},\"cpu_ms\":{:.3},\
             \"max_rss_kb\":{},\"exit\":{code}}}",
            json_argv(&command),
            json_str(&status.to_string()),
            millis(wall),
            millis(usage.user_time),
            millis(usage.system_time),
            millis(usage.user_time + usage.system_time),
            usage.max_rss_bytes / 1024,
        );
    } else {
        let mut what = status.to_string();
        if timed_out {
            what = format!("timed out ({what})");
        }
        if let Some(s) = over_limit {
            what = format!("{s} over {} bytes ({what})", max_output.unwrap_or(0));
        }
        eprintln!("offspring: {what}; {}", usage_line(wall, &usage));
    }
    Ok(code)
}

fn usage_line(wall: Duration, u: &ResourceUsage) -> String {
    format!(
        "wall {:.3}s, user {:.3}s, sys {:.3}s, max rss {} KiB",
        wall.as_secs_f64(),
        u.user_time.as_secs_f64(),
        u.system_time.as_secs_f64(),
        u.max_rss_bytes / 1024
    )
}

fn json_argv(command: &[OsString]) -> String {
    let items: Vec<String> = command.iter().map(|a| json_str(&a.to_string_lossy())).collect();
    format!("[{}]", items.join(","))
}

fn supervise(args: Vec<OsString>) -> Result<u8, String> {
    let (opts, command) = split_command(args)?;
    let mut count = 1usize;
    let mut name = None;
    let mut restart = Restart::Always;
    let mut limit = (5u32, Duration::from_secs(60));
    let mut backoff = Backoff::default();
    let mut min_uptime = Duration::from_secs(5);
    let mut ready = None;
    let mut ready_timeout = Duration::from_secs(30);
    let mut ready_ipc = false;
    let mut grace = Duration::from_secs(5);
    let mut it = Opts { items: opts.into_iter() };
    while let Some((opt, inline)) = it.next() {
        match opt.as_str() {
            "-n" | "--workers" => {
                let v = it.value(&opt, inline)?;
                count = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("{opt} {v:?}: expected a number of workers, 1 or more")
                })?;
            }
            "--name" => name = Some(it.value(&opt, inline)?),
            "--restart" => restart = it.value(&opt, inline)?.parse()?,
            "--max-restarts" => {
                let v = it.value(&opt, inline)?;
                let bad = || format!("{opt} {v:?}: expected K/WINDOW, such as 5/60s");
                let (k, w) = v.split_once('/').ok_or_else(bad)?;
                limit = (k.parse().map_err(|_| bad())?, parse_duration(&opt, w)?);
            }
            "--backoff" => {
                let v = it.value(&opt, inline)?;
                let (lo, hi) = v
                    .split_once("..")
                    .ok_or_else(|| format!("{opt} {v:?}: expected MIN..MAX, such as 100ms..30s"))?;
                backoff.min = parse_duration(&opt, lo)?;
                backoff.max = parse_duration(&opt, hi)?;
                if backoff.min > backoff.max {
                    return Err(format!("{opt} {v:?}: MIN is larger than MAX"));
                }
            }
            "--min-uptime" => min_uptime = parse_duration(&opt, &it.value(&opt, inline)?)?,
            "--ready-line" => ready = Some(it.value(&opt, inline)?),
            "--ready-ipc" if inline.is_none() => ready_ipc = true,
            "--ready-timeout" => ready_timeout = parse_duration(&opt, &it.value(&opt, inline)?)?,
            "--grace" => grace = parse_duration(&opt, &it.value(&opt, inline)?)?,
            "-h" | "--help" => {
                print!("{SUPERVISE_USAGE}");
                return Ok(0);
            }
            _ => return Err(format!("supervise: unknown option {opt:?}")),
        }
    }
    let name = name.unwrap_or_else(|| {
        let prog = std::path::Path::new(&command[0]);
        prog.file_name().unwrap_or(prog.as_os_str()).to_string_lossy().into_owned()
    });
    // Before any worker exists, so that a signal during start-up is not lost.
    let signals = offspring::shutdown_signals().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    let mut workers = Workers::new(name, cmd)
        .count(count)
        .restart(restart)
        .max_restarts(limit.0, limit.1)
        .backoff(backoff)
        .min_uptime(min_uptime)
        .stop_signal(Signal::TERM, grace);
    if ready.is_some() && ready_ipc {
        return Err("supervise: --ready-line and --ready-ipc exclude each other".into());
    }
    if let Some(p) = &ready {
        workers = workers.ready_line(p, ready_timeout);
    }
    if ready_ipc {
        workers = workers.ready_ipc(ready_timeout);
    }
    let sup = Supervisor::start(vec![workers]).map_err(|e| e.to_string())?;
    let log = |line: String| {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
        let _ = err.flush();
    };
    let mut all_ok = true;
    loop {
        crossbeam_channel::select! {
            recv(signals) -> sig => {
                let sig = sig.map_err(|_| "the signal thread is gone".to_string())?;
                log(format!("[offspring] {}: stopping {count} worker(s), grace {grace:?}", sig.name()));
                let events = sup.events().clone();
                let killed = sup.shutdown(grace).map_err(|e| e.to_string())?;
                // The workers' last lines and exits.
                for ev in events.try_iter() {
                    match ev {
                        SupervisorEvent::Line { worker, stream: Stream::Stdout, line } => {
                            println!("[{worker}] {line}");
                        }
                        SupervisorEvent::Line { worker, line, .. } => log(format!("[{worker}] {line}")),
                        SupervisorEvent::Exited { worker, run } => {
                            log(format!("[offspring] {worker} {}", run.summary()))
                        }
                        _ => {}
                    }
                }
                for w in killed {
                    log(format!("[offspring] {w} needed SIGKILL"));
                }
                log("[offspring] all workers stopped".to_string());
                offspring::exit_by_signal(sig);
            }
            recv(sup.events()) -> ev => {
                let Ok(ev) = ev else { return Err("the supervisor stopped".into()) };
                match ev {
                    SupervisorEvent::Line { worker, stream, line } => {
                        if stream == Stream::Stdout {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "[{worker}] {line}");
                            let _ = out.flush();
                        } else {
                            log(format!("[{worker}] {line}"));
                        }
                    }
                    SupervisorEvent::Started { worker, pid } => {
                        log(format!("[offspring] {worker} started (pid {})", pid.as_raw_nonzero()));
                    }
                    SupervisorEvent::Ready { worker, after } if ready.is_some() || ready_ipc => {
                        log(format!("[offspring] {worker} ready after {after:.3?}"));
                    }
                    SupervisorEvent::Exited { worker, run } => {
                        if run.error.is_some() || !run.status.is_some_and(|s| s.success()) {
                            all_ok = false;
                        }
                        if run.next == Next::GaveUp {
                            all_ok = false;
                        }
                        log(format!("[offspring] {worker} {}", run.summary()));
                    }
                    SupervisorEvent::Message { worker, data } => {
                        let text = String::from_utf8_lossy(&data);
                        log(format!("[offspring] {worker} message: {text}"));
                    }
                    SupervisorEvent::GaveUp { worker, restarts } => {
                        log(format!("[offspring] {worker}: {restarts} restarts within {:?}, giving up", limit.1));
                    }
                    SupervisorEvent::AllDown => {
                        log("[offspring] no worker left running".to_string());
                        sup.shutdown(grace).map_err(|e| e.to_string())?;
                        return Ok(if all_ok { 0 } else { 1 });
                    }
                    _ => {}
                }
            }
        }
    }
}
