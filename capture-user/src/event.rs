//! What the decoder tells the world: one [`Event`] per thing worth a line of
//! output. Sinks (`sink::text`, `sink::json`) only format these; the field
//! names of the JSON form are documented in the README and are stable.
//!
//! Payloads are `Cow`: borrowed from the segment when a frame was decoded in
//! place, owned when it had to be unmasked, reassembled or inflated.

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::proto::http::HttpError;
use crate::proto::websocket::FrameError;

/// Identifies one TCP connection for the lifetime of a run (1, 2, 3, ...).
pub type ConnId = u64;

/// Which way the bytes of an event travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
    /// Neither the handshake nor the TCP SYN nor the masking told us yet.
    Unknown,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_server",
            Direction::ServerToClient => "server_to_client",
            Direction::Unknown => "unknown",
        }
    }
}

/// A data message's type (RFC 6455 opcodes 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

/// permessage-deflate parameters agreed in the handshake (RFC 7692 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeflateParams {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// 8..=15; 15 when not given.
    pub server_max_window_bits: u8,
    pub client_max_window_bits: u8,
}

/// One decoded thing, with where and when it happened.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// Capture time of the segment that completed this event, ns since epoch.
    pub ts_ns: u64,
    pub conn: ConnId,
    /// Sender of the bytes this event is about.
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub dir: Direction,
    /// How the bytes were seen: reassembled from the wire, read from a
    /// hooked TLS library (`--tls`, JSON `"via": "tls"`), or decrypted
    /// with a key log (`--keylog`, `"via": "keylog"`).
    pub via: Via,
    pub kind: EventKind<'a>,
}

/// How an event's bytes were seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Via {
    #[default]
    Wire,
    /// Plaintext from a hooked TLS library.
    Hooked,
    /// Decrypted from the wire with a key log.
    Keylog,
}

impl Via {
    /// The JSON `via` value and the text marker; None for the wire.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Via::Wire => None,
            Via::Hooked => Some("tls"),
            Via::Keylog => Some("keylog"),
        }
    }
}

/// The kinds of event, nested by the layer that reports them. Each leaf has
/// one JSON `event` name (see [`EventKind::name`]).
#[derive(Debug, Clone)]
pub enum EventKind<'a> {
    /// Reassembly and connection lifecycle (`flow`, the registry).
    Tcp(TcpEvent),
    /// HTTP/1.x heads (`proto::http`).
    Http(HttpEvent),
    /// The upgrade's outcome, frames and messages (`proto::websocket`).
    Ws(WsEvent<'a>),
    /// A protocol rule was broken; decoding goes on. The error says which
    /// layer's rule it was; it becomes text only in the sinks.
    Violation(Violation),
    /// The protocol stack cannot decode this connection further.
    Stack(StackEvent),
    /// TLS handshakes read in the clear (`proto::tls`).
    Tls(TlsEvent),
}

/// What the TLS layer reads of a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsEvent {
    /// The client's offer.
    ClientHello {
        sni: Option<String>,
        alpn: Vec<String>,
        /// supported_versions (or the legacy version alone).
        versions: Vec<u16>,
        cipher_suites: usize,
    },
    /// The server's choice (`retry`: a HelloRetryRequest).
    ServerHello {
        version: u16,
        cipher_suite: u16,
        alpn: Option<String>,
        retry: bool,
    },
}

/// What the protocol stack says about a connection as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackEvent {
    /// The connection carries a protocol wstap recognises but cannot decode
    /// (TLS without a key): said once, then the connection's bytes are
    /// skipped instead of being hunted for frames.
    Undecoded {
        protocol: Protocol,
        reason: &'static str,
    },
}

/// Protocols the stack recognises by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tls,
    Http2,
}

impl Protocol {
    /// The JSON `protocol` text.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tls => "tls",
            Protocol::Http2 => "http2",
        }
    }
}

/// Facts of TCP reassembly and of a connection's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpEvent {
    /// Bytes of this direction that were never seen (loss, late start, cap).
    Gap { bytes: u64 },
    /// Retransmitted or overlapping data differed from what was kept.
    OverlapMismatch { offset: u64, len: u64 },
    /// A connection was dropped from the table (idle, table full).
    Evicted { reason: EvictReason },
    /// Connection ended (FIN both ways or RST).
    Close { reset: bool },
}

/// Why a connection was dropped before it closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictReason {
    /// No segment for longer than the idle timeout (capture time).
    IdleTimeout,
    /// The table was full and this connection was among the least recently
    /// active.
    TableFull,
    /// A new connection (a SYN that does not fit this one) took its
    /// endpoints; the old one was never seen closing.
    Reused,
    /// The decoder's memory budget (`--max-memory`) was reached and this
    /// connection held the most.
    MemoryBudget,
}

impl EvictReason {
    /// The JSON `reason` text.
    pub fn as_str(self) -> &'static str {
        match self {
            EvictReason::IdleTimeout => "idle timeout",
            EvictReason::TableFull => "flow table full",
            EvictReason::Reused => "endpoints reused by a new connection",
            EvictReason::MemoryBudget => "memory budget",
        }
    }
}

/// Plain HTTP heads, one event each (bodies are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpEvent {
    Request {
        method: String,
        path: String,
        host: Option<String>,
        content_length: Option<u64>,
    },
    Response {
        status: u16,
        reason: String,
        content_length: Option<u64>,
    },
}

/// The WebSocket layer's events, from the upgrade to the close.
#[derive(Debug, Clone)]
pub enum WsEvent<'a> {
    /// The HTTP/1.1 upgrade succeeded (101 seen, Accept checked).
    Open {
        host: Option<String>,
        path: String,
        /// Subprotocol chosen by the server.
        subprotocol: Option<String>,
        /// Extensions header of the 101 reply, verbatim.
        extensions: Option<String>,
        deflate: Option<DeflateParams>,
        /// False when Sec-WebSocket-Accept did not match the key (still decoded).
        accept_valid: bool,
    },
    /// An upgrade was asked for and not granted; the connection is not
    /// decoded as WebSocket.
    UpgradeFailed {
        status: u16,
        reason: String,
    },
    /// A complete data message (all fragments, inflated if compressed).
    Message {
        kind: MessageKind,
        /// Payload, possibly cut at the message cap (`truncated`).
        payload: Cow<'a, [u8]>,
        /// Length of the whole message after inflation, as far as it was seen.
        len: u64,
        /// Bytes on the wire (before inflation).
        wire_len: u64,
        /// False when `len` is only a lower bound: the message was cut on
        /// the wire (`--max-message`, end of capture) before all of it was
        /// inflated, or the decompression-bomb guard stopped counting.
        len_exact: bool,
        compressed: bool,
        fragments: u32,
        /// Text message whose payload is not valid UTF-8 (kept, flagged).
        invalid_utf8: bool,
        /// The message exceeded `max_message` or `max_inflated`.
        truncated: bool,
    },
    Ping {
        payload: Cow<'a, [u8]>,
    },
    Pong {
        payload: Cow<'a, [u8]>,
    },
    Close {
        code: Option<u16>,
        reason: Cow<'a, [u8]>,
    },
    /// A compressed message that could not be inflated (context lost after a
    /// gap or a mid-stream start, or corrupt data); raw bytes kept.
    Undecompressable {
        kind: MessageKind,
        raw: Cow<'a, [u8]>,
        error: String,
    },
    /// Frame boundaries were found again after a gap or a mid-stream start;
    /// `skipped` bytes before them could not be decoded.
    Resync {
        skipped: u64,
    },
}

/// A broken protocol rule, typed by the layer whose rule it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Ws(#[from] FrameError),
}

impl EventKind<'_> {
    /// The JSON `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Tcp(e) => match e {
                TcpEvent::Gap { .. } => "gap",
                TcpEvent::OverlapMismatch { .. } => "overlap_mismatch",
                TcpEvent::Evicted { .. } => "flow_evicted",
                TcpEvent::Close { .. } => "conn_close",
            },
            EventKind::Http(e) => match e {
                HttpEvent::Request { .. } => "http_request",
                HttpEvent::Response { .. } => "http_response",
            },
            EventKind::Ws(e) => match e {
                WsEvent::Open { .. } => "ws_open",
                WsEvent::UpgradeFailed { .. } => "ws_upgrade_failed",
                WsEvent::Message { .. } => "ws_message",
                WsEvent::Ping { .. } => "ws_ping",
                WsEvent::Pong { .. } => "ws_pong",
                WsEvent::Close { .. } => "ws_close",
                WsEvent::Undecompressable { .. } => "ws_undecompressable",
                WsEvent::Resync { .. } => "resync",
            },
            EventKind::Violation(_) => "violation",
            EventKind::Stack(StackEvent::Undecoded { .. }) => "undecoded",
            EventKind::Tls(TlsEvent::ClientHello { .. }) => "tls_client_hello",
            EventKind::Tls(TlsEvent::ServerHello { .. }) => "tls_server_hello",
        }
    }

    /// The same event owning its payload (for a sink that keeps events).
    pub fn into_owned(self) -> EventKind<'static> {
        fn own(c: Cow<'_, [u8]>) -> Cow<'static, [u8]> {
            Cow::Owned(c.into_owned())
        }
        match self {
            EventKind::Tcp(e) => EventKind::Tcp(e),
            EventKind::Http(e) => EventKind::Http(e),
            EventKind::Violation(v) => EventKind::Violation(v),
            EventKind::Stack(e) => EventKind::Stack(e),
            EventKind::Tls(e) => EventKind::Tls(e),
            EventKind::Ws(e) => EventKind::Ws(match e {
                WsEvent::Open {
                    host,
                    path,
                    subprotocol,
                    extensions,
                    deflate,
                    accept_valid,
                } => WsEvent::Open {
                    host,
                    path,
                    subprotocol,
                    extensions,
                    deflate,
                    accept_valid,
                },
                WsEvent::UpgradeFailed { status, reason } => {
                    WsEvent::UpgradeFailed { status, reason }
                }
                WsEvent::Message {
                    kind,
                    payload,
                    len,
                    wire_len,
                    len_exact,
                    compressed,
                    fragments,
                    invalid_utf8,
                    truncated,
                } => WsEvent::Message {
                    kind,
                    payload: own(payload),
                    len,
                    wire_len,
                    len_exact,
                    compressed,
                    fragments,
                    invalid_utf8,
                    truncated,
                },
                WsEvent::Ping { payload } => WsEvent::Ping {
                    payload: own(payload),
                },
                WsEvent::Pong { payload } => WsEvent::Pong {
                    payload: own(payload),
                },
                WsEvent::Close { code, reason } => WsEvent::Close {
                    code,
                    reason: own(reason),
                },
                WsEvent::Undecompressable { kind, raw, error } => WsEvent::Undecompressable {
                    kind,
                    raw: own(raw),
                    error,
                },
                WsEvent::Resync { skipped } => WsEvent::Resync { skipped },
            }),
        }
    }

    /// True when the payload of a message, ping or pong is borrowed from the
    /// input (decoded in place, no copy).
    pub fn payload_borrowed(&self) -> bool {
        matches!(
            self,
            EventKind::Ws(
                WsEvent::Message {
                    payload: Cow::Borrowed(_),
                    ..
                } | WsEvent::Ping {
                    payload: Cow::Borrowed(_)
                } | WsEvent::Pong {
                    payload: Cow::Borrowed(_)
                }
            )
        )
    }

    /// True for a complete data message (what `-c` counts).
    pub fn is_message(&self) -> bool {
        matches!(self, EventKind::Ws(WsEvent::Message { .. }))
    }
}

/// Receives events as they are decoded. Events borrow from the input, so a
/// sink that keeps one must copy it.
pub trait EventSink {
    fn event(&mut self, ev: &Event<'_>);
}

impl<F: FnMut(&Event<'_>)> EventSink for F {
    fn event(&mut self, ev: &Event<'_>) {
        self(ev)
    }
}
