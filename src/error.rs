//! One error type for spawning, waiting and running, with a public kind to match on.
//!
//! The details live behind a `Box` so that `Result<T, Error>` stays one pointer wide, as in
//! xshell. Everything a user needs to understand a failure is in the message: what went wrong,
//! at which stage, the command quoted so it pastes into a shell, the errno, and for checked runs
//! the exit status and the tail of stderr.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::capture::{Output, Stop, Stream};
use crate::exit_status::{ExitStatus, ResourceUsage};
use crate::signal::Signal;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is, for matching.
///
/// Like [`std::io::ErrorKind`], new kinds may be added, so a `match` needs a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input found before anything was spawned: a NUL byte, an empty program, an env key
    /// that is empty or contains `=`, a placeholder count that does not match.
    InvalidInput,
    /// The program was not found (on `PATH` or at the given path), or the working directory
    /// does not exist: [`Error::stage`] tells which.
    NotFound,
    /// The program (or a directory on the way to it) is not executable or not searchable, or
    /// the program is a directory.
    PermissionDenied,
    /// The file exists and is executable but the kernel cannot run it (`ENOEXEC`): a script
    /// without a `#!` line, or a binary for another machine. offspring never silently retries
    /// such a file through `/bin/sh`, as `execvp` does.
    ExecFormat,
    /// The arguments and environment together are larger than the kernel accepts (`E2BIG`).
    ArgumentListTooLong,
    /// The process or the system ran out of a resource: file descriptors (`EMFILE`, `ENFILE`),
    /// processes (`EAGAIN`) or memory (`ENOMEM`).
    ResourceExhausted,
    /// The child ran past its timeout and was killed.
    TimedOut,
    /// The child wrote more than the output limit allows on one stream.
    OutputLimit,
    /// The child exited with a non-zero code (checked runs only).
    ExitCode,
    /// The child was killed by a signal (checked runs only).
    Signaled,
    /// The run was cancelled through a [`CancelHandle`](crate::CancelHandle).
    Canceled,
    /// The child was reaped by other code in this process (for example a stray
    /// `waitpid(-1)`, or `SIGCHLD` set to `SIG_IGN`) and its exit status could not be
    /// recovered.
    StatusUnavailable,
    /// Any other operating-system error; [`Error::raw_os_error`] has the errno.
    Io,
    /// The child's output is not what was asked for: not valid UTF-8 for a text helper
    /// such as [`Command::read`](crate::Command::read).
    InvalidData,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::ExecFormat => "exec format error",
            ErrorKind::ArgumentListTooLong => "argument list too long",
            ErrorKind::ResourceExhausted => "resource exhausted",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::OutputLimit => "output limit exceeded",
            ErrorKind::ExitCode => "non-zero exit code",
            ErrorKind::Signaled => "killed by a signal",
            ErrorKind::Canceled => "canceled",
            ErrorKind::StatusUnavailable => "exit status unavailable",
            ErrorKind::Io => "I/O error",
            ErrorKind::InvalidData => "invalid data",
        }
    }

    pub(crate) fn from_errno(errno: i32) -> ErrorKind {
        match errno {
            libc_errno::ENOENT | libc_errno::ENOTDIR => ErrorKind::NotFound,
            libc_errno::EACCES | libc_errno::EPERM | libc_errno::EISDIR => {
                ErrorKind::PermissionDenied
            }
            libc_errno::ENOEXEC => ErrorKind::ExecFormat,
            libc_errno::E2BIG => ErrorKind::ArgumentListTooLong,
            libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::EAGAIN | libc_errno::ENOMEM => {
                ErrorKind::ResourceExhausted
            }
            libc_errno::EINVAL => ErrorKind::InvalidInput,
            _ => ErrorKind::Io,
        }
    }
}

/// The errno values the error module maps, named without `libc` in this layer.
mod libc_errno {
    use rustix::io::Errno;
    pub(super) const ENOENT: i32 = Errno::NOENT.raw_os_error();
    pub(super) const ENOTDIR: i32 = Errno::NOTDIR.raw_os_error();
    pub(super) const EACCES: i32 = Errno::ACCESS.raw_os_error();
    pub(super) const EPERM: i32 = Errno::PERM.raw_os_error();
    pub(super) const EISDIR: i32 = Errno::ISDIR.raw_os_error();
    pub(super) const ENOEXEC: i32 = Errno::NOEXEC.raw_os_error();
    pub(super) const E2BIG: i32 = Errno::TOOBIG.raw_os_error();
    pub(super) const EMFILE: i32 = Errno::MFILE.raw_os_error();
    pub(super) const ENFILE: i32 = Errno::NFILE.raw_os_error();
    pub(super) const EAGAIN: i32 = Errno::AGAIN.raw_os_error();
    pub(super) const ENOMEM: i32 = Errno::NOMEM.raw_os_error();
    pub(super) const EINVAL: i32 = Errno::INVAL.raw_os_error();
}

/// Where in the life of a child an [`Error`] happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Checking the command before anything was spawned.
    Validate,
    /// Looking the program up on `PATH`.
    Lookup,
    /// Creating pipes or other resources for the child, before it exists.
    Setup,
    /// Changing into the working directory, in the child.
    Chdir,
    /// Preparing the child after fork: fds, credentials, limits, the `pre_exec` hook.
    ChildSetup,
    /// Executing the program.
    Exec,
    /// Waiting for the child or collecting its status.
    Wait,
    /// Feeding input to the child or reading its output.
    Io,
    /// Judging a finished run (checked runs: exit code, signal, limits, timeout).
    Run,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Lookup => "lookup",
            Stage::Setup => "setup",
            Stage::Chdir => "chdir",
            Stage::ChildSetup => "child setup",
            Stage::Exec => "exec",
            Stage::Wait => "wait",
            Stage::Io => "io",
            Stage::Run => "run",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The error type of offspring: what went wrong, at which stage, for which command.
///
/// Match on [`kind`](Error::kind); read the details through the accessors. `Display` writes one
/// line (or a few, with the stderr tail of a checked run) that names the command quoted so it
/// can be pasted into a shell. `Debug` writes the same text, so `fn main() -> Result<(), Error>`
/// prints something readable.
///
/// An `Error` converts into [`std::io::Error`] (keeping the errno where there is one), so `?`
/// works in functions that return `io::Result`.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    stage: Stage,
    message: String,
    argv: Vec<OsString>,
    path: Option<PathBuf>,
    errno: Option<i32>,
    status: Option<ExitStatus>,
    signal: Option<Signal>,
    killed: bool,
    timeout: Option<Duration>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    limit: Option<(Stream, usize)>,
    merged: bool,
    usage: Option<ResourceUsage>,
    seen: [u64; 2],
    drain_expired: bool,
    stop: Option<Stop>,
}

/// How many bytes of stderr a message quotes.
const STDERR_TAIL: usize = 4096;

impl Error {
    pub(crate) fn new(kind: ErrorKind, stage: Stage, message: impl Into<String>) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                stage,
                message: message.into(),
                argv: Vec::new(),
                path: None,
                errno: None,
                status: None,
                signal: None,
                killed: false,
                timeout: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
                limit: None,
                merged: false,
                usage: None,
                seen: [0, 0],
                drain_expired: false,
                stop: None,
            }),
        }
    }

    /// An input error found before spawning.
    pub(crate) fn invalid_input(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput, Stage::Validate, message)
    }

    /// An operating-system error at `stage`, with its errno.
    pub(crate) fn os(stage: Stage, err: io::Error, what: impl Into<String>) -> Error {
        let errno = err.raw_os_error();
        let kind = match errno {
            Some(e) => ErrorKind::from_errno(e),
            None => match err.kind() {
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                io::ErrorKind::TimedOut => ErrorKind::TimedOut,
                _ => ErrorKind::Io,
            },
        };
        let mut e = Error::new(kind, stage, what);
        e.inner.errno = errno;
        if errno.is_none() {
            let m = &mut e.inner.message;
            if !m.is_empty() {
                m.push_str(": ");
            }
            m.push_str(&err.to_string());
        }
        e
    }

    /// An errno value at `stage`.
    pub(crate) fn errno(stage: Stage, errno: i32, what: impl Into<String>) -> Error {
        Error::os(stage, io::Error::from_raw_os_error(errno), what)
    }

    pub(crate) fn with_argv<I, S>(mut self, argv: I) -> Error
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.argv = argv.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    pub(crate) fn has_argv(&self) -> bool {
        !self.inner.argv.is_empty()
    }

    pub(crate) fn with_path(mut self, path: impl Into<PathBuf>) -> Error {
        self.inner.path = Some(path.into());
        self
    }

    pub(crate) fn with_status(mut self, status: ExitStatus) -> Error {
        self.inner.status = Some(status);
        self
    }

    pub(crate) fn with_signal(mut self, signal: Signal, killed: bool) -> Error {
        self.inner.signal = Some(signal);
        self.inner.killed = killed;
        self
    }

    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Error {
        self.inner.timeout = Some(timeout);
        self
    }

    pub(crate) fn with_output(mut self, stdout: Vec<u8>, stderr: Vec<u8>) -> Error {
        self.inner.stdout = stdout;
        self.inner.stderr = stderr;
        self
    }

    pub(crate) fn with_usage(mut self, usage: Option<ResourceUsage>) -> Error {
        self.inner.usage = usage;
        self
    }

    /// Records that `stream` went over its limit of `limit` bytes.
    pub(crate) fn with_limit(mut self, stream: Stream, limit: usize) -> Error {
        self.inner.limit = Some((stream, limit));
        self
    }

    /// Records what the finished run's [`Output`] says besides its buffers: the bytes seen,
    /// whether draining ran out, why the run stopped the child.
    pub(crate) fn with_run(mut self, out: &Output) -> Error {
        self.inner.seen = out.seen();
        self.inner.drain_expired = out.drain_expired();
        self.inner.stop = out.stopped_by();
        self
    }

    /// Records that stderr was merged into stdout, so the message quotes the tail of stdout.
    /// Puts `context` in front of the message (`"context: message"`).
    pub(crate) fn with_context(mut self, context: impl Into<String>) -> Error {
        let mut m = context.into();
        if !self.inner.message.is_empty() {
            m.push_str(": ");
            m.push_str(&self.inner.message);
        }
        self.inner.message = m;
        self
    }

    pub(crate) fn with_merged_output(mut self, merged: bool) -> Error {
        self.inner.merged = merged;
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// At which stage the error happened.
    pub fn stage(&self) -> Stage {
        self.inner.stage
    }

    /// The errno, if the operating system reported one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.inner.errno
    }

    /// The program and arguments of the command, if the error concerns one.
    pub fn argv(&self) -> &[OsString] {
        &self.inner.argv
    }

    /// The program the error concerns, as the user gave it, if any.
    pub fn program(&self) -> Option<&OsStr> {
        self.inner.argv.first().map(|s| s.as_os_str())
    }

    /// The file or directory the error concerns (the working directory for a `chdir` failure,
    /// the resolved program for an exec failure), if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.inner.path.as_deref()
    }

    /// What the child used (CPU time, peak RSS), for errors raised after the child
    /// finished (checked runs, timeouts, limits, cancels).
    pub fn resource_usage(&self) -> Option<ResourceUsage> {
        self.inner.usage
    }

    /// The exit status, for errors raised after the child finished (checked runs, timeouts).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.inner.status
    }

    /// For a timeout or an output limit: the signal that was sent to stop the child, and
    /// whether it had to be followed by `SIGKILL` ([`killed`](Error::needed_kill)).
    pub fn signal_sent(&self) -> Option<Signal> {
        self.inner.signal
    }

    /// For a timeout or an output limit: `true` when the child did not stop after the first
    /// signal within the grace period and had to be killed with `SIGKILL`.
    pub fn needed_kill(&self) -> bool {
        self.inner.killed
    }

    /// For a timeout: the timeout that was exceeded.
    pub fn timeout(&self) -> Option<Duration> {
        self.inner.timeout
    }

    /// For an [`ErrorKind::OutputLimit`] error: the stream that went over, and its limit in
    /// bytes. The child wrote at least one byte more than the limit; [`stdout`](Error::stdout)
    /// or [`stderr`](Error::stderr) holds the first `limit` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind, Stream};
    /// let err = Command::new("head").args(["-c", "5000", "/dev/zero"]).max_buffer(4096).output().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::OutputLimit);
    /// assert_eq!(err.over_limit(), Some((Stream::Stdout, 4096)));
    /// assert_eq!(err.stdout().len(), 4096);
    /// ```
    pub fn over_limit(&self) -> Option<(Stream, usize)> {
        self.inner.limit
    }

    /// What the child wrote to stdout before the error (checked runs, timeouts, limits).
    pub fn stdout(&self) -> &[u8] {
        &self.inner.stdout
    }

    /// What the child wrote to stderr before the error (checked runs, timeouts, limits).
    pub fn stderr(&self) -> &[u8] {
        &self.inner.stderr
    }

    /// Takes the partial output out of the error, as `(stdout, stderr)`.
    pub fn into_output(self) -> (Vec<u8>, Vec<u8>) {
        let inner = *self.inner;
        (inner.stdout, inner.stderr)
    }

    /// For a run that finished (stopped by a timeout, a cancel or an output limit, or failed a
    /// check of its exit status): the whole [`Output`], with its status, both streams and
    /// [`Output::stopped_by`]. Any other error (the child never ran) comes back as it is.
    ///
    /// `cmd.output().or_else(Error::into_run_output)` gives one `Output` for every run that
    /// finished, to be judged in one `match`.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{exec, Error, Stop};
    /// use std::time::Duration;
    /// let out = exec("echo partial; sleep 10").timeout(Duration::from_millis(200)).run()
    ///     .or_else(Error::into_run_output)?;
    /// assert_eq!(out.stopped_by(), Some(Stop::Timeout));
    /// assert_eq!(out.stdout, b"partial\n");
    /// let out = exec("exit 3").run().or_else(Error::into_run_output)?;
    /// assert_eq!((out.stopped_by(), out.status.code()), (None, Some(3)));
    /// // The child never ran: still an error.
    /// assert!(offspring::exec_file("/no/such/program", [""; 0]).run().or_else(Error::into_run_output).is_err());
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn into_run_output(self) -> Result<Output> {
        let Some(status) = self.inner.status else { return Err(self) };
        let i = *self.inner;
        Ok(Output::from_parts(status, i.stdout, i.stderr, i.seen, i.drain_expired, i.stop, i.usage))
    }

    /// `true` if the child had exited but its pipes were still held open (by a process it
    /// started) when the [drain timeout](crate::Command::drain_timeout) ran out, as
    /// [`Output::drain_expired`]. The message then says that a process the child started may
    /// still be running.
    pub fn drain_expired(&self) -> bool {
        self.inner.drain_expired
    }

    /// Why the run stopped the child ([`Stop::Timeout`], [`Stop::Canceled`],
    /// [`Stop::Limit`]), if it did.
    pub fn stopped_by(&self) -> Option<Stop> {
        self.inner.stop
    }

    /// The command line, quoted so that pasting it into a POSIX shell runs the same argv.
    pub fn command_line(&self) -> String {
        crate::quote::display_argv(&self.inner.argv)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        // A checked exit's message is the status ("exit code 3"), which names the kind.
        let says_kind = matches!(i.kind, ErrorKind::ExitCode | ErrorKind::Signaled);
        let kind = if says_kind && !i.message.is_empty() { "" } else { i.kind.as_str() };
        if !i.argv.is_empty() {
            write!(f, "{} failed: ", bounded(&self.command_line(), COMMAND_SHOWN))?;
        }
        f.write_str(kind)?;
        if !i.message.is_empty() {
            let sep = if kind.is_empty() { "" } else { ": " };
            write!(f, "{sep}{}", bounded(&i.message, MESSAGE_SHOWN))?;
        }
        if i.drain_expired {
            f.write_str(&format!("; {HELD_OPEN}"))?;
        }
        if let Some(p) = &i.path {
            write!(f, " ({})", bounded(&crate::quote::display_path(p), MESSAGE_SHOWN))?;
        }
        if let Some(errno) = i.errno {
            let e = io::Error::from_raw_os_error(errno);
            let name = crate::sys::errno_name(errno);
            write!(f, " [{}: {}]", name, strip_os_suffix(&e.to_string()))?;
        }
        write!(f, " (stage: {})", i.stage)?;
        // With stderr merged into stdout (2>&1), stdout is where the diagnostics went.
        let (label, quoted) =
            if i.merged { ("stdout+stderr", &i.stdout) } else { ("stderr", &i.stderr) };
        if !quoted.is_empty() && matches!(i.stage, Stage::Run) {
            let tail = &quoted[quoted.len().saturating_sub(STDERR_TAIL)..];
            // Escaped as the command line is: the child's bytes must not drive the terminal
            // that shows the error (cursor moves, titles, hyperlinks). `stderr()` keeps them.
            let text = crate::quote::display_text(tail);
            let text = text.trim_end();
            if !text.is_empty() {
                write!(f, "\n--- {label}")?;
                if tail.len() < quoted.len() {
                    write!(f, " (last {} of {} bytes)", tail.len(), quoted.len())?;
                }
                write!(f, " ---\n{text}")?;
            }
        }
        Ok(())
    }
}

/// What an error says when the pipes outlived the child.
const HELD_OPEN: &str =
    "the pipes were still held open after the child exited: a process it started may still be running";

/// How much of a command line a message quotes: a longer one is cut in the middle.
const COMMAND_SHOWN: usize = 1024;

/// How much of any other part of a message (a path, a `PATH` list) is shown.
const MESSAGE_SHOWN: usize = 1024;

/// `s` if it is at most `max` bytes, else its start and end with the middle cut out, saying
/// how much was cut.
fn bounded(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let floor = |mut i: usize| {
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let head = floor(max * 2 / 3);
    let tail = floor(s.len() - max / 3);
    format!("{} [... {} bytes cut ...] {}", &s[..head], tail - head, &s[tail..]).into()
}

/// `io::Error`'s text ends in " (os error N)"; the errno is printed by name already.
fn strip_os_suffix(s: &str) -> &str {
    match s.rfind(" (os error ") {
        Some(i) => &s[..i],
        None => s,
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// An error with an errno becomes `io::Error::from_raw_os_error(errno)`, so
/// [`raw_os_error`](io::Error::raw_os_error) and [`kind`](io::Error::kind) are the
/// operating system's, as std's `Command` gives them (the command is not in its message).
/// Any other error becomes an `io::Error` of the matching kind whose payload is the whole
/// `Error` ([`get_ref`](io::Error::get_ref) and downcast): [`TimedOut`](io::ErrorKind::TimedOut)
/// for a timeout, [`Other`](io::ErrorKind::Other) for a cancel (never `Interrupted`, which
/// read and retry loops take as "try again").
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        if let Some(errno) = e.raw_os_error() {
            return io::Error::from_raw_os_error(errno);
        }
        let kind = match e.kind() {
            ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::InvalidData => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

impl ErrorKind {
    /// The kind of an [`io::Error`], whatever produced it: an offspring [`Error`] converted
    /// with `?` keeps its kind; an [`OutputReader`](crate::OutputReader) deadline that
    /// passed is [`ErrorKind::TimedOut`]; an errno maps as for a spawn. This is the one way
    /// to tell a timeout from a failure whichever error you hold: `err.kind()` on an
    /// offspring `Error`, `ErrorKind::from_io(&err)` on an `io::Error`.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind, Stdio};
    /// use std::time::Duration;
    /// let mut child = Command::new("sleep").arg("5").stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
    /// let mut out = child.stdout_reader().unwrap();
    /// let err = out.read_timeout(&mut [0; 16], Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(ErrorKind::from_io(&err), ErrorKind::TimedOut);
    /// let err = Command::new("sleep").arg("5").timeout(Duration::from_millis(10)).run().unwrap_err();
    /// assert_eq!(ErrorKind::from_io(&std::io::Error::from(err)), ErrorKind::TimedOut);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_io(err: &io::Error) -> ErrorKind {
        if let Some(e) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
            return e.kind();
        }
        if let Some(errno) = err.raw_os_error() {
            return ErrorKind::from_errno(errno);
        }
        match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            io::ErrorKind::InvalidData => ErrorKind::InvalidData,
            io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            _ => ErrorKind::Io,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static_and_small() {
        fn assert<T: Send + Sync + 'static>() {}
        assert::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_names_command_stage_and_errno() {
        let e = Error::errno(Stage::Exec, libc_errno::ENOENT, "program not found")
            .with_argv(["my prog", "a'b"]);
        let s = e.to_string();
        assert!(s.contains("'my prog' 'a'\"'\"'b'"), "{s}");
        assert!(s.contains("ENOENT"), "{s}");
        assert!(s.contains("stage: exec"), "{s}");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn stderr_tail_is_bounded() {
        let big = vec![b'x'; STDERR_TAIL * 3];
        let e = Error::new(ErrorKind::ExitCode, Stage::Run, "exit code 1")
            .with_argv(["p"])
            .with_output(Vec::new(), big);
        let s = e.to_string();
        assert!(s.len() < STDERR_TAIL + 200, "{}", s.len());
        assert!(s.contains("last 4096 of 12288 bytes"));
    }

    #[test]
    fn stderr_tail_is_escaped_and_the_accessor_is_raw() {
        // A hyperlink, a window title, a cursor move, an invisible character, bytes that are
        // not UTF-8 and a backslash.
        let raw = b"error: \x1b]8;;http://evil/\x1b\\here\x1b]8;;\x1b\\ \x1b]0;title\x07\x1b[2A\r\xe2\x81\xa0 \xff c:\\x\nline 2\n".to_vec();
        let e = Error::new(ErrorKind::ExitCode, Stage::Run, "exit code 1")
            .with_argv(["p"])
            .with_output(Vec::new(), raw.clone());
        let s = e.to_string();
        assert!(!s.chars().any(|c| c.is_control() && c != '\n'), "{s:?}");
        assert!(!s.contains('\u{2060}'), "{s:?}");
        assert!(
            s.ends_with(
                "--- stderr ---\nerror: \\033]8;;http://evil/\\033\\\\here\\033]8;;\\033\\\\ \\033]0;title\\007\\033[2A\\015\\342\\201\\240 \\377 c:\\\\x\nline 2"
            ),
            "{s:?}"
        );
        assert_eq!(e.stderr(), raw);
    }
}
