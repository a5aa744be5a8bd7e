//! Quoting against the real shells, and the fuzz corpus replayed on stable.
//!
//! The property checks and the shell harness (`tests/quote_harness/`) are the files the fuzz
//! crate includes too, so the corpus in `fuzz/corpus/` goes through exactly what the fuzz
//! targets check. The published crate has no `fuzz/`: there the replay is skipped, saying so.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use offspring::quote::{self, Syntax};
use offspring::QuoteError;

#[allow(dead_code)]
#[path = "../quote_harness/shell.rs"]
pub mod shell;

#[allow(dead_code)]
#[path = "../quote_harness/props.rs"]
pub mod props;

use props::ShellCases;
use shell::Shells;

/// The strings that have broken quoting code somewhere: quotes of every kind, substitutions,
/// newlines, options, bytes that are not UTF-8 or that bash uses internally.
const HOSTILE: &[&[u8]] = &[
    b"",
    b" ",
    b"'",
    b"''",
    b"\"",
    b"\\",
    b"`",
    b"it's",
    b"'; rm -rf ~; '",
    b"\"$(touch /tmp/offspring-pwned)\"",
    b"$(id)",
    b"`id`",
    b"${HOME}",
    b"$HOME",
    b"a\nb",
    b"\n",
    b"\r\n",
    b"--",
    b"-rf",
    b"--upload-pack=touch /tmp/pwned",
    b"\xff\xfe",
    b"caf\xe9",
    b"\x01\x7f",
    b"\x1b[31mred",
    b"*",
    b"~",
    b"#",
    b"!",
    b"{a,b}",
    b"A=1",
    b"if",
    b"a b\tc",
    b"%s\\n%%",
];

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("fuzz/Cargo.toml").exists() {
        // The published crate (`cargo package`) leaves `fuzz/` out; in the repository the
        // corpus must be there.
        eprintln!(
            "skipped: no fuzz/ directory (a packaged crate), so no {target} corpus to replay"
        );
        return Vec::new();
    }
    let dir = root.join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files.into_iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect()
}

/// The installed shells, or `None` with a message when there are none.
fn shells() -> Option<Shells> {
    let shells = Shells::installed();
    if shells.shells.is_empty() {
        eprintln!("skipping: neither dash nor bash is installed");
        return None;
    }
    Some(shells)
}

#[test]
fn corpus_quote_roundtrip() {
    for (path, data) in corpus("quote_roundtrip") {
        eprintln!("{}", path.display());
        props::roundtrip(&data);
    }
}

#[test]
fn corpus_validate() {
    for (path, data) in corpus("validate") {
        eprintln!("{}", path.display());
        props::validate(&data);
    }
}

#[test]
fn corpus_quote_shell() {
    // dash and bash, and bash in the multibyte locales (GB18030, GBK, Big5, Big5-HKSCS,
    // Shift-JIS) where they can be made (a printed line says which cannot).
    let mut shells = Shells::with_multibyte();
    if shells.shells.is_empty() {
        eprintln!("skipping: neither dash nor bash is installed");
        return;
    }
    // In batches, as the fuzz target does: one round trip per batch, in every shell.
    // `display` forks the shells for each `$(printf ...)`: check it for one input in four.
    for batch in corpus("quote_shell").chunks(32) {
        let mut cases = ShellCases::new();
        for (i, (_, data)) in batch.iter().enumerate() {
            cases.add(data, i % 4 == 0);
        }
        if let Err((input, message)) = cases.check(&mut shells) {
            panic!("{message}\ninput: {:?}", String::from_utf8_lossy(&input));
        }
    }
}

#[test]
fn hostile_strings_read_back_exactly_in_every_shell() {
    let Some(mut shells) = shells() else { return };
    let mut cases = ShellCases::new();
    for w in HOSTILE {
        cases.add(w, true);
    }
    // All of them as one argv, too.
    cases.add(&HOSTILE.join(&0u8), true);
    if let Err((input, message)) = cases.check(&mut shells) {
        panic!("{message}\ninput: {:?}", String::from_utf8_lossy(&input));
    }
}

#[test]
fn hostile_strings_through_sh_c() {
    // What a user does: put a quoted word into a `sh -c` script, without our harness.
    let shells: Vec<&str> = ["/bin/sh", "/usr/bin/dash", "/bin/dash", "/usr/bin/bash", "/bin/bash"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    if shells.is_empty() {
        eprintln!("skipping: no shell installed");
        return;
    }
    for sh in shells {
        for w in HOSTILE {
            let mut script = b"printf '%s\\0' ".to_vec();
            script.extend_from_slice(quote::quote(OsStr::from_bytes(w)).unwrap().as_bytes());
            let out =
                StdCommand::new(sh).arg("-c").arg(OsStr::from_bytes(&script)).output().unwrap();
            assert!(out.status.success(), "{sh}: {script:?}: {out:?}");
            assert_eq!(
                out.stdout,
                [*w, b"\0"].concat(),
                "{sh}: {:?}",
                String::from_utf8_lossy(&script)
            );
        }
    }
}

#[test]
fn quoted_words_first_in_a_command_are_command_names() {
    // Unquoted, each of these is grammar (a reserved word, an assignment, a group); quoted, the
    // shell looks for a command of that name and does not find one (127).
    // (Not `%1`: bash runs a command word starting with `%` as `fg`, quoted or not.)
    let words = ["if", "time", "!", "{", "case", "A=1", "A+=1", "_x=y", "[[", "~", "-x", "+x"];
    let shells: Vec<&str> = ["/bin/sh", "/usr/bin/dash", "/usr/bin/bash"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    if shells.is_empty() {
        eprintln!("skipping: no shell installed");
        return;
    }
    for sh in shells {
        for w in words {
            // (A leading space, so that `sh -c` does not read `-x` as its own option.)
            let script = format!(" {} 2>/dev/null; echo $?", quote::quote_str(w).unwrap());
            let out = StdCommand::new(sh)
                .arg("-c")
                .arg(&script)
                .env("PATH", "/nonexistent")
                .output()
                .unwrap();
            assert_eq!(out.stdout, b"127\n", "{sh}: {script:?}");
        }
    }
}

#[test]
fn one_mebibyte_word_reads_back_exactly() {
    // Every byte but NUL, including quotes and newlines, cycled up to 1 MiB.
    let word: Vec<u8> = (1..=255u8).cycle().take(1 << 20).collect();
    let quoted = quote::quote(OsStr::from_bytes(&word)).unwrap();
    let back = quote::split(&quoted).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].as_bytes(), word);
    let line = quote::join([OsStr::from_bytes(&word), OsStr::new("x")]).unwrap();
    assert_eq!(quote::split(&line).unwrap().len(), 2);
    // One argument can hold at most 128 KiB (MAX_ARG_STRLEN), so the shells read the
    // mebibyte from a file.
    let Some(mut shells) = shells() else { return };
    let mut cases = ShellCases::new();
    cases.add(&word, false);
    if let Err((_, message)) = cases.check(&mut shells) {
        panic!("{}", &message[..message.len().min(2000)]);
    }
}

#[test]
fn split_refuses_injection_attempts_with_a_reason() {
    let cases: &[(&str, usize, Syntax)] = &[
        ("cat $(id)", 4, Syntax::Dollar),
        ("cat \"$(id)\"", 5, Syntax::Dollar),
        ("cat `id`", 4, Syntax::Backquote),
        ("cat a; id", 5, Syntax::Operator),
        ("cat a && id", 6, Syntax::Operator),
        ("cat a | sh", 6, Syntax::Operator),
        ("cat > /etc/passwd", 4, Syntax::Redirection),
        ("cat a\nid", 5, Syntax::Newline),
        ("LD_PRELOAD=/evil.so cat", 10, Syntax::Assignment),
        ("rm -rf /*", 8, Syntax::Glob),
        ("rm -rf ~", 7, Syntax::Tilde),
    ];
    for &(line, offset, syntax) in cases {
        assert_eq!(quote::split(line), Err(QuoteError::Unsupported { offset, syntax }), "{line:?}");
    }
}

#[test]
fn errors_show_commands_that_paste_back_into_a_shell() {
    let argv = [
        OsStr::new("printf"),
        OsStr::new("%s|"),
        OsStr::new("it's"),
        OsStr::from_bytes(b"\xff\x1b\n"),
    ];
    let shown = quote::display(argv);
    assert!(!shown.contains('\x1b'), "{shown:?}");
    let out = StdCommand::new("/bin/sh").arg("-c").arg(&shown).output().unwrap();
    assert_eq!(out.stdout, b"it's|\xff\x1b\n|");

    // offspring's own errors use it.
    let err = offspring::Command::new("/no/such dir/prog").arg("it's").status().unwrap_err();
    assert!(err.to_string().contains(r#"'/no/such dir/prog' 'it'"'"'s'"#), "{err}");
}
