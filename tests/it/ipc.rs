//! IPC channels: against a real Node (both as parent and as child), Rust to Rust in both
//! framings, fd passing, disconnects, the ready handshake, bad input, and the fuzz corpus.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use offspring::ipc::{self, Decoder, Framing, HandleKind, Options, RecvError, SendError};
use offspring::{ChildFd, Command, Signal, Stdio};

use crate::support::{assert_no_new_fds, isolated, isolated_with, ms, open_fds};

#[allow(dead_code)]
// The fuzz target's property, shared with fuzz/ (which the published crate leaves out).
#[path = "../ipc_harness/decode.rs"]
mod fuzz_ipc;

const FIXTURE: &str = env!("CARGO_BIN_EXE_offspring-fixture");

/// `true` if `node` runs here; otherwise says why the test is skipped.
fn have_node() -> bool {
    let ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: node is not installed (.ci/run installs Debian's nodejs)");
    }
    ok
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node").join(name)
}

fn node_child(name: &str) -> offspring::Child {
    Command::new("node").arg(script(name)).ipc(Options::new()).spawn().unwrap()
}

fn fixture(sub: &[&str], options: Options) -> offspring::Child {
    Command::new(FIXTURE).args(sub).ipc(options).spawn().unwrap()
}

fn long() -> Duration {
    Duration::from_secs(60)
}

/// Sends `n` messages `{"i":k}` from one thread while another receives them, and checks
/// that all come back in order.
fn exchange(tx: &ipc::Sender, rx: &ipc::Receiver, n: usize) {
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            for i in 0..n {
                let msg = rx.recv_timeout(long()).unwrap_or_else(|e| panic!("message {i}: {e}"));
                assert_eq!(msg.as_bytes(), format!("{{\"i\":{i}}}").as_bytes(), "message {i}");
            }
        });
        for i in 0..n {
            tx.send(format!("{{\"i\":{i}}}")).unwrap();
        }
        reader.join().unwrap();
    });
}

#[test]
fn rust_parent_node_child_100k_both_ways() {
    if !have_node() {
        return;
    }
    let mut child = node_child("echo.js");
    let (tx, rx) = child.take_channel().unwrap();
    exchange(&tx, &rx, 100_000);
    drop(tx);
    // The Node child saw the channel close: its 'disconnect' handler exits with 7.
    assert_eq!(child.wait_timeout(long()).unwrap().unwrap().code(), Some(7));
    assert_eq!(rx.recv_timeout(long()).unwrap_err(), RecvError::Disconnected);
}

#[test]
fn node_parent_rust_child_both_ways() {
    if !have_node() {
        return;
    }
    let out = Command::new("node")
        .arg(script("parent.js"))
        .args([FIXTURE, "ipc-echo", "100000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("received=100000 code=0 "), "{stdout}");
}

#[test]
fn node_passes_a_listening_socket_to_rust() {
    if !have_node() {
        return;
    }
    let out = Command::new("node").arg(script("pass_server.js")).arg(FIXTURE).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "reply=\"hello from rust\\n\" accepted=true code=0\n");
}

#[test]
fn rust_passes_a_listening_socket_to_node() {
    if !have_node() {
        return;
    }
    let mut child = node_child("echo.js");
    let (tx, rx) = child.take_channel().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    tx.send_fd(HandleKind::Server, &listener, format!("{{\"port\":{port}}}")).unwrap();
    let reply = rx.recv_timeout(long()).unwrap();
    assert_eq!(reply.as_bytes(), format!("{{\"gotServer\":{{\"port\":{port}}}}}").as_bytes());
    drop(listener); // only Node listens now
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    assert_eq!(text, "hello from node\n");
    // Ordinary messages still flow after the handle.
    tx.send(b"\"after\"").unwrap();
    assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), b"\"after\"");
    child.kill().unwrap();
}

#[test]
fn fds_pass_rust_to_rust_and_are_adopted() {
    let (a, b) = UnixStream::pair().unwrap();
    let (tx, rx_a) = ipc::channel(a.into(), &Options::new()).unwrap();
    let (tx_b, rx) = ipc::channel(b.into(), &Options::new()).unwrap();
    let (mut pipe_r, pipe_w) = {
        let (r, w) = UnixStream::pair().unwrap();
        (r, w)
    };
    let sender = std::thread::spawn(move || {
        tx.send_fd(HandleKind::Native, &pipe_w, b"{\"what\":\"pipe\"}").unwrap();
        tx
    });
    let mut msg = rx.recv_timeout(long()).unwrap();
    assert_eq!(msg.as_bytes(), b"{\"what\":\"pipe\"}");
    assert_eq!(msg.handle_kind(), Some("net.Native"));
    let fd = msg.take_fd().unwrap();
    let flags = rustix::io::fcntl_getfd(&fd).unwrap();
    assert!(flags.contains(rustix::io::FdFlags::CLOEXEC), "received fds are close-on-exec");
    let mut w = UnixStream::from(fd);
    w.write_all(b"through the passed fd").unwrap();
    drop(w);
    let tx = sender.join().unwrap(); // acknowledged
    drop(tx);
    drop(tx_b);
    let mut text = String::new();
    pipe_r.read_to_string(&mut text).unwrap();
    assert_eq!(text, "through the passed fd");
    drop(rx_a);
}

#[test]
fn rust_to_rust_json_and_binary() {
    for framing in [Framing::Json, Framing::Binary] {
        let mut child = fixture(&["ipc-echo"], Options::new().framing(framing));
        let (tx, rx) = child.take_channel().unwrap();
        exchange(&tx, &rx, 20_000);
        if framing == Framing::Binary {
            // Any bytes, not only JSON.
            tx.send(b"\0\xff\n not json").unwrap();
            assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), b"\0\xff\n not json");
        }
        drop(tx);
        assert!(child.wait_timeout(long()).unwrap().unwrap().success(), "{framing:?}");
        assert_eq!(rx.recv_timeout(long()).unwrap_err(), RecvError::Disconnected);
    }
}

#[test]
fn channel_at_another_fd() {
    let mut child = fixture(&["ipc-echo"], Options::new().fd(ChildFd::new(7).unwrap()));
    let (tx, rx) = child.take_channel().unwrap();
    tx.send(b"7").unwrap();
    assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), b"7");
}

#[test]
fn disconnect_from_the_parent_is_seen_by_node() {
    if !have_node() {
        return;
    }
    let mut child = node_child("echo.js");
    let (tx, rx) = child.take_channel().unwrap();
    tx.send(b"1").unwrap();
    assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), b"1");
    tx.disconnect();
    assert_eq!(tx.send(b"2"), Err(SendError::Disconnected));
    assert_eq!(child.wait_timeout(long()).unwrap().unwrap().code(), Some(7));
    assert_eq!(rx.recv_timeout(long()).unwrap_err(), RecvError::Disconnected);
}

#[test]
fn disconnect_from_node_is_seen_by_the_parent() {
    if !have_node() {
        return;
    }
    let mut child = node_child("echo.js");
    let (tx, rx) = child.take_channel().unwrap();
    tx.send(b"\"before\"").unwrap();
    tx.send(b"\"disconnect-me\"").unwrap();
    assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), b"\"before\"");
    assert_eq!(rx.recv_timeout(long()).unwrap_err(), RecvError::Disconnected);
    assert_eq!(child.wait_timeout(long()).unwrap().unwrap().code(), Some(7));
}

#[test]
fn death_of_the_peer_is_a_disconnect() {
    let mut child = fixture(&["ipc-echo"], Options::new());
    let (tx, rx) = child.take_channel().unwrap();
    child.kill().unwrap();
    assert_eq!(rx.recv_timeout(long()).unwrap_err(), RecvError::Disconnected);
    assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL));
    // Sending to a dead peer fails, sooner or later, without SIGPIPE killing us.
    let deadline = Instant::now() + long();
    loop {
        match tx.send(b"1") {
            Ok(()) => assert!(Instant::now() < deadline, "sends to a dead peer kept working"),
            Err(e) => {
                assert_eq!(e, SendError::Disconnected);
                break;
            }
        }
    }
}

#[test]
fn messages_sent_just_before_exit_arrive() {
    let mut child = fixture(&["ipc-send-exit", "5000"], Options::new());
    let (_tx, rx) = child.take_channel().unwrap();
    for i in 0..5000 {
        let msg = rx.recv_timeout(long()).unwrap();
        assert_eq!(msg.as_bytes(), format!("{{\"i\":{i}}}").as_bytes());
    }
    assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), b"\"bye\"");
    assert_eq!(rx.recv_timeout(long()).unwrap_err(), RecvError::Disconnected);
    assert!(child.wait().unwrap().success());

    if have_node() {
        let mut child = Command::new("node")
            .args(["-e", "process.send({last: 'words'})"])
            .ipc(Options::new())
            .spawn()
            .unwrap();
        let (_tx, rx) = child.take_channel().unwrap();
        assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), br#"{"last":"words"}"#);
        assert_eq!(rx.recv_timeout(long()).unwrap_err(), RecvError::Disconnected);
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn a_node_peer_is_never_crashed_by_what_we_write() {
    if !have_node() {
        return;
    }
    let mut child = node_child("echo.js");
    let (tx, rx) = child.take_channel().unwrap();
    // Refused before anything reaches the socket: each would kill Node.
    let refused: &[&[u8]] = &[
        b"",
        b"\n",
        b"   ",
        b"{",
        b"[1,]",
        b"{\"a\":1}{\"b\":2}",
        b"1\n2",
        b"undefined",
        b"NaN",
        b"'single'",
        b"\"\xff\"",
        b"\"tab\there\"",
        br#"{"cmd":"NODE_HANDLE_ACK"}"#,
        br#"{"cmd":"NODE_HANDLE","type":"net.Server","msg":1}"#,
        br#"{"c\u006dd":"NODE\u005fX"}"#,
    ];
    for msg in refused {
        assert!(
            matches!(tx.send(msg), Err(SendError::Invalid(_))),
            "sent {:?}",
            String::from_utf8_lossy(msg)
        );
    }
    assert!(matches!(tx.try_send(b"[1,"), Err(SendError::Invalid(_))));
    // Accepted, and echoed back by Node in its own compact form.
    let cases: &[(&[u8], &[u8])] = &[
        (b"null", b"null"),
        (b"42", b"42"),
        (b"\"str\"", b"\"str\""),
        (b" {\"a\" :\n [1, 2]}\r", b"{\"a\":[1,2]}"),
        ("\"x\u{2028}y\u{e9}\u{1f600}\"".as_bytes(), "\"x\u{2028}y\u{e9}\u{1f600}\"".as_bytes()),
        (b"\"\\ud800\"", b"\"\\ud800\""),
        (b"\"\\u0041\\n\"", b"\"A\\n\""),
        (br#"{"cmd":"NODE_"}"#, br#"{"cmd":"NODE_"}"#),
        (br#"{"cmd":"node_lower"}"#, br#"{"cmd":"node_lower"}"#),
        (br#"{"x":{"cmd":"NODE_INNER"}}"#, br#"{"x":{"cmd":"NODE_INNER"}}"#),
        (b"1e400", b"null"),
        (b"\"\x7f\"", b"\"\x7f\""),
    ];
    for (sent, _) in cases {
        tx.send(sent).unwrap();
    }
    let mut deep = vec![b'['; 500];
    deep.extend(vec![b']'; 500]);
    tx.send(&deep).unwrap();
    let big = format!("\"{}\"", "x".repeat(4 << 20));
    tx.send(&big).unwrap();
    for (sent, echoed) in cases {
        let got = rx.recv_timeout(long()).unwrap();
        assert_eq!(got.as_bytes(), *echoed, "sent {:?}", String::from_utf8_lossy(sent));
    }
    assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), deep);
    assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), big.as_bytes());
    // Still alive: a crash would have exited 1 and closed the channel.
    assert_eq!(child.try_wait().unwrap(), None);
    drop(tx);
    assert_eq!(child.wait_timeout(long()).unwrap().unwrap().code(), Some(7));
}

#[test]
fn select_beside_the_exit_receiver() {
    use crossbeam_channel::Select;
    let mut child = fixture(&["ipc-send-exit", "3"], Options::new());
    let (_tx, rx) = child.take_channel().unwrap();
    let exits = child.exit_receiver();
    let (mut messages, mut exited, mut closed) = (0, false, false);
    while !(exited && closed) {
        let mut sel = Select::new();
        let m = if closed { usize::MAX } else { sel.recv(rx.as_crossbeam()) };
        let e = if exited { usize::MAX } else { sel.recv(&exits) };
        let op = sel.select_timeout(long()).expect("no event within a minute");
        if op.index() == m {
            match op.recv(rx.as_crossbeam()) {
                Ok(_) => messages += 1,
                Err(_) => closed = true,
            }
        } else {
            assert_eq!(op.index(), e);
            assert!(op.recv(&exits).unwrap().status().unwrap().success());
            exited = true;
        }
    }
    assert_eq!(messages, 4);
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Disconnected);
}

#[test]
fn ready_handshake_with_a_deadline() {
    let mut child = fixture(&["ipc-ready", "50"], Options::new());
    let (tx, rx) = child.take_channel().unwrap();
    assert!(!rx.is_ready());
    rx.wait_ready_deadline(Instant::now() + long()).unwrap();
    assert!(rx.is_ready());
    rx.wait_ready_timeout(Duration::ZERO).unwrap(); // still ready
    tx.send(b"1").unwrap();
    assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), b"1", "the handshake is not a message");

    // Never ready: the deadline passes, and Duration::MAX does not overflow.
    let mut child = fixture(&["ipc-echo"], Options::new());
    let (tx, rx) = child.take_channel().unwrap();
    assert_eq!(rx.wait_ready_timeout(ms(50)), Err(RecvError::Timeout));
    // A child that closes the channel without getting ready: said so at once.
    drop(tx);
    assert_eq!(rx.wait_ready_timeout(Duration::MAX), Err(RecvError::Disconnected));
    assert!(child.wait().unwrap().success());

    if have_node() {
        // A Node child says it is ready with an internal message.
        let mut child = Command::new("node")
            .args(["-e", "process.send({cmd: 'NODE_OFFSPRING_READY'}); process.send('x')"])
            .ipc(Options::new())
            .spawn()
            .unwrap();
        let (_tx, rx) = child.take_channel().unwrap();
        rx.wait_ready_timeout(long()).unwrap();
        assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), b"\"x\"");
    }
}

#[test]
fn attach_cleans_the_environment_and_marks_cloexec() {
    let mut child = Command::new(FIXTURE);
    child.arg("ipc-env").ipc(Options::new()).stdout(Stdio::piped());
    let out = child.output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fd-var=absent mode-var=absent cloexec=true\n"
    );
}

#[test]
fn attach_refuses_advanced_mode_and_non_sockets() {
    let out = Command::new(FIXTURE)
        .arg("ipc-echo")
        .fd(ChildFd::new(3).unwrap(), Stdio::piped())
        .env("NODE_CHANNEL_FD", "3")
        .env("NODE_CHANNEL_SERIALIZATION_MODE", "advanced")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("NODE_CHANNEL_SERIALIZATION_MODE=advanced"), "{err}");

    let (r, _w) = rustix::pipe::pipe().unwrap();
    let out = Command::new(FIXTURE)
        .arg("ipc-echo")
        .fd(ChildFd::new(3).unwrap(), r)
        .env("NODE_CHANNEL_FD", "3")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not a socket"), "{err}");

    let out = Command::new(FIXTURE).arg("ipc-echo").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NODE_CHANNEL_FD is not set"), "{err}");
}

#[test]
fn a_child_with_a_channel_is_told_its_fd_and_framing() {
    // What Node's `process.send` looks for in a forked child. (That a channel this process
    // inherited is not passed on to its own children is
    // `a_channel_this_process_inherited_is_not_passed_on`.)
    let out = Command::new(FIXTURE).arg("env").ipc(Options::new()).output().unwrap();
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(env.contains("NODE_CHANNEL_FD=3\0"), "{env}");
    assert!(env.contains("NODE_CHANNEL_SERIALIZATION_MODE=json\0"), "{env}");
}

/// The `NODE_CHANNEL_*` entries of an environment block as the fixture's `env` prints it
/// (`/proc/self/environ`: every entry the child got, duplicates included), sorted.
fn channel_vars(environ: &[u8]) -> Vec<String> {
    let mut vars: Vec<String> = environ
        .split(|&b| b == 0)
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .filter(|kv| kv.starts_with("NODE_CHANNEL_"))
        .collect();
    vars.sort();
    vars
}

/// What a command shows of itself: its environment changes and its `Debug` form (which
/// lists the fds it passes).
fn settings(cmd: &Command) -> (Vec<(String, Option<String>)>, String) {
    let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
    let envs = cmd.get_envs().map(|(k, v)| (text(k), v.map(text))).collect();
    (envs, format!("{cmd:?}"))
}

const JSON_CHANNEL: [&str; 2] = ["NODE_CHANNEL_FD=3", "NODE_CHANNEL_SERIALIZATION_MODE=json"];

#[test]
fn a_spawn_with_a_channel_leaves_the_command_unchanged() {
    let mut cmd = Command::new(FIXTURE);
    cmd.arg("env").env("KEPT", "1").ipc(Options::new());
    let before = settings(&cmd);
    for _ in 0..2 {
        let out = cmd.output().unwrap();
        assert_eq!(channel_vars(&out.stdout), JSON_CHANNEL);
        assert_eq!(settings(&cmd), before);
    }
    let mut child = cmd.stdout(Stdio::null()).spawn().unwrap();
    assert!(child.take_channel().is_some());
    assert!(child.wait_timeout(long()).unwrap().unwrap().success());
    assert_eq!(settings(&cmd).0, before.0);
}

#[test]
fn one_command_spawned_again_names_only_its_current_channel() {
    // The shell prints the channel variables it got (each entry, duplicates too) and which
    // of fds 3 and 7 it holds as sockets.
    let script = r#"tr '\0' '\n' < /proc/$$/environ | grep '^NODE_CHANNEL_' | sort
        for fd in 3 7; do [ -S /proc/$$/fd/$fd ] && echo "socket at $fd"; done; true"#;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]).ipc(Options::new());
    let expect_3 = "NODE_CHANNEL_FD=3\nNODE_CHANNEL_SERIALIZATION_MODE=json\nsocket at 3\n";
    for round in 0..2 {
        let out = cmd.output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expect_3, "spawn {round}");
    }
    // Moved to fd 7: the child has one channel, at fd 7, and nothing left at fd 3.
    cmd.ipc(Options::new().fd(ChildFd::new(7).unwrap()).framing(Framing::Binary));
    let out = cmd.output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "NODE_CHANNEL_FD=7\nNODE_CHANNEL_SERIALIZATION_MODE=offspring-binary\nsocket at 7\n"
    );
}

#[test]
fn env_clear_still_names_the_channel() {
    let out = Command::new(FIXTURE).arg("env").env_clear().ipc(Options::new()).output().unwrap();
    assert_eq!(channel_vars(&out.stdout), JSON_CHANNEL);
    assert_eq!(out.stdout.split(|&b| b == 0).filter(|kv| !kv.is_empty()).count(), 2);

    let mut cmd = Command::new(FIXTURE);
    cmd.arg("env").env_clear().env("ONLY", "1").ipc(Options::new());
    let out = cmd.output().unwrap();
    let mut all: Vec<&[u8]> = out.stdout.split(|&b| b == 0).filter(|kv| !kv.is_empty()).collect();
    all.sort();
    assert_eq!(
        all,
        [&b"NODE_CHANNEL_FD=3"[..], b"NODE_CHANNEL_SERIALIZATION_MODE=json", b"ONLY=1"]
    );
}

#[test]
fn the_channel_values_win_over_ones_set_with_env() {
    // With a channel, the child gets the channel's values; the command keeps the user's.
    let mut cmd = Command::new(FIXTURE);
    cmd.arg("env")
        .env("NODE_CHANNEL_FD", "99")
        .env("NODE_CHANNEL_SERIALIZATION_MODE", "advanced")
        .ipc(Options::new());
    let before = settings(&cmd);
    let out = cmd.output().unwrap();
    assert_eq!(channel_vars(&out.stdout), JSON_CHANNEL);
    assert_eq!(settings(&cmd), before);
    assert!(before.0.contains(&("NODE_CHANNEL_FD".into(), Some("99".into()))), "{before:?}");

    // Without a channel, a value set with `env` is passed as it is (attach's own tests
    // rely on it).
    let out = Command::new(FIXTURE).arg("env").env("NODE_CHANNEL_FD", "99").output().unwrap();
    assert_eq!(channel_vars(&out.stdout), ["NODE_CHANNEL_FD=99"]);
}

#[test]
fn a_channel_this_process_inherited_is_not_passed_on() {
    let inherited = [("NODE_CHANNEL_FD", "5"), ("NODE_CHANNEL_SERIALIZATION_MODE", "json")];
    if !isolated_with("ipc::a_channel_this_process_inherited_is_not_passed_on", &inherited) {
        return;
    }
    assert_eq!(std::env::var("NODE_CHANNEL_FD").as_deref(), Ok("5"));
    let mut cmd = Command::new(FIXTURE);
    cmd.arg("env");
    for _ in 0..2 {
        let out = cmd.output().unwrap();
        assert_eq!(channel_vars(&out.stdout), Vec::<String>::new());
        assert_eq!(cmd.get_envs().len(), 0);
    }
    let out = Command::new(FIXTURE).arg("env").ipc(Options::new()).output().unwrap();
    assert_eq!(channel_vars(&out.stdout), JSON_CHANNEL);
}

#[test]
fn an_fd_at_the_channel_number_is_an_error() {
    let three = ChildFd::new(3).unwrap();
    let err = Command::new(FIXTURE)
        .arg("env")
        .fd(three, Stdio::null())
        .ipc(Options::new())
        .output()
        .unwrap_err();
    assert_eq!(err.kind(), offspring::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("Command::fd(3) collides with the IPC channel"), "{err}");

    let (sock, _peer) = UnixStream::pair().unwrap();
    let err = Command::new(FIXTURE)
        .arg("env")
        .listen_fd("http", sock)
        .ipc(Options::new())
        .output()
        .unwrap_err();
    assert_eq!(err.kind(), offspring::ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("listen_fd 0 (\"http\") collides with the IPC channel"),
        "{err}"
    );
}

#[test]
fn backpressure_blocks_instead_of_growing() {
    // The child never reads: sends fill the socket buffer, then our bounded queue.
    let mut child = Command::new(FIXTURE)
        .arg("sleep-forever")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .ipc(Options::new().max_queued_bytes(64 * 1024))
        .spawn()
        .unwrap();
    let (tx, _rx) = child.take_channel().unwrap();
    let msg = format!("\"{}\"", "x".repeat(1000));
    let mut sent = 0usize;
    // Once the socket buffer is full the writer thread blocks, the queue fills, and sends
    // wait (try_send may also say Full earlier, while a write is still going through).
    loop {
        match tx.send_timeout(&msg, ms(50)) {
            Ok(()) => sent += 1,
            Err(SendError::Timeout) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 100_000, "the send side grew without bound");
    }
    assert!(sent > 10, "only {sent} messages fit");
    assert_eq!(tx.try_send(&msg), Err(SendError::Full));
    child.kill().unwrap();
    child.wait().unwrap();
    // The writer thread sees the peer gone; sends fail instead of blocking forever.
    let deadline = Instant::now() + long();
    while tx.send_timeout(&msg, ms(100)) != Err(SendError::Disconnected) {
        assert!(Instant::now() < deadline, "send never saw the dead peer");
    }
}

#[test]
fn malformed_input_drops_the_connection_with_a_reason() {
    let cases: &[(&[u8], &str)] = &[
        (b"{\"ok\":1}\nnot json\n", "invalid JSON"),
        (b"{\"ok\":1}\n\n", "invalid JSON"),
        (b"{\"ok\":1}\n\"0123456789abcdef0123456789\"\n", "limit"),
        (b"{\"ok\":1}\n01234567890123456789012345678901234567890123456789", "limit"),
    ];
    for (bytes, why) in cases {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let (_tx, rx) = ipc::channel(ours.into(), &Options::new().max_message_size(20)).unwrap();
        theirs.write_all(bytes).unwrap();
        assert_eq!(rx.recv_timeout(long()).unwrap().as_bytes(), b"{\"ok\":1}");
        match rx.recv_timeout(long()) {
            Err(RecvError::Malformed(e)) => assert!(e.contains(why), "{e}"),
            other => panic!("{other:?}"),
        }
        // The connection was dropped: the peer reads end of stream.
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).unwrap();
    }
    // Binary: a length prefix over the limit is refused before its body is read.
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let opts = Options::new().framing(Framing::Binary).max_message_size(1000);
    let (_tx, rx) = ipc::channel(ours.into(), &opts).unwrap();
    theirs.write_all(&[0xff, 0xff, 0xff, 0xf0, 0]).unwrap();
    assert!(matches!(rx.recv_timeout(long()), Err(RecvError::Malformed(_))));
}

#[test]
fn oversized_sends_are_refused() {
    let (a, _b) = UnixStream::pair().unwrap();
    let (tx, _rx) = ipc::channel(a.into(), &Options::new().max_message_size(10)).unwrap();
    assert!(matches!(tx.send(b"\"0123456789\""), Err(SendError::Invalid(_))));
    tx.send(b"\"01234567\"").unwrap();
}

#[test]
fn nothing_leaks_when_a_channel_ends() {
    if !isolated("ipc::nothing_leaks_when_a_channel_ends") {
        return;
    }
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    // Warm up the reaper thread first, so that it does not count.
    Command::new(FIXTURE).arg("exit").arg("0").status().unwrap();
    let fds = open_fds();
    let before = threads();
    for framing in [Framing::Json, Framing::Binary] {
        let mut child = fixture(&["ipc-echo"], Options::new().framing(framing));
        let (tx, rx) = child.take_channel().unwrap();
        for i in 0..1000 {
            tx.send(format!("[{i}]")).unwrap();
        }
        for _ in 0..1000 {
            rx.recv_timeout(long()).unwrap();
        }
        drop(tx);
        assert_eq!(rx.recv_timeout(long()).unwrap_err(), RecvError::Disconnected);
        child.wait().unwrap();
        drop(rx);
    }
    let deadline = Instant::now() + long();
    while threads() != before {
        assert!(Instant::now() < deadline, "IPC threads left running: {} > {before}", threads());
        std::thread::yield_now();
    }
    assert_no_new_fds(&fds, long());
}

#[test]
fn corpus_ipc_decode() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("fuzz/Cargo.toml").exists() {
        eprintln!(
            "skipped: no fuzz/ directory (a packaged crate), so no ipc_decode corpus to replay"
        );
        return;
    }
    let dir = root.join("fuzz/corpus/ipc_decode");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 10, "corpus missing in {}", dir.display());
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| fuzz_ipc::decode(&data));
        assert!(result.is_ok(), "{} fails the decode property", path.display());
    }
}

#[test]
fn decoder_is_bounded_on_a_flood() {
    let mut dec = Decoder::new(Framing::Json, 1 << 16);
    let chunk = vec![b' '; 4096];
    let mut error = None;
    for _ in 0..1000 {
        dec.push(&chunk);
        assert!(dec.buffered() <= (1 << 16) + chunk.len());
        if let Err(e) = dec.next_frame() {
            error = Some(e);
            break;
        }
    }
    assert!(error.is_some(), "a line that never ends must hit the limit");
}

#[cfg(feature = "serde")]
#[test]
fn typed_messages_with_serde() {
    let (a, b) = UnixStream::pair().unwrap();
    let (tx, _rx) = ipc::channel(a.into(), &Options::new()).unwrap();
    let (_tx2, rx) = ipc::channel(b.into(), &Options::new()).unwrap();
    tx.send_value(&(1, "two\n", [3.5])).unwrap();
    let msg = rx.recv_timeout(long()).unwrap();
    assert_eq!(msg.as_bytes(), br#"[1,"two\n",[3.5]]"#);
    assert_eq!(
        msg.deserialize::<(i32, String, Vec<f64>)>().unwrap(),
        (1, "two\n".into(), vec![3.5])
    );
}

#[test]
fn a_rust_child_closing_is_seen_by_a_node_parent() {
    if !have_node() {
        return;
    }
    // The Rust child sends 3 messages and "bye", then exits: the Node parent gets all four,
    // then 'disconnect'.
    let parent = "const c = require('child_process').spawn(process.env.FIXTURE, \
                  ['ipc-send-exit', '3'], {stdio: ['inherit', 'inherit', 'inherit', 'ipc']}); \
                  let n = 0; c.on('message', () => n++); \
                  c.on('disconnect', () => console.log(`disconnect after ${n}`));";
    let out = Command::new("node").args(["-e", parent]).env("FIXTURE", FIXTURE).read().unwrap();
    assert_eq!(out, "disconnect after 4");
}
