//! WebSocket framing and messages (RFC 6455, RFC 7692). (Filled in by the
//! decoder work; the signatures below are the contract with `decode`.)

use super::{ProtoConfig, ProtoEvent, ProtoStats, Side};

/// Per-connection protocol state: handshake, then frames in both directions.
pub struct Session {
    _cfg: ProtoConfig,
    stats: ProtoStats,
}

impl Session {
    /// `initiator_known`: true when the SYN was seen, so `Side::Initiator` is
    /// surely the client.
    pub fn new(cfg: &ProtoConfig, initiator_known: bool) -> Self {
        let _ = initiator_known;
        Session { _cfg: cfg.clone(), stats: ProtoStats::default() }
    }

    /// In-order bytes of one half-stream, exactly once each.
    pub fn on_data(
        &mut self,
        side: Side,
        data: &[u8],
        out: &mut dyn FnMut(ProtoEvent<'_>),
    ) {
        let _ = (side, data, out);
    }

    /// `bytes` of this half-stream are missing (never captured).
    pub fn on_gap(&mut self, side: Side, bytes: u64, out: &mut dyn FnMut(ProtoEvent<'_>)) {
        let _ = (side, bytes, out);
    }

    /// This half-stream ended (FIN, RST, eviction or end of capture).
    pub fn on_end(&mut self, side: Side, out: &mut dyn FnMut(ProtoEvent<'_>)) {
        let _ = (side, out);
    }

    pub fn stats(&self) -> &ProtoStats {
        &self.stats
    }
}
