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
//! at fd 3 (or the [`Options::fd`] chosen) as an fd given with
//! [`Command::fd`](crate::Command::fd) would be, and the child is told with `NODE_CHANNEL_FD`
//! and `NODE_CHANNEL_SERIALIZATION_MODE=json`, as Node does. Both are set up per spawn: the
//! `Command` itself is not changed. Messages are JSON text, one compact value per line: the
//! bytes are checked, never parsed into a tree, so the default build needs no JSON library.
//! Nothing that would kill a Node peer can be sent: not an empty line, not invalid JSON, not a
//! user message that Node would take for one of its own (`{"cmd":"NODE_..."}`).
//! [`Framing::Binary`] replaces the lines by length-prefixed frames of any bytes, for
//! Rust-to-Rust channels.
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
mod message;
mod options;
mod receiver;
mod sender;
mod shared;

use std::collections::VecDeque;
use std::io::{self};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub use self::frame::{
    Decoder, Frame, FrameError, Framing, DEFAULT_MAX_MESSAGE_SIZE, MAX_JSON_DEPTH,
};
pub use self::message::{Message, RecvError, SendError};
pub use self::options::{HandleKind, Options};
pub use self::receiver::Receiver;
pub use self::sender::Sender;
use self::shared::*;
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
