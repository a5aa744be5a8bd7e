//! `Pipeline::pipe_capacity`: the pipes between stages get the capacity asked for (clamped to
//! `/proc/sys/fs/pipe-max-size`), the pipes to the parent keep the kernel's default, and the
//! bytes stay exact whatever the capacity.
//!
//! The kernel may refuse a larger pipe to a user whose pipes already hold more than
//! `pipe-user-pages-soft` (other tests running at the same time count too); the pipeline then
//! keeps the default, by design. So the tests that check a capacity retry a few times, and skip
//! with a printed reason when this process's own `F_SETPIPE_SZ` is refused as well.

#![cfg(target_os = "linux")]
// The retries pause between attempts.
#![allow(clippy::disallowed_methods)]

use offspring::{Pipeline, Stdio};

use crate::support::{fixture, ms, noise, SpawnPath, PATHS};

/// `/proc/sys/fs/pipe-max-size`.
fn pipe_max_size() -> usize {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size").unwrap().trim().parse().unwrap()
}

/// The capacity of a fresh pipe: the kernel's default for this user right now.
fn default_capacity() -> usize {
    let (rd, _wr) = rustix::pipe::pipe().unwrap();
    rustix::pipe::fcntl_getpipe_size(&rd).unwrap()
}

/// Whether this process may give a pipe `bytes` of capacity right now.
fn kernel_allows(bytes: usize) -> bool {
    let (rd, _wr) = rustix::pipe::pipe().unwrap();
    rustix::pipe::fcntl_setpipe_size(&rd, bytes).is_ok()
}

/// What the fixture's `pipe-size` prints, parsed: (stdin, stdout), `None` for "not a pipe".
fn sizes(line: &str) -> (Option<usize>, Option<usize>) {
    let field = |name: &str| {
        let v = line.split_whitespace().find_map(|w| w.strip_prefix(name)).unwrap_or_else(|| {
            panic!("no {name} in {line:?}");
        });
        if v == "-" {
            None
        } else {
            Some(v.parse().unwrap())
        }
    };
    (field("stdin="), field("stdout="))
}

/// The middle stage of `exit 0 | pipe-size | cat` reports both of its pipes: each is a pipe
/// between stages. Returns (its stdin, its stdout).
fn middle_sizes(path: SpawnPath, capacity: Option<usize>) -> (usize, usize) {
    let mut p =
        fixture(path, ["exit", "0"]) | fixture(path, ["pipe-size"]) | fixture(path, ["cat"]);
    if let Some(c) = capacity {
        p.pipe_capacity(c);
    }
    let out = p.output().unwrap();
    assert!(out.statuses.iter().all(|s| s.success()), "{:?}", out.statuses);
    match sizes(std::str::from_utf8(&out.stdout).unwrap()) {
        (Some(i), Some(o)) => (i, o),
        other => panic!("the middle stage's stdin and stdout are not pipes: {other:?}"),
    }
}

/// Runs `middle_sizes` until both pipes report `want` (a few tries: the kernel may refuse a
/// larger pipe while other tests hold many). Prints why and returns if the kernel refuses this
/// process the same capacity too, so that the check cannot be made now.
fn reaches(path: SpawnPath, capacity: usize, want: usize) {
    let mut seen = Vec::new();
    for _ in 0..10 {
        let got = middle_sizes(path, Some(capacity));
        if got == (want, want) {
            return;
        }
        seen.push(got);
        std::thread::sleep(ms(100));
    }
    if !kernel_allows(want) {
        eprintln!(
            "skipped: the kernel refuses {want}-byte pipes to this user now \
             (over pipe-user-pages-soft?); the pipeline saw {seen:?}"
        );
        return;
    }
    panic!("capacity {capacity}: the pipes between stages were {seen:?}, not {want}");
}

#[test]
fn the_capacity_reaches_the_pipes_between_stages_on_every_spawn_path() {
    for path in PATHS {
        reaches(path, 1 << 20, (1 << 20).min(pipe_max_size()));
        reaches(path, 128 << 10, 128 << 10);
    }
}

#[test]
fn the_default_is_256_kib_and_zero_leaves_the_kernels_default() {
    let path = SpawnPath::Vfork;
    reaches(path, 256 << 10, 256 << 10);
    let mut seen = Vec::new();
    for _ in 0..10 {
        let got = middle_sizes(path, None);
        if got == (256 << 10, 256 << 10) {
            break;
        }
        seen.push(got);
        std::thread::sleep(ms(100));
    }
    if seen.len() == 10 {
        assert!(
            !kernel_allows(256 << 10),
            "the default capacity never reached the pipes: {seen:?}"
        );
        eprintln!("skipped: the kernel refuses 256 KiB pipes to this user now");
    }
    // 0: no F_SETPIPE_SZ at all, the pipes are as the kernel made them.
    let (i, o) = middle_sizes(path, Some(0));
    let kernel = default_capacity();
    assert_eq!((i, o), (kernel, kernel));
}

#[test]
fn a_capacity_above_pipe_max_size_or_usize_max_is_clamped_not_an_error() {
    let max = pipe_max_size();
    for capacity in [max + 1, max * 4, usize::MAX / 2, usize::MAX] {
        reaches(SpawnPath::Vfork, capacity, max);
    }
    // Below a page: the kernel rounds up to one page; still no error.
    let (rd, _wr) = rustix::pipe::pipe().unwrap();
    let page = rustix::pipe::fcntl_setpipe_size(&rd, 1).unwrap();
    assert!(page >= 4096 && page.is_power_of_two(), "{page}");
    reaches(SpawnPath::Vfork, 1, page);
}

#[test]
fn the_pipes_to_the_parent_keep_the_kernels_default() {
    let kernel = default_capacity();
    // The last stage's stdout is the capture pipe; the first stage's stdin the input pipe.
    let mut p = fixture(SpawnPath::Vfork, ["pipe-size"]) | fixture(SpawnPath::Vfork, ["cat"]);
    let out = p.pipe_capacity(usize::MAX).input(Vec::new()).output().unwrap();
    let (stdin, _) = sizes(std::str::from_utf8(&out.stdout).unwrap());
    assert_eq!(stdin, Some(kernel), "the input pipe was resized");
    let mut p = fixture(SpawnPath::Vfork, ["exit", "0"]) | fixture(SpawnPath::Vfork, ["pipe-size"]);
    let out = p.pipe_capacity(usize::MAX).output().unwrap();
    let (_, stdout) = sizes(std::str::from_utf8(&out.stdout).unwrap());
    assert_eq!(stdout, Some(kernel), "the capture pipe was resized");
}

#[test]
fn a_spawned_pipeline_gets_the_capacity_too() {
    let want = (1 << 20).min(pipe_max_size());
    let mut seen = Vec::new();
    for _ in 0..10 {
        let mut last = fixture(SpawnPath::Vfork, ["cat"]);
        last.stdout(Stdio::piped());
        let mut p: Pipeline = fixture(SpawnPath::Vfork, ["exit", "0"])
            | fixture(SpawnPath::Vfork, ["pipe-size"])
            | last;
        let mut child = p.pipe_capacity(1 << 20).spawn().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text).unwrap();
        assert!(child.wait().unwrap().iter().all(|s| s.success()));
        let got = sizes(&text);
        if got == (Some(want), Some(want)) {
            return;
        }
        seen.push(got);
        std::thread::sleep(ms(100));
    }
    assert!(!kernel_allows(want), "spawn(): the pipes between stages were {seen:?}, not {want}");
    eprintln!("skipped: the kernel refuses {want}-byte pipes to this user now");
}

#[test]
fn bytes_are_exact_through_small_default_and_large_pipes() {
    let data = noise(24 << 20);
    for capacity in [0, 4096, 64 << 10, 256 << 10, usize::MAX] {
        let mut p = offspring::cmd!("cat")
            | fixture(SpawnPath::Vfork, ["cat"])
            | offspring::cmd!("cat")
            | fixture(SpawnPath::PosixSpawn, ["cat"]);
        let out = p.pipe_capacity(capacity).input(data.clone()).output().unwrap();
        assert!(out.statuses.iter().all(|s| s.success()), "{capacity}: {:?}", out.statuses);
        assert_eq!(out.stdout.len(), data.len(), "capacity {capacity}");
        assert!(out.stdout == data, "capacity {capacity}: bytes differ");
    }
}
