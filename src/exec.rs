//! Buffered runs: [`exec`] (a shell command line), [`exec_file`] (a program and its
//! arguments), the capture options on [`Command`] (input, timeout, kill signal, output limits,
//! merged stderr, cancellation) and the runners `output`, `run`, `read`, `read_bytes` and
//! `read_lines`.
//!
//! Non-zero exit is data for [`Command::output`] (as in std) and an error for the checked
//! runners (`run` and the `read` family, as in duct and xshell), unless
//! [`unchecked`](Command::unchecked) says otherwise. A timeout, a cancel and an output limit
//! are errors for every runner: the output is incomplete. Every error keeps the partial
//! output ([`Error::stdout`], [`Error::stderr`]).

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cancel::CancelHandle;
use crate::capture::{self, Finished, Output, Overflow, Policy, Session, Stop, Stream};
use crate::child::{deadline_after, Child};
use crate::command::{Command, DefaultIo, Defaults};
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::exit_status::ExitStatus;
use crate::signal::Signal;
use crate::stdio::{Stdio, StdioKind};

/// Runs `command_line` with `/bin/sh -c`, buffered: Node's `exec` and `execSync`.
///
/// **The string is shell code.** Everything in it is interpreted by the shell: spaces split
/// words, `$VAR` and `$(...)` expand, `;`, `|`, `&&` and `>` do what they do in a terminal.
/// Never build it by pasting in text you do not control (file names, user input, anything
/// from the network): a name like `x; rm -rf ~` runs the second command. Either pass such
/// values as separate arguments with [`exec_file`] or [`Command`], where no shell ever sees
/// them, or build the line with [`sh!`](crate::sh), which quotes every interpolated value so
/// the shell reads it back as exactly one word (and [`cmd!`](crate::cmd) builds an argv with no
/// shell at all).
///
/// Returns a [`Command`] for `/bin/sh`, so every option applies (`env`, `current_dir`,
/// `timeout`, `input`...); finish with [`read`](Command::read),
/// [`run`](Command::run) or [`output`](Command::output).
///
/// # Examples
///
/// ```
/// let n = offspring::exec("printf 'a\\nb\\nc\\n' | wc -l").read()?;
/// assert_eq!(n.trim(), "3");
///
/// let err = offspring::exec("echo oops >&2; exit 4").run().unwrap_err();
/// assert_eq!(err.exit_status().and_then(|s| s.code()), Some(4));
/// assert_eq!(err.stderr(), b"oops\n");
/// # Ok::<(), offspring::Error>(())
/// ```
#[doc(alias = "execSync")]
#[doc(alias = "shell")]
pub fn exec(command_line: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command_line);
    cmd
}

/// Runs `program` with `args`, without a shell, buffered: Node's `execFile` and
/// `execFileSync`.
///
/// Each argument reaches the program as exactly one `argv` element, whatever it contains, so
/// untrusted values are safe here. The same as `Command::new(program).args(args)`; finish with
/// [`read`](Command::read), [`run`](Command::run) or [`output`](Command::output).
///
/// # Examples
///
/// ```
/// let name = "it's; $(not) a shell";
/// let out = offspring::exec_file("printf", ["%s", name]).read()?;
/// assert_eq!(out, name);
/// # Ok::<(), offspring::Error>(())
/// ```
#[doc(alias = "execFile")]
#[doc(alias = "execFileSync")]
pub fn exec_file<I, S>(program: impl AsRef<OsStr>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// What to write to the child's stdin.
#[derive(Debug)]
pub(crate) enum Input {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// The capture options a [`Command`] carries for its runners.
#[derive(Debug, Default)]
pub(crate) struct RunOptions {
    input: Option<Input>,
    timeout: Option<Duration>,
    kill_signal: Option<Signal>,
    grace: Option<Duration>,
    drain: Option<Duration>,
    limits: [Option<usize>; 2],
    overflow: Option<Overflow>,
    merge: bool,
    unchecked: bool,
    cancel: Option<CancelHandle>,
}

impl RunOptions {
    pub(crate) fn policy(&self) -> Policy {
        let d = Policy::default();
        Policy {
            timeout: self.timeout,
            kill_signal: self.kill_signal.unwrap_or(d.kill_signal),
            grace: self.grace.unwrap_or(d.grace),
            drain: self.drain.unwrap_or(d.drain),
            limits: self.limits,
            overflow: self.overflow.unwrap_or_default(),
        }
    }

    /// Whether a run may stop its child: a timeout, a cancel, or a limit that kills.
    fn may_stop(&self) -> bool {
        self.timeout.is_some()
            || self.cancel.is_some()
            || (self.limits.iter().any(Option::is_some)
                && self.overflow.unwrap_or_default() == Overflow::Kill)
    }

    /// The first option set on the command that `method` cannot honour, with a hint.
    fn unsupported(&self, method: Method) -> Option<(&'static str, &'static str)> {
        const CAPTURE: &str = "it captures no output; use output(), run() or read()";
        let capture_only = [
            (self.limits.iter().any(Option::is_some), "max_buffer", CAPTURE),
            (self.overflow.is_some(), "on_overflow", CAPTURE),
            (self.merge, "stderr_to_stdout", CAPTURE),
            (self.drain.is_some(), "drain_timeout", CAPTURE),
        ];
        let spawn_only = [
            (
                matches!(self.input, Some(Input::Bytes(_))),
                "input",
                "write to child.stdin (Stdio::piped()) or use Child::communicate",
            ),
            (
                self.cancel.is_some(),
                "cancel_with",
                "signal the Child, or use output(), run() or status()",
            ),
        ];
        let found = match method {
            Method::Capture => None,
            Method::Status => capture_only.iter().find(|o| o.0),
            Method::Spawn => capture_only.iter().chain(&spawn_only).find(|o| o.0),
        };
        found.map(|o| (o.1, o.2))
    }
}

/// Which runner a command is started by, for the options it honours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Spawn,
    Status,
    Capture,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Spawn => "spawn()",
            Method::Status => "status()",
            Method::Capture => "output()",
        }
    }
}

/// The options the mapped runner (`src/mapped.rs`) shares with the others.
impl RunOptions {
    pub(crate) fn take_input(&mut self) -> Option<Input> {
        self.input.take()
    }
    pub(crate) fn restore_input(&mut self, input: Option<Input>) {
        self.input = input;
    }
    pub(crate) fn has_limits(&self) -> bool {
        self.limits.iter().any(Option::is_some)
    }
    pub(crate) fn merge(&self) -> bool {
        self.merge
    }
    pub(crate) fn unchecked(&self) -> bool {
        self.unchecked
    }
    pub(crate) fn cancel(&self) -> Option<&CancelHandle> {
        self.cancel.as_ref()
    }
}

/// # Capture options
///
/// These shape the buffered runners ([`output`](Command::output), [`run`](Command::run),
/// [`read`](Command::read) and friends). [`status`](Command::status) honours the timeout,
/// the kill signal, the grace period, the cancel handle and the input;
/// [`spawn`](Command::spawn) honours the timeout (through the reaper thread), the kill
/// signal, the grace period and the input file. An option that a method cannot honour makes
/// it fail with [`ErrorKind::InvalidInput`] naming the option; nothing is ignored silently.
///
/// Options are set through `&mut Command`. Chained on a temporary, the command must be used
/// in the same statement (`Command::new("x").timeout(t).run()`); to keep it, bind it first:
///
/// ```
/// use offspring::exec;
/// use std::time::Duration;
/// let mut cmd = exec("echo hi");
/// cmd.timeout(Duration::from_secs(10));
/// assert_eq!(cmd.read()?, "hi");
/// assert_eq!(cmd.read()?, "hi"); // a command runs again, as in std
/// # Ok::<(), offspring::Error>(())
/// ```
impl Command {
    /// Writes `bytes` to the child's stdin, then closes it (Node's `input`). Written by the
    /// same loop that reads the output, so any size works, and a child that stops reading
    /// early (`head -c 1`) simply ends the input: that is not an error.
    ///
    /// Conflicts with [`stdin`](Command::stdin): a run with both fails with
    /// [`ErrorKind::InvalidInput`].
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::Command;
    /// let out = Command::new("tr").args(["a-z", "A-Z"]).input("hello").read()?;
    /// assert_eq!(out, "HELLO");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "stdin_bytes")]
    pub fn input(&mut self, bytes: impl Into<Vec<u8>>) -> &mut Command {
        self.run.input = Some(Input::Bytes(bytes.into()));
        self
    }

    /// Connects the child's stdin to the file at `path`, opened when the run starts (execa's
    /// `inputFile`). The kernel feeds it; nothing is copied through the parent.
    ///
    /// # Errors
    ///
    /// The run fails with [`ErrorKind::NotFound`] (or another kind) at [`Stage::Setup`],
    /// naming the path, if the file cannot be opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind};
    /// let n = Command::new("wc").arg("-c").input_file("/dev/null").read()?;
    /// assert_eq!(n.trim(), "0");
    /// let err = Command::new("cat").input_file("/no/such/file").run().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::NotFound);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "inputFile")]
    pub fn input_file(&mut self, path: impl AsRef<Path>) -> &mut Command {
        self.run.input = Some(Input::File(path.as_ref().to_owned()));
        self
    }

    /// Stops the command if it runs longer than `timeout` (Node's `timeout`): the
    /// [kill signal](Command::kill_signal) goes to the child, its process group and its
    /// descendants (the crate docs, "Stopping a command", say exactly which processes that
    /// reaches), then `SIGKILL` after the [grace period](Command::force_kill_after) if it is
    /// still running. [`status`](Command::status) and [`spawn`](Command::spawn) honour it too. The run fails with
    /// [`ErrorKind::TimedOut`]; the error says which signals were needed and keeps the
    /// output captured so far.
    ///
    /// The runner returns within `timeout` + the grace period (only if the child ignores
    /// the first signal) + the [drain timeout](Command::drain_timeout) (only if a grandchild
    /// holds the pipes), plus scheduling noise.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind, Signal};
    /// use std::time::Duration;
    /// let err = Command::new("sh")
    ///     .args(["-c", "echo started; exec sleep 10"])
    ///     .timeout(Duration::from_millis(200))
    ///     .output()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// assert_eq!(err.signal_sent(), Some(Signal::TERM));
    /// assert!(!err.needed_kill());
    /// assert_eq!(err.stdout(), b"started\n");
    /// ```
    pub fn timeout(&mut self, timeout: Duration) -> &mut Command {
        self.run.timeout = Some(timeout);
        self
    }

    /// The signal that stops the child on a timeout, a cancel or an output limit (default
    /// `SIGTERM`, as Node's `killSignal`). With [`Signal::KILL`] there is no grace period.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Signal};
    /// use std::time::Duration;
    /// let err = Command::new("sleep").arg("10")
    ///     .timeout(Duration::from_millis(50))
    ///     .kill_signal(Signal::INT)
    ///     .output()
    ///     .unwrap_err();
    /// assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::INT));
    /// ```
    #[doc(alias = "killSignal")]
    pub fn kill_signal(&mut self, signal: Signal) -> &mut Command {
        self.run.kill_signal = Some(signal);
        self
    }

    /// How long the child may take to exit after the kill signal before it gets `SIGKILL`
    /// (default 5 s, as execa's `forceKillAfterDelay`).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind, Signal};
    /// use std::time::Duration;
    /// // A child that ignores SIGTERM.
    /// let err = Command::new("sh")
    ///     .args(["-c", "trap '' TERM; while :; do sleep 1; done"])
    ///     .timeout(Duration::from_millis(100))
    ///     .force_kill_after(Duration::from_millis(100))
    ///     .process_group(offspring::ProcessGroup::New)
    ///     .output()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// assert!(err.needed_kill());
    /// assert_eq!(err.exit_status().unwrap().signal(), Some(Signal::KILL));
    /// ```
    #[doc(alias = "forceKillAfterDelay")]
    #[doc(alias = "grace")]
    pub fn force_kill_after(&mut self, grace: Duration) -> &mut Command {
        self.run.grace = Some(grace);
        self
    }

    /// After the child exits, how long to keep reading pipes that are still open (default
    /// 1 s): Go's `WaitDelay`. Pipes stay open when the child passed them to a process that
    /// outlives it (`sh -c 'server &'`); without a bound, such a run would never return.
    /// When it runs out, the run takes what the pipes hold, closes them and returns normally;
    /// [`Output::drain_expired`] tells.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::Command;
    /// use std::time::{Duration, Instant};
    /// let start = Instant::now();
    /// let out = offspring::exec("echo hi; sleep 30 &")
    ///     .drain_timeout(Duration::from_millis(100))
    ///     .output()?;
    /// assert_eq!(out.stdout, b"hi\n");
    /// assert!(out.drain_expired());
    /// assert!(start.elapsed() < Duration::from_secs(20));
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "WaitDelay")]
    pub fn drain_timeout(&mut self, timeout: Duration) -> &mut Command {
        self.run.drain = Some(timeout);
        self
    }

    /// Caps what is kept of stdout and of stderr at `bytes` each (Node's `maxBuffer`; default:
    /// no limit). Exact: a stream of exactly `bytes` bytes is fine, one more is over. What
    /// happens then is set by [`on_overflow`](Command::on_overflow): by default the child is
    /// stopped and the run fails with [`ErrorKind::OutputLimit`], keeping the first `bytes`
    /// bytes ([`Error::over_limit`] says which stream).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind};
    /// assert!(Command::new("printf").arg("12345").max_buffer(5).run().is_ok());
    /// let err = Command::new("printf").arg("123456").max_buffer(5).run().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::OutputLimit);
    /// assert_eq!(err.stdout(), b"12345");
    /// ```
    #[doc(alias = "maxBuffer")]
    pub fn max_buffer(&mut self, bytes: usize) -> &mut Command {
        self.run.limits = [Some(bytes), Some(bytes)];
        self
    }

    /// Caps one stream only (see [`max_buffer`](Command::max_buffer)).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind, Stream};
    /// let err = offspring::exec("echo a long line of output; echo short >&2")
    ///     .max_buffer_for(Stream::Stderr, 100)
    ///     .max_buffer_for(Stream::Stdout, 4)
    ///     .run()
    ///     .unwrap_err();
    /// assert_eq!(err.over_limit(), Some((Stream::Stdout, 4)));
    /// ```
    pub fn max_buffer_for(&mut self, stream: Stream, bytes: usize) -> &mut Command {
        self.run.limits[match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }] = Some(bytes);
        self
    }

    /// What to do when a stream goes over its limit: stop the child and fail
    /// ([`Overflow::Kill`], the default), or keep the first bytes and drain the rest
    /// ([`Overflow::Truncate`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Overflow, Stream};
    /// let out = offspring::exec("seq 100000").max_buffer(6).on_overflow(Overflow::Truncate).run()?;
    /// assert_eq!(out.stdout, b"1\n2\n3\n");
    /// assert!(out.is_truncated());
    /// assert!(out.bytes_seen(Stream::Stdout) > 500_000);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn on_overflow(&mut self, policy: Overflow) -> &mut Command {
        self.run.overflow = Some(policy);
        self
    }

    /// Sends the child's stderr to the same pipe as its stdout (`2>&1`, Go's
    /// `CombinedOutput`): [`Output::stdout`] holds both, interleaved as written, and
    /// [`Output::stderr`] stays empty. Error messages then quote the tail of the combined
    /// output.
    ///
    /// Needs stdout captured (not set, or [`Stdio::piped`]) and stderr not set; otherwise the
    /// run fails with [`ErrorKind::InvalidInput`].
    ///
    /// # Examples
    ///
    /// ```
    /// let out = offspring::exec("echo one; echo two >&2; echo three").stderr_to_stdout(true).read()?;
    /// assert_eq!(out, "one\ntwo\nthree");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "CombinedOutput")]
    #[doc(alias = "all")]
    pub fn stderr_to_stdout(&mut self, yes: bool) -> &mut Command {
        self.run.merge = yes;
        self
    }

    /// Lets another thread cancel the run through `handle` (Node's `signal`). See
    /// [`CancelHandle`] for an example with a second thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{CancelHandle, ErrorKind};
    /// let cancel = CancelHandle::new();
    /// cancel.cancel();
    /// // Already cancelled: fails at once, nothing is spawned.
    /// let err = offspring::exec("sleep 30").cancel_with(&cancel).run().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Canceled);
    /// assert!(err.exit_status().is_none());
    /// ```
    #[doc(alias = "signal")]
    #[doc(alias = "AbortSignal")]
    pub fn cancel_with(&mut self, handle: &CancelHandle) -> &mut Command {
        self.run.cancel = Some(handle.clone());
        self
    }

    /// Makes the checked runners ([`run`](Command::run), [`read`](Command::read),
    /// [`read_bytes`](Command::read_bytes), [`read_lines`](Command::read_lines)) accept a
    /// non-zero exit or a death by signal, as [`output`](Command::output) always does (duct's
    /// `unchecked`, xshell's `ignore_status`). Timeouts, cancels and output limits are still
    /// errors.
    ///
    /// # Examples
    ///
    /// ```
    /// let out = offspring::exec("echo partial; exit 1").unchecked(true).run()?;
    /// assert_eq!(out.status.code(), Some(1));
    /// assert_eq!(out.stdout, b"partial\n");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "ignore_status")]
    #[doc(alias = "check")]
    pub fn unchecked(&mut self, yes: bool) -> &mut Command {
        self.run.unchecked = yes;
        self
    }

    /// Runs the child to completion and captures its stdout and stderr (stdin is `/dev/null`
    /// unless set or given [`input`](Command::input)). Every pipe is served by one `poll()`
    /// loop, so no child can deadlock the caller, whatever it writes or reads and in whatever
    /// order.
    ///
    /// Non-zero exit is not an error here, as in std: inspect [`Output::status`], or use
    /// [`run`](Command::run).
    ///
    /// # Errors
    ///
    /// Spawn errors; [`ErrorKind::TimedOut`], [`ErrorKind::Canceled`] and
    /// [`ErrorKind::OutputLimit`] (each with the partial output, the status and the signals
    /// sent); [`ErrorKind::InvalidInput`] for conflicting options; I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::Command;
    /// let out = Command::new("sh").args(["-c", "echo out; echo err >&2; exit 2"]).output()?;
    /// assert_eq!(out.status.code(), Some(2));
    /// assert_eq!(out.stdout, b"out\n");
    /// assert_eq!(out.stderr, b"err\n");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "spawnSync")]
    #[doc(alias = "communicate")]
    pub fn output(&mut self) -> Result<Output> {
        self.capture(false)
    }

    /// As [`output`](Command::output), but a non-zero exit or a death by signal is an error
    /// ([`ErrorKind::ExitCode`], [`ErrorKind::Signaled`]) that carries the status, stdout and
    /// stderr, and whose message quotes the command and the tail of stderr. Opt out with
    /// [`unchecked`](Command::unchecked).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind};
    /// let err = Command::new("sh").args(["-c", "echo 'no such branch' >&2; exit 128"]).run().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ExitCode);
    /// assert_eq!(err.exit_status().unwrap().code(), Some(128));
    /// let msg = err.to_string();
    /// assert!(msg.contains("exit code 128"), "{msg}");
    /// assert!(msg.contains("no such branch"), "{msg}");
    /// ```
    #[doc(alias = "execFileSync")]
    #[doc(alias = "check_call")]
    pub fn run(&mut self) -> Result<Output> {
        self.capture(true)
    }

    /// Runs the child (checked, as [`run`](Command::run)) and returns its stdout as UTF-8
    /// without trailing newlines, as the shell's `$(...)`: duct's and xshell's `read`.
    ///
    /// # Errors
    ///
    /// As [`run`](Command::run), plus [`ErrorKind::InvalidData`] if stdout is not UTF-8 (the
    /// bytes are in [`Error::stdout`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::Command;
    /// assert_eq!(Command::new("echo").arg("hello").read()?, "hello");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "check_output")]
    #[doc(alias = "execSync")]
    pub fn read(&mut self) -> Result<String> {
        let mut s = self.read_string()?;
        let keep = capture::trim_newlines(&s).len();
        s.truncate(keep);
        Ok(s)
    }

    /// Runs the child (checked) and returns its stdout as bytes, untouched.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::Command;
    /// assert_eq!(Command::new("printf").arg("\\377\\n").read_bytes()?, b"\xff\n");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn read_bytes(&mut self) -> Result<Vec<u8>> {
        Ok(self.run()?.stdout)
    }

    /// Runs the child (checked) and returns the lines of its stdout, as UTF-8, without their
    /// `\n` or `\r\n`.
    ///
    /// # Errors
    ///
    /// As [`read`](Command::read).
    ///
    /// # Examples
    ///
    /// ```
    /// let lines = offspring::exec("printf 'b\\na\\n' | sort").read_lines()?;
    /// assert_eq!(lines, ["a", "b"]);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn read_lines(&mut self) -> Result<Vec<String>> {
        Ok(self.read_string()?.lines().map(str::to_owned).collect())
    }

    fn read_string(&mut self) -> Result<String> {
        let argv = self.argv_for_errors();
        let out = self.run()?;
        String::from_utf8(out.stdout).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            Error::new(
                ErrorKind::InvalidData,
                Stage::Run,
                format!("stdout is not valid UTF-8 (bad byte at offset {at})"),
            )
            .with_argv(argv)
            .with_status(out.status)
            .with_output(e.into_bytes(), out.stderr)
        })
    }

    /// The runners' common path: set up stdio, spawn, run the loop, judge the result.
    fn capture(&mut self, checked: bool) -> Result<Output> {
        let argv = self.argv_for_errors();
        let fin = self.run_session(Method::Capture, &argv)?;
        judge(fin, checked && !self.run.unchecked, self.run.merge, argv)
    }

    /// [`Command::status`]: the capture loop with no pipe to read when a timeout, a cancel
    /// or input needs it, a plain wait otherwise.
    pub(crate) fn status_run(&mut self) -> Result<ExitStatus> {
        let plain = self.run.timeout.is_none()
            && self.run.cancel.is_none()
            && !matches!(self.run.input, Some(Input::Bytes(_)));
        if plain {
            self.check_method(Method::Status)?;
            let defaults = Defaults { self_reaped: true, ..Defaults::default() };
            let (child, _) = self.spawn_for_run(defaults, false)?;
            return child.wait();
        }
        let argv = self.argv_for_errors();
        let fin = self.run_session(Method::Status, &argv)?;
        judge(fin, false, false, argv).map(|out| out.status)
    }

    /// [`Command::spawn`]: the input file and the timeout are honoured, other run options
    /// are refused.
    pub(crate) fn spawn_run(&mut self) -> Result<Child> {
        self.check_method(Method::Spawn)?;
        let defaults = Defaults {
            new_group: self.run.timeout.is_some() && crate::stop::new_group_by_default(),
            ..Defaults::default()
        };
        let (child, _) = self.spawn_for_run(defaults, false)?;
        if let Some(t) = self.run.timeout {
            let policy = self.run.policy();
            child.stop_at(deadline_after(t), policy.kill_signal, policy.grace);
        }
        Ok(child)
    }

    fn check_method(&self, method: Method) -> Result<()> {
        match self.run.unsupported(method) {
            None => Ok(()),
            Some((option, hint)) => Err(Error::invalid_input(format!(
                "{} cannot honour {option}(..): {hint}",
                method.name()
            ))
            .with_argv(self.argv_for_errors())),
        }
    }

    /// Spawns for `method` and runs the capture loop to the end.
    fn run_session(&mut self, method: Method, argv: &[std::ffi::OsString]) -> Result<Finished> {
        self.check_method(method)?;
        crate::cancel::check_before_start(self.run.cancel.as_ref(), || argv)?;
        let mut defaults =
            if method == Method::Capture { Defaults::capture() } else { Defaults::default() };
        // The loop below reaps the child itself.
        defaults.self_reaped = true;
        defaults.new_group = self.run.may_stop() && crate::stop::new_group_by_default();
        let (mut child, merged) = self.spawn_for_run(defaults, self.run.merge)?;
        let stdin = child.stdin.take();
        let stdout = merged.or_else(|| child.stdout.take().map(OwnedFd::from));
        let stderr = child.stderr.take().map(OwnedFd::from);
        let data: &[u8] = match &self.run.input {
            Some(Input::Bytes(b)) => b,
            _ => &[],
        };
        let policy = self.run.policy();
        let mut session = match Session::new(
            &child,
            stdin,
            data,
            stdout,
            stderr,
            policy,
            self.run.cancel.as_ref(),
        ) {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                return Err(e);
            }
        };
        match session.pump(None) {
            Ok(_) => {
                let fin = session.finish();
                if let (Some(_), Some(tree)) = (fin.stop, child.tree()) {
                    // A stopped contained run leaves nothing behind: whatever of the tree
                    // outlived the child and its pipes goes too.
                    let _ = tree.kill();
                }
                Ok(fin)
            }
            Err(e) => {
                // Do not leave the child running unwatched with nobody reading its pipes.
                session.abandon();
                Err(e)
            }
        }
    }

    /// Spawns with this run's own stdio (the input file; with `merge`, one pipe for stdout
    /// and stderr) put in place for the spawn only: the command keeps what the user set, so
    /// it can run again, and the parent keeps no write end of the merged pipe. Returns the
    /// child and the merged pipe's read end.
    fn spawn_for_run(
        &mut self,
        mut defaults: Defaults,
        merge: bool,
    ) -> Result<(Child, Option<OwnedFd>)> {
        let mut stdin_file = None;
        match &self.run.input {
            Some(_) if self.stdin.is_some() => {
                return Err(self.conflict("both stdin and input are set; use one"));
            }
            Some(Input::Bytes(_)) => defaults.stdin = DefaultIo::Piped,
            Some(Input::File(path)) => {
                let file = File::open(path).map_err(|e| {
                    Error::os(Stage::Setup, e, "cannot open the input file")
                        .with_argv(self.argv_for_errors())
                        .with_path(path)
                })?;
                stdin_file = Some(Stdio::from(file));
            }
            None => {}
        }
        let mut merged = None;
        let mut merged_ends = None;
        if merge {
            if self.stderr.is_some() {
                return Err(self.conflict("stderr_to_stdout(true) and stderr(..) are both set"));
            }
            if !matches!(self.stdout.as_ref().map(|s| &s.0), None | Some(StdioKind::Piped)) {
                return Err(self.conflict("stderr_to_stdout(true) needs stdout to be captured"));
            }
            let setup = |e: std::io::Error| {
                Error::os(Stage::Setup, e, "creating the merged output pipe")
                    .with_argv(self.argv_for_errors())
            };
            let (rd, wr) = crate::sys::pipe::pipe().map_err(setup)?;
            let wr2 = wr.try_clone().map_err(setup)?;
            merged_ends = Some((Stdio::from(wr), Stdio::from(wr2)));
            merged = Some(rd);
        }
        let saved_stdin = stdin_file.map(|f| self.stdin.replace(f));
        let saved_out = merged_ends.map(|(o, e)| (self.stdout.replace(o), self.stderr.replace(e)));
        let spawned = self.spawn_with_defaults(defaults);
        // Put the command's own settings back; this run's ends close here, once the child
        // has its copies.
        if let Some(old) = saved_stdin {
            self.stdin = old;
        }
        if let Some((out, err)) = saved_out {
            self.stdout = out;
            self.stderr = err;
        }
        Ok((spawned?, merged))
    }

    fn conflict(&self, what: &str) -> Error {
        Error::invalid_input(what.to_owned()).with_argv(self.argv_for_errors())
    }

    /// Spawns the child of a capture that someone else drives (a [`Mux`](crate::Mux)): the
    /// child and its pipes, its input (copied), and its capture policy.
    pub(crate) fn spawn_for_mux(&mut self) -> Result<MuxParts> {
        self.check_method(Method::Capture)?;
        crate::cancel::check_before_start(self.run.cancel.as_ref(), || self.argv_for_errors())?;
        let mut defaults = Defaults::capture();
        defaults.new_group = self.run.may_stop() && crate::stop::new_group_by_default();
        // The mux polls the pidfd and reaps the child itself: it stays out of the reaper's
        // epoll set (no `epoll_ctl` pair per child) until the mux lets go of it uncollected.
        defaults.self_reaped = true;
        let (mut child, merged) = self.spawn_for_run(defaults, self.run.merge)?;
        let stdin = child.stdin.take();
        let stdout = merged.or_else(|| child.stdout.take().map(OwnedFd::from));
        let stderr = child.stderr.take().map(OwnedFd::from);
        let input = match &self.run.input {
            Some(Input::Bytes(b)) => b.clone(),
            _ => Vec::new(),
        };
        Ok(MuxParts {
            spawned: Spawned { child, stdin, stdout, stderr },
            input,
            policy: self.run.policy(),
            merged: self.run.merge,
            cancel: self.run.cancel.clone(),
        })
    }
}

/// A child spawned for a capture, with the parent's ends of its pipes.
pub(crate) struct Spawned {
    pub(crate) child: crate::child::Child,
    pub(crate) stdin: Option<crate::stdio::ChildStdin>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
}

/// What a [`Mux`](crate::Mux) needs to drive a child spawned from a [`Command`]. (The argv
/// for its errors is the child's own, [`Child::argv`].)
pub(crate) struct MuxParts {
    pub(crate) spawned: Spawned,
    pub(crate) input: Vec<u8>,
    pub(crate) policy: Policy,
    pub(crate) merged: bool,
    pub(crate) cancel: Option<CancelHandle>,
}

/// Turns a finished capture into the runner's result. `argv` is only copied into an error.
pub(crate) fn judge<A, S>(fin: Finished, checked: bool, merged: bool, argv: A) -> Result<Output>
where
    A: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let Finished { output, stop, needed_kill, policy } = fin;
    let status = output.status;
    let stopped = |kind: ErrorKind, reason: String| {
        let sig = policy.kill_signal;
        let how = if sig == Signal::KILL {
            format!("killed it with {sig}")
        } else if needed_kill {
            format!(
                "sent {sig}; it was still running after the {:?} grace period, so sent {}",
                policy.grace,
                Signal::KILL
            )
        } else {
            format!("sent {sig}")
        };
        Error::new(kind, Stage::Run, format!("{reason}; {how}; it ended with {status}"))
            .with_signal(sig, needed_kill)
    };
    let err = match stop {
        Some(Stop::Timeout) => {
            let t = policy.timeout.unwrap_or_default();
            stopped(ErrorKind::TimedOut, format!("ran longer than its {t:?} timeout"))
                .with_timeout(t)
        }
        Some(Stop::Canceled) => stopped(ErrorKind::Canceled, "canceled".to_owned()),
        Some(Stop::Limit(stream)) => {
            let limit = match stream {
                Stream::Stdout => policy.limits[0],
                Stream::Stderr => policy.limits[1],
            }
            .unwrap_or_default();
            stopped(
                ErrorKind::OutputLimit,
                format!("{stream} went over its limit of {limit} bytes (max_buffer)"),
            )
            .with_limit(stream, limit)
        }
        None if checked && !status.success() => {
            let kind =
                if status.signal().is_some() { ErrorKind::Signaled } else { ErrorKind::ExitCode };
            Error::new(kind, Stage::Run, status.to_string())
        }
        None => return Ok(output),
    };
    Err(err
        .with_argv(argv)
        .with_status(status)
        .with_run(&output)
        .with_merged_output(merged)
        .with_usage(output.resource_usage())
        .with_output(output.stdout, output.stderr))
}
