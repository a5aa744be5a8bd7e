//! [`Child`]: a running (or finished) child process, and [`Exit`]: how it ended.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::command::{ChildFd, ChildIo};
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::exit_status::{ExitStatus, ResourceUsage};
use crate::reaper::{self, Outcome, Proc};
use crate::signal::Signal;
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout};
use crate::sys::spawn::PathTaken;
use crate::tree::Tree;
use crate::Pid;

/// What happens to a still-running child when its [`Child`] is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropPolicy {
    /// Keep running; the reaper collects it when it exits.
    Reap,
    /// `SIGKILL` now.
    Kill,
    /// `SIGTERM` now, `SIGKILL` from the reaper after the grace period.
    Terminate(Duration),
}

/// A child process started by [`Command::spawn`](crate::Command::spawn).
///
/// Every method takes `&self`, so a `Child` can be shared between threads (in an `Arc`, or by
/// reference in scoped threads): any number of them can wait for it at once and all see the
/// same status, and one can signal it while others wait.
///
/// # Drop behavior
///
/// Dropping a `Child` closes the parent's ends of its pipes (the child sees EOF on stdin) and
/// never blocks. A child that still runs keeps running, and offspring's reaper thread
/// collects its exit status when it ends, so it never becomes a zombie: unlike
/// `std::process::Child`, forgetting to wait leaks nothing. To stop the child instead, build
/// it with [`Command::kill_on_drop`](crate::Command::kill_on_drop) or
/// [`Command::terminate_on_drop`](crate::Command::terminate_on_drop); to make the intent
/// explicit, call [`detach`](Child::detach).
///
/// # Differences from std
///
/// The methods take `&self`, so that several threads can wait for one child. As in std,
/// [`wait`](Child::wait) first closes the child's stdin if it is still in `child.stdin`
/// (a later write to it fails with `BrokenPipe`), so a child that reads its stdin to the end
/// sees EOF; a stdin taken out of the `Child` is left alone. The deadline forms
/// ([`wait_timeout`](Child::wait_timeout), [`wait_deadline`](Child::wait_deadline)) and
/// [`try_wait`](Child::try_wait) leave it open, so that writing can go on after they return.
/// [`wait_with_output`](Child::wait_with_output) is std's.
///
/// # Examples
///
/// ```
/// use offspring::{Command, Signal};
/// use std::time::Duration;
///
/// let child = Command::new("sleep").arg("10").spawn()?;
/// assert_eq!(child.wait_timeout(Duration::from_millis(20))?, None); // still running
/// let t = child.terminate(Duration::from_secs(5))?;
/// assert_eq!(t.status.signal(), Some(Signal::TERM));
/// assert!(!t.needed_kill);
/// # Ok::<(), offspring::Error>(())
/// ```
pub struct Child {
    proc: Arc<Proc>,
    /// The parent's end of the child's stdin, if it was [`Stdio::piped`](crate::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// The parent's end of the child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The parent's end of the child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    extra: Vec<(ChildFd, OwnedFd)>,
    group: Option<Pid>,
    drop_policy: DropPolicy,
    path: PathTaken,
    argv: Vec<OsString>,
    tree: Option<Tree>,
    containment_fallback: Option<Error>,
    /// Descendants a stop found under the child, held as pidfds for the `SIGKILL` that may
    /// follow (see `src/stop.rs`).
    held: Mutex<Vec<(Pid, OwnedFd)>>,
    channel: Option<(crate::ipc::Sender, crate::ipc::Receiver)>,
}

/// How a child ended, as delivered by [`Child::exit_receiver`] and [`Child::wait_exit`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pid: Pid,
    status: Option<ExitStatus>,
    usage: Option<ResourceUsage>,
}

impl Exit {
    pub(crate) fn new(pid: Pid, outcome: Outcome) -> Exit {
        match outcome {
            Outcome::Exited(r) => {
                Exit { pid, status: Some(ExitStatus::from_wait_status(r.status)), usage: r.usage }
            }
            Outcome::Unavailable => Exit { pid, status: None, usage: None },
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The exit status.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::StatusUnavailable`] if other code in this process reaped the child
    /// (a stray `waitpid(-1)`, `SIGCHLD` set to `SIG_IGN`) and the kernel did not keep the
    /// status.
    pub fn status(&self) -> Result<ExitStatus> {
        self.status.ok_or_else(|| unavailable(self.pid))
    }

    /// What the child used (CPU time, peak memory, faults, context switches), when the status
    /// was collected by offspring.
    pub fn resource_usage(&self) -> Option<ResourceUsage> {
        self.usage
    }
}

impl fmt::Debug for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exit")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .field("usage", &self.usage)
            .finish()
    }
}

fn unavailable(pid: Pid) -> Error {
    Error::new(
        ErrorKind::StatusUnavailable,
        Stage::Wait,
        format!(
            "child {} was reaped by other code in this process (waitpid(-1) or SIGCHLD set to \
             SIG_IGN) and its exit status is lost",
            pid.as_raw_nonzero()
        ),
    )
}

/// The result of [`Child::terminate`]: how the child ended, and whether it took `SIGKILL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termination {
    /// The child's exit status.
    pub status: ExitStatus,
    /// `true` if the child was still running after the grace period and had to be killed
    /// with `SIGKILL`.
    pub needed_kill: bool,
}

impl Child {
    pub(crate) fn new(
        proc: Arc<Proc>,
        io: ChildIo,
        group: Option<Pid>,
        drop_policy: DropPolicy,
        path: PathTaken,
        argv: Vec<OsString>,
    ) -> Child {
        Child {
            proc,
            stdin: io.stdin,
            stdout: io.stdout,
            stderr: io.stderr,
            extra: io.extra,
            group,
            drop_policy,
            path,
            argv,
            tree: None,
            containment_fallback: None,
            held: Mutex::new(Vec::new()),
            channel: None,
        }
    }

    pub(crate) fn set_containment(&mut self, tree: Option<Tree>, fallback: Option<Error>) {
        self.tree = tree;
        self.containment_fallback = fallback;
    }

    /// The child's process tree, if it was spawned with
    /// [`Command::contain`](crate::Command::contain): the child and every process it starts,
    /// to kill, signal, freeze or wait for together.
    ///
    /// The methods of `Child` itself ([`kill`](Child::kill), [`terminate`](Child::terminate),
    /// [`wait`](Child::wait)...) still concern the child alone.
    pub fn tree(&self) -> Option<&Tree> {
        self.tree.as_ref()
    }

    /// Why a best-effort containment ([`Containment::best_effort`](crate::Containment::best_effort))
    /// fell back to a process group: the error creating the cgroup would have returned.
    /// `None` if the child is contained or containment was not asked for.
    pub fn containment_fallback(&self) -> Option<&Error> {
        self.containment_fallback.as_ref()
    }

    /// `true` if stopping the child should stop its descendants too: it leads a process
    /// group or is contained.
    pub(crate) fn stops_together(&self) -> bool {
        self.group.is_some() || self.tree.is_some()
    }

    pub(crate) fn set_channel(&mut self, pair: (crate::ipc::Sender, crate::ipc::Receiver)) {
        self.channel = Some(pair);
    }

    /// Takes the parent's half of the message channel that
    /// [`Command::ipc`](crate::Command::ipc) set up: `None` without one, or the second time.
    ///
    /// The channel lives on its own: dropping the `Child` does not close it, and it closes
    /// when the child exits (or closes its end) and its messages have been received.
    #[doc(alias = "child.send")]
    pub fn take_channel(&mut self) -> Option<(crate::ipc::Sender, crate::ipc::Receiver)> {
        self.channel.take()
    }

    /// The child's process id.
    ///
    /// A pid is only a number: once the child has been reaped the kernel may give it to
    /// another process. Signal the child through [`signal`](Child::signal), which cannot hit
    /// a recycled pid, rather than through the number.
    pub fn pid(&self) -> Pid {
        self.proc.pid
    }

    /// The child's process id as a `u32`, as [`std::process::Child::id`] gives it.
    pub fn id(&self) -> u32 {
        self.proc.pid.as_raw_nonzero().get() as u32
    }

    /// The process group the child leads, if it was spawned with
    /// [`ProcessGroup::New`](crate::ProcessGroup::New) or
    /// [`new_session`](crate::Command::new_session).
    pub fn process_group(&self) -> Option<Pid> {
        self.group
    }

    /// Takes the parent's end of an extra fd that was set up with
    /// [`Command::fd`](crate::Command::fd) and [`Stdio::piped`](crate::Stdio::piped).
    pub fn take_fd(&mut self, child_fd: ChildFd) -> Option<OwnedFd> {
        let i = self.extra.iter().position(|(n, _)| *n == child_fd)?;
        Some(self.extra.swap_remove(i).1)
    }

    /// Waits for the child to exit and returns its status. Any number of threads may wait at
    /// once; all get the same status.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::StatusUnavailable`] if other code reaped the child; an
    /// [`ErrorKind::Io`] error if waiting itself failed.
    ///
    /// Closes the child's stdin first if it is still in `child.stdin`, as std does, so that
    /// a child reading its stdin to the end does not wait for the parent forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::io::Write;
    /// let mut child = Command::new("sort").stdin(Stdio::piped()).stdout(Stdio::null()).spawn()?;
    /// child.stdin.as_mut().unwrap().write_all(b"b\na\n")?;
    /// assert!(child.wait()?.success()); // stdin closed here: sort sees EOF
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "waitpid")]
    pub fn wait(&self) -> Result<ExitStatus> {
        self.wait_exit()?.status()
    }

    /// Waits for the child to exit and returns its [`Exit`], with its resource usage. Closes
    /// the child's stdin first, as [`wait`](Child::wait) does.
    pub fn wait_exit(&self) -> Result<Exit> {
        if let Some(stdin) = &self.stdin {
            stdin.close_for_wait();
        }
        match self.wait_outcome(None)? {
            Some(o) => Ok(Exit::new(self.pid(), o)),
            None => unreachable!("a wait without a deadline returned early"),
        }
    }

    /// Returns the exit status if the child has exited, without blocking.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        match self.proc.try_collect() {
            Some(o) => Exit::new(self.pid(), o).status().map(Some),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the child to exit: `Ok(None)` if it is still running then.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.wait_deadline(deadline_after(timeout))
    }

    /// Waits until `deadline` for the child to exit: `Ok(None)` if it is still running then.
    ///
    /// On Linux the waiting thread sleeps in `poll` on the child's pidfd and wakes the moment
    /// the child exits; no timer ticks, nothing polls.
    pub fn wait_deadline(&self, deadline: Instant) -> Result<Option<ExitStatus>> {
        match self.wait_outcome(Some(deadline))? {
            Some(o) => Exit::new(self.pid(), o).status().map(Some),
            None => Ok(None),
        }
    }

    fn wait_outcome(&self, deadline: Option<Instant>) -> Result<Option<Outcome>> {
        self.proc
            .wait_deadline(deadline)
            .map_err(|e| Error::os(Stage::Wait, e, "waiting for the child").with_argv(&self.argv))
    }

    /// A channel that receives this child's [`Exit`] once, when it exits (at once if it
    /// already has). Use it to `select!` over many children, timers and other channels.
    ///
    /// # Examples
    ///
    /// ```
    /// use crossbeam_channel::select;
    /// use offspring::Command;
    ///
    /// let fast = Command::new("true").spawn()?;
    /// let slow = Command::new("sleep").arg("5").kill_on_drop(true).spawn()?;
    /// let (fast_rx, slow_rx) = (fast.exit_receiver(), slow.exit_receiver());
    /// select! {
    ///     recv(fast_rx) -> exit => assert!(exit.unwrap().status()?.success()),
    ///     recv(slow_rx) -> _ => panic!("sleep 5 finished first"),
    /// }
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn exit_receiver(&self) -> Receiver<Exit> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.proc.subscribe(tx);
        rx
    }

    /// The child's resource usage, once its status has been collected.
    pub fn resource_usage(&self) -> Option<ResourceUsage> {
        match self.proc.outcome()? {
            Outcome::Exited(r) => r.usage,
            Outcome::Unavailable => None,
        }
    }

    /// Sends `signal` to the child.
    ///
    /// Sending a signal to a child that has exited and been collected is a no-op that returns
    /// `Ok(())` (as std's `kill` does): offspring never signals a pid it no longer owns. The
    /// signal goes through the child's pidfd, which cannot reach a recycled pid.
    ///
    /// # Errors
    ///
    /// Without pidfds (Linux before 5.3) a pid cannot be told apart from a recycled one
    /// (other code's `waitpid(-1)`, or `SIGCHLD` set to `SIG_IGN`, lets the kernel reuse it
    /// while it still looks like a running child), so offspring refuses to signal there: an
    /// [`ErrorKind::Io`] error saying so (`ENOTSUP`-like, no errno).
    #[doc(alias = "kill")]
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.proc.signal(signal).map_err(|e| {
            Error::os(Stage::Wait, e, format!("sending {signal}")).with_argv(&self.argv)
        })
    }

    /// Kills the child with `SIGKILL`, as [`std::process::Child::kill`] does. A no-op if it
    /// has already exited.
    pub fn kill(&self) -> Result<()> {
        self.signal(Signal::KILL)
    }

    /// Sends `signal` to the child's whole process group: the child and every descendant
    /// that stayed in its group.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the child does not lead its own group (spawn it with
    /// [`ProcessGroup::New`](crate::ProcessGroup::New) or
    /// [`new_session`](crate::Command::new_session)); `ESRCH` as an `Io` error is not
    /// returned for an empty group, which is treated as success.
    ///
    /// The group is never confused with a later one that got the same number: the signal
    /// is sent while the leader is unreaped (its pid, the group's number, cannot be reused
    /// meanwhile), or after that only while no other process holds the leader's pid (a
    /// group with members keeps its number out of use). If another process has it, the
    /// group emptied and nothing is sent.
    #[doc(alias = "killpg")]
    pub fn signal_group(&self, signal: Signal) -> Result<()> {
        let Some(pgid) = self.group else {
            return Err(Error::invalid_input(
                "signal_group needs a child that leads its own process group \
                 (Command::process_group(ProcessGroup::New) or new_session(true))",
            )
            .with_argv(&self.argv));
        };
        match self.proc.signal_group(pgid, signal) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => Ok(()),
            Err(e) => Err(Error::os(Stage::Wait, e, format!("sending {signal} to the group"))
                .with_argv(&self.argv)),
            Ok(()) => Ok(()),
        }
    }

    /// Asks the child to stop with `SIGTERM`, waits up to `grace` for it to exit, then kills
    /// it with `SIGKILL`; returns how it ended and whether the kill was needed.
    pub fn terminate(&self, grace: Duration) -> Result<Termination> {
        self.terminate_with(Signal::TERM, grace)
    }

    /// As [`terminate`](Child::terminate), with another first signal (`SIGINT`, `SIGHUP`...).
    pub fn terminate_with(&self, signal: Signal, grace: Duration) -> Result<Termination> {
        self.signal(signal)?;
        if let Some(status) = self.wait_timeout(grace)? {
            return Ok(Termination { status, needed_kill: false });
        }
        self.kill()?;
        Ok(Termination { status: self.wait()?, needed_kill: true })
    }

    /// Lets the child run on after this handle is gone, without any kill-on-drop policy. The
    /// reaper still collects its exit status, so it leaves no zombie. The parent's ends of its
    /// pipes are closed.
    #[doc(alias = "unref")]
    pub fn detach(mut self) {
        self.drop_policy = DropPolicy::Reap;
    }

    #[doc(hidden)]
    /// Test probe: `"posix_spawn"`, `"vfork"` or `"fork"`, the path that started this child.
    pub fn spawn_path(&self) -> &'static str {
        match self.path {
            PathTaken::PosixSpawn => "posix_spawn",
            PathTaken::Vfork => "vfork",
            PathTaken::Fork => "fork",
        }
    }

    pub(crate) fn argv(&self) -> &[OsString] {
        &self.argv
    }

    /// Arms the reaper to send `sig` at `at` (to the group the child leads, if any), then
    /// `SIGKILL` after `grace`: a spawned child's timeout.
    pub(crate) fn stop_at(&self, at: Instant, sig: Signal, grace: Duration) {
        reaper::signal_later(&self.proc, at, sig, self.group, Some(grace));
    }

    /// Closes stdin, reads stdout and stderr to the end (those that are piped) and waits for
    /// the child, as [`std::process::Child::wait_with_output`]: one `poll()` loop, so it
    /// cannot deadlock. Draining after the child exits is bounded by 1 s (see
    /// [`Communication::drain_timeout`](crate::Communication::drain_timeout) to choose).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::io::Write;
    /// let mut child = Command::new("sort").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    /// child.stdin.as_mut().unwrap().write_all(b"b\na\n")?;
    /// let out = child.wait_with_output()?;
    /// assert_eq!(out.stdout, b"a\nb\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_with_output(mut self) -> Result<crate::Output> {
        drop(self.stdin.take());
        self.communicate(b"")?.wait()
    }

    /// Keeps the pidfds of descendants a stop found, for a later signal.
    pub(crate) fn hold_descendants(&self, found: Vec<(Pid, OwnedFd)>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for (pid, fd) in found {
            if !held.iter().any(|(p, _)| *p == pid) {
                held.push((pid, fd));
            }
        }
    }

    /// Whether a stop found descendants to follow up on.
    pub(crate) fn holds_descendants(&self) -> bool {
        !self.held.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Sends `sig` to the descendants a stop found.
    pub(crate) fn signal_held(&self, sig: Signal) {
        crate::stop::signal_all(&self.held.lock().unwrap_or_else(|e| e.into_inner()), sig);
    }

    /// Declares that the calling code polls [`pidfd`](Child::pidfd) and reaps the child itself
    /// (with `try_wait`) until the guard is dropped; the reaper stays out of the way meanwhile.
    pub(crate) fn self_wait(&self) -> crate::reaper::SelfWait<&Proc> {
        crate::reaper::SelfWait::new(&self.proc)
    }

    /// As [`self_wait`](Child::self_wait), for a loop that keeps the child past this borrow.
    pub(crate) fn self_wait_owned(&self) -> crate::reaper::SelfWait<Arc<Proc>> {
        crate::reaper::SelfWait::new(Arc::clone(&self.proc))
    }

    /// The child's pidfd, when the reaper tracks it with one: readable once the child exits.
    /// `None` also while a ptracer holds the exited child ([`mark_held`](Child::mark_held)):
    /// pollers then look at the child on a timer instead.
    pub(crate) fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.proc.poll_fd()
    }

    /// Records that [`pidfd`](Child::pidfd) was readable but `try_wait` found nothing to
    /// collect (a ptracer holds the exited child), so that no loop spins on it.
    pub(crate) fn mark_held(&self) {
        self.proc.mark_held();
    }
}

/// `now + timeout`, saturating far in the future.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    deadline_from(Instant::now(), timeout)
}

/// `from + timeout`, saturating far in the future (`Duration::MAX` does not overflow).
pub(crate) fn deadline_from(from: Instant, timeout: Duration) -> Instant {
    from.checked_add(timeout).unwrap_or_else(|| from + Duration::from_secs(86400 * 365 * 30))
}

impl Drop for Child {
    fn drop(&mut self) {
        // A child the runner meant to reap itself and gives up on (an error, a panic) goes to
        // the reaper now.
        reaper::release(&self.proc);
        if let Some(tree) = &self.tree {
            // The whole tree, even after the child itself has exited.
            match self.drop_policy {
                DropPolicy::Reap => {}
                DropPolicy::Kill => {
                    let _ = tree.kill();
                }
                DropPolicy::Terminate(grace) => tree.terminate_later(deadline_after(grace)),
            }
            return;
        }
        if self.proc.outcome().is_some() {
            return;
        }
        match self.drop_policy {
            DropPolicy::Reap => {}
            DropPolicy::Kill => {
                let _ = self.proc.signal(Signal::KILL);
            }
            DropPolicy::Terminate(grace) => {
                if self.proc.signal(Signal::TERM).is_ok() {
                    reaper::kill_later(&self.proc, deadline_after(grace));
                }
            }
        }
        // The reaper holds its own reference to the child and collects it when it exits.
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.proc.pid)
            .field("command", &crate::quote::display_argv(&self.argv))
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("outcome", &self.proc.outcome())
            .finish_non_exhaustive()
    }
}
