//! Message channels between a parent and its child, wire-compatible with Node's `fork()`.
//!
//! A parent asks for a channel with [`Command::ipc`](crate::Command::ipc) and takes the two
//! halves with [`Child::take_channel`](crate::Child::take_channel); a child, whatever started
//! it (a Node parent, an offspring parent), joins with [`attach`]. Either side gets a
//! [`Sender`] and a [`Receiver`] in crossbeam's shape.
//!
//! ```
//! use offspring::{ipc, Command};
//! // A Node worker that sends every message back (a Rust one would call `ipc::attach()`).
//! let child = Command::new("node")
//!     .args(["-e", "process.on('message', m => process.send(m))"])
//!     .ipc(ipc::Options::new())
//!     .spawn();
//! # let Ok(mut child) = child else { return Ok(()) }; // no node on this machine
//! let (tx, rx) = child.take_channel().unwrap();
//! tx.send(br#"{"hello":["world",1]}"#)?;
//! assert_eq!(rx.recv()?.as_bytes(), br#"{"hello":["world",1]}"#);
//! drop(tx); // the child sees the channel close and exits
//! assert!(child.wait()?.success());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The wire
//!
//! The socket is `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`; the child's end is placed
//! at fd 3 (or the [`Options::fd`] chosen) through [`Command::fd`](crate::Command::fd), and
//! the child is told with `NODE_CHANNEL_FD` and `NODE_CHANNEL_SERIALIZATION_MODE=json`, as
//! Node does. Messages are JSON text, one compact value per line: the bytes are checked, never
//! parsed into a tree, so the default build needs no JSON library. Nothing that would kill a Node peer
//! can be sent: not an empty line, not invalid JSON, not a user message that Node would take
//! for one of its own (`{"cmd":"NODE_..."}`). [`Framing::Binary`] replaces the lines by
//! length-prefixed frames of any bytes, for Rust-to-Rust channels.
//! The `serde` feature adds `Sender::send_value` and `Message::deserialize`.
//!
//! # Threads
//!
//! Each channel has one **reader thread** (`offspring-ipc-read`), from the start: it blocks
//! in `recvmsg`, decodes frames, answers Node's handle handshake, and feeds a bounded
//! crossbeam channel of [`Message`]s. That is what lets a [`Receiver`] sit in a
//! `crossbeam_channel::Select` beside [`Child::exit_receiver`](crate::Child::exit_receiver)
//! and timers (see [`Receiver::as_crossbeam`]), and what lets fd-passing acknowledgements
//! arrive while the caller is busy. When its queue is full it stops reading, so a peer that
//! floods a receiver that does not keep up is slowed down by the kernel, not buffered without
//! bound.
//!
//! Writes happen on the caller's thread when the channel is idle (a send after a receive,
//! or after a pause: the request/response case, one `sendmsg`, no hand-off). Sends that come
//! back to back are appended to a buffer instead and a **writer thread**
//! (`offspring-ipc-write`, started on first need) writes everything that queued while its
//! previous write was in flight in one `sendmsg`: that is where the throughput comes from.
//! The buffer is bounded ([`Options::max_queued_bytes`]): past it, [`Sender::send`] blocks
//! and [`Sender::try_send`] returns [`SendError::Full`]. Order is kept either way.
//!
//! Both threads end when the channel ends: the reader at end of stream, the writer when the
//! last [`Sender`] is gone and what it queued is written.
//!
//! # Disconnect
//!
//! There is no disconnect message in the protocol: closing is end of stream. Dropping the
//! last [`Sender`] (or [`Sender::disconnect`]) flushes what was queued and then shuts the
//! socket for writing, which a Node peer sees as `'disconnect'`; when the peer closes or dies,
//! [`Receiver::recv`] returns the messages it sent first, then [`RecvError::Disconnected`].
//! Malformed input from the peer drops the connection with the reason
//! ([`RecvError::Malformed`]).
//!
//! # Passing fds
//!
//! [`Sender::send_fd`] sends an fd with `SCM_RIGHTS` in Node's `NODE_HANDLE` message and
//! waits for the peer's `NODE_HANDLE_ACK`, so a listening socket can go to a Node worker, and
//! one from a Node parent (`child.send(msg, server)`) arrives as a [`Message`] whose
//! [`Message::take_fd`] returns it. Every fd received is `O_CLOEXEC` from the start
//! (`MSG_CMSG_CLOEXEC`) and owned by a [`Message`] or closed.
//!
//! # Ready handshake
//!
//! A child calls [`Sender::send_ready`] when it can take work; the parent waits with
//! [`Receiver::wait_ready_deadline`]. On the wire this is `{"cmd":"NODE_OFFSPRING_READY"}`, an
//! internal message that a Node parent ignores and a Node child can send with
//! `process.send({cmd: 'NODE_OFFSPRING_READY'})`.

mod frame;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::mem;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use self::frame::{
    Decoder, Frame, FrameError, Framing, DEFAULT_MAX_MESSAGE_SIZE, MAX_JSON_DEPTH,
};
use crate::command::ChildFd;
use crate::error::{Error, ErrorKind, Stage};
use crate::sys::socket;

/// The internal message of the ready handshake.
const READY: &[u8] = br#"{"cmd":"NODE_OFFSPRING_READY"}"#;
const HANDLE_ACK: &[u8] = br#"{"cmd":"NODE_HANDLE_ACK"}"#;
const HANDLE_NACK: &[u8] = br#"{"cmd":"NODE_HANDLE_NACK"}"#;

/// The value of `NODE_CHANNEL_SERIALIZATION_MODE` for [`Framing::Binary`] (Node has no such
/// mode: a Node child refuses it).
const BINARY_MODE: &str = "offspring-binary";

/// A send that follows the previous one by more than this is written on the caller's thread.
const INLINE_GAP: Duration = Duration::from_micros(50);

/// Received fds waiting for their `NODE_HANDLE` message; more are closed.
const MAX_PENDING_FDS: usize = 64;

/// How a channel is set up: the child's fd number, the framing and the limits.
///
/// # Examples
///
/// ```
/// use offspring::{ipc, ChildFd};
/// let opts = ipc::Options::new()
///     .fd(ChildFd::new(4).unwrap())
///     .max_message_size(1 << 20)
///     .queue_capacity(64);
/// assert_eq!(opts.get_fd().get(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    fd: ChildFd,
    framing: Framing,
    max_message_size: usize,
    queue_capacity: usize,
    max_queued_bytes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options::new()
    }
}

impl Options {
    /// Node's defaults: fd 3, JSON framing; messages up to
    /// [`DEFAULT_MAX_MESSAGE_SIZE`], 1024 received messages queued, 1 MiB of unsent bytes.
    pub fn new() -> Options {
        Options {
            fd: ChildFd::new(3).expect("3 is a valid child fd"),
            framing: Framing::Json,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            queue_capacity: 1024,
            max_queued_bytes: 1 << 20,
        }
    }

    /// The child's fd number for the channel (`NODE_CHANNEL_FD`; default 3).
    pub fn fd(mut self, fd: ChildFd) -> Options {
        self.fd = fd;
        self
    }

    /// The framing (default [`Framing::Json`], the only one a Node peer speaks).
    pub fn framing(mut self, framing: Framing) -> Options {
        self.framing = framing;
        self
    }

    /// The largest message accepted from the peer or sent to it, in bytes. A larger one from
    /// the peer drops the connection ([`RecvError::Malformed`]); a larger one to send is
    /// [`SendError::Invalid`].
    pub fn max_message_size(mut self, bytes: usize) -> Options {
        self.max_message_size = bytes;
        self
    }

    /// How many received messages wait for [`Receiver::recv`] before the reader thread stops
    /// reading the socket (at least 1).
    pub fn queue_capacity(mut self, messages: usize) -> Options {
        self.queue_capacity = messages.max(1);
        self
    }

    /// How many unsent bytes may queue before [`Sender::send`] blocks. One message larger
    /// than this is still taken when nothing else is queued.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Options {
        self.max_queued_bytes = bytes;
        self
    }

    /// The child's fd number.
    pub fn get_fd(&self) -> ChildFd {
        self.fd
    }

    /// The value for `NODE_CHANNEL_SERIALIZATION_MODE`.
    pub(crate) fn mode_env(&self) -> &'static str {
        match self.framing {
            Framing::Json => "json",
            Framing::Binary => BINARY_MODE,
        }
    }
}

/// What kind of handle an fd sent with [`Sender::send_fd`] is, as Node names it in the
/// `NODE_HANDLE` message (a Node receiver builds the matching object from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandleKind {
    /// A listening TCP or Unix socket: `net.Server` (Node calls `server.listen(handle)`).
    Server,
    /// A connected stream socket: `net.Socket`.
    Socket,
    /// A UDP socket: `dgram.Socket`.
    UdpSocket,
    /// Any other fd: `net.Native` (a Node receiver hands over the raw handle).
    Native,
}

impl HandleKind {
    /// Node's name for it (`"net.Server"`...).
    pub fn as_str(self) -> &'static str {
        match self {
            HandleKind::Server => "net.Server",
            HandleKind::Socket => "net.Socket",
            HandleKind::UdpSocket => "dgram.Socket",
            HandleKind::Native => "net.Native",
        }
    }
}

/// A message from the peer: JSON text (or, with [`Framing::Binary`], any bytes), and the fd
/// that came with it, if the peer passed one.
///
/// # Drop behavior
///
/// A received fd that was not taken with [`Message::take_fd`] is closed.
pub struct Message {
    data: Vec<u8>,
    fd: Option<OwnedFd>,
    kind: Option<String>,
}

impl Message {
    /// The message's bytes: one JSON value, without the line end.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The message's bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// The message as text, if it is UTF-8 (JSON messages always are).
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }

    /// Takes the fd the peer passed with this message (`child.send(msg, handle)` in Node,
    /// [`Sender::send_fd`] here). It is close-on-exec. Its other flags are the sender's:
    /// Node's sockets are `O_NONBLOCK`, and that flag is shared with every copy of the fd, so
    /// set it as you need it (`TcpListener::set_nonblocking(false)` to block in `accept`).
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fd.take()
    }

    /// The handle's kind as the peer named it (`"net.Server"`...), for a message that came
    /// with an fd.
    pub fn handle_kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    /// Deserializes the JSON message.
    ///
    /// # Errors
    ///
    /// The text does not match `T` (a lone surrogate escape such as `"\ud800"`, which Node
    /// writes for such strings, does not fit a `String`).
    #[cfg(feature = "serde")]
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.data)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("data", &String::from_utf8_lossy(&self.data));
        if let Some(fd) = &self.fd {
            d.field("fd", fd).field("kind", &self.kind);
        }
        d.finish()
    }
}

/// Why a message was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// [`Sender::try_send`]: the send buffer is full (the peer is not reading fast enough).
    Full,
    /// The deadline passed with the buffer still full (or, for [`Sender::send_fd`], before
    /// the peer acknowledged the fd).
    Timeout,
    /// The channel is closed: the peer closed it or died, or this side disconnected.
    Disconnected,
    /// The message is not valid for the channel: not one JSON value, an internal
    /// (`NODE_...`) command, or over the size limit. Nothing was sent.
    Invalid(FrameError),
    /// The peer answered `NODE_HANDLE_NACK`: it did not take the fd.
    Refused,
    /// The socket failed with this error.
    Io(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full => f.write_str("IPC send buffer is full"),
            SendError::Timeout => f.write_str("IPC send timed out"),
            SendError::Disconnected => f.write_str("IPC channel is closed"),
            SendError::Invalid(e) => write!(f, "IPC message refused: {e}"),
            SendError::Refused => f.write_str("the peer refused the fd (NODE_HANDLE_NACK)"),
            SendError::Io(e) => write!(f, "IPC channel failed: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why no message was received.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// [`Receiver::try_recv`]: nothing is waiting.
    Empty,
    /// The deadline passed.
    Timeout,
    /// The peer closed the channel or died, and every message it sent has been received.
    Disconnected,
    /// The peer sent something that is not a valid frame (invalid JSON, an empty line, a
    /// message over the size limit); the connection was dropped. Earlier messages were
    /// delivered.
    Malformed(String),
    /// Reading the socket failed with this error.
    Io(String),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Empty => f.write_str("no IPC message is waiting"),
            RecvError::Timeout => f.write_str("IPC receive timed out"),
            RecvError::Disconnected => f.write_str("IPC channel is closed"),
            RecvError::Malformed(e) => write!(f, "IPC peer sent a malformed message: {e}"),
            RecvError::Io(e) => write!(f, "IPC channel failed: {e}"),
        }
    }
}

impl std::error::Error for RecvError {}

/// How the channel ended, as the reader thread saw it.
#[derive(Clone, Debug)]
enum Closed {
    Eof,
    Malformed(String),
    Io(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ack {
    Idle,
    Waiting,
    Acked,
    Nacked,
}

struct Pending {
    start: usize,
    len: usize,
    fd: OwnedFd,
}

/// The send side's state, under one lock.
struct Out {
    buf: Vec<u8>,
    handles: Vec<Pending>,
    in_flight: bool,
    writer: bool,
    closing: bool,
    broken: Option<SendError>,
    last_send: Option<Instant>,
    seen: u64,
    writes: u64,
    /// Threads waiting for room or a flush, and whether the writer thread waits for work:
    /// a condition variable's notify is a system call, so it is made only when someone waits.
    room_waiters: usize,
    writer_waiting: bool,
}

struct ReadState {
    dec: Decoder,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
    pending: VecDeque<OwnedFd>,
    closed: bool,
    /// The queue's sending end, until the reader thread takes it.
    tx: Option<crossbeam_channel::Sender<Message>>,
}

enum Pumped {
    Message(Message),
    Empty,
    Closed,
}

struct Events {
    ready: bool,
    ack: Ack,
    closed: Option<Closed>,
}

struct Shared {
    sock: OwnedFd,
    framing: Framing,
    limit: usize,
    max_queued: usize,
    out: Mutex<Out>,
    /// The writer thread waits here for work.
    work: Condvar,
    /// Senders wait here for room, flushes for an empty buffer.
    room: Condvar,
    events: Mutex<Events>,
    events_cv: Condvar,
    /// The read side: the decoder and the fds not yet claimed, used by whichever thread
    /// reads (the caller's, or the reader thread once started).
    read: Mutex<ReadState>,
    /// The reader thread has been started: receivers use the crossbeam queue.
    threaded: AtomicBool,
    /// Reads done by the reader thread: a send after one is a reply, written at once.
    reads: AtomicU64,
    senders: AtomicUsize,
    receivers: AtomicUsize,
    /// A pipe to poke (one byte, never blocking) when the reader thread has queued a
    /// message, seen the ready handshake or seen the channel close: how the supervisor's
    /// `poll()` loop learns of it without a thread of its own. Taken back with
    /// [`Receiver::notify_off`] before the pipe's read end closes (no `SIGPIPE`).
    notify: Mutex<Option<OwnedFd>>,
    /// Whether `notify` may hold a pipe: spares every other channel the lock.
    notifying: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone, Copy)]
enum Wait {
    No,
    Until(Option<Instant>),
}

fn io_reason(e: &io::Error) -> SendError {
    match e.raw_os_error() {
        Some(libc_epipe) if libc_epipe == rustix::io::Errno::PIPE.raw_os_error() => {
            SendError::Disconnected
        }
        Some(reset) if reset == rustix::io::Errno::CONNRESET.raw_os_error() => {
            SendError::Disconnected
        }
        _ => SendError::Io(e.to_string()),
    }
}

impl Shared {
    /// Queues (or writes at once) one message; `pass` is the fd of a `NODE_HANDLE`.
    fn send(
        self: &Arc<Self>,
        msg: &[u8],
        internal: bool,
        pass: Option<OwnedFd>,
        wait: Wait,
    ) -> Result<(), SendError> {
        frame::check(self.framing, msg, internal, self.limit).map_err(SendError::Invalid)?;
        let mut out = lock(&self.out);
        loop {
            if let Some(e) = &out.broken {
                return Err(e.clone());
            }
            if out.closing && !internal {
                return Err(SendError::Disconnected);
            }
            // Internal replies (acknowledgements) are tiny and never wait.
            if internal || out.buf.is_empty() || out.buf.len() + msg.len() <= self.max_queued {
                break;
            }
            out = match wait {
                Wait::No => return Err(SendError::Full),
                Wait::Until(None) => self.wait_room(out, None).0,
                Wait::Until(Some(d)) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(SendError::Timeout);
                    }
                    self.wait_room(out, Some(d - now)).0
                }
            };
        }
        let now = Instant::now();
        let reads = self.reads.load(Ordering::Relaxed);
        let idle = reads != out.seen || out.last_send.map_or(true, |t| now - t > INLINE_GAP);
        out.last_send = Some(now);
        out.seen = reads;
        let has_newline = self.framing == Framing::Json && msg.contains(&b'\n');
        if idle && pass.is_none() && !has_newline && out.buf.is_empty() && !out.in_flight {
            // Write it now, on this thread, without blocking.
            out.in_flight = true;
            drop(out);
            let header = frame::binary_header(msg.len(), internal);
            let (before, after): (&[u8], &[u8]) = match self.framing {
                Framing::Json => (&[], b"\n"),
                Framing::Binary => (&header, &[]),
            };
            let total = before.len() + msg.len() + after.len();
            let iov = [IoSlice::new(before), IoSlice::new(msg), IoSlice::new(after)];
            let r = socket::send(self.sock.as_fd(), &iov, None, true);
            let mut out = lock(&self.out);
            out.in_flight = false;
            let written = match r {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => {
                    let err = io_reason(&e);
                    out.broken = Some(err.clone());
                    self.room.notify_all();
                    self.work.notify_all();
                    return Err(err);
                }
            };
            if written < total {
                // The socket is full: the rest goes first in the queue.
                let mut rest = Vec::with_capacity(total - written);
                for part in [before, msg, after] {
                    rest.extend_from_slice(part);
                }
                rest.drain(..written);
                let shift = rest.len();
                out.buf.splice(0..0, rest);
                for h in &mut out.handles {
                    h.start += shift;
                }
            }
            if !out.buf.is_empty() {
                self.start_writer(&mut out)?;
                self.wake_writer(&out);
            }
            self.wake_room(&out);
            return Ok(());
        }
        let start = out.buf.len();
        // Checked above, before the lock.
        frame::append(self.framing, msg, internal, &mut out.buf);
        if let Some(fd) = pass {
            let len = out.buf.len() - start;
            out.handles.push(Pending { start, len, fd });
        }
        self.start_writer(&mut out)?;
        self.wake_writer(&out);
        Ok(())
    }

    /// Waits on `room` (for at most `timeout`); `true` if the timeout passed.
    fn wait_room<'a>(
        &'a self,
        mut out: MutexGuard<'a, Out>,
        timeout: Option<Duration>,
    ) -> (MutexGuard<'a, Out>, bool) {
        out.room_waiters += 1;
        let (mut out, timed_out) = match timeout {
            None => (self.room.wait(out).unwrap_or_else(|p| p.into_inner()), false),
            Some(t) => {
                let (o, r) = self.room.wait_timeout(out, t).unwrap_or_else(|p| p.into_inner());
                (o, r.timed_out())
            }
        };
        out.room_waiters -= 1;
        (out, timed_out)
    }

    fn wake_room(&self, out: &Out) {
        if out.room_waiters > 0 {
            self.room.notify_all();
        }
    }

    fn wake_writer(&self, out: &Out) {
        if out.writer_waiting {
            self.work.notify_one();
        }
    }

    fn start_writer(self: &Arc<Self>, out: &mut Out) -> Result<(), SendError> {
        if out.writer {
            return Ok(());
        }
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("offspring-ipc-write".into())
            .spawn(move || me.writer_loop())
            .map_err(|e| SendError::Io(format!("starting the IPC writer thread: {e}")))?;
        out.writer = true;
        Ok(())
    }

    fn writer_loop(&self) {
        let mut spare = Vec::new();
        loop {
            let mut out = lock(&self.out);
            loop {
                if out.broken.is_some() || (out.closing && out.buf.is_empty() && !out.in_flight) {
                    out.writer = false;
                    if out.broken.is_none() {
                        socket::shutdown(self.sock.as_fd(), false);
                    }
                    self.room.notify_all();
                    return;
                }
                if !out.buf.is_empty() && !out.in_flight {
                    break;
                }
                out.writer_waiting = true;
                out = self.work.wait(out).unwrap_or_else(|p| p.into_inner());
                out.writer_waiting = false;
            }
            out.in_flight = true;
            let data = mem::replace(&mut out.buf, mem::take(&mut spare));
            let handles = mem::take(&mut out.handles);
            drop(out);
            let r = self.write_all(&data, handles);
            let mut out = lock(&self.out);
            out.in_flight = false;
            out.writes += 1;
            if let Err(e) = r {
                out.broken = Some(io_reason(&e));
                out.buf.clear();
                out.handles.clear();
            }
            spare = data;
            spare.clear();
            if spare.capacity() > 4 * self.max_queued.max(64 * 1024) {
                spare = Vec::new();
            }
            self.wake_room(&out);
        }
    }

    /// Writes `data`, each pending handle's frame in a `sendmsg` of its own with its fd.
    fn write_all(&self, data: &[u8], handles: Vec<Pending>) -> io::Result<()> {
        let mut pos = 0;
        for h in handles {
            self.write_plain(&data[pos..h.start])?;
            let frame = &data[h.start..h.start + h.len];
            let n =
                socket::send(self.sock.as_fd(), &[IoSlice::new(frame)], Some(h.fd.as_fd()), false)?;
            self.write_plain(&frame[n..])?;
            pos = h.start + h.len;
        }
        self.write_plain(&data[pos..])
    }

    fn write_plain(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = socket::send(self.sock.as_fd(), &[IoSlice::new(data)], None, false)?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Waits until everything queued is written, the channel broke, or `deadline` passed;
    /// with `give_up`, also stops after a second in which no write completed.
    fn flush(&self, deadline: Option<Instant>, give_up: bool) -> Result<(), SendError> {
        let mut out = lock(&self.out);
        loop {
            if let Some(e) = &out.broken {
                return Err(e.clone());
            }
            if out.buf.is_empty() && !out.in_flight {
                return Ok(());
            }
            let mut step = Duration::from_secs(1);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Err(SendError::Timeout);
                }
                step = step.min(d - now);
            }
            let before = out.writes;
            let (o, timed_out) = self.wait_room(out, Some(step));
            out = o;
            if give_up && timed_out && out.writes == before {
                return Err(SendError::Timeout);
            }
        }
    }

    /// The last sender is gone (or disconnect was asked): flush, then end our writing.
    fn close_sending(&self, both: bool) {
        let flushed = self.flush(None, true).is_ok();
        let mut out = lock(&self.out);
        out.closing = true;
        self.work.notify_all();
        let writer = out.writer;
        drop(out);
        if flushed || !writer {
            socket::shutdown(self.sock.as_fd(), false);
        }
        if both || self.receivers.load(Ordering::SeqCst) == 0 {
            socket::shutdown(self.sock.as_fd(), true);
        }
    }

    /// Reads until the next user message, on the calling thread, with the read state locked.
    fn pump(self: &Arc<Self>, rs: &mut ReadState, wait: Wait) -> Pumped {
        loop {
            match rs.dec.next_frame() {
                Ok(Some(frame)) => {
                    if !frame.internal {
                        return Pumped::Message(Message { data: frame.data, fd: None, kind: None });
                    }
                    if let Some(m) = self.internal(frame.data, &mut rs.pending) {
                        return Pumped::Message(m);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    socket::shutdown(self.sock.as_fd(), true);
                    return self.close(rs, Closed::Malformed(e.to_string()));
                }
            }
            if rs.closed {
                return Pumped::Closed;
            }
            let dont_wait = match wait {
                Wait::Until(None) => false,
                Wait::No | Wait::Until(Some(_)) => true,
            };
            let r = socket::recv(self.sock.as_fd(), &mut rs.buf, &mut rs.fds, dont_wait);
            let n = match r {
                Ok((n, _truncated)) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let Wait::Until(Some(deadline)) = wait else { return Pumped::Empty };
                    let now = Instant::now();
                    if now >= deadline {
                        return Pumped::Empty;
                    }
                    match socket::wait_readable(self.sock.as_fd(), deadline - now) {
                        Ok(_) => continue,
                        Err(e) => return self.close(rs, Closed::Io(e.to_string())),
                    }
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::CONNRESET.raw_os_error()) => {
                    return self.close(rs, Closed::Eof)
                }
                Err(e) => return self.close(rs, Closed::Io(e.to_string())),
            };
            let ReadState { fds, pending, .. } = rs;
            pending.extend(fds.drain(..));
            while pending.len() > MAX_PENDING_FDS {
                pending.pop_front();
            }
            if n == 0 {
                return self.close(rs, Closed::Eof);
            }
            self.reads.fetch_add(1, Ordering::Relaxed);
            let ReadState { dec, buf, .. } = rs;
            dec.push(&buf[..n]);
        }
    }

    fn close(&self, rs: &mut ReadState, why: Closed) -> Pumped {
        rs.closed = true;
        rs.pending.clear();
        let mut ev = lock(&self.events);
        ev.closed.get_or_insert(why);
        self.events_cv.notify_all();
        Pumped::Closed
    }

    /// Hands reading over to the reader thread (for `Select`, fd acknowledgements, the ready
    /// handshake, or several receiving threads). Once only.
    fn start_reader(self: &Arc<Self>) {
        if self.threaded.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("offspring-ipc-read".into())
            .spawn(move || me.reader_loop());
        if let Err(e) = spawned {
            // Without a thread nobody feeds the queue: say why to every receiver.
            let mut rs = lock(&self.read);
            rs.tx = None;
            self.close(&mut rs, Closed::Io(format!("starting the IPC reader thread: {e}")));
        }
    }

    fn reader_loop(self: &Arc<Self>) {
        let Some(tx) = lock(&self.read).tx.take() else { return };
        let mut deliver = Some(tx);
        loop {
            let mut rs = lock(&self.read);
            let msg = match self.pump(&mut rs, Wait::Until(None)) {
                Pumped::Message(m) => m,
                _ => break,
            };
            drop(rs);
            if let Some(tx) = &deliver {
                if tx.send(msg).is_err() {
                    // Every receiver is gone: keep reading for acknowledgements only.
                    deliver = None;
                } else {
                    self.poke();
                }
            }
        }
        // Dropping `deliver` tells the receivers the channel closed.
        drop(deliver);
        self.poke();
    }

    /// Writes one byte to the [`notify`](Shared::notify) pipe, if there is one. A full pipe
    /// already means "look".
    fn poke(&self) {
        if self.notifying.load(Ordering::Acquire) {
            if let Some(fd) = &*lock(&self.notify) {
                let _ = rustix::io::write(fd, &[1]);
            }
        }
    }

    /// Handles an internal message; returns the user message a `NODE_HANDLE` carries.
    fn internal(
        self: &Arc<Self>,
        data: Vec<u8>,
        pending: &mut VecDeque<OwnedFd>,
    ) -> Option<Message> {
        let top = frame::scan_json(&data).ok()?;
        match top.cmd.as_deref()? {
            "NODE_HANDLE" => {
                let Some(fd) = pending.pop_front() else {
                    self.reply(HANDLE_NACK);
                    return None;
                };
                self.reply(HANDLE_ACK);
                let data = top.msg.map_or_else(|| b"null".to_vec(), |r| data[r].to_vec());
                Some(Message { data, fd: Some(fd), kind: top.kind })
            }
            cmd @ ("NODE_HANDLE_ACK" | "NODE_HANDLE_NACK") => {
                let mut ev = lock(&self.events);
                // An acknowledgement nobody waits for is ignored.
                if ev.ack == Ack::Waiting {
                    ev.ack = if cmd == "NODE_HANDLE_ACK" { Ack::Acked } else { Ack::Nacked };
                    self.events_cv.notify_all();
                }
                None
            }
            "NODE_OFFSPRING_READY" => {
                lock(&self.events).ready = true;
                self.events_cv.notify_all();
                self.poke();
                None
            }
            // Node's other internal messages (NODE_CLUSTER...) are not for us.
            _ => None,
        }
    }

    fn reply(self: &Arc<Self>, msg: &[u8]) {
        // Never blocks; fails only when the channel is closing, when no answer is needed.
        let _ = self.send(msg, true, None, Wait::No);
    }
}

/// Opens a channel over a connected `AF_UNIX` stream socket: the parent's end from
/// [`Child::take_channel`](crate::Child::take_channel) is made this way, and so is the child's
/// in [`attach`]. Use it directly for a socket pair of your own.
///
/// # Errors
///
/// `fd` is not an `AF_UNIX` stream socket, or the reader thread could not start.
///
/// # Examples
///
/// ```
/// use offspring::ipc;
/// use std::os::unix::net::UnixStream;
/// let (a, b) = UnixStream::pair()?;
/// let (tx, _rx) = ipc::channel(a.into(), &ipc::Options::new())?;
/// let (_tx2, rx2) = ipc::channel(b.into(), &ipc::Options::new())?;
/// tx.send(b"[1,2,3]")?;
/// assert_eq!(rx2.recv()?.as_bytes(), b"[1,2,3]");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel(fd: OwnedFd, options: &Options) -> io::Result<(Sender, Receiver)> {
    socket::check_unix_stream(fd.as_fd()).map_err(|what| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("the IPC fd {what}"))
    })?;
    let (tx, rx) = crossbeam_channel::bounded(options.queue_capacity);
    let shared = Arc::new(Shared {
        sock: fd,
        framing: options.framing,
        limit: options.max_message_size,
        max_queued: options.max_queued_bytes,
        out: Mutex::new(Out {
            buf: Vec::new(),
            handles: Vec::new(),
            in_flight: false,
            writer: false,
            closing: false,
            broken: None,
            last_send: None,
            seen: 0,
            writes: 0,
            room_waiters: 0,
            writer_waiting: false,
        }),
        work: Condvar::new(),
        room: Condvar::new(),
        events: Mutex::new(Events { ready: false, ack: Ack::Idle, closed: None }),
        events_cv: Condvar::new(),
        read: Mutex::new(ReadState {
            dec: Decoder::new(options.framing, options.max_message_size),
            buf: vec![0; 64 * 1024],
            fds: Vec::new(),
            pending: VecDeque::new(),
            closed: false,
            tx: Some(tx),
        }),
        threaded: AtomicBool::new(false),
        reads: AtomicU64::new(0),
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
        notify: Mutex::new(None),
        notifying: AtomicBool::new(false),
    });
    Ok((Sender { shared: Arc::clone(&shared) }, Receiver { shared, rx }))
}

/// Joins the channel this process's parent set up (`NODE_CHANNEL_FD`), from a Node parent
/// (`fork()`, or `spawn` with `'ipc'` in `stdio`) or an offspring parent
/// ([`Command::ipc`](crate::Command::ipc)).
///
/// It removes `NODE_CHANNEL_FD` and `NODE_CHANNEL_SERIALIZATION_MODE` from the environment
/// (so that the children this process starts do not inherit them; offspring also leaves
/// them out of every child's environment), checks that the fd is an `AF_UNIX` stream socket,
/// makes it close-on-exec, and starts the reader thread. Call it early in `main`, before other
/// threads run: changing the environment is not thread-safe in C.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] when `NODE_CHANNEL_FD` is not set or not a number, when the
/// fd is not a Unix stream socket, or when the mode is `advanced` (V8's serializer, which
/// offspring does not speak: fork with `serialization: 'json'`) or unknown; an
/// [`ErrorKind::Io`] error when the fd is not open.
#[doc(alias = "process.send")]
pub fn attach() -> crate::Result<(Sender, Receiver)> {
    attach_with(Options::new())
}

/// [`attach`] with limits of your own; the framing comes from the parent.
///
/// # Errors
///
/// As [`attach`].
pub fn attach_with(options: Options) -> crate::Result<(Sender, Receiver)> {
    let bad = |msg: String| Error::new(ErrorKind::InvalidInput, Stage::Setup, msg);
    let fd_var = std::env::var_os("NODE_CHANNEL_FD");
    let mode = std::env::var_os("NODE_CHANNEL_SERIALIZATION_MODE");
    std::env::remove_var("NODE_CHANNEL_FD");
    std::env::remove_var("NODE_CHANNEL_SERIALIZATION_MODE");
    let fd_var = fd_var.ok_or_else(|| {
        bad("NODE_CHANNEL_FD is not set: this process was not started with an IPC channel".into())
    })?;
    let raw = fd_var
        .to_str()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<i32>().ok())
        .ok_or_else(|| bad(format!("NODE_CHANNEL_FD is not an fd number: {fd_var:?}")))?;
    let framing = match mode.as_ref().map(|m| m.to_str()) {
        None | Some(Some("json")) => Framing::Json,
        Some(Some(BINARY_MODE)) => Framing::Binary,
        Some(Some("advanced")) => {
            return Err(bad("NODE_CHANNEL_SERIALIZATION_MODE=advanced (V8's serializer) is not \
                 supported by offspring: start this process with serialization 'json'"
                .into()))
        }
        Some(_) => {
            return Err(bad(format!("unknown NODE_CHANNEL_SERIALIZATION_MODE {mode:?}")));
        }
    };
    let fd = socket::adopt_channel_fd(raw)
        .map_err(|e| Error::os(Stage::Setup, e, format!("adopting NODE_CHANNEL_FD={raw}")))?;
    channel(fd, &options.framing(framing)).map_err(|e| {
        let kind = e.kind();
        let err = Error::os(Stage::Setup, e, format!("opening the IPC channel on fd {raw}"));
        if kind == io::ErrorKind::InvalidInput {
            bad(err.to_string())
        } else {
            err
        }
    })
}

/// The sending half of a channel. Clone it to send from several threads; messages from one
/// thread keep their order.
///
/// # Drop behavior
///
/// Dropping the last `Sender` writes what is still queued (waiting while the peer reads; it
/// gives up after a second in which the peer took nothing) and then shuts the socket for
/// writing: the peer sees the channel close (`'disconnect'` in Node). Messages the peer
/// sends afterwards still reach the [`Receiver`].
pub struct Sender {
    shared: Arc<Shared>,
}

impl Sender {
    /// Sends one message, blocking while the send buffer is full.
    ///
    /// In JSON framing `msg` must be one JSON value (whitespace, newlines included, is
    /// allowed around tokens; newlines become spaces on the wire), and must not be an object
    /// whose `cmd` starts with `NODE_`, which Node keeps for itself.
    ///
    /// # Errors
    ///
    /// [`SendError::Invalid`] (nothing is sent), [`SendError::Disconnected`],
    /// [`SendError::Io`].
    #[doc(alias = "process.send")]
    pub fn send(&self, msg: impl AsRef<[u8]>) -> Result<(), SendError> {
        self.shared.send(msg.as_ref(), false, None, Wait::Until(None))
    }

    /// Sends one message if the send buffer has room, never blocking.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`], and the errors of [`send`](Sender::send).
    pub fn try_send(&self, msg: impl AsRef<[u8]>) -> Result<(), SendError> {
        self.shared.send(msg.as_ref(), false, None, Wait::No)
    }

    /// Sends one message, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`SendError::Timeout`], and the errors of [`send`](Sender::send).
    pub fn send_timeout(&self, msg: impl AsRef<[u8]>, timeout: Duration) -> Result<(), SendError> {
        self.send_deadline(msg, crate::child::deadline_after(timeout))
    }

    /// Sends one message, waiting until `deadline` at most for room.
    ///
    /// # Errors
    ///
    /// [`SendError::Timeout`], and the errors of [`send`](Sender::send).
    pub fn send_deadline(&self, msg: impl AsRef<[u8]>, deadline: Instant) -> Result<(), SendError> {
        self.shared.send(msg.as_ref(), false, None, Wait::Until(Some(deadline)))
    }

    /// Serializes `value` with `serde_json` and sends it.
    ///
    /// # Errors
    ///
    /// As [`send`](Sender::send); a value that does not serialize is
    /// [`SendError::Invalid`].
    #[cfg(feature = "serde")]
    pub fn send_value<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        let bytes = serde_json::to_vec(value).map_err(|_| {
            SendError::Invalid(FrameError::InvalidJson { reason: "serde_json failed", offset: 0 })
        })?;
        self.send(bytes)
    }

    /// Tells the parent that this process is ready (the ready handshake; see
    /// [`Receiver::wait_ready`]).
    ///
    /// # Errors
    ///
    /// As [`send`](Sender::send).
    pub fn send_ready(&self) -> Result<(), SendError> {
        self.shared.send(READY, true, None, Wait::Until(None))
    }

    /// Sends `fd` (a copy of it: yours stays open) with the JSON message `msg`, in Node's
    /// `NODE_HANDLE` message, and waits for the peer to acknowledge it. A Node peer gets
    /// `msg` in its `'message'` event with the handle built from `kind` (a `net.Server` for
    /// [`HandleKind::Server`]); an offspring peer gets a [`Message`] with the fd.
    ///
    /// Only one fd is in flight at a time, as in Node: a second `send_fd` waits for the
    /// first one's acknowledgement. Ordinary messages are not held back. The receiver
    /// thread of this channel takes the acknowledgement, so keep receiving (or drop the
    /// [`Receiver`]) while sending fds.
    ///
    /// # Errors
    ///
    /// [`SendError::Refused`] when the peer answers `NODE_HANDLE_NACK`, and those of
    /// [`send`](Sender::send). In binary framing `msg` must be JSON too.
    #[doc(alias = "SCM_RIGHTS")]
    pub fn send_fd(
        &self,
        kind: HandleKind,
        fd: impl AsFd,
        msg: impl AsRef<[u8]>,
    ) -> Result<(), SendError> {
        self.send_fd_inner(kind, fd.as_fd(), msg.as_ref(), None)
    }

    /// [`send_fd`](Sender::send_fd), waiting at most until `deadline` for the
    /// acknowledgement. After a timeout the fd may still arrive; the next `send_fd` waits for
    /// its acknowledgement first.
    ///
    /// # Errors
    ///
    /// [`SendError::Timeout`], and those of [`send_fd`](Sender::send_fd).
    pub fn send_fd_deadline(
        &self,
        kind: HandleKind,
        fd: impl AsFd,
        msg: impl AsRef<[u8]>,
        deadline: Instant,
    ) -> Result<(), SendError> {
        self.send_fd_inner(kind, fd.as_fd(), msg.as_ref(), Some(deadline))
    }

    fn send_fd_inner(
        &self,
        kind: HandleKind,
        fd: std::os::fd::BorrowedFd<'_>,
        msg: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        frame::scan_json(msg).map_err(SendError::Invalid)?;
        let mut wrapped = Vec::with_capacity(msg.len() + 64);
        wrapped.extend_from_slice(br#"{"cmd":"NODE_HANDLE","type":""#);
        wrapped.extend_from_slice(kind.as_str().as_bytes());
        wrapped.extend_from_slice(br#"","msg":"#);
        wrapped.extend_from_slice(msg);
        wrapped.push(b'}');
        let copy =
            socket::dup(fd).map_err(|e| SendError::Io(format!("duplicating the fd: {e}")))?;
        let sh = &self.shared;
        // The acknowledgement must be read while this thread waits for it.
        sh.start_reader();
        let mut ev = lock(&sh.events);
        while ev.ack == Ack::Waiting {
            if ev.closed.is_some() {
                return Err(SendError::Disconnected);
            }
            ev = wait_events(sh, ev, deadline)?;
        }
        ev.ack = Ack::Waiting;
        drop(ev);
        let wait = Wait::Until(deadline);
        if let Err(e) = sh.send(&wrapped, true, Some(copy), wait) {
            lock(&sh.events).ack = Ack::Idle;
            return Err(e);
        }
        let mut ev = lock(&sh.events);
        loop {
            match ev.ack {
                Ack::Acked => {
                    ev.ack = Ack::Idle;
                    return Ok(());
                }
                Ack::Nacked => {
                    ev.ack = Ack::Idle;
                    return Err(SendError::Refused);
                }
                _ if ev.closed.is_some() => return Err(SendError::Disconnected),
                _ => ev = wait_events(sh, ev, deadline)?,
            }
        }
    }

    /// Waits until everything sent has been written to the socket (not necessarily read by
    /// the peer).
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] or [`SendError::Io`] if the channel broke first.
    pub fn flush(&self) -> Result<(), SendError> {
        self.shared.flush(None, false)
    }

    /// [`flush`](Sender::flush) with a deadline.
    ///
    /// # Errors
    ///
    /// [`SendError::Timeout`], and those of [`flush`](Sender::flush).
    pub fn flush_deadline(&self, deadline: Instant) -> Result<(), SendError> {
        self.shared.flush(Some(deadline), false)
    }

    /// Flushes, then closes the channel in both directions (Node's `disconnect()`): the peer
    /// sees it close, and this side's [`Receiver`] returns [`RecvError::Disconnected`] after
    /// the messages that had already arrived. Later sends return
    /// [`SendError::Disconnected`].
    pub fn disconnect(&self) {
        self.shared.close_sending(true);
    }
}

fn wait_events<'a>(
    sh: &'a Shared,
    ev: MutexGuard<'a, Events>,
    deadline: Option<Instant>,
) -> Result<MutexGuard<'a, Events>, SendError> {
    match deadline {
        None => Ok(sh.events_cv.wait(ev).unwrap_or_else(|p| p.into_inner())),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                return Err(SendError::Timeout);
            }
            Ok(sh.events_cv.wait_timeout(ev, d - now).unwrap_or_else(|p| p.into_inner()).0)
        }
    }
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        self.shared.senders.fetch_add(1, Ordering::SeqCst);
        Sender { shared: Arc::clone(&self.shared) }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            let closing = lock(&self.shared.out).closing;
            if !closing {
                self.shared.close_sending(false);
            }
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Sender { .. }")
    }
}

/// The receiving half of a channel. Clone it to receive on several threads (each message
/// goes to one of them).
///
/// # Drop behavior
///
/// When every `Receiver` and every [`Sender`] of a channel is gone, the socket is closed and
/// the reader thread ends. While a `Sender` remains, the reader thread keeps reading (to take
/// fd acknowledgements) and drops user messages.
pub struct Receiver {
    shared: Arc<Shared>,
    rx: crossbeam_channel::Receiver<Message>,
}

impl Receiver {
    fn closed(&self) -> RecvError {
        match &lock(&self.shared.events).closed {
            Some(Closed::Malformed(e)) => RecvError::Malformed(e.clone()),
            Some(Closed::Io(e)) => RecvError::Io(e.clone()),
            _ => RecvError::Disconnected,
        }
    }

    /// Waits for the next message.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once the peer has closed the channel and every message it
    /// sent was received; [`RecvError::Malformed`] or [`RecvError::Io`] if the channel broke.
    #[doc(alias = "message")]
    pub fn recv(&self) -> Result<Message, RecvError> {
        self.recv_inner(Wait::Until(None))
    }

    /// The next message if one is waiting, never blocking.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`], and those of [`recv`](Receiver::recv).
    pub fn try_recv(&self) -> Result<Message, RecvError> {
        self.recv_inner(Wait::No)
    }

    /// Waits at most `timeout` for the next message.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`], and those of [`recv`](Receiver::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message, RecvError> {
        self.recv_deadline(crate::child::deadline_after(timeout))
    }

    /// Waits until `deadline` at most for the next message.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`], and those of [`recv`](Receiver::recv).
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Message, RecvError> {
        self.recv_inner(Wait::Until(Some(deadline)))
    }

    fn recv_inner(&self, wait: Wait) -> Result<Message, RecvError> {
        let sh = &self.shared;
        if !sh.threaded.load(Ordering::SeqCst) {
            // Read on this thread, unless another thread is reading already: then the
            // reader thread takes over, so that no caller waits past its deadline for a lock.
            match sh.read.try_lock() {
                Ok(mut rs) if rs.tx.is_some() => {
                    return match sh.pump(&mut rs, wait) {
                        Pumped::Message(m) => Ok(m),
                        Pumped::Empty if matches!(wait, Wait::No) => Err(RecvError::Empty),
                        Pumped::Empty => Err(RecvError::Timeout),
                        Pumped::Closed => {
                            drop(rs);
                            Err(self.closed())
                        }
                    };
                }
                _ => sh.start_reader(),
            }
        }
        match wait {
            Wait::No => self.rx.try_recv().map_err(|e| match e {
                crossbeam_channel::TryRecvError::Empty => RecvError::Empty,
                crossbeam_channel::TryRecvError::Disconnected => self.closed(),
            }),
            Wait::Until(None) => self.rx.recv().map_err(|_| self.closed()),
            Wait::Until(Some(d)) => self.rx.recv_deadline(d).map_err(|e| match e {
                crossbeam_channel::RecvTimeoutError::Timeout => RecvError::Timeout,
                crossbeam_channel::RecvTimeoutError::Disconnected => self.closed(),
            }),
        }
    }

    /// The crossbeam receiver the reader thread feeds, to wait in a
    /// `crossbeam_channel::Select` (or `select!`) beside other channels, such as
    /// [`Child::exit_receiver`](crate::Child::exit_receiver). When it reports disconnection,
    /// [`recv`](Receiver::recv) tells why.
    ///
    /// ```
    /// use crossbeam_channel::Select;
    /// use offspring::{ipc, Command};
    /// let child = Command::new("node")
    ///     .args(["-e", "process.on('message', m => process.send(m))"])
    ///     .ipc(ipc::Options::new())
    ///     .spawn();
    /// # let Ok(mut child) = child else { return Ok(()) }; // no node on this machine
    /// let (tx, rx) = child.take_channel().unwrap();
    /// let exits = child.exit_receiver();
    /// tx.send(b"\"ping\"")?;
    /// let mut sel = Select::new();
    /// let msgs = sel.recv(rx.as_crossbeam());
    /// let exit = sel.recv(&exits);
    /// let op = sel.select();
    /// assert_eq!(op.index(), msgs);
    /// assert_eq!(op.recv(rx.as_crossbeam())?.as_bytes(), b"\"ping\"");
    /// # let _ = exit;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_crossbeam(&self) -> &crossbeam_channel::Receiver<Message> {
        self.shared.start_reader();
        &self.rx
    }

    /// Waits for the peer's ready handshake ([`Sender::send_ready`]). Returns at once if it
    /// already came.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] (or why the channel broke) if the channel closed first.
    pub fn wait_ready(&self) -> Result<(), RecvError> {
        self.ready_inner(None)
    }

    /// [`wait_ready`](Receiver::wait_ready), for at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`], and those of [`wait_ready`](Receiver::wait_ready).
    pub fn wait_ready_timeout(&self, timeout: Duration) -> Result<(), RecvError> {
        self.ready_inner(Some(crate::child::deadline_after(timeout)))
    }

    /// [`wait_ready`](Receiver::wait_ready), until `deadline` at most.
    ///
    /// ```
    /// use offspring::{ipc, Command};
    /// use std::time::{Duration, Instant};
    /// // A Node worker says it is ready; a Rust one calls `tx.send_ready()`.
    /// let child = Command::new("node")
    ///     .args(["-e", "process.send({cmd: 'NODE_OFFSPRING_READY'})"])
    ///     .ipc(ipc::Options::new())
    ///     .spawn();
    /// # let Ok(mut child) = child else { return Ok(()) }; // no node on this machine
    /// let (_tx, rx) = child.take_channel().unwrap();
    /// rx.wait_ready_deadline(Instant::now() + Duration::from_secs(10))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`], and those of [`wait_ready`](Receiver::wait_ready).
    pub fn wait_ready_deadline(&self, deadline: Instant) -> Result<(), RecvError> {
        self.ready_inner(Some(deadline))
    }

    /// Starts the reader thread, which from now on writes one byte to `wake` (a
    /// non-blocking pipe) whenever it queues a message, sees the ready handshake, or sees the
    /// channel close: for a `poll()` loop that serves many channels from one thread (the
    /// supervisor's).
    pub(crate) fn notify_on(&self, wake: OwnedFd) {
        *lock(&self.shared.notify) = Some(wake);
        self.shared.notifying.store(true, Ordering::Release);
        self.shared.start_reader();
    }

    /// Stops the pokes of [`notify_on`](Receiver::notify_on) and closes that pipe end: once
    /// this returns, the reader thread never writes to it again.
    pub(crate) fn notify_off(&self) {
        lock(&self.shared.notify).take();
    }

    /// `true` once the ready handshake has arrived.
    pub fn is_ready(&self) -> bool {
        lock(&self.shared.events).ready
    }

    fn ready_inner(&self, deadline: Option<Instant>) -> Result<(), RecvError> {
        let sh = &self.shared;
        if !lock(&sh.events).ready {
            // Someone must read while we wait; messages that come first are kept in order.
            sh.start_reader();
        }
        let mut ev = lock(&sh.events);
        loop {
            if ev.ready {
                return Ok(());
            }
            if ev.closed.is_some() {
                drop(ev);
                return Err(self.closed());
            }
            ev = match deadline {
                None => sh.events_cv.wait(ev).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(RecvError::Timeout);
                    }
                    sh.events_cv.wait_timeout(ev, d - now).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
    }
}

impl Clone for Receiver {
    fn clone(&self) -> Receiver {
        self.shared.receivers.fetch_add(1, Ordering::SeqCst);
        Receiver { shared: Arc::clone(&self.shared), rx: self.rx.clone() }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.shared.receivers.fetch_sub(1, Ordering::SeqCst) == 1
            && self.shared.senders.load(Ordering::SeqCst) == 0
        {
            socket::shutdown(self.shared.sock.as_fd(), true);
        }
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Receiver { .. }")
    }
}
