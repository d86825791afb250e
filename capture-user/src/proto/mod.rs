//! Application protocols on top of reassembled TCP byte streams: the HTTP/1.1
//! upgrade handshake (`http`) and WebSocket framing (`websocket`).
//!
//! Sans-IO: a [`Session`] takes in-order bytes of one half of a connection
//! and emits [`ProtoEvent`]s. No clocks, no syscalls.
//!
//! CONTRACT (used by `decode`; keep these signatures):
//! - `ProtoConfig` caps.
//! - `Side`: which half-stream of the TCP connection the bytes belong to.
//!   `Side::Initiator` is the SYN sender when the SYN was seen, otherwise the
//!   sender of the first segment seen; `initiator_known` says which.
//! - `Session::new`, `on_data`, `on_gap`, `on_end`.
//! - `on_gap` does not emit the `Gap` event (the caller does); it only makes
//!   the session find its footing again (`Resync`).
//!
//! Layout: `http::{head, body, upgrade}` read HTTP heads, skip bodies and
//! check the handshake; `websocket::{frame, unmask, deflate, resync}` are
//! the frame-level pieces, `websocket::stream` decodes one direction and
//! `websocket::session` ties a connection together.

pub mod http;
pub mod websocket;

use crate::event::{Direction, EventKind};

/// Caps that keep decoding memory bounded (defaults 16 MiB each).
#[derive(Debug, Clone)]
pub struct ProtoConfig {
    /// Largest message (sum of its frame payloads) kept; longer is truncated.
    pub max_message: usize,
    /// Largest inflated message kept (decompression-bomb guard).
    pub max_inflated: usize,
}

impl Default for ProtoConfig {
    fn default() -> Self {
        ProtoConfig {
            max_message: 16 << 20,
            max_inflated: 16 << 20,
        }
    }
}

/// One half of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bytes sent by the connection's initiator (the SYN sender when seen).
    Initiator,
    /// Bytes sent by the other end.
    Responder,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Initiator => Side::Responder,
            Side::Responder => Side::Initiator,
        }
    }
}

/// An event from a session, before `decode` adds time, connection id and
/// addresses. `side` is the half-stream whose bytes the event is about.
#[derive(Debug, Clone)]
pub struct ProtoEvent<'a> {
    pub side: Side,
    pub dir: Direction,
    pub kind: EventKind<'a>,
}

/// Counters a session keeps for the exit summary.
#[derive(Debug, Clone, Default)]
pub struct ProtoStats {
    pub messages: u64,
    pub control_frames: u64,
    pub violations: u64,
    pub truncated: u64,
    pub inflate_failures: u64,
    pub resyncs: u64,
}

pub use websocket::{FrameError, Session};
