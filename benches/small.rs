//! Small-capture benchmark: capturing the few bytes of a short command (`/bin/echo hi`), the
//! most common call of all, through offspring and std in the same run; and, beside it, the
//! bare spawn + wait of `/bin/true`, so that a change to the capture path shows whether it
//! cost the spawn anything.
//!
//! ```text
//! nice -n 10 cargo bench --bench small
//! nice -n 10 cargo bench --bench small -- --calls 200 --rounds 9
//! ```
//!
//! | name | what |
//! | --- | --- |
//! | `std-output` | `std::process::Command::new("/bin/echo").arg("hi").output()`: the reference for the capture rows |
//! | `offspring-output` | `offspring::Command::new("/bin/echo").arg("hi").output()` |
//! | `offspring-read` | `offspring::exec_file("/bin/echo", ["hi"]).read()` |
//! | `libc-capture` | libc `posix_spawn` of `/bin/echo hi` with stdout and stderr on two pipes, a `poll` + `read` loop to EOF, `waitpid`: the capture a plain C program does |
//! | `offspring-no-capture` | `offspring::Command::new("/bin/echo").arg("hi")` with stdout and stderr on `/dev/null`, `status()`: the same child with no capture at all, which no capture can beat |
//! | `posix_spawn` | libc `posix_spawn` + `waitpid` of `/bin/true`: the reference for the spawn rows |
//! | `std-status` | `std::process::Command::new("/bin/true").status()` |
//! | `offspring-status` | `offspring::Command::new("/bin/true").status()` |
//!
//! `--only METHOD` runs one method `--calls` times and prints nothing, for a profiler
//! (`strace -c -f`, `perf stat`, `valgrind --tool=callgrind`).
//!
//! The last two capture rows bound what a capture of this command can cost: whatever a
//! library does, it still spawns, execs, runs and reaps `/bin/echo`, and on this kind of
//! machine that is almost all of the time (the child's exec and dynamic loading, and the
//! kernel's process creation and teardown). `offspring-no-capture` over `std-output` is the
//! best ratio any capture could reach in that run.
//!
//! A round runs `--calls` calls (default 200) of every method back to back, in an order that
//! rotates from round to round, so that drift in the machine's speed spreads over all of them.
//! The table gives, per method: `wall`, the median over rounds of the mean time per call, its
//! min and max, and the ratio of each round's time to its reference's in the same round
//! (median, min, max); `call`, the median of all single calls and its ratio to the reference's,
//! which a load spike in one round moves less; `cpu`, this process's CPU time per call (user +
//! system, every thread, the reaper's too, the children's not) and its ratio. On a shared VM
//! absolute figures drift; the same-run ratios are what to compare.

mod common;
use common::{cpu_secs, median, Args, RawSpawn};
use std::hint::black_box;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    StdOutput,
    OffspringOutput,
    OffspringRead,
    LibcCapture,
    OffspringNoCapture,
    PosixSpawn,
    StdStatus,
    OffspringStatus,
}

impl Method {
    const ALL: [Method; 8] = [
        Method::StdOutput,
        Method::OffspringOutput,
        Method::OffspringRead,
        Method::LibcCapture,
        Method::OffspringNoCapture,
        Method::PosixSpawn,
        Method::StdStatus,
        Method::OffspringStatus,
    ];

    fn name(self) -> &'static str {
        [
            "std-output",
            "offspring-output",
            "offspring-read",
            "libc-capture",
            "offspring-no-capture",
            "posix_spawn",
            "std-status",
            "offspring-status",
        ][self as usize]
    }

    /// The row this one is compared with.
    fn reference(self) -> Method {
        match self {
            Method::StdOutput
            | Method::OffspringOutput
            | Method::OffspringRead
            | Method::LibcCapture
            | Method::OffspringNoCapture => Method::StdOutput,
            _ => Method::PosixSpawn,
        }
    }
}

/// The two raw spawns: `/bin/true` for the spawn rows, `/bin/echo hi` for the capture floor.
struct Raw {
    truth: RawSpawn,
    echo: RawSpawn,
}

fn call(method: Method, raw: &Raw) {
    match method {
        Method::StdOutput => {
            let out = std::process::Command::new("/bin/echo").arg("hi").output().unwrap();
            assert_eq!(out.stdout, b"hi\n");
            black_box(out);
        }
        Method::OffspringOutput => {
            let out = offspring::Command::new("/bin/echo").arg("hi").output().unwrap();
            assert_eq!(out.stdout, b"hi\n");
            black_box(out);
        }
        Method::OffspringRead => {
            let s = offspring::exec_file("/bin/echo", ["hi"]).read().unwrap();
            assert_eq!(s, "hi");
            black_box(s);
        }
        Method::LibcCapture => {
            let out = raw.echo.capture();
            assert_eq!(out, b"hi\n");
            black_box(out);
        }
        Method::OffspringNoCapture => {
            let status = offspring::Command::new("/bin/echo")
                .arg("hi")
                .stdout(offspring::Stdio::null())
                .stderr(offspring::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        }
        Method::PosixSpawn => {
            raw.truth.run();
        }
        Method::StdStatus => {
            assert!(std::process::Command::new("/bin/true").status().unwrap().success());
        }
        Method::OffspringStatus => {
            assert!(offspring::Command::new("/bin/true").status().unwrap().success());
        }
    }
}

fn main() {
    let Some(args) = Args::parse("small", &["--calls", "--rounds", "--only"]) else { return };
    let calls: usize = args.num("--calls", 200);
    let rounds: usize = args.num("--rounds", 9);
    let only = args.text("--only").map(|name| {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| args.fail(&format!("--only: no method {name:?}")))
    });
    assert!(calls > 0 && rounds > 0, "--calls and --rounds must be at least 1");
    let raw =
        Raw { truth: RawSpawn::new(&["/bin/true"]), echo: RawSpawn::new(&["/bin/echo", "hi"]) };
    if let Some(m) = only {
        // One method alone, `--calls` times, untimed: for `strace -c`, `perf stat` and
        // `valgrind --tool=callgrind`.
        for _ in 0..calls {
            call(m, &raw);
        }
        return;
    }
    // Warm-up: the reaper thread, the page cache, the allocator.
    for m in Method::ALL {
        for _ in 0..20 {
            call(m, &raw);
        }
    }
    // secs[method][round]: mean seconds per call; each[method]: every call's own time;
    // cpu[method][round]: this process's CPU time (user + system, every thread, the reaper's
    // too, but not the children's) per call.
    let n = Method::ALL.len();
    let mut secs = vec![vec![0.0f64; rounds]; n];
    let mut cpu = vec![vec![0.0f64; rounds]; n];
    let mut each = vec![Vec::with_capacity(rounds * calls); n];
    for round in 0..rounds {
        for i in 0..n {
            let m = Method::ALL[(i + round) % n];
            let cpu0 = cpu_secs();
            let start = Instant::now();
            let mut last = start;
            for _ in 0..calls {
                call(m, &raw);
                let now = Instant::now();
                each[m as usize].push((now - last).as_secs_f64());
                last = now;
            }
            secs[m as usize][round] = (last - start).as_secs_f64() / calls as f64;
            cpu[m as usize][round] = (cpu_secs() - cpu0) / calls as f64;
        }
    }
    println!("small capture and spawn: {rounds} interleaved rounds of {calls} calls per method");
    println!("(wall: per-round mean per call; call: median of single calls; cpu: this process)");
    println!(
        "{:<17} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} | {:>7} {:>6} | {:>7} {:>6}  vs",
        "method",
        "wall µs",
        "min",
        "max",
        "ratio",
        "min",
        "max",
        "call µs",
        "ratio",
        "cpu µs",
        "ratio"
    );
    let call_med: Vec<f64> = each.iter_mut().map(|v| median(v)).collect();
    let cpu_med: Vec<f64> = cpu.iter_mut().map(|v| median(&mut v.clone())).collect();
    for m in Method::ALL {
        let mut per = secs[m as usize].clone();
        let r = m.reference();
        let mut ratios: Vec<f64> =
            (0..rounds).map(|k| secs[m as usize][k] / secs[r as usize][k]).collect();
        let med = median(&mut per) * 1e6;
        let (lo, hi) = (per[0] * 1e6, per[rounds - 1] * 1e6);
        let rmed = median(&mut ratios);
        println!(
            "{:<17} {:>8.1} {:>8.1} {:>8.1} {:>6.3} {:>6.3} {:>6.3} | {:>7.1} {:>6.3} | {:>7.1} {:>6.3}  {}",
            m.name(),
            med,
            lo,
            hi,
            rmed,
            ratios[0],
            ratios[rounds - 1],
            call_med[m as usize] * 1e6,
            call_med[m as usize] / call_med[r as usize],
            cpu_med[m as usize] * 1e6,
            cpu_med[m as usize] / cpu_med[r as usize],
            r.name()
        );
    }
}
