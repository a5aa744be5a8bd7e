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
pub(crate) fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// `true` while `pid` is a child of this process (running or a zombie): for tests that
/// check a child was reaped.
#[cfg(test)]
pub(crate) fn is_our_child(pid: Pid) -> bool {
    parent_of(pid.as_raw_nonzero().get() as u32) == Some(std::process::id())
}

/// The descendants of `root` that `/proc` shows now, each opened as a pidfd whose process was
/// checked, after the open, to still have the parent it was found under.
///
/// The walk reads each process's `task/<tid>/children` (the children each of its threads
/// forked), so it costs what the subtree holds, not what the system does: a `Mux` stopping a
/// thousand children reads a thousand small files, not a thousand times every `/proc/<pid>`.
/// Where that file does not exist (a kernel built without `CONFIG_PROC_CHILDREN`), one scan
/// of every `/proc/<pid>/stat` gives the same map.
fn descendants(root: Pid) -> Vec<(Pid, OwnedFd)> {
    let root = root.as_raw_nonzero().get() as u32;
    let mut scanned: Option<HashMap<u32, Vec<u32>>> = None;
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(parent) = todo.pop() {
        let kids = match &scanned {
            Some(table) => table.get(&parent).cloned().unwrap_or_default(),
            None => match children_of(parent) {
                Some(kids) => kids,
                // No `children` file for the root: one scan of the whole table, walked from
                // then on.
                None if parent == root => {
                    let table = scan_parents();
                    let kids = table.get(&parent).cloned().unwrap_or_default();
                    scanned = Some(table);
                    kids
                }
                None => Vec::new(),
            },
        };
        for pid in kids {
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

/// The children of `pid` from `/proc/<pid>/task/<tid>/children`, over all its threads;
/// `None` if the process has no such file (gone, or a kernel without it).
fn children_of(pid: u32) -> Option<Vec<u32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut kids = Vec::new();
    let mut any = false;
    for task in tasks.flatten() {
        let mut path = task.path();
        path.push("children");
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        any = true;
        kids.extend(text.split_ascii_whitespace().filter_map(|w| w.parse::<u32>().ok()));
    }
    any.then_some(kids)
}

/// Every process's parent, from one pass over `/proc/<pid>/stat`: parent -> children.
fn scan_parents() -> HashMap<u32, Vec<u32>> {
    let mut kids: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return kids };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            kids.entry(ppid).or_default().push(pid);
        }
    }
    kids
}

/// Sends `sig` through each pidfd; processes that are gone are skipped.
pub(crate) fn signal_all(held: &[(Pid, OwnedFd)], sig: Signal) {
    for (_, fd) in held {
        let _ = crate::sys::wait::pidfd_send_signal(fd.as_fd(), sig.as_raw());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_children_files_and_the_full_scan_find_the_same_children() {
        let mut kids: Vec<std::process::Child> = (0..3)
            .map(|_| std::process::Command::new("sleep").arg("30").spawn().unwrap())
            .collect();
        let ours: Vec<u32> = kids.iter().map(|k| k.id()).collect();
        let me = std::process::id();
        // Other tests spawn children of this process at the same time: compare only ours.
        let only_ours = |v: Vec<u32>| {
            let mut v: Vec<u32> = v.into_iter().filter(|p| ours.contains(p)).collect();
            v.sort_unstable();
            v
        };
        let by_files = children_of(me).map(only_ours);
        let by_scan = only_ours(scan_parents().remove(&me).unwrap_or_default());
        for k in &mut kids {
            let _ = k.kill();
            let _ = k.wait();
        }
        let mut want = ours.clone();
        want.sort_unstable();
        assert_eq!(by_scan, want);
        match by_files {
            Some(found) => assert_eq!(found, want),
            None => eprintln!("skipped: this kernel has no /proc/<pid>/task/<tid>/children"),
        }
    }
}
