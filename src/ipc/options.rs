//! How a channel is set up ([`Options`]) and what kind of handle an fd is ([`HandleKind`]).

use super::*;

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
    pub(super) fd: ChildFd,
    pub(super) framing: Framing,
    pub(super) max_message_size: usize,
    pub(super) queue_capacity: usize,
    pub(super) max_queued_bytes: usize,
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
