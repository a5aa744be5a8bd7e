//! The `SIGCHLD` handler of the reaper's fallback path (no pidfds): it writes one byte to a
//! self-pipe and calls the handler that was installed before it. Nothing else.
//!
//! Installed at most once per process, only when the reaper runs without pidfds. The previous
//! disposition is saved before the new one is installed and is chained: a program (or
//! library) that already had a `SIGCHLD` handler keeps getting its calls.

#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

/// The write end of the self-pipe, or -1 before installation.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The disposition that was in place before ours.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

extern "C" fn on_sigchld(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Keep errno intact for the interrupted code.
    let saved = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write is async-signal-safe; the pipe is non-blocking, so a full pipe (the
        // reaper has wake-ups pending already) just fails with EAGAIN, which is fine.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    if let Some(prev) = PREVIOUS.get() {
        chain(prev, sig, info, ctx);
    }
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = saved };
}

/// Calls the handler `prev` names, with the kernel's arguments; `SIG_DFL` and `SIG_IGN` are
/// not called. Async-signal-safe: for the signal handlers here and in `termsig.rs`.
pub(super) fn chain(
    prev: &libc::sigaction,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    let h = prev.sa_sigaction;
    if h != libc::SIG_DFL && h != libc::SIG_IGN {
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this
            // signature; we pass through the kernel's own arguments.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(h) };
            f(sig, info, ctx);
        } else {
            // SAFETY: a plain handler takes only the signal number.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
            f(sig);
        }
    }
}

/// Wakes the reader of the self-pipe, as a `SIGCHLD` would.
pub(crate) fn poke() {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: `fd` is the write end installed below, never closed; a full non-blocking
        // pipe just means a wake-up is already pending.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Installs the handler (once) and returns the read end of its self-pipe.
///
/// # Errors
///
/// Fails if the pipe cannot be created or `sigaction` fails, or if it was already installed.
pub(crate) fn install() -> io::Result<OwnedFd> {
    let (rd, wr) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )?;
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: query the current disposition into a zeroed local.
    if unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), old.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful sigaction above.
    let old = unsafe { old.assume_init() };
    if old.sa_sigaction == libc::SIG_IGN {
        // The program asked the kernel to auto-reap its children; replacing that would make
        // other code's children zombies. Leave it, and let the caller rescan instead.
        return Err(io::Error::new(io::ErrorKind::Unsupported, "SIGCHLD is ignored"));
    }
    if PREVIOUS.set(old).is_err() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "SIGCHLD handler installed"));
    }
    // The write end lives for the rest of the process: the handler may run at any time.
    WAKE_FD.store(wr.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(wr);

    // SAFETY: a zeroed sigaction is a valid starting point; we set a handler with the
    // SA_SIGINFO signature, a mask and flags. `on_sigchld` is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigchld as *const () as usize;
        if old.sa_sigaction == libc::SIG_DFL {
            // Nobody else listens: no wake-ups for stops, and no EINTR for anyone.
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_NOCLDSTOP;
            libc::sigemptyset(&mut sa.sa_mask);
        } else {
            // A handler was there before: keep what its flags and mask mean to it (stops
            // reported or not, restart or EINTR, auto-reaping, its signal stack), since it
            // is called from ours. A stop only costs the reaper a rescan.
            let keep =
                libc::SA_NOCLDSTOP | libc::SA_NOCLDWAIT | libc::SA_RESTART | libc::SA_ONSTACK;
            sa.sa_flags = libc::SA_SIGINFO | (old.sa_flags & keep);
            sa.sa_mask = old.sa_mask;
        }
        if libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(rd)
}
