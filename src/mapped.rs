//! The mapped capture: the child writes its output into a memory file (`memfd_create`) given
//! to it as stdout and/or stderr; the parent maps the file read-only as it grows, and once the
//! child has exited seals it and maps the rest. It never copies a byte through a pipe.
//!
//! The run itself is the ordinary capture session (`src/capture.rs`) with no output pipes:
//! it feeds stdin, watches the clock, the cancel handle and the child's exit, and stops the
//! child with the kill signal and grace period of the command's policy. The judging of the
//! result (timeouts, cancels, checked exits) is the buffered runners' (`src/exec.rs`).
//!
//! Why sealing makes the mapping sound, and what a grandchild that keeps the fd can do: see
//! [`Command::output_mapped`] and `src/sys/memfd.rs`.

use std::ffi::{CStr, OsString};
use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::capture::{Finished, Session};
use crate::command::{Command, DefaultIo, Defaults};
use crate::error::{Error, Result, Stage};
use crate::exec::{judge, Input};
use crate::exit_status::ExitStatus;
use crate::stdio::{Stdio, StdioKind};
use crate::sys::memfd::{self, Growing, Mapping, NotMapped};

/// Whether the mapping's page tables are filled at once (`MAP_POPULATE`) rather than one fault
/// per 64 KiB on first touch. Measured on 256 MiB (map, read a byte per page, unmap): 51 ms
/// with it, 64 ms without.
const POPULATE: bool = true;

/// While the child runs, its output is mapped in chunks of this size as it grows, so that
/// filling the page tables overlaps the child's writing (a prototype of both, on 1 GiB from
/// `head`: 0.49-0.54 s from spawn to the last page read, against 0.63-0.66 s mapping it all
/// after the exit). Outputs smaller than one chunk are mapped once, at the end.
const CHUNK: usize = 8 << 20;

/// The address space reserved (not memory) for an output that is mapped as it grows. An
/// output that outgrows it is mapped again, whole, after the child exits.
#[cfg(target_pointer_width = "64")]
const RESERVE: usize = 64 << 30;
#[cfg(not(target_pointer_width = "64"))]
const RESERVE: usize = 256 << 20;

/// How soon, and at most how rarely, the run looks at how far the output has grown.
const FIRST_LOOK: Duration = Duration::from_millis(2);
const LAST_LOOK: Duration = Duration::from_millis(100);

/// Captured output of a mapped run: a read-only view of the bytes the child wrote, shared with
/// the kernel's page cache rather than copied. Derefs to `[u8]`.
///
/// Usually a mapping of the sealed memory file the child wrote into ([`is_mapped`] is true).
/// It is an ordinary heap buffer when the run fell back to pipes (no `memfd_create` here,
/// [`max_buffer`](Command::max_buffer) set), when the output was empty, or when the file
/// could not be sealed (see [`Command::output_mapped`]).
///
/// `Send + Sync`: the bytes can never change (the file is sealed against writing, growing and
/// shrinking before it is mapped), so any number of threads may read them.
///
/// # Drop behavior
///
/// Dropping it unmaps the memory (or frees the buffer). The memory file goes away with its last
/// mapping and fd: a grandchild that still holds the fd keeps it alive until it exits, but can
/// no longer change it.
///
/// # Examples
///
/// ```
/// use offspring::Command;
/// let out = Command::new("printf").arg("hello").output_mapped()?;
/// assert_eq!(&out.stdout[..], b"hello");
/// assert!(out.stdout.starts_with(b"he")); // every `[u8]` method
/// let owned: Vec<u8> = out.stdout.into_vec();
/// assert_eq!(owned, b"hello");
/// # Ok::<(), offspring::Error>(())
/// ```
///
/// [`is_mapped`]: MappedBytes::is_mapped
pub struct MappedBytes(Repr);

enum Repr {
    Mapped(Mapping),
    Owned(Vec<u8>),
}

impl MappedBytes {
    /// Whether the bytes are a mapping of the memory file the child wrote into (`false` for a
    /// heap buffer: empty output, or a run that fell back to pipes).
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped(_))
    }

    /// The bytes as a `Vec<u8>`: a copy of a mapping (which is then unmapped), or the buffer
    /// itself, without a copy, when it was one.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Mapped(m) => m.as_slice().to_vec(),
            Repr::Owned(v) => v,
        }
    }

    /// The bytes, as a slice (the same as `&*self`).
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Mapped(m) => m.as_slice(),
            Repr::Owned(v) => v,
        }
    }
}

impl Default for MappedBytes {
    /// No bytes.
    fn default() -> MappedBytes {
        MappedBytes(Repr::Owned(Vec::new()))
    }
}

impl Deref for MappedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for MappedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Vec<u8>> for MappedBytes {
    fn from(v: Vec<u8>) -> MappedBytes {
        MappedBytes(Repr::Owned(v))
    }
}

impl From<MappedBytes> for Vec<u8> {
    fn from(b: MappedBytes) -> Vec<u8> {
        b.into_vec()
    }
}

impl PartialEq for MappedBytes {
    fn eq(&self, other: &MappedBytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for MappedBytes {}

impl PartialEq<[u8]> for MappedBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl fmt::Debug for MappedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = match &self.0 {
            Repr::Mapped(m) => m.len(),
            Repr::Owned(v) => v.len(),
        };
        f.debug_struct("MappedBytes").field("len", &len).field("mapped", &self.is_mapped()).finish()
    }
}

/// What [`Command::output_mapped`] and [`Command::run_mapped`] return: the exit status and
/// the two streams as [`MappedBytes`].
#[derive(Debug)]
pub struct MappedOutput {
    /// How the child ended.
    pub status: ExitStatus,
    /// What the child wrote to stdout (with [`stderr_to_stdout`](Command::stderr_to_stdout),
    /// both streams, interleaved as written).
    pub stdout: MappedBytes,
    /// What the child wrote to stderr (empty when merged into stdout).
    pub stderr: MappedBytes,
}

/// # Capturing into shared memory
impl Command {
    /// Runs the child to completion with its stdout and stderr written into memory files, and
    /// returns them mapped read-only: the parent never reads the output through a pipe, so a
    /// large output costs the parent almost no CPU and no copy. Non-zero exit is data, as in
    /// [`output`](Command::output); [`run_mapped`](Command::run_mapped) is the checked form.
    ///
    /// Streams left unset or set to [`Stdio::piped`] are captured; others ([`Stdio::inherit`],
    /// a file...) go where they are set and come back empty. Every capture option keeps its
    /// meaning: [`input`](Command::input) and [`input_file`](Command::input_file),
    /// [`timeout`](Command::timeout) with [`kill_signal`](Command::kill_signal) and
    /// [`force_kill_after`](Command::force_kill_after) (the output written until the child
    /// stopped is kept, in [`Error::stdout`] and [`Error::stderr`]),
    /// [`cancel_with`](Command::cancel_with), [`stderr_to_stdout`](Command::stderr_to_stdout)
    /// (one memory file for both) and [`unchecked`](Command::unchecked).
    ///
    /// # When to use it
    ///
    /// For large outputs kept whole in memory: a child that writes hundreds of megabytes,
    /// where [`output`](Command::output) spends its time copying out of a pipe and faulting in
    /// fresh pages. Here the parent copies nothing: it fills page tables for the child's pages
    /// (in 8 MiB chunks while the child writes, so that work overlaps the child's) and the
    /// run ends when the child does. Measured on 1 GiB (`benches/mapped.rs`): about half of
    /// `output()`'s CPU time in the parent and the same peak memory, while the child spends
    /// about twice as long in its writes (it now allocates the pages the parent would have
    /// faulted in), so the run gains where a second core is free and breaks even on a
    /// saturated machine. For small outputs both are fast; `output` returns a plain `Vec`.
    ///
    /// Not for streaming (nothing is seen before the child exits: use
    /// [`Child::stdout_reader`](crate::Child::stdout_reader)), and not for children that need a
    /// pipe. The child's stdout is a *regular file*, and these differ from a pipe:
    ///
    /// - **No reader to stop it.** A pipe's reader that goes away stops the writer with
    ///   `SIGPIPE`/`EPIPE` (`yes | head`); a file takes everything, so an endless writer fills
    ///   memory (shared memory, charged to the memory cgroup) until the
    ///   [`timeout`](Command::timeout). There is no [`max_buffer`](Command::max_buffer) on
    ///   this path (below).
    /// - **Reopening `/dev/stdout` or `/proc/self/fd/1`** (`tee /dev/stdout`, `echo x >
    ///   /dev/stdout` in a shell script, `--output=/dev/stdout` options) opens the file anew at
    ///   offset 0, and `O_TRUNC` empties it: the child overwrites its own earlier output. With a
    ///   pipe such an open returns the same pipe. (The same happens with `cmd > file`.)
    /// - **Type checks**: a program that tests `S_ISFIFO`/`S_ISREG` on its stdout, or `isatty`,
    ///   sees a regular file. Programs that behave differently on a regular-file output
    ///   include `dd` (seeks with `seek=`), `tar -f -` and `cpio` (treat a seekable archive
    ///   differently), GNU `cat`/`cp` (may use `copy_file_range` between files), and programs
    ///   that `lseek` or `ftruncate` their output.
    /// - **Pipe-only system calls** fail: `splice`, `tee(2)` and `vmsplice` to stdout need a
    ///   pipe (some fast `yes` and `cat` implementations use them; good ones fall back).
    /// - **Readiness**: `poll` reports a file always writable, and writes never return
    ///   `EAGAIN`; a child that tunes itself to a slow reader sees none.
    /// - **The run ends when the child exits.** A pipe capture waits (up to the
    ///   [`drain_timeout`](Command::drain_timeout)) for a grandchild that still holds the pipe;
    ///   here the file is sealed when the child exits, and what a grandchild writes after that
    ///   is refused (next section).
    ///
    /// # Sealing, and grandchildren that keep the fd
    ///
    /// When the child has exited, the memory file is sealed with `F_SEAL_SHRINK`,
    /// `F_SEAL_GROW` and `F_SEAL_WRITE` (permanent), and only then is its size read and the
    /// file mapped. From that moment nothing can change the bytes you see or truncate them
    /// from under the mapping (which would raise `SIGBUS` on the next read): a grandchild that
    /// still holds the fd and writes to it gets `EPERM` from `write(2)` (not `SIGPIPE`: most
    /// programs report a write error and exit), and `ftruncate` and `fallocate` fail alike.
    /// What it wrote *before* the seal (between the child's exit and the seal, a few
    /// microseconds) is part of the output, as it would be with a pipe. Its fd keeps the file's
    /// memory alive until it exits too.
    ///
    /// The seal is refused with `EBUSY` while a writable shared mapping of the file exists (a
    /// grandchild mapped its stdout), or `EPERM` if the child set `F_SEAL_SEAL`. Then the
    /// bytes are *copied* into a heap buffer instead of mapped ([`MappedBytes::is_mapped`] is
    /// false): still safe (no mapping can be truncated), but a writer that goes on may change
    /// what is copied while it is being copied.
    ///
    /// # Output limits
    ///
    /// A file cannot stop a writer at a byte count (its size seal refuses whole pages, not
    /// bytes), so with [`max_buffer`](Command::max_buffer) or
    /// [`max_buffer_for`](Command::max_buffer_for) set the run **uses pipes** instead, where
    /// the limit is exact to the byte with its [`Overflow`](crate::Overflow) policy, as in
    /// [`output`](Command::output); the result is then a heap buffer. The limit is never
    /// ignored.
    ///
    /// # Fallback
    ///
    /// Where `memfd_create` does not exist (kernels before 3.17, Unix systems other than Linux,
    /// Android and FreeBSD) or is refused (`EPERM`/`EACCES` from a seccomp filter, `EINVAL`
    /// without sealing support), the run uses the pipe capture of [`output`](Command::output)
    /// and returns heap buffers; everything else is the same. (An unlinked temporary file is
    /// not used instead: it would sit on a disk file system, whose writes cost more than a
    /// pipe's, or on a tmpfs, which is where a memfd lives anyway.)
    ///
    /// # Errors
    ///
    /// As [`output`](Command::output); plus [`Stage::Setup`] errors creating the memory files
    /// (`EMFILE`, `ENOMEM`), and [`Stage::Io`] errors mapping them.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{exec, Command, ErrorKind};
    /// use std::time::Duration;
    ///
    /// let out = exec("head -c 1000000 /dev/zero; echo done >&2").output_mapped()?;
    /// assert!(out.status.success());
    /// assert_eq!(out.stdout.len(), 1_000_000);
    /// assert_eq!(&out.stderr[..], b"done\n");
    ///
    /// // A timeout keeps what was written before the child was stopped.
    /// let err = exec("echo started; sleep 10")
    ///     .timeout(Duration::from_millis(100))
    ///     .output_mapped()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// assert_eq!(err.stdout(), b"started\n");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "memfd_create")]
    #[doc(alias = "mmap")]
    pub fn output_mapped(&mut self) -> Result<MappedOutput> {
        self.capture_mapped(false, false)
    }

    /// As [`output_mapped`](Command::output_mapped), but a non-zero exit or a death by signal
    /// is an error carrying the status and the output (copied into the error), as
    /// [`run`](Command::run); opt out with [`unchecked`](Command::unchecked).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{exec, ErrorKind};
    /// let err = exec("echo partial; echo broken >&2; exit 3").run_mapped().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ExitCode);
    /// assert_eq!(err.stdout(), b"partial\n");
    /// assert!(err.to_string().contains("broken"));
    /// ```
    pub fn run_mapped(&mut self) -> Result<MappedOutput> {
        self.capture_mapped(true, false)
    }

    /// `output_mapped` forced onto its fallback, the pipe capture, for tests.
    #[doc(hidden)]
    pub fn output_mapped_fallback(&mut self) -> Result<MappedOutput> {
        self.capture_mapped(false, true)
    }

    fn capture_mapped(&mut self, checked: bool, force_pipes: bool) -> Result<MappedOutput> {
        let Some(files) = (if force_pipes { None } else { self.memory_files()? }) else {
            let out = if checked { self.run()? } else { self.output()? };
            return Ok(MappedOutput {
                status: out.status,
                stdout: out.stdout.into(),
                stderr: out.stderr.into(),
            });
        };
        let argv = self.argv_for_errors();
        crate::cancel::check_before_start(self.run.cancel(), || &argv)?;
        // The input stays with the command so that it can run again.
        let input = self.run.take_input();
        let mut follow = [Follow::default(), Follow::default()];
        let result = self.run_into(&files, &mut follow, input.as_ref(), &argv);
        self.run.restore_input(input);
        let fin = result?;

        let [out, err] = &files;
        let [follow_out, follow_err] = follow;
        let stdout = freeze(out.as_ref(), follow_out, &argv)?;
        let stderr = if self.run.merge() {
            MappedBytes::default()
        } else {
            freeze(err.as_ref(), follow_err, &argv)?
        };
        match judge(fin, checked && !self.run.unchecked(), self.run.merge(), argv) {
            Ok(output) => Ok(MappedOutput { status: output.status, stdout, stderr }),
            Err(e) => Err(e.with_output(stdout.into_vec(), stderr.into_vec())),
        }
    }

    /// The memory files for stdout and stderr (`None` for a stream not captured), or `None`
    /// when this run must take the pipes: an output limit, options that conflict (the pipe
    /// capture reports them), or no usable `memfd_create`.
    fn memory_files(&self) -> Result<Option<[Option<OwnedFd>; 2]>> {
        let captured =
            |cfg: Option<&Stdio>| matches!(cfg.map(|s| &s.0), None | Some(StdioKind::Piped));
        let merge = self.run.merge();
        if self.run.has_limits()
            || (merge && (self.stderr.is_some() || !captured(self.stdout.as_ref())))
        {
            return Ok(None);
        }
        let create = |name: &CStr| match memfd::create(name) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if refused(&e) => Ok(None),
            Err(e) => Err(Error::os(Stage::Setup, e, "creating a memory file for the output")
                .with_argv(self.argv_for_errors())),
        };
        let out = if captured(self.stdout.as_ref()) {
            match create(c"offspring:stdout")? {
                Some(fd) => Some(fd),
                None => return Ok(None),
            }
        } else {
            None
        };
        let err = if merge || !captured(self.stderr.as_ref()) {
            None
        } else {
            match create(c"offspring:stderr")? {
                Some(fd) => Some(fd),
                None => return Ok(None),
            }
        };
        Ok(Some([out, err]))
    }

    /// Spawns the child with the memory files as its stdout and stderr and runs the capture
    /// session (with no pipes to drain) until it has exited.
    fn run_into(
        &mut self,
        files: &[Option<OwnedFd>; 2],
        follow: &mut [Follow; 2],
        input: Option<&Input>,
        argv: &[OsString],
    ) -> Result<Finished> {
        let setup =
            |e: std::io::Error, what: &str| Error::os(Stage::Setup, e, what).with_argv(argv);
        let mut defaults = Defaults::capture();
        let mut stdin = None;
        match input {
            Some(_) if self.stdin.is_some() => {
                return Err(
                    Error::invalid_input("both stdin and input are set; use one").with_argv(argv)
                );
            }
            Some(Input::Bytes(_)) => defaults.stdin = DefaultIo::Piped,
            Some(Input::File(path)) => {
                let file = File::open(path)
                    .map_err(|e| setup(e, "cannot open the input file").with_path(path))?;
                stdin = Some(Stdio::from(file));
            }
            None => {}
        }
        // The child's ends: duplicates of the memory files (both of stdout's for 2>&1); the
        // command holds them only for the spawn.
        let dup = |fd: &OwnedFd| {
            fd.try_clone().map(Stdio::from).map_err(|e| setup(e, "duplicating a memory file"))
        };
        let [out, err] = files;
        let child_out = out.as_ref().map(dup).transpose()?;
        let child_err = match (self.run.merge(), out, err) {
            (true, Some(fd), _) | (false, _, Some(fd)) => Some(dup(fd)?),
            _ => None,
        };
        let mut saved = [None, None, None];
        for (k, (slot, theirs)) in
            [(&mut self.stdin, stdin), (&mut self.stdout, child_out), (&mut self.stderr, child_err)]
                .into_iter()
                .enumerate()
        {
            if let Some(s) = theirs {
                saved[k] = Some(slot.replace(s));
            }
        }
        let spawned = self.spawn_with_defaults(defaults);
        let [s0, s1, s2] = saved;
        for (slot, old) in [(&mut self.stdin, s0), (&mut self.stdout, s1), (&mut self.stderr, s2)] {
            if let Some(old) = old {
                *slot = old;
            }
        }
        let mut child = spawned?;

        let data: &[u8] = match input {
            Some(Input::Bytes(b)) => b,
            _ => &[],
        };
        let child_stdin = child.stdin.take();
        let policy = self.run.policy();
        let mut session =
            match Session::new(&child, child_stdin, data, None, None, policy, self.run.cancel()) {
                Ok(s) => s,
                Err(e) => {
                    let _ = child.kill();
                    return Err(e);
                }
            };
        // Run the session, looking up between its rounds how far the output has grown, and
        // mapping the new part while the child goes on writing.
        let mut pace = FIRST_LOOK;
        loop {
            match session.pump(Some(Instant::now() + pace)) {
                Ok(true) => return Ok(session.finish()),
                Ok(false) => {
                    let mut grew = false;
                    for (fd, f) in files.iter().zip(follow.iter_mut()) {
                        if let Some(fd) = fd {
                            grew |= f.look(fd);
                        }
                    }
                    pace = if grew { FIRST_LOOK } else { (pace * 2).min(LAST_LOOK) };
                }
                Err(e) => {
                    session.abandon();
                    return Err(e);
                }
            }
        }
    }
}

/// A memory file's mapping, made while the child writes it.
#[derive(Default)]
struct Follow {
    growing: Option<Growing>,
    /// Mapping as it grows was refused (no address space, an `mmap` error): map at the end.
    off: bool,
}

impl Follow {
    /// Maps what was added to the file since the last look; whether anything was.
    fn look(&mut self, fd: &OwnedFd) -> bool {
        if self.off {
            return false;
        }
        if self.growing.is_none() {
            if memfd::size(fd.as_fd()).map_or(true, |s| s < CHUNK as u64) {
                return false;
            }
            self.growing = Growing::reserve(RESERVE);
        }
        match self.growing.as_mut().map(|g| g.advance(fd.as_fd(), CHUNK)) {
            Some(Ok(grew)) => grew,
            _ => {
                self.growing = None;
                self.off = true;
                false
            }
        }
    }
}

/// Whether `memfd_create` failed because this system lacks it or refuses it (fall back to
/// pipes), rather than for a transient reason such as `EMFILE` (reported).
fn refused(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES | libc::EINVAL | libc::EOPNOTSUPP)
    ) || e.kind() == std::io::ErrorKind::Unsupported
}

/// Seals the child's memory file and maps it (the rest of it, if it was mapped as it grew);
/// copies it if it cannot be sealed.
fn freeze(fd: Option<&OwnedFd>, follow: Follow, argv: &[OsString]) -> Result<MappedBytes> {
    let Some(fd) = fd else { return Ok(MappedBytes::default()) };
    let io = |e: std::io::Error, what: &str| Error::os(Stage::Io, e, what).with_argv(argv);
    if memfd::seal(fd.as_fd()).is_ok() {
        if let Some(growing) = follow.growing {
            match growing.finish(fd.as_fd()) {
                Ok(m) => return Ok(MappedBytes(Repr::Mapped(m))),
                Err((NotMapped::Empty, _)) => return Ok(MappedBytes::default()),
                // Outgrew the reservation: map it again, whole, below.
                Err((NotMapped::Os(_), Some(_))) => {}
                Err((NotMapped::Os(e), None)) => return Err(io(e, "mapping the captured output")),
                Err((NotMapped::NotSealed, _)) => {}
            }
        }
        match memfd::map_sealed(fd.as_fd(), POPULATE) {
            Ok(m) => return Ok(MappedBytes(Repr::Mapped(m))),
            Err(NotMapped::Empty) => return Ok(MappedBytes::default()),
            Err(NotMapped::Os(e)) => return Err(io(e, "mapping the captured output")),
            // Cannot happen after a successful seal; copying is safe regardless.
            Err(NotMapped::NotSealed) => {}
        }
    }
    // Not sealed (a writable mapping exists, or F_SEAL_SEAL): copy what the file holds now,
    // with `pread`, which a concurrent truncation can shorten but never fault.
    let size = memfd::size(fd.as_fd()).map_err(|e| io(e, "reading the captured output"))?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; (1 << 20).min(size)];
    while buf.len() < size {
        let want = (size - buf.len()).min(chunk.len());
        match rustix::io::retry_on_intr(|| {
            rustix::io::pread(fd, &mut chunk[..want], buf.len() as u64)
        }) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(io(e.into(), "reading the captured output")),
        }
    }
    Ok(MappedBytes(Repr::Owned(buf)))
}
