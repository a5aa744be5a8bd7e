//! The state both halves of a channel share: the send buffer and writer thread, the read
//! state and reader thread, and the events (ready, fd acknowledgements, close).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::mem;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::*;

/// How the channel ended, as the reader thread saw it.
#[derive(Clone, Debug)]
pub(super) enum Closed {
    Eof,
    Malformed(String),
    Io(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Ack {
    Idle,
    Waiting,
    Acked,
    Nacked,
}

pub(super) struct Pending {
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) fd: OwnedFd,
}

/// The send side's state, under one lock.
pub(super) struct Out {
    pub(super) buf: Vec<u8>,
    pub(super) handles: Vec<Pending>,
    pub(super) in_flight: bool,
    pub(super) writer: bool,
    pub(super) closing: bool,
    pub(super) broken: Option<SendError>,
    pub(super) last_send: Option<Instant>,
    pub(super) seen: u64,
    pub(super) writes: u64,
    /// Threads waiting for room or a flush, and whether the writer thread waits for work:
    /// a condition variable's notify is a system call, so it is made only when someone waits.
    pub(super) room_waiters: usize,
    pub(super) writer_waiting: bool,
}

pub(super) struct ReadState {
    pub(super) dec: Decoder,
    pub(super) buf: Vec<u8>,
    pub(super) fds: Vec<OwnedFd>,
    pub(super) pending: VecDeque<OwnedFd>,
    pub(super) closed: bool,
    /// The queue's sending end, until the reader thread takes it.
    pub(super) tx: Option<crossbeam_channel::Sender<Message>>,
}

pub(super) enum Pumped {
    Message(Message),
    Empty,
    Closed,
}

pub(super) struct Events {
    pub(super) ready: bool,
    pub(super) ack: Ack,
    pub(super) closed: Option<Closed>,
}

pub(super) struct Shared {
    pub(super) sock: OwnedFd,
    pub(super) framing: Framing,
    pub(super) limit: usize,
    pub(super) max_queued: usize,
    pub(super) out: Mutex<Out>,
    /// The writer thread waits here for work.
    pub(super) work: Condvar,
    /// Senders wait here for room, flushes for an empty buffer.
    pub(super) room: Condvar,
    pub(super) events: Mutex<Events>,
    pub(super) events_cv: Condvar,
    /// The read side: the decoder and the fds not yet claimed, used by whichever thread
    /// reads (the caller's, or the reader thread once started).
    pub(super) read: Mutex<ReadState>,
    /// The reader thread has been started: receivers use the crossbeam queue.
    pub(super) threaded: AtomicBool,
    /// Reads done by the reader thread: a send after one is a reply, written at once.
    pub(super) reads: AtomicU64,
    pub(super) senders: AtomicUsize,
    pub(super) receivers: AtomicUsize,
    /// A pipe to poke (one byte, never blocking) when the reader thread has queued a
    /// message, seen the ready handshake or seen the channel close: how the supervisor's
    /// `poll()` loop learns of it without a thread of its own. Taken back with
    /// [`Receiver::notify_off`] before the pipe's read end closes (no `SIGPIPE`).
    pub(super) notify: Mutex<Option<OwnedFd>>,
    /// Whether `notify` may hold a pipe: spares every other channel the lock.
    pub(super) notifying: AtomicBool,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone, Copy)]
pub(super) enum Wait {
    No,
    Until(Option<Instant>),
}

pub(super) fn io_reason(e: &io::Error) -> SendError {
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
    /// Waits for a change of the events, until `deadline` (`None`: for ever); `None` when the
    /// deadline has passed.
    pub(super) fn wait_events<'a>(
        &'a self,
        ev: MutexGuard<'a, Events>,
        deadline: Option<Instant>,
    ) -> Option<MutexGuard<'a, Events>> {
        match deadline {
            None => Some(self.events_cv.wait(ev).unwrap_or_else(|p| p.into_inner())),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                Some(self.events_cv.wait_timeout(ev, d - now).unwrap_or_else(|p| p.into_inner()).0)
            }
        }
    }

    /// Queues (or writes at once) one message; `pass` is the fd of a `NODE_HANDLE`.
    pub(super) fn send(
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
    pub(super) fn wait_room<'a>(
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

    pub(super) fn wake_room(&self, out: &Out) {
        if out.room_waiters > 0 {
            self.room.notify_all();
        }
    }

    pub(super) fn wake_writer(&self, out: &Out) {
        if out.writer_waiting {
            self.work.notify_one();
        }
    }

    pub(super) fn start_writer(self: &Arc<Self>, out: &mut Out) -> Result<(), SendError> {
        if out.writer {
            return Ok(());
        }
        let me = Arc::clone(self);
        crate::sys::signal::spawn_thread_without_signals(
            std::thread::Builder::new().name("offspring-ipc-write".into()),
            move || me.writer_loop(),
        )
        .map_err(|e| SendError::Io(format!("starting the IPC writer thread: {e}")))?;
        out.writer = true;
        Ok(())
    }

    pub(super) fn writer_loop(&self) {
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
    pub(super) fn write_all(&self, data: &[u8], handles: Vec<Pending>) -> io::Result<()> {
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

    pub(super) fn write_plain(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = socket::send(self.sock.as_fd(), &[IoSlice::new(data)], None, false)?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Waits until everything queued is written, the channel broke, or `deadline` passed;
    /// with `give_up`, also stops after a second in which no write completed.
    pub(super) fn flush(&self, deadline: Option<Instant>, give_up: bool) -> Result<(), SendError> {
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
    pub(super) fn close_sending(&self, both: bool) {
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
    pub(super) fn pump(self: &Arc<Self>, rs: &mut ReadState, wait: Wait) -> Pumped {
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

    pub(super) fn close(&self, rs: &mut ReadState, why: Closed) -> Pumped {
        rs.closed = true;
        rs.pending.clear();
        let mut ev = lock(&self.events);
        ev.closed.get_or_insert(why);
        self.events_cv.notify_all();
        Pumped::Closed
    }

    /// Hands reading over to the reader thread (for `Select`, fd acknowledgements, the ready
    /// handshake, or several receiving threads). Once only.
    pub(super) fn start_reader(self: &Arc<Self>) {
        if self.threaded.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = Arc::clone(self);
        let spawned = crate::sys::signal::spawn_thread_without_signals(
            std::thread::Builder::new().name("offspring-ipc-read".into()),
            move || me.reader_loop(),
        );
        if let Err(e) = spawned {
            // Without a thread nobody feeds the queue: say why to every receiver.
            let mut rs = lock(&self.read);
            rs.tx = None;
            self.close(&mut rs, Closed::Io(format!("starting the IPC reader thread: {e}")));
        }
    }

    pub(super) fn reader_loop(self: &Arc<Self>) {
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
    pub(super) fn internal(
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

    pub(super) fn reply(self: &Arc<Self>, msg: &[u8]) {
        // Never blocks; fails only when the channel is closing, when no answer is needed.
        let _ = self.send(msg, true, None, Wait::No);
    }
}
