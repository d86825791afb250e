//! One direction of a WebSocket connection: frames → messages → events.
//!
//! The decoder is a push parser over whatever slices it is given: a header
//! cut by a slice end is kept in a 14-byte buffer, a payload cut by a slice
//! end is copied into the message (or control) buffer, and a whole unmasked,
//! uncompressed, unfragmented frame inside the slice is emitted as a borrow
//! of that slice (zero copy). Buffers never grow past the caps, whatever
//! length the wire announces.

use std::borrow::Cow;
use std::mem;

use super::deflate::{DeflateConfig, Inflater};
use super::frame::{FrameError, FrameHeader, Opcode, MAX_HEADER};
use super::resync::{chain, Chain, Hunt, HuntMemo};
use super::unmask::{extend_unmasked, reserve_capped};
use crate::event::{EventKind, MessageKind, WsEvent};
use crate::proto::{Emit, ProtoConfig};
use crate::side::{Role, RoleFact, Side};

/// Bytes kept while hunting for a frame boundary; older ones are dropped.
const HUNT_MAX: usize = 256 * 1024;
/// Below this size the hunt buffer is rescanned on every new byte; above, only
/// after it grew by an eighth (keeps 1-byte feeds linear).
const HUNT_EAGER: usize = 4096;
/// A direction with no handshake that shows no framing in this many bytes is
/// not WebSocket: it is reported once and ignored.
const GIVE_UP_BYTES: u64 = 1 << 20;
/// Plausible frames in a row after which a resync is as trusted as a
/// handshake: later rule violations are reported, not taken for lost sync.
const TRUST_AFTER: u32 = 8;
/// Control frame payload kept, whatever `--max-message` says: the RFC
/// allows 125 bytes (longer is reported as a violation); a hostile length
/// is cut here, never the valid frames a small message cap would cut.
const CONTROL_MAX: usize = 64 * 1024;
/// Sync lost this many times without a handshake: ignore the direction.
const GIVE_UP_LOSSES: u32 = 4;

/// Whether this direction's messages may be compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeflateMode {
    /// Handshake seen, permessage-deflate not agreed: RSV1 is a violation.
    Off,
    /// Agreed with these parameters.
    On(DeflateConfig),
    /// No handshake seen: RSV1 on a message start means compressed, with
    /// default parameters.
    Guess,
}

/// What a stream is told by its layer for one call. The role is a value:
/// what the stream learns itself (masking) it reports with
/// [`Emit::Role`] and keeps in this copy for the rest of the call.
pub struct Cx<'a> {
    pub side: Side,
    pub cfg: &'a ProtoConfig,
    pub role: Role,
    pub deflate: DeflateMode,
    /// "No WebSocket framing" was already said for this connection (once is
    /// enough for a TLS or other non-WebSocket connection).
    pub not_ws_reported: &'a mut bool,
}

impl Cx<'_> {
    fn emit<'d>(&self, out: &mut dyn FnMut(Emit<'_>), kind: WsEvent<'d>) {
        out(Emit::Event(self.side, EventKind::Ws(kind)));
    }

    fn violation(&mut self, out: &mut dyn FnMut(Emit<'_>), e: FrameError) {
        out(Emit::Event(self.side, EventKind::Violation(e.into())));
    }

    /// `n` bytes of this side were consumed undecoded.
    fn skipped(&self, out: &mut dyn FnMut(Emit<'_>), n: u64) {
        if n > 0 {
            out(Emit::Skipped(self.side, n));
        }
    }

    /// Is this side the client, as far as known?
    fn is_client(&self) -> Option<bool> {
        self.role.is_client(self.side)
    }
}

/// Where the frame boundaries of this direction stand.
enum Sync {
    /// Frame boundaries known.
    Synced,
    /// Looking for a frame boundary (boxed: few directions hunt, and every
    /// direction of 10,000 connections holds a `Sync`).
    Hunting(Box<Hunting>),
    /// Not WebSocket; ignore everything.
    Dead,
}

/// A hunt for a frame boundary in `buf`.
struct Hunting {
    buf: Vec<u8>,
    skipped: u64,
    /// Buffer length at the last full scan.
    scanned: usize,
    /// `buf[0]` follows a stream start or a gap: a likely frame start.
    fresh: bool,
    /// Buffer length at which the candidate at offset 0 can be decided.
    need0: usize,
    /// Verdicts of earlier scans of `buf`.
    memo: HuntMemo,
}

impl Hunting {
    /// Bytes were missed: what is buffered can no longer start a frame
    /// (counted as skipped) and the next byte is a likely boundary.
    fn restart_after_gap(&mut self) {
        self.need0 = 0;
        self.skipped += self.buf.len() as u64;
        self.buf.clear();
        self.memo.forget();
        self.scanned = 0;
        self.fresh = true;
    }
}

impl Sync {
    fn hunting(buf: Vec<u8>, skipped: u64, fresh: bool) -> Sync {
        Sync::Hunting(Box::new(Hunting {
            buf,
            skipped,
            scanned: 0,
            fresh,
            need0: 0,
            memo: HuntMemo::default(),
        }))
    }
}

/// Where the stream's first frame boundary came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A handshake (or a client framing right after its upgrade request):
    /// never given up on.
    Handshake,
    /// Found by hunting. `found`: framing was found at least once; `losses`:
    /// times sync was lost since.
    Hunted { found: bool, losses: u32 },
}

/// How far the current frame boundaries are trusted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// From a handshake with no byte lost since, or earned by
    /// [`TRUST_AFTER`] plausible frames in a row (`good`): rule violations
    /// are reported and decoding goes on.
    Certain { good: u32 },
    /// `good` plausible frames in a row so far: an implausible header means
    /// the sync was wrong and hunting restarts.
    Earning { good: u32 },
}

impl Trust {
    fn certain(self) -> bool {
        matches!(self, Trust::Certain { .. })
    }

    /// One more plausible header.
    fn after_frame(self) -> Trust {
        match self {
            Trust::Earning { good } if good + 1 >= TRUST_AFTER => Trust::Certain { good: good + 1 },
            Trust::Earning { good } => Trust::Earning { good: good + 1 },
            certain => certain,
        }
    }

    /// Bytes were lost: keep the count, but doubt.
    fn after_gap(self) -> Trust {
        match self {
            Trust::Certain { good } | Trust::Earning { good } => Trust::Earning { good },
        }
    }
}

/// What this direction's frames showed about masking.
#[derive(Clone, Copy, Default)]
struct Masking {
    /// Masking of the frames seen, once any was.
    seen: Option<bool>,
    /// A masking violation was already reported (once per direction).
    warned: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Data,
    Control,
    Skip,
}

struct Frame {
    h: FrameHeader,
    remaining: u64,
    /// Payload bytes already seen (mask offset).
    pos: u64,
    target: Target,
}

struct Msg {
    kind: MessageKind,
    compressed: bool,
    /// Payload (unmasked, still compressed if `compressed`), up to the cap.
    buf: Vec<u8>,
    wire_len: u64,
    fragments: u32,
    /// Part of it was never captured: dropped at its end.
    lost: bool,
}

/// A header found in the input: parsed, or a reason to hunt again.
enum HeaderStep {
    /// Not all of it yet (kept in `hdr`).
    Partial,
    /// A header; `consumed` input bytes were taken for it.
    Header(FrameHeader, usize),
    /// Sync was lost at this header; the rest of the input is in the hunt
    /// buffer (or the direction is dead).
    Lost,
}

/// Decoder state of one direction.
pub struct WsStream {
    sync: Sync,
    origin: Origin,
    trust: Trust,
    masking: Masking,
    hdr: [u8; MAX_HEADER],
    hdr_len: usize,
    frame: Option<Frame>,
    msg: Option<Msg>,
    ctrl: Vec<u8>,
    inflater: Inflater,
    /// Continuations of a message whose start was not seen are dropped quietly.
    skip_cont: bool,
}

impl WsStream {
    /// After a handshake: the next byte starts a frame.
    pub fn synced() -> Self {
        Self::new(
            Sync::Synced,
            Origin::Handshake,
            Trust::Certain { good: 0 },
            false,
        )
    }

    /// Without a handshake: frame boundaries must be found first.
    pub fn hunting() -> Self {
        Self::new(
            Sync::hunting(Vec::new(), 0, true),
            Origin::Hunted {
                found: false,
                losses: 0,
            },
            Trust::Earning { good: 0 },
            true,
        )
    }

    fn new(sync: Sync, origin: Origin, trust: Trust, skip_cont: bool) -> Self {
        WsStream {
            sync,
            origin,
            trust,
            masking: Masking::default(),
            hdr: [0; MAX_HEADER],
            hdr_len: 0,
            frame: None,
            msg: None,
            ctrl: Vec::new(),
            inflater: Inflater::default(),
            skip_cont,
        }
    }

    /// Framing was found at least once (always, after a handshake).
    fn ever_synced(&self) -> bool {
        matches!(
            self.origin,
            Origin::Handshake | Origin::Hunted { found: true, .. }
        )
    }

    /// In-order bytes of this direction.
    pub fn feed(&mut self, data: &[u8], cx: &mut Cx<'_>, out: &mut dyn FnMut(Emit<'_>)) {
        match &mut self.sync {
            Sync::Dead => cx.skipped(out, data.len() as u64),
            Sync::Synced => {
                if self.decode(data, cx, out) {
                    self.try_hunt(false, cx, out);
                }
            }
            Sync::Hunting(h) => {
                h.buf.extend_from_slice(data);
                self.try_hunt(false, cx, out);
            }
        }
    }

    /// `bytes` of this direction were never seen.
    pub fn gap(&mut self, bytes: u64, cx: &mut Cx<'_>, out: &mut dyn FnMut(Emit<'_>)) {
        self.trust = self.trust.after_gap();
        match &mut self.sync {
            Sync::Dead => {}
            Sync::Hunting(h) => h.restart_after_gap(),
            Sync::Synced => {
                // A gap inside a payload keeps the frame sync.
                if self.hdr_len == 0 {
                    if let Some(f) = self.frame.as_mut().filter(|f| f.remaining >= bytes) {
                        f.remaining -= bytes;
                        f.pos += bytes;
                        match f.target {
                            Target::Data => {
                                if let Some(m) = self.msg.as_mut() {
                                    m.lost = true;
                                }
                                self.inflater.reset();
                            }
                            Target::Control => {
                                f.target = Target::Skip;
                                cx.skipped(out, self.ctrl.len() as u64);
                                self.ctrl.clear();
                            }
                            Target::Skip => {}
                        }
                        if f.remaining == 0 {
                            self.end_frame(cx, out);
                        }
                        return;
                    }
                }
                let dropped = self.lose_sync(Vec::new(), 0, true);
                cx.skipped(out, dropped);
            }
        }
    }

    /// No more bytes will come: decode what can be, flush a cut message.
    pub fn end(&mut self, cx: &mut Cx<'_>, out: &mut dyn FnMut(Emit<'_>)) {
        if matches!(self.sync, Sync::Hunting(_)) {
            self.try_hunt(true, cx, out);
        }
        let ever_synced = self.ever_synced();
        match &mut self.sync {
            Sync::Hunting(h) => {
                let n = h.skipped + h.buf.len() as u64;
                if !ever_synced && n > 0 && !mem::replace(cx.not_ws_reported, true) {
                    cx.violation(out, FrameError::NoFraming(n));
                }
                cx.skipped(out, n);
            }
            Sync::Synced => {
                // A header cut by the end, and a message that lost bytes.
                cx.skipped(out, self.hdr_len as u64);
                if let Some(m) = self.msg.take() {
                    if m.lost {
                        cx.skipped(out, m.wire_len);
                    } else {
                        self.finish_msg(m, true, cx, out);
                    }
                }
            }
            Sync::Dead => {}
        }
        self.sync = Sync::Dead;
        self.frame = None;
        self.inflater.reset();
        self.ctrl = Vec::new();
    }

    /// Memory this direction holds: the stream itself, a message or control
    /// frame in progress, the hunt buffer and the inflate history.
    #[inline]
    pub fn mem(&self) -> usize {
        let hunt = match &self.sync {
            Sync::Hunting(h) => std::mem::size_of::<Hunting>() + h.buf.capacity() + h.memo.mem(),
            _ => 0,
        };
        std::mem::size_of::<Self>()
            + self.msg.as_ref().map_or(0, |m| m.buf.capacity())
            + self.ctrl.capacity()
            + hunt
            + self.inflater.mem()
    }

    /// Masking seen on this direction, once frames were decoded.
    pub fn masked(&self) -> Option<bool> {
        self.masking.seen
    }

    /// Switches to hunting: `prefix` then later bytes are searched; `skipped`
    /// counts bytes already given up.
    ///
    /// Returns the bytes of a message (or control frame) in progress that
    /// are dropped with the sync.
    fn lose_sync(&mut self, buf: Vec<u8>, skipped: u64, fresh: bool) -> u64 {
        self.trust = Trust::Earning { good: 0 };
        self.hdr_len = 0;
        self.frame = None;
        let mut dropped = self.ctrl.len() as u64;
        if let Some(m) = self.msg.take() {
            dropped += m.wire_len;
            self.inflater.reset();
        }
        self.ctrl.clear();
        self.skip_cont = true;
        self.sync = Sync::hunting(buf, skipped, fresh);
        dropped
    }

    fn try_hunt(&mut self, at_end: bool, cx: &mut Cx<'_>, out: &mut dyn FnMut(Emit<'_>)) {
        loop {
            // Keep to the masking this side showed; before any frame, expect
            // what the role demands (clients mask, servers never do).
            let expect = self.masking.seen.or(cx.is_client());
            let ever_synced = self.ever_synced();
            let Sync::Hunting(h) = &mut self.sync else {
                return;
            };
            let Hunting {
                buf,
                skipped,
                scanned,
                fresh,
                need0,
                memo,
            } = &mut **h;
            if buf.is_empty() {
                return;
            }
            // A full scan costs the whole buffer: on large buffers it waits
            // until the buffer grew by an eighth. The likeliest boundary,
            // offset 0 of a fresh hunt, is checked as soon as it can be
            // decided, so valid streams resync at the same byte however
            // their bytes were cut.
            let full = at_end || buf.len() <= HUNT_EAGER || buf.len() >= *scanned + *scanned / 8;
            let result = if full {
                *scanned = buf.len();
                memo.hunt(buf, expect, *fresh, at_end)
            } else if *fresh && buf.len() >= *need0 {
                match chain(buf, 0, expect, true, false) {
                    Chain::Confirmed => Hunt::Found(0),
                    Chain::Undecided(n) => {
                        *need0 = n;
                        return;
                    }
                    Chain::Rejected => {
                        *fresh = false;
                        return;
                    }
                }
            } else {
                return;
            };
            match result {
                Hunt::Found(o) => {
                    let n = *skipped + o as u64;
                    let rest = mem::take(buf);
                    self.sync = Sync::Synced;
                    if let Origin::Hunted { found, .. } = &mut self.origin {
                        *found = true;
                    }
                    if let Ok(Some(h)) = FrameHeader::parse(&rest[o..]) {
                        self.note_masking(h.mask.is_some(), cx, out);
                    }
                    cx.emit(out, WsEvent::Resync { skipped: n });
                    if !self.decode(&rest[o..], cx, out) {
                        return;
                    }
                }
                Hunt::NeedMore { discard, need0: n0 } => {
                    *need0 = n0.unwrap_or(usize::MAX);
                    buf.drain(..discard);
                    memo.discard(discard);
                    *skipped += discard as u64;
                    if discard > 0 {
                        *fresh = false;
                    }
                    if buf.len() > HUNT_MAX {
                        let d = buf.len() - HUNT_MAX / 2;
                        buf.drain(..d);
                        memo.discard(d);
                        *skipped += d as u64;
                        *fresh = false;
                    }
                    *scanned = buf.len();
                    if !ever_synced && *skipped > GIVE_UP_BYTES {
                        let n = *skipped;
                        cx.skipped(out, n + buf.len() as u64);
                        self.sync = Sync::Dead;
                        if !mem::replace(cx.not_ws_reported, true) {
                            cx.violation(out, FrameError::NoFramingIgnored(n));
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Remembers the masking this side uses; masked frames from a side whose
    /// role is unknown suggest it is the client.
    fn note_masking(&mut self, masked: bool, cx: &mut Cx<'_>, out: &mut dyn FnMut(Emit<'_>)) {
        self.masking.seen = Some(masked);
        if masked && cx.role.client().is_none() {
            let fact = RoleFact::Suggests(cx.side);
            cx.role.learn(fact);
            out(Emit::Role(fact));
        }
    }

    /// Decodes frames from `data`. Returns true when sync was lost and the
    /// rest of `data` was moved to the hunt buffer.
    fn decode(&mut self, data: &[u8], cx: &mut Cx<'_>, out: &mut dyn FnMut(Emit<'_>)) -> bool {
        let mut i = 0;
        while i < data.len() {
            if self.frame.is_some() {
                i += self.payload(&data[i..], cx, out);
                continue;
            }
            let h = match self.header(data, i, cx, out) {
                HeaderStep::Partial => return false,
                HeaderStep::Lost => return !matches!(self.sync, Sync::Dead),
                HeaderStep::Header(h, consumed) => {
                    i += consumed;
                    h
                }
            };
            let target = self.start_frame(&h, cx, out);
            let avail = (data.len() - i) as u64;
            if h.mask.is_none() && h.len <= avail && target != Target::Skip {
                let end = i + h.len as usize;
                if self.emit_whole(&h, target, &data[i..end], cx, out) {
                    i = end;
                    continue;
                }
            }
            self.frame = Some(Frame {
                h,
                remaining: h.len,
                pos: 0,
                target,
            });
            if h.len == 0 {
                self.end_frame(cx, out);
            }
        }
        false
    }

    /// The header at `data[i..]`, possibly completing one cut by the
    /// previous slice. An implausible header while the sync is in doubt (or
    /// a malformed one) loses sync: the bytes after its first byte are
    /// searched again.
    fn header(
        &mut self,
        data: &[u8],
        mut i: usize,
        cx: &mut Cx<'_>,
        out: &mut dyn FnMut(Emit<'_>),
    ) -> HeaderStep {
        let start = i;
        let (parsed, from_buf) = if self.hdr_len == 0 {
            match FrameHeader::parse(&data[i..]) {
                Ok(None) => {
                    let n = data.len() - i;
                    self.hdr[..n].copy_from_slice(&data[i..]);
                    self.hdr_len = n;
                    return HeaderStep::Partial;
                }
                r => (r, false),
            }
        } else {
            loop {
                let need = FrameHeader::needed(&self.hdr[..self.hdr_len]).unwrap_or(2);
                if self.hdr_len >= need {
                    break;
                }
                let take = (need - self.hdr_len).min(data.len() - i);
                self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&data[i..i + take]);
                self.hdr_len += take;
                i += take;
                if self.hdr_len < need {
                    return HeaderStep::Partial;
                }
            }
            (FrameHeader::parse(&self.hdr[..self.hdr_len]), true)
        };
        let h = match parsed {
            Ok(Some(h)) if self.trust.certain() || h.plausible() => h,
            // Unreachable: the whole header is present.
            Ok(None) => return HeaderStep::Partial,
            Ok(Some(_)) | Err(_) => {
                let e = match parsed {
                    Err(e) => e,
                    _ => FrameError::SyncLost,
                };
                cx.violation(out, e);
                // Search again from the byte after this header start.
                let mut buf = Vec::new();
                if from_buf {
                    buf.extend_from_slice(&self.hdr[1..self.hdr_len]);
                    buf.extend_from_slice(&data[i..]);
                } else {
                    buf.extend_from_slice(&data[i + 1..]);
                }
                let rest = buf.len() as u64;
                let dropped = self.lose_sync(buf, 1, false);
                cx.skipped(out, dropped);
                if let Origin::Hunted { losses, .. } = &mut self.origin {
                    *losses += 1;
                    if *losses >= GIVE_UP_LOSSES {
                        let n = *losses;
                        // The byte at the bad header and the rest.
                        cx.skipped(out, 1 + rest);
                        self.sync = Sync::Dead;
                        cx.violation(out, FrameError::GaveUp(n));
                    }
                }
                return HeaderStep::Lost;
            }
        };
        if !self.trust.certain() {
            self.trust = self.trust.after_frame();
        }
        self.hdr_len = 0;
        let consumed = if from_buf {
            i - start
        } else {
            i - start + h.header_len
        };
        HeaderStep::Header(h, consumed)
    }

    /// Payload bytes of the current frame from the start of `data`; returns
    /// how many were taken.
    fn payload(&mut self, data: &[u8], cx: &mut Cx<'_>, out: &mut dyn FnMut(Emit<'_>)) -> usize {
        let Some(f) = self.frame.as_mut() else {
            return 0;
        };
        let n = f.remaining.min(data.len() as u64) as usize;
        let chunk = &data[..n];
        let cap = cx.cfg.max_message;
        match f.target {
            Target::Data => {
                if let Some(m) = self.msg.as_mut() {
                    m.wire_len += n as u64;
                    let keep = n.min(cap.saturating_sub(m.buf.len()));
                    if !m.lost && keep > 0 {
                        reserve_capped(&mut m.buf, keep, cap);
                        extend_unmasked(&mut m.buf, &chunk[..keep], f.h.mask, f.pos);
                    }
                }
            }
            Target::Control => {
                let keep = n.min(CONTROL_MAX.saturating_sub(self.ctrl.len()));
                reserve_capped(&mut self.ctrl, keep, CONTROL_MAX);
                extend_unmasked(&mut self.ctrl, &chunk[..keep], f.h.mask, f.pos);
            }
            Target::Skip => cx.skipped(out, n as u64),
        }
        f.pos += n as u64;
        f.remaining -= n as u64;
        if f.remaining == 0 {
            self.end_frame(cx, out);
        }
        n
    }

    /// Reports header rule violations and picks where the payload goes.
    fn start_frame(
        &mut self,
        h: &FrameHeader,
        cx: &mut Cx<'_>,
        out: &mut dyn FnMut(Emit<'_>),
    ) -> Target {
        let rsv1_ok = cx.deflate != DeflateMode::Off;
        let mut errs: [Option<FrameError>; 4] = Default::default();
        let mut k = 0;
        h.violations(rsv1_ok, |e| {
            if let Some(slot) = errs.get_mut(k) {
                *slot = Some(e);
                k += 1;
            }
        });
        for e in errs.into_iter().flatten() {
            cx.violation(out, e);
        }
        let masked = h.mask.is_some();
        self.note_masking(masked, cx, out);
        if !self.masking.warned {
            let broken = match cx.is_client() {
                Some(true) if !masked => Some(FrameError::UnmaskedClient),
                Some(false) if masked => Some(FrameError::MaskedServer),
                _ => None,
            };
            if let Some(e) = broken {
                self.masking.warned = true;
                cx.violation(out, e);
            }
        }
        match h.opcode {
            Opcode::Reserved(_) => Target::Skip,
            Opcode::Close | Opcode::Ping | Opcode::Pong => {
                self.ctrl.clear();
                Target::Control
            }
            Opcode::Text | Opcode::Binary => {
                if let Some(old) = self.msg.take() {
                    if !old.lost {
                        cx.violation(out, FrameError::MessageInterrupted);
                    }
                    cx.skipped(out, old.wire_len);
                    if old.compressed {
                        self.inflater.reset();
                    }
                }
                self.skip_cont = false;
                let kind = if h.opcode == Opcode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                let compressed = h.rsv & 0b100 != 0 && cx.deflate != DeflateMode::Off;
                self.msg = Some(Msg {
                    kind,
                    compressed,
                    buf: Vec::new(),
                    wire_len: 0,
                    fragments: 1,
                    lost: false,
                });
                Target::Data
            }
            Opcode::Continuation => {
                if let Some(m) = self.msg.as_mut() {
                    m.fragments = m.fragments.saturating_add(1);
                    Target::Data
                } else {
                    if !self.skip_cont {
                        cx.violation(out, FrameError::ContinuationWithoutStart);
                    }
                    Target::Skip
                }
            }
        }
    }

    /// A whole unmasked frame inside the caller's slice: emits it borrowed
    /// when nothing needs copying. Returns false to take the copying path.
    fn emit_whole<'d>(
        &mut self,
        h: &FrameHeader,
        target: Target,
        payload: &'d [u8],
        cx: &mut Cx<'_>,
        out: &mut dyn FnMut(Emit<'_>),
    ) -> bool {
        match target {
            Target::Control => {
                // Same cap as the copying path (a hostile control frame can be long).
                let kept = &payload[..payload.len().min(CONTROL_MAX)];
                self.emit_control(h.opcode, Cow::Borrowed(kept), cx, out);
                true
            }
            Target::Data => {
                let simple = h.fin
                    && matches!(h.opcode, Opcode::Text | Opcode::Binary)
                    && self.msg.as_ref().is_some_and(|m| !m.compressed);
                if !simple {
                    return false;
                }
                let Some(m) = self.msg.take() else {
                    return false;
                };
                let cap = cx.cfg.max_message;
                let truncated = payload.len() > cap;
                let kept = &payload[..payload.len().min(cap)];
                let facts = MsgFacts {
                    kind: m.kind,
                    len: payload.len() as u64,
                    wire_len: payload.len() as u64,
                    len_exact: true,
                    compressed: false,
                    fragments: 1,
                    truncated,
                };
                emit_message(Cow::Borrowed(kept), facts, cx, out);
                true
            }
            Target::Skip => false,
        }
    }

    fn end_frame(&mut self, cx: &mut Cx<'_>, out: &mut dyn FnMut(Emit<'_>)) {
        let Some(f) = self.frame.take() else {
            return;
        };
        match f.target {
            Target::Control => {
                let mut payload = mem::take(&mut self.ctrl);
                if f.h.len > payload.len() as u64 {
                    // Over the cap: keep what fits, as messages do.
                    payload.truncate(CONTROL_MAX);
                }
                self.emit_control(f.h.opcode, Cow::Owned(payload), cx, out);
            }
            Target::Data if f.h.fin => {
                if let Some(m) = self.msg.take() {
                    if m.lost {
                        cx.skipped(out, m.wire_len);
                        if m.compressed {
                            self.inflater.reset();
                        }
                    } else {
                        self.finish_msg(m, false, cx, out);
                    }
                }
            }
            Target::Skip if f.h.fin && f.h.opcode == Opcode::Continuation => self.skip_cont = false,
            _ => {}
        }
    }

    fn emit_control<'d>(
        &mut self,
        op: Opcode,
        payload: Cow<'d, [u8]>,
        cx: &mut Cx<'_>,
        out: &mut dyn FnMut(Emit<'_>),
    ) {
        let kind = match op {
            Opcode::Ping => WsEvent::Ping { payload },
            Opcode::Pong => WsEvent::Pong { payload },
            _ => {
                let (code, reason) = match payload.len() {
                    0 => (None, Cow::Borrowed(&[][..])),
                    1 => {
                        cx.violation(out, FrameError::CloseOneByte);
                        (None, Cow::Borrowed(&[][..]))
                    }
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        if !close_code_ok(code) {
                            cx.violation(out, FrameError::BadCloseCode(code));
                        }
                        let reason = match payload {
                            Cow::Borrowed(b) => Cow::Borrowed(&b[2..]),
                            Cow::Owned(mut v) => {
                                v.drain(..2);
                                Cow::Owned(v)
                            }
                        };
                        (Some(code), reason)
                    }
                };
                WsEvent::Close { code, reason }
            }
        };
        cx.emit(out, kind);
    }

    /// A data message is complete (or cut by the stream end when `cut`).
    fn finish_msg(&mut self, m: Msg, cut: bool, cx: &mut Cx<'_>, out: &mut dyn FnMut(Emit<'_>)) {
        let cap = cx.cfg.max_message;
        let over = m.wire_len > cap as u64;
        if !m.compressed {
            let facts = MsgFacts {
                kind: m.kind,
                len: m.wire_len,
                wire_len: m.wire_len,
                // Cut by the end of the stream: more was to come.
                len_exact: !cut,
                compressed: false,
                fragments: m.fragments,
                truncated: over || cut,
            };
            emit_message(Cow::Owned(m.buf), facts, cx, out);
            return;
        }
        let dcfg = match cx.deflate {
            DeflateMode::On(c) => c,
            _ => DeflateConfig::default(),
        };
        let complete = !over && !cut;
        match self
            .inflater
            .inflate(dcfg, &m.buf, complete, cx.cfg.max_inflated)
        {
            Ok(r) => {
                let facts = MsgFacts {
                    kind: m.kind,
                    len: r.len,
                    wire_len: m.wire_len,
                    // Only part of it was inflated (cut on the wire, or
                    // the bomb guard stopped counting).
                    len_exact: complete && r.len_exact,
                    compressed: true,
                    fragments: m.fragments,
                    truncated: r.capped || !complete,
                };
                emit_message(Cow::Owned(r.data), facts, cx, out);
            }
            Err(error) => {
                cx.emit(
                    out,
                    WsEvent::Undecompressable {
                        kind: m.kind,
                        raw: Cow::Owned(m.buf),
                        error,
                    },
                );
            }
        }
    }
}

/// What a message event says besides its payload.
struct MsgFacts {
    kind: MessageKind,
    len: u64,
    wire_len: u64,
    len_exact: bool,
    compressed: bool,
    fragments: u32,
    truncated: bool,
}

fn emit_message(
    payload: Cow<'_, [u8]>,
    f: MsgFacts,
    cx: &mut Cx<'_>,
    out: &mut dyn FnMut(Emit<'_>),
) {
    let invalid_utf8 = f.kind == MessageKind::Text && !utf8_ok(&payload, f.truncated);
    cx.emit(
        out,
        WsEvent::Message {
            kind: f.kind,
            payload,
            len: f.len,
            wire_len: f.wire_len,
            len_exact: f.len_exact,
            compressed: f.compressed,
            fragments: f.fragments,
            invalid_utf8,
            truncated: f.truncated,
        },
    );
}

/// UTF-8 check; a truncated payload may end inside a character.
fn utf8_ok(b: &[u8], truncated: bool) -> bool {
    if simdutf8::basic::from_utf8(b).is_ok() {
        return true;
    }
    truncated && matches!(simdutf8::compat::from_utf8(b), Err(e) if e.error_len().is_none())
}

/// Close codes a peer may send (RFC 6455 §7.4.1, §7.4.2).
pub(crate) fn close_code_ok(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}
