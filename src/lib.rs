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
//! `Output`, `spawn`/`status`/`output`), so most code written for [`std::process`] ports by
//! changing the import; [Coming from std](#coming-from-std) lists every difference. Node's
//! names (`exec`, `execFile`, `spawnSync`, `detached`, `cwd`...) are search aliases in these
//! docs.
//!
//! Options are set through `&mut Command`, as in std. Chain them on a temporary only when the
//! run is in the same statement; to keep a command (to run it again, or to set options in
//! several steps), bind it first:
//!
//! ```
//! use offspring::exec;
//! use std::time::Duration;
//!
//! // Chained: the temporary lives until the end of the statement.
//! let n = exec("echo 3").timeout(Duration::from_secs(10)).read()?;
//!
//! // Bound: `let mut cmd = exec(..); cmd.timeout(..);` and run it as often as needed.
//! let mut cmd = exec("make -j2 >/dev/null 2>&1 || true");
//! cmd.timeout(Duration::from_secs(60));
//! cmd.run()?;
//! # assert_eq!(n, "3");
//! # Ok::<(), offspring::Error>(())
//! ```
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
//!   [`force_kill_after`](Command::force_kill_after) (a stop reaches what the command started,
//!   see [Stopping a command](#stopping-a-command)); [`max_buffer`](Command::max_buffer) per stream, exact to the
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
//! # Stopping a command
//!
//! A [`timeout`](Command::timeout), an output limit ([`max_buffer`](Command::max_buffer) with
//! [`Overflow::Kill`]) or a [`cancel`](Command::cancel_with) stops the *command*, not only its
//! first process: `exec("make -j2").timeout(..)` also stops what `make` started. The
//! [kill signal](Command::kill_signal), then `SIGKILL` after the
//! [grace period](Command::force_kill_after), reaches:
//!
//! - the child;
//! - its process group, when it leads one. A run that may stop its child starts it in a new
//!   group by default, **unless this process is the foreground process group of its
//!   terminal**: there a new group would take the child out of the terminal's job control
//!   (`Ctrl-C` and `Ctrl-Z` would no longer reach it, and reading the terminal would stop it
//!   with `SIGTTIN`), so it stays in this process's group, as in std, Python and Node. Without a
//!   controlling terminal (services, CI, cron, a pipeline's background job) it gets its own.
//!   [`ProcessGroup::Inherit`] keeps std's behaviour always, [`ProcessGroup::New`] asks for a
//!   group always; a run that cannot stop its child is left in this process's group;
//! - on Linux, every descendant that `/proc` shows under the child when the stop begins,
//!   whatever its group: each is opened as a pidfd (so a recycled pid is never signalled) and
//!   held, so that the `SIGKILL` after the grace period reaches it even once it is orphaned.
//!
//! What is **not** reached: a process that has left both the group and the tree before the
//! stop, that is, one that called `setsid` (or joined another group) and whose parent had
//! already exited (a daemon's double fork), and descendants that ignore the kill signal after
//! their parent has died when the run has already returned. Such a process keeps running; if
//! it still holds the pipes, the run returns after the
//! [drain timeout](Command::drain_timeout) and says so: [`Output::drain_expired`] and
//! [`Error::drain_expired`] are `true`, and the error's message ends with "the pipes were still
//! held open after the child exited: a process it started may still be running". Only
//! containment in a cgroup catches those.
//!
//! Go's `exec.CommandContext` kills only the first process (its `Cancel` hook and `WaitDelay`
//! are the tools to do more), as do Python's `subprocess.run(timeout=)` and Node's `timeout`;
//! coreutils' `timeout(1)` starts a group of its own and has `--foreground` for the terminal
//! case. offspring does the group where it is harmless and follows the tree everywhere.
//!
//! ```
//! use offspring::{exec, ErrorKind};
//! use std::time::Duration;
//! let err = exec("sleep 1000 & sleep 1000").timeout(Duration::from_millis(200)).run().unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::TimedOut);
//! assert!(!err.drain_expired()); // both sleeps were stopped: nothing held the pipes
//! ```
//!
//! [`status`](Command::status) honours the timeout the same way. [`spawn`](Command::spawn)
//! honours it through the reaper thread, which at the deadline signals the child's group
//! (chosen as above) or, when it leads none, the child alone: the descendants walk is the
//! capture loop's.
//!
//! # Capturing into shared memory
//!
//! For large outputs kept whole in memory, [`Command::output_mapped`] and
//! [`Command::run_mapped`] give the child a memory file (`memfd_create`) as its stdout and
//! stderr instead of pipes. The parent reads nothing while the child writes; it maps the
//! file as it grows, and when the child has exited it seals the file (no more writes, no
//! shrinking, no growing: a grandchild that kept the fd gets `EPERM`) and hands out a
//! read-only [`MappedBytes`] that derefs to `[u8]`, is `Send + Sync`, and unmaps on drop. The
//! parent spends about half the CPU time of `output()` on 1 GiB (page tables instead of
//! copies; the child pays for allocating the pages instead), and the run ends when the child
//! does.
//!
//! The same options apply (input, timeout and kill signal with the partial output kept,
//! cancel, checked exit, `2>&1`); with [`max_buffer`](Command::max_buffer) the run takes the
//! pipes, where the limit is exact; where `memfd_create` is missing or refused it falls back to
//! the pipe capture. The child writes to a regular file, not a pipe, which changes what some
//! programs do (no `SIGPIPE`, `/dev/stdout` reopened at offset 0, `S_ISFIFO` checks): the list
//! is in [`Command::output_mapped`].
//!
//! ```
//! let out = offspring::exec("head -c 5000000 /dev/zero").output_mapped()?;
//! assert_eq!(out.stdout.len(), 5_000_000);
//! let bytes: &[u8] = &out.stdout;
//! assert!(bytes.iter().all(|&b| b == 0));
//! # Ok::<(), offspring::Error>(())
//! ```
//!
//! # Waiting, timeouts and deadlines
//!
//! Every blocking call comes in four forms, as in crossbeam: the blocking one, `try_` (never
//! blocks), `_timeout(Duration)` and `_deadline(Instant)`: [`Child::wait`],
//! [`Child::try_wait`], [`Child::wait_timeout`] and [`Child::wait_deadline`];
//! [`Communication::wait`] and its three; and for [`OutputReader`], the [`Read`](std::io::Read)
//! and [`BufRead`](std::io::BufRead) methods `read`, `fill_buf`, `read_until` and `read_line`,
//! each with its `try_`, `_timeout` and `_deadline` form. The runners
//! ([`Command::output`] and friends) take their deadline as an option,
//! [`Command::timeout`].
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
//! # Errors
//!
//! Every failure is one [`Error`]: match on [`Error::kind`] ([`ErrorKind`]), read the stage,
//! the command, the errno, the status and the partial output from its accessors. Its message
//! names the command (cut in the middle past 1 KiB), what went wrong and where, and stays
//! bounded. To tell a timeout from a failure, whichever error you hold: [`Error::kind`] on an
//! offspring error, [`ErrorKind::from_io`] on a [`std::io::Error`] (an `OutputReader` deadline,
//! or an offspring error converted with `?`). Converted into `io::Error`, an error with an
//! errno keeps it ([`raw_os_error`](std::io::Error::raw_os_error)), and a cancel is
//! [`Other`](std::io::ErrorKind::Other), never `Interrupted`, which retry loops retry.
//!
//! A run that finished but failed (timed out, cancelled, over a limit, a checked non-zero
//! exit) keeps everything: [`Error::into_run_output`] gives its whole [`Output`], with
//! [`Output::stopped_by`], so that one `match` judges every run:
//!
//! ```
//! use offspring::{exec, Error, Stop};
//! use std::time::Duration;
//! let out = exec("echo working; sleep 10").timeout(Duration::from_millis(200)).output()
//!     .or_else(Error::into_run_output)?;
//! let verdict = match (out.stopped_by(), out.status.code()) {
//!     (Some(Stop::Timeout), _) => "timed out",
//!     (Some(_), _) => "stopped",
//!     (None, Some(0)) => "ok",
//!     (None, _) => "failed",
//! };
//! assert_eq!(verdict, "timed out");
//! assert_eq!(out.stdout, b"working\n");
//! # Ok::<(), offspring::Error>(())
//! ```
//!
//! # Coming from std
//!
//! What is the same: the builder's method names, `Stdio`, `child.stdin`/`stdout`/`stderr` as
//! public fields, [`Child::wait`] closing the child's stdin first, [`Child::wait_with_output`],
//! `output()` treating a non-zero exit as data, `Child::kill` meaning `SIGKILL`, `Child::id`.
//! What differs, all of it:
//!
//! - `Child`'s methods take `&self` (share one between threads); `wait` still closes the stdin
//!   that is in `child.stdin` (a write to it afterwards fails with `BrokenPipe`), while
//!   `try_wait`, `wait_timeout` and `wait_deadline` leave it open.
//! - Errors are [`Error`], not `io::Error` (`?` converts); messages name the command.
//! - `output()` of a run with a timeout or a limit that stopped the child is an `Err` (see
//!   [Errors](#errors) for one `Output` either way).
//! - Dropping a running `Child` leaves no zombie (the reaper collects it); std leaves one.
//! - The program is looked up on the child's `PATH` in the parent, never in `.` or other
//!   relative entries; a script without `#!` is an error, not run through `/bin/sh`.
//! - The child gets no fd beyond 0-2 and those given with [`Command::fd`], even fds opened
//!   without `O_CLOEXEC`; `SIGPIPE` is reset to its default action.
//! - A run that may stop its child can start it in a new process group (see
//!   [Stopping a command](#stopping-a-command)); without a stop option, the group is std's.
//! - [`ChildStdin`], [`ChildStdout`], [`ChildStderr`] and [`Output`] are offspring's types
//!   (`Write`/`Read`, `AsFd`, `Into<OwnedFd>`; `Output` has more than std's three fields).
//! - [`ExitStatus`] is offspring's (it converts both ways), with
//!   [`shell_code`](ExitStatus::shell_code) (`128 + N` for a signal) and
//!   [`exit_ok`](ExitStatus::exit_ok).
//! - `Command::spawn` with a capture-only option (`input`, `max_buffer`...) is an
//!   [`ErrorKind::InvalidInput`] error naming it, not a silent no-op.
//!
//! # Signals
//!
//! Signals are [`Signal`] values, never integers. [`Child::signal`] sends one,
//! [`Child::kill`] sends `SIGKILL` (as std), [`Child::terminate`] sends `SIGTERM` (or
//! another signal with [`Child::terminate_with`]), waits for a grace period, then sends
//! `SIGKILL` and reports whether it had to. [`Child::signal_group`] reaches the child's whole
//! process group, grandchildren included, when it leads one.
//!
//! A signal can never reach a stranger that inherited the child's pid after it was reaped: it
//! goes through the child's pidfd (`pidfd_send_signal`). Without pidfds (Linux before 5.3) a
//! pid cannot be told apart from a recycled one, so [`Child::signal`] refuses with an error
//! saying so. A group signal is sent while the leader is unreaped (its pid, the group's
//! number, cannot be reused meanwhile), or after that only while no other process has taken
//! the leader's pid. Signalling a child that has already been collected is a no-op.
//!
//! # Process trees
//!
//! A process group misses every descendant that calls `setsid` or double-forks, and walking
//! `/proc` for descendants (what Node's `tree-kill` does) misses every orphan and races with
//! the tree it kills. [`Command::contain`] starts the child in a cgroup v2 of its own instead:
//! whatever its descendants do, they stay in it, and [`Child::tree`] gives a [`Tree`] that
//! reaches them all: [`Tree::kill`] (`cgroup.kill`, atomic), [`Tree::signal`],
//! [`Tree::freeze`]/[`Tree::thaw`], [`Tree::members`], [`Tree::wait`] and its
//! `try_`/`_timeout`/`_deadline` forms (a `poll` on `cgroup.events` that wakes when the tree
//! is empty), [`Tree::cpu_time`], [`Tree::memory_peak`] and [`Tree::terminate`] (signal,
//! grace period, kill). A contained command's timeout, output limit, cancel, `kill_on_drop`
//! and `terminate_on_drop` act on the whole tree, and a stopped run returns only after the
//! tree is killed, so a daemonised grandchild cannot outlive it.
//!
//! The cgroup goes under this process's own cgroup (found through `/proc/self/mountinfo` and
//! `/proc/self/cgroup`), or under a parent named with [`Containment::parent`] (a subtree
//! delegated by systemd, for example); the child is placed with `CLONE_INTO_CGROUP` (Linux
//! 5.7), so it never runs outside. The directory is removed once the tree is empty and its
//! last handle is gone, by the reaper thread if members outlive the handle. Where no cgroup
//! can be made the spawn fails with an error saying why and what to do, or, with
//! [`Containment::best_effort`], falls back to a process group and says so
//! ([`Child::containment_fallback`]).
//!
//! ```no_run
//! use offspring::{exec, Command};
//! use std::time::Duration;
//!
//! // A test runner that leaves a daemon behind: the timeout kills the daemon too.
//! let err = exec("./run-tests.sh").contain(true).timeout(Duration::from_secs(60)).run();
//!
//! let child = Command::new("sh").args(["-c", "setsid sleep 1000 & exit 0"]).contain(true).spawn()?;
//! child.wait()?;
//! let tree = child.tree().unwrap();
//! assert_eq!(tree.members()?.len(), 1); // the daemon
//! tree.kill()?;
//! tree.wait()?;
//! # Ok::<(), offspring::Error>(())
//! ```
//!
//! # Many children at once
//!
//! A [`Mux`] runs any number of children on the calling thread and hands out what happens to
//! them as [`Event`]s, in order: each line (or chunk) of stdout and stderr tagged with the
//! child's [`MuxId`], each exit with what [`Command::output`] would have returned, and I/O
//! errors. Every child keeps its own capture options (input, timeout with kill signal and
//! grace, output limits, `stderr_to_stdout`), children can be added while others run, and
//! [`Mux::shutdown`] stops them all within one grace period and says which needed `SIGKILL`.
//! It is the same `poll()` loop that serves a single child's `output()`, with no thread per
//! child or pipe; [`Mux::into_channel`] moves it to a thread of its own and gives its events
//! as a [`crossbeam_channel::Receiver`] for `select!`.
//!
//! ```
//! use offspring::{exec, Event, Mux};
//! let mut mux = Mux::new();
//! let a = mux.spawn(&mut exec("echo one; echo two"))?;
//! let b = mux.spawn(&mut exec("echo three >&2; exit 2"))?;
//! let (mut lines, mut codes) = (0, Vec::new());
//! for event in &mut mux {
//!     match event? {
//!         Event::Line { .. } => lines += 1,
//!         Event::Exit { id, result } => codes.push((id, result?.status.code())),
//!         _ => {}
//!     }
//! }
//! codes.sort();
//! assert_eq!((lines, codes), (3, vec![(a, Some(0)), (b, Some(2))]));
//! # Ok::<(), offspring::Error>(())
//! ```
//!
//! A [`Pipeline`] connects children as the shell's `a | b | c` does, with real pipes and no
//! shell: `cmd!("a") | cmd!("b")`. It gives every stage's status (with `pipefail` by default),
//! takes the capture options as a whole, stops all stages together, and a stage that fails to
//! spawn leaves nothing running. The pipes between its stages are larger than the kernel's
//! 64 KiB default ([`Pipeline::pipe_capacity`], 256 KiB unless told otherwise), so bulk data
//! moves with fewer switches between the stages than in the shell's own pipeline. [`Jobs`]
//! runs a queue of commands with at most N alive at once (`xargs -P`), hands out each result
//! as it finishes, and stops early on the first failure or a [`CancelHandle`].
//!
//! ```
//! use offspring::{cmd, Jobs};
//! let n = (cmd!("printf", "b\na\nb\n") | cmd!("sort", "-u") | cmd!("wc", "-l")).read()?;
//! assert_eq!(n.trim(), "2");
//! let ok = Jobs::new(4).run((0..8).map(|i| cmd!("test", i.to_string(), "-lt", "8")));
//! assert!(ok.into_iter().all(|(_, r)| r.is_ok_and(|o| o.status.success())));
//! # Ok::<(), offspring::Error>(())
//! ```
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
//!   with `waitpid(pid, WNOHANG)`, and rescans once a second as a safety net. Where the
//!   kernel has `pidfd_open` (5.3) each child still gets a pidfd, to be signalled through and
//!   to check that its pid is still its own before `waitpid` looks at it.
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
//! # Supervising workers, clusters and graceful shutdown
//!
//! A [`Supervisor`] keeps N workers of one or more commands ([`Workers`]) running, as PM2 or
//! a hand-written Node `ProcessManager` would: a restart policy ([`Restart`]: always, on
//! failure, never, with the exit codes that count as success), exponential [`Backoff`] with
//! a cap and jitter, a limit of restarts within a window after which it gives up on that
//! worker and says so, a minimum uptime that resets the backoff, a ready check (a line on
//! stdout containing a pattern, [`ReadyLine`], or the IPC ready handshake, both within a
//! deadline), a stop signal with a grace
//! period then `SIGKILL` to the worker's process group, rolling restarts (one worker at a
//! time, the next once the new one is ready), every output line tagged with its worker, and a
//! [history](Supervisor::history) of each worker's runs ([`Run`]: start, ready, status,
//! duration, CPU time and peak RSS). Everything that happens comes out as
//! [`SupervisorEvent`]s on a `crossbeam_channel::Receiver`. One thread serves every worker,
//! through one [`Mux`].
//!
//! A cluster, Node's `cluster` for any program: [`Command::listen_fd`] hands a listening
//! socket to every worker in systemd's socket-activation convention (`LISTEN_FDS`,
//! `LISTEN_FDNAMES`, and `LISTEN_PID` set to the worker's own pid by the child itself before
//! exec), so N workers accept on one port and a restarted worker finds the same socket: no
//! connection is refused while it restarts.
//!
//! ```no_run
//! use offspring::{Command, Supervisor, SupervisorEvent, Workers};
//! use std::time::Duration;
//!
//! let mut cmd = Command::new("./server"); // accepts on fd 3 (sd_listen_fds)
//! cmd.listen_fd("http", std::net::TcpListener::bind("127.0.0.1:8080")?);
//! let sup = Supervisor::start(vec![Workers::new("web", cmd)
//!     .count(4)
//!     .ready_line("listening", Duration::from_secs(10))])?;
//! let signals = offspring::shutdown_signals()?; // SIGTERM, SIGINT, SIGHUP
//! loop {
//!     crossbeam_channel::select! {
//!         recv(signals) -> sig => {
//!             sup.shutdown(Duration::from_secs(5))?; // every worker, one deadline
//!             offspring::exit_by_signal(sig.unwrap());
//!         }
//!         recv(sup.events()) -> ev => {
//!             if let SupervisorEvent::Line { worker, line, .. } = ev.unwrap() {
//!                 println!("[{worker}] {line}");
//!             }
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Readiness as Node's process managers do it (PM2's `wait_ready`):
//! [`Workers::ready_ipc`] gives each worker a message channel ([`Command::ipc`], fd 3,
//! Node's wire), and the worker is ready when it sends the handshake
//! ([`ipc::Sender::send_ready`] after [`ipc::attach`]; in Node,
//! `process.send({cmd: 'NODE_OFFSPRING_READY'})`). A worker that does not send it in time is
//! stopped and counts as a failed start, as a missed ready line does, and rolling restarts
//! wait for each new worker's handshake. The worker's other messages come out as
//! [`SupervisorEvent::Message`], and [`Supervisor::sender`] sends to it. The supervisor still
//! has one thread: each channel's own reader thread (the one [`ipc`] documents, ended with
//! the worker) wakes the supervisor's `poll()` through its control pipe.
//!
//! ```no_run
//! use offspring::{Command, Supervisor, SupervisorEvent, Workers};
//! use std::time::Duration;
//!
//! // The worker: `let (tx, rx) = offspring::ipc::attach()?; /* set up */ tx.send_ready()?;`
//! let sup = Supervisor::start(vec![Workers::new("api", Command::new("./worker"))
//!     .count(2)
//!     .ready_ipc(Duration::from_secs(10))])?;
//! for ev in sup.events() {
//!     match ev {
//!         SupervisorEvent::Ready { worker, after } => println!("{worker} ready after {after:?}"),
//!         SupervisorEvent::Message { worker, data } => {
//!             println!("{worker} says {}", String::from_utf8_lossy(&data));
//!             if let Some(tx) = sup.sender(&worker) {
//!                 tx.send(br#"{"ack":true}"#)?;
//!             }
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`shutdown_signals`] is the graceful-shutdown half: this process's own `SIGTERM`,
//! `SIGINT` and `SIGHUP` as a channel, through a self-pipe handler installed once and chained
//! to any handler before it; [`exit_by_signal`] then ends the process with the status its
//! parent expects. Children that must die with the parent even when it is killed with
//! `SIGKILL` (when no handler runs) get [`Command::parent_death_signal`]; supervised workers
//! have it.
//!
//! The same, as a command-line tool (`cargo install offspring --features cli`):
//! `offspring supervise -n 4 --ready-line listening -- ./server` and
//! `offspring run --timeout 10s --json -- make test` (timeout(1) and time(1) in one).
//!
//! # Under faults
//!
//! A hostile environment does not leave the engine in a worse state than it found it, and
//! never makes a transient failure permanent:
//!
//! - A spawn that meets a full fd table (`EMFILE`) or process table (`EAGAIN` under
//!   `RLIMIT_NPROC`) fails with [`ErrorKind::ResourceExhausted`] and leaks nothing. If it
//!   was the first spawn, the reaper's start (its probe, its epoll set or self-pipe, its
//!   thread) is simply tried again by the next spawn; a resource error is never read as
//!   "this kernel lacks pidfds".
//! - Every spawn path says where a spawn failed: [`Stage::Setup`] "starting the child" for
//!   process creation (`posix_spawn` included), [`Stage::Chdir`], [`Stage::ChildSetup`],
//!   [`Stage::Exec`], whatever fds the child is given.
//! - A `pre_exec` hook runs with every caught signal reset to `SIG_DFL` (no handler of the
//!   parent runs in the child); if it panics, the child aborts and the spawn fails (see
//!   [`Command::pre_exec`]).
//! - A child held by a ptracer after it exited is waited for without spinning; a child
//!   that exits during `terminate_on_drop`'s grace period is let go of at once.
//! - A `SIGCHLD` handler that was installed before offspring's keeps its flags (it still
//!   sees stopped children if it asked for them).
//!
//! ```
//! use offspring::{Command, ErrorKind, Stage};
//!
//! // A directory is not a program: the exec fails, on whichever path the spawn takes.
//! let e = Command::new("/tmp").status().unwrap_err();
//! assert_eq!((e.kind(), e.stage()), (ErrorKind::PermissionDenied, Stage::Exec));
//! ```
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
//!   `--upload-pack=...`); [`Operand::path`] writes every relative path as `./path`, so a
//!   file name is never an option, a response file (`@file`), an operator (`!`) or an
//!   assignment (`NAME=value`); its documentation says what each guard covers.
//! - Errors and logs show commands with [`quote::display`], so pasting one into a shell runs
//!   the same argv, and escape the child's stderr the same way, so it cannot drive the
//!   terminal that shows the error.
//!
//! The quoting is fuzzed against the real dash and bash, and bash under the multibyte locales
//! it supports (GB18030, GBK, Big5, Big5-HKSCS, Shift-JIS); `sh!` templates are generated,
//! checked and run with hostile values in dash, bash and bash as `sh`. Where those shells
//! read a template differently, `sh!` refuses it at compile time. See `fuzz/` in the
//! repository.
//!
//! # Process-global state
//!
//! offspring owns exactly this, process-wide: the reaper thread and its `epoll` fd and
//! `eventfd` (or, on the fallback path, its `SIGCHLD` handler and self-pipe). It never changes
//! the parent's signal mask or dispositions except for the fallback's `SIGCHLD` handler (and,
//! once [`shutdown_signals`] is called, the handler for `SIGTERM`, `SIGINT` and `SIGHUP` and
//! its thread, `offspring-signals`), and never changes an fd it did not create.
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
mod jobs;
#[doc(hidden)]
pub mod macros;
mod mapped;
mod mux;
mod pipeline;
pub mod quote;
mod reader;
mod reaper;
mod shutdown;
mod signal;
mod stdio;
mod stop;
mod supervisor;
mod sys;
mod tree;
pub mod validate;

pub use crate::cancel::CancelHandle;
pub use crate::capture::{Communication, Delivery, Output, Overflow, Stop, Stream};
pub use crate::child::{Child, Exit, Termination};
pub use crate::command::{which, ChildFd, Command, ProcessGroup, Resource};
pub use crate::error::{Error, ErrorKind, Result, Stage};
pub use crate::exec::{exec, exec_file};
pub use crate::exit_status::{ExitStatus, ResourceUsage};
pub use crate::jobs::{JobResults, Jobs};
pub use crate::mapped::{MappedBytes, MappedOutput};
pub use crate::mux::{Event, Mux, MuxId, MuxSender, Shutdown};
pub use crate::pipeline::{Pipeline, PipelineChild, PipelineOutput};
pub use crate::quote::QuoteError;
pub use crate::reader::OutputReader;
pub use crate::shutdown::{exit_by_signal, shutdown_signals};
pub use crate::signal::Signal;
pub use crate::stdio::{ChildStderr, ChildStdin, ChildStdout, Stdio};
pub use crate::supervisor::{
    Backoff, Next, ReadyLine, Restart, Run, StopReason, Supervisor, SupervisorEvent, WorkerId,
    Workers,
};
pub use crate::tree::{Containment, Tree, TreeCpuTime, TreeTermination};
pub use crate::validate::Operand;
/// A process id: never zero, never negative (rustix's type).
pub use rustix::process::Pid;
