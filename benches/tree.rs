//! Process-tree benchmark, in one run:
//!
//! 1. **spawn**: spawn + wait of `/bin/true` contained in a cgroup of its own
//!    (`Command::contain`: mkdir, `CLONE_INTO_CGROUP`, rmdir) against the same spawn plain
//!    (target: at most 1.3x plain).
//! 2. **kill**: a tree of `--tree` processes (default 100) in which a third of the members left
//!    the process group (`setsid`) and a third are double-forked daemons whose parent is gone
//!    (reparented away from the tree's root): `Tree::kill` (`cgroup.kill`) against what
//!    `tree-kill` does, `kill(-pgid)` plus a `/proc` walk of the root's descendants, each
//!    sent `SIGKILL`. Reported: the time until every process that method killed is gone, and
//!    how many members it left behind (counted through the cgroup, which then kills them).
//!
//! ```text
//! cargo bench --bench tree
//! cargo bench --bench tree -- --n 500 --rounds 5 --tree 100 --kill-rounds 5
//! ```
//!
//! Rounds interleave the methods (the order alternates) and the tables give medians per
//! child, the range of per-round medians and the ratio to the plain spawn. Where this machine
//! has no writable cgroup v2, the bench says so and exits.

mod common;
use common::{median, Args};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use offspring::{Command, ProcessGroup, Signal, Tree};

struct Options {
    n: usize,
    rounds: usize,
    tree: usize,
    kill_rounds: usize,
}

fn parse_args() -> Option<Options> {
    let args = Args::parse("tree", &["--n", "--rounds", "--tree", "--kill-rounds"])?;
    Some(Options {
        n: args.num("--n", 500),
        rounds: args.num("--rounds", 5).max(1),
        tree: args.num("--tree", 100).max(3),
        kill_rounds: args.num("--kill-rounds", 5).max(1),
    })
}

fn main() {
    let Some(o) = parse_args() else { return };
    if let Err(e) = Command::new("/bin/true").contain(true).status() {
        println!("skipped: no writable cgroup v2 here: {e}");
        return;
    }
    spawn_table(&o);
    kill_table(&o);
}

fn spawn_table(o: &Options) {
    let per_round = (o.n / o.rounds).max(1);
    let mut samples: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut round_medians: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..o.rounds {
        for k in 0..2 {
            let m = if round % 2 == 0 { k } else { 1 - k };
            let mut this = Vec::with_capacity(per_round);
            for _ in 0..per_round {
                let mut cmd = Command::new("/bin/true");
                cmd.contain(m == 1);
                let t = Instant::now();
                let status = cmd.status().expect("spawn");
                this.push(t.elapsed().as_secs_f64() * 1e6);
                assert!(status.success());
            }
            samples[m].extend_from_slice(&this);
            round_medians[m].push(median(&mut this));
        }
    }
    let plain = median(&mut samples[0].clone());
    println!(
        "spawn + wait of /bin/true, {} per method in {} rounds (µs per child)",
        per_round * o.rounds,
        o.rounds
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>19} {:>7}",
        "method", "median", "min", "max", "round medians", "ratio"
    );
    for (m, name) in ["plain", "contained"].iter().enumerate() {
        let s = &mut samples[m];
        let med = median(s);
        let (min, max) = (s[0], s[s.len() - 1]);
        let r = &mut round_medians[m];
        r.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{:<12} {:>9.1} {:>9.1} {:>9.1} {:>9.1}-{:<9.1} {:>6.2}x",
            name,
            med,
            min,
            max,
            r[0],
            r[r.len() - 1],
            med / plain
        );
    }
    println!();
}

/// Starts a contained tree of `size` processes (the root shell included): a third stay in
/// the root's process group, a third call `setsid` (children of the root, another group),
/// the rest are double-forked daemons in sessions of their own whose parents have exited.
#[allow(clippy::disallowed_methods)] // reason: no event says the shell has started its jobs
fn start_tree(size: usize) -> (offspring::Child, Tree) {
    let others = size - 1;
    let daemons = others / 3;
    let setsids = others / 3;
    let plain = others - daemons - setsids;
    let script = format!(
        "i=0; while [ $i -lt {plain} ]; do sleep 1000 & i=$((i+1)); done; \
         i=0; while [ $i -lt {setsids} ]; do setsid sleep 1000 & i=$((i+1)); done; \
         i=0; while [ $i -lt {daemons} ]; do setsid sh -c 'sleep 1000 & exit 0' </dev/null >/dev/null 2>&1; i=$((i+1)); done; \
         exec sleep 1000"
    );
    let child = Command::new("/bin/sh")
        .args(["-c", &script])
        .process_group(ProcessGroup::New)
        .contain(true)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tree");
    let tree = child.tree().expect("contained").clone();
    let start = Instant::now();
    while tree.members().expect("members").len() < size {
        assert!(start.elapsed() < Duration::from_secs(120), "tree never reached {size}");
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, tree)
}

/// `pid -> ppid` for every process, from `/proc/*/stat`.
fn parents() -> HashMap<i32, i32> {
    let mut map = HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        map.insert(pid, ppid);
    }
    map
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => !s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
    }
}

/// What tree-kill does: the group, then every descendant of the root found by a `/proc` walk.
/// Returns the pids it signalled.
fn pg_and_walk_kill(root: i32) -> Vec<i32> {
    let map = parents();
    let mut found = vec![root];
    let mut seen: HashSet<i32> = HashSet::from([root]);
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        for (&c, &pp) in &map {
            if pp == p && seen.insert(c) {
                found.push(c);
            }
        }
        i += 1;
    }
    let _ = rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(root).unwrap(),
        rustix::process::Signal::KILL,
    );
    for &p in &found {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(p).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
    found
}

#[allow(clippy::disallowed_methods)] // reason: a pause to let escapees of the kill show up
fn kill_table(o: &Options) {
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut left: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    for round in 0..o.kill_rounds {
        for k in 0..2 {
            let m = if round % 2 == 0 { k } else { 1 - k };
            let (child, tree) = start_tree(o.tree);
            let t = Instant::now();
            if m == 0 {
                tree.kill().unwrap();
                tree.wait().unwrap();
                times[0].push(t.elapsed().as_secs_f64() * 1e3);
                left[0].push(tree.members().unwrap().len());
            } else {
                let killed = pg_and_walk_kill(child.pid().as_raw_nonzero().get());
                while killed.iter().any(|&p| alive(p)) {
                    std::thread::yield_now();
                }
                times[1].push(t.elapsed().as_secs_f64() * 1e3);
                // Let the kill settle, then count what escaped it.
                std::thread::sleep(Duration::from_millis(50));
                left[1].push(tree.members().unwrap().len());
                tree.signal(Signal::KILL).unwrap();
                tree.wait().unwrap();
            }
            drop(child);
        }
    }
    println!("killing a tree of {} processes, {} rounds", o.tree, o.kill_rounds);
    println!("{:<26} {:>16} {:>22}", "method", "median ms to gone", "members left (median)");
    let names = ["cgroup.kill (Tree::kill)", "kill(-pgid) + /proc walk"];
    let base = median(&mut times[0].clone());
    for m in 0..2 {
        let med = median(&mut times[m]);
        let mut l: Vec<f64> = left[m].iter().map(|&x| x as f64).collect();
        println!("{:<26} {:>10.2} ({:.2}x) {:>22}", names[m], med, med / base, median(&mut l));
    }
}
