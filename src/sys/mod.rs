//! The operating-system layer: the only place that names `libc` and the only place with
//! `unsafe`. Each file that needs `unsafe` opts in with `#![allow(unsafe_code)]`.
//!
//! Everything above this layer is safe code over typed values (`OwnedFd`, `Pid`, `Signal`).

pub(crate) mod signal;

/// The symbolic name of an errno value (`"ENOENT"`), for error messages.
pub(crate) fn errno_name(errno: i32) -> &'static str {
    macro_rules! names {
        ($($name:ident),* $(,)?) => {
            match errno {
                $(libc::$name => stringify!($name),)*
                _ => "errno",
            }
        };
    }
    names!(
        EPERM,
        ENOENT,
        ESRCH,
        EINTR,
        EIO,
        ENXIO,
        E2BIG,
        ENOEXEC,
        EBADF,
        ECHILD,
        EAGAIN,
        ENOMEM,
        EACCES,
        EFAULT,
        EBUSY,
        EEXIST,
        EXDEV,
        ENODEV,
        ENOTDIR,
        EISDIR,
        EINVAL,
        ENFILE,
        EMFILE,
        ENOTTY,
        ETXTBSY,
        EFBIG,
        ENOSPC,
        ESPIPE,
        EROFS,
        EMLINK,
        EPIPE,
        ERANGE,
        ENAMETOOLONG,
        ENOSYS,
        ELOOP,
        ENOTSOCK,
        EOPNOTSUPP,
        ETIMEDOUT,
        ECONNRESET,
        ELIBBAD,
    )
}

pub(crate) mod buf;
pub(crate) mod cstr;
pub(crate) mod memfd;
pub(crate) mod pipe;
mod pre_exec;
pub(crate) mod sigchld;
pub(crate) mod socket;
pub(crate) mod spawn;
pub(crate) mod termsig;
pub(crate) mod vfork;
pub(crate) mod wait;

mod fd;
pub(crate) use fd::{close_in_place, dup_cloexec, executable_file, is_searchable_dir};

/// `EACCES`, for errors raised in the parent.
pub(crate) const EACCES: i32 = libc::EACCES;
/// `ENOENT`, for errors raised in the parent.
pub(crate) const ENOENT: i32 = libc::ENOENT;
/// `EAGAIN`, `ENOMEM`, `ENOSYS`, `EPERM`: errors of process creation (see `spawn_error`).
pub(crate) const EAGAIN: i32 = libc::EAGAIN;
/// See [`EAGAIN`].
pub(crate) const ENOMEM: i32 = libc::ENOMEM;
/// See [`EAGAIN`].
pub(crate) const ENOSYS: i32 = libc::ENOSYS;
/// See [`EAGAIN`].
pub(crate) const EPERM: i32 = libc::EPERM;

/// The `RLIMIT_*` constant for a [`Resource`](crate::Resource).
pub(crate) fn rlimit_resource(r: crate::command::Resource) -> i32 {
    use crate::command::Resource;
    (match r {
        Resource::CoreFileSize => libc::RLIMIT_CORE,
        Resource::CpuTime => libc::RLIMIT_CPU,
        Resource::FileSize => libc::RLIMIT_FSIZE,
        Resource::OpenFiles => libc::RLIMIT_NOFILE,
        Resource::Processes => libc::RLIMIT_NPROC,
        Resource::AddressSpace => libc::RLIMIT_AS,
        Resource::Stack => libc::RLIMIT_STACK,
    }) as i32
}
