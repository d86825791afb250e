//! WebSocket framing and messages (RFC 6455, RFC 7692).
//!
//! - [`frame`]: header parsing and the rules a header can break.
//! - [`unmask`]: word-at-a-time XOR unmasking.
//! - [`deflate`]: per-direction inflate history (RFC 7692 context takeover).
//! - [`resync`]: finding frame boundaries without a handshake or after a gap.
//! - [`stream`]: one direction, frames → messages → events.
//! - [`layer`]: both directions of a connection, the stack's WebSocket layer.

pub mod deflate;
pub mod frame;
pub mod layer;
pub mod resync;
pub mod stream;
pub mod unmask;

pub use frame::{FrameError, FrameHeader, Opcode};
pub use layer::{Start, WebSocket};

#[cfg(test)]
mod tests;
