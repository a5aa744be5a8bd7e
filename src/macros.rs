//! `cmd!` and `sh!`: interpolation that is safe by construction, with `macro_rules!` only.
//!
//! `cmd!` never involves a shell: each value becomes one argument. `sh!` builds shell code
//! from a template the programmer wrote and values that are always quoted; the template is
//! checked at compile time by a `const fn` lexer ([`check_template`]) that refuses a
//! placeholder anywhere a quoted value would not stay one word (inside quotes, after a
//! backslash or a `$`, in backquotes, `${...}`, `$((...))`, a comment or after a here-document),
//! and a placeholder count that differs from the value count.
//!
//! The items here are the macros' support code: public so that the macros can reach them from
//! other crates, hidden from the documentation, and not part of the API.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::command::Command;

/// Builds a [`Command`](crate::Command) from a program and arguments, with no shell: every
/// value is exactly one argument.
///
/// ```text
/// cmd!(program)
/// cmd!(program, arg, arg, ..args, arg)
/// ```
///
/// `program` and each `arg` are expressions of any type that is `AsRef<OsStr>` (`&str`,
/// `String`, `Path`, `OsString`, [`Operand`](crate::Operand), ...); they are borrowed, not
/// moved. `..args` (a splat) is an expression that is `IntoIterator` with items that are
/// `AsRef<OsStr>`, and adds one argument per item (it is taken by value; write `..&list` to
/// keep the list). Values are never split on spaces, never globbed, never read by a shell:
/// a file called `x; rm -rf ~` is one argument, whatever it contains.
///
/// The result is an ordinary `Command`, so everything else (environment, working
/// directory, stdio) is set with its methods. Values that cannot go into an argv (a NUL
/// byte) make the spawn fail with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
/// before anything runs.
///
/// An untrusted value that starts with `-` is still read as an option by most programs: put
/// `"--"` before untrusted values, or see [`Operand`](crate::Operand).
///
/// # Examples
///
/// ```
/// use offspring::cmd;
///
/// let name = "x; echo INJECTED";
/// let flags = ["-n", "--"];
/// let out = cmd!("printf", "[%s]", ..flags, name, "").output()?;
/// assert_eq!(out.stdout, b"[-n][--][x; echo INJECTED][]");
/// # Ok::<(), offspring::Error>(())
/// ```
#[macro_export]
macro_rules! cmd {
    ($program:expr $(,)?) => {
        $crate::Command::new(&$program)
    };
    ($program:expr, $($rest:tt)*) => {{
        let mut __offspring_cmd = $crate::Command::new(&$program);
        $crate::__cmd_args!(__offspring_cmd; $($rest)*);
        __offspring_cmd
    }};
}

/// Adds `cmd!`'s arguments one by one, in order.
#[doc(hidden)]
#[macro_export]
macro_rules! __cmd_args {
    ($cmd:ident;) => {};
    ($cmd:ident; .. $args:expr $(, $($rest:tt)*)?) => {
        $cmd.args($args);
        $crate::__cmd_args!($cmd; $($($rest)*)?);
    };
    ($cmd:ident; $arg:expr $(, $($rest:tt)*)?) => {
        $cmd.arg(&$arg);
        $crate::__cmd_args!($cmd; $($($rest)*)?);
    };
}

/// Builds a [`Command`](crate::Command) that runs a shell script, `/bin/sh -c SCRIPT`, from a
/// template in which every interpolated value is quoted.
///
/// <div class="warning">
///
/// **The template is shell code.** It is run by `/bin/sh` with all the power of a shell:
/// pipes, redirections, expansions, globs, `;`. It must be a string literal, so it is
/// written by the programmer; data goes only into the values, which are always quoted.
/// Never build a template or a `sh -c` argument with `format!`: that is how programs get
/// owned (see [the crate documentation](crate#shell-quoting)). When no shell feature is needed,
/// use [`cmd!`](crate::cmd), which runs no shell at all.
///
/// </div>
///
/// ```text
/// sh!("template with {} placeholders", value, ..values)
/// ```
///
/// Each `{}` in the template takes the next value, quoted by the rule of
/// [`quote::quote`](crate::quote::quote), so the shell reads it back as exactly one word with
/// exactly the value's bytes. A splat `..values` (an `IntoIterator` of `AsRef<OsStr>`) fills
/// its placeholder with all its items, each quoted, separated by spaces: one word each.
/// `{{` and `}}` write a literal `{` and `}` (as in `format!`): `${{HOME}}`, `{{ a; b; }}`.
///
/// # Compile-time checks
///
/// The template is checked when the program is compiled, so a mistake is a compile error,
/// never a runtime surprise or an injection:
///
/// - the number of `{}` placeholders must equal the number of values;
/// - a `{` or `}` that is not part of `{}`, `{{` or `}}` is refused;
/// - a placeholder must stand where a quoted word keeps its meaning: not inside `'...'` or
///   `"..."` (the value is quoted already; `"{}"` would put its quotes inside yours), not
///   right after a `\` or a `$`, not inside backquotes, `${...}`, `$((...))`, bash's
///   `((...))` or `$[...]` (arithmetic that runs `$(...)` found in a quoted value), not in a
///   comment, and not anywhere after a here-document `<<`. Placeholders inside `$(...)` are
///   fine. The checker does not follow `case` inside `$(...)` and refuses it there;
/// - no placeholder may come after a `$'...'`, which dash 0.5.12 does not have: it reads `$`
///   and a single-quoted string, so the quotes after it pair up differently than in bash;
/// - a placeholder must not extend a parameter (`$P{}`, `$${}`: write `${{P}}{}`) or a
///   tilde (`~{}` with `root` is `/root`), come before a `=` in the same word (a value such as `PATH` would make the word an
///   assignment), or come right before `<` or `>` (a number would be a file descriptor);
/// - a splat must be a word of its own, with a blank before it and a blank, `;`, `|`, `&` or
///   `)` after it: glued to other text (`X={}`) its second item would be a word of its own,
///   and an empty splat would change what follows (`{}#x` would become a comment);
/// - where dash, bash and bash in POSIX mode read the template differently, it is refused:
///   a `'` inside `"${x:-...}"`, a `$((` or `((` closed by a single `)`. Line continuations
///   (backslash-newline) are deleted first, as the shells do, so they hide nothing.
///
/// Quoting keeps each value one word; it does not stop a command from running a word as
/// code: `sh!("eval {}", x)`, `sh!("bash -c {}", x)`, `alias a={}`, `trap {} EXIT`,
/// `. {}` and bash's arithmetic on a word (`let {}`, `[[ {} -eq 1 ]]`, `declare -i`, array
/// subscripts, `printf -v`) execute `x` however it is quoted (see
/// [the quoting rule](crate::quote#the-quoting-rule)).
///
/// A value with a NUL byte cannot be quoted (no shell word holds one); it is kept as it is,
/// so spawning the command fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput)
/// and nothing runs.
///
/// # Examples
///
/// ```
/// use offspring::sh;
///
/// let pattern = "it's $(not) a command";
/// let files = ["a b.txt", "-v"];
/// let out = sh!("printf '%s\\n' {} | grep -c -F -e {}; echo {}", pattern, pattern, ..files)
///     .output()?;
/// assert_eq!(out.stdout, b"1\na b.txt -v\n");
/// # Ok::<(), offspring::Error>(())
/// ```
///
/// A template that does not fit its values does not compile:
///
/// ```compile_fail
/// let cmd = offspring::sh!("grep {} {}", "pattern");
/// ```
///
/// ```compile_fail
/// let cmd = offspring::sh!("echo '{}'", "no quotes needed, or allowed");
/// ```
#[macro_export]
macro_rules! sh {
    ($template:literal $(, $($values:tt)*)?) => {{
        const _: () = $crate::macros::check_template($template, $crate::__sh_splats!($($($values)*)?));
        let mut __offspring_script = $crate::macros::Script::new($template);
        $crate::__sh_values!(__offspring_script; $($($values)*)?);
        __offspring_script.into_command()
    }};
}

/// `sh!`'s values as a list of whether each is a splat (`..values`): its length is the count.
#[doc(hidden)]
#[macro_export]
macro_rules! __sh_splats {
    (@ [$($kinds:expr),*]) => { &[$($kinds),*] };
    (@ [$($kinds:expr),*] .. $values:expr $(, $($rest:tt)*)?) => {
        $crate::__sh_splats!(@ [$($kinds,)* true] $($($rest)*)?)
    };
    (@ [$($kinds:expr),*] $value:expr $(, $($rest:tt)*)?) => {
        $crate::__sh_splats!(@ [$($kinds,)* false] $($($rest)*)?)
    };
    ($($values:tt)*) => { $crate::__sh_splats!(@ [] $($values)*) };
}

/// Fills `sh!`'s placeholders one by one, in order.
#[doc(hidden)]
#[macro_export]
macro_rules! __sh_values {
    ($script:ident;) => {};
    ($script:ident; .. $values:expr $(, $($rest:tt)*)?) => {
        $script.values($values);
        $crate::__sh_values!($script; $($($rest)*)?);
    };
    ($script:ident; $value:expr $(, $($rest:tt)*)?) => {
        $script.value(&$value);
        $crate::__sh_values!($script; $($($rest)*)?);
    };
}

/// A script being built from an `sh!` template that [`check_template`] accepted.
#[doc(hidden)]
#[derive(Debug)]
pub struct Script<'t> {
    template: &'t [u8],
    /// How far into the template the script has been written.
    at: usize,
    script: Vec<u8>,
}

impl<'t> Script<'t> {
    /// Starts a script from `template`.
    pub fn new(template: &'t str) -> Script<'t> {
        Script { template: template.as_bytes(), at: 0, script: Vec::with_capacity(template.len()) }
    }

    /// Copies the template up to the next placeholder (or its end), decoding `{{` and `}}`.
    /// Returns whether a placeholder was found.
    fn advance(&mut self) -> bool {
        let t = self.template;
        while self.at < t.len() {
            let b = t[self.at];
            let next = t.get(self.at + 1).copied();
            self.at += 1;
            match (b, next) {
                (b'{', Some(b'}')) => {
                    self.at += 1;
                    return true;
                }
                (b'{', Some(b'{')) | (b'}', Some(b'}')) => {
                    self.at += 1;
                    self.script.push(b);
                }
                _ => self.script.push(b),
            }
        }
        false
    }

    /// Writes one quoted value at the next placeholder.
    pub fn value<S: AsRef<OsStr> + ?Sized>(&mut self, value: &S) {
        self.advance();
        push_value(&mut self.script, value.as_ref());
    }

    /// Writes several quoted values, separated by spaces, at the next placeholder.
    pub fn values<I>(&mut self, values: I)
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        self.advance();
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.script.push(b' ');
            }
            push_value(&mut self.script, value.as_ref());
        }
    }

    /// The script so far plus the rest of the template.
    fn finish(mut self) -> OsString {
        while self.advance() {}
        OsString::from_vec(self.script)
    }

    /// `/bin/sh -c SCRIPT`.
    pub fn into_command(self) -> Command {
        let mut script = self.finish();
        // `sh -c -x` reads `-x` as options, not as the script: a script that starts with a
        // value such as `-x` or `+x` gets a leading space, which changes nothing else.
        if script.as_bytes().first().is_some_and(|b| matches!(b, b'-' | b'+')) {
            let mut spaced = OsString::from(" ");
            spaced.push(&script);
            script = spaced;
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(script);
        cmd
    }
}

/// Appends `value` quoted; a value with a NUL is appended as it is, so that spawning fails.
fn push_value(script: &mut Vec<u8>, value: &OsStr) {
    match crate::quote::quote(value) {
        Ok(quoted) => script.extend_from_slice(quoted.as_bytes()),
        Err(_) => script.extend_from_slice(value.as_bytes()),
    }
}

/// Every template shape `sh!` must refuse, as compile-fail tests (issue 16): each block
/// below fails with E0080, the checker's panic in a constant (so a typo, which fails with
/// another error, would not pass for a refusal).
///
/// a `$'...'` anywhere before a placeholder (class 1):
///
/// ```compile_fail,E0080
/// offspring::sh!("printf $'%s\n' {}", "x");
/// ```
///
/// a continuation hiding a comment (class 2):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo \\\n#x {}", "x");
/// ```
///
/// a continuation hiding a here-document (class 2):
///
/// ```compile_fail,E0080
/// offspring::sh!("cat <\\\n<EOF\n{}\nEOF", "x");
/// ```
///
/// a continuation hiding `$((` (class 2):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo $\\\n((1 + {}))", "1");
/// ```
///
/// a continuation hiding `case` (class 2):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo $(ca\\\nse x in x) {};; esac)", "x");
/// ```
///
/// `#` after `$(...)` continues the word (class 3):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo $(true)#'\n{}'", "x");
/// ```
///
/// `#` after `$((...))` continues the word (class 3):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo $((1))#'\n{}'", "x");
/// ```
///
/// a `'` inside `"${x:-...}"` (class 3):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo \"${{x:-'}}" {} "'"", "x");
/// ```
///
/// `$((` closed by a single `)` (class 3):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo $((echo a) ; echo {})", "x");
/// ```
///
/// a placeholder right after `$$` (class 3):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo $${}", "x");
/// ```
///
/// bash's `((...))` (class 4):
///
/// ```compile_fail,E0080
/// offspring::sh!("(( {} ))", "1");
/// ```
///
/// bash's `$[...]` (class 4):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo $[ {} ]", "1");
/// ```
///
/// a splat in an assignment (class 5):
///
/// ```compile_fail,E0080
/// let v = ["a", "b"]; offspring::sh!("X={} true", ..v);
/// ```
///
/// a splat glued before `#` (class 5):
///
/// ```compile_fail,E0080
/// let v: [&str; 0] = []; offspring::sh!("echo {}#x", ..v);
/// ```
///
/// a splat glued to a word (class 5):
///
/// ```compile_fail,E0080
/// let v = ["a"]; offspring::sh!("ls a{}", ..v);
/// ```
///
/// a value extending a parameter name (class 5):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo $P{}", "ATH");
/// ```
///
/// a value before `=` (class 5):
///
/// ```compile_fail,E0080
/// offspring::sh!("{}=x true", "PATH");
/// ```
///
/// a value after `~` (class 5):
///
/// ```compile_fail,E0080
/// offspring::sh!("ls ~{}", "root");
/// ```
///
/// a value before a redirection (class 5):
///
/// ```compile_fail,E0080
/// offspring::sh!("echo {}>/dev/null", "2");
/// ```
///
/// inside single quotes:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo '{}'", "x");
/// ```
///
/// inside double quotes:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo \"{}\"", "x");
/// ```
///
/// after a backslash:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo \\{}", "x");
/// ```
///
/// after `$`:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo ${}", "x");
/// ```
///
/// inside backquotes:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo `cat {}`", "x");
/// ```
///
/// inside `${...}`:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo ${{x:-{}}}", "x");
/// ```
///
/// inside `$((...))`:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo $(( {} + 1 ))", "1");
/// ```
///
/// in a comment:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo hi # {}", "x");
/// ```
///
/// after a here-document:
///
/// ```compile_fail,E0080
/// offspring::sh!("cat <<EOF\n{}\nEOF", "x");
/// ```
///
/// `case` inside `$(...)`:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo \"$(case x in a) echo {};; esac)\"", "x");
/// ```
///
/// a stray brace:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo {x} {}", "x");
/// ```
///
/// fewer values than placeholders:
///
/// ```compile_fail,E0080
/// offspring::sh!("echo {} {}", "x");
/// ```
///
/// And the same shapes, reworded, compile:
///
/// ```
/// let v = ["a", "b"];
/// let _ = offspring::sh!("X={} true; ls {}; echo ${{P}}{} $(( 1 )) {} 2>/dev/null", "x", ..v, "y", "z");
/// ```
#[doc(hidden)]
pub const REFUSED_SHAPES: () = ();

// What the template lexer is inside of.
const TOP: u8 = 0;
/// `'...'`
const SQ: u8 = 1;
/// `"..."`
const DQ: u8 = 2;
/// `$'...'` (bash's ANSI-C quote; dash 0.5.12 reads `$` and a single-quoted string)
const DSQ: u8 = 3;
/// `` `...` ``
const BQ: u8 = 4;
/// `$(...)`
const CMD: u8 = 5;
/// `(...)`: a subshell, or a group in `$(...)`
const PAREN: u8 = 6;
/// `${...}`
const BRACE: u8 = 7;
/// `$((...))`
const ARITH: u8 = 8;
/// `(...)` inside `$((...))` or `((...))`
const ARITH_PAREN: u8 = 9;
/// bash's arithmetic command `((...))` (dash: two subshells); after it a new word starts.
const ARITH_CMD: u8 = 10;

/// How deeply the lexer follows nesting; deeper templates are refused.
const MAX_DEPTH: usize = 32;

/// A placeholder, in the decoded template.
const PLACEHOLDER: u16 = 0x100;

/// A `{` or `}` that is not part of `{}`, `{{` or `}}`, in the decoded template.
const BAD_OPEN: u16 = 0x101;
/// See [`BAD_OPEN`].
const BAD_CLOSE: u16 = 0x102;

/// The next decoded item of `t` at `i`: a byte, [`PLACEHOLDER`], [`BAD_OPEN`] or
/// [`BAD_CLOSE`], and its length in `t`.
const fn decode(t: &[u8], i: usize) -> (u16, usize) {
    let b = t[i];
    let next = if i + 1 < t.len() { t[i + 1] } else { 0 };
    if b == b'{' {
        if next == b'}' {
            return (PLACEHOLDER, 2);
        }
        if next == b'{' {
            return (b'{' as u16, 2);
        }
        return (BAD_OPEN, 1);
    }
    if b == b'}' {
        if next == b'}' {
            return (b'}' as u16, 2);
        }
        return (BAD_CLOSE, 1);
    }
    (b as u16, 1)
}

/// Whether `t` has a line continuation (backslash-newline) at `i`. Every shell deletes one
/// before it reads anything else (outside single quotes), so the lexer skips it too.
const fn is_continuation(t: &[u8], i: usize) -> bool {
    i + 1 < t.len() && t[i] == b'\\' && t[i + 1] == b'\n'
}

/// The next byte of `t` at or after `i` that is not part of a line continuation (0 at the
/// end), and where it is.
const fn peek(t: &[u8], mut i: usize) -> (u8, usize) {
    while is_continuation(t, i) {
        i += 2;
    }
    if i < t.len() {
        (t[i], i)
    } else {
        (0, i)
    }
}

/// Whether `t` at `i` starts the word `case` (which makes `)` unbalanced), line
/// continuations included.
const fn is_case(t: &[u8], i: usize) -> bool {
    let word = b"case";
    let mut k = i;
    let mut n = 0;
    while n < word.len() {
        let (c, at) = peek(t, k);
        if at >= t.len() || c != word[n] {
            return false;
        }
        k = at + 1;
        n += 1;
    }
    let (c, at) = peek(t, k);
    at >= t.len() || matches!(c, b' ' | b'\t' | b'\n' | b';')
}

/// Whether the `${...}` on top of `stack` is inside double quotes, where dash and bash in
/// POSIX mode read a `'` as a literal and bash as a quote.
const fn brace_in_double_quotes(stack: &[u8; MAX_DEPTH], depth: usize) -> bool {
    let mut d = depth;
    while d > 0 && stack[d - 1] == BRACE {
        d -= 1;
    }
    d > 0 && stack[d - 1] == DQ
}

/// Whether `c` may follow a splat: the end of the template, a blank, or an operator that
/// ends the word.
const fn ends_splat(c: u8, at: usize, len: usize) -> bool {
    at >= len || matches!(c, b' ' | b'\t' | b'\n' | b';' | b'|' | b'&' | b')')
}

/// Checks an `sh!` template against its values, at compile time (see [`template_error`]).
/// Panics (a compile error in a `const`) with the reason when the template is refused.
#[doc(hidden)]
pub const fn check_template(template: &str, splats: &[bool]) {
    if let Some(reason) = template_error(template, splats) {
        panic!("{}", reason);
    }
}

/// Why an `sh!` template is refused for these values, or `None` when it is accepted: every `{` and `}` is part
/// of `{}`, `{{` or `}}`; every `{}` stands where a quoted value stays one word, whatever
/// shell runs it (dash, bash, bash in POSIX mode); a splat (`splats[k]` is true for the
/// `k`th value) is a whole word of its own; and there are as many `{}` as values.
///
/// Where the shells disagree about the template, it is refused: that is the safe answer.
#[doc(hidden)]
pub const fn template_error(template: &str, splats: &[bool]) -> Option<&'static str> {
    let t = template.as_bytes();
    let values = splats.len();
    let mut stack = [TOP; MAX_DEPTH];
    let mut depth = 1;
    let mut placeholders = 0;
    let mut escaped = false;
    let mut comment = false;
    let mut heredoc = false;
    // A `$'` was seen: dash 0.5.12 and bash read everything after it differently.
    let mut dollar_quote = false;
    let mut word_start = true;
    let mut after_dollar = false;
    // Right after `$NAME`, `$$`, `$1` or `$?`: a value there could extend the name.
    let mut after_param = false;
    // Right after an unquoted `~`: a value such as `root` would make `~root`, a home directory.
    let mut after_tilde = false;
    // The previous item is a blank (or the template starts here), outside quotes.
    let mut after_blank = true;
    // A placeholder is part of the word being read (so a later `=` could make it an
    // assignment).
    let mut placeholder_in_word = false;
    let mut i = 0;
    while i < t.len() {
        let top = stack[depth - 1];
        // Line continuations vanish before anything else, except in single quotes and
        // after a backslash. (In a comment too: that can only keep more of the template
        // out of reach of placeholders.)
        if !escaped && top != SQ && is_continuation(t, i) {
            i += 2;
            continue;
        }
        let (item, len) = decode(t, i);
        if item == BAD_OPEN {
            return Some(
                "sh!: a `{` in the template must be `{}` (a placeholder) or `{{` (a literal `{`)",
            );
        }
        if item == BAD_CLOSE {
            return Some("sh!: a `}` in the template must be written `}}`");
        }
        if item == PLACEHOLDER {
            if top == SQ || top == DQ || top == DSQ {
                return Some("sh!: a `{}` placeholder inside quotes: values are quoted for you, so remove the quotes around it");
            }
            if escaped {
                return Some("sh!: a `{}` placeholder right after a backslash");
            }
            if after_dollar {
                return Some("sh!: a `{}` placeholder right after `$` (it would read as `$'...'`); write `${{NAME}}` to expand a variable");
            }
            if after_tilde {
                return Some("sh!: a `{}` placeholder right after `~`: a value such as `root` would expand to a home directory; write `~/{}` or quote the `~`");
            }
            if after_param {
                return Some("sh!: a `{}` placeholder right after a parameter such as `$NAME` or `$$`: a value could extend its name; write `${{NAME}}`");
            }
            if comment {
                return Some("sh!: a `{}` placeholder inside a `#` comment");
            }
            if heredoc {
                return Some(
                    "sh!: a `{}` placeholder after a here-document `<<`, whose body is not quoted",
                );
            }
            if dollar_quote {
                return Some("sh!: a `{}` placeholder after `$'...'`: dash 0.5.12 has no `$'...'` and reads the rest of the template differently from bash");
            }
            if top == BQ {
                return Some("sh!: a `{}` placeholder inside backquotes; use `$(...)` instead");
            }
            if top == BRACE {
                return Some("sh!: a `{}` placeholder inside `${{...}}`");
            }
            if top == ARITH || top == ARITH_PAREN || top == ARITH_CMD {
                return Some("sh!: a `{}` placeholder inside `$((...))` or `((...))`, whose arithmetic runs `$(...)` even from a quoted value");
            }
            let (next, at) = peek(t, i + len);
            if at < t.len() && (next == b'<' || next == b'>') {
                return Some("sh!: a `{}` placeholder right before `<` or `>`: a number would be read as a file descriptor; put a space between");
            }
            if placeholders < values && splats[placeholders] {
                if !after_blank {
                    return Some("sh!: a splat `{}` (`..values`) glued to what comes before it: it must be a whole word, with a blank before it");
                }
                if !ends_splat(next, at, t.len()) {
                    return Some("sh!: a splat `{}` (`..values`) glued to what comes after it: it must be a whole word, with a blank or `;`, `|`, `&`, `)` after it");
                }
            }
            placeholders += 1;
            placeholder_in_word = true;
            word_start = false;
            after_blank = false;
            i += len;
            continue;
        }
        let c = item as u8;
        let (next, next_at) = peek(t, i + len);
        let was_after_dollar = after_dollar;
        after_dollar = false;
        after_param = false;
        after_tilde = false;
        after_blank = false;
        i += len;
        if escaped {
            escaped = false;
            word_start = false;
            continue;
        }
        if comment {
            if c == b'\n' {
                comment = false;
                word_start = true;
                after_blank = true;
                placeholder_in_word = false;
            }
            continue;
        }
        if depth == MAX_DEPTH {
            return Some("sh!: the template nests too deeply");
        }
        if top == SQ {
            if c == b'\'' {
                depth -= 1;
            }
            continue;
        }
        if top == DSQ || top == BQ {
            if c == b'\\' {
                escaped = true;
            } else if (top == DSQ && c == b'\'') || (top == BQ && c == b'`') {
                depth -= 1;
            }
            continue;
        }
        if top == ARITH || top == ARITH_PAREN || top == ARITH_CMD {
            if c == b'(' {
                stack[depth] = ARITH_PAREN;
                depth += 1;
            } else if c == b')' {
                if top == ARITH || top == ARITH_CMD {
                    // dash ends `$((` only at `))`; bash may read `$((a) ...)` as `$( (a) ...)`.
                    if next != b')' || next_at >= t.len() {
                        return Some("sh!: a `$((` or `((` that does not end with `))`: dash and bash read it differently; write `$( (` for a subshell");
                    }
                    i = next_at + 1;
                    // `$((1))#x` is one word; after the command `((1))`, `#x` is a comment.
                    word_start = top == ARITH_CMD;
                    after_blank = false;
                    if word_start {
                        placeholder_in_word = false;
                    }
                }
                depth -= 1;
            }
            continue;
        }
        // TOP, CMD, PAREN, DQ and BRACE: quotes and expansions can open here.
        let code = top == TOP || top == CMD || top == PAREN;
        match c {
            b'\\' => escaped = true,
            b'"' if top == DQ => depth -= 1,
            b'}' if top == BRACE => depth -= 1,
            b'\'' if top != DQ => {
                if top == BRACE && brace_in_double_quotes(&stack, depth) {
                    return Some("sh!: a `'` inside `\"${{...}}\"`: dash and bash in POSIX mode read it as a literal, bash as a quote");
                }
                stack[depth] = if was_after_dollar { DSQ } else { SQ };
                if was_after_dollar {
                    dollar_quote = true;
                }
                depth += 1;
            }
            b'"' => {
                stack[depth] = DQ;
                depth += 1;
            }
            b'`' => {
                stack[depth] = BQ;
                depth += 1;
            }
            b'$' => {
                if next == b'(' {
                    let (second, second_at) = peek(t, next_at + 1);
                    if second == b'(' && second_at < t.len() {
                        stack[depth] = ARITH;
                        i = second_at + 1;
                    } else {
                        stack[depth] = CMD;
                        i = next_at + 1;
                    }
                } else if next == b'{' && next_at + 1 < t.len() && t[next_at + 1] == b'{' {
                    stack[depth] = BRACE;
                    i = next_at + 2;
                } else if next == b'[' {
                    return Some("sh!: `$[` is bash's old arithmetic expansion (dash reads it as text): write `$((...))`");
                } else if next_at < t.len()
                    && (next == b'$'
                        || next.is_ascii_digit()
                        || matches!(next, b'?' | b'#' | b'!' | b'-' | b'@' | b'*'))
                {
                    // A special parameter: `$$` is one, so `$$(`, `$$'` and `$${{` are not
                    // `$(`, `$'` and `${{`.
                    i = next_at + 1;
                    after_param = true;
                    word_start = false;
                    continue;
                } else if next.is_ascii_alphabetic() || next == b'_' {
                    let mut k = next_at;
                    loop {
                        let (n, at) = peek(t, k);
                        if at < t.len() && (n.is_ascii_alphanumeric() || n == b'_') {
                            k = at + 1;
                        } else {
                            break;
                        }
                    }
                    i = k;
                    after_param = true;
                    word_start = false;
                    continue;
                } else {
                    after_dollar = true;
                    word_start = false;
                    continue;
                }
                depth += 1;
                word_start = true;
                after_blank = true;
                continue;
            }
            b'(' if code => {
                if next == b'(' && next_at < t.len() {
                    // bash's arithmetic command (dash: two subshells).
                    stack[depth] = ARITH_CMD;
                    i = next_at + 1;
                    depth += 1;
                    continue;
                }
                stack[depth] = PAREN;
                depth += 1;
            }
            b')' if top == CMD || top == PAREN => depth -= 1,
            b'#' if code && word_start => comment = true,
            b'~' if code || top == BRACE => after_tilde = true,
            b'<' if code && next == b'<' => heredoc = true,
            b'=' if code && placeholder_in_word => {
                return Some("sh!: a `{}` placeholder before `=` in the same word: a value such as `PATH` would make the word an assignment")
            }
            b'c' if code && word_start && depth > 1 && is_case(t, i - 1) => {
                return Some("sh!: `case` inside `$(...)` or `(...)` is not supported by the template checker")
            }
            _ => {}
        }
        let blank = matches!(c, b' ' | b'\t' | b'\n');
        // After the `)` of `$(...)` the word goes on (`$(x)#y` is one word); after the `)`
        // of a subshell a new one starts.
        word_start = code
            && !(c == b')' && top == CMD)
            && (blank || matches!(c, b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'));
        after_blank = code && blank;
        if word_start {
            placeholder_in_word = false;
        }
    }
    if depth != 1 || escaped {
        return Some("sh!: the template has an unterminated quote, `$(`, `${{`, backquote or trailing backslash");
    }
    if placeholders < values {
        return Some("sh!: more values than `{}` placeholders in the template");
    }
    if placeholders > values {
        return Some("sh!: more `{}` placeholders in the template than values");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(template: &str, values: usize) -> bool {
        std::panic::catch_unwind(|| check_template(template, &vec![false; values])).is_ok()
    }

    fn accepts_splats(template: &str, splats: &[bool]) -> bool {
        std::panic::catch_unwind(|| check_template(template, splats)).is_ok()
    }

    fn script(template: &'static str, values: &[&str]) -> String {
        let mut s = Script::new(template);
        for v in values {
            s.value(v);
        }
        s.finish().into_string().unwrap()
    }

    #[test]
    fn template_placeholders_are_counted() {
        assert!(accepts("true", 0));
        assert!(accepts("echo {} {}", 2));
        assert!(!accepts("echo {} {}", 1));
        assert!(!accepts("echo {}", 2));
        assert!(accepts("echo {{}} {{ {}; }}", 1));
        assert!(!accepts("echo {x}", 0));
        assert!(!accepts("echo }", 0));
        assert!(!accepts("echo {", 0));
    }

    #[test]
    fn template_placeholders_must_stay_one_word() {
        for ok in [
            "echo {}",
            "a{}b --opt={} X={} {}",
            "echo $({}) \"$(cat {})\" $(echo ')' {})",
            "(cd {} && ls) | grep -- {}",
            "echo 'a' \"b\" {}",
            "echo ${{HOME}}/{} $((1 + (2))) {}",
            "echo a#b {}",
            "echo \\' {}",
            "echo \"it's\" {}",
            "case {} in a) echo;; esac",
            "x=`echo a` {}",
            "echo \"${{x:-\"}}\"}}\" {}",
            // Issue 16: what stays accepted next to the new refusals.
            "echo ${{x:-'a b'}} {}",
            "echo $$ $? {} $1 {}",
            "echo ${{P}}{} $(true){} $((1)){}",
            "echo a\\\n{}",
            "echo \\\\\n{}",
            "( (true) ) && echo {}",
            "echo {} 2>/dev/null",
            "echo --opt={}",
            "echo ~/{} ~+/{}",
            "((1))#'\n{} ''",
            "echo $${{x}} {}",
        ] {
            let n = ok.matches("{}").count() - ok.matches("{{}}").count();
            assert!(accepts(ok, n), "{ok}");
        }
        for bad in [
            "echo '{}'",
            "echo \"{}\"",
            "echo \"$(echo \"{}\")\"",
            "echo $'{}'",
            "echo \\{}",
            "echo ${}",
            "echo `cat {}`",
            "echo \"`cat {}`\"",
            "echo ${{x:-{}}}",
            "echo $(( {} + 1 ))",
            "echo hi # {}",
            "cat <<EOF\n{}\nEOF",
            "cat <<EOF\nEOF\necho {}",
            "echo \"$(case x in a) echo \"{}\";; esac)\"",
            "echo 'unterminated {}",
            "echo \"",
            "echo $(",
            "echo \\",
            // Issue 16, class 1: `$'` puts dash 0.5.12 out of phase with bash.
            "printf $'%s: it\\'s %s\\n' {} {}",
            "echo $'a' {}",
            // Class 2: a line continuation is deleted, never an escaped character.
            "echo \\\n#x {}",
            "cat <\\\n<EOF\n{}\nEOF",
            "echo $\\\n(echo `{}`)",
            "echo $\\\n((1 + {}))",
            "echo $(ca\\\nse x in x) {};; esac)",
            "echo $\\\n{}",
            // Class 3: the grammar of dash and bash.
            "echo $(true)#'\n{}'",
            "echo $((1))#'\n{}'",
            "((1))#'\n' {} ''",
            "echo \"${{x:-'}}\" {} \"'\"",
            "echo $((echo a) ; echo {})",
            "echo $$'{}'",
            // Class 4: arithmetic that runs `$(...)` from a quoted value.
            "(( {} ))",
            "((x = {} + 1))",
            "echo $[ {} ]",
            "echo $[1] {}",
            // Class 5: a plain value extending a parameter name, or becoming an assignment
            // or a file descriptor.
            "echo $P{}",
            "echo $_{}",
            "echo $1{}",
            "echo $${}",
            "{}=x true",
            "a{}=x true",
            "echo {}>/dev/null",
            "echo {}<&0",
            "echo ~{}",
            "echo x=~{}",
        ] {
            let n = bad.matches("{}").count();
            assert!(!accepts(bad, n), "{bad}");
        }
    }

    #[test]
    fn splats_must_be_whole_words() {
        for ok in ["ls {}", "ls -l {} | wc", "(ls {})", "ls {};true", "ls {}\n", "ls\t{}&"] {
            assert!(accepts_splats(ok, &[true]), "{ok}");
        }
        for bad in ["X={} true", "ls a{}", "ls {}#x", "ls {}b", "ls '{}'", "ls \\\n{}x"] {
            assert!(!accepts_splats(bad, &[true]), "{bad}");
        }
        assert!(accepts_splats("X={} ls {}", &[false, true]));
        assert!(!accepts_splats("X={} ls {}", &[true, false]));
    }

    #[test]
    fn script_quotes_every_value() {
        assert_eq!(script("echo {} {{}} {}", &["a b", "it's"]), r#"echo 'a b' {} 'it'"'"'s'"#);
        assert_eq!(script("{}", &["plain"]), "plain");
        assert_eq!(script("echo", &[]), "echo");
        let mut s = Script::new("ls {} -- {}");
        s.values(["-l", "a b"]);
        s.values(Vec::<String>::new());
        assert_eq!(s.finish(), "ls -l 'a b' -- ");
    }
}
