//! Signal numbers, named here so that the public layer never spells a `libc` constant; and the
//! signal mask of the crate's own thread.

#![allow(unsafe_code)]

pub(crate) use libc::{
    SIGABRT, SIGALRM, SIGBUS, SIGCHLD, SIGCONT, SIGFPE, SIGHUP, SIGILL, SIGINT, SIGIO, SIGKILL,
    SIGPIPE, SIGPROF, SIGQUIT, SIGSEGV, SIGSTOP, SIGSYS, SIGTERM, SIGTRAP, SIGTSTP, SIGTTIN,
    SIGTTOU, SIGURG, SIGUSR1, SIGUSR2, SIGVTALRM, SIGWINCH, SIGXCPU, SIGXFSZ,
};

/// The highest signal number (`SIGRTMAX`).
pub(crate) fn max_signal() -> i32 {
    libc::SIGRTMAX()
}

/// `pthread_sigmask(SIG_BLOCK, all)`—Blocks every signal in the calling thread: for a thread of
/// the crate's own (the reaper), so that the kernel never picks it for a signal sent to the
/// process. Such a signal would interrupt its `epoll_wait` for nothing (measured: `SIGCHLD`
/// woke the reaper for about 4 in 10 runs of `output()`, though it watched none of them), run
/// the program's handler on a thread the program does not know of, or end the process by a
/// default action while the program's own threads block the signal to take it with
/// `sigwait`.
///
/// Returns the mask the thread had, for [`restore_mask`]: a thread spawned while every signal
/// is blocked starts with them blocked, with no window in which one could land on it.
fn block_all_in_this_thread() -> SignalMask {
    let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigfillset` initializes the local set; `pthread_sigmask` reads it, changes only
    // this thread's mask and writes the previous one into `old`, initializing it (it cannot
    // fail with a valid `how` and valid pointers).
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), old.as_mut_ptr());
        SignalMask(old.assume_init())
    }
}

/// A thread's signal mask, as [`block_all_in_this_thread`] found it.
struct SignalMask(libc::sigset_t);

/// `pthread_sigmask(SIG_SETMASK, mask)`—Puts back the calling thread's mask.
fn restore_mask(mask: &SignalMask) {
    // SAFETY: `mask.0` is a set `pthread_sigmask` filled in; this changes only this thread's
    // mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut());
    }
}

/// Spawns one of the crate's own threads with every signal blocked from its first instruction
/// (a new thread inherits the mask; the caller's is put back at once): a signal sent to the
/// process must never run the program's handler, or its default action, on a thread the
/// program does not know of, nor interrupt the thread's waits for nothing.
pub(crate) fn spawn_thread_without_signals<F, T>(
    builder: std::thread::Builder,
    f: F,
) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let old = block_all_in_this_thread();
    let spawned = builder.spawn(f);
    restore_mask(&old);
    spawned
}
