//! IPC benchmark: small-message round trip and one-way throughput, offspring against Node and
//! against a raw socket pair, in one run.
//!
//! ```text
//! nice -n 10 cargo bench --bench ipc
//! cargo bench --bench ipc -- --rounds 1 --rt 2000 --oneway 20000     # a smoke run
//! ```
//!
//! | name | what |
//! | --- | --- |
//! | `raw` | a socket pair given to the fixture (`raw-echo`, `raw-count`) at fd 3, libc `write`/`read` of one small message at a time: the floor |
//! | `json` | offspring parent, offspring child (`ipc-echo`, `ipc-count`), JSON lines |
//! | `binary` | the same with length-prefixed binary frames |
//! | `node-child` | offspring parent, Node child (`tests/node/echo.js`, `count.js`) |
//! | `node-node` | Node parent, Node child, `fork()` + `send()` (`tests/node/bench_node.js`) |
//!
//! Round trip: send `{"i":k}`, wait for it to come back, `--rt` times. One way: send
//! `--oneway` messages `{"i":k}` back to back, then wait for the child's `"done"` (for `raw`,
//! one `write` per message and a one-byte answer after the last byte). Every child is started
//! and answers one ping before the clock starts. A round measures every method once, in an
//! order that rotates; the table shows medians, ranges, and ratios: round trips against
//! `raw` (median to median, and best to best, which says more on a loaded machine), one-way
//! rates against `node-node`. Absolute figures drift on a shared VM; compare
//! ratios.

// The floor is a raw libc read/write loop, as the issue specifies; that needs unsafe code.
#![allow(unsafe_code)]

mod common;
use common::{median, Args};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use offspring::ipc::{Framing, Options};
use offspring::{ChildFd, Command, Stdio};

const FIXTURE: &str = env!("CARGO_BIN_EXE_offspring-fixture");
const METHODS: [&str; 5] = ["raw", "json", "binary", "node-child", "node-node"];

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node").join(name)
}

fn msg(i: usize) -> String {
    format!("{{\"i\":{i}}}")
}

fn raw_write(fd: &OwnedFd, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: the pointer and length describe the live slice `data[off..]`.
        let n =
            unsafe { libc::write(fd.as_raw_fd(), data[off..].as_ptr().cast(), data.len() - off) };
        assert!(n > 0, "write: {}", std::io::Error::last_os_error());
        off += n as usize;
    }
}

fn raw_read_exact(fd: &OwnedFd, buf: &mut [u8]) {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: the pointer and length describe the live slice `buf[off..]`.
        let n =
            unsafe { libc::read(fd.as_raw_fd(), buf[off..].as_mut_ptr().cast(), buf.len() - off) };
        assert!(n > 0, "read: {}", std::io::Error::last_os_error());
        off += n as usize;
    }
}

/// A child given a raw socket at fd 3, and our end of it, after one ping.
fn raw_child(args: &[&str]) -> (offspring::Child, OwnedFd) {
    let three = ChildFd::new(3).unwrap();
    let mut child = Command::new(FIXTURE).args(args).fd(three, Stdio::piped()).spawn().unwrap();
    let fd = child.take_fd(three).unwrap();
    raw_write(&fd, b"p");
    raw_read_exact(&fd, &mut [0u8; 1]);
    (child, fd)
}

/// An offspring child with a channel, after one ping.
fn channel_child(
    cmd: &mut Command,
    framing: Framing,
) -> (offspring::Child, offspring::ipc::Sender, offspring::ipc::Receiver) {
    let mut child = cmd.ipc(Options::new().framing(framing)).spawn().unwrap();
    let (tx, rx) = child.take_channel().unwrap();
    tx.send(b"\"ping\"").unwrap();
    assert_eq!(rx.recv().unwrap().as_bytes(), b"\"ping\"");
    (child, tx, rx)
}

fn node_node(mode: &str, n: usize) -> Duration {
    let out = Command::new("node")
        .arg(script("bench_node.js"))
        .args([mode, &n.to_string()])
        .read()
        .unwrap();
    Duration::from_nanos(out.trim().parse().unwrap())
}

/// Seconds per round trip (also measured by `benches/report.rs`).
pub(crate) fn round_trip(method: &str, n: usize) -> f64 {
    let t = match method {
        "raw" => {
            let (child, fd) = raw_child(&["raw-echo"]);
            let mut buf = vec![0u8; 16];
            let t0 = Instant::now();
            for i in 0..n {
                let m = format!("{:<16}", msg(i % 1_000_000_000));
                raw_write(&fd, &m.as_bytes()[..16]);
                raw_read_exact(&fd, &mut buf);
            }
            let t = t0.elapsed();
            drop(fd);
            child.wait().unwrap();
            t
        }
        "json" | "binary" | "node-child" => {
            let framing = if method == "binary" { Framing::Binary } else { Framing::Json };
            let mut cmd = if method == "node-child" {
                let mut c = Command::new("node");
                c.arg(script("echo.js"));
                c
            } else {
                let mut c = Command::new(FIXTURE);
                c.arg("ipc-echo");
                c
            };
            let (child, tx, rx) = channel_child(&mut cmd, framing);
            let t0 = Instant::now();
            for i in 0..n {
                tx.send(msg(i)).unwrap();
                rx.recv().unwrap();
            }
            let t = t0.elapsed();
            drop(tx);
            child.wait().unwrap();
            t
        }
        _ => node_node("rt", n),
    };
    t.as_secs_f64() / n as f64
}

/// Messages per second, one way.
pub(crate) fn one_way(method: &str, n: usize) -> f64 {
    let t = match method {
        "raw" => {
            let one = format!("{:<10}\n", "{\"i\":0}");
            let bytes = one.len() * n;
            let (child, fd) = raw_child(&["raw-count", &bytes.to_string()]);
            let t0 = Instant::now();
            for _ in 0..n {
                raw_write(&fd, one.as_bytes());
            }
            raw_read_exact(&fd, &mut [0u8; 1]);
            let t = t0.elapsed();
            drop(fd);
            child.wait().unwrap();
            t
        }
        "json" | "binary" | "node-child" => {
            let framing = if method == "binary" { Framing::Binary } else { Framing::Json };
            let mut cmd = if method == "node-child" {
                let mut c = Command::new("node");
                c.arg(script("count.js")).arg(n.to_string());
                c
            } else {
                let mut c = Command::new(FIXTURE);
                c.arg("ipc-count").arg(n.to_string());
                c
            };
            let (child, tx, rx) = channel_child(&mut cmd, framing);
            let t0 = Instant::now();
            for i in 0..n {
                tx.send(msg(i)).unwrap();
            }
            assert_eq!(rx.recv().unwrap().as_bytes(), b"\"done\"");
            let t = t0.elapsed();
            drop(tx);
            child.wait().unwrap();
            t
        }
        _ => node_node("oneway", n),
    };
    n as f64 / t.as_secs_f64()
}

fn main() {
    let Some(args) = Args::parse("ipc", &["--rounds", "--rt", "--oneway"]) else { return };
    let rounds: usize = args.num("--rounds", 5).max(1);
    let rt: usize = args.num("--rt", 20_000).max(1);
    let ow: usize = args.num("--oneway", 200_000).max(1);
    let have_node = std::process::Command::new("node").arg("--version").output().is_ok();
    let methods: Vec<&str> =
        METHODS.iter().copied().filter(|m| have_node || !m.starts_with("node")).collect();
    if !have_node {
        eprintln!("node is not installed: the Node rows are skipped");
    }
    println!("ipc: {rounds} rounds, {rt} round trips, {ow} one-way messages per method");
    let mut rts: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
    let mut ows: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
    for round in 0..rounds {
        for k in 0..methods.len() {
            let j = (k + round) % methods.len();
            rts[j].push(round_trip(methods[j], rt));
            ows[j].push(one_way(methods[j], ow));
        }
    }
    let rt_med: Vec<f64> = rts.iter_mut().map(|v| median(v)).collect();
    let ow_med: Vec<f64> = ows.iter_mut().map(|v| median(v)).collect();
    let base_rt = rt_med[0];
    let best_raw = rts[0].iter().copied().fold(f64::MAX, f64::min);
    let base_ow = methods.iter().position(|m| *m == "node-node").map(|j| ow_med[j]);
    println!(
        "{:<12} {:>10} {:>19} {:>8} {:>9}   {:>12} {:>23} {:>9} {:>8}",
        "method",
        "rt (us)",
        "rt range",
        "vs raw",
        "best/best",
        "one-way M/s",
        "one-way range",
        "vs node",
        "vs raw"
    );
    for j in 0..methods.len() {
        let lo = rts[j].iter().copied().fold(f64::MAX, f64::min) * 1e6;
        let hi = rts[j].iter().copied().fold(0.0, f64::max) * 1e6;
        let olo = ows[j].iter().copied().fold(f64::MAX, f64::min) / 1e6;
        let ohi = ows[j].iter().copied().fold(0.0, f64::max) / 1e6;
        let vs_node = base_ow.map_or("-".to_string(), |b| format!("{:.2}x", ow_med[j] / b));
        println!(
            "{:<12} {:>10.2} {:>8.2} - {:>8.2} {:>7.2}x {:>8.2}x   {:>12.3} {:>10.3} - {:>10.3} {:>9} {:>7.2}x",
            methods[j],
            rt_med[j] * 1e6,
            lo,
            hi,
            rt_med[j] / base_rt,
            lo / 1e6 / best_raw,
            ow_med[j] / 1e6,
            olo,
            ohi,
            vs_node,
            ow_med[j] / ow_med[0],
        );
    }
}
