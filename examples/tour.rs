//! A tour of offspring: run it with `cargo run --example tour`.
//!
//! Each step prints what it did, so the output reads as a short demonstration of the crate's
//! main job: starting children, capturing what they print, bounding them in time and output,
//! signalling them, never leaving one behind, and never letting a value turn into shell code.

use std::time::{Duration, Instant};

use offspring::{cmd, exec, sh, Command, ErrorKind, Signal, Stdio};

fn step(title: &str) {
    println!("\n== {title}");
}

fn main() -> Result<(), offspring::Error> {
    step("run a program and capture its output (no shell involved)");
    let out = Command::new("uname").arg("-sr").output()?;
    println!("uname -sr -> {} ({})", out.stdout_lossy().trim_end(), out.status);

    step("Node's exec: a shell command line, checked, with stdin fed and both pipes drained");
    let out = exec("tr a-z A-Z; echo 'to stderr' >&2").input("hello from the parent\n").run()?;
    print!("stdout: {}", out.stdout_lossy());
    print!("stderr: {}", out.stderr_lossy());

    step("a timeout: SIGTERM to the child's process group, SIGKILL after a grace period");
    let t0 = Instant::now();
    let err = exec("echo working; trap '' TERM; sleep 30")
        .process_group(offspring::ProcessGroup::New)
        .timeout(Duration::from_millis(200))
        .force_kill_after(Duration::from_millis(200))
        .run()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    println!("after {:?}: {err}", t0.elapsed());
    println!(
        "needed SIGKILL: {}, partial stdout: {:?}",
        err.needed_kill(),
        String::from_utf8_lossy(err.stdout())
    );

    step("an output limit, exact to the byte");
    let err = exec("yes").max_buffer(1000).run().unwrap_err();
    println!("{err}");

    step("errors name what was wrong");
    for result in [
        Command::new("no-such-program").status(),
        Command::new("true").current_dir("/no/such/dir").status(),
        Command::new("true").arg("bad\0arg").status(),
        Command::new("true").env("LD_PRELOAD=/evil.so:x", "y").status(),
    ] {
        println!("- {}", result.unwrap_err());
    }

    step("user input stays data: cmd! builds an argv, sh! quotes every value");
    let hostile = "notes.txt; echo INJECTED";
    let naive = format!("echo {hostile}");
    println!("format! into a shell string runs: {:?}", exec(&naive).read()?);
    println!("cmd!(\"echo\", value) prints:       {:?}", cmd!("echo", hostile).read()?);
    println!("sh!(\"echo {{}}\", value) prints:     {:?}", sh!("echo {}", hostile).read()?);
    println!("the quoted command line: {}", offspring::quote::display(["echo", hostile]));

    step("wait with a deadline, then terminate (SIGTERM, SIGKILL only if needed)");
    let child = Command::new("sleep").arg("30").spawn()?;
    println!(
        "still running after 50 ms: {}",
        child.wait_timeout(Duration::from_millis(50))?.is_none()
    );
    let t = child.terminate(Duration::from_secs(2))?;
    println!("ended by {} (SIGKILL needed: {})", t.status, t.needed_kill);

    step("select over many children with exit channels");
    let children: Vec<_> = [300, 100, 200]
        .iter()
        .map(|ms| Command::new("sleep").arg(format!("0.{ms}")).spawn())
        .collect::<Result<_, _>>()?;
    let receivers: Vec<_> = children.iter().map(|c| c.exit_receiver()).collect();
    let mut sel = crossbeam_channel::Select::new();
    for rx in &receivers {
        sel.recv(rx);
    }
    for _ in 0..children.len() {
        let op = sel.select();
        let i = op.index();
        let exit = op.recv(&receivers[i]).expect("one exit per child");
        println!("child {i} (pid {}) exited: {}", exit.pid().as_raw_nonzero(), exit.status()?);
        sel.remove(i);
    }

    step("dropped children are reaped by the reaper thread: no zombies");
    for _ in 0..100 {
        drop(Command::new("true").stdout(Stdio::null()).spawn()?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while zombies() > 0 && Instant::now() < deadline {
        std::thread::yield_now();
    }
    println!("100 children spawned and dropped; zombies left: {}", zombies());

    step("a signal to a whole process group");
    let child = Command::new("sh")
        .args(["-c", "sleep 30 & sleep 30; wait"])
        .process_group(offspring::ProcessGroup::New)
        .spawn()?;
    child.signal_group(Signal::TERM)?;
    println!("group leader ended by {}", child.wait()?);
    Ok(())
}

/// Counts this process's zombie children from /proc.
fn zombies() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
                .filter(|stat| {
                    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
                    let mut fields = rest.split_whitespace();
                    let state = fields.next();
                    let ppid = fields.next();
                    state == Some("Z") && ppid == Some(me.as_str())
                })
                .count()
        })
        .unwrap_or(0)
}
