//! [`CancelHandle`]: stop a running capture from another thread (Node's `AbortSignal`).
//!
//! A capture sleeps in `poll()`, so cancelling must be something `poll()` can see: the handle
//! owns a pipe, and [`cancel`](CancelHandle::cancel) writes one byte to it. The byte is never
//! read, so the read end stays readable and every run that shares the handle wakes up, now or
//! later. The pipe is created lazily, the first time a run uses the handle; a flag covers a
//! cancel that comes before that (see [`CancelHandle::wake_fd`] for the ordering argument).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// A handle that cancels the runs it is given to, from any thread: Node's `AbortController`
/// and `signal` option.
///
/// Give a clone to [`Command::cancel_with`](crate::Command::cancel_with) before running; call
/// [`cancel`](CancelHandle::cancel) on any clone to stop every run that uses it. A cancelled
/// run stops its child the way a timeout does (the [kill signal](crate::Command::kill_signal),
/// then `SIGKILL` after the [grace period](crate::Command::force_kill_after)) and fails with
/// [`ErrorKind::Canceled`](crate::ErrorKind::Canceled), keeping the output captured so far.
///
/// Cancelling is final: a run started with a handle that is already cancelled fails at once,
/// without spawning anything. Use a new handle for new work.
///
/// # Examples
///
/// ```
/// use offspring::{CancelHandle, Command, ErrorKind};
/// use std::time::{Duration, Instant};
///
/// let cancel = CancelHandle::new();
/// let remote = cancel.clone();
/// let started = Instant::now();
/// let worker = std::thread::spawn(move || {
///     Command::new("sleep").arg("30").cancel_with(&remote).output()
/// });
/// cancel.cancel();
/// let err = worker.join().unwrap().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Canceled);
/// assert!(started.elapsed() < Duration::from_secs(20));
/// ```
#[doc(alias = "AbortController")]
#[doc(alias = "AbortSignal")]
#[derive(Clone, Default)]
pub struct CancelHandle {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    canceled: AtomicBool,
    /// `(read end, write end)`, non-blocking and close-on-exec.
    pipe: OnceLock<(OwnedFd, OwnedFd)>,
}

impl CancelHandle {
    /// A new handle that is not cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!offspring::CancelHandle::new().is_canceled());
    /// ```
    pub fn new() -> CancelHandle {
        CancelHandle::default()
    }

    /// Cancels every run that uses this handle (and every clone of it), now and later. Never
    /// blocks; calling it again does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let cancel = offspring::CancelHandle::new();
    /// let other = cancel.clone();
    /// other.cancel();
    /// other.cancel();
    /// assert!(cancel.is_canceled());
    /// ```
    #[doc(alias = "abort")]
    pub fn cancel(&self) {
        if self.inner.canceled.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some((_, wr)) = self.inner.pipe.get() {
            // One byte in an empty non-blocking pipe: cannot block and cannot fail short of a
            // closed read end, which `Inner` keeps open.
            let _ = rustix::io::write(wr, &[1]);
        }
    }

    /// `true` once [`cancel`](CancelHandle::cancel) has been called on any clone.
    ///
    /// # Examples
    ///
    /// ```
    /// let cancel = offspring::CancelHandle::new();
    /// assert!(!cancel.is_canceled());
    /// cancel.clone().cancel();
    /// assert!(cancel.is_canceled());
    /// ```
    #[doc(alias = "aborted")]
    pub fn is_canceled(&self) -> bool {
        self.inner.canceled.load(Ordering::SeqCst)
    }

    /// The fd a capture polls: readable once the handle is cancelled.
    ///
    /// Ordering: `cancel` sets the flag and then looks for the pipe; a run creates the pipe
    /// and then checks the flag (both `SeqCst`). Either `cancel` finds the pipe and writes
    /// to it, or the run, which creates the pipe before checking, sees the flag: a cancel is
    /// never missed.
    pub(crate) fn wake_fd(&self) -> io::Result<BorrowedFd<'_>> {
        if self.inner.pipe.get().is_none() {
            let (rd, wr) = crate::sys::pipe::pipe()?;
            crate::sys::pipe::set_nonblocking(&wr, true)?;
            // A racing thread may have set it first; then ours is dropped.
            let _ = self.inner.pipe.set((rd, wr));
        }
        let (rd, _) = self.inner.pipe.get().expect("set above");
        if self.is_canceled() {
            // A cancel that raced with the creation above may not have written: make sure the
            // fd is readable. An extra byte is harmless.
            let _ = rustix::io::write(&self.inner.pipe.get().expect("set above").1, &[1]);
        }
        Ok(rd.as_fd())
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle").field("canceled", &self.is_canceled()).finish()
    }
}

/// The error of a run whose `cancel` handle was canceled before it started (the command's
/// `argv`, made only then, names it); `Ok` otherwise.
pub(crate) fn check_before_start<A, S>(
    cancel: Option<&CancelHandle>,
    argv: impl FnOnce() -> A,
) -> crate::Result<()>
where
    A: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    if cancel.is_some_and(CancelHandle::is_canceled) {
        return Err(crate::Error::new(
            crate::ErrorKind::Canceled,
            crate::error::Stage::Run,
            "canceled before start",
        )
        .with_argv(argv()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_fd_is_readable_after_cancel_whatever_the_order() {
        let readable = |h: &CancelHandle| {
            let fd = h.wake_fd().unwrap();
            let mut fds =
                [rustix::event::PollFd::from_borrowed_fd(fd, rustix::event::PollFlags::IN)];
            let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
            rustix::event::poll(&mut fds, Some(&zero)).unwrap() == 1
        };
        let before = CancelHandle::new();
        before.cancel();
        assert!(readable(&before));

        let after = CancelHandle::new();
        assert!(!readable(&after));
        after.clone().cancel();
        after.cancel();
        assert!(readable(&after));
    }

    #[test]
    fn send_sync() {
        fn assert<T: Send + Sync + Clone + 'static>() {}
        assert::<CancelHandle>();
    }
}
