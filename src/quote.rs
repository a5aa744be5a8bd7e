//! POSIX shell quoting, joining and splitting, on bytes.
//!
//! offspring never needs a shell: [`Command`](crate::Command) and [`cmd!`](crate::cmd) pass
//! each argument to the program as it is. This module is for the places where shell code is
//! unavoidable: a script handed to `sh -c` (what [`sh!`](crate::sh) builds), a command line
//! written into a log, a file or an `ssh` invocation, or a command line read from a
//! configuration file.
//!
//! | function | does |
//! | --- | --- |
//! | [`quote`] / [`quote_str`] | one word → shell code that reads back as exactly that word |
//! | [`join`] / [`join_str`] | many words → one command line |
//! | [`split`] / [`split_str`] | one command line → its words, or an error for syntax it does not parse exactly |
//! | [`display`] | many words → printable text for logs and error messages, never fails |
//!
//! All of them work on bytes: an argument does not have to be UTF-8. The `_str` variants are
//! conveniences for text. For a `&[u8]`, use
//! [`OsStr::from_bytes`](std::os::unix::ffi::OsStrExt::from_bytes).
//!
//! # The quoting rule
//!
//! A word made only of ASCII letters, digits and `_ @ % + , . / : = -` is written as it is
//! (so `ls -l /tmp` stays readable), unless the shell would read it as something other than
//! a plain word wherever it appears: a reserved word such as `if` or `done`, or an assignment
//! such as `PATH=x`. Every other word is put in single quotes, inside which a POSIX shell
//! gives no byte a special meaning; a single quote itself is written as `"'"`, in double
//! quotes, between two single-quoted runs:
//!
//! ```
//! use offspring::quote;
//!
//! assert_eq!(quote::quote_str("--color=auto")?, "--color=auto");
//! assert_eq!(quote::quote_str("")?, "''");
//! assert_eq!(quote::quote_str("two words")?, "'two words'");
//! assert_eq!(quote::quote_str("it's $HOME")?, r#"'it'"'"'s $HOME'"#);
//! assert_eq!(quote::quote_str("done")?, "'done'");
//! # Ok::<(), offspring::QuoteError>(())
//! ```
//!
//! The only byte that cannot be quoted is NUL: no argv or shell word can hold one, so quoting
//! refuses it with [`QuoteError::Nul`] rather than truncating the word.
//!
//! This is the rule of Python's `shlex.quote` with a safe set that also holds in command
//! position, and one exception for multibyte locales: ASCII digits that end a single-quoted
//! run right after a byte >= 0x80 are written after the closing quote (`'中'0`, not `'中0'`).
//! In GB18030 a byte 0x81-0xfe and a digit start a four-byte character, and bash swallows
//! the byte after them, even a closing quote, into that character. It does not use `$'...'`,
//! which dash 0.5.12 (Debian 12's `/bin/sh`) reads as a `$` followed by a single-quoted
//! string. The rule is fuzzed against dash and bash: for any bytes without NUL, both shells
//! read the quoted form back as exactly one word with exactly those bytes, in a C and in a
//! UTF-8 locale, in bash's POSIX mode, and in bash under GB18030, GBK, Big5, Big5-HKSCS and
//! Shift-JIS (every 1- and 2-byte word is checked exhaustively there). A quoted newline
//! followed by `^` gets an empty `''` between them, so that no line of the output starts
//! with `^` (a history substitution if the line is pasted into an interactive bash). [`join`]
//! writes other bytes as they are, invisible characters included: to show a command to a
//! person, use [`display`].
//!
//! Quoting decides how the shell *splits* a command into words; it cannot stop the command
//! from treating a word as code. `eval {}`, `sh -c {}`, `find -exec`, and bash's arithmetic
//! contexts that take a word after quote removal (`let`, `[[ {} -eq 1 ]]`, `declare -i`,
//! array subscripts), which run `$(...)` found in the value, all execute what they are
//! given, however well it is quoted. Validate such values (for example as numbers) first.
//! Likewise, a quoted first word is still looked up as a shell function or builtin before
//! `PATH` (and bash reads a first word that starts with `%` as a job, quoted or not).
//!
//! A script for `sh -c` that starts with `-` or `+` (say, [`join`] of an argv whose program
//! is `-x`) is read by the shell as options, not as the script: start it with a space.
//! [`sh!`](crate::sh) does that for you.
//!
//! # What `split` parses, and what it refuses
//!
//! [`split`] reads the words of one simple command the way a non-interactive POSIX shell
//! (`sh -c`, dash, bash) does: blanks (space, tab) separate words; single quotes; double
//! quotes, inside which a backslash escapes only `$`, `` ` ``, `"`, `\` and a newline;
//! backslash escapes outside quotes; backslash-newline as a line continuation; newlines
//! before or after the one command.
//!
//! Anything else would need the shell to run, look at the file system or know its variables
//! to get right, so `split` refuses it with an error that names the byte offset and a
//! [`Syntax`] reason, rather than guessing: `$` (parameter expansion, command substitution,
//! arithmetic), backquotes, the globs `*`, `?`, `[`, a `~` that could be expanded, `{ }`, `!`,
//! the operators `| & ; ( )`, the redirections `< >`, a `#` comment, a second command after a
//! newline, a first word that is an assignment (`NAME=value`) or a reserved word, and
//! unterminated quotes. It also refuses the constructs found (by fuzzing against the real
//! shells) that bash reads differently from POSIX: a backslash before byte 0x01 or 0x7f inside
//! double quotes, and syntax that bash in a multibyte locale reads as part of the character
//! before it ([`Syntax::Multibyte`]): a backslash right after a byte >= 0x80 (`\xb3\\;id`
//! is one word for a byte reader and two commands for bash in Big5, GBK, GB18030 and
//! Shift-JIS), and a quote, blank or other syntax right after a byte >= 0x80 and a digit. So
//! what `split` accepts means the same in every locale.
//!
//! ```
//! use offspring::quote::{self, Syntax};
//! use offspring::QuoteError;
//!
//! assert_eq!(quote::split_str(r#"grep -e "a b" 'c d' e\ f"#)?, ["grep", "-e", "a b", "c d", "e f"]);
//! assert_eq!(
//!     quote::split_str("rm -rf $HOME"),
//!     Err(QuoteError::Unsupported { offset: 7, syntax: Syntax::Dollar })
//! );
//! # Ok::<(), offspring::QuoteError>(())
//! ```
//!
//! For every word list without NUL, `split(join(words)) == words`; that is fuzzed too.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Why quoting or splitting failed, and where.
///
/// Offsets count bytes from the start of the word (for [`Nul`](QuoteError::Nul)) or of the
/// line (for the [`split`] errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuoteError {
    /// Word `index` (0 for [`quote`] and [`split`]) has a NUL byte at `offset`: no argv and
    /// no shell word can hold one.
    Nul {
        /// Which word, counting from 0.
        index: usize,
        /// The byte offset of the NUL in that word.
        offset: usize,
    },
    /// [`split`] met shell syntax at `offset` that it does not parse, and refused it.
    Unsupported {
        /// The byte offset of the syntax in the line.
        offset: usize,
        /// What the shell would do there.
        syntax: Syntax,
    },
    /// [`split`] found a quote, opened at `offset`, that is never closed.
    Unterminated {
        /// The byte offset of the opening quote.
        offset: usize,
        /// The quote character: `'` or `"`.
        quote: char,
    },
    /// [`split`] found a backslash at the very end of the line, at `offset`, where shells
    /// disagree on what it means.
    TrailingBackslash {
        /// The byte offset of the backslash.
        offset: usize,
    },
}

impl QuoteError {
    /// The byte offset the error is about.
    pub fn offset(&self) -> usize {
        match *self {
            QuoteError::Nul { offset, .. }
            | QuoteError::Unsupported { offset, .. }
            | QuoteError::Unterminated { offset, .. }
            | QuoteError::TrailingBackslash { offset } => offset,
        }
    }
}

impl fmt::Display for QuoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            QuoteError::Nul { index: 0, offset } => {
                write!(f, "NUL byte at offset {offset}: no shell word can hold one")
            }
            QuoteError::Nul { index, offset } => {
                write!(
                    f,
                    "word {index} has a NUL byte at offset {offset}: no shell word can hold one"
                )
            }
            QuoteError::Unsupported { offset, syntax } => write!(
                f,
                "{} at offset {offset} is {}: split refuses shell syntax it cannot parse exactly",
                syntax.token(),
                syntax.meaning()
            ),
            QuoteError::Unterminated { offset, quote } => {
                write!(f, "the quote {quote} at offset {offset} is never closed")
            }
            QuoteError::TrailingBackslash { offset } => {
                write!(f, "backslash at the end of the line (offset {offset})")
            }
        }
    }
}

impl std::error::Error for QuoteError {}

impl From<QuoteError> for crate::Error {
    /// An [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error at
    /// [`Stage::Validate`](crate::Stage::Validate), with the quote error as its message.
    fn from(e: QuoteError) -> crate::Error {
        crate::Error::invalid_input(e.to_string())
    }
}

/// The shell syntax [`split`] refused, in a [`QuoteError::Unsupported`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Syntax {
    /// `$`: parameter expansion, command substitution or arithmetic expansion.
    Dollar,
    /// `` ` ``: command substitution.
    Backquote,
    /// `*`, `?` or `[`: pathname expansion (a glob).
    Glob,
    /// `~` at the start of a word or after `=` or `:`: tilde expansion.
    Tilde,
    /// `{` or `}`: a command group, or brace expansion in bash.
    Brace,
    /// `!`: pipeline negation, or history expansion in an interactive bash.
    Bang,
    /// `|`, `&`, `;`, `(` or `)`: an operator that ends, joins or groups commands.
    Operator,
    /// `<` or `>`: a redirection.
    Redirection,
    /// `#` at the start of a word: a comment.
    Comment,
    /// A newline followed by a second command.
    Newline,
    /// A first word `NAME=value` or `NAME+=value`: a variable assignment, not a program.
    Assignment,
    /// A first word such as `if`, `for` or `time`: a reserved word, not a program.
    ReservedWord,
    /// Bytes that POSIX shells and bash read differently: a backslash before byte 0x01 or
    /// 0x7f inside double quotes (bash uses those bytes internally, and `"\<0x01>\\"` gives
    /// it one backslash too many).
    Unportable,
    /// A byte that bash, in a multibyte locale it supports, reads as part of the character
    /// before it: a `\` right after a byte >= 0x80 (the second byte of a Big5, GBK, GB18030
    /// or Shift-JIS character, so `\xb3\\;id` runs `id` there), or a quote, a blank or
    /// other syntax right after a byte >= 0x80 and a digit (the start of a four-byte GB18030
    /// character, which swallows the next byte). [`split`] reads bytes, as a shell does in the
    /// C and UTF-8 locales, so it refuses these rather than guess the locale.
    Multibyte,
}

impl Syntax {
    fn token(self) -> &'static str {
        match self {
            Syntax::Dollar => "`$`",
            Syntax::Backquote => "a backquote",
            Syntax::Glob => "a glob character",
            Syntax::Tilde => "`~`",
            Syntax::Brace => "a brace",
            Syntax::Bang => "`!`",
            Syntax::Operator => "an operator",
            Syntax::Redirection => "a redirection",
            Syntax::Comment => "`#`",
            Syntax::Newline => "a newline",
            Syntax::Assignment => "the first word",
            Syntax::ReservedWord => "the first word",
            Syntax::Unportable => "a backslash before byte 0x01 or 0x7f in double quotes",
            Syntax::Multibyte => "shell syntax right after a byte >= 0x80",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Syntax::Dollar => "an expansion or substitution",
            Syntax::Backquote => "a command substitution",
            Syntax::Glob => "pathname expansion",
            Syntax::Tilde => "tilde expansion",
            Syntax::Brace => "a command group or brace expansion",
            Syntax::Bang => "pipeline negation or history expansion",
            Syntax::Operator => "a control operator",
            Syntax::Redirection => "a redirection",
            Syntax::Comment => "a comment",
            Syntax::Newline => "the start of a second command",
            Syntax::Assignment => "a variable assignment",
            Syntax::ReservedWord => "a reserved word",
            Syntax::Unportable => "read differently by bash and by POSIX shells",
            Syntax::Multibyte => {
                "read by bash in Big5, GBK, GB18030 and Shift-JIS locales as part of a character"
            }
        }
    }
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.meaning())
    }
}

/// Words a shell reads as grammar, not as a command name, in command position: POSIX's
/// reserved words plus bash's. `!`, `{`, `}`, `[[` are never plain words anyway.
const RESERVED: &[&[u8]] = &[
    b"case",
    b"do",
    b"done",
    b"elif",
    b"else",
    b"esac",
    b"fi",
    b"for",
    b"if",
    b"in",
    b"then",
    b"until",
    b"while",
    b"function",
    b"select",
    b"time",
    b"coproc",
    b"]]",
];

/// Bytes that need no quoting anywhere in a word (subject to [`is_plain`]'s other rules).
fn is_safe_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_@%+,./:=-".contains(&b)
}

/// `NAME=` or `NAME+=` at the start of `w`: the shell would read the word as an assignment
/// when it comes first in a command.
fn is_assignment(w: &[u8]) -> bool {
    let name_len = match w.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            w.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count()
        }
        _ => return false,
    };
    let rest = &w[name_len..];
    rest.starts_with(b"=") || rest.starts_with(b"+=")
}

/// A word that reads back as itself without quotes, in any position of a command.
fn is_plain(w: &[u8]) -> bool {
    !w.is_empty()
        && w.iter().all(|&b| is_safe_byte(b))
        && !RESERVED.contains(&w)
        && !is_assignment(w)
}

/// The offset of the first NUL in `w`, as a [`QuoteError`] for word `index`.
fn check_nul(index: usize, w: &[u8]) -> Result<(), QuoteError> {
    match w.iter().position(|&b| b == 0) {
        Some(offset) => Err(QuoteError::Nul { index, offset }),
        None => Ok(()),
    }
}

/// Appends `w`, quoted, to `out`. `w` holds no NUL.
fn push_quoted(out: &mut Vec<u8>, w: &[u8]) {
    if is_plain(w) {
        out.extend_from_slice(w);
        return;
    }
    if w.is_empty() {
        out.extend_from_slice(b"''");
        return;
    }
    // Alternate single-quoted runs of other bytes with double-quoted runs of `'`.
    let mut rest = w;
    while !rest.is_empty() {
        let quotes = rest.iter().take_while(|&&b| b == b'\'').count();
        if quotes > 0 {
            out.push(b'"');
            out.extend_from_slice(&rest[..quotes]);
            out.push(b'"');
            rest = &rest[quotes..];
            continue;
        }
        let run = rest.iter().position(|&b| b == b'\'').unwrap_or(rest.len());
        let (quoted, digits) = rest[..run].split_at(multibyte_safe_end(&rest[..run]));
        out.push(b'\'');
        // A line that starts with `^` is a history substitution when the command is pasted
        // into an interactive bash: close and reopen the quote after such a newline, so the
        // line starts with `'` (`'a<newline>''^b'` is still the one word `a<newline>^b`).
        for (i, &b) in quoted.iter().enumerate() {
            if b == b'^' && i > 0 && quoted[i - 1] == b'\n' {
                out.extend_from_slice(b"''");
            }
            out.push(b);
        }
        out.push(b'\'');
        // Digits are plain bytes: they need no quotes.
        out.extend_from_slice(digits);
        rest = &rest[run..];
    }
}

/// Where a single-quoted `run` may end so that bash in a GB18030 locale still sees the
/// closing quote: before the ASCII digits that end the run right after a byte >= 0x80.
///
/// In GB18030 a byte 0x81-0xfe followed by a digit starts a four-byte character, and bash
/// (which reads its input one character at a time in multibyte locales) swallows the byte
/// after such a pair into that character, even a closing `'`: `'中0'` does not close. Ending
/// the quote right after the byte >= 0x80 and writing the digits unquoted (`'中'0`) is exact
/// in every locale: a quote is never the second byte of a character in any of them. Found by
/// the issue-16 audit; checked exhaustively over 1- and 2-byte words in `tests/it/shellsafe.rs`.
fn multibyte_safe_end(run: &[u8]) -> usize {
    let digits = run.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let end = run.len() - digits;
    if digits > 0 && end > 0 && run[end - 1] >= 0x80 {
        end
    } else {
        run.len()
    }
}

/// Quotes one word so that a POSIX shell reads it back as exactly that word.
///
/// The result is the word itself when it needs no quotes, otherwise single-quoted (see [the
/// module documentation](self) for the rule). It reads back as one word wherever a word may
/// appear in a command, including first.
///
/// # Errors
///
/// [`QuoteError::Nul`] if the word contains a NUL byte.
///
/// # Examples
///
/// ```
/// use std::ffi::OsStr;
/// use std::os::unix::ffi::OsStrExt;
/// use offspring::{quote, QuoteError};
///
/// // Bytes that are not UTF-8 are quoted like any others.
/// let word = OsStr::from_bytes(b"caf\xe9 menu.txt");
/// assert_eq!(quote::quote(word)?.as_bytes(), b"'caf\xe9 menu.txt'");
///
/// assert_eq!(quote::quote("a\0b"), Err(QuoteError::Nul { index: 0, offset: 1 }));
/// # Ok::<(), QuoteError>(())
/// ```
#[doc(alias = "escape")]
#[doc(alias = "shlex")]
pub fn quote(word: impl AsRef<OsStr>) -> Result<OsString, QuoteError> {
    let w = word.as_ref().as_bytes();
    check_nul(0, w)?;
    let mut out = Vec::with_capacity(w.len() + 2);
    push_quoted(&mut out, w);
    Ok(OsString::from_vec(out))
}

/// [`quote`] for text: the result is a `String`.
///
/// # Errors
///
/// [`QuoteError::Nul`] if the word contains a NUL byte.
///
/// # Examples
///
/// ```
/// use offspring::quote;
///
/// let script = format!("grep -c -- {} notes.txt", quote::quote_str("it's -v")?);
/// assert_eq!(script, r#"grep -c -- 'it'"'"'s -v' notes.txt"#);
/// # Ok::<(), offspring::QuoteError>(())
/// ```
pub fn quote_str(word: &str) -> Result<String, QuoteError> {
    let w = word.as_bytes();
    check_nul(0, w)?;
    let mut out = Vec::with_capacity(w.len() + 2);
    push_quoted(&mut out, w);
    Ok(into_string(out))
}

/// Quotes every word and joins them with single spaces into one command line.
///
/// A POSIX shell reads the result back as exactly these words; run as a command, the first
/// word is the program and the others its arguments. An empty list gives an empty string.
///
/// # Errors
///
/// [`QuoteError::Nul`] naming the first word that contains a NUL byte.
///
/// # Examples
///
/// ```
/// use offspring::quote;
///
/// let line = quote::join(["printf", "%s\n", "$(reboot)"])?;
/// assert_eq!(line, "printf '%s\n' '$(reboot)'");
///
/// let out = std::process::Command::new("sh").arg("-c").arg(&line).output().unwrap();
/// assert_eq!(out.stdout, b"$(reboot)\n");
/// # Ok::<(), offspring::QuoteError>(())
/// ```
pub fn join<I, S>(words: I) -> Result<OsString, QuoteError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    join_bytes(words, |w| w.as_ref().as_bytes()).map(OsString::from_vec)
}

/// [`join`] for text: the result is a `String`.
///
/// # Errors
///
/// [`QuoteError::Nul`] naming the first word that contains a NUL byte.
///
/// # Examples
///
/// ```
/// use offspring::quote;
///
/// assert_eq!(quote::join_str(["ssh", "host", "ls -l"])?, "ssh host 'ls -l'");
/// # Ok::<(), offspring::QuoteError>(())
/// ```
pub fn join_str<I, S>(words: I) -> Result<String, QuoteError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    join_bytes(words, |w| w.as_ref().as_bytes()).map(into_string)
}

/// The words quoted and joined with spaces, for [`join`] and [`join_str`].
fn join_bytes<S>(
    words: impl IntoIterator<Item = S>,
    bytes: impl Fn(&S) -> &[u8],
) -> Result<Vec<u8>, QuoteError> {
    let mut out = Vec::new();
    for (index, word) in words.into_iter().enumerate() {
        let w = bytes(&word);
        check_nul(index, w)?;
        if index > 0 {
            out.push(b' ');
        }
        push_quoted(&mut out, w);
    }
    Ok(out)
}

/// Text in, quoted text out: quoting only adds ASCII, so UTF-8 stays UTF-8.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| unreachable!("quoting broke UTF-8: {e}"))
}

/// Splits one command line into its words, as a POSIX shell would, or refuses.
///
/// Parses blanks, single quotes, double quotes (with their backslash rules), backslash
/// escapes, line continuations and newlines around the one command; refuses, with the byte
/// offset and a reason, everything whose result depends on running a shell: expansions,
/// globs, operators, redirections, comments, assignments, reserved words, a second command,
/// unterminated quotes. See [the module documentation](self#what-split-parses-and-what-it-refuses).
/// Quote characters are removed; an empty quoted string (`''` or `""`) is an empty word.
///
/// # Errors
///
/// [`QuoteError::Unsupported`], [`QuoteError::Unterminated`],
/// [`QuoteError::TrailingBackslash`], or [`QuoteError::Nul`] for a NUL byte in the line.
///
/// # Examples
///
/// ```
/// use offspring::quote::{self, Syntax};
/// use offspring::QuoteError;
///
/// let words = quote::split("cc -o 'my prog' \"main.c\" ''")?;
/// assert_eq!(words, ["cc", "-o", "my prog", "main.c", ""]);
///
/// assert_eq!(
///     quote::split("ls *.rs"),
///     Err(QuoteError::Unsupported { offset: 3, syntax: Syntax::Glob })
/// );
/// assert_eq!(quote::split("echo 'hi"), Err(QuoteError::Unterminated { offset: 5, quote: '\'' }));
/// # Ok::<(), QuoteError>(())
/// ```
#[doc(alias = "shlex")]
#[doc(alias = "tokenize")]
pub fn split(line: impl AsRef<OsStr>) -> Result<Vec<OsString>, QuoteError> {
    let words = Splitter::new(line.as_ref().as_bytes()).run()?;
    Ok(words.into_iter().map(OsString::from_vec).collect())
}

/// [`split`] for text: the words are `String`s.
///
/// # Errors
///
/// As [`split`].
///
/// # Examples
///
/// ```
/// use offspring::quote;
///
/// assert_eq!(quote::split_str("code --wait")?, ["code", "--wait"]);
/// # Ok::<(), offspring::QuoteError>(())
/// ```
pub fn split_str(line: &str) -> Result<Vec<String>, QuoteError> {
    let words = Splitter::new(line.as_bytes()).run()?;
    // Only ASCII syntax is removed, at character boundaries: the words are UTF-8.
    Ok(words.into_iter().map(into_string).collect())
}

/// The state of one [`split`].
struct Splitter<'a> {
    line: &'a [u8],
    i: usize,
    words: Vec<Vec<u8>>,
    /// The word being read, once one has started (an empty `''` starts one too).
    word: Option<Vec<u8>>,
    /// Where the current word started.
    word_start: usize,
    /// Whether every byte of the current word so far was unquoted (for the first-word checks).
    all_unquoted: bool,
    /// Whether the last byte added to the word was an unquoted `=` or `:`.
    after_eq_or_colon: bool,
    /// The offset of the newline that ended the command, if one did.
    ended_at: Option<usize>,
}

impl<'a> Splitter<'a> {
    fn new(line: &'a [u8]) -> Splitter<'a> {
        Splitter {
            line,
            i: 0,
            words: Vec::new(),
            word: None,
            word_start: 0,
            all_unquoted: true,
            after_eq_or_colon: false,
            ended_at: None,
        }
    }

    fn unsupported(&self, offset: usize, syntax: Syntax) -> QuoteError {
        QuoteError::Unsupported { offset, syntax }
    }

    /// Whether bash, in some multibyte locale, may read the byte at `at` as part of the
    /// character before it (see [`Syntax::Multibyte`]): a `\` right after a byte >= 0x80, or
    /// any byte after a byte >= 0x80 and a digit.
    fn swallowed(&self, at: usize) -> bool {
        let before = |n: usize| at.checked_sub(n).map(|i| self.line[i]);
        (self.line[at] == b'\\' && before(1).is_some_and(|b| b >= 0x80))
            || (before(1).is_some_and(|b| b.is_ascii_digit())
                && before(2).is_some_and(|b| b >= 0x80))
    }

    /// Refuses the syntax byte at `at` if bash may swallow it.
    fn check_swallowed(&self, at: usize) -> Result<(), QuoteError> {
        if self.swallowed(at) {
            return Err(self.unsupported(at, Syntax::Multibyte));
        }
        Ok(())
    }

    /// The current word, starting one (and refusing a second command) if needed.
    fn word(&mut self) -> Result<&mut Vec<u8>, QuoteError> {
        if self.word.is_none() {
            if let Some(at) = self.ended_at {
                return Err(self.unsupported(at, Syntax::Newline));
            }
            self.word_start = self.i;
            self.all_unquoted = true;
            self.after_eq_or_colon = false;
        }
        Ok(self.word.get_or_insert_with(Vec::new))
    }

    fn push_quoted(&mut self, bytes: &[u8]) -> Result<(), QuoteError> {
        self.word()?.extend_from_slice(bytes);
        self.all_unquoted = false;
        self.after_eq_or_colon = false;
        Ok(())
    }

    fn push_unquoted(&mut self, b: u8) -> Result<(), QuoteError> {
        let offset = self.i;
        let first = self.words.is_empty();
        self.word()?.push(b);
        let assignment = first && b == b'=' && self.all_unquoted;
        if assignment && self.word.as_deref().is_some_and(is_assignment) {
            return Err(self.unsupported(offset, Syntax::Assignment));
        }
        self.after_eq_or_colon = b == b'=' || b == b':';
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), QuoteError> {
        if let Some(word) = self.word.take() {
            if self.words.is_empty() && self.all_unquoted && RESERVED.contains(&word.as_slice()) {
                return Err(self.unsupported(self.word_start, Syntax::ReservedWord));
            }
            self.words.push(word);
        }
        Ok(())
    }

    fn run(mut self) -> Result<Vec<Vec<u8>>, QuoteError> {
        while let Some(&b) = self.line.get(self.i) {
            let at = self.i;
            // Bytes that are literal in a word mean the same when swallowed; others do not.
            if !(is_safe_byte(b) || b >= 0x80) {
                self.check_swallowed(at)?;
            }
            let syntax = match b {
                b' ' | b'\t' => {
                    self.end_word()?;
                    self.i += 1;
                    continue;
                }
                b'\n' => {
                    self.end_word()?;
                    if !self.words.is_empty() && self.ended_at.is_none() {
                        self.ended_at = Some(at);
                    }
                    self.i += 1;
                    continue;
                }
                b'\'' => {
                    self.single_quoted()?;
                    continue;
                }
                b'"' => {
                    self.double_quoted()?;
                    continue;
                }
                b'\\' => {
                    match self.line.get(at + 1) {
                        None => return Err(QuoteError::TrailingBackslash { offset: at }),
                        Some(0) => return Err(QuoteError::Nul { index: 0, offset: at + 1 }),
                        Some(b'\n') => {}
                        Some(&c) => self.push_quoted(&[c])?,
                    }
                    self.i += 2;
                    continue;
                }
                0 => return Err(QuoteError::Nul { index: 0, offset: at }),
                b'$' => Syntax::Dollar,
                b'`' => Syntax::Backquote,
                b'*' | b'?' | b'[' => Syntax::Glob,
                b'{' | b'}' => Syntax::Brace,
                b'!' => Syntax::Bang,
                b'|' | b'&' | b';' | b'(' | b')' => Syntax::Operator,
                b'<' | b'>' => Syntax::Redirection,
                b'#' if self.word.is_none() => Syntax::Comment,
                b'~' if self.word.is_none() || self.after_eq_or_colon => Syntax::Tilde,
                _ => {
                    self.push_unquoted(b)?;
                    self.i += 1;
                    continue;
                }
            };
            return Err(self.unsupported(at, syntax));
        }
        self.end_word()?;
        Ok(self.words)
    }

    /// `'...'`: every byte up to the next `'` is literal.
    fn single_quoted(&mut self) -> Result<(), QuoteError> {
        let open = self.i;
        let body = &self.line[open + 1..];
        let len = body
            .iter()
            .position(|&b| b == b'\'')
            .ok_or(QuoteError::Unterminated { offset: open, quote: '\'' })?;
        if let Some(nul) = body[..len].iter().position(|&b| b == 0) {
            return Err(QuoteError::Nul { index: 0, offset: open + 1 + nul });
        }
        self.check_swallowed(open + 1 + len)?;
        self.push_quoted(&body[..len])?;
        self.i = open + 1 + len + 1;
        Ok(())
    }

    /// `"..."`: literal except `$` and `` ` `` (refused) and `\` before `$ ` " \` or newline.
    fn double_quoted(&mut self) -> Result<(), QuoteError> {
        let open = self.i;
        let unterminated = QuoteError::Unterminated { offset: open, quote: '"' };
        let mut text = Vec::new();
        let mut i = open + 1;
        loop {
            let b = *self.line.get(i).ok_or(unterminated)?;
            if matches!(b, b'"' | b'\\' | b'$' | b'`') {
                self.check_swallowed(i)?;
            }
            match b {
                b'"' => break,
                b'\\' => match *self.line.get(i + 1).ok_or(unterminated)? {
                    b'\n' => i += 2,
                    // Found by the quote_shell fuzz target: bash mishandles what follows.
                    0x01 | 0x7f => return Err(self.unsupported(i, Syntax::Unportable)),
                    c @ (b'$' | b'`' | b'"' | b'\\') => {
                        text.push(c);
                        i += 2;
                    }
                    _ => {
                        text.push(b'\\');
                        i += 1;
                    }
                },
                b'$' => return Err(self.unsupported(i, Syntax::Dollar)),
                b'`' => return Err(self.unsupported(i, Syntax::Backquote)),
                0 => return Err(QuoteError::Nul { index: 0, offset: i }),
                _ => {
                    text.push(b);
                    i += 1;
                }
            }
        }
        self.push_quoted(&text)?;
        self.i = i + 1;
        Ok(())
    }
}

/// Quotes words for people: printable text that pastes into a POSIX shell as the same argv.
///
/// For logs and error messages (offspring's own errors use it). Unlike [`join`] it never
/// fails and returns a `String` whatever the bytes: words are quoted as by [`quote`], and
/// bytes that are not UTF-8, control characters other than newline, the Unicode controls
/// that reorder text (bidi overrides), and characters a terminal shows as nothing or as a
/// plain space (zero-width and format characters such as U+2060 and U+00AD, variation
/// selectors, tags, Hangul fillers, U+2028, every space but U+0020) are written as
/// `"$(printf '\ooo')"` with octal escapes, so a terminal shows them without acting on them,
/// two different command lines never look the same, and a shell still rebuilds the exact
/// bytes. A newline stays a newline inside single quotes, because command substitution would
/// drop it; a `^` right after it is escaped too (pasted into an interactive bash, a line that
/// starts with `^` is a history substitution). A NUL byte, which no argv can hold, is shown
/// the same way as `\000` (a shell would drop it).
///
/// # Examples
///
/// ```
/// use std::ffi::OsStr;
/// use std::os::unix::ffi::OsStrExt;
/// use offspring::quote;
///
/// let argv = [OsStr::new("cat"), OsStr::new("my file"), OsStr::from_bytes(b"\x1b[2Jcaf\xe9")];
/// let shown = quote::display(argv);
/// assert_eq!(shown, r#"cat 'my file' "$(printf '\033')"'[2Jcaf'"$(printf '\351')""#);
///
/// let out = std::process::Command::new("sh")
///     .arg("-c")
///     .arg(format!("printf '%s|' {shown}"))
///     .output()
///     .unwrap();
/// assert_eq!(out.stdout, b"cat|my file|\x1b[2Jcaf\xe9|");
/// ```
pub fn display<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut out = String::new();
    for (index, word) in words.into_iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        push_display(&mut out, word.as_ref().as_bytes());
    }
    out
}

/// One piece of a word, for [`push_display`].
#[derive(Clone, Copy, PartialEq)]
enum Piece {
    /// Printable text, single-quoted.
    Text,
    /// Single quotes, double-quoted.
    Quotes,
    /// Bytes that are written with printf octal escapes.
    Octal,
    /// ASCII digits, unquoted.
    Bare,
}

/// Whether `c` is shown through printf: control characters except newline, and the Unicode
/// characters that reorder text or that a terminal shows as nothing or as a plain space, so
/// that two different command lines could look the same: bidi controls, format characters
/// (zero-width, invisible operators, soft hyphen, tags), variation selectors, fillers, and
/// every space but U+0020.
fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{a0}'
                | '\u{ad}'
                | '\u{34f}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{115f}'..='\u{1160}'
                | '\u{1680}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{2000}'..='\u{200f}'
                | '\u{2028}'..='\u{202f}'
                | '\u{205f}'..='\u{206f}'
                | '\u{2800}'
                | '\u{3000}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}'
        )
}

/// Appends one word for [`display`].
fn push_display(out: &mut String, w: &[u8]) {
    if is_plain(w) {
        // Plain words are ASCII.
        out.push_str(std::str::from_utf8(w).unwrap_or_default());
        return;
    }
    if w.is_empty() {
        out.push_str("''");
        return;
    }
    let mut open = None;
    let mut prev = None;
    let mut rest = w;
    while !rest.is_empty() {
        let (valid, invalid) = utf8_chunk(rest);
        for c in valid.chars() {
            if c == '\'' {
                switch_piece(out, &mut open, Piece::Quotes);
                out.push(c);
            } else if is_hidden(c) || (c == '^' && prev == Some('\n')) {
                // (A `^` that starts a line is a history substitution when pasted into an
                // interactive bash.)
                switch_piece(out, &mut open, Piece::Octal);
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    push_octal(out, b);
                }
            } else if c.is_ascii_digit()
                && (open == Some(Piece::Bare) || prev.is_some_and(|p| !p.is_ascii()))
            {
                // Digits after a non-ASCII character go outside the quotes, as in [`quote`]:
                // bash in a GB18030 locale would not see a closing quote after them.
                switch_piece(out, &mut open, Piece::Bare);
                out.push(c);
            } else {
                switch_piece(out, &mut open, Piece::Text);
                out.push(c);
            }
            prev = Some(c);
        }
        if !invalid.is_empty() {
            switch_piece(out, &mut open, Piece::Octal);
            for &b in invalid {
                push_octal(out, b);
            }
            prev = None;
        }
        rest = &rest[valid.len() + invalid.len()..];
    }
    close_piece(out, open);
}

/// The longest valid UTF-8 prefix of `rest` and the invalid bytes after it (empty at the end;
/// at most one bad sequence), as `<[u8]>::utf8_chunks` gives from Rust 1.79.
fn utf8_chunk(rest: &[u8]) -> (&str, &[u8]) {
    match std::str::from_utf8(rest) {
        Ok(text) => (text, &[][..]),
        Err(e) => {
            let (text, tail) = rest.split_at(e.valid_up_to());
            let bad = e.error_len().unwrap_or(tail.len());
            // `text` is the valid prefix that `from_utf8` just checked.
            (std::str::from_utf8(text).unwrap_or_default(), &tail[..bad])
        }
    }
}

/// Closes the piece that is open, if any.
fn close_piece(out: &mut String, open: Option<Piece>) {
    match open {
        Some(Piece::Text) => out.push('\''),
        Some(Piece::Quotes) => out.push('"'),
        Some(Piece::Octal) => out.push_str("')\""),
        Some(Piece::Bare) | None => {}
    }
}

/// Makes `to` the open piece, closing the previous one.
fn switch_piece(out: &mut String, open: &mut Option<Piece>, to: Piece) {
    if *open != Some(to) {
        close_piece(out, *open);
        out.push_str(match to {
            Piece::Text => "'",
            Piece::Quotes => "\"",
            Piece::Octal => "\"$(printf '",
            Piece::Bare => "",
        });
        *open = Some(to);
    }
}

/// `\ooo`: always three digits, so a following escape cannot be misread.
fn push_octal(out: &mut String, b: u8) {
    out.push('\\');
    for shift in [6, 3, 0] {
        out.push(char::from(b'0' + ((b >> shift) & 7)));
    }
}

/// Text from a child (the stderr tail of an error message) made safe for a terminal, by the
/// rule of [`display`]: newlines stay, and the bytes `display` would write through printf
/// (control characters, escape sequences, invisible and bidi characters, bytes that are not
/// UTF-8) become `\ooo` octal escapes, as they would appear inside its `printf '...'`; a
/// backslash is written `\\`, so the text reads back unambiguously.
pub(crate) fn display_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, invalid) = utf8_chunk(rest);
        for c in valid.chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if is_hidden(c) {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    push_octal(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in invalid {
            push_octal(&mut out, b);
        }
        rest = &rest[valid.len() + invalid.len()..];
    }
    out
}

/// An argv quoted for display (error messages, logs): see [`display`].
pub(crate) fn display_argv(argv: &[OsString]) -> String {
    display(argv)
}

/// A path quoted for display (error messages, logs): see [`display`].
pub(crate) fn display_path(p: &Path) -> String {
    display([p])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(w: &[u8]) -> Vec<u8> {
        quote(OsStr::from_bytes(w)).unwrap().into_vec()
    }

    fn s(line: &str) -> Result<Vec<String>, QuoteError> {
        split_str(line)
    }

    fn unsupported(offset: usize, syntax: Syntax) -> Result<Vec<String>, QuoteError> {
        Err(QuoteError::Unsupported { offset, syntax })
    }

    #[test]
    fn plain_words_pass_through() {
        for w in [
            "a",
            "-",
            "--",
            "-rf",
            "--color=auto",
            "/usr/bin/env",
            "a,b",
            "%s",
            "user@host:/p",
            "1+1",
        ] {
            assert_eq!(q(w.as_bytes()), w.as_bytes(), "{w}");
            assert_eq!(s(w).unwrap(), [w]);
        }
    }

    #[test]
    fn words_that_change_meaning_in_command_position_are_quoted() {
        assert_eq!(q(b"if"), b"'if'");
        assert_eq!(q(b"time"), b"'time'");
        assert_eq!(q(b"PATH=/x"), b"'PATH=/x'");
        assert_eq!(q(b"A+=1"), b"'A+=1'");
        assert_eq!(q(b"_x=1"), b"'_x=1'");
        // Not assignments: no name before `=`.
        assert_eq!(q(b"=x"), b"=x");
        assert_eq!(q(b"1A=x"), b"1A=x");
        assert_eq!(q(b"-a=b"), b"-a=b");
        assert_eq!(q(b"iff"), b"iff");
    }

    #[test]
    fn single_quotes_alternate_with_double_quoted_runs() {
        assert_eq!(q(b"'"), b"\"'\"");
        assert_eq!(q(b"''"), b"\"''\"");
        assert_eq!(q(b"a'b"), b"'a'\"'\"'b'");
        assert_eq!(q(b"'a'"), b"\"'\"'a'\"'\"");
        assert_eq!(q(b""), b"''");
        assert_eq!(q(b"a\nb"), b"'a\nb'");
        assert_eq!(q(b"\xff\xfe"), b"'\xff\xfe'");
        // Issue 16: no line starts with `^`, and no closing quote follows a byte >= 0x80
        // and a digit.
        assert_eq!(q(b"a\n^b^c"), b"'a\n''^b^c'");
        assert_eq!(q(b"\n^"), b"'\n''^'");
        assert_eq!(q("\u{4e2d}0".as_bytes()), "'\u{4e2d}'0".as_bytes());
        assert_eq!(q(b"\xad012'x"), b"'\xad'012\"'\"'x'");
        assert_eq!(q(b"\xad0a"), b"'\xad0a'");
        assert_eq!(q(b"0\xad"), b"'0\xad'");
    }

    #[test]
    fn quote_refuses_nul_with_offset() {
        assert_eq!(quote("ab\0"), Err(QuoteError::Nul { index: 0, offset: 2 }));
        assert_eq!(join(["a", "b", "c\0d"]), Err(QuoteError::Nul { index: 2, offset: 1 }));
        assert_eq!(join_str(["\0"]), Err(QuoteError::Nul { index: 0, offset: 0 }));
    }

    #[test]
    fn split_parses_quotes_and_escapes() {
        assert_eq!(s("").unwrap(), Vec::<String>::new());
        assert_eq!(s(" \t ").unwrap(), Vec::<String>::new());
        assert_eq!(s("''").unwrap(), [""]);
        assert_eq!(s("\"\" ''").unwrap(), ["", ""]);
        assert_eq!(s("a'b'\"c\"d").unwrap(), ["abcd"]);
        assert_eq!(s(r"a\ b \'").unwrap(), ["a b", "'"]);
        assert_eq!(s(r#""a\"b\\c\$d\`e\zf""#).unwrap(), [r#"a"b\c$d`e\zf"#]);
        assert_eq!(s("'a\\b'").unwrap(), ["a\\b"]);
        assert_eq!(s("'a\nb'").unwrap(), ["a\nb"]);
        assert_eq!(s("a#b '#'").unwrap(), ["a#b", "#"]);
        assert_eq!(s("HEAD~3 a=b ]").unwrap(), ["HEAD~3", "a=b", "]"]);
        assert_eq!(s("a\\~ '~' \\#").unwrap(), ["a~", "~", "#"]);
        assert_eq!(s("'if' \\if x=1 'x=1' x\\=1").unwrap(), ["if", "if", "x=1", "x=1", "x=1"]);
        assert_eq!(s("\"!\"").unwrap(), ["!"]);
    }

    #[test]
    fn split_handles_newlines() {
        assert_eq!(s("a\\\nb").unwrap(), ["ab"]);
        assert_eq!(s("\"a\\\nb\"").unwrap(), ["ab"]);
        assert_eq!(s("\\\na").unwrap(), ["a"]);
        assert_eq!(s("\n\n a b\n\n").unwrap(), ["a", "b"]);
        assert_eq!(s("a\nb"), unsupported(1, Syntax::Newline));
        assert_eq!(s("a\n\n b"), unsupported(1, Syntax::Newline));
    }

    #[test]
    fn split_refuses_what_it_cannot_parse_exactly() {
        assert_eq!(s("echo $HOME"), unsupported(5, Syntax::Dollar));
        assert_eq!(s("echo \"$(id)\""), unsupported(6, Syntax::Dollar));
        assert_eq!(s("echo `id`"), unsupported(5, Syntax::Backquote));
        assert_eq!(s("echo \"`id`\""), unsupported(6, Syntax::Backquote));
        assert_eq!(s("ls a*"), unsupported(4, Syntax::Glob));
        assert_eq!(s("ls ?"), unsupported(3, Syntax::Glob));
        assert_eq!(s("ls [ab]"), unsupported(3, Syntax::Glob));
        assert_eq!(s("cd ~"), unsupported(3, Syntax::Tilde));
        assert_eq!(s("x a=~"), unsupported(4, Syntax::Tilde));
        assert_eq!(s("x a:~"), unsupported(4, Syntax::Tilde));
        assert_eq!(s("echo {a,b}"), unsupported(5, Syntax::Brace));
        assert_eq!(s("! true"), unsupported(0, Syntax::Bang));
        assert_eq!(s("a|b"), unsupported(1, Syntax::Operator));
        assert_eq!(s("a & b"), unsupported(2, Syntax::Operator));
        assert_eq!(s("a;b"), unsupported(1, Syntax::Operator));
        assert_eq!(s("(a)"), unsupported(0, Syntax::Operator));
        assert_eq!(s("a >f"), unsupported(2, Syntax::Redirection));
        assert_eq!(s("a <f"), unsupported(2, Syntax::Redirection));
        assert_eq!(s("a #c"), unsupported(2, Syntax::Comment));
        assert_eq!(s("X=1 a"), unsupported(1, Syntax::Assignment));
        assert_eq!(s("X+=1 a"), unsupported(2, Syntax::Assignment));
        assert_eq!(s("  if true"), unsupported(2, Syntax::ReservedWord));
        assert_eq!(s("\"\\\u{1}\\\\\""), unsupported(1, Syntax::Unportable));
        assert_eq!(s("x \"a\\\u{7f}\""), unsupported(4, Syntax::Unportable));
        assert_eq!(s("\\\u{1}\\\\ '\\\u{1}\\\\'").unwrap(), ["\u{1}\\", "\\\u{1}\\\\"]);
        assert_eq!(s("a 'b"), Err(QuoteError::Unterminated { offset: 2, quote: '\'' }));
        assert_eq!(s("a \"b\\\""), Err(QuoteError::Unterminated { offset: 2, quote: '"' }));
        assert_eq!(s("a\\"), Err(QuoteError::TrailingBackslash { offset: 1 }));
        assert_eq!(split("a '\0'"), Err(QuoteError::Nul { index: 0, offset: 3 }));
        assert_eq!(split("a \"\0\""), Err(QuoteError::Nul { index: 0, offset: 3 }));
        assert_eq!(split("\0"), Err(QuoteError::Nul { index: 0, offset: 0 }));
        // Found by the quote_roundtrip fuzz target: an escaped NUL is still a NUL.
        assert_eq!(split("a\\\0"), Err(QuoteError::Nul { index: 0, offset: 2 }));
    }

    #[test]
    fn split_inverts_join() {
        let words: &[&[u8]] =
            &[b"", b"'", b"\"", b"\\", b"$x", b"a b", b"\n", b"\xff", b"if", b"A=1", b"~", b"#"];
        let line = join(words.iter().map(|w| OsStr::from_bytes(w))).unwrap();
        let back = split(&line).unwrap();
        assert_eq!(back.iter().map(|w| w.as_bytes()).collect::<Vec<_>>(), words);
    }

    #[test]
    fn display_writes_printable_text() {
        let d = |w: &[u8]| display([OsStr::from_bytes(w)]);
        assert_eq!(d(b"plain"), "plain");
        assert_eq!(d(b""), "''");
        assert_eq!(d(b"a b"), "'a b'");
        assert_eq!(d(b"it's"), r#"'it'"'"'s'"#);
        assert_eq!(d(b"\t"), r#""$(printf '\011')""#);
        assert_eq!(d(b"a\nb"), "'a\nb'");
        assert_eq!(d(b"\xff\x01'"), r#""$(printf '\377\001')""'""#);
        assert_eq!(d("x\u{202e}y".as_bytes()), r#"'x'"$(printf '\342\200\256')"'y'"#);
        assert_eq!(d("caf\u{e9}".as_bytes()), "'caf\u{e9}'");
        assert_eq!(d(b"\0"), r#""$(printf '\000')""#);
        assert_eq!(display_path(Path::new("/tmp/a b")), "'/tmp/a b'");
        assert_eq!(display_argv(&["ls".into(), "-l".into()]), "ls -l");
    }

    #[test]
    fn errors_say_where_and_why() {
        let e = split_str("echo `id`").unwrap_err();
        assert_eq!(e.offset(), 5);
        assert_eq!(
            e.to_string(),
            "a backquote at offset 5 is a command substitution: split refuses shell syntax it cannot parse exactly"
        );
        let e = join(["a", "b\0"]).unwrap_err();
        assert_eq!(e.to_string(), "word 1 has a NUL byte at offset 1: no shell word can hold one");
        let e: crate::Error = e.into();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
    }
}
