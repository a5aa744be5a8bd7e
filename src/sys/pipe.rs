//! Pipes and socket pairs, always `O_CLOEXEC`, through rustix's safe wrappers.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// `pipe2(O_CLOEXEC)`—A new pipe as `(read end, write end)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`—A bidirectional pair, for extra child fds
/// and IPC channels.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: impl AsFd, yes: bool) -> io::Result<()> {
    Ok(rustix::io::ioctl_fionbio(fd, yes)?)
}

/// The kernel's default for `/proc/sys/fs/pipe-max-size` (1 MiB), used where it cannot be read.
const PIPE_MAX_SIZE_DEFAULT: usize = 1 << 20;

/// `/proc/sys/fs/pipe-max-size`: the largest capacity an unprivileged process may give a pipe
/// with `F_SETPIPE_SZ` (root may go past it; offspring does not). 1 MiB, the kernel's default,
/// where it cannot be read.
pub(crate) fn pipe_max_size() -> usize {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(PIPE_MAX_SIZE_DEFAULT)
}

/// `fcntl(F_SETPIPE_SZ)`—Asks for a pipe of `bytes` capacity (the kernel rounds up to a power
/// of two pages); returns the capacity now in effect. `bytes` is used as given: clamp it to
/// [`pipe_max_size`] first. Linux only; elsewhere `Unsupported`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn set_pipe_capacity(fd: impl AsFd, bytes: usize) -> io::Result<usize> {
    Ok(rustix::pipe::fcntl_setpipe_size(fd, bytes)?)
}

/// See the Linux version: other systems have no `F_SETPIPE_SZ`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_pipe_capacity(_fd: impl AsFd, _bytes: usize) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}
