//! [`CStringArray`]: a NULL-terminated array of C strings (argv, envp), built before any
//! fork so that the child allocates nothing; [`Envp`]: the child's environment.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fmt;
use std::os::raw::c_char;

/// Owns its strings and a NULL-terminated pointer array into them.
///
/// The pointers stay valid while `self` lives: a `CString`'s heap buffer does not move when
/// the `CString` value itself moves inside `strings`.
pub(crate) struct CStringArray {
    strings: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CStringArray {
    pub(crate) fn with_capacity(n: usize) -> CStringArray {
        let mut ptrs = Vec::with_capacity(n + 1);
        ptrs.push(std::ptr::null());
        CStringArray { strings: Vec::with_capacity(n), ptrs }
    }

    pub(crate) fn push(&mut self, s: CString) {
        let last = self.ptrs.len() - 1;
        self.ptrs[last] = s.as_ptr();
        self.ptrs.push(std::ptr::null());
        self.strings.push(s);
    }

    /// The `char *const[]` for `execve`/`posix_spawn`, NULL-terminated.
    pub(crate) fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

impl fmt::Debug for CStringArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.strings.iter()).finish()
    }
}

/// The environment a child gets: the parent's own, as it stands (no copy), or one built for
/// it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Envp<'a> {
    /// The process environment, passed as `environ` itself, as std's `Command` does when a
    /// command changes nothing in it.
    Inherit,
    /// An environment built for this child.
    Built(&'a CStringArray),
}

impl Envp<'_> {
    /// The `char *const[]` for `execve`/`posix_spawn`.
    pub(crate) fn as_ptr(self) -> *const *const c_char {
        match self {
            Envp::Built(a) => a.as_ptr(),
            Envp::Inherit => {
                extern "C" {
                    static environ: *const *const c_char;
                }
                // SAFETY: reading the C runtime's `environ` pointer. It is valid while no other
                // thread changes the environment, and `std::env::set_var`/`remove_var`
                // (unsafe since Rust 2024) require their callers to ensure exactly that for
                // every reader, `libc` globals included. std's own `Command` passes the same
                // pointer for the same case.
                unsafe { environ }
            }
        }
    }
}
