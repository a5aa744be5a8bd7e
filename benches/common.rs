//! Helpers the benches share (included by `mod common;`; not a bench target of its own).

#![allow(dead_code)] // each bench uses what it needs

/// `getrusage(RUSAGE_SELF).ru_maxrss`, in bytes.
pub(crate) fn peak_rss() -> u64 {
    // SAFETY: `getrusage` only writes the `rusage` it is given, which is zeroed and live.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    usage.ru_maxrss as u64 * 1024
}

/// The median (the mean of the middle two for an even count); sorts `v`.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
