//! Stopping a command: which processes a timeout, an output limit or a cancel reaches.
//!
//! A stop goes to the child, to its process group when it leads one, and to every descendant
//! that `/proc` shows under the child at that moment (Linux): each is opened as a pidfd first,
//! so a pid that is reused meanwhile is never signalled, and the pidfds are kept so that the
//! `SIGKILL` after the grace period reaches the same processes even once they have been
//! reparented. A contained child is stopped through its cgroup tree instead (which also catches
//! daemons that left both the group and the tree before the stop).
//!
//! Which group a child that may be stopped starts in is decided by [`new_group_by_default`]:
//! a new one, unless this process is the foreground process group of its terminal, where a
//! new group would cut the child off from the terminal's `Ctrl-C` and get it `SIGTTIN` when it
//! reads the terminal.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use crate::child::Child;
use crate::error::Result;
use crate::signal::Signal;
use crate::Pid;

/// Sends `sig` to everything the command started that can be reached: its cgroup tree when
/// it is contained; else the child (or its whole group when it leads one), and its
/// descendants (see the module docs). Every "stop this child" path goes through here: capture
/// runs (timeouts, output limits, cancels), the mux, pipelines.
pub(crate) fn stop_command(child: &Child, sig: Signal) -> Result<()> {
    if let Some(tree) = child.tree() {
        return tree.signal(sig).map_err(|e| e.with_argv(child.argv()));
    }
    // Find the descendants before the child is signalled: once it dies, they are orphans and
    // no longer findable from it.
    if matches!(child.try_wait(), Ok(None)) {
        child.hold_descendants(descendants(child.pid()));
    }
    let res =
        if child.process_group().is_some() { child.signal_group(sig) } else { child.signal(sig) };
    child.signal_held(sig);
    res
}

/// Whether a child that may be stopped gets a process group of its own when the command does
/// not choose one: `true` unless this process is the foreground process group of a terminal.
pub(crate) fn new_group_by_default() -> bool {
    !in_terminal_foreground()
}

/// `tcgetpgrp() == getpgrp()` on the first of fds 0-2 that is a terminal, else on
/// `/dev/tty`; `false` without a controlling terminal.
fn in_terminal_foreground() -> bool {
    let me = rustix::process::getpgrp();
    for fd in [rustix::stdio::stdin(), rustix::stdio::stdout(), rustix::stdio::stderr()] {
        match rustix::termios::tcgetpgrp(fd) {
            Ok(pg) => return pg == me,
            Err(_) => continue,
        }
    }
    let tty = rustix::fs::open(
        "/dev/tty",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
    match tty {
        Ok(fd) => rustix::termios::tcgetpgrp(&fd).is_ok_and(|pg| pg == me),
        Err(_) => false,
    }
}

/// The parent pid in `/proc/<pid>/stat` (`pid (comm) state ppid ...`; `comm` may hold spaces
/// and parentheses, so the fields start after the last `)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The descendants of `root` that `/proc` shows now, each opened as a pidfd whose process was
/// checked, after the open, to still have the parent it was found under.
fn descendants(root: Pid) -> Vec<(Pid, OwnedFd)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut kids: HashMap<u32, Vec<u32>> = HashMap::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            kids.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut todo = vec![root.as_raw_nonzero().get() as u32];
    while let Some(parent) = todo.pop() {
        for &pid in kids.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
            let Some(p) = Pid::from_raw(pid as i32) else { continue };
            let Ok(fd) = crate::sys::wait::pidfd_open(p) else { continue };
            // The pidfd pins the process; if it still has the parent it was found under, it
            // is the one found (or a sibling that took the same pid: a descendant as well).
            if parent_of(pid) == Some(parent) {
                found.push((p, fd));
                todo.push(pid);
            }
        }
    }
    found
}

/// Sends `sig` through each pidfd; processes that are gone are skipped.
pub(crate) fn signal_all(held: &[(Pid, OwnedFd)], sig: Signal) {
    for (_, fd) in held {
        let _ = crate::sys::wait::pidfd_send_signal(fd.as_fd(), sig.as_raw());
    }
}
