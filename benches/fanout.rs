//! Fan-out benchmark (issue 11): many children at once through offspring's [`Mux`] and
//! [`Pipeline`], against peers measured in the same run.
//!
//! ```text
//! nice -n 10 cargo bench --bench fanout
//! cargo bench --bench fanout -- --n 1000 --rounds 5 --bytes 1073741824 --methods a,b,c,d,e,f,p,q
//! ```
//!
//! # Row 1: fan-out of `--n` (default 1,000) `/bin/echo hello`
//!
//! Every method spawns all the children first, with stdout and stderr piped, then collects
//! every output and every status, and checks each output is `hello\n`:
//!
//! | | name | what |
//! | --- | --- | --- |
//! | a | `c-spawn-all` | C: `posix_spawn` all with two pipes each, then read each to EOF and `waitpid`: the floor (ratio 1.00) |
//! | b | `std-sequential` | std: `spawn` all, then `wait_with_output` each |
//! | c | `std-threads` | std: a thread per child, each running `Command::output()` |
//! | d | `python` | CPython: `Popen` all, then `communicate` each |
//! | e | `node` | Node: async `spawn` of all, awaiting every `close` |
//! | f | `offspring-mux` | offspring: `Mux::spawn` all (`Delivery::Buffered`), then every `Event::Exit` on the one thread |
//! | g | `offspring-sequential` | offspring without the mux, as `b`: `spawn` all, then `communicate` each (the spawn engine's own share) |
//!
//! # Row 2: a 4-stage pipeline of `--bytes` (default 1 GiB)
//!
//! `head -c BYTES /dev/zero | cat | cat | wc -c`, the count read back and checked:
//!
//! | | name | what |
//! | --- | --- | --- |
//! | p | `sh-pipeline` | `sh -c '...'`, run with std's `output()` (the shell's own pipes, 64 KiB each) |
//! | q | `offspring-pipeline` | offspring's `Pipeline` (`cmd!(..) \| cmd!(..) ...`), `read()`, with its default 256 KiB pipes between stages ([`offspring::Pipeline::pipe_capacity`]) |
//!
//! Each measurement runs in a fresh copy of this program (`--one METHOD`), or for C, Python and
//! Node in their own process, and reports the seconds from the first spawn to the last status,
//! its own peak RSS (`VmHWM`; children not counted), its RSS just before the first spawn
//! (`VmRSS`), and its file-backed RSS (`RssFile`) then and at the end. Interpreter start-up is
//! outside the timed part, its memory inside the peak. A round runs every method once, in an
//! order that rotates from round to round; the table gives medians, the range, the ratio of
//! medians to the first method of the row, and three memory figures (medians):
//!
//! - `peak RSS`: the program's own peak, start-up included: what the issue's target is about.
//! - `growth`: the peak minus the RSS just before the first spawn: what the spawning code
//!   adds, and what a library controls.
//! - `code`: how much of that growth is file-backed pages mapped during the run (machine code
//!   and read-only data of the program and its libraries, which the kernel maps in 64 KiB
//!   windows around each page first executed); the rest is the heap, stacks and the like.
//!   It goes by whole windows, so it depends on where the linker put the code: a change
//!   elsewhere in this binary moved offspring's from 0.26 to 0.33 MB with the same code run.
//!
//! `VmHWM` moves by about 0.05 MB between identical runs here: compare medians of several
//! runs. For the heap alone, `/proc/self/smaps_rollup` (exact, but the RSS now, not the peak)
//! read at the end of the spawn loop, where a fan-out peaks, tells changes apart that small.
//!
//! The C program is compiled with `cc -O2` at run time into `<target>/release/fanout-bench/`;
//! methods whose tool is missing (`cc`, `python3`, `node`) are skipped with a note. Absolute
//! figures drift between runs on a shared VM; compare ratios.
//!
//! # Which RSS
//!
//! The peak is `VmHWM` from `/proc/self/status`, not `getrusage(RUSAGE_SELF).ru_maxrss`: on
//! Linux `exec` folds the high-water RSS of the address space it replaces into `ru_maxrss`,
//! and this harness starts every sample with a spawn that shares its memory until `exec`
//! (`vfork`, `posix_spawn`), so `ru_maxrss` reported at least the harness's own RSS (about
//! 2.1 MB for a C loop whose own peak is 1.5 MB). `VmHWM` is the high-water mark of the
//! sample's own address space, which `exec` starts afresh.
//!
//! The peak still differs by runtime before any child is spawned: a Rust program starts at
//! about 2 MB here, a C one at about 1.2 MB (Rust's std touches more of libc and loads
//! `libgcc_s`), an interpreter at tens of MB. Hence the growth column, and the code column
//! within it: a C loop's spawning code is libc's, mostly mapped already, while a Rust library's
//! is its own machine code, mapped as it first runs.

mod common;
use common::{median, peak_rss, rss_file, rss_now, sample_numbers, this_program, Args};
use std::path::{Path, PathBuf};
use std::time::Instant;

use offspring::{cmd, Delivery, Event, Mux};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    CSpawnAll,
    StdSequential,
    StdThreads,
    Python,
    Node,
    OffspringMux,
    OffspringSequential,
    ShPipeline,
    OffspringPipeline,
}

impl Method {
    const ALL: [Method; 9] = [
        Method::CSpawnAll,
        Method::StdSequential,
        Method::StdThreads,
        Method::Python,
        Method::Node,
        Method::OffspringMux,
        Method::OffspringSequential,
        Method::ShPipeline,
        Method::OffspringPipeline,
    ];

    fn letter(self) -> &'static str {
        ["a", "b", "c", "d", "e", "f", "g", "p", "q"][self as usize]
    }

    fn name(self) -> &'static str {
        [
            "c-spawn-all",
            "std-sequential",
            "std-threads",
            "python",
            "node",
            "offspring-mux",
            "offspring-sequential",
            "sh-pipeline",
            "offspring-pipeline",
        ][self as usize]
    }

    fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.letter() == s || m.name() == s)
    }

    fn is_pipeline(self) -> bool {
        matches!(self, Method::ShPipeline | Method::OffspringPipeline)
    }
}

const C_SOURCE: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;

/* A kB field of /proc/self/status, in bytes; read with plain system calls into a stack
   buffer, so that reading it touches no heap. */
static long status_field(const char *name) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) { perror("open"); exit(1); }
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) { perror("read"); exit(1); }
    buf[len] = 0;
    size_t n = strlen(name);
    for (char *p = buf; p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (!strncmp(p, name, n) && p[n] == ':') return atol(p + n + 1) * 1024;
    }
    fprintf(stderr, "no %s\n", name);
    exit(1);
}

static size_t drain(int fd, char *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) { perror("read"); exit(1); }
        if (n == 0) break;
        len += (size_t)n;
        if (len == cap) break;
    }
    close(fd);
    return len;
}

int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    pid_t *pids = calloc(n, sizeof *pids);
    int *outs = calloc(n, sizeof *outs), *errs = calloc(n, sizeof *errs);
    char *args[] = {"/bin/echo", "hello", NULL};
    long base = status_field("VmRSS"), file0 = status_field("RssFile");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        int o[2], e[2];
        if (pipe2(o, O_CLOEXEC) || pipe2(e, O_CLOEXEC)) { perror("pipe2"); return 1; }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, o[1], 1);
        posix_spawn_file_actions_adddup2(&fa, e[1], 2);
        int rc = posix_spawn(&pids[i], args[0], &fa, NULL, args, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc) { fprintf(stderr, "posix_spawn: %s\n", strerror(rc)); return 1; }
        close(o[1]); close(e[1]);
        outs[i] = o[0]; errs[i] = e[0];
    }
    char buf[64];
    for (int i = 0; i < n; i++) {
        size_t len = drain(outs[i], buf, sizeof buf);
        if (len != 6 || memcmp(buf, "hello\n", 6)) { fprintf(stderr, "bad output\n"); return 1; }
        drain(errs[i], buf, sizeof buf);
        int st;
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "bad status\n"); return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.9f %ld %ld %ld %ld\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
           status_field("VmHWM"), base, file0, status_field("RssFile"));
    return 0;
}
"#;

const PYTHON_SOURCE: &str = r#"
import subprocess, sys, time
def status_field(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no " + name)
n = int(sys.argv[1])
base, file0 = status_field("VmRSS"), status_field("RssFile")
t = time.monotonic()
procs = [subprocess.Popen(["/bin/echo", "hello"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(n)]
for p in procs:
    out, err = p.communicate()
    assert out == b"hello\n" and p.returncode == 0
secs = time.monotonic() - t
print(secs, status_field("VmHWM"), base, file0, status_field("RssFile"))
"#;

const NODE_SOURCE: &str = r#"
const { spawn } = require('child_process');
const fs = require('fs');
function statusField(name) {
  const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp('^' + name + ':\\s*(\\d+) kB', 'm'));
  if (!m) throw new Error('no ' + name);
  return Number(m[1]) * 1024;
}
const n = Number(process.argv[2]);
const base = statusField('VmRSS');
const file0 = statusField('RssFile');
const t = process.hrtime.bigint();
let done = 0;
for (let i = 0; i < n; i++) {
  const c = spawn('/bin/echo', ['hello']);
  let out = '';
  c.stdout.on('data', (d) => { out += d; });
  c.stderr.on('data', () => {});
  c.on('close', (code) => {
    if (out !== 'hello\n' || code !== 0) { console.error('bad child'); process.exit(1); }
    if (++done === n) {
      const secs = Number(process.hrtime.bigint() - t) / 1e9;
      console.log(secs, statusField('VmHWM'), base, file0, statusField('RssFile'));
    }
  });
}
"#;

/// One measurement: seconds; the peak RSS, the RSS before the first spawn, and the file-backed
/// RSS mapped in between (bytes).
#[derive(Clone, Copy)]
struct Sample {
    secs: f64,
    rss: u64,
    base: u64,
    code: u64,
}

/// Runs a fan-out or pipeline method in this process; returns the elapsed seconds.
fn run_one(method: Method, n: usize, bytes: u64) -> f64 {
    let start = Instant::now();
    match method {
        Method::StdSequential => {
            let children: Vec<_> = (0..n)
                .map(|_| {
                    std::process::Command::new("/bin/echo")
                        .arg("hello")
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for c in children {
                let out = c.wait_with_output().unwrap();
                assert!(out.status.success() && out.stdout == b"hello\n");
            }
        }
        Method::StdThreads => {
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    std::thread::spawn(|| {
                        let out =
                            std::process::Command::new("/bin/echo").arg("hello").output().unwrap();
                        assert!(out.status.success() && out.stdout == b"hello\n");
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        Method::OffspringMux => {
            let mut mux = Mux::new();
            mux.delivery(Delivery::Buffered);
            let mut cmd = offspring::Command::new("/bin/echo");
            cmd.arg("hello");
            for _ in 0..n {
                mux.spawn(&mut cmd).unwrap();
            }
            let mut exits = 0;
            while let Some(ev) = mux.next_event().unwrap() {
                if let Event::Exit { result, .. } = ev {
                    let out = result.unwrap();
                    assert!(out.status.success() && out.stdout == b"hello\n");
                    exits += 1;
                }
            }
            assert_eq!(exits, n);
        }
        Method::OffspringSequential => {
            let mut cmd = offspring::Command::new("/bin/echo");
            cmd.arg("hello").stdout(offspring::Stdio::piped()).stderr(offspring::Stdio::piped());
            let mut children: Vec<_> = (0..n).map(|_| cmd.spawn().unwrap()).collect();
            for c in &mut children {
                let out = c.communicate(b"").unwrap().wait().unwrap();
                assert!(out.status.success() && out.stdout == b"hello\n");
            }
        }
        Method::ShPipeline => {
            let line = format!("head -c {bytes} /dev/zero | cat | cat | wc -c");
            let out = std::process::Command::new("sh").args(["-c", &line]).output().unwrap();
            assert!(out.status.success());
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), bytes.to_string());
        }
        Method::OffspringPipeline => {
            let count = (cmd!("head", "-c", bytes.to_string(), "/dev/zero")
                | cmd!("cat")
                | cmd!("cat")
                | cmd!("wc", "-c"))
            .read()
            .unwrap();
            assert_eq!(count.trim(), bytes.to_string());
        }
        Method::CSpawnAll | Method::Python | Method::Node => unreachable!("own process"),
    }
    start.elapsed().as_secs_f64()
}

/// How each method is started; `None` with the reason if its tool is missing.
struct Runners {
    c: Result<PathBuf, String>,
    python: Result<PathBuf, String>,
    node: Result<PathBuf, String>,
}

impl Runners {
    fn prepare() -> Runners {
        let dir = bench_out_dir();
        let c = compile_c(&dir);
        let script = |name: &str, tool: &str, text: &str| -> Result<PathBuf, String> {
            which(tool).ok_or_else(|| format!("{tool} not found"))?;
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| e.to_string())?;
            Ok(p)
        };
        Runners {
            c,
            python: script("fanout.py", "python3", PYTHON_SOURCE),
            node: script("fanout.js", "node", NODE_SOURCE),
        }
    }

    fn missing(&self, m: Method) -> Option<&str> {
        match m {
            Method::CSpawnAll => self.c.as_ref().err().map(String::as_str),
            Method::Python => self.python.as_ref().err().map(String::as_str),
            Method::Node => self.node.as_ref().err().map(String::as_str),
            _ => None,
        }
    }

    fn measure(&self, m: Method, n: usize, bytes: u64) -> Sample {
        // C, Python and Node take the child count as their one argument.
        let mut cmd = match m {
            Method::CSpawnAll => std::process::Command::new(self.c.as_ref().unwrap()),
            Method::Python => {
                let mut c = std::process::Command::new("python3");
                c.arg(self.python.as_ref().unwrap());
                c
            }
            Method::Node => {
                let mut c = std::process::Command::new("node");
                c.arg(self.node.as_ref().unwrap());
                c
            }
            _ => {
                let mut c = this_program();
                c.args(["--one", m.name(), "--bytes", &bytes.to_string(), "--n"]);
                c
            }
        };
        let v = sample_numbers(cmd.arg(n.to_string()), m.name());
        let (file0, file1) = (v[3] as u64, v[4] as u64);
        Sample {
            secs: v[0],
            rss: v[1] as u64,
            base: v[2] as u64,
            code: file1.saturating_sub(file0),
        }
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

fn compile_c(dir: &Path) -> Result<PathBuf, String> {
    which("cc").ok_or("cc not found")?;
    let src = dir.join("fanout_floor.c");
    std::fs::write(&src, C_SOURCE).map_err(|e| e.to_string())?;
    let bin = dir.join("fanout_floor");
    let out = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !out.status.success() {
        return Err(format!("cc failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(bin)
}

/// `<target>/release/fanout-bench`: the bench binary lives in `<target>/release/deps`.
fn bench_out_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().and_then(Path::parent).unwrap();
    let dir = release.join("fanout-bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Makes room for `n` fds (each child costs the parent a few while it runs).
fn raise_nofile(n: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current.is_some_and(|c| c < n) {
        lim.current = Some(lim.maximum.map_or(n, |m| m.min(n)));
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

fn main() {
    let Some(args) = Args::parse("fanout", &["--n", "--bytes", "--rounds", "--methods", "--one"])
    else {
        return;
    };
    let n: usize = args.num("--n", 1000);
    let bytes: u64 = args.num("--bytes", 1 << 30);
    let rounds: usize = args.num("--rounds", 5);
    let methods = args.list("--methods", Method::parse, Method::ALL.to_vec());
    // `--one METHOD`: one sample in this fresh process, for `Runners::measure`.
    let one = args.item("--one", Method::parse);
    raise_nofile(4 * n as u64 + 256);
    if let Some(m) = one {
        let (base, file0) = (rss_now(), rss_file());
        let secs = run_one(m, n, bytes);
        println!("{secs:.9} {} {base} {file0} {}", peak_rss(), rss_file());
        return;
    }

    let runners = Runners::prepare();
    let mut active = Vec::new();
    for m in methods {
        match runners.missing(m) {
            Some(why) => println!("skipped {}: {why}", m.name()),
            None => active.push(m),
        }
    }
    println!(
        "fan-out: {n} x /bin/echo hello; pipeline: {bytes} bytes through 4 stages; {rounds} rounds"
    );
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); active.len()];
    for r in 0..rounds {
        for k in 0..active.len() {
            let idx = (k + r) % active.len();
            samples[idx].push(runners.measure(active[idx], n, bytes));
        }
    }
    for pipeline in [false, true] {
        let rows: Vec<usize> =
            (0..active.len()).filter(|&i| active[i].is_pipeline() == pipeline).collect();
        if rows.is_empty() {
            continue;
        }
        println!();
        println!(
            "{:<22} {:>10} {:>21} {:>8} {:>10} {:>10} {:>10}",
            if pipeline { "pipeline" } else { "fan-out" },
            "median ms",
            "range ms",
            "ratio",
            "peak RSS",
            "growth",
            "code"
        );
        let base = {
            let mut v: Vec<f64> = samples[rows[0]].iter().map(|s| s.secs).collect();
            median(&mut v)
        };
        for &i in &rows {
            let mut secs: Vec<f64> = samples[i].iter().map(|s| s.secs).collect();
            let mut rss: Vec<f64> = samples[i].iter().map(|s| s.rss as f64).collect();
            let mut growth: Vec<f64> =
                samples[i].iter().map(|s| s.rss.saturating_sub(s.base) as f64).collect();
            let mut code: Vec<f64> = samples[i].iter().map(|s| s.code as f64).collect();
            let med = median(&mut secs);
            println!(
                "{:<22} {:>10.1} {:>10.1}-{:<10.1} {:>7.2}x {:>7.2} MB {:>7.2} MB {:>7.2} MB",
                format!("{} {}", active[i].letter(), active[i].name()),
                med * 1e3,
                secs[0] * 1e3,
                secs[secs.len() - 1] * 1e3,
                med / base,
                median(&mut rss) / 1e6,
                median(&mut growth) / 1e6,
                median(&mut code) / 1e6
            );
        }
        println!("(ratio: median time over {}'s; lower is faster)", active[rows[0]].name());
        println!(
            "(peak RSS: VmHWM; growth: peak minus VmRSS before the first spawn; code: \
             file-backed RSS mapped meanwhile, part of the growth)"
        );
    }
}
