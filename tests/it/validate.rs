//! The validators on their own agree with what every spawn refuses, and the `Operand` guard
//! keeps untrusted values from being read as options.

use std::ffi::OsStr;

use offspring::{cmd, validate, Command, ErrorKind, Operand, Stage};

#[test]
fn validators_refuse_exactly_what_spawning_refuses() {
    let nul = OsStr::new("a\0b");
    // (what, the validator's verdict, the spawn's verdict)
    let cases: Vec<(&str, offspring::Result<()>, offspring::Result<offspring::ExitStatus>)> = vec![
        ("program", validate::program(nul), Command::new(nul).status()),
        ("empty program", validate::program(""), Command::new("").status()),
        (
            "argument",
            validate::argv(["true", "x", "a\0b"]),
            Command::new("true").args(["x", "a\0b"]).status(),
        ),
        (
            "env key",
            validate::env("LD_PRELOAD=/evil.so:x", "1"),
            Command::new("true").env("LD_PRELOAD=/evil.so:x", "1").status(),
        ),
        ("empty env key", validate::env("", "1"), Command::new("true").env("", "1").status()),
        ("env value", validate::env("K", nul), Command::new("true").env("K", nul).status()),
        ("cwd", validate::cwd("/tmp\0"), Command::new("true").current_dir("/tmp\0").status()),
    ];
    for (what, checked, spawned) in cases {
        let checked = checked.unwrap_err();
        let spawned = spawned.unwrap_err();
        assert_eq!(checked.kind(), ErrorKind::InvalidInput, "{what}");
        assert_eq!(spawned.kind(), ErrorKind::InvalidInput, "{what}");
        assert_eq!(spawned.stage(), Stage::Validate, "{what}");
        // The spawn's message holds the validator's, plus the command.
        let reason = checked.to_string();
        let reason =
            reason.trim_start_matches("invalid input: ").trim_end_matches(" (stage: validate)");
        assert!(spawned.to_string().contains(reason), "{what}: {spawned} lacks {reason:?}");
    }
    assert!(validate::argv(["true", "", "x y", "-"]).is_ok());
    assert!(validate::env("K", "").is_ok());
}

#[test]
fn operand_path_keeps_a_dash_file_from_being_an_option() {
    let dir = std::env::temp_dir().join(format!("offspring-operand-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("-n"), "contents\n").unwrap();

    // `cat -n` would wait for stdin; `cat ./-n` prints the file.
    let name = "-n";
    assert!(Operand::new(name).is_err());
    let mut c = cmd!("cat", Operand::path(name).unwrap());
    let out = c.current_dir(&dir).output().unwrap();
    assert_eq!(out.stdout, b"contents\n");

    // `--` is the other way, for programs that follow the convention.
    let out = cmd!("cat", "--", name).current_dir(&dir).output().unwrap();
    assert_eq!(out.stdout, b"contents\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
