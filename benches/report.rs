//! The performance report: offspring against what its users would pick instead, in one run.
//!
//! ```text
//! cargo bench --bench report                    # about 5 minutes on 2 cores; prints the table
//! cargo bench --bench report -- --save          # also rewrites BENCHMARKS.md and its chart
//! cargo bench --bench report -- --rounds 3 --cases spawn,small --no-footprint
//! ```
//!
//! Every sample runs in a fresh copy of this program (`--one CASE --method METHOD`), or in a fresh
//! Python or Node process for those peers (`benches/peers/report.py`, `report.js`), so that its
//! peak RSS is its own and no method inherits another's heap or warm caches. The peak is
//! `VmHWM` from `/proc/self/status`, not `ru_maxrss`, which on Linux also holds the high-water
//! RSS of the address space that `exec` replaced: with a `vfork`-style spawn, the harness's
//! (see `benches/common.rs`). Where the table shows memory, it also shows the growth: the peak
//! minus the sample's RSS just before its first operation, which is what the method itself
//! added, without its runtime's start-up. The sample process
//! times only the operations, not its own start-up. A round runs every method of every case
//! once, in an order that rotates from round to round, so that drift in the machine's speed
//! spreads over all methods. The table gives medians over the rounds with min and max, and the
//! ratio of each median time to the case's reference method (lower is better).
//!
//! Cases (pick with `--cases`):
//!
//! | case | what | reference |
//! | --- | --- | --- |
//! | `spawn` | spawn + wait `/bin/true` | libc `posix_spawn` + `waitpid` |
//! | `spawn-heap` | the same from a parent with a 1 GiB touched heap | the same |
//! | `small` | capture `/bin/echo hi` into memory; two floor rows (below) | std `output()` |
//! | `big` | capture 1 GiB from `head -c` | std `output()` |
//! | `fanout` | 1,000 `/bin/echo hello` at once, outputs and statuses collected | a libc spawn-all loop |
//! | `ipc-rtt` | a small message to a child and back (the methods of `benches/ipc.rs`) | a raw socket pair |
//! | `ipc-oneway` | small messages to a child, back to back, until it says it has them all | a raw socket pair, one `write` each |
//! | `echo` | a line echoed through a `cat` child | a libc `write`/`read` loop |
//!
//! The `small` case has two rows that are not captures by a library but bound what any capture
//! of this command can cost: `libc posix_spawn, two pipes, poll` is the capture a plain C
//! program does (stdout and stderr on two pipes, a `poll` + `read` loop to EOF, `waitpid`), and
//! `offspring, no capture (stdout/stderr to /dev/null)` runs the same `/bin/echo hi` through
//! offspring's `status()` with no capture at all: whatever a library does, it still spawns,
//! execs, runs and reaps the child, so that row's ratio is the best any capture could reach in
//! the run. The chart draws both in a lighter colour.
//!
//! Python and Node rows are skipped, with a note, where `python3` or `node` is missing. After
//! the rounds comes the footprint: the stripped size of a release binary that runs one
//! `exec_file`, against the same with std only, the crate's clean release build time, and its
//! dependency count (`--no-footprint` skips it).

// The libc floors are raw system-call loops, as the report specifies; they need unsafe code.
#![allow(unsafe_code)]

mod common;
use common::{median, peak_rss, rss_now, this_program, wait_pid, Args, RawSpawn};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio as StdStdio;
use std::time::Instant;

/// The IPC bench's methods (`benches/ipc.rs`), measured here as the report's case 5. It
/// declares `mod common` of its own, a second copy of the helpers inside this binary.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "ipc.rs"]
mod ipc_bench;

/// Bytes in a MiB, for the memory columns.
const MIB: f64 = (1 << 20) as f64;
/// Bytes captured in the `big` case.
const BIG: u64 = 1 << 30;
/// Children started at once in the `fanout` case.
const FANOUT: usize = 1000;
/// The parent heap in `spawn-heap`, MiB.
const HEAP_MIB: usize = 1024;
/// The line the `echo` case sends through `cat`.
const LINE: &[u8] = b"line of text\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Spawn,
    SpawnHeap,
    Small,
    Big,
    Fanout,
    IpcRtt,
    IpcOneway,
    Echo,
}

impl Case {
    const ALL: [Case; 8] = [
        Case::Spawn,
        Case::SpawnHeap,
        Case::Small,
        Case::Big,
        Case::Fanout,
        Case::IpcRtt,
        Case::IpcOneway,
        Case::Echo,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::Spawn => "spawn",
            Case::SpawnHeap => "spawn-heap",
            Case::Small => "small",
            Case::Big => "big",
            Case::Fanout => "fanout",
            Case::IpcRtt => "ipc-rtt",
            Case::IpcOneway => "ipc-oneway",
            Case::Echo => "echo",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Case::Spawn => "1. spawn + wait /bin/true",
            Case::SpawnHeap => "1b. spawn + wait /bin/true, 1 GiB resident parent heap",
            Case::Small => "2. small capture: /bin/echo hi into memory",
            Case::Big => "3. capture 1 GiB of stdout (head -c 1073741824 /dev/zero)",
            Case::Fanout => "4. fan-out: 1,000 /bin/echo hello, outputs and statuses collected",
            Case::IpcRtt => "5a. IPC round trip of a small message, parent <-> child",
            Case::IpcOneway => "5b. IPC one way: small messages parent -> child, back to back",
            Case::Echo => "6. pipe echo: one line through a cat child and back",
        }
    }

    /// Operations per sample.
    fn n(self) -> u64 {
        match self {
            Case::Spawn | Case::Small => 200,
            Case::SpawnHeap => 30,
            Case::Big => BIG,
            Case::Fanout => FANOUT as u64,
            Case::IpcRtt => 20_000,
            Case::IpcOneway => 200_000,
            Case::Echo => 20_000,
        }
    }

    fn heap_mib(self) -> usize {
        if self == Case::SpawnHeap {
            HEAP_MIB
        } else {
            0
        }
    }

    /// The unit the table shows, and the value of one sample in it.
    fn unit(self) -> &'static str {
        match self {
            Case::Big => "GB/s",
            Case::Fanout => "ms / 1000",
            Case::IpcOneway => "M msgs/s",
            _ => "us / op",
        }
    }

    fn value(self, secs: f64) -> f64 {
        match self {
            Case::Big => BIG as f64 / secs / 1e9,
            Case::Fanout => secs * 1e3,
            Case::IpcOneway => self.n() as f64 / secs / 1e6,
            _ => secs / self.n() as f64 * 1e6,
        }
    }

    fn methods(self) -> &'static [&'static str] {
        match self {
            Case::Spawn | Case::SpawnHeap => &[
                "libc posix_spawn+waitpid",
                "offspring status()",
                "std status()",
                "duct run()",
                "subprocess join()",
                "python subprocess.run",
                "node spawnSync",
            ],
            Case::Small => &[
                "std output()",
                "offspring output()",
                "offspring exec_file().read()",
                "libc posix_spawn, two pipes, poll",
                "offspring, no capture (stdout/stderr to /dev/null)",
                "duct read()",
                "subprocess capture()",
                "python check_output",
                "node execFileSync",
            ],
            Case::Big => &[
                "std output()",
                "offspring output()",
                "offspring streaming (count)",
                "libc read loop (count)",
                "libc pre-faulted buffer",
                "python run(capture_output)",
                "node execFileSync",
            ],
            Case::Fanout => &[
                "libc spawn all, then read+wait",
                "offspring Mux (one thread)",
                "std spawn all, then wait_with_output",
                "std thread per child",
                "python Popen all, communicate",
                "node async spawn all",
            ],
            Case::IpcRtt | Case::IpcOneway => &[
                "libc socketpair, one write per message",
                "offspring JSON (Node's wire format)",
                "offspring binary frames",
                "offspring parent, node child",
                "node fork() + send()",
            ],
            Case::Echo => &[
                "libc write+read",
                "offspring ChildStdin + read_line",
                "std ChildStdin + read_line",
                "python write+readline",
                "node write, await data",
            ],
        }
    }

    fn parse(s: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// One sample: seconds for `n` operations, the sample process's peak RSS in bytes, and its RSS
/// just before the first operation.
#[derive(Clone, Copy, Debug)]
struct Sample {
    secs: f64,
    rss: u64,
    base: u64,
}

// ---------------------------------------------------------------------------------------------
// The driver

fn main() {
    let Some(args) = Args::parse_with_switches(
        "report",
        &["--rounds", "--cases", "--one", "--method"],
        &["--save", "--no-footprint"],
    ) else {
        return;
    };
    // `--one CASE --method METHOD`: one sample in this fresh process, for `sample`.
    if let Some(case) = args.item("--one", Case::parse) {
        let method = args.text("--method").unwrap_or_else(|| args.fail("--one needs --method"));
        let _heap = touched_heap(case.heap_mib());
        let base = rss_now();
        let secs = run_one(case, method);
        println!("{secs} {} {base}", peak_rss());
        return;
    }
    let rounds: usize = args.num("--rounds", 5);
    let cases = args.list("--cases", Case::parse, Case::ALL.to_vec());
    let save = args.switch("--save");
    let footprint = !args.switch("--no-footprint");

    let python = have("python3", &["--version"]);
    let node = have("node", &["--version"]);
    let started = Instant::now();
    let mut notes = Vec::new();
    if !python {
        notes.push("python3 not found: its rows are skipped".to_owned());
    }
    if !node {
        notes.push("node not found: its rows are skipped".to_owned());
    }

    // samples[case][method]
    let mut samples: Vec<Vec<Vec<Sample>>> =
        cases.iter().map(|c| vec![Vec::new(); c.methods().len()]).collect();
    for round in 0..rounds {
        eprintln!("round {}/{rounds} ({:.0} s so far)", round + 1, started.elapsed().as_secs_f64());
        for (ci, case) in cases.iter().enumerate() {
            let methods = case.methods();
            for k in 0..methods.len() {
                let m = (k + round) % methods.len();
                let name = methods[m];
                if (name.starts_with("python") && !python) || (name.starts_with("node") && !node) {
                    continue;
                }
                match sample(*case, name) {
                    Ok(s) => samples[ci][m].push(s),
                    Err(e) => {
                        let note = format!("{} / {name}: {e}", case.name());
                        eprintln!("{note}");
                        if !notes.contains(&note) {
                            notes.push(note);
                        }
                    }
                }
            }
        }
    }

    let mut md = String::new();
    let machine = machine_line();
    let _ =
        writeln!(md, "Machine: {machine}. {rounds} interleaved rounds; medians, with min-max.\n");
    let mut chart = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        let table = render_case(*case, &samples[ci]);
        print!("\n{}", table.text);
        md.push_str(&table.markdown);
        chart.push((case.title(), table.bars));
    }
    if footprint {
        match measure_footprint() {
            Ok(f) => {
                print!("\n{}", f.text);
                md.push_str(&f.markdown);
            }
            Err(e) => notes.push(format!("footprint: {e}")),
        }
    }
    if !notes.is_empty() {
        println!("\nnotes:");
        md.push_str("Notes:\n\n");
        for n in &notes {
            println!("- {n}");
            let _ = writeln!(md, "- {n}");
        }
    }
    println!("\nwhole run: {:.0} s", started.elapsed().as_secs_f64());

    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report");
    std::fs::create_dir_all(&out).unwrap();
    let svg = render_svg(&chart);
    std::fs::write(out.join("report.md"), &md).unwrap();
    std::fs::write(out.join("report.svg"), &svg).unwrap();
    println!("written: {}/report.md and report.svg", out.display());
    if save {
        save_to_repo(&md, &svg);
    }
}

fn have(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(StdStdio::null())
        .stderr(StdStdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs one sample in a fresh process and parses `SECONDS PEAK_RSS BASE_RSS`.
fn sample(case: Case, method: &str) -> Result<Sample, String> {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers");
    let n = case.n().to_string();
    let heap = case.heap_mib().to_string();
    let peer = !matches!(case, Case::IpcRtt | Case::IpcOneway);
    let mut cmd = if peer && method.starts_with("python") {
        let mut c = std::process::Command::new("python3");
        c.arg(peers.join("report.py")).args([case.name(), &n, &heap]);
        c
    } else if peer && method.starts_with("node") {
        let mut c = std::process::Command::new("node");
        c.arg(peers.join("report.js")).args([case.name(), &n, &heap]);
        c
    } else {
        let mut c = this_program();
        c.args(["--one", case.name(), "--method", method]);
        c
    };
    let out = cmd.stderr(StdStdio::piped()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!("failed ({}): {last}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let secs = words.next().and_then(|w| w.parse().ok()).ok_or("no time printed")?;
    let rss = words.next().and_then(|w| w.parse().ok()).ok_or("no RSS printed")?;
    let base = words.next().and_then(|w| w.parse().ok()).ok_or("no base RSS printed")?;
    Ok(Sample { secs, rss, base })
}

struct Rendered {
    text: String,
    markdown: String,
    /// (method, ratio to the reference's time) for the chart.
    bars: Vec<(String, f64)>,
}

fn render_case(case: Case, samples: &[Vec<Sample>]) -> Rendered {
    let methods = case.methods();
    let med_secs: Vec<Option<f64>> = samples
        .iter()
        .map(|s| (!s.is_empty()).then(|| median(&mut s.iter().map(|x| x.secs).collect::<Vec<_>>())))
        .collect();
    let reference = med_secs[0];
    let show_rss = matches!(case, Case::Big | Case::Fanout);
    let mut text = format!("{} (reference: {})\n", case.title(), methods[0]);
    let _ = writeln!(
        text,
        "  {:<50} {:>11} {:>21} {:>9}{}",
        "method",
        case.unit(),
        "min-max",
        "x ref",
        if show_rss { "   peak RSS      growth" } else { "" }
    );
    let mut markdown = format!("### {}\n\n", case.title());
    markdown.push_str(&format!(
        "| method | {} (median) | min-max | time vs {} |{}\n|---|---:|---:|---:|{}\n",
        case.unit(),
        methods[0],
        if show_rss { " peak RSS | growth |" } else { "" },
        if show_rss { "---:|---:|" } else { "" }
    ));
    let mut bars = Vec::new();
    for (m, name) in methods.iter().enumerate() {
        let Some(secs) = med_secs[m] else {
            let _ = writeln!(text, "  {name:<50} skipped");
            let _ = writeln!(
                markdown,
                "| {name} | skipped | | |{}",
                if show_rss { " | |" } else { "" }
            );
            continue;
        };
        let values: Vec<f64> = samples[m].iter().map(|s| case.value(s.secs)).collect();
        let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = values.iter().cloned().fold(0.0, f64::max);
        let ratio = reference.map(|r| secs / r);
        let ratio_text = ratio.map_or("-".to_owned(), |r| format!("{r:.2}"));
        let rss = median(&mut samples[m].iter().map(|s| s.rss as f64).collect::<Vec<_>>()) / MIB;
        let growth = median(
            &mut samples[m].iter().map(|s| s.rss.saturating_sub(s.base) as f64).collect::<Vec<_>>(),
        ) / MIB;
        let rss_text =
            if show_rss { format!("{rss:>8.1} MiB {growth:>7.2} MiB") } else { String::new() };
        let value = case.value(secs);
        let _ = writeln!(
            text,
            "  {name:<50} {value:>11.3} {:>21} {ratio_text:>9}{rss_text}",
            format!("{lo:.3}-{hi:.3}")
        );
        let _ = writeln!(
            markdown,
            "| {name} | {value:.3} | {lo:.3}-{hi:.3} | {ratio_text} |{}",
            if show_rss { format!(" {rss:.1} MiB | {growth:.2} MiB |") } else { String::new() }
        );
        if let Some(r) = ratio {
            bars.push((name.to_string(), r));
        }
    }
    markdown.push('\n');
    Rendered { text, markdown, bars }
}

fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

/// A horizontal bar chart of every case's time ratios, written by hand as SVG.
fn render_svg(chart: &[(&str, Vec<(String, f64)>)]) -> String {
    const WIDTH: f64 = 890.0;
    const LABEL: f64 = 330.0;
    const BAR_H: f64 = 16.0;
    const CAP: f64 = 4.0;
    let scale = (WIDTH - LABEL - 80.0) / CAP;
    let rows: usize = chart.iter().map(|(_, b)| b.len() + 2).sum();
    let height = rows as f64 * (BAR_H + 4.0) + 40.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">Time relative to each case's \
         reference (first bar = 1.0; shorter is faster; bars capped at {CAP}x, &#8250; marks a longer one)</text>\n"
    );
    let mut y = 36.0;
    for (title, bars) in chart {
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{:.0}\" font-weight=\"bold\">{}</text>",
            y + 12.0,
            esc(title)
        );
        y += BAR_H + 4.0;
        for (name, ratio) in bars {
            // The small case's two floors (see the module docs) are lighter: bounds, not peers.
            let colour = match name.as_str() {
                "libc posix_spawn, two pipes, poll" => "#ced4da",
                "offspring, no capture (stdout/stderr to /dev/null)" => "#ffa94d",
                n if n.starts_with("offspring") => "#d9480f",
                _ => "#868e96",
            };
            let w = ratio.min(CAP) * scale;
            let _ = writeln!(
                s,
                "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>\
                 <rect x=\"{LABEL}\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"{BAR_H}\" fill=\"{colour}\"/>\
                 <text x=\"{:.1}\" y=\"{:.0}\">{ratio:.2}{}</text>",
                LABEL - 6.0,
                y + 12.0,
                esc(name),
                LABEL + w + 4.0,
                y + 12.0,
                if *ratio > CAP { " &#8250;" } else { "" }
            );
            y += BAR_H + 4.0;
        }
        y += BAR_H + 4.0;
    }
    let x1 = LABEL + scale;
    let _ = writeln!(
        s,
        "<line x1=\"{x1:.1}\" y1=\"30\" x2=\"{x1:.1}\" y2=\"{:.0}\" stroke=\"black\" stroke-dasharray=\"4 3\"/>",
        height - 8.0
    );
    s.push_str("</svg>\n");
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Rewrites the generated part of BENCHMARKS.md and its chart.
fn save_to_repo(md: &str, svg: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/report.svg"), svg).unwrap();
    let path = root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = ("<!-- report:begin -->", "<!-- report:end -->");
    let generated = format!("{begin}\n{md}{end}");
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{generated}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{old}\n{generated}\n"),
    };
    std::fs::write(&path, new).unwrap();
    println!("saved: BENCHMARKS.md and docs/report.svg");
}

// ---------------------------------------------------------------------------------------------
// One sample, in this process

fn touched_heap(mib: usize) -> Vec<u8> {
    vec![1u8; mib << 20]
}

fn run_one(case: Case, method: &str) -> f64 {
    let n = case.n();
    match case {
        Case::Spawn | Case::SpawnHeap => {
            let raw = RawSpawn::new(&["/bin/true"]);
            let start = Instant::now();
            for _ in 0..n {
                match method {
                    "libc posix_spawn+waitpid" => raw.run(),
                    "offspring status()" => {
                        assert!(offspring::Command::new("/bin/true").status().unwrap().success())
                    }
                    "std status()" => {
                        assert!(std::process::Command::new("/bin/true").status().unwrap().success())
                    }
                    "duct run()" => {
                        duct::cmd!("/bin/true").run().unwrap();
                    }
                    "subprocess join()" => {
                        assert!(subprocess::Exec::cmd("/bin/true").join().unwrap().success())
                    }
                    _ => panic!("unknown method {method}"),
                }
            }
            start.elapsed().as_secs_f64()
        }
        Case::Small => {
            let echo = RawSpawn::new(&["/bin/echo", "hi"]);
            let start = Instant::now();
            for _ in 0..n {
                let out: Vec<u8> = match method {
                    "std output()" => {
                        std::process::Command::new("/bin/echo").arg("hi").output().unwrap().stdout
                    }
                    "offspring output()" => {
                        offspring::Command::new("/bin/echo").arg("hi").output().unwrap().stdout
                    }
                    "offspring exec_file().read()" => {
                        let mut s = offspring::exec_file("/bin/echo", ["hi"]).read().unwrap();
                        s.push('\n');
                        s.into_bytes()
                    }
                    "libc posix_spawn, two pipes, poll" => echo.capture(),
                    "offspring, no capture (stdout/stderr to /dev/null)" => {
                        let status = offspring::Command::new("/bin/echo")
                            .arg("hi")
                            .stdout(offspring::Stdio::null())
                            .stderr(offspring::Stdio::null())
                            .status()
                            .unwrap();
                        assert!(status.success());
                        continue;
                    }
                    "duct read()" => {
                        let mut s = duct::cmd!("/bin/echo", "hi").read().unwrap();
                        s.push('\n');
                        s.into_bytes()
                    }
                    "subprocess capture()" => {
                        subprocess::Exec::cmd("/bin/echo").arg("hi").capture().unwrap().stdout
                    }
                    _ => panic!("unknown method {method}"),
                };
                assert_eq!(out, b"hi\n");
            }
            start.elapsed().as_secs_f64()
        }
        Case::Big => {
            let args = ["-c".to_owned(), BIG.to_string(), "/dev/zero".to_owned()];
            let start = Instant::now();
            let got = match method {
                "std output()" => {
                    let out = std::process::Command::new("head").args(&args).output().unwrap();
                    assert!(out.status.success());
                    check_zeros(&out.stdout)
                }
                "offspring output()" => {
                    let out = offspring::Command::new("head").args(&args).output().unwrap();
                    assert!(out.status.success());
                    check_zeros(&out.stdout)
                }
                "offspring streaming (count)" => {
                    let mut child = offspring::Command::new("head")
                        .args(&args)
                        .stdout(offspring::Stdio::piped())
                        .spawn()
                        .unwrap();
                    let mut reader = child.stdout_reader().unwrap();
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut total = 0;
                    loop {
                        let k = reader.read(&mut buf).unwrap();
                        if k == 0 {
                            break;
                        }
                        total += k;
                    }
                    assert!(child.wait().unwrap().success());
                    total
                }
                "libc read loop (count)" => libc_capture(&args, false),
                "libc pre-faulted buffer" => libc_capture(&args, true),
                _ => panic!("unknown method {method}"),
            };
            assert_eq!(got as u64, BIG, "{method} captured the wrong number of bytes");
            start.elapsed().as_secs_f64()
        }
        Case::Fanout => {
            let start = Instant::now();
            match method {
                "libc spawn all, then read+wait" => libc_fanout(),
                "offspring Mux (one thread)" => {
                    let mut mux = offspring::Mux::new();
                    for _ in 0..FANOUT {
                        let mut cmd = offspring::Command::new("/bin/echo");
                        cmd.arg("hello");
                        mux.spawn_with(&mut cmd, offspring::Delivery::Buffered).unwrap();
                    }
                    let mut done = 0;
                    for event in &mut mux {
                        if let offspring::Event::Exit { result, .. } = event.unwrap() {
                            let out = result.unwrap();
                            assert!(out.status.success() && out.stdout == b"hello\n");
                            done += 1;
                        }
                    }
                    assert_eq!(done, FANOUT);
                }
                "std spawn all, then wait_with_output" => {
                    let children: Vec<_> = (0..FANOUT)
                        .map(|_| {
                            std::process::Command::new("/bin/echo")
                                .arg("hello")
                                .stdout(StdStdio::piped())
                                .spawn()
                                .unwrap()
                        })
                        .collect();
                    for child in children {
                        let out = child.wait_with_output().unwrap();
                        assert!(out.status.success() && out.stdout == b"hello\n");
                    }
                }
                "std thread per child" => {
                    let threads: Vec<_> = (0..FANOUT)
                        .map(|_| {
                            std::thread::spawn(|| {
                                std::process::Command::new("/bin/echo").arg("hello").output()
                            })
                        })
                        .collect();
                    for t in threads {
                        let out = t.join().unwrap().unwrap();
                        assert!(out.status.success() && out.stdout == b"hello\n");
                    }
                }
                _ => panic!("unknown method {method}"),
            }
            start.elapsed().as_secs_f64()
        }
        Case::IpcRtt | Case::IpcOneway => {
            let key = match method {
                "libc socketpair, one write per message" => "raw",
                "offspring JSON (Node's wire format)" => "json",
                "offspring binary frames" => "binary",
                "offspring parent, node child" => "node-child",
                "node fork() + send()" => "node-node",
                _ => panic!("unknown method {method}"),
            };
            let n = n as usize;
            if case == Case::IpcRtt {
                ipc_bench::round_trip(key, n) * n as f64
            } else {
                n as f64 / ipc_bench::one_way(key, n)
            }
        }
        Case::Echo => match method {
            "libc write+read" => {
                let mut child = std::process::Command::new("cat")
                    .stdin(StdStdio::piped())
                    .stdout(StdStdio::piped())
                    .spawn()
                    .unwrap();
                let (w, r) = (
                    child.stdin.as_ref().unwrap().as_raw_fd(),
                    child.stdout.as_ref().unwrap().as_raw_fd(),
                );
                let mut buf = [0u8; 256];
                let start = Instant::now();
                for _ in 0..n {
                    // SAFETY: `w` and `r` are the open pipe ends owned by `child` for the whole
                    // loop; `LINE` and `buf` are live buffers of the lengths passed.
                    unsafe {
                        assert_eq!(
                            libc::write(w, LINE.as_ptr().cast(), LINE.len()),
                            LINE.len() as isize
                        );
                        let mut got = 0;
                        while got < LINE.len() {
                            let k = libc::read(r, buf[got..].as_mut_ptr().cast(), buf.len() - got);
                            assert!(k > 0, "cat closed its stdout");
                            got += k as usize;
                        }
                    }
                }
                let secs = start.elapsed().as_secs_f64();
                drop(child.stdin.take());
                child.wait().unwrap();
                secs
            }
            "offspring ChildStdin + read_line" => {
                let mut child = offspring::Command::new("cat")
                    .stdin(offspring::Stdio::piped())
                    .stdout(offspring::Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut input = child.stdin.take().unwrap();
                let mut output = child.stdout_reader().unwrap();
                let secs = echo_lines(&mut input, &mut output, n);
                drop(input);
                child.wait().unwrap();
                secs
            }
            "std ChildStdin + read_line" => {
                let mut child = std::process::Command::new("cat")
                    .stdin(StdStdio::piped())
                    .stdout(StdStdio::piped())
                    .spawn()
                    .unwrap();
                let mut input = child.stdin.take().unwrap();
                let mut output = BufReader::new(child.stdout.take().unwrap());
                let secs = echo_lines(&mut input, &mut output, n);
                drop(input);
                child.wait().unwrap();
                secs
            }
            _ => panic!("unknown method {method}"),
        },
    }
}

/// Sends `LINE` through a `cat` child `n` times, reading each echo back; the seconds taken.
fn echo_lines(input: &mut impl Write, output: &mut impl BufRead, n: u64) -> f64 {
    let mut line = String::new();
    let start = Instant::now();
    for _ in 0..n {
        input.write_all(LINE).unwrap();
        line.clear();
        output.read_line(&mut line).unwrap();
        assert_eq!(line.as_bytes(), LINE);
    }
    start.elapsed().as_secs_f64()
}

/// A cheap check that the buffer holds what `head` wrote (one byte per page); returns its length.
fn check_zeros(buf: &[u8]) -> usize {
    assert!(buf.iter().step_by(4096).all(|&b| b == 0));
    buf.len()
}

/// The capture floors: std spawns `head`, then a raw `read` loop either only counts the bytes
/// (the streaming floor) or keeps them in an `mmap`ed buffer whose pages are faulted in with
/// `MADV_POPULATE_WRITE` a window ahead of the reads (the floor for capture into fresh memory).
fn libc_capture(args: &[String], keep: bool) -> usize {
    const CHUNK: usize = 64 * 1024;
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    let mut child =
        std::process::Command::new("head").args(args).stdout(StdStdio::piped()).spawn().unwrap();
    let fd = child.stdout.as_ref().unwrap().as_raw_fd();
    let mut total = 0usize;
    if keep {
        // Address space for the whole output up front (no copy, no mremap), filled in by
        // MADV_POPULATE_WRITE a window ahead of the reads, so RSS follows the output.
        const RESERVE: usize = 4 << 30;
        const WINDOW: usize = 16 << 20;
        // SAFETY: a fresh private anonymous mapping, checked against MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RESERVE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let mut populated = 0usize;
        loop {
            assert!(RESERVE - total >= CHUNK, "output larger than the reservation");
            if populated < total + CHUNK {
                let len = WINDOW.min(RESERVE - populated);
                // SAFETY: `populated..populated + len` lies inside the mapping made above.
                unsafe {
                    libc::madvise(base.cast::<u8>().add(populated).cast(), len, MADV_POPULATE_WRITE)
                };
                populated += len;
            }
            // SAFETY: `base + total` has at least `CHUNK` writable bytes of the mapping.
            let n = unsafe { libc::read(fd, base.cast::<u8>().add(total).cast(), CHUNK) };
            if n < 0 {
                assert_eq!(std::io::Error::last_os_error().kind(), std::io::ErrorKind::Interrupted);
                continue;
            }
            if n == 0 {
                break;
            }
            total += n as usize;
        }
        // SAFETY: `total` bytes at `base` were written by `read`.
        let kept = unsafe { std::slice::from_raw_parts(base.cast::<u8>(), total) };
        check_zeros(kept);
        // SAFETY: the mapping made above, not used after this.
        unsafe { libc::munmap(base, RESERVE) };
    } else {
        let mut buf = vec![0u8; CHUNK];
        loop {
            // SAFETY: `buf` is a live, writable buffer of `CHUNK` bytes and `fd` stays open.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), CHUNK) };
            if n < 0 {
                assert_eq!(std::io::Error::last_os_error().kind(), std::io::ErrorKind::Interrupted);
                continue;
            }
            if n == 0 {
                break;
            }
            total += n as usize;
        }
    }
    assert!(child.wait().unwrap().success());
    total
}

/// The fan-out floor: `posix_spawn` every child with a pipe for stdout, then read each pipe to
/// its end and `waitpid` each child.
fn libc_fanout() {
    let raw = RawSpawn::new(&["/bin/echo", "hello"]);
    let mut running = Vec::with_capacity(FANOUT);
    for _ in 0..FANOUT {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a live array of two ints for `pipe2` to fill.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let pid = raw.spawn(&[(fds[1], 1)]);
        // SAFETY: the write end is ours and no longer needed: the child has its copy.
        unsafe { libc::close(fds[1]) };
        running.push((pid, fds[0]));
    }
    let mut buf = [0u8; 64];
    for (pid, fd) in running {
        let mut got = 0;
        loop {
            // SAFETY: `fd` is the open read end made above; `buf[got..]` is writable.
            let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
            assert!(n >= 0, "{}", std::io::Error::last_os_error());
            if n == 0 {
                break;
            }
            got += n as usize;
        }
        assert_eq!(&buf[..got], b"hello\n");
        // SAFETY: the read end made above, closed once.
        unsafe { libc::close(fd) };
        assert_eq!(wait_pid(pid), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Footprint

struct Footprint {
    text: String,
    markdown: String,
}

/// Builds two one-line programs in release mode, one running `/bin/echo` through
/// `offspring::exec_file(..).read()` and one through std, strips both and compares their sizes;
/// times the first (clean) build of the offspring one; counts offspring's dependencies.
fn measure_footprint() -> Result<Footprint, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/report/footprint");
    let _ = std::fs::remove_dir_all(&dir);
    let programs = [
        (
            "with-offspring",
            format!("offspring = {{ path = {:?} }}\n", root.display().to_string()),
            "fn main() { let s = offspring::exec_file(\"/bin/echo\", [\"hi\"]).read().unwrap(); assert_eq!(s, \"hi\"); }\n",
        ),
        (
            "std-only",
            String::new(),
            "fn main() { let o = std::process::Command::new(\"/bin/echo\").arg(\"hi\").output().unwrap(); assert_eq!(o.stdout, b\"hi\\n\"); }\n",
        ),
    ];
    let mut sizes = Vec::new();
    let mut build_secs = 0.0;
    for (name, deps, main) in &programs {
        let p = dir.join(name);
        std::fs::create_dir_all(p.join("src")).map_err(|e| e.to_string())?;
        std::fs::write(
            p.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\n{deps}\n[profile.release]\nstrip = true\n\n[workspace]\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(p.join("src/main.rs"), main).map_err(|e| e.to_string())?;
        let t = Instant::now();
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--offline", "--quiet"])
            .current_dir(&p)
            .env("CARGO_TARGET_DIR", p.join("target"))
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("building {name} failed: {status}"));
        }
        if *name == "with-offspring" {
            build_secs = t.elapsed().as_secs_f64();
        }
        let bin: PathBuf = p.join("target/release").join(name);
        sizes.push(std::fs::metadata(&bin).map_err(|e| e.to_string())?.len());
    }
    let lock = std::fs::read_to_string(dir.join("with-offspring/Cargo.lock"))
        .map_err(|e| e.to_string())?;
    // Every package in the lock file but the program itself and offspring.
    let deps = lock.matches("[[package]]").count().saturating_sub(2);
    let extra = sizes[0] as i64 - sizes[1] as i64;
    let text = format!(
        "7. footprint\n  stripped release binary running one exec_file: {} KiB, std only: {} KiB ({:+} KiB)\n  \
         clean release build of a program using offspring, with its dependencies: {build_secs:.1} s\n  \
         dependencies (transitive, default features): {deps}\n",
        sizes[0] / 1024,
        sizes[1] / 1024,
        extra / 1024
    );
    let markdown = format!(
        "### 7. footprint\n\n| what | offspring | std only |\n|---|---:|---:|\n\
         | stripped release binary running one command | {} KiB | {} KiB ({:+} KiB) |\n\
         | clean release build, dependencies included | {build_secs:.1} s | |\n\
         | dependencies (transitive, default features) | {deps} | 0 |\n\n",
        sizes[0] / 1024,
        sizes[1] / 1024,
        extra / 1024
    );
    Ok(Footprint { text, markdown })
}
