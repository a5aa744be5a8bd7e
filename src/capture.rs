//! The capture engine: one `poll()` loop that feeds a child's stdin and drains its stdout and
//! stderr at the same time, so that no child can deadlock its parent; and what it produces,
//! [`Output`].
//!
//! # Why one loop
//!
//! A child blocks when a pipe it writes to is full, and the parent blocks when it waits on
//! one pipe while the child is stuck writing to another (std's `output()` avoids this for
//! stdout and stderr but cannot feed stdin at the same time; many programs that write stdin
//! then read stdout deadlock on large inputs). Here every pipe is non-blocking and one
//! `poll()` watches all of them, plus the child's pidfd (so the loop learns at once when the
//! child exits) and a [`CancelHandle`](crate::CancelHandle)'s wake fd. No helper thread per
//! pipe, as std's `read2`, CPython's `communicate` (on POSIX) and Go's `exec` also avoid.
//!
//! # Stopping
//!
//! A timeout, a cancel or an output limit (with [`Overflow::Kill`]) starts the same
//! sequence: stdin is closed, the kill signal goes to the child (or its whole process group
//! when it leads one), and if the child still runs after the grace period, `SIGKILL`
//! follows. Draining continues meanwhile, so the output written before the stop is kept.
//!
//! # After the child exits
//!
//! A grandchild may have inherited the pipes and keep them open for hours. Once the child
//! has exited, the loop drains for at most the drain timeout (Go's `WaitDelay`), takes what
//! the pipes hold at that moment, and returns.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use crate::cancel::CancelHandle;
use crate::child::{deadline_after, Child};
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::exit_status::ExitStatus;
use crate::mux::{Event, EventQueue, MuxId};
use crate::signal::Signal;
use crate::stdio::ChildStdin;

/// One of the child's two output streams.
///
/// # Examples
///
/// ```
/// use offspring::{Command, Stream};
/// let out = offspring::exec("printf abc; printf de >&2").output()?;
/// assert_eq!((out.bytes_seen(Stream::Stdout), out.bytes_seen(Stream::Stderr)), (3, 2));
/// assert_eq!(Stream::Stderr.to_string(), "stderr");
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The child's stdout (fd 1).
    Stdout,
    /// The child's stderr (fd 2).
    Stderr,
}

impl Stream {
    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn from_index(i: usize) -> Stream {
        if i == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// What happens when a stream goes over its [`max_buffer`](crate::Command::max_buffer) limit.
///
/// # Examples
///
/// ```
/// use offspring::{Command, ErrorKind, Overflow};
/// let mut cmd = offspring::exec("printf 0123456789");
/// cmd.max_buffer(4);
/// assert_eq!(cmd.run().unwrap_err().kind(), ErrorKind::OutputLimit); // Overflow::Kill
/// let out = cmd.on_overflow(Overflow::Truncate).run()?;
/// assert_eq!(out.stdout, b"0123");
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// Stop the child (as a timeout does) and fail with
    /// [`ErrorKind::OutputLimit`], keeping the first `limit` bytes: Node's `maxBuffer`.
    #[default]
    Kill,
    /// Keep the first `limit` bytes, discard the rest, and keep draining so the child runs to
    /// its end: the run succeeds, and [`Output::is_truncated`] says that bytes were dropped.
    Truncate,
}

/// What a finished child printed, and how it ended: the result of
/// [`Command::output`](crate::Command::output), [`run`](crate::Command::run) and
/// [`Communication::wait`].
///
/// # Examples
///
/// ```
/// use offspring::{Command, Stream};
/// let out = Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]).output()?;
/// assert_eq!(out.status.code(), Some(3));
/// assert_eq!(out.stdout, b"out\n");
/// assert_eq!(out.stderr_str()?, "err\n");
/// assert_eq!(out.bytes_seen(Stream::Stdout), 4);
/// assert!(!out.is_truncated());
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// How the child ended.
    pub status: ExitStatus,
    /// What the child wrote to stdout (everything, or the first `max_buffer` bytes with
    /// [`Overflow::Truncate`]). With [`stderr_to_stdout`](crate::Command::stderr_to_stdout),
    /// both streams interleaved as the child wrote them.
    pub stdout: Vec<u8>,
    /// What the child wrote to stderr (empty when it was merged into stdout).
    pub stderr: Vec<u8>,
    seen: [u64; 2],
    drain_expired: bool,
    stop: Option<Stop>,
    usage: Option<crate::exit_status::ResourceUsage>,
}

impl Output {
    /// What the child used (CPU time, peak RSS and more), as the kernel reported when it
    /// was reaped. The same figures are on an [`Error`] of a stopped run
    /// ([`Error::resource_usage`]).
    ///
    /// ```
    /// let out = offspring::exec("true").output()?;
    /// assert!(out.resource_usage().is_some());
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn resource_usage(&self) -> Option<crate::exit_status::ResourceUsage> {
        self.usage
    }

    pub(crate) fn from_parts(
        status: ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        seen: [u64; 2],
        drain_expired: bool,
        stop: Option<Stop>,
        usage: Option<crate::exit_status::ResourceUsage>,
    ) -> Output {
        Output { status, stdout, stderr, seen, drain_expired, stop, usage }
    }

    /// Why the run stopped the child, if it did: `None` when the child ended on its own
    /// (whatever its exit code). The runners return such a run as an error;
    /// [`Error::into_run_output`] turns it back into this `Output`, so that one `match`
    /// handles every finished run.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{exec, Stop};
    /// use std::time::Duration;
    /// for (script, expect) in [("exit 3", "exit 3"), ("sleep 10", "timeout")] {
    ///     let out = exec(script).timeout(Duration::from_millis(200)).output()
    ///         .or_else(offspring::Error::into_run_output)?;
    ///     let what = match (out.stopped_by(), out.status.code()) {
    ///         (Some(Stop::Timeout), _) => "timeout".to_string(),
    ///         (Some(_), _) => "stopped".to_string(),
    ///         (None, Some(code)) => format!("exit {code}"),
    ///         (None, None) => "signal".to_string(),
    ///     };
    ///     assert_eq!(what, expect);
    /// }
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn stopped_by(&self) -> Option<Stop> {
        self.stop
    }

    /// The bytes seen on each stream, for an error that keeps them.
    pub(crate) fn seen(&self) -> [u64; 2] {
        self.seen
    }
    /// How many bytes the child wrote to `stream`, counting those that a
    /// [`Truncate`](Overflow::Truncate) limit dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Overflow, Stream};
    /// let out = offspring::exec("printf 0123456789 >&2")
    ///     .max_buffer_for(Stream::Stderr, 3)
    ///     .on_overflow(Overflow::Truncate)
    ///     .output()?;
    /// assert_eq!(out.stderr, b"012");
    /// assert_eq!(out.bytes_seen(Stream::Stderr), 10);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn bytes_seen(&self, stream: Stream) -> u64 {
        self.seen[stream.index()]
    }

    /// `true` if a [`Truncate`](Overflow::Truncate) limit dropped bytes from either stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Overflow, Stream};
    /// let out = Command::new("head")
    ///     .args(["-c", "100000", "/dev/zero"])
    ///     .max_buffer(10)
    ///     .on_overflow(Overflow::Truncate)
    ///     .output()?;
    /// assert!(out.status.success());
    /// assert!(out.is_truncated());
    /// assert_eq!(out.stdout.len(), 10);
    /// assert_eq!(out.bytes_seen(Stream::Stdout), 100000);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn is_truncated(&self) -> bool {
        self.seen[0] > self.stdout.len() as u64 || self.seen[1] > self.stderr.len() as u64
    }

    /// `true` if the child had exited but something else (typically a grandchild that
    /// inherited the pipe) still held stdout or stderr open when the
    /// [drain timeout](crate::Command::drain_timeout) ran out. What it wrote until then is
    /// captured; anything later is not.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// // The background `sleep` inherits stdout and keeps it open after the shell exits.
    /// let out = offspring::exec("echo hi; sleep 20 &").drain_timeout(Duration::from_millis(50)).output()?;
    /// assert!(out.drain_expired());
    /// assert!(!offspring::exec("echo hi").output()?.drain_expired());
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "ErrWaitDelay")]
    pub fn drain_expired(&self) -> bool {
        self.drain_expired
    }

    /// stdout as UTF-8.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidData`] if it is not valid UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = offspring::exec("printf 'h\\303\\251'").output()?;
    /// assert_eq!(out.stdout_str()?, "hé");
    /// let bad = offspring::exec("printf '\\377'").output()?;
    /// assert_eq!(bad.stdout_str().unwrap_err().kind(), offspring::ErrorKind::InvalidData);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn stdout_str(&self) -> Result<&str> {
        utf8(&self.stdout, Stream::Stdout)
    }

    /// stderr as UTF-8.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidData`] if it is not valid UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = offspring::exec("echo warning >&2").output()?;
    /// assert_eq!(out.stderr_str()?, "warning\n");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn stderr_str(&self) -> Result<&str> {
        utf8(&self.stderr, Stream::Stderr)
    }

    /// stdout as text, with invalid UTF-8 replaced by `U+FFFD`.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = offspring::exec("printf 'caf\\351'").output()?;
    /// assert_eq!(out.stdout_lossy(), "caf\u{FFFD}");
    /// assert!(out.stdout_str().is_err());
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn stdout_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// stderr as text, with invalid UTF-8 replaced by `U+FFFD`.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = offspring::exec("printf 'x\\377' >&2").output()?;
    /// assert_eq!(out.stderr_lossy(), "x\u{FFFD}");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn stderr_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }

    /// stdout as UTF-8 without its trailing newlines (`\n` or `\r\n`), as the shell's `$(...)`
    /// gives it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidData`] if it is not valid UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = offspring::exec("echo hello; echo").output()?;
    /// assert_eq!(out.stdout_trimmed()?, "hello");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn stdout_trimmed(&self) -> Result<&str> {
        self.stdout_str().map(trim_newlines)
    }

    /// The lines of stdout as UTF-8, without their `\n` or `\r\n`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidData`] if stdout is not valid UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = offspring::exec("printf 'a\\nb\\r\\nc'").output()?;
    /// assert_eq!(out.stdout_lines()?.collect::<Vec<_>>(), ["a", "b", "c"]);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn stdout_lines(&self) -> Result<std::str::Lines<'_>> {
        self.stdout_str().map(str::lines)
    }
}

/// Removes every trailing `\n` (and the `\r` of a `\r\n`).
pub(crate) fn trim_newlines(s: &str) -> &str {
    let mut s = s;
    while let Some(rest) = s.strip_suffix('\n') {
        s = rest.strip_suffix('\r').unwrap_or(rest);
    }
    s
}

fn utf8(bytes: &[u8], stream: Stream) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidData,
            Stage::Run,
            format!("{stream} is not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
        )
    })
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Output");
        d.field("status", &self.status)
            .field("stdout", &String::from_utf8_lossy(&self.stdout))
            .field("stderr", &String::from_utf8_lossy(&self.stderr));
        if self.is_truncated() {
            d.field("seen", &self.seen);
        }
        if self.drain_expired {
            d.field("drain_expired", &true);
        }
        if let Some(stop) = self.stop {
            d.field("stopped_by", &stop);
        }
        d.finish()
    }
}

/// Why a run stopped its child before it ended on its own: [`Output::stopped_by`].
///
/// # Examples
///
/// ```
/// use offspring::{Command, Stop};
/// use std::time::Duration;
/// let out = Command::new("sleep").arg("10").timeout(Duration::from_millis(50)).output()
///     .or_else(offspring::Error::into_run_output)?;
/// assert_eq!(out.stopped_by(), Some(Stop::Timeout));
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stop {
    /// The run went past its [`timeout`](crate::Command::timeout).
    Timeout,
    /// The run was cancelled through a [`CancelHandle`](crate::CancelHandle).
    Canceled,
    /// This stream went over its [`max_buffer`](crate::Command::max_buffer) limit.
    Limit(Stream),
}

/// How a capture treats its child: limits, and how to stop it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    pub(crate) timeout: Option<Duration>,
    pub(crate) kill_signal: Signal,
    pub(crate) grace: Duration,
    pub(crate) drain: Duration,
    pub(crate) limits: [Option<usize>; 2],
    pub(crate) overflow: Overflow,
}

/// The default grace period between the kill signal and `SIGKILL` (execa's
/// `forceKillAfterDelay`).
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The default bound on draining after the child exits.
pub(crate) const DEFAULT_DRAIN: Duration = Duration::from_secs(1);

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            timeout: None,
            kill_signal: Signal::TERM,
            grace: DEFAULT_GRACE,
            drain: DEFAULT_DRAIN,
            limits: [None, None],
            overflow: Overflow::Kill,
        }
    }
}

/// The smallest free space the buffer is given before a read: one default pipe's worth.
const MIN_READ: usize = 64 * 1024;

/// A read that returns at least this much suggests more is coming, so the loop reads again
/// before going back to `poll()` (a stream's reads, even from a fast writer, often find only
/// a few of its writes in the pipe); a smaller one, such as the few bytes of a short command,
/// goes back to `poll()` without a read that would only say `EAGAIN`. Measured with 1 GiB
/// from `head`: going back to `poll()` under 32 KiB cost about 5 % of the throughput.
const READ_AGAIN: usize = 4 * 1024;

/// Once a stream's buffer holds this much, reads go straight into it rather than through the
/// loop's scratch buffer (see `drain_fd`).
const DIRECT_FROM: usize = 32 * 1024;

/// Reads allowed per pipe in the final pass, when draining is cut short.
const FINAL_READS: usize = 32;

/// Without a pidfd, how often the loop asks whether the child has exited while its pipes
/// are still open.
const FALLBACK_EXIT_CHECK: Duration = Duration::from_millis(50);

/// What a read pass found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drained {
    /// The pipe is empty for now.
    Open,
    /// End of file: the pipe is closed.
    Eof,
    /// The stream just went over its limit ([`Overflow::Kill`]). The pipe stays open and is
    /// drained into the void from now on, so the child is ended by the kill signal that the
    /// caller sends next, never by a `SIGPIPE` from a closed pipe.
    Over,
}

/// Where a child's output goes to: kept in the [`Output`], or handed out as events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delivery {
    /// One [`Event::Line`] per line, without its `\n` (a last line without one is delivered
    /// at end of file): what a log follower wants.
    #[default]
    Lines,
    /// One [`Event::Output`] per read, as the bytes arrive.
    Chunks,
    /// Kept until the child is done and handed out in the [`Event::Exit`]'s [`Output`], as
    /// [`Command::output`](crate::Command::output) does.
    Buffered,
}

/// Where a sink's bytes go once read: the child's id and stream, and the event queue.
pub(crate) struct Emit<'e> {
    pub(crate) id: MuxId,
    pub(crate) events: &'e mut EventQueue,
}

/// One output pipe being drained into a buffer, or into events.
#[derive(Debug)]
struct Sink {
    fd: Option<OwnedFd>,
    stream: Stream,
    delivery: Delivery,
    /// What was read and not handed out yet (all of it in [`Delivery::Buffered`]).
    buf: Vec<u8>,
    /// Bytes already handed out as events.
    delivered: usize,
    /// How far `buf` has been searched for a newline ([`Delivery::Lines`]).
    scanned: usize,
    seen: u64,
    limit: Option<usize>,
    overflow: Overflow,
    /// The stream went over its limit: everything from now on is read and dropped.
    over: bool,
}

impl Sink {
    fn new(
        fd: Option<OwnedFd>,
        stream: Stream,
        limit: Option<usize>,
        overflow: Overflow,
        delivery: Delivery,
    ) -> Sink {
        Sink {
            fd,
            stream,
            delivery,
            buf: Vec::new(),
            delivered: 0,
            scanned: 0,
            seen: 0,
            limit,
            overflow,
            over: false,
        }
    }

    /// Bytes kept so far: handed out, or in the buffer.
    fn kept(&self) -> usize {
        self.delivered.saturating_add(self.buf.len())
    }

    /// Reads what the pipe holds. `reads` bounds the number of read calls. `hung_up` says that
    /// `poll()` saw the pipe's last writer gone (`POLLHUP`): what is left is all there will
    /// ever be, so reading goes on to the end of file instead of stopping after a short read,
    /// and the pipe is closed in this round rather than after one more `poll()`.
    fn drain(
        &mut self,
        scratch: &mut Vec<u8>,
        mut reads: usize,
        hung_up: bool,
        emit: &mut Emit<'_>,
    ) -> rustix::io::Result<Drained> {
        // The fd is out of `self` while it is read, and put back unless the pipe ended.
        let Some(owned) = self.fd.take() else { return Ok(Drained::Eof) };
        let result = self.drain_fd(owned.as_fd(), scratch, &mut reads, hung_up, emit);
        if !matches!(result, Ok(Drained::Eof)) {
            self.fd = Some(owned);
        }
        result
    }

    fn drain_fd(
        &mut self,
        fd: BorrowedFd<'_>,
        scratch: &mut Vec<u8>,
        reads: &mut usize,
        hung_up: bool,
        emit: &mut Emit<'_>,
    ) -> rustix::io::Result<Drained> {
        loop {
            // How much may be kept: up to the limit, plus one byte to see that the child went
            // over it (Kill), or nothing once the limit is reached (Truncate, or after Kill
            // saw it go over). Written so that no limit, however large, can overflow.
            let room = match (self.limit, self.overflow) {
                _ if self.over => None,
                (None, _) => Some(usize::MAX),
                (Some(l), Overflow::Kill) => {
                    l.checked_sub(self.kept()).map(|r| r.saturating_add(1))
                }
                (Some(l), Overflow::Truncate) => l.checked_sub(self.kept()).filter(|&r| r > 0),
            };
            // Reads go straight into a growing buffer once the stream has shown it is large;
            // until then, and for every read for events, they go through the loop's scratch
            // buffer and only the bytes read are kept, so a child that prints one line costs
            // its few bytes, not a 64 KiB buffer of its own (with a thousand children, 4 MB of
            // touched heap that is never given back).
            let direct = room.is_some()
                && self.delivery == Delivery::Buffered
                && self.buf.len() >= DIRECT_FROM;
            let res = if direct {
                let max = room.unwrap_or(usize::MAX);
                // No faulting-in ahead of the reads (`MADV_POPULATE_WRITE`): a read that
                // copies into a fresh page faults with the pipe's lock held, and the writer
                // spins on it, but faulting in megabytes ahead stalls the reader for longer
                // while the writer fills the pipe and sleeps. Measured with 1 GiB from `head`
                // on 2 cores: 0.83 s with 2-16 MiB windows, 0.71 s without (std: 0.64 s).
                make_room(&mut self.buf, max);
                crate::sys::buf::read_spare(fd, &mut self.buf, max)
            } else {
                if scratch.capacity() == 0 {
                    scratch.reserve_exact(MIN_READ);
                }
                scratch.clear();
                crate::sys::buf::read_spare(fd, scratch, room.unwrap_or(usize::MAX))
            };
            match res {
                Ok(0) => {
                    self.flush(emit, true);
                    return Ok(Drained::Eof);
                }
                Ok(n) => {
                    self.seen = self.seen.saturating_add(n as u64);
                    if !direct && room.is_some() {
                        self.buf.extend_from_slice(&scratch[..n]);
                    }
                    if let (Some(l), Overflow::Kill, false) = (self.limit, self.overflow, self.over)
                    {
                        if self.kept() > l {
                            // Keep exactly `l` bytes. The pipe stays open (see `Drained::Over`).
                            let extra = self.kept() - l;
                            self.buf.truncate(self.buf.len() - extra);
                            self.over = true;
                            self.flush(emit, false);
                            return Ok(Drained::Over);
                        }
                    }
                    if room.is_some() {
                        self.flush(emit, false);
                    }
                    *reads -= 1;
                    if (n < READ_AGAIN && !hung_up) || *reads == 0 {
                        return Ok(Drained::Open);
                    }
                }
                Err(Errno::AGAIN) => return Ok(Drained::Open),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Hands out what the buffer holds as events: every chunk, or every complete line (and at
    /// the end, `last`, what is left of a line without its newline).
    fn flush(&mut self, emit: &mut Emit<'_>, last: bool) {
        match self.delivery {
            Delivery::Buffered => {}
            Delivery::Chunks => {
                if !self.buf.is_empty() {
                    let data = std::mem::take(&mut self.buf);
                    self.delivered = self.delivered.saturating_add(data.len());
                    emit.events.push_back(Event::Output { id: emit.id, stream: self.stream, data });
                }
            }
            Delivery::Lines => {
                let mut start = 0;
                let mut from = self.scanned;
                while let Some(i) = self.buf[from..].iter().position(|&b| b == b'\n') {
                    let end = from + i;
                    let line = self.buf[start..end].to_vec();
                    emit.events.push_back(Event::Line { id: emit.id, stream: self.stream, line });
                    start = end + 1;
                    from = start;
                }
                if last && start < self.buf.len() {
                    let line = self.buf[start..].to_vec();
                    emit.events.push_back(Event::Line { id: emit.id, stream: self.stream, line });
                    start = self.buf.len();
                }
                self.delivered = self.delivered.saturating_add(start);
                self.buf.drain(..start);
                self.scanned = self.buf.len();
            }
        }
    }

    /// Closes the pipe, handing out a last partial line.
    fn close(&mut self, emit: &mut Emit<'_>) {
        self.fd = None;
        self.flush(emit, true);
    }

    /// Hands the buffer out, without excess capacity worth giving back.
    fn take(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() - buf.len() > buf.len() / 8 + 4096 {
            buf.shrink_to_fit();
        }
        buf
    }
}

/// Makes sure `buf` has free space for a read of up to `max` bytes (at least `MIN_READ`, or
/// `max` if smaller), growing it geometrically. (`reserve` at least doubles the capacity:
/// amortized O(1) per byte; glibc grows a large buffer with `mremap`, without copying it.)
fn make_room(buf: &mut Vec<u8>, max: usize) {
    let want = MIN_READ.min(max);
    if buf.capacity() - buf.len() < want {
        buf.reserve(want);
    }
}

/// Input being written to the child's stdin.
struct Feeder<'a> {
    fd: OwnedFd,
    data: Cow<'a, [u8]>,
    written: usize,
}

/// Which fd of a child a `poll()` entry is.
#[derive(Clone, Copy, Debug)]
enum Tag {
    Stdin,
    Sink(usize),
    Pidfd,
    Cancel,
}

/// One child under capture: its pipes (sinks and feeder), its policy, its deadlines and where
/// its stop stands. [`Core`] drives any number of them from one `poll()`; a single-child
/// capture ([`Session`]) is the one-child case.
///
/// `C` is how the run holds its child: borrowed (`&Child`, for `output()` and
/// `communicate`) or owned (`Child`, in a [`Mux`](crate::Mux)).
pub(crate) struct Run<'a, C: Borrow<Child>> {
    pub(crate) id: MuxId,
    child: C,
    stdin: Option<Feeder<'a>>,
    sinks: [Sink; 2],
    pub(crate) policy: Policy,
    timeout_at: Option<Instant>,
    pub(crate) stop: Option<Stop>,
    kill_at: Option<Instant>,
    needed_kill: bool,
    status: Option<ExitStatus>,
    drain_at: Option<Instant>,
    drain_expired: bool,
    next_exit_check: Option<Instant>,
    /// This child's own cancel ([`Command::cancel_with`](crate::Command::cancel_with)), for a
    /// run in a [`Mux`](crate::Mux); a [`Session`] cancels all its runs at once instead.
    cancel: Option<CancelHandle>,
}

/// What a finished capture produced.
pub(crate) struct Finished {
    pub(crate) output: Output,
    pub(crate) stop: Option<Stop>,
    pub(crate) needed_kill: bool,
    pub(crate) policy: Policy,
}

impl<'a, C: Borrow<Child>> Run<'a, C> {
    /// Starts a capture of `child`'s pipes. The pipes are made non-blocking; `input` is fed to
    /// `stdin` (which is closed at once when `input` is empty).
    #[allow(clippy::too_many_arguments)] // the parts of one child's capture, set once
    pub(crate) fn new(
        id: MuxId,
        child: C,
        stdin: Option<ChildStdin>,
        input: Cow<'a, [u8]>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        policy: Policy,
        delivery: Delivery,
    ) -> Result<Run<'a, C>> {
        let io = |e: std::io::Error| {
            // Nobody would read its pipes: do not leave it running.
            let _ = child.borrow().kill();
            Error::os(Stage::Io, e, "setting up the child's pipes").with_argv(child.borrow().argv())
        };
        for fd in [stdout.as_ref(), stderr.as_ref()].into_iter().flatten() {
            crate::sys::pipe::set_nonblocking(fd, true).map_err(io)?;
        }
        let stdin = match stdin {
            Some(s) if !input.is_empty() => {
                let fd = OwnedFd::from(s);
                crate::sys::pipe::set_nonblocking(&fd, true).map_err(io)?;
                Some(Feeder { fd, data: input, written: 0 })
            }
            // Nothing to write: dropping the pipe gives the child EOF at once.
            _ => None,
        };
        Ok(Run {
            id,
            child,
            stdin,
            sinks: [
                Sink::new(stdout, Stream::Stdout, policy.limits[0], policy.overflow, delivery),
                Sink::new(stderr, Stream::Stderr, policy.limits[1], policy.overflow, delivery),
            ],
            timeout_at: policy.timeout.map(deadline_after),
            policy,
            stop: None,
            kill_at: None,
            needed_kill: false,
            status: None,
            drain_at: None,
            drain_expired: false,
            next_exit_check: None,
            cancel: None,
        })
    }

    /// Gives the run a cancel handle of its own, polled with its fds.
    pub(crate) fn set_cancel(&mut self, cancel: Option<CancelHandle>) -> Result<()> {
        if let Some(c) = &cancel {
            // Made now, so that the poll set never lacks it.
            c.wake_fd().map_err(|e| {
                Error::os(Stage::Setup, e, "creating the cancel pipe")
                    .with_argv(self.child().argv())
            })?;
        }
        self.cancel = cancel;
        Ok(())
    }

    pub(crate) fn child(&self) -> &Child {
        self.child.borrow()
    }

    pub(crate) fn child_mut(&mut self) -> &mut Child
    where
        C: std::borrow::BorrowMut<Child>,
    {
        self.child.borrow_mut()
    }

    /// The child's status, once it has been collected.
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// `true` once the child has exited and its pipes are closed: [`finish`](Run::finish) next.
    pub(crate) fn is_done(&self) -> bool {
        self.status.is_some() && self.reads_done()
    }

    fn reads_done(&self) -> bool {
        self.sinks.iter().all(|s| s.fd.is_none())
    }

    fn io_error(&self, e: impl Into<std::io::Error>, what: &str) -> Error {
        Error::os(Stage::Io, e.into(), what).with_argv(self.child().argv())
    }

    /// The timers: a cancel or timeout starts the stop, a grace period that ran out escalates,
    /// a drain timeout that ran out cuts the drain. Returns `true` when the run is done.
    fn tick(&mut self, now: Instant, canceled: bool, emit: &mut Emit<'_>) -> Result<bool> {
        if self.status.is_none() && self.stop.is_none() {
            if canceled || self.cancel.as_ref().is_some_and(CancelHandle::is_canceled) {
                self.begin_stop(Stop::Canceled, now)?;
            } else if self.timeout_at.is_some_and(|t| now >= t) {
                self.begin_stop(Stop::Timeout, now)?;
            }
        }
        if self.kill_at.is_some_and(|k| now >= k) {
            // The stop signal may have ended the child while this loop did not run (a loaded
            // machine): look before calling it a kill.
            self.check_exit(now, emit)?;
            if self.kill_at.is_some() {
                self.escalate()?;
            }
        }
        if self.status.is_none() && self.child().pidfd().is_none() {
            // No exit notification: look at the child every so often.
            let check = *self.next_exit_check.get_or_insert(now + FALLBACK_EXIT_CHECK);
            if now >= check {
                self.next_exit_check = Some(now + FALLBACK_EXIT_CHECK);
                self.check_exit(now, emit)?;
            }
        }
        if self.status.is_some() {
            if self.reads_done() {
                return Ok(true);
            }
            if self.drain_at.is_some_and(|d| now >= d) {
                self.cut_drain(emit)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// When this run next needs the loop to wake up without any fd being ready.
    fn next_wake(&self) -> Option<Instant> {
        let running = self.status.is_none();
        [
            self.timeout_at.filter(|_| running && self.stop.is_none()),
            self.kill_at,
            self.drain_at.filter(|_| !running),
            self.next_exit_check.filter(|_| running && self.child().pidfd().is_none()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Adds this run's fds to a `poll()` set.
    fn watch<'f>(&'f self, k: usize, set: &mut Vec<PollFd<'f>>, tags: &mut Vec<(usize, Tag)>) {
        if let Some(f) = &self.stdin {
            tags.push((k, Tag::Stdin));
            set.push(PollFd::new(&f.fd, PollFlags::OUT));
        }
        for (i, s) in self.sinks.iter().enumerate() {
            if let Some(fd) = &s.fd {
                tags.push((k, Tag::Sink(i)));
                set.push(PollFd::new(fd, PollFlags::IN));
            }
        }
        if self.status.is_none() {
            if let Some(fd) = self.child().pidfd() {
                tags.push((k, Tag::Pidfd));
                set.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
            }
        }
        if self.stop.is_none() {
            if let Some(Ok(fd)) = self.cancel.as_ref().map(CancelHandle::wake_fd) {
                tags.push((k, Tag::Cancel));
                set.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
            }
        }
    }

    /// One of this run's fds is ready, with `revents`.
    fn ready(
        &mut self,
        tag: Tag,
        revents: PollFlags,
        now: Instant,
        scratch: &mut Vec<u8>,
        emit: &mut Emit<'_>,
    ) -> Result<()> {
        match tag {
            Tag::Stdin => self.feed(),
            Tag::Sink(i) => {
                let hung_up = revents.contains(PollFlags::HUP);
                let drained = self.sinks[i]
                    .drain(scratch, usize::MAX, hung_up, emit)
                    .map_err(|e| self.io_error(e, "reading the child's output"))?;
                if drained == Drained::Over && self.stop.is_none() {
                    self.begin_stop(Stop::Limit(Stream::from_index(i)), now)?;
                }
                Ok(())
            }
            Tag::Pidfd => {
                self.check_exit(now, emit)?;
                if self.status.is_none() {
                    // Readable yet nothing to reap: a ptracer holds the exited child. Look at
                    // it on the fallback's timer from now on, not spin on it.
                    self.child().mark_held();
                }
                Ok(())
            }
            Tag::Cancel => {
                if self.stop.is_none() {
                    self.begin_stop(Stop::Canceled, now)?;
                }
                Ok(())
            }
        }
    }

    /// Writes as much input as the pipe takes.
    fn feed(&mut self) -> Result<()> {
        let Some(f) = &mut self.stdin else { return Ok(()) };
        loop {
            if f.written == f.data.len() {
                // All written: closing the pipe gives the child EOF.
                self.stdin = None;
                return Ok(());
            }
            match rustix::io::write(&f.fd, &f.data[f.written..]) {
                Ok(n) => f.written += n,
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => {}
                // The child closed its stdin or exited: it stopped reading. Not an error; its
                // exit status tells the rest. (Rust ignores SIGPIPE, so this is EPIPE, not a
                // signal.)
                Err(Errno::PIPE) => {
                    self.stdin = None;
                    return Ok(());
                }
                Err(e) => {
                    return Err(Error::os(Stage::Io, e.into(), "writing the child's stdin")
                        .with_argv(self.child().argv()))
                }
            }
        }
    }

    fn check_exit(&mut self, now: Instant, emit: &mut Emit<'_>) -> Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        if let Some(status) = self.child().try_wait()? {
            self.exited(status, now, emit);
        }
        Ok(())
    }

    fn exited(&mut self, status: ExitStatus, now: Instant, emit: &mut Emit<'_>) {
        self.status = Some(status);
        // Nobody is left to read the rest of the input (a grandchild could, but feeding it
        // is not this run's business).
        self.stdin = None;
        for s in &mut self.sinks {
            if s.over {
                // Over the limit and stopped: what is still in the pipe is not wanted.
                s.close(emit);
            }
        }
        let drain =
            if self.stop == Some(Stop::Canceled) { Duration::ZERO } else { self.policy.drain };
        self.drain_at = Some(crate::child::deadline_from(now, drain));
        if self.kill_at.is_some()
            && !self.child().stops_together()
            && !self.child().holds_descendants()
        {
            // Nothing left to escalate against.
            self.kill_at = None;
        }
    }

    /// Starts stopping the child: closes stdin, sends the kill signal, arms the `SIGKILL` for
    /// when the grace period ends.
    pub(crate) fn begin_stop(&mut self, stop: Stop, now: Instant) -> Result<()> {
        self.stop = Some(stop);
        self.stdin = None;
        if stop == Stop::Canceled && self.status.is_some() {
            // The child is done and the caller wants out: take what the pipes hold now.
            self.drain_at = Some(now);
        }
        let sig = self.policy.kill_signal;
        self.stop_child(sig)?;
        if sig != Signal::KILL {
            self.kill_at = Some(crate::child::deadline_from(now, self.policy.grace));
        }
        Ok(())
    }

    /// Stops the child with `grace` from `now` before `SIGKILL`: starts the stop if it has not
    /// begun (`Ok(true)`), or brings an earlier stop's `SIGKILL` forward to `now + grace`.
    pub(crate) fn stop_within(
        &mut self,
        stop: Stop,
        now: Instant,
        grace: Duration,
    ) -> Result<bool> {
        if self.stop.is_none() {
            self.policy.grace = grace;
            self.begin_stop(stop, now)?;
            return Ok(true);
        }
        let at = crate::child::deadline_from(now, grace);
        if let Some(k) = &mut self.kill_at {
            *k = (*k).min(at);
        }
        Ok(false)
    }

    /// The grace period is over: `SIGKILL` the child if it still runs, and the rest of its
    /// group if it leads one and someone still holds the pipes.
    fn escalate(&mut self) -> Result<()> {
        self.kill_at = None;
        if self.status.is_none() {
            self.needed_kill = true;
            self.stop_child(Signal::KILL)
        } else if self.child().stops_together() && !self.reads_done() {
            self.stop_child(Signal::KILL)
        } else {
            // The descendants the stop found are held as pidfds: never a recycled pid.
            self.child().signal_held(Signal::KILL);
            Ok(())
        }
    }

    /// Stops the command: its cgroup tree when it is contained; else the child, its group when
    /// it leads one, and its descendants (`src/stop.rs` says which processes that reaches).
    fn stop_child(&self, sig: Signal) -> Result<()> {
        crate::stop::stop_command(self.child(), sig)
    }

    /// The drain timeout ran out (or the run was cancelled after the child exited): take
    /// what the pipes hold now, then close them.
    fn cut_drain(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        let mut expired = false;
        let mut scratch = Vec::new();
        for i in 0..2 {
            if self.sinks[i].fd.is_some() {
                let drained = self.sinks[i]
                    .drain(&mut scratch, FINAL_READS, false, emit)
                    .map_err(|e| self.io_error(e, "reading the child's output"))?;
                if drained == Drained::Open {
                    expired = true;
                }
                self.sinks[i].close(emit);
            }
        }
        self.drain_expired = expired && self.stop != Some(Stop::Canceled);
        Ok(())
    }

    /// Stops the child after an error in the loop itself, so it does not run on unwatched,
    /// and stops reading its pipes.
    pub(crate) fn abandon(&mut self, emit: &mut Emit<'_>) {
        let _ = self.stop_child(Signal::KILL);
        self.stdin = None;
        for s in &mut self.sinks {
            s.close(emit);
        }
    }

    /// The result, once the run is done. Later calls return the same status with empty
    /// buffers.
    pub(crate) fn finish(&mut self) -> Finished {
        let status = self.status.expect("finish is called once the run is done");
        Finished {
            output: Output {
                status,
                stdout: self.sinks[0].take(),
                stderr: self.sinks[1].take(),
                seen: [self.sinks[0].seen, self.sinks[1].seen],
                drain_expired: self.drain_expired,
                stop: self.stop,
                usage: self.child.borrow().resource_usage(),
            },
            stop: self.stop,
            needed_kill: self.needed_kill,
            policy: self.policy,
        }
    }
}

/// Any number of runs and the loop that drives them: the engine behind `output()`,
/// [`Communication`] and [`Mux`](crate::Mux). Each round polls every run's pipes and pidfd
/// (plus the caller's own wake fds), handles what is ready, and runs every run's timers; no
/// thread per child or per pipe, and no busy loop (a round sleeps in `poll()` until an fd is
/// ready or the next deadline of any run).
#[derive(Debug, Default)]
pub(crate) struct Core {
    /// One read buffer shared by all the runs: what a read for events or a first read lands in.
    scratch: Vec<u8>,
    /// The `poll()` set and what its entries are, and the entries found ready: kept from round
    /// to round, so that a round allocates nothing (a mux with many children would otherwise
    /// scatter freed poll sets between the buffers it keeps).
    set: Vec<PollFd<'static>>,
    tags: Vec<(usize, Tag)>,
    ready: Vec<(usize, PollFlags)>,
}

/// An empty `Vec` with `v`'s allocation, for `PollFd`s of another lifetime: a round's poll
/// set borrows the runs' fds, and its buffer is kept for the next round. (Collecting an
/// emptied `vec::IntoIter` into a `Vec` of a type of the same layout reuses its buffer.)
fn recycle<'a, 'b>(mut v: Vec<PollFd<'a>>) -> Vec<PollFd<'b>> {
    v.clear();
    v.into_iter().map(|_| unreachable!("the vector is empty")).collect()
}

/// What one round of [`Core::round`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Round {
    /// Some fd (a run's or a wake fd) was ready.
    pub(crate) progress: bool,
    /// Which of the wake fds were ready, by index.
    pub(crate) woken: [bool; 2],
}

impl Core {
    /// Runs every run's timers, then, unless all are done, one `poll()` (non-blocking if
    /// `give_up` has passed) and what follows. `runs` holds `None` for free slots; errors of
    /// one run go to `failed` with its index, and do not stop the others.
    pub(crate) fn round<C: Borrow<Child>>(
        &mut self,
        runs: &mut [Option<Run<'_, C>>],
        wake_fds: [Option<BorrowedFd<'_>>; 2],
        canceled: bool,
        give_up: Option<Instant>,
        events: &mut EventQueue,
        failed: &mut Vec<(usize, Error)>,
    ) -> Result<Round> {
        let now = Instant::now();
        let mut wake = give_up;
        let mut live = 0;
        // A run that its timers finished just now must be handed back before any poll: the
        // mux collects it after the round, and a poll on a wake fd with no other timer could
        // sleep forever first. (Runs that were done before stay in a session's array.)
        let mut done = false;
        for (k, slot) in runs.iter_mut().enumerate() {
            let Some(run) = slot else { continue };
            let was_done = run.is_done();
            let mut emit = Emit { id: run.id, events };
            match run.tick(now, canceled, &mut emit) {
                Ok(true) => {
                    done |= !was_done;
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    run.abandon(&mut emit);
                    failed.push((k, e));
                    continue;
                }
            }
            live += 1;
            if let Some(t) = run.next_wake() {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        }
        if done || (live == 0 && wake_fds.iter().all(Option::is_none)) || !failed.is_empty() {
            return Ok(Round { progress: true, woken: [false; 2] });
        }
        let timeout = wake.map(|w| crate::reaper::timespec(w.saturating_duration_since(now)));

        let mut set = recycle(std::mem::take(&mut self.set));
        let Core { tags, ready, .. } = self;
        tags.clear();
        for (k, run) in runs.iter().enumerate() {
            if let Some(run) = run {
                if !run.is_done() {
                    run.watch(k, &mut set, tags);
                }
            }
        }
        let first_wake = set.len();
        for fd in wake_fds.iter().flatten() {
            set.push(PollFd::from_borrowed_fd(*fd, PollFlags::IN));
        }
        if set.is_empty() && live == 1 {
            // Only the fallback path gets here, with one child and nothing to poll: wait for it
            // on the reaper, which wakes at its exit.
            let k = runs.iter().position(|r| r.as_ref().is_some_and(|r| !r.is_done()));
            let k = k.expect("one live run");
            let run = runs[k].as_mut().expect("found above");
            let until = wake.unwrap_or(now + FALLBACK_EXIT_CHECK);
            let mut emit = Emit { id: run.id, events };
            match run.child().wait_deadline(until) {
                Ok(Some(status)) => run.exited(status, Instant::now(), &mut emit),
                Ok(None) => {}
                Err(e) => failed.push((k, e)),
            }
            return Ok(Round::default());
        }
        match rustix::event::poll(&mut set, timeout.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(Round::default()),
            Err(e) => {
                return Err(Error::os(Stage::Io, e.into(), "waiting for the children's pipes"))
            }
        }
        ready.clear();
        ready.extend(
            set.iter()
                .enumerate()
                .filter(|(_, p)| !p.revents().is_empty())
                .map(|(i, p)| (i, p.revents())),
        );
        self.set = recycle(set);
        let Core { scratch, tags, ready, .. } = self;
        let mut round = Round { progress: !ready.is_empty(), woken: [false; 2] };
        let now = Instant::now();
        // Which wake fd each poll entry from `first_wake` on is (only those given are polled).
        let mut wake_index = [0; 2];
        let given = (0..wake_fds.len()).filter(|&i| wake_fds[i].is_some());
        for (slot, i) in wake_index.iter_mut().zip(given) {
            *slot = i;
        }
        for &(i, revents) in ready.iter() {
            if i >= first_wake {
                round.woken[wake_index[i - first_wake]] = true;
                continue;
            }
            let (k, tag) = tags[i];
            let Some(run) = runs[k].as_mut() else { continue };
            let mut emit = Emit { id: run.id, events };
            if let Err(e) = run.ready(tag, revents, now, scratch, &mut emit) {
                run.abandon(&mut emit);
                failed.push((k, e));
            }
        }
        Ok(round)
    }
}

/// A capture in progress on the calling thread: one [`Run`] per child on a [`Core`], with an
/// optional cancel. One child for `output()` and `communicate`; the stages of a
/// [`Pipeline`](crate::Pipeline), which stop together: when one is stopped (its timeout, a
/// limit, a cancel), all are.
pub(crate) struct Session<'a> {
    children: Vec<&'a Child>,
    runs: Vec<Option<Run<'a, &'a Child>>>,
    core: Core,
    cancel: Option<BorrowedFd<'a>>,
    cancel_handle: Option<&'a CancelHandle>,
    /// The first reason any run was stopped for.
    stop: Option<Stop>,
}

/// How many non-blocking rounds a call whose deadline has already passed may do while they
/// make progress: enough to collect an exit and read a pipe to its end, bounded so that a child
/// that writes without pause cannot keep such a call going.
pub(crate) const PAST_DEADLINE_ROUNDS: usize = 8;

impl<'a> Session<'a> {
    /// Starts a capture of `child`'s pipes. The pipes are made non-blocking; `input` is fed to
    /// `stdin` (which is closed at once when `input` is empty).
    pub(crate) fn new(
        child: &'a Child,
        stdin: Option<ChildStdin>,
        input: &'a [u8],
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        policy: Policy,
        cancel: Option<&'a CancelHandle>,
    ) -> Result<Session<'a>> {
        let run = Run::new(
            MuxId(0),
            child,
            stdin,
            Cow::Borrowed(input),
            stdout,
            stderr,
            policy,
            Delivery::Buffered,
        )?;
        Session::with_runs(vec![run], cancel)
    }

    /// A capture of several children, stopped together.
    pub(crate) fn with_runs(
        runs: Vec<Run<'a, &'a Child>>,
        cancel: Option<&'a CancelHandle>,
    ) -> Result<Session<'a>> {
        let children: Vec<&'a Child> = runs.iter().map(|r| r.child).collect();
        let cancel_fd = match cancel {
            Some(h) => Some(h.wake_fd().map_err(|e| {
                for c in &children {
                    let _ = c.kill();
                }
                Error::os(Stage::Setup, e, "creating the cancel pipe").with_argv(children[0].argv())
            })?),
            None => None,
        };
        Ok(Session {
            children,
            runs: runs.into_iter().map(Some).collect(),
            core: Core::default(),
            cancel: cancel_fd,
            cancel_handle: cancel,
            stop: None,
        })
    }

    fn run(&self) -> &Run<'a, &'a Child> {
        self.runs[0].as_ref().expect("a session keeps its runs")
    }

    fn run_mut(&mut self) -> &mut Run<'a, &'a Child> {
        self.runs[0].as_mut().expect("a session keeps its runs")
    }

    fn all_done(&self) -> bool {
        self.runs.iter().flatten().all(Run::is_done)
    }

    /// What stdout and stderr hold so far.
    pub(crate) fn captured(&self, stream: Stream) -> &[u8] {
        &self.run().sinks[stream.index()].buf
    }

    /// The child's status, once it has been collected.
    pub(crate) fn status(&self) -> Option<ExitStatus> {
        self.run().status
    }

    pub(crate) fn set_drain(&mut self, drain: Duration) {
        for run in self.runs.iter_mut().flatten() {
            run.policy.drain = drain;
        }
    }

    /// Runs the loop until every child has exited and its pipes are drained (`Ok(true)`), or
    /// until `give_up` (`Ok(false)`; call again to go on, nothing is lost). A `give_up` that
    /// has already passed still gets a few non-blocking rounds, so that polling with a zero
    /// timeout makes progress.
    pub(crate) fn pump(&mut self, give_up: Option<Instant>) -> Result<bool> {
        // This loop polls the pidfds and reaps the children itself: keep the reaper out of it.
        let _watch: Vec<_> = self.children.iter().map(|c| c.self_wait()).collect();
        let mut past_rounds = 0;
        let mut events = EventQueue::new();
        let mut failed = Vec::new();
        loop {
            if self.all_done() {
                return Ok(true);
            }
            let canceled = self.cancel_handle.is_some_and(CancelHandle::is_canceled);
            let now = Instant::now();
            let past = give_up.is_some_and(|g| now >= g);
            let cancel_fd = self.cancel.filter(|_| self.stop.is_none());
            let round = self.core.round(
                &mut self.runs,
                [cancel_fd, None],
                canceled,
                if past { Some(now) } else { give_up },
                &mut events,
                &mut failed,
            )?;
            if let Some((_, e)) = failed.pop() {
                return Err(e);
            }
            if round.woken[0] && self.stop.is_none() {
                self.stop_all(Stop::Canceled)?;
            }
            if self.stop.is_none() {
                if let Some(stop) = self.runs.iter().flatten().find_map(|r| r.stop) {
                    self.stop_all(stop)?;
                }
            }
            if self.all_done() {
                return Ok(true);
            }
            if past {
                past_rounds += 1;
                if !round.progress || past_rounds >= PAST_DEADLINE_ROUNDS {
                    return Ok(false);
                }
            }
        }
    }

    /// One run was stopped (or the cancel fired): stop every run that still goes.
    fn stop_all(&mut self, stop: Stop) -> Result<()> {
        self.stop = Some(stop);
        let now = Instant::now();
        for run in self.runs.iter_mut().flatten() {
            if run.stop.is_none() {
                run.begin_stop(stop, now)?;
            }
        }
        Ok(())
    }

    /// The first reason the children were stopped for.
    pub(crate) fn stopped(&self) -> Option<Stop> {
        self.stop
    }

    /// Stops the children after an error in the loop itself, so they do not run on unwatched.
    pub(crate) fn abandon(&mut self) {
        let mut events = EventQueue::new();
        let mut emit = Emit { id: MuxId(0), events: &mut events };
        for run in self.runs.iter_mut().flatten() {
            run.abandon(&mut emit);
        }
    }

    /// The result, once [`pump`](Session::pump) has returned `Ok(true)`. Later calls return the
    /// same status with empty buffers.
    pub(crate) fn finish(&mut self) -> Finished {
        self.run_mut().finish()
    }

    /// Every run's result, in order, once [`pump`](Session::pump) has returned `Ok(true)`.
    pub(crate) fn finish_all(&mut self) -> Vec<Finished> {
        self.runs.iter_mut().flatten().map(Run::finish).collect()
    }
}

/// A [`Child::communicate`] in progress: feeds the input, collects stdout and stderr, and
/// waits for the child, resumable after a deadline without losing a byte.
///
/// # Examples
///
/// ```
/// use offspring::{Command, Stdio};
/// use std::time::Duration;
///
/// let mut child = Command::new("sh")
///     .args(["-c", "cat; sleep 0.3; echo done >&2"])
///     .stdin(Stdio::piped())
///     .stdout(Stdio::piped())
///     .stderr(Stdio::piped())
///     .spawn()?;
/// let mut comm = child.communicate(b"ping\n")?;
/// // Not finished within 10 ms: nothing is lost, ask again.
/// assert!(comm.wait_timeout(Duration::from_millis(10))?.is_none());
/// let out = comm.wait()?;
/// assert_eq!(out.stdout, b"ping\n");
/// assert_eq!(out.stderr, b"done\n");
/// assert!(out.status.success());
/// # Ok::<(), offspring::Error>(())
/// ```
pub struct Communication<'a> {
    session: Session<'a>,
    done: bool,
}

impl Child {
    /// Writes `input` to the child's stdin (then closes it), reads its stdout and stderr until
    /// they close, and waits for it to exit, all in one `poll()` loop: Python's
    /// `Popen.communicate`.
    ///
    /// Takes the pipes out of `child.stdin`, `child.stdout` and `child.stderr` (those that
    /// are not piped are simply not used). Nothing happens until one of the
    /// [`Communication`]'s `wait` methods is called; a `wait_timeout` or `wait_deadline` that
    /// runs out returns `Ok(None)` and keeps everything read and the position in the input,
    /// so the next call carries on. Draining after the child exits is bounded by the
    /// [drain timeout](Communication::drain_timeout).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `input` is not empty but stdin is not piped.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// let mut child = Command::new("sort")
    ///     .stdin(Stdio::piped())
    ///     .stdout(Stdio::piped())
    ///     .spawn()?;
    /// let out = child.communicate(b"b\na\n")?.wait()?;
    /// assert_eq!(out.stdout, b"a\nb\n");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn communicate<'a>(&'a mut self, input: &'a [u8]) -> Result<Communication<'a>> {
        let stdin = self.stdin.take();
        if stdin.is_none() && !input.is_empty() {
            return Err(Error::invalid_input(
                "communicate was given input but the child's stdin is not piped \
                 (spawn it with .stdin(Stdio::piped()))",
            )
            .with_argv(self.argv()));
        }
        let stdout = self.stdout.take().map(OwnedFd::from);
        let stderr = self.stderr.take().map(OwnedFd::from);
        let child: &'a Child = self;
        let session = Session::new(child, stdin, input, stdout, stderr, Policy::default(), None)?;
        Ok(Communication { session, done: false })
    }
}

impl Communication<'_> {
    /// Bounds how long draining goes on after the child exits (default 1 s), for a grandchild
    /// that keeps the pipes open.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::time::Duration;
    /// let mut child = Command::new("sh").args(["-c", "echo hi; sleep 20 &"]).stdout(Stdio::piped()).spawn()?;
    /// let mut comm = child.communicate(b"")?;
    /// let out = comm.drain_timeout(Duration::from_millis(50)).wait()?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// assert!(out.drain_expired());
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "WaitDelay")]
    pub fn drain_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.session.set_drain(timeout);
        self
    }

    /// Runs to the end: all input written (or refused), pipes closed (or the drain timeout
    /// expired), child exited.
    ///
    /// The output is handed out once; a later call returns the same status with empty
    /// buffers.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Io`] error if polling, reading or writing fails (other than the child
    /// closing its stdin, which just ends the input), or a wait error.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// let mut child = Command::new("head").args(["-c", "3"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    /// // head stops reading after 3 bytes: the rest of the input is simply not written.
    /// let mut comm = child.communicate(&[b'z'; 1 << 20])?;
    /// let out = comm.wait()?;
    /// assert_eq!(out.stdout, b"zzz");
    /// assert!(comm.wait()?.stdout.is_empty()); // handed out once
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn wait(&mut self) -> Result<Output> {
        self.step(None).map(|o| o.expect("a wait without a deadline finishes"))
    }

    /// As [`wait`](Communication::wait), giving up after `timeout`: `Ok(None)` if the child
    /// has not finished by then. See the [type's example](Communication).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<Output>> {
        self.step(Some(deadline_after(timeout)))
    }

    /// As [`wait`](Communication::wait), never blocking: one round of writing what the pipe
    /// takes and reading what the pipes hold, then `Ok(None)` if the child has not finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// let mut child = Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn()?;
    /// let mut comm = child.communicate(b"")?;
    /// let out = loop {
    ///     if let Some(out) = comm.try_wait()? {
    ///         break out;
    ///     }
    ///     std::thread::sleep(std::time::Duration::from_millis(5));
    /// };
    /// assert_eq!(out.stdout, b"hi\n");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn try_wait(&mut self) -> Result<Option<Output>> {
        self.step(Some(Instant::now()))
    }

    /// As [`wait`](Communication::wait), giving up at `deadline`: `Ok(None)` if the child has
    /// not finished by then. Nothing read so far is lost; call again to continue.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio, Stream};
    /// use std::time::{Duration, Instant};
    /// let mut child = Command::new("sh").args(["-c", "echo early; sleep 0.3; echo late"]).stdout(Stdio::piped()).spawn()?;
    /// let mut comm = child.communicate(b"")?;
    /// let soon = Instant::now() + Duration::from_millis(150);
    /// assert!(comm.wait_deadline(soon)?.is_none());
    /// assert_eq!(comm.captured(Stream::Stdout), b"early\n");
    /// let out = comm.wait_deadline(Instant::now() + Duration::from_secs(30))?.unwrap();
    /// assert_eq!(out.stdout, b"early\nlate\n");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn wait_deadline(&mut self, deadline: Instant) -> Result<Option<Output>> {
        self.step(Some(deadline))
    }

    fn step(&mut self, deadline: Option<Instant>) -> Result<Option<Output>> {
        if !self.done {
            if !self.session.pump(deadline)? {
                return Ok(None);
            }
            self.done = true;
        }
        Ok(Some(self.session.finish().output))
    }

    /// What the child has written to `stream` so far (until the output is handed out). See
    /// [`wait_deadline`](Communication::wait_deadline) for an example.
    pub fn captured(&self, stream: Stream) -> &[u8] {
        self.session.captured(stream)
    }

    /// The child, to signal it (for example after a `wait_timeout` that ran out).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Signal, Stdio};
    /// use std::time::Duration;
    /// let mut child = Command::new("sh").args(["-c", "echo working; exec sleep 30"]).stdout(Stdio::piped()).spawn()?;
    /// let mut comm = child.communicate(b"")?;
    /// if comm.wait_timeout(Duration::from_millis(100))?.is_none() {
    ///     comm.child().signal(Signal::TERM)?;
    /// }
    /// let out = comm.wait()?;
    /// assert_eq!(out.status.signal(), Some(Signal::TERM));
    /// assert_eq!(out.stdout, b"working\n");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn child(&self) -> &Child {
        self.session.children[0]
    }

    /// The exit status, once the child has exited (its pipes may still be draining).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// let mut child = Command::new("true").stdout(Stdio::piped()).spawn()?;
    /// let mut comm = child.communicate(b"")?;
    /// assert!(comm.wait()?.status.success());
    /// assert!(comm.status().unwrap().success());
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn status(&self) -> Option<ExitStatus> {
        self.session.status()
    }
}

impl fmt::Debug for Communication<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Communication")
            .field("pid", &self.session.children[0].pid())
            .field("stdout_len", &self.session.captured(Stream::Stdout).len())
            .field("stderr_len", &self.session.captured(Stream::Stderr).len())
            .field("status", &self.session.status())
            .field("done", &self.done)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_trailing_newlines() {
        assert_eq!(trim_newlines("a\n\n"), "a");
        assert_eq!(trim_newlines("a\r\n"), "a");
        assert_eq!(trim_newlines(" a \n"), " a ");
        assert_eq!(trim_newlines("a\rb"), "a\rb");
        assert_eq!(trim_newlines("\n"), "");
        assert_eq!(trim_newlines(""), "");
    }

    #[test]
    fn sink_limit_is_exact() {
        use std::io::Write;
        for (written, over) in [(10, false), (11, true)] {
            let (rd, wr) = crate::sys::pipe::pipe().unwrap();
            crate::sys::pipe::set_nonblocking(&rd, true).unwrap();
            std::fs::File::from(wr).write_all(&vec![b'x'; written]).unwrap();
            let mut sink =
                Sink::new(Some(rd), Stream::Stdout, Some(10), Overflow::Kill, Delivery::Buffered);
            let mut scratch = Vec::new();
            let mut last = Drained::Open;
            while last == Drained::Open {
                last = sink
                    .drain(
                        &mut scratch,
                        usize::MAX,
                        false,
                        &mut Emit { id: MuxId(0), events: &mut EventQueue::new() },
                    )
                    .unwrap();
            }
            assert_eq!(last == Drained::Over, over, "{written}");
            assert_eq!(sink.buf.len(), 10);
        }
    }

    #[test]
    fn a_hung_up_pipe_is_read_to_its_end_in_one_pass() {
        use std::io::Write;
        for hung_up in [false, true] {
            let (rd, wr) = crate::sys::pipe::pipe().unwrap();
            crate::sys::pipe::set_nonblocking(&rd, true).unwrap();
            std::fs::File::from(wr).write_all(b"hi\n").unwrap();
            let mut sink =
                Sink::new(Some(rd), Stream::Stdout, None, Overflow::Kill, Delivery::Buffered);
            let mut scratch = Vec::new();
            let mut events = EventQueue::new();
            let mut emit = Emit { id: MuxId(0), events: &mut events };
            let first = sink.drain(&mut scratch, usize::MAX, hung_up, &mut emit).unwrap();
            // A short read ends a pass (more may come later) unless poll() said the writer is
            // gone: then the end of file is read at once and the pipe closed.
            assert_eq!(first, if hung_up { Drained::Eof } else { Drained::Open });
            assert_eq!(sink.fd.is_none(), hung_up);
            assert_eq!(sink.buf, b"hi\n");
        }
    }

    #[test]
    fn sink_truncate_counts_what_it_drops() {
        use std::io::Write;
        let (rd, wr) = crate::sys::pipe::pipe().unwrap();
        std::fs::File::from(wr).write_all(&[7u8; 5000]).unwrap();
        let mut sink =
            Sink::new(Some(rd), Stream::Stdout, Some(100), Overflow::Truncate, Delivery::Buffered);
        let mut scratch = Vec::new();
        while sink
            .drain(
                &mut scratch,
                usize::MAX,
                false,
                &mut Emit { id: MuxId(0), events: &mut EventQueue::new() },
            )
            .unwrap()
            != Drained::Eof
        {}
        assert_eq!(sink.buf, vec![7u8; 100]);
        assert_eq!(sink.seen, 5000);
    }

    #[test]
    fn lines_are_cut_at_newlines_across_reads_and_the_last_comes_at_eof() {
        use std::io::Write;
        let (rd, wr) = crate::sys::pipe::pipe().unwrap();
        crate::sys::pipe::set_nonblocking(&rd, true).unwrap();
        let mut wr = std::fs::File::from(wr);
        let mut sink =
            Sink::new(Some(rd), Stream::Stderr, Some(9), Overflow::Kill, Delivery::Lines);
        let mut scratch = Vec::new();
        let mut events = EventQueue::new();
        let lines = |events: &mut EventQueue| -> Vec<Vec<u8>> {
            events
                .drain()
                .map(|e| match e {
                    Event::Line { stream: Stream::Stderr, line, .. } => line,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        wr.write_all(b"a\nb").unwrap();
        let mut emit = Emit { id: MuxId(1), events: &mut events };
        assert_eq!(sink.drain(&mut scratch, usize::MAX, false, &mut emit).unwrap(), Drained::Open);
        assert_eq!(lines(&mut events), [b"a".to_vec()]);
        wr.write_all(b"c\n\nde").unwrap();
        drop(wr);
        let mut emit = Emit { id: MuxId(1), events: &mut events };
        while sink.drain(&mut scratch, usize::MAX, false, &mut emit).unwrap() == Drained::Open {}
        assert_eq!(lines(&mut events), [b"bc".to_vec(), b"".to_vec(), b"de".to_vec()]);
        assert_eq!(sink.seen, 8);
    }

    #[test]
    fn a_kill_limit_on_lines_keeps_exactly_the_limit_and_drains_the_rest() {
        use std::io::Write;
        let (rd, wr) = crate::sys::pipe::pipe().unwrap();
        crate::sys::pipe::set_nonblocking(&rd, true).unwrap();
        std::fs::File::from(wr).write_all(b"0123\n5678\nabc\n").unwrap();
        let mut sink =
            Sink::new(Some(rd), Stream::Stdout, Some(7), Overflow::Kill, Delivery::Lines);
        let mut scratch = Vec::new();
        let mut events = EventQueue::new();
        let mut emit = Emit { id: MuxId(1), events: &mut events };
        assert_eq!(sink.drain(&mut scratch, usize::MAX, false, &mut emit).unwrap(), Drained::Over);
        // Still open: the rest is read and dropped, so the child never meets a closed pipe.
        assert!(sink.fd.is_some());
        while sink.drain(&mut scratch, usize::MAX, false, &mut emit).unwrap() != Drained::Eof {}
        let kept: Vec<_> = events
            .iter()
            .map(|e| match e {
                Event::Line { line, .. } => line.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kept, [b"0123".to_vec(), b"56".to_vec()]);
        assert_eq!(sink.seen, 14);
    }
}
