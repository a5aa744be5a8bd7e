//! The property the `ipc_decode` fuzz target checks: the IPC frame decoders take any bytes,
//! in any split, and return frames or a typed error; never a panic, never a frame over the
//! limit, never more memory than the limit plus one push, and the same frames however the
//! bytes were cut. Shared with `tests/it/ipc.rs` through `#[path]`.

use offspring::ipc::{Decoder, Frame, Framing};

/// The first byte picks the size limit and the split; the rest is the stream.
pub fn decode(data: &[u8]) {
    let Some((&knob, body)) = data.split_first() else { return };
    let limit = 1 + knob as usize * 4;
    let step = 1 + (knob as usize % 7);
    for framing in [Framing::Json, Framing::Binary] {
        let whole = run(framing, limit, &[body]);
        let pieces: Vec<&[u8]> = body.chunks(step).collect();
        let split = run(framing, limit, &pieces);
        assert_eq!(whole.0, split.0, "{framing:?}: frames depend on how the bytes were split");
        assert_eq!(whole.1, split.1, "{framing:?}: error depends on how the bytes were split");
    }
}

/// The frames decoded from `pieces`, and whether decoding stopped on an error.
fn run(framing: Framing, limit: usize, pieces: &[&[u8]]) -> (Vec<Frame>, bool) {
    let mut dec = Decoder::new(framing, limit);
    let mut frames = Vec::new();
    for piece in pieces {
        let before = dec.buffered();
        dec.push(piece);
        assert!(before <= limit + 5, "{before} bytes held between pushes (limit {limit})");
        assert_eq!(dec.buffered(), before + piece.len());
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.data.len() <= limit, "frame over the limit");
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = e.to_string();
                    assert!(dec.next_frame().is_err(), "an error must stick");
                    return (frames, true);
                }
            }
        }
    }
    (frames, false)
}
