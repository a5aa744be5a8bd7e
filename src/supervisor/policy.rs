//! The supervisor's policies: when to restart, how long to wait, when to give up, what
//! "ready" means. Pure values, no I/O.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::exit_status::ExitStatus;

/// When a worker that exited is started again, for [`Workers::restart`](super::Workers::restart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Restart {
    /// Whatever the exit status (PM2's default, systemd's `Restart=always`).
    #[default]
    Always,
    /// Only after a failure: an exit code that is not a success code, death by a signal, a
    /// failed spawn, or missing the ready deadline (systemd's `Restart=on-failure`).
    OnFailure,
    /// Never: a worker that exits stays down.
    Never,
}

impl std::str::FromStr for Restart {
    type Err = String;

    /// `always`, `on-failure` or `never`.
    fn from_str(s: &str) -> Result<Restart, String> {
        match s {
            "always" => Ok(Restart::Always),
            "on-failure" => Ok(Restart::OnFailure),
            "never" => Ok(Restart::Never),
            _ => Err(format!("restart policy {s:?}: expected always, on-failure or never")),
        }
    }
}

/// Exponential backoff between restarts: the first restart waits `min`, each next one twice
/// as long, never more than `max`, and each delay is shortened by a random part of up to
/// `jitter` of itself (so that workers that crashed together do not restart in lockstep).
///
/// With `jitter` at most 0.5 the delays still grow strictly until they reach `max`: the
/// shortest next delay, `2d(1 - jitter)`, is at least the longest current one, `d`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub min: Duration,
    /// The cap.
    pub max: Duration,
    /// The largest fraction (0 to 1) taken off at random; values outside are clamped.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s, with 20 % jitter.
    fn default() -> Backoff {
        Backoff { min: Duration::from_millis(100), max: Duration::from_secs(30), jitter: 0.2 }
    }
}

impl Backoff {
    /// The delay before restart number `attempt` (0 for the first after a healthy run), with
    /// `random` in `0..1` choosing the jitter. Never overflows, whatever the inputs.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let full = self.min.saturating_mul(2u32.saturating_pow(attempt)).min(self.max);
        let cut = full.as_secs_f64() * self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        full.saturating_sub(Duration::try_from_secs_f64(cut).unwrap_or(Duration::ZERO))
    }
}

/// A ready check on the worker's stdout, for [`Workers::ready_line`](super::Workers::ready_line):
/// the worker counts as ready at the first line that contains the pattern; a pattern that
/// starts with `^` must start the line instead. No regular expressions (the default build has
/// no regex engine); the match is on bytes, without the line's newline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyLine {
    pattern: Vec<u8>,
    anchored: bool,
}

impl ReadyLine {
    /// Parses the pattern as described on the type.
    pub fn new(pattern: &str) -> ReadyLine {
        match pattern.strip_prefix('^') {
            Some(rest) => ReadyLine { pattern: rest.as_bytes().to_vec(), anchored: true },
            None => ReadyLine { pattern: pattern.as_bytes().to_vec(), anchored: false },
        }
    }

    /// Whether `line` (without its newline) matches.
    pub fn matches(&self, line: &[u8]) -> bool {
        if self.anchored {
            line.starts_with(&self.pattern)
        } else {
            self.pattern.is_empty() || line.windows(self.pattern.len()).any(|w| w == self.pattern)
        }
    }
}

/// Counts restarts in a sliding window: at most `limit` restarts in any `window`.
#[derive(Debug)]
pub(crate) struct RestartWindow {
    limit: u32,
    window: Duration,
    times: VecDeque<Instant>,
}

impl RestartWindow {
    pub(crate) fn new(limit: u32, window: Duration) -> RestartWindow {
        RestartWindow { limit, window, times: VecDeque::new() }
    }

    /// Records a restart at `now` and returns `true`, or returns `false` (give up) if
    /// `limit` restarts already happened in the window that ends at `now`.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        while self.times.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.window) {
            self.times.pop_front();
        }
        if self.times.len() >= self.limit as usize {
            return false;
        }
        self.times.push_back(now);
        true
    }

    /// Restarts counted in the current window.
    pub(crate) fn count(&self) -> u32 {
        self.times.len() as u32
    }
}

/// Whether a run that ended with `status` (`None`: never started, or not ready in time)
/// failed, given the exit codes that count as success.
pub(crate) fn failed(status: Option<ExitStatus>, success: &[i32]) -> bool {
    match status.and_then(ExitStatus::code) {
        Some(code) => !success.contains(&code),
        None => true,
    }
}

/// A random number in `0..1`, from std's per-process random hash keys (no dependency).
pub(crate) fn random_unit() -> f64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let h = std::collections::hash_map::RandomState::new()
        .hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_jitter_only_shortens() {
        let b = Backoff { min: ms(100), max: ms(1000), jitter: 0.0 };
        let d: Vec<_> = (0..6).map(|a| b.delay(a, 0.5)).collect();
        assert_eq!(d, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        let j = Backoff { jitter: 0.5, ..b };
        assert_eq!(j.delay(1, 0.0), ms(200));
        assert_eq!(j.delay(1, 1.0), ms(100));
        // Strictly growing below the cap whatever the randomness.
        for a in 0..3 {
            assert!(j.delay(a + 1, 1.0) >= j.delay(a, 0.0));
        }
        let huge = Backoff { min: Duration::MAX, max: Duration::MAX, jitter: 1.0 };
        assert!(huge.delay(u32::MAX, 0.3) <= Duration::MAX);
        assert_eq!(Backoff { jitter: f64::NAN, ..b }.delay(0, 0.5), ms(100));
    }

    #[test]
    fn window_counts_and_forgets() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(2, ms(1000));
        assert!(w.allow(t0));
        assert!(w.allow(t0 + ms(10)));
        assert!(!w.allow(t0 + ms(20)));
        assert_eq!(w.count(), 2);
        assert!(w.allow(t0 + ms(1005)));
        assert!(!RestartWindow::new(0, Duration::MAX).allow(t0));
    }

    #[test]
    fn ready_line_patterns() {
        assert!(ReadyLine::new("listening").matches(b"now listening on 80"));
        assert!(!ReadyLine::new("^listening").matches(b"now listening on 80"));
        assert!(ReadyLine::new("^now").matches(b"now listening"));
        assert!(ReadyLine::new("").matches(b"anything"));
        assert!(!ReadyLine::new("x").matches(b""));
    }

    #[test]
    fn failure_and_parsing() {
        assert!(!failed(Some(ExitStatus::from_code(0)), &[0]));
        assert!(failed(Some(ExitStatus::from_code(3)), &[0]));
        assert!(!failed(Some(ExitStatus::from_code(3)), &[0, 3]));
        assert!(failed(None, &[0]));
        assert_eq!("on-failure".parse(), Ok(Restart::OnFailure));
        assert!("sometimes".parse::<Restart>().is_err());
        let r = random_unit();
        assert!((0.0..1.0).contains(&r));
    }
}
