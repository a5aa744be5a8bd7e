//! `sh!` attacked: templates generated from the input (`offspring_fuzz::props::template_of`)
//! that the compile-time checker accepts are filled with hostile values and run in dash,
//! bash, bash as `sh` (POSIX mode) and bash under GB18030; any value that runs (calls the
//! shells' `pwned` function) is a finding. See `offspring_fuzz::props::TemplateCases`.
//!
//! Batched like quote_shell (`OFFSPRING_FUZZ_BATCH`, default 32): a finding names the input to
//! blame in `<artifact_prefix>deferred-<hash>`; reproduce with
//! `OFFSPRING_FUZZ_BATCH=1 cargo fuzz run sh_template <file>`.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use offspring_fuzz::props::TemplateCases;
use offspring_fuzz::shell::{Shells, SCRIPT_FLAVORS};

struct State {
    shells: Shells,
    pending: TemplateCases,
    batch: usize,
    /// Inputs seen, and templates the checker accepted (each run in every shell).
    inputs: u64,
    accepted: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn fnv(data: &[u8]) -> u64 {
    data.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn check(state: &mut State) -> Result<(), String> {
    state.pending.check(&mut state.shells).map_err(|(input, message)| {
        let prefix = std::env::args()
            .find_map(|a| a.strip_prefix("-artifact_prefix=").map(str::to_owned))
            .unwrap_or_default();
        let path = format!("{prefix}deferred-{:016x}", fnv(&input));
        match std::fs::write(&path, &input) {
            Ok(()) => format!("{message}\ninput to blame written to {path}"),
            Err(e) => format!("{message}\n(could not write {path}: {e})"),
        }
    })
}

extern "C" fn flush() {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(mut state) = state.take() {
        if let Err(message) = check(&mut state) {
            eprintln!("{message}");
            std::process::abort();
        }
        let names: Vec<&str> = state.shells.shells.iter().map(|s| s.name()).collect();
        eprintln!(
            "sh_template: {} inputs, {} templates accepted by the checker and run with hostile values in {names:?}",
            state.inputs, state.accepted
        );
    }
}

fuzz_target!(
    init: {
        // SAFETY: setting a signal to SIG_IGN at startup; `flush` is a plain extern "C" fn.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            libc::atexit(flush);
        }
        let shells = Shells::of(SCRIPT_FLAVORS);
        assert!(shells.shells.len() >= 3, "install dash and bash first");
        let batch = std::env::var("OFFSPRING_FUZZ_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(32);
        *STATE.lock().unwrap() =
            Some(State { shells, pending: TemplateCases::new(), batch, inputs: 0, accepted: 0 });
    },
    |data: &[u8]| {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let state = state.as_mut().expect("set up in init");
        state.inputs += 1;
        state.accepted += u64::from(state.pending.add(data));
        if state.pending.len() >= state.batch {
            if let Err(message) = check(state) {
                panic!("{message}");
            }
        }
    }
);
