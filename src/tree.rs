//! Process trees: a child and everything it starts, contained in a cgroup v2 of its own.
//!
//! [`Command::contain`](crate::Command::contain) creates a fresh cgroup for each spawn, under
//! a parent the caller names ([`Containment::parent`]) or, by default, under this process's
//! own cgroup on the cgroup v2 mount found in `/proc/self/mountinfo`. The child is placed in
//! it atomically on the vfork path (`clone3` with `CLONE_INTO_CGROUP`), or writes `0` to the
//! cgroup's `cgroup.procs` (opened by the parent before the fork) as its first step on the
//! fork path; `posix_spawn` cannot do either, so a contained spawn never takes it. Every
//! descendant stays in the cgroup whatever it does (`setsid`, double fork), so the [`Tree`]
//! handle reaches all of them.
//!
//! # The "no internal processes" rule
//!
//! A non-root cgroup with controllers enabled in `cgroup.subtree_control` may not hold
//! processes, so a cgroup that holds this process has none enabled for its children (unless it
//! is the root). The new cgroup is a leaf: it never enables controllers itself. Under this
//! process's own cgroup that is always sound; the core files (`cgroup.kill`,
//! `cgroup.freeze`, `cgroup.events`, `cpu.stat`) work without any controller, while
//! `memory.peak` needs the memory controller, which only a parent with it in
//! `cgroup.subtree_control` (a delegated subtree without processes of its own, or the root)
//! provides: name such a parent to get it.
//!
//! # Cleanup
//!
//! The directory is removed when the last handle goes (the [`Child`](crate::Child) and any
//! clones of its [`Tree`]) if the tree is empty then; otherwise the reaper thread keeps the
//! cgroup's `cgroup.events` in its `epoll` set and removes the directory the moment the tree
//! is empty (one mechanism: the last owner tries, the reaper finishes). A process that exits
//! while one of its trees still runs leaves that tree's directory behind (nothing of it is
//! left to remove it): kill or wait for contained trees before exiting.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::child::deadline_after;
use crate::error::{Error, ErrorKind, Result, Stage};
use crate::signal::Signal;
use crate::Pid;

/// How [`Command::containment`](crate::Command::containment) contains a child: where its
/// cgroup goes, and what to do where none can be made.
///
/// # Examples
///
/// ```
/// use offspring::{Command, Containment};
/// let mut cmd = Command::new("true");
/// cmd.containment(Containment::new().best_effort(true));
/// let child = cmd.spawn()?;
/// match child.tree() {
///     Some(tree) => println!("contained in {}", tree.path().display()),
///     None => println!("not contained: {}", child.containment_fallback().unwrap()),
/// }
/// child.wait()?;
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Containment {
    parent: Option<PathBuf>,
    best_effort: bool,
}

impl Containment {
    /// Contain the child in a new cgroup under this process's own cgroup; fail the spawn
    /// where that is impossible.
    pub fn new() -> Containment {
        Containment::default()
    }

    /// Creates the child's cgroup under `dir`, a directory of a cgroup v2 hierarchy that this
    /// process may write (a subtree delegated to it, for example by systemd's
    /// `Delegate=yes`). Name a parent whose `cgroup.subtree_control` enables the memory
    /// controller to get [`Tree::memory_peak`].
    pub fn parent(mut self, dir: impl Into<PathBuf>) -> Containment {
        self.parent = Some(dir.into());
        self
    }

    /// Where no cgroup can be made, start the child as the leader of a new process group
    /// instead of failing (default `false`). [`Child::tree`](crate::Child::tree) is then
    /// `None` and [`Child::containment_fallback`](crate::Child::containment_fallback) says
    /// why; timeouts and kill-on-drop then reach the group only, which a descendant that calls
    /// `setsid` or double-forks escapes.
    pub fn best_effort(mut self, yes: bool) -> Containment {
        self.best_effort = yes;
        self
    }

    pub(crate) fn is_best_effort(&self) -> bool {
        self.best_effort
    }
}

/// The cgroup2 filesystem magic (`CGROUP2_SUPER_MAGIC`).
const CGROUP2_MAGIC: u64 = 0x6367_7270;

/// The first cgroup v2 mount point in `/proc/self/mountinfo`, with the cgroup path its root
/// shows.
fn cgroup2_mount() -> Option<&'static (PathBuf, PathBuf)> {
    static MOUNT: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    MOUNT
        .get_or_init(|| {
            let info = std::fs::read("/proc/self/mountinfo").ok()?;
            parse_mountinfo(&info)
        })
        .as_ref()
}

/// Finds the first `cgroup2` line: (mount point, root within the hierarchy).
fn parse_mountinfo(info: &[u8]) -> Option<(PathBuf, PathBuf)> {
    for line in info.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == b"-") else { continue };
        if fields.get(dash + 1) == Some(&&b"cgroup2"[..]) && fields.len() > 4 {
            return Some((unescape(fields[4]), unescape(fields[3])));
        }
    }
    None
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 4 <= field.len() {
            let oct = &field[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                out.push((oct[0] - b'0') * 64 + (oct[1] - b'0') * 8 + (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// This process's cgroup directory: the mount point joined with the `0::` line of
/// `/proc/self/cgroup`, relative to the mount's root.
fn own_cgroup() -> std::result::Result<PathBuf, String> {
    let Some((mount, root)) = cgroup2_mount() else {
        return Err("no cgroup v2 hierarchy is mounted (no cgroup2 line in \
                    /proc/self/mountinfo)"
            .into());
    };
    let text = std::fs::read("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let line = text
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"0::"))
        .ok_or("this process has no cgroup v2 membership (no 0:: line in /proc/self/cgroup)")?;
    let own = Path::new(std::ffi::OsStr::from_bytes(&line[3..]));
    let rel = own.strip_prefix(root).unwrap_or(own);
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    Ok(mount.join(rel))
}

/// Names the spawns of this process apart.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn setup_error(errno: i32, what: String, path: &Path) -> Error {
    Error::errno(Stage::Setup, errno, what).with_path(path)
}

/// One contained tree's cgroup directory, owned: removed when the last handle goes.
pub(crate) struct Cgroup {
    path: PathBuf,
    dir: OwnedFd,
    /// `cgroup.procs`, open for writing, for the fork path's child to join with `0`.
    procs: OwnedFd,
}

impl Cgroup {
    /// Creates a fresh cgroup for one child as `c` says.
    pub(crate) fn create(c: &Containment) -> Result<Cgroup> {
        let advice = "name a writable cgroup v2 directory with Containment::parent (under \
                      systemd, a delegated one: systemd-run -p Delegate=yes), or allow a \
                      process-group fallback with Containment::best_effort(true)";
        let parent = match &c.parent {
            Some(p) => {
                let st = rustix::fs::statfs(p).map_err(|e| {
                    setup_error(
                        e.raw_os_error(),
                        format!("the containment parent cannot be used; {advice}"),
                        p,
                    )
                })?;
                if st.f_type as u64 != CGROUP2_MAGIC {
                    return Err(setup_error(
                        libc_einval(),
                        format!(
                            "the containment parent is not a cgroup v2 directory \
                             (filesystem type {:#x}); {advice}",
                            st.f_type as u64
                        ),
                        p,
                    ));
                }
                p.clone()
            }
            None => own_cgroup().map_err(|why| {
                Error::errno(Stage::Setup, Errno::NODEV.raw_os_error(), format!("{why}; {advice}"))
            })?,
        };
        let me = std::process::id();
        let (path, dir) = loop {
            let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("offspring-{me}-{n}"));
            match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                // Left by an earlier process with our pid: take the next name.
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    let why = match e {
                        Errno::ACCESS | Errno::PERM | Errno::ROFS => {
                            "this process may not create a cgroup here"
                        }
                        Errno::NOENT => "the parent cgroup does not exist",
                        Errno::AGAIN => "cgroup.max.descendants or cgroup.max.depth is reached",
                        _ => "cannot create a cgroup for the child",
                    };
                    return Err(setup_error(e.raw_os_error(), format!("{why}; {advice}"), &path));
                }
            }
            let opened = rustix::fs::open(
                &path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            );
            match opened {
                Ok(dir) => break (path, dir),
                Err(e) => {
                    let _ = rustix::fs::rmdir(&path);
                    return Err(setup_error(
                        e.raw_os_error(),
                        "cannot open the child's new cgroup".into(),
                        &path,
                    ));
                }
            }
        };
        let procs = rustix::fs::openat(
            &dir,
            "cgroup.procs",
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let procs = match procs {
            Ok(fd) => fd,
            Err(e) => {
                let _ = rustix::fs::rmdir(&path);
                return Err(setup_error(
                    e.raw_os_error(),
                    "cannot open cgroup.procs of the child's new cgroup".into(),
                    &path,
                ));
            }
        };
        Ok(Cgroup { path, dir, procs })
    }

    /// The directory, for `CLONE_INTO_CGROUP`.
    pub(crate) fn dir_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// `cgroup.procs` open for writing, for the fork path.
    pub(crate) fn procs_fd(&self) -> BorrowedFd<'_> {
        self.procs.as_fd()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn libc_einval() -> i32 {
    Errno::INVAL.raw_os_error()
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // A plain rmdir: sub-cgroups that running members made are theirs until the tree is
        // empty (then `Orphan::finish` removes them too).
        match rustix::fs::rmdir(&self.path) {
            Ok(()) => {}
            Err(Errno::BUSY) | Err(Errno::NOTEMPTY) => {
                // Still populated: the reaper removes it once `cgroup.events` says empty.
                if let Ok(events) = open_events(&self.dir) {
                    let orphan = Orphan { path: std::mem::take(&mut self.path), events };
                    if !orphan.finish() {
                        crate::reaper::adopt(Box::new(orphan), None);
                    }
                }
            }
            // Already gone, or not ours to remove any more.
            Err(_) => {}
        }
    }
}

impl fmt::Debug for Cgroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cgroup").field("path", &self.path).finish_non_exhaustive()
    }
}

fn open_events(dir: &OwnedFd) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(dir, "cgroup.events", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
}

/// `rmdir` of a cgroup, and of any cgroups its members created inside it (deepest first).
fn remove_cgroup(path: &Path) -> rustix::io::Result<()> {
    match rustix::fs::rmdir(path) {
        Err(Errno::BUSY) | Err(Errno::NOTEMPTY) => {
            if let Ok(entries) = std::fs::read_dir(path) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        remove_cgroup(&e.path())?;
                    }
                }
            }
            rustix::fs::rmdir(path)
        }
        other => other,
    }
}

/// Reads `key`'s value from the `cgroup.events` open at `fd` (from its start, which also
/// re-arms `POLLPRI` for the next change).
fn read_event(fd: BorrowedFd<'_>, key: &str) -> rustix::io::Result<Option<u64>> {
    let mut buf = [0u8; 256];
    let n = loop {
        match rustix::io::pread(fd, &mut buf, 0) {
            Err(Errno::INTR) => continue,
            other => break other?,
        }
    };
    Ok(field(&buf[..n], key))
}

/// The number after `key ` on its own line of a flat-keyed cgroup file.
fn field(text: &[u8], key: &str) -> Option<u64> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key.as_bytes())?.strip_prefix(b" ")?;
        std::str::from_utf8(rest).ok()?.trim().parse().ok()
    })
}

/// An abandoned cgroup that still has members: the reaper removes it once it is empty.
struct Orphan {
    path: PathBuf,
    events: OwnedFd,
}

impl Orphan {
    /// Removes the cgroup if it is empty; `true` when nothing is left to do.
    fn finish(&self) -> bool {
        match read_event(self.events.as_fd(), "populated") {
            Ok(Some(0)) | Err(_) => {
                !matches!(remove_cgroup(&self.path), Err(Errno::BUSY) | Err(Errno::NOTEMPTY))
            }
            Ok(_) => false,
        }
    }
}

impl crate::reaper::Leftover for Orphan {
    fn events(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    fn kill(&self) {}

    fn finish(&self) -> bool {
        Orphan::finish(self)
    }
}

/// A dropped child's tree under `terminate_on_drop`: the reaper kills it when the grace
/// period ends, and lets go of it once it is empty (the last handle then removes the cgroup).
struct Terminating {
    tree: Tree,
    events: OwnedFd,
}

impl crate::reaper::Leftover for Terminating {
    fn events(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    fn kill(&self) {
        let _ = self.tree.kill();
    }

    fn finish(&self) -> bool {
        !matches!(read_event(self.events.as_fd(), "populated"), Ok(Some(n)) if n != 0)
    }
}

/// CPU time used by every process of a tree, living and gone, from its `cpu.stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeCpuTime {
    /// Time spent in user mode.
    pub user: Duration,
    /// Time spent in the kernel on the tree's behalf.
    pub system: Duration,
    /// All CPU time (`usage_usec`): at least `user + system` as the kernel rounds them.
    pub total: Duration,
}

/// The result of [`Tree::terminate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeTermination {
    /// `true` if members were still running when the grace period ended and the tree was
    /// killed.
    pub needed_kill: bool,
}

/// A child and all its descendants, contained in a cgroup v2 of their own: from
/// [`Child::tree`](crate::Child::tree), for a command spawned with
/// [`Command::contain`](crate::Command::contain).
///
/// Nothing a member does takes it out of the tree: `setsid`, a double fork, a daemon that
/// detaches from everything still stays in. A `Tree` is a cheap handle (clone it to keep it
/// beyond the [`Child`](crate::Child)); when the last handle is gone the cgroup directory is
/// removed as soon as the tree is empty, by the reaper thread if members are still running
/// then (if this process exits first, the directory stays: kill or wait for the tree before
/// exiting).
///
/// # Examples
///
/// ```no_run
/// use offspring::Command;
/// use std::time::Duration;
///
/// // A shell that starts a daemon in a session of its own and exits.
/// let child = Command::new("sh")
///     .args(["-c", "setsid sleep 1000 & exit 0"])
///     .contain(true)
///     .spawn()?;
/// child.wait()?;
/// let tree = child.tree().expect("contained");
/// assert_eq!(tree.members()?.len(), 1); // the daemon, still running
/// tree.kill()?; // everything, at once
/// assert!(tree.wait_timeout(Duration::from_secs(5))?);
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Clone)]
pub struct Tree(Arc<Cgroup>);

/// How long a signal to every member waits for the tree to freeze first (so that nothing
/// forks past the signal) before signalling what it sees anyway.
const FREEZE_FOR_SIGNAL: Duration = Duration::from_secs(1);

impl Tree {
    pub(crate) fn new(cg: Cgroup) -> Tree {
        Tree(Arc::new(cg))
    }

    /// The cgroup directory.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    fn error(&self, stage: Stage, e: impl Into<io::Error>, what: impl Into<String>) -> Error {
        Error::os(stage, e.into(), what).with_path(self.path())
    }

    fn write(&self, file: &str, value: &[u8]) -> rustix::io::Result<()> {
        let fd =
            rustix::fs::openat(&self.0.dir, file, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
        loop {
            match rustix::io::write(&fd, value) {
                Err(Errno::INTR) => continue,
                other => return other.map(drop),
            }
        }
    }

    fn read(&self, file: &str) -> io::Result<Vec<u8>> {
        let fd =
            rustix::fs::openat(&self.0.dir, file, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
        let mut out = Vec::new();
        let mut f = std::fs::File::from(fd);
        io::Read::read_to_end(&mut f, &mut out)?;
        Ok(out)
    }

    /// Kills every process of the tree with `SIGKILL`, at once: `cgroup.kill` (Linux 5.14),
    /// which no member can race by forking. Before 5.14: freeze, `SIGKILL` every member,
    /// thaw. Returns without waiting; [`wait`](Tree::wait) for the tree to be empty.
    pub fn kill(&self) -> Result<()> {
        match self.write("cgroup.kill", b"1") {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => self.signal_members(Signal::KILL, true),
            Err(e) => Err(self.error(Stage::Wait, e, "killing the tree (cgroup.kill)")),
        }
    }

    /// Sends `signal` to every process of the tree. The tree is frozen while the members are
    /// listed and signalled (for up to a second: a member in uninterruptible sleep may keep
    /// it from freezing), so a member cannot fork a process that misses the signal; a tree
    /// that was frozen stays frozen. A signal never reaches a process outside the tree that
    /// inherited the pid of a member that just exited: each member is pinned with a pidfd
    /// and signalled through it. [`Signal::KILL`] is [`kill`](Tree::kill).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        if signal == Signal::KILL {
            return self.kill();
        }
        self.signal_members(signal, true)
    }

    pub(crate) fn signal_members(&self, signal: Signal, freeze: bool) -> Result<()> {
        let was_frozen = self.read("cgroup.freeze").map(|v| v.starts_with(b"1")).unwrap_or(true);
        let froze = freeze && !was_frozen && self.write("cgroup.freeze", b"1").is_ok() && {
            let _ = self.wait_event("frozen", 1, Some(deadline_after(FREEZE_FOR_SIGNAL)));
            true
        };
        let result = self.signal_listed(signal);
        if froze {
            let _ = self.write("cgroup.freeze", b"0");
        }
        result
    }

    /// Signals the members listed now, never a stranger that inherited a member's pid: each
    /// pid is pinned with a pidfd first, and signalled only if it is still listed afterwards
    /// (a process that is alive keeps its pid, so a listed pid whose pidfd still works is
    /// the member's).
    fn signal_listed(&self, signal: Signal) -> Result<()> {
        let sent = |pid: Pid, r: io::Result<()>| match r {
            Err(e) if e.raw_os_error() != Some(Errno::SRCH.raw_os_error()) => Err(self.error(
                Stage::Wait,
                e,
                format!("sending {signal} to member {}", pid.as_raw_nonzero()),
            )),
            _ => Ok(()),
        };
        let listed = self.members()?;
        let mut pinned = Vec::with_capacity(listed.len());
        for pid in listed {
            match crate::sys::wait::pidfd_open(pid) {
                Ok(fd) => pinned.push((pid, fd)),
                // Gone already.
                Err(e) if e.raw_os_error() == Some(Errno::SRCH.raw_os_error()) => {}
                // No pidfds (before Linux 5.3): the bare pid, as `kill` would.
                Err(_) => sent(pid, crate::sys::wait::kill(pid, signal.as_raw()))?,
            }
        }
        let still = self.members()?;
        for (pid, fd) in pinned {
            if still.contains(&pid) {
                sent(pid, crate::sys::wait::pidfd_send_signal(fd.as_fd(), signal.as_raw()))?;
            }
        }
        Ok(())
    }

    /// Stops every process of the tree (`cgroup.freeze`) and waits until the kernel reports it
    /// frozen. Frozen processes use no CPU and do not run until [`thaw`](Tree::thaw), and
    /// unlike `SIGSTOP` they cannot notice.
    ///
    /// A member in uninterruptible sleep (`D` state) keeps the tree from freezing until it
    /// wakes; use [`freeze_timeout`](Tree::freeze_timeout) to bound the wait.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true, None).map(drop)
    }

    /// As [`freeze`](Tree::freeze), waiting at most `timeout`: `Ok(false)` if the tree is not
    /// frozen yet (it keeps freezing).
    pub fn freeze_timeout(&self, timeout: Duration) -> Result<bool> {
        self.set_frozen(true, Some(deadline_after(timeout)))
    }

    /// Resumes a frozen tree and waits until the kernel reports it thawed.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false, None).map(drop)
    }

    fn set_frozen(&self, frozen: bool, deadline: Option<Instant>) -> Result<bool> {
        let (value, what) = if frozen { (b"1", "freezing") } else { (b"0", "thawing") };
        self.write("cgroup.freeze", value)
            .map_err(|e| self.error(Stage::Wait, e, format!("{what} the tree (cgroup.freeze)")))?;
        self.wait_event("frozen", u64::from(frozen), deadline)
    }

    /// The pids of every process in the tree now (including any sub-cgroups its members made).
    pub fn members(&self) -> Result<Vec<Pid>> {
        let mut out = Vec::new();
        collect_members(&self.0.path, &mut out)
            .map_err(|e| self.error(Stage::Wait, e, "listing the tree's members (cgroup.procs)"))?;
        Ok(out)
    }

    /// `true` if no process of the tree is left (`populated 0` in `cgroup.events`), without
    /// blocking.
    pub fn try_wait(&self) -> Result<bool> {
        self.wait_event("populated", 0, Some(Instant::now()))
    }

    /// Waits until every process of the tree has exited. The thread sleeps in `poll` on
    /// `cgroup.events` (`POLLPRI`) and wakes when the kernel reports the tree empty.
    pub fn wait(&self) -> Result<()> {
        self.wait_event("populated", 0, None).map(drop)
    }

    /// Waits up to `timeout` for the tree to be empty: `Ok(false)` if members remain.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_deadline(deadline_after(timeout))
    }

    /// Waits until `deadline` for the tree to be empty: `Ok(false)` if members remain.
    pub fn wait_deadline(&self, deadline: Instant) -> Result<bool> {
        self.wait_event("populated", 0, Some(deadline))
    }

    /// Waits until `key` in `cgroup.events` is `want`, or `deadline` passes.
    fn wait_event(&self, key: &str, want: u64, deadline: Option<Instant>) -> Result<bool> {
        let fail = |e: Errno| self.error(Stage::Wait, e, "watching cgroup.events");
        let fd = open_events(&self.0.dir).map_err(fail)?;
        loop {
            // Read first: this also re-arms POLLPRI for the next change.
            match read_event(fd.as_fd(), key).map_err(fail)? {
                Some(v) if v == want => return Ok(true),
                Some(_) => {}
                None => {
                    return Err(Error::errno(
                        Stage::Wait,
                        Errno::NOSYS.raw_os_error(),
                        format!("cgroup.events has no `{key}` line (kernel too old)"),
                    )
                    .with_path(self.path()))
                }
            }
            let now = Instant::now();
            let timeout = match deadline {
                Some(d) if now >= d => return Ok(false),
                Some(d) => Some(crate::reaper::timespec(d - now)),
                None => None,
            };
            let mut set = [PollFd::new(&fd, PollFlags::PRI)];
            match rustix::event::poll(&mut set, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(fail(e)),
            }
        }
    }

    /// CPU time used by the tree so far, from `cpu.stat` (counts members that have exited).
    pub fn cpu_time(&self) -> Result<TreeCpuTime> {
        let text =
            self.read("cpu.stat").map_err(|e| self.error(Stage::Wait, e, "reading cpu.stat"))?;
        let us = |k: &str| Duration::from_micros(field(&text, k).unwrap_or(0));
        Ok(TreeCpuTime {
            user: us("user_usec"),
            system: us("system_usec"),
            total: us("usage_usec"),
        })
    }

    /// The most memory the tree used at once, in bytes (`memory.peak`, Linux 5.19), or
    /// `None` where the memory controller is not enabled for this cgroup (see
    /// [`Containment::parent`]).
    pub fn memory_peak(&self) -> Result<Option<u64>> {
        match self.read("memory.peak") {
            Ok(text) => Ok(std::str::from_utf8(&text).ok().and_then(|s| s.trim().parse().ok())),
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => Ok(None),
            Err(e) => Err(self.error(Stage::Wait, e, "reading memory.peak")),
        }
    }

    /// Asks every member to stop with `SIGTERM`, waits up to `grace` for the tree to be
    /// empty, then kills what is left and waits (up to `grace` again, at least a second) for
    /// it to go.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`] naming the members (and their state: `D` is uninterruptible
    /// sleep, which even `SIGKILL` waits for) if the tree is still not empty then.
    pub fn terminate(&self, grace: Duration) -> Result<TreeTermination> {
        self.terminate_with(Signal::TERM, grace)
    }

    /// As [`terminate`](Tree::terminate), with another first signal.
    pub fn terminate_with(&self, signal: Signal, grace: Duration) -> Result<TreeTermination> {
        self.signal(signal)?;
        if self.wait_timeout(grace)? {
            return Ok(TreeTermination { needed_kill: false });
        }
        self.kill()?;
        if self.wait_timeout(grace.max(Duration::from_secs(1)))? {
            return Ok(TreeTermination { needed_kill: true });
        }
        Err(self.refused_to_die())
    }

    fn refused_to_die(&self) -> Error {
        let left: Vec<String> = self
            .members()
            .unwrap_or_default()
            .into_iter()
            .map(|pid| {
                let n = pid.as_raw_nonzero();
                let state = std::fs::read(format!("/proc/{n}/stat"))
                    .ok()
                    .and_then(|s| {
                        let close = s.iter().rposition(|&b| b == b')')?;
                        s.get(close + 2).map(|&b| b as char)
                    })
                    .unwrap_or('?');
                format!("{n} (state {state})")
            })
            .collect();
        Error::new(
            ErrorKind::TimedOut,
            Stage::Wait,
            format!(
                "the tree did not die after SIGKILL: {} (state D is uninterruptible sleep, \
                 usually I/O that has not completed)",
                if left.is_empty() { "members unknown".to_string() } else { left.join(", ") }
            ),
        )
        .with_path(self.path())
    }

    /// Hands a dropped child's tree to the reaper: `SIGTERM` now, [`kill`](Tree::kill) at
    /// `kill_at`. Does not block.
    pub(crate) fn terminate_later(&self, kill_at: Instant) {
        if self.signal_members(Signal::TERM, false).is_err() {
            let _ = self.kill();
            return;
        }
        if let Ok(events) = open_events(&self.0.dir) {
            let t = Terminating { tree: self.clone(), events };
            if !crate::reaper::Leftover::finish(&t) {
                crate::reaper::adopt(Box::new(t), Some(kill_at));
            }
        }
    }
}

fn collect_members(dir: &Path, out: &mut Vec<Pid>) -> io::Result<()> {
    let text = std::fs::read(dir.join("cgroup.procs"))?;
    for line in text.split(|&b| b == b'\n') {
        if let Some(pid) = std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .and_then(Pid::from_raw)
        {
            out.push(pid);
        }
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            match collect_members(&e.path(), out) {
                // Removed while we looked.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree").field("path", &self.0.path).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_finds_cgroup2() {
        let info = b"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                     41 31 0:38 / /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw\n";
        let (mount, root) = parse_mountinfo(info).unwrap();
        assert_eq!(mount, Path::new("/sys/fs/cgroup/uni fied"));
        assert_eq!(root, Path::new("/"));
        assert_eq!(parse_mountinfo(b"1 2 0:1 / / rw - ext4 /dev/sda rw\n"), None);
    }

    #[test]
    fn flat_keyed_fields() {
        let t = b"usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        assert_eq!(field(t, "user_usec"), Some(1000));
        assert_eq!(field(t, "usage_usec"), Some(1500));
        assert_eq!(field(t, "usage"), None);
        assert_eq!(field(b"populated 0\nfrozen 1\n", "frozen"), Some(1));
    }
}
