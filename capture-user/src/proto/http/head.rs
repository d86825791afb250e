//! Accumulates an HTTP head (start line + headers) across slices, copying
//! only the head's own bytes, never what follows it.

/// Longest head accepted; a longer one is reported and decoding of the
/// half-stream stops.
pub const MAX_HEAD: usize = 64 * 1024;

/// Outcome of [`HeadReader::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum HeadStep {
    /// All input consumed, head not complete yet.
    Partial,
    /// Head complete; this many input bytes belonged to it.
    Done(usize),
    /// No end of head within [`MAX_HEAD`] bytes.
    TooLarge,
}

/// Collects one head at a time.
#[derive(Debug, Default)]
pub struct HeadReader {
    buf: Vec<u8>,
}

impl HeadReader {
    /// Bytes collected so far.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes allocated for the head being read.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Adds input. Empty lines before a head are skipped (RFC 7230 §3.5).
    pub fn push(&mut self, data: &[u8]) -> HeadStep {
        let mut skip = 0;
        if self.buf.is_empty() {
            skip = data
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
        }
        let data = &data[skip..];
        let old = self.buf.len();
        let take = data.len().min(MAX_HEAD - old);
        self.buf.extend_from_slice(&data[..take]);
        if let Some(end) = find_end(&self.buf, old.saturating_sub(3)) {
            self.buf.truncate(end);
            return HeadStep::Done(skip + end - old);
        }
        if self.buf.len() >= MAX_HEAD {
            return HeadStep::TooLarge;
        }
        HeadStep::Partial
    }

    /// Hands the complete head over and starts the next one.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// End of head: the index after "\n\r\n" or "\n\n", searching from `from`.
fn find_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    while j < buf.len() {
        if buf[j] == b'\n' {
            match (buf.get(j + 1), buf.get(j + 2)) {
                (Some(b'\n'), _) => return Some(j + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(j + 3),
                _ => {}
            }
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_by_byte_stops_at_head_end() {
        let input = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n\x81\x00";
        let mut r = HeadReader::default();
        let mut consumed = 0;
        for (i, b) in input.iter().enumerate() {
            match r.push(std::slice::from_ref(b)) {
                HeadStep::Partial => {}
                HeadStep::Done(n) => {
                    assert_eq!(n, 1);
                    consumed = i + 1;
                    break;
                }
                HeadStep::TooLarge => panic!(),
            }
        }
        assert_eq!(consumed, input.len() - 2);
        assert_eq!(r.take(), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn whole_and_lf_only() {
        let mut r = HeadReader::default();
        assert_eq!(r.push(b"HTTP/1.1 200 OK\n\nbody"), HeadStep::Done(17));
        assert_eq!(r.buffered(), b"HTTP/1.1 200 OK\n\n");
    }

    #[test]
    fn too_large() {
        let mut r = HeadReader::default();
        let junk = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(r.push(&junk), HeadStep::TooLarge);
    }
}
