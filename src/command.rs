//! [`Command`]: the builder for a child process, with std's vocabulary.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::child::{Child, DropPolicy};
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::exit_status::ExitStatus;
use crate::reaper::{self, Proc};
use crate::signal::Signal;
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout, Stdio, StdioKind};
use crate::sys::cstr::{CStringArray, Envp, PidSlot};
use crate::sys::spawn::{
    self as sys_spawn, CgroupFds, ChildStage, FdPlan, PathTaken, PreExec, Rlimit, SpawnRequest,
};
use crate::tree::{Cgroup, Containment, Tree};
use crate::validate;

/// A number for one of the child's file descriptors, for [`Command::fd`]: 3 or above (0, 1
/// and 2 are set with [`stdin`](Command::stdin), [`stdout`](Command::stdout) and
/// [`stderr`](Command::stderr)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildFd(RawFd);

impl ChildFd {
    /// The child fd with this number, if it is at least 3 and below 2^20.
    pub fn new(n: u32) -> Option<ChildFd> {
        (3..(1 << 20)).contains(&n).then_some(ChildFd(n as RawFd))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0 as u32
    }
}

/// Which process group a child joins, for [`Command::process_group`].
///
/// Without a choice, a child stays in this process's group, except in a run that may stop it
/// (a [`timeout`](Command::timeout), also on `spawn` and `status`, a
/// [`cancel_with`](Command::cancel_with) or a [`max_buffer`](Command::max_buffer) that kills):
/// that one gets a new group when this process is not the foreground process group of a
/// terminal (see the crate docs, "Stopping a command").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessGroup {
    /// A new group, led by the child: its group id is its pid.
    New,
    /// The existing group with this id.
    Join(crate::Pid),
    /// This process's own group, as std does: the child gets the terminal's `Ctrl-C` and job
    /// control with this process, also in a run that may stop it.
    Inherit,
}

/// A resource the child's limits can be set on, for [`Command::rlimit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resource {
    /// `RLIMIT_CORE`: the largest core file, in bytes.
    CoreFileSize,
    /// `RLIMIT_CPU`: CPU time, in seconds.
    CpuTime,
    /// `RLIMIT_FSIZE`: the largest file the child may create, in bytes.
    FileSize,
    /// `RLIMIT_NOFILE`: one more than the highest fd number the child may open.
    OpenFiles,
    /// `RLIMIT_NPROC`: processes (threads) for the child's real user.
    Processes,
    /// `RLIMIT_AS`: the address space, in bytes.
    AddressSpace,
    /// `RLIMIT_STACK`: the main thread's stack, in bytes.
    Stack,
}

/// A builder for a child process: the program, its arguments, environment, working
/// directory, stdio and process settings.
///
/// The same vocabulary as [`std::process::Command`]: `new`, `arg`/`args`,
/// `env`/`envs`/`env_remove`/`env_clear`, `current_dir`, `stdin`/`stdout`/`stderr`, then
/// `spawn`, `status` or `output`. What is different:
///
/// - Bad input is refused before anything is spawned, with an error that names the item: a
///   NUL byte in the program, an argument (with its index), an env key or value, or the
///   working directory; an env key that is empty or contains `=`; an empty program.
/// - The program is looked up on the **child's** `PATH` (the one this command sets, if it
///   sets one) in the parent, and empty or relative `PATH` entries (such as `.`) are not
///   searched unless [`search_relative_path`](Command::search_relative_path) says so. A
///   program containing a `/` is used as given; a relative one is resolved against the
///   child's working directory, as `execve` after `chdir` would.
/// - The child gets fds 0-2 and the fds given with [`fd`](Command::fd), and nothing else,
///   even an fd that other code in the process opened without `O_CLOEXEC` (turn that off
///   with [`close_fds(false)`](Command::close_fds)).
/// - The child starts with an empty signal mask and `SIGPIPE` at its default action.
///
/// # Examples
///
/// ```
/// use offspring::Command;
/// let out = Command::new("sh").args(["-c", "echo $GREETING"]).env("GREETING", "hi").output()?;
/// assert_eq!(out.stdout, b"hi\n");
/// # Ok::<(), offspring::Error>(())
/// ```
pub struct Command {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    arg0: Option<OsString>,
    env_clear: bool,
    env: BTreeMap<OsString, Option<OsString>>,
    cwd: Option<PathBuf>,
    pub(crate) stdin: Option<Stdio>,
    pub(crate) stdout: Option<Stdio>,
    pub(crate) stderr: Option<Stdio>,
    extra_fds: Vec<(ChildFd, Stdio)>,
    /// Socket activation: named fds passed at 3, 4, ... with `LISTEN_*` set.
    listen_fds: Vec<(String, Stdio)>,
    process_group: Option<ProcessGroup>,
    new_session: bool,
    close_fds: bool,
    search_relative: bool,
    /// Signal numbers reset to `SIG_DFL` in the child, kept raw so a spawn passes them as
    /// they are.
    sig_default: Vec<i32>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<u32>>,
    umask: Option<u32>,
    rlimits: Vec<Rlimit>,
    parent_death_signal: Option<Signal>,
    pub(crate) pre_exec: Vec<PreExec>,
    drop_policy: DropPolicy,
    containment: Option<Containment>,
    force_path: Option<PathTaken>,
    ipc: Option<crate::ipc::Options>,
    /// Capture options for the buffered runners (`src/exec.rs`).
    pub(crate) run: crate::exec::RunOptions,
}

impl Command {
    /// A command that runs `program`, with no arguments, the parent's environment and working
    /// directory, and stdio inherited (for `spawn` and `status`) or captured (for `output`).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            arg0: None,
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdin: None,
            stdout: None,
            stderr: None,
            extra_fds: Vec::new(),
            listen_fds: Vec::new(),
            process_group: None,
            new_session: false,
            close_fds: true,
            search_relative: false,
            sig_default: vec![Signal::PIPE.as_raw()],
            uid: None,
            gid: None,
            groups: None,
            umask: None,
            rlimits: Vec::new(),
            parent_death_signal: None,
            pre_exec: Vec::new(),
            drop_policy: DropPolicy::Reap,
            containment: None,
            force_path: None,
            ipc: None,
            run: Default::default(),
        }
    }

    /// Adds one argument. It reaches the child as exactly one `argv` element: no shell, no
    /// splitting, no globbing.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets `argv[0]`, the name the child sees for itself (Node's `argv0`), without changing
    /// which program runs.
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Command {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env.insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Starts the child with an empty environment, plus what `env` adds afterwards.
    pub fn env_clear(&mut self) -> &mut Command {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Sets the child's working directory (Node's `cwd`).
    ///
    /// A nonexistent directory is reported as [`ErrorKind::NotFound`] at
    /// [`Stage::Chdir`], naming the directory, never confused with a missing program.
    #[doc(alias = "cwd")]
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Sets the child's stdin (default: inherit, or `/dev/null` for `output`).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.stdin = Some(cfg.into());
        self
    }

    /// Sets the child's stdout (default: inherit, or a pipe for `output`).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.stdout = Some(cfg.into());
        self
    }

    /// Sets the child's stderr (default: inherit, or a pipe for `output`).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.stderr = Some(cfg.into());
        self
    }

    /// Gives the child an extra fd at number `child_fd` (3 or above), like an entry of
    /// Node's `stdio` array or Go's `ExtraFiles`. With [`Stdio::piped`] the parent gets the
    /// other end of a socket pair from [`Child::take_fd`]. Setting the same number twice
    /// keeps the last.
    ///
    /// Any fd numbers work, including swaps (the parent's fd 4 as the child's 3 and its fd 3
    /// as the child's 4): offspring moves the sources out of the way first.
    pub fn fd(&mut self, child_fd: ChildFd, cfg: impl Into<Stdio>) -> &mut Command {
        self.extra_fds.retain(|(n, _)| *n != child_fd);
        self.extra_fds.push((child_fd, cfg.into()));
        self
    }

    /// Passes `fd` to the child in systemd's socket-activation convention
    /// (`sd_listen_fds(3)`): the first such fd at 3, the next at 4, and so on, with
    /// `LISTEN_FDS` (how many), `LISTEN_FDNAMES` (the names, `:`-separated) and `LISTEN_PID`
    /// set in the child's environment. `LISTEN_PID` must be the child's own pid, which
    /// exists only after the fork: the environment is built beforehand with room for it and
    /// the child writes its pid there itself, without allocating, before `execve`. Values
    /// of these three variables in the parent's environment are not passed on.
    ///
    /// The command keeps `fd` and passes it again on every spawn, so several children (a
    /// [`Supervisor`](crate::Supervisor)'s workers) can accept connections on one listening
    /// socket, and a restarted child finds the same socket: no connection is refused while
    /// it restarts. Such a spawn takes the vfork or fork path (`posix_spawn` cannot run code
    /// in the child).
    ///
    /// The name must be non-empty, at most 255 bytes, without `:` or NUL (checked at spawn).
    /// Another fd set with [`Command::fd`] at one of these numbers is an error at spawn.
    ///
    /// ```
    /// use offspring::Command;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let out = Command::new("sh")
    ///     .args(["-c", r#"echo "$LISTEN_FDS $LISTEN_FDNAMES $([ "$LISTEN_PID" = $$ ] && echo mine)""#])
    ///     .listen_fd("http", listener)
    ///     .output()?;
    /// assert_eq!(out.stdout, b"1 http mine\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "LISTEN_FDS")]
    #[doc(alias = "sd_listen_fds")]
    pub fn listen_fd(&mut self, name: &str, fd: impl Into<OwnedFd>) -> &mut Command {
        self.listen_fds.push((name.to_owned(), Stdio::from(fd.into())));
        self
    }

    /// Gives the child a message channel, as Node's `fork()` does: a Unix socket pair whose
    /// child end is the fd [`Options::fd`](crate::ipc::Options::fd) (3 by default, through
    /// [`fd`](Command::fd)), named to the child by `NODE_CHANNEL_FD` and
    /// `NODE_CHANNEL_SERIALIZATION_MODE`. Any program can take it: a Node script
    /// (`process.send`, `process.on('message')`), or a Rust program that calls
    /// [`ipc::attach`](crate::ipc::attach). The parent takes its half with
    /// [`Child::take_channel`]; see the [`ipc`](crate::ipc) module.
    ///
    /// Each spawn makes a new socket pair and sets the two variables in that child's
    /// environment only: the command itself does not change ([`get_envs`](Command::get_envs)
    /// shows what it showed before), and spawning it again gives the next child its own
    /// channel. The channel's values win over `NODE_CHANNEL_FD` or
    /// `NODE_CHANNEL_SERIALIZATION_MODE` set with [`env`](Command::env) (they would name the
    /// wrong fd or framing), also after [`env_clear`](Command::env_clear). A channel this
    /// process inherited is never passed on, with or without this call. Another fd set with
    /// [`fd`](Command::fd) or [`listen_fd`](Command::listen_fd) at the channel's number is
    /// an error at spawn.
    ///
    /// ```
    /// use offspring::{ipc, Command};
    /// let mut child = Command::new("node")
    ///     .args(["-e", "process.on('message', m => { process.send({got: m}); process.disconnect() })"])
    ///     .ipc(ipc::Options::new())
    ///     .spawn();
    /// # let Ok(mut child) = child else { return Ok(()) }; // no node on this machine
    /// let (tx, rx) = child.take_channel().unwrap();
    /// tx.send(br#"{"n":1}"#)?;
    /// assert_eq!(rx.recv()?.as_bytes(), br#"{"got":{"n":1}}"#);
    /// assert!(child.wait()?.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "fork")]
    pub fn ipc(&mut self, options: crate::ipc::Options) -> &mut Command {
        self.ipc = Some(options);
        self
    }

    /// Puts the child in a process group (`setpgid`): [`ProcessGroup::New`] makes it the
    /// leader of a new group whose id is its pid; [`ProcessGroup::Join`] puts it in an
    /// existing group. A child that leads its own group can be signalled together with its
    /// descendants ([`Child::signal_group`]), and a timeout kills the whole group.
    #[doc(alias = "setpgid")]
    pub fn process_group(&mut self, group: ProcessGroup) -> &mut Command {
        self.process_group = Some(group);
        self
    }

    /// Starts the child in a new session (`setsid`), detached from the controlling terminal,
    /// as the leader of a new process group: Node's `detached: true`.
    #[doc(alias = "detached")]
    #[doc(alias = "setsid")]
    pub fn new_session(&mut self, yes: bool) -> &mut Command {
        self.new_session = yes;
        self
    }

    /// Whether to close, in the child, every fd other than 0-2 and those given with
    /// [`fd`](Command::fd) (default `true`, as Python's `close_fds=True`). offspring's own
    /// fds are `O_CLOEXEC` either way; this also covers fds that other code opened without it.
    /// Turn it off only for a program that relies on inheriting such fds.
    pub fn close_fds(&mut self, yes: bool) -> &mut Command {
        self.close_fds = yes;
        self
    }

    /// Whether the `PATH` lookup may use empty and relative `PATH` entries (such as `.`),
    /// which resolve against the current directory (default `false`: Go's `ErrDot` lesson).
    pub fn search_relative_path(&mut self, yes: bool) -> &mut Command {
        self.search_relative = yes;
        self
    }

    /// Also resets `signal` to its default action in the child (`SIGPIPE` always is).
    /// Ignored signals are otherwise inherited across exec, as POSIX says (that is how
    /// `nohup` works).
    pub fn reset_signal(&mut self, signal: Signal) -> &mut Command {
        if !self.sig_default.contains(&signal.as_raw()) {
            self.sig_default.push(signal.as_raw());
        }
        self
    }

    /// Runs the child as this user id (`setuid`). Changing the uid also drops supplementary
    /// groups unless [`groups`](Command::groups) sets them. Uses the vfork path.
    pub fn uid(&mut self, uid: u32) -> &mut Command {
        self.uid = Some(uid);
        self
    }

    /// Runs the child with this group id (`setgid`). Uses the vfork path.
    pub fn gid(&mut self, gid: u32) -> &mut Command {
        self.gid = Some(gid);
        self
    }

    /// Sets the child's supplementary groups (`setgroups`). Uses the vfork path.
    pub fn groups(&mut self, groups: &[u32]) -> &mut Command {
        self.groups = Some(groups.to_vec());
        self
    }

    /// Sets the child's file-mode creation mask. Uses the vfork path.
    pub fn umask(&mut self, mask: u32) -> &mut Command {
        self.umask = Some(mask);
        self
    }

    /// Sets a resource limit in the child (`setrlimit`; `u64::MAX` means unlimited). Uses the
    /// vfork path.
    pub fn rlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> &mut Command {
        let resource = crate::sys::rlimit_resource(resource);
        self.rlimits.retain(|r| r.resource != resource);
        self.rlimits.push(Rlimit { resource, soft, hard });
        self
    }

    /// Asks the kernel to send `signal` to the child when the thread that spawned it exits
    /// (`PR_SET_PDEATHSIG`, Linux). Uses the vfork path.
    ///
    /// Linux ties this to the spawning *thread*, not the process: spawn from a thread that
    /// lives as long as the child should.
    pub fn parent_death_signal(&mut self, signal: Signal) -> &mut Command {
        self.parent_death_signal = Some(signal);
        self
    }

    /// Kills the child with `SIGKILL` when its [`Child`] is dropped while it still runs
    /// (default: the child keeps running and the reaper collects it when it exits).
    pub fn kill_on_drop(&mut self, yes: bool) -> &mut Command {
        self.drop_policy = if yes { DropPolicy::Kill } else { DropPolicy::Reap };
        self
    }

    /// Sends `SIGTERM` to the child when its [`Child`] is dropped while it still runs, and
    /// `SIGKILL` after `grace` if it has not exited by then. `Drop` does not block: the
    /// reaper thread sends the `SIGKILL`.
    pub fn terminate_on_drop(&mut self, grace: Duration) -> &mut Command {
        self.drop_policy = DropPolicy::Terminate(grace);
        self
    }

    /// Starts the child in a cgroup v2 of its own (default `false`), so that it and
    /// everything it starts, even a daemon that calls `setsid` or double-forks, can be killed,
    /// signalled, frozen and waited for together through [`Child::tree`]. Timeouts, output
    /// limits, cancels, [`kill_on_drop`](Command::kill_on_drop) and
    /// [`terminate_on_drop`](Command::terminate_on_drop) then act on the whole tree.
    ///
    /// The cgroup is created under this process's own cgroup; the spawn fails with an error
    /// that says why and what to do where that is impossible (no cgroup v2, not writable). Use
    /// [`containment`](Command::containment) to name another parent or to fall back to a
    /// process group instead. The child takes the vfork path (`CLONE_INTO_CGROUP`, Linux 5.7)
    /// or the fork path (it joins before anything else), never `posix_spawn`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use offspring::Command;
    /// let child = Command::new("make").arg("test").contain(true).spawn()?;
    /// let tree = child.tree().expect("contained").clone();
    /// child.wait()?;
    /// tree.kill()?; // whatever the build left running
    /// tree.wait()?;
    /// # Ok::<(), offspring::Error>(())
    /// ```
    pub fn contain(&mut self, yes: bool) -> &mut Command {
        self.containment = yes.then(Containment::new);
        self
    }

    /// Contains the child as `containment` says: under a named parent cgroup, or with a
    /// process-group fallback. See [`contain`](Command::contain).
    pub fn containment(&mut self, containment: Containment) -> &mut Command {
        self.containment = Some(containment);
        self
    }

    #[doc(hidden)]
    /// Test switch: always use the fork path.
    pub fn force_fork_path(&mut self, yes: bool) -> &mut Command {
        self.force_path = yes.then_some(PathTaken::Fork);
        self
    }

    #[doc(hidden)]
    /// Test switch: prefer the named spawn path, `"posix_spawn"`, `"vfork"` or `"fork"`; any
    /// other name restores the default order. A path that cannot apply a setting (or is
    /// missing here) gives way to the next one, as in the default order.
    pub fn force_spawn_path(&mut self, path: &str) -> &mut Command {
        self.force_path = match path {
            "posix_spawn" => Some(PathTaken::PosixSpawn),
            "vfork" => Some(PathTaken::Vfork),
            "fork" => Some(PathTaken::Fork),
            _ => None,
        };
        self
    }

    /// The program, as given to [`new`](Command::new).
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, without the program.
    pub fn get_args(&self) -> impl ExactSizeIterator<Item = &OsStr> {
        self.args.iter().map(|a| a.as_os_str())
    }

    /// The environment changes: `(key, Some(value))` for a set, `(key, None)` for a removal.
    pub fn get_envs(&self) -> impl ExactSizeIterator<Item = (&OsStr, Option<&OsStr>)> {
        self.env.iter().map(|(k, v)| (k.as_os_str(), v.as_deref()))
    }

    /// The working directory, if one is set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The program and arguments as one line, quoted so that it pastes into a POSIX shell.
    pub fn to_command_line(&self) -> String {
        crate::quote::display_argv(&self.argv_for_errors())
    }

    pub(crate) fn argv_for_errors(&self) -> Vec<OsString> {
        std::iter::once(self.program.clone()).chain(self.args.iter().cloned()).collect()
    }

    /// The `setpgid` argument for the child: `Some(0)` for a new group, `Some(pgid)` to join
    /// one, `None` to stay in this process's group.
    fn group_for(&self, defaults: Defaults) -> Option<i32> {
        match self.process_group {
            Some(ProcessGroup::New) => Some(0),
            Some(ProcessGroup::Join(pgid)) => Some(pgid.as_raw_nonzero().get()),
            Some(ProcessGroup::Inherit) => None,
            None => defaults.new_group.then_some(0),
        }
    }

    /// The cgroup for a contained spawn, or the reason a best-effort one fell back to a
    /// process group.
    fn make_cgroup(&self) -> Result<(Option<Cgroup>, Option<Error>)> {
        let Some(c) = &self.containment else { return Ok((None, None)) };
        match Cgroup::create(c) {
            Ok(cg) => Ok((Some(cg), None)),
            Err(e) if c.is_best_effort() => Ok((None, Some(e))),
            Err(e) => Err(e),
        }
    }

    /// Starts the child and returns its handle, with the parent's ends of any pipes.
    ///
    /// # Errors
    ///
    /// Bad input ([`ErrorKind::InvalidInput`]), a program that is not found, not executable
    /// or not runnable ([`ErrorKind::NotFound`], [`ErrorKind::PermissionDenied`],
    /// [`ErrorKind::ExecFormat`]), a missing working directory (`NotFound` at
    /// [`Stage::Chdir`]), `E2BIG`, and running out of fds or processes. A failed spawn leaves
    /// no fd open and no zombie behind. [`ErrorKind::InvalidInput`] naming an option that
    /// `spawn` cannot honour: [`input`](Command::input) (write to `child.stdin` or use
    /// [`Child::communicate`]), [`cancel_with`](Command::cancel_with) and the capture options
    /// (`max_buffer`, `on_overflow`, `stderr_to_stdout`, `drain_timeout`).
    ///
    /// [`timeout`](Command::timeout) is honoured: the reaper thread sends the
    /// [kill signal](Command::kill_signal) to the child (to its group when it leads one) at
    /// the deadline, and `SIGKILL` after the [grace period](Command::force_kill_after). Such
    /// a child gets a new process group as a capturing run's does (see [`ProcessGroup`]).
    /// [`input_file`](Command::input_file) is honoured too.
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, Signal};
    /// use std::time::Duration;
    /// let child = Command::new("sleep").arg("10").timeout(Duration::from_millis(100)).spawn()?;
    /// assert_eq!(child.wait()?.signal(), Some(Signal::TERM));
    /// # Ok::<(), offspring::Error>(())
    /// ```
    #[doc(alias = "posix_spawn")]
    pub fn spawn(&mut self) -> Result<Child> {
        self.spawn_run()
    }

    /// Runs the child with inherited stdio (unless set otherwise) and waits for it.
    ///
    /// Non-zero exit is not an error here: inspect the [`ExitStatus`]. Honours
    /// [`timeout`](Command::timeout) (with [`kill_signal`](Command::kill_signal) and
    /// [`force_kill_after`](Command::force_kill_after)), [`cancel_with`](Command::cancel_with),
    /// [`input`](Command::input) and [`input_file`](Command::input_file).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn); [`ErrorKind::TimedOut`] or [`ErrorKind::Canceled`] when
    /// the child was stopped (the error holds its status); [`ErrorKind::InvalidInput`] naming
    /// an option that only the capturing runners honour (`max_buffer`, `on_overflow`,
    /// `stderr_to_stdout`, `drain_timeout`).
    ///
    /// # Examples
    ///
    /// ```
    /// use offspring::{Command, ErrorKind};
    /// use std::time::Duration;
    /// let err = Command::new("sleep").arg("10").timeout(Duration::from_millis(100)).status().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// assert!(err.exit_status().unwrap().signal().is_some());
    /// ```
    #[doc(alias = "spawnSync")]
    pub fn status(&mut self) -> Result<ExitStatus> {
        self.status_run()
    }

    /// Starts the child with the given defaults for unset stdio.
    pub(crate) fn spawn_with_defaults(&mut self, defaults: Defaults) -> Result<Child> {
        self.spawn_inner(defaults).map_err(|e| {
            if e.has_argv() {
                e
            } else {
                e.with_argv(self.argv_for_errors())
            }
        })
    }

    fn validate(&self) -> Result<()> {
        validate::check_program(&self.program)?;
        if let Some(a0) = &self.arg0 {
            validate::check_arg(0, a0)?;
        }
        for (i, a) in self.args.iter().enumerate() {
            validate::check_arg(i + 1, a)?;
        }
        for (k, v) in &self.env {
            validate::check_env(k, v.as_deref())?;
        }
        if let Some(dir) = &self.cwd {
            validate::check_cwd(dir)?;
        }
        for (i, (name, _)) in self.listen_fds.iter().enumerate() {
            let target = 3 + i as RawFd;
            if name.is_empty() || name.len() > 255 || name.contains([':', '\0']) {
                return Err(Error::invalid_input(format!(
                    "listen_fd {i} (fd {target}): the name {name:?} must be 1-255 bytes \
                     without ':' or NUL"
                )));
            }
            if self.extra_fds.iter().any(|(n, _)| n.0 == target) {
                return Err(Error::invalid_input(format!(
                    "Command::fd({target}) collides with listen_fd {i} ({name:?}), which \
                     passes its socket at fd {target}"
                )));
            }
            if self.ipc.as_ref().is_some_and(|o| o.get_fd().0 == target) {
                return Err(Error::invalid_input(format!(
                    "listen_fd {i} ({name:?}) collides with the IPC channel, which \
                     Command::ipc passes at fd {target} (see ipc::Options::fd)"
                )));
            }
        }
        if let Some(target) = self.ipc.as_ref().map(|o| o.get_fd().0) {
            if self.extra_fds.iter().any(|(n, _)| n.0 == target) {
                return Err(Error::invalid_input(format!(
                    "Command::fd({target}) collides with the IPC channel, which \
                     Command::ipc passes at fd {target} (see ipc::Options::fd)"
                )));
            }
        }
        Ok(())
    }

    /// The child's `PATH`: set or removed by this command, or the parent's.
    fn child_path_var(&self) -> Option<OsString> {
        match self.env.get(OsStr::new("PATH")) {
            Some(v) => v.clone(),
            None if self.env_clear => None,
            None => std::env::var_os("PATH"),
        }
    }

    /// The child's environment as an `envp` array, or `None` when the command leaves the
    /// parent's environment unchanged, so that it is passed as it is, without a copy.
    ///
    /// The variables that name this spawn's fds (`LISTEN_*`, `NODE_CHANNEL_*`) are added
    /// here, for this spawn only; they replace values of the same names set with
    /// [`env`](Command::env) or inherited. A channel this process inherited itself
    /// (`NODE_CHANNEL_*` in its own environment) is never passed on.
    fn envp(&self) -> Option<(CStringArray, Option<PidSlot>)> {
        const LISTEN_VARS: [&str; 3] = ["LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"];
        const CHANNEL_VARS: [&str; 2] = ["NODE_CHANNEL_FD", "NODE_CHANNEL_SERIALIZATION_MODE"];
        let listen = !self.listen_fds.is_empty();
        let channel = self.ipc.as_ref().map(|o| (o.get_fd().get().to_string(), o.mode_env()));
        let is_channel_var = |k: &OsStr| CHANNEL_VARS.iter().any(|v| k == OsStr::new(v));
        let inherited_channel =
            !self.env_clear && CHANNEL_VARS.iter().any(|v| std::env::var_os(v).is_some());
        if !self.env_clear
            && self.env.is_empty()
            && !listen
            && channel.is_none()
            && !inherited_channel
        {
            return None;
        }
        let ours = |k: &OsStr| {
            (listen && LISTEN_VARS.iter().any(|v| k == OsStr::new(v)))
                || (channel.is_some() && is_channel_var(k))
        };
        let inherited: Vec<(OsString, OsString)> =
            if self.env_clear { Vec::new() } else { std::env::vars_os().collect() };
        let mut envp = CStringArray::with_capacity(inherited.len() + self.env.len() + 2);
        let mut push = |k: &OsStr, v: &OsStr| {
            let mut kv = Vec::with_capacity(k.len() + v.len() + 2);
            kv.extend_from_slice(k.as_bytes());
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            // Validated: neither part has a NUL.
            if let Ok(c) = CString::new(kv) {
                envp.push(c);
            }
        };
        for (k, v) in &inherited {
            // The parent's environment cannot hold a NUL; a `=` in a key cannot come from
            // the kernel either.
            if !self.env.contains_key(k) && !ours(k) && !is_channel_var(k) {
                push(k, v);
            }
        }
        for (k, v) in &self.env {
            if let Some(v) = v {
                if !ours(k) {
                    push(k, v);
                }
            }
        }
        if let Some((fd, mode)) = &channel {
            push(OsStr::new(CHANNEL_VARS[0]), OsStr::new(fd));
            push(OsStr::new(CHANNEL_VARS[1]), OsStr::new(mode));
        }
        if !listen {
            return Some((envp, None));
        }
        let names: Vec<&str> = self.listen_fds.iter().map(|(n, _)| n.as_str()).collect();
        push(OsStr::new("LISTEN_FDS"), OsStr::new(&self.listen_fds.len().to_string()));
        push(OsStr::new("LISTEN_FDNAMES"), OsStr::new(&names.join(":")));
        let slot = envp.push_pid_slot(b"LISTEN_PID");
        Some((envp, Some(slot)))
    }

    fn spawn_inner(&mut self, defaults: Defaults) -> Result<Child> {
        self.validate()?;
        let resolved = lookup(
            &self.program,
            self.child_path_var().as_deref(),
            self.search_relative,
            self.cwd.as_deref(),
        )
        // The error quotes the whole command, not the program alone.
        .map_err(|e| e.with_argv(self.argv_for_errors()))?;
        let group = self.group_for(defaults);

        let cstr = |s: &OsStr| CString::new(s.as_bytes()).expect("validated: no NUL");
        let program = cstr(resolved.as_os_str());
        let mut argv = CStringArray::with_capacity(self.args.len() + 1);
        argv.push(cstr(self.arg0.as_deref().unwrap_or(&self.program)));
        for a in &self.args {
            argv.push(cstr(a));
        }
        let envp = self.envp();
        let cwd = self.cwd.as_deref().map(|d| cstr(d.as_os_str()));
        let (cgroup, fallback) = self.make_cgroup()?;
        // A best-effort containment that found no cgroup: a process group of its own.
        let process_group = match (self.new_session, &fallback) {
            (true, _) => None,
            (false, Some(_)) => Some(0),
            (false, None) => group,
        };

        // The child's fds: (target, source); the parent keeps the other ends of pipes.
        let mut io = ChildIo::default();
        let mut sources: Vec<(RawFd, Source<'_>)> = Vec::new();
        let std_cfgs = [
            (0, &self.stdin, defaults.stdin),
            (1, &self.stdout, defaults.stdout),
            (2, &self.stderr, defaults.stderr),
        ];
        for (target, cfg, default) in std_cfgs {
            match want(cfg.as_ref(), default) {
                Want::Inherit => {}
                Want::Null => sources.push((target, Source::Null)),
                Want::Fd(fd) => sources.push((target, Source::Borrowed(fd))),
                Want::Piped => {
                    let (rd, wr) = crate::sys::pipe::pipe()
                        .map_err(|e| Error::os(Stage::Setup, e, "creating a pipe"))?;
                    let theirs = match target {
                        0 => {
                            io.stdin = Some(ChildStdin::new(wr));
                            rd
                        }
                        1 => {
                            io.stdout = Some(ChildStdout::new(rd));
                            wr
                        }
                        _ => {
                            io.stderr = Some(ChildStderr::new(rd));
                            wr
                        }
                    };
                    sources.push((target, Source::Owned(theirs)));
                }
            }
        }
        let listen =
            self.listen_fds.iter().enumerate().map(|(i, (_, s))| (ChildFd(3 + i as RawFd), s));
        // The IPC channel is one more socket pair, set up for this spawn only: the command
        // itself is left as it is.
        let channel_end = Stdio::piped();
        let channel = self.ipc.as_ref().map(|o| (o.get_fd(), &channel_end));
        let extra = self.extra_fds.iter().map(|(n, s)| (*n, s)).chain(listen).chain(channel);
        for (child_fd, cfg) in extra {
            let target = child_fd.0;
            match want(Some(cfg), DefaultIo::Inherit) {
                Want::Inherit => {
                    // The parent's fd with the same number, if it is open.
                    let own = crate::sys::dup_cloexec(target).map_err(|e| {
                        Error::os(Stage::Setup, e, format!("passing the parent's fd {target}"))
                    })?;
                    sources.push((target, Source::Owned(own)));
                }
                Want::Null => sources.push((target, Source::Null)),
                Want::Fd(fd) => sources.push((target, Source::Borrowed(fd))),
                Want::Piped => {
                    let (mine, theirs) = crate::sys::pipe::socketpair()
                        .map_err(|e| Error::os(Stage::Setup, e, "creating a socket pair"))?;
                    io.extra.push((child_fd, mine));
                    sources.push((target, Source::Owned(theirs)));
                }
            }
        }
        let null = if sources.iter().any(|(_, s)| matches!(s, Source::Null)) {
            Some(
                sys_spawn::open_dev_null()
                    .map_err(|e| Error::os(Stage::Setup, e, "opening /dev/null"))?,
            )
        } else {
            None
        };
        let max_target = sources.iter().map(|(t, _)| *t).max().unwrap_or(2).max(2);
        // Move every source above every target so that the child's dup2 sequence never
        // overwrites a source it still needs (swaps, a pipe that happens to sit at fd 1).
        fn source_fd<'a>(src: &'a Source<'_>, null: &'a Option<OwnedFd>) -> BorrowedFd<'a> {
            match src {
                Source::Borrowed(fd) => *fd,
                Source::Owned(fd) => fd.as_fd(),
                Source::Null => null.as_ref().expect("opened above").as_fd(),
            }
        }
        let mut relocated: Vec<Option<OwnedFd>> = Vec::with_capacity(sources.len());
        for (_, src) in &sources {
            let fd = source_fd(src, &null);
            relocated.push(if fd.as_raw_fd() <= max_target {
                Some(rustix::io::fcntl_dupfd_cloexec(fd, max_target + 1).map_err(|e| {
                    Error::os(Stage::Setup, e.into(), "moving an fd out of the child's range")
                })?)
            } else {
                None
            });
        }
        let plans: Vec<FdPlan<'_>> = sources
            .iter()
            .zip(&relocated)
            .map(|((target, src), moved)| FdPlan {
                source: moved.as_ref().map_or_else(|| source_fd(src, &null), |m| m.as_fd()),
                target: *target,
            })
            .collect();

        let mut req = SpawnRequest {
            program: &program,
            argv: &argv,
            envp: envp.as_ref().map_or(Envp::Inherit, |(e, _)| Envp::Built(e)),
            cwd: cwd.as_deref(),
            fds: &plans,
            max_target,
            process_group,
            new_session: self.new_session,
            close_fds: self.close_fds,
            sig_default: &self.sig_default,
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.as_deref(),
            umask: self.umask,
            rlimits: &self.rlimits,
            parent_death_signal: self.parent_death_signal.map(|s| s.as_raw()),
            pre_exec: &mut self.pre_exec,
            force: self.force_path,
            pid_slot: envp.as_ref().and_then(|(_, slot)| *slot),
            report_fd: -1,
            cgroup: cgroup.as_ref().map(|cg| CgroupFds { dir: cg.dir_fd(), procs: cg.procs_fd() }),
            cgroup_placed: false,
            reset_handlers: false,
        };
        let spawned = match sys_spawn::spawn(&mut req) {
            Ok(s) => s,
            Err(e) => return Err(self.spawn_error(e, &resolved, cgroup.as_ref())),
        };
        // The child has its copies now; closing ours (when these go out of scope) makes EOF
        // work.
        drop(plans);
        drop(relocated);
        drop(sources);

        let pid = spawned.pid;
        let abandon = |e: Error| {
            // We cannot track this child: stop it and reap it here, so nothing leaks.
            let _ = crate::sys::wait::kill(pid, Signal::KILL.as_raw());
            crate::sys::wait::reap_blocking(pid);
            e
        };
        let proc = match reaper::open_pidfd(pid, spawned.pidfd) {
            Ok(pidfd) => {
                let proc = Arc::new(Proc::new(pid, pidfd));
                reaper::register(&proc, !defaults.self_reaped).map_err(abandon)?;
                proc
            }
            // Already exited and reaped by someone else (SIGCHLD ignored): nothing to track.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => {
                Arc::new(Proc::vanished(pid))
            }
            Err(e) => {
                return Err(abandon(Error::os(Stage::Setup, e, "opening a pidfd for the child")))
            }
        };
        let group = (self.new_session || process_group == Some(0)).then_some(pid);
        let mut child =
            Child::new(proc, io, group, self.drop_policy, spawned.path, self.argv_for_errors());
        child.set_containment(cgroup.map(Tree::new), fallback);
        if let Some(o) = &self.ipc {
            let fd = child.take_fd(o.get_fd()).expect("the channel's fd was set up as piped");
            let pair = crate::ipc::channel(fd, o)
                .map_err(|e| Error::os(Stage::Setup, e, "starting the IPC channel"))?;
            child.set_channel(pair);
        }
        Ok(child)
    }

    fn spawn_error(
        &self,
        e: sys_spawn::SpawnError,
        resolved: &Path,
        cgroup: Option<&Cgroup>,
    ) -> Error {
        let argv = self.argv_for_errors();
        if let (Some(ChildStage::Cgroup), Some(cg)) = (e.stage, cgroup) {
            use rustix::io::Errno;
            let why = match Errno::from_raw_os_error(e.errno) {
                Errno::AGAIN => {
                    "cannot start the child in its cgroup: a pids.max limit (or \
                                 the system's process limit) is reached"
                }
                Errno::BUSY | Errno::OPNOTSUPP => {
                    "cannot start the child in its cgroup: the parent cgroup enables \
                     controllers in cgroup.subtree_control and this cgroup cannot hold \
                     processes (the no-internal-processes rule)"
                }
                _ => "cannot start the child in its cgroup",
            };
            let stage = if e.in_parent { Stage::Setup } else { Stage::ChildSetup };
            return Error::errno(stage, e.errno, why).with_argv(argv).with_path(cg.path());
        }
        if e.in_parent {
            return Error::errno(Stage::Setup, e.errno, "starting the child").with_argv(argv);
        }
        let stage = match e.stage {
            Some(ChildStage::Chdir) => Stage::Chdir,
            Some(ChildStage::Exec) => Stage::Exec,
            Some(ChildStage::Setup | ChildStage::Cgroup) => Stage::ChildSetup,
            Some(ChildStage::HookPanicked) => {
                return Error::new(
                    ErrorKind::Io,
                    Stage::ChildSetup,
                    "a pre_exec hook panicked; the child aborted before exec",
                )
                .with_argv(argv)
                .with_path(resolved);
            }
            // posix_spawn reports the errno of its clone, its file actions, chdir and execve
            // alike. Errors of process creation come first: EAGAIN / ENOMEM / ENOSYS (which
            // execve of a well-formed program does not return), and EPERM for a program that
            // is an executable file (clone3 refused by a seccomp filter). Then a directory
            // that is not usable means chdir; anything else is the exec.
            None => match e.errno {
                crate::sys::EAGAIN | crate::sys::ENOMEM | crate::sys::ENOSYS => {
                    return Error::errno(Stage::Setup, e.errno, "starting the child")
                        .with_argv(argv);
                }
                crate::sys::EPERM
                    if crate::sys::executable_file(resolved).unwrap_or(false)
                        && self.cwd.as_deref().map_or(true, crate::sys::is_searchable_dir) =>
                {
                    return Error::errno(Stage::Setup, e.errno, "starting the child")
                        .with_argv(argv);
                }
                _ => match &self.cwd {
                    Some(dir) if !crate::sys::is_searchable_dir(dir) => Stage::Chdir,
                    _ => Stage::Exec,
                },
            },
        };
        let (what, path) = match stage {
            Stage::Chdir => (
                "cannot change into the working directory".to_string(),
                self.cwd.clone().unwrap_or_default(),
            ),
            Stage::Exec => (exec_message(e.errno), resolved.to_owned()),
            _ => ("setting up the child failed".to_string(), resolved.to_owned()),
        };
        Error::errno(stage, e.errno, what).with_argv(argv).with_path(path)
    }
}

fn exec_message(errno: i32) -> String {
    let k = ErrorKind::from_errno(errno);
    match k {
        ErrorKind::NotFound => "no such program".into(),
        ErrorKind::PermissionDenied => "the program is not executable".into(),
        ErrorKind::ExecFormat => {
            "the kernel cannot run this file (a script without a #! line?)".into()
        }
        ErrorKind::ArgumentListTooLong => "the arguments and environment are too large".into(),
        _ => "cannot execute the program".into(),
    }
}

/// A source fd for the child: the command's own (it keeps it for the next spawn, as std's
/// `Command` does), one created for this spawn, or the shared `/dev/null`.
#[derive(Debug)]
enum Source<'a> {
    Borrowed(BorrowedFd<'a>),
    Owned(OwnedFd),
    Null,
}

/// What a stdio setting asks for, with the command's fd borrowed.
enum Want<'a> {
    Inherit,
    Null,
    Piped,
    Fd(BorrowedFd<'a>),
}

fn want(cfg: Option<&Stdio>, default: DefaultIo) -> Want<'_> {
    match cfg.map(|s| &s.0) {
        Some(StdioKind::Inherit) => Want::Inherit,
        Some(StdioKind::Null) => Want::Null,
        Some(StdioKind::Piped) => Want::Piped,
        Some(StdioKind::Fd(fd)) => Want::Fd(fd.as_fd()),
        None => match default {
            DefaultIo::Inherit => Want::Inherit,
            DefaultIo::Null => Want::Null,
            DefaultIo::Piped => Want::Piped,
        },
    }
}

/// The parent's ends of a new child's pipes.
#[derive(Debug, Default)]
pub(crate) struct ChildIo {
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) stderr: Option<ChildStderr>,
    pub(crate) extra: Vec<(ChildFd, OwnedFd)>,
}

/// What unset stdio becomes: inherit for `spawn`/`status`; null/piped/piped for `output`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Defaults {
    pub(crate) stdin: DefaultIo,
    pub(crate) stdout: DefaultIo,
    pub(crate) stderr: DefaultIo,
    /// A new process group unless the command chose one.
    pub(crate) new_group: bool,
    /// The spawner waits for the child at once and reaps it itself (the runners): the
    /// reaper does not watch its pidfd unless the `Child` is dropped uncollected (see
    /// [`reaper::register`]).
    pub(crate) self_reaped: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum DefaultIo {
    #[default]
    Inherit,
    Null,
    Piped,
}

impl Defaults {
    /// The defaults of `output`: stdin from `/dev/null`, stdout and stderr captured.
    pub(crate) fn capture() -> Defaults {
        Defaults {
            stdin: DefaultIo::Null,
            stdout: DefaultIo::Piped,
            stderr: DefaultIo::Piped,
            new_group: false,
            self_reaped: false,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("command_line", &self.to_command_line())
            .field("env_clear", &self.env_clear)
            .field("env", &self.env)
            .field("cwd", &self.cwd)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("extra_fds", &self.extra_fds)
            .field("listen_fds", &self.listen_fds)
            .field("ipc", &self.ipc)
            .field("process_group", &self.process_group)
            .field("new_session", &self.new_session)
            .finish_non_exhaustive()
    }
}

/// The `PATH` used when the child's environment has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Finds `program` the way `execvp` in the child would, but in the parent: against `path`
/// (the child's `PATH`), skipping empty and relative entries unless `search_relative`, which
/// then resolve against the child's working directory `cwd` (the parent's if `None`).
pub(crate) fn lookup(
    program: &OsStr,
    path: Option<&OsStr>,
    search_relative: bool,
    cwd: Option<&Path>,
) -> Result<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut denied: Option<PathBuf> = None;
    for dir in path.as_bytes().split(|&b| b == b':') {
        let relative = dir.first() != Some(&b'/');
        if relative && !search_relative {
            continue;
        }
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let candidate = dir.join(program);
        // A relative candidate is checked where the child will exec it: after its chdir.
        let on_disk = match cwd {
            Some(cwd) if relative => cwd.join(&candidate),
            _ => candidate.clone(),
        };
        match crate::sys::executable_file(&on_disk) {
            Ok(true) => return Ok(candidate),
            Ok(false) => {
                denied.get_or_insert(candidate);
            }
            Err(_) => {}
        }
    }
    let argv = [program.to_owned()];
    match denied {
        Some(p) => {
            Err(Error::errno(Stage::Lookup, crate::sys::EACCES, "found on PATH but not executable")
                .with_argv(argv)
                .with_path(p))
        }
        None => Err(Error::errno(
            Stage::Lookup,
            crate::sys::ENOENT,
            format!("not on PATH (searched {})", searched(path.as_bytes(), search_relative)),
        )
        .with_argv(argv)),
    }
}

/// The `PATH` entries a lookup searched, each once, in order, shortened to about 160 bytes
/// with a count of the rest.
fn searched(path: &[u8], search_relative: bool) -> String {
    const SHOWN: usize = 160;
    let mut seen: Vec<&[u8]> = Vec::new();
    for dir in path.split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        if (search_relative || dir.first() == Some(&b'/')) && !seen.contains(&dir) {
            seen.push(dir);
        }
    }
    let mut out = String::new();
    for (i, dir) in seen.iter().enumerate() {
        let dir = String::from_utf8_lossy(dir);
        if !out.is_empty() && out.len() + dir.len() > SHOWN {
            out.push_str(&format!(" and {} more", seen.len() - i));
            break;
        }
        if !out.is_empty() {
            out.push(':');
        }
        out.push_str(&dir);
    }
    if out.is_empty() {
        out.push_str("no absolute entry");
    }
    out
}

/// Finds a program on this process's `PATH`, as the shell's `which` does, skipping empty and
/// relative entries.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] if no entry has it, [`ErrorKind::PermissionDenied`] if one has it
/// but it is not an executable file.
///
/// # Examples
///
/// ```
/// let sh = offspring::which("sh")?;
/// assert!(sh.is_absolute());
/// assert_eq!(offspring::which("no-such-program-here").unwrap_err().kind(), offspring::ErrorKind::NotFound);
/// # Ok::<(), offspring::Error>(())
/// ```
pub fn which(program: impl AsRef<OsStr>) -> Result<PathBuf> {
    let program = program.as_ref();
    validate::check_program(program)?;
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return match crate::sys::executable_file(&p) {
            Ok(true) => Ok(p),
            Ok(false) => {
                Err(Error::errno(Stage::Lookup, crate::sys::EACCES, "not an executable file")
                    .with_argv([program])
                    .with_path(p))
            }
            Err(e) => Err(Error::os(Stage::Lookup, e, "").with_argv([program]).with_path(p)),
        };
    }
    lookup(program, std::env::var_os("PATH").as_deref(), false, None)
}
