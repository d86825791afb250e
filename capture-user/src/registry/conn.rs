//! One connection of the registry and the one path its events take: the
//! table key, the connection's state (TCP, plaintext, closed), how a stack
//! call's output becomes events and role facts, and how a connection is
//! released (flushed, with the event saying why).

use std::net::SocketAddr;

use super::stats::{count, DecodeStats};
use crate::event::{ConnId, Event, EventKind, EventSink, EvictReason, TcpEvent};
use crate::flow::tcp::{TcpConn, TcpOut};
use crate::proto::{Emit, Stack};
use crate::side::{PerSide, Role, Side};

/// Which source feeds a connection: two sources never share an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Via {
    Tcp,
    Plain,
}

/// Source, interface and both endpoints (in either order).
pub(super) type Key = (Via, u32, SocketAddr, SocketAddr);

pub(super) fn key_of(via: Via, iface: u32, a: SocketAddr, b: SocketAddr) -> Key {
    if a <= b {
        (via, iface, a, b)
    } else {
        (via, iface, b, a)
    }
}

/// Where a connection is in its life, with the state that life needs.
pub(super) enum ConnState {
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
pub(super) struct Conn {
    pub(super) id: ConnId,
    /// Sender of each side's bytes.
    pub(super) addrs: PerSide<SocketAddr>,
    /// What TCP itself told about the client (the SYN); TCP-level events
    /// (gaps, mismatches, close, eviction) are directed by it.
    pub(super) tcp_role: Role,
    /// Everything learned so far (SYN, HTTP heads, masking, the 101);
    /// protocol events are directed by it.
    pub(super) role: Role,
    pub(super) last_ns: u64,
    pub(super) state: ConnState,
    /// In [`Decoder::fin_waits`].
    pub(super) fin_wait_queued: bool,
    /// Memory it held when last accounted (part of `Decoder::mem_total`).
    pub(super) mem: usize,
}

/// True when TCP reassembly holds a FIN behind a hole.
pub(super) fn flow_fin_waits(state: &ConnState) -> bool {
    matches!(state, ConnState::Tcp { tcp, .. } if tcp.fin_waits())
}

/// Why a connection leaves the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Release {
    Closed {
        reset: bool,
    },
    Evicted(EvictReason),
    /// End of input: no event.
    Finished,
}

/// Where an event goes: time of the input that caused it, counters, sink.
pub(super) struct Out<'a> {
    pub(super) ts_ns: u64,
    pub(super) stats: &'a mut DecodeStats,
    pub(super) sink: &'a mut dyn EventSink,
}

impl Out<'_> {
    pub(super) fn event(&mut self, conn: &ConnInfo, side: Side, role: Role, kind: EventKind<'_>) {
        self.event_via(conn, side, role, kind, conn.via);
    }

    pub(super) fn event_via(
        &mut self,
        conn: &ConnInfo,
        side: Side,
        role: Role,
        kind: EventKind<'_>,
        via: crate::event::Via,
    ) {
        let ev = Event {
            ts_ns: self.ts_ns,
            conn: conn.id,
            src: conn.addrs[side],
            dst: conn.addrs[side.other()],
            dir: role.dir(side),
            via,
            kind,
        };
        count(self.stats, &ev.kind);
        self.sink.event(&ev);
    }
}

/// The parts of a connection an event needs (borrowed apart from its state).
pub(super) struct ConnInfo {
    pub(super) id: ConnId,
    pub(super) addrs: PerSide<SocketAddr>,
    /// Hooked TLS plaintext or the wire (what the stack decrypts with a
    /// key log it marks itself: [`Emit::Decrypted`]).
    pub(super) via: crate::event::Via,
}

impl Conn {
    pub(super) fn info(&self) -> ConnInfo {
        ConnInfo {
            id: self.id,
            addrs: self.addrs.clone(),
            via: match &self.state {
                ConnState::Plain { .. } => crate::event::Via::Hooked,
                _ => crate::event::Via::Wire,
            },
        }
    }
}

/// Runs one stack call, applying role facts and emitting events.
pub(super) fn stack_call(
    stack: &mut Stack,
    info: &ConnInfo,
    role: &mut Role,
    out: &mut Out<'_>,
    call: impl FnOnce(&mut Stack, Role, &mut dyn FnMut(Emit<'_>)),
) {
    let r = *role;
    call(stack, r, &mut |e| match e {
        Emit::Event(side, kind) => out.event(info, side, *role, kind),
        Emit::Decrypted(side, kind) => {
            out.event_via(info, side, *role, kind, crate::event::Via::Keylog)
        }
        Emit::Role(fact) => role.learn(fact),
        Emit::Skipped(_, n) => out.stats.skipped_bytes += n,
    });
}

/// What TCP reassembly hands on, for one connection: bytes into its stack,
/// facts out as events.
pub(super) fn on_tcp(
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
    pub(super) fn release(&mut self, why: Release, out: &mut Out<'_>) {
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

    pub(super) fn closed(&self) -> bool {
        matches!(self.state, ConnState::Closed)
    }

    /// Memory the connection holds now.
    #[inline]
    pub(super) fn mem_now(&self) -> usize {
        match &self.state {
            ConnState::Tcp { tcp, stack } => tcp.mem() + stack.mem(),
            ConnState::Plain { stack, .. } => stack.mem(),
            ConnState::Closed => 0,
        }
    }
}
