//! offspring: spawn child processes and talk to them, synchronously, on Unix.

mod capture;
mod child;
mod command;
mod error;
mod exit_status;
pub mod quote;
mod reaper;
mod signal;
mod stdio;
mod sys;
pub mod validate;

pub use crate::capture::Output;
pub use crate::child::{Child, Exit, Termination};
pub use crate::command::{which, ChildFd, Command, ProcessGroup, Resource};
pub use crate::error::{Error, ErrorKind, Result, Stage};
pub use crate::exit_status::{ExitStatus, ResourceUsage};
pub use crate::quote::QuoteError;
pub use crate::signal::Signal;
pub use crate::stdio::{ChildStderr, ChildStdin, ChildStdout, Stdio};
pub use crate::validate::Operand;
/// A process id, as rustix types it: never zero, never negative.
pub use rustix::process::Pid;
