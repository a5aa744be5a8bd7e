//! [`Supervisor`]: keeps N workers of one or more commands running, from one thread.

mod policy;

pub use policy::{Backoff, ReadyLine, Restart};

use std::collections::HashMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use crate::capture::Stream;
use crate::child::Child;
use crate::command::{Command, ProcessGroup};
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::exit_status::{ExitStatus, ResourceUsage};
use crate::ipc;
use crate::mux::{Event as MuxEvent, Mux, MuxId};
use crate::signal::Signal;
use crate::stdio::Stdio;
use crate::Pid;
use policy::{failed, random_unit, RestartWindow};

/// One group of identical workers: a command, how many copies, and its policies. Given to
/// [`Supervisor::start`].
///
/// The supervisor owns the command and spawns it again for every start, with stdin from
/// `/dev/null`, stdout and stderr piped (read line by line), `OFFSPRING_WORKER` set to the
/// worker's index, in a process group of its own (so a stop signal reaches what the worker
/// started), and with a parent-death signal (`SIGKILL`) so that workers die with the
/// supervisor even when it is killed with `SIGKILL`. A socket given with
/// [`Command::listen_fd`] is passed to every worker and every restart. A command with
/// [`Command::contain`] runs each worker in a cgroup of its own, and stopping it then reaches
/// its whole tree, also what left its process group (`setsid`, double forks).
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
    ready: Option<ReadyCheck>,
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
        self.ready = Some(ReadyCheck::Line(ReadyLine::new(pattern)));
        self.ready_timeout = timeout;
        self
    }

    /// A worker is ready once it sends the IPC ready handshake within `timeout`, as Node's
    /// process managers expect (PM2's `wait_ready`): each worker gets a message channel
    /// ([`Command::ipc`] with [`ipc::Options::new`], fd 3, JSON), joins it with
    /// [`ipc::attach`] and calls [`ipc::Sender::send_ready`] (a Node worker:
    /// `process.send({cmd: 'NODE_OFFSPRING_READY'})`). One that does not is stopped and
    /// counts as failed, exactly as with [`ready_line`](Workers::ready_line). Replaces a
    /// ready line set before.
    ///
    /// The worker's other messages come out as [`SupervisorEvent::Message`], and
    /// [`Supervisor::sender`] sends to it. Waiting costs no thread of the supervisor's: each
    /// channel's own reader thread (see [`ipc`]'s *Threads*) pokes the supervisor's `poll()`
    /// loop when a message or the handshake arrives, and ends with the worker.
    ///
    /// ```
    /// use offspring::{Command, Supervisor, SupervisorEvent, Workers};
    /// use std::time::Duration;
    /// // A Node worker; a Rust one calls `offspring::ipc::attach()?.0.send_ready()`.
    /// let mut cmd = Command::new("node");
    /// cmd.args(["-e", "process.send({cmd: 'NODE_OFFSPRING_READY'}); setTimeout(() => {}, 30000)"]);
    /// # if offspring::Command::new("node").arg("--version").output().is_err() { return Ok(()) }
    /// let sup = Supervisor::start(vec![Workers::new("api", cmd).ready_ipc(Duration::from_secs(10))])?;
    /// loop {
    ///     match sup.events().recv().unwrap() {
    ///         SupervisorEvent::Ready { .. } => break,
    ///         SupervisorEvent::Exited { run, .. } => panic!("{}", run.summary()),
    ///         _ => {}
    ///     }
    /// }
    /// sup.shutdown(Duration::from_secs(5))?;
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "wait_ready")]
    pub fn ready_ipc(mut self, timeout: Duration) -> Workers {
        self.cmd.ipc(ipc::Options::new());
        self.ready = Some(ReadyCheck::Ipc);
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

/// A worker's ready check.
#[derive(Debug)]
enum ReadyCheck {
    Line(ReadyLine),
    Ipc,
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
    /// It did not pass its ready check in time (its ready line, or the IPC handshake).
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
    /// The spawn error, for a run that never started; or the I/O error on its pipes that
    /// made the supervisor kill it.
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
    /// A message the worker sent on its IPC channel (with [`Workers::ready_ipc`], or a
    /// command given [`Command::ipc`]): JSON text unless the channel's framing says
    /// otherwise. An fd passed with it is closed. What a worker sent before it exited comes
    /// before its [`Exited`](SupervisorEvent::Exited), unless a process it started holds
    /// the channel open: the supervisor waits 250 ms for the channel to close, then delivers
    /// the rest as it comes.
    Message {
        /// Which.
        worker: WorkerId,
        /// The message's bytes.
        data: Vec<u8>,
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

/// How long a worker's exit waits for the last messages on its channel.
const EXIT_DRAIN: Duration = Duration::from_millis(250);

/// Every worker's finished runs, shared between the handle and the thread.
type History = Arc<Mutex<Vec<(WorkerId, Vec<Run>)>>>;

/// The sending half of each running worker's IPC channel.
type Senders = Arc<Mutex<HashMap<WorkerId, ipc::Sender>>>;

/// Sent from the handle to the supervisor's thread.
enum Control {
    Rolling(Sender<Result<()>>),
    Shutdown(Duration, Sender<Vec<WorkerId>>),
}

/// Keeps N workers of one or more commands running: restarts with backoff, a restart limit,
/// ready checks, rolling restarts, tagged line-by-line output, a history of every run, and a
/// shutdown within one deadline.
///
/// One thread (`offspring-supervisor`) serves every worker: it drives one [`Mux`] (the
/// multiplexer that runs many children's pipes, exits and stops from one `poll()`), woken
/// also by its control pipe and its next timer. There is no thread per worker. What happens comes out as [`SupervisorEvent`]s on a
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
    history: History,
    senders: Senders,
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
        let notify = wake_wr
            .try_clone()
            .map_err(|e| Error::os(Stage::Setup, e, "duplicating the control pipe"))?;
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let history = Arc::new(Mutex::new(Vec::new()));
        let default_grace = groups.iter().map(|g| g.grace).max().unwrap_or_default();
        let senders = Senders::default();
        let mut engine =
            Engine::new(groups, ev_tx, history.clone(), senders.clone(), wake_rd, notify);
        let thread = crate::sys::signal::spawn_thread_without_signals(
            std::thread::Builder::new().name("offspring-supervisor".into()),
            move || engine.run(ctl_rx),
        )
        .map_err(|e| Error::os(Stage::Setup, e, "starting the supervisor thread"))?;
        Ok(Supervisor {
            control: ctl_tx,
            wake: wake_wr,
            events: ev_rx,
            history,
            senders,
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

    /// The sending half of `worker`'s IPC channel for its current run (with
    /// [`Workers::ready_ipc`], or a command given [`Command::ipc`]); `None` while it is down.
    /// A restarted worker has a new channel: a sender taken before fails with
    /// [`ipc::SendError::Disconnected`] once the old run is gone.
    pub fn sender(&self, worker: &WorkerId) -> Option<ipc::Sender> {
        self.senders.lock().unwrap_or_else(|e| e.into_inner()).get(worker).cloned()
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
    /// Asked to stop (its stop signal; the mux sends `SIGKILL` after the grace period).
    Stopping {
        reason: StopReason,
    },
    /// Down, to be started again at this time.
    Waiting {
        until: Instant,
    },
    /// Down for good.
    Down,
}

#[derive(Debug)]
struct Slot {
    id: WorkerId,
    group: usize,
    /// The running child, in the mux.
    child: Option<MuxId>,
    pid: Option<Pid>,
    state: State,
    started: Instant,
    started_at: SystemTime,
    ready_after: Option<Duration>,
    io_error: Option<String>,
    /// The receiving half of the run's IPC channel, if it has one.
    channel: Option<ipc::Receiver>,
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
    mux: Mux,
    events: Sender<SupervisorEvent>,
    history: History,
    senders: Senders,
    /// A write end of the control pipe, duplicated for each IPC channel to poke.
    notify: OwnedFd,
    /// The channels of workers that exited, while a process they started keeps them open.
    draining: Vec<(WorkerId, ipc::Receiver)>,
    rolling: Option<Rolling>,
    shutting_down: bool,
    all_down_sent: bool,
}

impl Engine {
    fn new(
        mut groups: Vec<Workers>,
        events: Sender<SupervisorEvent>,
        history: History,
        senders: Senders,
        wake: OwnedFd,
        notify: OwnedFd,
    ) -> Engine {
        let mut slots = Vec::new();
        let now = Instant::now();
        for (gi, g) in groups.iter_mut().enumerate() {
            g.cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            g.cmd.process_group(ProcessGroup::New);
            g.cmd.parent_death_signal(Signal::KILL);
            // What the mux's stop does: this signal to the worker's group, SIGKILL after
            // the grace period.
            g.cmd.kill_signal(g.stop_signal).force_kill_after(g.grace);
            let name: Arc<str> = Arc::from(g.name.as_str());
            for index in 0..g.count {
                let id = WorkerId { group: name.clone(), index };
                history.lock().unwrap_or_else(|e| e.into_inner()).push((id.clone(), Vec::new()));
                slots.push(Slot {
                    id,
                    group: gi,
                    child: None,
                    pid: None,
                    state: State::Waiting { until: now },
                    started: now,
                    started_at: SystemTime::now(),
                    ready_after: None,
                    io_error: None,
                    channel: None,
                    attempt: 0,
                    window: RestartWindow::new(g.max_restarts, g.window),
                });
            }
        }
        let mut mux = Mux::new();
        mux.wake_on(wake);
        Engine {
            groups,
            slots,
            mux,
            events,
            history,
            senders,
            notify,
            draining: Vec::new(),
            rolling: None,
            shutting_down: false,
            all_down_sent: false,
        }
    }

    fn emit(&self, ev: SupervisorEvent) {
        let _ = self.events.send(ev);
    }

    fn run(&mut self, control: Receiver<Control>) {
        let mut backlog: Option<Control> = None;
        loop {
            let now = Instant::now();
            self.channels(now);
            self.timers(now);
            while let Some(msg) = backlog.take().or_else(|| control.try_recv().ok()) {
                if let Control::Shutdown(grace, reply) = msg {
                    let killed = self.shutdown(grace);
                    let _ = reply.send(killed);
                    return;
                }
                self.control(msg);
            }
            self.step_rolling();
            if !self.all_down_sent && self.slots.iter().all(|s| matches!(s.state, State::Down)) {
                self.all_down_sent = true;
                self.emit(SupervisorEvent::AllDown);
            }
            self.mux.rearm();
            let next = match self.next_timer() {
                Some(t) => self.mux.next_event_deadline(t),
                None => self.mux.next_event(),
            };
            match next {
                Ok(Some(ev)) => self.handle(ev),
                // A timer, or the control pipe.
                Ok(None) => {}
                Err(_) => {
                    // poll() itself failed (ENOMEM): retry shortly, serving the control
                    // channel meanwhile.
                    backlog = control.recv_timeout(Duration::from_millis(50)).ok();
                }
            }
        }
    }

    /// The earliest timer of any slot.
    fn next_timer(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::Starting { deadline } => deadline,
                State::Waiting { until } => Some(until),
                State::Ready | State::Stopping { .. } | State::Down => None,
            })
            .min()
    }

    fn slot_of(&self, id: MuxId) -> Option<usize> {
        self.slots.iter().position(|s| s.child == Some(id))
    }

    fn handle(&mut self, ev: MuxEvent) {
        let now = Instant::now();
        let Some(si) = self.slot_of(ev.id()) else { return };
        match ev {
            MuxEvent::Line { stream, line, .. } => self.line(si, stream, &line, now),
            MuxEvent::Output { stream, data, .. } => self.line(si, stream, &data, now),
            MuxEvent::Error { error, .. } => self.slots[si].io_error = Some(error.to_string()),
            MuxEvent::Exit { result, .. } => {
                let (status, usage, killed) = match &result {
                    Ok(out) => (Some(out.status), out.resource_usage(), false),
                    Err(e) => (e.exit_status(), e.resource_usage(), e.needed_kill()),
                };
                self.slots[si].child = None;
                // What it sent before it exited, then its channel goes.
                self.channel(si, now);
                self.finish_channel(si, now);
                self.senders.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.slots[si].id);
                let error = self.slots[si].io_error.take();
                self.finish_run(si, status, usage, killed, error, now);
            }
        }
    }

    fn line(&mut self, si: usize, stream: Stream, line: &[u8], now: Instant) {
        let slot = &self.slots[si];
        self.emit(SupervisorEvent::Line {
            worker: slot.id.clone(),
            stream,
            line: String::from_utf8_lossy(line).into_owned(),
        });
        if stream == Stream::Stdout && matches!(slot.state, State::Starting { .. }) {
            let g = &self.groups[slot.group];
            if matches!(&g.ready, Some(ReadyCheck::Line(r)) if r.matches(line)) {
                self.mark_ready(si, now);
            }
        }
    }

    /// Every IPC channel's news: its messages, and the ready handshake.
    fn channels(&mut self, now: Instant) {
        for si in 0..self.slots.len() {
            self.channel(si, now);
        }
        self.drain_finished();
    }

    /// Drops a run's channel; its reader thread, which may outlive it until the worker's
    /// end of the socket closes, no longer pokes the control pipe.
    fn drop_channel(&mut self, si: usize) {
        if let Some(rx) = self.slots[si].channel.take() {
            rx.notify_off();
        }
    }

    /// At a worker's exit: reads what it sent until its channel closes, so that its last
    /// messages come before its `Exited`. The kernel closed the worker's end when it died;
    /// if a process it started still holds it, what comes after a short wait is delivered
    /// from `draining`, and the channel goes when that process closes it.
    fn finish_channel(&mut self, si: usize, now: Instant) {
        let Some(rx) = self.slots[si].channel.take() else { return };
        let worker = self.slots[si].id.clone();
        let deadline = Instant::now() + EXIT_DRAIN;
        let open = loop {
            match rx.recv_deadline(deadline) {
                Ok(msg) => {
                    let worker = worker.clone();
                    self.emit(SupervisorEvent::Message { worker, data: msg.into_bytes() });
                }
                Err(ipc::RecvError::Timeout) => break true,
                Err(_) => break false,
            }
        };
        let ipc_check = matches!(self.groups[self.slots[si].group].ready, Some(ReadyCheck::Ipc));
        if ipc_check && matches!(self.slots[si].state, State::Starting { .. }) && rx.is_ready() {
            self.mark_ready(si, now);
        }
        if open {
            self.draining.push((worker, rx));
        } else {
            rx.notify_off();
        }
    }

    /// The messages of channels whose worker has exited, until they close.
    fn drain_finished(&mut self) {
        let mut k = 0;
        while k < self.draining.len() {
            let (worker, rx) = &self.draining[k];
            let closed = loop {
                match rx.try_recv() {
                    Ok(msg) => {
                        let worker = worker.clone();
                        self.emit(SupervisorEvent::Message { worker, data: msg.into_bytes() });
                    }
                    Err(ipc::RecvError::Empty) => break false,
                    Err(_) => break true,
                }
            };
            if closed {
                self.draining.swap_remove(k).1.notify_off();
            } else {
                k += 1;
            }
        }
    }

    fn channel(&mut self, si: usize, now: Instant) {
        let slot = &self.slots[si];
        let Some(rx) = &slot.channel else { return };
        while let Ok(msg) = rx.try_recv() {
            let worker = slot.id.clone();
            self.emit(SupervisorEvent::Message { worker, data: msg.into_bytes() });
        }
        let ipc_check = matches!(self.groups[slot.group].ready, Some(ReadyCheck::Ipc));
        if ipc_check && matches!(slot.state, State::Starting { .. }) && rx.is_ready() {
            self.mark_ready(si, now);
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

    /// Records a run that ended (or never started: `error`) and decides what comes next.
    fn finish_run(
        &mut self,
        si: usize,
        status: Option<ExitStatus>,
        usage: Option<ResourceUsage>,
        killed: bool,
        error: Option<String>,
        now: Instant,
    ) {
        let stopped = match self.slots[si].state {
            State::Stopping { reason } => Some(reason),
            _ => None,
        };
        let g = &self.groups[self.slots[si].group];
        let slot = &mut self.slots[si];
        let duration = now.saturating_duration_since(slot.started);
        if duration >= g.min_uptime {
            slot.attempt = 0;
        }
        let is_failure = stopped == Some(StopReason::NotReady)
            || error.is_some()
            || failed(status, &g.success_codes);
        let next = if self.shutting_down || stopped == Some(StopReason::Shutdown) {
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
            pid: slot.pid.take(),
            started_at: slot.started_at,
            started: slot.started,
            ready_after: slot.ready_after,
            duration,
            status,
            usage,
            stopped,
            killed,
            error,
            next,
        };
        slot.state = match next {
            // A delay too far to represent is "never".
            Next::Restart(d) => match now.checked_add(d) {
                Some(until) => State::Waiting { until },
                None => State::Down,
            },
            Next::GaveUp | Next::Stay => State::Down,
        };
        let worker = slot.id.clone();
        let restarts = slot.window.count();
        {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, runs)) = h.iter_mut().find(|(w, _)| *w == worker) {
                runs.push(run.clone());
            }
        }
        self.emit(SupervisorEvent::Exited { worker: worker.clone(), run });
        if next == Next::GaveUp {
            self.emit(SupervisorEvent::GaveUp { worker: worker.clone(), restarts });
        }
        let replacement_failed = self
            .rolling
            .as_ref()
            .is_some_and(|r| r.current == Some(si) && stopped != Some(StopReason::Rolling));
        if replacement_failed {
            if let Some(r) = self.rolling.take() {
                let _ = r.reply.send(Err(Error::new(
                    ErrorKind::Io,
                    Stage::Run,
                    format!("rolling restart stopped: {worker} exited before it was ready"),
                )));
            }
        }
        // A rolling restart starts the replacement at once.
        if next == Next::Restart(Duration::ZERO) && !self.shutting_down {
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
        slot.io_error = None;
        match self.mux.spawn(&mut g.cmd) {
            Ok(id) => {
                let pid = self.mux.child(id).map(Child::pid);
                slot.child = Some(id);
                slot.pid = pid;
                slot.state = State::Starting { deadline: now.checked_add(g.ready_timeout) };
                if let Some((tx, rx)) = self.mux.take_channel(id) {
                    match self.notify.try_clone() {
                        Ok(wake) => {
                            rx.notify_on(wake);
                            slot.channel = Some(rx);
                            let mut senders =
                                self.senders.lock().unwrap_or_else(|e| e.into_inner());
                            senders.insert(slot.id.clone(), tx);
                        }
                        // Without a way to hear from it, the worker cannot pass the check:
                        // the deadline stops it, with the reason in its record.
                        Err(e) => slot.io_error = Some(format!("watching the IPC channel: {e}")),
                    }
                }
                let has_check = g.ready.is_some();
                let worker = slot.id.clone();
                if let Some(pid) = pid {
                    self.emit(SupervisorEvent::Started { worker, pid });
                }
                if !has_check {
                    self.mark_ready(si, now);
                }
            }
            Err(e) => {
                slot.state = State::Starting { deadline: None };
                self.finish_run(si, None, None, false, Some(e.to_string()), now);
            }
        }
    }

    fn stop_worker(&mut self, si: usize, reason: StopReason) {
        let slot = &mut self.slots[si];
        match slot.child {
            Some(id) => {
                if let Err(e) = self.mux.stop(id) {
                    slot.io_error = Some(e.to_string());
                }
                slot.state = State::Stopping { reason };
            }
            None => slot.state = State::Down,
        }
    }

    fn timers(&mut self, now: Instant) {
        for si in 0..self.slots.len() {
            match self.slots[si].state {
                State::Waiting { until } if now >= until => self.start_worker(si, now),
                State::Starting { deadline: Some(d) } if now >= d => {
                    self.stop_worker(si, StopReason::NotReady)
                }
                _ => {}
            }
        }
    }

    fn control(&mut self, msg: Control) {
        match msg {
            Control::Rolling(reply) => {
                if self.rolling.is_some() {
                    let _ = reply.send(Err(Error::new(
                        ErrorKind::Io,
                        Stage::Run,
                        "a rolling restart is already under way",
                    )));
                    return;
                }
                let queue = (0..self.slots.len()).collect();
                self.rolling = Some(Rolling { queue, current: None, reply });
            }
            Control::Shutdown(..) => unreachable!("handled in run"),
        }
    }

    /// Stops every worker through the mux (one grace period for all), records their last
    /// runs, and returns those that needed `SIGKILL`.
    fn shutdown(&mut self, grace: Duration) -> Vec<WorkerId> {
        self.shutting_down = true;
        if let Some(r) = self.rolling.take() {
            let _ = r.reply.send(Err(Error::new(
                ErrorKind::Canceled,
                Stage::Run,
                "rolling restart interrupted by shutdown",
            )));
        }
        for slot in &mut self.slots {
            slot.state = match slot.state {
                State::Stopping { reason } => State::Stopping { reason },
                _ if slot.child.is_some() => State::Stopping { reason: StopReason::Shutdown },
                _ => State::Down,
            };
        }
        let ids: Vec<(MuxId, WorkerId)> =
            self.slots.iter().filter_map(|s| Some((s.child?, s.id.clone()))).collect();
        let report = self.mux.shutdown(grace);
        // Their exits (and last lines) are queued in the mux: record them.
        while let Ok(Some(ev)) = self.mux.try_next_event() {
            self.handle(ev);
        }
        // The control pipe closes with this thread: no channel may poke it afterwards.
        for si in 0..self.slots.len() {
            self.drop_channel(si);
        }
        self.drain_finished();
        for (_, rx) in self.draining.drain(..) {
            rx.notify_off();
        }
        self.senders.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let needed_kill = report.map(|r| r.needed_kill).unwrap_or_default();
        needed_kill
            .into_iter()
            .filter_map(|id| ids.iter().find(|(m, _)| *m == id).map(|(_, w)| w.clone()))
            .collect()
    }

    fn step_rolling(&mut self) {
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
            self.stop_worker(si, StopReason::Rolling);
        }
    }
}
