//! Fuzzing support for offspring: the property checks and the shell harness.
//!
//! `tests/it/quote.rs` includes `props.rs` and `shell.rs` with `#[path]`, so the ordinary test
//! suite replays the committed corpus through exactly the checks the fuzz targets run.

pub mod ipc;
pub mod props;
pub mod shell;
