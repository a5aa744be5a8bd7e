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
use std::os::unix::ffi::OsStrExt;
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
    /// `argv[0]`, when not the program's path: bash started as `sh` is in POSIX mode, as
    /// `/bin/sh` is on distributions that link it to bash.
    pub arg0: Option<&'static str>,
}

/// The shells the differential checks run: dash (Debian's `/bin/sh`) and bash, in a UTF-8
/// and a C locale and in POSIX mode (what `/bin/sh` is on distributions that link it to
/// bash).
pub const FLAVORS: &[Flavor] = &[
    flavor("dash", DASH, &[], "C.UTF-8"),
    flavor("bash (C.UTF-8)", BASH, &[], "C.UTF-8"),
    flavor("bash (C)", BASH, &[], "C"),
    flavor("bash --posix", BASH, &["--posix"], "C.UTF-8"),
];

/// The multibyte locales bash supports whose characters have ASCII bytes after the first
/// (Big5, GBK, GB18030, Shift-JIS, Big5-HKSCS): generated with `localedef` into
/// [`locale_dir`]. Each is `(name, source locale, charmap, two bytes that make one character)`.
pub const MULTIBYTE_LOCALES: &[(&str, &str, &str, &[u8])] = &[
    ("zh_CN.GB18030", "zh_CN", "GB18030", b"\xd6\xd0"),
    ("zh_CN.GBK", "zh_CN", "GBK", b"\xd6\xd0"),
    ("zh_TW.BIG5", "zh_TW", "BIG5", b"\xa4\x40"),
    ("zh_HK.BIG5-HKSCS", "zh_HK", "BIG5-HKSCS", b"\xa4\x40"),
    ("ja_JP.SJIS", "ja_JP", "SHIFT_JIS", b"\x88\x9f"),
];

/// bash in each multibyte locale, dash and bash in POSIX mode (as `sh`) in GB18030.
pub const MULTIBYTE_FLAVORS: &[Flavor] = &[
    flavor("bash (zh_CN.GB18030)", BASH, &[], "zh_CN.GB18030"),
    flavor("bash (zh_CN.GBK)", BASH, &[], "zh_CN.GBK"),
    flavor("bash (zh_TW.BIG5)", BASH, &[], "zh_TW.BIG5"),
    flavor("bash (zh_HK.BIG5-HKSCS)", BASH, &[], "zh_HK.BIG5-HKSCS"),
    flavor("bash (ja_JP.SJIS)", BASH, &[], "ja_JP.SJIS"),
    Flavor { arg0: Some("sh"), ..flavor("bash as sh (zh_CN.GB18030)", BASH, &[], "zh_CN.GB18030") },
    flavor("dash (zh_CN.GB18030)", DASH, &[], "zh_CN.GB18030"),
];

/// The shells `sh!` scripts are attacked with: dash, bash, bash as `sh` (POSIX mode), and
/// bash under GB18030.
pub const SCRIPT_FLAVORS: &[Flavor] = &[
    flavor("dash", DASH, &[], "C.UTF-8"),
    flavor("bash (C.UTF-8)", BASH, &[], "C.UTF-8"),
    Flavor { arg0: Some("sh"), ..flavor("bash as sh", BASH, &[], "C.UTF-8") },
    flavor("bash (zh_CN.GB18030)", BASH, &[], "zh_CN.GB18030"),
];

const fn flavor(
    name: &'static str,
    paths: &'static [&'static str],
    args: &'static [&'static str],
    locale: &'static str,
) -> Flavor {
    Flavor { name, paths, args, locale, arg0: None }
}

const BASH: &[&str] = &["/usr/bin/bash", "/bin/bash"];
const DASH: &[&str] = &["/usr/bin/dash", "/bin/dash"];

/// Where the multibyte locales are generated: `$OFFSPRING_LOCPATH` (`.ci/run` sets it), or
/// `offspring-locales` in the temporary directory.
pub fn locale_dir() -> PathBuf {
    match std::env::var_os("OFFSPRING_LOCPATH") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::temp_dir().join("offspring-locales"),
    }
}

/// Makes the multibyte locale `name` (one of [`MULTIBYTE_LOCALES`]) in [`locale_dir`] if it is
/// not there yet, and checks that bash reads a two-byte character of it as one character.
///
/// # Errors
///
/// Why the locale cannot be used (no `localedef`, no source, bash does not take it), for a
/// printed skip.
pub fn ensure_locale(name: &str) -> Result<(), String> {
    let &(_, source, charmap, probe) = MULTIBYTE_LOCALES
        .iter()
        .find(|l| l.0 == name)
        .ok_or_else(|| format!("{name} is not a known multibyte locale"))?;
    let dir = locale_dir();
    let target = dir.join(name);
    if !target.join("LC_CTYPE").exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
        // Into a private name first, then renamed: tests run in parallel.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}", std::process::id()));
        let out = Command::new("localedef")
            .args(["-i", source, "-f", charmap])
            .arg(&tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run localedef (Debian package `locales`): {e}"))?;
        // localedef warns (exit 1) about Shift-JIS not being ASCII-compatible and still
        // writes the locale; what counts is that bash takes it, checked below.
        if !tmp.join("LC_CTYPE").exists() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(format!(
                "localedef -i {source} -f {charmap} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if std::fs::rename(&tmp, &target).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    let bash = BASH.iter().find(|p| Path::new(p).exists()).ok_or("bash is not installed")?;
    let mut script = b"x='".to_vec();
    script.extend_from_slice(probe);
    script.extend_from_slice(b"'; printf %s ${#x}");
    let out = Command::new(bash)
        .arg("-c")
        .arg(std::ffi::OsStr::from_bytes(&script))
        .env_clear()
        .env("LC_ALL", name)
        .env("LOCPATH", &dir)
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if out.stdout != b"1" {
        return Err(format!("bash does not read {name} from {dir:?} as a multibyte locale"));
    }
    Ok(())
}

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
        Shells::of(FLAVORS)
    }

    /// The shells of [`FLAVORS`] and [`MULTIBYTE_FLAVORS`] that are installed and whose locale
    /// can be made; prints a line for each one that is not.
    pub fn with_multibyte() -> Shells {
        let flavors: Vec<Flavor> = FLAVORS.iter().chain(MULTIBYTE_FLAVORS).copied().collect();
        Shells::of(&flavors)
    }

    /// The shells of `flavors` that are installed (and whose locale can be made); prints a
    /// line for each one that is not.
    pub fn of(flavors: &[Flavor]) -> Shells {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut shells = Vec::new();
        for flavor in flavors {
            if MULTIBYTE_LOCALES.iter().any(|l| l.0 == flavor.locale) {
                if let Err(why) = ensure_locale(flavor.locale) {
                    eprintln!("skipped: {}: {why}", flavor.name);
                    continue;
                }
            }
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

impl Shells {
    /// Runs each script in a subshell of every active shell, with stdin, stdout and stderr
    /// on `/dev/null`, waiting for what it started in the background (so that a marker is
    /// blamed on its own script), and returns, per shell, what the scripts reported through
    /// `pwned`
    /// (`PWNED ...` markers, with the index of the script), or what went wrong.
    #[allow(clippy::type_complexity)]
    pub fn run_scripts(
        &mut self,
        scripts: &[&[u8]],
    ) -> Vec<(usize, Result<Vec<(usize, Vec<u8>)>, String>)> {
        let dir = self.file.with_extension("d");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return vec![(0, Err(format!("cannot create {dir:?}: {e}")))];
        }
        let mut batch = Vec::new();
        for (i, script) in scripts.iter().enumerate() {
            let path = dir.join(format!("{i}.sh"));
            if let Err(e) = std::fs::write(&path, script) {
                return vec![(0, Err(format!("cannot write {path:?}: {e}")))];
            }
            // The paths are ours: no quote in them.
            batch.extend_from_slice(
                format!(
                    "( trap wait EXIT; . '{}' ) </dev/null >/dev/null 2>&1; printf 'S%s\\0' {i}\n",
                    path.display()
                )
                .as_bytes(),
            );
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
                let result = sent.and_then(|seq| shell.receive_markers(scripts.len(), seq));
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
        let _ = std::fs::remove_dir_all(self.file.with_extension("d"));
    }
}

impl Shell {
    /// The shell's name, for messages.
    pub fn name(&self) -> &'static str {
        self.flavor.name
    }

    fn start(&mut self) -> io::Result<Running> {
        let mut cmd = Command::new(self.program);
        if let Some(arg0) = self.flavor.arg0 {
            cmd.arg0(arg0);
        }
        cmd.args(self.flavor.args)
            .env_clear()
            .env("PATH", "/nonexistent")
            .env("HOME", "/nonexistent")
            .env("LC_ALL", self.flavor.locale);
        // Only for the generated locales: with LOCPATH set, glibc looks nowhere else.
        if MULTIBYTE_LOCALES.iter().any(|l| l.0 == self.flavor.locale) {
            cmd.env("LOCPATH", locale_dir());
        }
        cmd.current_dir("/").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        if std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false) {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        let mut child = cmd.spawn()?;
        let mut input = child.stdin.take().expect("piped stdin");
        let output =
            File::from(std::os::fd::OwnedFd::from(child.stdout.take().expect("piped stdout")));
        input.write_all(b"w() { printf '%s\\0' \"$#\" \"$@\"; }\nkill() { :; }\n")?;
        // For scripts (`run_scripts`): `pwned` is what a hostile value calls; it reports on
        // fd 3, which the scripts' own redirections leave alone.
        input.write_all(b"exec 3>&1\npwned() { printf 'PWNED %s\\0' \"$*\" >&3; }\n")?;
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

    /// Reads the answer to the batch `seq` of `count` scripts: the `pwned` markers, each with
    /// the index of the script that printed it.
    fn receive_markers(&mut self, count: usize, seq: u64) -> Result<Vec<(usize, Vec<u8>)>, String> {
        let name = self.name();
        let running = self.running.as_mut().ok_or_else(|| format!("{name}: not running"))?;
        let deadline = Instant::now() + TIMEOUT;
        let mut markers = Vec::new();
        let mut done = 0;
        loop {
            let token =
                running.token(deadline).map_err(|e| format!("{name}: {e} after script {done}"))?;
            if token == format!("S{done}").as_bytes() {
                done += 1;
            } else if token.starts_with(b"PWNED") {
                markers.push((done, token));
            } else if token == format!("END{seq}").as_bytes() && done == count {
                break;
            } else {
                return Err(format!(
                    "{name}: out of step after script {done}: got {:?}",
                    String::from_utf8_lossy(&token)
                ));
            }
        }
        running.compact();
        Ok(markers)
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
