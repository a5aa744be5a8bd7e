//! [`ExitStatus`]: how a child ended, and [`ResourceUsage`]: what it used.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use crate::signal::Signal;

/// How a child process ended: an exit code, or a signal.
///
/// The same concept as [`std::process::ExitStatus`], with the signal as a [`Signal`] rather
/// than an integer, and a `Display` that names it: `exit code 3`, `signal 15 (SIGTERM)`,
/// `signal 11 (SIGSEGV), core dumped`. It converts to and from the std type without loss.
///
/// # Examples
///
/// ```
/// use offspring::{Command, Signal};
/// let status = Command::new("sh").args(["-c", "exit 3"]).status()?;
/// assert_eq!(status.code(), Some(3));
/// assert!(!status.success());
/// assert_eq!(status.to_string(), "exit code 3");
///
/// let status = Command::new("sh").args(["-c", "kill -TERM $$"]).status()?;
/// assert_eq!(status.signal(), Some(Signal::TERM));
/// assert_eq!(status.to_string(), "signal 15 (SIGTERM)");
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus(i32);

impl ExitStatus {
    /// Builds a status from the raw `wait` status word (as `waitpid` fills it in).
    pub fn from_wait_status(raw: i32) -> ExitStatus {
        ExitStatus(raw)
    }

    /// A status for a normal exit with `code` (`0..=255`; higher bits are dropped, as the
    /// kernel does).
    pub fn from_code(code: u8) -> ExitStatus {
        ExitStatus(i32::from(code) << 8)
    }

    /// A status for a death by `signal`.
    pub fn from_signal(signal: Signal, core_dumped: bool) -> ExitStatus {
        ExitStatus(signal.as_raw() | if core_dumped { 0x80 } else { 0 })
    }

    /// The raw `wait` status word.
    pub fn into_wait_status(self) -> i32 {
        self.0
    }

    /// `true` if the child exited with code 0.
    pub fn success(self) -> bool {
        self.0 == 0
    }

    /// The exit code, if the child exited normally (`None` if a signal ended it).
    pub fn code(self) -> Option<i32> {
        if self.0 & 0x7f == 0 {
            Some((self.0 >> 8) & 0xff)
        } else {
            None
        }
    }

    /// The signal that ended the child, if one did.
    pub fn signal(self) -> Option<Signal> {
        let sig = self.0 & 0x7f;
        if sig != 0 && sig != 0x7f {
            Signal::from_raw(sig)
        } else {
            None
        }
    }

    /// `true` if a signal ended the child and it dumped core.
    pub fn core_dumped(self) -> bool {
        self.signal().is_some() && self.0 & 0x80 != 0
    }

    /// The exit code a shell reports for this status (`$?`): the code for an exit, `128 + N`
    /// for a death by signal `N`. What a CLI that runs a child should exit with to pass its
    /// result on.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{ExitStatus, Signal};
    /// assert_eq!(ExitStatus::from_code(3).shell_code(), 3);
    /// assert_eq!(ExitStatus::from_signal(Signal::KILL, false).shell_code(), 137);
    /// ```
    pub fn shell_code(self) -> i32 {
        match (self.code(), self.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s.as_raw(),
            // Stopped or continued: not an end; report it as the shell does a failure.
            (None, None) => 1,
        }
    }

    /// `Err` with this status as an [`Error`](crate::Error) ([`ExitCode`](crate::ErrorKind::ExitCode)
    /// or [`Signaled`](crate::ErrorKind::Signaled)) unless it is a success: std's unstable
    /// `exit_ok`, so that `cmd.status()?.exit_ok()?` checks an exit in one line.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind};
    /// assert!(Command::new("true").status()?.exit_ok().is_ok());
    /// let err = Command::new("false").status()?.exit_ok().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ExitCode);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn exit_ok(self) -> crate::Result<()> {
        if self.success() {
            return Ok(());
        }
        let kind = if self.signal().is_some() {
            crate::ErrorKind::Signaled
        } else {
            crate::ErrorKind::ExitCode
        };
        Err(crate::Error::new(kind, crate::Stage::Run, self.to_string()).with_status(self))
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(code) = self.code() {
            write!(f, "exit code {code}")
        } else if let Some(sig) = self.signal() {
            write!(f, "signal {} ({})", sig.as_raw(), sig.name())?;
            if self.core_dumped() {
                f.write_str(", core dumped")?;
            }
            Ok(())
        } else {
            write!(f, "unrecognised wait status {:#x}", self.0)
        }
    }
}

impl fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExitStatus({self})")
    }
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(s: std::process::ExitStatus) -> ExitStatus {
        ExitStatus(s.into_raw())
    }
}

impl From<ExitStatus> for std::process::ExitStatus {
    fn from(s: ExitStatus) -> std::process::ExitStatus {
        std::process::ExitStatus::from_raw(s.0)
    }
}

/// What a child used while it ran, as the kernel reports it when the child is reaped
/// (`struct rusage` from `waitid`/`wait4`).
///
/// The figures cover the child itself and those of its own children it waited for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceUsage {
    /// CPU time spent in user mode.
    pub user_time: Duration,
    /// CPU time spent in the kernel on the child's behalf.
    pub system_time: Duration,
    /// Peak resident set size, in bytes.
    pub max_rss_bytes: u64,
    /// Page faults served without I/O.
    pub minor_faults: u64,
    /// Page faults that needed I/O.
    pub major_faults: u64,
    /// Voluntary context switches (the child blocked).
    pub voluntary_context_switches: u64,
    /// Involuntary context switches (the child was preempted).
    pub involuntary_context_switches: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_table() {
        type Case = (i32, &'static str, Option<i32>, Option<Signal>, bool);
        let cases: &[Case] = &[
            (0x0000, "exit code 0", Some(0), None, false),
            (0x0100, "exit code 1", Some(1), None, false),
            (0xff00, "exit code 255", Some(255), None, false),
            (0x000f, "signal 15 (SIGTERM)", None, Some(Signal::TERM), false),
            (0x0009, "signal 9 (SIGKILL)", None, Some(Signal::KILL), false),
            (0x008b, "signal 11 (SIGSEGV), core dumped", None, Some(Signal::SEGV), true),
        ];
        for &(raw, text, code, sig, core) in cases {
            let s = ExitStatus::from_wait_status(raw);
            assert_eq!(s.to_string(), text);
            assert_eq!(s.code(), code);
            assert_eq!(s.signal(), sig);
            assert_eq!(s.core_dumped(), core);
            assert_eq!(s.success(), raw == 0);
            let std: std::process::ExitStatus = s.into();
            assert_eq!(ExitStatus::from(std), s);
            assert_eq!(std.code(), code);
        }
        assert_eq!(ExitStatus::from_code(7).code(), Some(7));
        assert_eq!(ExitStatus::from_signal(Signal::SEGV, true).into_wait_status(), 0x8b);
    }
}
