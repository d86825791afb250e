//! Skips HTTP bodies without buffering them: by Content-Length, chunk by
//! chunk (RFC 7230 §4.1), or until the connection closes.

use super::HttpError;

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// A response without length: the body runs to the end of the stream.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    /// Chunk size line: value so far, hex digits seen, in extension part.
    Size {
        val: u64,
        digits: u8,
        ext: bool,
    },
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// Trailer lines; `line` = bytes on the current line.
    Trailer {
        line: usize,
    },
    UntilClose,
    Done,
}

/// Body skipper; [`BodySkip::skip`] consumes body bytes and stops at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySkip {
    state: State,
}

impl BodySkip {
    pub fn new(f: Framing) -> Self {
        let state = match f {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size {
                val: 0,
                digits: 0,
                ext: false,
            },
            Framing::UntilClose => State::UntilClose,
        };
        BodySkip { state }
    }

    /// The body is over; what follows is the next head.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Skips `n` missing bytes if they fall inside a length-delimited part;
    /// false when the body's framing is lost.
    pub fn gap(&mut self, n: u64) -> bool {
        match &mut self.state {
            State::Length(r) | State::Data(r) if *r > n => {
                *r -= n;
                true
            }
            State::Length(r) if *r == n => {
                self.state = State::Done;
                true
            }
            State::Data(r) if *r == n => {
                self.state = State::DataEnd;
                true
            }
            State::UntilClose => true,
            _ => false,
        }
    }

    /// Consumes body bytes from `data`; returns how many belonged to it.
    pub fn skip(&mut self, data: &[u8]) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < data.len() {
            match &mut self.state {
                State::Done => break,
                State::UntilClose => i = data.len(),
                State::Length(r) | State::Data(r) => {
                    let n = (*r).min((data.len() - i) as u64);
                    *r -= n;
                    i += n as usize;
                    if *r == 0 {
                        self.state = match self.state {
                            State::Data(_) => State::DataEnd,
                            _ => State::Done,
                        };
                    }
                }
                State::Size { val, digits, ext } => {
                    let b = data[i];
                    i += 1;
                    match b {
                        b'\n' => {
                            if *digits == 0 {
                                return Err(HttpError::BadChunk);
                            }
                            self.state = if *val == 0 {
                                State::Trailer { line: 0 }
                            } else {
                                State::Data(*val)
                            };
                        }
                        b'\r' => {}
                        _ if *ext => {}
                        b';' | b' ' | b'\t' => *ext = true,
                        _ => {
                            let d = (b as char).to_digit(16).ok_or(HttpError::BadChunk)?;
                            if *digits >= 15 {
                                return Err(HttpError::BadChunk);
                            }
                            *val = (*val << 4) | u64::from(d);
                            *digits += 1;
                        }
                    }
                }
                State::DataEnd => {
                    let b = data[i];
                    i += 1;
                    match b {
                        b'\n' => {
                            self.state = State::Size {
                                val: 0,
                                digits: 0,
                                ext: false,
                            }
                        }
                        b'\r' => {}
                        _ => return Err(HttpError::BadChunk),
                    }
                }
                State::Trailer { line } => {
                    let b = data[i];
                    i += 1;
                    match b {
                        b'\n' if *line == 0 => self.state = State::Done,
                        b'\n' => *line = 0,
                        b'\r' => {}
                        _ => *line += 1,
                    }
                }
            }
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length() {
        let mut b = BodySkip::new(Framing::Length(5));
        assert_eq!(b.skip(b"abc"), Ok(3));
        assert_eq!(b.skip(b"deGET"), Ok(2));
        assert!(b.done());
        assert!(BodySkip::new(Framing::Length(0)).done());
    }

    #[test]
    fn chunked_in_one_and_byte_by_byte() {
        let body = b"4;name=x\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let mut b = BodySkip::new(Framing::Chunked);
        assert_eq!(b.skip(body), Ok(body.len() - 4));
        assert!(b.done());
        let mut b = BodySkip::new(Framing::Chunked);
        let mut used = 0;
        for c in body.iter() {
            used += b.skip(std::slice::from_ref(c)).unwrap();
            if b.done() {
                break;
            }
        }
        assert_eq!(used, body.len() - 4);
    }

    #[test]
    fn bad_chunk() {
        assert_eq!(
            BodySkip::new(Framing::Chunked).skip(b"zz\r\n"),
            Err(HttpError::BadChunk)
        );
        assert_eq!(
            BodySkip::new(Framing::Chunked).skip(b"\r\n"),
            Err(HttpError::BadChunk)
        );
        assert_eq!(
            BodySkip::new(Framing::Chunked).skip(b"ffffffffffffffffff\r\n"),
            Err(HttpError::BadChunk)
        );
        assert_eq!(
            BodySkip::new(Framing::Chunked).skip(b"1\r\naXX"),
            Err(HttpError::BadChunk)
        );
    }

    #[test]
    fn gaps() {
        let mut b = BodySkip::new(Framing::Length(10));
        assert!(b.gap(4));
        assert_eq!(b.skip(b"123456789"), Ok(6));
        let mut b = BodySkip::new(Framing::Chunked);
        assert!(!b.gap(1));
        assert!(BodySkip::new(Framing::UntilClose).gap(100));
    }
}
