use std::time::Duration;

use offspring::Command;

use crate::support::{
    assert_no_new_fds, children, fixture, isolated, isolated_with, open_fds, until_no_children,
    SpawnPath,
};

#[test]
fn dropping_10000_running_and_exited_children_leaves_no_zombie_and_no_fd() {
    if !isolated("reaper::dropping_10000_running_and_exited_children_leaves_no_zombie_and_no_fd") {
        return;
    }
    Command::new("true").status().unwrap();
    let before = open_fds();
    let n: usize = std::env::var("OFFSPRING_REAPER_CHILDREN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    for i in 0..n {
        let path = match i % 8 {
            3 => SpawnPath::Fork,
            7 => SpawnPath::Vfork,
            _ => SpawnPath::PosixSpawn,
        };
        let child = if i % 2 == 0 {
            // Exits at once: often gone before the handle is dropped.
            fixture(path, ["exit", "0"]).spawn().unwrap()
        } else {
            // Still running when its handle is dropped.
            fixture(path, ["sleep", "30"]).spawn().unwrap()
        };
        drop(child);
    }
    until_no_children(Duration::from_secs(60));
    assert!(children().iter().all(|(_, zombie)| !zombie));
    // Every pidfd and pipe is closed once the reaper has collected everything.
    assert_no_new_fds(&before, Duration::from_secs(10));
}

#[test]
fn detach_leaves_no_zombie() {
    if !isolated("reaper::detach_leaves_no_zombie") {
        return;
    }
    let child = fixture(SpawnPath::PosixSpawn, ["sleep", "50"]).spawn().unwrap();
    child.detach();
    until_no_children(Duration::from_secs(30));
}

/// The SIGCHLD fallback (no pidfds) runs the spawn, wait, signal and reaper tests again.
#[test]
fn sigchld_fallback_passes_the_same_suite() {
    crate::support::rerun_on_sigchld_fallback(
        &[
            "spawn::",
            "wait::",
            "signal::",
            "reaper::",
            "errors::",
            // The fault tests that do not pick their reaper paths themselves.
            "faults::exec_failure",
            "faults::every_path",
        ],
        &[("OFFSPRING_REAPER_CHILDREN", "2000")],
        20,
    );
}

#[test]
fn fallback_probe_really_has_no_pidfd() {
    // Run in a fresh process with the switch, and look at the fd table: no pidfd there.
    // (`sigchld` alone keeps a pidfd per child to signal it through; `sigchld-nopidfd` is
    // the kernel without pidfds.)
    if !isolated_with(
        "reaper::fallback_probe_really_has_no_pidfd",
        &[("OFFSPRING_REAPER", "sigchld-nopidfd")],
    ) {
        return;
    }
    let child = fixture(SpawnPath::PosixSpawn, ["sleep", "300"]).spawn().unwrap();
    let pidfds = open_fds()
        .into_iter()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|l| l.to_string_lossy().contains("pidfd"))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(pidfds, 0);
    // Signals are refused there: the pid cannot be told from a recycled one.
    let e = child.kill().unwrap_err();
    assert!(e.to_string().contains("without pidfds"), "{e}");
    assert!(child.wait().unwrap().success());
}

/// The crate's own threads (here the mux's channel thread) start with every signal blocked,
/// so a signal sent to the process never runs the program's handler on a thread it does not
/// know of.
#[test]
fn the_crates_own_threads_block_signals() {
    let (_sender, _events) = offspring::Mux::new().into_channel().unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    let blocked = loop {
        let found = std::fs::read_dir("/proc/self/task").unwrap().flatten().find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if comm.trim_end() != "offspring-mux" {
                return None;
            }
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            let mask = status.lines().find_map(|l| l.strip_prefix("SigBlk:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        });
        if let Some(mask) = found {
            break mask;
        }
        assert!(std::time::Instant::now() < give_up, "no offspring-mux thread");
        std::thread::yield_now();
    };
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD, libc::SIGUSR1] {
        assert!(blocked & (1 << (sig - 1)) != 0, "signal {sig} not blocked: SigBlk {blocked:x}");
    }
}
