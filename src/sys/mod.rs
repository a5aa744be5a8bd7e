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
