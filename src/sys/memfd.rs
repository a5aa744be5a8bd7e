//! Memory files (`memfd_create`), their seals, and read-only mappings of sealed ones: the OS
//! half of the mapped capture (`src/mapped.rs`).
//!
//! A mapping of a file is only as stable as the file. Anyone holding a writable fd to it can
//! change the bytes under a `&[u8]` (undefined behaviour for Rust) or truncate it, after which
//! touching the lost pages raises `SIGBUS`. [`map_sealed`] therefore maps a file only once the
//! kernel guarantees that neither can happen any more: it checks that `F_SEAL_SHRINK`,
//! `F_SEAL_GROW` and `F_SEAL_WRITE` are in place, and those seals can never be removed.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::SealFlags;

/// The seals that make a memory file immutable: no shrinking, no growing, no writing.
const FROZEN: SealFlags = SealFlags::SHRINK.union(SealFlags::GROW).union(SealFlags::WRITE);

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`—Creates an anonymous memory file,
/// close-on-exec, that can be sealed.
///
/// # References
///  - [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn create(name: &CStr) -> io::Result<OwnedFd> {
    use rustix::fs::MemfdFlags;
    Ok(rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?)
}

/// No `memfd_create` on this system: `ENOSYS`, so the caller falls back.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn create(_name: &CStr) -> io::Result<OwnedFd> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// `fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)`—Freezes the file: from
/// now on no fd and no mapping can change its size or its bytes (`write(2)` to it fails with
/// `EPERM`, so does `ftruncate` and `fallocate`).
///
/// Fails with `EBUSY` while a writable shared mapping of the file exists (someone holding the
/// fd mapped it), and with `EPERM` if `F_SEAL_SEAL` was set.
///
/// # References
///  - [`memfd_create(2)`, "File sealing"](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
///  - [`fcntl(2)`, "File Sealing"](https://man7.org/linux/man-pages/man2/fcntl.2.html)
pub(crate) fn seal(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fcntl_add_seals(fd, FROZEN)?)
}

/// The size of the file, from `fstat`.
pub(crate) fn size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_size as u64)
}

/// A read-only shared mapping of a sealed memory file; unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and its file is sealed against writes and size changes
// (checked in `map_sealed`), so the bytes never change while it exists: sharing `&[u8]` views
// between threads, and unmapping from whichever thread drops it, is sound.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`; nothing in a `Mapping` is mutable.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The mapped bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is a live mapping of `len` bytes (unmapped only in `drop`),
        // readable, and backed by file pages for its whole length: the file was sealed with a
        // size of exactly `len` before it was mapped, so no page can be truncated away (no
        // SIGBUS) and no write can change a byte while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what `mmap` returned and was given; no slice
        // borrowed from `self` can outlive it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Why [`map_sealed`] did not map a file.
#[derive(Debug)]
pub(crate) enum NotMapped {
    /// The file is empty: nothing to map.
    Empty,
    /// The file is not frozen (one of the three seals is missing), so a mapping would not be
    /// sound.
    NotSealed,
    /// The system refused: `fstat` or `mmap` failed.
    Os(io::Error),
}

/// `mmap(NULL, size, PROT_READ, MAP_SHARED [| MAP_POPULATE], fd, 0)`—Maps the whole of a
/// memory file that is frozen (see [`seal`]), read-only. With `populate`, the page tables are
/// filled at once rather than one fault at a time on first touch.
///
/// The file must be sealed first: this checks that the seals are in place (they are
/// permanent once set), and only then reads the size, which can no longer change.
///
/// # References
///  - [`mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html)
pub(crate) fn map_sealed(fd: BorrowedFd<'_>, populate: bool) -> Result<Mapping, NotMapped> {
    let seals = rustix::fs::fcntl_get_seals(fd).map_err(|e| NotMapped::Os(e.into()))?;
    if !seals.contains(FROZEN) {
        return Err(NotMapped::NotSealed);
    }
    let size = size(fd).map_err(NotMapped::Os)?;
    let len = usize::try_from(size)
        .map_err(|_| NotMapped::Os(io::Error::from_raw_os_error(libc::EOVERFLOW)))?;
    if len == 0 {
        return Err(NotMapped::Empty);
    }
    let mut flags = libc::MAP_SHARED;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if populate {
        flags |= libc::MAP_POPULATE;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = populate;
    // SAFETY: a fresh mapping chosen by the kernel (NULL hint, no MAP_FIXED) cannot overlap
    // any existing memory; `fd` is a live fd borrowed for the call; the result is checked.
    let ptr =
        unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, flags, fd.as_raw_fd(), 0) };
    if ptr == libc::MAP_FAILED {
        return Err(NotMapped::Os(io::Error::last_os_error()));
    }
    let ptr = NonNull::new(ptr.cast::<u8>())
        .ok_or(NotMapped::Os(io::Error::from_raw_os_error(libc::EINVAL)))?;
    Ok(Mapping { ptr, len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn seal_then_map_then_writes_fail() {
        let fd = create(c"offspring-test").unwrap();
        rustix::io::write(&fd, b"hello").unwrap();
        // Not sealed yet: refused.
        assert!(matches!(map_sealed(fd.as_fd(), false), Err(NotMapped::NotSealed)));
        seal(fd.as_fd()).unwrap();
        let map = map_sealed(fd.as_fd(), true).unwrap();
        assert_eq!(map.as_slice(), b"hello");
        assert_eq!(rustix::io::write(&fd, b"x"), Err(rustix::io::Errno::PERM));
        assert_eq!(rustix::fs::ftruncate(&fd, 0), Err(rustix::io::Errno::PERM));
        assert_eq!(rustix::fs::ftruncate(&fd, 1 << 20), Err(rustix::io::Errno::PERM));
        drop(fd);
        // The mapping keeps the file alive.
        assert_eq!(map.as_slice(), b"hello");
    }

    #[test]
    fn empty_is_not_mapped() {
        let fd = create(c"offspring-test").unwrap();
        seal(fd.as_fd()).unwrap();
        assert!(matches!(map_sealed(fd.as_fd(), true), Err(NotMapped::Empty)));
    }
}
