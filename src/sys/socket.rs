//! Unix stream sockets for the IPC channel: `sendmsg`/`recvmsg` with `SCM_RIGHTS`, through
//! rustix's safe wrappers, and adopting the channel fd a parent left in the environment.

#![allow(unsafe_code)]

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, Shutdown, SocketType,
};

/// The most fds one `recvmsg` takes; more in one message are closed by the kernel
/// (`MSG_CTRUNC`), which the caller reports.
const MAX_FDS_PER_READ: usize = 16;

/// `sendmsg(fd, iov, SCM_RIGHTS [pass], MSG_NOSIGNAL [| MSG_DONTWAIT])`—Sends bytes, and with
/// `pass` one fd attached to them. Retries `EINTR`. Never raises `SIGPIPE`: a closed peer is
/// `EPIPE`.
pub(crate) fn send(
    fd: BorrowedFd<'_>,
    iov: &[IoSlice<'_>],
    pass: Option<BorrowedFd<'_>>,
    dont_wait: bool,
) -> io::Result<usize> {
    let mut flags = SendFlags::NOSIGNAL;
    if dont_wait {
        flags |= SendFlags::DONTWAIT;
    }
    let fds;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if let Some(p) = pass {
        fds = [p];
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    loop {
        match rustix::net::sendmsg(fd, iov, &mut control, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// `recvmsg(fd, buf, MSG_CMSG_CLOEXEC [| MSG_DONTWAIT])`—Reads bytes into `buf` and adopts every
/// fd that came with them into `fds` (close-on-exec from the start). Returns the byte count
/// (0 at end of stream) and whether fds were lost (`MSG_CTRUNC`). Retries `EINTR`.
pub(crate) fn recv(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    dont_wait: bool,
) -> io::Result<(usize, bool)> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_READ))];
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if dont_wait {
        flags |= RecvFlags::DONTWAIT;
    }
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(fd, &mut iov, &mut control, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(r) => {
                for msg in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(received) = msg {
                        fds.extend(received);
                    }
                }
                return Ok((r.bytes, r.flags.contains(ReturnFlags::CTRUNC)));
            }
        }
    }
}

/// `poll(fd, POLLIN, timeout)`—Waits until `fd` is readable (or closed), `false` when the
/// timeout passed first. Retries `EINTR` with the full timeout (callers loop on a deadline).
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<bool> {
    let ts = rustix::event::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    match rustix::event::poll(&mut fds, Some(&ts)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `shutdown(fd, SHUT_WR or SHUT_RDWR)`—Ends our writing (the peer reads end of stream), or
/// both directions (which also wakes a thread blocked reading this socket).
pub(crate) fn shutdown(fd: BorrowedFd<'_>, both: bool) {
    // ENOTCONN once the peer is gone is fine: the point is reached either way.
    let _ = rustix::net::shutdown(fd, if both { Shutdown::Both } else { Shutdown::Write });
}

/// `getsockopt(SO_DOMAIN, SO_TYPE)`—`Ok` if `fd` is an `AF_UNIX` `SOCK_STREAM` socket, else
/// an error that says what it is.
pub(crate) fn check_unix_stream(fd: BorrowedFd<'_>) -> Result<(), String> {
    let kind = rustix::net::sockopt::socket_type(fd)
        .map_err(|e| format!("is not a socket ({})", io::Error::from(e)))?;
    let domain = rustix::net::sockopt::socket_domain(fd)
        .map_err(|e| format!("is not a socket ({})", io::Error::from(e)))?;
    if domain != AddressFamily::UNIX {
        return Err(format!("is not a Unix-domain socket (family {})", domain.as_raw()));
    }
    if kind != SocketType::STREAM {
        return Err(format!("is not a stream socket (type {})", kind.as_raw()));
    }
    Ok(())
}

/// Takes ownership of the inherited fd `raw` that the parent named in `NODE_CHANNEL_FD`,
/// after checking that it is open, and marks it close-on-exec and blocking.
///
/// The caller removes the variable from the environment first, so that the fd is adopted
/// once; adopting an fd that other code in the process owns would close it under that code.
pub(crate) fn adopt_channel_fd(raw: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD on any integer is sound; it only tells whether the fd is open.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open, and it is the one the parent set aside for this channel: nothing
    // in this process created it, and the variable that names it was removed, so no other
    // owner can appear. Adopting it once is the contract of `NODE_CHANNEL_FD`.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&fd, false)?;
    Ok(fd)
}

/// `fcntl(F_DUPFD_CLOEXEC)`—A close-on-exec copy of `fd`, to hold until it is sent.
pub(crate) fn dup(fd: impl AsFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}
