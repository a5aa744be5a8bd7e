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
