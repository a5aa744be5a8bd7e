//! The sending half of a channel.

use std::fmt;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

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
    pub(super) shared: Arc<Shared>,
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
            ev = sh.wait_events(ev, deadline).ok_or(SendError::Timeout)?;
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
                _ => ev = sh.wait_events(ev, deadline).ok_or(SendError::Timeout)?,
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
