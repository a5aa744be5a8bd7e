//! Fault injection: the engine under a hostile environment (a full fd table or process table
//! at the first spawn, a panicking hook, a ptracer, a recycled pid or process group, foreign
//! signal handlers).
//!
//! This is where the next defect of this kind lands. Tests that change process-wide state (fd
//! and `RLIMIT_NPROC` limits, signal dispositions, the reaper's start) run in a re-executed
//! copy of this test binary: [`fresh`] here, or the helpers in `support.rs`, which re-run
//! the binary isolated ([`isolated`]), under `unshare` ([`rerun`]) and on the SIGCHLD
//! fallback (`OFFSPRING_REAPER=sigchld`). Each test runs on every spawn path ([`PATHS`]) and
//! both reaper paths where the path matters.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use offspring::{ChildFd, Command, ErrorKind, ProcessGroup, Signal, Stage, Stdio};

use crate::support::{
    assert_no_new_fds, children, fixture, isolated_with, ms, open_fds, rerun, SpawnPath, PATHS,
};

/// The reaper modes a fresh process can be started in.
const REAPERS: [&str; 2] = ["pidfd", "sigchld"];

/// Runs the test `name` alone in a fresh copy of this binary once per entry of `envs`.
/// Returns `true` in the fresh copy (run the body), `false` in the caller once all passed.
fn fresh(name: &str, envs: &[Vec<(&str, String)>]) -> bool {
    if std::env::var("OFFSPRING_ISOLATED").as_deref() == Ok(name) {
        return true;
    }
    for env in envs {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert!(!isolated_with(name, &env), "the caller is not the fresh copy");
    }
    false
}

/// A pause for events no fd reports: a signal landing (or not), the kernel reaping, a
/// handler running.
#[allow(clippy::disallowed_methods)] // reason: nothing to poll for these
fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn ready(child: &mut offspring::Child) {
    let mut buf = [0u8; 6];
    child.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
}

/// A signal's bit in one of the hex masks of `/proc/self/status` (`SigCgt`, `SigIgn`...).
fn status_mask_has(field: &str, sig: i32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix(field)).unwrap();
    let mask = u64::from_str_radix(line.trim(), 16).unwrap();
    mask & (1 << (sig - 1)) != 0
}

/// The pidfds this process holds.
fn pidfds() -> usize {
    open_fds()
        .into_iter()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|l| l.to_string_lossy().contains("pidfd"))
        })
        .count()
}

/// After a spawn under fault, spawning works on every path, and the reaper runs the mode it
/// should (not a degraded one): with pidfds, a running child has a pidfd and no `SIGCHLD`
/// handler was installed; on the fallback, the handler is installed.
fn spawning_works_and_the_reaper_is_whole() {
    for path in PATHS {
        let st = fixture(path, ["exit", "3"]).status();
        assert_eq!(st.unwrap().code(), Some(3), "{path:?}");
    }
    let mut child = fixture(SpawnPath::PosixSpawn, ["sleep-forever"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    ready(&mut child);
    if env_var("OFFSPRING_REAPER") == "sigchld" {
        assert!(status_mask_has("SigCgt:", libc::SIGCHLD), "the fallback has no SIGCHLD handler");
    } else {
        assert!(!status_mask_has("SigCgt:", libc::SIGCHLD), "the reaper fell back to SIGCHLD");
        assert!(pidfds() >= 1, "no pidfd for a running child");
    }
    // A wait is prompt (a reaper without its handler would only see the exit on its 1 s
    // rescan; the margin is generous for a loaded machine, and it is not a speed claim).
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL));
}

/// Defect 1: a transient `EMFILE` at the reaper's start (the capability probe, the epoll set,
/// the self-pipe) must not be kept: once fds are free again, every spawn path works and the
/// reaper runs its real mode. One fresh process per number of free slots and reaper mode.
#[test]
fn reaper_start_under_emfile_is_retried_on_the_next_spawn() {
    const NAME: &str = "faults::reaper_start_under_emfile_is_retried_on_the_next_spawn";
    let mut envs = Vec::new();
    for reaper in REAPERS {
        for free in 0..=4 {
            envs.push(vec![
                ("OFFSPRING_REAPER", reaper.to_string()),
                ("FAULT_FREE", free.to_string()),
            ]);
        }
    }
    if !fresh(NAME, &envs) {
        return;
    }
    let free: usize = env_var("FAULT_FREE").parse().unwrap();
    let limit = open_fds().last().map_or(0, |&fd| fd as u64 + 1) + 32;
    let nofile = rustix::process::Resource::Nofile;
    let old = rustix::process::getrlimit(nofile);
    rustix::process::setrlimit(
        nofile,
        rustix::process::Rlimit { current: Some(limit), maximum: old.maximum },
    )
    .unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut fillers: Vec<OwnedFd> = Vec::new();
    loop {
        match rustix::io::fcntl_dupfd_cloexec(&null, 0) {
            Ok(fd) => fillers.push(fd),
            Err(rustix::io::Errno::MFILE) => break,
            Err(e) => panic!("{e}"),
        }
    }
    fillers.truncate(fillers.len().saturating_sub(free));
    // The first spawn of the process, with `free` slots: it may fail, but must not break
    // the ones after it.
    let first = Command::new("true").status();
    eprintln!("free={free}: first spawn: {first:?}");
    drop(fillers);
    drop(null);
    rustix::process::setrlimit(nofile, old).unwrap();
    spawning_works_and_the_reaper_is_whole();
}

/// A uid no account uses, for the process-table tests.
const NPROC_UID: u32 = 54_321;

/// Defects 1 and 12: `RLIMIT_NPROC` reached at the first spawn. With no room for a child,
/// every path says the *start* failed (`Stage::Setup`, `EAGAIN`), not the exec; with room for
/// the child but not the reaper thread, the spawn fails, and once the limit is raised every
/// path works again (the failed thread start is not kept). Runs in a fresh process as an
/// unprivileged uid (root is exempt from the limit).
#[test]
fn process_table_full_at_the_first_spawn_is_reported_and_retried() {
    const NAME: &str = "faults::process_table_full_at_the_first_spawn_is_reported_and_retried";
    if std::env::var("OFFSPRING_ISOLATED").as_deref() != Ok(NAME) {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to run the check as another uid");
            return;
        }
        for reaper in REAPERS {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([NAME, "--exact", "--test-threads=1", "--nocapture"])
                .env("OFFSPRING_ISOLATED", NAME)
                .env("OFFSPRING_REAPER", reaper)
                .uid(NPROC_UID)
                .gid(NPROC_UID)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{reaper}:\n{text}\n{err}");
            assert!(text.contains("test result: ok. 1 passed"), "{reaper}:\n{text}\n{err}");
        }
        return;
    }
    let nproc = rustix::process::Resource::Nproc;
    let old = rustix::process::getrlimit(nproc);
    let set = |n: u64| {
        let lim = rustix::process::Rlimit { current: Some(n), maximum: old.maximum };
        rustix::process::setrlimit(nproc, lim).unwrap()
    };
    // Raise the limit one task at a time until the child starts: at the first limit that
    // has room for the child, the reaper's thread may find none.
    for limit in 1..1000 {
        set(limit);
        match fixture(SpawnPath::PosixSpawn, ["exit", "0"]).status() {
            Ok(_) => break,
            // The child could not start (`EAGAIN` from clone): no room yet.
            Err(e)
                if e.raw_os_error() == Some(libc::EAGAIN) && !e.to_string().contains("reaper") =>
            {
                continue
            }
            Err(e) => {
                eprintln!("limit {limit}: {e}");
                break;
            }
        }
    }
    rustix::process::setrlimit(nproc, old).unwrap();
    spawning_works_and_the_reaper_is_whole();
    // No room for any new task: each path fails to start the child.
    set(1);
    for path in PATHS {
        let e = fixture(path, ["exit", "0"]).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{path:?}: {e}");
        assert_eq!(e.stage(), Stage::Setup, "{path:?}: {e}");
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{path:?}: {e}");
        assert!(e.to_string().contains("starting the child"), "{path:?}: {e}");
    }
    rustix::process::setrlimit(nproc, old).unwrap();
}

/// Defect 2: the fork path's failure report must survive the fd plan: neither the
/// gap-closing loop nor a `dup2` onto its number may take it. `/tmp` is a directory, so exec
/// fails with `EACCES`, and every path must say so, with or without a hook.
#[test]
#[allow(unsafe_code)] // declaring a pre_exec hook
fn exec_failure_is_reported_whatever_the_fd_plan() {
    let file = tempfile("report");
    for hook in [false, true] {
        for path in PATHS {
            // An extra fd high up: the report pipe would sit in the gap below it.
            let mut cmd = Command::new("/tmp");
            cmd.force_spawn_path(path.name());
            cmd.fd(ChildFd::new(20).unwrap(), std::fs::File::open("/dev/null").unwrap());
            if hook {
                // SAFETY: the hook does nothing.
                unsafe { cmd.pre_exec(|| Ok(())) };
            }
            let e = cmd.status().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{path:?} hook={hook}: {e}");
            assert_eq!(e.stage(), Stage::Exec, "{path:?} hook={hook}: {e}");

            // Every low fd is the user's file, without closing the rest: the report must not
            // land in it.
            let mut cmd = Command::new("/tmp");
            cmd.force_spawn_path(path.name()).close_fds(false);
            for n in 3..=64 {
                let f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
                cmd.fd(ChildFd::new(n).unwrap(), f);
            }
            if hook {
                // SAFETY: the hook does nothing.
                unsafe { cmd.pre_exec(|| Ok(())) };
            }
            let e = cmd.status().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{path:?} hook={hook}: {e}");
            assert_eq!(e.stage(), Stage::Exec, "{path:?} hook={hook}: {e}");
            assert_eq!(
                std::fs::read(&file).unwrap(),
                b"",
                "{path:?}: the report went to a user fd"
            );
        }
    }
    std::fs::remove_file(&file).unwrap();
}

fn tempfile(tag: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "offspring-faults-{tag}-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    std::fs::write(&path, b"").unwrap();
    path
}

/// Defect 3: a panicking `pre_exec` hook must not unwind out of the forked child (a second
/// copy of this program would run on): the child aborts and the spawn fails.
#[test]
#[allow(unsafe_code)] // declaring a pre_exec hook
fn a_panicking_pre_exec_hook_aborts_the_child_and_fails_the_spawn() {
    const NAME: &str = "faults::a_panicking_pre_exec_hook_aborts_the_child_and_fails_the_spawn";
    if !fresh(NAME, &[vec![], vec![("OFFSPRING_REAPER", "sigchld".into())]]) {
        return;
    }
    let marker = tempfile("panic");
    let mut cmd = fixture(SpawnPath::Fork, ["exit", "0"]);
    // SAFETY: the hook panics on purpose; that is what is tested.
    unsafe {
        cmd.pre_exec(|| panic!("hook panics on purpose"));
    }
    let parent = std::process::id();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd.status()));
    if std::process::id() != parent {
        // A copy of this program in the child: it must never get here.
        std::fs::write(&marker, b"the child ran on").ok();
        // SAFETY: leave at once, as the child it is.
        unsafe { libc::_exit(0) };
    }
    let e = result.expect("the panic reached the parent").unwrap_err();
    assert_eq!(e.stage(), Stage::ChildSetup, "{e}");
    assert!(e.to_string().contains("panicked"), "{e}");
    pause(ms(200));
    assert_eq!(std::fs::read(&marker).unwrap(), b"", "a copy of the test ran on in the child");
    assert!(children().is_empty(), "children left: {:?}", children());
    std::fs::remove_file(&marker).unwrap();
}

/// Defect 8: `terminate_on_drop` must not keep a child's pidfd (or anything) for the whole
/// grace period once the child has exited.
#[test]
fn terminate_on_drop_lets_go_of_an_exited_child_at_once() {
    const NAME: &str = "faults::terminate_on_drop_lets_go_of_an_exited_child_at_once";
    let envs: Vec<_> = REAPERS.iter().map(|r| vec![("OFFSPRING_REAPER", r.to_string())]).collect();
    if !fresh(NAME, &envs) {
        return;
    }
    Command::new("true").status().unwrap();
    let before = open_fds();
    for path in PATHS {
        for _ in 0..30 {
            let mut child = fixture(path, ["sleep-forever"])
                .stdout(Stdio::piped())
                .terminate_on_drop(Duration::from_secs(3600))
                .spawn()
                .unwrap();
            ready(&mut child);
            drop(child); // SIGTERM ends it at once
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !children().is_empty() {
        assert!(Instant::now() < deadline, "children left: {:?}", children());
        pause(ms(10));
    }
    assert_no_new_fds(&before, Duration::from_secs(10));
}

/// This process's CPU time (user + system, all threads), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of stat (utime, stime), counted from `state` (field 3).
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// Defect 9: while a ptracer holds an exited child, its pidfd is readable but `waitid` has
/// nothing yet. No loop (a timed wait, `communicate`, the reaper) may spin on that.
#[test]
fn a_ptraced_exited_child_is_waited_for_without_spinning() {
    const NAME: &str = "faults::a_ptraced_exited_child_is_waited_for_without_spinning";
    let envs: Vec<_> = REAPERS.iter().map(|r| vec![("OFFSPRING_REAPER", r.to_string())]).collect();
    if !fresh(NAME, &envs) {
        return;
    }
    let mut spins = Vec::new();
    for path in PATHS {
        for how in ["wait_timeout", "communicate", "reaper"] {
            let mut child = fixture(path, ["sleep", "300"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut tracer = std::process::Command::new(env!("CARGO_BIN_EXE_offspring-fixture"))
                .args(["ptrace-hold", &child.id().to_string(), "2000"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = [0u8; 7];
            tracer.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
            assert_eq!(&line, b"seized\n");
            let cpu0 = cpu_time();
            let t0 = Instant::now();
            match how {
                "wait_timeout" => {
                    while child.wait_timeout(ms(200)).unwrap().is_none() {
                        assert!(t0.elapsed() < Duration::from_secs(30), "never collected");
                    }
                }
                "communicate" => {
                    let mut comm = child.communicate(b"").unwrap();
                    while comm.wait_timeout(ms(200)).unwrap().is_none() {
                        assert!(t0.elapsed() < Duration::from_secs(30), "never collected");
                    }
                }
                _ => {
                    // Nobody waits: the reaper alone watches the child.
                    let rx = child.exit_receiver();
                    rx.recv_timeout(Duration::from_secs(30)).unwrap();
                }
            }
            let cpu = cpu_time() - cpu0;
            let wall = t0.elapsed();
            tracer.wait().unwrap();
            eprintln!("{path:?} {how}: {cpu:?} of CPU in {wall:?}");
            assert!(wall >= ms(1500), "{path:?} {how}: collected while the tracer held it");
            if cpu >= ms(150) {
                spins.push(format!("{path:?} {how}: {cpu:?} of CPU in {wall:?}"));
            }
            assert!(child.try_wait().unwrap().is_some());
        }
    }
    assert!(spins.is_empty(), "loops spin: {spins:#?}");
}

/// Writes `pid - 1` to `ns_last_pid`, so the next process created gets `pid` (if free).
fn aim_next_pid(pid: u32) -> bool {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_ok()
}

/// A std child (not offspring's) running `sleep-forever`, with pid `pid`; `group` makes it
/// lead a process group of its own.
///
/// The number may still be taken for a while after its process has left `/proc`: since Linux
/// 6.15 an exiting task unhashes itself (no `/proc` entry, `kill` gives `ESRCH`, a waiter
/// under `SIG_IGN` gets `ECHILD`) and frees its number only afterwards, outside
/// `tasklist_lock`. With `SIGCHLD` ignored the dying child does that itself, so on a loaded
/// machine it may be preempted in between for a long time. Retrying at once only competes
/// with it for the CPU; pause between tries and give up only after a generous deadline.
fn stranger_at(pid: u32, group: bool) -> std::process::Child {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tries = 0;
    loop {
        assert!(aim_next_pid(pid), "cannot write ns_last_pid");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_offspring-fixture"));
        cmd.arg("sleep-forever").stdout(std::process::Stdio::null());
        if group {
            cmd.process_group(0);
        }
        let mut c = cmd.spawn().unwrap();
        tries += 1;
        if c.id() == pid {
            return c;
        }
        c.kill().unwrap();
        let _ = c.wait();
        assert!(Instant::now() < deadline, "could not get pid {pid} reused in {tries} tries");
        pause(ms(20));
    }
}

fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` was reached by a fatal signal: gone, dying, or with `SIGTERM` or `SIGKILL`
/// pending (a fatal signal queues `SIGKILL` before `kill` returns, so this does not depend
/// on how soon a loaded machine lets the process die).
fn hit(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim();
    let pending = |name: &str, sig: i32| {
        u64::from_str_radix(field(name), 16).unwrap() & (1 << (sig - 1)) != 0
    };
    field("State:").starts_with(['Z', 'X'])
        || [libc::SIGTERM, libc::SIGKILL]
            .iter()
            .any(|&s| pending("SigPnd:", s) || pending("ShdPnd:", s))
}

/// Runs the test `name` in a fresh pid namespace (so it may steer pid allocation) once per
/// reaper mode. `true` in the namespace.
fn in_pid_namespace(name: &str, reapers: &[&str]) -> bool {
    if std::env::var("OFFSPRING_ISOLATED").as_deref() == Ok(name) {
        return true;
    }
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        eprintln!("skipped: no `unshare --pid` here (needs root or user namespaces)");
        return false;
    }
    let unshare = ["unshare", "--pid", "--fork", "--mount-proc"];
    for reaper in reapers {
        let env = [("OFFSPRING_ISOLATED", name), ("OFFSPRING_REAPER", reaper)];
        let passed = rerun(&unshare, &[name, "--exact", "--test-threads=1"], &env);
        assert_eq!(passed, 1, "{reaper}");
    }
    false
}

/// Defect 10: with `SIGCHLD` ignored after start-up, the kernel reaps children itself and a
/// pid can be recycled under a handle. The handle must not report its child as running, and
/// must never signal the new owner of the pid: with a pidfd it does not; with no pidfd at all
/// (`OFFSPRING_REAPER=sigchld-nopidfd`, as on Linux before 5.3) it refuses to signal.
#[test]
#[allow(unsafe_code)] // setting SIGCHLD to SIG_IGN
fn an_auto_reaped_child_never_leads_to_signalling_its_recycled_pid() {
    const NAME: &str = "faults::an_auto_reaped_child_never_leads_to_signalling_its_recycled_pid";
    if !in_pid_namespace(NAME, &["pidfd", "sigchld", "sigchld-nopidfd"]) {
        return;
    }
    Command::new("true").status().unwrap();
    // SAFETY: setting a disposition; nothing else in this fresh process depends on SIGCHLD.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let no_pidfds = env_var("OFFSPRING_REAPER") == "sigchld-nopidfd";
    for path in PATHS {
        let a = fixture(path, ["sleep", "100"]).spawn().unwrap();
        let pid = a.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone(pid) {
            assert!(Instant::now() < deadline, "the kernel did not reap {pid}");
            pause(ms(10));
        }
        let mut b = stranger_at(pid, false);
        if !no_pidfds {
            // Without a pidfd the pid's owner cannot be told apart (documented).
            let w = a.try_wait();
            assert!(!matches!(w, Ok(None)), "{path:?}: the reaped child is said to run");
        }
        let sent = a.signal(Signal::TERM);
        if no_pidfds {
            let e = sent.unwrap_err();
            assert!(e.to_string().contains("pidfd"), "{e}");
        }
        pause(ms(100));
        assert!(!hit(pid), "{path:?}: the signal reached the pid's new owner");
        b.kill().unwrap();
        let _ = b.wait();
    }
}

/// Suspicion: `killpg` on a group whose leader was reaped and whose number was recycled.
/// With the leader gone and a stranger leading a new group with the same number,
/// `signal_group` must not reach the stranger.
#[test]
fn signal_group_never_reaches_a_recycled_group() {
    const NAME: &str = "faults::signal_group_never_reaches_a_recycled_group";
    if !in_pid_namespace(NAME, &["pidfd", "sigchld"]) {
        return;
    }
    for path in PATHS {
        let leader = fixture(path, ["exit", "0"]).process_group(ProcessGroup::New).spawn().unwrap();
        assert!(leader.wait().unwrap().success());
        let pgid = leader.id();
        let mut stranger = stranger_at(pgid, true);
        leader.signal_group(Signal::KILL).unwrap();
        pause(ms(100));
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "{path:?}: the stranger's group was signalled"
        );
        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }
}

static STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[allow(unsafe_code)] // reading the siginfo
extern "C" fn on_sigchld(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    if unsafe { (*info).si_code } == libc::CLD_STOPPED {
        STOPPED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Defect 11: the fallback's `SIGCHLD` handler chains to the one installed before it, which
/// must keep getting what it asked for: here `CLD_STOPPED` (no `SA_NOCLDSTOP`).
#[test]
#[allow(unsafe_code)] // installing a SIGCHLD handler
fn a_chained_sigchld_handler_still_sees_stopped_children() {
    const NAME: &str = "faults::a_chained_sigchld_handler_still_sees_stopped_children";
    if !fresh(NAME, &[vec![("OFFSPRING_REAPER", "sigchld".into())]]) {
        return;
    }
    // SAFETY: installs a handler that only stores to an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigchld as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()), 0);
    }
    // The first spawn installs offspring's handler in front of ours.
    Command::new("true").status().unwrap();
    assert!(status_mask_has("SigCgt:", libc::SIGCHLD));
    for path in PATHS {
        STOPPED.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut child = fixture(path, ["sleep-forever"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        ready(&mut child);
        child.signal(Signal::STOP).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !STOPPED.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "{path:?}: no CLD_STOPPED reached the old handler");
            pause(ms(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

static HANDLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    HANDLED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Defect 13: no handler of the parent may run in the forked child while a `pre_exec` hook
/// runs: the hook sees every caught signal back at `SIG_DFL`, ignored ones still ignored.
#[test]
#[allow(unsafe_code)] // installing handlers, declaring a pre_exec hook
fn a_pre_exec_hook_runs_with_the_parents_handlers_reset() {
    const NAME: &str = "faults::a_pre_exec_hook_runs_with_the_parents_handlers_reset";
    if !fresh(NAME, &[vec![], vec![("OFFSPRING_REAPER", "sigchld".into())]]) {
        return;
    }
    // SAFETY: a handler that stores to an atomic, and an ignored signal.
    unsafe {
        libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t);
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
    }
    let mut cmd = fixture(SpawnPath::Fork, ["sigmask"]);
    // SAFETY: the hook queries dispositions with sigaction, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let query = |sig| {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                old.sa_sigaction
            };
            if query(libc::SIGUSR1) != libc::SIG_DFL {
                return Err(std::io::Error::from_raw_os_error(libc::EPERM));
            }
            if query(libc::SIGUSR2) != libc::SIG_IGN {
                return Err(std::io::Error::from_raw_os_error(libc::ENOTSUP));
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    assert!(!HANDLED.load(std::sync::atomic::Ordering::SeqCst));
}

/// Defect 12: every path names the stage that failed. A missing or unusable working
/// directory is `Chdir`, a file that is not executable is `Exec`, whatever the path.
#[test]
fn every_path_names_the_stage_that_failed() {
    let file = tempfile("stage");
    for path in PATHS {
        let e = fixture(path, ["exit", "0"]).current_dir("/no/such/dir").status().unwrap_err();
        assert_eq!((e.kind(), e.stage()), (ErrorKind::NotFound, Stage::Chdir), "{path:?}: {e}");
        let e = fixture(path, ["exit", "0"]).current_dir(&file).status().unwrap_err();
        assert_eq!(e.stage(), Stage::Chdir, "{path:?}: {e}");
        let mut cmd = Command::new(&file);
        let e = cmd.force_spawn_path(path.name()).status().unwrap_err();
        assert_eq!(
            (e.kind(), e.stage()),
            (ErrorKind::PermissionDenied, Stage::Exec),
            "{path:?}: {e}"
        );
    }
    std::fs::remove_file(&file).unwrap();
}

/// Defect 12, with `clone3` refused by a seccomp filter (`EPERM`, as container runtimes
/// do): glibc's `posix_spawn` fails with that `EPERM` too, which is not "the program is not
/// executable". Each path either starts the child or says the start failed.
#[test]
#[allow(unsafe_code)] // installing a seccomp filter
fn clone3_refused_by_seccomp_is_a_start_failure_not_an_exec_one() {
    const NAME: &str = "faults::clone3_refused_by_seccomp_is_a_start_failure_not_an_exec_one";
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: the filter below is written for x86_64");
        return;
    }
    if !fresh(NAME, &[vec![]]) {
        return;
    }
    // glibc creates threads with clone3 too, so under this filter no thread can start: start
    // the reaper's before installing it.
    Command::new("true").status().unwrap();
    const SYS_CLONE3: u32 = 435;
    let filter = [
        // Load the syscall number, refuse clone3 with EPERM, allow everything else.
        libc::sock_filter { code: 0x20, jt: 0, jf: 0, k: 0 }, // ld [0] (seccomp_data.nr)
        libc::sock_filter { code: 0x15, jt: 0, jf: 1, k: SYS_CLONE3 }, // jeq clone3
        libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x0005_0000 | libc::EPERM as u32 },
        libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 }, // ret ALLOW
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
    // SAFETY: prctl with a valid filter program that outlives the call.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const _),
            0
        );
    }
    for path in PATHS {
        match fixture(path, ["exit", "5"]).status() {
            Ok(st) => assert_eq!(st.code(), Some(5), "{path:?}"),
            Err(e) => {
                assert_eq!(e.stage(), Stage::Setup, "{path:?}: {e}");
                assert!(e.to_string().contains("starting the child"), "{path:?}: {e}");
            }
        }
    }
}
