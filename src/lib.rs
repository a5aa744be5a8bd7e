//! offspring: spawn child processes and talk to them, synchronously, on Unix.
mod error;
mod exit_status;
pub mod quote;
mod signal;
mod sys;
pub mod validate;

pub use crate::error::{Error, ErrorKind, Result, Stage};
pub use crate::exit_status::{ExitStatus, ResourceUsage};
pub use crate::quote::QuoteError;
pub use crate::signal::Signal;
pub use crate::validate::Operand;
