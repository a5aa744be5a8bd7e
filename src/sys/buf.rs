//! Reading straight into a `Vec`'s spare capacity, and paging advice for large buffers.
//!
//! Capturing a child's output is bounded by two costs: the pipe, and the first write to fresh
//! memory (a page fault per 4 KiB page, measured here at about 0.5 s per GiB). Reading into
//! the spare capacity of the output `Vec` avoids both zeroing and a copy through a staging
//! buffer; asking for transparent huge pages on large buffers makes the kernel fault them in
//! 2 MiB at a time (about 3x faster on this machine kind, where THP is in `madvise` mode).

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

/// Capacities from which [`advise_huge_pages`] is worth a syscall: below this the buffer
/// spans too few 2 MiB pages to matter.
pub(crate) const HUGE_PAGE_THRESHOLD: usize = 8 << 20;

/// `madvise(MADV_HUGEPAGE)`—Asks the kernel to back the pages of `buf`'s allocation (its whole
/// capacity) with transparent huge pages. Advice only: nothing changes if THP is disabled or
/// the call fails, so errors are ignored.
///
/// # References
///  - [`madvise(2)`](https://man7.org/linux/man-pages/man2/madvise.2.html)
#[cfg(target_os = "linux")]
pub(crate) fn advise_huge_pages(buf: &mut Vec<u8>) {
    let page = page_size();
    let start = buf.as_mut_ptr() as usize;
    let end = start + buf.capacity();
    // Only pages that lie entirely inside this allocation.
    let first = (start + page - 1) & !(page - 1);
    let last = end & !(page - 1);
    if last <= first {
        return;
    }
    // SAFETY: `first..last` is a page-aligned range inside the allocation that `buf` owns
    // (and that `&mut` keeps alive and unaliased for the call). `MADV_HUGEPAGE` changes only
    // how the kernel backs these pages, never their contents or whether they are mapped, so
    // no memory that Rust can observe changes.
    let _ = unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE) };
}

/// No transparent huge pages outside Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn advise_huge_pages(_buf: &mut Vec<u8>) {}

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
    fn advice_keeps_contents() {
        let mut buf = vec![7u8; HUGE_PAGE_THRESHOLD + 12345];
        advise_huge_pages(&mut buf);
        assert!(buf.iter().all(|&b| b == 7));
        let mut empty = Vec::new();
        advise_huge_pages(&mut empty);
    }
}
