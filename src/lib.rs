//! Spawn child processes and talk to them from synchronous Rust, on Unix.
//!
//! offspring gives a program that does not use async what Node's `child_process` gives a
//! JavaScript one: spawning with streaming or buffered output, a shell only when asked for,
//! timeouts with a kill signal, output limits and signals, plus what a production program
//! needs around them: no zombie ever, waits with deadlines from any thread, errors that say
//! exactly what went wrong, and quoting that makes shell injection hard to write. It depends
//! on `libc`, `rustix` and `crossbeam-channel`, nothing else.
//!
//! # Quick start
//!
//! ```
//! use offspring::Command;
//!
//! // Run a program, capture what it prints. No shell is involved.
//! let out = Command::new("echo").args(["hello", "world"]).output()?;
//! assert!(out.status.success());
//! assert_eq!(out.stdout, b"hello world\n");
//!
//! // Start one, and wait for it with a deadline.
//! let child = Command::new("sleep").arg("5").spawn()?;
//! if child.wait_timeout(std::time::Duration::from_millis(10))?.is_none() {
//!     let t = child.terminate(std::time::Duration::from_secs(1))?; // SIGTERM, then SIGKILL
//!     assert!(!t.needed_kill);
//! }
//! # Ok::<(), offspring::Error>(())
//! ```
//!
//! The names are std's where std has the concept (`Command`, `Child`, `Stdio`, `ExitStatus`,
//! `Output`, `spawn`/`status`/`output`), so code written for [`std::process`] ports by
//! changing the import. Node's names (`exec`, `execFile`, `spawnSync`, `detached`, `cwd`...)
//! are search aliases in these docs.
//!
//! # Spawning
//!
//! A [`Command`] is validated before anything is started: a NUL byte in the program, an
//! argument, an environment key or value or the working directory, an environment key that is
//! empty or contains `=` (so `LD_PRELOAD=/evil.so:x` can never set `LD_PRELOAD`), or an empty
//! program is an [`ErrorKind::InvalidInput`] error that names the item and its index.
//!
//! The program is looked up on the *child's* `PATH` (the one the command sets, if any), in
//! the parent, and empty or relative `PATH` entries such as `.` are skipped unless
//! [`Command::search_relative_path`] allows them (Go's `ErrDot` lesson). [`which`] does the
//! same lookup for the current process.
//!
//! On Linux (x86_64, kernel 5.5 or later) the child is started with
//! `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND)`: like glibc's
//! `posix_spawn`, it shares the parent's memory until exec, so its cost does not grow with
//! the parent's heap; unlike it, it has the kernel clear the signal handlers instead of
//! resetting all 64 of them one system call at a time, and gets the child's pidfd atomically
//! (measured: 0.91-0.95x the cost of `posix_spawn` + `waitpid`, where std is 0.95-0.98x).
//! Elsewhere, or where a seccomp filter refuses `clone3`, glibc's `posix_spawn` is the fast
//! path, with `fork` + `execve` for what it cannot do. A [`pre_exec`](Command::pre_exec)
//! hook, which runs arbitrary code, always takes a real `fork`. Nothing is allocated between
//! fork and exec on any path. Either way the child gets:
//!
//! - fds 0, 1 and 2 as configured, the extra fds given with [`Command::fd`] at their numbers
//!   (swaps and collisions are handled), and **no other fd**: every fd offspring creates is
//!   `O_CLOEXEC`, and fds that other code opened without it are closed in the child too
//!   (`close_range`), unless [`Command::close_fds`] turns that off;
//! - an empty signal mask and `SIGPIPE` at its default action (Rust ignores `SIGPIPE`; a
//!   child that inherited that would not die on a closed pipe, as `head` expects);
//! - a new session or process group when asked ([`Command::new_session`] is Node's
//!   `detached`; [`Command::process_group`]).
//!
//! A spawn that fails says where: [`Stage::Lookup`] (not on `PATH`), [`Stage::Chdir`] (the
//! working directory), [`Stage::Exec`] (`ENOENT`, `EACCES`, `ENOEXEC` for a script without
//! `#!`, which is never silently run through `/bin/sh`, `E2BIG`), and it leaves no fd open and
//! no zombie behind.
//!
//! ```
//! use offspring::{Command, ErrorKind, Stage};
//! let err = Command::new("true").current_dir("/no/such/dir").status().unwrap_err();
//! assert_eq!((err.kind(), err.stage()), (ErrorKind::NotFound, Stage::Chdir));
//! let err = Command::new("no-such-program").status().unwrap_err();
//! assert_eq!((err.kind(), err.stage()), (ErrorKind::NotFound, Stage::Lookup));
//! ```
//!
//! # Capturing output (and why it cannot deadlock)
//!
//! A child that writes more than a pipe holds (64 KiB) blocks until someone reads. A parent
//! that writes the child's stdin to the end before reading its stdout, or reads stdout to the
//! end before stderr, waits for a child that waits for it: the classic deadlock of hand-rolled
//! capture. offspring serves every pipe of a child from **one `poll()` loop** over
//! non-blocking fds: it feeds stdin, drains stdout and stderr as they fill, and watches the
//! child's pidfd and the clock, all on the calling thread, with no helper thread per pipe.
//! Whatever the child writes or reads, in whatever order, the run completes.
//!
//! ```
//! use offspring::{exec, exec_file, Command};
//! use std::time::Duration;
//!
//! // 1 MiB in, 1 MiB out and 1 MiB on stderr, at the same time.
//! let input = vec![b'x'; 1 << 20];
//! let out = exec("cat; head -c 1048576 /dev/zero >&2").input(input.clone()).run()?;
//! assert_eq!(out.stdout, input);
//! assert_eq!(out.stderr.len(), 1 << 20);
//!
//! // Node's exec/execFile, with checked exits and text helpers.
//! assert_eq!(exec_file("echo", ["hi"]).read()?, "hi");
//! let err = exec("echo oops >&2; exit 3").run().unwrap_err();
//! assert_eq!(err.exit_status().unwrap().code(), Some(3));
//!
//! // A timeout stops the child (SIGTERM, then SIGKILL after a grace period) and keeps what
//! // it printed; an output limit does the same on the first byte too many.
//! let err = exec("echo started; sleep 10").timeout(Duration::from_millis(100)).run().unwrap_err();
//! assert_eq!(err.kind(), offspring::ErrorKind::TimedOut);
//! assert_eq!(err.stdout(), b"started\n");
//! # Ok::<(), offspring::Error>(())
//! ```
//!
//! - Runners: [`Command::output`] (non-zero exit is data, as in std), [`Command::run`],
//!   [`Command::read`], [`Command::read_bytes`] and [`Command::read_lines`] (non-zero exit is an
//!   error carrying the status, stdout and stderr, unless [`Command::unchecked`]). [`exec`]
//!   runs a shell command line, [`exec_file`] a program with arguments.
//! - Options: [`input`](Command::input) or [`input_file`](Command::input_file);
//!   [`timeout`](Command::timeout), [`kill_signal`](Command::kill_signal) and
//!   [`force_kill_after`](Command::force_kill_after) (a timeout signals the whole process group
//!   when the child leads one); [`max_buffer`](Command::max_buffer) per stream, exact to the
//!   byte, with an [`Overflow`] policy (kill, or truncate and keep draining);
//!   [`stderr_to_stdout`](Command::stderr_to_stdout) (`2>&1`); a [`CancelHandle`] another
//!   thread can trigger.
//! - A grandchild that inherits the pipes cannot hang the caller: once the child has exited,
//!   draining is bounded by [`drain_timeout`](Command::drain_timeout) (Go's `WaitDelay`).
//! - A child that stops reading its stdin early is not an error (the parent never dies of
//!   `SIGPIPE`; it sees `EPIPE` and stops writing).
//! - Errors say what happened: timed out (and whether `SIGKILL` was needed), which stream went
//!   over its limit, which signal or exit code ended the child; they quote the command and the
//!   tail of stderr, and keep the partial output ([`Error::stdout`], [`Error::stderr`]).
//! - Streaming: [`Child::stdout_reader`] gives an [`OutputReader`] that reads in chunks or line
//!   by line, with deadlines that consume nothing when they pass; [`Child::communicate`] feeds
//!   and drains a spawned child, resumable after a deadline without losing a byte.
//!
//! Large captures read straight into the output buffer's spare capacity, which grows
//! geometrically, and fault its pages in ahead of the reads, outside the pipe's lock; peak
//! memory stays close to the size of the output (1.02x for 1 GiB).
//!
//! # Waiting, timeouts and deadlines
//!
//! Every blocking call comes in four forms, as in crossbeam: [`Child::wait`],
//! [`Child::try_wait`] (never blocks), [`Child::wait_timeout`] and [`Child::wait_deadline`].
//! They take `&self`: any number of threads may wait for one child at once, and all see the
//! same status. On Linux a waiting thread sleeps in `poll` on the child's pidfd and reaps it
//! itself the moment it exits; nothing sleeps in a loop.
//!
//! To wait for many children, timers and messages together, [`Child::exit_receiver`] gives a
//! `crossbeam_channel::Receiver` that delivers the child's [`Exit`] once:
//!
//! ```
//! use crossbeam_channel::Select;
//! use offspring::Command;
//!
//! let children: Vec<_> = (0..3).map(|i| Command::new("sh").args(["-c", &format!("exit {i}")]).spawn()).collect::<Result<_, _>>()?;
//! let receivers: Vec<_> = children.iter().map(|c| c.exit_receiver()).collect();
//! let mut sel = Select::new();
//! for rx in &receivers {
//!     sel.recv(rx);
//! }
//! let mut codes = Vec::new();
//! for _ in 0..3 {
//!     let op = sel.select();
//!     let i = op.index();
//!     codes.push(op.recv(&receivers[i]).unwrap().status()?.code().unwrap());
//!     sel.remove(i);
//! }
//! codes.sort();
//! assert_eq!(codes, [0, 1, 2]);
//! # Ok::<(), offspring::Error>(())
//! ```
//!
//! The [`Exit`] also carries the child's [`ResourceUsage`] (CPU time, peak memory), which the
//! kernel hands over when the child is reaped.
//!
//! # Signals
//!
//! Signals are [`Signal`] values, never integers. [`Child::signal`] sends one,
//! [`Child::kill`] sends `SIGKILL` (as std), [`Child::terminate`] sends `SIGTERM` (or
//! another signal with [`Child::terminate_with`]), waits for a grace period, then sends
//! `SIGKILL` and reports whether it had to. [`Child::signal_group`] reaches the child's whole
//! process group, grandchildren included, when it leads one.
//!
//! A signal can never reach a stranger that inherited the child's pid after it was reaped: on
//! Linux it goes through the pidfd (`pidfd_send_signal`); without pidfds it is sent only while
//! the child is known, under the lock that guards its reaping, to be unreaped. Signalling a
//! child that has already been collected is a no-op.
//!
//! # Zombies and the reaper thread
//!
//! A child that exits stays a zombie until its parent collects its status. `std::process`
//! leaves that to the caller, and a dropped `std::process::Child` becomes a zombie for the
//! life of the program. offspring instead starts **one background thread**, named
//! `offspring-reap`, the first time a child is spawned, and registers every child with it
//! before `spawn` returns:
//!
//! - On Linux 5.4 and later the reaper sleeps in `epoll` on the children's pidfds (no timer:
//!   an idle reaper uses no CPU) and collects each child with `waitid(P_PIDFD)` when it exits.
//!   A thread that waits on a child reaps it itself; the reaper handles the rest, above all the
//!   children whose `Child` was dropped.
//! - Elsewhere (or with `OFFSPRING_REAPER=sigchld` in the environment, which the test suite
//!   uses) it installs a `SIGCHLD` handler, once, chained to the handler that was there
//!   before, which writes to a self-pipe; the reaper then checks each of *its own* children
//!   with `waitpid(pid, WNOHANG)`, and rescans once a second as a safety net.
//!
//! The reaper never waits for "any child" (`waitpid(-1)`), so children that
//! `std::process::Command` or other libraries spawn in the same program keep their exit
//! statuses. A program that uses offspring must not do so either: a `waitpid(-1)` loop, or
//! `SIGCHLD` set to `SIG_IGN`, takes children away from offspring. offspring survives it
//! (it recovers the status from the pidfd on Linux 6.15+, and otherwise reports
//! [`ErrorKind::StatusUnavailable`]), but without pidfds such a program could have a recycled
//! pid mistaken for a child.
//!
//! Dropping a [`Child`] that still runs never blocks and never kills it, unless the command
//! asked for that with [`Command::kill_on_drop`] or [`Command::terminate_on_drop`] (SIGTERM,
//! then SIGKILL from the reaper after a grace period). [`Child::detach`] says "let it run" out
//! loud.
//!
//! # IPC channels (Node's `fork`)
//!
//! [`Command::ipc`] gives a child a message channel the way Node's `fork()` does (a Unix
//! socket pair at fd 3, named by `NODE_CHANNEL_FD`), and speaks Node's wire format: a Rust
//! program can drive Node workers (`process.on('message')`, `process.send`), a Node program
//! can fork Rust workers that call [`ipc::attach`], and two Rust programs can talk, in JSON
//! lines or in length-prefixed binary frames. [`Child::take_channel`] hands out an
//! [`ipc::Sender`] and an [`ipc::Receiver`] in crossbeam's shape:
//!
//! ```
//! use offspring::{ipc, Command};
//! use std::time::Duration;
//! // A Node worker that says it is ready, then echoes every message. A Rust worker does the
//! // same with `ipc::attach()`, `tx.send_ready()` and `rx.recv()`.
//! let worker = "process.send({cmd: 'NODE_OFFSPRING_READY'}); process.on('message', m => process.send(m))";
//! let child = Command::new("node").args(["-e", worker]).ipc(ipc::Options::new()).spawn();
//! # let Ok(mut child) = child else { return Ok(()) }; // no node on this machine
//! let (tx, rx) = child.take_channel().unwrap();
//! rx.wait_ready_timeout(Duration::from_secs(10))?;   // the ready handshake
//! tx.send(br#"{"job":42}"#)?;                        // JSON text, checked, never re-encoded
//! assert_eq!(rx.recv_timeout(Duration::from_secs(10))?.as_bytes(), br#"{"job":42}"#);
//! drop(tx);                                          // the worker sees 'disconnect'
//! assert!(child.wait()?.success());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - Messages are JSON bytes, checked by a small validator (no JSON library in the default
//!   build; the `serde` feature adds typed messages). Nothing that would crash a Node peer is
//!   ever written: no empty line, no invalid JSON, no `{"cmd":"NODE_..."}` from a user.
//! - fds travel with `SCM_RIGHTS` in Node's `NODE_HANDLE` handshake ([`ipc::Sender::send_fd`],
//!   [`ipc::Message::take_fd`]): a Node parent can hand a listening server to a Rust worker.
//! - A receiver reads on the calling thread; a reader thread (`offspring-ipc-read`) takes over
//!   when one is needed (`Select` through [`ipc::Receiver::as_crossbeam`], fd
//!   acknowledgements, the ready handshake). Back-to-back sends are coalesced by a writer
//!   thread (`offspring-ipc-write`) into one `sendmsg`. Both are bounded: a slow peer makes
//!   `send` block, never memory grow. The [`ipc`] module explains the threads, disconnects and
//!   limits.
//!
//! # Shell quoting
//!
//! offspring runs no shell unless asked to: a [`Command`] passes each argument to the program
//! as it is. A shell is asked for when a program builds shell code, and building shell code
//! with string formatting is how programs get owned (`exec(\`rm -rf ${userInput}\`)` in
//! Node). The safe way is the easy one here:
//!
//! ```
//! use offspring::{cmd, sh, Command};
//!
//! let name = "world; echo INJECTED"; // from a user, a file name, a branch, a URL...
//!
//! // Before: the value is pasted into shell code, and the shell runs what follows the `;`.
//! let out = Command::new("/bin/sh").arg("-c").arg(format!("echo hello {name}")).output()?;
//! assert_eq!(out.stdout, b"hello world\nINJECTED\n");
//!
//! // After: sh! quotes every value, so the shell reads it back as one word, whatever it holds...
//! let out = sh!("echo hello {}", name).output()?;
//! assert_eq!(out.stdout, b"hello world; echo INJECTED\n");
//!
//! // ...and cmd! runs no shell at all: each value is exactly one argument.
//! let out = cmd!("echo", "hello", name).output()?;
//! assert_eq!(out.stdout, b"hello world; echo INJECTED\n");
//! # Ok::<(), offspring::Error>(())
//! ```
//!
//! - [`cmd!`] builds an argv, with a splat (`..values`) for many arguments; no shell.
//! - [`sh!`] builds `/bin/sh -c` from a template whose placeholders are checked at compile
//!   time and whose values are always quoted. Its template is shell code.
//! - The [`quote`] module quotes, joins and splits POSIX shell words on bytes, and refuses
//!   what it cannot do exactly (a NUL byte; `$`, globs or operators when splitting).
//! - Every spawn first runs the checks of the [`validate`] module: no NUL anywhere, no empty
//!   program, no environment variable name that is empty or contains `=`.
//! - [`Operand`] guards untrusted arguments that a program would read as options (`-rf`,
//!   `--upload-pack=...`); its documentation shows where to put `--` instead.
//! - Errors and logs show commands with [`quote::display`], so pasting one into a shell runs
//!   the same argv.
//!
//! The quoting is fuzzed against the real dash and bash; see `fuzz/` in the repository.
//!
//! # Process-global state
//!
//! offspring owns exactly this, process-wide: the reaper thread and its `epoll` fd and
//! `eventfd` (or, on the fallback path, its `SIGCHLD` handler and self-pipe). Each IPC
//! channel adds up to two threads of its own, which end with it (see [`ipc`]). It never changes
//! the parent's signal mask or dispositions except for the fallback's `SIGCHLD` handler, and
//! never changes an fd it did not create.
//!
//! It reads the environment through [`std::env`](mod@std::env), except that a command which
//! changes nothing in it hands the C runtime's `environ` to the child as it is, as std's
//! `Command` does. Like std, that relies on no thread calling `std::env::set_var` or
//! `remove_var` while others run, which Rust 2024 no longer allows in safe code for exactly
//! this reason.
//!
//! # Related crates
//!
//! [`std::process`] is the right choice when you spawn a few children and wait for each
//! one. duct builds pipelines and redirections on top of it; subprocess offers `Popen`-style
//! communication with a `fork`-based spawn; tokio's `process` is the choice inside an async
//! runtime. offspring is for synchronous programs that spawn many children, need deadlines,
//! signals and capture limits, and want none of them left behind.
//!
//! # MSRV
//!
//! Rust 1.77. Linux is the first platform (pidfds, `close_range`, `epoll`); other Unix
//! systems use the fallback paths, which are compiled and tested on Linux too.

#![warn(missing_docs)]

mod cancel;
mod capture;
mod child;
mod command;
mod error;
mod exec;
mod exit_status;
pub mod ipc;
#[doc(hidden)]
pub mod macros;
pub mod quote;
mod reader;
mod reaper;
mod signal;
mod stdio;
mod sys;
pub mod validate;

pub use crate::cancel::CancelHandle;
pub use crate::capture::{Communication, Output, Overflow, Stream};
pub use crate::child::{Child, Exit, Termination};
pub use crate::command::{which, ChildFd, Command, ProcessGroup, Resource};
pub use crate::error::{Error, ErrorKind, Result, Stage};
pub use crate::exec::{exec, exec_file};
pub use crate::exit_status::{ExitStatus, ResourceUsage};
pub use crate::quote::QuoteError;
pub use crate::reader::OutputReader;
pub use crate::signal::Signal;
pub use crate::stdio::{ChildStderr, ChildStdin, ChildStdout, Stdio};
pub use crate::validate::Operand;
/// A process id: never zero, never negative (rustix's type).
pub use rustix::process::Pid;
