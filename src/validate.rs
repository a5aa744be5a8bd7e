//! Checks on what goes into a child's argv, environment and working directory.
//!
//! Every spawn runs these checks before anything else happens, so a bad value fails with an
//! [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error at
//! [`Stage::Validate`](crate::Stage::Validate) that names the offending item (and, for an
//! argument, its index), and nothing is spawned. They are public so that a program can check
//! input at its own boundary, long before it builds a command.
//!
//! What is refused, and why:
//!
//! - a NUL byte anywhere in the program, an argument, an environment variable's name or value,
//!   or the working directory: `execve` takes C strings, so everything after the NUL would be
//!   silently cut off;
//! - an empty program;
//! - an environment variable name that is empty or contains `=`: the kernel stores `NAME=value`
//!   as one string, so the name `LD_PRELOAD=/evil.so:x` with any value would set
//!   `LD_PRELOAD` (std, Node and Python all let some of these through);
//! - an empty working directory, which can never be changed into.
//!
//! [`Operand`] is the guard for untrusted arguments that must not be read as options.
//!
//! ```
//! use offspring::{validate, ErrorKind};
//!
//! let err = validate::env("LD_PRELOAD=/evil.so:x", "1").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::InvalidInput);
//! assert!(err.to_string().contains("contains `=` at offset 10"));
//!
//! let err = validate::argv(["grep", "-e", "a\0b"]).unwrap_err();
//! assert!(err.to_string().contains("argument 2 contains a NUL byte at offset 1"));
//! ```

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};

/// How many bytes of an offending value an error message shows.
const SHOWN: usize = 64;

/// A value for an error message: quoted as in [`quote::display`](crate::quote::display),
/// cut after [`SHOWN`] bytes.
fn shown(bytes: &[u8]) -> String {
    if bytes.len() <= SHOWN {
        return crate::quote::display([OsStr::from_bytes(bytes)]);
    }
    let mut cut = &bytes[..SHOWN];
    // Do not split a UTF-8 character at the cut.
    if let Err(e) = std::str::from_utf8(cut) {
        if e.error_len().is_none() {
            cut = &cut[..e.valid_up_to()];
        }
    }
    format!("{}... ({} bytes)", crate::quote::display([OsStr::from_bytes(cut)]), bytes.len())
}

fn nul(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == 0)
}

/// Checks the program: not empty, no NUL.
pub(crate) fn check_program(program: &OsStr) -> Result<()> {
    let b = program.as_bytes();
    if b.is_empty() {
        return Err(Error::invalid_input("program is empty"));
    }
    match nul(b) {
        Some(at) => Err(Error::invalid_input(format!(
            "program {} contains a NUL byte at offset {at}",
            shown(b)
        ))),
        None => Ok(()),
    }
}

/// Checks argument `index` (1 is the first argument after the program): no NUL.
pub(crate) fn check_arg(index: usize, arg: &OsStr) -> Result<()> {
    match nul(arg.as_bytes()) {
        Some(at) => Err(Error::invalid_input(format!(
            "argument {index} contains a NUL byte at offset {at}"
        ))),
        None => Ok(()),
    }
}

/// Checks an environment variable: the name is not empty and has no `=` or NUL; the value
/// (`None` when the variable is being removed) has no NUL.
pub(crate) fn check_env(key: &OsStr, value: Option<&OsStr>) -> Result<()> {
    let k = key.as_bytes();
    if k.is_empty() {
        return Err(Error::invalid_input("environment variable name is empty"));
    }
    // Report whichever comes first: a NUL may hide an `=` from C code, and vice versa.
    if let Some(at) = k.iter().position(|&b| b == b'=' || b == 0) {
        let what = if k[at] == b'=' { "`=`" } else { "a NUL byte" };
        return Err(Error::invalid_input(format!(
            "environment variable name {} contains {what} at offset {at}",
            shown(k)
        )));
    }
    if let Some(at) = value.and_then(|v| nul(v.as_bytes())) {
        return Err(Error::invalid_input(format!(
            "the value of environment variable {} contains a NUL byte at offset {at}",
            shown(k)
        )));
    }
    Ok(())
}

/// Checks the working directory: not empty, no NUL.
pub(crate) fn check_cwd(dir: &Path) -> Result<()> {
    let b = dir.as_os_str().as_bytes();
    if b.is_empty() {
        return Err(Error::invalid_input("working directory is empty"));
    }
    match nul(b) {
        Some(at) => Err(Error::invalid_input(format!(
            "working directory {} contains a NUL byte at offset {at}",
            shown(b)
        ))),
        None => Ok(()),
    }
}

/// Checks a program name or path: not empty, no NUL byte.
///
/// # Errors
///
/// An [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error that says what is
/// wrong and where.
///
/// # Examples
///
/// ```
/// use offspring::validate;
///
/// assert!(validate::program("git").is_ok());
/// assert_eq!(validate::program("").unwrap_err().to_string(), "invalid input: program is empty (stage: validate)");
/// ```
pub fn program(program: impl AsRef<OsStr>) -> Result<()> {
    check_program(program.as_ref())
}

/// Checks a whole argv: the program first (see [`program`]), then its arguments (no NUL
/// byte), which errors number from 1.
///
/// # Errors
///
/// An [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error for the first bad
/// item, naming it and its index; an empty argv has no program and is refused too.
///
/// # Examples
///
/// ```
/// use offspring::validate;
///
/// assert!(validate::argv(["printf", "%s\n", ""]).is_ok());
///
/// let err = validate::argv(["rm", "-f", "--", "notes\0.txt"]).unwrap_err();
/// assert!(err.to_string().contains("argument 3 contains a NUL byte at offset 5"), "{err}");
/// ```
pub fn argv<I, S>(argv: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut argv = argv.into_iter();
    let program = argv.next().ok_or_else(|| Error::invalid_input("argv is empty: no program"))?;
    check_program(program.as_ref())?;
    argv.enumerate().try_for_each(|(i, arg)| check_arg(i + 1, arg.as_ref()))
}

/// Checks an environment variable: the name is not empty and has no `=` and no NUL; the value
/// has no NUL.
///
/// # Errors
///
/// An [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error that names the
/// variable and the offset of the bad byte.
///
/// # Examples
///
/// ```
/// use offspring::validate;
///
/// assert!(validate::env("LANG", "C.UTF-8").is_ok());
/// assert!(validate::env("EMPTY", "").is_ok());
/// assert!(validate::env("", "x").is_err());
/// assert!(validate::env("A=B", "C").is_err());
/// assert!(validate::env("A", "B\0").is_err());
/// ```
pub fn env(key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Result<()> {
    check_env(key.as_ref(), Some(value.as_ref()))
}

/// Checks a working directory: not empty, no NUL byte. Whether it exists is found out when
/// the child changes into it.
///
/// # Errors
///
/// An [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error.
///
/// # Examples
///
/// ```
/// use offspring::validate;
///
/// assert!(validate::cwd("/tmp").is_ok());
/// assert!(validate::cwd("/tmp\0/x").is_err());
/// ```
pub fn cwd(dir: impl AsRef<Path>) -> Result<()> {
    check_cwd(dir.as_ref())
}

/// An argument that a program cannot read as an option: the guard for untrusted values.
///
/// Most programs treat an argument that starts with `-` as an option, wherever it comes
/// from. A file name, branch or URL taken from a user can therefore change what the program
/// does without any shell involved: `--upload-pack=touch /tmp/pwned` given to `git` as a
/// "repository" (GitPython's CVE-2022-24439), `-rf` given to `rm` as a "file". There are three
/// defences, best first:
///
/// 1. Put `--` before the untrusted arguments when the program follows the POSIX convention
///    that `--` ends the options (most do): `cmd!("rm", "-f", "--", ..files)`. For git
///    revisions, where `--` means "paths follow", use `--end-of-options` (git 2.24+).
/// 2. For a file name, [`Operand::path`] writes every relative path as `./` followed by the
///    path: `-rf` becomes `./-rf`, `+cmd` becomes `./+cmd`, which name the same files and
///    cannot be read as anything but a path.
/// 3. [`Operand::new`] refuses a value that starts with `-` (including `-` alone, which
///    many programs read as stdin), for values that have no safe rewriting.
///
/// A leading `-` is not the only way an argument becomes more than data. What each
/// constructor guards, by class:
///
/// | an untrusted value that is | read by | [`Operand::path`] | [`Operand::new`] |
/// | --- | --- | --- | --- |
/// | `-x`, `--opt=v`, `-` | almost every program, as an option or stdin | `./-x`: guarded | refused |
/// | `+cmd` | vim, more, less, old `sort`/`tail`: a command or an option | `./+cmd`: guarded | **not guarded** |
/// | `@file` | gcc, clang, rustc, javac: a response file of more options (`-wrapper`, `-Clinker`) | `./@file`: guarded | **not guarded** |
/// | `!`, `(`, `)` | find, test: expression operators | `./!`: guarded | **not guarded** |
/// | `NAME=value` | make (even after `--`), env, awk, dd: an assignment | `./NAME=value`: guarded | **not guarded** |
/// | `host:path`, `ext::cmd` | scp, rsync, git: a remote or a transport that runs `cmd` | `./host:path`: guarded | **not guarded** |
///
/// Some of these programs do not accept `--` either (make still reads `NAME=value` after
/// it), so for a file name use [`Operand::path`], and for anything else check the value
/// against what the program accepts (a branch name, a number) before it gets here.
///
/// Both constructors also refuse a NUL byte, and [`Operand::path`] an empty path. An
/// `Operand` is an `AsRef<OsStr>`, so it goes wherever an argument does.
///
/// # Examples
///
/// ```
/// use offspring::{ErrorKind, Operand};
///
/// let branch = Operand::new("main")?;
/// assert_eq!(branch.as_os_str(), "main");
///
/// let err = Operand::new("--upload-pack=touch /tmp/pwned").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
///
/// assert_eq!(Operand::path("-rf")?.as_os_str(), "./-rf");
/// assert_eq!(Operand::path("@flags")?.as_os_str(), "./@flags");
/// assert_eq!(Operand::path("CC=evil")?.as_os_str(), "./CC=evil");
/// assert_eq!(Operand::path("notes.txt")?.as_os_str(), "./notes.txt");
/// assert_eq!(Operand::path("/etc/hosts")?.as_os_str(), "/etc/hosts");
/// # Ok::<(), offspring::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[doc(alias = "untrusted")]
#[doc(alias = "positional")]
pub struct Operand(OsString);

impl Operand {
    /// Accepts `value` as an operand unless it starts with `-` or contains a NUL byte.
    ///
    /// Only a leading `-` is refused: `+cmd`, `@file`, `!`, `NAME=value` and `host:path`
    /// pass (see the table above); use [`Operand::path`] for file names.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error that shows the
    /// value.
    pub fn new(value: impl Into<OsString>) -> Result<Operand> {
        let value = value.into();
        let b = value.as_bytes();
        if b.first() == Some(&b'-') {
            return Err(Error::invalid_input(format!(
                "operand {} starts with `-` and would be read as an option \
                 (put \"--\" before it, or use Operand::path for a file name)",
                shown(b)
            )));
        }
        Operand::checked(value)
    }

    /// Accepts a file name as an operand, writing every relative path as `./` followed by
    /// the path: the same file, and never an option, a response file, an operator, an
    /// assignment or a remote (see the table above). An absolute path stays as it is.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error if the path is
    /// empty (it names no file, and `./` would name the current directory) or contains a
    /// NUL byte.
    pub fn path(path: impl AsRef<Path>) -> Result<Operand> {
        let b = path.as_ref().as_os_str().as_bytes();
        if b.is_empty() {
            return Err(Error::invalid_input("operand path is empty: it names no file"));
        }
        if b.first() != Some(&b'/') {
            let mut dotted = OsString::from("./");
            dotted.push(path.as_ref());
            return Operand::checked(dotted);
        }
        Operand::checked(path.as_ref().as_os_str().to_owned())
    }

    fn checked(value: OsString) -> Result<Operand> {
        match nul(value.as_bytes()) {
            Some(at) => Err(Error::invalid_input(format!(
                "operand {} contains a NUL byte at offset {at}",
                shown(value.as_bytes())
            ))),
            None => Ok(Operand(value)),
        }
    }

    /// The operand as an `OsStr`.
    pub fn as_os_str(&self) -> &OsStr {
        &self.0
    }

    /// The operand as an `OsString`.
    pub fn into_os_string(self) -> OsString {
        self.0
    }
}

impl AsRef<OsStr> for Operand {
    fn as_ref(&self) -> &OsStr {
        &self.0
    }
}

impl From<Operand> for OsString {
    fn from(operand: Operand) -> OsString {
        operand.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Stage};

    fn message(r: Result<()>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.stage(), Stage::Validate);
        e.to_string()
    }

    #[test]
    fn program_must_be_non_empty_without_nul() {
        assert!(check_program(OsStr::new("/bin/true")).is_ok());
        assert!(message(check_program(OsStr::new(""))).contains("program is empty"));
        let m = message(check_program(OsStr::new("tr\0ue")));
        assert!(
            m.contains(r#"program 'tr'"$(printf '\000')"'ue' contains a NUL byte at offset 2"#),
            "{m}"
        );
    }

    #[test]
    fn arguments_are_numbered_from_one() {
        assert!(check_arg(1, OsStr::new("")).is_ok());
        assert!(message(check_arg(3, OsStr::new("abcde\0")))
            .contains("argument 3 contains a NUL byte at offset 5"));
        let m = message(argv(["a", "b", "\0"]));
        assert!(m.contains("argument 2 contains a NUL byte at offset 0"), "{m}");
        assert!(message(argv(Vec::<String>::new())).contains("argv is empty"));
        assert!(message(argv(["", "x"])).contains("program is empty"));
    }

    #[test]
    fn env_names_cannot_smuggle_an_assignment() {
        let m = message(env("LD_PRELOAD=/evil.so:x", "1"));
        assert!(
            m.contains(
                "environment variable name 'LD_PRELOAD=/evil.so:x' contains `=` at offset 10"
            ),
            "{m}"
        );
        assert!(message(env("=x", "1")).contains("`=` at offset 0"));
        assert!(message(env("", "1")).contains("name is empty"));
        assert!(message(env("A\0=B", "1")).contains("a NUL byte at offset 1"));
        assert!(message(env("HOME", "/ro\0ot"))
            .contains("the value of environment variable HOME contains a NUL byte at offset 3"));
        assert!(check_env(OsStr::new("A"), None).is_ok());
        assert!(check_env(OsStr::new("A=B"), None).is_err());
        assert!(env("A", "=\n'\u{e9}").is_ok());
    }

    #[test]
    fn cwd_must_be_non_empty_without_nul() {
        assert!(cwd("relative/dir").is_ok());
        assert!(message(cwd("")).contains("working directory is empty"));
        assert!(message(cwd("/t\0")).contains("offset 2"));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let key = format!("{}=", "\u{e9}".repeat(100));
        let m = message(env(&key, "x"));
        assert!(m.contains(&format!("'{}'... (201 bytes)", "\u{e9}".repeat(32))), "{m}");
    }

    #[test]
    fn operand_refuses_options_and_rewrites_paths() {
        assert_eq!(Operand::new("file").unwrap().as_os_str(), "file");
        assert_eq!(Operand::new("").unwrap().as_os_str(), "");
        assert_eq!(Operand::new("a-b").unwrap().as_os_str(), "a-b");
        for bad in ["-", "-rf", "--", "--upload-pack=x"] {
            let e = Operand::new(bad).unwrap_err();
            assert!(e.to_string().contains("starts with `-`"), "{e}");
        }
        assert!(Operand::new("a\0").is_err());
        assert_eq!(Operand::path("-rf").unwrap().as_os_str(), "./-rf");
        assert_eq!(Operand::path("-").unwrap().as_os_str(), "./-");
        assert_eq!(Operand::path("dir/-x").unwrap().as_os_str(), "./dir/-x");
        assert!(Operand::path("-\0").is_err());
        assert_eq!(OsString::from(Operand::path("x").unwrap()), "./x");
        // Issue 16: every class that is not a leading `-`.
        for (value, dotted) in [
            ("+cmd", "./+cmd"),
            ("@args", "./@args"),
            ("!", "./!"),
            ("(", "./("),
            ("CC=evil", "./CC=evil"),
            ("host:path", "./host:path"),
            ("ext::sh -c id", "./ext::sh -c id"),
            ("./a", "././a"),
        ] {
            assert_eq!(Operand::path(value).unwrap().as_os_str(), dotted);
            // `new` guards only the leading `-`, as documented.
            assert_eq!(Operand::new(value).unwrap().as_os_str(), value);
        }
        assert_eq!(Operand::path("/abs/+x").unwrap().as_os_str(), "/abs/+x");
        assert!(Operand::path("").unwrap_err().to_string().contains("path is empty"));
    }
}
