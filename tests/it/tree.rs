//! Process trees: containment in a cgroup v2 of its own, kill/freeze/wait for the whole tree,
//! cleanup of the cgroup directory, the capture runners stopping the tree.
//!
//! Every test skips with a printed reason where this machine has no writable cgroup v2.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use offspring::{exec, Command, Containment, ErrorKind, Pid, Signal, Stage};

use crate::support::{ms, until_none_running, SpawnPath, PATHS};

/// `true` if a contained child can be started here; otherwise prints why the test skips.
fn can_contain(test: &str) -> bool {
    match Command::new("true").contain(true).status() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped {test}: no writable cgroup v2 here: {e}");
            false
        }
    }
}

/// Waits (up to `within`) until `pids` are no longer running; a zombie holds no resources
/// and is not in any cgroup any more.
fn until_gone(within: Duration, what: &str, pids: &[Pid]) {
    let raw: Vec<u32> = pids.iter().map(|p| p.as_raw_nonzero().get() as u32).collect();
    until_none_running(within, what, |p| raw.contains(&p.pid));
}

/// Waits (generously) until `pred` holds.
#[allow(clippy::disallowed_methods)] // reason: no event says a shell has started its jobs or the reaper removed a directory
fn eventually(within: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(ms(10));
    }
}

fn contained_sh(path: SpawnPath, script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]).contain(true).force_spawn_path(path.name());
    cmd
}

/// A child that double-forks a `setsid` daemon and exits is killed with its daemon by one
/// call, and nothing of the tree is left in `/proc`.
#[test]
fn kill_reaches_a_setsid_daemon() {
    if !can_contain("kill_reaches_a_setsid_daemon") {
        return;
    }
    for path in PATHS {
        // The daemon: a new session, its parent gone (reparented away from us), stdio closed.
        let child = contained_sh(
            path,
            "setsid sh -c 'sleep 1000 & exit 0' </dev/null >/dev/null 2>&1 & exit 0",
        )
        .spawn()
        .unwrap();
        assert!(child.wait().unwrap().success(), "{path:?}");
        let tree = child.tree().expect("contained").clone();
        assert!(
            eventually(Duration::from_secs(10), || tree.members().unwrap().len() == 1),
            "{path:?}: the daemon should be the one member left: {:?}",
            tree.members()
        );
        let members = tree.members().unwrap();
        assert!(!tree.try_wait().unwrap());
        tree.kill().unwrap();
        assert!(tree.wait_timeout(Duration::from_secs(30)).unwrap(), "{path:?}");
        assert!(tree.members().unwrap().is_empty());
        until_gone(Duration::from_secs(10), &format!("{path:?}: the members"), &members);
        let dir = tree.path().to_owned();
        drop(child);
        drop(tree);
        assert!(!dir.exists(), "{path:?}: {} left behind", dir.display());
    }
}

/// The wait for an empty tree returns when the last grandchild exits, not before.
#[test]
fn wait_returns_when_the_last_grandchild_exits() {
    if !can_contain("wait_returns_when_the_last_grandchild_exits") {
        return;
    }
    let start = Instant::now();
    let child =
        contained_sh(SpawnPath::Vfork, "sleep 0.3 & setsid sleep 1.5 & exit 0").spawn().unwrap();
    child.wait().unwrap();
    let tree = child.tree().unwrap();
    assert!(!tree.try_wait().unwrap(), "the grandchildren are still running");
    assert!(!tree.wait_timeout(ms(100)).unwrap(), "the grandchildren are still running");
    let members = tree.members().unwrap();
    assert_eq!(members.len(), 2, "{members:?}");
    tree.wait().unwrap();
    let waited = start.elapsed();
    assert!(waited >= ms(1400), "returned after {waited:?}, before the last sleep ended");
    until_gone(Duration::ZERO, "the members after the wait", &members);
    assert!(tree.wait_deadline(Instant::now()).unwrap());
}

/// A timeout on a contained command whose grandchild holds the pipe and ignores SIGTERM
/// leaves nothing running.
#[test]
fn timeout_stops_a_grandchild_that_ignores_sigterm() {
    if !can_contain("timeout_stops_a_grandchild_that_ignores_sigterm") {
        return;
    }
    for (grace, drain) in [(ms(200), Duration::from_secs(30)), (Duration::from_secs(30), ms(200))] {
        let started = Instant::now();
        // The child dies of SIGTERM; its grandchild, in a session of its own, ignores it and
        // holds stdout.
        let err = exec("setsid sh -c 'trap \"\" TERM; echo $$; exec sleep 1000' & wait")
            .contain(true)
            .timeout(ms(300))
            .force_kill_after(grace)
            .drain_timeout(drain)
            .run()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
        let out = String::from_utf8_lossy(err.stdout()).into_owned();
        let pid: i32 = out.trim().parse().unwrap_or_else(|_| panic!("no pid in {out:?}"));
        let pid = Pid::from_raw(pid).unwrap();
        let what = format!("the grandchild (grace {grace:?}, drain {drain:?})");
        until_gone(Duration::from_secs(10), &what, &[pid]);
    }
}

/// 200 contained children spawned from 4 threads leave no cgroup directory behind, whether
/// their handles are dropped after the child exits or while it runs.
#[test]
fn many_contained_children_leave_no_cgroup() {
    if !can_contain("many_contained_children_leave_no_cgroup") {
        return;
    }
    let probe = Command::new("true").contain(true).spawn().unwrap();
    let parent = probe.tree().unwrap().path().parent().unwrap().to_owned();
    probe.wait().unwrap();
    drop(probe);
    // A parent of our own, so other tests' trees in this process do not count.
    let mine = parent.join(format!("offspring-test-{}-many", std::process::id()));
    std::fs::create_dir(&mine).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let mine = &mine;
            s.spawn(move || {
                for i in 0..50 {
                    let mut cmd = Command::new("/bin/sh");
                    cmd.containment(Containment::new().parent(mine));
                    if i % 5 == 0 {
                        // Dropped while running, with a grandchild: the reaper removes it.
                        cmd.args(["-c", "sleep 0.2 & sleep 0.1"]);
                        let child = cmd.spawn().unwrap();
                        assert!(child.tree().is_some());
                        drop(child);
                    } else {
                        cmd.args(["-c", "exit 0"]);
                        if t % 2 == 0 {
                            cmd.force_fork_path(true);
                        }
                        assert!(cmd.status().unwrap().success());
                    }
                }
            });
        }
    });
    let left = || -> Vec<PathBuf> {
        std::fs::read_dir(&mine)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect()
    };
    let clean = eventually(Duration::from_secs(30), || left().is_empty());
    let remaining = left();
    std::fs::remove_dir(&mine).ok();
    assert!(clean, "cgroups left behind: {remaining:?}");
}

/// Freeze stops a busy tree (its CPU time stops growing) and thaw resumes it.
#[test]
fn freeze_stops_cpu_time_and_thaw_resumes() {
    if !can_contain("freeze_stops_cpu_time_and_thaw_resumes") {
        return;
    }
    let child = contained_sh(SpawnPath::Vfork, "while :; do :; done & while :; do :; done")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let tree = child.tree().unwrap().clone();
    let busy = || tree.cpu_time().unwrap().total;
    let t0 = busy();
    assert!(eventually(Duration::from_secs(20), || busy() > t0 + ms(20)), "never ran");
    tree.freeze().unwrap();
    let frozen_at = busy();
    #[allow(clippy::disallowed_methods)] // reason: CPU time is measured over wall-clock time
    std::thread::sleep(ms(300));
    let later = busy();
    assert!(later - frozen_at < ms(5), "frozen tree used {:?} of CPU", later - frozen_at);
    tree.thaw().unwrap();
    assert!(
        eventually(Duration::from_secs(20), || busy() > later + ms(20)),
        "thawed tree did not run"
    );
    assert!(tree.freeze_timeout(Duration::from_secs(10)).unwrap());
    // Signals reach a frozen tree; SIGKILL ends it while frozen.
    tree.signal(Signal::KILL).unwrap();
    assert!(tree.wait_timeout(Duration::from_secs(30)).unwrap());
    assert!(child.wait().unwrap().signal() == Some(Signal::KILL));
    let t = tree.cpu_time().unwrap();
    assert!(t.total >= t.user && t.user > Duration::ZERO, "{t:?}");
    assert!(tree.memory_peak().is_ok());
}

/// Signal every member; terminate: SIGTERM, grace, then kill.
#[test]
fn signal_and_terminate_the_tree() {
    if !can_contain("signal_and_terminate_the_tree") {
        return;
    }
    let child =
        contained_sh(SpawnPath::Fork, "setsid sleep 1000 & sleep 1000 & wait").spawn().unwrap();
    let tree = child.tree().unwrap();
    assert!(eventually(Duration::from_secs(10), || tree.members().unwrap().len() == 3));
    let t = tree.terminate(Duration::from_secs(10)).unwrap();
    assert!(!t.needed_kill, "sleep and sh die of SIGTERM");
    assert!(child.wait().unwrap().signal() == Some(Signal::TERM));

    let child = contained_sh(
        SpawnPath::Vfork,
        "trap '' TERM; setsid sh -c \"trap '' TERM; sleep 1000\" & sleep 1000 & wait",
    )
    .spawn()
    .unwrap();
    let tree = child.tree().unwrap();
    assert!(eventually(Duration::from_secs(10), || tree.members().unwrap().len() >= 3));
    let t = tree.terminate(ms(300)).unwrap();
    assert!(t.needed_kill, "the shells ignore SIGTERM");
    assert!(tree.members().unwrap().is_empty());
}

/// kill_on_drop and terminate_on_drop stop the whole tree, and the cgroup goes with it.
#[test]
fn drop_policies_stop_the_tree() {
    if !can_contain("drop_policies_stop_the_tree") {
        return;
    }
    for terminate in [false, true] {
        let mut cmd = contained_sh(SpawnPath::Vfork, "trap '' TERM; setsid sleep 1000 & wait");
        if terminate {
            cmd.terminate_on_drop(ms(200));
        } else {
            cmd.kill_on_drop(true);
        }
        let child = cmd.spawn().unwrap();
        let tree = child.tree().unwrap();
        assert!(eventually(Duration::from_secs(10), || tree.members().unwrap().len() == 2));
        let members = tree.members().unwrap();
        let dir = tree.path().to_owned();
        drop(child);
        until_gone(Duration::from_secs(10), "the members", &members);
        assert!(
            eventually(Duration::from_secs(10), || !dir.exists()),
            "{} left behind (terminate: {terminate})",
            dir.display()
        );
    }
}

/// Bad input: a named parent that does not exist, or is not cgroup v2; best effort falls
/// back to a process group and says why.
#[test]
fn bad_parents_give_clear_errors() {
    // Counts fds: alone in a fresh process.
    if !crate::support::isolated("tree::bad_parents_give_clear_errors") {
        return;
    }
    // The reaper's own fds (epoll, eventfd) come with the first spawn.
    Command::new("true").status().unwrap();
    let fds = crate::support::open_fds();
    let missing = Path::new("/sys/fs/cgroup/no-such-parent-here");
    let err =
        Command::new("true").containment(Containment::new().parent(missing)).status().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.stage(), Stage::Setup);
    assert_eq!(err.path(), Some(missing));
    assert!(err.to_string().contains("Containment::parent"), "{err}");

    let err =
        Command::new("true").containment(Containment::new().parent("/tmp")).status().unwrap_err();
    assert!(err.to_string().contains("not a cgroup v2 directory"), "{err}");
    assert_eq!(err.path(), Some(Path::new("/tmp")));

    let child = Command::new("true")
        .containment(Containment::new().parent("/tmp").best_effort(true))
        .spawn()
        .unwrap();
    assert!(child.tree().is_none());
    assert!(child.process_group().is_some(), "the fallback is a process group");
    let why = child.containment_fallback().expect("says why");
    assert!(why.to_string().contains("not a cgroup v2 directory"), "{why}");
    child.wait().unwrap();
    drop(child);
    crate::support::assert_no_new_fds(&fds, Duration::from_secs(10));
}

/// A failed exec in a contained spawn removes the cgroup it made, on every path.
#[test]
fn failed_spawn_leaves_no_cgroup() {
    if !can_contain("failed_spawn_leaves_no_cgroup") {
        return;
    }
    let probe = Command::new("true").contain(true).spawn().unwrap();
    let parent = probe.tree().unwrap().path().parent().unwrap().to_owned();
    probe.wait().unwrap();
    drop(probe);
    let mine = parent.join(format!("offspring-test-{}-fail", std::process::id()));
    std::fs::create_dir(&mine).unwrap();
    for path in PATHS {
        let err = Command::new("/no/such/program")
            .containment(Containment::new().parent(&mine))
            .force_spawn_path(path.name())
            .status()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{path:?}: {err}");
    }
    let left: Vec<_> =
        std::fs::read_dir(&mine).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
    std::fs::remove_dir(&mine).ok();
    assert!(left.is_empty(), "{left:?}");
}

/// The child itself is in the tree from its first instruction, on every spawn path; a
/// contained spawn never takes posix_spawn (it cannot place the child).
#[test]
fn the_child_is_a_member_on_every_path() {
    if !can_contain("the_child_is_a_member_on_every_path") {
        return;
    }
    for path in PATHS {
        let child = Command::new("sleep")
            .arg("1000")
            .contain(true)
            .kill_on_drop(true)
            .force_spawn_path(path.name())
            .spawn()
            .unwrap();
        let expected = if path == SpawnPath::Vfork { "vfork" } else { "fork" };
        assert_eq!(child.spawn_path(), expected, "{path:?}");
        let tree = child.tree().unwrap();
        assert_eq!(tree.members().unwrap(), vec![child.pid()], "{path:?}");
        let own = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
        let name = tree.path().file_name().unwrap().to_str().unwrap();
        assert!(own.lines().any(|l| l.starts_with("0::") && l.ends_with(name)), "{own}");
    }
}

/// The same tests on the reaper's SIGCHLD fallback (no pidfds, no epoll): abandoned cgroups
/// are removed by its rescan.
#[test]
fn tree_tests_on_sigchld_fallback() {
    if !can_contain("tree_tests_on_sigchld_fallback") {
        return;
    }
    crate::support::rerun_on_sigchld_fallback(
        &["tree::drop_policies", "tree::many_contained", "tree::kill_reaches"],
        &[],
        3,
    );
}

/// A test parent cgroup next to the trees of this process, removed on drop.
struct TestParent(PathBuf);

impl TestParent {
    fn new(tag: &str) -> TestParent {
        let probe = Command::new("true").contain(true).spawn().unwrap();
        let parent = probe.tree().unwrap().path().parent().unwrap().to_owned();
        probe.wait().unwrap();
        let dir = parent.join(format!("offspring-test-{}-{tag}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        TestParent(dir)
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A parent whose `cgroup.max.descendants` is reached: a clear error with the path and
/// `EAGAIN`, and nothing is spawned.
#[test]
fn cgroup_limit_gives_a_clear_error() {
    if !can_contain("cgroup_limit_gives_a_clear_error") {
        return;
    }
    let parent = TestParent::new("limit");
    std::fs::write(parent.0.join("cgroup.max.descendants"), "0").unwrap();
    let err = Command::new("true")
        .containment(Containment::new().parent(&parent.0))
        .status()
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_eagain()), "{err}");
    assert_eq!(err.stage(), Stage::Setup);
    assert!(err.path().is_some_and(|p| p.starts_with(&parent.0)), "{err}");
    assert!(err.to_string().contains("cgroup.max.descendants"), "{err}");
}

/// A parent whose `pids.max` is 0: the child cannot start in its cgroup, and the error says
/// so with the path and `EAGAIN`. Needs the pids controller in cgroup v2 (on hybrid hosts it
/// is often bound to v1).
#[test]
fn pids_max_gives_a_clear_error() {
    if !can_contain("pids_max_gives_a_clear_error") {
        return;
    }
    let parent = TestParent::new("pids");
    let controllers = std::fs::read_to_string(parent.0.join("cgroup.controllers")).unwrap();
    if !controllers.split_whitespace().any(|c| c == "pids") {
        eprintln!(
            "skipped pids_max_gives_a_clear_error: the pids controller is not available in \
             cgroup v2 here (cgroup.controllers: {:?})",
            controllers.trim()
        );
        return;
    }
    std::fs::write(parent.0.join("cgroup.subtree_control"), "+pids").unwrap();
    std::fs::write(parent.0.join("pids.max"), "0").unwrap();
    // The vfork path only: CLONE_INTO_CGROUP is a fork into the cgroup and counts against
    // pids.max, where the fork path's join is a migration, which the kernel allows past the
    // limit (the child then starts, and its own forks fail).
    let err = Command::new("true")
        .containment(Containment::new().parent(&parent.0))
        .force_spawn_path("vfork")
        .status()
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_eagain()), "{err}");
    assert!(err.to_string().contains("pids.max"), "{err}");
    assert!(err.path().is_some_and(|p| p.starts_with(&parent.0)), "{err}");
}

fn libc_eagain() -> i32 {
    rustix::io::Errno::AGAIN.raw_os_error()
}

/// An output limit on a contained command stops the whole tree, including a grandchild in a
/// session of its own that ignores SIGTERM and keeps writing.
#[test]
fn output_limit_stops_the_tree() {
    if !can_contain("output_limit_stops_the_tree") {
        return;
    }
    // The grandchild ignores SIGPIPE too, and writes on past a closed pipe.
    let err = exec(
        "setsid sh -c 'trap \"\" TERM PIPE; echo $$; while :; do echo yyyyyyyy; done 2>/dev/null' & wait",
    )
        .contain(true)
        .max_buffer(64 * 1024)
        .force_kill_after(ms(200))
        .run()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutputLimit, "{err}");
    let out = String::from_utf8_lossy(err.stdout()).into_owned();
    let first = out.lines().next().unwrap_or_default();
    let pid = Pid::from_raw(first.trim().parse().unwrap_or_else(|_| panic!("no pid: {first:?}")))
        .unwrap();
    until_gone(Duration::from_secs(10), "the grandchild", &[pid]);
}

/// No permission: as an unprivileged user (this test re-runs itself under `setpriv` as
/// nobody) the cgroup cannot be created; the error says so with the path and `EACCES`, and
/// best effort falls back to a process group.
#[test]
fn no_permission_gives_a_clear_error() {
    const INNER: &str = "OFFSPRING_TREE_UNPRIVILEGED";
    if std::env::var_os(INNER).is_none() {
        if !can_contain("no_permission_gives_a_clear_error") {
            return;
        }
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped no_permission_gives_a_clear_error: needs root to drop to nobody");
            return;
        }
        if !Path::new("/usr/bin/setpriv").exists() {
            eprintln!("skipped no_permission_gives_a_clear_error: no /usr/bin/setpriv");
            return;
        }
        let ran = crate::support::rerun(
            &["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
            &["tree::no_permission_gives_a_clear_error", "--exact"],
            &[(INNER, "1")],
        );
        assert_eq!(ran, 1);
        return;
    }
    let err = match Command::new("true").contain(true).status() {
        Ok(_) => {
            eprintln!("skipped: this user's own cgroup is writable (delegated)");
            return;
        }
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::ACCESS.raw_os_error()), "{err}");
    assert!(err.path().is_some(), "{err}");
    assert!(err.to_string().contains("may not create a cgroup here"), "{err}");
    let child =
        Command::new("true").containment(Containment::new().best_effort(true)).spawn().unwrap();
    assert!(child.tree().is_none() && child.process_group().is_some());
    assert_eq!(child.containment_fallback().unwrap().kind(), ErrorKind::PermissionDenied);
    assert!(child.wait().unwrap().success());
}

/// `spawn()` with a timeout: at the deadline the reaper stops the contained child's whole tree
/// (a `setsid` grandchild that ignores SIGTERM included), not only the child or its group.
#[test]
fn a_spawned_childs_timeout_stops_its_tree() {
    if !can_contain("a_spawned_childs_timeout_stops_its_tree") {
        return;
    }
    for path in PATHS {
        let child = contained_sh(path, "setsid sh -c \"trap '' TERM; sleep 1000\" & sleep 1000")
            .timeout(Duration::from_millis(300))
            .force_kill_after(Duration::from_millis(300))
            .spawn()
            .unwrap();
        let tree = child.tree().expect("contained").clone();
        assert!(
            eventually(Duration::from_secs(10), || tree.members().unwrap().len() >= 3),
            "{path:?}: {:?}",
            tree.members()
        );
        let status = child.wait_timeout(Duration::from_secs(30)).unwrap().expect("stopped");
        assert!(status.signal().is_some(), "{path:?}: {status}");
        assert!(tree.wait_timeout(Duration::from_secs(30)).unwrap(), "{path:?}: tree left");
        assert!(tree.members().unwrap().is_empty(), "{path:?}");
    }
}
