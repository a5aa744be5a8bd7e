//! Helpers shared by the integration tests.

use std::ffi::OsStr;
use std::time::Duration;

use offspring::Command;

/// The ways offspring starts a child; spawn tests run on each: `posix_spawn` (the default),
/// the vfork path (`clone3`, for settings posix_spawn lacks) and `fork` (for `pre_exec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnPath {
    PosixSpawn,
    Vfork,
    Fork,
}

pub const PATHS: [SpawnPath; 3] = [SpawnPath::PosixSpawn, SpawnPath::Vfork, SpawnPath::Fork];

impl SpawnPath {
    pub fn name(self) -> &'static str {
        match self {
            SpawnPath::PosixSpawn => "posix_spawn",
            SpawnPath::Vfork => "vfork",
            SpawnPath::Fork => "fork",
        }
    }
}

/// The fixture program, with its subcommand and arguments.
pub fn fixture<I, S>(path: SpawnPath, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_offspring-fixture"));
    cmd.args(args);
    cmd.force_spawn_path(path.name());
    cmd
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The fds open in this process, from `/proc/self/fd`.
pub fn open_fds() -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    // One of them was the directory being read, now closed.
    fds.retain(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok());
    fds
}

/// Waits until this process's fd table has nothing that `baseline` lacks and is no larger:
/// fds the reaper is still releasing (pidfds of children it has not forgotten yet) settle
/// within the deadline; a leak does not.
pub fn assert_no_new_fds(baseline: &[i32], within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let now = open_fds();
        if now.iter().all(|fd| baseline.contains(fd)) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "fds leaked: {now:?}, before: {baseline:?}");
        std::thread::yield_now();
    }
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug)]
pub struct ProcStat {
    pub pid: u32,
    /// `R`, `S`, `Z`...
    pub state: String,
    pub ppid: u32,
    pub pgrp: u32,
}

impl ProcStat {
    /// Whether it has exited: a zombie (`Z`) or a process being torn down (`X`) runs no
    /// code any more, whoever is still to reap it.
    pub fn is_dead(&self) -> bool {
        self.state.starts_with(['Z', 'X'])
    }
}

/// The process `pid` as `/proc` shows it now, or `None` if it is gone.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
    let rest = stat.rfind(')').map(|i| &stat[i + 2..])?;
    let mut fields = rest.split(' ');
    let state = fields.next().unwrap_or("").to_owned();
    let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let pgrp: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some(ProcStat { pid, state, ppid, pgrp })
}

/// Whether `pid` is in `/proc` and not dead (see [`ProcStat::is_dead`]).
pub fn running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|p| !p.is_dead())
}

/// Every process `/proc` shows now (those that vanish while it is read are left out).
pub fn proc_stats() -> Vec<ProcStat> {
    let pids = std::fs::read_dir("/proc").unwrap().flatten();
    pids.filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter_map(proc_stat)
        .collect()
}

/// Waits until none of the processes that `pick` selects is left running, failing with
/// `what` and the ones left ("pid state ppid") after `within`.
///
/// A process counts as left while it runs: a process that was sent `SIGKILL` shows `R` or
/// `S` until the (possibly loaded) machine lets it die, hence the wait. A dead one (`Z`, `X`)
/// is not left, unless it is a zombie of this process: reaping those is offspring's job. A
/// zombie that was reparented (a killed grandchild) is init's to reap, whenever it gets to
/// it. A process that survives stays left and fails the check.
pub fn until_none_running(within: Duration, what: &str, pick: impl Fn(&ProcStat) -> bool) {
    let me = std::process::id();
    let deadline = std::time::Instant::now() + within;
    loop {
        let left: Vec<String> = proc_stats()
            .into_iter()
            .filter(|p| pick(p) && (!p.is_dead() || p.ppid == me))
            .map(|p| format!("{} {} {}", p.pid, p.state, p.ppid))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: still running: {left:?}");
        // Nothing to wait on for processes that are not our children but /proc itself.
        #[allow(clippy::disallowed_methods)] // reason: polling /proc for strangers
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids of this process's children, and whether each is a zombie, from `/proc/*/stat`.
pub fn children() -> Vec<(u32, bool)> {
    let me = std::process::id();
    proc_stats().into_iter().filter(|p| p.ppid == me).map(|p| (p.pid, p.state == "Z")).collect()
}

/// Waits until this process has no child left (the reaper may still be collecting one),
/// failing on a child or zombie that stays past `within`.
pub fn until_no_children(within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let kids = children();
        if kids.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "children left: {kids:?}");
        std::thread::yield_now();
    }
}

/// Runs the calling test alone in a fresh copy of this test binary, with `env` added.
///
/// Returns `true` in that fresh process (run the test body) and `false` in the parent,
/// after asserting that the fresh process ran exactly this one test and it passed. For
/// tests that count fds or children, or change process-wide state.
pub fn isolated(name: &str) -> bool {
    isolated_with(name, &[])
}

pub fn isolated_with(name: &str, env: &[(&str, &str)]) -> bool {
    if std::env::var("OFFSPRING_ISOLATED").as_deref() == Ok(name) {
        return true;
    }
    let mut all_env = vec![("OFFSPRING_ISOLATED", name)];
    all_env.extend_from_slice(env);
    let passed = rerun(&[], &[name, "--exact", "--test-threads=1"], &all_env);
    assert_eq!(passed, 1, "isolated run of {name} did not run exactly that test");
    false
}

/// Runs this test binary again (under `wrapper`, a command such as `unshare ...`, if not
/// empty) with the libtest `args` and `env` added, asserts that it passed, and returns how
/// many tests it ran.
pub fn rerun(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> usize {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(&exe);
            c
        }
        None => std::process::Command::new(&exe),
    };
    let out = cmd.args(args).arg("--nocapture").envs(env.iter().copied()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "re-run {args:?} {env:?} failed:\n{stdout}\n{stderr}");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("test result: ok. "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Runs the tests matching `filters` again on the SIGCHLD fallback path (no pidfds), and
/// asserts that at least `at_least` of them ran and all passed. A no-op inside that re-run.
pub fn rerun_on_sigchld_fallback(filters: &[&str], extra_env: &[(&str, &str)], at_least: usize) {
    if std::env::var_os("OFFSPRING_REAPER").is_some() {
        return; // already the fallback run
    }
    let mut args = filters.to_vec();
    args.push("--test-threads=2");
    let mut env = vec![("OFFSPRING_REAPER", "sigchld")];
    env.extend_from_slice(extra_env);
    let passed = rerun(&[], &args, &env);
    assert!(passed >= at_least, "only {passed} tests ran on the fallback path");
}

/// `len` deterministic bytes that look incompressible (xorshift64), for checking that data
/// comes through a pipeline exactly.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
