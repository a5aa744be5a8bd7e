//! Helpers the benches share (included by `mod common;`; not a bench target of its own).
//!
//! # Why peak RSS is `VmHWM`, not `ru_maxrss`
//!
//! `getrusage(RUSAGE_SELF).ru_maxrss` is not the process's own peak on Linux: `exec` folds the
//! high-water RSS of the address space it replaces into the process's `maxrss`. A sample
//! process is started by the bench harness, and when the spawn shares the harness's memory
//! until `exec` (`vfork`, `CLONE_VM`: std's and offspring's spawns, `posix_spawn`), the
//! replaced address space is the harness's, so every sample reported at least the harness's
//! RSS (about 2 MB: a C program that peaks at 1.5 MB showed as 2.1 MB). `VmHWM` in
//! `/proc/self/status` is the high-water mark of the current address space alone, which `exec`
//! starts afresh: the program's own peak. Every measured program (the Rust `--one` samples, the
//! C floors, the Python and Node peers) reports that.
//!
//! # Growth
//!
//! Runtimes differ before they do anything: a Rust hello world peaks at about 2.0 MB here,
//! a C one at 1.2 MB (Rust's std touches more of libc and loads `libgcc_s`), an interpreter at
//! tens of MB. So a sample also reads its `VmRSS` just before its first operation; the growth
//! (peak minus that) is what the library under test adds, and what it controls.

#![allow(dead_code)] // each bench uses what it needs
#![allow(unsafe_code)] // getrusage, and the libc `posix_spawn` floors

use std::ffi::{c_char, CString};
use std::os::unix::ffi::OsStrExt;

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
        * 1024
}

/// This process's own peak RSS (`VmHWM`), in bytes: see the module docs for why not
/// `ru_maxrss`.
pub(crate) fn peak_rss() -> u64 {
    status_field("VmHWM")
}

/// This process's RSS now (`VmRSS`), in bytes: read before the first operation, so that the
/// growth (`peak_rss() - rss_now()`) can be shown.
pub(crate) fn rss_now() -> u64 {
    status_field("VmRSS")
}

/// This process's file-backed RSS now (`RssFile`: machine code, read-only data, mapped
/// files), in bytes.
pub(crate) fn rss_file() -> u64 {
    status_field("RssFile")
}

/// The median (the mean of the middle two for an even count); sorts `v`.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A bench's command line: `--name value` pairs, and switches (`--name` alone) where the bench
/// takes some. `cargo bench` adds `--bench`, and may pass a filter word; both are passed over.
pub(crate) struct Args {
    bench: &'static str,
    known: &'static [&'static str],
    switches: &'static [&'static str],
    pairs: Vec<(String, String)>,
    set: Vec<String>,
}

impl Args {
    /// The arguments of bench `bench`, which takes the flags `known` (each followed by a
    /// value). With no arguments at all, which is how `cargo test --all-targets` starts every
    /// bench to see that it runs, prints "skipped" and returns `None`: a full run there would
    /// take minutes. An unknown flag or a flag without its value ends the program with a
    /// message naming it.
    pub(crate) fn parse(bench: &'static str, known: &'static [&'static str]) -> Option<Args> {
        Args::parse_with_switches(bench, known, &[])
    }

    /// As [`Args::parse`], for a bench that also takes the flags `switches`, which have no
    /// value: [`Args::switch`] says whether one was given.
    pub(crate) fn parse_with_switches(
        bench: &'static str,
        known: &'static [&'static str],
        switches: &'static [&'static str],
    ) -> Option<Args> {
        let mut words = std::env::args().skip(1).peekable();
        if words.peek().is_none() {
            println!("skipped: a benchmark; run it with `cargo bench --bench {bench}`");
            return None;
        }
        let mut args = Args { bench, known, switches, pairs: Vec::new(), set: Vec::new() };
        while let Some(word) = words.next() {
            if word == "--bench" || !word.starts_with("--") {
                continue;
            }
            if switches.contains(&word.as_str()) {
                args.set.push(word);
                continue;
            }
            if !known.contains(&word.as_str()) {
                args.fail(&format!("unknown flag {word}"));
            }
            match words.next_if(|v| !v.starts_with("--")) {
                Some(value) => args.pairs.push((word, value)),
                None => args.fail(&format!("{word} needs a value")),
            }
        }
        Some(args)
    }

    /// Whether the switch `--flag` (one without a value) was given.
    pub(crate) fn switch(&self, flag: &str) -> bool {
        self.set.iter().any(|f| f == flag)
    }

    /// The value of `--flag`, if given (the last one wins).
    pub(crate) fn text(&self, flag: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(f, _)| f == flag).map(|(_, v)| v.as_str())
    }

    /// The number given with `--flag`, or `default`.
    pub(crate) fn num<T: std::str::FromStr>(&self, flag: &str, default: T) -> T {
        match self.text(flag) {
            None => default,
            Some(v) => {
                v.parse().unwrap_or_else(|_| self.fail(&format!("{flag}: not a number: {v:?}")))
            }
        }
    }

    /// The value of `--flag` read by `item`, if given; a value `item` does not know ends the
    /// program with a message naming it.
    pub(crate) fn item<T>(&self, flag: &str, item: impl Fn(&str) -> Option<T>) -> Option<T> {
        let v = self.text(flag)?;
        Some(item(v).unwrap_or_else(|| self.fail(&format!("{flag}: unknown item {v:?}"))))
    }

    /// The comma-separated list given with `--flag`, each item read by `item`, or `default`.
    pub(crate) fn list<T>(
        &self,
        flag: &str,
        item: impl Fn(&str) -> Option<T>,
        default: Vec<T>,
    ) -> Vec<T> {
        match self.text(flag) {
            None => default,
            Some(v) => v
                .split(',')
                .map(|w| {
                    item(w.trim())
                        .unwrap_or_else(|| self.fail(&format!("{flag}: unknown item {w:?}")))
                })
                .collect(),
        }
    }

    /// Ends the program with `why` and the flags this bench takes.
    pub(crate) fn fail(&self, why: &str) -> ! {
        eprintln!("{} bench: {why}", self.bench);
        eprintln!("flags: {} (each with a value)", self.known.join(" "));
        if !self.switches.is_empty() {
            eprintln!("switches: {} (no value)", self.switches.join(" "));
        }
        std::process::exit(2)
    }
}

/// Runs one sample's process (stderr shown), which must succeed, and reads the numbers it
/// prints on stdout, separated by white space; `what` names it in a failure.
pub(crate) fn sample_numbers(cmd: &mut std::process::Command, what: &str) -> Vec<f64> {
    let out = cmd.stderr(std::process::Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "{what} failed: {}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .map(|w| w.parse().unwrap_or_else(|_| panic!("{what} printed {w:?}, not a number")))
        .collect()
}

/// A fresh copy of this program, for a sample of its own (`--one ...`).
pub(crate) fn this_program() -> std::process::Command {
    std::process::Command::new(std::env::current_exe().unwrap())
}

/// This process's CPU time so far (user + system, every thread), in seconds.
pub(crate) fn cpu_secs() -> f64 {
    usage_secs(libc::RUSAGE_SELF)
}

/// The CPU time (user + system) of this process's children that have been waited for, in
/// seconds.
pub(crate) fn children_cpu_secs() -> f64 {
    usage_secs(libc::RUSAGE_CHILDREN)
}

/// User + system CPU seconds of `getrusage(who)`.
fn usage_secs(who: libc::c_int) -> f64 {
    // SAFETY: `getrusage` only writes the `rusage` it is given, which is zeroed and live.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(who, &mut usage), 0);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A libc `posix_spawn` of one program with the parent's environment, argv and envp prepared
/// once, before any timing: the floor the spawn and capture rows are compared with.
pub(crate) struct RawSpawn {
    path: CString,
    /// Owns the strings that `argv` and `envp` point into.
    _strings: Vec<CString>,
    /// NULL-terminated.
    argv: Vec<*const c_char>,
    /// NULL-terminated.
    envp: Vec<*const c_char>,
}

impl RawSpawn {
    /// `argv[0]` is the program's path, and its `argv[0]`.
    pub(crate) fn new(argv: &[&str]) -> RawSpawn {
        let path = CString::new(argv[0]).unwrap();
        let mut strings: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
        let argc = strings.len();
        strings.extend(std::env::vars_os().map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            CString::new(entry).unwrap()
        }));
        let mut argv: Vec<*const c_char> = strings[..argc].iter().map(|s| s.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const c_char> = strings[argc..].iter().map(|s| s.as_ptr()).collect();
        envp.push(std::ptr::null());
        RawSpawn { path, _strings: strings, argv, envp }
    }

    /// Spawns the program with each `(fd, target)` of `dups` duplicated onto `target` in the
    /// child; returns its pid.
    pub(crate) fn spawn(&self, dups: &[(libc::c_int, libc::c_int)]) -> libc::pid_t {
        let mut pid: libc::pid_t = 0;
        // SAFETY: plain libc calls on values owned here: the file actions are initialised
        // before use and destroyed after; `path` is a C string and `argv`/`envp` are
        // NULL-terminated arrays of C strings owned by `self`, alive for the call.
        let rc = unsafe {
            let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
            libc::posix_spawn_file_actions_init(actions.as_mut_ptr());
            for &(fd, target) in dups {
                libc::posix_spawn_file_actions_adddup2(actions.as_mut_ptr(), fd, target);
            }
            let rc = libc::posix_spawn(
                &mut pid,
                self.path.as_ptr(),
                actions.as_ptr(),
                std::ptr::null(),
                self.argv.as_ptr().cast(),
                self.envp.as_ptr().cast(),
            );
            libc::posix_spawn_file_actions_destroy(actions.as_mut_ptr());
            rc
        };
        assert_eq!(rc, 0, "posix_spawn: {}", std::io::Error::from_raw_os_error(rc));
        pid
    }

    /// Spawns and waits; the exit status must be 0.
    pub(crate) fn run(&self) {
        let pid = self.spawn(&[]);
        assert_eq!(wait_pid(pid), 0);
    }

    /// Spawns with stdout and stderr on two pipes, reads both to EOF in a `poll` + `read`
    /// loop, then waits (the exit status must be 0); returns stdout. The capture a plain C
    /// program does.
    pub(crate) fn capture(&self) -> Vec<u8> {
        let mut pipes = [[-1; 2]; 2];
        for pipe in &mut pipes {
            // SAFETY: `pipe` is a live array of two ints for `pipe2` to fill.
            assert_eq!(unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        }
        let pid = self.spawn(&[(pipes[0][1], 1), (pipes[1][1], 2)]);
        let mut fds = pipes.map(|p| {
            // SAFETY: the write end is ours and the child holds its own copy.
            unsafe { libc::close(p[1]) };
            libc::pollfd { fd: p[0], events: libc::POLLIN, revents: 0 }
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while fds.iter().any(|p| p.fd >= 0) {
            // SAFETY: `fds` is an array of two pollfds; a negative fd is skipped.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                assert_eq!(std::io::Error::last_os_error().kind(), std::io::ErrorKind::Interrupted);
                continue;
            }
            for (k, p) in fds.iter_mut().enumerate() {
                if p.fd < 0 || p.revents == 0 {
                    continue;
                }
                // SAFETY: reads into a stack buffer of the length given, from an fd this
                // loop owns.
                let got = unsafe { libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if got > 0 {
                    if k == 0 {
                        out.extend_from_slice(&buf[..got as usize]);
                    }
                } else {
                    // SAFETY: closes the read end this loop owns, once.
                    unsafe { libc::close(p.fd) };
                    p.fd = -1;
                }
            }
        }
        assert_eq!(wait_pid(pid), 0);
        out
    }
}

/// `waitpid(pid)`, retried on EINTR; the raw wait status.
pub(crate) fn wait_pid(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live int for `waitpid` to fill.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return status;
        }
        assert_eq!(std::io::Error::last_os_error().kind(), std::io::ErrorKind::Interrupted);
    }
}
