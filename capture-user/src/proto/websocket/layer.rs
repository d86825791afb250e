//! The WebSocket layer of one connection: a [`WsStream`] per side, the
//! parameters the handshake agreed, and what both sides share.
//!
//! The layer below (HTTP, or the stack for a side that is not HTTP) starts
//! a side with [`WebSocket::start`]: framed (after a handshake: the next byte
//! starts a frame) or hunting (frame boundaries must be found first).

use super::deflate::DeflateConfig;
use super::stream::{Cx as StreamCx, DeflateMode, WsStream};
use crate::event::DeflateParams;
use crate::proto::{Cx, Emit, Layer, PerSide, ProtoConfig, Role, Side};

/// How a side's WebSocket decoding begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Frames start at the next byte (after a 101, or a client framing
    /// right after its upgrade request).
    Framed,
    /// Frame boundaries must be found first (no handshake seen, or lost).
    Hunt,
}

/// Both sides' WebSocket state.
pub struct WebSocket {
    cfg: ProtoConfig,
    streams: PerSide<Option<Box<WsStream>>>,
    /// A 101 was seen: RSV1 means what the handshake agreed (otherwise it
    /// is guessed).
    handshake: bool,
    deflate: Option<DeflateParams>,
    /// "No WebSocket framing" was already said for this connection.
    not_ws_reported: bool,
}

impl WebSocket {
    pub fn new(cfg: &ProtoConfig) -> Self {
        WebSocket {
            cfg: cfg.clone(),
            streams: PerSide::default(),
            handshake: false,
            deflate: None,
            not_ws_reported: false,
        }
    }

    /// The handshake succeeded with these permessage-deflate parameters.
    pub fn handshake(&mut self, deflate: Option<DeflateParams>) {
        self.handshake = true;
        self.deflate = deflate;
    }

    /// Starts decoding `side` (replacing whatever decoded it before).
    pub fn start(&mut self, side: Side, how: Start) {
        self.streams[side] = Some(Box::new(match how {
            Start::Framed => WsStream::synced(),
            Start::Hunt => WsStream::hunting(),
        }));
    }

    /// True while `side` is being decoded as WebSocket.
    pub fn started(&self, side: Side) -> bool {
        self.streams[side].is_some()
    }

    /// Stops decoding `side` without flushing it (another protocol took
    /// the connection over).
    pub fn discard(&mut self, side: Side) {
        self.streams[side] = None;
    }

    /// Memory both sides' streams hold.
    #[inline]
    pub fn mem(&self) -> usize {
        self.streams
            .both()
            .iter()
            .flat_map(|s| s.as_ref())
            .map(|s| s.mem())
            .sum()
    }

    /// How `side`'s messages are compressed.
    fn deflate_mode(&self, role: Role, side: Side) -> DeflateMode {
        if !self.handshake {
            return DeflateMode::Guess;
        }
        let Some(p) = &self.deflate else {
            return DeflateMode::Off;
        };
        let from_client = role.is_client(side).unwrap_or(true);
        DeflateMode::On(if from_client {
            DeflateConfig {
                window_bits: p.client_max_window_bits,
                no_context_takeover: p.client_no_context_takeover,
            }
        } else {
            DeflateConfig {
                window_bits: p.server_max_window_bits,
                no_context_takeover: p.server_no_context_takeover,
            }
        })
    }

    /// Runs `f` on `side`'s stream with its context, if it has one.
    fn with_stream(
        &mut self,
        role: Role,
        side: Side,
        f: impl FnOnce(&mut WsStream, &mut StreamCx<'_>),
    ) {
        let deflate = self.deflate_mode(role, side);
        let WebSocket {
            cfg,
            streams,
            not_ws_reported,
            ..
        } = self;
        if let Some(s) = streams[side].as_mut() {
            let mut cx = StreamCx {
                side,
                cfg,
                role,
                deflate,
                not_ws_reported,
            };
            f(s, &mut cx);
        }
    }
}

impl Layer for WebSocket {
    type Out<'a> = Emit<'a>;

    fn data(&mut self, cx: Cx, side: Side, bytes: &[u8], out: &mut dyn FnMut(Emit<'_>)) {
        self.with_stream(cx.role, side, |s, scx| s.feed(bytes, scx, out));
    }

    fn gap(&mut self, cx: Cx, side: Side, len: u64, out: &mut dyn FnMut(Emit<'_>)) {
        self.with_stream(cx.role, side, |s, scx| s.gap(len, scx, out));
    }

    fn end(&mut self, cx: Cx, side: Side, out: &mut dyn FnMut(Emit<'_>)) {
        self.with_stream(cx.role, side, |s, scx| s.end(scx, out));
        self.streams[side] = None;
    }
}
