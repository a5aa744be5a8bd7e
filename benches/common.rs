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
#![allow(unsafe_code)] // getrusage

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

/// A bench's command line: `--name value` pairs. `cargo bench` adds `--bench`, and may pass a
/// filter word; both are passed over.
pub(crate) struct Args {
    bench: &'static str,
    known: &'static [&'static str],
    pairs: Vec<(String, String)>,
}

impl Args {
    /// The arguments of bench `bench`, which takes the flags `known` (each followed by a
    /// value). With no arguments at all, which is how `cargo test --all-targets` starts every
    /// bench to see that it runs, prints "skipped" and returns `None`: a full run there would
    /// take minutes. An unknown flag or a flag without its value ends the program with a
    /// message naming it.
    pub(crate) fn parse(bench: &'static str, known: &'static [&'static str]) -> Option<Args> {
        let mut words = std::env::args().skip(1).peekable();
        if words.peek().is_none() {
            println!("skipped: a benchmark; run it with `cargo bench --bench {bench}`");
            return None;
        }
        let mut args = Args { bench, known, pairs: Vec::new() };
        while let Some(word) = words.next() {
            if word == "--bench" || !word.starts_with("--") {
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
        std::process::exit(2)
    }
}

/// This process's CPU time so far (user + system, every thread), in seconds.
pub(crate) fn cpu_secs() -> f64 {
    // SAFETY: `getrusage` only writes the `rusage` it is given, which is zeroed and live.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
