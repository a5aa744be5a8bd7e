//! Input checks run before every spawn (placeholder until the sanitizer lands).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};

fn nul(what: &str, s: &OsStr) -> Result<()> {
    match s.as_bytes().iter().position(|&b| b == 0) {
        Some(i) => Err(Error::invalid_input(format!("{what} contains a NUL byte at offset {i}"))),
        None => Ok(()),
    }
}

pub(crate) fn check_program(program: &OsStr) -> Result<()> {
    if program.is_empty() {
        return Err(Error::invalid_input("the program is empty"));
    }
    nul("the program", program)
}

pub(crate) fn check_arg(index: usize, arg: &OsStr) -> Result<()> {
    nul(&format!("argument {index}"), arg)
}

pub(crate) fn check_env(key: &OsStr, value: Option<&OsStr>) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid_input("an environment variable name is empty"));
    }
    if key.as_bytes().contains(&b'=') {
        return Err(Error::invalid_input(format!(
            "environment variable name {:?} contains '='",
            key
        )));
    }
    nul("an environment variable name", key)?;
    if let Some(v) = value {
        nul(&format!("the value of environment variable {key:?}"), v)?;
    }
    Ok(())
}

pub(crate) fn check_cwd(dir: &Path) -> Result<()> {
    nul("the working directory", dir.as_os_str())
}
