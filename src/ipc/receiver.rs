//! The receiving half of a channel.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// The receiving half of a channel. Clone it to receive on several threads (each message
/// goes to one of them).
///
/// # Drop behavior
///
/// When every `Receiver` and every [`Sender`] of a channel is gone, the socket is closed and
/// the reader thread ends. While a `Sender` remains, the reader thread keeps reading (to take
/// fd acknowledgements) and drops user messages.
pub struct Receiver {
    pub(super) shared: Arc<Shared>,
    pub(super) rx: crossbeam_channel::Receiver<Message>,
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
            ev = sh.wait_events(ev, deadline).ok_or(RecvError::Timeout)?;
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
