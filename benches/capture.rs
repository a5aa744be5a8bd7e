//! Capture benchmark: reading 1 GiB from `head -c 1073741824 /dev/zero` into memory and as a
//! stream, through offspring and through its peers, in the same run.
//!
//! ```text
//! nice -n 10 cargo bench --bench capture
//! nice -n 10 cargo bench --bench capture -- --bytes 1073741824 --rounds 5 --methods a,b,c,d,e
//! ```
//!
//! Methods (pick with `--methods`, by letter or name; default all):
//!
//! | | name | what |
//! | --- | --- | --- |
//! | a | `count` | std spawn, then a libc `read` loop of 64 KiB into one buffer, counting bytes: the streaming floor |
//! | b | `std-output` | `std::process::Command::output()`: the in-memory reference |
//! | c | `offspring-output` | `offspring::Command::output()` |
//! | d | `offspring-stream` | `Child::stdout_reader()` and `Read::read` of 64 KiB, counting bytes |
//! | e | `offspring-stream-deadline` | the same with `OutputReader::read_deadline` |
//!
//! Every measurement runs in a fresh copy of this program (`--one METHOD`), so that its peak
//! RSS (`VmHWM`, which does not count the child; see `benches/common.rs` for why not
//! `ru_maxrss`) belongs to that method alone, and no method inherits another's heap. A round
//! runs every method once, in an order that rotates from round to round. The table gives the median throughput (GB/s, 10^9
//! bytes per second, wall time from spawn to the last byte and the exit status), the range, the
//! ratios of the median to `std-output`'s and to `count`'s, and the median peak RSS as a
//! multiple of the captured size. Absolute figures drift 20-40 % between runs on a shared VM;
//! compare ratios.

// The counting loop is a raw libc read loop, as the issue specifies; that needs unsafe code.
#![allow(unsafe_code)]

mod common;
use common::{median, peak_rss, sample_numbers, this_program, Args};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::Stdio as StdStdio;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Count,
    StdOutput,
    OffspringOutput,
    OffspringStream,
    OffspringStreamDeadline,
}

impl Method {
    const ALL: [Method; 5] = [
        Method::Count,
        Method::StdOutput,
        Method::OffspringOutput,
        Method::OffspringStream,
        Method::OffspringStreamDeadline,
    ];

    fn letter(self) -> &'static str {
        ["a", "b", "c", "d", "e"][self as usize]
    }

    fn name(self) -> &'static str {
        ["count", "std-output", "offspring-output", "offspring-stream", "offspring-stream-deadline"]
            [self as usize]
    }

    fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.letter() == s || m.name() == s)
    }
}

/// One measurement: seconds from spawn to exit status, and the peak RSS in bytes.
struct Sample {
    secs: f64,
    rss: u64,
}

const CHUNK: usize = 64 * 1024;

fn head_args(bytes: u64) -> [String; 3] {
    ["-c".to_owned(), bytes.to_string(), "/dev/zero".to_owned()]
}

/// Runs one method in this process and returns the elapsed seconds.
fn run_one(method: Method, bytes: u64) -> f64 {
    let start = Instant::now();
    let got: u64 = match method {
        Method::Count => {
            let mut child = std::process::Command::new("head")
                .args(head_args(bytes))
                .stdout(StdStdio::piped())
                .spawn()
                .unwrap();
            let fd = child.stdout.as_ref().unwrap().as_raw_fd();
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                // SAFETY: `buf` is a live, writable buffer of `CHUNK` bytes and `fd` is the open
                // read end of the child's stdout, owned by `child` for the whole loop.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), CHUNK) };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "{e}");
                    continue;
                }
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            assert!(child.wait().unwrap().success());
            total
        }
        Method::StdOutput => {
            let out = std::process::Command::new("head").args(head_args(bytes)).output().unwrap();
            assert!(out.status.success());
            check_zeros(&out.stdout);
            out.stdout.len() as u64
        }
        Method::OffspringOutput => {
            let out = offspring::Command::new("head").args(head_args(bytes)).output().unwrap();
            assert!(out.status.success());
            check_zeros(&out.stdout);
            out.stdout.len() as u64
        }
        Method::OffspringStream | Method::OffspringStreamDeadline => {
            let mut child = offspring::Command::new("head")
                .args(head_args(bytes))
                .stdout(offspring::Stdio::piped())
                .spawn()
                .unwrap();
            let mut reader = child.stdout_reader().unwrap();
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            let far = Instant::now() + Duration::from_secs(3600);
            loop {
                let n = if method == Method::OffspringStream {
                    reader.read(&mut buf).unwrap()
                } else {
                    reader.read_deadline(&mut buf, far).unwrap()
                };
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            assert!(child.wait().unwrap().success());
            total
        }
    };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, bytes, "{} captured the wrong number of bytes", method.name());
    secs
}

/// A cheap check that the buffer really holds what `head` wrote: sample one byte per page.
fn check_zeros(buf: &[u8]) {
    assert!(buf.iter().step_by(4096).all(|&b| b == 0));
}

/// Runs `method` in a fresh copy of this program.
fn measure(method: Method, bytes: u64) -> Sample {
    let v = sample_numbers(
        this_program().args(["--one", method.name(), "--bytes", &bytes.to_string()]),
        method.name(),
    );
    Sample { secs: v[0], rss: v[1] as u64 }
}

fn main() {
    let Some(args) = Args::parse("capture", &["--bytes", "--rounds", "--methods", "--one"]) else {
        return;
    };
    let bytes: u64 = args.num("--bytes", 1 << 30);
    let rounds: usize = args.num("--rounds", 5);
    let methods = args.list("--methods", Method::parse, Method::ALL.to_vec());
    // `--one METHOD`: one sample in this fresh process, for `measure`.
    let one = args.item("--one", Method::parse);

    if let Some(m) = one {
        let secs = run_one(m, bytes);
        println!("{secs} {}", peak_rss());
        return;
    }

    println!(
        "capture {} bytes from `head -c {bytes} /dev/zero`, {rounds} rounds, fresh process per sample",
        bytes
    );
    let mut samples: Vec<Vec<Sample>> = methods.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..methods.len() {
            let j = (k + round) % methods.len();
            samples[j].push(measure(methods[j], bytes));
        }
    }

    let gbps = |secs: f64| bytes as f64 / secs / 1e9;
    let med_secs: Vec<f64> =
        samples.iter().map(|s| median(&mut s.iter().map(|x| x.secs).collect::<Vec<_>>())).collect();
    let find = |m: Method| methods.iter().position(|&x| x == m).map(|j| med_secs[j]);
    let (std_secs, count_secs) = (find(Method::StdOutput), find(Method::Count));
    println!(
        "{:<28} {:>9} {:>15} {:>10} {:>10} {:>12}",
        "method", "GB/s", "min-max", "x std-out", "x count", "peak RSS"
    );
    for (j, m) in methods.iter().enumerate() {
        let rates: Vec<f64> = samples[j].iter().map(|s| gbps(s.secs)).collect();
        let lo = rates.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = rates.iter().cloned().fold(0.0, f64::max);
        let ratio =
            |base: Option<f64>| base.map_or("-".to_owned(), |b| format!("{:.2}", b / med_secs[j]));
        let rss = median(&mut samples[j].iter().map(|s| s.rss as f64).collect::<Vec<_>>());
        println!(
            "{:<28} {:>9.3} {:>15} {:>10} {:>10} {:>7.0} MiB ({:.3}x)",
            format!("{} {}", m.letter(), m.name()),
            gbps(med_secs[j]),
            format!("{lo:.3}-{hi:.3}"),
            ratio(std_secs),
            ratio(count_secs),
            rss / (1 << 20) as f64,
            rss / bytes as f64,
        );
    }
}
