//! Capturing a child's output (first version: drains stdout and stderr together with poll).

use std::io::Read;

use crate::command::{Command, Defaults};
use crate::error::{Error, Result, Stage};
use crate::exit_status::ExitStatus;

/// What a finished child printed, and how it ended: the result of [`Command::output`].
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// How the child ended.
    pub status: ExitStatus,
    /// Everything the child wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the child wrote to stderr.
    pub stderr: Vec<u8>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("status", &self.status)
            .field("stdout", &String::from_utf8_lossy(&self.stdout))
            .field("stderr", &String::from_utf8_lossy(&self.stderr))
            .finish()
    }
}

impl Command {
    /// Runs the child to completion, capturing its stdout and stderr (stdin is `/dev/null`
    /// unless set). Both pipes are drained together, so the child can never block on a full
    /// pipe while the parent waits on the other one.
    ///
    /// Non-zero exit is not an error here: inspect [`Output::status`].
    #[doc(alias = "execFileSync")]
    pub fn output(&mut self) -> Result<Output> {
        let mut child = self.spawn_with_defaults(Defaults::capture())?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let io = |e: std::io::Error| Error::os(Stage::Io, e, "reading the child's output");
        match (&mut out, &mut err) {
            (Some(o), Some(e)) => {
                crate::sys::pipe::set_nonblocking(&*o, true).map_err(io)?;
                crate::sys::pipe::set_nonblocking(&*e, true).map_err(io)?;
                let (mut o_open, mut e_open) = (true, true);
                while o_open || e_open {
                    let mut fds = Vec::with_capacity(2);
                    if o_open {
                        fds.push(rustix::event::PollFd::new(&*o, rustix::event::PollFlags::IN));
                    }
                    if e_open {
                        fds.push(rustix::event::PollFd::new(&*e, rustix::event::PollFlags::IN));
                    }
                    match rustix::event::poll(&mut fds, None) {
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(er) => return Err(io(er.into())),
                    }
                    if o_open {
                        o_open = drain(o, &mut stdout).map_err(io)?;
                    }
                    if e_open {
                        e_open = drain(e, &mut stderr).map_err(io)?;
                    }
                }
            }
            (Some(o), None) => {
                o.read_to_end(&mut stdout).map_err(io)?;
            }
            (None, Some(e)) => {
                e.read_to_end(&mut stderr).map_err(io)?;
            }
            (None, None) => {}
        }
        let status = child.wait()?;
        Ok(Output { status, stdout, stderr })
    }
}

/// Reads what is there; `false` at EOF.
fn drain(r: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 65536];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
