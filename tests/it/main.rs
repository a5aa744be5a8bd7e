//! offspring's integration tests: one binary, one module per concern.
//!
//! Every test that spawns runs through both spawn paths where the path matters
//! ([`SpawnPath`]); tests that need a quiet process (fd counts, zombies, process-wide signal
//! state) re-run themselves alone in a fresh process ([`isolated`]).

#![allow(unreachable_pub)] // test helpers are shared between modules with `pub`

mod support;

/// The capture loop: no deadlock at any size, exact limits, timeouts, grandchildren,
/// `communicate` and `OutputReader`.
mod capture;
/// The `offspring` command-line tool, end to end (built with `--features cli`).
#[cfg(feature = "cli")]
mod cli;
/// Every bad input and failed exec gets its own clear error, and leaks nothing.
mod errors;
/// The buffered runners and their options: exec/exec_file, run/read, input, 2>&1, cancel.
mod exec;
/// Fault injection: full fd and process tables, panicking hooks, ptrace, recycled pids.
mod faults;
/// Fault injection for the capture loop: zero deadlines, maximum sizes, limit stops.
mod faults_capture;
/// Fault injection for the runners: reusable commands, bounded and complete errors.
mod faults_run;
/// The child's fd table and signal state, including under concurrent spawning.
mod fds;
/// IPC channels against real Node peers and Rust ones; fd passing; the fuzz corpus.
mod ipc;
/// `cmd!` and `sh!`: one value, one argument or one shell word.
mod macros;
/// Many children at once: the multiplexer, pipelines, the concurrency limit, shutdown.
mod many;
/// The mapped capture: 1 GiB exact, sealing against grandchildren, limits, no leaks.
mod mapped;
/// What a new user hits: stops reach the whole command, options honoured or refused, std's
/// shapes, lossless error conversion, one result shape.
mod newuser;
/// `Pipeline::pipe_capacity`: the pipes between stages resized, clamped, bytes exact.
mod pipeline_capacity;
/// Shell quoting against real dash and bash; the fuzz corpus replayed on stable.
mod quote;
/// The reaper: no zombies after drop, the SIGCHLD fallback runs the same suite.
mod reaper;
mod shellsafe;
/// Signals: terminate/kill escalation, process groups, pid reuse.
mod signal;
/// Spawning: argv, env, cwd, stdio, exit statuses, on both spawn paths.
mod spawn;
/// The supervisor: backoff and giving up, a cluster on one socket, rolling restarts,
/// shutdown, rlimits; socket activation.
mod supervisor;
/// Policy: no `unsafe` outside `src/sys/`, SAFETY comments, CHANGELOG and README current.
mod tidy;
/// Process trees: containment in a cgroup v2, kill/freeze/wait for the tree, cleanup.
mod tree;
/// The validators agree with spawning; the `Operand` guard against option injection.
mod validate;
/// Waiting: deadlines, many waiters, exit channels, std children alongside ours.
mod wait;
