//! Real shells as an oracle: long-running dash and bash processes that read commands on stdin
//! and print the words they were given, so one round trip checks many words.
//!
//! Each shell defines `w() { printf '%s\0' "$#" "$@"; }`. A batch is a file with one line
//! `w CODE` per piece of shell code; each shell is told on stdin to source it (`. FILE`,
//! which bash reads in blocks, where it reads a pipe one byte at a time) and then to print an
//! end marker. All shells work on a batch at the same time, and the harness waits for their
//! answers with `poll`, without helper threads. The answer is, per line, the word
//! count and the words (NUL-terminated, since no word can hold a NUL), then the marker. A
//! shell that does not answer within [`TIMEOUT`] or answers out of step is killed and
//! restarted, and the batch counts as a failure.
//!
//! The shells run with `PATH=/nonexistent` (only builtins exist), from `/`, and as `nobody`
//! when the harness runs as root: what they are fed is exactly what a quoting bug would turn
//! into commands.
//!
//! This file is shared with `tests/it/quote.rs` through `#[path]`; it uses std and rustix.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

/// How long a batch may take before the shell counts as hung.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The uid and gid of `nobody`, for running the shells unprivileged when we are root.
const NOBODY: u32 = 65534;

/// One shell configuration: a program, its arguments and a locale.
#[derive(Clone, Copy, Debug)]
pub struct Flavor {
    /// A name for messages.
    pub name: &'static str,
    /// Where the program may be installed.
    pub paths: &'static [&'static str],
    /// Arguments before reading commands from stdin.
    pub args: &'static [&'static str],
    /// `LC_ALL`.
    pub locale: &'static str,
}

/// The shells the differential checks run: dash (Debian's `/bin/sh`) and bash, in a UTF-8
/// and a C locale and in POSIX mode (what `/bin/sh` is on distributions that link it to
/// bash).
pub const FLAVORS: &[Flavor] = &[
    Flavor { name: "dash", paths: &["/usr/bin/dash", "/bin/dash"], args: &[], locale: "C.UTF-8" },
    Flavor { name: "bash (C.UTF-8)", paths: BASH, args: &[], locale: "C.UTF-8" },
    Flavor { name: "bash (C)", paths: BASH, args: &[], locale: "C" },
    Flavor { name: "bash --posix", paths: BASH, args: &["--posix"], locale: "C.UTF-8" },
];

const BASH: &[&str] = &["/usr/bin/bash", "/bin/bash"];

/// A running shell and its pipes.
struct Running {
    child: Child,
    input: ChildStdin,
    output: File,
    buf: Vec<u8>,
    /// How much of `buf` has been consumed.
    at: usize,
}

/// A long-running shell, restarted after any failure.
pub struct Shell {
    flavor: Flavor,
    program: &'static str,
    running: Option<Running>,
    seq: u64,
    /// How many times the shell was restarted after a failure.
    pub restarts: u64,
}

/// The installed shells of [`FLAVORS`], and the file they read batches from.
pub struct Shells {
    /// The shells, in the order of [`FLAVORS`].
    pub shells: Vec<Shell>,
    /// Which shells [`run`](Shells::run) uses (all, at first).
    pub active: Vec<bool>,
    file: PathBuf,
}

impl Shells {
    /// The shells of [`FLAVORS`] that are installed; prints a line for each one that is not.
    pub fn installed() -> Shells {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut shells = Vec::new();
        for flavor in FLAVORS {
            match flavor.paths.iter().find(|p| Path::new(p).exists()) {
                Some(program) => shells.push(Shell {
                    flavor: *flavor,
                    program,
                    running: None,
                    seq: 0,
                    restarts: 0,
                }),
                None => eprintln!("skipping {}: not installed ({:?})", flavor.name, flavor.paths),
            }
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file =
            std::env::temp_dir().join(format!("offspring-shells-{}-{n}.sh", std::process::id()));
        let active = vec![true; shells.len()];
        Shells { shells, active, file }
    }

    /// Runs `w CODE` for each piece of code in every active shell, and returns, per shell (by
    /// index), the words each line printed, or a description of what went wrong (a timeout,
    /// an exit, an answer out of step), after which that shell has been restarted.
    #[allow(clippy::type_complexity)]
    pub fn run(&mut self, codes: &[&[u8]]) -> Vec<(usize, Result<Vec<Vec<Vec<u8>>>, String>)> {
        let mut batch = Vec::new();
        for code in codes {
            batch.extend_from_slice(b"w ");
            batch.extend_from_slice(code);
            batch.push(b'\n');
        }
        if let Err(e) = std::fs::write(&self.file, &batch) {
            return vec![(0, Err(format!("cannot write {:?}: {e}", self.file)))];
        }
        let file = &self.file;
        let active = &self.active;
        let sent: Vec<(usize, Result<u64, String>)> = self
            .shells
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| active[*i])
            .map(|(i, s)| (i, s.send(file)))
            .collect();
        sent.into_iter()
            .map(|(i, sent)| {
                let shell = &mut self.shells[i];
                let result = sent.and_then(|seq| shell.receive(codes, seq));
                if result.is_err() {
                    shell.restart();
                }
                (i, result)
            })
            .collect()
    }
}

impl Drop for Shells {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

impl Shell {
    /// The shell's name, for messages.
    pub fn name(&self) -> &'static str {
        self.flavor.name
    }

    fn start(&mut self) -> io::Result<Running> {
        let mut cmd = Command::new(self.program);
        cmd.args(self.flavor.args)
            .env_clear()
            .env("PATH", "/nonexistent")
            .env("HOME", "/nonexistent")
            .env("LC_ALL", self.flavor.locale)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false) {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        let mut child = cmd.spawn()?;
        let mut input = child.stdin.take().expect("piped stdin");
        let output =
            File::from(std::os::fd::OwnedFd::from(child.stdout.take().expect("piped stdout")));
        input.write_all(b"w() { printf '%s\\0' \"$#\" \"$@\"; }\nkill() { :; }\n")?;
        Ok(Running { child, input, output, buf: Vec::new(), at: 0 })
    }

    fn restart(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
        self.restarts += 1;
    }

    /// Tells the shell to source the batch in `file` and print an end marker; returns the
    /// marker's number.
    fn send(&mut self, file: &Path) -> Result<u64, String> {
        if self.running.is_none() {
            let running =
                self.start().map_err(|e| format!("{}: cannot start: {e}", self.name()))?;
            self.running = Some(running);
        }
        self.seq += 1;
        let running = self.running.as_mut().expect("started above");
        // The path is ours (temp dir, pid, counter): no quote in it.
        let line = format!(". '{}'\nprintf 'END%s\\0' {}\n", file.display(), self.seq);
        // A few bytes: they fit in the pipe even if the shell is stuck.
        running
            .input
            .write_all(line.as_bytes())
            .map_err(|e| format!("{}: stdin: {e}", self.flavor.name))?;
        Ok(self.seq)
    }

    /// Reads the answer to the batch `seq` of `codes`.
    fn receive(&mut self, codes: &[&[u8]], seq: u64) -> Result<Vec<Vec<Vec<u8>>>, String> {
        let name = self.name();
        let running = self.running.as_mut().ok_or_else(|| format!("{name}: not running"))?;
        let deadline = Instant::now() + TIMEOUT;
        let mut answers = Vec::with_capacity(codes.len());
        for (i, code) in codes.iter().enumerate() {
            let count = running.token(deadline).map_err(|e| format!("{name}: {e} in line {i}"))?;
            let count: usize =
                std::str::from_utf8(&count).ok().and_then(|c| c.parse().ok()).ok_or_else(|| {
                    format!(
                        "{name}: out of step at line {i} (code {:?}): got {:?} for a word count",
                        String::from_utf8_lossy(code),
                        String::from_utf8_lossy(&count)
                    )
                })?;
            let mut words = Vec::with_capacity(count);
            for _ in 0..count {
                words
                    .push(running.token(deadline).map_err(|e| format!("{name}: {e} in line {i}"))?);
            }
            answers.push(words);
        }
        let end = running.token(deadline).map_err(|e| format!("{name}: {e} at the end marker"))?;
        if end != format!("END{seq}").as_bytes() {
            return Err(format!(
                "{name}: out of step: got {:?} for the end marker END{seq}",
                String::from_utf8_lossy(&end)
            ));
        }
        running.compact();
        Ok(answers)
    }
}

impl Running {
    /// The next NUL-terminated token of the shell's output.
    fn token(&mut self, deadline: Instant) -> Result<Vec<u8>, String> {
        let mut chunk = [0; 1 << 14];
        loop {
            if let Some(len) = self.buf[self.at..].iter().position(|&b| b == 0) {
                let token = self.buf[self.at..self.at + len].to_vec();
                self.at += len + 1;
                return Ok(token);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout =
                Timespec { tv_sec: left.as_secs() as _, tv_nsec: left.subsec_nanos() as _ };
            let mut fds = [PollFd::new(&self.output, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => return Err(format!("no answer within {TIMEOUT:?}")),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            match self.output.read(&mut chunk) {
                Ok(0) => return Err("the shell exited".to_owned()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn compact(&mut self) {
        self.buf.drain(..self.at);
        self.at = 0;
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}
