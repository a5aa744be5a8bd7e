use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;

use offspring::{Command, ErrorKind, Stage, Stdio};

use crate::spawn::tempdir;
use crate::support::{assert_no_new_fds, children, fixture, isolated, open_fds, SpawnPath, PATHS};

fn cmd(program: impl AsRef<std::ffi::OsStr>, path: SpawnPath) -> Command {
    let mut c = Command::new(program);
    c.force_spawn_path(path.name());
    c
}

fn nul(s: &str) -> OsString {
    OsString::from_vec(s.replace('0', "\0").into_bytes())
}

#[test]
fn nul_bytes_are_refused_naming_the_item_and_index() {
    for path in PATHS {
        let e = cmd(nul("tr0e"), path).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.stage(), Stage::Validate);
        assert!(e.to_string().contains("program"), "{e}");

        let e = cmd("true", path).args(["ok", "also ok", "bad0arg"].map(nul)).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(msg.contains("argument 3"), "{msg}");

        let e = cmd("true", path).env(nul("KEY0X"), "v").status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("environment"), "{e}");

        let e = cmd("true", path).env("KEY", nul("va0lue")).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("KEY"), "{e}");

        let e = cmd("true", path).current_dir(nul("/tm0p")).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("working directory"), "{e}");

        let e = cmd("true", path).arg0(nul("a0")).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}

#[test]
fn bad_env_keys_and_empty_program_are_refused() {
    for path in PATHS {
        let e = cmd("true", path).env("", "x").status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("empty"), "{e}");

        // A key like this must never set LD_PRELOAD in the child.
        let e = cmd("true", path).env("LD_PRELOAD=/evil.so:x", "y").status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains('='), "{e}");

        let e = cmd("", path).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("empty"), "{e}");
    }
}

#[test]
fn missing_program_is_not_found_and_named() {
    for path in PATHS {
        let e = cmd("offspring-no-such-program", path).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.stage(), Stage::Lookup);
        assert!(e.to_string().contains("offspring-no-such-program"), "{e}");
        let io: std::io::Error = e.into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

        let e = cmd("/no/such/dir/prog", path).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.stage(), Stage::Exec);
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert!(e.to_string().contains("/no/such/dir/prog"), "{e}");
    }
}

#[test]
fn directory_and_non_executable_file_are_permission_denied() {
    let dir = tempdir("perm");
    let file = dir.join("not-executable");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    for path in PATHS {
        let e = cmd(&dir, path).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert_eq!(e.stage(), Stage::Exec);
        let e = cmd(&file, path).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        assert!(e.to_string().contains("not-executable"), "{e}");
    }
    // On PATH, an entry that is not executable is also PermissionDenied, naming the file.
    let e = Command::new("not-executable").env("PATH", &dir).status().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(e.stage(), Stage::Lookup);
}

#[test]
fn script_without_shebang_is_exec_format_not_run_through_a_shell() {
    let dir = tempdir("noexec");
    let script = dir.join("script");
    let marker = dir.join("ran");
    std::fs::write(&script, format!("touch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    for path in PATHS {
        let e = cmd(&script, path).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ExecFormat, "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::ENOEXEC));
        assert!(e.to_string().contains("#!"), "{e}");
        assert!(!marker.exists(), "the script must not have been run by a shell");
    }
}

#[test]
fn missing_cwd_names_the_directory_and_differs_from_a_missing_program() {
    for path in PATHS {
        let e = cmd("true", path).current_dir("/no/such/working/dir").status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.stage(), Stage::Chdir, "{e}");
        assert_eq!(e.path(), Some(std::path::Path::new("/no/such/working/dir")));
        assert!(e.to_string().contains("/no/such/working/dir"), "{e}");
        assert!(e.to_string().contains("working directory"), "{e}");

        // Missing program with a good cwd: an exec error, not a chdir one.
        let e = cmd("/no/such/program", path).current_dir("/").status().unwrap_err();
        assert_eq!(e.stage(), Stage::Exec, "{e}");
    }
}

#[test]
fn argument_list_too_long_is_e2big() {
    // One argument over the kernel's 128 KiB per-string limit.
    let big = "x".repeat(200 * 1024);
    for path in PATHS {
        let e = cmd("true", path).arg(&big).status().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentListTooLong, "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::E2BIG));
    }
}

#[test]
fn running_out_of_fds_is_emfile_and_leaks_nothing() {
    // The fixture lowers its own fd limit, fills its table, tries to spawn and checks its fd
    // count afterwards.
    for path in PATHS {
        let out = fixture(path, ["spawn-emfile"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("kind=ResourceExhausted"), "{path:?}: {text}");
        assert!(text.contains(&format!("errno={}", libc::EMFILE)), "{path:?}: {text}");
        assert!(text.contains("fds-unchanged=true"), "{path:?}: {text}");
    }
}

#[test]
fn failed_spawns_leave_no_fd_and_no_zombie() {
    if !isolated("errors::failed_spawns_leave_no_fd_and_no_zombie") {
        return;
    }
    let dir = tempdir("leak");
    let script = dir.join("script");
    std::fs::write(&script, "no shebang\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Warm up: the reaper's own fds (epoll, eventfd) exist from the first spawn on.
    Command::new("true").status().unwrap();
    let before = open_fds();
    for path in PATHS {
        for _ in 0..20 {
            let piped = |c: &mut Command| {
                c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            };
            let mut c = cmd("/no/such/program", path);
            piped(&mut c);
            assert!(c.spawn().is_err());
            let mut c = cmd(&script, path);
            piped(&mut c);
            assert!(c.spawn().is_err());
            let mut c = cmd("true", path);
            piped(&mut c);
            c.current_dir("/no/such/dir");
            assert!(c.spawn().is_err());
            let mut c = cmd("offspring-missing", path);
            piped(&mut c);
            assert!(c.spawn().is_err());
        }
    }
    assert_no_new_fds(&before, std::time::Duration::from_secs(10));
    assert_eq!(children(), vec![], "children left behind by failed spawns");
}
