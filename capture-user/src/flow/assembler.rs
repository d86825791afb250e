//! An offset-addressed reassembler for one direction of a byte stream (the
//! shape of smoltcp's `storage/assembler.rs`, with the bytes kept too).
//!
//! Bytes are addressed by a 64-bit *stream offset*, so nothing here knows
//! about TCP sequence numbers or wraparound: the TCP adapter (`tcp`) maps
//! sequence numbers to offsets, a plaintext source passes offsets directly.
//!
//! Invariants the assembler owns:
//! - Held ranges are disjoint, sorted, and all start at or after
//!   `delivered`; everything before `delivered` was handed on exactly once
//!   (as data or as a gap).
//! - **First copy wins**: bytes already held are kept when a retransmission
//!   covers them; a copy that differs is reported ([`AsmOut::Mismatch`]).
//!   Bytes already handed on are not kept, so a retransmission of them is
//!   counted but not compared.
//! - The bytes held (plus a per-range overhead) never stay above the cap:
//!   past it the oldest hole becomes a gap.
//! - In-order data is handed on borrowed from the caller's slice; only data
//!   that arrives ahead of a hole is copied.

use std::collections::BTreeMap;

use super::FlowStats;

/// Bookkeeping cost charged per held range on top of its bytes, so that a
/// flood of one-byte segments cannot hold more memory than the cap suggests.
const RANGE_OVERHEAD: usize = 64;

/// What the assembler hands on, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum AsmOut<'a> {
    /// The next in-order bytes.
    Data(&'a [u8]),
    /// This many bytes were never seen; what follows comes after them.
    Gap(u64),
    /// Bytes at `offset` arrived twice with different content (first kept).
    Mismatch { offset: u64, len: u64 },
}

/// One held range.
#[derive(Debug)]
enum Held {
    /// Bytes that arrived ahead of a hole (copied).
    Data(Vec<u8>),
    /// This many bytes are known lost (a capture's snap length cut them).
    Lost(u64),
}

impl Held {
    fn len(&self) -> u64 {
        match self {
            Held::Data(v) => v.len() as u64,
            Held::Lost(n) => *n,
        }
    }

    /// Bytes charged against the cap.
    fn cost(&self) -> usize {
        RANGE_OVERHEAD
            + match self {
                Held::Data(v) => v.len(),
                Held::Lost(_) => 0,
            }
    }
}

/// What a write brings for a range: bytes, or the knowledge that bytes are
/// lost.
#[derive(Clone, Copy)]
enum Src<'a> {
    Data(&'a [u8]),
    Lost(u64),
}

impl Src<'_> {
    fn len(&self) -> u64 {
        match self {
            Src::Data(d) => d.len() as u64,
            Src::Lost(n) => *n,
        }
    }

    /// The part `[from, to)` (relative offsets).
    fn sub(&self, from: u64, to: u64) -> Self {
        match self {
            Src::Data(d) => Src::Data(&d[from as usize..to as usize]),
            Src::Lost(_) => Src::Lost(to - from),
        }
    }
}

/// Reassembly state of one direction.
#[derive(Debug)]
pub struct Assembler {
    /// Bytes handed on so far (gaps included).
    delivered: u64,
    /// Out-of-order data (or known-lost ranges) by stream offset.
    held: BTreeMap<u64, Held>,
    /// Bytes charged against the cap (data plus per-range overhead).
    held_cost: usize,
    /// Largest `held_cost` allowed once a write has settled.
    cap: usize,
}

impl Assembler {
    pub fn new(cap: usize) -> Self {
        Assembler {
            delivered: 0,
            held: BTreeMap::new(),
            held_cost: 0,
            cap,
        }
    }

    /// Offset of the next byte to hand on.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// True while nothing was handed on or held.
    pub fn is_untouched(&self) -> bool {
        self.delivered == 0 && self.held.is_empty()
    }

    /// Memory this direction holds (held bytes plus bookkeeping).
    #[inline]
    pub fn mem(&self) -> usize {
        self.held_cost
    }

    /// Bytes currently held out of order (for tests and diagnostics).
    pub fn held_bytes(&self) -> usize {
        self.held
            .values()
            .map(|h| match h {
                Held::Data(v) => v.len(),
                Held::Lost(_) => 0,
            })
            .sum()
    }

    /// `data` at stream offset `off`, which may lie partly or wholly before
    /// what was handed on (a retransmission: counted, then dropped).
    pub fn write(
        &mut self,
        off: i64,
        data: &[u8],
        stats: &mut FlowStats,
        out: &mut dyn FnMut(AsmOut<'_>),
    ) {
        let delivered = self.delivered as i64;
        let end = off + data.len() as i64;
        if end <= delivered {
            stats.retransmitted_bytes += data.len() as u64;
            return;
        }
        let (off, data) = if off < delivered {
            let trim = (delivered - off) as usize;
            stats.retransmitted_bytes += trim as u64;
            (self.delivered, &data[trim..])
        } else {
            (off as u64, data)
        };
        if off == self.delivered {
            // The fast path: straight from the caller's slice, except for a
            // tail that overlaps bytes already held (first copy wins).
            let take = match self.held.keys().next() {
                Some(&k) if k < off + data.len() as u64 => (k - off) as usize,
                _ => data.len(),
            };
            if take > 0 {
                out(AsmOut::Data(&data[..take]));
                self.delivered += take as u64;
            }
            if take < data.len() {
                self.hold(self.delivered, Src::Data(&data[take..]), stats, out);
            }
        } else {
            stats.out_of_order_segments += 1;
            self.hold(off, Src::Data(data), stats, out);
        }
    }

    /// The bytes `[from, to)` are known lost (never captured); whatever part
    /// of them was already handed on or held is left alone.
    pub fn write_lost(
        &mut self,
        from: i64,
        to: i64,
        stats: &mut FlowStats,
        out: &mut dyn FnMut(AsmOut<'_>),
    ) {
        let from = from.max(self.delivered as i64).max(0);
        if from < to {
            self.hold(from as u64, Src::Lost((to - from) as u64), stats, out);
        }
    }

    /// After a write: hands on what became contiguous, and turns the oldest
    /// holes into gaps while more than the cap is held.
    #[inline]
    pub fn settle(&mut self, stats: &mut FlowStats, out: &mut dyn FnMut(AsmOut<'_>)) {
        if self.held.is_empty() {
            return; // in order: nothing to drain, nothing over the cap
        }
        self.drain(out);
        while self.held_cost > self.cap && self.skip_hole(out) {
            stats.gaps_at_cap += 1;
            self.drain(out);
        }
        stats.peak_held = stats.peak_held.max(self.held_cost as u64);
    }

    /// Hands on everything held: every hole becomes a gap.
    pub fn flush(&mut self, out: &mut dyn FnMut(AsmOut<'_>)) {
        while self.skip_hole(out) {
            self.drain(out);
        }
    }

    /// Declares everything up to `to` lost (nothing may be held there).
    pub fn skip_to(&mut self, to: u64, out: &mut dyn FnMut(AsmOut<'_>)) {
        if to > self.delivered {
            out(AsmOut::Gap(to - self.delivered));
            self.delivered = to;
        }
    }

    /// Copies `src` at stream offset `off` into the held map, keeping bytes
    /// already held (first copy wins) and reporting data that differs.
    fn hold(
        &mut self,
        off: u64,
        src: Src<'_>,
        stats: &mut FlowStats,
        out: &mut dyn FnMut(AsmOut<'_>),
    ) {
        let end = off + src.len();
        // Held ranges overlapping [off, end), in ascending order.
        let mut overlaps: Vec<(u64, u64)> = self
            .held
            .range(..end)
            .rev()
            .map(|(&k, v)| (k, k + v.len()))
            .take_while(|&(_, ke)| ke > off)
            .collect();
        overlaps.reverse();
        let mut pos = off;
        for (k, ke) in overlaps {
            if k > pos {
                self.insert(pos, src.sub(pos - off, k - off));
            }
            let (os, oe) = (k.max(pos), ke.min(end));
            if os < oe {
                if let (Src::Data(d), Some(Held::Data(h))) = (src, self.held.get(&k)) {
                    let held = &h[(os - k) as usize..(oe - k) as usize];
                    let new = &d[(os - off) as usize..(oe - off) as usize];
                    stats.retransmitted_bytes += oe - os;
                    if held != new {
                        out(AsmOut::Mismatch {
                            offset: os,
                            len: oe - os,
                        });
                    }
                }
            }
            pos = pos.max(ke);
        }
        if pos < end {
            self.insert(pos, src.sub(pos - off, end - off));
        }
    }

    fn insert(&mut self, off: u64, src: Src<'_>) {
        let h = match src {
            Src::Data(d) => Held::Data(d.to_vec()),
            Src::Lost(n) => Held::Lost(n),
        };
        self.held_cost += h.cost();
        self.held.insert(off, h);
    }

    /// Hands on held ranges that have become contiguous with the stream.
    /// Known-lost ranges become gaps here.
    fn drain(&mut self, out: &mut dyn FnMut(AsmOut<'_>)) {
        while let Some(entry) = self.held.first_entry() {
            let k = *entry.key();
            if k > self.delivered {
                break;
            }
            let h = entry.remove();
            self.held_cost -= h.cost();
            let ke = k + h.len();
            if ke <= self.delivered {
                continue;
            }
            let from = self.delivered - k;
            match h {
                Held::Data(v) => out(AsmOut::Data(&v[from as usize..])),
                Held::Lost(n) => out(AsmOut::Gap(n - from)),
            }
            self.delivered = ke;
        }
    }

    /// Declares the hole before the first held range lost. False when
    /// nothing is held.
    fn skip_hole(&mut self, out: &mut dyn FnMut(AsmOut<'_>)) -> bool {
        let Some(&k) = self.held.keys().next() else {
            return false;
        };
        self.skip_to(k, out);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        asm: &mut Assembler,
        f: impl FnOnce(&mut Assembler, &mut FlowStats, &mut dyn FnMut(AsmOut<'_>)),
    ) -> Vec<String> {
        let mut v = Vec::new();
        let mut stats = FlowStats::default();
        f(asm, &mut stats, &mut |o| v.push(format!("{o:?}")));
        v
    }

    #[test]
    fn offsets_before_the_stream_are_retransmissions() {
        let mut a = Assembler::new(1 << 20);
        let mut st = FlowStats::default();
        a.write(-3, b"abcdef", &mut st, &mut |_| {});
        assert_eq!(a.delivered(), 3);
        assert_eq!(st.retransmitted_bytes, 3);
    }

    #[test]
    fn lost_range_becomes_a_gap_when_reached() {
        let mut a = Assembler::new(1 << 20);
        let v = run(&mut a, |a, st, out| {
            a.write_lost(2, 5, st, out);
            a.write(5, b"xy", st, out);
            a.write(0, b"ab", st, out);
            a.settle(st, out);
        });
        assert_eq!(v, ["Data([97, 98])", "Gap(3)", "Data([120, 121])"]);
        assert_eq!(a.delivered(), 7);
    }

    #[test]
    fn cap_turns_the_oldest_hole_into_a_gap() {
        let mut a = Assembler::new(100);
        let mut st = FlowStats::default();
        let mut v = Vec::new();
        a.write(10, &[1; 50], &mut st, &mut |o| v.push(format!("{o:?}")));
        a.settle(&mut st, &mut |o| v.push(format!("{o:?}")));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0], "Gap(10)");
        assert_eq!(st.gaps_at_cap, 1);
        assert_eq!(a.held_bytes(), 0);
    }
}
