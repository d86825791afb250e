//! HTTP/1.x on a connection: the WebSocket upgrade handshake (RFC 6455 §4)
//! and plain requests and responses, reported one line each. [`layer`] is
//! the stack's HTTP layer; the other modules are its pieces.
//!
//! Heads are accumulated (bounded by [`head::MAX_HEAD`]) and parsed with
//! `httparse`; bodies are skipped by length or chunk by chunk, never
//! buffered.

pub mod body;
pub mod head;
pub mod layer;
pub mod upgrade;

use thiserror::Error;

pub use body::{BodySkip, Framing};
pub use head::{HeadReader, HeadStep};
pub use layer::{Http, HttpOut};
pub use upgrade::{accept_for, parse_deflate};

/// Headers kept per head; more is a malformed head.
const MAX_HEADERS: usize = 96;

/// What went wrong while reading HTTP; reported as a `Violation`, after which
/// the half-stream is no longer decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HttpError {
    #[error("malformed HTTP head: {0}")]
    Malformed(String),
    #[error("HTTP head longer than {0} bytes")]
    TooLarge(usize),
    #[error("invalid Content-Length {0:?}")]
    BadLength(String),
    #[error("invalid chunk size line")]
    BadChunk,
    /// The client went on sending while its upgrade request was unanswered.
    #[error("over {0} bytes sent before the upgrade reply; dropped")]
    EarlyDataOverflow(usize),
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// Present when this is a WebSocket upgrade request.
    pub upgrade: Option<UpgradeRequest>,
}

/// The WebSocket part of an upgrade request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpgradeRequest {
    pub key: Option<String>,
    pub version: Option<String>,
    pub protocols: Option<String>,
    pub extensions: Option<String>,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// `Upgrade: websocket` present.
    pub upgrade_websocket: bool,
    pub accept: Option<String>,
    pub protocol: Option<String>,
    pub extensions: Option<String>,
}

impl Request {
    /// How the body that follows is delimited (RFC 7230 §3.3.3).
    pub fn framing(&self) -> Framing {
        if self.chunked {
            Framing::Chunked
        } else {
            Framing::Length(self.content_length.unwrap_or(0))
        }
    }
}

impl Response {
    /// How the body is delimited; `head_request`: the request was HEAD.
    pub fn framing(&self, head_request: bool) -> Framing {
        if head_request || self.status < 200 || self.status == 204 || self.status == 304 {
            Framing::Length(0)
        } else if self.chunked {
            Framing::Chunked
        } else if let Some(n) = self.content_length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        }
    }
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).trim().to_string()
}

/// Headers both heads share: length, chunking, and the named ones asked for.
struct Common {
    content_length: Option<u64>,
    chunked: bool,
}

fn common(headers: &[httparse::Header<'_>]) -> Result<Common, HttpError> {
    let mut c = Common {
        content_length: None,
        chunked: false,
    };
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let t = text(h.value);
            c.content_length = Some(t.parse().map_err(|_| HttpError::BadLength(t))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            c.chunked = text(h.value)
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    Ok(c)
}

fn header(headers: &[httparse::Header<'_>], name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)) {
        // Repeated headers combine as a list (RFC 7230 §3.2.2).
        let v = text(h.value);
        found = Some(match found {
            Some(f) => format!("{f}, {v}"),
            None => v,
        });
    }
    found
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Parses a complete request head (as found by [`HeadReader`]).
pub fn parse_request(head: &[u8]) -> Result<Request, HttpError> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut hs);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HttpError::Malformed("incomplete head".into()))
        }
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    let c = common(req.headers)?;
    let method = req.method.unwrap_or("").to_string();
    let upgrade = header(req.headers, "upgrade");
    let upgrade =
        (method == "GET" && has_token(upgrade.as_deref(), "websocket")).then(|| UpgradeRequest {
            key: header(req.headers, "sec-websocket-key"),
            version: header(req.headers, "sec-websocket-version"),
            protocols: header(req.headers, "sec-websocket-protocol"),
            extensions: header(req.headers, "sec-websocket-extensions"),
        });
    Ok(Request {
        method,
        path: req.path.unwrap_or("").to_string(),
        host: header(req.headers, "host"),
        content_length: c.content_length,
        chunked: c.chunked,
        upgrade,
    })
}

/// Parses a complete response head.
pub fn parse_response(head: &[u8]) -> Result<Response, HttpError> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut hs);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HttpError::Malformed("incomplete head".into()))
        }
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    let c = common(resp.headers)?;
    Ok(Response {
        status: resp.code.unwrap_or(0),
        reason: resp.reason.unwrap_or("").to_string(),
        content_length: c.content_length,
        chunked: c.chunked,
        upgrade_websocket: has_token(header(resp.headers, "upgrade").as_deref(), "websocket"),
        accept: header(resp.headers, "sec-websocket-accept"),
        protocol: header(resp.headers, "sec-websocket-protocol"),
        extensions: header(resp.headers, "sec-websocket-extensions"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

    #[test]
    fn upgrade_request() {
        let r = parse_request(UPGRADE).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/chat");
        assert_eq!(r.host.as_deref(), Some("server.example.com"));
        let u = r.upgrade.unwrap();
        assert_eq!(u.key.as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(u.version.as_deref(), Some("13"));
        assert_eq!(u.protocols.as_deref(), Some("chat, superchat"));
        assert_eq!(
            u.extensions.as_deref(),
            Some("permessage-deflate; client_max_window_bits")
        );
    }

    #[test]
    fn plain_request_and_response() {
        let r =
            parse_request(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(
            (r.method.as_str(), r.content_length, r.upgrade.is_none()),
            ("POST", Some(12), true)
        );
        assert_eq!(r.framing(), Framing::Length(12));
        let r =
            parse_request(b"PUT /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap();
        assert_eq!(r.framing(), Framing::Chunked);
        let s = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(
            (s.status, s.reason.as_str(), s.framing(false)),
            (200, "OK", Framing::Length(5))
        );
        assert_eq!(s.framing(true), Framing::Length(0));
        let s = parse_response(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert_eq!(s.framing(false), Framing::UntilClose);
        let s = parse_response(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(s.framing(false), Framing::Length(0));
    }

    #[test]
    fn bad_heads() {
        assert!(matches!(
            parse_request(b"GET\x01 / HTTP/1.1\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(HttpError::BadLength(_))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn upgrade_response() {
        let s = parse_response(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n").unwrap();
        assert!(s.upgrade_websocket);
        assert_eq!(s.accept.as_deref(), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert_eq!(s.protocol.as_deref(), Some("chat"));
    }
}
