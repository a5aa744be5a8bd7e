//! [`Supervisor`]: keeps N workers of one or more commands running, from one thread.

mod policy;

pub use policy::{Backoff, ReadyLine, Restart};

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use rustix::event::{PollFd, PollFlags};

use crate::capture::Stream;
use crate::child::Child;
use crate::command::{Command, ProcessGroup};
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::exit_status::{ExitStatus, ResourceUsage};
use crate::signal::Signal;
use crate::stdio::Stdio;
use crate::Pid;
use policy::{failed, random_unit, RestartWindow};

/// The longest line passed on whole; a longer one is cut into pieces of this size.
const MAX_LINE: usize = 64 * 1024;
/// Without a pidfd (old kernels), how often the loop asks whether a worker has exited.
const FALLBACK_EXIT_CHECK: Duration = Duration::from_millis(50);

/// One group of identical workers: a command, how many copies, and its policies. Given to
/// [`Supervisor::start`].
///
/// The supervisor owns the command and spawns it again for every start, with stdin from
/// `/dev/null`, stdout and stderr piped (read line by line), `OFFSPRING_WORKER` set to the
/// worker's index, in a process group of its own (so a stop signal reaches what the worker
/// started), and with a parent-death signal (`SIGKILL`) so that workers die with the
/// supervisor even when it is killed with `SIGKILL`. A socket given with
/// [`Command::listen_fd`] is passed to every worker and every restart.
pub struct Workers {
    name: String,
    cmd: Command,
    count: usize,
    restart: Restart,
    success_codes: Vec<i32>,
    backoff: Backoff,
    max_restarts: u32,
    window: Duration,
    min_uptime: Duration,
    ready: Option<ReadyLine>,
    ready_timeout: Duration,
    stop_signal: Signal,
    grace: Duration,
}

impl Workers {
    /// One worker running `cmd`, named `name` in events and logs (`name.0`, `name.1`, ...),
    /// with the defaults: [`Restart::Always`], success code 0, [`Backoff::default`], at most
    /// 5 restarts in 60 s, healthy after 5 s up, ready when started, stopped with `SIGTERM`
    /// and 5 s of grace.
    pub fn new(name: impl Into<String>, cmd: Command) -> Workers {
        Workers {
            name: name.into(),
            cmd,
            count: 1,
            restart: Restart::Always,
            success_codes: vec![0],
            backoff: Backoff::default(),
            max_restarts: 5,
            window: Duration::from_secs(60),
            min_uptime: Duration::from_secs(5),
            ready: None,
            ready_timeout: Duration::from_secs(30),
            stop_signal: Signal::TERM,
            grace: Duration::from_secs(5),
        }
    }

    /// How many copies to keep running.
    pub fn count(mut self, n: usize) -> Workers {
        self.count = n;
        self
    }

    /// When to restart a worker that exited.
    pub fn restart(mut self, policy: Restart) -> Workers {
        self.restart = policy;
        self
    }

    /// The exit codes that count as success for [`Restart::OnFailure`] (default: 0).
    pub fn success_codes(mut self, codes: &[i32]) -> Workers {
        self.success_codes = codes.to_vec();
        self
    }

    /// The delays between restarts.
    pub fn backoff(mut self, backoff: Backoff) -> Workers {
        self.backoff = backoff;
        self
    }

    /// Gives up on a worker that needs more than `limit` restarts within `window`: it stays
    /// down and an [`SupervisorEvent::GaveUp`] says so.
    pub fn max_restarts(mut self, limit: u32, window: Duration) -> Workers {
        self.max_restarts = limit;
        self.window = window;
        self
    }

    /// How long a run must last to count as healthy: the next restart after a healthy run
    /// waits only the backoff's `min` again.
    pub fn min_uptime(mut self, uptime: Duration) -> Workers {
        self.min_uptime = uptime;
        self
    }

    /// A worker is ready once it prints a line matching `pattern` on stdout (see
    /// [`ReadyLine`]) within `timeout`; one that does not is stopped and counts as failed.
    /// Without this, a worker is ready as soon as it has started.
    pub fn ready_line(mut self, pattern: &str, timeout: Duration) -> Workers {
        self.ready = Some(ReadyLine::new(pattern));
        self.ready_timeout = timeout;
        self
    }

    /// The signal that asks a worker to stop, and how long it has before `SIGKILL`
    /// (rolling restarts; [`Supervisor::shutdown`] takes its own deadline).
    pub fn stop_signal(mut self, signal: Signal, grace: Duration) -> Workers {
        self.stop_signal = signal;
        self.grace = grace;
        self
    }
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("name", &self.name)
            .field("cmd", &self.cmd)
            .field("count", &self.count)
            .field("restart", &self.restart)
            .field("backoff", &self.backoff)
            .field("max_restarts", &(self.max_restarts, self.window))
            .field("min_uptime", &self.min_uptime)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

/// Which worker: its group's name and its index in the group. Displays as `name.index`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId {
    /// The name given to [`Workers::new`].
    pub group: Arc<str>,
    /// 0 to count - 1.
    pub index: usize,
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.group, self.index)
    }
}

/// Why the supervisor stopped a worker itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// A rolling restart replaced it.
    Rolling,
    /// It did not print its ready line in time.
    NotReady,
    /// The supervisor shut down.
    Shutdown,
}

/// What followed a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Next {
    /// Restarted after this delay (zero for a rolling restart).
    Restart(Duration),
    /// The restart limit was reached: the worker stays down.
    GaveUp,
    /// Not restarted: the policy said no, or the supervisor shut down.
    Stay,
}

/// One run of a worker, in its [history](Supervisor::history).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Run {
    /// The worker's pid, if it started.
    pub pid: Option<Pid>,
    /// When it was started (wall clock, for logs).
    pub started_at: SystemTime,
    /// When it was started (monotonic, to compare runs).
    pub started: Instant,
    /// How long after the start it became ready, if it did.
    pub ready_after: Option<Duration>,
    /// How long it ran.
    pub duration: Duration,
    /// How it ended; `None` if it never started (see `error`) or its status was lost.
    pub status: Option<ExitStatus>,
    /// CPU time, peak RSS and more, from the kernel.
    pub usage: Option<ResourceUsage>,
    /// Set when the supervisor stopped it, and why; `killed` when that took `SIGKILL`.
    pub stopped: Option<StopReason>,
    /// `true` if stopping it needed `SIGKILL`.
    pub killed: bool,
    /// The spawn error, for a run that never started.
    pub error: Option<String>,
    /// What the supervisor did next.
    pub next: Next,
}

impl Run {
    /// One line for logs: "exit code 1 after 12ms, restart in 200ms".
    pub fn summary(&self) -> String {
        let how = match (&self.error, self.status) {
            (Some(e), _) => format!("failed to start: {e}"),
            (None, Some(s)) => s.to_string(),
            (None, None) => "status unknown".to_string(),
        };
        let mut out = format!("{how} after {:.3?}", self.duration);
        if let Some(r) = self.stopped {
            out +=
                &format!(" (stopped: {r:?}{})", if self.killed { ", needed SIGKILL" } else { "" });
        }
        if let Some(u) = self.usage {
            out += &format!(
                ", cpu {:.3?}, max rss {} KiB",
                u.user_time + u.system_time,
                u.max_rss_bytes / 1024
            );
        }
        match self.next {
            Next::Restart(d) => out += &format!(", restart in {d:.3?}"),
            Next::GaveUp => out += ", restart limit reached: giving up",
            Next::Stay => {}
        }
        out
    }
}

/// What happens in a [`Supervisor`], in order, on [`Supervisor::events`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SupervisorEvent {
    /// A worker was started.
    Started {
        /// Which.
        worker: WorkerId,
        /// Its pid.
        pid: Pid,
    },
    /// A worker passed its ready check (at once without one).
    Ready {
        /// Which.
        worker: WorkerId,
        /// How long after its start.
        after: Duration,
    },
    /// A line the worker wrote, without its newline (lossy UTF-8; lines longer than 64 KiB
    /// come in pieces).
    Line {
        /// Which.
        worker: WorkerId,
        /// Stdout or stderr.
        stream: Stream,
        /// The text.
        line: String,
    },
    /// A run ended; its record, also in the history.
    Exited {
        /// Which.
        worker: WorkerId,
        /// The record.
        run: Run,
    },
    /// A worker reached its restart limit and stays down.
    GaveUp {
        /// Which.
        worker: WorkerId,
        /// The restarts counted in the window.
        restarts: u32,
    },
    /// Every worker is down for good (all gave up or were not restarted); the supervisor
    /// keeps running until [`Supervisor::shutdown`].
    AllDown,
}

/// Sent from the handle to the supervisor's thread.
enum Control {
    Rolling(Sender<Result<()>>),
    Shutdown(Duration, Sender<Vec<WorkerId>>),
}

/// Keeps N workers of one or more commands running: restarts with backoff, a restart limit,
/// ready checks, rolling restarts, tagged line-by-line output, a history of every run, and a
/// shutdown within one deadline.
///
/// One thread (`offspring-supervisor`) serves every worker: it waits in one `poll()` for
/// their output, their pidfds (exits), its control pipe and the next timer. There is no
/// thread per worker. What happens comes out as [`SupervisorEvent`]s on a
/// [`crossbeam_channel::Receiver`], to read or `select!` over, for example together with
/// [`shutdown_signals`](crate::shutdown_signals).
///
/// ```
/// use offspring::{Command, SupervisorEvent, Supervisor, Workers};
/// use std::time::Duration;
///
/// let mut cmd = Command::new("sh");
/// cmd.args(["-c", "echo up; sleep 30"]);
/// let sup = Supervisor::start(vec![Workers::new("web", cmd).count(2).ready_line("up", Duration::from_secs(5))])?;
/// let mut ready = 0;
/// while ready < 2 {
///     if let SupervisorEvent::Ready { .. } = sup.events().recv().unwrap() { ready += 1 }
/// }
/// sup.rolling_restart()?; // one at a time, each waiting for the new one's "up"
/// let killed = sup.shutdown(Duration::from_secs(5))?;
/// assert!(killed.is_empty());
/// # Ok::<(), offspring::Error>(())
/// ```
///
/// # Drop behavior
///
/// Dropping the supervisor shuts it down as [`shutdown`](Supervisor::shutdown) does, giving
/// each worker its group's grace period: dropping blocks until every worker is gone.
pub struct Supervisor {
    control: Sender<Control>,
    wake: OwnedFd,
    events: Receiver<SupervisorEvent>,
    history: Arc<Mutex<Vec<(WorkerId, Vec<Run>)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    default_grace: Duration,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor").field("workers", &self.workers()).finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Starts every worker of every group and the supervisor's thread.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a group with no workers, two groups with one name, or
    /// a command that fails validation (the error names it); an OS error if the control pipe
    /// or the thread cannot be created. A worker whose spawn fails later is not an error
    /// here: it is a failed run, restarted under its policy.
    pub fn start(groups: Vec<Workers>) -> Result<Supervisor> {
        let mut seen = std::collections::HashSet::new();
        for g in &groups {
            if g.count == 0 {
                return Err(Error::invalid_input(format!("worker group {:?} has count 0", g.name)));
            }
            if !seen.insert(g.name.clone()) {
                return Err(Error::invalid_input(format!("two worker groups named {:?}", g.name)));
            }
        }
        let (wake_rd, wake_wr) = crate::sys::pipe::pipe()
            .map_err(|e| Error::os(Stage::Setup, e, "creating the supervisor's control pipe"))?;
        crate::sys::pipe::set_nonblocking(&wake_rd, true)
            .and_then(|()| crate::sys::pipe::set_nonblocking(&wake_wr, true))
            .map_err(|e| Error::os(Stage::Setup, e, "setting up the control pipe"))?;
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let history = Arc::new(Mutex::new(Vec::new()));
        let default_grace = groups.iter().map(|g| g.grace).max().unwrap_or_default();
        let mut engine = Engine::new(groups, ev_tx, history.clone(), wake_rd);
        let thread = std::thread::Builder::new()
            .name("offspring-supervisor".into())
            .spawn(move || engine.run(ctl_rx))
            .map_err(|e| Error::os(Stage::Setup, e, "starting the supervisor thread"))?;
        Ok(Supervisor {
            control: ctl_tx,
            wake: wake_wr,
            events: ev_rx,
            history,
            thread: Some(thread),
            default_grace,
        })
    }

    /// The events. Every clone of the receiver takes from the same queue, which is
    /// unbounded: a program that starts a supervisor should read it (the output lines are
    /// events too).
    pub fn events(&self) -> &Receiver<SupervisorEvent> {
        &self.events
    }

    /// Every worker, in order.
    pub fn workers(&self) -> Vec<WorkerId> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(w, _)| w.clone())
            .collect()
    }

    /// The finished runs of `worker`, oldest first (the current run is not in it yet).
    pub fn history(&self, worker: &WorkerId) -> Vec<Run> {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.iter().find(|(w, _)| w == worker).map(|(_, runs)| runs.clone()).unwrap_or_default()
    }

    fn send(&self, msg: Control) -> Result<()> {
        self.control.send(msg).map_err(|_| gone())?;
        let _ = rustix::io::write(&self.wake, &[1]);
        Ok(())
    }

    /// Replaces every running worker, one at a time: stops it (its group's stop signal,
    /// then `SIGKILL` after the grace period), starts a new one, and goes on to the next only
    /// once the new one is ready. Returns when all are replaced. Workers that are down (in
    /// backoff, or given up) are left alone. The restarts do not count toward the limit.
    ///
    /// # Errors
    ///
    /// If a new worker fails its ready check or exits before it is ready, the rolling restart
    /// stops there, with an error naming the worker (the supervisor handles that worker as
    /// any failed run).
    pub fn rolling_restart(&self) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Control::Rolling(tx))?;
        rx.recv().map_err(|_| gone())?
    }

    /// Stops every worker: the group's stop signal to each worker's process group, then
    /// `SIGKILL` to those still running after `deadline`; waits for all of them, ends the
    /// supervisor's thread, and returns the workers that needed `SIGKILL`.
    ///
    /// # Errors
    ///
    /// Only if the supervisor's thread is gone (it panicked).
    pub fn shutdown(mut self, deadline: Duration) -> Result<Vec<WorkerId>> {
        self.shutdown_inner(deadline)
    }

    fn shutdown_inner(&mut self, deadline: Duration) -> Result<Vec<WorkerId>> {
        let Some(thread) = self.thread.take() else { return Ok(Vec::new()) };
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sent = self.send(Control::Shutdown(deadline, tx));
        let killed = rx.recv();
        let joined = thread.join();
        sent?;
        if joined.is_err() {
            return Err(gone());
        }
        killed.map_err(|_| gone())
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.shutdown_inner(self.default_grace);
    }
}

fn gone() -> Error {
    Error::new(ErrorKind::Io, Stage::Wait, "the supervisor's thread is gone (it panicked)")
}

/// What a worker slot is doing.
#[derive(Debug)]
enum State {
    /// Running, not yet ready; stopped at the deadline if it is not ready by then.
    Starting {
        deadline: Option<Instant>,
    },
    Ready,
    /// Asked to stop; `SIGKILL` at `kill_at`.
    Stopping {
        reason: StopReason,
        kill_at: Option<Instant>,
    },
    /// Down, to be started again at this time.
    Waiting {
        until: Instant,
    },
    /// Down for good.
    Down,
}

/// A pipe being read line by line.
#[derive(Debug)]
struct LinePipe {
    fd: OwnedFd,
    stream: Stream,
    partial: Vec<u8>,
}

#[derive(Debug)]
struct Slot {
    id: WorkerId,
    group: usize,
    child: Option<Child>,
    pipes: Vec<LinePipe>,
    state: State,
    started: Instant,
    started_at: SystemTime,
    ready_after: Option<Duration>,
    killed: bool,
    attempt: u32,
    window: RestartWindow,
}

struct Rolling {
    queue: std::collections::VecDeque<usize>,
    current: Option<usize>,
    reply: Sender<Result<()>>,
}

struct Engine {
    groups: Vec<Workers>,
    slots: Vec<Slot>,
    events: Sender<SupervisorEvent>,
    history: Arc<Mutex<Vec<(WorkerId, Vec<Run>)>>>,
    wake: OwnedFd,
    rolling: Option<Rolling>,
    shutdown: Option<Sender<Vec<WorkerId>>>,
    killed: Vec<WorkerId>,
    all_down_sent: bool,
}

impl Engine {
    fn new(
        mut groups: Vec<Workers>,
        events: Sender<SupervisorEvent>,
        history: Arc<Mutex<Vec<(WorkerId, Vec<Run>)>>>,
        wake: OwnedFd,
    ) -> Engine {
        let mut slots = Vec::new();
        let now = Instant::now();
        for (gi, g) in groups.iter_mut().enumerate() {
            g.cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            g.cmd.process_group(ProcessGroup::New);
            g.cmd.parent_death_signal(Signal::KILL);
            let name: Arc<str> = Arc::from(g.name.as_str());
            for index in 0..g.count {
                let id = WorkerId { group: name.clone(), index };
                history.lock().unwrap_or_else(|e| e.into_inner()).push((id.clone(), Vec::new()));
                slots.push(Slot {
                    id,
                    group: gi,
                    child: None,
                    pipes: Vec::new(),
                    state: State::Waiting { until: now },
                    started: now,
                    started_at: SystemTime::now(),
                    ready_after: None,
                    killed: false,
                    attempt: 0,
                    window: RestartWindow::new(g.max_restarts, g.window),
                });
            }
        }
        Engine {
            groups,
            slots,
            events,
            history,
            wake,
            rolling: None,
            shutdown: None,
            killed: Vec::new(),
            all_down_sent: false,
        }
    }

    fn emit(&self, ev: SupervisorEvent) {
        let _ = self.events.send(ev);
    }

    fn run(&mut self, control: Receiver<Control>) {
        loop {
            let now = Instant::now();
            self.timers(now);
            while let Ok(msg) = control.try_recv() {
                self.control(msg, now);
            }
            self.step_rolling(now);
            if self.shutdown.is_some() && self.slots.iter().all(|s| s.child.is_none()) {
                let killed = std::mem::take(&mut self.killed);
                if let Some(reply) = self.shutdown.take() {
                    let _ = reply.send(killed);
                }
                return;
            }
            if self.shutdown.is_none()
                && !self.all_down_sent
                && self.slots.iter().all(|s| matches!(s.state, State::Down))
            {
                self.all_down_sent = true;
                self.emit(SupervisorEvent::AllDown);
            }
            self.wait_and_handle(now);
        }
    }

    /// The earliest timer of any slot.
    fn next_timer(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::Starting { deadline } => deadline,
                State::Stopping { kill_at, .. } => kill_at,
                State::Waiting { until } => Some(until),
                State::Ready | State::Down => None,
            })
            .min()
    }

    fn wait_and_handle(&mut self, now: Instant) {
        let mut timeout = self.next_timer().map(|t| t.saturating_duration_since(now));
        if self.slots.iter().any(|s| s.child.as_ref().is_some_and(|c| c.pidfd().is_none())) {
            timeout = Some(timeout.map_or(FALLBACK_EXIT_CHECK, |t| t.min(FALLBACK_EXIT_CHECK)));
        }
        // Which slot and pipe each poll entry belongs to: (slot, Some(pipe) or None for the
        // pidfd).
        let mut owners: Vec<(usize, Option<usize>)> = Vec::new();
        let ready: Vec<(usize, Option<usize>, bool)> = {
            let mut set: Vec<PollFd<'_>> = vec![PollFd::new(&self.wake, PollFlags::IN)];
            for (si, slot) in self.slots.iter().enumerate() {
                for (pi, p) in slot.pipes.iter().enumerate() {
                    set.push(PollFd::new(&p.fd, PollFlags::IN));
                    owners.push((si, Some(pi)));
                }
                if let Some(fd) = slot.child.as_ref().and_then(|c| c.pidfd()) {
                    set.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                    owners.push((si, None));
                }
            }
            let ts = timeout.map(crate::reaper::timespec);
            match rustix::event::poll(&mut set, ts.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => return,
                Err(e) => {
                    // Nothing sensible to do but wait a little and try again.
                    debug_assert!(false, "supervisor poll failed: {e}");
                    std::thread::sleep(FALLBACK_EXIT_CHECK);
                    return;
                }
            }
            let mut r = Vec::new();
            if !set[0].revents().is_empty() {
                let mut buf = [0u8; 64];
                while matches!(rustix::io::read(&self.wake, &mut buf), Ok(n) if n > 0) {}
            }
            for (entry, owner) in set[1..].iter().zip(&owners) {
                if !entry.revents().is_empty() {
                    r.push((owner.0, owner.1, true));
                }
            }
            r
        };
        for (si, pipe, _) in ready.iter().rev() {
            if let Some(pi) = pipe {
                self.read_pipe(*si, *pi, false);
            }
        }
        let now = Instant::now();
        for si in 0..self.slots.len() {
            let pidfd_ready = ready.iter().any(|(s, p, _)| *s == si && p.is_none());
            let no_pidfd = self.slots[si].child.as_ref().is_some_and(|c| c.pidfd().is_none());
            if pidfd_ready || no_pidfd {
                self.check_exit(si, pidfd_ready, now);
            }
        }
    }

    /// Reads what a pipe holds and emits its complete lines; at EOF (or `last`), the
    /// partial line too, and closes it.
    fn read_pipe(&mut self, si: usize, pi: usize, last: bool) {
        let mut buf = [0u8; 16 * 1024];
        let mut eof = false;
        let mut lines: Vec<(Stream, Vec<u8>)> = Vec::new();
        {
            let p = &mut self.slots[si].pipes[pi];
            for _ in 0..16 {
                match rustix::io::read(&p.fd, &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => p.partial.extend_from_slice(&buf[..n]),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            while let Some(nl) = p.partial.iter().position(|&b| b == b'\n') {
                let rest = p.partial.split_off(nl + 1);
                let mut line = std::mem::replace(&mut p.partial, rest);
                line.pop();
                lines.push((p.stream, line));
            }
            while p.partial.len() >= MAX_LINE {
                let rest = p.partial.split_off(MAX_LINE);
                lines.push((p.stream, std::mem::replace(&mut p.partial, rest)));
            }
            if (eof || last) && !p.partial.is_empty() {
                lines.push((p.stream, std::mem::take(&mut p.partial)));
            }
        }
        for (stream, line) in lines {
            self.line(si, stream, &line);
        }
        if eof || last {
            self.slots[si].pipes.remove(pi);
        }
    }

    fn line(&mut self, si: usize, stream: Stream, line: &[u8]) {
        let now = Instant::now();
        let slot = &self.slots[si];
        let worker = slot.id.clone();
        self.emit(SupervisorEvent::Line {
            worker: worker.clone(),
            stream,
            line: String::from_utf8_lossy(line).into_owned(),
        });
        if stream == Stream::Stdout && matches!(slot.state, State::Starting { .. }) {
            let g = &self.groups[slot.group];
            if g.ready.as_ref().is_some_and(|r| r.matches(line)) {
                self.mark_ready(si, now);
            }
        }
    }

    fn mark_ready(&mut self, si: usize, now: Instant) {
        let slot = &mut self.slots[si];
        let after = now.saturating_duration_since(slot.started);
        slot.state = State::Ready;
        slot.ready_after = Some(after);
        let worker = slot.id.clone();
        self.emit(SupervisorEvent::Ready { worker, after });
        if let Some(r) = &mut self.rolling {
            if r.current == Some(si) {
                r.current = None;
            }
        }
    }

    fn check_exit(&mut self, si: usize, pidfd_ready: bool, now: Instant) {
        let Some(child) = &self.slots[si].child else { return };
        // The pidfd says it exited; the reaper may be collecting it right now.
        let status =
            if pidfd_ready { child.wait_timeout(Duration::from_secs(1)) } else { child.try_wait() };
        let status = match status {
            Ok(Some(s)) => Some(s),
            Ok(None) => return,
            Err(e) if e.kind() == ErrorKind::StatusUnavailable => None,
            Err(_) => return,
        };
        let usage = child.resource_usage();
        let pid = child.pid();
        // What is left in the pipes now; a grandchild that keeps them open does not hold
        // the worker's exit back.
        for pi in (0..self.slots[si].pipes.len()).rev() {
            self.read_pipe(si, pi, true);
        }
        self.slots[si].child = None;
        self.finish_run(si, Some(pid), status, usage, None, now);
    }

    /// Records a run that ended (or never started: `error`) and decides what comes next.
    fn finish_run(
        &mut self,
        si: usize,
        pid: Option<Pid>,
        status: Option<ExitStatus>,
        usage: Option<ResourceUsage>,
        error: Option<String>,
        now: Instant,
    ) {
        let stopped = match self.slots[si].state {
            State::Stopping { reason, .. } => Some(reason),
            _ => None,
        };
        let g = &self.groups[self.slots[si].group];
        let slot = &mut self.slots[si];
        let duration = now.saturating_duration_since(slot.started);
        if duration >= g.min_uptime {
            slot.attempt = 0;
        }
        let is_failure = stopped == Some(StopReason::NotReady) || failed(status, &g.success_codes);
        let next = if self.shutdown.is_some() || stopped == Some(StopReason::Shutdown) {
            Next::Stay
        } else if stopped == Some(StopReason::Rolling) {
            Next::Restart(Duration::ZERO)
        } else if g.restart == Restart::Never || (g.restart == Restart::OnFailure && !is_failure) {
            Next::Stay
        } else if !slot.window.allow(now) {
            Next::GaveUp
        } else {
            let d = g.backoff.delay(slot.attempt, random_unit());
            slot.attempt = slot.attempt.saturating_add(1);
            Next::Restart(d)
        };
        let run = Run {
            pid,
            started_at: slot.started_at,
            started: slot.started,
            ready_after: slot.ready_after,
            duration,
            status,
            usage,
            stopped,
            killed: slot.killed,
            error,
            next,
        };
        slot.state = match next {
            Next::Restart(d) => State::Waiting {
                until: now.checked_add(d).unwrap_or(now + Duration::from_secs(86400 * 365)),
            },
            Next::GaveUp | Next::Stay => State::Down,
        };
        let worker = slot.id.clone();
        let restarts = slot.window.count();
        if slot.killed {
            self.killed.push(worker.clone());
        }
        {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, runs)) = h.iter_mut().find(|(w, _)| *w == worker) {
                runs.push(run.clone());
            }
        }
        self.emit(SupervisorEvent::Exited { worker: worker.clone(), run });
        if next == Next::GaveUp {
            self.emit(SupervisorEvent::GaveUp { worker, restarts });
        }
        if let Some(r) = &mut self.rolling {
            if r.current == Some(si) && stopped != Some(StopReason::Rolling) {
                // The replacement died before it was ready.
                let err = Error::new(
                    ErrorKind::Io,
                    Stage::Run,
                    format!(
                        "rolling restart stopped: {} exited before it was ready",
                        self.slots[si].id
                    ),
                );
                if let Some(r) = self.rolling.take() {
                    let _ = r.reply.send(Err(err));
                }
            }
        }
        // A rolling restart starts the replacement at once.
        if next == Next::Restart(Duration::ZERO) {
            self.start_worker(si, now);
        }
    }

    fn start_worker(&mut self, si: usize, now: Instant) {
        let slot = &mut self.slots[si];
        let g = &mut self.groups[slot.group];
        g.cmd.env("OFFSPRING_WORKER", slot.id.index.to_string());
        slot.started = now;
        slot.started_at = SystemTime::now();
        slot.ready_after = None;
        slot.killed = false;
        match g.cmd.spawn() {
            Ok(mut child) => {
                let pid = child.pid();
                let mut pipes = Vec::new();
                for (fd, stream) in [
                    (child.stdout.take().map(OwnedFd::from), Stream::Stdout),
                    (child.stderr.take().map(OwnedFd::from), Stream::Stderr),
                ] {
                    if let Some(fd) = fd {
                        let _ = crate::sys::pipe::set_nonblocking(fd.as_fd(), true);
                        pipes.push(LinePipe { fd, stream, partial: Vec::new() });
                    }
                }
                slot.pipes = pipes;
                slot.child = Some(child);
                let has_check = g.ready.is_some();
                slot.state = State::Starting { deadline: now.checked_add(g.ready_timeout) };
                let worker = slot.id.clone();
                self.emit(SupervisorEvent::Started { worker, pid });
                if !has_check {
                    self.mark_ready(si, now);
                }
            }
            Err(e) => {
                slot.state = State::Starting { deadline: None };
                self.finish_run(si, None, None, None, Some(e.to_string()), now);
            }
        }
    }

    fn stop_worker(&mut self, si: usize, reason: StopReason, grace: Duration, now: Instant) {
        let slot = &mut self.slots[si];
        match &slot.child {
            Some(child) => {
                let _ = child.signal_group(self.groups[slot.group].stop_signal);
                slot.state = State::Stopping { reason, kill_at: now.checked_add(grace) };
            }
            None => slot.state = State::Down,
        }
    }

    fn timers(&mut self, now: Instant) {
        for si in 0..self.slots.len() {
            match self.slots[si].state {
                State::Waiting { until } if now >= until => {
                    if self.shutdown.is_some() {
                        self.slots[si].state = State::Down;
                    } else {
                        self.start_worker(si, now);
                    }
                }
                State::Starting { deadline: Some(d) } if now >= d => {
                    let grace = self.groups[self.slots[si].group].grace;
                    self.stop_worker(si, StopReason::NotReady, grace, now);
                }
                State::Stopping { reason, kill_at: Some(k) } if now >= k => {
                    let slot = &mut self.slots[si];
                    if let Some(c) = &slot.child {
                        let _ = c.signal_group(Signal::KILL);
                        let _ = c.kill();
                        slot.killed = true;
                    }
                    slot.state = State::Stopping { reason, kill_at: None };
                }
                _ => {}
            }
        }
    }

    fn control(&mut self, msg: Control, now: Instant) {
        match msg {
            Control::Rolling(reply) => {
                if self.shutdown.is_some() || self.rolling.is_some() {
                    let _ = reply.send(Err(Error::new(
                        ErrorKind::Io,
                        Stage::Run,
                        "a rolling restart or a shutdown is already under way",
                    )));
                    return;
                }
                let queue = (0..self.slots.len()).collect();
                self.rolling = Some(Rolling { queue, current: None, reply });
            }
            Control::Shutdown(deadline, reply) => {
                if let Some(r) = self.rolling.take() {
                    let _ = r.reply.send(Err(Error::new(
                        ErrorKind::Canceled,
                        Stage::Run,
                        "rolling restart interrupted by shutdown",
                    )));
                }
                self.shutdown = Some(reply);
                for si in 0..self.slots.len() {
                    match self.slots[si].state {
                        State::Stopping { reason, kill_at } => {
                            let cap = now.checked_add(deadline);
                            let kill_at = match (kill_at, cap) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                            self.slots[si].state = State::Stopping { reason, kill_at };
                        }
                        _ if self.slots[si].child.is_some() => {
                            self.stop_worker(si, StopReason::Shutdown, deadline, now)
                        }
                        _ => self.slots[si].state = State::Down,
                    }
                }
            }
        }
    }

    fn step_rolling(&mut self, now: Instant) {
        loop {
            let Some(r) = &mut self.rolling else { return };
            if r.current.is_some() {
                return;
            }
            let Some(si) = r.queue.pop_front() else {
                if let Some(r) = self.rolling.take() {
                    let _ = r.reply.send(Ok(()));
                }
                return;
            };
            if self.slots[si].child.is_none() || !matches!(self.slots[si].state, State::Ready) {
                // Down or not ready yet: nothing to replace, or it is being handled.
                continue;
            }
            r.current = Some(si);
            let grace = self.groups[self.slots[si].group].grace;
            self.stop_worker(si, StopReason::Rolling, grace, now);
        }
    }
}
