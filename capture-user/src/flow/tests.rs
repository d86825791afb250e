//! Unit tests of TCP reassembly for one connection ([`TcpConn`]): one per
//! reassembly branch. Which connection a segment belongs to, ids,
//! tombstones, eviction and idle timeouts are tested with the registry.

use super::tcp::{Outcome, TcpConn, TcpOut};
use super::FlowStats;
use crate::side::Side::{self, Initiator as I, Responder as R};
use crate::source::tcp_flags::{ACK, FIN, RST, SYN};

/// A compact record of what reassembly handed on, owned so tests can compare.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Ev {
    Data(Side, Vec<u8>),
    Gap(Side, u64),
    Mismatch(Side, u64, u64),
    End(Side),
    Closed { reset: bool },
}

struct T {
    conn: TcpConn,
    stats: FlowStats,
    evs: Vec<Ev>,
}

impl T {
    fn new(max_held: usize) -> Self {
        T {
            conn: TcpConn::new(max_held),
            stats: FlowStats::default(),
            evs: Vec::new(),
        }
    }

    fn seg(&mut self, side: Side, seq: u32, flags: u8, data: &[u8]) {
        self.cut(side, seq, flags, data, 0)
    }

    /// A segment followed on the wire by `lost` bytes the capture cut.
    fn cut(&mut self, side: Side, seq: u32, flags: u8, data: &[u8], lost: u32) {
        let evs = &mut self.evs;
        let outcome = self.conn.on_segment(
            side,
            seq,
            flags,
            data,
            lost,
            &mut self.stats,
            &mut |s, o| evs.push(conv(s, o)),
        );
        if let Outcome::Closed { reset } = outcome {
            self.evs.push(Ev::Closed { reset });
        }
    }

    fn finish(&mut self) {
        let evs = &mut self.evs;
        self.conn.flush(&mut |s, o| evs.push(conv(s, o)));
    }

    /// All data of one side, with gaps as `?` bytes.
    fn stream(&self, side: Side) -> Vec<u8> {
        let mut v = Vec::new();
        for e in &self.evs {
            match e {
                Ev::Data(s, d) if *s == side => v.extend_from_slice(d),
                Ev::Gap(s, n) if *s == side => v.extend(std::iter::repeat_n(b'?', *n as usize)),
                _ => {}
            }
        }
        v
    }

    fn has(&self, e: &Ev) -> bool {
        self.evs.contains(e)
    }

    fn mismatches(&self) -> usize {
        self.evs
            .iter()
            .filter(|e| matches!(e, Ev::Mismatch(..)))
            .count()
    }
}

fn conv(side: Side, o: TcpOut<'_>) -> Ev {
    match o {
        TcpOut::Data(d) => Ev::Data(side, d.to_vec()),
        TcpOut::Gap(n) => Ev::Gap(side, n),
        TcpOut::Mismatch { offset, len } => Ev::Mismatch(side, offset, len),
        TcpOut::End => Ev::End(side),
    }
}

const CAP: usize = 4 << 20;

fn handshake(t: &mut T, isn_a: u32, isn_b: u32) {
    t.seg(I, isn_a, SYN, b"");
    t.seg(R, isn_b, SYN | ACK, b"");
    t.seg(I, isn_a.wrapping_add(1), ACK, b"");
}

#[test]
fn in_order_both_directions_and_fin_close() {
    let mut t = T::new(CAP);
    handshake(&mut t, 100, 5000);
    t.seg(I, 101, ACK, b"hello");
    t.seg(R, 5001, ACK, b"world");
    t.seg(I, 106, ACK | FIN, b"!");
    t.seg(R, 5006, ACK | FIN, b"");
    assert_eq!(t.stream(I), b"hello!");
    assert_eq!(t.stream(R), b"world");
    assert!(t.has(&Ev::End(I)));
    assert!(t.has(&Ev::End(R)));
    assert_eq!(t.evs.last(), Some(&Ev::Closed { reset: false }));
}

#[test]
fn sequence_wraparound() {
    let mut t = T::new(CAP);
    let isn = u32::MAX - 3;
    handshake(&mut t, isn, 7);
    t.seg(I, isn.wrapping_add(1), ACK, b"abcdef"); // crosses 2^32
    t.seg(I, isn.wrapping_add(10), ACK, b"jk"); // ahead of a hole
    t.seg(I, isn.wrapping_add(7), ACK, b"ghi");
    assert_eq!(t.stream(I), b"abcdefghijk");
    assert_eq!(t.stats.out_of_order_segments, 1);
}

#[test]
fn reorder_is_held_then_delivered() {
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.seg(I, 7, ACK, b"ghi");
    t.seg(I, 4, ACK, b"def");
    assert_eq!(t.stream(I), b"");
    assert_eq!(t.conn.held_bytes(I), 6);
    t.seg(I, 1, ACK, b"abc");
    assert_eq!(t.stream(I), b"abcdefghi");
}

#[test]
fn duplicates_are_dropped() {
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.seg(I, 1, ACK, b"abc");
    t.seg(I, 1, ACK, b"abc");
    t.seg(I, 2, ACK, b"bcd"); // partial overlap with delivered bytes
    t.seg(I, 8, ACK, b"hi");
    t.seg(I, 8, ACK, b"hi"); // duplicate of held bytes
    t.seg(I, 5, ACK, b"efg");
    assert_eq!(t.stream(I), b"abcdefghi");
    assert_eq!(t.stats.retransmitted_bytes, 3 + 2 + 2);
    assert_eq!(t.mismatches(), 0);
}

#[test]
fn overlap_that_differs_first_copy_wins() {
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.seg(I, 5, ACK, b"EFG"); // held first
    t.seg(I, 4, ACK, b"dXYZh"); // overlaps held bytes with other content
    assert!(t.has(&Ev::Mismatch(I, 4, 3)));
    t.seg(I, 1, ACK, b"abcdefgh"); // in-order tail overlaps: held wins again
    assert_eq!(t.stream(I), b"abcdEFGh");
    assert_eq!(t.mismatches(), 2);
}

#[test]
fn gap_when_cap_exceeded() {
    let mut t = T::new(100);
    handshake(&mut t, 0, 0);
    t.seg(I, 1, ACK, b"ab");
    t.seg(I, 13, ACK, &[b'x'; 30]); // hole of 10 at offset 2; cost 94 <= 100
    assert_eq!(t.stream(I), b"ab");
    t.seg(I, 43, ACK, b"yy"); // cost passes the cap: hole skipped
    assert!(t.has(&Ev::Gap(I, 10)));
    let mut want = b"ab??????????".to_vec();
    want.extend([b'x'; 30]);
    want.extend(b"yy");
    assert_eq!(t.stream(I), want);
    assert_eq!(t.stats.gaps_at_cap, 1);
    // The late copy of the hole is now a retransmission.
    t.seg(I, 3, ACK, b"0123456789");
    assert_eq!(t.stream(I).len(), want.len());
}

#[test]
fn rst_closes_and_flushes_holes() {
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.seg(I, 1, ACK, b"ab");
    t.seg(I, 5, ACK, b"ef");
    t.seg(R, 1, RST, b"");
    assert_eq!(t.stream(I), b"ab??ef");
    assert!(t.has(&Ev::End(I)));
    assert!(t.has(&Ev::End(R)));
    assert_eq!(t.evs.last(), Some(&Ev::Closed { reset: true }));
}

#[test]
fn fin_waits_for_hole_then_finish_declares_gap() {
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.seg(I, 1, ACK, b"ab");
    t.seg(I, 5, ACK | FIN, b"ef");
    assert!(!t.has(&Ev::End(I)));
    t.seg(I, 3, ACK, b"cd"); // the retransmission fills the hole
    assert_eq!(t.stream(I), b"abcdef");
    assert!(t.has(&Ev::End(I)));
    // Data beyond the FIN is ignored.
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.seg(I, 1, ACK | FIN, b"ab");
    t.seg(I, 1, ACK, b"abcd");
    assert_eq!(t.stream(I), b"ab");
    // A hole before the FIN that never fills: gap at end of input.
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.seg(I, 5, ACK | FIN, b"ef");
    t.finish();
    assert_eq!(t.stream(I), b"????ef");
    assert!(t.has(&Ev::End(I)));
}

#[test]
fn fin_without_data_after_hole() {
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.seg(I, 1, ACK, b"ab");
    t.seg(I, 6, ACK | FIN, b""); // FIN at offset 5: bytes 2..5 never seen
    t.finish();
    assert_eq!(t.stream(I), b"ab???");
}

#[test]
fn midstream_pickup_starts_at_the_first_sequence_number() {
    let mut t = T::new(CAP);
    t.seg(I, 777_777, ACK, b"server first");
    t.seg(R, 123, ACK, b"client");
    assert_eq!(t.stream(I), b"server first");
    assert_eq!(t.stream(R), b"client");
}

#[test]
fn syn_ack_seen_without_syn() {
    let mut t = T::new(CAP);
    t.seg(R, 50, SYN | ACK, b"");
    t.seg(I, 10, ACK, b"req");
    t.seg(R, 51, ACK, b"resp");
    assert_eq!(t.stream(I), b"req");
    assert_eq!(t.stream(R), b"resp");
}

#[test]
fn syn_with_data_and_old_segments_before_start() {
    let mut t = T::new(CAP);
    t.seg(I, 1000, SYN, b"tfo");
    t.seg(I, 990, ACK, b"0123456789abcdef"); // starts before the stream
    assert_eq!(t.stream(I), b"tfoef");
}

#[test]
fn bytes_cut_by_snaplen_become_a_gap_at_once() {
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.cut(I, 1, ACK, b"abc", 5); // 8 bytes on the wire
    assert!(t.has(&Ev::Gap(I, 5)), "no waiting for the cut bytes");
    t.seg(I, 9, ACK, b"next");
    assert_eq!(t.stream(I), b"abc?????next");
    // A cut segment ahead of a hole: its lost tail is held as lost and
    // becomes a gap when the hole fills.
    t.cut(I, 20, ACK, b"xy", 2);
    t.seg(I, 13, ACK, b"1234567");
    t.seg(I, 24, ACK, b"z");
    assert_eq!(t.stream(I), b"abc?????next1234567xy??z");
    let gap_bytes: u64 = t
        .evs
        .iter()
        .map(|e| if let Ev::Gap(_, n) = e { *n } else { 0 })
        .sum();
    assert_eq!(gap_bytes, 7);
}

#[test]
fn data_on_a_rst_or_after_the_fin_is_counted() {
    let mut t = T::new(CAP);
    handshake(&mut t, 0, 0);
    t.seg(I, 1, ACK | FIN, b"ab");
    t.seg(I, 1, ACK, b"abcd"); // on an ended direction: all 4 counted
    t.seg(R, 1, RST | ACK, b"xyz"); // data on a RST
    assert_eq!(t.stats.bytes_after_end, 4 + 3);
    assert_eq!(t.stream(R), b"");
}
