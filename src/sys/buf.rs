//! Reading straight into a `Vec`'s spare capacity, and faulting its pages in ahead of time.
//!
//! Capturing a child's output is bounded by two costs: the pipe, and the first write to fresh
//! memory (a page fault per 4 KiB page, measured here at about 0.5 s per GiB). Reading into
//! the spare capacity of the output `Vec` avoids zeroing it and copying through a staging
//! buffer; faulting the pages in before the read keeps that cost out of the pipe's lock.
//!
//! Transparent huge pages (`madvise(MADV_HUGEPAGE)`) were measured too and are not used: on
//! this machine kind (a VM that hands free memory back to its host) a fresh 2 MiB page usually
//! costs host-side faults, and captures got slower (0.83x std's `output()`, against 1.10x
//! with 4 KiB pages faulted in ahead).

#![allow(unsafe_code)]

use std::os::fd::BorrowedFd;

/// `read(fd, spare capacity)`—Reads at most `max` bytes into the spare capacity of `buf` and
/// extends its length by the number read.
///
/// Reads nothing (and returns `Ok(0)` without a syscall) only when `max` or the spare
/// capacity is zero; callers make room first.
///
/// # References
///  - [POSIX `read`](https://pubs.opengroup.org/onlinepubs/9799919799/functions/read.html)
pub(crate) fn read_spare(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> rustix::io::Result<usize> {
    let len = buf.len();
    let spare = buf.spare_capacity_mut();
    let take = spare.len().min(max);
    if take == 0 {
        return Ok(0);
    }
    let (filled, _) = rustix::io::read(fd, &mut spare[..take])?;
    let n = filled.len();
    debug_assert!(n <= take);
    // SAFETY: `rustix::io::read` returned `filled`, the first `n` elements of the spare
    // capacity, as initialized by the kernel; `len + n <= capacity` because `n <= take`,
    // which is at most the spare capacity.
    unsafe { buf.set_len(len + n) };
    Ok(n)
}

/// `madvise(MADV_POPULATE_WRITE)`—Faults in, writable, the pages that hold bytes
/// `from..to` of `buf`'s allocation (offsets from its start; `to` at most its capacity),
/// without touching their contents. Returns `false` if the kernel does not support it (before
/// Linux 5.14), so the caller can touch the pages itself.
///
/// Why: a `read` from a pipe copies into the buffer while holding the pipe's lock. If the
/// destination page is new, the copy faults, and the kernel clears the page with the lock
/// held, while the writer spins on it (seen with `perf`: `mutex_spin_on_owner` in the writer).
/// Faulting the pages in beforehand moves that work out of the lock.
///
/// # References
///  - [`madvise(2)`](https://man7.org/linux/man-pages/man2/madvise.2.html)
#[cfg(target_os = "linux")]
pub(crate) fn prefault(buf: &mut Vec<u8>, from: usize, to: usize) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    let to = to.min(buf.capacity());
    if from >= to {
        return true;
    }
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return false;
    }
    let page = page_size();
    let base = buf.as_mut_ptr() as usize;
    let first = (base + from) & !(page - 1);
    let last = (base + to).next_multiple_of(page);
    // SAFETY: `first..last` is page-aligned and made of pages that hold part of `buf`'s
    // allocation (`from < to <= capacity`), which `&mut` keeps alive for the call, so it is
    // mapped and writable. `MADV_POPULATE_WRITE` only maps pages in, as a write would, without
    // changing any byte, so no memory that Rust can observe changes.
    let rc = unsafe {
        libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_POPULATE_WRITE)
    };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        UNSUPPORTED.store(true, Ordering::Relaxed);
        return false;
    }
    true
}

/// No `MADV_POPULATE_WRITE` outside Linux: the caller touches the pages.
#[cfg(not(target_os = "linux"))]
pub(crate) fn prefault(_buf: &mut Vec<u8>, _from: usize, _to: usize) -> bool {
    false
}

/// `sysconf(_SC_PAGESIZE)`, cached.
#[cfg(target_os = "linux")]
fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: `sysconf` has no preconditions; `_SC_PAGESIZE` is always supported.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if raw > 0 && (raw as usize).is_power_of_two() { raw as usize } else { 4096 };
    PAGE.store(page, Ordering::Relaxed);
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn read_spare_appends_and_respects_max() {
        let (rd, wr) = crate::sys::pipe::pipe().unwrap();
        std::fs::File::from(wr).write_all(b"hello world").unwrap();
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b">");
        assert_eq!(read_spare(rd.as_fd(), &mut buf, 5).unwrap(), 5);
        assert_eq!(buf, b">hello");
        assert_eq!(read_spare(rd.as_fd(), &mut buf, 100).unwrap(), 6);
        assert_eq!(buf, b">hello world");
        // EOF: the write end is closed.
        assert_eq!(read_spare(rd.as_fd(), &mut buf, 100).unwrap(), 0);
        let mut full = Vec::with_capacity(1);
        full.push(1);
        assert_eq!(read_spare(rd.as_fd(), &mut full, 100).unwrap(), 0);
    }

    #[test]
    fn prefault_keeps_contents() {
        let mut big: Vec<u8> = Vec::with_capacity(8 << 20);
        big.extend_from_slice(b"kept");
        assert!(prefault(&mut big, 0, 8 << 20) || cfg!(not(target_os = "linux")));
        prefault(&mut big, 10, 5);
        prefault(&mut big, 100, usize::MAX);
        assert_eq!(big, b"kept");
        let mut empty = Vec::new();
        prefault(&mut empty, 0, 100);
    }
}
