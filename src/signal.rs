//! The public [`Signal`] type: a signal by name, never a bare integer.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A Unix signal, such as [`Signal::TERM`].
///
/// offspring never takes or returns signals as bare integers. Use the constants, or parse a
/// name (`"TERM"`, `"SIGTERM"`, case-insensitive) with [`str::parse`]. `Display` writes the
/// name with its number, as in `SIGTERM (15)`.
///
/// # Examples
///
/// ```
/// use offspring::Signal;
/// assert_eq!("sigterm".parse::<Signal>().unwrap(), Signal::TERM);
/// assert_eq!(Signal::KILL.name(), "SIGKILL");
/// assert_eq!(Signal::from_raw(15), Some(Signal::TERM));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

macro_rules! signals {
    ($($(#[$doc:meta])* $konst:ident = $libc:ident, $name:literal;)*) => {
        impl Signal {
            $(
                $(#[$doc])*
                pub const $konst: Signal = Signal(crate::sys::signal::$libc);
            )*

            /// The signal's name, such as `"SIGTERM"`; `"SIGRTMIN+3"` for real-time signals,
            /// `"SIG?"` for a number this platform does not name.
            pub fn name(self) -> &'static str {
                match self.0 {
                    $(crate::sys::signal::$libc => $name,)*
                    _ => "SIG?",
                }
            }

            fn by_name(name: &str) -> Option<Signal> {
                match name {
                    $($name => Some(Signal::$konst),)*
                    _ => None,
                }
            }
        }
    };
}

signals! {
    /// Hangup (`SIGHUP`): the controlling terminal went away; daemons reload on it.
    HUP = SIGHUP, "SIGHUP";
    /// Interrupt (`SIGINT`): Ctrl-C.
    INT = SIGINT, "SIGINT";
    /// Quit (`SIGQUIT`): Ctrl-\, with a core dump.
    QUIT = SIGQUIT, "SIGQUIT";
    /// Illegal instruction (`SIGILL`).
    ILL = SIGILL, "SIGILL";
    /// Trace trap (`SIGTRAP`).
    TRAP = SIGTRAP, "SIGTRAP";
    /// Abort (`SIGABRT`), as raised by `abort()`.
    ABRT = SIGABRT, "SIGABRT";
    /// Bus error (`SIGBUS`).
    BUS = SIGBUS, "SIGBUS";
    /// Floating-point exception (`SIGFPE`).
    FPE = SIGFPE, "SIGFPE";
    /// Kill (`SIGKILL`): cannot be caught or ignored.
    KILL = SIGKILL, "SIGKILL";
    /// User-defined signal 1 (`SIGUSR1`).
    USR1 = SIGUSR1, "SIGUSR1";
    /// Segmentation fault (`SIGSEGV`).
    SEGV = SIGSEGV, "SIGSEGV";
    /// User-defined signal 2 (`SIGUSR2`).
    USR2 = SIGUSR2, "SIGUSR2";
    /// Broken pipe (`SIGPIPE`): a write to a pipe nobody reads.
    PIPE = SIGPIPE, "SIGPIPE";
    /// Alarm clock (`SIGALRM`).
    ALRM = SIGALRM, "SIGALRM";
    /// Termination request (`SIGTERM`): the polite way to ask a process to exit.
    TERM = SIGTERM, "SIGTERM";
    /// A child stopped or exited (`SIGCHLD`).
    CHLD = SIGCHLD, "SIGCHLD";
    /// Continue a stopped process (`SIGCONT`).
    CONT = SIGCONT, "SIGCONT";
    /// Stop (`SIGSTOP`): cannot be caught or ignored.
    STOP = SIGSTOP, "SIGSTOP";
    /// Terminal stop (`SIGTSTP`): Ctrl-Z.
    TSTP = SIGTSTP, "SIGTSTP";
    /// Background read from the terminal (`SIGTTIN`).
    TTIN = SIGTTIN, "SIGTTIN";
    /// Background write to the terminal (`SIGTTOU`).
    TTOU = SIGTTOU, "SIGTTOU";
    /// Urgent data on a socket (`SIGURG`).
    URG = SIGURG, "SIGURG";
    /// CPU time limit exceeded (`SIGXCPU`).
    XCPU = SIGXCPU, "SIGXCPU";
    /// File size limit exceeded (`SIGXFSZ`).
    XFSZ = SIGXFSZ, "SIGXFSZ";
    /// Virtual timer expired (`SIGVTALRM`).
    VTALRM = SIGVTALRM, "SIGVTALRM";
    /// Profiling timer expired (`SIGPROF`).
    PROF = SIGPROF, "SIGPROF";
    /// Window size changed (`SIGWINCH`).
    WINCH = SIGWINCH, "SIGWINCH";
    /// I/O possible (`SIGIO`).
    IO = SIGIO, "SIGIO";
    /// Bad system call (`SIGSYS`).
    SYS = SIGSYS, "SIGSYS";
}

impl Signal {
    /// The signal with this number, if it is one this platform has (`1..=SIGRTMAX`).
    pub fn from_raw(raw: i32) -> Option<Signal> {
        if raw >= 1 && raw <= crate::sys::signal::max_signal() {
            Some(Signal(raw))
        } else {
            None
        }
    }

    /// The signal's number, for logs and for talking to C code.
    pub fn as_raw(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signal::{}", self.name().trim_start_matches("SIG"))
    }
}

impl FromStr for Signal {
    type Err = Error;

    /// Parses `"TERM"`, `"SIGTERM"` or `"sigterm"`, as Node's `kill('SIGTERM')` takes them.
    fn from_str(s: &str) -> Result<Signal> {
        let upper = s.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
        Signal::by_name(&full)
            .ok_or_else(|| Error::invalid_input(format!("unknown signal name {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for raw in 1..32 {
            let sig = Signal::from_raw(raw).unwrap();
            if sig.name() != "SIG?" {
                assert_eq!(sig.name().parse::<Signal>().unwrap(), sig);
            }
        }
        assert_eq!(Signal::TERM.to_string(), "SIGTERM (15)");
        assert!(Signal::from_raw(0).is_none());
        assert!(Signal::from_raw(-1).is_none());
        assert!("NOPE".parse::<Signal>().is_err());
    }
}
