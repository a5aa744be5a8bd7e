//! [`OutputReader`]: a child's output read as it comes, in chunks or line by line, with
//! deadlines.
//!
//! A blocking read is one `read` system call, exactly what a plain read loop makes; a read
//! with a deadline is a `poll` with the time left, then the `read`. A read or a line that
//! misses its deadline consumes nothing: a partial line stays buffered and the next call
//! carries on from it.

use std::fmt;
use std::io::{self, BufRead, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use crate::child::{deadline_after, Child};

/// How much the reader asks the kernel for at a time: one default pipe's worth.
const CHUNK: usize = 64 * 1024;

/// Reads a child's stdout or stderr (or any pipe) as it is written: in chunks, or line by
/// line, blocking or with a deadline.
///
/// It implements [`Read`] and [`BufRead`] (so [`BufRead::lines`] works) for blocking use,
/// and adds `_deadline`/`_timeout` variants that give up with an
/// [`io::ErrorKind::TimedOut`] error, consuming nothing: a line that is half written at the
/// deadline stays buffered and is returned whole by a later call.
///
/// Get one with [`Child::stdout_reader`], [`Child::stderr_reader`] or
/// [`OutputReader::new`].
///
/// # Drop behavior
///
/// Dropping the reader closes the pipe; a child that writes to it afterwards gets `EPIPE` (or
/// dies of `SIGPIPE`, which offspring's children have at its default action).
///
/// # Examples
///
/// ```
/// use offspring::{Command, Stdio};
/// use std::time::Duration;
///
/// let mut child = Command::new("sh")
///     .args(["-c", "echo ready; sleep 0.2; printf 'half'; sleep 0.2; echo ' done'"])
///     .stdout(Stdio::piped())
///     .spawn()?;
/// let mut out = child.stdout_reader().unwrap();
/// let mut line = String::new();
/// out.read_line_timeout(&mut line, Duration::from_secs(10))?;
/// assert_eq!(line, "ready\n");
///
/// // "half" arrives first; the line is not complete within 250 ms, and nothing is lost.
/// line.clear();
/// let err = out.read_line_timeout(&mut line, Duration::from_millis(250)).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
/// assert_eq!(line, "");
/// out.read_line_timeout(&mut line, Duration::from_secs(10))?;
/// assert_eq!(line, "half done\n");
/// assert!(child.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OutputReader {
    fd: OwnedFd,
    /// Buffered bytes are `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// How many buffered bytes have been searched for a delimiter without finding one.
    scanned: usize,
    eof: bool,
    max_line: usize,
}

impl OutputReader {
    /// A reader over `pipe` (a [`ChildStdout`](crate::ChildStdout),
    /// [`ChildStderr`](crate::ChildStderr), or any fd it is the only reader of: a read that
    /// `poll` said would not block must not block, which another reader could break).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, OutputReader, Stdio};
    /// use std::io::Read;
    /// let mut child = Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn()?;
    /// let mut out = OutputReader::new(child.stdout.take().unwrap());
    /// let mut s = String::new();
    /// out.read_to_string(&mut s)?;
    /// assert_eq!(s, "hi\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(pipe: impl Into<OwnedFd>) -> OutputReader {
        let fd = pipe.into();
        OutputReader { fd, buf: Vec::new(), pos: 0, scanned: 0, eof: false, max_line: usize::MAX }
    }

    /// Caps the length of a line: a longer one is returned in pieces of `bytes` bytes, only the
    /// last of which ends with the delimiter (default: no cap). Protects memory from a child
    /// that writes megabytes without a newline.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::io::BufRead;
    /// let mut child = Command::new("echo").arg("abcdefgh").stdout(Stdio::piped()).spawn()?;
    /// let out = child.stdout_reader().unwrap().max_line_len(3);
    /// let pieces: Vec<String> = out.lines().collect::<Result<_, _>>()?;
    /// assert_eq!(pieces, ["abc", "def", "gh"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_line_len(mut self, bytes: usize) -> OutputReader {
        self.max_line = bytes.max(1);
        self
    }

    /// What is buffered and not yet consumed.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::io::BufRead;
    /// let mut child = Command::new("printf").arg("a\nb\n").stdout(Stdio::piped()).spawn()?;
    /// child.wait()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let mut line = String::new();
    /// out.read_line(&mut line)?;
    /// assert_eq!(line, "a\n");
    /// assert_eq!(out.buffer(), b"b\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads into `out` what the child has written, waiting until `deadline` if nothing is
    /// there yet. `Ok(0)` means end of file: the child (and everyone else holding the pipe)
    /// closed it.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::TimedOut`] if nothing arrived by `deadline`; I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::time::{Duration, Instant};
    /// let mut child = Command::new("printf").arg("data").stdout(Stdio::piped()).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let mut buf = [0u8; 16];
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// let n = out.read_deadline(&mut buf, deadline)?;
    /// assert_eq!(&buf[..n], b"data");
    /// assert_eq!(out.read_deadline(&mut buf, deadline)?, 0); // end of file
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_deadline(&mut self, out: &mut [u8], deadline: Instant) -> io::Result<usize> {
        self.read_inner(out, Some(deadline))
    }

    /// As [`read_deadline`](OutputReader::read_deadline), waiting at most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::time::Duration;
    /// let mut child = Command::new("sleep").arg("5").stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let mut chunk = [0u8; 4096];
    /// let err = out.read_timeout(&mut chunk, Duration::from_millis(20)).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_timeout(&mut self, out: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.read_inner(out, Some(deadline_after(timeout)))
    }

    /// Returns the buffered bytes, reading more first (waiting until `deadline`) if there are
    /// none: [`BufRead::fill_buf`] with a deadline. Mark what you used with
    /// [`consume`](BufRead::consume). An empty slice means end of file.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::TimedOut`] if nothing arrived by `deadline`; I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::io::BufRead;
    /// use std::time::{Duration, Instant};
    /// let mut child = Command::new("printf").arg("chunk").stdout(Stdio::piped()).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let chunk = out.fill_buf_deadline(Instant::now() + Duration::from_secs(30))?.to_vec();
    /// assert_eq!(chunk, b"chunk");
    /// out.consume(chunk.len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fill_buf_deadline(&mut self, deadline: Instant) -> io::Result<&[u8]> {
        self.fill_buf_inner(Some(deadline))
    }

    /// As [`fill_buf_deadline`](OutputReader::fill_buf_deadline), waiting at most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::time::Duration;
    /// let mut child = Command::new("printf").arg("chunk").stdout(Stdio::piped()).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// assert_eq!(out.fill_buf_timeout(Duration::from_secs(30))?, b"chunk");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fill_buf_timeout(&mut self, timeout: Duration) -> io::Result<&[u8]> {
        self.fill_buf_inner(Some(deadline_after(timeout)))
    }

    /// As [`fill_buf_deadline`](OutputReader::fill_buf_deadline), never waiting: what is
    /// buffered, or what the pipe holds now; [`io::ErrorKind::WouldBlock`] if there is
    /// nothing yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// let mut child = Command::new("sleep").arg("5").stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// assert_eq!(out.try_fill_buf().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_fill_buf(&mut self) -> io::Result<&[u8]> {
        would_block(self.fill_buf_inner(Some(Instant::now())))
    }

    /// As [`read_deadline`](OutputReader::read_deadline), never waiting:
    /// [`io::ErrorKind::WouldBlock`] if nothing has arrived yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// let mut child = Command::new("printf").arg("x").stdout(Stdio::piped()).spawn()?;
    /// child.wait()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let mut buf = [0u8; 8];
    /// assert_eq!(out.try_read(&mut buf)?, 1);
    /// assert_eq!(out.try_read(&mut buf)?, 0); // end of file
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        would_block(self.read_inner(out, Some(Instant::now())))
    }

    /// Appends to `out` everything up to and including the next `delim` byte (or up to end of
    /// file, or [`max_line_len`](OutputReader::max_line_len) bytes), waiting until `deadline`
    /// for it: [`BufRead::read_until`] with a deadline. Returns the number of bytes appended;
    /// `0` at end of file.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::TimedOut`] if the line was not complete by `deadline`: nothing is
    /// appended and nothing consumed. I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::time::{Duration, Instant};
    /// let mut child = Command::new("printf").arg("a\\0b\\0").stdout(Stdio::piped()).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// let mut record = Vec::new();
    /// out.read_until_deadline(0, &mut record, deadline)?;
    /// assert_eq!(record, b"a\0");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_until_deadline(
        &mut self,
        delim: u8,
        out: &mut Vec<u8>,
        deadline: Instant,
    ) -> io::Result<usize> {
        self.read_until_inner(delim, out, Some(deadline))
    }

    /// As [`read_until_deadline`](OutputReader::read_until_deadline), waiting at most
    /// `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::time::Duration;
    /// let mut child = Command::new("printf").arg("a,b").stdout(Stdio::piped()).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let mut field = Vec::new();
    /// out.read_until_timeout(b',', &mut field, Duration::from_secs(30))?;
    /// assert_eq!(field, b"a,");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_until_timeout(
        &mut self,
        delim: u8,
        out: &mut Vec<u8>,
        timeout: Duration,
    ) -> io::Result<usize> {
        self.read_until_inner(delim, out, Some(deadline_after(timeout)))
    }

    /// As [`read_until_deadline`](OutputReader::read_until_deadline), never waiting:
    /// [`io::ErrorKind::WouldBlock`] if the record is not complete yet (nothing is consumed).
    pub fn try_read_until(&mut self, delim: u8, out: &mut Vec<u8>) -> io::Result<usize> {
        would_block(self.read_until_inner(delim, out, Some(Instant::now())))
    }

    /// As [`read_line_deadline`](OutputReader::read_line_deadline), never waiting:
    /// [`io::ErrorKind::WouldBlock`] if the line is not complete yet (nothing is consumed).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// let mut child = Command::new("sh").args(["-c", "printf 'one\ntw'; exec sleep 5"])
    ///     .stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let mut line = String::new();
    /// while out.try_read_line(&mut line).is_err() {
    ///     std::thread::sleep(std::time::Duration::from_millis(5));
    /// }
    /// assert_eq!(line, "one\n");
    /// line.clear();
    /// assert_eq!(out.try_read_line(&mut line).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    /// assert_eq!(line, "");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_read_line(&mut self, line: &mut String) -> io::Result<usize> {
        would_block(self.read_line_inner(line, Some(Instant::now())))
    }

    /// Appends the next line (with its `\n`, if it has one) to `line`, waiting until `deadline`
    /// for it to be complete: [`BufRead::read_line`] with a deadline. Returns the number of
    /// bytes appended; `0` at end of file.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::TimedOut`] if the line was not complete by `deadline` (nothing is
    /// appended and nothing consumed); [`io::ErrorKind::InvalidData`] if the line is not UTF-8
    /// (it is consumed, as std does); I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::time::{Duration, Instant};
    /// let mut child = Command::new("printf").arg("one\ntwo").stdout(Stdio::piped()).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// let mut line = String::new();
    /// out.read_line_deadline(&mut line, deadline)?;
    /// out.read_line_deadline(&mut line, deadline)?; // the last line has no newline
    /// assert_eq!(line, "one\ntwo");
    /// assert_eq!(out.read_line_deadline(&mut line, deadline)?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_line_deadline(
        &mut self,
        line: &mut String,
        deadline: Instant,
    ) -> io::Result<usize> {
        self.read_line_inner(line, Some(deadline))
    }

    /// As [`read_line_deadline`](OutputReader::read_line_deadline), waiting at most `timeout`.
    /// See the [type's example](OutputReader).
    pub fn read_line_timeout(&mut self, line: &mut String, timeout: Duration) -> io::Result<usize> {
        self.read_line_inner(line, Some(deadline_after(timeout)))
    }

    fn read_line_inner(
        &mut self,
        line: &mut String,
        deadline: Option<Instant>,
    ) -> io::Result<usize> {
        let mut bytes = Vec::new();
        let n = self.read_until_inner(b'\n', &mut bytes, deadline)?;
        match String::from_utf8(bytes) {
            Ok(s) => {
                line.push_str(&s);
                Ok(n)
            }
            Err(_) => Err(io::Error::new(io::ErrorKind::InvalidData, "line is not valid UTF-8")),
        }
    }

    fn read_inner(&mut self, out: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        if self.pos == self.buf.len() && out.len() >= CHUNK {
            // Nothing buffered and a large destination: read straight into it.
            return self.read_direct(out, deadline);
        }
        let avail = self.fill_buf_inner(deadline)?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }

    fn read_direct(&mut self, out: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        self.read_with(deadline, |r| rustix::io::read(&r.fd, &mut *out))
    }

    /// Runs `read` until it returns data or fails for real: 0 bytes marks end of file,
    /// `EAGAIN` waits (until `deadline`) for the fd to become readable, `EINTR` retries. With
    /// a deadline, it first waits for readability, so the read itself never blocks.
    fn read_with(
        &mut self,
        deadline: Option<Instant>,
        mut read: impl FnMut(&mut Self) -> rustix::io::Result<usize>,
    ) -> io::Result<usize> {
        if deadline.is_some() {
            self.wait_readable(deadline)?;
        }
        loop {
            match read(self) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => return Ok(n),
                Err(Errno::AGAIN) => self.wait_readable(deadline)?,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn fill_buf_inner(&mut self, deadline: Option<Instant>) -> io::Result<&[u8]> {
        if self.pos == self.buf.len() && !self.eof {
            self.read_more(deadline)?;
        }
        Ok(&self.buf[self.pos..])
    }

    /// One successful read into the buffer (or end of file), waiting until `deadline`.
    fn read_more(&mut self, deadline: Option<Instant>) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if self.pos > 0
            && (self.pos == self.buf.len() || self.buf.capacity() - self.buf.len() < CHUNK / 2)
        {
            // Move the unconsumed bytes to the front instead of growing.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < CHUNK / 2 {
            self.buf.reserve(CHUNK);
        }
        self.read_with(deadline, |r| {
            crate::sys::buf::read_spare(r.fd.as_fd(), &mut r.buf, usize::MAX)
        })
    }

    fn read_until_inner(
        &mut self,
        delim: u8,
        out: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> io::Result<usize> {
        loop {
            let avail = &self.buf[self.pos..];
            let found = avail[self.scanned..].iter().position(|&b| b == delim);
            let take = match found {
                Some(i) => Some((self.scanned + i + 1).min(self.max_line)),
                None if avail.len() >= self.max_line => Some(self.max_line),
                None if self.eof => Some(avail.len()),
                None => None,
            };
            if let Some(k) = take {
                out.extend_from_slice(&avail[..k]);
                self.consume(k);
                return Ok(k);
            }
            self.scanned = avail.len();
            self.read_more(deadline)?;
        }
    }

    /// Sleeps in `poll()` until the pipe is readable (or closed), or fails with `TimedOut` at
    /// `deadline`.
    fn wait_readable(&self, deadline: Option<Instant>) -> io::Result<()> {
        loop {
            // A deadline that has passed still gets one poll that does not wait: what is there
            // already is read.
            let now = Instant::now();
            let timeout =
                deadline.map(|d| crate::reaper::timespec(d.saturating_duration_since(now)));
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(0) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the deadline passed before the child wrote it",
                        ));
                    }
                }
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A deadline of "now" that passed is, for a `try_` method, "nothing there yet".
fn would_block<T>(r: io::Result<T>) -> io::Result<T> {
    r.map_err(|e| {
        if e.kind() == io::ErrorKind::TimedOut {
            io::Error::new(io::ErrorKind::WouldBlock, "nothing to read yet")
        } else {
            e
        }
    })
}

impl Read for OutputReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.read_inner(out, None)
    }
}

impl BufRead for OutputReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.fill_buf_inner(None)
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.buf.len());
        self.scanned = self.scanned.saturating_sub(amt);
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            self.scanned = 0;
        }
    }

    fn read_until(&mut self, delim: u8, out: &mut Vec<u8>) -> io::Result<usize> {
        self.read_until_inner(delim, out, None)
    }

    // std's default `read_line` (and so `lines`) would bypass `max_line_len`.
    fn read_line(&mut self, line: &mut String) -> io::Result<usize> {
        self.read_line_inner(line, None)
    }
}

impl AsFd for OutputReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for OutputReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputReader")
            .field("fd", &self.fd)
            .field("buffered", &(self.buf.len() - self.pos))
            .field("eof", &self.eof)
            .finish()
    }
}

impl Child {
    /// Takes the child's stdout pipe as an [`OutputReader`], to read it in chunks or line by
    /// line with deadlines. `None` if stdout was not piped or was taken already.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::io::BufRead;
    /// let mut child = Command::new("printf").arg("one\\ntwo\\n").stdout(Stdio::piped()).spawn()?;
    /// let lines: Vec<String> = child.stdout_reader().unwrap().lines().collect::<Result<_, _>>()?;
    /// assert_eq!(lines, ["one", "two"]);
    /// assert!(child.wait()?.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stdout_reader(&mut self) -> Option<OutputReader> {
        self.stdout.take().map(OutputReader::new)
    }

    /// Takes the child's stderr pipe as an [`OutputReader`]. `None` if stderr was not piped
    /// or was taken already.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Stdio};
    /// use std::io::Read;
    /// let mut child = Command::new("sh").args(["-c", "echo oops >&2"]).stderr(Stdio::piped()).spawn()?;
    /// let mut err = String::new();
    /// child.stderr_reader().unwrap().read_to_string(&mut err)?;
    /// assert_eq!(err, "oops\n");
    /// assert!(child.stderr_reader().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stderr_reader(&mut self) -> Option<OutputReader> {
        self.stderr.take().map(OutputReader::new)
    }
}
