//! Issue 16, shell-injection safety attacked: each defect class against real dash, bash,
//! bash as `sh` (POSIX mode) and bash under the multibyte locales (generated with `localedef`
//! by the harness; a locale that cannot be made is skipped with a printed reason).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use offspring::macros::{template_error, Script};
use offspring::quote::{self, Syntax};
use offspring::{cmd, sh, ErrorKind, Operand, QuoteError};

use super::quote::{props, shell};
use props::{ShellCases, TemplateCases};
use shell::Shells;

/// A shell a script is run with: a name, the program, `argv[0]`, and environment.
struct Runner {
    name: String,
    program: PathBuf,
    env: Vec<(&'static str, OsString)>,
}

/// dash, bash, bash as `sh` (a `sh` symlink to bash in a temporary directory) and bash under
/// GB18030; prints what is skipped.
fn runners() -> Vec<Runner> {
    let mut runners = Vec::new();
    let bash = Path::new("/usr/bin/bash").exists().then(|| PathBuf::from("/usr/bin/bash"));
    if Path::new("/usr/bin/dash").exists() {
        runners.push(Runner { name: "dash".into(), program: "/usr/bin/dash".into(), env: vec![] });
    } else {
        eprintln!("skipped: dash is not installed");
    }
    let Some(bash) = bash else {
        eprintln!("skipped: bash is not installed");
        return runners;
    };
    runners.push(Runner { name: "bash".into(), program: bash.clone(), env: vec![] });
    let dir = std::env::temp_dir().join(format!("offspring-bash-as-sh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sh = dir.join("sh");
    if !sh.exists() {
        std::os::unix::fs::symlink(&bash, &sh).unwrap();
    }
    runners.push(Runner { name: "bash as sh".into(), program: sh, env: vec![] });
    match shell::ensure_locale("zh_CN.GB18030") {
        Ok(()) => runners.push(Runner {
            name: "bash (zh_CN.GB18030)".into(),
            program: bash,
            env: vec![
                ("LC_ALL", "zh_CN.GB18030".into()),
                ("LOCPATH", shell::locale_dir().into_os_string()),
            ],
        }),
        Err(why) => eprintln!("skipped: bash under GB18030: {why}"),
    }
    runners
}

/// Runs `script` with `sh -c` in each runner, with a `pwned` function defined; returns the
/// names of the shells in which a value ran (called `pwned`).
fn ran_in(script: &[u8]) -> Vec<String> {
    let mut full = b"pwned() { echo PWNED >&3; }\n".to_vec();
    full.extend_from_slice(script);
    let mut ran = Vec::new();
    for r in runners() {
        let out = StdCommand::new(&r.program)
            .arg("-c")
            .arg(format!("exec 3>&1; {{ {}\n}} </dev/null >/dev/null 2>&1", "eval \"$S\""))
            .env("S", OsStr::from_bytes(&full))
            .env("PATH", "/nonexistent")
            .envs(r.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("PWNED") {
            ran.push(r.name.clone());
        }
    }
    ran
}

/// The script `sh!` would build for `template` if the checker let it through.
fn unchecked_script(template: &str, values: &[&str]) -> Vec<u8> {
    let mut s = Script::new(template);
    for v in values {
        s.value(v);
    }
    let cmd = s.into_command();
    let script = cmd.get_args().nth(1).unwrap().as_bytes().to_vec();
    script
}

/// Each template was accepted before issue 16 and runs its value in at least one shell; the
/// checker now refuses it.
fn refused_and_dangerous(cases: &[(&str, &[&str])]) {
    for &(template, values) in cases {
        let splats = vec![false; values.len()];
        assert!(template_error(template, &splats).is_some(), "the checker accepts {template:?}");
        let script = unchecked_script(template, values);
        let ran = ran_in(&script);
        assert!(
            !ran.is_empty() || runners().len() < 3,
            "no shell ran the value of {template:?} (script {:?}): the refusal is not shown to be needed",
            String::from_utf8_lossy(&script)
        );
        eprintln!("{template:?}: the value runs in {ran:?}; refused");
    }
}

#[test]
fn class1_dollar_single_quote_differs_between_dash_and_bash() {
    refused_and_dangerous(&[("printf $'%s: it\\'s %s\\n' {} {}", &["name", "x; pwned #"])]);
}

#[test]
fn class2_line_continuations_are_deleted() {
    refused_and_dangerous(&[(": <\\\n<EOF\n{}\nEOF", &["$(pwned)"])]);
    // A continuation that hides a comment from the old checker.
    assert!(template_error("echo \\\n#x {}", &[false]).is_some());
}

#[test]
fn class3_grammar_of_dash_and_bash() {
    refused_and_dangerous(&[("echo $(true)#'\n{}'", &["x; pwned #"])]);
    // dash and bash in POSIX mode read a `'` in `"${x:-...}"` as a literal, bash as a quote.
    assert!(template_error("echo \"${{x:-'}}\" {} \"'\"", &[false]).is_some());
    // `$$` is a parameter: `$$'...'` is `$$` and a quoted string, and values stay words.
    assert!(template_error("echo $$ {}", &[false]).is_none());
    assert!(ran_in(&unchecked_script("echo $${{x}} {}", &["$(pwned)"])).is_empty());
}

#[test]
fn class4_arithmetic_that_ignores_quoting() {
    refused_and_dangerous(&[("(( {} ))", &["a[$(pwned)]"]), ("echo $[ {} ]", &["a[$(pwned)]"])]);
}

#[test]
fn class5_splats_and_adjacency() {
    // A splat must be a word of its own: `X={} true` with two values ran the second.
    assert!(template_error("X={} true", &[true]).is_some());
    let mut s = Script::new("X={} true");
    s.values(["a", "pwned"]);
    let cmd = s.into_command();
    let script = cmd.get_args().nth(1).unwrap().as_bytes().to_vec();
    assert!(!ran_in(&script).is_empty());
    // An empty splat before `#`.
    assert!(template_error("echo {}#'\n{}'", &[true, false]).is_some());
    // A plain value extending a parameter name (`$P` + `WN` = `$PWN`).
    assert!(template_error("echo $P{}", &[false]).is_some());
    let script = unchecked_script("PWN='x'; echo $P{}", &["WN"]);
    assert!(String::from_utf8_lossy(&script).contains("$PWN"));
    // What stays accepted runs no value anywhere.
    for template in ["w() {{ :; }}; w {} | w {}", "X={} w {}", "echo ${{P}}{} $(echo {}) {}"] {
        let n = template.matches("{}").count();
        assert!(template_error(template, &vec![false; n]).is_none(), "{template:?}");
        for v in ["$(pwned)", "x; pwned", "'; pwned; '", "`pwned`", "a[$(pwned)]"] {
            let script = unchecked_script(template, &vec![v; n]);
            assert_eq!(ran_in(&script), Vec::<String>::new(), "{template:?} with {v:?}");
        }
    }
}

#[test]
fn corpus_sh_template() {
    let mut shells = Shells::of(shell::SCRIPT_FLAVORS);
    if shells.shells.len() < 3 {
        eprintln!("skipped: dash and bash are needed");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sh_template");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    let mut accepted = 0;
    for batch in files.chunks(32) {
        let mut cases = TemplateCases::new();
        for path in batch {
            accepted += usize::from(cases.add(&std::fs::read(path).unwrap()));
        }
        if let Err((input, message)) = cases.check(&mut shells) {
            panic!("{message}\ninput: {input:?}");
        }
    }
    assert!(accepted > 0, "no template of the corpus is accepted");
}

/// The multibyte shells (bash in each generated locale, bash as `sh` and dash under
/// GB18030) and dash in C.UTF-8, or `None` when no multibyte locale can be made.
fn multibyte_shells() -> Option<Shells> {
    let mut shells = Shells::with_multibyte();
    let n = shell::FLAVORS.len();
    if shells.shells.len() <= n {
        eprintln!("skipped: no multibyte locale could be made (see the lines above)");
        return None;
    }
    // Only the multibyte flavors (the base ones are checked by the quote tests).
    let names: Vec<&str> = shells.shells.iter().map(|s| s.name()).collect();
    shells.active = names.iter().map(|n| n.contains("zh_") || n.contains("ja_")).collect();
    Some(shells)
}

fn check_all(shells: &mut Shells, inputs: impl Iterator<Item = Vec<u8>>, display: bool) {
    let mut cases = ShellCases::new();
    for data in inputs {
        cases.add(&data, display);
        if cases.len() >= 2048 {
            if let Err((input, message)) = cases.check(shells) {
                panic!("{message}\ninput: {input:?}");
            }
        }
    }
    if let Err((input, message)) = cases.check(shells) {
        panic!("{message}\ninput: {input:?}");
    }
}

#[test]
fn class6_quoting_is_exact_for_every_one_and_two_byte_word_in_multibyte_locales() {
    let Some(mut shells) = multibyte_shells() else { return };
    // The example.
    let line = quote::join(["printf", "[%s]\\n", "\u{4e2d}0", "; echo INJECTED; #"]).unwrap();
    assert_eq!(line, "printf '[%s]\\n' '\u{4e2d}'0 '; echo INJECTED; #'");
    // Every 1- and 2-byte word, then a word with a quote, so a swallowed closing quote puts
    // the rest out of step; and every word alone on its line (the line as `split` input too).
    let words = (1..=255u8)
        .map(|a| vec![a])
        .chain((1..=255u8).flat_map(|a| (1..=255u8).map(move |b| vec![a, b])));
    check_all(
        &mut shells,
        words.flat_map(|w| {
            let mut with_quote = w.clone();
            with_quote.extend_from_slice(b"\0x'y");
            let mut alone = w;
            alone.extend_from_slice(b" x");
            [with_quote, alone]
        }),
        false,
    );
    // The start of a four-byte GB18030 character and every byte after it.
    let triples =
        (0x81..=0xfeu8).flat_map(|a| (1..=255u8).map(move |c| vec![a, b'0', c, 0, b'\'']));
    check_all(&mut shells, triples, false);
    // display, on every character of 2 UTF-8 bytes followed by a digit.
    let chars = (0x80..0x800u32).filter_map(char::from_u32).map(|c| format!("{c}0").into_bytes());
    check_all(&mut shells, chars, true);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn class7_split_agrees_with_bash_in_multibyte_locales() {
    assert_eq!(
        quote::split(OsStr::from_bytes(b"\xb3\\;echo INJECTED")),
        Err(QuoteError::Unsupported { offset: 1, syntax: Syntax::Multibyte })
    );
    assert_eq!(
        quote::split(OsStr::from_bytes(b"a \xad0 b")),
        Err(QuoteError::Unsupported { offset: 4, syntax: Syntax::Multibyte })
    );
    assert_eq!(
        quote::split(OsStr::from_bytes(b"'\xad0' x")),
        Err(QuoteError::Unsupported { offset: 3, syntax: Syntax::Multibyte })
    );
    assert_eq!(
        quote::split(OsStr::from_bytes(b"\"\xb3\\\"\"")),
        Err(QuoteError::Unsupported { offset: 2, syntax: Syntax::Multibyte })
    );
    let e = quote::split(OsStr::from_bytes(b"\xb3\\;id")).unwrap_err();
    assert!(e.to_string().contains("Big5, GBK, GB18030 and Shift-JIS"), "{e}");
    // What join writes is still accepted.
    let line = quote::join([OsStr::from_bytes(b"\xad0"), OsStr::from_bytes(b"\xb3\\")]).unwrap();
    assert_eq!(
        quote::split(&line).unwrap(),
        [OsStr::from_bytes(b"\xad0"), OsStr::from_bytes(b"\xb3\\")]
    );

    let Some(mut shells) = multibyte_shells() else { return };
    // 10,000 random lines of the bytes that matter: what split accepts, every shell reads
    // the same way.
    const ALPHABET: &[u8] = b"\x81\xa4\xad\xb3\xfe\x80\xff@0123456789\\'\" \tax\n=";
    let mut rng = Rng(0x16);
    let lines = (0..10_000).map(|_| {
        let len = 1 + rng.next() as usize % 8;
        (0..len).map(|_| ALPHABET[rng.next() as usize % ALPHABET.len()]).collect::<Vec<u8>>()
    });
    check_all(&mut shells, lines.collect::<Vec<_>>().into_iter(), false);
}

#[test]
fn class8_operand_path_guards_every_class_with_real_programs() {
    assert_eq!(Operand::path("PWNED=1").unwrap().as_os_str(), "./PWNED=1");
    // `find` reads `!` as an operator; `./!` is a start path that does not exist.
    let out = cmd!("find", Operand::path("!").unwrap(), "-maxdepth", "0").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("./!"), "{out:?}");
    // `Operand::new` guards the leading `-` only, as documented.
    assert!(Operand::new("-rf").is_err());
    assert!(Operand::new("@args").is_ok());
}

#[test]
fn class9_error_display_escapes_the_stderr_tail() {
    let err = sh!("printf '\\033]0;owned\\007\\033[2Jgone\\342\\201\\240\\n' >&2; exit 3")
        .run()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ExitCode);
    let msg = err.to_string();
    assert!(!msg.chars().any(|c| c.is_control() && c != '\n'), "{msg:?}");
    assert!(msg.contains("\\033]0;owned\\007\\033[2Jgone\\342\\201\\240"), "{msg:?}");
    assert_eq!(err.stderr(), b"\x1b]0;owned\x07\x1b[2Jgone\xe2\x81\xa0\n");
}

#[test]
fn class10_display_escapes_invisible_characters_and_a_caret_after_a_newline() {
    let invisible = [
        '\u{2060}',
        '\u{ad}',
        '\u{180e}',
        '\u{e0041}',
        '\u{fe0f}',
        '\u{2028}',
        '\u{3164}',
        '\u{115f}',
        '\u{2062}',
        '\u{a0}',
        '\u{200b}',
    ];
    for c in invisible {
        let word = format!("a{c}b");
        let shown = quote::display([&word]);
        assert!(!shown.contains(c), "{c:?} in {shown:?}");
        assert!(shown.contains("$(printf '\\"), "{shown:?}");
    }
    let shown = quote::display(["a\n^b^c"]);
    assert_eq!(shown, "'a\n'\"$(printf '\\136')\"'b^c'");
    // And the shells read them back exactly.
    let mut shells = Shells::installed();
    if shells.shells.is_empty() {
        eprintln!("skipped: no shell installed");
        return;
    }
    let words = invisible.iter().map(|c| format!("x{c}1").into_bytes()).chain([b"a\n^b".to_vec()]);
    check_all(&mut shells, words, true);
}
