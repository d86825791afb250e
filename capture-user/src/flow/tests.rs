//! Unit tests of the flow table: one per reassembly branch.

use super::*;

const A: &str = "10.0.0.1:40000";
const B: &str = "10.0.0.2:80";

/// A compact record of flow events, owned so tests can compare.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Ev {
    Open(ConnId, bool),
    Data(ConnId, Side, Vec<u8>),
    Gap(ConnId, Side, u64),
    Mismatch(ConnId, Side, u64, u64),
    End(ConnId, Side),
    Rel(ConnId, Release),
}

struct T {
    table: FlowTable,
    evs: Vec<Ev>,
    ts: u64,
}

impl T {
    fn new(cfg: FlowConfig) -> Self {
        T {
            table: FlowTable::new(cfg),
            evs: Vec::new(),
            ts: 1_000_000_000,
        }
    }

    fn seg(&mut self, from: &str, to: &str, seq: u32, flags: u8, data: &[u8]) {
        let s = Segment {
            iface: 0,
            ts_ns: self.ts,
            src: from.parse().unwrap(),
            dst: to.parse().unwrap(),
            seq,
            ack: 0,
            flags,
            window: 0,
            payload: data,
        };
        let evs = &mut self.evs;
        self.table.push(&s, &mut |e| evs.push(conv(e)));
    }

    fn finish(&mut self) {
        let evs = &mut self.evs;
        self.table.finish(&mut |e| evs.push(conv(e)));
    }

    /// All data of one side, with gaps as `?` bytes.
    fn stream(&self, side: Side) -> Vec<u8> {
        let mut v = Vec::new();
        for e in &self.evs {
            match e {
                Ev::Data(_, s, d) if *s == side => v.extend_from_slice(d),
                Ev::Gap(_, s, n) if *s == side => v.extend(std::iter::repeat_n(b'?', *n as usize)),
                _ => {}
            }
        }
        v
    }

    fn has(&self, e: &Ev) -> bool {
        self.evs.contains(e)
    }
}

fn conv(e: FlowEvent<'_>) -> Ev {
    match e.kind {
        FlowEventKind::Open { initiator_known } => Ev::Open(e.conn, initiator_known),
        FlowEventKind::Data(d) => Ev::Data(e.conn, e.side, d.to_vec()),
        FlowEventKind::Gap(n) => Ev::Gap(e.conn, e.side, n),
        FlowEventKind::OverlapMismatch { offset, len } => Ev::Mismatch(e.conn, e.side, offset, len),
        FlowEventKind::End => Ev::End(e.conn, e.side),
        FlowEventKind::Released(r) => Ev::Rel(e.conn, r),
    }
}

use tcp_flags::{ACK, FIN, RST, SYN};
use Side::{Initiator as I, Responder as R};

fn handshake(t: &mut T, isn_a: u32, isn_b: u32) {
    t.seg(A, B, isn_a, SYN, b"");
    t.seg(B, A, isn_b, SYN | ACK, b"");
    t.seg(A, B, isn_a.wrapping_add(1), ACK, b"");
}

#[test]
fn in_order_both_directions_and_fin_close() {
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 100, 5000);
    t.seg(A, B, 101, ACK, b"hello");
    t.seg(B, A, 5001, ACK, b"world");
    t.seg(A, B, 106, ACK | FIN, b"!");
    t.seg(B, A, 5006, ACK | FIN, b"");
    assert_eq!(t.evs[0], Ev::Open(1, true));
    assert_eq!(t.stream(I), b"hello!");
    assert_eq!(t.stream(R), b"world");
    assert!(t.has(&Ev::End(1, I)));
    assert!(t.has(&Ev::End(1, R)));
    assert_eq!(
        t.evs.last(),
        Some(&Ev::Rel(1, Release::Closed { reset: false }))
    );
    // Late retransmission on the tombstone: swallowed, no new connection.
    t.seg(A, B, 101, ACK, b"hello");
    assert_eq!(t.table.stats().connections, 1);
    // A new SYN on the same endpoints is a new connection.
    t.seg(A, B, 9000, SYN, b"");
    assert!(t.has(&Ev::Open(2, true)));
}

#[test]
fn sequence_wraparound() {
    let mut t = T::new(FlowConfig::default());
    let isn = u32::MAX - 3;
    handshake(&mut t, isn, 7);
    t.seg(A, B, isn.wrapping_add(1), ACK, b"abcdef"); // crosses 2^32
    t.seg(A, B, isn.wrapping_add(10), ACK, b"jk"); // ahead of a hole
    t.seg(A, B, isn.wrapping_add(7), ACK, b"ghi");
    assert_eq!(t.stream(I), b"abcdefghijk");
    assert_eq!(t.table.stats().out_of_order_segments, 1);
}

#[test]
fn reorder_is_held_then_delivered() {
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 0, 0);
    t.seg(A, B, 7, ACK, b"ghi");
    t.seg(A, B, 4, ACK, b"def");
    assert_eq!(t.stream(I), b"");
    assert_eq!(
        t.table.flows.values().next().unwrap().halves[0].held_bytes(),
        6
    );
    t.seg(A, B, 1, ACK, b"abc");
    assert_eq!(t.stream(I), b"abcdefghi");
}

#[test]
fn duplicates_are_dropped() {
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 0, 0);
    t.seg(A, B, 1, ACK, b"abc");
    t.seg(A, B, 1, ACK, b"abc");
    t.seg(A, B, 2, ACK, b"bcd"); // partial overlap with delivered bytes
    t.seg(A, B, 8, ACK, b"hi");
    t.seg(A, B, 8, ACK, b"hi"); // duplicate of held bytes
    t.seg(A, B, 5, ACK, b"efg");
    assert_eq!(t.stream(I), b"abcdefghi");
    assert_eq!(t.table.stats().retransmitted_bytes, 3 + 2 + 2);
    assert_eq!(t.table.stats().overlap_mismatches, 0);
}

#[test]
fn overlap_that_differs_first_copy_wins() {
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 0, 0);
    t.seg(A, B, 5, ACK, b"EFG"); // held first
    t.seg(A, B, 4, ACK, b"dXYZh"); // overlaps held bytes with other content
    assert!(t.has(&Ev::Mismatch(1, I, 4, 3)));
    t.seg(A, B, 1, ACK, b"abcdefgh"); // in-order tail overlaps: held wins again
    assert_eq!(t.stream(I), b"abcdEFGh");
    assert_eq!(t.table.stats().overlap_mismatches, 2);
}

#[test]
fn gap_when_cap_exceeded() {
    let cfg = FlowConfig {
        max_held: 100,
        ..FlowConfig::default()
    };
    let mut t = T::new(cfg);
    handshake(&mut t, 0, 0);
    t.seg(A, B, 1, ACK, b"ab");
    t.seg(A, B, 13, ACK, &[b'x'; 30]); // hole of 10 at offset 2; cost 94 <= 100
    assert_eq!(t.stream(I), b"ab");
    t.seg(A, B, 43, ACK, b"yy"); // cost passes the cap: hole skipped
    assert!(t.has(&Ev::Gap(1, I, 10)));
    let mut want = b"ab??????????".to_vec();
    want.extend([b'x'; 30]);
    want.extend(b"yy");
    assert_eq!(t.stream(I), want);
    assert_eq!(t.table.stats().gaps_at_cap, 1);
    // The late copy of the hole is now a retransmission.
    t.seg(A, B, 3, ACK, b"0123456789");
    assert_eq!(t.stream(I).len(), want.len());
}

#[test]
fn rst_closes_and_flushes_holes() {
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 0, 0);
    t.seg(A, B, 1, ACK, b"ab");
    t.seg(A, B, 5, ACK, b"ef");
    t.seg(B, A, 1, RST, b"");
    assert_eq!(t.stream(I), b"ab??ef");
    assert!(t.has(&Ev::End(1, I)));
    assert!(t.has(&Ev::End(1, R)));
    assert_eq!(
        t.evs.last(),
        Some(&Ev::Rel(1, Release::Closed { reset: true }))
    );
    assert_eq!(t.table.stats().resets, 1);
}

#[test]
fn fin_waits_for_hole_then_finish_declares_gap() {
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 0, 0);
    t.seg(A, B, 1, ACK, b"ab");
    t.seg(A, B, 5, ACK | FIN, b"ef");
    assert!(!t.has(&Ev::End(1, I)));
    t.seg(A, B, 3, ACK, b"cd"); // the retransmission fills the hole
    assert_eq!(t.stream(I), b"abcdef");
    assert!(t.has(&Ev::End(1, I)));
    // Data beyond the FIN is ignored.
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 0, 0);
    t.seg(A, B, 1, ACK | FIN, b"ab");
    t.seg(A, B, 1, ACK, b"abcd");
    assert_eq!(t.stream(I), b"ab");
    // A hole before the FIN that never fills: gap at end of input.
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 0, 0);
    t.seg(A, B, 5, ACK | FIN, b"ef");
    t.finish();
    assert_eq!(t.stream(I), b"????ef");
    assert!(t.has(&Ev::Rel(1, Release::Finished)));
}

#[test]
fn fin_without_data_after_hole() {
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 0, 0);
    t.seg(A, B, 1, ACK, b"ab");
    t.seg(A, B, 6, ACK | FIN, b""); // FIN at offset 5: bytes 2..5 never seen
    t.finish();
    assert_eq!(t.stream(I), b"ab???");
}

#[test]
fn midstream_pickup() {
    let mut t = T::new(FlowConfig::default());
    t.seg(B, A, 777_777, ACK, b"server first");
    t.seg(A, B, 123, ACK, b"client");
    assert_eq!(t.evs[0], Ev::Open(1, false));
    // The first sender is taken as initiator when no SYN was seen.
    assert_eq!(t.stream(I), b"server first");
    assert_eq!(t.stream(R), b"client");
    // Pure ACKs of unknown connections are not tracked.
    t.seg("1.1.1.1:1", "2.2.2.2:2", 5, ACK, b"");
    assert_eq!(t.table.stats().connections, 2 - 1);
    assert_eq!(t.table.stats().untracked_segments, 1);
}

#[test]
fn syn_ack_seen_without_syn() {
    let mut t = T::new(FlowConfig::default());
    t.seg(B, A, 50, SYN | ACK, b"");
    t.seg(A, B, 10, ACK, b"req");
    t.seg(B, A, 51, ACK, b"resp");
    assert_eq!(t.evs[0], Ev::Open(1, true));
    assert_eq!(t.stream(I), b"req");
    assert_eq!(t.stream(R), b"resp");
}

#[test]
fn eviction_when_table_full() {
    let cfg = FlowConfig {
        max_flows: 2,
        ..FlowConfig::default()
    };
    let mut t = T::new(cfg);
    t.seg("1.0.0.1:1", B, 1, ACK, b"a");
    t.ts += 1;
    t.seg("1.0.0.2:1", B, 1, ACK, b"b");
    t.ts += 1;
    t.seg("1.0.0.1:1", B, 2, ACK, b"c"); // conn 1 now most recent
    t.ts += 1;
    t.seg("1.0.0.3:1", B, 1, ACK, b"d");
    assert!(t.has(&Ev::Rel(2, Release::Evicted("flow table full"))));
    assert!(!t.has(&Ev::Rel(1, Release::Evicted("flow table full"))));
    assert_eq!(t.table.len(), 2);
    assert_eq!(t.table.stats().evicted_full, 1);
}

#[test]
fn idle_timeout_by_capture_time() {
    let cfg = FlowConfig {
        idle_timeout_ns: 10_000,
        ..FlowConfig::default()
    };
    let mut t = T::new(cfg);
    t.seg(A, B, 1, ACK, b"a");
    t.seg(A, B, 5, ACK, b"e"); // hole: flushed on eviction
    t.ts += 20_000;
    t.seg("9.9.9.9:9", B, 1, ACK, b"x");
    assert!(t.has(&Ev::Gap(1, I, 3)));
    assert!(t.has(&Ev::Rel(1, Release::Evicted("idle timeout"))));
    assert_eq!(t.table.stats().evicted_idle, 1);
    assert_eq!(t.table.len(), 1);
}

#[test]
fn syn_with_data_and_old_segments_before_start() {
    let mut t = T::new(FlowConfig::default());
    t.seg(A, B, 1000, SYN, b"tfo");
    t.seg(A, B, 990, ACK, b"0123456789abcdef"); // starts before the stream
    assert_eq!(t.stream(I), b"tfoef");
}

#[test]
fn bytes_cut_by_snaplen_become_a_gap_at_once() {
    let mut t = T::new(FlowConfig::default());
    handshake(&mut t, 0, 0);
    let s = Segment {
        iface: 0,
        ts_ns: t.ts,
        src: A.parse().unwrap(),
        dst: B.parse().unwrap(),
        seq: 1,
        ack: 0,
        flags: ACK,
        window: 0,
        payload: b"abc",
    };
    let evs = &mut t.evs;
    t.table.push_cut(&s, 5, &mut |e| evs.push(conv(e))); // 8 bytes on the wire
    assert!(t.has(&Ev::Gap(1, I, 5)), "no waiting for the cut bytes");
    t.seg(A, B, 9, ACK, b"next");
    assert_eq!(t.stream(I), b"abc?????next");
    // A cut segment ahead of a hole: its lost tail is held as lost and
    // becomes a gap when the hole fills.
    let s2 = Segment {
        iface: 0,
        seq: 20,
        payload: b"xy",
        ..s
    };
    let evs = &mut t.evs;
    t.table.push_cut(&s2, 2, &mut |e| evs.push(conv(e)));
    t.seg(A, B, 13, ACK, b"1234567");
    t.seg(A, B, 24, ACK, b"z");
    assert_eq!(t.stream(I), b"abc?????next1234567xy??z");
    assert_eq!(t.table.stats().gap_bytes, 7);
}
