//! WebSocket framing and messages (RFC 6455, RFC 7692).
//!
//! - [`frame`]: header parsing and the rules a header can break.
//! - [`unmask`]: word-at-a-time XOR unmasking.
//! - [`deflate`]: per-direction, lazily allocated inflate contexts.
//! - [`resync`]: finding frame boundaries without a handshake or after a gap.
//! - [`stream`]: one direction, frames → messages → events.
//! - [`session`]: one connection: detection, HTTP handshake, both directions.

pub mod deflate;
pub mod frame;
pub mod resync;
pub mod session;
pub mod stream;
pub mod unmask;

pub use frame::{FrameError, FrameHeader, Opcode};
pub use session::Session;

#[cfg(test)]
mod tests;
