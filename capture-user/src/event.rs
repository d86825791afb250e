//! What the decoder tells the world: one [`Event`] per thing worth a line of
//! output. Sinks (`sink::text`, `sink::json`) only format these; the field
//! names of the JSON form are documented in the README and are stable.
//!
//! Payloads are `Cow`: borrowed from the segment when a frame was decoded in
//! place, owned when it had to be unmasked, reassembled or inflated.

use std::borrow::Cow;
use std::net::SocketAddr;

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
    pub kind: EventKind<'a>,
}

/// The kinds of event, one per JSON `event` name (see [`EventKind::name`]).
#[derive(Debug, Clone)]
pub enum EventKind<'a> {
    /// The HTTP/1.1 upgrade succeeded (101 seen, Accept checked).
    WsOpen {
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
    WsUpgradeFailed {
        status: u16,
        reason: String,
    },
    /// A complete data message (all fragments, inflated if compressed).
    WsMessage {
        kind: MessageKind,
        /// Payload, possibly cut at the message cap (`truncated`).
        payload: Cow<'a, [u8]>,
        /// Length of the whole message after inflation, as far as it was seen.
        len: u64,
        /// Bytes on the wire (before inflation).
        wire_len: u64,
        compressed: bool,
        fragments: u32,
        /// Text message whose payload is not valid UTF-8 (kept, flagged).
        invalid_utf8: bool,
        /// The message exceeded `max_message` or `max_inflated`.
        truncated: bool,
    },
    WsPing {
        payload: Cow<'a, [u8]>,
    },
    WsPong {
        payload: Cow<'a, [u8]>,
    },
    WsClose {
        code: Option<u16>,
        reason: Cow<'a, [u8]>,
    },
    /// A compressed message that could not be inflated (context lost after a
    /// gap or a mid-stream start, or corrupt data); raw bytes kept.
    WsUndecompressable {
        kind: MessageKind,
        raw: Cow<'a, [u8]>,
        error: String,
    },
    HttpRequest {
        method: String,
        path: String,
        host: Option<String>,
        content_length: Option<u64>,
    },
    HttpResponse {
        status: u16,
        reason: String,
        content_length: Option<u64>,
    },
    /// Bytes of this direction that were never seen (loss, late start, cap).
    Gap {
        bytes: u64,
    },
    /// Frame boundaries were found again after a gap or a mid-stream start;
    /// `skipped` bytes before them could not be decoded.
    Resync {
        skipped: u64,
    },
    /// A protocol rule was broken; decoding goes on.
    Violation {
        what: String,
    },
    /// Retransmitted or overlapping data differed from what was kept.
    OverlapMismatch {
        offset: u64,
        len: u64,
    },
    /// A connection was dropped from the flow table (idle, table full, cap).
    FlowEvicted {
        reason: String,
    },
    /// Connection ended (FIN both ways or RST).
    ConnClose {
        reset: bool,
    },
}

impl EventKind<'_> {
    /// The JSON `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::WsOpen { .. } => "ws_open",
            EventKind::WsUpgradeFailed { .. } => "ws_upgrade_failed",
            EventKind::WsMessage { .. } => "ws_message",
            EventKind::WsPing { .. } => "ws_ping",
            EventKind::WsPong { .. } => "ws_pong",
            EventKind::WsClose { .. } => "ws_close",
            EventKind::WsUndecompressable { .. } => "ws_undecompressable",
            EventKind::HttpRequest { .. } => "http_request",
            EventKind::HttpResponse { .. } => "http_response",
            EventKind::Gap { .. } => "gap",
            EventKind::Resync { .. } => "resync",
            EventKind::Violation { .. } => "violation",
            EventKind::OverlapMismatch { .. } => "overlap_mismatch",
            EventKind::FlowEvicted { .. } => "flow_evicted",
            EventKind::ConnClose { .. } => "conn_close",
        }
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
