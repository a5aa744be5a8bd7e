//! Small fd and file checks used by `Command`.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use rustix::fs::{Access, FileType};

/// `fcntl(fd, F_DUPFD_CLOEXEC, 3)`—A CLOEXEC duplicate of the parent's fd `fd`, which need
/// not be owned by anything in this process (for passing an inherited fd to a child).
///
/// # Errors
///
/// `EBADF` if `fd` is not open.
pub(crate) fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on any integer is sound: a closed fd gives EBADF, an
    // open one is only duplicated.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `true` if `path` is a regular file we may execute, `false` if it exists but is not (a
/// directory, no `x` bit), an error if it does not exist.
pub(crate) fn executable_file(path: &Path) -> io::Result<bool> {
    let st = rustix::fs::stat(path)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(false);
    }
    Ok(rustix::fs::access(path, Access::EXEC_OK).is_ok())
}

/// `true` if `dir` is a directory we may `chdir` into.
pub(crate) fn is_searchable_dir(dir: &Path) -> bool {
    match rustix::fs::stat(dir) {
        Ok(st) => {
            FileType::from_raw_mode(st.st_mode) == FileType::Directory
                && rustix::fs::access(dir, Access::EXEC_OK).is_ok()
        }
        Err(_) => false,
    }
}

/// `dup3(open("/dev/null"), fd, O_CLOEXEC)`—Closes what `fd` refers to (a pipe end: its
/// reader sees EOF once no other copy is open) while the number stays valid, now on
/// `/dev/null`, so that the `OwnedFd` that owns it stays sound. For `Child::wait`, which
/// closes the child's stdin through `&self` as std's `wait` does through `&mut self`.
pub(crate) fn close_in_place(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = crate::sys::spawn::open_dev_null()?;
    // SAFETY: both fds are open for the whole call (`null` is owned here, `fd` is borrowed);
    // dup3 replaces the open file behind `fd` atomically and does not change who owns the
    // number, so no other owner's fd is closed or reused.
    let r = unsafe { libc::dup3(null.as_raw_fd(), fd.as_raw_fd(), libc::O_CLOEXEC) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
