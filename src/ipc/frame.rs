//! The IPC channel's framing, on bytes alone: no I/O, so the decoders can be fuzzed.
//!
//! Two framings share one [`Decoder`]:
//!
//! - **JSON** (Node's `'json'` serialization): one JSON value per line, `\n`-terminated. A line
//!   that is empty or not valid JSON (RFC 8259, UTF-8) is an error, since the same line would
//!   kill a Node peer with an uncaught `SyntaxError`. A message is *internal* when it is an
//!   object whose last `cmd` key holds a string that starts with `NODE_` and is longer than
//!   `NODE_` (Node's `isInternal`); escapes are decoded first, so `"c\u006dd"` is `cmd`.
//! - **Binary** (Rust to Rust): a 4-byte big-endian body length, one flags byte (`0` a user
//!   message, `1` an internal message, whose body is a JSON object as above), then the body.
//!
//! Memory is bounded: a decoder never holds more than the size limit plus what was pushed in
//! one call, and a length prefix over the limit is refused before its body is buffered.

use std::fmt;
use std::ops::Range;

/// The default limit on one message's size: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// The deepest nesting of arrays and objects a JSON message may have. V8's `JSON.parse` takes
/// much deeper input, but nothing real needs it and a bound keeps the scanner's stack small.
pub const MAX_JSON_DEPTH: usize = 1000;

/// How messages are framed on the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Node's JSON mode: one compact JSON value per line.
    Json,
    /// Length-prefixed frames of any bytes, for Rust-to-Rust channels.
    Binary,
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The message's bytes: the JSON text (without the `\n`) or the binary body.
    pub data: Vec<u8>,
    /// `true` for a protocol message (`NODE_HANDLE`, `NODE_HANDLE_ACK`...), which is never
    /// delivered as a user message.
    pub internal: bool,
}

/// Why bytes from the peer (or a message about to be sent) are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A message is larger than the limit. `size` is its declared size in binary mode, `None`
    /// for a JSON line that ran past the limit without ending.
    TooLarge {
        /// The declared size, when known.
        size: Option<usize>,
        /// The limit.
        limit: usize,
    },
    /// A line is not valid JSON (an empty line included): what is wrong and the byte offset
    /// in the line.
    InvalidJson {
        /// What is wrong.
        reason: &'static str,
        /// Where, in bytes from the start of the message.
        offset: usize,
    },
    /// A binary frame's flags byte is not 0 or 1.
    BadFlags(u8),
    /// A binary frame flagged internal is not an internal JSON message.
    BadInternal,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { size: Some(size), limit } => {
                write!(f, "message of {size} bytes is over the {limit}-byte limit")
            }
            FrameError::TooLarge { size: None, limit } => {
                write!(f, "message is over the {limit}-byte limit (no end of line within it)")
            }
            FrameError::InvalidJson { reason, offset } => {
                write!(f, "invalid JSON at byte {offset}: {reason}")
            }
            FrameError::BadFlags(b) => write!(f, "binary frame with unknown flags byte {b:#04x}"),
            FrameError::BadInternal => {
                f.write_str("binary frame flagged internal is not an internal JSON message")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// A streaming decoder: push bytes as they arrive, in any split, and take frames out.
///
/// After an error the decoder is poisoned: every later call returns the same error, since
/// the stream can no longer be resynchronised.
///
/// # Examples
///
/// ```
/// use offspring::ipc::{Decoder, Framing};
/// let mut dec = Decoder::new(Framing::Json, 1 << 20);
/// dec.push(b"{\"a\":1}\n{\"b\"");
/// assert_eq!(dec.next_frame().unwrap().unwrap().data, b"{\"a\":1}");
/// assert_eq!(dec.next_frame().unwrap(), None); // half a message
/// dec.push(b":[]}\n");
/// assert_eq!(dec.next_frame().unwrap().unwrap().data, b"{\"b\":[]}");
/// dec.push(b"not json\n");
/// assert!(dec.next_frame().is_err());
/// ```
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    limit: usize,
    buf: Vec<u8>,
    /// Start of the first unconsumed byte.
    pos: usize,
    /// JSON: bytes from `pos` already searched for `\n`.
    scanned: usize,
    error: Option<FrameError>,
}

impl Decoder {
    /// A decoder for `framing` that refuses messages over `limit` bytes.
    pub fn new(framing: Framing, limit: usize) -> Decoder {
        Decoder { framing, limit, buf: Vec::new(), pos: 0, scanned: 0, error: None }
    }

    /// Appends bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos >= 64 * 1024) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as a frame (part of a message).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// The frame is malformed or too large; see [`FrameError`].
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let r = match self.framing {
            Framing::Json => self.next_json(),
            Framing::Binary => self.next_binary(),
        };
        if let Err(e) = &r {
            self.error = Some(e.clone());
            self.buf = Vec::new();
            self.pos = 0;
        }
        r
    }

    fn next_json(&mut self) -> Result<Option<Frame>, FrameError> {
        let rest = &self.buf[self.pos..];
        let Some(nl) = rest[self.scanned..].iter().position(|&b| b == b'\n') else {
            self.scanned = rest.len();
            if rest.len() > self.limit {
                return Err(FrameError::TooLarge { size: None, limit: self.limit });
            }
            return Ok(None);
        };
        let end = self.scanned + nl;
        if end > self.limit {
            return Err(FrameError::TooLarge { size: Some(end), limit: self.limit });
        }
        let line = &rest[..end];
        let top = scan_json(line)?;
        let frame = Frame { data: line.to_vec(), internal: top.is_internal() };
        self.pos += end + 1;
        self.scanned = 0;
        Ok(Some(frame))
    }

    fn next_binary(&mut self) -> Result<Option<Frame>, FrameError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > self.limit {
            return Err(FrameError::TooLarge { size: Some(len), limit: self.limit });
        }
        let flags = rest[4];
        if flags > 1 {
            return Err(FrameError::BadFlags(flags));
        }
        if rest.len() - 5 < len {
            return Ok(None);
        }
        let body = &rest[5..5 + len];
        let internal = flags == 1;
        if internal && !scan_json(body).is_ok_and(|t| t.is_internal()) {
            return Err(FrameError::BadInternal);
        }
        let frame = Frame { data: body.to_vec(), internal };
        self.pos += 5 + len;
        Ok(Some(frame))
    }
}

/// Appends the frame for `msg` to `out`.
///
/// JSON: `msg` must be one valid JSON value; any `\n` in it (JSON allows one only as
/// whitespace between tokens) becomes a space, so the line stays one line. A user message
/// (`internal == false`) that Node would take for an internal one is refused.
///
/// # Errors
///
/// [`FrameError::TooLarge`], [`FrameError::InvalidJson`], or [`FrameError::BadInternal`] when
/// `internal` does not match what the message is.
#[cfg(test)]
pub(crate) fn encode(
    framing: Framing,
    msg: &[u8],
    internal: bool,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    check(framing, msg, internal, limit)?;
    append(framing, msg, internal, out);
    Ok(())
}

/// Appends the frame of a message that [`check`] accepted.
pub(crate) fn append(framing: Framing, msg: &[u8], internal: bool, out: &mut Vec<u8>) {
    match framing {
        Framing::Json => {
            let start = out.len();
            out.reserve(msg.len() + 1);
            out.extend_from_slice(msg);
            for b in &mut out[start..] {
                if *b == b'\n' {
                    *b = b' ';
                }
            }
            out.push(b'\n');
        }
        Framing::Binary => {
            out.reserve(msg.len() + 5);
            out.extend_from_slice(&binary_header(msg.len(), internal));
            out.extend_from_slice(msg);
        }
    }
}

/// The checks a message must pass before [`append`] frames it.
pub(crate) fn check(
    framing: Framing,
    msg: &[u8],
    internal: bool,
    limit: usize,
) -> Result<(), FrameError> {
    if msg.len() > limit || msg.len() > u32::MAX as usize {
        return Err(FrameError::TooLarge { size: Some(msg.len()), limit });
    }
    if framing == Framing::Json || internal {
        let top = scan_json(msg)?;
        if top.is_internal() != internal {
            return Err(FrameError::BadInternal);
        }
    }
    Ok(())
}

/// The five bytes before a binary frame's body (`len` fits in a `u32`: checked by [`check`]).
pub(crate) fn binary_header(len: usize, internal: bool) -> [u8; 5] {
    let l = (len as u32).to_be_bytes();
    [l[0], l[1], l[2], l[3], internal as u8]
}

/// What the scanner learned about a top-level object's `cmd`, `type` and `msg` keys (the last
/// occurrence of each, as `JSON.parse` keeps).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TopLevel {
    /// The decoded `cmd` string, if `cmd` holds a string.
    pub(crate) cmd: Option<String>,
    /// The decoded `type` string, if `type` holds a string.
    pub(crate) kind: Option<String>,
    /// Where the `msg` value is, in bytes.
    pub(crate) msg: Option<Range<usize>>,
}

impl TopLevel {
    /// Node's `isInternal`: `cmd` starts with `NODE_` and is longer than that.
    pub(crate) fn is_internal(&self) -> bool {
        self.cmd.as_deref().is_some_and(|c| c.len() > 5 && c.starts_with("NODE_"))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Cmd,
    Type,
    Msg,
    Other,
}

fn err(reason: &'static str, offset: usize) -> FrameError {
    FrameError::InvalidJson { reason, offset }
}

/// Validates that `b` is exactly one JSON value (RFC 8259, UTF-8), surrounding whitespace
/// allowed, and reports the top-level `cmd`/`type`/`msg` keys of an object.
pub(crate) fn scan_json(b: &[u8]) -> Result<TopLevel, FrameError> {
    if let Err(e) = std::str::from_utf8(b) {
        return Err(err("not valid UTF-8", e.valid_up_to()));
    }
    let mut top = TopLevel::default();
    let mut stack: Vec<u8> = Vec::new();
    let mut i = skip_ws(b, 0);
    if i == b.len() {
        return Err(err("empty message (no JSON value)", i));
    }
    let mut key = Key::Other;
    let mut value_start = 0;
    'value: loop {
        // A value starts at `i`.
        let Some(&c) = b.get(i) else { return Err(err("unexpected end, expected a value", i)) };
        match c {
            b'{' | b'[' => {
                if stack.len() >= MAX_JSON_DEPTH {
                    return Err(err("nested too deeply", i));
                }
                i = skip_ws(b, i + 1);
                let close = if c == b'{' { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    i += 1;
                } else {
                    stack.push(c);
                    if c == b'{' {
                        let (k, j) = object_key(b, i, stack.len() == 1)?;
                        i = j;
                        if stack.len() == 1 {
                            key = k;
                            value_start = i;
                        }
                    }
                    continue 'value;
                }
            }
            b'"' => {
                let end = string_end(b, i)?;
                if stack.len() == 1 && stack[0] == b'{' {
                    match key {
                        Key::Cmd => top.cmd = Some(decode_string(&b[i..end])),
                        Key::Type => top.kind = Some(decode_string(&b[i..end])),
                        _ => {}
                    }
                }
                i = end;
            }
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            b'-' | b'0'..=b'9' => i = number(b, i)?,
            _ => return Err(err("expected a value", i)),
        }
        // A value ended at `i`; close containers and move to the next value.
        loop {
            if stack.len() == 1 && stack[0] == b'{' {
                match key {
                    Key::Msg => top.msg = Some(value_start..i),
                    Key::Cmd if !matches!(b.get(value_start), Some(b'"')) => top.cmd = None,
                    Key::Type if !matches!(b.get(value_start), Some(b'"')) => top.kind = None,
                    _ => {}
                }
            }
            i = skip_ws(b, i);
            let Some(&open) = stack.last() else { break 'value };
            match (open, b.get(i)) {
                (b'{', Some(b',')) => {
                    let (k, j) = object_key(b, skip_ws(b, i + 1), stack.len() == 1)?;
                    i = j;
                    if stack.len() == 1 {
                        key = k;
                        value_start = i;
                    }
                    continue 'value;
                }
                (b'[', Some(b',')) => {
                    i = skip_ws(b, i + 1);
                    continue 'value;
                }
                (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                    stack.pop();
                    i += 1;
                }
                (b'{', _) => return Err(err("expected ',' or '}'", i)),
                _ => return Err(err("expected ',' or ']'", i)),
            }
        }
    }
    if i != b.len() {
        return Err(err("unexpected characters after the value", i));
    }
    if !top.is_internal() {
        // Only an internal message's fields matter to the caller.
        top.kind = None;
        top.msg = None;
    }
    Ok(top)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r' | b'\n') = b.get(i) {
        i += 1;
    }
    i
}

/// Parses `"key" :` at `i` and returns which key it is (only decoded at the top level) and
/// where its value starts.
fn object_key(b: &[u8], i: usize, top: bool) -> Result<(Key, usize), FrameError> {
    if b.get(i) != Some(&b'"') {
        return Err(err("expected a string key", i));
    }
    let end = string_end(b, i)?;
    let key = if top {
        match decode_string(&b[i..end]).as_str() {
            "cmd" => Key::Cmd,
            "type" => Key::Type,
            "msg" => Key::Msg,
            _ => Key::Other,
        }
    } else {
        Key::Other
    };
    let j = skip_ws(b, end);
    if b.get(j) != Some(&b':') {
        return Err(err("expected ':' after a key", j));
    }
    Ok((key, skip_ws(b, j + 1)))
}

/// The index after the closing quote of the string that starts at `i` (the input is known to
/// be UTF-8, so only the structure needs checking).
fn string_end(b: &[u8], i: usize) -> Result<usize, FrameError> {
    let mut j = i + 1;
    loop {
        match b.get(j) {
            None => return Err(err("unterminated string", j)),
            Some(b'"') => return Ok(j + 1),
            Some(b'\\') => match b.get(j + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                Some(b'u') => {
                    let hex = b.get(j + 2..j + 6).ok_or_else(|| err("short \\u escape", j))?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(err("bad \\u escape", j));
                    }
                    j += 6;
                }
                _ => return Err(err("bad escape", j)),
            },
            Some(&c) if c < 0x20 => return Err(err("control character in a string", j)),
            Some(_) => j += 1,
        }
    }
}

/// Decodes a validated string token (quotes included); lone surrogates become U+FFFD.
fn decode_string(tok: &[u8]) -> String {
    let body = &tok[1..tok.len() - 1];
    if !body.contains(&b'\\') {
        return String::from_utf8_lossy(body).into_owned();
    }
    let mut out = String::with_capacity(body.len());
    let mut units: Vec<u16> = Vec::new();
    let flush = |units: &mut Vec<u16>, out: &mut String| {
        out.extend(char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or('\u{fffd}')));
    };
    let mut j = 0;
    while j < body.len() {
        if body[j] == b'\\' {
            let e = body[j + 1];
            if e == b'u' {
                let hex = std::str::from_utf8(&body[j + 2..j + 6]).unwrap_or("fffd");
                units.push(u16::from_str_radix(hex, 16).unwrap_or(0xfffd));
                j += 6;
                continue;
            }
            flush(&mut units, &mut out);
            out.push(match e {
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                other => other as char,
            });
            j += 2;
        } else {
            flush(&mut units, &mut out);
            let next = body[j..].iter().position(|&c| c == b'\\').map_or(body.len(), |p| j + p);
            out.push_str(&String::from_utf8_lossy(&body[j..next]));
            j = next;
        }
    }
    flush(&mut units, &mut out);
    out
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Result<usize, FrameError> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(err("bad literal (expected true, false or null)", i))
    }
}

fn number(b: &[u8], mut i: usize) -> Result<usize, FrameError> {
    let digits = |b: &[u8], mut i: usize| {
        let s = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i - s)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(b, i).0,
        _ => return Err(err("bad number", i)),
    }
    if b.get(i) == Some(&b'.') {
        let (j, n) = digits(b, i + 1);
        if n == 0 {
            return Err(err("bad number: no digits after '.'", i));
        }
        i = j;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let (j, n) = digits(b, i);
        if n == 0 {
            return Err(err("bad number: no digits in the exponent", i));
        }
        i = j;
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> TopLevel {
        scan_json(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn bad(s: &[u8]) {
        assert!(scan_json(s).is_err(), "accepted {:?}", String::from_utf8_lossy(s));
    }

    #[test]
    fn valid_json() {
        for s in [
            "null",
            "42",
            "-0.5e+10",
            "\"str\"",
            " {\"a\" : [1, 2, {\"b\":null}], \"c\":true}\r",
            "[]",
            "{}",
            "\"x\u{2028}y\u{e9}\u{1f600}\"",
            "\"\\ud800\"",
            "\"\\u0000\\n\\\"\\\\\\/\"",
            "[[[[]]]]",
            "1E5",
            "\"\x7f\"",
        ] {
            ok(s);
        }
    }

    #[test]
    fn invalid_json() {
        for s in [
            &b""[..],
            b" ",
            b"\r",
            b"nul",
            b"01",
            b"1.",
            b"1e",
            b"-",
            b"+1",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\"}",
            b"{a:1}",
            b"\"\x01\"",
            b"\"\\x\"",
            b"\"\\u12g4\"",
            b"\"abc",
            b"[1 2]",
            b"1 2",
            b"\xff",
            b"\"\xc3\"",
            b"NaN",
            b"'a'",
            b"[",
            b"{",
        ] {
            bad(s);
        }
        bad(&[b'['; MAX_JSON_DEPTH + 1]);
        let mut deep = vec![b'['; MAX_JSON_DEPTH];
        deep.extend(vec![b']'; MAX_JSON_DEPTH]);
        scan_json(&deep).unwrap();
    }

    #[test]
    fn internal_messages() {
        assert!(ok(r#"{"cmd":"NODE_HANDLE_ACK"}"#).is_internal());
        assert!(ok(r#"{"c\u006dd":"NODE\u005fX"}"#).is_internal());
        assert!(ok(r#"{"cmd":"x","cmd":"NODE_Y"}"#).is_internal());
        assert!(!ok(r#"{"cmd":"NODE_Y","cmd":1}"#).is_internal());
        assert!(!ok(r#"{"cmd":"NODE_"}"#).is_internal());
        assert!(!ok(r#"{"cmd":"node_lower"}"#).is_internal());
        assert!(!ok(r#"{"a":{"cmd":"NODE_X"}}"#).is_internal());
        assert!(!ok(r#"["NODE_X"]"#).is_internal());
        let s = r#"{"cmd":"NODE_HANDLE","type":"net.Server","msg":{"hi":[1]}}"#;
        let t = ok(s);
        assert_eq!(t.kind.as_deref(), Some("net.Server"));
        assert_eq!(&s[t.msg.unwrap()], r#"{"hi":[1]}"#);
    }

    #[test]
    fn json_decoder_splits_and_joins() {
        let input = b"{\"echo\":{\"a\":1}}\n{\"echo\":\"str\"}\n\"\\ud800\"\r\n";
        for split in 0..input.len() {
            let mut d = Decoder::new(Framing::Json, 100);
            d.push(&input[..split]);
            let mut got = Vec::new();
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.data);
            }
            d.push(&input[split..]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.data);
            }
            assert_eq!(got.len(), 3, "split at {split}");
            assert_eq!(got[2], b"\"\\ud800\"\r");
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn json_decoder_errors() {
        let mut d = Decoder::new(Framing::Json, 8);
        d.push(b"123456789");
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge { size: None, limit: 8 }));
        assert!(d.next_frame().is_err(), "poisoned");
        let mut d = Decoder::new(Framing::Json, 8);
        d.push(b"1\n\n");
        assert!(d.next_frame().unwrap().is_some());
        assert!(matches!(d.next_frame(), Err(FrameError::InvalidJson { .. })));
    }

    #[test]
    fn binary_roundtrip_and_errors() {
        let mut out = Vec::new();
        encode(Framing::Binary, b"\0\xffbytes", false, 100, &mut out).unwrap();
        encode(Framing::Binary, br#"{"cmd":"NODE_X"}"#, true, 100, &mut out).unwrap();
        let mut d = Decoder::new(Framing::Binary, 100);
        for b in &out {
            d.push(&[*b]);
        }
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!((f.data.as_slice(), f.internal), (&b"\0\xffbytes"[..], false));
        assert!(d.next_frame().unwrap().unwrap().internal);
        let mut d = Decoder::new(Framing::Binary, 100);
        d.push(&[0xff, 0xff, 0xff, 0xff, 0]);
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge { size: Some(u32::MAX as usize), limit: 100 })
        );
        let mut d = Decoder::new(Framing::Binary, 100);
        d.push(&[0, 0, 0, 0, 7]);
        assert_eq!(d.next_frame(), Err(FrameError::BadFlags(7)));
        let mut d = Decoder::new(Framing::Binary, 100);
        d.push(&[0, 0, 0, 2, 1, b'{', b'}']);
        assert_eq!(d.next_frame(), Err(FrameError::BadInternal));
    }

    #[test]
    fn encode_json_rules() {
        let mut out = Vec::new();
        encode(Framing::Json, b"{\"a\":\n1}", false, 100, &mut out).unwrap();
        assert_eq!(out, b"{\"a\": 1}\n");
        assert!(encode(Framing::Json, b"", false, 100, &mut out).is_err());
        assert!(
            encode(Framing::Json, b"{\"cmd\":\"NODE_HANDLE_ACK\"}", false, 100, &mut out).is_err()
        );
        assert!(encode(Framing::Json, b"[1,]", false, 100, &mut out).is_err());
        assert!(encode(Framing::Json, b"12345", false, 4, &mut out).is_err());
        assert_eq!(out, b"{\"a\": 1}\n", "nothing appended on error");
    }
}
