//! The handler behind [`crate::shutdown`]: for `SIGTERM`, `SIGINT` and `SIGHUP` it writes the
//! signal number (one byte) to a self-pipe and calls the handler that was installed before
//! it, as `sigchld.rs` does for `SIGCHLD`. Nothing else.
//!
//! Installed at most once per process. A previous handler keeps getting its calls; a previous
//! `SIG_DFL` is not called (that would end the process, which is what installing this handler
//! is meant to replace); a signal the program set to `SIG_IGN` stays ignored.

#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

/// The signals handled, in the order of [`PREVIOUS`].
pub(crate) const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The write end of the self-pipe, or -1 before installation.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The dispositions that were in place before ours, one per entry of [`SIGNALS`].
static PREVIOUS: OnceLock<[libc::sigaction; 3]> = OnceLock::new();

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Keep errno intact for the interrupted code.
    let saved = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write is async-signal-safe; the pipe is non-blocking, so a full pipe (64 KiB
        // of signals nobody read) drops this one, which is the most a reader could miss.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    let slot = SIGNALS.iter().position(|&s| s == sig);
    if let (Some(prev), Some(i)) = (PREVIOUS.get(), slot) {
        super::sigchld::chain(&prev[i], sig, info, ctx);
    }
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = saved };
}

/// Installs the handler for the three signals (once) and returns the read end of its
/// self-pipe (blocking, `CLOEXEC`): each byte read is a signal number.
///
/// # Errors
///
/// Fails if the pipe cannot be created or `sigaction` fails, or if it was already installed.
pub(crate) fn install() -> io::Result<OwnedFd> {
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::fs::fcntl_setfl(&wr, rustix::fs::OFlags::NONBLOCK)?;
    let mut old = [MaybeUninit::<libc::sigaction>::zeroed(); 3];
    for (sig, slot) in SIGNALS.iter().zip(old.iter_mut()) {
        // SAFETY: query the current disposition into a zeroed local.
        if unsafe { libc::sigaction(*sig, std::ptr::null(), slot.as_mut_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: each was initialised by the successful sigaction above.
    let old = old.map(|o| unsafe { o.assume_init() });
    if PREVIOUS.set(old).is_err() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "shutdown handler installed"));
    }
    // The write end lives for the rest of the process: the handler may run at any time.
    WAKE_FD.store(wr.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(wr);
    for (sig, prev) in SIGNALS.iter().zip(old.iter()) {
        if prev.sa_sigaction == libc::SIG_IGN {
            // `nohup` and friends: the program was told to ignore it; keep it so.
            continue;
        }
        // SAFETY: a zeroed sigaction is a valid starting point; we set a handler with the
        // SA_SIGINFO signature, an empty mask, and flags. `on_signal` is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(*sig, &sa, std::ptr::null_mut()) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(rd)
}

/// `kill(getpid(), sig)`: sends a signal to this process, for tests and for the command-line
/// tool's own exit "by the same signal".
pub(crate) fn raise(sig: libc::c_int) {
    // SAFETY: kill on our own pid with a valid signal number has no memory effects.
    unsafe { libc::kill(libc::getpid(), sig) };
}

/// Puts `sig` back to `SIG_DFL`, so that raising it ends the process as the signal would.
pub(crate) fn reset_default(sig: libc::c_int) {
    // SAFETY: installing SIG_DFL with an empty mask is always valid.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}
