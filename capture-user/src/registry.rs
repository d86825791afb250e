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

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::net::SocketAddr;

use foldhash::HashMap;

use crate::event::{
    ConnId, Event, EventKind, EventSink, EvictReason, StackEvent, TcpEvent, WsEvent,
};
use crate::flow::tcp::{Outcome, TcpConn, TcpOut};
use crate::flow::{FlowConfig, FlowStats};
use crate::proto::{Emit, ProtoConfig, Stack};
use crate::side::{PerSide, Role, Side};
use crate::source::{tcp_flags, ChecksumStats, Segment};

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

/// Which source feeds a connection: two sources never share an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Via {
    Tcp,
    Plain,
}

/// Source, interface and both endpoints (in either order).
type Key = (Via, u32, SocketAddr, SocketAddr);

fn key_of(via: Via, iface: u32, a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b {
        (via, iface, a, b)
    } else {
        (via, iface, b, a)
    }
}

/// Where a connection is in its life, with the state that life needs.
enum ConnState {
    /// Reassembled from TCP segments.
    Tcp { tcp: TcpConn, stack: Box<Stack> },
    /// Fed in order by a plaintext source: the next offset expected per
    /// side, and which sides ended.
    Plain {
        next: PerSide<u64>,
        ended: PerSide<bool>,
        stack: Box<Stack>,
    },
    /// Closed: a tombstone that only swallows late segments.
    Closed,
}

/// One connection.
struct Conn {
    id: ConnId,
    /// Sender of each side's bytes.
    addrs: PerSide<SocketAddr>,
    /// What TCP itself told about the client (the SYN); TCP-level events
    /// (gaps, mismatches, close, eviction) are directed by it.
    tcp_role: Role,
    /// Everything learned so far (SYN, HTTP heads, masking, the 101);
    /// protocol events are directed by it.
    role: Role,
    last_ns: u64,
    state: ConnState,
    /// In [`Decoder::fin_waits`].
    fin_wait_queued: bool,
    /// Memory it held when last accounted (part of `Decoder::mem_total`).
    mem: usize,
}

/// True when TCP reassembly holds a FIN behind a hole.
fn flow_fin_waits(state: &ConnState) -> bool {
    matches!(state, ConnState::Tcp { tcp, .. } if tcp.fin_waits())
}

/// Why a connection leaves the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    Closed {
        reset: bool,
    },
    Evicted(EvictReason),
    /// End of input: no event.
    Finished,
}

/// Where an event goes: time of the input that caused it, counters, sink.
struct Out<'a> {
    ts_ns: u64,
    stats: &'a mut DecodeStats,
    sink: &'a mut dyn EventSink,
}

impl Out<'_> {
    fn event(&mut self, conn: &ConnInfo, side: Side, role: Role, kind: EventKind<'_>) {
        let ev = Event {
            ts_ns: self.ts_ns,
            conn: conn.id,
            src: conn.addrs[side],
            dst: conn.addrs[side.other()],
            dir: role.dir(side),
            kind,
        };
        count(self.stats, &ev.kind);
        self.sink.event(&ev);
    }
}

/// The parts of a connection an event needs (borrowed apart from its state).
struct ConnInfo {
    id: ConnId,
    addrs: PerSide<SocketAddr>,
}

impl Conn {
    fn info(&self) -> ConnInfo {
        ConnInfo {
            id: self.id,
            addrs: self.addrs.clone(),
        }
    }
}

/// Runs one stack call, applying role facts and emitting events.
fn stack_call(
    stack: &mut Stack,
    info: &ConnInfo,
    role: &mut Role,
    out: &mut Out<'_>,
    call: impl FnOnce(&mut Stack, Role, &mut dyn FnMut(Emit<'_>)),
) {
    let r = *role;
    call(stack, r, &mut |e| match e {
        Emit::Event(side, kind) => out.event(info, side, *role, kind),
        Emit::Role(fact) => role.learn(fact),
        Emit::Skipped(_, n) => out.stats.skipped_bytes += n,
    });
}

/// What TCP reassembly hands on, for one connection: bytes into its stack,
/// facts out as events.
fn on_tcp(
    stack: &mut Stack,
    info: &ConnInfo,
    tcp_role: Role,
    role: &mut Role,
    out: &mut Out<'_>,
    side: Side,
    o: TcpOut<'_>,
) {
    match o {
        TcpOut::Data(d) => stack_call(stack, info, role, out, |s, r, e| s.data(r, side, d, e)),
        TcpOut::Gap(bytes) => {
            out.event(
                info,
                side,
                tcp_role,
                EventKind::Tcp(TcpEvent::Gap { bytes }),
            );
            stack_call(stack, info, role, out, |s, r, e| s.gap(r, side, bytes, e));
        }
        TcpOut::Mismatch { offset, len } => out.event(
            info,
            side,
            tcp_role,
            EventKind::Tcp(TcpEvent::OverlapMismatch { offset, len }),
        ),
        TcpOut::End => stack_call(stack, info, role, out, |s, r, e| s.end(r, side, e)),
    }
}

impl Conn {
    /// Flushes both directions, reports why the connection goes, and leaves
    /// a tombstone.
    fn release(&mut self, why: Release, out: &mut Out<'_>) {
        let info = self.info();
        let (tcp_role, role) = (self.tcp_role, &mut self.role);
        match &mut self.state {
            ConnState::Tcp { tcp, stack } => {
                tcp.flush(&mut |side, o| on_tcp(stack, &info, tcp_role, role, out, side, o));
            }
            ConnState::Plain { ended, stack, .. } => {
                for side in [Side::Initiator, Side::Responder] {
                    if !std::mem::replace(&mut ended[side], true) {
                        stack_call(stack, &info, role, out, |s, r, e| s.end(r, side, e));
                    }
                }
            }
            ConnState::Closed => return,
        }
        self.state = ConnState::Closed;
        let kind = match why {
            Release::Closed { reset } => TcpEvent::Close { reset },
            Release::Evicted(reason) => TcpEvent::Evicted { reason },
            Release::Finished => return,
        };
        out.event(&info, Side::Initiator, tcp_role, EventKind::Tcp(kind));
    }

    fn closed(&self) -> bool {
        matches!(self.state, ConnState::Closed)
    }

    /// Memory the connection holds now.
    #[inline]
    fn mem_now(&self) -> usize {
        match &self.state {
            ConnState::Tcp { tcp, stack } => tcp.mem() + stack.mem(),
            ConnState::Plain { stack, .. } => stack.mem(),
            ConnState::Closed => 0,
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

/// What [`Decoder::push_plain`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("connection {0} is not open for plaintext (never opened, closed or evicted)")]
    NotOpen(ConnId),
}

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

    /// Brings the memory of the connection at `key` up to date, and sheds
    /// the largest holders when the total passed the budget.
    fn account(&mut self, key: &Key, ts_ns: u64, sink: &mut dyn EventSink) {
        if let Some(c) = self.conns.get_mut(key) {
            let now = c.mem_now();
            self.mem_total = self.mem_total - c.mem + now;
            c.mem = now;
        }
        if self.mem_total > self.cfg.max_memory {
            self.shed_memory(ts_ns, sink);
        }
    }

    /// [`account`](Self::account) by connection id.
    fn account_id(&mut self, conn: ConnId, ts_ns: u64, sink: &mut dyn EventSink) {
        if let Some(key) = self.keys.get(&conn).copied() {
            self.account(&key, ts_ns, sink);
        }
    }

    /// Evicts the connections that hold most until a tenth of the budget is
    /// free again; each eviction is an event and a counter.
    fn shed_memory(&mut self, ts_ns: u64, sink: &mut dyn EventSink) {
        let target = self.cfg.max_memory - self.cfg.max_memory / 10;
        let mut by_size: Vec<(usize, ConnId, Key)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.mem > 0)
            .map(|(k, c)| (c.mem, c.id, *k))
            .collect();
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Out {
            ts_ns,
            stats: &mut self.stats,
            sink,
        };
        for (_, id, key) in by_size {
            if self.mem_total <= target {
                break;
            }
            if let Some(mut c) = self.conns.remove(&key) {
                self.keys.remove(&id);
                self.mem_total -= c.mem;
                c.release(Release::Evicted(EvictReason::MemoryBudget), &mut out);
            }
        }
    }

    /// Takes a connection out of the table (its memory with it).
    fn remove(&mut self, key: &Key) -> Option<Conn> {
        let c = self.conns.remove(key)?;
        self.keys.remove(&c.id);
        self.mem_total -= c.mem;
        Some(c)
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

    /// Ends the waits of FINs behind holes that are over.
    fn end_fin_waits(&mut self, ts_ns: u64, sink: &mut dyn EventSink) {
        while let Some(&(until, id, key)) = self.fin_waits.front() {
            if until >= self.now_ns {
                return;
            }
            self.fin_waits.pop_front();
            let Some(c) = self.conns.get_mut(&key).filter(|c| c.id == id) else {
                continue;
            };
            c.fin_wait_queued = false;
            let info = c.info();
            let (tcp_role, role) = (c.tcp_role, &mut c.role);
            let ConnState::Tcp { tcp, stack } = &mut c.state else {
                continue;
            };
            let mut out = Out {
                ts_ns,
                stats: &mut self.stats,
                sink,
            };
            let outcome = tcp.end_fin_waits(&mut |side, o| {
                on_tcp(stack, &info, tcp_role, role, &mut out, side, o)
            });
            if let Outcome::Closed { reset } = outcome {
                c.release(Release::Closed { reset }, &mut out);
            }
            self.account(&key, ts_ns, sink);
        }
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

    /// Opens a connection whose bytes arrive already decrypted and in order
    /// (TLS plaintext from hooked libraries), `client` → `server`; returns
    /// its id for [`push_plain`](Self::push_plain). An open plaintext
    /// connection with the same endpoints is returned as it is.
    pub fn open_plain(
        &mut self,
        iface: u32,
        client: SocketAddr,
        server: SocketAddr,
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> ConnId {
        self.last_ts_ns = self.last_ts_ns.max(ts_ns);
        self.advance_clock(ts_ns, sink);
        let key = key_of(Via::Plain, iface, client, server);
        if let Some(c) = self.conns.get(&key).filter(|c| !c.closed()) {
            return c.id;
        }
        self.remove(&key);
        let state = ConnState::Plain {
            next: PerSide::default(),
            ended: PerSide::default(),
            stack: Box::new(Stack::new(&self.cfg.proto)),
        };
        let role = Role::known(Side::Initiator);
        self.insert(key, client, server, role, state, ts_ns, sink)
    }

    /// In-order plaintext of `conn`'s `side` starting at stream `offset`.
    /// Bytes before what was already fed are counted as retransmitted and
    /// dropped; a jump ahead is a gap.
    pub fn push_plain(
        &mut self,
        conn: ConnId,
        side: Side,
        offset: u64,
        bytes: &[u8],
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> Result<(), PlainError> {
        let r = self.feed_plain(conn, side, offset, bytes, ts_ns, sink);
        self.account_id(conn, ts_ns, sink);
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn feed_plain(
        &mut self,
        conn: ConnId,
        side: Side,
        offset: u64,
        bytes: &[u8],
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> Result<(), PlainError> {
        self.last_ts_ns = self.last_ts_ns.max(ts_ns);
        self.advance_clock(ts_ns, sink);
        let Decoder {
            conns,
            keys,
            stats,
            now_ns,
            ..
        } = self;
        let c = keys
            .get(&conn)
            .and_then(|k| conns.get_mut(k))
            .ok_or(PlainError::NotOpen(conn))?;
        let info = c.info();
        let (tcp_role, role) = (c.tcp_role, &mut c.role);
        let ConnState::Plain { next, ended, stack } = &mut c.state else {
            return Err(PlainError::NotOpen(conn));
        };
        if ended[side] {
            stats.flow.bytes_after_end += bytes.len() as u64;
            return Ok(());
        }
        c.last_ns = *now_ns;
        let mut out = Out { ts_ns, stats, sink };
        let expected = next[side];
        let mut data = bytes;
        if offset > expected {
            let missing = offset - expected;
            out.event(
                &info,
                side,
                tcp_role,
                EventKind::Tcp(TcpEvent::Gap { bytes: missing }),
            );
            stack_call(stack, &info, role, &mut out, |s, r, e| {
                s.gap(r, side, missing, e)
            });
        } else {
            let dup = (expected - offset).min(data.len() as u64);
            out.stats.flow.retransmitted_bytes += dup;
            data = &data[dup as usize..];
        }
        next[side] = next[side].max(offset + bytes.len() as u64);
        if !data.is_empty() {
            stack_call(stack, &info, role, &mut out, |s, r, e| {
                s.data(r, side, data, e)
            });
        }
        Ok(())
    }

    /// `side` of a plaintext connection ended; once both did, the
    /// connection closes.
    pub fn end_plain(
        &mut self,
        conn: ConnId,
        side: Side,
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> Result<(), PlainError> {
        let r = self.close_plain(conn, side, ts_ns, sink);
        self.account_id(conn, ts_ns, sink);
        r
    }

    fn close_plain(
        &mut self,
        conn: ConnId,
        side: Side,
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> Result<(), PlainError> {
        let Decoder {
            conns, keys, stats, ..
        } = self;
        let c = keys
            .get(&conn)
            .and_then(|k| conns.get_mut(k))
            .ok_or(PlainError::NotOpen(conn))?;
        let info = c.info();
        let role = &mut c.role;
        let ConnState::Plain { ended, stack, .. } = &mut c.state else {
            return Err(PlainError::NotOpen(conn));
        };
        let mut out = Out { ts_ns, stats, sink };
        if !std::mem::replace(&mut ended[side], true) {
            stack_call(stack, &info, role, &mut out, |s, r, e| s.end(r, side, e));
        }
        if ended.initiator && ended.responder {
            c.release(Release::Closed { reset: false }, &mut out);
        }
        Ok(())
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

    /// Moves capture time on: ends FIN waits that are over, and drops
    /// connections idle for longer than the timeout (checked at most every
    /// tenth of the timeout of capture time).
    fn advance_clock(&mut self, ts_ns: u64, sink: &mut dyn EventSink) {
        if ts_ns > self.now_ns {
            self.now_ns = ts_ns;
        }
        self.end_fin_waits(ts_ns, sink);
        let every = (self.cfg.flow.idle_timeout_ns / 10).max(1);
        if self.now_ns.saturating_sub(self.last_sweep_ns) < every {
            return;
        }
        self.last_sweep_ns = self.now_ns;
        let now = self.now_ns;
        let timeout = self.cfg.flow.idle_timeout_ns;
        let mut idle: Vec<(u64, ConnId, Key)> = self
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.last_ns) > timeout)
            .map(|(k, c)| (c.last_ns, c.id, *k))
            .collect();
        idle.sort();
        let mut out = Out {
            ts_ns,
            stats: &mut self.stats,
            sink,
        };
        for (_, id, k) in idle {
            if let Some(mut c) = self.conns.remove(&k) {
                self.keys.remove(&id);
                self.mem_total -= c.mem;
                c.release(Release::Evicted(EvictReason::IdleTimeout), &mut out);
            }
        }
    }

    /// Makes room: drops closed tombstones first, then the least recently
    /// active connections, about 1% of the table at a time so that a full
    /// table does not cost a scan per new connection.
    fn evict_batch(&mut self, ts_ns: u64, sink: &mut dyn EventSink) {
        let batch = (self.cfg.flow.max_flows / 100).max(1);
        let mut order: Vec<(bool, u64, ConnId, Key)> = self
            .conns
            .iter()
            .map(|(k, c)| (!c.closed(), c.last_ns, c.id, *k))
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
        let mut out = Out {
            ts_ns,
            stats: &mut self.stats,
            sink,
        };
        for (_, _, id, k) in order {
            if let Some(mut c) = self.conns.remove(&k) {
                self.keys.remove(&id);
                self.mem_total -= c.mem;
                c.release(Release::Evicted(EvictReason::TableFull), &mut out);
            }
        }
    }
}

/// The one place events are counted.
fn count(stats: &mut DecodeStats, kind: &EventKind<'_>) {
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
        EventKind::Http(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Direction;
    use crate::source::tcp_flags::{ACK, FIN, RST, SYN};
    use crate::source::Checksum;

    fn seg<'a>(from: &str, to: &str, ts: u64, seq: u32, flags: u8, p: &'a [u8]) -> Segment<'a> {
        Segment {
            iface: 0,
            ts_ns: ts,
            src: from.parse().unwrap(),
            dst: to.parse().unwrap(),
            seq,
            ack: 0,
            flags,
            window: 0,
            payload: p,
            checksum: Checksum::Good,
        }
    }

    /// (name, src, dir, ts) of every event.
    fn collect(dec: &mut Decoder, segs: &[Segment<'_>]) -> Vec<(String, String, Direction, u64)> {
        let mut v = Vec::new();
        let mut sink =
            |e: &Event<'_>| v.push((e.kind.name().to_string(), e.src.to_string(), e.dir, e.ts_ns));
        for s in segs {
            dec.push(s, &mut sink);
        }
        dec.finish(&mut sink);
        v
    }

    #[test]
    fn flow_facts_become_events_with_addresses_and_time() {
        let (c, s) = ("10.0.0.1:1000", "10.0.0.2:80");
        let mut dec = Decoder::new(DecodeConfig::default());
        let evs = collect(
            &mut dec,
            &[
                seg(c, s, 10, 0, SYN, b""),
                seg(s, c, 11, 0, SYN | ACK, b""),
                seg(c, s, 12, 5, ACK, b"xy"), // ahead of a 4-byte hole
                seg(c, s, 13, 5, ACK, b"zz"), // differs from the held copy
                seg(s, c, 14, 1, RST, b""),   // hole flushed as a gap
            ],
        );
        // The session may add its own view of the garbage (violations); only
        // the flow-level events are checked here.
        let evs: Vec<_> = evs
            .into_iter()
            .filter(|e| e.0 != "violation" && e.0 != "resync")
            .collect();
        let names: Vec<&str> = evs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["overlap_mismatch", "gap", "conn_close"]);
        assert_eq!(evs[0].1, c);
        assert_eq!(evs[0].2, Direction::ClientToServer);
        assert_eq!(evs[1].3, 14, "time of the segment that caused it");
        let st = dec.stats();
        assert_eq!(st.flow.gaps, 1);
        assert_eq!(st.flow.gap_bytes, 4);
        assert_eq!(st.flow.overlap_mismatches, 1);
        assert_eq!(st.flow.resets, 1);
    }

    #[test]
    fn eviction_is_reported_and_midstream_direction_is_unknown() {
        let cfg = DecodeConfig {
            flow: FlowConfig {
                idle_timeout_ns: 100,
                ..FlowConfig::default()
            },
            ..DecodeConfig::default()
        };
        let mut dec = Decoder::new(cfg);
        let evs = collect(
            &mut dec,
            &[
                seg("1.1.1.1:1", "2.2.2.2:2", 0, 7, ACK, b"\x00"),
                seg("3.3.3.3:3", "2.2.2.2:2", 1000, 7, ACK, b"\x00"),
            ],
        );
        let ev = evs.iter().find(|e| e.0 == "flow_evicted").expect("evicted");
        assert_eq!(ev.2, Direction::Unknown);
        assert_eq!(dec.stats().evictions, 1);
    }

    /// An upgrade request and its 101 (RFC 6455's sample key and accept).
    const REQ: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    const A: &str = "10.0.0.1:40000";
    const B: &str = "10.0.0.2:80";

    /// (event name, conn, src) of every event of `segs`, then of `finish`
    /// when `finish` is set.
    fn events(
        dec: &mut Decoder,
        segs: &[Segment<'_>],
        finish: bool,
    ) -> Vec<(String, ConnId, String)> {
        let mut v = Vec::new();
        let mut sink = |e: &Event<'_>| {
            let what = match &e.kind {
                EventKind::Tcp(TcpEvent::Evicted { reason }) => {
                    format!("evicted {}", reason.as_str())
                }
                EventKind::Tcp(TcpEvent::Gap { bytes }) => format!("gap {bytes}"),
                EventKind::Tcp(TcpEvent::Close { reset }) => format!("close reset={reset}"),
                k => k.name().to_string(),
            };
            v.push((what, e.conn, e.src.to_string()))
        };
        for s in segs {
            dec.push(s, &mut sink);
        }
        if finish {
            dec.finish(&mut sink);
        }
        v
    }

    #[test]
    fn tombstone_swallows_late_segments_and_a_new_syn_opens_a_new_connection() {
        let mut dec = Decoder::new(DecodeConfig::default());
        let evs = events(
            &mut dec,
            &[
                seg(A, B, 1, 100, SYN, b""),
                seg(B, A, 2, 5000, SYN | ACK, b""),
                seg(A, B, 3, 101, ACK | FIN, b""),
                seg(B, A, 4, 5001, ACK | FIN, b""),
                seg(A, B, 5, 101, ACK, b"hello"), // late: on the tombstone
            ],
            false,
        );
        assert_eq!(evs, [("close reset=false".to_string(), 1, A.to_string())]);
        let st = dec.stats();
        assert_eq!((st.flow.connections, st.flow.closed), (1, 1));
        assert_eq!(st.flow.bytes_after_end, 5);
        let evs = events(
            &mut dec,
            &[seg(A, B, 6, 9000, SYN, b""), seg(A, B, 7, 9001, RST, b"")],
            false,
        );
        assert_eq!(evs, [("close reset=true".to_string(), 2, A.to_string())]);
        assert_eq!(dec.stats().flow.connections, 2);
        assert_eq!(dec.stats().flow.resets, 1);
    }

    #[test]
    fn pure_acks_of_unknown_connections_are_not_tracked() {
        let mut dec = Decoder::new(DecodeConfig::default());
        events(
            &mut dec,
            &[
                seg(B, A, 1, 777_777, ACK, b"server first"),
                seg("1.1.1.1:1", "2.2.2.2:2", 2, 5, ACK, b""),
            ],
            false,
        );
        assert_eq!(dec.stats().flow.connections, 1);
        assert_eq!(dec.stats().flow.untracked_segments, 1);
    }

    #[test]
    fn eviction_when_table_full_takes_the_least_recently_active() {
        let cfg = DecodeConfig {
            flow: FlowConfig {
                max_flows: 2,
                ..FlowConfig::default()
            },
            ..DecodeConfig::default()
        };
        let mut dec = Decoder::new(cfg);
        let evs = events(
            &mut dec,
            &[
                seg("1.0.0.1:1", B, 1, 1, ACK, b"a"),
                seg("1.0.0.2:1", B, 2, 1, ACK, b"b"),
                seg("1.0.0.1:1", B, 3, 2, ACK, b"c"), // conn 1 now most recent
                seg("1.0.0.3:1", B, 4, 1, ACK, b"d"),
            ],
            false,
        );
        let evicted: Vec<ConnId> = evs
            .iter()
            .filter(|e| e.0 == "evicted flow table full")
            .map(|e| e.1)
            .collect();
        assert_eq!(evicted, [2]);
        assert_eq!(dec.len(), 2);
        assert_eq!(dec.stats().flow.evicted_full, 1);
    }

    #[test]
    fn idle_timeout_by_capture_time_flushes_holes() {
        let cfg = DecodeConfig {
            flow: FlowConfig {
                idle_timeout_ns: 10_000,
                ..FlowConfig::default()
            },
            ..DecodeConfig::default()
        };
        let mut dec = Decoder::new(cfg);
        let evs = events(
            &mut dec,
            &[
                seg(A, B, 1_000_000_000, 1, ACK, b"a"),
                seg(A, B, 1_000_000_000, 5, ACK, b"e"), // hole: flushed on eviction
                seg("9.9.9.9:9", B, 1_000_020_000, 1, ACK, b"x"),
            ],
            false,
        );
        assert!(
            evs.contains(&("gap 3".to_string(), 1, A.to_string())),
            "{evs:?}"
        );
        assert!(evs.contains(&("evicted idle timeout".to_string(), 1, A.to_string())));
        assert_eq!(dec.stats().flow.evicted_idle, 1);
        assert_eq!(dec.len(), 1);
    }

    #[test]
    fn protocol_counters_come_from_the_events() {
        let req = REQ;
        let resp = RESP;
        // A text message "a", a ping, and a frame with reserved opcode 3.
        let frames = [0x81, 0x01, b'a', 0x89, 0x00, 0x83, 0x00];
        let mut dec = Decoder::new(DecodeConfig::default());
        let mut names = Vec::new();
        let segs = [
            seg(A, B, 1, 0, SYN, b""),
            seg(B, A, 2, 0, SYN | ACK, b""),
            seg(A, B, 3, 1, ACK, req),
            seg(B, A, 4, 1, ACK, resp),
            seg(B, A, 5, 1 + resp.len() as u32, ACK, &frames),
        ];
        for s in &segs {
            dec.push(s, &mut |e: &Event<'_>| names.push(e.kind.name()));
        }
        let st = dec.stats();
        assert_eq!(
            (st.messages, st.control_frames, st.violations),
            (1, 1, 1),
            "{names:?}"
        );
        assert_eq!((st.ws_opens, st.message_bytes), (1, 1));
    }

    #[test]
    fn plaintext_source_decodes_like_segments() {
        let req = REQ;
        let resp = RESP;
        let masked = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let server = [0x81, 0x02, b'o', b'k'];
        let mut dec = Decoder::new(DecodeConfig::default());
        let mut got = Vec::new();
        let mut sink = |e: &Event<'_>| {
            let text = match &e.kind {
                EventKind::Ws(WsEvent::Message { payload, .. }) => {
                    String::from_utf8_lossy(payload).into_owned()
                }
                EventKind::Tcp(TcpEvent::Gap { bytes }) => bytes.to_string(),
                _ => String::new(),
            };
            got.push((e.kind.name(), e.conn, e.dir, text))
        };
        let (c, s) = (A.parse().unwrap(), B.parse().unwrap());
        let id = dec.open_plain(0, c, s, 10, &mut sink);
        assert_eq!(
            dec.open_plain(0, c, s, 10, &mut sink),
            id,
            "same endpoints, same connection"
        );
        dec.push_plain(id, Side::Initiator, 0, req, 11, &mut sink)
            .unwrap();
        dec.push_plain(id, Side::Responder, 0, resp, 12, &mut sink)
            .unwrap();
        // A repeat of what was fed, then the frame: only the frame counts.
        dec.push_plain(id, Side::Initiator, 0, req, 13, &mut sink)
            .unwrap();
        dec.push_plain(
            id,
            Side::Initiator,
            req.len() as u64,
            &masked,
            13,
            &mut sink,
        )
        .unwrap();
        // A jump ahead is a gap; the server's next frame comes after it.
        let at = resp.len() as u64 + 3;
        dec.push_plain(id, Side::Responder, at, &server, 14, &mut sink)
            .unwrap();
        dec.end_plain(id, Side::Initiator, 15, &mut sink).unwrap();
        dec.end_plain(id, Side::Responder, 15, &mut sink).unwrap();
        assert_eq!(
            dec.push_plain(id, Side::Initiator, 0, b"x", 16, &mut sink),
            Err(PlainError::NotOpen(id))
        );
        let c2s = Direction::ClientToServer;
        let s2c = Direction::ServerToClient;
        assert_eq!(
            got,
            [
                ("http_request", id, c2s, String::new()),
                ("ws_open", id, s2c, String::new()),
                ("ws_message", id, c2s, "hi".to_string()),
                ("gap", id, s2c, "3".to_string()),
                ("resync", id, s2c, String::new()),
                ("ws_message", id, s2c, "ok".to_string()),
                ("conn_close", id, c2s, String::new()),
            ]
        );
        assert_eq!(dec.stats().flow.retransmitted_bytes, req.len() as u64);
    }

    #[test]
    fn a_syn_that_does_not_fit_starts_a_new_connection() {
        for new_isn in [50u32, 1_000_000] {
            let mut dec = Decoder::new(DecodeConfig::default());
            let mut evs = events(
                &mut dec,
                &[
                    seg(A, B, 1, 100, SYN, b""),
                    seg(A, B, 2, 100, SYN, b""), // a retransmitted SYN fits
                    seg(B, A, 3, 7000, SYN | ACK, b""),
                    seg(A, B, 4, 101, ACK, REQ),
                    // The old connection was never seen closing.
                    seg(A, B, 5, new_isn, SYN, b""),
                    seg(B, A, 6, 9000, SYN | ACK, b""),
                    seg(A, B, 7, new_isn + 1, ACK, REQ),
                ],
                true,
            );
            evs.retain(|e| e.0 != "violation");
            assert_eq!(
                evs,
                [
                    ("http_request".to_string(), 1, A.to_string()),
                    (
                        "evicted endpoints reused by a new connection".to_string(),
                        1,
                        A.to_string()
                    ),
                    ("http_request".to_string(), 2, A.to_string()),
                ],
                "new ISN {new_isn}"
            );
            let st = dec.stats();
            assert_eq!((st.flow.connections, st.flow.evicted_reused), (2, 1));
            assert_eq!((st.flow.gaps, st.flow.retransmitted_bytes), (0, 0));
        }
    }

    #[test]
    fn a_fin_behind_a_hole_closes_after_a_bounded_wait() {
        let t0 = 1_000_000_000;
        let mut dec = Decoder::new(DecodeConfig::default());
        let evs = events(
            &mut dec,
            &[
                seg(A, B, t0, 0, SYN, b""),
                seg(B, A, t0, 0, SYN | ACK, b""),
                seg(A, B, t0, 1, ACK, b"ab"),
                seg(A, B, t0, 5, ACK | FIN, b"ef"), // bytes 2..4 never come
                seg(B, A, t0, 1, ACK | FIN, b""),
                // Within the wait: nothing yet.
                seg("9.9.9.9:9", B, t0 + FIN_HOLE_WAIT_NS, 1, ACK, b"x"),
            ],
            false,
        );
        assert!(evs.iter().all(|e| e.1 != 1), "{evs:?}");
        let evs = events(
            &mut dec,
            &[seg("9.9.9.9:9", B, t0 + FIN_HOLE_WAIT_NS + 1, 2, ACK, b"y")],
            false,
        );
        let conn1: Vec<&str> = evs
            .iter()
            .filter(|e| e.1 == 1 && e.0 != "violation") // "ab??ef" is no WebSocket
            .map(|e| e.0.as_str())
            .collect();
        assert_eq!(conn1, ["gap 2", "close reset=false"], "{evs:?}");
        assert_eq!(dec.stats().flow.closed, 1);
    }

    #[test]
    fn memory_stays_under_the_budget_by_evicting_the_largest_holders() {
        // 40 connections each hold 1 MiB of out-of-order data (a hole at
        // the start), then 40 more each hold a 1 MiB partial message; the
        // budget is 8 MiB.
        let budget = 8 << 20;
        let cfg = DecodeConfig {
            max_memory: budget,
            ..DecodeConfig::default()
        };
        let mut dec = Decoder::new(cfg);
        let mut evicted = 0;
        let mut sink = |e: &Event<'_>| {
            if let EventKind::Tcp(TcpEvent::Evicted { reason }) = e.kind {
                assert_eq!(reason.as_str(), "memory budget");
                evicted += 1;
            }
        };
        let chunk = vec![0x41u8; 64 << 10];
        let mut frame_head = vec![0x82, 0x7f];
        frame_head.extend((4u64 << 20).to_be_bytes()); // a 4 MiB binary frame
        for i in 0..80u32 {
            let client = format!("10.1.{}.{}:5000", i / 250, i % 250 + 1);
            let t = u64::from(i) * 1000;
            dec.push(&seg(&client, B, t, 0, SYN, b""), &mut sink);
            dec.push(&seg(B, &client, t, 0, SYN | ACK, b""), &mut sink);
            if i < 40 {
                // Bytes 0..10 never come: everything after is held.
                for k in 0..16u32 {
                    let seq = 11 + k * chunk.len() as u32;
                    dec.push(&seg(&client, B, t, seq, ACK, &chunk), &mut sink);
                    assert!(dec.memory() <= budget, "{} > {budget}", dec.memory());
                }
            } else {
                // After a handshake, a 4 MiB message of which 1 MiB came.
                dec.push(&seg(&client, B, t, 1, ACK, REQ), &mut sink);
                dec.push(&seg(B, &client, t, 1, ACK, RESP), &mut sink);
                let at = 1 + RESP.len() as u32;
                dec.push(&seg(B, &client, t, at, ACK, &frame_head), &mut sink);
                for k in 0..16u32 {
                    let seq = at + frame_head.len() as u32 + k * chunk.len() as u32;
                    dec.push(&seg(B, &client, t, seq, ACK, &chunk), &mut sink);
                    assert!(dec.memory() <= budget, "{} > {budget}", dec.memory());
                }
            }
        }
        let st = dec.stats();
        assert!(st.flow.evicted_memory > 0);
        assert_eq!(st.flow.evicted_memory, evicted);
        // 80 MiB held in all, at most 8 MiB at a time.
        assert!(evicted >= 70, "{evicted} evictions");
    }
}
