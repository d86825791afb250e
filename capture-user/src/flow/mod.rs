//! TCP reassembly per connection, both directions. Sans-IO: segments in,
//! [`FlowEvent`]s out; time is the capture timestamp of the segments.
//!
//! - A connection is keyed by its two endpoints in either order and gets a
//!   [`ConnId`] 1, 2, 3, ... in order of first sight.
//! - The *initiator* is the SYN sender when a SYN (without ACK) or SYN-ACK was
//!   seen (`initiator_known`); otherwise the sender of the first segment seen
//!   (the connection was picked up mid-way and starts at that sequence number).
//! - Each direction is reassembled by a [`half::HalfStream`]: in-order data
//!   borrowed, out-of-order data copied, first copy wins, holes become gaps.
//! - FIN ends a direction when the stream reaches it; both FINs or an RST close
//!   the connection. A closed connection stays as a tombstone (no buffers) until
//!   it idles out, so late retransmissions do not open a new connection; a new
//!   SYN on the same endpoints does.
//! - Bounded: bytes held per direction ([`FlowConfig::max_held`]), number of
//!   connections ([`FlowConfig::max_flows`], the least recently active are
//!   evicted in batches), idle timeout by capture time.

pub mod half;
pub mod seq;

use std::collections::hash_map::Entry;
use std::net::SocketAddr;

use foldhash::HashMap;

use crate::event::ConnId;
use crate::proto::Side;
use crate::source::{tcp_flags, Segment};
use half::{HalfOut, HalfStream};

/// Limits of the flow table.
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

/// Counters for the exit summary.
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
    /// Bytes after a FIN, or on a closed connection, ignored.
    pub bytes_after_end: u64,
    /// Segments without payload for an unknown connection (not tracked).
    pub untracked_segments: u64,
    /// Largest number of bytes held by one direction.
    pub peak_held: u64,
}

/// Why a connection left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Both FINs delivered, or RST.
    Closed { reset: bool },
    /// Dropped for a limit; the reason is the JSON `reason` text.
    Evicted(&'static str),
    /// End of input.
    Finished,
}

/// What happened, for one connection.
#[derive(Debug, PartialEq, Eq)]
pub enum FlowEventKind<'a> {
    /// First sight of a connection.
    Open { initiator_known: bool },
    /// In-order bytes of `side`.
    Data(&'a [u8]),
    /// `side` lost this many bytes here.
    Gap(u64),
    /// Data seen twice on `side` with different content.
    OverlapMismatch { offset: u64, len: u64 },
    /// `side` ended (FIN reached, RST, eviction, end of input).
    End,
    /// The connection is gone (no more events for it, except as a tombstone).
    Released(Release),
}

/// One event with the connection it belongs to.
#[derive(Debug, PartialEq, Eq)]
pub struct FlowEvent<'a> {
    pub conn: ConnId,
    pub side: Side,
    pub initiator: SocketAddr,
    pub responder: SocketAddr,
    pub kind: FlowEventKind<'a>,
}

impl FlowEvent<'_> {
    /// (sender, receiver) of the bytes of `side`.
    pub fn addrs(&self, side: Side) -> (SocketAddr, SocketAddr) {
        match side {
            Side::Initiator => (self.initiator, self.responder),
            Side::Responder => (self.responder, self.initiator),
        }
    }
}

/// Interface and both endpoints, in either order.
type Key = (u32, SocketAddr, SocketAddr);

fn key_of(iface: u32, a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b {
        (iface, a, b)
    } else {
        (iface, b, a)
    }
}

struct Flow {
    id: ConnId,
    initiator: SocketAddr,
    responder: SocketAddr,
    halves: [HalfStream; 2],
    last_ns: u64,
    /// Closed: a tombstone that only swallows late segments.
    closed: bool,
}

fn idx(side: Side) -> usize {
    match side {
        Side::Initiator => 0,
        Side::Responder => 1,
    }
}

impl Flow {
    fn event<'a>(&self, side: Side, kind: FlowEventKind<'a>) -> FlowEvent<'a> {
        FlowEvent {
            conn: self.id,
            side,
            initiator: self.initiator,
            responder: self.responder,
            kind,
        }
    }

    /// Flushes both directions and releases the connection.
    fn release(&mut self, why: Release, stats: &mut FlowStats, out: &mut dyn FnMut(FlowEvent<'_>)) {
        for side in [Side::Initiator, Side::Responder] {
            let (id, ini, resp) = (self.id, self.initiator, self.responder);
            self.halves[idx(side)].flush(stats, &mut |h| {
                out(FlowEvent {
                    conn: id,
                    side,
                    initiator: ini,
                    responder: resp,
                    kind: half_kind(h),
                })
            });
        }
        self.halves = Default::default();
        self.closed = true;
        out(self.event(Side::Initiator, FlowEventKind::Released(why)));
    }
}

fn half_kind(h: HalfOut<'_>) -> FlowEventKind<'_> {
    match h {
        HalfOut::Data(d) => FlowEventKind::Data(d),
        HalfOut::Gap(n) => FlowEventKind::Gap(n),
        HalfOut::Mismatch { offset, len } => FlowEventKind::OverlapMismatch { offset, len },
        HalfOut::End => FlowEventKind::End,
    }
}

/// All connections of a capture.
pub struct FlowTable {
    cfg: FlowConfig,
    /// Keys come from the network: foldhash is fast and seeded per table
    /// (no HashDoS with chosen addresses).
    flows: HashMap<Key, Flow>,
    next_id: ConnId,
    stats: FlowStats,
    /// Latest capture time seen (timestamps may step back a little).
    now_ns: u64,
    last_sweep_ns: u64,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            flows: HashMap::default(),
            next_id: 1,
            stats: FlowStats::default(),
            now_ns: 0,
            last_sweep_ns: 0,
        }
    }

    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Connections currently tracked (tombstones included).
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Feeds one segment; events for it (and for connections that idled out
    /// meanwhile) go to `out` in order.
    pub fn push(&mut self, seg: &Segment<'_>, out: &mut dyn FnMut(FlowEvent<'_>)) {
        self.push_cut(seg, 0, out)
    }

    /// Like [`push`](Self::push) for a segment whose payload was cut by the
    /// capture's snap length: `lost` more bytes followed it on the wire. They
    /// become a gap as soon as the stream reaches them.
    pub fn push_cut(&mut self, seg: &Segment<'_>, lost: u32, out: &mut dyn FnMut(FlowEvent<'_>)) {
        self.stats.segments += 1;
        self.stats.payload_bytes += seg.payload.len() as u64;
        if seg.ts_ns > self.now_ns {
            self.now_ns = seg.ts_ns;
        }
        self.maybe_sweep(out);

        let key = key_of(seg.iface, seg.src, seg.dst);
        let syn = seg.has(tcp_flags::SYN);
        let ack = seg.has(tcp_flags::ACK);
        // A fresh SYN on a closed connection's endpoints starts a new one.
        if syn && !ack {
            if let Entry::Occupied(e) = self.flows.entry(key) {
                if e.get().closed {
                    e.remove();
                }
            }
        }
        let flow = match self.flows.get_mut(&key) {
            Some(flow) => flow,
            None => {
                if seg.payload.is_empty() && lost == 0 && !syn {
                    self.stats.untracked_segments += 1;
                    return;
                }
                if self.flows.len() >= self.cfg.max_flows.max(1) {
                    self.evict_batch(out);
                }
                let (initiator, responder, known) = match (syn, ack) {
                    (true, false) => (seg.src, seg.dst, true),
                    (true, true) => (seg.dst, seg.src, true),
                    _ => (seg.src, seg.dst, false),
                };
                let flow = Flow {
                    id: self.next_id,
                    initiator,
                    responder,
                    halves: Default::default(),
                    last_ns: self.now_ns,
                    closed: false,
                };
                self.next_id += 1;
                self.stats.connections += 1;
                out(flow.event(
                    Side::Initiator,
                    FlowEventKind::Open {
                        initiator_known: known,
                    },
                ));
                self.flows.entry(key).insert_entry(flow).into_mut()
            }
        };
        flow.last_ns = self.now_ns;
        if flow.closed {
            self.stats.bytes_after_end += seg.payload.len() as u64;
            return;
        }
        let side = if seg.src == flow.initiator {
            Side::Initiator
        } else {
            Side::Responder
        };
        if seg.has(tcp_flags::RST) {
            self.stats.resets += 1;
            self.stats.closed += 1;
            flow.release(Release::Closed { reset: true }, &mut self.stats, out);
            return;
        }
        let mut data_seq = seg.seq;
        if syn {
            flow.halves[idx(side)].on_syn(seg.seq);
            data_seq = seg.seq.wrapping_add(1);
        }
        let (id, ini, resp) = (flow.id, flow.initiator, flow.responder);
        let cap = self.cfg.max_held;
        flow.halves[idx(side)].on_segment(
            data_seq,
            seg.payload,
            lost,
            seg.has(tcp_flags::FIN),
            cap,
            &mut self.stats,
            &mut |h| {
                out(FlowEvent {
                    conn: id,
                    side,
                    initiator: ini,
                    responder: resp,
                    kind: half_kind(h),
                })
            },
        );
        if flow.halves[0].ended() && flow.halves[1].ended() {
            self.stats.closed += 1;
            flow.release(Release::Closed { reset: false }, &mut self.stats, out);
        }
    }

    /// End of input: every open connection is flushed (holes become gaps)
    /// and released, in connection-id order.
    pub fn finish(&mut self, out: &mut dyn FnMut(FlowEvent<'_>)) {
        let mut flows: Vec<Flow> = self.flows.drain().map(|(_, f)| f).collect();
        flows.sort_by_key(|f| f.id);
        for mut f in flows {
            if !f.closed {
                f.release(Release::Finished, &mut self.stats, out);
            }
        }
    }

    /// Drops connections idle for longer than the timeout, checked at most
    /// every tenth of the timeout of capture time.
    fn maybe_sweep(&mut self, out: &mut dyn FnMut(FlowEvent<'_>)) {
        let every = (self.cfg.idle_timeout_ns / 10).max(1);
        if self.now_ns.saturating_sub(self.last_sweep_ns) < every {
            return;
        }
        self.last_sweep_ns = self.now_ns;
        let now = self.now_ns;
        let timeout = self.cfg.idle_timeout_ns;
        let mut idle: Vec<(u64, ConnId, Key)> = self
            .flows
            .iter()
            .filter(|(_, f)| now.saturating_sub(f.last_ns) > timeout)
            .map(|(k, f)| (f.last_ns, f.id, *k))
            .collect();
        idle.sort();
        for (_, _, k) in idle {
            if let Some(mut f) = self.flows.remove(&k) {
                if !f.closed {
                    self.stats.evicted_idle += 1;
                    f.release(Release::Evicted("idle timeout"), &mut self.stats, out);
                }
            }
        }
    }

    /// Makes room: drops closed tombstones first, then the least recently
    /// active connections, about 1% of the table at a time so that a full
    /// table does not cost a scan per new connection.
    fn evict_batch(&mut self, out: &mut dyn FnMut(FlowEvent<'_>)) {
        let batch = (self.cfg.max_flows / 100).max(1);
        let mut order: Vec<(bool, u64, ConnId, Key)> = self
            .flows
            .iter()
            .map(|(k, f)| (!f.closed, f.last_ns, f.id, *k))
            .collect();
        let n = batch.min(order.len());
        if n == 0 {
            return;
        }
        if n < order.len() {
            order.select_nth_unstable(n - 1);
            order.truncate(n);
        }
        order.sort();
        for (open, _, _, k) in order {
            if let Some(mut f) = self.flows.remove(&k) {
                if open {
                    self.stats.evicted_full += 1;
                    f.release(Release::Evicted("flow table full"), &mut self.stats, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
