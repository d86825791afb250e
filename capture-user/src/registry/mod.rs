//! The connection registry: one home for everything known about a
//! connection, fed by TCP segments ([`Decoder::push`]) or by a source of
//! already-ordered plaintext ([`Decoder::push_plain`]).
//!
//! Each entry owns the connection's id, its two endpoints, who the client
//! is ([`Role`]), its TCP reassembly state and its protocol [`Stack`]; a
//! segment costs one table lookup. Events get their time, connection id,
//! addresses and direction here and nowhere else, and are counted here as
//! they go out, so the summary matches the output exactly.
//!
//! - A connection is keyed by its interface and its two endpoints in either
//!   order, and gets a [`ConnId`] 1, 2, 3, ... in order of first sight.
//! - The *initiator* is the SYN sender when a SYN (without ACK) or SYN-ACK
//!   was seen; otherwise the sender of the first segment seen.
//! - Both FINs or a RST close a connection. A closed connection stays as a
//!   tombstone (no buffers) until it idles out, so late retransmissions do
//!   not open a new connection; a new SYN on the same endpoints does.
//! - Bounded: bytes held per direction ([`FlowConfig::max_held`]), number of
//!   connections ([`FlowConfig::max_flows`]; the least recently active are
//!   evicted in batches), idle timeout by capture time.

mod conn;
mod evict;
mod plain;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::net::SocketAddr;

use foldhash::HashMap;

use crate::event::{ConnId, EventSink, EvictReason};
use crate::flow::tcp::{Outcome, TcpConn};
use crate::flow::{FlowConfig, FlowStats};
use crate::proto::{ProtoConfig, Stack};
use crate::side::{PerSide, Role, Side};
use crate::source::{tcp_flags, Segment};

use conn::{flow_fin_waits, key_of, on_tcp, Conn, ConnState, Key, Out, Release, Via};
pub use plain::PlainError;
pub use stats::DecodeStats;

/// Limits of the whole decoder.
#[derive(Debug, Clone)]
pub struct DecodeConfig {
    pub flow: FlowConfig,
    pub proto: ProtoConfig,
    /// Bytes all connections may hold together (out-of-order data, partial
    /// messages, inflate history, hunt and handshake buffers); past it the
    /// connections holding most are evicted until a tenth is free again.
    pub max_memory: usize,
    /// Drop segments whose TCP checksum is [`Checksum::Bad`](crate::source::Checksum::Bad) unread, as
    /// the receiver's kernel did (`--verify-checksums`): the hole they
    /// leave is reported as a gap, as for a packet the capture lost.
    pub verify_checksums: bool,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            flow: FlowConfig::default(),
            proto: ProtoConfig::default(),
            max_memory: 1 << 30,
            verify_checksums: false,
        }
    }
}

/// Segments (or ordered plaintext) in, events out, for any number of
/// connections.
pub struct Decoder {
    cfg: DecodeConfig,
    /// Keys come from the network: foldhash is fast and seeded per table
    /// (no HashDoS with chosen addresses).
    conns: HashMap<Key, Conn>,
    /// Key of every connection by id, for sources that name connections by
    /// id ([`Decoder::push_plain`]).
    keys: HashMap<ConnId, Key>,
    next_id: ConnId,
    /// Counters of events (and of what the registry itself sees).
    stats: DecodeStats,
    /// Counters TCP reassembly keeps where no event is (retransmitted
    /// bytes, out-of-order segments, ...); added to `stats` when read.
    tcp_stats: FlowStats,
    /// Latest capture time seen (timestamps may step back a little).
    now_ns: u64,
    last_sweep_ns: u64,
    last_ts_ns: u64,
    /// Connections whose FIN waits behind a hole, oldest first, with the
    /// capture time at which waiting ends.
    fin_waits: VecDeque<(u64, ConnId, Key)>,
    /// Memory all connections hold, as last accounted.
    mem_total: usize,
}

/// How long (capture time) a FIN waits for the bytes before it before the
/// hole is declared a gap and the direction ends: longer than a few
/// retransmission timeouts (Linux's minimum RTO is 200 ms, backing off).
pub const FIN_HOLE_WAIT_NS: u64 = 2_000_000_000;

impl Decoder {
    pub fn new(cfg: DecodeConfig) -> Self {
        Decoder {
            cfg,
            conns: HashMap::default(),
            keys: HashMap::default(),
            next_id: 1,
            stats: DecodeStats::default(),
            tcp_stats: FlowStats::default(),
            now_ns: 0,
            last_sweep_ns: 0,
            last_ts_ns: 0,
            fin_waits: VecDeque::new(),
            mem_total: 0,
        }
    }

    /// Memory all connections hold (what `max_memory` limits).
    pub fn memory(&self) -> usize {
        self.mem_total
    }

    /// Counters so far.
    pub fn stats(&self) -> DecodeStats {
        let mut s = self.stats.clone();
        s.flow.add(&self.tcp_stats);
        s
    }

    /// Connections currently tracked (tombstones included).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Feeds one segment; every event it completes goes to `sink` now.
    pub fn push(&mut self, seg: &Segment<'_>, sink: &mut dyn EventSink) {
        self.push_cut(seg, 0, sink)
    }

    /// Feeds a segment whose payload was cut short by the capture (snap
    /// length): `lost` more payload bytes were on the wire. They are reported
    /// as a gap when the stream reaches them, not held for ever.
    pub fn push_cut(&mut self, seg: &Segment<'_>, lost: u32, sink: &mut dyn EventSink) {
        // A dropped segment is not seen at all, not even its time: exactly
        // as if the capture had lost it.
        if !self
            .stats
            .checksum
            .admit(seg.checksum, self.cfg.verify_checksums)
        {
            return;
        }
        self.last_ts_ns = self.last_ts_ns.max(seg.ts_ns);
        self.stats.flow.segments += 1;
        self.stats.flow.payload_bytes += seg.payload.len() as u64;
        self.advance_clock(seg.ts_ns, sink);

        let key = key_of(Via::Tcp, seg.iface, seg.src, seg.dst);
        let syn = seg.has(tcp_flags::SYN);
        let ack = seg.has(tcp_flags::ACK);
        // A fresh SYN on a closed connection's endpoints starts a new one;
        // so does a SYN or SYN-ACK that cannot belong to the open one.
        if syn {
            self.replace_on_syn(key, seg, ack, sink);
        }
        if self.feed_tcp(key, seg, lost, sink) {
            return;
        }
        if seg.payload.is_empty() && lost == 0 && !syn {
            self.stats.flow.untracked_segments += 1;
            return;
        }
        let (initiator, responder, known) = match (syn, ack) {
            (true, false) => (seg.src, seg.dst, true),
            (true, true) => (seg.dst, seg.src, true),
            _ => (seg.src, seg.dst, false),
        };
        let tcp_role = if known {
            Role::known(Side::Initiator)
        } else {
            Role::default()
        };
        let state = ConnState::Tcp {
            tcp: TcpConn::new(self.cfg.flow.max_held),
            stack: Box::new(Stack::new(&self.cfg.proto)),
        };
        self.insert(key, initiator, responder, tcp_role, state, seg.ts_ns, sink);
        self.feed_tcp(key, seg, lost, sink);
    }

    /// Feeds `seg` to the connection at `key` (one table lookup: this is
    /// the hot path) and accounts its memory. False when there is none.
    fn feed_tcp(
        &mut self,
        key: Key,
        seg: &Segment<'_>,
        lost: u32,
        sink: &mut dyn EventSink,
    ) -> bool {
        let Decoder {
            conns,
            stats,
            tcp_stats,
            now_ns,
            fin_waits,
            mem_total,
            ..
        } = self;
        let now_ns = *now_ns;
        let Some(conn) = conns.get_mut(&key) else {
            return false;
        };
        conn.last_ns = now_ns;
        let side = if seg.src == conn.addrs.initiator {
            Side::Initiator
        } else {
            Side::Responder
        };
        let info = conn.info();
        let (tcp_role, role) = (conn.tcp_role, &mut conn.role);
        let ConnState::Tcp { tcp, stack } = &mut conn.state else {
            tcp_stats.bytes_after_end += seg.payload.len() as u64;
            return true;
        };
        let mut out = Out {
            ts_ns: seg.ts_ns,
            stats,
            sink,
        };
        let outcome = tcp.on_segment(
            side,
            seg.seq,
            seg.flags,
            seg.payload,
            lost,
            tcp_stats,
            &mut |side, o| on_tcp(stack, &info, tcp_role, role, &mut out, side, o),
        );
        match outcome {
            Outcome::Closed { reset } => conn.release(Release::Closed { reset }, &mut out),
            Outcome::Open if flow_fin_waits(&conn.state) && !conn.fin_wait_queued => {
                conn.fin_wait_queued = true;
                let until = now_ns.saturating_add(FIN_HOLE_WAIT_NS);
                fin_waits.push_back((until, conn.id, key));
            }
            Outcome::Open => {}
        }
        let mem = conn.mem_now();
        *mem_total = *mem_total - conn.mem + mem;
        conn.mem = mem;
        if *mem_total > self.cfg.max_memory {
            self.shed_memory(seg.ts_ns, sink);
        }
        true
    }

    /// Ends the connection at `key` when the SYN `seg` starts a new one on
    /// its endpoints (see [`TcpConn::syn_fits`]).
    fn replace_on_syn(&mut self, key: Key, seg: &Segment<'_>, ack: bool, sink: &mut dyn EventSink) {
        let Entry::Occupied(mut e) = self.conns.entry(key) else {
            return;
        };
        let c = e.get_mut();
        let side = if seg.src == c.addrs.initiator {
            Side::Initiator
        } else {
            Side::Responder
        };
        let reused = match &c.state {
            ConnState::Closed => !ack,
            ConnState::Tcp { tcp, .. } => !tcp.syn_fits(side, seg.seq),
            ConnState::Plain { .. } => false,
        };
        if !reused {
            return;
        }
        let mut out = Out {
            ts_ns: seg.ts_ns,
            stats: &mut self.stats,
            sink,
        };
        c.release(Release::Evicted(EvictReason::Reused), &mut out);
        self.keys.remove(&c.id);
        self.mem_total -= c.mem;
        e.remove();
    }

    /// End of input: flushes every connection (holes become gaps, stacks
    /// see `end`) and drops them, in connection-id order. Events carry the
    /// last capture time.
    pub fn finish(&mut self, sink: &mut dyn EventSink) {
        let mut conns: Vec<Conn> = self.conns.drain().map(|(_, c)| c).collect();
        self.keys.clear();
        self.mem_total = 0;
        self.fin_waits.clear();
        conns.sort_by_key(|c| c.id);
        let mut out = Out {
            ts_ns: self.last_ts_ns,
            stats: &mut self.stats,
            sink,
        };
        for mut c in conns {
            c.release(Release::Finished, &mut out);
        }
    }

    /// Adds a new connection (making room first when the table is full).
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        key: Key,
        initiator: SocketAddr,
        responder: SocketAddr,
        tcp_role: Role,
        state: ConnState,
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> ConnId {
        if self.conns.len() >= self.cfg.flow.max_flows.max(1) {
            self.evict_batch(ts_ns, sink);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.stats.flow.connections += 1;
        self.keys.insert(id, key);
        self.conns.insert(
            key,
            Conn {
                id,
                addrs: PerSide::new(initiator, responder),
                tcp_role,
                role: tcp_role,
                last_ns: self.now_ns,
                state,
                fin_wait_queued: false,
                mem: 0,
            },
        );
        id
    }
}
