//! Starting a child: `posix_spawn` first, `fork` + `execve` where `posix_spawn` cannot do the
//! job.
//!
//! The caller (`command.rs`) hands over a [`SpawnRequest`] whose every byte is already
//! allocated: the resolved program path, argv and envp as C strings, the fd plan with every
//! source fd numbered above every target fd (so `dup2` in order never overwrites a source
//! that is still needed), and the settings. Nothing here allocates after `fork`.
//!
//! # Which path
//!
//! [`spawn`] tries the vfork path (`vfork.rs`: `clone3(CLONE_VM | CLONE_VFORK)`), then glibc's
//! `posix_spawn` (which also uses `clone(CLONE_VM | CLONE_VFORK)`), then `fork`. The first
//! two cost the same whatever the parent's memory, where `fork` copies page tables (47x
//! slower with a 1 GiB heap, measured here), so `fork` serves only `pre_exec` hooks and what
//! neither can do. [`posix_spawn_cannot`] is the one list of what `posix_spawn` cannot do:
//! a user hook, credentials, umask, rlimits, a parent-death signal, a `LISTEN_PID` to fill
//! in (socket activation), a cgroup to start in (containment), or a libc that lacks
//! `posix_spawn_file_actions_addchdir_np` / `addclosefrom_np`.
//!
//! # The child's signal state
//!
//! Both paths give the child an empty signal mask and reset the signals in
//! `SpawnRequest::sig_default` (at least `SIGPIPE`, which Rust ignores in every program) to
//! `SIG_DFL`. Handlers that are set in the parent become `SIG_DFL` at `execve` anyway.
//!
//! # Errors
//!
//! `posix_spawn` reports the child's `execve` (or `chdir`) errno itself and reaps the failed
//! child; it does not say which step failed (the caller works that out). On the fork path the
//! child writes `errno` and the failing stage over a `CLOEXEC` pipe and exits with 127; the
//! parent reads 0 bytes (exec succeeded) or 8 bytes (failure), and on failure reaps the
//! child before returning the error, so no zombie is left behind. The pipe's write end is
//! moved above every target fd, so the fd plan can neither close nor overwrite it. A hook
//! that panics is reported over the same pipe, then the child aborts.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::raw::{c_char, c_int};
use std::sync::OnceLock;

use super::cstr::{CStringArray, Envp, PidSlot};

/// A user hook run in the child between fork and exec.
pub(crate) type PreExec = Box<dyn FnMut() -> io::Result<()> + Send + Sync>;

/// One fd the child gets: `source` (in the parent) becomes `target` (in the child).
#[derive(Debug)]
pub(crate) struct FdPlan<'a> {
    pub(crate) source: BorrowedFd<'a>,
    pub(crate) target: RawFd,
}

/// A resource limit to set in the child (`setrlimit`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rlimit {
    pub(crate) resource: c_int,
    pub(crate) soft: u64,
    pub(crate) hard: u64,
}

/// Everything a spawn needs, prepared before any fork.
pub(crate) struct SpawnRequest<'a> {
    pub(crate) program: &'a CStr,
    pub(crate) argv: &'a CStringArray,
    pub(crate) envp: Envp<'a>,
    pub(crate) cwd: Option<&'a CStr>,
    /// The child's fds 0.. and extras; fds 0-2 absent here are inherited from the parent.
    pub(crate) fds: &'a [FdPlan<'a>],
    /// The highest target fd (at least 2).
    pub(crate) max_target: RawFd,
    /// `Some(0)`: a new group led by the child; `Some(pgid)`: join that group.
    pub(crate) process_group: Option<i32>,
    pub(crate) new_session: bool,
    /// Close every fd that is not 0-2 or a target.
    pub(crate) close_fds: bool,
    pub(crate) sig_default: &'a [c_int],
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) groups: Option<&'a [u32]>,
    pub(crate) umask: Option<u32>,
    pub(crate) rlimits: &'a [Rlimit],
    pub(crate) parent_death_signal: Option<c_int>,
    pub(crate) pre_exec: &'a mut [PreExec],
    /// Test switch: take this path (the vfork path falls back to fork where unavailable).
    pub(crate) force: Option<PathTaken>,
    /// Socket activation: where the child writes its own pid into its `LISTEN_PID`.
    pub(crate) pid_slot: Option<PidSlot>,
    /// The fork path's failure-report pipe, kept open in the child when closing fds; -1.
    pub(crate) report_fd: RawFd,
    /// Containment: the child starts in this cgroup (see `src/tree.rs`).
    pub(crate) cgroup: Option<CgroupFds<'a>>,
    /// Set by the vfork path while `clone3` places the child (`CLONE_INTO_CGROUP`), so the
    /// child does not join again.
    pub(crate) cgroup_placed: bool,
    /// Reset every caught signal to `SIG_DFL` in the child before unblocking signals (the
    /// fork path; the vfork path has the kernel do it with `CLONE_CLEAR_SIGHAND`).
    pub(crate) reset_handlers: bool,
}

/// The cgroup a contained child starts in: its directory (for `CLONE_INTO_CGROUP`) and its
/// `cgroup.procs` open for writing (the fork path's child writes `0` there first).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CgroupFds<'a> {
    pub(crate) dir: BorrowedFd<'a>,
    pub(crate) procs: BorrowedFd<'a>,
}

/// Where in the child a spawn failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChildStage {
    /// fds, credentials, limits, session, signals or the user hook.
    Setup,
    /// `chdir` to the working directory.
    Chdir,
    /// `execve`.
    Exec,
    /// Joining the child's cgroup (containment).
    Cgroup,
    /// A `pre_exec` hook panicked; the child aborted.
    HookPanicked,
}

/// A failed spawn: the errno, and the stage when known exactly.
#[derive(Debug)]
pub(crate) struct SpawnError {
    pub(crate) errno: i32,
    /// `None` when `posix_spawn` reported the error: it does not say whether `chdir` or
    /// `execve` failed, so the caller works that out.
    pub(crate) stage: Option<ChildStage>,
    /// Failed in the parent before a child existed (pipe, fork).
    pub(crate) in_parent: bool,
}

impl SpawnError {
    fn parent(err: io::Error) -> SpawnError {
        SpawnError { errno: err.raw_os_error().unwrap_or(libc::EIO), stage: None, in_parent: true }
    }
}

/// Which spawn path ran, for tests and for `Debug` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathTaken {
    PosixSpawn,
    Vfork,
    Fork,
}

/// A started child, with its pidfd when the spawn path produced one atomically.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: rustix::process::Pid,
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) path: PathTaken,
}

/// Why `posix_spawn` cannot do this request, or `None` if it can. The one list of such
/// conditions.
pub(crate) fn posix_spawn_cannot(req: &SpawnRequest<'_>) -> Option<&'static str> {
    if !req.pre_exec.is_empty() {
        Some("pre_exec hook")
    } else if req.uid.is_some() || req.gid.is_some() || req.groups.is_some() {
        Some("credentials")
    } else if req.umask.is_some() {
        Some("umask")
    } else if !req.rlimits.is_empty() {
        Some("rlimits")
    } else if req.parent_death_signal.is_some() {
        Some("parent-death signal")
    } else if req.pid_slot.is_some() {
        Some("socket activation (LISTEN_PID is written in the child)")
    } else if req.cgroup.is_some() {
        Some("cgroup containment")
    } else if req.cwd.is_some() && libc_fns().addchdir.is_none() {
        Some("no posix_spawn_file_actions_addchdir_np")
    } else if req.close_fds && libc_fns().addclosefrom.is_none() {
        Some("no posix_spawn_file_actions_addclosefrom_np")
    } else {
        None
    }
}

/// Starts the child described by `req`, on the first path that can:
///
/// 1. the vfork path (`clone3`, Linux x86_64, kernel 5.5 or later), for everything but a
///    user hook: measured 0.91-0.95x glibc's `posix_spawn` (which resets all 64 signal
///    handlers one system call at a time, where the kernel clears them here), flat with a
///    large heap;
/// 2. glibc's `posix_spawn`, the portable fast path, where the vfork path is unavailable;
/// 3. `fork`, for a `pre_exec` hook (arbitrary code must not share the parent's memory) and
///    for what neither of the others can do.
pub(crate) fn spawn(req: &mut SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    let hook = !req.pre_exec.is_empty();
    if !hook && req.force != Some(PathTaken::Fork) {
        if req.force != Some(PathTaken::PosixSpawn) && super::vfork::available() {
            if let Some((pid, pidfd)) = super::vfork::spawn(req)? {
                return Ok(Spawned { pid, pidfd: Some(pidfd), path: PathTaken::Vfork });
            }
        }
        if posix_spawn_cannot(req).is_none() {
            let pid = posix_spawn(req)?;
            return Ok(Spawned { pid, pidfd: None, path: PathTaken::PosixSpawn });
        }
    }
    let (pid, pidfd) = fork_exec(req)?;
    Ok(Spawned { pid, pidfd, path: PathTaken::Fork })
}

type AddChdir = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const c_char) -> c_int;
type AddClosefrom = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, c_int) -> c_int;

struct LibcFns {
    addchdir: Option<AddChdir>,
    addclosefrom: Option<AddClosefrom>,
}

/// The glibc ≥ 2.29 / 2.34 file actions, looked up at run time so that the crate still runs
/// (through the fork path) on an older libc.
fn libc_fns() -> &'static LibcFns {
    static FNS: OnceLock<LibcFns> = OnceLock::new();
    FNS.get_or_init(|| {
        // SAFETY: `dlsym` with RTLD_DEFAULT and a NUL-terminated name is always sound to
        // call; a non-null result is the address of the named libc function, whose C
        // signature is the one the transmute gives it (glibc's <spawn.h>).
        unsafe {
            let chdir =
                libc::dlsym(libc::RTLD_DEFAULT, c"posix_spawn_file_actions_addchdir_np".as_ptr());
            let closefrom = libc::dlsym(
                libc::RTLD_DEFAULT,
                c"posix_spawn_file_actions_addclosefrom_np".as_ptr(),
            );
            LibcFns {
                addchdir: (!chdir.is_null())
                    .then(|| std::mem::transmute::<*mut libc::c_void, AddChdir>(chdir)),
                addclosefrom: (!closefrom.is_null())
                    .then(|| std::mem::transmute::<*mut libc::c_void, AddClosefrom>(closefrom)),
            }
        }
    })
}

/// Turns a `posix_spawn*` return value (an errno, not -1) into a `Result`.
fn check(ret: c_int) -> Result<(), SpawnError> {
    if ret == 0 {
        Ok(())
    } else {
        Err(SpawnError::parent(io::Error::from_raw_os_error(ret)))
    }
}

/// Owns a `posix_spawn_file_actions_t` and destroys it on drop.
struct FileActions(MaybeUninit<libc::posix_spawn_file_actions_t>);

impl FileActions {
    fn new() -> Result<FileActions, SpawnError> {
        let mut fa = FileActions(MaybeUninit::uninit());
        // SAFETY: init takes a pointer to uninitialised storage and initialises it.
        check(unsafe { libc::posix_spawn_file_actions_init(fa.0.as_mut_ptr()) })?;
        Ok(fa)
    }

    fn ptr(&mut self) -> *mut libc::posix_spawn_file_actions_t {
        self.0.as_mut_ptr()
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: `new` initialised the object and it is destroyed exactly once, here.
        unsafe { libc::posix_spawn_file_actions_destroy(self.0.as_mut_ptr()) };
    }
}

/// Owns a `posix_spawnattr_t` and destroys it on drop.
struct Attr(MaybeUninit<libc::posix_spawnattr_t>);

impl Attr {
    fn new() -> Result<Attr, SpawnError> {
        let mut a = Attr(MaybeUninit::uninit());
        // SAFETY: init takes a pointer to uninitialised storage and initialises it.
        check(unsafe { libc::posix_spawnattr_init(a.0.as_mut_ptr()) })?;
        Ok(a)
    }

    fn ptr(&mut self) -> *mut libc::posix_spawnattr_t {
        self.0.as_mut_ptr()
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: `new` initialised the object and it is destroyed exactly once, here.
        unsafe { libc::posix_spawnattr_destroy(self.0.as_mut_ptr()) };
    }
}

/// A `sigset_t` with exactly the listed signals.
fn sigset(signals: &[c_int]) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset with a valid signal number (the
    // caller passes signals from `Signal`, which are in range) only sets a bit.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &sig in signals {
            libc::sigaddset(set.as_mut_ptr(), sig);
        }
        set.assume_init()
    }
}

/// The target fds in `3..=max_target` that no plan fills: closed in the child so that an fd
/// the parent opened without `CLOEXEC` cannot sit in a gap below the extra fds.
fn gaps<'r>(req: &'r SpawnRequest<'_>) -> impl Iterator<Item = RawFd> + 'r {
    (3..=req.max_target).filter(move |fd| !req.fds.iter().any(|p| p.target == *fd))
}

fn posix_spawn(req: &SpawnRequest<'_>) -> Result<rustix::process::Pid, SpawnError> {
    let mut fa = FileActions::new()?;
    let mut attr = Attr::new()?;

    let mut flags = (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as c_int;
    // SAFETY: for every call in this block: `attr` and `fa` are initialised objects owned
    // by this function; the fds named are open in the parent for the duration of the call
    // (borrowed from the request); the C strings are NUL-terminated and outlive the call.
    unsafe {
        let empty = sigset(&[]);
        check(libc::posix_spawnattr_setsigmask(attr.ptr(), &empty))?;
        let default = sigset(req.sig_default);
        check(libc::posix_spawnattr_setsigdefault(attr.ptr(), &default))?;
        if let Some(pgid) = req.process_group {
            flags |= libc::POSIX_SPAWN_SETPGROUP as c_int;
            check(libc::posix_spawnattr_setpgroup(attr.ptr(), pgid))?;
        }
        if req.new_session {
            flags |= libc::POSIX_SPAWN_SETSID as c_int;
        }
        check(libc::posix_spawnattr_setflags(attr.ptr(), flags as libc::c_short))?;

        for plan in req.fds {
            check(libc::posix_spawn_file_actions_adddup2(
                fa.ptr(),
                plan.source.as_raw_fd(),
                plan.target,
            ))?;
        }
        if req.close_fds {
            for fd in gaps(req) {
                check(libc::posix_spawn_file_actions_addclose(fa.ptr(), fd))?;
            }
            let addclosefrom = libc_fns().addclosefrom.expect("checked by posix_spawn_cannot");
            check(addclosefrom(fa.ptr(), req.max_target + 1))?;
        }
        if let Some(cwd) = req.cwd {
            let addchdir = libc_fns().addchdir.expect("checked by posix_spawn_cannot");
            check(addchdir(fa.ptr(), cwd.as_ptr()))?;
        }
    }

    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid for the call: `pid` is a local, `fa` and `attr` are
    // initialised, `program` is NUL-terminated and `argv`/`envp` are NULL-terminated arrays of
    // NUL-terminated strings that outlive the call.
    let ret = unsafe {
        libc::posix_spawn(
            &mut pid,
            req.program.as_ptr(),
            fa.ptr(),
            attr.ptr(),
            req.argv.as_ptr() as *const *mut c_char,
            req.envp.as_ptr() as *const *mut c_char,
        )
    };
    if ret != 0 {
        // glibc has already reaped the failed child: there is no pid to register.
        return Err(SpawnError { errno: ret, stage: None, in_parent: false });
    }
    Ok(rustix::process::Pid::from_raw(pid).expect("posix_spawn returned pid 0"))
}

/// The 8-byte failure report the child writes on the fork path: errno (big-endian), then a
/// stage byte, then a 3-byte tag that a truncated or foreign write cannot match.
const REPORT_TAG: &[u8; 3] = b"OFS";

fn encode_report(errno: c_int, stage: ChildStage) -> [u8; 8] {
    let e = (errno as u32).to_be_bytes();
    let s = match stage {
        ChildStage::Setup => 1,
        ChildStage::Chdir => 2,
        ChildStage::Exec => 3,
        ChildStage::Cgroup => 4,
        ChildStage::HookPanicked => 5,
    };
    [e[0], e[1], e[2], e[3], s, REPORT_TAG[0], REPORT_TAG[1], REPORT_TAG[2]]
}

fn decode_report(buf: &[u8; 8]) -> Option<(c_int, ChildStage)> {
    if &buf[5..] != REPORT_TAG {
        return None;
    }
    let errno = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as c_int;
    let stage = match buf[4] {
        1 => ChildStage::Setup,
        2 => ChildStage::Chdir,
        3 => ChildStage::Exec,
        4 => ChildStage::Cgroup,
        5 => ChildStage::HookPanicked,
        _ => return None,
    };
    Some((errno, stage))
}

fn fork_exec(
    req: &mut SpawnRequest<'_>,
) -> Result<(rustix::process::Pid, Option<OwnedFd>), SpawnError> {
    let parent_err = |e: rustix::io::Errno| SpawnError::parent(e.into());
    let (read_end, write_end) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(parent_err)?;
    // The report pipe's write end must survive the child's fd plan: above every target, so
    // no `dup2` lands on it and the gap-closing loop does not close it. (The sources were
    // moved above the targets before; this pipe is newer than that move.)
    let write_end = if write_end.as_raw_fd() <= req.max_target {
        rustix::io::fcntl_dupfd_cloexec(&write_end, req.max_target + 1).map_err(parent_err)?
    } else {
        write_end
    };
    // The child waits for one byte on this pipe before doing anything, so that the parent
    // opens its pidfd while the pid cannot have been reaped (and recycled) by anyone.
    let (go_read, go_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(parent_err)?;
    let mut full = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `full`; pthread_sigmask reads `full` and writes the old
    // mask into `old`. Blocking every signal across fork means no handler of the parent runs
    // in the child before it has reset its signal state (`reset_handlers`).
    unsafe {
        libc::sigfillset(full.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, full.as_ptr(), old.as_mut_ptr());
    }
    let err_fd = write_end.as_raw_fd();
    req.report_fd = err_fd;
    req.reset_handlers = true;
    let go_fd = go_read.as_raw_fd();

    // SAFETY: fork is sound to call; in the child, `child_setup` keeps to the rules stated
    // on it (async-signal-safe calls only, no allocation, no locks).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: we are the child of a fork; `read` is async-signal-safe and `go_fd` is
        // open (the parent's copy is still open when we fork). See `child_setup`; it
        // returns only on failure.
        unsafe {
            let mut byte = 0u8;
            while libc::read(go_fd, (&mut byte as *mut u8).cast(), 1) < 0 && errno() == libc::EINTR
            {
            }
            let (errno, stage) = child_setup(req);
            child_fail(err_fd, errno, stage)
        }
    }
    let fork_errno = if pid < 0 { Some(io::Error::last_os_error()) } else { None };
    // SAFETY: restores the mask saved above; `old` was initialised by pthread_sigmask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut());
    }
    drop(write_end);
    drop(go_read);
    if let Some(e) = fork_errno {
        return Err(SpawnError::parent(e));
    }
    let pid = rustix::process::Pid::from_raw(pid).expect("fork returned pid 0 in the parent");
    // The child is blocked on the go pipe: it cannot have exited, so the pid is ours.
    let pidfd = match super::wait::pidfd_open(pid) {
        Ok(fd) => Some(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => None,
        Err(e) => {
            // SAFETY: kill takes plain integers; the child is ours and unreaped.
            unsafe { libc::kill(pid.as_raw_nonzero().get(), libc::SIGKILL) };
            drop(go_write);
            super::wait::reap_blocking(pid);
            return Err(SpawnError::parent(e));
        }
    };
    let _ = rustix::io::write(&go_write, &[1]);
    drop(go_write);

    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(&read_end, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                got = 0;
                debug_assert!(false, "read of the exec-report pipe failed: {e}");
                break;
            }
        }
    }
    if got == 0 {
        // EOF: the pipe closed at exec (CLOEXEC), so the exec succeeded.
        return Ok((pid, pidfd));
    }
    // The child failed before or at exec and has exited (or is about to): reap it here so
    // that no zombie remains and the pid is never registered with the reaper.
    super::wait::reap_blocking(pid);
    match (got, decode_report(&buf)) {
        (8, Some((errno, stage))) => {
            Err(SpawnError { errno, stage: Some(stage), in_parent: false })
        }
        _ => Err(SpawnError { errno: libc::EIO, stage: Some(ChildStage::Setup), in_parent: false }),
    }
}

/// Armed around the user's hooks in the child: if a hook panics, unwinding drops this, which
/// reports the panic to the parent and aborts (as std does), so the unwind never leaves the
/// child (where it would run a second copy of the parent's program on).
struct AbortOnUnwind(RawFd);

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        let report = encode_report(0, ChildStage::HookPanicked);
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: write, setrlimit and abort are async-signal-safe; `report` and `no_core`
        // are locals. No core file: the abort is the report, not a crash to debug.
        unsafe {
            libc::write(self.0, report.as_ptr().cast(), report.len());
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::abort()
        }
    }
}

/// Reports `errno` at `stage` over the pipe and exits. Async-signal-safe.
///
/// # Safety
///
/// Only to be called in the child after fork.
unsafe fn child_fail(err_fd: RawFd, errno: c_int, stage: ChildStage) -> ! {
    let report = encode_report(errno, stage);
    // SAFETY: write and _exit are async-signal-safe; `report` is a local array. A short or
    // failed write is reported by the parent as a generic failure.
    unsafe {
        libc::write(err_fd, report.as_ptr().cast(), report.len());
        libc::_exit(127)
    }
}

fn errno() -> c_int {
    // `last_os_error` reads errno; it does not allocate.
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// The child side of the fork and vfork paths: applies the request and execs. Returns only
/// on failure, with the errno and the stage that failed; the caller reports them and exits.
///
/// # Safety
///
/// Must only be called in the child, right after `fork` with every signal blocked (or
/// `clone3` with `CLONE_VM`, where the kernel cleared the signal handlers), in a process that may have had other threads: so
/// this code makes only async-signal-safe calls (`dup2`, `close`, `chdir`,
/// `setsid`, `setpgid`, `setrlimit`, `umask`, `prctl`, raw credential syscalls,
/// `sigaction`, `sigprocmask`, `getpid`, `execve`, `write`, `_exit`), allocates and frees nothing,
/// takes no lock and drops nothing that owns memory. Everything it reads was prepared by the
/// parent before the fork. The user's `pre_exec` hooks are bound by the same rules, as
/// documented on `Command::pre_exec`.
pub(crate) unsafe fn child_setup(req: &mut SpawnRequest<'_>) -> (c_int, ChildStage) {
    // SAFETY: the whole function body: see the function's contract above; every pointer
    // passed is to data owned by `req` or to locals, valid for the duration of each call.
    unsafe {
        // First, so that nothing the child does runs outside its cgroup. "0" moves the
        // writing process; the fd was opened by the parent.
        if let Some(cg) = req.cgroup {
            if !req.cgroup_placed && libc::write(cg.procs.as_raw_fd(), b"0".as_ptr().cast(), 1) < 0
            {
                return (errno(), ChildStage::Cgroup);
            }
        }
        if req.new_session && libc::setsid() < 0 {
            return (errno(), ChildStage::Setup);
        }
        if let Some(pgid) = req.process_group {
            if libc::setpgid(0, pgid) < 0 {
                return (errno(), ChildStage::Setup);
            }
        }
        // Sources are all numbered above every target, so these dup2s never clobber a source
        // still to be used. dup2 clears CLOEXEC on the target.
        for plan in req.fds.iter() {
            if libc::dup2(plan.source.as_raw_fd(), plan.target) < 0 {
                return (errno(), ChildStage::Setup);
            }
        }
        if req.close_fds {
            for fd in gaps(req) {
                libc::close(fd);
            }
            // The fork path's report pipe sits above every target and is CLOEXEC: keep it
            // open until exec. (The vfork path reports through memory.)
            close_range_except(req.max_target + 1, req.report_fd);
        }
        if let Some(cwd) = req.cwd {
            if libc::chdir(cwd.as_ptr()) < 0 {
                return (errno(), ChildStage::Chdir);
            }
        }
        for rl in req.rlimits.iter() {
            let lim = libc::rlimit { rlim_cur: rl.soft as _, rlim_max: rl.hard as _ };
            if libc::setrlimit(rl.resource as _, &lim) < 0 {
                return (errno(), ChildStage::Setup);
            }
        }
        if let Some(mask) = req.umask {
            libc::umask(mask as libc::mode_t);
        }
        if let Some(sig) = req.parent_death_signal {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) < 0 {
                return (errno(), ChildStage::Setup);
            }
        }
        // Credentials through raw syscalls: glibc's wrappers broadcast to every thread of
        // the process, which is not async-signal-safe after fork. Groups, then gid, then uid
        // (dropping the uid first would forbid the other two).
        if let Some(groups) = req.groups {
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0 {
                return (errno(), ChildStage::Setup);
            }
        } else if req.uid.is_some() {
            // Like std: changing the uid drops the supplementary groups, unless the caller
            // set them, so the child does not keep root's groups.
            if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) < 0
                && errno() != libc::EPERM
            {
                return (errno(), ChildStage::Setup);
            }
        }
        if let Some(gid) = req.gid {
            if libc::syscall(libc::SYS_setgid, gid) < 0 {
                return (errno(), ChildStage::Setup);
            }
        }
        if let Some(uid) = req.uid {
            if libc::syscall(libc::SYS_setuid, uid) < 0 {
                return (errno(), ChildStage::Setup);
            }
        }
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        if req.reset_handlers {
            // After fork the parent's handlers are still installed (signals are blocked
            // since before the fork): reset every caught signal to SIG_DFL before unblocking,
            // as glibc's posix_spawn does, so none of them runs here (during a hook) on
            // memory this child only has a copy of. Ignored signals stay ignored, as exec
            // keeps them.
            for sig in 1..libc::SIGRTMAX() + 1 {
                let mut cur: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut cur) == 0
                    && cur.sa_sigaction != libc::SIG_DFL
                    && cur.sa_sigaction != libc::SIG_IGN
                {
                    libc::sigaction(sig, &dfl, std::ptr::null_mut());
                }
            }
        }
        for &sig in req.sig_default.iter() {
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
        let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(empty.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, empty.as_ptr(), std::ptr::null_mut());
        if !req.pre_exec.is_empty() {
            let guard = AbortOnUnwind(req.report_fd);
            for hook in req.pre_exec.iter_mut() {
                if let Err(e) = hook() {
                    let errno = e.raw_os_error().unwrap_or(libc::EINVAL);
                    // Dropping a custom error would free memory, which is not allowed here.
                    std::mem::forget(e);
                    std::mem::forget(guard);
                    return (errno, ChildStage::Setup);
                }
            }
            std::mem::forget(guard);
        }
        if let Some(slot) = req.pid_slot {
            // `getpid` is a plain system call (glibc caches nothing since 2.25), so it is
            // the child's own pid on the vfork path too; the slot belongs to this spawn's
            // environment only.
            slot.fill(libc::getpid() as u32);
        }
        libc::execve(req.program.as_ptr(), req.argv.as_ptr(), req.envp.as_ptr());
        (errno(), ChildStage::Exec)
    }
}

/// Closes every fd from `first` up, except `keep`. Async-signal-safe.
///
/// # Safety
///
/// Only to be called in the child after fork, where no other code owns these fds.
unsafe fn close_range_except(first: RawFd, keep: RawFd) {
    // SAFETY: close_range/close on fds are async-signal-safe syscalls; closing fds the child
    // will not use is the point, and `keep` is preserved for the failure report.
    unsafe {
        let close_range = |lo: RawFd, hi: RawFd| {
            if lo > hi {
                return;
            }
            let r = libc::syscall(libc::SYS_close_range, lo as u32, hi as u32, 0u32);
            if r < 0 {
                // Before Linux 5.9: close one by one up to the soft limit.
                let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                let top = (lim.rlim_cur.min(1 << 20) as RawFd - 1).min(hi);
                let mut fd = lo;
                while fd <= top {
                    libc::close(fd);
                    fd += 1;
                }
            }
        };
        if keep >= first {
            close_range(first, keep - 1);
            close_range(keep + 1, RawFd::MAX);
        } else {
            close_range(first, RawFd::MAX);
        }
    }
}

/// Opens `/dev/null` read-write with `O_CLOEXEC`, for `Stdio::null()`.
pub(crate) fn open_dev_null() -> io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        c"/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trip() {
        for stage in [ChildStage::Setup, ChildStage::Chdir, ChildStage::Exec, ChildStage::Cgroup] {
            let r = encode_report(libc::ENOENT, stage);
            assert_eq!(decode_report(&r), Some((libc::ENOENT, stage)));
        }
        assert_eq!(decode_report(&[0; 8]), None);
    }
}
