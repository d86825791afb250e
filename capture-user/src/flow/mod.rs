//! TCP reassembly: in-order bytes per direction out of segments that come
//! late, twice, overlapping or never. Sans-IO; time is the capture
//! timestamp of the segments.
//!
//! - [`assembler`]: an offset-addressed reassembler for one direction (owns
//!   its cap; first copy wins; holes become explicit gaps).
//! - [`tcp`]: the TCP adapter for one connection: sequence numbers to
//!   offsets, SYN, FIN, RST.
//! - [`seq`]: sequence-number arithmetic modulo 2^32.
//!
//! Which connection a segment belongs to, connection ids, eviction and idle
//! timeouts are the connection registry's (`crate::registry`).

pub mod assembler;
pub mod seq;
pub mod tcp;

/// Limits of TCP reassembly and of the connection table.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Out-of-order bytes held per direction before the oldest hole is
    /// declared a gap.
    pub max_held: usize,
    /// Connections tracked at once; beyond, the least recently active go.
    pub max_flows: usize,
    /// A connection with no segment for this long (capture time) is dropped.
    pub idle_timeout_ns: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_held: 4 << 20,
            max_flows: 100_000,
            idle_timeout_ns: 300_000_000_000,
        }
    }
}

/// TCP counters for the exit summary. Those that are events (gaps,
/// mismatches, closes, evictions) are counted by the registry as it emits
/// them; the rest where they happen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub segments: u64,
    pub payload_bytes: u64,
    pub connections: u64,
    /// Segments that arrived ahead of a hole.
    pub out_of_order_segments: u64,
    /// Bytes seen more than once (retransmissions, overlaps).
    pub retransmitted_bytes: u64,
    pub overlap_mismatches: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Gaps declared because the held bytes passed the cap.
    pub gaps_at_cap: u64,
    pub closed: u64,
    pub resets: u64,
    pub evicted_idle: u64,
    pub evicted_full: u64,
    /// Connections ended by a new connection on the same endpoints.
    pub evicted_reused: u64,
    /// Connections evicted because the decoder's memory budget was reached.
    pub evicted_memory: u64,
    /// Bytes after a FIN, on a RST, or on a closed connection, ignored.
    pub bytes_after_end: u64,
    /// Segments without payload for an unknown connection (not tracked).
    pub untracked_segments: u64,
    /// Largest number of bytes held by one direction.
    pub peak_held: u64,
}

impl FlowStats {
    /// Adds `other` field by field (`peak_held` is a maximum): counters of
    /// decoder threads, or of one segment, into a total.
    pub fn add(&mut self, other: &FlowStats) {
        let FlowStats {
            segments,
            payload_bytes,
            connections,
            out_of_order_segments,
            retransmitted_bytes,
            overlap_mismatches,
            gaps,
            gap_bytes,
            gaps_at_cap,
            closed,
            resets,
            evicted_idle,
            evicted_full,
            evicted_reused,
            evicted_memory,
            bytes_after_end,
            untracked_segments,
            peak_held,
        } = other;
        self.segments += segments;
        self.payload_bytes += payload_bytes;
        self.connections += connections;
        self.out_of_order_segments += out_of_order_segments;
        self.retransmitted_bytes += retransmitted_bytes;
        self.overlap_mismatches += overlap_mismatches;
        self.gaps += gaps;
        self.gap_bytes += gap_bytes;
        self.gaps_at_cap += gaps_at_cap;
        self.closed += closed;
        self.resets += resets;
        self.evicted_idle += evicted_idle;
        self.evicted_full += evicted_full;
        self.evicted_reused += evicted_reused;
        self.evicted_memory += evicted_memory;
        self.bytes_after_end += bytes_after_end;
        self.untracked_segments += untracked_segments;
        self.peak_held = self.peak_held.max(*peak_held);
    }
}

#[cfg(test)]
mod tests;
