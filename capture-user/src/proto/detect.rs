//! What a side carries, from its first bytes.
//!
//! At most [`PROBE`] bytes decide: an HTTP/1.x request method, an HTTP
//! response status line, a TLS record header, or anything else. Nothing is
//! consumed here; the stack replays the probed bytes into the layer it
//! chooses.

/// Longest prefix needed to classify a side.
pub const PROBE: usize = 8;

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

const RESPONSE: &[u8] = b"HTTP/1.";

/// What the first bytes of a side look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// An HTTP request line starts here: this side is the client.
    Request,
    /// An HTTP status line starts here: this side is the server.
    Response,
    /// A TLS record header (handshake, change cipher spec, alert or
    /// application data, version 3.x).
    Tls,
    /// Anything else: perhaps WebSocket frames picked up mid-stream.
    Unknown,
    /// Too few bytes to tell (a prefix of a method or status line).
    NeedMore,
}

/// Classifies the first bytes of a side.
pub fn classify(b: &[u8]) -> Class {
    let mut need_more = false;
    for m in METHODS.iter().copied().chain([RESPONSE]) {
        if b.starts_with(m) {
            return if m == RESPONSE {
                Class::Response
            } else {
                Class::Request
            };
        }
        if m.starts_with(b) {
            need_more = true;
        }
    }
    if need_more {
        Class::NeedMore
    } else if looks_like_tls(b) {
        Class::Tls
    } else {
        Class::Unknown
    }
}

/// A TLS record header: content type 20..=23, major version 3, minor 0..=4.
fn looks_like_tls(b: &[u8]) -> bool {
    matches!(b, [20..=23, 3, 0..=4, ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(b"GET / HT"), Class::Request);
        assert_eq!(classify(b"HTTP/1.1"), Class::Response);
        assert_eq!(classify(b"GE"), Class::NeedMore);
        assert_eq!(classify(b"HTTP/"), Class::NeedMore);
        assert_eq!(classify(&[0x16, 3, 1, 0, 0xc8, 1, 0, 0]), Class::Tls);
        assert_eq!(classify(&[0x81, 0x85, 1, 2, 3, 4, 5, 6]), Class::Unknown);
        assert_eq!(classify(b"GETX"), Class::Unknown);
    }
}
