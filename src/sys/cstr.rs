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
    /// A string the child completes after the fork ([`CStringArray::push_pid_slot`]), owned
    /// through a raw pointer (from `Box::into_raw`) so that writing to it through the
    /// pointer the child gets never conflicts with a reference to `self`.
    slot: *mut [u8; SLOT_LEN],
}

/// Room for a `KEY=` prefix of up to 40 bytes, a pid in decimal and the NUL.
const SLOT_LEN: usize = 64;

/// Where the child writes its own pid: the byte after `KEY=` in a string of the array.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PidSlot(*mut u8);

impl PidSlot {
    /// Writes `pid` in decimal, then a NUL, at the slot. Async-signal-safe: no allocation,
    /// no lock; for the child between fork and exec.
    ///
    /// # Safety
    ///
    /// The [`CStringArray`] that made the slot must be alive, and nothing else may read or
    /// write the slot during the call (in the vfork child the parent is suspended).
    pub(crate) unsafe fn fill(self, pid: u32) {
        let mut digits = [0u8; 10];
        let mut n = pid;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            // SAFETY: the slot has room for 10 digits and a NUL after the prefix (checked
            // in `push_pid_slot`); the caller guarantees exclusive access.
            unsafe { *self.0.add(i) = digits[len - 1 - i] };
        }
        // SAFETY: as above; `len` is at most 10.
        unsafe { *self.0.add(len) = 0 };
    }
}

impl CStringArray {
    pub(crate) fn with_capacity(n: usize) -> CStringArray {
        let mut ptrs = Vec::with_capacity(n + 1);
        ptrs.push(std::ptr::null());
        CStringArray { strings: Vec::with_capacity(n), ptrs, slot: std::ptr::null_mut() }
    }

    /// Appends `key=` followed by room for a pid that the child fills in after the fork
    /// ([`PidSlot::fill`]): systemd's `LISTEN_PID`, which must be the child's own pid, known
    /// only once it exists. Until filled, the value reads `0`. One slot per array.
    pub(crate) fn push_pid_slot(&mut self, key: &[u8]) -> PidSlot {
        assert!(self.slot.is_null(), "one pid slot per array");
        assert!(key.len() + 1 + 11 <= SLOT_LEN && !key.contains(&0), "pid slot key too long");
        let mut buf = Box::new([0u8; SLOT_LEN]);
        buf[..key.len()].copy_from_slice(key);
        buf[key.len()] = b'=';
        buf[key.len() + 1] = b'0';
        self.slot = Box::into_raw(buf);
        let start = self.slot.cast::<u8>();
        let last = self.ptrs.len() - 1;
        self.ptrs[last] = start.cast::<c_char>();
        self.ptrs.push(std::ptr::null());
        // SAFETY: `key.len() + 1` is inside the allocation (checked above).
        PidSlot(unsafe { start.add(key.len() + 1) })
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

impl Drop for CStringArray {
    fn drop(&mut self) {
        if !self.slot.is_null() {
            // SAFETY: `slot` came from `Box::into_raw` in `push_pid_slot` and is freed once.
            drop(unsafe { Box::from_raw(self.slot) });
        }
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
