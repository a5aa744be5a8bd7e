//! The mapped capture (`output_mapped`/`run_mapped`): 1 GiB exact on the memfd path and on
//! the pipe fallback, sealing against a grandchild that keeps writing, timeouts and cancels
//! keep the partial output, `max_buffer` exact through pipes, no fd or mapping leaks.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use offspring::{
    exec, CancelHandle, ErrorKind, MappedBytes, MappedOutput, Overflow, Signal, Stdio,
};

use crate::support::{fixture, isolated, ms, SpawnPath, PATHS};

/// The 1 GiB tests hold this, so that two of them never hold 2 GiB at once.
static BIG: Mutex<()> = Mutex::new(());

/// Checks that `buf` is exactly the fixture's pattern (byte `i` is `i % 251`) of `len` bytes,
/// a MiB at a time with `memcmp` (fast in a debug build too).
fn assert_pattern(buf: &[u8], len: usize, what: &str) {
    const CHUNK: usize = 1 << 20;
    assert_eq!(buf.len(), len, "{what}: length");
    let table: Vec<u8> = (0..CHUNK + 251).map(|i| (i % 251) as u8).collect();
    for (k, chunk) in buf.chunks(CHUNK).enumerate() {
        let start = (k * CHUNK) % 251;
        assert!(chunk == &table[start..start + chunk.len()], "{what}: MiB {k} differs");
    }
}

fn sh(script: &str) -> offspring::Command {
    let mut cmd = offspring::Command::new("/bin/sh");
    cmd.args(["-c", script, env!("CARGO_BIN_EXE_offspring-fixture")]);
    cmd
}

#[test]
fn mapped_output_is_send_sync_and_converts() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MappedBytes>();
    send_sync::<MappedOutput>();
    let out = exec("printf hello; printf oops >&2").output_mapped().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_mapped() && out.stderr.is_mapped());
    assert_eq!(&out.stdout[..], b"hello");
    assert_eq!(&out.stderr[..], b"oops");
    // Read from another thread.
    let stdout = out.stdout;
    let len = std::thread::scope(|s| s.spawn(|| stdout.len()).join().unwrap());
    assert_eq!(len, 5);
    assert_eq!(Vec::from(stdout), b"hello");
}

#[test]
fn one_gib_exact_on_the_mapped_path() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 1 << 30;
    let out = fixture(SpawnPath::PosixSpawn, ["write", &N.to_string()]).output_mapped().unwrap();
    assert!(out.status.success(), "{}", out.status);
    assert!(out.stdout.is_mapped());
    assert_pattern(&out.stdout, N, "mapped");
    assert!(out.stderr.is_empty());
}

#[test]
fn one_gib_exact_on_the_pipe_fallback() {
    let _big = BIG.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 1 << 30;
    let out =
        fixture(SpawnPath::PosixSpawn, ["write", &N.to_string()]).output_mapped_fallback().unwrap();
    assert!(out.status.success(), "{}", out.status);
    assert!(!out.stdout.is_mapped());
    assert_pattern(&out.stdout, N, "fallback");
}

#[test]
fn every_spawn_path_and_both_streams() {
    for path in PATHS {
        let out = fixture(path, ["flood", "300000"]).output_mapped().unwrap();
        assert!(out.status.success(), "{path:?}");
        assert_pattern(&out.stdout, 300_000, "stdout");
        assert_pattern(&out.stderr, 300_000, "stderr");
        let fallback = fixture(path, ["flood", "300000"]).output_mapped_fallback().unwrap();
        assert_eq!(fallback.stdout, out.stdout);
        assert_eq!(fallback.stderr, out.stderr);
    }
}

#[test]
fn streams_not_captured_come_back_empty() {
    let out = exec("echo out; echo err >&2").stderr(Stdio::null()).output_mapped().unwrap();
    assert_eq!(&out.stdout[..], b"out\n");
    assert!(out.stderr.is_empty() && !out.stderr.is_mapped());
    let out = exec("true").output_mapped().unwrap();
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn merged_streams_interleave_in_one_file() {
    let out = exec("echo a; echo b >&2; echo c; echo d >&2")
        .stderr_to_stdout(true)
        .output_mapped()
        .unwrap();
    assert_eq!(&out.stdout[..], b"a\nb\nc\nd\n");
    assert!(out.stderr.is_empty());
}

#[test]
fn input_reaches_the_child() {
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let out = offspring::Command::new("cat").input(input.clone()).output_mapped().unwrap();
    assert!(out.stdout.is_mapped());
    assert!(out.stdout[..] == input[..]);
    // The input stays with the command: a second run gets it again.
    let mut cmd = offspring::Command::new("cat");
    cmd.input(b"again".to_vec());
    assert_eq!(&cmd.output_mapped().unwrap().stdout[..], b"again");
    assert_eq!(&cmd.output_mapped().unwrap().stdout[..], b"again");
    // From a file.
    let file = temp_path("input");
    std::fs::write(&file, b"from a file").unwrap();
    let mut cmd = offspring::Command::new("cat");
    cmd.input_file(&file);
    assert_eq!(&cmd.output_mapped().unwrap().stdout[..], b"from a file");
    assert_eq!(&cmd.output_mapped().unwrap().stdout[..], b"from a file");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn checked_exit_carries_the_output() {
    let out = exec("echo out; exit 3").output_mapped().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = exec("echo out; echo why >&2; exit 3").run_mapped().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ExitCode);
    assert_eq!(err.exit_status().unwrap().code(), Some(3));
    assert_eq!(err.stdout(), b"out\n");
    assert_eq!(err.stderr(), b"why\n");
    assert!(err.to_string().contains("why"), "{err}");
    let out = exec("exit 3").unchecked(true).run_mapped().unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn timeout_keeps_the_partial_output() {
    for path in PATHS {
        let err = sh(r#""$0" write 100000; exec "$0" sleep-forever"#)
            .force_fork_path(path == SpawnPath::Fork)
            .timeout(ms(300))
            .output_mapped()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{path:?}: {err}");
        let (pat, tail) = err.stdout().split_at(100_000);
        assert_pattern(pat, 100_000, "partial");
        assert_eq!(tail, b"ready\n");
        assert_eq!(err.signal_sent(), Some(Signal::TERM));
    }
}

#[test]
fn timeout_keeps_a_large_partial_output_mapped_as_it_grew() {
    const N: usize = 50_000_000;
    let err = sh(&format!(r#""$0" write {N}; exec "$0" sleep-forever"#))
        .timeout(Duration::from_secs(5))
        .output_mapped()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    let (pat, tail) = err.stdout().split_at(N);
    assert_pattern(pat, N, "partial");
    assert_eq!(tail, b"ready\n");
}

#[test]
fn timeout_escalates_to_sigkill_after_the_grace_period() {
    let err = sh(r#"echo before; exec "$0" ignore TERM"#)
        .timeout(ms(200))
        .kill_signal(Signal::TERM)
        .force_kill_after(ms(200))
        .output_mapped()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(err.stdout(), b"before\nready\n");
    assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::KILL));
    assert!(err.needed_kill(), "{err}");
}

#[test]
fn cancel_keeps_the_partial_output() {
    let handle = CancelHandle::new();
    let h2 = handle.clone();
    let t = std::thread::spawn(move || {
        #[allow(clippy::disallowed_methods)] // reason: the cancel must come while it runs
        std::thread::sleep(ms(300));
        h2.cancel();
    });
    let err = sh(r#"echo started; exec "$0" sleep-forever"#)
        .cancel_with(&handle)
        .output_mapped()
        .unwrap_err();
    t.join().unwrap();
    assert_eq!(err.kind(), ErrorKind::Canceled, "{err}");
    assert_eq!(err.stdout(), b"started\nready\n");
}

#[test]
fn max_buffer_is_exact_through_pipes() {
    // Kill: the first byte too many stops the child; the output is cut at the limit.
    let err = fixture(SpawnPath::PosixSpawn, ["write", "5000000"])
        .max_buffer(1000)
        .output_mapped()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutputLimit, "{err}");
    assert_pattern(err.stdout(), 1000, "limited");
    // Truncate: the child runs to the end, the result is cut at the limit.
    let out = fixture(SpawnPath::PosixSpawn, ["flood", "5000000"])
        .max_buffer_for(offspring::Stream::Stderr, 777)
        .on_overflow(Overflow::Truncate)
        .output_mapped()
        .unwrap();
    assert!(out.status.success());
    assert!(!out.stdout.is_mapped(), "max_buffer takes the pipes");
    assert_pattern(&out.stdout, 5_000_000, "stdout");
    assert_pattern(&out.stderr, 777, "stderr");
}

#[test]
fn conflicting_options_are_errors() {
    let err = offspring::Command::new("cat")
        .stdin(Stdio::null())
        .input(b"x".to_vec())
        .output_mapped()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err =
        exec("true").stderr_to_stdout(true).stderr(Stdio::null()).output_mapped().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = offspring::Command::new("no-such-program-xyz").output_mapped().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

fn temp_path(what: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("offspring-mapped-{}-{n}-{what}", std::process::id()))
}

#[test]
fn a_grandchild_that_keeps_writing_changes_nothing() {
    let report = temp_path("report");
    let out = fixture(SpawnPath::PosixSpawn, ["scribble-after".as_ref(), report.as_os_str()])
        .output_mapped()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_mapped());
    // The child's line, then whatever the grandchild wrote before the seal.
    assert!(out.stdout.starts_with(b"child\n"), "{:?}", &out.stdout[..]);
    assert!(out.stdout[6..].iter().all(|&b| b == b'g'));
    let snapshot = out.stdout.to_vec();

    // The grandchild goes on until a write fails, then tries to shrink and grow the file.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        if let Ok(text) = std::fs::read_to_string(&report) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the grandchild never reported");
        #[allow(clippy::disallowed_methods)] // reason: the grandchild is not ours to wait for
        std::thread::sleep(ms(20));
    };
    std::fs::remove_file(&report).unwrap();
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words[2..], ["write", "EPERM", "shrink", "EPERM", "grow", "EPERM"], "{text}");
    // Every byte is still readable (no SIGBUS) and unchanged.
    assert!(out.stdout[..] == snapshot[..]);
    assert_eq!(out.stdout.len(), snapshot.len());
}

#[test]
fn a_grandchild_holding_a_writable_mapping_gets_a_copy() {
    // The seal is refused (EBUSY) while a writable shared mapping exists: the bytes are copied.
    let out = fixture(SpawnPath::PosixSpawn, ["map-after", "3000"]).output_mapped().unwrap();
    assert!(out.status.success(), "{}", out.status);
    assert!(!out.stdout.is_mapped());
    assert_eq!(&out.stdout[..], b"child\n");
}

#[test]
fn no_fd_or_mapping_leaks_after_1000_captures() {
    if !isolated("mapped::no_fd_or_mapping_leaks_after_1000_captures") {
        return;
    }
    let memfd_maps = || {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter(|l| l.contains("offspring:std"))
            .count()
    };
    let all_maps = || std::fs::read_to_string("/proc/self/maps").unwrap().lines().count();
    let run = |i: usize| {
        if i % 100 == 50 {
            // Large enough to be mapped as it grows.
            let out = exec("head -c 20000000 /dev/zero").output_mapped().unwrap();
            assert!(out.stdout.is_mapped() && out.stdout.len() == 20_000_000);
            return;
        }
        let out = if i % 2 == 0 {
            offspring::Command::new("echo").arg("x").output_mapped().unwrap()
        } else {
            exec("echo out; echo err >&2").output_mapped().unwrap()
        };
        assert!(out.stdout.is_mapped());
        assert_eq!(out.stdout[0], if i % 2 == 0 { b'x' } else { b'o' });
    };
    // Warm up: the reaper thread, the allocator.
    for i in 0..10 {
        run(i);
    }
    let fds = crate::support::open_fds();
    let maps = all_maps();
    for i in 0..1000 {
        run(i);
    }
    crate::support::assert_no_new_fds(&fds, Duration::from_secs(10));
    assert_eq!(memfd_maps(), 0, "memory-file mappings left");
    let now = all_maps();
    assert!(now <= maps + 4, "mappings grew from {maps} to {now}");
}

/// Installs a seccomp filter on the calling thread that fails `memfd_create` with `errno`.
#[allow(unsafe_code)] // reason: installing a seccomp filter takes two raw prctl calls
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn refuse_memfd_create(errno: u32) {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let stmt = |code: u16, k: u32| libc::sock_filter { code, jt: 0, jf: 0, k };
    let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        stmt(ld, 4), // seccomp_data.arch
        jump(jeq, AUDIT_ARCH_X86_64, 0, 3),
        stmt(ld, 0), // seccomp_data.nr
        jump(jeq, libc::SYS_memfd_create as u32, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | errno),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
    // SAFETY: plain prctl calls; `prog` and `filter` outlive the call, which copies them.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let r = libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog);
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    }
}

#[test]
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn refused_memfd_create_falls_back_to_pipes() {
    if !isolated("mapped::refused_memfd_create_falls_back_to_pipes") {
        return;
    }
    let before = exec("printf abc").output_mapped().unwrap();
    assert!(before.stdout.is_mapped());
    // Refused as a seccomp filter would (EPERM), and as an old kernel would (ENOSYS): pipes.
    // The filter stays on this thread, so refuse ENOSYS on a thread of its own.
    let t = std::thread::spawn(|| {
        refuse_memfd_create(libc::ENOSYS as u32);
        let out = exec("printf abc; printf def >&2").output_mapped().unwrap();
        assert!(!out.stdout.is_mapped());
        assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"abc"[..], &b"def"[..]));
    });
    t.join().unwrap();
    refuse_memfd_create(libc::EPERM as u32);
    let out = exec("printf abc").timeout(Duration::from_secs(60)).output_mapped().unwrap();
    assert!(!out.stdout.is_mapped());
    assert_eq!(&out.stdout[..], b"abc");
    // A transient failure is not a refusal: it is reported.
    let err = {
        let t = std::thread::spawn(|| {
            refuse_memfd_create(libc::EMFILE as u32);
            exec("printf abc").output_mapped().unwrap_err()
        });
        t.join().unwrap()
    };
    assert_eq!(err.stage(), offspring::Stage::Setup, "{err}");
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
}
