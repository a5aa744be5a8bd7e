//! Spawn-and-wait benchmark: how long it takes to start `/bin/true` and collect its exit status,
//! through offspring and through its peers, in the same run.
//!
//! ```text
//! cargo bench --bench spawn
//! cargo bench --bench spawn -- --n 2000 --rounds 5 --heap-mib 1024 --heap-fork-n 100 --methods a,b,c,d,e,f
//! ```
//!
//! Methods (pick with `--methods`, by letter or name; default all):
//!
//! | | name | what |
//! | --- | --- | --- |
//! | a | `offspring` | `offspring::Command::new("/bin/true").status()` |
//! | b | `std` | `std::process::Command::new("/bin/true").status()` |
//! | c | `posix_spawn` | libc `posix_spawn` + `waitpid`: the reference, ratio 1.00 |
//! | d | `clone` | `clone(CLONE_VM \| CLONE_VFORK \| CLONE_PIDFD)`, the child `execve`s, + `waitid(P_PIDFD)`: the floor |
//! | e | `fork` | `fork` + `execve` + `waitpid` |
//! | f | `offspring-fork` | offspring forced onto its fork/exec fallback path (`force_fork_path`) |
//! | g | `offspring-vfork` | offspring forced onto its vfork path (`clone3`, used for uid/rlimit/umask) |
//!
//! Each method spawns `--n` children (default 2000), split into `--rounds` rounds (default 5); a
//! round runs every method once, and the order rotates from round to round, so drift in the
//! machine's speed spreads over all methods. Every spawn is timed on its own. The table gives, in
//! microseconds per child, the median, min and max over those samples, the range of the
//! per-round medians, and the ratio of the median to `posix_spawn`'s.
//!
//! Then the same again from a parent with `--heap-mib` MiB (default 1024; 0 skips it) of heap,
//! every page touched first: a `fork` copies the page tables, a `CLONE_VM` spawn does not. `fork`
//! and `offspring-fork` run only `--heap-fork-n` times there (default 100), as each fork costs
//! tens of milliseconds.
//!
//! The raw methods pass the same argv and environment, prepared once, and check the exit status
//! like the others do. Waits go through rustix (direct system calls, no overhead over libc's).
//! Absolute figures drift 20-40 % between runs on a shared VM; compare ratios.

// The raw libc methods are the floor offspring is measured against, and they need unsafe code.
#![allow(unsafe_code)]

mod common;
use common::{median, Args};
use std::ffi::{c_char, c_int, c_void, CString};
use std::hint::black_box;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use rustix::process::{Pid, WaitIdOptions, WaitOptions};

const PROGRAM: &str = "/bin/true";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Offspring,
    Std,
    PosixSpawn,
    Clone,
    Fork,
    OffspringFork,
    OffspringVfork,
}

impl Method {
    const ALL: [Method; 7] = [
        Method::Offspring,
        Method::Std,
        Method::PosixSpawn,
        Method::Clone,
        Method::Fork,
        Method::OffspringFork,
        Method::OffspringVfork,
    ];

    fn letter(self) -> &'static str {
        ["a", "b", "c", "d", "e", "f", "g"][self as usize]
    }

    fn name(self) -> &'static str {
        ["offspring", "std", "posix_spawn", "clone", "fork", "offspring-fork", "offspring-vfork"]
            [self as usize]
    }

    fn describe(self) -> &'static str {
        match self {
            Method::Offspring => "offspring Command::status",
            Method::Std => "std Command::status",
            Method::PosixSpawn => "libc posix_spawn + waitpid",
            Method::Clone => "clone(VM|VFORK|PIDFD) + waitid",
            Method::Fork => "fork + execve + waitpid",
            Method::OffspringFork => "offspring status, fork path",
            Method::OffspringVfork => "offspring status, vfork (clone3) path",
        }
    }

    fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.letter() == s || m.name() == s)
    }
}

struct Options {
    n: usize,
    rounds: usize,
    heap_mib: usize,
    heap_fork_n: usize,
    methods: Vec<Method>,
}

fn parse_args() -> Option<Options> {
    let args =
        Args::parse("spawn", &["--n", "--rounds", "--heap-mib", "--heap-fork-n", "--methods"])?;
    Some(Options {
        n: args.num("--n", 2000),
        rounds: args.num("--rounds", 5).max(1),
        heap_mib: args.num("--heap-mib", 1024),
        heap_fork_n: args.num("--heap-fork-n", 100),
        methods: args.list("--methods", Method::parse, Method::ALL.to_vec()),
    })
}

fn main() {
    let Some(opts) = parse_args() else { return };
    let mut raw = RawSpawn::new();
    run_table(&opts, &mut raw, 0, |_| opts.n);
    if opts.heap_mib > 0 {
        let heap = touched_heap(opts.heap_mib);
        run_table(&opts, &mut raw, opts.heap_mib, |m| {
            if m == Method::Fork || m == Method::OffspringFork {
                opts.heap_fork_n.min(opts.n)
            } else {
                opts.n
            }
        });
        black_box(&heap);
    }
}

/// `mib` MiB of heap with every page written, so that the page tables are populated.
fn touched_heap(mib: usize) -> Vec<u8> {
    let mut heap = vec![0u8; mib << 20];
    for page in heap.chunks_mut(4096) {
        page[0] = 1;
    }
    heap
}

/// Per-spawn times of one method, in microseconds.
struct Samples {
    all: Vec<f64>,
    round_medians: Vec<f64>,
}

fn run_table(opts: &Options, raw: &mut RawSpawn, heap_mib: usize, count: impl Fn(Method) -> usize) {
    let methods = &opts.methods;
    let mut samples: Vec<Samples> =
        methods.iter().map(|_| Samples { all: Vec::new(), round_medians: Vec::new() }).collect();
    for &method in methods {
        for _ in 0..5 {
            spawn_and_wait(method, raw).unwrap_or_else(|err| fail(method, err));
        }
    }
    for round in 0..opts.rounds {
        for k in 0..methods.len() {
            let i = (k + round) % methods.len();
            let method = methods[i];
            let n = count(method);
            let this_round = n / opts.rounds + usize::from(round < n % opts.rounds);
            let mut times = Vec::with_capacity(this_round);
            for _ in 0..this_round {
                let start = Instant::now();
                spawn_and_wait(method, raw).unwrap_or_else(|err| fail(method, err));
                times.push(start.elapsed().as_secs_f64() * 1e6);
            }
            if !times.is_empty() {
                samples[i].round_medians.push(median(&mut times.clone()));
                samples[i].all.extend(times);
            }
        }
    }

    println!(
        "\nspawn+wait {PROGRAM}, parent heap {heap_mib} MiB touched, {} rounds, order rotated \
         (us per child)",
        opts.rounds
    );
    println!(
        "{:<34} {:>5} {:>9} {:>9} {:>9} {:>19} {:>6}",
        "method", "n", "median", "min", "max", "round medians", "ratio"
    );
    let reference = methods
        .iter()
        .position(|&m| m == Method::PosixSpawn)
        .map(|i| median(&mut samples[i].all.clone()));
    for (method, s) in methods.iter().zip(&mut samples) {
        let med = median(&mut s.all);
        let (min, max) = (s.all[0], s.all[s.all.len() - 1]);
        s.round_medians.sort_by(f64::total_cmp);
        let rounds =
            format!("{:.1}-{:.1}", s.round_medians[0], s.round_medians[s.round_medians.len() - 1]);
        let ratio = reference.map_or("-".to_owned(), |r| format!("{:.2}", med / r));
        println!(
            "{:<34} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>19} {:>6}",
            format!("{} {}", method.letter(), method.describe()),
            s.all.len(),
            med,
            min,
            max,
            rounds,
            ratio
        );
    }
}

fn fail(method: Method, err: io::Error) -> ! {
    eprintln!("spawn bench: {}: {err}", method.name());
    std::process::exit(1)
}

fn spawn_and_wait(method: Method, raw: &mut RawSpawn) -> io::Result<()> {
    match method {
        Method::Offspring => {
            let status = offspring::Command::new(PROGRAM).status()?;
            check(status.code())
        }
        Method::OffspringFork => {
            let status = offspring::Command::new(PROGRAM).force_fork_path(true).status()?;
            check(status.code())
        }
        Method::OffspringVfork => {
            let status = offspring::Command::new(PROGRAM).force_spawn_path("vfork").status()?;
            check(status.code())
        }
        Method::Std => {
            let status = std::process::Command::new(PROGRAM).status()?;
            check(status.code())
        }
        Method::PosixSpawn => raw.posix_spawn(),
        Method::Clone => raw.clone_pidfd(),
        Method::Fork => raw.fork(),
    }
}

fn check(code: Option<i32>) -> io::Result<()> {
    match code {
        Some(0) => Ok(()),
        other => Err(io::Error::other(format!("{PROGRAM} exited with {other:?}"))),
    }
}

/// The argv and environment of `/bin/true` as C arrays, built once, plus a stack for `clone`.
struct RawSpawn {
    path: CString,
    /// Owns the strings that `argv` and `envp` point into.
    _strings: Vec<CString>,
    /// NULL-terminated.
    argv: Vec<*const c_char>,
    /// NULL-terminated.
    envp: Vec<*const c_char>,
    /// The child's stack for `clone`; reused, since the parent waits for `execve` (CLONE_VFORK).
    stack: Vec<u128>,
}

impl RawSpawn {
    fn new() -> RawSpawn {
        let path = CString::new(PROGRAM).unwrap();
        let arg0 = path.clone();
        let env: Vec<CString> = std::env::vars_os()
            .map(|(k, v)| {
                let mut entry = k.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                CString::new(entry).unwrap()
            })
            .collect();
        let argv = vec![arg0.as_ptr(), std::ptr::null()];
        let mut envp: Vec<*const c_char> = env.iter().map(|e| e.as_ptr()).collect();
        envp.push(std::ptr::null());
        let mut strings = env;
        strings.push(arg0);
        RawSpawn { path, _strings: strings, argv, envp, stack: vec![0; 64 * 1024 / 16] }
    }

    fn posix_spawn(&self) -> io::Result<()> {
        let mut pid: libc::pid_t = 0;
        // SAFETY: `path` is a C string and `argv`/`envp` are NULL-terminated arrays of C
        // strings, all owned by `self` and alive for the call; null file actions and
        // attributes ask for the defaults.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.path.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                self.argv.as_ptr().cast(),
                self.envp.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        wait_pid(pid)
    }

    fn fork(&self) -> io::Result<()> {
        // SAFETY: the child calls only `execve` and `_exit`, both async-signal-safe, on memory
        // prepared before the fork; it allocates nothing and takes no lock.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above.
            unsafe { exec_or_exit(self) }
        }
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        wait_pid(pid)
    }

    fn clone_pidfd(&mut self) -> io::Result<()> {
        let mut pidfd: c_int = -1;
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
        // The stack grows down: hand over its (16-byte aligned, as u128) end.
        let stack_top = self.stack.as_mut_ptr_range().end.cast::<c_void>();
        let arg = (self as *const RawSpawn).cast_mut().cast::<c_void>();
        // SAFETY: `clone_child` runs on its own stack, inside our memory, while this thread is
        // suspended (CLONE_VFORK) until it has called `execve` or `_exit`, so nothing else
        // touches `self` meanwhile; it only reads `self` and makes async-signal-safe calls.
        // With CLONE_PIDFD the kernel writes the new pidfd to `pidfd`, which outlives the call.
        let pid = unsafe {
            libc::clone(clone_child, stack_top, flags, arg, std::ptr::addr_of_mut!(pidfd))
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just created this pidfd for us and nothing else owns it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        let status = rustix::io::retry_on_intr(|| {
            rustix::process::waitid(
                rustix::process::WaitId::PidFd(pidfd.as_fd()),
                WaitIdOptions::EXITED,
            )
        })?;
        check(status.and_then(|s| s.exit_status()))
    }
}

/// The child side of `clone_pidfd`: replaces itself with `/bin/true`.
extern "C" fn clone_child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `RawSpawn` the suspended parent passed to `clone`; the child only
    // reads it, and execs or exits before the parent runs again.
    unsafe { exec_or_exit(&*arg.cast::<RawSpawn>()) }
}

/// `execve(/bin/true)`, or `_exit(127)` if that fails.
///
/// # Safety
///
/// Call only in a freshly forked or cloned child: it never returns.
unsafe fn exec_or_exit(raw: &RawSpawn) -> ! {
    // SAFETY: the path and the NULL-terminated arrays are owned by `raw`, alive until the exec.
    unsafe {
        libc::execve(raw.path.as_ptr(), raw.argv.as_ptr(), raw.envp.as_ptr());
        libc::_exit(127)
    }
}

fn wait_pid(pid: libc::pid_t) -> io::Result<()> {
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::other("spawned pid 0"))?;
    let status =
        rustix::io::retry_on_intr(|| rustix::process::waitpid(Some(pid), WaitOptions::empty()))?;
    check(status.and_then(|(_, s)| s.exit_status()))
}
