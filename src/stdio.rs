//! [`Stdio`]: what a child's fd is connected to; [`ChildStdin`], [`ChildStdout`],
//! [`ChildStderr`]: the parent's ends of its pipes.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// What one of the child's fds is connected to: the parent's own fd, `/dev/null`, a new pipe,
/// or any fd you own (a file, a socket, the end of another child's pipe).
///
/// The same concept as [`std::process::Stdio`]. Every fd offspring creates is `O_CLOEXEC`, so
/// a pipe meant for one child never leaks into another.
///
/// # Examples
///
/// ```
/// use offspring::{Command, Stdio};
/// // Connect one child's stdout to another's stdin, through the kernel.
/// let mut producer = Command::new("echo").arg("hello").stdout(Stdio::piped()).spawn()?;
/// let out = Command::new("tr")
///     .args(["a-z", "A-Z"])
///     .stdin(producer.stdout.take().unwrap())
///     .output()?;
/// producer.wait()?;
/// assert_eq!(out.stdout, b"HELLO\n");
/// # Ok::<(), offspring::Error>(())
/// ```
pub struct Stdio(pub(crate) StdioKind);

#[derive(Debug)]
pub(crate) enum StdioKind {
    Inherit,
    Null,
    Piped,
    Fd(OwnedFd),
}

impl Stdio {
    /// The child uses the parent's own fd (the default for `spawn` and `status`).
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }

    /// The child's fd is connected to `/dev/null`: reads see end of file, writes vanish.
    #[doc(alias = "ignore")]
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }

    /// A new pipe between parent and child; the parent's end appears on the
    /// [`Child`](crate::Child) (`child.stdout`, or [`Child::take_fd`](crate::Child::take_fd) for
    /// an extra fd, where the pipe is a bidirectional socket pair as in Node).
    #[doc(alias = "pipe")]
    pub fn piped() -> Stdio {
        Stdio(StdioKind::Piped)
    }
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            StdioKind::Inherit => f.pad("Stdio::inherit()"),
            StdioKind::Null => f.pad("Stdio::null()"),
            StdioKind::Piped => f.pad("Stdio::piped()"),
            StdioKind::Fd(fd) => write!(f, "Stdio::from({fd:?})"),
        }
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(StdioKind::Fd(fd))
    }
}

impl From<File> for Stdio {
    fn from(file: File) -> Stdio {
        Stdio(StdioKind::Fd(file.into()))
    }
}

impl From<std::os::unix::net::UnixStream> for Stdio {
    fn from(s: std::os::unix::net::UnixStream) -> Stdio {
        Stdio(StdioKind::Fd(s.into()))
    }
}

macro_rules! pipe_end {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// # Drop behavior
        ///
        /// Dropping it closes the parent's end of the pipe.
        pub struct $name {
            fd: OwnedFd,
            /// Set once `Child::wait` closed the pipe (stdin only).
            #[allow(dead_code)]
            closed: std::sync::atomic::AtomicBool,
        }

        impl $name {
            pub(crate) fn new(fd: OwnedFd) -> $name {
                $name { fd, closed: std::sync::atomic::AtomicBool::new(false) }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("fd", &self.fd.as_raw_fd()).finish()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.as_raw_fd()
            }
        }

        impl From<$name> for OwnedFd {
            fn from(p: $name) -> OwnedFd {
                p.fd
            }
        }

        impl From<$name> for Stdio {
            /// Connects another child to this pipe, for pipelines.
            fn from(p: $name) -> Stdio {
                Stdio(StdioKind::Fd(p.fd))
            }
        }
    };
}

pipe_end! {
    /// The parent's end of the child's stdin pipe: write to feed the child, drop for EOF.
    ChildStdin, "stdin"
}
pipe_end! {
    /// The parent's end of the child's stdout pipe: read what the child writes.
    ChildStdout, "stdout"
}
pipe_end! {
    /// The parent's end of the child's stderr pipe: read what the child writes to stderr.
    ChildStderr, "stderr"
}

fn io_err(e: rustix::io::Errno) -> io::Error {
    e.into()
}

/// The marker of a stdin that [`Child::wait`](crate::Child::wait) closed.
static CLOSED_BY_WAIT: &str = "the child's stdin was closed by Child::wait (as std's wait does)";

impl ChildStdin {
    /// Closes the pipe through `&self` (see `sys::close_in_place`); later writes fail with
    /// `BrokenPipe`, as writes to a closed pipe do.
    pub(crate) fn close_for_wait(&self) {
        if crate::sys::close_in_place(self.fd.as_fd()).is_ok() {
            self.closed.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    fn check_open(&self) -> io::Result<()> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, CLOSED_BY_WAIT));
        }
        Ok(())
    }
}

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_open()?;
        rustix::io::write(&self.fd, buf).map_err(io_err)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.check_open()?;
        rustix::io::writev(&self.fd, bufs).map_err(io_err)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_open()?;
        rustix::io::write(&self.fd, buf).map_err(io_err)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

macro_rules! impl_read {
    ($name:ident) => {
        impl Read for $name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                rustix::io::read(&self.fd, buf).map_err(io_err)
            }

            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                rustix::io::readv(&self.fd, bufs).map_err(io_err)
            }
        }

        impl Read for &$name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                rustix::io::read(&self.fd, buf).map_err(io_err)
            }
        }
    };
}

impl_read!(ChildStdout);
impl_read!(ChildStderr);
