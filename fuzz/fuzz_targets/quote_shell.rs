//! Differential against the real shells: dash and bash read `join(words)` (each word quoted)
//! and `display(words)` back as exactly the words, and a line `split` accepts as what `split` returned; see
//! `offspring_fuzz::props::ShellCases` and `offspring_fuzz::shell`.
//!
//! The shells are checked in batches of `OFFSPRING_FUZZ_BATCH` inputs (default 32) so that one
//! round trip covers many inputs: that is what makes thousands of executions a second
//! possible. A failure is therefore found up to a batch late, so the input to blame is
//! written to `<artifact_prefix>deferred-<hash>` and named in the panic message (libFuzzer's
//! own `crash-*` file is then just the input that completed the batch). Reproduce with
//! `OFFSPRING_FUZZ_BATCH=1 cargo fuzz run quote_shell <file>`. `display`, which forks the
//! shells for `$(printf ...)`, is checked for one input in `OFFSPRING_FUZZ_DISPLAY` (default
//! 128; the quote_roundtrip target checks every input against a reading of display's output
//! in Rust).
//!
//! The shells are CPU-bound, so each batch goes to dash and bash in a UTF-8 locale, and to
//! one of the others in turn: bash in the C locale, bash --posix, and bash in each multibyte
//! locale (GB18030, GBK, Big5, Big5-HKSCS, Shift-JIS, generated with `localedef`), bash as
//! `sh` and dash under GB18030.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use offspring_fuzz::props::ShellCases;
use offspring_fuzz::shell::Shells;

struct State {
    shells: Shells,
    pending: ShellCases,
    batch: usize,
    display_every: u64,
    batches: usize,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

/// FNV-1a: a stable name for an input, and a stable choice of the inputs that check `display`.
fn fnv(data: &[u8]) -> u64 {
    data.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Checks what is pending; on a failure, saves the input to blame and reports it.
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

/// Checks the last, partial batch when libFuzzer exits, then stops the shells and removes
/// their batch file (a static is never dropped otherwise).
extern "C" fn flush() {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(mut state) = state.take() {
        if let Err(message) = check(&mut state) {
            eprintln!("{message}");
            std::process::abort();
        }
    }
}

fuzz_target!(
    init: {
        // libFuzzer's `main` is not Rust's, so SIGPIPE still kills the process: a shell that
        // exits while being fed must be a finding, not a silent death of the fuzzer.
        // SAFETY: setting a signal to SIG_IGN at startup; `flush` is a plain extern "C" fn.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            libc::atexit(flush);
        }
        let shells = Shells::with_multibyte();
        assert!(shells.shells.len() >= offspring_fuzz::shell::FLAVORS.len(), "install dash and bash first");
        *STATE.lock().unwrap() = Some(State {
            shells,
            pending: ShellCases::new(),
            batch: env_number("OFFSPRING_FUZZ_BATCH", 32) as usize,
            display_every: env_number("OFFSPRING_FUZZ_DISPLAY", 128),
            batches: 0,
        });
    },
    |data: &[u8]| {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let state = state.as_mut().expect("set up in init");
        let display = fnv(data) % state.display_every == 0;
        state.pending.add(data, display);
        if state.pending.len() >= state.batch {
            // dash and bash (C.UTF-8) always; then one of the others, in turn.
            state.batches += 1;
            let turn = 2 + state.batches % (state.shells.shells.len() - 2);
            for (i, active) in state.shells.active.iter_mut().enumerate() {
                *active = i < 2 || i == turn;
            }
            if let Err(message) = check(state) {
                panic!("{message}");
            }
        }
    }
);
