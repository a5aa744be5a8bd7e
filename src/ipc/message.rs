//! What a channel carries and how it fails: [`Message`], [`SendError`], [`RecvError`].

use std::fmt;
use std::os::fd::OwnedFd;

use super::*;

/// A message from the peer: JSON text (or, with [`Framing::Binary`], any bytes), and the fd
/// that came with it, if the peer passed one.
///
/// # Drop behavior
///
/// A received fd that was not taken with [`Message::take_fd`] is closed.
pub struct Message {
    pub(super) data: Vec<u8>,
    pub(super) fd: Option<OwnedFd>,
    pub(super) kind: Option<String>,
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
