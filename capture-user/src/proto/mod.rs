//! The protocol stack of a connection: layers over its reassembled,
//! in-order byte streams.
//!
//! ```text
//! in-order bytes per side ─▶ Stack: detect ─▶ http ─▶ websocket
//!                                        └──(not HTTP)──▶ websocket (hunting)
//! ```
//!
//! - [`detect`]: the first bytes of a side say what it carries (HTTP
//!   request, HTTP response, TLS record, or unknown).
//! - [`http`]: heads, bodies skipped, requests paired with responses, the
//!   upgrade handshake; after a 101 it hands bytes up to the next layer.
//! - [`websocket`]: frames, messages, permessage-deflate, resync.
//! - [`stack`]: builds and wires the layers of one connection.
//!
//! Every layer is sans-IO and speaks the [`Layer`] interface: `data`, `gap`
//! and `end` per [`Side`], events out (and, for an inner layer, bytes for
//! the next one). Who the client is ([`Role`]) is passed down as a value on
//! every call; a layer that learns it reports a [`RoleFact`] and never
//! writes it back. A layer that cannot go on ends with one event, never a
//! stream of violations.

pub mod detect;
pub mod http;
pub mod stack;
pub mod tls;
pub mod websocket;

use crate::event::EventKind;
pub use crate::side::{PerSide, Role, RoleFact, Side};
pub use stack::Stack;
pub use websocket::FrameError;

/// Caps that keep decoding memory bounded (defaults 16 MiB each), and the
/// key log TLS connections are decrypted with.
#[derive(Debug, Clone)]
pub struct ProtoConfig {
    /// Largest message (sum of its frame payloads) kept; longer is truncated.
    pub max_message: usize,
    /// Largest inflated message kept (decompression-bomb guard).
    pub max_inflated: usize,
    /// `--keylog` (and secrets from the capture file), shared by every
    /// connection.
    pub keylog: Option<std::sync::Arc<tls::KeyLog>>,
}

impl Default for ProtoConfig {
    fn default() -> Self {
        ProtoConfig {
            max_message: 16 << 20,
            max_inflated: 16 << 20,
            keylog: None,
        }
    }
}

/// What a layer reports to the connection: an event about the bytes of a
/// side, or what it learned about who the client is.
#[derive(Debug, Clone)]
pub enum Emit<'a> {
    Event(Side, EventKind<'a>),
    /// An event of plaintext the TLS layer decrypted with a key log
    /// (`via: keylog`).
    Decrypted(Side, EventKind<'a>),
    Role(RoleFact),
    /// This many bytes of `side` were consumed without being decoded (no
    /// framing found, a protocol that is not decoded, a message dropped
    /// after a gap): counted, so that every byte is decoded, skipped or
    /// lost.
    Skipped(Side, u64),
}

/// What a layer is told with every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cx {
    /// Who the client is, as far as known before this call.
    pub role: Role,
    /// The other side has not delivered a byte yet (or only bytes a gap
    /// erased before they were classified): a capture that sees one
    /// direction only (XDP ingress) looks like this.
    pub peer_silent: bool,
}

/// The interface every layer of the stack implements. Calls for one side
/// come in stream order; `data` is in-order bytes, exactly once each, cut
/// anywhere; `gap` says `len` bytes will never come (the caller reports the
/// gap itself; the layer only finds its footing again); `end` says no more
/// will come.
pub trait Layer: 'static {
    /// What the layer hands on: [`Emit`] for the top of the stack, and for an
    /// inner layer bytes for the next one too.
    type Out<'a>;

    fn data(&mut self, cx: Cx, side: Side, bytes: &[u8], out: &mut dyn FnMut(Self::Out<'_>));
    fn gap(&mut self, cx: Cx, side: Side, len: u64, out: &mut dyn FnMut(Self::Out<'_>));
    fn end(&mut self, cx: Cx, side: Side, out: &mut dyn FnMut(Self::Out<'_>));
}
