//! Reaping and signalling one child at a time: pidfds on Linux, pids elsewhere.
//!
//! Nothing here ever waits for "any child" (`waitpid(-1)`, `waitid(P_ALL)`): other code in the
//! process (std's `Command`, other libraries) keeps its own children.

#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use rustix::process::Pid;

use crate::exit_status::ResourceUsage;

/// A collected exit: the raw wait status and what the child used.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reaped {
    pub(crate) status: i32,
    pub(crate) usage: Option<ResourceUsage>,
}

/// `pidfd_open(pid, 0)`—A pidfd for our child (`ENOSYS` before Linux 5.3).
pub(crate) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: the raw syscall takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw_nonzero().get(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh fd that nothing else owns; it is CLOEXEC by the kernel's
    // definition of pidfds.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn usage_from(ru: &libc::rusage) -> ResourceUsage {
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    ResourceUsage {
        user_time: tv(ru.ru_utime),
        system_time: tv(ru.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss_bytes: (ru.ru_maxrss.max(0) as u64) * 1024,
        minor_faults: ru.ru_minflt.max(0) as u64,
        major_faults: ru.ru_majflt.max(0) as u64,
        voluntary_context_switches: ru.ru_nvcsw.max(0) as u64,
        involuntary_context_switches: ru.ru_nivcsw.max(0) as u64,
    }
}

/// `waitid(P_PIDFD, fd, WEXITED | WNOHANG, &rusage)`—Reaps the child if it has exited.
///
/// Returns `Ok(None)` while it runs, `Err(ECHILD)` if someone else reaped it.
pub(crate) fn pidfd_try_reap(pidfd: BorrowedFd<'_>) -> io::Result<Option<Reaped>> {
    const P_PIDFD: libc::idtype_t = 3;
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    let mut ru = MaybeUninit::<libc::rusage>::zeroed();
    loop {
        // SAFETY: the raw waitid syscall takes a fifth `struct rusage *` argument (the
        // glibc wrapper hides it); both out-pointers are to zeroed locals of the right type.
        let r = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                P_PIDFD,
                pidfd.as_raw_fd(),
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOHANG,
                ru.as_mut_ptr(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        break;
    }
    // SAFETY: zero-initialised and possibly filled by the kernel: valid either way.
    let info = unsafe { info.assume_init() };
    // SAFETY: as above.
    let ru = unsafe { ru.assume_init() };
    // SAFETY: for a SIGCHLD siginfo, si_pid and si_status are the fields the kernel set
    // (si_pid stays 0 when WNOHANG found no exited child).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    let status = match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status,
    };
    Ok(Some(Reaped { status, usage: Some(usage_from(&ru)) }))
}

/// `wait4(pid, &status, WNOHANG, &rusage)`—Reaps this one pid if it has exited.
///
/// Returns `Ok(None)` while it runs, `Err(ECHILD)` if someone else reaped it.
pub(crate) fn pid_try_reap(pid: Pid) -> io::Result<Option<Reaped>> {
    let mut status = 0;
    let mut ru = MaybeUninit::<libc::rusage>::zeroed();
    loop {
        // SAFETY: wait4 for one specific pid with valid out-pointers to locals.
        let r = unsafe {
            libc::wait4(pid.as_raw_nonzero().get(), &mut status, libc::WNOHANG, ru.as_mut_ptr())
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Ok(None);
        }
        // SAFETY: zero-initialised and filled by the kernel.
        let ru = unsafe { ru.assume_init() };
        return Ok(Some(Reaped { status, usage: Some(usage_from(&ru)) }));
    }
}

/// `waitpid(pid, &status, 0)`—Blocks until this child exits and reaps it. For a child that
/// failed to exec and is known to exit at once.
pub(crate) fn reap_blocking(pid: Pid) {
    let mut status = 0;
    loop {
        // SAFETY: waitpid for one specific pid of ours with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid.as_raw_nonzero().get(), &mut status, 0) };
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break;
    }
}

/// `ioctl(pidfd, PIDFD_GET_INFO)` with `PIDFD_INFO_EXIT`—The exit status of a child that
/// someone else reaped (Linux ≥ 6.15), or `None`.
pub(crate) fn pidfd_exit_info(pidfd: BorrowedFd<'_>) -> Option<i32> {
    #[repr(C)]
    #[derive(Default)]
    struct PidfdInfo {
        mask: u64,
        cgroupid: u64,
        ids: [u32; 11],
        exit_code: i32,
        coredump_mask: u32,
        spare: u32,
    }
    const PIDFD_INFO_EXIT: u64 = 1 << 3;
    // _IOWR(0xFF, 11, struct pidfd_info): read|write, size, type, number.
    const PIDFD_GET_INFO: libc::c_ulong =
        (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as libc::c_ulong) << 16) | (0xFF << 8) | 11;
    let mut info = PidfdInfo { mask: PIDFD_INFO_EXIT, ..Default::default() };
    // SAFETY: the ioctl reads and writes a `struct pidfd_info` of the size encoded in the
    // request; `info` is a properly sized, aligned local. Older kernels fail with ENOTTY or
    // EINVAL, which is handled.
    let r = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO, &mut info) };
    if r == 0 && info.mask & PIDFD_INFO_EXIT != 0 {
        Some(info.exit_code)
    } else {
        None
    }
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`—Signals the process the pidfd refers to, never a
/// recycled pid (`ESRCH` once it has been reaped).
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: raw syscall with an fd we borrow, a signal number, a null info pointer and 0
    // flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `kill(pid, sig)`—Only to be called while the child's status is uncollected, under the
/// lock that guards its collection, so the pid cannot have been recycled.
pub(crate) fn kill(pid: Pid, sig: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    if unsafe { libc::kill(pid.as_raw_nonzero().get(), sig) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `kill(-pgid, sig)`—Signals every process in the group.
pub(crate) fn kill_group(pgid: Pid, sig: i32) -> io::Result<()> {
    // SAFETY: killpg takes plain integers.
    if unsafe { libc::killpg(pgid.as_raw_nonzero().get(), sig) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `waitid(P_PIDFD, fd, WEXITED)`—Blocks until the child exits and reaps it. For a child that
/// failed before exec and is known to exit at once.
pub(crate) fn pidfd_reap_blocking(pidfd: &OwnedFd) -> io::Result<()> {
    const P_PIDFD: libc::idtype_t = 3;
    loop {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: waitid on a pidfd we own, with a zeroed out-parameter.
        let r = unsafe {
            libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, info.as_mut_ptr(), libc::WEXITED)
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `waitid(P_PIDFD, fd, WEXITED | WNOWAIT)`—Blocks until the child has exited, without
/// reaping it (the caller reaps under its lock).
pub(crate) fn pidfd_wait_exited(pidfd: BorrowedFd<'_>) -> io::Result<()> {
    pidfd_waitid(pidfd, libc::WEXITED | libc::WNOWAIT).map(drop)
}

/// `waitid(P_PIDFD, fd, WEXITED | WNOHANG | WNOWAIT)`—Whether the pidfd's process is an
/// exited child of ours, without reaping it: `Ok(false)` while it runs (or a ptracer holds
/// it), `Err(ECHILD)` if it is not (or no longer) an unreaped child of ours. `Ok(true)` also
/// when the kernel lacks `P_PIDFD` (before 5.4), where only a `wait4` can tell.
pub(crate) fn pidfd_exited(pidfd: BorrowedFd<'_>) -> io::Result<bool> {
    match pidfd_waitid(pidfd, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) {
        // si_pid stays 0 when nothing has exited.
        Ok(pid) => Ok(pid != 0),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(true),
        Err(e) => Err(e),
    }
}

/// `waitid(P_PIDFD, fd, flags)`, retried on `EINTR`: the `si_pid` the kernel filled in (0
/// when nothing has exited).
fn pidfd_waitid(pidfd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<libc::pid_t> {
    const P_PIDFD: libc::idtype_t = 3;
    loop {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: waitid on a pidfd we borrow, with a zeroed out-parameter.
        let r = unsafe {
            libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, info.as_mut_ptr(), flags)
        };
        if r == 0 {
            // SAFETY: zero-initialised and possibly filled by the kernel.
            return Ok(unsafe { info.assume_init().si_pid() });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}
