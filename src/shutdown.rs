//! Graceful shutdown of the current process: its own `SIGTERM`, `SIGINT` and `SIGHUP` as a
//! channel a synchronous program can wait on or `select!` over.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::{Mutex, OnceLock};

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result, Stage};
use crate::signal::Signal;

/// The subscribers, once the handler is installed.
static SUBSCRIBERS: OnceLock<Mutex<Vec<Sender<Signal>>>> = OnceLock::new();
/// Serialises the first installation.
static INSTALL: Mutex<()> = Mutex::new(());

/// Subscribes to this process's termination signals: `SIGTERM`, `SIGINT` (Ctrl-C) and
/// `SIGHUP`. Each receiver gets every such signal that arrives after it was created.
///
/// The first call installs one handler for the three signals, chained to any handler that
/// was there before (a signal the program ignores stays ignored), and starts one small thread,
/// `offspring-signals`, that reads the handler's self-pipe and hands each signal to the
/// receivers. From then on these signals no longer end the process by default: the program
/// decides, typically by stopping its children within a deadline (as
/// [`Supervisor::shutdown`](crate::Supervisor::shutdown) does) and then
/// calling [`exit_by_signal`], so that its own parent sees the signal it was sent.
///
/// The receiver is a [`crossbeam_channel::Receiver`]: `recv`, `try_recv`, `recv_timeout` and
/// `recv_deadline` wait for a signal, and `select!` waits for one alongside child exits,
/// supervisor events and timers.
///
/// Children that must not outlive this process even when it is killed with `SIGKILL` (no
/// handler runs then) should be started with
/// [`Command::parent_death_signal`](crate::Command::parent_death_signal).
///
/// ```no_run
/// use std::time::Duration;
/// let signals = offspring::shutdown_signals()?;
/// let child = offspring::Command::new("sleep").arg("1000").spawn()?;
/// crossbeam_channel::select! {
///     recv(signals) -> sig => {
///         child.terminate(Duration::from_secs(5))?;
///         offspring::exit_by_signal(sig.unwrap());
///     }
///     recv(child.exit_receiver()) -> exit => println!("{:?}", exit),
/// }
/// # Ok::<(), offspring::Error>(())
/// ```
///
/// # Errors
///
/// Fails if the handler's pipe cannot be created, `sigaction` fails, or the thread cannot be
/// started.
#[doc(alias = "process.on")]
#[doc(alias = "sigaction")]
pub fn shutdown_signals() -> Result<Receiver<Signal>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    if let Some(subs) = SUBSCRIBERS.get() {
        subs.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        return Ok(rx);
    }
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(subs) = SUBSCRIBERS.get() {
        subs.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        return Ok(rx);
    }
    let fd = crate::sys::termsig::install()
        .map_err(|e| Error::os(Stage::Setup, e, "installing the SIGTERM/SIGINT/SIGHUP handler"))?;
    let subs = SUBSCRIBERS.get_or_init(|| Mutex::new(Vec::new()));
    subs.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
    crate::sys::signal::spawn_thread_without_signals(
        std::thread::Builder::new().name("offspring-signals".into()),
        move || forward(fd),
    )
    .map_err(|e| Error::os(Stage::Setup, e, "starting the signal thread"))?;
    Ok(rx)
}

/// Reads signal numbers from the self-pipe and hands them to every live subscriber.
fn forward(fd: OwnedFd) {
    let mut pipe = std::fs::File::from(fd);
    let mut buf = [0u8; 64];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let Some(subs) = SUBSCRIBERS.get() else { return };
        let mut subs = subs.lock().unwrap_or_else(|e| e.into_inner());
        for &raw in &buf[..n] {
            if let Some(sig) = Signal::from_raw(i32::from(raw)) {
                subs.retain(|tx| tx.send(sig).is_ok());
            }
        }
    }
}

/// Ends this process "killed by `signal`", as if the signal had not been caught: the
/// disposition goes back to the default and the signal is raised, so a shell or supervisor
/// above sees the status it expects (a shell stops a script on a child killed by `SIGINT`).
/// If the signal does not end the process by default, exits with `128 + signal`, the
/// shell's convention.
pub fn exit_by_signal(signal: Signal) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    crate::sys::termsig::reset_default(signal.as_raw());
    crate::sys::termsig::raise(signal.as_raw());
    // Blocked, or not fatal by default.
    std::process::exit(128 + signal.as_raw())
}
