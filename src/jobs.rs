//! [`Jobs`]: a queue of commands with at most N children alive at once (`xargs -P`,
//! `make -j`), each with its own capture options, results as they finish; built on [`Mux`].

use std::collections::{HashMap, VecDeque};
use std::fmt;

use crate::cancel::CancelHandle;
use crate::capture::{Delivery, Output};
use crate::command::Command;
use crate::error::Result;
use crate::mux::{Event, Mux, MuxId};

/// Runs a queue of commands with at most `limit` children alive at once, and hands out each
/// result as it finishes: `xargs -P`, `make -j`.
///
/// Each command runs as [`Command::output`] runs it, with its own capture options (its
/// [`timeout`](Command::timeout), limits, input); a result is what `output()` would have
/// returned, with the command's index in the queue. All of it runs on the thread that iterates,
/// on one [`Mux`]. The queue is read lazily, so it can be endless.
///
/// To stop early: [`fail_fast`](Jobs::fail_fast) stops at the first failure (a spawn error, a
/// status other than success, or a stopped run), a [`CancelHandle`] stops from anywhere. Then
/// nothing more is started, the running children are stopped (kill signal, grace, `SIGKILL`)
/// and their results (errors with [`ErrorKind::Canceled`](crate::ErrorKind::Canceled)) are
/// still handed out.
///
/// # Examples
///
/// ```
/// use offspring::{exec, Jobs};
/// use std::time::Duration;
///
/// let cmds = (0..6).map(|i| {
///     let mut cmd = exec(format!("sleep 0.0{i}; echo {i}"));
///     cmd.timeout(Duration::from_secs(30));
///     cmd
/// });
/// let mut done = Vec::new();
/// for (index, result) in Jobs::new(3).run(cmds) {
///     assert_eq!(result?.stdout, format!("{index}\n").as_bytes());
///     done.push(index);
/// }
/// done.sort();
/// assert_eq!(done, [0, 1, 2, 3, 4, 5]);
/// # Ok::<(), offspring::Error>(())
/// ```
#[doc(alias = "xargs")]
#[doc(alias = "make -j")]
#[doc(alias = "Pool")]
#[derive(Clone, Debug)]
pub struct Jobs {
    limit: usize,
    fail_fast: bool,
    cancel: Option<CancelHandle>,
}

impl Jobs {
    /// At most `limit` children at once (`0` counts as `1`).
    pub fn new(limit: usize) -> Jobs {
        Jobs { limit: limit.max(1), fail_fast: false, cancel: None }
    }

    /// Stops at the first failure: a spawn error, a status other than success, a timeout, an
    /// output limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{exec, Jobs};
    /// let cmds = vec![exec("exit 1"), exec("sleep 30"), exec("echo never")];
    /// let results: Vec<_> = Jobs::new(2).fail_fast(true).run(cmds).collect();
    /// // The failure, and `sleep 30` stopped; `echo never` never started.
    /// assert_eq!(results.len(), 2);
    /// assert!(results.iter().all(|(i, _)| *i < 2));
    /// ```
    pub fn fail_fast(&mut self, yes: bool) -> &mut Jobs {
        self.fail_fast = yes;
        self
    }

    /// Stops when `handle` is cancelled, from any thread.
    pub fn cancel_with(&mut self, handle: &CancelHandle) -> &mut Jobs {
        self.cancel = Some(handle.clone());
        self
    }

    /// Starts running `commands`; iterate the result to drive them and get each
    /// `(index, result)` as it finishes.
    pub fn run<I: IntoIterator<Item = Command>>(&self, commands: I) -> JobResults<I::IntoIter> {
        let mut mux = Mux::new();
        mux.delivery(Delivery::Buffered);
        if let Some(c) = &self.cancel {
            mux.cancel_with(c);
        }
        JobResults {
            mux,
            queue: commands.into_iter(),
            exhausted: false,
            next_index: 0,
            running: HashMap::new(),
            ready: VecDeque::new(),
            stopping: false,
            jobs: self.clone(),
        }
    }
}

/// The results of [`Jobs::run`], as they finish: `(index in the queue, what
/// [`Command::output`] would have returned)`.
///
/// # Drop behavior
///
/// Dropping it before the end stops the running children (their kill signal, a one-second
/// grace, `SIGKILL`) and starts nothing more.
pub struct JobResults<I> {
    mux: Mux,
    queue: I,
    exhausted: bool,
    next_index: usize,
    running: HashMap<MuxId, usize>,
    ready: VecDeque<(usize, Result<Output>)>,
    stopping: bool,
    jobs: Jobs,
}

impl<I> JobResults<I> {
    /// How many children run now.
    pub fn running(&self) -> usize {
        self.mux.len()
    }

    /// Starts nothing more and stops the running children; their results still come.
    pub fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        let ids: Vec<MuxId> = self.running.keys().copied().collect();
        for id in ids {
            if let Err(e) = self.mux.stop(id) {
                if let Some(index) = self.running.remove(&id) {
                    self.ready.push_back((index, Err(e)));
                }
            }
        }
    }

    fn failed(result: &Result<Output>) -> bool {
        !matches!(result, Ok(out) if out.status.success())
    }
}

impl<I: Iterator<Item = Command>> JobResults<I> {
    fn fill(&mut self) {
        while !self.stopping && !self.exhausted && self.mux.len() < self.jobs.limit {
            if self.jobs.cancel.as_ref().is_some_and(CancelHandle::is_canceled) {
                self.stop();
                break;
            }
            let Some(mut cmd) = self.queue.next() else {
                self.exhausted = true;
                break;
            };
            let index = self.next_index;
            self.next_index += 1;
            match self.mux.spawn(&mut cmd) {
                Ok(id) => {
                    self.running.insert(id, index);
                }
                Err(e) => {
                    self.ready.push_back((index, Err(e)));
                    if self.jobs.fail_fast {
                        self.stop();
                    }
                }
            }
        }
    }
}

impl<I: Iterator<Item = Command>> Iterator for JobResults<I> {
    type Item = (usize, Result<Output>);

    fn next(&mut self) -> Option<(usize, Result<Output>)> {
        loop {
            self.fill();
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.running.is_empty() {
                // Every started child's result is out (the mux may have queued several exits
                // in one round: they are handed out before this).
                return None;
            }
            match self.mux.next_event() {
                Ok(Some(Event::Exit { id, result })) => {
                    let Some(index) = self.running.remove(&id) else { continue };
                    if self.jobs.fail_fast && Self::failed(&result) {
                        self.stop();
                    }
                    return Some((index, result));
                }
                Ok(Some(Event::Error { id, error })) => {
                    // The child is killed; its exit follows. Keep the first error as its result.
                    if let Some(&index) = self.running.get(&id) {
                        self.ready.push_back((index, Err(error)));
                        self.running.remove(&id);
                        if self.jobs.fail_fast {
                            self.stop();
                        }
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => self.running.clear(),
                Err(e) => {
                    // The loop itself failed: stop everything, report it once.
                    let _ = self.mux.shutdown(std::time::Duration::ZERO);
                    self.stopping = true;
                    let index = self.running.values().copied().min().unwrap_or(self.next_index);
                    self.running.clear();
                    return Some((index, Err(e)));
                }
            }
        }
    }
}

impl<I> Drop for JobResults<I> {
    fn drop(&mut self) {
        if !self.mux.is_empty() {
            let _ = self.mux.shutdown(std::time::Duration::from_secs(1));
        }
    }
}

impl<I> fmt::Debug for JobResults<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobResults")
            .field("running", &self.mux.len())
            .field("started", &self.next_index)
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}
