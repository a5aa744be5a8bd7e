//! POSIX shell quoting (placeholder: display helpers only).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Quotes one word for display.
fn quote_display(b: &[u8]) -> String {
    let safe =
        !b.is_empty() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(c));
    if safe {
        return String::from_utf8_lossy(b).into_owned();
    }
    let mut s = String::from("'");
    s.push_str(&String::from_utf8_lossy(b).replace('\'', "'\"'\"'"));
    s.push('\'');
    s
}

/// An argv quoted for display.
pub(crate) fn display_argv(argv: &[OsString]) -> String {
    argv.iter().map(|a| quote_display(a.as_bytes())).collect::<Vec<_>>().join(" ")
}

/// A path quoted for display.
pub(crate) fn display_path(p: &Path) -> String {
    quote_display(p.as_os_str().as_bytes())
}
