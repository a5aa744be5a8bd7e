use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use offspring::{ChildFd, Stdio};

use crate::support::{fixture, isolated, SpawnPath, PATHS};

/// An fd opened the careless way, without `O_CLOEXEC`, as C libraries sometimes do.
fn leaky_fd() -> OwnedFd {
    let file = std::fs::File::open("/dev/null").unwrap();
    // `dup` (unlike std's `try_clone`) does not set CLOEXEC.
    rustix::io::dup(&file).unwrap()
}

fn child_fds(path: SpawnPath) -> String {
    let out = fixture(path, ["fds"]).stdin(Stdio::null()).stderr(Stdio::null()).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn child_gets_exactly_0_1_2_even_with_leaky_fds_in_the_parent() {
    let leak = leaky_fd();
    assert_eq!(
        rustix::io::fcntl_getfd(&leak).unwrap(),
        rustix::io::FdFlags::empty(),
        "the test fd must be inheritable"
    );
    for path in PATHS {
        assert_eq!(child_fds(path), "0 1 2\n", "{path:?}");
    }
}

#[test]
fn close_fds_opt_out_lets_inheritable_fds_through() {
    let leak = leaky_fd();
    for path in PATHS {
        let out = fixture(path, ["fd-info", &leak.as_raw_fd().to_string()])
            .close_fds(false)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"/dev/null\n", "{path:?}");
        let out = fixture(path, ["fd-info", &leak.as_raw_fd().to_string()]).output().unwrap();
        assert_eq!(out.stdout, b"closed\n", "{path:?}");
    }
}

#[test]
fn gap_below_an_extra_fd_is_closed() {
    // Even when an inheritable fd sits at a number below the highest extra fd.
    let leak = leaky_fd();
    let target = leak.as_raw_fd() as u32 + 2;
    for path in PATHS {
        let file = std::fs::File::open("/dev/null").unwrap();
        let out = fixture(path, ["fds"]).fd(ChildFd::new(target).unwrap(), file).output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("0 1 2 {target}\n"), "{path:?}");
    }
}

/// 8 threads spawn 500 children each while another thread keeps opening inheritable fds:
/// every child must see exactly 0, 1 and 2.
fn concurrent_fd_table(path: SpawnPath) {
    let stop = Arc::new(AtomicBool::new(false));
    let leaker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                held.push(leaky_fd());
                if held.len() > 64 {
                    held.clear();
                }
            }
        })
    };
    let per_thread: usize =
        std::env::var("OFFSPRING_RACE_CHILDREN").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    let fds = child_fds(path);
                    assert_eq!(fds, "0 1 2\n", "{path:?}");
                }
            });
        }
    });
    stop.store(true, Ordering::Relaxed);
    leaker.join().unwrap();
}

#[test]
fn fd_table_exact_under_concurrent_spawning_posix_spawn() {
    concurrent_fd_table(SpawnPath::PosixSpawn);
}

#[test]
fn fd_table_exact_under_concurrent_spawning_vfork() {
    concurrent_fd_table(SpawnPath::Vfork);
}

#[test]
fn fd_table_exact_under_concurrent_spawning_fork() {
    concurrent_fd_table(SpawnPath::Fork);
}

/// Blocks every signal in the calling thread and catches SIGUSR1, as a hostile parent might.
#[allow(unsafe_code)]
fn hostile_signal_state() {
    extern "C" fn on_usr1(_: libc::c_int) {}
    // SAFETY: sigfillset initialises a local set; pthread_sigmask changes only this thread's
    // mask; installing a handler that does nothing is sound. This runs in an isolated test
    // process, so no other test sees the change.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

#[test]
fn child_signal_state_is_clean_though_the_parent_blocks_and_ignores() {
    if !isolated("fds::child_signal_state_is_clean_though_the_parent_blocks_and_ignores") {
        return;
    }
    hostile_signal_state();
    // The parent really is in that state.
    let me = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert!(me.lines().any(|l| l.starts_with("SigBlk:") && !l.ends_with("0000000000000000")));
    for path in PATHS {
        let out = fixture(path, ["sigmask"]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("blocked=0000000000000000"), "{path:?}: {text}");
        assert!(text.contains("sigpipe=default"), "{path:?}: {text}");
        // SIGUSR1 had a handler in the parent: default in the child after exec. Nothing in
        // 1..=31 is ignored. (glibc's posix_spawn sets its two reserved real-time signals,
        // 32 and 33, to SIG_IGN in every child; the child's libc installs its own handlers
        // for them at startup, and user code cannot name them.)
        let ignored = text.lines().find_map(|l| l.strip_prefix("ignored=")).unwrap();
        let ignored = u64::from_str_radix(ignored, 16).unwrap();
        assert_eq!(ignored & 0x7fff_ffff, 0, "{path:?}: {text}");
    }
}
