//! `cmd!` and `sh!`: every value reaches the program as exactly one argument, or as exactly
//! one shell word.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use offspring::{cmd, sh, ErrorKind, Operand, Stage};

const FIXTURE: &str = env!("CARGO_BIN_EXE_offspring-fixture");

/// The argv the fixture received after `argv`, one entry per argument.
fn argv_of(out: &[u8]) -> Vec<&[u8]> {
    let mut words: Vec<&[u8]> = out.split(|&b| b == 0).collect();
    assert_eq!(words.pop(), Some(&b""[..]), "argv ends in NUL");
    words.drain(..2); // the fixture's path and "argv"
    words
}

const HOSTILE: &[&str] = &[
    "",
    " ",
    "a b",
    "it's",
    "\"",
    "\\",
    "$(touch /tmp/offspring-pwned)",
    "`id`",
    "a\nb",
    "*",
    "~",
    "; echo INJECTED",
    "--",
    "-rf",
];

#[test]
fn cmd_passes_each_value_as_one_argument() {
    let name = String::from("x; echo INJECTED");
    let out = cmd!(FIXTURE, "argv", name, "two words", "").output().unwrap();
    assert_eq!(argv_of(&out.stdout), [&b"x; echo INJECTED"[..], b"two words", b""]);
    // Values are borrowed, not moved.
    assert_eq!(name, "x; echo INJECTED");

    let mut c = cmd!(FIXTURE, "argv");
    for w in HOSTILE {
        c.arg(w);
    }
    let expected: Vec<&[u8]> = HOSTILE.iter().map(|w| w.as_bytes()).collect();
    assert_eq!(argv_of(&c.output().unwrap().stdout), expected);
}

#[test]
fn cmd_splat_adds_one_argument_per_item() {
    let files = vec![String::from("a b"), String::from("-v")];
    let none: [&str; 0] = [];
    let out = cmd!(FIXTURE, "argv", "--", ..&files, ..none, ..HOSTILE.iter().take(2), "end",)
        .output()
        .unwrap();
    assert_eq!(argv_of(&out.stdout), [&b"--"[..], b"a b", b"-v", b"", b" ", b"end"]);
    assert_eq!(files.len(), 2, "`..&files` keeps the list");
    let out = cmd!(FIXTURE, "argv", ..files.iter().map(|f| f.to_uppercase())).output().unwrap();
    assert_eq!(argv_of(&out.stdout), [&b"A B"[..], b"-V"]);
}

#[test]
fn cmd_takes_any_os_string_argument() {
    let raw = OsStr::from_bytes(b"caf\xe9");
    let path = PathBuf::from("/tmp/x y");
    let op = Operand::new("file").unwrap();
    let owned = OsString::from("owned");
    let out = cmd!(FIXTURE, "argv", raw, path, op, owned).output().unwrap();
    assert_eq!(argv_of(&out.stdout), [&b"caf\xe9"[..], b"/tmp/x y", b"file", b"owned"]);
    // The program alone, too.
    assert_eq!(cmd!("true").get_program(), "true");
}

#[test]
fn sh_quotes_every_value() {
    for w in HOSTILE {
        let out = sh!("printf '%s|' {} {}", w, "second").output().unwrap();
        assert!(out.status.success(), "{w:?}: {out:?}");
        assert_eq!(out.stdout, format!("{w}|second|").into_bytes(), "{w:?}");
    }
    let out = sh!("printf '%s|' {}", OsStr::from_bytes(b"\xff'\x01")).output().unwrap();
    assert_eq!(out.stdout, b"\xff'\x01|");
}

#[test]
fn sh_splat_quotes_each_item_as_its_own_word() {
    let out = sh!("printf '%s|' {} x", ..HOSTILE).output().unwrap();
    let expected: String = HOSTILE.iter().map(|w| format!("{w}|")).collect::<String>() + "x|";
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    let none: Vec<String> = Vec::new();
    let out = sh!("printf '%s|' a {} b", ..none).output().unwrap();
    assert_eq!(out.stdout, b"a|b|");
}

#[test]
fn sh_templates_keep_their_shell_code() {
    // Pipes, substitutions, variables and `{{ }}` are the template's; values stay words.
    let out = sh!("X=1; {{ printf '%s' \"${{X}}\"; }}; echo $(printf '%s' {}) | tr a-z A-Z", "a b")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"1A B\n");
    let c = sh!("exit {}", "3");
    assert_eq!(c.get_program(), "/bin/sh");
    assert_eq!(c.get_args().collect::<Vec<_>>(), ["-c", "exit 3"]);
    assert_eq!(sh!("exit {}", "3").status().unwrap().code(), Some(3));
}

#[test]
fn sh_script_that_starts_with_a_value_is_not_read_as_options() {
    for program in ["-x", "+x", "-c", "if", "A=1"] {
        let out =
            sh!("{} 2>/dev/null; echo $?", program).env("PATH", "/nonexistent").output().unwrap();
        assert_eq!(out.stdout, b"127\n", "{program:?}");
    }
}

#[test]
fn sh_value_with_nul_fails_before_anything_runs() {
    let dir = std::env::temp_dir().join(format!("offspring-sh-nul-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("ran");
    let err = sh!("touch {}; echo {}", marker, "a\0b").output().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.stage(), Stage::Validate);
    assert!(err.to_string().contains("NUL"), "{err}");
    assert!(!marker.exists());
    let err = cmd!("echo", "a\0b").status().unwrap_err();
    assert!(err.to_string().contains("argument 1 contains a NUL byte at offset 1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
