//! The properties the fuzz targets check, as functions that panic on a violation.
//!
//! A fuzz input is read as a list of words: its bytes cut at each NUL, the one byte no word
//! can hold. This file is shared with `tests/it/quote.rs` through `#[path]`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use offspring::{quote, validate, ErrorKind, Operand, QuoteError, Stage};

use super::shell::Shells;

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

fn bytes_of(words: &[OsString]) -> Vec<&[u8]> {
    words.iter().map(|w| w.as_bytes()).collect()
}

/// The words of a fuzz input: its bytes cut at each NUL.
pub fn words(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == 0).collect()
}

/// `split(quote(w)) == [w]` for every word, `split(join(words)) == words`, NUL refused with
/// its offset, `split` of anything never panics and inverts `join` on what it accepts, and
/// `display` is printable.
pub fn roundtrip(data: &[u8]) {
    let words = words(data);
    if let Some(at) = data.iter().position(|&b| b == 0) {
        assert_eq!(quote::quote(os(data)), Err(QuoteError::Nul { index: 0, offset: at }));
        assert_eq!(
            quote::join([os(b"x"), os(data)]),
            Err(QuoteError::Nul { index: 1, offset: at })
        );
    }
    for w in &words {
        let q = quote::quote(os(w)).expect("a word without NUL quotes");
        let back = quote::split(&q)
            .unwrap_or_else(|e| panic!("split(quote({})) = {:?} failed: {e}", show(w), q));
        assert_eq!(bytes_of(&back), [*w], "split(quote({})) via {:?}", show(w), q);
        if let Ok(text) = std::str::from_utf8(w) {
            assert_eq!(quote::quote_str(text).expect("no NUL").as_bytes(), q.as_bytes());
        }
    }
    let line = quote::join(words.iter().map(|w| os(w))).expect("words without NUL join");
    let back = quote::split(&line)
        .unwrap_or_else(|e| panic!("split(join(...)) = split({line:?}) failed: {e}"));
    assert_eq!(bytes_of(&back), words, "split(join(words)) via {line:?}");
    if let Ok(texts) = words.iter().map(|w| std::str::from_utf8(w)).collect::<Result<Vec<_>, _>>() {
        assert_eq!(quote::join_str(&texts).expect("no NUL").as_bytes(), line.as_bytes());
    }

    match quote::split(os(data)) {
        Ok(split) => {
            assert!(!data.contains(&0), "split accepted a NUL in {}", show(data));
            let again = quote::split(quote::join(&split).expect("split words hold no NUL"))
                .expect("split accepts what join writes");
            assert_eq!(again, split, "split(join(split(line))) for {}", show(data));
            if let Ok(text) = std::str::from_utf8(data) {
                let texts = quote::split_str(text).expect("split_str agrees with split");
                assert_eq!(
                    texts.iter().map(|t| t.as_bytes()).collect::<Vec<_>>(),
                    bytes_of(&split)
                );
            }
        }
        Err(e) => {
            assert!(e.offset() < data.len().max(1), "{e:?} is past the end of {}", show(data));
            assert!(!e.to_string().is_empty());
        }
    }

    let shown = quote::display(words.iter().map(|w| os(w)));
    assert!(
        shown.chars().all(|c| c == '\n' || !c.is_control()),
        "display wrote a control character: {shown:?}"
    );
    let back = undisplay(shown.as_bytes()).unwrap_or_else(|| panic!("display wrote {shown:?}"));
    assert_eq!(back, words, "display(words) = {shown:?}");
}

/// Reads [`quote::display`]'s output back: plain words, `'...'`, `"'..."` and
/// `"$(printf '\ooo...')"`, and nothing else. (The shell differential checks that real shells
/// agree with this reading; this check runs at the speed of the roundtrip target.)
fn undisplay(s: &[u8]) -> Option<Vec<Vec<u8>>> {
    const PRINTF: &[u8] = b"\"$(printf '";
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b' ' {
            words.extend(word.take());
            i += 1;
            continue;
        }
        let w = word.get_or_insert_with(Vec::new);
        if s[i] == b'\'' {
            let len = s[i + 1..].iter().position(|&b| b == b'\'')?;
            w.extend_from_slice(&s[i + 1..i + 1 + len]);
            i += len + 2;
        } else if s[i..].starts_with(PRINTF) {
            i += PRINTF.len();
            while s.get(i) == Some(&b'\\') {
                let digits = s.get(i + 1..i + 4)?;
                let mut b = 0u32;
                for &d in digits {
                    if !(b'0'..=b'7').contains(&d) {
                        return None;
                    }
                    b = b * 8 + u32::from(d - b'0');
                }
                w.push(u8::try_from(b).ok()?);
                i += 4;
            }
            if !s[i..].starts_with(b"')\"") {
                return None;
            }
            i += 3;
        } else if s[i] == b'"' {
            let len = s[i + 1..].iter().take_while(|&&b| b == b'\'').count();
            if len == 0 || s.get(i + 1 + len) != Some(&b'"') {
                return None;
            }
            w.extend_from_slice(&s[i + 1..i + 1 + len]);
            i += len + 2;
        } else if s[i].is_ascii_alphanumeric() || b"_@%+,./:=-".contains(&s[i]) {
            w.push(s[i]);
            i += 1;
        } else {
            return None;
        }
    }
    words.extend(word);
    Some(words)
}

/// One piece of shell code, the words a shell must read from it, and the input it came from.
struct Case {
    input: usize,
    what: &'static str,
    code: Vec<u8>,
    expect: Vec<Vec<u8>>,
}

/// Inputs for the differential check against real shells, batched so that one round trip
/// to the shells checks many inputs.
///
/// For each input, every shell must read `join(words)`, which is `quote` of each word (and,
/// if asked, `display(words)`) as the words, and the input itself, when `split` accepts it,
/// as the words `split` returned.
#[derive(Default)]
pub struct ShellCases {
    inputs: Vec<Vec<u8>>,
    cases: Vec<Case>,
}

impl ShellCases {
    /// No inputs yet.
    pub fn new() -> ShellCases {
        ShellCases::default()
    }

    /// How many inputs are waiting to be checked.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether no input is waiting.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Adds the cases of one input. `display` also checks [`quote::display`], whose
    /// `$(printf ...)` forks the shells and is therefore slow.
    pub fn add(&mut self, data: &[u8], display: bool) {
        let input = self.inputs.len();
        self.inputs.push(data.to_vec());
        let words = words(data);
        // `join` is `quote` of each word with spaces between: one line checks them all, and
        // that each is exactly one word.
        let all: Vec<Vec<u8>> = words.iter().map(|w| w.to_vec()).collect();
        let code = quote::join(words.iter().map(|w| os(w))).expect("no NUL").into_encoded_bytes();
        self.cases.push(Case { input, what: "join", code, expect: all.clone() });
        if display {
            let code = quote::display(words.iter().map(|w| os(w))).into_bytes();
            self.cases.push(Case { input, what: "display", code, expect: all });
        }
        // A line `split` accepts, if `split` also sees it as one command after the `w` that
        // the harness puts in front (so a leading newline cannot start a command of its own).
        let mut prefixed = b"w ".to_vec();
        prefixed.extend_from_slice(data);
        if let (Ok(split), Ok(with_w)) = (quote::split(os(data)), quote::split(os(&prefixed))) {
            if with_w.len() == split.len() + 1 && with_w[1..] == split[..] {
                let expect = split.iter().map(|w| w.as_bytes().to_vec()).collect();
                self.cases.push(Case { input, what: "split", code: data.to_vec(), expect });
            }
        }
    }

    /// Runs every waiting case in every shell and forgets them.
    ///
    /// # Errors
    ///
    /// The first input that fails, and why. When a shell fails a whole batch (a hang, an
    /// answer out of step), the inputs are retried one by one to find the one to blame.
    pub fn check(&mut self, shells: &mut Shells) -> Result<(), (Vec<u8>, String)> {
        let inputs = std::mem::take(&mut self.inputs);
        let cases = std::mem::take(&mut self.cases);
        if cases.is_empty() {
            return Ok(());
        }
        let codes: Vec<&[u8]> = cases.iter().map(|c| c.code.as_slice()).collect();
        for (i, answers) in shells.run(&codes) {
            let name = shells.shells[i].name();
            let answers = match answers {
                Ok(answers) => answers,
                Err(e) if inputs.len() > 1 => {
                    // Find the input to blame.
                    for data in &inputs {
                        let display = cases.iter().any(|c| c.what == "display");
                        let mut one = ShellCases::new();
                        one.add(data, display);
                        one.check(shells)?;
                    }
                    let n = inputs.len();
                    return Err((
                        Vec::new(),
                        format!("{e}\n(a batch of {n} inputs failed, none alone)"),
                    ));
                }
                Err(e) => {
                    let codes: Vec<String> = codes.iter().map(|c| show(c)).collect();
                    return Err((inputs[0].clone(), format!("{e}\ncodes: {codes:?}")));
                }
            };
            for (case, got) in cases.iter().zip(&answers) {
                if *got != case.expect {
                    let data = &inputs[case.input];
                    let got: Vec<String> = got.iter().map(|w| show(w)).collect();
                    let expect: Vec<String> = case.expect.iter().map(|w| show(w)).collect();
                    let message = format!(
                        "{name} read {}({}) = {} as {got:?}, not {expect:?}",
                        case.what,
                        show(data),
                        show(&case.code),
                    );
                    return Err((data.clone(), message));
                }
            }
        }
        Ok(())
    }
}

/// The differential check for one input, `display` included; panics on a failure.
pub fn shells(data: &[u8], shells: &mut Shells) {
    let mut cases = ShellCases::new();
    cases.add(data, true);
    if let Err((_, message)) = cases.check(shells) {
        panic!("{message}");
    }
}

/// The validators never panic and never accept a NUL; each accepts exactly what its rule
/// allows; errors are `InvalidInput` at the validate stage and name the item.
///
/// The input is cut at `0xff` into parts (which may hold NUL): the program and arguments
/// are all the parts, the environment variable is the first two.
pub fn validate(data: &[u8]) {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let has_nul = |b: &[u8]| b.contains(&0);
    let check = |r: offspring::Result<()>, ok: bool, what: &str| -> Option<String> {
        match r {
            Ok(()) => {
                assert!(ok, "{what} accepted {}", show(data));
                None
            }
            Err(e) => {
                assert!(!ok, "{what} refused {}: {e}", show(data));
                assert_eq!(e.kind(), ErrorKind::InvalidInput);
                assert_eq!(e.stage(), Stage::Validate);
                Some(e.to_string())
            }
        }
    };

    let program = parts[0];
    check(validate::program(os(program)), !program.is_empty() && !has_nul(program), "program");

    let first_bad = parts.iter().enumerate().find(|(i, p)| has_nul(p) || (*i == 0 && p.is_empty()));
    let msg = check(validate::argv(parts.iter().map(|p| os(p))), first_bad.is_none(), "argv");
    if let (Some(msg), Some((i, p))) = (msg, first_bad) {
        if i > 0 {
            let at = p.iter().position(|&b| b == 0).expect("a NUL");
            let expected = format!("argument {i} contains a NUL byte at offset {at}");
            assert!(msg.contains(&expected), "{msg:?} does not say {expected:?}");
        } else {
            assert!(msg.contains("program"), "{msg:?} does not name the program");
        }
    }

    let key = parts[0];
    let value = parts.get(1).copied().unwrap_or_default();
    let key_ok = !key.is_empty() && !key.contains(&b'=') && !has_nul(key);
    check(validate::env(os(key), os(value)), key_ok && !has_nul(value), "env");

    check(validate::cwd(os(program)), !program.is_empty() && !has_nul(program), "cwd");

    match Operand::new(os(program)) {
        Ok(op) => {
            assert!(
                !program.starts_with(b"-") && !has_nul(program),
                "Operand::new accepted {}",
                show(program)
            );
            assert_eq!(op.as_os_str().as_bytes(), program);
        }
        Err(e) => {
            assert!(
                program.starts_with(b"-") || has_nul(program),
                "Operand::new refused {}: {e}",
                show(program)
            );
        }
    }
    match Operand::path(os(program)) {
        Ok(op) => {
            let b = op.as_os_str().as_bytes();
            assert!(!has_nul(b) && !b.starts_with(b"-"), "Operand::path gave {}", show(b));
            // Every relative path gets `./`, so no first byte but `.` or `/` is left.
            assert!(b.starts_with(b"/") || b.starts_with(b"./"), "Operand::path gave {}", show(b));
            assert!(b == program || (b.starts_with(b"./") && &b[2..] == program));
        }
        Err(_) => assert!(
            has_nul(program) || program.is_empty(),
            "Operand::path refused {}",
            show(program)
        ),
    }
}

/// Pieces of shell code that templates are made of, picked by the fuzz input's bytes: the
/// syntax the `sh!` checker must follow (quotes, substitutions, arithmetic, comments,
/// here-documents, continuations, parameters, assignments, redirections) and `{}`
/// placeholders. No piece runs a word as code on purpose (`eval`, `sh -c`, `let`, `[[`,
/// `printf -v`): quoting does not protect those, as documented.
const PIECES: &[&str] = &[
    " ",
    " ",
    " ",
    "\n",
    "w",
    "w",
    "echo",
    ":",
    "x",
    "a",
    "0",
    "1",
    "/",
    "-",
    "{}",
    "{}",
    "{}",
    "{}",
    "{}",
    SPLAT,
    SPLAT,
    "'",
    "\"",
    "\\",
    "\\\n",
    "$",
    "$'",
    "$\"",
    "$(",
    "$((",
    "((",
    "(",
    ")",
    "))",
    "${{",
    "}}",
    ":-",
    "#",
    ";",
    "|",
    "&&",
    "&",
    "<<",
    "<<-",
    "EOF",
    "`",
    "$$",
    "$P",
    "$1",
    "$?",
    "$#",
    "=",
    "X=",
    "+=",
    "case ",
    " in ",
    "x)",
    "esac",
    ";;",
    "$[",
    "[",
    "]",
    ">",
    "<",
    "2>",
    "/dev/null",
    "{{",
    "!",
    "*",
    "~",
    "%",
    "^",
    "\\'",
    "\\\"",
    "\\$",
    "\t",
    "{{ ",
    "; }}",
    "if ",
    "then ",
    "fi",
    "do",
    "done",
    "for i in",
    "then",
    "function f",
    "f()",
    "\\\\",
];

/// A piece that is a splat placeholder (`..values`).
const SPLAT: &str = "{}..";

/// Values that run `pwned` if a shell ever reads them as code. None of them is just a
/// command name: as one word in command position, each names no command.
const HOSTILE_VALUES: &[&str] = &[
    "x; pwned 1 #",
    "$(pwned 2)",
    "`pwned 3`",
    "'; pwned 4; '",
    "\"; pwned 5; \"",
    "x\npwned 6\n",
    "x) pwned 7; (",
    "a[$(pwned 8)]",
    "x'\"$(pwned 9)\"'",
    "x'\n pwned 10 #",
    "}}; pwned 11; {{",
    "x\\",
    "EOF\npwned 12\nEOF",
    "\u{4e2d}0'; pwned 13 #",
    "x #",
    "'",
    "",
    "-c",
    "2",
    "P",
];

/// A template made of [`PIECES`] and the values for it, from fuzz bytes: the first byte picks
/// how many values a splat gets, each next byte a piece; each placeholder takes a value chosen
/// by its position.
pub fn template_of(data: &[u8]) -> (String, Vec<bool>, Vec<Vec<&'static str>>) {
    let mut template = String::new();
    let mut splats = Vec::new();
    let mut values = Vec::new();
    let per_splat = usize::from(data.first().copied().unwrap_or(0) % 4);
    for (i, &b) in data.iter().enumerate().skip(1) {
        let piece = PIECES[usize::from(b) % PIECES.len()];
        let value = |k: usize| {
            HOSTILE_VALUES[(usize::from(b) / PIECES.len() + i + k) % HOSTILE_VALUES.len()]
        };
        if piece == SPLAT {
            template.push_str("{}");
            splats.push(true);
            values.push((0..per_splat).map(value).collect());
        } else {
            if piece == "{}" {
                splats.push(false);
                values.push(vec![value(0)]);
            }
            template.push_str(piece);
        }
    }
    (template, splats, values)
}

/// `sh!`'s script for `template` (which the checker accepted) and its values.
fn script_of(template: &str, splats: &[bool], values: &[Vec<&str>]) -> Vec<u8> {
    let mut script = offspring::macros::Script::new(template);
    for (&splat, value) in splats.iter().zip(values) {
        if splat {
            script.values(value);
        } else {
            script.value(value[0]);
        }
    }
    let cmd = script.into_command();
    let args: Vec<&OsStr> = cmd.get_args().collect();
    args[1].as_bytes().to_vec()
}

/// Templates the `sh!` checker accepts, filled with hostile values, run in real shells:
/// batched like [`ShellCases`]. No value may ever run.
#[derive(Default)]
pub struct TemplateCases {
    inputs: Vec<Vec<u8>>,
    scripts: Vec<(usize, String, Vec<u8>)>,
}

impl TemplateCases {
    /// No inputs yet.
    pub fn new() -> TemplateCases {
        TemplateCases::default()
    }

    /// How many inputs are waiting to be checked.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether no input is waiting.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Adds the template of one input, if the checker accepts it; returns whether it did.
    pub fn add(&mut self, data: &[u8]) -> bool {
        let (template, splats, values) = template_of(data);
        if offspring::macros::template_error(&template, &splats).is_some() {
            return false;
        }
        let input = self.inputs.len();
        self.inputs.push(data.to_vec());
        let script = script_of(&template, &splats, &values);
        self.scripts.push((input, template, script));
        true
    }

    /// Runs every waiting script in every active shell and forgets them.
    ///
    /// # Errors
    ///
    /// The first input whose value ran, and the template, script and shell. A shell that
    /// fails a whole batch (a hang) has the inputs retried one by one.
    pub fn check(&mut self, shells: &mut Shells) -> Result<(), (Vec<u8>, String)> {
        let inputs = std::mem::take(&mut self.inputs);
        let scripts = std::mem::take(&mut self.scripts);
        if scripts.is_empty() {
            return Ok(());
        }
        let codes: Vec<&[u8]> = scripts.iter().map(|s| s.2.as_slice()).collect();
        for (i, result) in shells.run_scripts(&codes) {
            let name = shells.shells[i].name();
            match result {
                Ok(markers) => {
                    if let Some((k, marker)) = markers.first() {
                        let (input, template, script) = &scripts[*k];
                        return Err((
                            inputs[*input].clone(),
                            format!(
                                "{name} ran a value: {} from template {template:?} as script {}",
                                show(marker),
                                show(script)
                            ),
                        ));
                    }
                }
                Err(e) if inputs.len() > 1 => {
                    for data in &inputs {
                        let mut one = TemplateCases::new();
                        one.add(data);
                        one.check(shells)?;
                    }
                    let n = inputs.len();
                    return Err((
                        Vec::new(),
                        format!("{e}\n(a batch of {n} inputs failed, none alone)"),
                    ));
                }
                Err(e) => {
                    let (_, template, script) = &scripts[0];
                    return Err((
                        inputs[0].clone(),
                        format!("{e}\ntemplate {template:?}, script {}", show(script)),
                    ));
                }
            }
        }
        Ok(())
    }
}
