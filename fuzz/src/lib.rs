//! Fuzzing support for offspring: the property checks and the shell harness.
//!
//! They live in the crate's `tests/quote_harness/` and `tests/ipc_harness/` (which the
//! published crate contains, so its tests build) and are included here with `#[path]`;
//! `tests/it/quote.rs` and `tests/it/ipc.rs` include the same files, so the ordinary test
//! suite replays the committed corpora through exactly the checks the fuzz targets run.

#[path = "../../tests/ipc_harness/decode.rs"]
pub mod ipc;
#[path = "../../tests/quote_harness/props.rs"]
pub mod props;
#[path = "../../tests/quote_harness/shell.rs"]
pub mod shell;
