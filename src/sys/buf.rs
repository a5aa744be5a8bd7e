//! Reading straight into a `Vec`'s spare capacity.
//!
//! Capturing a child's output is bounded by two costs: the pipe, and the first write to fresh
//! memory (a page fault per 4 KiB page). Reading into the spare capacity of the output `Vec`
//! avoids zeroing it and copying through a staging buffer.
//!
//! Two ways around the page faults were measured and are not used. Transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`): on this machine kind (a VM that hands free memory back to its
//! host) a fresh 2 MiB page usually costs host-side faults, and captures got slower (0.83x
//! std's `output()`). Faulting pages in ahead of the reads (`MADV_POPULATE_WRITE`, 2-16 MiB at
//! a time), which keeps the faults out of the pipe's lock: 1.10x std's throughput on one day,
//! 0.5-0.8x on others, because the reader stalls in the `madvise` while the writer fills the
//! pipe and sleeps. Plain reads fault as std's do and stay level with it.

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
}
