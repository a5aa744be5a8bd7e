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

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
use rustix::fs::SealFlags;

/// The seals that make a memory file immutable: no shrinking, no growing, no writing.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
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
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn seal(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fcntl_add_seals(fd, FROZEN)?)
}

/// No seals on this system (nor memory files to seal): `ENOSYS`.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn seal(_fd: BorrowedFd<'_>) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// The size of the file, from `fstat`.
pub(crate) fn size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_size as u64)
}

/// A read-only mapping of a sealed memory file (shared, or private and never written, which
/// maps the same pages); unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    /// The bytes of the file, all inside the file's size.
    len: usize,
    /// The length of the address range to unmap: `len`, or a whole reservation (`Growing`).
    span: usize,
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
        // SAFETY: `ptr..ptr + span` is the address range this mapping owns (one `mmap`, or a
        // reservation that `Growing` handed over); no slice borrowed from `self` can outlive it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.span);
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
    if !is_frozen(fd).map_err(NotMapped::Os)? {
        return Err(NotMapped::NotSealed);
    }
    let size = size(fd).map_err(NotMapped::Os)?;
    let len = usize::try_from(size)
        .map_err(|_| NotMapped::Os(io::Error::from_raw_os_error(libc::EOVERFLOW)))?;
    if len == 0 {
        return Err(NotMapped::Empty);
    }
    let flags = libc::MAP_SHARED | if populate { populate_flag() } else { 0 };
    // SAFETY: a fresh mapping chosen by the kernel (NULL hint, no MAP_FIXED) cannot overlap
    // any existing memory; `fd` is a live fd borrowed for the call; the result is checked.
    let ptr =
        unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, flags, fd.as_raw_fd(), 0) };
    if ptr == libc::MAP_FAILED {
        return Err(NotMapped::Os(io::Error::last_os_error()));
    }
    let ptr = NonNull::new(ptr.cast::<u8>())
        .ok_or(NotMapped::Os(io::Error::from_raw_os_error(libc::EINVAL)))?;
    Ok(Mapping { ptr, len, span: len })
}

/// Whether the file's seals make it immutable (see [`seal`]).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn is_frozen(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(rustix::fs::fcntl_get_seals(fd)?.contains(FROZEN))
}

/// No seals on this system: nothing is ever frozen.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn is_frozen(_fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(false)
}

/// A memory file mapped while it is still being written, a chunk at a time, so that filling
/// the page tables (`MAP_POPULATE`) overlaps the writer's work instead of following it.
///
/// The mappings live inside one address range reserved up front (`PROT_NONE`, no memory
/// committed), each placed with `MAP_FIXED` at its file offset, so that the whole is one
/// contiguous view. Nothing is read through them until the file is sealed and [`finish`]
/// turns them into a [`Mapping`]: before that a writer could still change or truncate the
/// file (a truncation only unmaps pages; nothing touches them, so nothing faults).
///
/// [`finish`]: Growing::finish
#[derive(Debug)]
pub(crate) struct Growing {
    base: NonNull<u8>,
    reserved: usize,
    mapped: usize,
}

// SAFETY: `Growing` owns its address range and reads nothing through it; it is `Send` so that
// a value holding it can move between threads (it is never shared).
unsafe impl Send for Growing {}

impl Growing {
    /// `mmap(NULL, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)`—
    /// Reserves `reserve` bytes of address space (no memory), or `None` if refused (an address
    /// space limit).
    pub(crate) fn reserve(reserve: usize) -> Option<Growing> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        // SAFETY: a fresh anonymous mapping chosen by the kernel overlaps nothing; the result
        // is checked.
        let ptr =
            unsafe { libc::mmap(std::ptr::null_mut(), reserve, libc::PROT_NONE, flags, -1, 0) };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Growing { base: NonNull::new(ptr.cast())?, reserved: reserve, mapped: 0 })
    }

    /// `mmap(base + from, len, PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_POPULATE, fd, from)`
    /// for the part of the file from `from` to `to`, inside the reservation.
    fn map_range(&mut self, fd: BorrowedFd<'_>, to: usize) -> io::Result<()> {
        let from = self.mapped;
        debug_assert!(from <= to && to <= self.reserved && from % page_size() == 0);
        if to == from {
            return Ok(());
        }
        // MAP_PRIVATE, not MAP_SHARED: a shared mapping of an `O_RDWR` fd counts as writable
        // (it could be `mprotect`ed so) and would make `F_SEAL_WRITE` fail with `EBUSY`. A
        // private, read-only mapping that is never written maps the file's own pages all the
        // same (no copy is made until a write, and there is none).
        let flags = libc::MAP_PRIVATE | libc::MAP_FIXED | populate_flag();
        // SAFETY: `base + from .. base + to` lies inside the range this `Growing` reserved and
        // owns, and nothing holds a reference into it, so replacing what is mapped there with
        // MAP_FIXED cannot invalidate anything; `fd` is live for the call; `from` is
        // page-aligned, as the file offset must be.
        let ptr = unsafe {
            libc::mmap(
                self.base.as_ptr().add(from).cast(),
                to - from,
                libc::PROT_READ,
                flags,
                fd.as_raw_fd(),
                from as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.mapped = to;
        Ok(())
    }

    /// Maps what the file holds now, in whole chunks of `chunk` bytes (a multiple of the page
    /// size): returns whether anything new was mapped.
    pub(crate) fn advance(&mut self, fd: BorrowedFd<'_>, chunk: usize) -> io::Result<bool> {
        let size = usize::try_from(size(fd)?).unwrap_or(usize::MAX);
        let to = (size / chunk * chunk).min(self.reserved / chunk * chunk);
        if to <= self.mapped {
            return Ok(false);
        }
        self.map_range(fd, to)?;
        Ok(true)
    }

    /// Maps the rest of the now sealed file and hands the whole over as one [`Mapping`]. Fails
    /// with `NotSealed` if the seals are missing, and gives the reservation back (`Err` with
    /// `self`) when the file outgrew it.
    pub(crate) fn finish(
        mut self,
        fd: BorrowedFd<'_>,
    ) -> Result<Mapping, (NotMapped, Option<Growing>)> {
        match is_frozen(fd) {
            Ok(true) => {}
            Ok(false) => return Err((NotMapped::NotSealed, None)),
            Err(e) => return Err((NotMapped::Os(e), None)),
        }
        let size = size(fd).map_err(|e| (NotMapped::Os(e), None))?;
        let len = match usize::try_from(size) {
            Ok(len) if len <= self.reserved => len,
            _ => {
                return Err((NotMapped::Os(io::Error::from_raw_os_error(libc::EFBIG)), Some(self)))
            }
        };
        if len == 0 {
            return Err((NotMapped::Empty, None));
        }
        // The file may have shrunk before it was sealed: then `mapped` is past its end, and
        // the pages there (past the end of the file: reading them would fault) are never
        // exposed, since `len` ends before them. Otherwise map the rest, to the last page.
        let end = len.div_ceil(page_size()) * page_size();
        if end > self.mapped {
            self.map_range(fd, end.min(self.reserved)).map_err(|e| (NotMapped::Os(e), None))?;
        }
        let map = Mapping { ptr: self.base, len, span: self.reserved };
        std::mem::forget(self);
        Ok(map)
    }
}

impl Drop for Growing {
    fn drop(&mut self) {
        // SAFETY: the reservation is owned by this value and nothing references it.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.reserved);
        }
    }
}

/// `sysconf(_SC_PAGESIZE)`.
fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions; `_SC_PAGESIZE` is always supported.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if raw > 0 && (raw as usize).is_power_of_two() {
        raw as usize
    } else {
        4096
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn populate_flag() -> libc::c_int {
    libc::MAP_POPULATE
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn populate_flag() -> libc::c_int {
    0
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

    fn pattern(from: usize, len: usize) -> Vec<u8> {
        (from..from + len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn growing_mapping_follows_the_writer_and_survives_a_shrink() {
        const MIB: usize = 1 << 20;
        let fd = create(c"offspring-test").unwrap();
        let mut g = Growing::reserve(64 * MIB).unwrap();
        assert!(!g.advance(fd.as_fd(), 8 * MIB).unwrap(), "nothing to map yet");
        rustix::io::write(&fd, &pattern(0, 20 * MIB)).unwrap();
        assert!(g.advance(fd.as_fd(), 8 * MIB).unwrap());
        assert_eq!(g.mapped, 16 * MIB);
        rustix::io::write(&fd, &pattern(20 * MIB, 3 * MIB + 5)).unwrap();
        // Not sealed: refused, and the reservation is not handed back.
        assert!(matches!(g.finish(fd.as_fd()), Err((NotMapped::NotSealed, None))));

        // Mapped up to 16 MiB, then the file shrinks to 5 MiB + 3 before the seal.
        let fd = create(c"offspring-test").unwrap();
        let mut g = Growing::reserve(64 * MIB).unwrap();
        rustix::io::write(&fd, &pattern(0, 20 * MIB)).unwrap();
        assert!(g.advance(fd.as_fd(), 8 * MIB).unwrap());
        rustix::fs::ftruncate(&fd, 5 * MIB as u64 + 3).unwrap();
        seal(fd.as_fd()).unwrap();
        let map = g.finish(fd.as_fd()).unwrap();
        assert!(map.as_slice() == &pattern(0, 5 * MIB + 3)[..]);

        // Grows past the mapped part: the rest is mapped at the end.
        let fd = create(c"offspring-test").unwrap();
        let mut g = Growing::reserve(64 * MIB).unwrap();
        rustix::io::write(&fd, &pattern(0, 9 * MIB)).unwrap();
        assert!(g.advance(fd.as_fd(), 8 * MIB).unwrap());
        rustix::io::write(&fd, &pattern(9 * MIB, 30 * MIB + 1)).unwrap();
        seal(fd.as_fd()).unwrap();
        let map = g.finish(fd.as_fd()).unwrap();
        assert!(map.as_slice() == &pattern(0, 39 * MIB + 1)[..]);

        // Outgrows the reservation: handed back.
        let fd = create(c"offspring-test").unwrap();
        let g = Growing::reserve(MIB).unwrap();
        rustix::io::write(&fd, &pattern(0, 2 * MIB)).unwrap();
        seal(fd.as_fd()).unwrap();
        assert!(matches!(g.finish(fd.as_fd()), Err((NotMapped::Os(_), Some(_)))));
    }

    #[test]
    fn empty_is_not_mapped() {
        let fd = create(c"offspring-test").unwrap();
        seal(fd.as_fd()).unwrap();
        assert!(matches!(map_sealed(fd.as_fd(), true), Err(NotMapped::Empty)));
    }
}
