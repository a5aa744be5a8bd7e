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

/// The capacity to give a large buffer that must hold at least `n` bytes: `2^k - 32`.
///
/// Why such an odd number: the advice of [`advise_huge_pages`] must cover the allocation's
/// whole mapping. If it covered only part, the kernel would split the mapping in two, and the
/// next `realloc` could no longer grow it with `mremap` (which refuses a range that spans two
/// mappings with `EFAULT`): glibc then falls back to allocating anew and copying, which costs
/// the copy and doubles the peak memory (seen with strace). glibc serves a large request from
/// its own `mmap`, with a 16-byte header in front of the buffer and the size rounded up to
/// whole pages; for `2^k - 32` bytes that is exactly `2^k` bytes, ending on the page where the
/// buffer ends, so the advised range is the mapping. (With another allocator the advice may
/// split a mapping; that costs speed, never correctness.)
pub(crate) fn huge_capacity(n: usize) -> usize {
    n.saturating_add(32).checked_next_power_of_two().map_or(n, |p| p - 32)
}

/// `madvise(MADV_HUGEPAGE)`—Asks the kernel to back `buf`'s allocation with transparent huge
/// pages. Advice only: nothing changes if THP is disabled or the call fails, so errors are
/// ignored.
///
/// The advised range runs from the start of the page that holds the buffer's first byte (where
/// the allocator's header lives) to the end of the page that holds its last byte of capacity:
/// for a buffer sized with [`huge_capacity`], the allocator's whole mapping.
///
/// # References
///  - [`madvise(2)`](https://man7.org/linux/man-pages/man2/madvise.2.html)
#[cfg(target_os = "linux")]
pub(crate) fn advise_huge_pages(buf: &mut Vec<u8>) {
    let page = page_size();
    let start = buf.as_mut_ptr() as usize;
    let end = start + buf.capacity();
    let first = start & !(page - 1);
    let last = end.next_multiple_of(page);
    if buf.capacity() == 0 || last <= first {
        return;
    }
    // SAFETY: `first..last` is a page-aligned range made of the pages that hold `buf`'s
    // allocation, which `&mut` keeps alive for the call, so it is mapped. `MADV_HUGEPAGE`
    // changes only how the kernel backs pages, never their contents or whether they are
    // mapped, so no memory that Rust (here, or in whatever shares the edge pages) can observe
    // changes.
    let _ = unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE) };
}

/// `madvise(MADV_POPULATE_WRITE)`—Faults in, writable, the pages that hold bytes
/// `from..to` of `buf`'s allocation (offsets from its start; `to` at most its capacity),
/// without touching their contents. Returns `false` if the kernel does not support it (before
/// Linux 5.14), so the caller can touch the pages itself.
///
/// Why: a `read` from a pipe copies into the buffer while holding the pipe's lock. If the
/// destination page is new, the copy faults, and the kernel clears the page (2 MiB for a huge
/// page) with the lock held, while the writer spins on it. Faulting the pages in beforehand
/// moves that work out of the lock, where it overlaps with the writer filling the pipe.
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
    fn huge_capacities_fill_whole_pages_after_a_16_byte_header() {
        assert_eq!(huge_capacity(1), 32);
        assert_eq!(huge_capacity(8 << 20), (16 << 20) - 32);
        assert_eq!(huge_capacity((16 << 20) - 32), (16 << 20) - 32);
        assert_eq!(huge_capacity(usize::MAX), usize::MAX);
        for k in 21..40 {
            let cap = huge_capacity((1usize << k) - 100);
            // glibc: request + 8, rounded up to 16, + 8, rounded up to a page.
            let mapping = ((cap + 8).next_multiple_of(16) + 8).next_multiple_of(4096);
            assert_eq!(mapping, 1 << k);
            assert_eq!((16 + cap).next_multiple_of(4096), mapping);
        }
    }

    #[test]
    fn advice_keeps_contents() {
        let mut buf = vec![7u8; HUGE_PAGE_THRESHOLD + 12345];
        advise_huge_pages(&mut buf);
        assert!(buf.iter().all(|&b| b == 7));
        let mut empty = Vec::new();
        advise_huge_pages(&mut empty);
        let mut big: Vec<u8> = Vec::with_capacity(HUGE_PAGE_THRESHOLD);
        big.extend_from_slice(b"kept");
        prefault(&mut big, 0, HUGE_PAGE_THRESHOLD);
        prefault(&mut big, 10, 5);
        assert_eq!(big, b"kept");
    }
}
