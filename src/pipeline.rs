//! [`Pipeline`]: `a | b | c` without a shell. Real OS pipes between the children (the bytes never
//! pass through the parent), each stage's exit status, `pipefail`, one call that stops them
//! all, and the capture options of a single command on the pipeline as a whole, run by the same
//! loop as [`Command::output`].

use std::borrow::Cow;
use std::ffi::OsString;
use std::fmt;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::cancel::CancelHandle;
use crate::capture::{Delivery, Finished, Output, Overflow, Policy, Run, Session};
use crate::child::{Child, Termination};
use crate::command::{Command, DefaultIo, Defaults};
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::exit_status::ExitStatus;
use crate::mux::MuxId;
use crate::signal::Signal;
use crate::stdio::{ChildStdin, ChildStdout, Stdio};

/// Children connected stdout to stdin, as the shell's `a | b | c`, with no shell.
///
/// Built with `|` on [`Command`]s (or [`Pipeline::new`] and [`pipe`](Pipeline::pipe)); the
/// stages keep their own settings (arguments, environment, directory, stderr). The first
/// stage's stdin and the last stage's stdout are the caller's: set them on those commands
/// (inherit, a file, an fd) or leave them to the runner ([`output`](Pipeline::output) pipes
/// the last stdout to the parent and gives the first stdin `/dev/null` or the
/// [`input`](Pipeline::input)). Setting the stdin of a later stage or the stdout of an earlier
/// one is an error: those are the pipes.
///
/// The capture options apply to the pipeline as a whole (those set on the stages' own commands
/// are not used): one [`timeout`](Pipeline::timeout)
/// for all stages, a [`max_buffer`](Pipeline::max_buffer) on the last stage's stdout and the
/// stages' shared stderr. When a stage is stopped (timeout, limit, cancel), every stage is,
/// with the [kill signal](Pipeline::kill_signal) and then `SIGKILL` after the grace period.
///
/// A stage that fails to spawn leaves nothing behind: the stages already started are killed
/// and reaped, and every pipe is closed before the error is returned.
///
/// # Examples
///
/// ```
/// use offspring::cmd;
/// let out = (cmd!("printf", "b\na\nb\n") | cmd!("sort") | cmd!("uniq")).output()?;
/// assert_eq!(out.stdout, b"a\nb\n");
/// assert!(out.statuses.iter().all(|s| s.success()));
///
/// // pipefail: the rightmost failing stage decides, as `set -o pipefail` in bash.
/// let out = (cmd!("false") | cmd!("cat")).output()?;
/// assert_eq!(out.status.code(), Some(1));
/// assert_eq!(out.failed_stage(), Some(0));
/// let out = (cmd!("false") | cmd!("cat")).pipefail(false).output()?;
/// assert!(out.status.success()); // the shell's default: the last stage decides
/// # Ok::<(), offspring::Error>(())
/// ```
#[doc(alias = "pipe")]
#[doc(alias = "|")]
pub struct Pipeline {
    stages: Vec<Command>,
    pipefail: bool,
    input: Option<Vec<u8>>,
    timeout: Option<Duration>,
    kill_signal: Option<Signal>,
    grace: Option<Duration>,
    drain: Option<Duration>,
    limit: Option<usize>,
    overflow: Overflow,
    cancel: Option<CancelHandle>,
    pipe_capacity: usize,
}

/// What a finished [`Pipeline`] printed and how each stage ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineOutput {
    /// The pipeline's status: with [`pipefail`](Pipeline::pipefail) (the default) the status
    /// of the rightmost stage that did not succeed, or success; without, the last stage's.
    pub status: ExitStatus,
    /// Each stage's own status, in order.
    pub statuses: Vec<ExitStatus>,
    /// What the last stage wrote to stdout.
    pub stdout: Vec<u8>,
    /// What the stages wrote to stderr (those whose stderr was left to the runner), in the
    /// order it arrived.
    pub stderr: Vec<u8>,
}

impl PipelineOutput {
    /// The index of the rightmost stage that did not succeed.
    pub fn failed_stage(&self) -> Option<usize> {
        self.statuses.iter().rposition(|s| !s.success())
    }

    /// stdout as UTF-8.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidData`] if it is not valid UTF-8.
    pub fn stdout_str(&self) -> Result<&str> {
        std::str::from_utf8(&self.stdout).map_err(|e| {
            Error::new(
                ErrorKind::InvalidData,
                Stage::Run,
                format!("stdout is not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
            )
        })
    }
}

/// The status of a whole pipeline: the rightmost failure with `pipefail`, else the last stage's.
fn pipeline_status(statuses: &[ExitStatus], pipefail: bool) -> ExitStatus {
    let last = *statuses.last().expect("a pipeline has stages");
    if pipefail {
        statuses.iter().rev().find(|s| !s.success()).copied().unwrap_or(last)
    } else {
        last
    }
}

impl std::ops::BitOr<Command> for Command {
    type Output = Pipeline;

    /// `a | b`: a [`Pipeline`].
    fn bitor(self, next: Command) -> Pipeline {
        Pipeline::new(self).pipe(next)
    }
}

impl std::ops::BitOr<Command> for Pipeline {
    type Output = Pipeline;

    /// `(a | b) | c`: one more stage.
    fn bitor(self, next: Command) -> Pipeline {
        self.pipe(next)
    }
}

impl Pipeline {
    /// A pipeline of one stage; add more with [`pipe`](Pipeline::pipe) or `|`.
    pub fn new(first: Command) -> Pipeline {
        Pipeline {
            stages: vec![first],
            pipefail: true,
            input: None,
            timeout: None,
            kill_signal: None,
            grace: None,
            drain: None,
            limit: None,
            overflow: Overflow::Kill,
            cancel: None,
            pipe_capacity: DEFAULT_PIPE_CAPACITY,
        }
    }

    /// Adds `next`, reading what the current last stage writes.
    pub fn pipe(mut self, next: Command) -> Pipeline {
        self.stages.push(next);
        self
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[Command] {
        &self.stages
    }

    /// Whether a failing stage fails the pipeline (`set -o pipefail`; the default here, unlike
    /// the shell's). Without it, only the last stage's status counts.
    pub fn pipefail(&mut self, yes: bool) -> &mut Pipeline {
        self.pipefail = yes;
        self
    }

    /// Writes `bytes` to the first stage's stdin, as [`Command::input`].
    pub fn input(&mut self, bytes: impl Into<Vec<u8>>) -> &mut Pipeline {
        self.input = Some(bytes.into());
        self
    }

    /// Stops every stage if the pipeline runs longer than `timeout`, as
    /// [`Command::timeout`]; the run fails with [`ErrorKind::TimedOut`].
    pub fn timeout(&mut self, timeout: Duration) -> &mut Pipeline {
        self.timeout = Some(timeout);
        self
    }

    /// The signal that stops the stages (default `SIGTERM`), as [`Command::kill_signal`].
    pub fn kill_signal(&mut self, signal: Signal) -> &mut Pipeline {
        self.kill_signal = Some(signal);
        self
    }

    /// The grace period before `SIGKILL`, as [`Command::force_kill_after`].
    pub fn force_kill_after(&mut self, grace: Duration) -> &mut Pipeline {
        self.grace = Some(grace);
        self
    }

    /// Bounds draining after the stages exit, as [`Command::drain_timeout`].
    pub fn drain_timeout(&mut self, timeout: Duration) -> &mut Pipeline {
        self.drain = Some(timeout);
        self
    }

    /// Limits the captured stdout and stderr to `bytes` each, as [`Command::max_buffer`].
    pub fn max_buffer(&mut self, bytes: usize) -> &mut Pipeline {
        self.limit = Some(bytes);
        self
    }

    /// What going over the limit does, as [`Command::on_overflow`].
    pub fn on_overflow(&mut self, overflow: Overflow) -> &mut Pipeline {
        self.overflow = overflow;
        self
    }

    /// Stops every stage when `handle` is cancelled, as [`Command::cancel_with`].
    pub fn cancel_with(&mut self, handle: &CancelHandle) -> &mut Pipeline {
        self.cancel = Some(handle.clone());
        self
    }

    /// The capacity of the pipes between stages, in bytes (default 256 KiB; the kernel's own
    /// default is 64 KiB). Larger pipes let each stage write more before it waits for the
    /// next (`cat` moves 128 KiB at a time, more than a default pipe holds), so the stages
    /// switch less often. Measured with `head -c 1G /dev/zero | cat | cat | wc -c` on two
    /// cores: 256 KiB pipes cut the context switches to about a third and the stages' CPU time
    /// by about a fifth against 64 KiB ones; 1 MiB saved a little more CPU but counts four
    /// times as much against the user's pipe quota (`/proc/sys/fs/pipe-user-pages-soft`,
    /// 64 MiB for all of a user's pipes together, past which the kernel gives new pipes
    /// two pages), so the default stops at 256 KiB: 256 such pipes fit in the quota.
    ///
    /// Linux only (`fcntl(F_SETPIPE_SZ)`), and best effort: the kernel rounds `bytes` up to a
    /// power of two pages; a value above `/proc/sys/fs/pipe-max-size` (1 MiB unless the
    /// administrator changed it) is clamped to it, so `usize::MAX` means "as large as allowed";
    /// where the kernel refuses (`EPERM` once the user's pipes hold more than
    /// `/proc/sys/fs/pipe-user-pages-soft`), the pipe keeps its default capacity and the
    /// pipeline runs as usual. `0` leaves the pipes as the kernel makes them, with no extra
    /// system call. Elsewhere than on Linux the setting is ignored.
    ///
    /// Only the pipes between stages are resized. The pipes to the parent (the first stage's
    /// stdin, the last stage's stdout, the shared stderr) keep the kernel's default: most
    /// captures are small and bound by latency, where a system call per pipe would cost more
    /// than it saves, and the parent reads in chunks that a default pipe already fills.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::cmd;
    /// let mut p = cmd!("head", "-c", "1000000", "/dev/zero") | cmd!("cat") | cmd!("wc", "-c");
    /// assert_eq!(p.pipe_capacity(1 << 20).read()?, "1000000");
    /// // Larger than the system allows: clamped, not an error.
    /// assert_eq!(p.pipe_capacity(usize::MAX).read()?, "1000000");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "F_SETPIPE_SZ")]
    pub fn pipe_capacity(&mut self, bytes: usize) -> &mut Pipeline {
        self.pipe_capacity = bytes;
        self
    }

    fn policy(&self) -> Policy {
        let d = Policy::default();
        Policy {
            timeout: self.timeout,
            kill_signal: self.kill_signal.unwrap_or(d.kill_signal),
            grace: self.grace.unwrap_or(d.grace),
            drain: self.drain.unwrap_or(d.drain),
            limits: [self.limit, self.limit],
            overflow: self.overflow,
        }
    }

    /// The command line, as a shell would read it (for errors and logs).
    pub fn to_command_line(&self) -> String {
        self.stages.iter().map(Command::to_command_line).collect::<Vec<_>>().join(" | ")
    }

    fn argv(&self) -> Vec<OsString> {
        vec![OsString::from(self.to_command_line())]
    }

    /// Starts every stage, connected by pipes; stdio of the ends as the commands set it
    /// (inherited by default). See [`PipelineChild`].
    ///
    /// # Errors
    ///
    /// A stage that cannot be spawned: its error, naming the stage. The stages already
    /// started are killed and reaped first; no pipe stays open.
    pub fn spawn(&mut self) -> Result<PipelineChild> {
        let children = self.spawn_stages(Defaults::default(), None)?;
        Ok(PipelineChild::new(children))
    }

    /// Runs the pipeline to its end and captures the last stage's stdout and the stages'
    /// stderr (where the commands leave them to the runner); a non-zero status is data.
    ///
    /// # Errors
    ///
    /// A spawn error; [`ErrorKind::TimedOut`], [`ErrorKind::OutputLimit`] or
    /// [`ErrorKind::Canceled`] if the stages were stopped (the error keeps the output so
    /// far); an I/O error of the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{cmd, ErrorKind};
    /// use std::time::Duration;
    /// let mut p = cmd!("yes") | cmd!("cat") | cmd!("sleep", "30");
    /// let err = p.timeout(Duration::from_millis(100)).output().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn output(&mut self) -> Result<PipelineOutput> {
        self.capture(false)
    }

    /// As [`output`](Pipeline::output), but a pipeline status that is not success is an error
    /// ([`ErrorKind::ExitCode`] or [`ErrorKind::Signaled`]) naming the stage.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{cmd, exec, ErrorKind};
    /// let err = (cmd!("echo", "x") | exec("exit 3") | cmd!("cat")).run().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ExitCode);
    /// assert!(err.to_string().contains("stage 2 of 3"), "{err}");
    /// ```
    pub fn run(&mut self) -> Result<PipelineOutput> {
        self.capture(true)
    }

    /// Runs the pipeline (checked, as [`run`](Pipeline::run)) and returns its stdout as UTF-8
    /// without trailing newlines.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::cmd;
    /// let n = (cmd!("printf", "a\nb\nc\n") | cmd!("wc", "-l")).read()?;
    /// assert_eq!(n.trim(), "3");
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn read(&mut self) -> Result<String> {
        let out = self.run()?;
        let s = out.stdout_str()?;
        Ok(crate::capture::trim_newlines(s).to_owned())
    }

    fn capture(&mut self, checked: bool) -> Result<PipelineOutput> {
        crate::cancel::check_before_start(self.cancel.as_ref(), || self.argv())?;
        let n = self.stages.len();
        let setup = |e: std::io::Error| Error::os(Stage::Setup, e, "creating the stderr pipe");
        let (err_rd, err_wr) = crate::sys::pipe::pipe().map_err(setup)?;
        let mut defaults = Defaults::capture();
        if self.input.is_some() {
            defaults.stdin = DefaultIo::Piped;
        }
        let mut children = self.spawn_stages(defaults, Some(&err_wr))?;
        drop(err_wr);
        let policy = self.policy();
        let input: &[u8] = self.input.as_deref().unwrap_or(&[]);
        let stdin = children[0].stdin.take();
        let mut stdout = children[n - 1].stdout.take().map(OwnedFd::from);
        let mut err_rd = Some(err_rd);
        let mut runs = Vec::with_capacity(n);
        let mut stdin = Some(stdin);
        for (i, child) in children.iter().enumerate() {
            let last = i == n - 1;
            let run = Run::new(
                MuxId(i as u64),
                child,
                if i == 0 { stdin.take().flatten() } else { None },
                Cow::Borrowed(if i == 0 { input } else { &[] }),
                if last { stdout.take() } else { None },
                if last { err_rd.take() } else { None },
                policy,
                Delivery::Buffered,
            );
            match run {
                Ok(r) => runs.push(r),
                Err(e) => {
                    kill_all(&children);
                    return Err(e);
                }
            }
        }
        let argv = self.argv();
        let mut session = Session::with_runs(runs, self.cancel.as_ref())?;
        if let Err(e) = session.pump(None) {
            session.abandon();
            drop(session);
            kill_all(&children);
            return Err(e.with_argv(argv));
        }
        let stop = session.stopped();
        let mut fins = session.finish_all();
        drop(session);
        children.clear();
        let statuses: Vec<ExitStatus> = fins.iter().map(|f| f.output.status).collect();
        let status = pipeline_status(&statuses, self.pipefail);
        let last: Finished = fins.pop().expect("a pipeline has stages");
        let needed_kill = last.needed_kill || fins.iter().any(|f| f.needed_kill);
        let mut output: Output = last.output;
        output.status = status;
        let fin = Finished { output, stop, needed_kill, policy };
        let failed = statuses.iter().rposition(|s| !s.success());
        match crate::exec::judge(fin, checked && failed.is_some(), false, argv) {
            Ok(out) => {
                Ok(PipelineOutput { status, statuses, stdout: out.stdout, stderr: out.stderr })
            }
            Err(e) => Err(match (stop, failed) {
                (None, Some(i)) => {
                    let stage = self.stages[i].to_command_line();
                    e.with_context(format!("stage {} of {n} ({stage}) failed", i + 1))
                }
                _ => e,
            }),
        }
    }

    /// Spawns the stages in order, each stdout piped into the next stdin. With `stderr`, the
    /// stages whose stderr is unset write theirs to it. On a failure, kills and reaps what was
    /// started.
    fn spawn_stages(&mut self, ends: Defaults, stderr: Option<&OwnedFd>) -> Result<Vec<Child>> {
        let n = self.stages.len();
        let argv = self.argv();
        for (i, cmd) in self.stages.iter().enumerate() {
            let bad = |what: &str| {
                Error::invalid_input(format!(
                    "stage {} of {n} ({}) sets its {what}, which the pipeline connects",
                    i + 1,
                    cmd.to_command_line()
                ))
                .with_argv(argv.clone())
            };
            if i > 0 && cmd.stdin.is_some() {
                return Err(bad("stdin"));
            }
            if i + 1 < n && cmd.stdout.is_some() {
                return Err(bad("stdout"));
            }
        }
        if self.input.is_some() && self.stages[0].stdin.is_some() {
            return Err(Error::invalid_input(
                "the pipeline has input and its first stage sets its stdin; use one",
            )
            .with_argv(argv));
        }
        let mut children: Vec<Child> = Vec::with_capacity(n);
        let mut next_stdin: Option<OwnedFd> = None;
        // Read once per pipeline, not per pipe; only when some pipe will be resized.
        let capacity = match self.pipe_capacity {
            0 => 0,
            _ if n < 2 => 0,
            bytes => bytes.min(crate::sys::pipe::pipe_max_size()),
        };
        for i in 0..n {
            let last = i + 1 == n;
            let result = (|| {
                let cmd = &mut self.stages[i];
                let mut defaults = Defaults {
                    stdin: if i == 0 { ends.stdin } else { DefaultIo::Inherit },
                    stdout: if last { ends.stdout } else { DefaultIo::Inherit },
                    stderr: ends.stderr,
                    new_group: false,
                    self_reaped: false,
                };
                let mut pipe_wr = None;
                if !last {
                    let (rd, wr) = crate::sys::pipe::pipe().map_err(|e| {
                        Error::os(Stage::Setup, e, "creating a pipe between stages")
                    })?;
                    if capacity > 0 {
                        // Best effort (see `pipe_capacity`): a refusal keeps the default.
                        let _ = crate::sys::pipe::set_pipe_capacity(&wr, capacity);
                    }
                    cmd.stdout = Some(Stdio::from(wr));
                    pipe_wr = Some(rd);
                }
                if let Some(rd) = next_stdin.take() {
                    cmd.stdin = Some(Stdio::from(rd));
                }
                let own_stderr = match stderr {
                    Some(fd) if cmd.stderr.is_none() => {
                        let fd = fd
                            .try_clone()
                            .map_err(|e| Error::os(Stage::Setup, e, "sharing the stderr pipe"))?;
                        cmd.stderr = Some(Stdio::from(fd));
                        true
                    }
                    _ => false,
                };
                if stderr.is_some() {
                    defaults.stderr = DefaultIo::Inherit;
                }
                let spawned = cmd.spawn_with_defaults(defaults);
                // The pipes' ends go with the spawn: the command keeps none of them.
                if i > 0 {
                    cmd.stdin = None;
                }
                if !last {
                    cmd.stdout = None;
                }
                if own_stderr {
                    cmd.stderr = None;
                }
                let child = spawned?;
                Ok((child, pipe_wr))
            })();
            match result {
                Ok((child, rd)) => {
                    children.push(child);
                    next_stdin = rd;
                }
                Err(e) => {
                    let e: Error = e;
                    kill_all(&children);
                    return Err(e.with_context(format!("spawning stage {} of {n}", i + 1)));
                }
            }
        }
        Ok(children)
    }
}

/// The capacity [`Pipeline::pipe_capacity`] gives the pipes between stages unless told
/// otherwise; chosen by measurement (see its docs).
const DEFAULT_PIPE_CAPACITY: usize = 256 << 10;

/// Kills every child and waits for it: nothing of a failed pipeline stays running.
fn kill_all(children: &[Child]) {
    for c in children {
        let _ = c.kill();
    }
    for c in children {
        let _ = c.wait();
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("command_line", &self.to_command_line())
            .field("pipefail", &self.pipefail)
            .field("pipe_capacity", &self.pipe_capacity)
            .finish_non_exhaustive()
    }
}

/// A running [`Pipeline`]: its stages, the first stage's stdin and the last stage's stdout
/// when they were piped.
///
/// # Drop behavior
///
/// Dropping it drops every stage's [`Child`], with its drop policy (by default the stages run
/// on and the reaper collects them), and closes the parent's pipe ends.
///
/// # Examples
///
/// ```
/// use offspring::{cmd, Signal, Stdio};
/// let mut last = cmd!("cat");
/// last.stdout(Stdio::null());
/// let mut p = (cmd!("yes") | cmd!("cat") | last).spawn()?;
/// p.kill()?;
/// let statuses = p.wait()?;
/// // `yes` is killed; a later stage may see end of file and exit first.
/// assert_eq!(statuses[0].signal(), Some(Signal::KILL));
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Debug)]
pub struct PipelineChild {
    children: Vec<Child>,
    /// The first stage's stdin, if it was piped.
    pub stdin: Option<ChildStdin>,
    /// The last stage's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
}

impl PipelineChild {
    fn new(mut children: Vec<Child>) -> PipelineChild {
        let stdin = children[0].stdin.take();
        let stdout = children.last_mut().and_then(|c| c.stdout.take());
        PipelineChild { children, stdin, stdout }
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[Child] {
        &self.children
    }

    /// Waits for every stage and returns their statuses, in order. Closes the first stage's
    /// stdin first, if it is still here.
    ///
    /// # Errors
    ///
    /// A wait error of a stage.
    pub fn wait(&mut self) -> Result<Vec<ExitStatus>> {
        self.stdin = None;
        self.children.iter().map(Child::wait).collect()
    }

    /// Sends `signal` to every stage as a timeout does: its cgroup tree when it is contained,
    /// else its process group if it leads one, and its descendants.
    ///
    /// # Errors
    ///
    /// The first error of a stage; the others are still signalled.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let mut first = None;
        for c in &self.children {
            let r = crate::stop::stop_command(c, signal);
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Kills every stage with `SIGKILL`.
    pub fn kill(&self) -> Result<()> {
        self.signal(Signal::KILL)
    }

    /// Sends `SIGTERM` to every stage, waits up to one `grace` period for all of them, then
    /// kills the rest; returns each stage's [`Termination`].
    ///
    /// # Errors
    ///
    /// A signal or wait error of a stage.
    pub fn terminate(&self, grace: Duration) -> Result<Vec<Termination>> {
        self.signal(Signal::TERM)?;
        let deadline = crate::child::deadline_after(grace);
        let mut out = Vec::with_capacity(self.children.len());
        for c in &self.children {
            out.push(match c.wait_deadline(deadline)? {
                Some(status) => Termination { status, needed_kill: false },
                None => {
                    crate::stop::stop_command(c, Signal::KILL)?;
                    Termination { status: c.wait()?, needed_kill: true }
                }
            });
        }
        Ok(out)
    }
}
