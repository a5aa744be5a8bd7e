//! Reaper benchmark (issue 3): what offspring's reaper costs, against raw libc peers measured
//! in the same run.
//!
//! ```text
//! cargo bench --bench reaper
//! cargo bench --bench reaper -- --n 2000 --rounds 5 --latency-n 300 --children 4000 \
//!     --cpu-rounds 3 --only spawn,latency,cpu,idle
//! ```
//!
//! # 1. `spawn`: spawn-and-wait with the reaper in the loop
//!
//! `/bin/true` is started and waited for `--n` times (default 2000) per method, in `--rounds`
//! rounds (default 5) whose method order rotates; every spawn is timed on its own. Methods:
//! `a` offspring `Command::status()` (the caller reaps); `b` offspring `spawn()`, then
//! `exit_receiver()`, drop the `Child`, `recv()` (the reaper reaps); `c` libc `posix_spawn` +
//! `waitpid`, the reference (ratio 1.00); `d` `posix_spawn` + `pidfd_open` + `poll` +
//! `waitid(P_PIDFD)`, the syscalls offspring makes without its bookkeeping. The table gives
//! median, min and max in µs, the range of the per-round medians, the ratio of medians to `c`,
//! and the reaper thread's CPU time per child while that method ran. Target: `a`, `b` ≤ 1.10x.
//!
//! # 2. `latency`: exit-to-wakeup
//!
//! The time from the child's last moment to the waiting thread's return. The child is this
//! benchmark binary itself, re-executed as `reaper-bench --exit-at T`: it sleeps until the
//! absolute `CLOCK_MONOTONIC` instant `T` (5 ms after the parent starts spawning it, so the
//! parent is already blocked in its wait), reads the clock, writes that stamp (8 bytes) to its
//! stdout pipe and `_exit(0)`s. The parent reads the clock when its wait returns and then
//! reads the stamp: latency = return - stamp. It covers the 8-byte pipe write, the kernel's
//! teardown of the child (`exit_mm`, `exit_files`, `exit_notify`), the wake-up and whatever
//! the waiter does before returning, which is what a user sees as "the child exited, my wait
//! returned". `CLOCK_MONOTONIC` is the same clock in both processes. A sample whose stamp is
//! earlier than the parent's entry into its wait (the child started late) is dropped and
//! counted as `late`. Methods: offspring `wait()` (polls the pidfd, reaps on the waiting
//! thread), offspring `exit_receiver().recv()` with the `Child` dropped (the reaper thread
//! reaps and forwards), raw blocking `waitpid`, raw `poll(pidfd)` + `waitid(P_PIDFD)`. Target:
//! offspring `wait()` median under 50 µs.
//!
//! A fifth method spins on `waitpid(WNOHANG)` instead of sleeping: no wake-up at all, so its
//! figure is the part no waiter can avoid (the child's write and exit teardown, and reading
//! the status); the `-spin` column is each median minus that one, the cost of sleeping and
//! waking up plus what the waiter adds. (Not in the kill table below: there a spinning parent
//! holds a CPU the dying child needs, and the figure means nothing.)
//!
//! A second table measures from just before a `SIGKILL` to the wait's return, for an
//! `offspring-fixture sleep-forever` child that has said `ready`: the same wake-up path plus
//! signal delivery and the teardown of a paused process.
//!
//! # 3. `cpu`: reaper CPU for 4,000 children
//!
//! `--children` (default 4000) `offspring-fixture sleep-forever` children, spawned with
//! `kill_on_drop(true)`; the bench keeps each `Child` and its exit receiver. When all run, it
//! drops child `i` at 50 µs * `i` after the last spawn (an absolute-deadline sleep; when behind,
//! it catches up without sleeping): the drop sends `SIGKILL` through the pidfd and leaves the
//! child to the reaper, which reaps all of them. Exits are then 50 µs apart (the step of the
//! team's probe) and all come after spawning ends, whatever the spawn rate; a sleep schedule
//! fixed in advance cannot promise that on a loaded machine, where spawning 4,000 children
//! takes longer than the probe's 1.5 s base. The bench collects the receivers with `try_recv`
//! every 20 ms (a blocking `recv` would make the reaper wake this thread for each child, work
//! the C programs do not do) and checks each child died of `SIGKILL`. The reaper's CPU is read
//! from `/proc/self/task/<tid>/schedstat` (field 1, ns; field 3, `runs`, the times it got a
//! CPU), for the task whose `comm` is `offspring-reap`.
//!
//! Peers, same N, in the same rounds (order rotated): `benches/reaper_floor.c`, our own minimal
//! pidfd + epoll reaper with the same kill schedule (the main thread forks `pause()`ing
//! children, registers them and kills them; the reaper only `epoll_wait`s with no timeout,
//! reaps, unregisters and closes), and, when the file exists, the reference probe
//! `../shared/reference/probes/reaper_bench.c` (or `--probe PATH`), run as `A N 50 0 1500000`,
//! the figure issue 3 names. The probe keeps its own schedule (each child sleeps 1.5 s + `i` *
//! 50 µs from its own fork), polls `epoll_wait` with a 5 ms timeout and registers pidfds on its
//! reaper thread, so it is not a floor. Both are compiled at run time with `cc -O2 -pthread`
//! into `<target>/release/reaper-bench/`; without `cc` they are skipped with a message.
//! Target: offspring ≤ 2.0x the reference probe.
//!
//! # 4. `idle`: an idle reaper
//!
//! With every child reaped, the reaper's CPU time and run count over one second of sleep.
//! Target: 0 ns (no polling timer).
//!
//! `--only` takes a comma-separated list of sections. The soft `RLIMIT_NOFILE` is raised (up to
//! the hard limit) when `--children` needs it: one pidfd per live child. Absolute figures drift
//! between runs on a shared machine; compare the ratios within one run. The default run takes
//! about a minute on two busy cores.

// The raw libc peers, the child's clock and `_exit` need unsafe code.
#![allow(unsafe_code)]

mod common;
use common::{median, Args};
use std::error::Error;
use std::ffi::{c_char, CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use offspring::{Command, Stdio};
use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, WaitId, WaitIdOptions, WaitOptions};

type Res<T> = Result<T, Box<dyn Error>>;

const TRUE: &str = "/bin/true";
const FIXTURE: &str = env!("CARGO_BIN_EXE_offspring-fixture");
/// The argument that turns this binary into the latency child.
const EXIT_AT: &str = "--exit-at";
/// How long after the parent starts spawning the latency child it exits.
const EXIT_DELAY_NS: i64 = 5_000_000;
/// The C probe's schedule (`A 4000 50 0 1500000`): child `i` exits `BASE_US + i * STEP_US`
/// after its fork. The bench's own runs use the step only.
const BASE_US: u64 = 1_500_000;
const STEP_US: u64 = 50;
const REFERENCE_PROBE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/probes/reaper_bench.c");
const FLOOR_SOURCE: &str = include_str!("reaper_floor.c");

struct Options {
    n: usize,
    rounds: usize,
    latency_n: usize,
    children: usize,
    cpu_rounds: usize,
    probe: PathBuf,
    only: Vec<String>,
}

const SECTIONS: [&str; 4] = ["spawn", "latency", "cpu", "idle"];

fn parse_args() -> Option<Options> {
    let args = Args::parse(
        "reaper",
        &["--n", "--rounds", "--latency-n", "--children", "--cpu-rounds", "--probe", "--only"],
    )?;
    let section = |s: &str| SECTIONS.contains(&s).then(|| s.to_owned());
    Some(Options {
        n: args.num("--n", 2000).max(1),
        rounds: args.num("--rounds", 5).max(1),
        latency_n: args.num("--latency-n", 300).max(1),
        children: args.num("--children", 4000).max(1),
        cpu_rounds: args.num("--cpu-rounds", 3).max(1),
        probe: PathBuf::from(args.text("--probe").unwrap_or(REFERENCE_PROBE)),
        only: args.list("--only", section, SECTIONS.iter().map(|s| s.to_string()).collect()),
    })
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == EXIT_AT) {
        exit_at_child(args.get(2));
    }
    let Some(opts) = parse_args() else { return };
    if let Err(e) = run(&opts) {
        eprintln!("reaper bench: {e}");
        std::process::exit(1);
    }
}

fn run(opts: &Options) -> Res<()> {
    raise_nofile(opts.children as u64 + 256);
    // The first spawn starts the reaper thread.
    Command::new(TRUE).status()?;
    let reaper = &Task::reaper()?;
    let want = |s: &str| opts.only.iter().any(|o| o == s);
    if want("spawn") {
        spawn_section(opts, reaper)?;
    }
    if want("latency") {
        latency_section(opts)?;
        kill_latency_section(opts)?;
    }
    if want("cpu") {
        cpu_section(opts, reaper)?;
    }
    if want("idle") {
        idle_section(reaper)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. spawn-and-wait

#[derive(Clone, Copy)]
enum SpawnMethod {
    Status,
    Receiver,
    PosixSpawn,
    Pidfd,
}

impl SpawnMethod {
    const ALL: [SpawnMethod; 4] =
        [SpawnMethod::Status, SpawnMethod::Receiver, SpawnMethod::PosixSpawn, SpawnMethod::Pidfd];

    fn describe(self) -> &'static str {
        match self {
            SpawnMethod::Status => "a offspring status()",
            SpawnMethod::Receiver => "b offspring spawn, drop, exit_receiver",
            SpawnMethod::PosixSpawn => "c posix_spawn + waitpid",
            SpawnMethod::Pidfd => "d posix_spawn + pidfd poll + waitid",
        }
    }

    fn run(self, raw: &RawProgram) -> Res<()> {
        match self {
            SpawnMethod::Status => expect_code(Command::new(TRUE).status()?.code()),
            SpawnMethod::Receiver => {
                let child = Command::new(TRUE).spawn()?;
                let rx = child.exit_receiver();
                drop(child);
                expect_code(rx.recv()?.status()?.code())
            }
            SpawnMethod::PosixSpawn => {
                let pid = raw.spawn(None)?;
                expect_code(waitpid(pid)?.exit_status())
            }
            SpawnMethod::Pidfd => {
                let pid = raw.spawn(None)?;
                let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
                expect_code(pidfd_wait(pidfd.as_fd())?.0)
            }
        }
    }
}

fn expect_code(code: Option<i32>) -> Res<()> {
    match code {
        Some(0) => Ok(()),
        other => Err(format!("child exited with code {other:?}, expected 0").into()),
    }
}

fn spawn_section(opts: &Options, reaper: &Task) -> Res<()> {
    let raw = RawProgram::new(OsStr::new(TRUE), &[]);
    let methods = SpawnMethod::ALL;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
    let mut round_medians: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
    let mut reaper_ns = vec![0u64; methods.len()];
    for m in methods {
        for _ in 0..20 {
            m.run(&raw)?;
        }
    }
    for round in 0..opts.rounds {
        let count = opts.n / opts.rounds + usize::from(round < opts.n % opts.rounds);
        for k in 0..methods.len() {
            let i = (k + round) % methods.len();
            let mut times = Vec::with_capacity(count);
            let before = reaper.sample()?;
            for _ in 0..count {
                let start = Instant::now();
                methods[i].run(&raw)?;
                times.push(start.elapsed().as_secs_f64() * 1e6);
            }
            reaper_ns[i] += reaper.sample()?.cpu_ns - before.cpu_ns;
            if !times.is_empty() {
                round_medians[i].push(median(&mut times.clone()));
                samples[i].extend(times);
            }
        }
    }
    println!(
        "\n1. spawn+wait {TRUE}, {} per method, {} rounds, order rotated (us per child)",
        opts.n, opts.rounds
    );
    println!(
        "{:<40} {:>5} {:>8} {:>8} {:>8} {:>13} {:>6} {:>14}",
        "method", "n", "median", "min", "max", "round meds", "ratio", "reaper us/chld"
    );
    let reference = median(&mut samples[2].clone());
    let mut medians = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        let s = &mut samples[i];
        let med = median(s);
        medians.push(med);
        round_medians[i].sort_by(f64::total_cmp);
        let rm = &round_medians[i];
        println!(
            "{:<40} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>13} {:>6.2} {:>14.2}",
            m.describe(),
            s.len(),
            med,
            s[0],
            s[s.len() - 1],
            format!("{:.0}-{:.0}", rm[0], rm[rm.len() - 1]),
            med / reference,
            reaper_ns[i] as f64 / 1e3 / s.len() as f64,
        );
    }
    println!(
        "target: a and b <= 1.10x c: a {:.2}x {}, b {:.2}x {}",
        medians[0] / reference,
        verdict(medians[0] / reference <= 1.10),
        medians[1] / reference,
        verdict(medians[1] / reference <= 1.10),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. exit-to-wakeup latency

#[derive(Clone, Copy, PartialEq, Eq)]
enum WaitMethod {
    OffspringWait,
    OffspringRecv,
    Waitpid,
    Pidfd,
    Spin,
}

impl WaitMethod {
    const ALL: [WaitMethod; 5] = [
        WaitMethod::OffspringWait,
        WaitMethod::OffspringRecv,
        WaitMethod::Waitpid,
        WaitMethod::Pidfd,
        WaitMethod::Spin,
    ];

    fn describe(self) -> &'static str {
        match self {
            WaitMethod::OffspringWait => "offspring wait()",
            WaitMethod::OffspringRecv => "offspring exit_receiver().recv() (reaper)",
            WaitMethod::Waitpid => "raw waitpid (reference)",
            WaitMethod::Pidfd => "raw poll(pidfd) + waitid(P_PIDFD)",
            WaitMethod::Spin => "raw waitpid(WNOHANG) spin: no wake-up",
        }
    }

    /// Waits for a raw child with this method: (exit code, terminating signal).
    fn wait_raw(self, pid: Pid) -> Res<(Option<i32>, Option<i32>)> {
        let status = match self {
            WaitMethod::Waitpid => waitpid(pid)?,
            WaitMethod::Spin => loop {
                if let Some((_, status)) = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG)?
                {
                    break status;
                }
                std::hint::spin_loop();
            },
            _ => {
                let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
                return Ok(pidfd_wait(pidfd.as_fd())?);
            }
        };
        Ok((status.exit_status(), status.terminating_signal()))
    }
}

/// One latency sample, `CLOCK_MONOTONIC` ns.
struct Stamps {
    /// The parent is about to wait.
    wait_start: i64,
    /// The child's last clock reading (exit case) or just before `kill` (kill case).
    origin: i64,
    /// The parent's wait returned.
    end: i64,
}

/// Runs `f` between two clock readings.
fn timed<T>(f: impl FnOnce() -> Res<T>) -> Res<(i64, i64, T)> {
    let start = mono_ns();
    let value = f()?;
    Ok((start, mono_ns(), value))
}

/// One exit-stamped child: spawn this binary as `--exit-at T`, wait, read its stamp.
fn exit_sample(method: WaitMethod, exe: &OsStr) -> Res<Stamps> {
    let target = mono_ns() + EXIT_DELAY_NS;
    let target_arg = OsString::from(target.to_string());
    let ((wait_start, end, code), out) = match method {
        WaitMethod::OffspringWait | WaitMethod::OffspringRecv => {
            let mut child =
                Command::new(exe).arg(EXIT_AT).arg(&target_arg).stdout(Stdio::piped()).spawn()?;
            let out = File::from(OwnedFd::from(child.stdout.take().ok_or("no stdout pipe")?));
            let timing = if method == WaitMethod::OffspringWait {
                timed(|| Ok(child.wait()?.code()))?
            } else {
                let rx = child.exit_receiver();
                drop(child);
                timed(|| Ok(rx.recv()?.status()?.code()))?
            };
            (timing, out)
        }
        _ => {
            let raw = RawProgram::new(exe, &[OsStr::new(EXIT_AT), &target_arg]);
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            let pid = raw.spawn(Some(w.as_fd()))?;
            drop(w);
            (timed(|| Ok(method.wait_raw(pid)?.0))?, File::from(r))
        }
    };
    expect_code(code)?;
    let mut stamp = [0u8; 8];
    (&out).read_exact(&mut stamp)?;
    Ok(Stamps { wait_start, origin: i64::from_ne_bytes(stamp), end })
}

/// One killed child: `offspring-fixture sleep-forever`, read `ready`, then `SIGKILL` and wait.
fn kill_sample(method: WaitMethod) -> Res<Stamps> {
    let mut ready = [0u8; 6];
    let (origin, end, signal) = match method {
        WaitMethod::OffspringWait | WaitMethod::OffspringRecv => {
            let mut child =
                Command::new(FIXTURE).arg("sleep-forever").stdout(Stdio::piped()).spawn()?;
            child.stdout.as_mut().ok_or("no stdout pipe")?.read_exact(&mut ready)?;
            if method == WaitMethod::OffspringWait {
                timed(|| {
                    child.kill()?;
                    Ok(child.wait()?.signal().map(|s| s.as_raw()))
                })?
            } else {
                let rx = child.exit_receiver();
                timed(|| {
                    child.kill()?;
                    Ok(rx.recv()?.status()?.signal().map(|s| s.as_raw()))
                })?
            }
        }
        _ => {
            let raw = RawProgram::new(OsStr::new(FIXTURE), &[OsStr::new("sleep-forever")]);
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            let pid = raw.spawn(Some(w.as_fd()))?;
            drop(w);
            File::from(r).read_exact(&mut ready)?;
            timed(|| {
                rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
                Ok(method.wait_raw(pid)?.1)
            })?
        }
    };
    if &ready != b"ready\n" {
        return Err(
            format!("fixture said {:?}, expected ready", String::from_utf8_lossy(&ready)).into()
        );
    }
    if signal != Some(libc::SIGKILL) {
        return Err(format!("child ended with signal {signal:?}, expected SIGKILL").into());
    }
    Ok(Stamps { wait_start: origin, origin, end })
}

fn latency_section(opts: &Options) -> Res<()> {
    let exe = std::env::current_exe()?;
    let title = format!(
        "2. exit-to-wakeup: child stamps CLOCK_MONOTONIC, writes it, _exit(0); \
         until the parent's wait returns ({} per method, {} rounds; us)",
        opts.latency_n, opts.rounds
    );
    latency_table(opts, &title, &WaitMethod::ALL, |m| exit_sample(m, exe.as_os_str()))
}

fn kill_latency_section(opts: &Options) -> Res<()> {
    let title = format!(
        "2b. kill-to-wakeup: SIGKILL to a paused fixture until the wait returns \
         ({} per method, {} rounds; us)",
        opts.latency_n, opts.rounds
    );
    // No spinning peer here: a spinning parent holds a CPU the dying child needs.
    latency_table(opts, &title, &WaitMethod::ALL[..4], kill_sample)
}

/// Samples `methods` (in `WaitMethod::ALL` order; raw `waitpid` is the reference, a spinning
/// waiter the floor if present) in rotated rounds and prints their table.
fn latency_table(
    opts: &Options,
    title: &str,
    methods: &[WaitMethod],
    mut sample: impl FnMut(WaitMethod) -> Res<Stamps>,
) -> Res<()> {
    let mut latency: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
    let mut late = vec![0usize; methods.len()];
    for &m in methods {
        for _ in 0..5 {
            sample(m)?;
        }
    }
    for round in 0..opts.rounds {
        let count =
            opts.latency_n / opts.rounds + usize::from(round < opts.latency_n % opts.rounds);
        for k in 0..methods.len() {
            let i = (k + round) % methods.len();
            for _ in 0..count {
                let s = sample(methods[i])?;
                if s.origin < s.wait_start {
                    late[i] += 1;
                } else {
                    latency[i].push((s.end - s.origin) as f64 / 1e3);
                }
            }
        }
    }
    println!("\n{title}");
    println!(
        "{:<42} {:>4} {:>4} {:>7} {:>7} {:>6} {:>7} {:>5} {:>8}",
        "method", "n", "late", "median", "p90", "min", "max", "ratio", "-spin"
    );
    let medians: Vec<f64> = latency
        .iter()
        .map(|s| if s.is_empty() { f64::NAN } else { median(&mut s.clone()) })
        .collect();
    let reference = medians[2];
    let spin = methods.iter().position(|&m| m == WaitMethod::Spin).map(|i| medians[i]);
    for (i, m) in methods.iter().enumerate() {
        let s = &mut latency[i];
        if s.is_empty() {
            println!("{:<42} {:>4} {:>4} (no samples)", m.describe(), 0, late[i]);
            continue;
        }
        s.sort_by(f64::total_cmp);
        println!(
            "{:<42} {:>4} {:>4} {:>7.1} {:>7.1} {:>6.1} {:>7.1} {:>5.2} {:>8}",
            m.describe(),
            s.len(),
            late[i],
            medians[i],
            percentile(s, 0.90),
            s[0],
            s[s.len() - 1],
            medians[i] / reference,
            spin.map_or("-".into(), |f| format!("{:.1}", medians[i] - f)),
        );
    }
    print!(
        "target: offspring wait() median < 50 us: {:.1} us {}",
        medians[0],
        verdict(medians[0] < 50.0)
    );
    match spin {
        Some(f) => println!(
            "; {:.1} us above the no-wake-up spin, raw waitpid {:.1} us above it",
            medians[0] - f,
            reference - f
        ),
        None => println!(),
    }
    Ok(())
}

/// The latency child: sleep until `CLOCK_MONOTONIC` reaches the argument, write the clock to
/// stdout, `_exit(0)`.
fn exit_at_child(target: Option<&OsString>) -> ! {
    let target: i64 = target.and_then(|t| t.to_str()?.parse().ok()).unwrap_or(0);
    sleep_until_ns(target);
    let stamp = mono_ns();
    let code = match rustix::io::write(io::stdout(), &stamp.to_ne_bytes()) {
        Ok(8) => 0,
        _ => 1,
    };
    // SAFETY: `_exit` ends the process at once; nothing is buffered (the stamp went out through
    // a raw write) and no destructor has to run.
    unsafe { libc::_exit(code) }
}

// ---------------------------------------------------------------------------------------------
// 3. reaper CPU for many children

/// One run of a reaper over `--children` children.
struct CpuRun {
    cpu_ns: u64,
    /// How many times the reaper thread got a CPU (the probe does not say).
    runs: Option<u64>,
    wall_s: f64,
    spawn_s: f64,
    ok: usize,
}

fn cpu_section(opts: &Options, reaper: &Task) -> Res<()> {
    let out_dir = bench_out_dir()?;
    let floor = compile_c("reaper_floor", Source::Text(FLOOR_SOURCE), &out_dir);
    let probe = if opts.probe.exists() {
        compile_c("reaper_bench_ref", Source::Path(&opts.probe), &out_dir)
    } else {
        Err(format!("{} not found", opts.probe.display()))
    };
    let n = opts.children;
    type Runner<'a> = Box<dyn Fn() -> Res<CpuRun> + 'a>;
    let mut peers: Vec<(String, Runner<'_>)> =
        vec![("offspring reaper thread".into(), Box::new(|| offspring_cpu_run(n, reaper)))];
    match &floor {
        Ok(bin) => {
            peers.push(("C floor (benches/reaper_floor.c)".into(), Box::new(|| floor_run(bin, n))))
        }
        Err(why) => println!("\n(skipping the C floor: {why})"),
    }
    match &probe {
        Ok(bin) => peers.push(("C reference probe, mode A".into(), Box::new(|| probe_run(bin, n)))),
        Err(why) => println!("\n(skipping the reference probe: {why})"),
    }
    let mut runs: Vec<Vec<CpuRun>> = peers.iter().map(|_| Vec::new()).collect();
    for round in 0..opts.cpu_rounds {
        for k in 0..peers.len() {
            let i = (k + round) % peers.len();
            runs[i].push((peers[i].1)()?);
        }
    }
    println!(
        "\n3. reaper CPU for {n} children, child i killed i*{STEP_US} us after the last spawn \
         (the probe: exits {} s + i*{STEP_US} us after its fork); {} rounds, order rotated",
        BASE_US as f64 / 1e6,
        opts.cpu_rounds
    );
    println!(
        "{:<36} {:>10} {:>15} {:>8} {:>7} {:>8} {:>9} {:>6}",
        "reaper", "cpu ms", "rounds", "runs", "wall s", "spawn s", "statuses", "ratio"
    );
    let medians: Vec<f64> = runs
        .iter()
        .map(|r| median(&mut r.iter().map(|x| x.cpu_ns as f64 / 1e6).collect::<Vec<_>>()))
        .collect();
    let reference = if probe.is_ok() { medians.last().copied() } else { None };
    for (i, (name, _)) in peers.iter().enumerate() {
        let r = &runs[i];
        let mut cpu: Vec<f64> = r.iter().map(|x| x.cpu_ns as f64 / 1e6).collect();
        cpu.sort_by(f64::total_cmp);
        let med = |f: fn(&CpuRun) -> f64| median(&mut r.iter().map(f).collect::<Vec<_>>());
        println!(
            "{:<36} {:>10.1} {:>15} {:>8} {:>7.2} {:>8.2} {:>9} {:>6}",
            name,
            medians[i],
            format!("{:.1}-{:.1}", cpu[0], cpu[cpu.len() - 1]),
            r[0].runs.map_or("-".into(), |_| format!("{:.0}", med(|x| x.runs.unwrap_or(0) as f64))),
            med(|x| x.wall_s),
            med(|x| x.spawn_s),
            format!("{}/{n}", r.iter().map(|x| x.ok).min().unwrap_or(0)),
            reference.map_or("-".into(), |rf| format!("{:.2}", medians[i] / rf)),
        );
    }
    match reference {
        Some(rf) => println!(
            "target: offspring <= 2.0x the reference probe: {:.2}x {}{}",
            medians[0] / rf,
            verdict(medians[0] / rf <= 2.0),
            if floor.is_ok() {
                format!("; {:.2}x the floor", medians[0] / medians[1])
            } else {
                String::new()
            }
        ),
        None if floor.is_ok() => println!(
            "no reference probe; offspring is {:.2}x the floor (target 2.0x the probe)",
            medians[0] / medians[1]
        ),
        None => println!("no C peer ran: no ratio"),
    }
    Ok(())
}

fn offspring_cpu_run(n: usize, reaper: &Task) -> Res<CpuRun> {
    let before = reaper.sample()?;
    let start = Instant::now();
    let mut children = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let child = Command::new(FIXTURE)
            .arg("sleep-forever")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        receivers.push(child.exit_receiver());
        children.push(child);
    }
    let spawn_s = start.elapsed().as_secs_f64();
    // Child i is killed and handed to the reaper STEP_US * i after the last spawn.
    let t = mono_ns();
    for (i, child) in children.into_iter().enumerate() {
        let due = t + (i as u64 * STEP_US * 1000) as i64;
        if mono_ns() < due {
            sleep_until_ns(due);
        }
        drop(child);
    }
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut ok = 0;
    while !receivers.is_empty() {
        pause(Duration::from_millis(20));
        let mut failed = None;
        receivers.retain(|rx| match rx.try_recv() {
            Ok(exit) => {
                match exit.status() {
                    Ok(s) if s.signal() == Some(offspring::Signal::KILL) => ok += 1,
                    other => failed = Some(format!("{other:?}")),
                }
                false
            }
            Err(crossbeam_channel::TryRecvError::Empty) => true,
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                failed = Some("exit channel disconnected".into());
                false
            }
        });
        if let Some(why) = failed {
            return Err(format!("a child ended badly: {why}").into());
        }
        if Instant::now() > give_up {
            return Err(format!("{} children not reaped after 60 s", receivers.len()).into());
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    // Let the reaper finish its last iteration (unregistering the last child).
    pause(Duration::from_millis(20));
    let after = reaper.sample()?;
    Ok(CpuRun {
        cpu_ns: after.cpu_ns - before.cpu_ns,
        runs: Some(after.runs - before.runs),
        wall_s,
        spawn_s,
        ok,
    })
}

/// Parses `key=<number>` out of a line of `key=value` words; `strip` is removed from the value.
fn field(line: &str, key: &str, strip: &str) -> Res<f64> {
    let word = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("no {key}= in {line:?}"))?;
    let word = word.trim_end_matches(strip);
    let word = word.split('/').next().unwrap_or(word);
    Ok(word.parse::<f64>().map_err(|_| format!("{key}={word}: not a number"))?)
}

fn run_c(bin: &Path, args: &[String]) -> Res<String> {
    let out = std::process::Command::new(bin).args(args).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {stdout}{}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(stdout)
}

fn floor_run(bin: &Path, n: usize) -> Res<CpuRun> {
    let out = run_c(bin, &[n.to_string(), STEP_US.to_string()])?;
    let line = out.lines().find(|l| l.starts_with("floor ")).ok_or("no output from the floor")?;
    Ok(CpuRun {
        cpu_ns: field(line, "reaper_cpu_ns", "")? as u64,
        runs: Some(field(line, "reaper_runs", "")? as u64),
        wall_s: field(line, "wall_s", "")?,
        spawn_s: field(line, "spawn_s", "")?,
        ok: field(line, "statuses_ok", "")? as usize,
    })
}

fn probe_run(bin: &Path, n: usize) -> Res<CpuRun> {
    let args = ["A".into(), n.to_string(), STEP_US.to_string(), "0".into(), BASE_US.to_string()];
    let out = run_c(bin, &args)?;
    let line = out.lines().find(|l| l.starts_with("mode=A")).ok_or("no output from the probe")?;
    // `wall=2.479s (spawn 0.776s)`: the spawn time is the word after `(spawn`.
    let spawn_s = line
        .split("(spawn ")
        .nth(1)
        .and_then(|s| s.split('s').next()?.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    Ok(CpuRun {
        cpu_ns: (field(line, "reaper_cpu", "s")? * 1e9) as u64,
        // The probe counts syscalls, not runs.
        runs: None,
        wall_s: field(line, "wall", "s")?,
        spawn_s,
        ok: field(line, "statuses_ok", "")? as usize,
    })
}

enum Source<'a> {
    Text(&'a str),
    Path(&'a Path),
}

/// Compiles a C program with `cc -O2 -pthread` into `out_dir`; `Err` says why not.
fn compile_c(name: &str, source: Source<'_>, out_dir: &Path) -> Result<PathBuf, String> {
    let src = match source {
        Source::Path(p) => p.to_path_buf(),
        Source::Text(text) => {
            let p = out_dir.join(format!("{name}.c"));
            std::fs::write(&p, text).map_err(|e| format!("writing {}: {e}", p.display()))?;
            p
        }
    };
    let bin = out_dir.join(name);
    let out = std::process::Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc {} failed: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

/// `<target>/release/reaper-bench`: the bench binary lives in `<target>/release/deps`.
fn bench_out_dir() -> Res<PathBuf> {
    let exe = std::env::current_exe()?;
    let release = exe.parent().and_then(Path::parent).ok_or("bench binary has no parent dir")?;
    let dir = release.join("reaper-bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

// ---------------------------------------------------------------------------------------------
// 4. idle reaper

fn idle_section(reaper: &Task) -> Res<()> {
    let before = reaper.sample()?;
    pause(Duration::from_secs(1));
    let after = reaper.sample()?;
    let cpu = after.cpu_ns - before.cpu_ns;
    println!(
        "\n4. idle reaper over 1 s: {cpu} ns CPU, ran {} times; target 0 ns {}",
        after.runs - before.runs,
        verdict(cpu == 0)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Threads, seen from /proc

/// A thread of this process, for its `schedstat`.
struct Task {
    schedstat: PathBuf,
}

struct TaskSample {
    /// ns on a CPU.
    cpu_ns: u64,
    /// How many times it got a CPU.
    runs: u64,
}

impl Task {
    /// The task of this process named `offspring-reap`. The
    /// new thread names itself, so this retries for a while.
    fn reaper() -> Res<Task> {
        let give_up = Instant::now() + Duration::from_secs(2);
        loop {
            let mut seen = Vec::new();
            for entry in std::fs::read_dir("/proc/self/task")? {
                let dir = entry?.path();
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                let comm = comm.trim_end();
                if comm == "offspring-reap" {
                    return Ok(Task { schedstat: dir.join("schedstat") });
                }
                seen.push(comm.to_owned());
            }
            if Instant::now() > give_up {
                return Err(format!("no offspring-reap thread among {seen:?}").into());
            }
            pause(Duration::from_millis(5));
        }
    }

    /// `schedstat`: ns on the CPU, ns waiting for it, times it ran.
    fn sample(&self) -> Res<TaskSample> {
        let text = std::fs::read_to_string(&self.schedstat)?;
        let mut fields = text.split_whitespace().map(|f| f.parse::<u64>());
        let mut next = || fields.next().ok_or("short schedstat");
        let cpu_ns = next()??;
        let _queued_ns = next()??;
        Ok(TaskSample { cpu_ns, runs: next()?? })
    }
}

// ---------------------------------------------------------------------------------------------
// Raw peers and helpers

/// A program, its argv and the parent's environment as C arrays, built before any timing.
struct RawProgram {
    path: CString,
    /// Owns the strings that `argv` and `envp` point into.
    _strings: Vec<CString>,
    /// NULL-terminated.
    argv: Vec<*mut c_char>,
    /// NULL-terminated.
    envp: Vec<*mut c_char>,
}

impl RawProgram {
    fn new(path: &OsStr, args: &[&OsStr]) -> RawProgram {
        let c = |s: &[u8]| CString::new(s).expect("no NUL in the bench's own arguments");
        let path = c(path.as_bytes());
        let mut strings = vec![path.clone()];
        strings.extend(args.iter().map(|a| c(a.as_bytes())));
        let argc = strings.len();
        strings.extend(std::env::vars_os().map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            c(&kv)
        }));
        let ptrs = |s: &[CString]| {
            let mut v: Vec<*mut c_char> = s.iter().map(|s| s.as_ptr().cast_mut()).collect();
            v.push(std::ptr::null_mut());
            v
        };
        let argv = ptrs(&strings[..argc]);
        let envp = ptrs(&strings[argc..]);
        RawProgram { path, _strings: strings, argv, envp }
    }

    /// `posix_spawn`s the program, with its stdout on `stdout` when given, else inherited.
    fn spawn(&self, stdout: Option<BorrowedFd<'_>>) -> io::Result<Pid> {
        let mut pid: libc::pid_t = 0;
        let mut actions = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        let actions_ptr = match stdout {
            None => std::ptr::null(),
            Some(fd) => {
                // SAFETY: initialises the file-actions object in place; it is destroyed below
                // before `actions` goes out of scope.
                let rc = unsafe { libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) };
                if rc != 0 {
                    return Err(io::Error::from_raw_os_error(rc));
                }
                // SAFETY: `actions` was initialised above; `fd` stays open for the spawn.
                let rc = unsafe {
                    libc::posix_spawn_file_actions_adddup2(actions.as_mut_ptr(), fd.as_raw_fd(), 1)
                };
                if rc != 0 {
                    // SAFETY: initialised above, destroyed once.
                    unsafe { libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr()) };
                    return Err(io::Error::from_raw_os_error(rc));
                }
                actions.as_ptr()
            }
        };
        // SAFETY: `path` is a C string and `argv`/`envp` NULL-terminated arrays of C strings,
        // all owned by `self` and alive for the call; the file actions are null or initialised;
        // null attributes ask for the defaults.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.path.as_ptr(),
                actions_ptr,
                std::ptr::null(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            )
        };
        if stdout.is_some() {
            // SAFETY: initialised above, destroyed once.
            unsafe { libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr()) };
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Pid::from_raw(pid).ok_or_else(|| io::Error::other("posix_spawn returned pid 0"))
    }
}

fn waitpid(pid: Pid) -> io::Result<rustix::process::WaitStatus> {
    let status =
        rustix::io::retry_on_intr(|| rustix::process::waitpid(Some(pid), WaitOptions::empty()))?;
    status.map(|(_, s)| s).ok_or_else(|| io::Error::other("waitpid returned no status"))
}

/// `poll` on the pidfd until the child exits, then `waitid(P_PIDFD)`: (exit code, signal).
fn pidfd_wait(pidfd: BorrowedFd<'_>) -> io::Result<(Option<i32>, Option<i32>)> {
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    rustix::io::retry_on_intr(|| rustix::event::poll(&mut fds, None))?;
    let status = rustix::io::retry_on_intr(|| {
        rustix::process::waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED | WaitIdOptions::NOHANG)
    })?
    .ok_or_else(|| io::Error::other("pidfd readable but no exit status"))?;
    Ok((status.exit_status(), status.terminating_signal()))
}

/// `CLOCK_MONOTONIC` in ns: `Instant` uses the same clock but hides its value, and the latency
/// child has to send its reading to another process.
fn mono_ns() -> i64 {
    let mut ts = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr()) };
    // SAFETY: clock_gettime filled it (it cannot fail with a valid clock and pointer).
    let ts = unsafe { ts.assume_init() };
    // `time_t` and `c_long` are narrower than i64 on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let ns = ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64;
    ns
}

/// Sleeps until `CLOCK_MONOTONIC` reads `ns` (an absolute deadline does not drift).
fn sleep_until_ns(ns: i64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a valid timespec on the stack; the remaining-time pointer may be null
    // with TIMER_ABSTIME.
    while unsafe {
        libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut())
    } == libc::EINTR
    {}
}

/// Raises the soft `RLIMIT_NOFILE` to `want` (at most the hard limit): one pidfd per live child.
fn raise_nofile(want: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let soft = lim.current.unwrap_or(u64::MAX);
    if soft >= want {
        return;
    }
    let new = lim.maximum.map_or(want, |hard| hard.min(want));
    if setrlimit(Resource::Nofile, Rlimit { current: Some(new), maximum: lim.maximum }).is_err()
        || new < want
    {
        eprintln!("reaper bench: RLIMIT_NOFILE is {soft}, wanted {want}; spawning may fail");
    }
}

#[allow(clippy::disallowed_methods)] // reason: the bench waits for wall-clock time on purpose
fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "(met)"
    } else {
        "(MISSED)"
    }
}

/// The `p` quantile (nearest rank) of a sorted slice.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
