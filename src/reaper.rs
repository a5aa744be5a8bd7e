//! The reaper: one background thread that collects the exit status of every child this crate
//! starts, so that no zombie is left behind even when a [`Child`](crate::Child) is dropped.
//!
//! # How it works
//!
//! Every child is registered here before its `Child` reaches the caller: its shared state
//! ([`Proc`]) goes into a table, and on Linux its pidfd goes into an `epoll` set. The reaper
//! thread sleeps in `epoll_wait` with no timeout (an idle reaper uses no CPU). A pidfd becomes
//! readable when its process exits; the reaper then calls `waitid(P_PIDFD, WEXITED | WNOHANG)`
//! for that one child, publishes the status (with the resource usage that the raw `waitid`
//! returns) to every waiter and channel subscriber, and forgets the child.
//!
//! A thread that waits for one child does not go through the reaper: it `poll`s the child's
//! pidfd itself and reaps it on its own thread, and while it waits the pidfd is out of the
//! reaper's epoll set, so the exit wakes one thread instead of two racing for one status
//! (measured with `benches/reaper.rs`: 20-40 µs of reaper CPU per waited child before this).
//! A wait that times out puts the pidfd back. Both sides reap under the child's state lock,
//! so exactly one of them collects the status and the other sees it published.
//!
//! A child that a runner (`output()`, `read()`, `status()`) starts and waits for at once is
//! put in the table without its pidfd going into the epoll set: no `epoll_ctl` pair per run,
//! and no reaper wake-up racing the runner for the status. It goes in only if the runner gives
//! it up uncollected (an error, a panic): dropping its `Child` calls [`release`].
//!
//! # Without pidfds
//!
//! Before Linux 5.4 (or when `OFFSPRING_REAPER=sigchld` is set, which the test suite uses to
//! run every test on this path too), a `SIGCHLD` handler, installed once and chained to any
//! previous one, writes a byte to a self-pipe. The reaper then tries `wait4(pid, WNOHANG)` for
//! each of *its own* children, and rescans once a second as a safety net for code that
//! replaced the handler. It never calls `waitpid(-1)` or `waitid(P_ALL)`: children of
//! `std::process::Command` and other libraries in the same process keep their statuses.
//!
//! # Stolen children and pid reuse
//!
//! If other code reaps one of our children anyway (a stray `waitpid(-1)`, or `SIGCHLD` set to
//! `SIG_IGN`), `waitid` fails with `ECHILD`. The reaper then asks the pidfd for the status
//! (`PIDFD_INFO_EXIT`, Linux ≥ 6.15) and otherwise publishes "status unavailable": it never
//! panics and never hangs. Signals go through the pidfd, which cannot reach a recycled pid
//! (on the fallback path too, where the kernel has `pidfd_open`). Without any pidfd a signal
//! is refused: `wait4(pid, WNOHANG)` showing a running child proves nothing once someone else
//! may have reaped ours and the pid gone to another child of this process.
//!
//! A pidfd that is not produced atomically by the spawn (`posix_spawn`) is checked with
//! `waitid(WNOWAIT)` to be of an unreaped child of ours; the fork path opens it while the
//! child still waits for a go-ahead byte, so its pid cannot have been recycled.
//!
//! # Faults
//!
//! A start that fails (no fd for the probe, the epoll set or the self-pipe; no task for the
//! thread under `RLIMIT_NPROC`) is not kept: the next spawn tries again. A child whose
//! pidfd is readable while `waitid` has nothing (a ptracer holds the zombie) leaves the
//! epoll set and is looked at every 25 ms until it can be reaped, so nothing spins.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use rustix::event::epoll;
use rustix::process::Pid;

use crate::error::{Error, ErrorKind, Result, Stage};
use crate::sys::wait::{self as sys_wait, Reaped};

/// How a child ended, as published once to all its waiters.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    Exited(Reaped),
    /// Someone else reaped the child and the status could not be recovered.
    Unavailable,
}

/// What one child's waiters share.
#[derive(Debug, Default)]
pub(crate) struct ProcState {
    pub(crate) outcome: Option<Outcome>,
    pub(crate) subscribers: Vec<Sender<crate::child::Exit>>,
    /// Threads waiting on the pidfd themselves; while there are any, the reaper does not
    /// watch it (see [`disarm`]).
    waiters: u32,
    /// The pidfd is in the reaper's epoll set. A child whose spawner reaps it itself (the
    /// runners: `output()`, `status()`) starts outside it, and goes in only if the spawner
    /// gives it up uncollected ([`release`]).
    armed: bool,
}

/// A child as the reaper and its handle both see it.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) pid: Pid,
    /// The pidfd the child is watched and reaped through (the pidfd path).
    pub(crate) pidfd: Option<OwnedFd>,
    /// On the fallback path, a pidfd used only to signal the child and to tell whether its
    /// pid is still its own (the kernel has `pidfd_open` but offspring reaps by pid).
    sigfd: Option<OwnedFd>,
    /// The pidfd said "exited" but `waitid` had nothing (a ptracer holds the zombie): its
    /// readiness is level-triggered and means nothing until the tracer lets go, so pollers
    /// look at the child on a timer instead of spinning on it.
    held: AtomicBool,
    state: Mutex<ProcState>,
    cond: Condvar,
    /// The reaper's key for this child, 0 when it is not (or no longer) in the reaper's table.
    key: AtomicU64,
}

impl Proc {
    pub(crate) fn new(pid: Pid, fds: Pidfds) -> Proc {
        Proc {
            pid,
            pidfd: fds.reap,
            sigfd: fds.signal,
            held: AtomicBool::new(false),
            state: Mutex::default(),
            cond: Condvar::new(),
            key: AtomicU64::new(0),
        }
    }

    /// A child that was reaped by someone else before offspring could open its pidfd (only
    /// possible when `SIGCHLD` is ignored or other code calls `waitpid(-1)`): its status is
    /// unavailable, and its pid is never used again, since it may already be recycled.
    pub(crate) fn vanished(pid: Pid) -> Proc {
        let st = ProcState { outcome: Some(Outcome::Unavailable), ..ProcState::default() };
        Proc {
            pid,
            pidfd: None,
            sigfd: None,
            held: AtomicBool::new(false),
            state: Mutex::new(st),
            cond: Condvar::new(),
            key: AtomicU64::new(0),
        }
    }

    /// Locks the state. A panic while holding the lock cannot leave it inconsistent (every
    /// update is a single assignment), so a poisoned lock is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn outcome(&self) -> Option<Outcome> {
        self.lock().outcome
    }

    /// Tries to collect the status now, without blocking. Returns the outcome if the child
    /// is gone (collected now or before).
    pub(crate) fn try_collect(&self) -> Option<Outcome> {
        let mut st = self.lock();
        self.try_collect_locked(&mut st)
    }

    /// As [`try_collect`](Proc::try_collect), with the state lock already held.
    pub(crate) fn try_collect_locked(&self, st: &mut ProcState) -> Option<Outcome> {
        if let Some(o) = st.outcome {
            return Some(o);
        }
        let res = match (&self.pidfd, &self.sigfd) {
            (Some(fd), _) => sys_wait::pidfd_try_reap(fd.as_fd()),
            // Reap by pid only once the pidfd has shown that the pid is still our unreaped
            // child and has exited: a pid that someone else reaped may belong to another
            // process by now, whose status `wait4` must neither steal nor report.
            (None, Some(fd)) => match sys_wait::pidfd_exited(fd.as_fd()) {
                Ok(true) => sys_wait::pid_try_reap(self.pid),
                Ok(false) => Ok(None),
                Err(e) => Err(e),
            },
            (None, None) => sys_wait::pid_try_reap(self.pid),
        };
        let outcome = match res {
            Ok(Some(r)) => Outcome::Exited(r),
            Ok(None) => return None,
            Err(_) => {
                // ECHILD: another party reaped it. Recover the status from the pidfd if the
                // kernel keeps it; anything else is reported as unavailable.
                let fd = self.pidfd.as_ref().or(self.sigfd.as_ref());
                match fd.and_then(|fd| sys_wait::pidfd_exit_info(fd.as_fd())) {
                    Some(status) => Outcome::Exited(Reaped { status, usage: None }),
                    None => Outcome::Unavailable,
                }
            }
        };
        self.publish(st, outcome);
        Some(outcome)
    }

    fn publish(&self, st: &mut ProcState, outcome: Outcome) {
        st.outcome = Some(outcome);
        let exit = crate::child::Exit::new(self.pid, outcome);
        for tx in st.subscribers.drain(..) {
            // Each subscriber channel has room for its one message; a dropped receiver is
            // not an error.
            let _ = tx.try_send(exit);
        }
        // Only the fallback path's waiters sleep on the condition variable; with a pidfd they
        // sleep in `poll`, and a notification would be a wasted system call.
        if self.pidfd.is_none() {
            self.cond.notify_all();
        }
    }

    /// Adds a subscriber; if the child is already gone, it gets its message at once.
    pub(crate) fn subscribe(&self, tx: Sender<crate::child::Exit>) {
        let mut st = self.lock();
        match st.outcome {
            Some(o) => {
                let _ = tx.try_send(crate::child::Exit::new(self.pid, o));
            }
            None => st.subscribers.push(tx),
        }
    }

    /// Sends `sig` to the child unless it has already been collected, in which case this is
    /// a no-op. Never signals a recycled pid: it goes through a pidfd, which cannot reach
    /// one. Without any pidfd (Linux before 5.3) there is no sound way to tell that the pid
    /// is still the child's (a `waitpid(-1)` elsewhere or `SIGCHLD` set to `SIG_IGN` lets
    /// the kernel reuse it while `wait4(pid)` still shows a running child of ours), so
    /// this refuses with `ENOTSUP`.
    pub(crate) fn signal(&self, sig: crate::signal::Signal) -> io::Result<()> {
        let fd = match (&self.pidfd, &self.sigfd) {
            (Some(fd), _) => fd,
            (None, Some(fd)) => {
                let mut st = self.lock();
                if self.try_collect_locked(&mut st).is_some() {
                    return Ok(());
                }
                fd
            }
            (None, None) => {
                if self.outcome().is_some() {
                    return Ok(());
                }
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "refusing to send {sig} to pid {}: without pidfds (Linux < 5.3) \
                         offspring cannot tell whether the pid still belongs to the child",
                        self.pid.as_raw_nonzero()
                    ),
                ));
            }
        };
        match sys_wait::pidfd_send_signal(fd.as_fd(), sig.as_raw()) {
            // ESRCH: the process is gone (reaped). Like std, signalling an exited child is
            // not an error.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => Ok(()),
            other => other,
        }
    }

    /// Sends `sig` to the process group `pgid` that this child leads (or led). Never reaches
    /// a group whose number was recycled: while the leader is unreaped its pid, and so the
    /// group's number, cannot be reused (the state lock keeps the reaper out meanwhile). Once
    /// it is reaped, the number stays out of use as long as the group has members; if a
    /// process with that pid exists, the group emptied and the number went to someone else,
    /// and nothing is sent. (Left: a group that empties and is recycled between that check
    /// and `killpg`, a window of two system calls.)
    pub(crate) fn signal_group(&self, pgid: Pid, sig: crate::signal::Signal) -> io::Result<()> {
        let mut st = self.lock();
        if self.try_collect_locked(&mut st).is_none() {
            return sys_wait::kill_group(pgid, sig.as_raw());
        }
        drop(st);
        match sys_wait::kill(pgid, 0) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => {
                sys_wait::kill_group(pgid, sig.as_raw())
            }
            // The pid is someone else's now: our group is gone.
            _ => Ok(()),
        }
    }

    /// The pidfd to poll for the child's exit, unless a ptracer holds it (see `held`).
    pub(crate) fn poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        if self.held.load(Ordering::Relaxed) {
            return None;
        }
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// Records that the pidfd was readable but the child could not be reaped.
    pub(crate) fn mark_held(&self) {
        self.held.store(true, Ordering::Relaxed);
    }

    /// Waits until the child is collected or `deadline` passes.
    pub(crate) fn wait_deadline(&self, deadline: Option<Instant>) -> io::Result<Option<Outcome>> {
        let Some(pidfd) = &self.pidfd else { return self.wait_fallback(deadline) };
        if let Some(o) = self.outcome() {
            return Ok(Some(o));
        }
        // This thread reaps the child itself, as soon as `poll` on the pidfd says it exited
        // (at once if it already has); meanwhile the reaper stops watching it.
        let _watch = SelfWait::new(self);
        self.poll_and_reap(pidfd, deadline)
    }

    fn poll_and_reap(
        &self,
        pidfd: &OwnedFd,
        deadline: Option<Instant>,
    ) -> io::Result<Option<Outcome>> {
        if deadline.is_none() {
            // No deadline: sleep in `waitid(WNOWAIT)` until the child is a zombie (the same
            // wake-up `waitpid` gets; measured faster than `poll` on the pidfd), then reap it
            // under the lock. ECHILD means someone else reaped it: `try_collect` reports that.
            loop {
                let woke = sys_wait::pidfd_wait_exited(pidfd.as_fd());
                if let Some(o) = self.try_collect() {
                    return Ok(Some(o));
                }
                woke?;
            }
        }
        loop {
            let timeout = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(self.try_collect());
                    }
                    Some(d - now)
                }
                None => None,
            };
            if self.held.load(Ordering::Relaxed) {
                // Readiness means nothing while a tracer holds the child: look on a timer.
                if let Some(o) = self.try_collect() {
                    return Ok(Some(o));
                }
                let nap = timeout.map_or(HELD_RECHECK, |t| t.min(HELD_RECHECK));
                let _ = rustix::event::poll(&mut [], Some(&timespec(nap)));
                continue;
            }
            let mut fds = [rustix::event::PollFd::new(pidfd, rustix::event::PollFlags::IN)];
            match rustix::event::poll(&mut fds, timeout.map(timespec).as_ref()) {
                Ok(0) | Err(rustix::io::Errno::INTR) => {}
                Ok(_) => {
                    if let Some(o) = self.try_collect() {
                        return Ok(Some(o));
                    }
                    self.mark_held();
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Without a pidfd: the reaper collects on SIGCHLD and notifies the condition variable;
    /// this thread also tries itself each round.
    fn wait_fallback(&self, deadline: Option<Instant>) -> io::Result<Option<Outcome>> {
        loop {
            if let Some(o) = self.try_collect() {
                return Ok(Some(o));
            }
            let timeout = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    d - now
                }
                None => FALLBACK_RESCAN,
            };
            let st = self.lock();
            if st.outcome.is_none() {
                drop(self.cond.wait_timeout(st, timeout).unwrap_or_else(|e| e.into_inner()));
            }
        }
    }
}

/// Marks a thread that watches a child's pidfd itself (a waiter, the capture loop) and will
/// reap the child when it exits. While any such thread exists, the pidfd is out of the
/// reaper's epoll set, so the exit wakes one thread, not two racing for the same status. The
/// last one to leave puts the pidfd back if the child is still running, or drops the child
/// from the reaper's table if it was collected.
///
/// `P` is how the guard holds the child: `&Proc` for a wait, `Arc<Proc>` for a multiplexer
/// that owns its children.
pub(crate) struct SelfWait<P: std::ops::Deref<Target = Proc>>(P);

impl<P: std::ops::Deref<Target = Proc>> SelfWait<P> {
    pub(crate) fn new(proc: P) -> SelfWait<P> {
        if proc.pidfd.is_some() {
            let mut st = proc.lock();
            st.waiters += 1;
            if st.waiters == 1 && st.outcome.is_none() {
                disarm(&proc, &mut st);
            }
        }
        SelfWait(proc)
    }
}

impl<P: std::ops::Deref<Target = Proc>> Drop for SelfWait<P> {
    fn drop(&mut self) {
        let proc: &Proc = &self.0;
        if proc.pidfd.is_none() {
            return;
        }
        let mut st = proc.lock();
        st.waiters -= 1;
        let gone = st.outcome.is_some();
        if !gone && st.waiters == 0 {
            arm(proc, &mut st);
        }
        drop(st);
        if gone {
            forget(proc);
        }
    }
}

impl<P: std::ops::Deref<Target = Proc>> std::fmt::Debug for SelfWait<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SelfWait").field(&self.0.pid).finish()
    }
}

/// Converts a duration to a `Timespec`, saturating.
pub(crate) fn timespec(d: Duration) -> rustix::event::Timespec {
    rustix::event::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// How often the fallback path rescans its children without a `SIGCHLD`.
const FALLBACK_RESCAN: Duration = Duration::from_secs(1);

/// How often a child whose exited zombie a ptracer holds is looked at again.
const HELD_RECHECK: Duration = Duration::from_millis(25);

/// The key of the wake-up fd in the epoll set.
const WAKE_KEY: u64 = 0;

enum Mode {
    Pidfd {
        epoll: OwnedFd,
        wake: OwnedFd,
    },
    /// `signal_pidfds`: the kernel has `pidfd_open`, so each child also gets a pidfd to be
    /// signalled through (and to check that its pid is still its own).
    Sigchld {
        pipe: Option<OwnedFd>,
        signal_pidfds: bool,
    },
}

struct Reaper {
    mode: Mode,
    procs: Mutex<HashMap<u64, Arc<Proc>>>,
    timers: Mutex<Vec<KillTimer>>,
    /// Process trees whose handles are gone (`src/tree.rs`), with an optional kill time.
    leftovers: Mutex<HashMap<u64, Adopted>>,
    /// Children whose pidfd is readable but that a ptracer keeps from being reaped: out of
    /// the epoll set (it would report them ready at every wait), looked at on a timer.
    held: Mutex<Vec<Arc<Proc>>>,
    next_key: AtomicU64,
}

/// The pidfds a new child is tracked with (see [`Proc`]).
#[derive(Debug, Default)]
pub(crate) struct Pidfds {
    reap: Option<OwnedFd>,
    signal: Option<OwnedFd>,
}

/// A leftover and when to kill it.
type Adopted = (Box<dyn Leftover>, Option<Instant>);

/// Work left over from a process tree whose handle is gone: the reaper calls
/// [`kill`](Leftover::kill) at the time it was given, and [`finish`](Leftover::finish) when
/// [`events`](Leftover::events) reports a change (`POLLPRI`) or on the fallback's rescan,
/// until it returns `true`; then it drops it.
pub(crate) trait Leftover: Send + Sync {
    /// An fd whose `POLLPRI` means "look again" (a cgroup's `cgroup.events`).
    fn events(&self) -> std::os::fd::BorrowedFd<'_>;
    /// The grace period is over.
    fn kill(&self);
    /// Finishes if it can (the tree is empty); `true` when done.
    fn finish(&self) -> bool;
}

/// Hands `leftover` to the reaper thread (see [`Leftover`]).
pub(crate) fn adopt(leftover: Box<dyn Leftover>, kill_at: Option<Instant>) {
    let Ok(r) = reaper() else { return };
    let key = r.next_key.fetch_add(1, Ordering::Relaxed);
    if let Mode::Pidfd { epoll, .. } = &r.mode {
        let data = epoll::EventData::new_u64(key);
        if epoll::add(epoll, leftover.events(), data, epoll::EventFlags::PRI).is_err() {
            return;
        }
    }
    lock(&r.leftovers).insert(key, (leftover, kill_at));
    wake(r);
}

/// Calls `finish` on the leftovers `keys` names (all of them if `None`) and drops the done.
fn finish_leftovers(r: &Reaper, keys: Option<&[u64]>) {
    let done: Vec<Box<dyn Leftover>> = {
        let mut left = lock(&r.leftovers);
        let finished: Vec<u64> = left
            .iter()
            .filter(|(key, (l, _))| keys.map_or(true, |k| k.contains(key)) && l.finish())
            .map(|(key, _)| *key)
            .collect();
        finished.iter().filter_map(|key| left.remove(key)).map(|(l, _)| l).collect()
    };
    for l in done {
        if let Mode::Pidfd { epoll, .. } = &r.mode {
            let _ = epoll::delete(epoll, l.events());
        }
        // Dropped outside the lock: dropping a tree may hand its cgroup back through `adopt`.
        drop(l);
    }
}

/// A pending signal: the `SIGKILL` for a dropped child that was sent a gentler signal first,
/// or a spawned child's timeout.
struct KillTimer {
    at: Instant,
    proc: Arc<Proc>,
    sig: crate::signal::Signal,
    /// The process group the child leads, signalled instead while the child is uncollected.
    group: Option<Pid>,
    /// A contained child's tree, signalled instead of the group or the child. Once a stop has
    /// begun, its `SIGKILL` reaches the tree even if the child itself is gone by then.
    tree: Option<crate::tree::Tree>,
    /// The `SIGKILL` that follows a gentler signal (`then_kill`).
    follow_up: bool,
    /// For a gentler signal: `SIGKILL` follows after this grace period.
    then_kill: Option<Duration>,
}

/// The test switch `OFFSPRING_REAPER`: `sigchld` forces the fallback path (reaping by pid
/// on `SIGCHLD`), `sigchld-nopidfd` also does without pidfds altogether, as on Linux < 5.3.
fn forced() -> (bool, bool) {
    static FORCE: OnceLock<(bool, bool)> = OnceLock::new();
    *FORCE.get_or_init(|| match std::env::var_os("OFFSPRING_REAPER") {
        Some(v) if v == "sigchld" => (true, false),
        Some(v) if v == "sigchld-nopidfd" => (true, true),
        _ => (false, false),
    })
}

/// The reaper, started on first use. A start that fails (`EMFILE`, `EAGAIN`...) is not kept:
/// the next spawn tries again.
fn reaper() -> Result<&'static Reaper> {
    static REAPER: OnceLock<Reaper> = OnceLock::new();
    static STARTING: Mutex<()> = Mutex::new(());
    if let Some(r) = REAPER.get() {
        return Ok(r);
    }
    let _one_at_a_time = lock(&STARTING);
    if let Some(r) = REAPER.get() {
        return Ok(r);
    }
    let r = start().map_err(|e| Error::os(Stage::Setup, e, "starting the reaper"))?;
    Ok(REAPER.get_or_init(|| r))
}

/// Opens the pidfd that tracks a new child, when the reaper works with pidfds.
///
/// # Errors
///
/// Fails (typically with `EMFILE`) when pidfds are in use but none could be opened.
///
/// `existing` is a pidfd the spawn path already produced atomically (`CLONE_PIDFD`); it is
/// used as is, or closed on the fallback path, which must not track children by pidfd.
///
/// A pidfd that the spawn path did not produce atomically (`posix_spawn`) is opened after the
/// child started, when someone else may already have reaped it (`waitpid(-1)`, `SIGCHLD`
/// ignored) and its pid gone to another process: such a pidfd is checked to be of an
/// unreaped child of ours, and `ESRCH` is returned when it is not.
pub(crate) fn open_pidfd(pid: Pid, existing: Option<OwnedFd>) -> io::Result<Pidfds> {
    // Without a reaper (its start failed), `register` reports why.
    let Ok(r) = reaper() else { return Ok(Pidfds::default()) };
    let wanted = match r.mode {
        Mode::Pidfd { .. } => true,
        Mode::Sigchld { signal_pidfds, .. } => signal_pidfds,
    };
    let fd = match (wanted, existing) {
        (false, _) => return Ok(Pidfds::default()),
        (true, Some(fd)) => fd,
        (true, None) => {
            let fd = sys_wait::pidfd_open(pid)?;
            if let Err(e) = sys_wait::pidfd_exited(fd.as_fd()) {
                if e.raw_os_error() == Some(rustix::io::Errno::CHILD.raw_os_error()) {
                    return Err(rustix::io::Errno::SRCH.into());
                }
            }
            fd
        }
    };
    Ok(match r.mode {
        Mode::Pidfd { .. } => Pidfds { reap: Some(fd), signal: None },
        Mode::Sigchld { .. } => Pidfds { reap: None, signal: Some(fd) },
    })
}

/// Whether the kernel has `waitid(P_PIDFD)` (Linux 5.4). A resource error (`EMFILE`...)
/// says nothing about the kernel: it is returned, and the start is tried again later.
fn pidfds_work() -> io::Result<bool> {
    // waitid(P_PIDFD) on a pidfd of ourselves: ECHILD means the kernel knows P_PIDFD; EINVAL
    // means it does not.
    let me = rustix::process::getpid();
    match sys_wait::pidfd_open(me) {
        Ok(fd) => match sys_wait::pidfd_try_reap(fd.as_fd()) {
            Err(e) => Ok(e.raw_os_error() == Some(rustix::io::Errno::CHILD.raw_os_error())),
            Ok(_) => Ok(false),
        },
        Err(e) if is_resource_error(&e) => Err(e),
        Err(_) => Ok(false),
    }
}

/// Whether `pidfd_open` works at all (Linux 5.3), for signalling on the fallback path.
fn pidfd_open_works() -> io::Result<bool> {
    match sys_wait::pidfd_open(rustix::process::getpid()) {
        Ok(_) => Ok(true),
        Err(e) if is_resource_error(&e) => Err(e),
        Err(_) => Ok(false),
    }
}

fn is_resource_error(e: &io::Error) -> bool {
    use rustix::io::Errno;
    [Errno::MFILE, Errno::NFILE, Errno::NOMEM, Errno::AGAIN]
        .iter()
        .any(|x| e.raw_os_error() == Some(x.raw_os_error()))
}

fn start() -> io::Result<Reaper> {
    let (fallback, no_pidfds) = forced();
    let mode = if !fallback && pidfds_work()? {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        epoll::add(&epoll, &wake, epoll::EventData::new_u64(WAKE_KEY), epoll::EventFlags::IN)?;
        Mode::Pidfd { epoll, wake }
    } else {
        let signal_pidfds = !no_pidfds && pidfd_open_works()?;
        // SIGCHLD set to SIG_IGN (auto-reap) is left alone: `install` refuses, and the
        // periodic rescan reports such children as unavailable. Any other failure (no fd
        // for the self-pipe) fails this start; the next spawn tries again.
        let pipe = match crate::sys::sigchld::install() {
            Ok(pipe) => Some(pipe),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => None,
            Err(e) => return Err(e),
        };
        Mode::Sigchld { pipe, signal_pidfds }
    };
    let reaper = Reaper {
        mode,
        procs: Mutex::default(),
        timers: Mutex::default(),
        leftovers: Mutex::default(),
        held: Mutex::default(),
        next_key: 1.into(),
    };
    Ok(reaper)
}

/// Starts the reaper thread on first use. A failed start (`EAGAIN` under `RLIMIT_NPROC`)
/// is not kept: the next spawn tries again.
fn ensure_thread(r: &'static Reaper) -> Result<()> {
    static STARTED: Mutex<bool> = Mutex::new(false);
    let mut started = lock(&STARTED);
    if !*started {
        // On the pidfd path exits come through pidfds, never through a signal: the thread
        // takes none of the process's, and starts with them blocked (a new thread inherits
        // the mask), so none can land on it before it runs. The fallback path needs `SIGCHLD`
        // to be able to land on it, as every other thread of the program may block it.
        let builder =
            std::thread::Builder::new().name("offspring-reap".into()).stack_size(64 * 1024);
        let spawned = if matches!(r.mode, Mode::Pidfd { .. }) {
            crate::sys::signal::spawn_thread_without_signals(builder, move || run(r))
        } else {
            builder.spawn(move || run(r))
        };
        spawned.map_err(|e| {
            let kind = match e.raw_os_error() {
                Some(n) => ErrorKind::from_errno(n),
                None => ErrorKind::ResourceExhausted,
            };
            Error::new(kind, Stage::Setup, format!("starting the reaper thread: {e}"))
        })?;
        *started = true;
    }
    Ok(())
}

/// Registers a freshly spawned child. Called before the `Child` reaches the caller.
///
/// `watch` is `false` for a child whose spawner waits for it at once and reaps it itself (a
/// [`SelfWait`] from the start): its pidfd stays out of the epoll set until [`release`] (or a
/// `SelfWait` that ends with the child still running) puts it in.
pub(crate) fn register(proc: &Arc<Proc>, watch: bool) -> Result<()> {
    let r = reaper()?;
    ensure_thread(r)?;
    let key = r.next_key.fetch_add(1, Ordering::Relaxed);
    proc.key.store(key, Ordering::Relaxed);
    lock(&r.procs).insert(key, Arc::clone(proc));
    match &r.mode {
        Mode::Pidfd { .. } if !watch && proc.pidfd.is_some() => {}
        Mode::Pidfd { epoll, .. } => {
            proc.lock().armed = true;
            let added = match &proc.pidfd {
                Some(fd) => {
                    epoll::add(epoll, fd, epoll::EventData::new_u64(key), epoll::EventFlags::IN)
                        .map_err(io::Error::from)
                }
                None => Err(io::Error::other("child has no pidfd")),
            };
            if let Err(e) = added {
                lock(&r.procs).remove(&key);
                return Err(Error::os(Stage::Setup, e, "registering the child with the reaper"));
            }
        }
        // The child may have exited before it was in the table; a wake-up makes the reaper
        // look at it now.
        Mode::Sigchld { .. } => wake(r),
    }
    Ok(())
}

/// Takes the child's pidfd out of the reaper's epoll set while a thread waits on it (nothing
/// to do if it is not in). Called with the state lock held.
fn disarm(proc: &Proc, st: &mut ProcState) {
    if !st.armed {
        return;
    }
    st.armed = false;
    if let (Ok(Reaper { mode: Mode::Pidfd { epoll, .. }, .. }), Some(fd)) = (reaper(), &proc.pidfd)
    {
        if proc.key.load(Ordering::Relaxed) != 0 {
            let _ = epoll::delete(epoll, fd);
        }
    }
}

/// Puts the child's pidfd (back) into the reaper's epoll set: after a wait that timed out, or
/// when a child registered unwatched is given up. Called with the state lock held.
fn arm(proc: &Proc, st: &mut ProcState) {
    if st.armed {
        return;
    }
    if let (Ok(Reaper { mode: Mode::Pidfd { epoll, .. }, .. }), Some(fd)) = (reaper(), &proc.pidfd)
    {
        let key = proc.key.load(Ordering::Relaxed);
        if key != 0 {
            st.armed = true;
            let _ = epoll::add(epoll, fd, epoll::EventData::new_u64(key), epoll::EventFlags::IN);
        }
    }
}

/// The `Child` is going away: a child still uncollected whose pidfd is out of the epoll set
/// (registered unwatched, and not waited for now) goes in, so the reaper collects it when it
/// exits; a child collected while unwatched leaves the table, as the reaper would have made it
/// leave. Nothing to do on the fallback path, whose reaper scans its whole table.
pub(crate) fn release(proc: &Proc) {
    if proc.pidfd.is_none() {
        return;
    }
    let mut st = proc.lock();
    if st.armed || st.waiters > 0 {
        return;
    }
    if st.outcome.is_none() {
        arm(proc, &mut st);
    } else {
        drop(st);
        forget(proc);
    }
}

/// Drops a collected child from the reaper's table (its epoll entry is already gone).
fn forget(proc: &Proc) {
    let key = proc.key.swap(0, Ordering::Relaxed);
    if key != 0 {
        if let Ok(r) = reaper() {
            lock(&r.procs).remove(&key);
        }
    }
}

/// Arranges for `proc` to get `SIGKILL` at `at` unless it has exited by then.
pub(crate) fn kill_later(proc: &Arc<Proc>, at: Instant) {
    signal_later(proc, at, crate::signal::Signal::KILL, (None, None), None);
}

/// Sends `sig` to the child (or to the `group` it leads) at `at` unless it has been
/// collected by then, then `SIGKILL` after `then_kill` if it still runs: a spawned child's
/// timeout.
pub(crate) fn signal_later(
    proc: &Arc<Proc>,
    at: Instant,
    sig: crate::signal::Signal,
    (group, tree): (Option<Pid>, Option<crate::tree::Tree>),
    then_kill: Option<Duration>,
) {
    if let Ok(r) = reaper() {
        let proc = Arc::clone(proc);
        let follow_up = false;
        lock(&r.timers).push(KillTimer { at, proc, sig, group, tree, follow_up, then_kill });
        wake(r);
    }
}

fn wake(r: &Reaper) {
    match &r.mode {
        Mode::Pidfd { wake, .. } => {
            let _ = rustix::io::write(wake, &1u64.to_ne_bytes());
        }
        // Without a handler (SIGCHLD ignored) the reaper rescans on its timer anyway.
        Mode::Sigchld { .. } => crate::sys::sigchld::poke(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reaper thread's loop. Never returns.
fn run(r: &'static Reaper) {
    // On the stack: collecting exits allocates nothing on this thread.
    let empty =
        epoll::Event { flags: epoll::EventFlags::empty(), data: epoll::EventData::new_u64(0) };
    let mut events = [empty; 64];
    loop {
        let mut timeout = fire_timers(r);
        if recheck_held(r) {
            timeout = Some(timeout.map_or(HELD_RECHECK, |t| t.min(HELD_RECHECK)));
        }
        match &r.mode {
            Mode::Pidfd { epoll, wake } => {
                let ts = timeout.map(timespec);
                let Ok(ready) = epoll::wait(epoll, &mut events, ts.as_ref()) else { continue };
                for ev in &events[..ready] {
                    let key = ev.data.u64();
                    if key == WAKE_KEY {
                        let mut buf = [0u8; 8];
                        let _ = rustix::io::read(wake, &mut buf);
                        continue;
                    }
                    let proc = lock(&r.procs).get(&key).cloned();
                    if proc.is_none() {
                        finish_leftovers(r, Some(&[key]));
                    }
                    if let Some(proc) = proc {
                        let collected = proc.try_collect().is_some();
                        if let Some(fd) = &proc.pidfd {
                            // Collected, or readable with nothing to collect (a ptracer
                            // holds it): either way out of the level-triggered set.
                            let _ = epoll::delete(epoll, fd);
                        }
                        if collected {
                            forget(&proc);
                        } else {
                            proc.mark_held();
                            let mut held = lock(&r.held);
                            if !held.iter().any(|p| Arc::ptr_eq(p, &proc)) {
                                held.push(proc);
                            }
                        }
                    }
                }
            }
            Mode::Sigchld { pipe, .. } => {
                let busy = !lock(&r.procs).is_empty() || !lock(&r.leftovers).is_empty();
                let wait = match (timeout, busy) {
                    (Some(t), true) => Some(t.min(FALLBACK_RESCAN)),
                    (Some(t), false) => Some(t),
                    (None, true) => Some(FALLBACK_RESCAN),
                    (None, false) => None,
                };
                match pipe {
                    Some(pipe) => {
                        let mut fds =
                            [rustix::event::PollFd::new(pipe, rustix::event::PollFlags::IN)];
                        let ts = wait.map(timespec);
                        let _ = rustix::event::poll(&mut fds, ts.as_ref());
                        let mut buf = [0u8; 256];
                        while let Ok(n) = rustix::io::read(pipe, &mut buf) {
                            if n < buf.len() {
                                break;
                            }
                        }
                    }
                    None => {
                        // No handler (SIGCHLD is ignored): poll on a timer alone.
                        let ts = timespec(wait.unwrap_or(FALLBACK_RESCAN));
                        let _ = rustix::event::poll(&mut [], Some(&ts));
                    }
                }
                let procs: Vec<(u64, Arc<Proc>)> =
                    lock(&r.procs).iter().map(|(k, p)| (*k, Arc::clone(p))).collect();
                for (_, proc) in procs {
                    if proc.try_collect().is_some() {
                        forget(&proc);
                    }
                }
                finish_leftovers(r, None);
            }
        }
    }
}

/// Looks again at the children a ptracer held; returns `true` if some still are.
fn recheck_held(r: &Reaper) -> bool {
    let mut held = lock(&r.held);
    held.retain(|proc| {
        if proc.try_collect().is_some() {
            forget(proc);
            false
        } else {
            true
        }
    });
    !held.is_empty()
}

/// Sends `SIGKILL` to every timed-out dropped child, forgets the timers of children that
/// exited (so nothing of theirs, such as the pidfd, is kept until the grace period ends),
/// and returns the time until the next timer, if any.
fn fire_timers(r: &Reaper) -> Option<Duration> {
    let mut timers = lock(&r.timers);
    let now = Instant::now();
    let mut follow = Vec::new();
    timers.retain(|t| {
        if t.proc.outcome().is_some() && !(t.follow_up && t.tree.is_some()) {
            // Collected: nothing to signal, and the pidfd need not be held any longer (a
            // stopped tree still gets its SIGKILL: its other members may ignore the signal).
            return false;
        }
        if t.at > now {
            return true;
        }
        // A group is signalled only while its leader is uncollected, so its id cannot have
        // been reused. A tree reaches every member, whatever group it is in.
        match (&t.tree, t.group) {
            (Some(tree), _) if t.sig == crate::signal::Signal::KILL => drop(tree.kill()),
            (Some(tree), _) => drop(tree.signal(t.sig)),
            _ if t.proc.outcome().is_some() => {}
            (None, Some(pg)) => drop(sys_wait::kill_group(pg, t.sig.as_raw())),
            (None, None) => drop(t.proc.signal(t.sig)),
        }
        if let Some(grace) = t.then_kill.filter(|_| t.sig != crate::signal::Signal::KILL) {
            let at = crate::child::deadline_from(now, grace);
            let (proc, group, tree) = (Arc::clone(&t.proc), t.group, t.tree.clone());
            follow.push(KillTimer {
                at,
                proc,
                sig: crate::signal::Signal::KILL,
                group,
                tree,
                follow_up: true,
                then_kill: None,
            });
        }
        false
    });
    timers.extend(follow);
    let mut next = timers.iter().map(|t| t.at.saturating_duration_since(now)).min();
    for (l, at) in lock(&r.leftovers).values_mut() {
        match *at {
            Some(t) if t <= now => {
                l.kill();
                *at = None;
            }
            Some(t) => next = Some(next.map_or(t - now, |n| n.min(t - now))),
            None => {}
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::command::{Command, Defaults};

    fn until_reaped(pid: crate::Pid) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while crate::stop::is_our_child(pid) {
            assert!(Instant::now() < deadline, "child {pid:?} was never reaped");
            std::thread::yield_now();
        }
    }

    /// A child spawned for a runner that reaps it itself starts outside the reaper's watch;
    /// given up uncollected (an error, a panic: its `Child` dropped), running or already
    /// exited, or after a wait that ran out, it is still collected: no zombie.
    #[test]
    fn a_self_reaped_child_that_is_given_up_is_still_reaped() {
        let self_reaped = Defaults { self_reaped: true, ..Defaults::default() };
        let spawn = |script: &str| {
            Command::new("sh").args(["-c", script]).spawn_with_defaults(self_reaped).unwrap()
        };
        // Still running when dropped.
        let running = spawn("sleep 0.2");
        let pid_running = running.pid();
        drop(running);
        // Exited (a zombie until someone reaps it) when dropped.
        let exited = spawn("exit 0");
        let pid_exited = exited.pid();
        if let Some(fd) = exited.pidfd() {
            // Until it is a zombie, without reaping it (`WNOWAIT`).
            crate::sys::wait::pidfd_wait_exited(fd).unwrap();
        }
        drop(exited);
        // A wait that ran out, then dropped.
        let waited = spawn("sleep 0.2");
        let pid_waited = waited.pid();
        assert_eq!(waited.wait_timeout(Duration::from_millis(1)).unwrap(), None);
        drop(waited);
        for pid in [pid_running, pid_exited, pid_waited] {
            until_reaped(pid);
        }
    }

    /// On the pidfd path the reaper thread takes no signal of the process's: `SIGCHLD` would
    /// only interrupt its `epoll_wait`, and another signal would run the program's handler
    /// (or its default action) on a thread the program does not know of. The fallback path
    /// leaves `SIGCHLD` deliverable there, as its handler is what wakes the reaper.
    #[test]
    fn the_reaper_thread_blocks_signals_on_the_pidfd_path_only() {
        let child = Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let pidfd_path = matches!(super::reaper().unwrap().mode, super::Mode::Pidfd { .. });
        // The thread names itself once it runs: give a just-started reaper a moment.
        let give_up = Instant::now() + Duration::from_secs(10);
        let reaper_tasks = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim_end() == "offspring-reap")
                })
                .collect::<Vec<_>>()
        };
        let mut tasks = reaper_tasks();
        while tasks.is_empty() && Instant::now() < give_up {
            std::thread::yield_now();
            tasks = reaper_tasks();
        }
        let mut found = false;
        for task in tasks {
            found = true;
            let status = std::fs::read_to_string(task.path().join("status")).unwrap();
            let blocked = status
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))
                .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
                .unwrap();
            let bit = |sig: i32| blocked & (1u64 << (sig - 1)) != 0;
            assert_eq!(bit(libc::SIGCHLD), pidfd_path, "SigBlk {blocked:x}");
            assert_eq!(bit(libc::SIGTERM), pidfd_path, "SigBlk {blocked:x}");
        }
        assert!(found, "no offspring-reap thread");
    }
}
