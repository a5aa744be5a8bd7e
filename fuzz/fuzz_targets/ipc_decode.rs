//! The IPC frame decoders never panic, stay bounded and do not depend on how the bytes were
//! split; see `offspring_fuzz::ipc::decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| offspring_fuzz::ipc::decode(data));
