//! The one `unsafe` method of the public API: a user hook run between fork and exec.
//!
//! It lives in `sys` because declaring it is `unsafe` code, which the crate allows only here.

#![allow(unsafe_code)]

use std::io;

use crate::command::Command;

impl Command {
    /// Runs `hook` in the child after fork, just before exec, after every other setting
    /// (fds, working directory, credentials, limits, signal reset) has been applied. An
    /// error it returns fails the spawn with that errno, at [`Stage::ChildSetup`].
    ///
    /// The hook runs with every signal handler of the parent reset to `SIG_DFL` (ignored
    /// signals stay ignored) and an empty signal mask, so no handler of the parent can run in
    /// the child. If the hook panics, the child aborts (after the panic message, which the
    /// panic hook prints) and the spawn fails at [`Stage::ChildSetup`]; the panic never
    /// unwinds out of the child into a copy of the parent's program.
    ///
    /// A command with a hook always takes the fork path. Prefer the built-in settings
    /// (`uid`, `rlimit`, `umask`, `parent_death_signal`...) where they fit: they are applied
    /// without a closure.
    ///
    /// # Safety
    ///
    /// The hook runs in the child of a `fork` of a possibly multi-threaded process, where
    /// only async-signal-safe functions may be called: it must not allocate or free memory,
    /// take locks (including the ones inside `println!` or the allocator), or touch anything
    /// another thread could have been holding at the moment of the fork. Raw system calls
    /// through `libc` or `rustix` are fine. It should not panic either: printing the panic
    /// message allocates, which can deadlock in the child of a multi-threaded parent.
    ///
    /// [`Stage::ChildSetup`]: crate::Stage::ChildSetup
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::Command;
    /// let mut cmd = Command::new("true");
    /// // SAFETY: the hook makes one async-signal-safe system call.
    /// unsafe {
    ///     cmd.pre_exec(|| {
    ///         rustix::process::setsid()?;
    ///         Ok(())
    ///     });
    /// }
    /// assert!(cmd.status()?.success());
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub unsafe fn pre_exec<F>(&mut self, hook: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        self.pre_exec.push(Box::new(hook));
        self
    }
}
