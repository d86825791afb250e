//! Output formats for events: human-readable text lines (`text`) and JSON
//! Lines (`json`). Both write through a `BufWriter` and remember the first
//! write error instead of panicking, so the caller can stop reading and, for
//! a closed pipe (`wstap -r f | head -1`), exit quietly.

pub mod json;
pub mod pcapng;
pub mod text;

use std::io;

use crate::event::EventSink;
use crate::source::Segment;

/// An [`EventSink`] that writes somewhere and can fail.
pub trait Output: EventSink {
    /// One line for a raw TCP segment (`--segments`).
    fn segment(&mut self, seg: &Segment<'_>);
    /// The first write error, if any; once set, later events are dropped.
    fn error(&self) -> Option<&io::Error>;
    /// Flushes buffered output; returns the first error seen.
    fn finish(&mut self) -> io::Result<()>;
}

/// True for the error a closed pipe gives (the reader went away).
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// Cuts `p` to at most `max` bytes; for text, at a UTF-8 character boundary.
pub fn shorten(p: &[u8], max: Option<usize>, text: bool) -> (&[u8], bool) {
    let Some(max) = max else { return (p, false) };
    if p.len() <= max {
        return (p, false);
    }
    let mut cut = max;
    if text {
        // Back off over continuation bytes (10xxxxxx) so a character stays whole.
        while cut > 0 && cut < p.len() && (p[cut] & 0xc0) == 0x80 {
            cut -= 1;
        }
    }
    (&p[..cut], true)
}

/// Seconds and nanoseconds of a capture timestamp.
pub fn split_ts(ts_ns: u64) -> (u64, u32) {
    (ts_ns / 1_000_000_000, (ts_ns % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_keeps_characters_whole() {
        assert_eq!(
            shorten("héllo".as_bytes(), Some(2), true),
            ("h".as_bytes(), true)
        );
        assert_eq!(shorten(b"hello", Some(2), false), (&b"he"[..], true));
        assert_eq!(shorten(b"hi", Some(2), true), (&b"hi"[..], false));
        assert_eq!(shorten(b"hi", None, true), (&b"hi"[..], false));
    }
}
