//! offspring: spawn child processes and talk to them, synchronously, on Unix.
//!
//! # Shell quoting
//!
//! offspring runs no shell unless asked to: a [`Command`] passes each argument to the program
//! as it is. A shell is asked for when a program builds shell code, and building shell code
//! with string formatting is how programs get owned (`exec(\`rm -rf ${userInput}\`)` in
//! Node). The safe way is the easy one here:
//!
//! ```
//! use offspring::{cmd, sh, Command};
//!
//! let name = "world; echo INJECTED"; // from a user, a file name, a branch, a URL...
//!
//! // Before: the value is pasted into shell code, and the shell runs what follows the `;`.
//! let out = Command::new("/bin/sh").arg("-c").arg(format!("echo hello {name}")).output()?;
//! assert_eq!(out.stdout, b"hello world\nINJECTED\n");
//!
//! // After: sh! quotes every value, so the shell reads it back as one word, whatever it holds...
//! let out = sh!("echo hello {}", name).output()?;
//! assert_eq!(out.stdout, b"hello world; echo INJECTED\n");
//!
//! // ...and cmd! runs no shell at all: each value is exactly one argument.
//! let out = cmd!("echo", "hello", name).output()?;
//! assert_eq!(out.stdout, b"hello world; echo INJECTED\n");
//! # Ok::<(), offspring::Error>(())
//! ```
//!
//! - [`cmd!`] builds an argv, with a splat (`..values`) for many arguments; no shell.
//! - [`sh!`] builds `/bin/sh -c` from a template whose placeholders are checked at compile
//!   time and whose values are always quoted. Its template is shell code.
//! - The [`quote`] module quotes, joins and splits POSIX shell words on bytes, and refuses
//!   what it cannot do exactly (a NUL byte; `$`, globs or operators when splitting).
//! - Every spawn first runs the checks of the [`validate`] module: no NUL anywhere, no empty
//!   program, no environment variable name that is empty or contains `=`.
//! - [`Operand`] guards untrusted arguments that a program would read as options (`-rf`,
//!   `--upload-pack=...`); its documentation shows where to put `--` instead.
//! - Errors and logs show commands with [`quote::display`], so pasting one into a shell runs
//!   the same argv.
//!
//! The quoting is fuzzed against the real dash and bash; see `fuzz/` in the repository.

mod capture;
mod child;
mod command;
mod error;
mod exit_status;
#[doc(hidden)]
pub mod macros;
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
