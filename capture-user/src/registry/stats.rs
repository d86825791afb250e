//! The registry's counters for the exit summary, and the one place events
//! are counted (so the summary always matches the output).

use crate::event::{EventKind, EvictReason, StackEvent, TcpEvent, WsEvent};
use crate::flow::FlowStats;
use crate::source::ChecksumStats;

/// Counters for the exit summary, counted from the events emitted (the TCP
/// ones that are not events where they happen, in `flow`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub flow: FlowStats,
    /// `ws_message` events.
    pub messages: u64,
    /// Payload bytes of those messages (after inflation).
    pub message_bytes: u64,
    /// Ping, pong and close frames.
    pub control_frames: u64,
    pub ws_opens: u64,
    pub upgrade_failures: u64,
    pub violations: u64,
    /// Messages cut at `max_message` / `max_inflated`.
    pub truncated_messages: u64,
    pub undecompressable: u64,
    pub resyncs: u64,
    pub resync_skipped_bytes: u64,
    /// Connections evicted (idle or table full).
    pub evictions: u64,
    /// Connections whose protocol could not be decoded (TLS without a key).
    pub undecoded: u64,
    /// Bytes consumed undecoded, besides those reported by resyncs
    /// (`resync_skipped_bytes`): no framing found, a protocol not decoded,
    /// messages dropped after a gap, reserved frames.
    pub skipped_bytes: u64,
    /// TCP checksum verdicts of the segments pushed, and how many were
    /// dropped for a bad one.
    pub checksum: ChecksumStats,
}

impl DecodeStats {
    /// Adds `other` field by field: the counters of decoder threads into a
    /// total. (The destructuring makes a new counter a compile error here
    /// until it is added.)
    pub fn add(&mut self, other: &DecodeStats) {
        let DecodeStats {
            flow,
            messages,
            message_bytes,
            control_frames,
            ws_opens,
            upgrade_failures,
            violations,
            truncated_messages,
            undecompressable,
            resyncs,
            resync_skipped_bytes,
            evictions,
            undecoded,
            skipped_bytes,
            checksum,
        } = other;
        self.flow.add(flow);
        self.messages += messages;
        self.message_bytes += message_bytes;
        self.control_frames += control_frames;
        self.ws_opens += ws_opens;
        self.upgrade_failures += upgrade_failures;
        self.violations += violations;
        self.truncated_messages += truncated_messages;
        self.undecompressable += undecompressable;
        self.resyncs += resyncs;
        self.resync_skipped_bytes += resync_skipped_bytes;
        self.evictions += evictions;
        self.undecoded += undecoded;
        self.skipped_bytes += skipped_bytes;
        self.checksum.add(checksum);
    }
}

/// The one place events are counted.
pub(super) fn count(stats: &mut DecodeStats, kind: &EventKind<'_>) {
    match kind {
        EventKind::Ws(WsEvent::Message {
            payload, truncated, ..
        }) => {
            stats.messages += 1;
            stats.message_bytes += payload.len() as u64;
            stats.truncated_messages += u64::from(*truncated);
        }
        EventKind::Ws(WsEvent::Ping { .. } | WsEvent::Pong { .. } | WsEvent::Close { .. }) => {
            stats.control_frames += 1
        }
        EventKind::Ws(WsEvent::Open { .. }) => stats.ws_opens += 1,
        EventKind::Ws(WsEvent::UpgradeFailed { .. }) => stats.upgrade_failures += 1,
        EventKind::Ws(WsEvent::Undecompressable { .. }) => stats.undecompressable += 1,
        EventKind::Ws(WsEvent::Resync { skipped }) => {
            stats.resyncs += 1;
            stats.resync_skipped_bytes += skipped;
        }
        EventKind::Violation(_) => stats.violations += 1,
        EventKind::Tcp(TcpEvent::Gap { bytes }) => {
            stats.flow.gaps += 1;
            stats.flow.gap_bytes += bytes;
        }
        EventKind::Tcp(TcpEvent::OverlapMismatch { .. }) => stats.flow.overlap_mismatches += 1,
        EventKind::Tcp(TcpEvent::Close { reset }) => {
            stats.flow.closed += 1;
            stats.flow.resets += u64::from(*reset);
        }
        EventKind::Tcp(TcpEvent::Evicted { reason }) => {
            stats.evictions += 1;
            match reason {
                EvictReason::IdleTimeout => stats.flow.evicted_idle += 1,
                EvictReason::TableFull => stats.flow.evicted_full += 1,
                EvictReason::Reused => stats.flow.evicted_reused += 1,
                EvictReason::MemoryBudget => stats.flow.evicted_memory += 1,
            }
        }
        EventKind::Stack(StackEvent::Undecoded { .. }) => stats.undecoded += 1,
        EventKind::Http(_) | EventKind::Tls(_) => {}
    }
}
