//! The vfork path: `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND)`, the
//! first choice on Linux x86_64 for every spawn without a user hook, including the settings
//! `posix_spawn` cannot apply (credentials, umask, rlimits, parent-death signal), without
//! paying for `fork`'s page-table copy.
//!
//! The child shares the parent's memory and runs on a stack of its own, while the calling
//! thread is suspended until the child execs or exits (`CLONE_VFORK`). It runs the same setup
//! code as the fork path (`spawn::child_setup`), with two differences that make sharing
//! memory safe:
//!
//! - `CLONE_CLEAR_SIGHAND` (Linux 5.5) resets every signal handler in the child to
//!   `SIG_DFL` (ignored signals stay ignored), so no handler of the parent can run in the
//!   child and write to the shared memory. glibc's `posix_spawn` gets the same guarantee by
//!   querying and resetting all 64 signals, one system call each; here it costs nothing.
//! - A failure is stored in a [`Report`] in the parent's memory instead of written to a pipe.
//!
//! `CLONE_PIDFD` hands back a pidfd atomically, so even a child reaped by someone else at
//! once is tracked.
//!
//! The child starts on its new stack in the middle of the `clone3` system call, so entering
//! it needs a few instructions of assembly ([`clone3`]); on architectures without them, and
//! on kernels without `clone3` or `CLONE_CLEAR_SIGHAND` (or a seccomp filter that refuses
//! it), [`spawn`] returns `None` and the caller uses `posix_spawn` or `fork`.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};

use super::spawn::{ChildStage, SpawnError, SpawnRequest};

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The child's stack. Its code is a handful of system calls; 64 KiB is ample.
const STACK_SIZE: usize = 64 * 1024;

/// The child's stack: a private mapping, one per spawning thread, kept for the thread's next
/// spawn and unmapped when the thread ends.
///
/// Not a heap block: one freed after every spawn is soon carved up by the small allocations
/// that follow, so the next spawn's stack comes from fresh heap whose top pages the child
/// touches: a `Mux` fan-out of a thousand spawns kept about 70 KiB more resident. Not a fresh
/// mapping per spawn either (glibc's `posix_spawn` maps and unmaps one each time): that is two
/// more system calls, and the few pages the child touches are faulted in again, while the
/// parent waits, on every spawn. Kept per thread, its touched pages (a few of the 16) stay
/// resident and are reused; a thread spawns one child at a time (`CLONE_VFORK` suspends it),
/// and a spawn that finds the slot empty (a nested spawn from a signal handler, say) maps one
/// of its own.
struct ChildStack {
    base: *mut c_void,
}

impl ChildStack {
    fn new() -> Result<ChildStack, i32> {
        // SAFETY: a fresh anonymous private mapping at an address of the kernel's choosing;
        // it overlaps nothing of ours.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOMEM));
        }
        Ok(ChildStack { base })
    }
}

thread_local! {
    /// This thread's [`ChildStack`], while no spawn of this thread is using it.
    static CHILD_STACK: std::cell::Cell<Option<ChildStack>> = const { std::cell::Cell::new(None) };
}

impl ChildStack {
    /// This thread's stack, or a new one.
    fn take() -> Result<ChildStack, i32> {
        match CHILD_STACK.try_with(std::cell::Cell::take) {
            Ok(Some(stack)) => Ok(stack),
            _ => ChildStack::new(),
        }
    }

    /// Keeps the stack for this thread's next spawn (or unmaps it while the thread ends).
    fn give_back(self) {
        // A stack already in the slot (a nested spawn gave its own back first) is unmapped.
        let _ = CHILD_STACK.try_with(|slot| slot.set(Some(self)));
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; the child that ran on it has
        // exec'd or exited (`CLONE_VFORK`), so nothing uses it any more.
        unsafe { libc::munmap(self.base, STACK_SIZE) };
    }
}

/// Where the child leaves its failure, in memory the parent reads after the child is gone.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Report {
    pub(crate) errno: i32,
    pub(crate) stage: Option<ChildStage>,
}

/// Support, learnt on first use: 0 unknown, 1 works, 2 unavailable.
static SUPPORT: AtomicU8 = AtomicU8::new(0);

/// `true` if this build has the entry code for this architecture and the kernel has not
/// refused `clone3` yet.
pub(crate) fn available() -> bool {
    cfg!(all(target_os = "linux", target_arch = "x86_64")) && SUPPORT.load(Ordering::Relaxed) != 2
}

struct ChildArg<'a, 'r> {
    req: &'a mut SpawnRequest<'r>,
    report: Report,
}

extern "C" fn child_main(arg: *mut c_void) -> ! {
    // SAFETY: `arg` is the `ChildArg` the parent passed to `clone3`; the parent is suspended
    // until this child execs or exits, so nothing else touches it meanwhile.
    let arg = unsafe { &mut *arg.cast::<ChildArg<'_, '_>>() };
    // SAFETY: we are the child of a `clone3(CLONE_VM | CLONE_VFORK | CLONE_CLEAR_SIGHAND)`:
    // `child_setup` keeps to the post-fork rules (no allocation, no locks, async-signal-safe
    // calls only), and no signal handler can run here since the kernel cleared them.
    let (errno, stage) = unsafe { super::spawn::child_setup(arg.req) };
    arg.report = Report { errno, stage: Some(stage) };
    // SAFETY: `_exit` ends this child process only (no CLONE_THREAD) without running any
    // of the parent's exit handlers.
    unsafe { libc::_exit(127) }
}

/// Spawns through `clone3`. `Ok(None)` if the kernel refuses `clone3` (too old, or blocked by
/// a seccomp filter): the caller falls back to the fork path.
pub(crate) fn spawn(
    req: &mut SpawnRequest<'_>,
) -> Result<Option<(rustix::process::Pid, OwnedFd)>, SpawnError> {
    let stack =
        ChildStack::take().map_err(|errno| SpawnError { errno, stage: None, in_parent: true })?;
    let mut pidfd: libc::c_int = -1;
    // Containment: the kernel starts the child in its cgroup (Linux 5.7), atomically.
    let into_cgroup = req.cgroup.map(|cg| cg.dir.as_raw_fd());
    req.cgroup_placed = into_cgroup.is_some();
    let mut arg = ChildArg { req, report: Report::default() };
    // The stack grows down from the end; the kernel starts the child at `stack + size`,
    // which must be 16-byte aligned for the call into `child_main` (a mapping is page-aligned).
    let base = stack.base as usize;
    let top = base + STACK_SIZE;
    let cgroup_flag = if into_cgroup.is_some() { CLONE_INTO_CGROUP } else { 0 };
    let args = CloneArgs {
        flags: CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND | cgroup_flag,
        cgroup: into_cgroup.map_or(0, |fd| fd as u64),
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: base as u64,
        stack_size: (top - base) as u64,
        ..CloneArgs::default()
    };

    let mut full = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: fills a local set and swaps this thread's mask, saving the old one. With every
    // signal blocked, the child starts blocked too, until it has reset its signal state.
    unsafe {
        libc::sigfillset(full.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, full.as_ptr(), old.as_mut_ptr());
    }
    // SAFETY: `args` describes a valid stack we own for the child's whole life (the call
    // returns only after the child has exec'd or exited), `pidfd` is a local the kernel writes,
    // and `child_main` receives a pointer to `arg`, which outlives the child.
    let ret = unsafe { clone3(&args, child_main, (&mut arg as *mut ChildArg<'_, '_>).cast()) };
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut()) };
    stack.give_back();
    arg.req.cgroup_placed = false;

    if ret < 0 {
        let errno = -ret as i32;
        if into_cgroup.is_some() {
            // A kernel before 5.7 does not know CLONE_INTO_CGROUP (E2BIG or EINVAL): the fork
            // path joins the cgroup instead, and the vfork path stays on for the rest. Any
            // other errno is about the cgroup itself (EAGAIN at pids.max, EBUSY where the
            // cgroup has controllers in cgroup.subtree_control, EACCES...).
            if matches!(errno, libc::ENOSYS | libc::EINVAL | libc::E2BIG) {
                return Ok(None);
            }
            return Err(SpawnError { errno, stage: Some(ChildStage::Cgroup), in_parent: true });
        }
        if matches!(errno, libc::ENOSYS | libc::EINVAL | libc::EPERM | libc::E2BIG) {
            SUPPORT.store(2, Ordering::Relaxed);
            return Ok(None);
        }
        return Err(SpawnError { errno, stage: None, in_parent: true });
    }
    SUPPORT.store(1, Ordering::Relaxed);
    // SAFETY: CLONE_PIDFD stored a new pidfd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let pid =
        rustix::process::Pid::from_raw(ret as i32).expect("clone3 returned pid 0 in the parent");
    // The child has exec'd or exited by now. Read what it left with a volatile read: the
    // compiler did not see the child write it.
    // SAFETY: `arg.report` is a valid, initialised local.
    let report = unsafe { std::ptr::read_volatile(&arg.report) };
    if let Some(stage) = report.stage {
        // It failed and exited: reap it here so no zombie is left.
        let _ = super::wait::pidfd_reap_blocking(&pidfd);
        return Err(SpawnError { errno: report.errno, stage: Some(stage), in_parent: false });
    }
    Ok(Some((pid, pidfd)))
}

/// Enters `clone3` and, in the child, calls `child(arg)` on the new stack.
///
/// Returns the child's pid in the parent, or `-errno`.
///
/// # Safety
///
/// `args` must describe a stack that stays valid until the child execs or exits, and carry
/// `CLONE_VM | CLONE_VFORK` so that the parent's memory is not used by both at once; `child`
/// must never return.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
unsafe fn clone3(
    args: &CloneArgs,
    child: extern "C" fn(*mut c_void) -> !,
    arg: *mut c_void,
) -> i64 {
    let ret: i64;
    // SAFETY: the caller's contract. In the parent, the system call returns with only rax,
    // rcx and r11 changed (declared). In the child, rax is 0 and the kernel has switched rsp
    // to the new stack: clear the frame pointer, pass `arg` in rdi and call `child`, which
    // never returns (ud2 traps if it did).
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") child as usize,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
unsafe fn clone3(_: &CloneArgs, _: extern "C" fn(*mut c_void) -> !, _: *mut c_void) -> i64 {
    -(libc::ENOSYS as i64)
}
