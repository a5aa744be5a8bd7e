//! `split(quote(w)) == [w]`, `split(join(words)) == words`, and `split` never panics; see
//! `offspring_fuzz::props::roundtrip`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| offspring_fuzz::props::roundtrip(data));
