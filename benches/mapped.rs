//! Mapped-capture benchmark: 1 GiB from `head -c 1073741824 /dev/zero` into memory through
//! `output_mapped` (a memfd, sealed and mapped), offspring's and std's `output()`, and a
//! C-style pipe loop into a pre-faulted buffer (the pipe floor), in the same run.
//!
//! ```text
//! nice -n 10 cargo bench --bench mapped
//! nice -n 10 cargo bench --bench mapped -- --bytes 1073741824 --rounds 5 --methods a,b,c,d
//! ```
//!
//! | | name | what |
//! | --- | --- | --- |
//! | a | `pipe-floor` | std spawn, `madvise(MADV_POPULATE_WRITE)` on a buffer of the full size, then a libc `read` loop straight into it |
//! | b | `std-output` | `std::process::Command::output()` |
//! | c | `offspring-output` | `offspring::Command::output()` |
//! | d | `offspring-mapped` | `offspring::Command::output_mapped()` |
//!
//! Every method ends with a read of one byte per 4 KiB page of the result (so a mapping whose
//! pages were not faulted in pays for that, as a caller reading the output would), and every
//! measurement runs in a fresh copy of this program (`--one METHOD`), so that its peak RSS
//! (`VmHWM`, which does not count the child; see `benches/common.rs` for why not
//! `ru_maxrss`) and its CPU time (`getrusage(RUSAGE_SELF)`,
//! user + system, all threads, from just before the spawn to the end of the read) belong to
//! that method alone; the child's CPU time (`RUSAGE_CHILDREN`) is shown too, since writing
//! into a memory file costs the child more than writing into a pipe. A round runs every method once, in an order that rotates from round to
//! round; the table gives medians, and ratios of medians against `std-output` and
//! `pipe-floor`. Absolute figures drift 20-40 % between runs on a shared VM; compare ratios.

// The pipe floor is a raw libc loop into a pre-faulted buffer, as the issue specifies.
#![allow(unsafe_code)]

mod common;
use common::{children_cpu_secs, cpu_secs, median, peak_rss, sample_numbers, this_program, Args};
use std::os::fd::AsRawFd;
use std::process::Stdio as StdStdio;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    PipeFloor,
    StdOutput,
    OffspringOutput,
    OffspringMapped,
}

impl Method {
    const ALL: [Method; 4] =
        [Method::PipeFloor, Method::StdOutput, Method::OffspringOutput, Method::OffspringMapped];

    fn letter(self) -> &'static str {
        ["a", "b", "c", "d"][self as usize]
    }

    fn name(self) -> &'static str {
        ["pipe-floor", "std-output", "offspring-output", "offspring-mapped"][self as usize]
    }

    fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.letter() == s || m.name() == s)
    }
}

/// One measurement: wall seconds from spawn to the end of the page read, the peak RSS in
/// bytes, and the parent's and the child's CPU seconds.
struct Sample {
    secs: f64,
    rss: u64,
    cpu: f64,
    child_cpu: f64,
}

fn head_args(bytes: u64) -> [String; 3] {
    ["-c".to_owned(), bytes.to_string(), "/dev/zero".to_owned()]
}

/// Reads one byte per page, as a caller using the output would, and checks it.
fn touch_pages(buf: &[u8]) {
    assert!(buf.iter().step_by(4096).all(|&b| b == 0));
}

/// The pipe floor: read the child's stdout into a buffer whose pages are already faulted in.
fn pipe_floor(bytes: u64) -> u64 {
    let cap = bytes as usize + 1;
    let mut buf: Vec<u8> = Vec::with_capacity(cap);
    let base = buf.as_mut_ptr() as usize;
    let first = (base + 4095) & !4095;
    let last = (base + cap) & !4095;
    if last > first {
        // SAFETY: `first..last` lies inside `buf`'s allocation, which is live and writable;
        // MADV_POPULATE_WRITE only faults the pages in, as a write would, without changing
        // their contents.
        let r = unsafe {
            libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_POPULATE_WRITE)
        };
        assert_eq!(r, 0, "MADV_POPULATE_WRITE: {}", std::io::Error::last_os_error());
    }
    let mut child = std::process::Command::new("head")
        .args(head_args(bytes))
        .stdout(StdStdio::piped())
        .spawn()
        .unwrap();
    let fd = child.stdout.as_ref().unwrap().as_raw_fd();
    let mut len = 0usize;
    loop {
        let want = (cap - len).min(1 << 20);
        // SAFETY: `len + want <= cap`, so the read lands inside `buf`'s allocation; `fd` is the
        // open read end of the child's stdout, owned by `child` for the whole loop.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().add(len).cast(), want) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "{e}");
            continue;
        }
        if n == 0 {
            break;
        }
        len += n as usize;
        assert!(len < cap, "the child wrote more than asked");
    }
    // SAFETY: the first `len` bytes were written by `read`.
    unsafe { buf.set_len(len) };
    assert!(child.wait().unwrap().success());
    touch_pages(&buf);
    len as u64
}

/// Runs one method in this process and returns the elapsed seconds.
fn run_one(method: Method, bytes: u64) -> f64 {
    let start = Instant::now();
    let got: u64 = match method {
        Method::PipeFloor => pipe_floor(bytes),
        Method::StdOutput => {
            let out = std::process::Command::new("head").args(head_args(bytes)).output().unwrap();
            assert!(out.status.success());
            touch_pages(&out.stdout);
            out.stdout.len() as u64
        }
        Method::OffspringOutput => {
            let out = offspring::Command::new("head").args(head_args(bytes)).output().unwrap();
            assert!(out.status.success());
            touch_pages(&out.stdout);
            out.stdout.len() as u64
        }
        Method::OffspringMapped => {
            let out =
                offspring::Command::new("head").args(head_args(bytes)).output_mapped().unwrap();
            assert!(out.status.success());
            assert!(out.stdout.is_mapped());
            touch_pages(&out.stdout);
            out.stdout.len() as u64
        }
    };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, bytes, "{} captured the wrong number of bytes", method.name());
    secs
}

/// Runs `method` in a fresh copy of this program.
fn measure(method: Method, bytes: u64) -> Sample {
    let v = sample_numbers(
        this_program().args(["--one", method.name(), "--bytes", &bytes.to_string()]),
        method.name(),
    );
    Sample { secs: v[0], rss: v[1] as u64, cpu: v[2], child_cpu: v[3] }
}

fn main() {
    let Some(args) = Args::parse("mapped", &["--bytes", "--rounds", "--methods", "--one"]) else {
        return;
    };
    let bytes: u64 = args.num("--bytes", 1 << 30);
    let rounds: usize = args.num("--rounds", 5);
    let methods = args.list("--methods", Method::parse, Method::ALL.to_vec());
    // `--one METHOD`: one sample in this fresh process, for `measure`.
    let one = args.item("--one", Method::parse);

    if let Some(m) = one {
        let cpu0 = cpu_secs();
        let secs = run_one(m, bytes);
        let cpu1 = cpu_secs();
        println!("{secs} {} {} {}", peak_rss(), cpu1 - cpu0, children_cpu_secs());
        return;
    }

    println!(
        "capture {bytes} bytes from `head -c {bytes} /dev/zero` into memory, then read one byte \
         per page; {rounds} rounds, fresh process per sample"
    );
    let mut samples: Vec<Vec<Sample>> = methods.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..methods.len() {
            let j = (k + round) % methods.len();
            samples[j].push(measure(methods[j], bytes));
        }
    }

    let gbps = |secs: f64| bytes as f64 / secs / 1e9;
    let med =
        |j: usize, f: fn(&Sample) -> f64| median(&mut samples[j].iter().map(f).collect::<Vec<_>>());
    let secs: Vec<f64> = (0..methods.len()).map(|j| med(j, |s| s.secs)).collect();
    let cpu: Vec<f64> = (0..methods.len()).map(|j| med(j, |s| s.cpu)).collect();
    let child_cpu: Vec<f64> = (0..methods.len()).map(|j| med(j, |s| s.child_cpu)).collect();
    let find = |m: Method| methods.iter().position(|&x| x == m);
    let (std_j, floor_j) = (find(Method::StdOutput), find(Method::PipeFloor));
    println!(
        "{:<22} {:>7} {:>13} {:>9} {:>9} {:>17} {:>9} {:>11} {:>12}",
        "method",
        "GB/s",
        "min-max",
        "x std",
        "x floor",
        "peak RSS",
        "CPU ms",
        "CPU / std",
        "child CPU ms"
    );
    for (j, m) in methods.iter().enumerate() {
        let rates: Vec<f64> = samples[j].iter().map(|s| gbps(s.secs)).collect();
        let lo = rates.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = rates.iter().cloned().fold(0.0, f64::max);
        let ratio = |base: Option<usize>| {
            base.map_or("-".to_owned(), |b| format!("{:.2}", secs[b] / secs[j]))
        };
        let rss = med(j, |s| s.rss as f64);
        let cpu_ratio = std_j.map_or("-".to_owned(), |b| format!("{:.3}", cpu[j] / cpu[b]));
        println!(
            "{:<22} {:>7.3} {:>13} {:>9} {:>9} {:>7.0} MiB ({:.2}x) {:>9.0} {:>11} {:>12.0}",
            format!("{} {}", m.letter(), m.name()),
            gbps(secs[j]),
            format!("{lo:.3}-{hi:.3}"),
            ratio(std_j),
            ratio(floor_j),
            rss / (1 << 20) as f64,
            rss / bytes as f64,
            cpu[j] * 1e3,
            cpu_ratio,
            child_cpu[j] * 1e3,
        );
    }
}
