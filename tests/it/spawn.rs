use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use offspring::{ChildFd, Command, ExitStatus, Signal, Stdio};

use crate::support::{fixture, SpawnPath, PATHS};

fn nul_split(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(|s| s.to_vec()).collect();
    assert_eq!(v.pop().as_deref(), Some(&[][..]), "output must end in NUL");
    v
}

#[test]
#[allow(unsafe_code)] // declaring a pre_exec hook
fn every_path_is_really_taken() {
    for path in PATHS {
        let child = fixture(path, ["exit", "0"]).spawn().unwrap();
        assert_eq!(child.spawn_path(), path.name());
        assert!(child.wait().unwrap().success());
    }
    // By default: the vfork path on Linux x86_64 (this suite's machine), with or without
    // settings that posix_spawn lacks...
    let default = |cmd: &mut Command| cmd.force_spawn_path("default").spawn().unwrap();
    let child = default(&mut fixture(SpawnPath::PosixSpawn, ["exit", "0"]));
    assert_eq!(child.spawn_path(), "vfork");
    child.wait().unwrap();
    let child = default(fixture(SpawnPath::PosixSpawn, ["exit", "0"]).umask(0o022));
    assert_eq!(child.spawn_path(), "vfork");
    child.wait().unwrap();
    // ...when posix_spawn is preferred, a setting it cannot apply falls through to fork...
    let child = fixture(SpawnPath::PosixSpawn, ["exit", "0"]).umask(0o022).spawn().unwrap();
    assert_eq!(child.spawn_path(), "fork");
    child.wait().unwrap();
    // ...and a user hook always takes a real fork.
    let mut cmd = fixture(SpawnPath::Vfork, ["exit", "0"]);
    // SAFETY: the hook does nothing.
    unsafe { cmd.pre_exec(|| Ok(())) };
    let child = cmd.spawn().unwrap();
    assert_eq!(child.spawn_path(), "fork");
    child.wait().unwrap();
}

#[test]
fn exit_codes_round_trip() {
    for path in PATHS {
        for code in 0..=255u8 {
            let status = fixture(path, ["exit", &code.to_string()]).status().unwrap();
            assert_eq!(status.code(), Some(i32::from(code)), "{path:?}");
            assert_eq!(status.success(), code == 0);
            assert_eq!(status.signal(), None);
            assert_eq!(status, ExitStatus::from_code(code));
            let std: std::process::ExitStatus = status.into();
            assert_eq!(std.code(), Some(i32::from(code)));
        }
    }
}

#[test]
fn death_by_signal_is_reported_as_a_signal() {
    for path in PATHS {
        for (name, sig) in [("TERM", Signal::TERM), ("KILL", Signal::KILL), ("USR1", Signal::USR1)]
        {
            let status = fixture(path, ["kill-self", name]).status().unwrap();
            assert_eq!(status.signal(), Some(sig), "{path:?} {name}");
            assert_eq!(status.code(), None);
            assert!(!status.success());
            assert_eq!(status.to_string(), format!("signal {} ({})", sig.as_raw(), sig.name()));
        }
    }
}

#[test]
fn args_reach_the_child_exactly_including_non_utf8_and_arg0() {
    let args: Vec<OsString> = vec![
        "plain".into(),
        "".into(),
        "with space".into(),
        "'quote\"".into(),
        "$(echo no) `no` *".into(),
        OsString::from_vec(vec![0xff, 0xfe, b'x']),
        "\n".into(),
    ];
    for path in PATHS {
        let out = fixture(path, ["argv"]).args(&args).output().unwrap();
        let got = nul_split(&out.stdout);
        assert!(got[0].ends_with(b"offspring-fixture"), "{path:?}");
        assert_eq!(&got[1], b"argv");
        let want: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        assert_eq!(&got[2..], &want[..], "{path:?}");

        let out = fixture(path, ["argv"]).arg0("custom-name").output().unwrap();
        assert_eq!(nul_split(&out.stdout)[0], b"custom-name", "{path:?}");
    }
}

fn child_env(cmd: &mut Command) -> BTreeSet<Vec<u8>> {
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    nul_split(&out.stdout).into_iter().collect()
}

#[test]
fn env_clear_set_and_remove_are_seen_exactly() {
    for path in PATHS {
        let env = child_env(fixture(path, ["env"]).env_clear().env("A", "1").env("B", "two words"));
        let want: BTreeSet<Vec<u8>> = [b"A=1".to_vec(), b"B=two words".to_vec()].into();
        assert_eq!(env, want, "{path:?}");

        // Unchanged: the parent's environment exactly (passed without a copy).
        let parent: BTreeSet<Vec<u8>> =
            std::env::vars_os().map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat()).collect();
        assert_eq!(child_env(&mut fixture(path, ["env"])), parent, "{path:?}");

        // Removing and overriding inherited variables (HOME and PATH exist in any test run).
        assert!(std::env::var_os("HOME").is_some());
        let env = child_env(fixture(path, ["env"]).env_remove("HOME").env("PATH", "/nowhere"));
        assert!(!env.iter().any(|kv| kv.starts_with(b"HOME=")), "{path:?}");
        assert!(env.contains(b"PATH=/nowhere".as_slice()));
        assert_eq!(env.iter().filter(|kv| kv.starts_with(b"PATH=")).count(), 1);

        // Set, then removed: gone. Removed, then set: present.
        let env = child_env(fixture(path, ["env"]).env("X_OFF", "1").env_remove("X_OFF"));
        assert!(!env.iter().any(|kv| kv.starts_with(b"X_OFF=")));
        let env = child_env(fixture(path, ["env"]).env_remove("X_OFF").env("X_OFF", "2"));
        assert!(env.contains(b"X_OFF=2".as_slice()));

        // Values may be any bytes but NUL.
        let v = OsString::from_vec(vec![b'a', 0xff, b'=', b'\n']);
        let env = child_env(fixture(path, ["env"]).env_clear().env("V", &v));
        assert_eq!(env.into_iter().collect::<Vec<_>>(), vec![b"V=a\xff=\n".to_vec()]);
    }
}

#[test]
fn program_is_looked_up_on_the_childs_path() {
    let dir = tempdir("lookup");
    let fixture_path = std::path::Path::new(env!("CARGO_BIN_EXE_offspring-fixture"));
    std::os::unix::fs::symlink(fixture_path, dir.join("offspring-probe")).unwrap();
    for path in PATHS {
        let mut cmd = Command::new("offspring-probe");
        cmd.force_spawn_path(path.name());
        // Not on this process's PATH...
        assert_eq!(cmd.output().unwrap_err().kind(), offspring::ErrorKind::NotFound);
        // ...but on the child's.
        let mut cmd = Command::new("offspring-probe");
        cmd.force_spawn_path(path.name());
        cmd.env("PATH", &dir).args(["echo", "found"]);
        assert_eq!(cmd.output().unwrap().stdout, b"found\n");
    }
}

#[test]
fn relative_path_entries_are_skipped_unless_asked() {
    let dir = tempdir("dot");
    let fixture_path = std::path::Path::new(env!("CARGO_BIN_EXE_offspring-fixture"));
    std::os::unix::fs::symlink(fixture_path, dir.join("offspring-dot")).unwrap();
    for path in PATHS {
        // `.` and an empty entry mean the working directory: never searched by default.
        let mut cmd = Command::new("offspring-dot");
        cmd.force_spawn_path(path.name());
        cmd.env("PATH", ".:").current_dir(&dir).args(["echo", "x"]);
        assert_eq!(cmd.output().unwrap_err().kind(), offspring::ErrorKind::NotFound);
        // With the opt-in they resolve against the child's working directory.
        cmd.search_relative_path(true);
        let mut cmd2 = Command::new("offspring-dot");
        cmd2.force_spawn_path(path.name());
        cmd2.env("PATH", ".:").current_dir(&dir).args(["echo", "x"]).search_relative_path(true);
        assert_eq!(cmd2.output().unwrap().stdout, b"x\n", "{path:?}");
    }
}

#[test]
fn cwd_is_set_and_a_relative_program_resolves_against_it() {
    let dir = tempdir("cwd");
    let fixture_path = std::path::Path::new(env!("CARGO_BIN_EXE_offspring-fixture"));
    std::os::unix::fs::symlink(fixture_path, dir.join("probe")).unwrap();
    let real = std::fs::canonicalize(&dir).unwrap();
    for path in PATHS {
        let out = fixture(path, ["pwd"]).current_dir(&dir).output().unwrap();
        assert_eq!(out.stdout, format!("{}\n", real.display()).into_bytes(), "{path:?}");
        // A program with a slash is relative to the child's working directory.
        let mut cmd = Command::new("./probe");
        cmd.force_spawn_path(path.name()).current_dir(&dir).arg("pwd");
        let out = cmd.output().unwrap();
        assert_eq!(out.stdout, format!("{}\n", real.display()).into_bytes(), "{path:?}");
    }
}

#[test]
fn stdin_piped_null_and_file() {
    for path in PATHS {
        let mut child =
            fixture(path, ["cat"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello through a pipe").unwrap();
        drop(stdin);
        let mut got = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello through a pipe");
        assert!(child.wait().unwrap().success());

        let out = fixture(path, ["count-stdin"]).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.stdout, b"0\n");

        let file = tempdir("stdin").join("input");
        std::fs::write(&file, b"12345").unwrap();
        let out = fixture(path, ["count-stdin"])
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"5\n");
    }
}

#[test]
fn stdout_to_a_file_and_a_pipeline() {
    for path in PATHS {
        let file = tempdir("stdout").join("out");
        let status = fixture(path, ["echo", "to", "file"])
            .stdout(std::fs::File::create(&file).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read(&file).unwrap(), b"to file\n");

        let mut producer =
            fixture(path, ["write", "100000"]).stdout(Stdio::piped()).spawn().unwrap();
        let out =
            fixture(path, ["count-stdin"]).stdin(producer.stdout.take().unwrap()).output().unwrap();
        assert!(producer.wait().unwrap().success());
        assert_eq!(out.stdout, b"100000\n");
    }
}

#[test]
fn extra_fds_land_at_their_numbers_even_when_swapped() {
    for path in PATHS {
        let dir = tempdir("extra");
        let a = std::fs::File::create(dir.join("a")).unwrap();
        let b = std::fs::File::create(dir.join("b")).unwrap();
        let out = fixture(path, ["fds"])
            .fd(ChildFd::new(3).unwrap(), b.try_clone().unwrap())
            .fd(ChildFd::new(7).unwrap(), a.try_clone().unwrap())
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"0 1 2 3 7\n", "{path:?}");
        let info = |n: &str| {
            fixture(path, ["fd-info", n])
                .fd(ChildFd::new(3).unwrap(), b.try_clone().unwrap())
                .fd(ChildFd::new(7).unwrap(), a.try_clone().unwrap())
                .output()
                .unwrap()
                .stdout
        };
        assert!(String::from_utf8(info("3")).unwrap().trim_end().ends_with("/b"));
        assert!(String::from_utf8(info("7")).unwrap().trim_end().ends_with("/a"));

        // stdout and stderr swapped through the child's own numbers: 1 -> file b, 2 -> file a.
        let out = fixture(path, ["fd-info", "2"])
            .stdout(b.try_clone().unwrap())
            .stderr(a.try_clone().unwrap())
            .status()
            .unwrap();
        assert!(out.success());
        assert!(std::fs::read_to_string(dir.join("b")).unwrap().trim_end().ends_with("/a"));

        // A piped extra fd is a socket pair: the parent talks to the child's fd 3.
        let mut child = fixture(path, ["fds"])
            .fd(ChildFd::new(3).unwrap(), Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(child.take_fd(ChildFd::new(3).unwrap()).is_some());
        let mut listing = String::new();
        child.stdout.take().unwrap().read_to_string(&mut listing).unwrap();
        assert_eq!(listing, "0 1 2 3\n");
        child.wait().unwrap();
    }
}

#[test]
fn new_session_and_process_group() {
    for path in PATHS {
        let child = fixture(path, ["sleep-forever"])
            .stdout(Stdio::piped())
            .new_session(true)
            .spawn()
            .unwrap();
        let pid = child.pid();
        assert_eq!(child.process_group(), Some(pid));
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        // state ppid pgrp session
        assert_eq!(fields[2], pid.as_raw_nonzero().to_string(), "pgrp");
        assert_eq!(fields[3], pid.as_raw_nonzero().to_string(), "session");
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL));

        let child = fixture(path, ["sleep-forever"])
            .stdout(Stdio::piped())
            .process_group(offspring::ProcessGroup::New)
            .spawn()
            .unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        assert_eq!(fields[2], child.id().to_string(), "pgrp");
        assert_ne!(fields[3], child.id().to_string(), "same session as the parent");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn fork_path_settings_apply() {
    let out = Command::new("sh").args(["-c", "umask"]).umask(0o027).output().unwrap();
    assert_eq!(out.stdout, b"0027\n");
    let out = Command::new("sh")
        .args(["-c", "ulimit -n"])
        .rlimit(offspring::Resource::OpenFiles, 64, 64)
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"64\n");
}

pub fn tempdir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "offspring-test-{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_command_spawns_again_with_the_same_settings() {
    for path in PATHS {
        let file = tempdir("again").join("out");
        let mut cmd = fixture(path, ["echo", "again"]);
        cmd.stdout(std::fs::File::create(&file).unwrap()).stdin(Stdio::null());
        assert!(cmd.status().unwrap().success());
        assert!(cmd.status().unwrap().success());
        // Both children wrote through the command's one file description.
        assert_eq!(std::fs::read(&file).unwrap(), b"again\nagain\n", "{path:?}");
        // Piped stdio gets a fresh pipe each time.
        let mut cmd = fixture(path, ["echo", "piped"]);
        cmd.stdout(Stdio::piped());
        for _ in 0..2 {
            let mut child = cmd.spawn().unwrap();
            let mut got = String::new();
            child.stdout.take().unwrap().read_to_string(&mut got).unwrap();
            assert_eq!(got, "piped\n");
            child.wait().unwrap();
        }
    }
}
