//! Reassembly of one direction of a TCP connection.
//!
//! Bytes are addressed by a 64-bit *stream offset* (0 = first byte after the
//! SYN, or the first byte seen when the connection was picked up mid-way), so
//! the out-of-order map never has to deal with sequence wraparound; only the
//! conversion from a segment's sequence number uses wrapping arithmetic.
//!
//! Policy, deterministic and documented:
//! - In-order data is handed on borrowed from the segment; only data that
//!   arrives ahead of a hole is copied (into a sorted map of disjoint ranges).
//! - **First copy wins**: when retransmitted or overlapping data covers bytes
//!   already held, the held bytes are kept. If the new copy differs, an
//!   [`HalfOut::Mismatch`] is reported. Bytes already delivered are not kept,
//!   so a retransmission of them is counted but not compared.
//! - A hole that never fills becomes an explicit gap: when the held bytes pass
//!   the per-direction cap the hole is skipped at once; a FIN does not skip a
//!   hole by itself (the missing bytes are usually retransmitted right after),
//!   but RST, eviction, idle timeout and end of input do ([`HalfStream::flush`]).
//! - Bytes known to be lost (a packet cut by the capture's snap length) are
//!   held as a *lost range*: when the stream reaches it, it becomes a gap at
//!   once instead of waiting for data that will never come.

use std::collections::BTreeMap;

use super::seq::SeqNum;
use super::FlowStats;

/// Bookkeeping cost charged per held range on top of its bytes, so that a
/// flood of one-byte segments cannot hold more memory than the cap suggests.
const RANGE_OVERHEAD: usize = 64;

/// What one direction hands on, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum HalfOut<'a> {
    /// The next in-order bytes.
    Data(&'a [u8]),
    /// This many bytes were never seen; what follows comes after them.
    Gap(u64),
    /// Bytes at `offset` arrived twice with different content (first kept).
    Mismatch { offset: u64, len: u64 },
    /// The direction ended (FIN reached, or flushed).
    End,
}

/// One held range.
#[derive(Debug)]
enum Held {
    /// Bytes that arrived ahead of a hole (copied).
    Data(Vec<u8>),
    /// This many bytes are known lost (snap length cut them).
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

/// What a new segment brings for a range: bytes, or the knowledge that
/// bytes are lost.
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
#[derive(Debug, Default)]
pub struct HalfStream {
    /// Sequence number of stream offset 0; unset until the direction's SYN
    /// or first data is seen.
    base: Option<SeqNum>,
    /// Bytes handed on so far (including skipped gaps).
    delivered: u64,
    /// Out-of-order data (or known-lost ranges) by stream offset; ranges are
    /// disjoint and all start after `delivered`.
    held: BTreeMap<u64, Held>,
    /// Bytes charged against the cap (data plus per-range overhead).
    held_cost: usize,
    /// Stream offset of the FIN, once seen.
    fin_at: Option<u64>,
    ended: bool,
}

impl HalfStream {
    /// Sets the initial sequence number from this direction's SYN.
    pub fn on_syn(&mut self, isn: u32) {
        if self.delivered == 0 && self.held.is_empty() {
            self.base = Some(SeqNum(isn).advance(1));
        }
    }

    pub fn has_base(&self) -> bool {
        self.base.is_some()
    }

    pub fn ended(&self) -> bool {
        self.ended
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

    /// Stream offset of `seq`, relative to what was delivered. Negative means
    /// before the start of the stream.
    fn offset_of(&self, seq: SeqNum) -> i64 {
        let base = self.base.unwrap_or(seq);
        let expected = base.advance(self.delivered as u32);
        self.delivered as i64 + expected.distance_to(seq) as i64
    }

    /// One segment of this direction: payload starting at `seq`, FIN flag,
    /// and `lost` bytes that followed the payload on the wire but were not
    /// captured (snap length).
    #[allow(clippy::too_many_arguments)]
    pub fn on_segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        lost: u32,
        fin: bool,
        cap: usize,
        stats: &mut FlowStats,
        out: &mut dyn FnMut(HalfOut<'_>),
    ) {
        if self.ended {
            stats.bytes_after_end += payload.len() as u64;
            return;
        }
        let seq = SeqNum(seq);
        if self.base.is_none() {
            self.base = Some(seq);
        }
        let mut off = self.offset_of(seq);
        let mut data = payload;
        let mut end = off + data.len() as i64;
        let wire_end = end + i64::from(lost);
        if fin && self.fin_at.is_none() && wire_end >= self.delivered as i64 {
            self.fin_at = Some(wire_end as u64);
        }
        if let Some(f) = self.fin_at {
            // Nothing exists after the FIN; ignore what claims to.
            if end > f as i64 {
                let cut = (end - f as i64).min(data.len() as i64) as usize;
                stats.bytes_after_end += cut as u64;
                data = &data[..data.len() - cut];
                end = f as i64;
            }
        }
        let delivered = self.delivered as i64;
        if end <= delivered {
            stats.retransmitted_bytes += data.len() as u64;
        } else if !data.is_empty() {
            if off < delivered {
                let trim = (delivered - off) as usize;
                stats.retransmitted_bytes += trim as u64;
                data = &data[trim..];
                off = delivered;
            }
            let off = off as u64;
            if off == self.delivered {
                // The fast path: straight from the segment, no copy, except for
                // a tail that overlaps bytes already held (first copy wins).
                let take = match self.held.keys().next() {
                    Some(&k) if k < off + data.len() as u64 => (k - off) as usize,
                    _ => data.len(),
                };
                if take > 0 {
                    out(HalfOut::Data(&data[..take]));
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
        if lost > 0 {
            // The cut tail: known lost, unless already delivered or held.
            let mut ls = end.max(self.delivered as i64);
            let mut le = wire_end;
            if let Some(f) = self.fin_at {
                le = le.min(f as i64);
            }
            if ls < le {
                ls = ls.max(0);
                self.hold(ls as u64, Src::Lost((le - ls) as u64), stats, out);
            }
        }
        self.drain(stats, out);
        while self.held_cost > cap && self.skip_hole(stats, out) {
            stats.gaps_at_cap += 1;
            self.drain(stats, out);
        }
        stats.peak_held = stats.peak_held.max(self.held_cost as u64);
        self.check_fin(out);
    }

    /// Copies `src` at stream offset `off` into the held map, keeping bytes
    /// already held (first copy wins) and reporting data that differs.
    fn hold(
        &mut self,
        off: u64,
        src: Src<'_>,
        stats: &mut FlowStats,
        out: &mut dyn FnMut(HalfOut<'_>),
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
                        stats.overlap_mismatches += 1;
                        out(HalfOut::Mismatch {
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
    fn drain(&mut self, stats: &mut FlowStats, out: &mut dyn FnMut(HalfOut<'_>)) {
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
                Held::Data(v) => out(HalfOut::Data(&v[from as usize..])),
                Held::Lost(n) => {
                    stats.gaps += 1;
                    stats.gap_bytes += n - from;
                    out(HalfOut::Gap(n - from));
                }
            }
            self.delivered = ke;
        }
    }

    /// Declares the hole before the first held range lost. False when
    /// nothing is held.
    fn skip_hole(&mut self, stats: &mut FlowStats, out: &mut dyn FnMut(HalfOut<'_>)) -> bool {
        let Some(&k) = self.held.keys().next() else {
            return false;
        };
        if k > self.delivered {
            let n = k - self.delivered;
            stats.gaps += 1;
            stats.gap_bytes += n;
            out(HalfOut::Gap(n));
            self.delivered = k;
        }
        true
    }

    fn check_fin(&mut self, out: &mut dyn FnMut(HalfOut<'_>)) {
        if let Some(f) = self.fin_at {
            if !self.ended && self.delivered >= f {
                self.ended = true;
                out(HalfOut::End);
            }
        }
    }

    /// Ends the direction now: every remaining hole becomes a gap, held data
    /// is handed on, then `End` (unless it already ended).
    pub fn flush(&mut self, stats: &mut FlowStats, out: &mut dyn FnMut(HalfOut<'_>)) {
        if self.ended {
            return;
        }
        while self.skip_hole(stats, out) {
            self.drain(stats, out);
        }
        if let Some(f) = self.fin_at {
            if f > self.delivered {
                let n = f - self.delivered;
                stats.gaps += 1;
                stats.gap_bytes += n;
                out(HalfOut::Gap(n));
                self.delivered = f;
            }
        }
        self.ended = true;
        out(HalfOut::End);
    }
}
