//! The TCP adapter over [`Assembler`]: sequence numbers to stream offsets,
//! SYN, FIN and RST, for both directions of one connection.
//!
//! - Offset 0 of a direction is the first byte after its SYN, or the first
//!   byte seen when the connection was picked up mid-way.
//! - FIN ends a direction once the stream reaches it; a FIN does not skip a
//!   hole by itself (the missing bytes are usually retransmitted right
//!   after), but RST, eviction, idle timeout and end of input do
//!   ([`TcpConn::flush`]).
//! - Bytes known to be lost (a segment cut by the capture's snap length)
//!   become a gap as soon as the stream reaches them.

use super::assembler::{AsmOut, Assembler};
use super::seq::SeqNum;
use super::FlowStats;
use crate::side::{PerSide, Side};

/// What one direction hands on, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum TcpOut<'a> {
    /// The next in-order bytes.
    Data(&'a [u8]),
    /// This many bytes were never seen; what follows comes after them.
    Gap(u64),
    /// Bytes at `offset` arrived twice with different content (first kept).
    Mismatch { offset: u64, len: u64 },
    /// The direction ended (FIN reached, or flushed).
    End,
}

impl<'a> From<AsmOut<'a>> for TcpOut<'a> {
    fn from(o: AsmOut<'a>) -> Self {
        match o {
            AsmOut::Data(d) => TcpOut::Data(d),
            AsmOut::Gap(n) => TcpOut::Gap(n),
            AsmOut::Mismatch { offset, len } => TcpOut::Mismatch { offset, len },
        }
    }
}

/// How a segment left the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still open.
    Open,
    /// Both FINs delivered, or RST (`reset`): the connection is over.
    Closed { reset: bool },
}

/// Where a direction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HalfState {
    /// Bytes still to come (`fin_at`: stream offset of the FIN, once seen).
    Open { fin_at: Option<u64> },
    /// FIN reached or flushed: nothing more is accepted.
    Ended,
}

/// One direction: its sequence base and its assembler.
#[derive(Debug)]
struct TcpHalf {
    /// Sequence number of stream offset 0; unset until the direction's SYN
    /// or first data is seen.
    base: Option<SeqNum>,
    /// Initial sequence number of this direction's SYN, once one was taken.
    isn: Option<u32>,
    asm: Assembler,
    state: HalfState,
}

impl TcpHalf {
    fn new(cap: usize) -> Self {
        TcpHalf {
            base: None,
            isn: None,
            asm: Assembler::new(cap),
            state: HalfState::Open { fin_at: None },
        }
    }

    fn on_syn(&mut self, isn: u32) {
        if self.asm.is_untouched() {
            self.base = Some(SeqNum(isn).advance(1));
            self.isn = Some(isn);
        }
    }

    /// A SYN with `isn` belongs to this direction: a retransmission of its
    /// SYN, or the first one of a direction that has carried nothing yet.
    fn syn_fits(&self, isn: u32) -> bool {
        match self.isn {
            Some(seen) => seen == isn,
            None => self.asm.is_untouched(),
        }
    }

    /// Stream offset of `seq`, relative to what was delivered. Negative means
    /// before the start of the stream.
    fn offset_of(&self, seq: SeqNum) -> i64 {
        let delivered = self.asm.delivered();
        let base = self.base.unwrap_or(seq);
        let expected = base.advance(delivered as u32);
        delivered as i64 + expected.distance_to(seq) as i64
    }

    /// One segment: payload starting at `seq`, FIN flag, and `lost` bytes
    /// that followed the payload on the wire but were not captured.
    fn on_segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        lost: u32,
        fin: bool,
        stats: &mut FlowStats,
        out: &mut dyn FnMut(TcpOut<'_>),
    ) {
        let HalfState::Open { mut fin_at } = self.state else {
            stats.bytes_after_end += payload.len() as u64;
            return;
        };
        let seq = SeqNum(seq);
        self.base.get_or_insert(seq);
        let off = self.offset_of(seq);
        let mut data = payload;
        let mut end = off + data.len() as i64;
        let wire_end = end + i64::from(lost);
        if fin && fin_at.is_none() && wire_end >= self.asm.delivered() as i64 {
            fin_at = Some(wire_end as u64);
        }
        if let Some(f) = fin_at {
            // Nothing exists after the FIN; ignore what claims to.
            if end > f as i64 {
                let cut = (end - f as i64).min(data.len() as i64) as usize;
                stats.bytes_after_end += cut as u64;
                data = &data[..data.len() - cut];
                end = f as i64;
            }
        }
        self.state = HalfState::Open { fin_at };
        let mut out_asm = |o: AsmOut<'_>| out(o.into());
        if !data.is_empty() {
            self.asm.write(off, data, stats, &mut out_asm);
        }
        if lost > 0 {
            let lost_end = fin_at.map_or(wire_end, |f| wire_end.min(f as i64));
            self.asm.write_lost(end, lost_end, stats, &mut out_asm);
        }
        self.asm.settle(stats, &mut out_asm);
        if fin_at.is_some_and(|f| self.asm.delivered() >= f) {
            self.state = HalfState::Ended;
            out(TcpOut::End);
        }
    }

    /// A FIN was seen but holes before it are still open.
    fn fin_waits(&self) -> bool {
        matches!(self.state, HalfState::Open { fin_at: Some(f) } if self.asm.delivered() < f)
    }

    /// Ends the direction now: every remaining hole becomes a gap, held data
    /// is handed on, then `End` (unless it already ended).
    fn flush(&mut self, out: &mut dyn FnMut(TcpOut<'_>)) {
        let HalfState::Open { fin_at } = self.state else {
            return;
        };
        let mut out_asm = |o: AsmOut<'_>| out(o.into());
        self.asm.flush(&mut out_asm);
        if let Some(f) = fin_at {
            self.asm.skip_to(f, &mut out_asm);
        }
        self.state = HalfState::Ended;
        out(TcpOut::End);
    }
}

/// Both directions of one open connection.
#[derive(Debug)]
pub struct TcpConn {
    halves: PerSide<TcpHalf>,
}

impl TcpConn {
    /// `cap`: bytes held out of order per direction before the oldest hole
    /// is declared a gap.
    pub fn new(cap: usize) -> Self {
        TcpConn {
            halves: PerSide::new(TcpHalf::new(cap), TcpHalf::new(cap)),
        }
    }

    /// One segment of `side`. The events it completes go to `out` (for
    /// `side`); a RST flushes both directions first.
    #[allow(clippy::too_many_arguments)]
    pub fn on_segment(
        &mut self,
        side: Side,
        seq: u32,
        flags: u8,
        payload: &[u8],
        lost: u32,
        stats: &mut FlowStats,
        out: &mut dyn FnMut(Side, TcpOut<'_>),
    ) -> Outcome {
        use crate::source::tcp_flags::{FIN, RST, SYN};
        if flags & RST != 0 {
            // Data on a RST is never delivered to the application.
            stats.bytes_after_end += payload.len() as u64;
            self.flush(out);
            return Outcome::Closed { reset: true };
        }
        let half = &mut self.halves[side];
        let mut data_seq = seq;
        if flags & SYN != 0 {
            half.on_syn(seq);
            data_seq = seq.wrapping_add(1);
        }
        half.on_segment(data_seq, payload, lost, flags & FIN != 0, stats, &mut |o| {
            out(side, o)
        });
        if self
            .halves
            .both()
            .iter()
            .all(|h| h.state == HalfState::Ended)
        {
            self.flush(out);
            Outcome::Closed { reset: false }
        } else {
            Outcome::Open
        }
    }

    /// True while a direction has seen its FIN but waits for bytes before
    /// it (a retransmission that may never come).
    pub fn fin_waits(&self) -> bool {
        self.halves.both().iter().any(|h| h.fin_waits())
    }

    /// Gives up waiting: each direction whose FIN waits behind a hole has
    /// its holes turned into gaps and ends. Returns `Closed` when both
    /// directions have now ended.
    pub fn end_fin_waits(&mut self, out: &mut dyn FnMut(Side, TcpOut<'_>)) -> Outcome {
        for side in [Side::Initiator, Side::Responder] {
            if self.halves[side].fin_waits() {
                self.halves[side].flush(&mut |o| out(side, o));
            }
        }
        if self
            .halves
            .both()
            .iter()
            .all(|h| h.state == HalfState::Ended)
        {
            Outcome::Closed { reset: false }
        } else {
            Outcome::Open
        }
    }

    /// Flushes both directions (holes become gaps), initiator first.
    pub fn flush(&mut self, out: &mut dyn FnMut(Side, TcpOut<'_>)) {
        for side in [Side::Initiator, Side::Responder] {
            self.halves[side].flush(&mut |o| out(side, o));
        }
    }

    /// False when a SYN (or SYN-ACK) from `side` with sequence number `isn`
    /// cannot belong to this connection: its direction already had another
    /// SYN, or carried data without one. The endpoints were reused by a new
    /// connection the capture did not see the old one close.
    pub fn syn_fits(&self, side: Side, isn: u32) -> bool {
        self.halves[side].syn_fits(isn)
    }

    /// Memory both directions hold (counted against the decoder's budget).
    #[inline]
    pub fn mem(&self) -> usize {
        self.halves.both().iter().map(|h| h.asm.mem()).sum()
    }

    /// Bytes held out of order by `side` (tests, diagnostics).
    pub fn held_bytes(&self, side: Side) -> usize {
        self.halves[side].asm.held_bytes()
    }
}
