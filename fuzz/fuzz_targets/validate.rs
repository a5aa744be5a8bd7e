//! The validators never panic and never accept a NUL; see `offspring_fuzz::props::validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| offspring_fuzz::props::validate(data));
