//! [`Mux`]: many children on one thread. Their output as lines or chunks tagged with the child,
//! their exits, in the order they happen, from the same `poll()` loop that serves a single
//! child's [`output`](crate::Command::output) (the engine in `capture.rs`; one child is the
//! one-child case).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::cancel::CancelHandle;
use crate::capture::{Core, Delivery, Output, Run, Stop, Stream, PAST_DEADLINE_ROUNDS};
use crate::child::{deadline_after, Child};
use crate::command::Command;
use crate::error::{Error, Result, Stage};
use crate::exec::MuxParts;
use crate::reaper::{Proc, SelfWait};

/// Which child of a [`Mux`] an [`Event`] is about: given out by [`Mux::spawn`], never reused
/// by the same `Mux` (nor by any `Mux` in the process).
///
/// # Examples
///
/// ```
/// let mut mux = offspring::Mux::new();
/// let a = mux.spawn(&mut offspring::exec("true"))?;
/// let b = mux.spawn(&mut offspring::exec("true"))?;
/// assert_ne!(a, b);
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MuxId(pub(crate) u64);

impl MuxId {
    /// The id as a number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for MuxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MuxId({})", self.0)
    }
}

impl fmt::Display for MuxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Something that happened to one of a [`Mux`]'s children, in the order it happened.
///
/// For one child, its output events come before its `Exit`; an `Exit` is its last event.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A line the child wrote, without its `\n` ([`Delivery::Lines`], the default). With
    /// [`stderr_to_stdout`](Command::stderr_to_stdout), both streams come as
    /// [`Stream::Stdout`].
    Line {
        /// The child.
        id: MuxId,
        /// The stream it came from.
        stream: Stream,
        /// The line's bytes, without `\n`.
        line: Vec<u8>,
    },
    /// Bytes the child wrote, as one read returned them ([`Delivery::Chunks`]).
    Output {
        /// The child.
        id: MuxId,
        /// The stream it came from.
        stream: Stream,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The child exited and its pipes are closed (or their drain timeout ran out): what
    /// [`Command::output`] would have returned for it. `Ok` with the status for any exit (a
    /// non-zero code is data); `Err` if it was stopped (its timeout, an output limit, a
    /// cancel, a [`shutdown`](Mux::shutdown)), with the status and the signals that were needed
    /// in the error. The [`Output`] holds the bytes with [`Delivery::Buffered`] and is empty
    /// otherwise (its [`bytes_seen`](Output::bytes_seen) still counts them).
    Exit {
        /// The child.
        id: MuxId,
        /// How it ended.
        result: Result<Output>,
    },
    /// Reading or writing one of the child's pipes failed. The child is then killed and its
    /// `Exit` follows.
    Error {
        /// The child.
        id: MuxId,
        /// What failed.
        error: Error,
    },
}

impl Event {
    /// The child the event is about.
    pub fn id(&self) -> MuxId {
        match self {
            Event::Line { id, .. }
            | Event::Output { id, .. }
            | Event::Exit { id, .. }
            | Event::Error { id, .. } => *id,
        }
    }
}

/// How many events a block of an [`EventQueue`] holds (about 5 KB).
const BLOCK_EVENTS: usize = 32;

/// The events a mux has ready: a queue in blocks of [`BLOCK_EVENTS`].
///
/// A caller that spawns a thousand children before it asks for an event finds a thousand exits
/// queued (collected as they happened, so that their pipes and pidfds are closed). In one
/// buffer that doubles as it grows, each growth copies the events into a new buffer and frees
/// the old one, whose pages stay resident in the heap: half as much again as the queue itself.
/// Blocks of a fixed size are never copied, and a block that empties is reused or freed.
#[derive(Default)]
pub(crate) struct EventQueue {
    blocks: VecDeque<VecDeque<Event>>,
    len: usize,
}

impl EventQueue {
    pub(crate) const fn new() -> EventQueue {
        EventQueue { blocks: VecDeque::new(), len: 0 }
    }

    pub(crate) fn push_back(&mut self, event: Event) {
        match self.blocks.back_mut() {
            Some(block) if block.len() < BLOCK_EVENTS => block.push_back(event),
            _ => {
                let mut block = VecDeque::with_capacity(BLOCK_EVENTS);
                block.push_back(event);
                self.blocks.push_back(block);
            }
        }
        self.len += 1;
    }

    pub(crate) fn pop_front(&mut self) -> Option<Event> {
        let front = self.blocks.front_mut()?;
        let event = front.pop_front()?;
        if front.is_empty() && self.blocks.len() > 1 {
            // The last block stays, empty, for the next events.
            self.blocks.pop_front();
        }
        self.len -= 1;
        Some(event)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The events in order, without taking them.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Event> {
        self.blocks.iter().flatten()
    }

    /// Takes every event, in order.
    #[cfg(test)]
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.pop_front())
    }
}

/// What a [`Mux::shutdown`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shutdown {
    /// The children that got the kill signal.
    pub signaled: Vec<MuxId>,
    /// Those of them that were still running when the grace period ended and were killed
    /// with `SIGKILL`.
    pub needed_kill: Vec<MuxId>,
}

/// One child of the mux, beside its [`Run`].
struct Meta {
    /// Keeps the reaper away from the pidfd this mux polls itself.
    _watch: SelfWait<Arc<Proc>>,
    merged: bool,
}

/// Every this many spawns without a round of the loop in between, a spawn also collects what has finished (see
/// [`Mux::insert`]).
const HOUSEKEEPING_EVERY: usize = 32;

/// How many events the channel of [`Mux::into_channel`] holds before its thread waits.
const CHANNEL_EVENTS: usize = 4096;

/// Ids are unique in the process, so that events of two muxes cannot be confused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Many children on one thread: their output as lines (or chunks, or buffered) tagged with the
/// child, and their exits, in the order they happen.
///
/// Every child gets what [`Command::output`] gives one: its [`input`](Command::input) fed,
/// its [`timeout`](Command::timeout) with the [kill signal](Command::kill_signal) and
/// [grace period](Command::force_kill_after), its [output limits](Command::max_buffer), its
/// [`stderr_to_stdout`](Command::stderr_to_stdout), its
/// [drain timeout](Command::drain_timeout). All of it is served by one `poll()` loop on the
/// thread that calls [`next_event`](Mux::next_event) and friends: no thread per child or per
/// pipe, and it sleeps until something happens. Children can be added at any time, also
/// between two events while others run.
///
/// Stdout and stderr are captured unless the command sets them otherwise (`Stdio::inherit()`,
/// a file...); stdin is `/dev/null` unless the command has input.
///
/// For a [`Receiver`] to `select!` on, see [`into_channel`](Mux::into_channel).
///
/// # Examples
///
/// ```
/// use offspring::{exec, Event, Mux};
/// use std::collections::BTreeMap;
///
/// let mut mux = Mux::new();
/// let mut names = BTreeMap::new();
/// for name in ["alpha", "beta", "gamma"] {
///     names.insert(mux.spawn(&mut exec(format!("echo {name}; echo done >&2")))?, name);
/// }
/// let mut lines = Vec::new();
/// let mut exits = 0;
/// for event in &mut mux {
///     match event? {
///         Event::Line { id, line, .. } => lines.push(format!("{}: {}", names[&id], String::from_utf8_lossy(&line))),
///         Event::Exit { result, .. } => {
///             assert!(result?.status.success());
///             exits += 1;
///         }
///         _ => {}
///     }
/// }
/// assert_eq!(exits, 3);
/// lines.sort();
/// assert_eq!(lines[..2], ["alpha: alpha", "alpha: done"]);
/// # Ok::<(), offspring::Error>(())
/// ```
///
/// # Drop behavior
///
/// Dropping a `Mux` drops its children's [`Child`] handles, with their drop policies (by
/// default they run on and the reaper collects them; see
/// [`kill_on_drop`](Command::kill_on_drop)), and closes the parent's ends of their pipes. Call
/// [`shutdown`](Mux::shutdown) first to stop them.
#[doc(alias = "Group")]
#[doc(alias = "Poller")]
#[doc(alias = "fan-out")]
pub struct Mux {
    core: Core,
    runs: Vec<Option<Run<'static, Child>>>,
    meta: Vec<Option<Meta>>,
    free: Vec<usize>,
    live: usize,
    events: EventQueue,
    delivery: Delivery,
    cancel: Option<CancelHandle>,
    cancel_seen: bool,
    waker: Option<Waker>,
    failed: Vec<(usize, Error)>,
    shutdown: Option<Vec<MuxId>>,
    spawned_since_round: usize,
}

impl Default for Mux {
    fn default() -> Mux {
        Mux::new()
    }
}

impl Mux {
    /// An empty mux that delivers output as [`Delivery::Lines`].
    pub fn new() -> Mux {
        Mux {
            core: Core::default(),
            runs: Vec::new(),
            meta: Vec::new(),
            free: Vec::new(),
            live: 0,
            events: EventQueue::new(),
            delivery: Delivery::Lines,
            cancel: None,
            cancel_seen: false,
            waker: None,
            failed: Vec::new(),
            shutdown: None,
            spawned_since_round: 0,
        }
    }

    /// How the output of children spawned from now on is delivered (default
    /// [`Delivery::Lines`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{exec, Delivery, Event, Mux};
    /// let mut mux = Mux::new();
    /// mux.delivery(Delivery::Buffered);
    /// mux.spawn(&mut exec("echo one; echo two"))?;
    /// match mux.next_event()?.unwrap() {
    ///     Event::Exit { result, .. } => assert_eq!(result?.stdout, b"one\ntwo\n"),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn delivery(&mut self, delivery: Delivery) -> &mut Mux {
        self.delivery = delivery;
        self
    }

    /// Stops every child (as a [`Command::cancel_with`] run is stopped: kill signal, grace,
    /// `SIGKILL`) once `handle` is cancelled, from any thread; their exits report
    /// [`ErrorKind::Canceled`](crate::ErrorKind::Canceled).
    pub fn cancel_with(&mut self, handle: &CancelHandle) -> &mut Mux {
        self.cancel = Some(handle.clone());
        self.cancel_seen = false;
        self
    }

    /// Spawns `cmd` and adds it: its output and exit come as events from now on.
    ///
    /// The command's capture options apply to this child (see the type's docs). The command
    /// can be spawned again. Its [`cancel_with`](Command::cancel_with) handle stops this child;
    /// [`Mux::cancel_with`] stops them all.
    ///
    /// # Errors
    ///
    /// What [`Command::spawn`] returns; nothing is added then.
    pub fn spawn(&mut self, cmd: &mut Command) -> Result<MuxId> {
        let delivery = self.delivery;
        self.spawn_with(cmd, delivery)
    }

    /// As [`spawn`](Mux::spawn), with this child's output delivered as `delivery`.
    pub fn spawn_with(&mut self, cmd: &mut Command, delivery: Delivery) -> Result<MuxId> {
        let parts = cmd.spawn_for_mux()?;
        let id = MuxId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        self.insert(id, parts, delivery)
    }

    fn insert(&mut self, id: MuxId, parts: MuxParts, delivery: Delivery) -> Result<MuxId> {
        let MuxParts { spawned, input, policy, merged, cancel } = parts;
        let child = spawned.child;
        let watch = child.self_wait_owned();
        let mut run = Run::new(
            id,
            child,
            spawned.stdin,
            Cow::Owned(input),
            spawned.stdout,
            spawned.stderr,
            policy,
            delivery,
        )?;
        if let Err(e) = run.set_cancel(cancel) {
            let _ = crate::stop::stop_command(run.child(), crate::Signal::KILL);
            return Err(e);
        }
        let meta = Meta { _watch: watch, merged };
        let k = match self.free.pop() {
            Some(k) => k,
            None => {
                self.runs.push(None);
                self.meta.push(None);
                self.runs.len() - 1
            }
        };
        self.runs[k] = Some(run);
        self.meta[k] = Some(meta);
        self.live += 1;
        self.spawned_since_round += 1;
        if self.spawned_since_round >= HOUSEKEEPING_EVERY {
            // A caller that spawns many children before asking for events would otherwise keep
            // every finished one (its pipes, its pidfd) until then, and each spawn copies a
            // larger fd table. One non-blocking look collects what has finished; its events
            // wait in the queue. A failure of poll itself shows again at the next event call.
            let _ = self.round(Some(Instant::now()));
        }
        Ok(id)
    }

    /// How many children have not had their [`Event::Exit`] queued yet.
    pub fn len(&self) -> usize {
        self.live
    }

    /// `true` if no child is left to report an exit (events may still be queued).
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn find(&self, id: MuxId) -> Option<&Run<'static, Child>> {
        self.runs.iter().flatten().find(|r| r.id == id)
    }

    /// The child `id`, until its exit has been queued.
    pub fn child(&self, id: MuxId) -> Option<&Child> {
        self.find(id).map(|r| r.child())
    }

    /// Takes the parent's half of child `id`'s IPC channel ([`Child::take_channel`]).
    pub(crate) fn take_channel(
        &mut self,
        id: MuxId,
    ) -> Option<(crate::ipc::Sender, crate::ipc::Receiver)> {
        self.runs.iter_mut().flatten().find(|r| r.id == id)?.child_mut().take_channel()
    }

    /// Starts stopping child `id` as its timeout would: its kill signal, then `SIGKILL` after
    /// its grace period. Its `Exit` reports [`ErrorKind::Canceled`](crate::ErrorKind::Canceled).
    /// Does nothing if it is already stopping or gone.
    pub fn stop(&mut self, id: MuxId) -> Result<()> {
        let now = Instant::now();
        if let Some(run) = self.runs.iter_mut().flatten().find(|r| r.id == id) {
            if run.stop.is_none() && run.status().is_none() {
                run.begin_stop(Stop::Canceled, now)?;
            }
        }
        Ok(())
    }

    /// Signals every child, waits up to one `grace` period for all of them together, then
    /// kills the rest with `SIGKILL`, and reports which needed it. Each child gets its own
    /// [kill signal](Command::kill_signal) (`SIGTERM` by default), or its process group when
    /// it leads one.
    ///
    /// A child already being stopped (its timeout, [`stop`](Mux::stop)) is not signalled again,
    /// but gets `SIGKILL` at the end of this grace period if its own ends later.
    ///
    /// Returns when every child has exited; their `Exit` events (with
    /// [`ErrorKind::Canceled`](crate::ErrorKind::Canceled)) and any output before them stay
    /// queued for [`next_event`](Mux::next_event).
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Io`](crate::ErrorKind::Io) error if polling fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{exec, Mux};
    /// use std::time::Duration;
    /// let mut mux = Mux::new();
    /// let polite = mux.spawn(&mut exec("exec sleep 30"))?;
    /// let stubborn = mux.spawn(&mut exec("trap '' TERM; echo ready; while :; do sleep 1; done"))?;
    /// mux.next_event()?; // "ready": the trap is set
    /// let report = mux.shutdown(Duration::from_millis(300))?;
    /// assert_eq!(report.signaled.len(), 2);
    /// assert_eq!(report.needed_kill, [stubborn]);
    /// assert!(mux.is_empty());
    /// # let _ = polite;
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "killall")]
    pub fn shutdown(&mut self, grace: Duration) -> Result<Shutdown> {
        let now = Instant::now();
        let mut signaled = Vec::new();
        let mut failed = Vec::new();
        for run in self.runs.iter_mut().flatten() {
            if run.status().is_some() {
                continue;
            }
            match run.stop_within(Stop::Canceled, now, grace) {
                Ok(true) => signaled.push(run.id),
                Ok(false) => {}
                Err(e) => failed.push((run.id, e)),
            }
        }
        for (id, error) in failed {
            self.events.push_back(Event::Error { id, error });
        }
        self.shutdown = Some(Vec::new());
        let result = (|| {
            while self.live > 0 {
                self.round(None)?;
            }
            Ok(())
        })();
        let needed_kill = self.shutdown.take().unwrap_or_default();
        result.map(|()| Shutdown { signaled, needed_kill })
    }

    /// The next event, waiting as long as it takes; `Ok(None)` once every child has
    /// exited and every event has been handed out.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Io`](crate::ErrorKind::Io) error if `poll()` itself fails (a child's
    /// own I/O errors come as [`Event::Error`]).
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        self.next_event_until(None)
    }

    /// The next event if one is ready now (after one non-blocking look at the children).
    pub fn try_next_event(&mut self) -> Result<Option<Event>> {
        self.next_event_until(Some(Instant::now()))
    }

    /// As [`next_event`](Mux::next_event), giving up after `timeout` with `Ok(None)`; tell the
    /// cases apart with [`is_empty`](Mux::is_empty).
    pub fn next_event_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        self.next_event_until(Some(deadline_after(timeout)))
    }

    /// As [`next_event`](Mux::next_event), giving up at `deadline` with `Ok(None)`.
    pub fn next_event_deadline(&mut self, deadline: Instant) -> Result<Option<Event>> {
        self.next_event_until(Some(deadline))
    }

    fn next_event_until(&mut self, deadline: Option<Instant>) -> Result<Option<Event>> {
        let mut past_rounds = 0;
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(Some(ev));
            }
            if self.live == 0 && self.waker.is_none() {
                return Ok(None);
            }
            let now = Instant::now();
            let past = deadline.is_some_and(|d| now >= d);
            let progress = self.round(if past { Some(now) } else { deadline })?;
            if !self.events.is_empty() {
                continue;
            }
            if self.waker.as_ref().is_some_and(|w| w.woken) {
                // The channel form: let the driver look at its inbox.
                return Ok(None);
            }
            if past {
                // A deadline that has passed still gets a few non-blocking rounds while they
                // make progress, so that `try_next_event` sees what is ready.
                past_rounds += 1;
                if !progress || past_rounds >= PAST_DEADLINE_ROUNDS {
                    return Ok(None);
                }
            }
        }
    }

    /// One round of the loop, then the exits of the runs it finished. Returns whether any fd
    /// was ready.
    fn round(&mut self, give_up: Option<Instant>) -> Result<bool> {
        self.spawned_since_round = 0;
        let canceled = !self.cancel_seen && self.cancel.as_ref().is_some_and(|c| c.is_canceled());
        let cancel_fd = match &self.cancel {
            Some(c) if !self.cancel_seen => Some(
                c.wake_fd().map_err(|e| Error::os(Stage::Setup, e, "creating the cancel pipe"))?,
            ),
            _ => None,
        };
        let waker_fd = self.waker.as_ref().map(|w| w.rd.as_fd());
        let round = self.core.round(
            &mut self.runs,
            [cancel_fd, waker_fd],
            canceled,
            give_up,
            &mut self.events,
            &mut self.failed,
        )?;
        if canceled || round.woken[0] {
            self.cancel_seen = true;
            let now = Instant::now();
            for run in self.runs.iter_mut().flatten() {
                if run.stop.is_none() && run.status().is_none() {
                    if let Err(error) = run.begin_stop(Stop::Canceled, now) {
                        self.events.push_back(Event::Error { id: run.id, error });
                    }
                }
            }
        }
        if round.woken[1] {
            if let Some(w) = &mut self.waker {
                w.drain();
            }
        }
        for (k, error) in self.failed.drain(..) {
            if let Some(run) = &self.runs[k] {
                self.events.push_back(Event::Error { id: run.id, error });
            }
        }
        for k in 0..self.runs.len() {
            if !self.runs[k].as_ref().is_some_and(|r| r.is_done()) {
                continue;
            }
            let mut run = self.runs[k].take().expect("checked above");
            let meta = self.meta[k].take().expect("a run has its meta");
            self.free.push(k);
            self.live -= 1;
            let fin = run.finish();
            if let Some(killed) = &mut self.shutdown {
                if fin.needed_kill {
                    killed.push(run.id);
                }
            }
            let Meta { _watch, merged } = meta;
            let result = crate::exec::judge(fin, false, merged, run.child().argv());
            self.events.push_back(Event::Exit { id: run.id, result });
            // The watch guard goes first (the child is collected: the reaper forgets it),
            // then the child handle.
            drop(_watch);
            drop(run);
        }
        Ok(round.progress)
    }

    /// Makes `next_event*` return `Ok(None)` as soon as `rd` is readable (the mux drains it),
    /// so that a driver that owns the mux on its own thread can also serve other inputs (the
    /// supervisor's control pipe). Call [`rearm`](Mux::rearm) before each wait.
    pub(crate) fn wake_on(&mut self, rd: OwnedFd) {
        self.waker = Some(Waker { rd, woken: false });
    }

    /// Clears the "woken" mark left by the [`wake_on`](Mux::wake_on) pipe.
    pub(crate) fn rearm(&mut self) {
        if let Some(w) = &mut self.waker {
            w.woken = false;
        }
    }

    /// Moves the mux to a thread of its own and returns its events as a [`Receiver`], for
    /// `select!` over children, timers and other channels; and a [`MuxSender`] to add children
    /// while it runs.
    ///
    /// The events are produced by that thread, named `offspring-mux`, which runs this mux's
    /// loop and sends each event as it happens. The channel holds up to 4,096 events: while it
    /// is full, the thread waits for the receiver, and children that keep writing wait on
    /// their full pipes (back-pressure, as a pipe gives it; their timers are looked at again
    /// once the thread can send). It ends once every [`MuxSender`] is gone and
    /// every child has exited (the channel then disconnects), or when the receiver is dropped
    /// (its children are then shut down with a one-second grace period).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) if its wake-up pipe or thread cannot be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use crossbeam_channel::{select, after};
    /// use offspring::{exec, Event, Mux};
    /// use std::time::Duration;
    /// let (tx, rx) = Mux::new().into_channel()?;
    /// tx.spawn(&mut exec("echo from the thread"))?;
    /// drop(tx); // no more children: the channel ends after the last exit
    /// let mut lines = Vec::new();
    /// loop {
    ///     select! {
    ///         recv(rx) -> ev => match ev {
    ///             Ok(Event::Line { line, .. }) => lines.push(line),
    ///             Ok(_) => {}
    ///             Err(_) => break, // disconnected: all done
    ///         },
    ///         recv(after(Duration::from_secs(30))) -> _ => panic!("too slow"),
    ///     }
    /// }
    /// assert_eq!(lines, [b"from the thread".to_vec()]);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn into_channel(mut self) -> Result<(MuxSender, Receiver<Event>)> {
        let setup = |e: std::io::Error| Error::os(Stage::Setup, e, "starting the mux thread");
        let (rd, wr) = crate::sys::pipe::pipe().map_err(setup)?;
        crate::sys::pipe::set_nonblocking(&rd, true).map_err(setup)?;
        crate::sys::pipe::set_nonblocking(&wr, true).map_err(setup)?;
        self.waker = Some(Waker { rd, woken: false });
        let (add_tx, add_rx) = crossbeam_channel::unbounded::<(MuxId, MuxParts, Delivery)>();
        let (ev_tx, ev_rx) = crossbeam_channel::bounded(CHANNEL_EVENTS);
        let delivery = self.delivery;
        crate::sys::signal::spawn_thread_without_signals(
            std::thread::Builder::new().name("offspring-mux".into()),
            move || self.drive(add_rx, ev_tx),
        )
        .map_err(setup)?;
        let sender = MuxSender { inner: Arc::new(SenderInner { tx: add_tx, wake: wr }), delivery };
        Ok((sender, ev_rx))
    }

    /// The loop of the [`into_channel`](Mux::into_channel) thread.
    fn drive(mut self, adds: Receiver<(MuxId, MuxParts, Delivery)>, events: Sender<Event>) {
        let mut open = true;
        loop {
            if open {
                loop {
                    match adds.try_recv() {
                        Ok((id, parts, delivery)) => {
                            if let Err(error) = self.insert(id, parts, delivery) {
                                self.events.push_back(Event::Error { id, error });
                            }
                        }
                        Err(crossbeam_channel::TryRecvError::Empty) => break,
                        Err(crossbeam_channel::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
            }
            if !open && self.live == 0 && self.events.is_empty() {
                return;
            }
            if let Some(w) = &mut self.waker {
                w.woken = false;
                if !open {
                    // Nobody can add any more: stop watching the wake pipe.
                    self.waker = None;
                }
            }
            match self.next_event() {
                Ok(Some(ev)) => {
                    if events.send(ev).is_err() {
                        let _ = self.shutdown(Duration::from_secs(1));
                        return;
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    let _ = self.shutdown(Duration::ZERO);
                    return;
                }
            }
        }
    }
}

impl Iterator for Mux {
    type Item = Result<Event>;

    /// [`next_event`](Mux::next_event), as an iterator: ends once every child has exited and
    /// every event has been handed out.
    fn next(&mut self) -> Option<Result<Event>> {
        self.next_event().transpose()
    }
}

impl fmt::Debug for Mux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mux")
            .field("live", &self.live)
            .field("queued", &self.events.len())
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// The read end of the pipe that wakes a mux thread when a child is added.
struct Waker {
    rd: OwnedFd,
    woken: bool,
}

impl Waker {
    fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(rustix::io::read(&self.rd, &mut buf), Ok(n) if n > 0) {}
        self.woken = true;
    }
}

/// The fields drop in order: the channel first, then the wake pipe's write end, whose closing
/// wakes the thread (`POLLHUP`) to find the channel disconnected.
struct SenderInner {
    tx: Sender<(MuxId, MuxParts, Delivery)>,
    wake: OwnedFd,
}

/// Adds children to a mux that runs on its own thread ([`Mux::into_channel`]). Cheap to clone.
///
/// # Drop behavior
///
/// Once every clone is gone, the mux thread delivers the events of the children it has, and
/// ends (disconnecting the event channel) when the last of them has exited.
#[derive(Clone)]
pub struct MuxSender {
    inner: Arc<SenderInner>,
    delivery: Delivery,
}

impl MuxSender {
    /// Spawns `cmd` on the calling thread and hands it to the mux thread, which delivers its
    /// events from now on.
    ///
    /// # Errors
    ///
    /// What [`Command::spawn`] returns; nothing is added then. If the mux thread is gone (its
    /// receiver was dropped), the child is killed and an
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) error says so.
    pub fn spawn(&self, cmd: &mut Command) -> Result<MuxId> {
        self.spawn_with(cmd, self.delivery)
    }

    /// As [`spawn`](MuxSender::spawn), with this child's output delivered as `delivery`.
    pub fn spawn_with(&self, cmd: &mut Command, delivery: Delivery) -> Result<MuxId> {
        let parts = cmd.spawn_for_mux()?;
        let id = MuxId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        if let Err(e) = self.inner.tx.send((id, parts, delivery)) {
            let (_, parts, _) = e.0;
            let _ = crate::stop::stop_command(&parts.spawned.child, crate::Signal::KILL);
            return Err(Error::new(
                crate::ErrorKind::Io,
                Stage::Run,
                "the mux thread has ended (its event receiver was dropped)",
            )
            .with_argv(parts.spawned.child.argv()));
        }
        // One byte in a non-blocking pipe: a full pipe already means "wake up".
        let _ = rustix::io::write(&self.inner.wake, &[1]);
        Ok(id)
    }
}

impl fmt::Debug for MuxSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxSender").field("delivery", &self.delivery).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mux reaps its children itself, so the reaper does not watch them while the mux has
    /// them; a mux dropped with children uncollected, running or exited, hands them to the
    /// reaper, which collects them: no zombie.
    #[test]
    fn children_a_dropped_mux_had_not_collected_are_still_reaped() {
        let mut mux = Mux::new();
        let running = mux.spawn(&mut crate::exec("sleep 0.2")).unwrap();
        let exited = mux.spawn(&mut crate::exec("exit 0")).unwrap();
        let pids = [running, exited].map(|id| mux.child(id).unwrap().pid());
        if let Some(fd) = mux.child(exited).unwrap().pidfd() {
            // A zombie now, not reaped (`WNOWAIT`).
            crate::sys::wait::pidfd_wait_exited(fd).unwrap();
        }
        drop(mux);
        let deadline = Instant::now() + Duration::from_secs(60);
        for pid in pids {
            while crate::stop::is_our_child(pid) {
                assert!(Instant::now() < deadline, "child {pid:?} was never reaped");
                std::thread::yield_now();
            }
        }
    }

    fn event(n: u64) -> Event {
        Event::Error { id: MuxId(n), error: Error::invalid_input("test") }
    }

    /// Events come out in the order they went in, across block boundaries, with pushes and
    /// pops interleaved; an emptied queue keeps one block for the next events and no more.
    #[test]
    fn the_event_queue_is_first_in_first_out_across_blocks() {
        let mut q = EventQueue::new();
        assert!(q.pop_front().is_none());
        let (mut pushed, mut popped) = (0, 0);
        for round in 0..5 {
            for _ in 0..(BLOCK_EVENTS * 3 + round) {
                q.push_back(event(pushed));
                pushed += 1;
            }
            assert_eq!(q.len(), (pushed - popped) as usize);
            assert_eq!(q.iter().next().map(Event::id), Some(MuxId(popped)));
            // Take a little over half each round, so that a block is both pushed to and
            // popped from.
            for _ in 0..(pushed - popped) / 2 + 1 {
                assert_eq!(q.pop_front().map(|e| e.id()), Some(MuxId(popped)));
                popped += 1;
            }
        }
        let rest: Vec<u64> = q.drain().map(|e| e.id().get()).collect();
        assert_eq!(rest, (popped..pushed).collect::<Vec<_>>());
        assert!(q.is_empty() && q.pop_front().is_none());
        assert_eq!(q.blocks.len(), 1);
        q.push_back(event(pushed));
        assert_eq!(q.pop_front().map(|e| e.id()), Some(MuxId(pushed)));
    }
}
