//! Fuzzing support for offspring: the property checks and the shell harness.
//!
//! They live in the crate's `tests/quote_harness/` (which the published crate contains, so its
//! tests build) and are included here with `#[path]`; `tests/it/quote.rs` includes the same
//! files, so the ordinary test suite replays the committed corpus through exactly the checks
//! the fuzz targets run.

#[path = "../../tests/quote_harness/props.rs"]
pub mod ipc;
pub mod props;
#[path = "../../tests/quote_harness/shell.rs"]
pub mod shell;
