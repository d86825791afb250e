//! permessage-deflate (RFC 7692): one raw-inflate context per direction.
//!
//! Between messages a direction keeps only what the next message may refer
//! back to: the last `2^window_bits` bytes of its output (4 KiB for the
//! common 12-bit windows, 32 KiB at most), trimmed in batches (at most a
//! quarter window more). Each message is inflated by a
//! fresh inflater primed with that history as its dictionary, which gives
//! exactly the bytes a long-lived context would (a message always starts on
//! a block boundary after the sender's sync flush). The inflaters belong to
//! the thread ([`Contexts`]): the last few directions that kept a context
//! go on with their live one; any other is started from a reset one primed
//! with its history. Setting up a fresh inflater per message (47 KB
//! allocated and initialised) cost ~1.5 µs, most of the time of a small
//! compressed message, and priming one a tenth. It always has a 15-bit window,
//! which inflates every stream a smaller window produces to the same bytes
//! (the history given as its dictionary is what bounds how far back a
//! message can refer). A live zlib-rs inflater
//! holds about 47 KB whatever the window, so keeping one per direction cost
//! ~350 MiB for 5,000 compressed connections; the history costs what the
//! window says. Nothing is allocated before the first compressed message;
//! the history is dropped after every message when the sender does not take
//! over its context, and whenever data was missed (gap, mid-stream start,
//! failed message): a message that then refers back fails with "invalid
//! distance too far back", it never yields wrong bytes.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

use super::unmask::reserve_capped;

/// The tail a sender strips from each message (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Output chunk size while inflating.
const CHUNK: usize = 16 * 1024;
/// Least output room asked for at a time.
const MIN_ROOM: usize = 256;
/// Past the output cap, inflating goes on (uncounted output is discarded) so
/// the context stays usable and the real length is known, but only up to
/// this many bytes or 8 times the cap: a decompression bomb costs bounded CPU.
const COUNT_FLOOR: u64 = 64 << 20;

/// Live contexts a thread keeps for the directions that used them last
/// (47.5 KB each): a direction whose context is still here goes on with it,
/// without a reset and without its history copied in again.
const LIVE_CONTEXTS: usize = 8;

/// The thread's inflaters between messages (see the module doc).
#[derive(Default)]
struct Contexts {
    /// `(direction, context)` of the directions that kept theirs, oldest
    /// first; each one went on exactly from that direction's last message.
    live: Vec<(u64, Decompress)>,
    /// One to reset and prime for a direction without a live one.
    spare: Option<Decompress>,
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

/// Numbers directions for [`Contexts::live`]; 0 is none.
static NEXT_DIRECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The live context of direction `id`, if the thread still has it.
fn take_live(id: u64) -> Option<Decompress> {
    CONTEXTS.with(|c| {
        let mut c = c.borrow_mut();
        let i = c.live.iter().position(|(d, _)| *d == id)?;
        Some(c.live.remove(i).1)
    })
}

/// A context to start from the history: reset, or new the first time.
fn take_fresh() -> Decompress {
    match CONTEXTS.with(|c| c.borrow_mut().spare.take()) {
        Some(mut d) => {
            d.reset(false);
            d
        }
        None => Decompress::new_with_window_bits(false, 15),
    }
}

/// Gives `d` back: as direction `id`'s live context (the oldest one goes
/// if there are too many), or as the spare when `id` is `None`.
fn give_back(d: Decompress, id: Option<u64>) {
    CONTEXTS.with(|c| {
        let mut c = c.borrow_mut();
        let Some(id) = id else {
            c.spare = Some(d);
            return;
        };
        c.live.retain(|(x, _)| *x != id);
        if c.live.len() == LIVE_CONTEXTS {
            let (_, old) = c.live.remove(0);
            c.spare = Some(old);
        }
        c.live.push((id, d));
    });
}

/// How one direction compresses, from the handshake (or guessed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// LZ77 window of the sender (8..=15).
    pub window_bits: u8,
    /// The sender resets its context after every message.
    pub no_context_takeover: bool,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            window_bits: 15,
            no_context_takeover: false,
        }
    }
}

/// Result of inflating one message.
#[derive(Debug)]
pub struct Inflated {
    /// First `max_out` bytes of the output.
    pub data: Vec<u8>,
    /// Total inflated length (counted past `max_out`).
    pub len: u64,
    /// Output was longer than `max_out`.
    pub capped: bool,
    /// False when counting stopped at the limit (a decompression bomb):
    /// `len` is then a lower bound.
    pub len_exact: bool,
}

/// A direction's inflate state; holds no memory until first used.
#[derive(Default)]
pub struct Inflater {
    /// The last `2^window_bits` bytes of this direction's output.
    history: Vec<u8>,
    /// A context is in use (its history may still be empty).
    live: bool,
    /// This direction's number among the thread's live contexts (0: none
    /// yet); its entry there is only used while `live`.
    id: u64,
}

impl Inflater {
    /// Forgets the context (data was lost, or the sender resets it).
    pub fn reset(&mut self) {
        self.history = Vec::new();
        self.live = false;
    }

    /// Memory held between messages.
    #[inline]
    pub fn mem(&self) -> usize {
        self.history.capacity()
    }

    /// True while a context is kept between messages.
    pub fn has_context(&self) -> bool {
        self.live
    }

    /// Inflates one message's compressed payload. `complete`: the whole
    /// payload is here (append the tail); otherwise the prefix is inflated
    /// as far as possible and the context is dropped afterwards.
    pub fn inflate(
        &mut self,
        cfg: DeflateConfig,
        input: &[u8],
        complete: bool,
        max_out: usize,
    ) -> Result<Inflated, String> {
        let limit = (max_out as u64).saturating_mul(8).max(COUNT_FLOOR);
        self.inflate_limited(cfg, input, complete, max_out, limit)
    }

    /// [`Inflater::inflate`] with an explicit counting limit.
    fn inflate_limited(
        &mut self,
        cfg: DeflateConfig,
        input: &[u8],
        complete: bool,
        max_out: usize,
        limit: u64,
    ) -> Result<Inflated, String> {
        let bits = cfg.window_bits.clamp(9, 15);
        // Only a context kept after this direction's last message is taken
        // up; a reset (gap, lost message) clears `live`, and the stale entry
        // is replaced once a message succeeds again.
        let live = if self.live { take_live(self.id) } else { None };
        let prime = live.is_none();
        let mut ctx = live.unwrap_or_else(take_fresh);
        let res = self.inflate_with(&mut ctx, cfg, bits, input, complete, max_out, limit, prime);
        if self.live {
            if self.id == 0 {
                self.id = NEXT_DIRECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            give_back(ctx, Some(self.id));
        } else {
            give_back(ctx, None);
        }
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn inflate_with(
        &mut self,
        ctx: &mut Decompress,
        cfg: DeflateConfig,
        bits: u8,
        input: &[u8],
        complete: bool,
        max_out: usize,
        limit: u64,
        prime: bool,
    ) -> Result<Inflated, String> {
        let mut history = History {
            bytes: std::mem::take(&mut self.history),
            window: 1 << bits,
        };
        self.live = false;
        if prime && !history.bytes.is_empty() {
            ctx.set_dictionary(history.dictionary())
                .map_err(|e| e.to_string())?;
        }
        let mut res = Inflated {
            data: Vec::new(),
            len: 0,
            capped: false,
            len_exact: true,
        };
        let mut scratch = [0u8; 4096];
        let mut out = Out {
            res: &mut res,
            history: &mut history,
            scratch: &mut scratch,
        };
        let end = run(ctx, input, &mut out, max_out, limit).and_then(|end| {
            if complete && end == End::More {
                run(ctx, &TAIL, &mut out, max_out, limit)
            } else {
                Ok(end)
            }
        })?;
        // A stream that ended, was cut, or was given up on cannot go on.
        if !cfg.no_context_takeover && complete && end == End::More {
            // At most a window and a quarter is kept (see push); memory
            // grown for a long message goes back.
            if history.bytes.capacity() > history.slack() + history.window / 4 {
                history.bytes.shrink_to(history.slack());
            }
            self.history = history.bytes;
            self.live = true;
        }
        Ok(res)
    }
}

/// The sliding tail of a direction's output that later messages may refer to.
struct History {
    bytes: Vec<u8>,
    /// `2^window_bits`.
    window: usize,
}

impl History {
    fn push(&mut self, produced: &[u8]) {
        if produced.len() >= self.window {
            self.bytes.clear();
            self.bytes
                .extend_from_slice(&produced[produced.len() - self.window..]);
            return;
        }
        self.bytes.extend_from_slice(produced);
        // Trim in batches: one move per quarter window of output, not one
        // per message (a move per small message was a tenth of its time).
        if self.bytes.len() > self.slack() {
            self.trim();
        }
    }

    /// Most bytes kept between messages: the window and a quarter.
    fn slack(&self) -> usize {
        self.window + self.window / 4
    }

    fn trim(&mut self) {
        let excess = self.bytes.len().saturating_sub(self.window);
        self.bytes.drain(..excess);
    }

    /// What a message may refer back to: the last window of output.
    fn dictionary(&self) -> &[u8] {
        &self.bytes[self.bytes.len().saturating_sub(self.window)..]
    }
}

/// Where one message's output goes: kept (up to `max_out`), and always
/// into the history.
struct Out<'a> {
    res: &'a mut Inflated,
    history: &'a mut History,
    scratch: &'a mut [u8],
}

/// How a [`run`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Input used up; the stream goes on with the next message.
    More,
    /// The deflate stream ended (BFINAL block); the context cannot continue.
    Final,
    /// Output passed the counting limit; the rest was not inflated.
    GaveUp,
}

/// Feeds `input` through `ctx`, keeping the first `max_out` bytes of output
/// and counting the rest up to `limit`.
fn run(
    ctx: &mut Decompress,
    mut input: &[u8],
    out: &mut Out<'_>,
    max_out: usize,
    limit: u64,
) -> Result<End, String> {
    loop {
        let res = &mut *out.res;
        if res.len > limit {
            res.capped = true;
            res.len_exact = false;
            return Ok(End::GaveUp);
        }
        let before_in = ctx.total_in();
        let before_out = ctx.total_out();
        let (status, space) = if res.data.len() < max_out {
            // Room for about what this input inflates to (at least 4×, at
            // most a chunk; reserve_capped doubles when more comes): a
            // chunk per call zeroed and reallocated 16 KiB twice for every
            // small message, half the time of small compressed traffic.
            let guess = input.len().saturating_mul(4).clamp(MIN_ROOM, CHUNK);
            let want = (max_out - res.data.len()).min(guess);
            // Room left from the last call is used first (the tail after a
            // message's last frame needs a few bytes, not a new buffer).
            if res.data.capacity() - res.data.len() < want.min(MIN_ROOM / 4) {
                reserve_capped(&mut res.data, want, max_out);
            }
            let room = (res.data.capacity() - res.data.len()).min(max_out - res.data.len());
            let start = res.data.len();
            res.data.resize(start + room, 0);
            let st = ctx.decompress(input, &mut res.data[start..], FlushDecompress::Sync);
            let produced = (ctx.total_out() - before_out) as usize;
            res.data.truncate(start + produced);
            out.history.push(&res.data[start..]);
            (st, room)
        } else {
            let st = ctx.decompress(input, out.scratch, FlushDecompress::Sync);
            let produced = (ctx.total_out() - before_out) as usize;
            if produced > 0 {
                res.capped = true;
            }
            out.history.push(&out.scratch[..produced]);
            (st, out.scratch.len())
        };
        let status = status.map_err(|e| e.to_string())?;
        let consumed = (ctx.total_in() - before_in) as usize;
        let produced = (ctx.total_out() - before_out) as usize;
        out.res.len += produced as u64;
        input = input.get(consumed..).unwrap_or(&[]);
        match status {
            Status::StreamEnd => return Ok(End::Final),
            Status::BufError if consumed == 0 && produced == 0 => return Ok(End::More),
            _ => {}
        }
        if input.is_empty() && produced < space {
            return Ok(End::More);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    /// Compresses like a permessage-deflate sender: sync flush, tail removed.
    pub(crate) fn compress_msg(c: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        let start_in = c.total_in();
        loop {
            let consumed = (c.total_in() - start_in) as usize;
            out.reserve(1024);
            c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
                .unwrap();
            if (c.total_in() - start_in) as usize == data.len() && out.ends_with(&TAIL) {
                break;
            }
        }
        out.truncate(out.len() - 4);
        out
    }

    pub(crate) fn raw_compressor() -> Compress {
        Compress::new_with_window_bits(Compression::default(), false, 15)
    }

    /// Later messages refer back into earlier ones across more than a
    /// window of output, with the full and a reduced window: inflating with
    /// only the kept history must give exactly what was compressed, and the
    /// history stays one window long.
    #[test]
    fn takeover_across_many_messages_keeps_only_a_window() {
        for bits in [15u8, 9] {
            let mut c = Compress::new_with_window_bits(Compression::default(), false, bits);
            let mut inf = Inflater::default();
            let cfg = DeflateConfig {
                window_bits: bits,
                no_context_takeover: false,
            };
            let mut x = 12345u32;
            let mut prev: Vec<u8> = Vec::new();
            for i in 0..12 {
                // Fresh pseudo-random bytes, then a repeat of the end of the
                // previous message (a back-reference into it).
                let mut msg: Vec<u8> = (0..(3000 + i * 7000))
                    .map(|_| {
                        x = x.wrapping_mul(1103515245).wrapping_add(12345);
                        (x >> 16) as u8
                    })
                    .collect();
                let tail = prev.len().saturating_sub(200);
                msg.extend_from_slice(&prev[tail..]);
                let z = compress_msg(&mut c, &msg);
                let out = inf.inflate(cfg, &z, true, 1 << 20).unwrap();
                assert_eq!(out.data, msg, "bits {bits}, message {i}");
                let window = 1usize << bits;
                assert!(inf.history.len() <= window + window / 4);
                assert!(
                    inf.history.capacity() <= window + window / 2,
                    "history capacity stays about one window"
                );
                prev = msg;
            }
        }
    }

    #[test]
    fn rfc7692_hello() {
        let mut inf = Inflater::default();
        let r = inf
            .inflate(
                DeflateConfig::default(),
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                true,
                1 << 20,
            )
            .unwrap();
        assert_eq!(r.data, b"Hello");
        assert_eq!(r.len, 5);
        assert!(inf.has_context());
        // Context takeover: the second "Hello" refers back to the first.
        let r = inf
            .inflate(
                DeflateConfig::default(),
                &[0xf2, 0x00, 0x11, 0x00, 0x00],
                true,
                99,
            )
            .unwrap();
        assert_eq!(r.data, b"Hello");
    }

    #[test]
    fn no_takeover_frees_context() {
        let mut inf = Inflater::default();
        let cfg = DeflateConfig {
            window_bits: 15,
            no_context_takeover: true,
        };
        let r = inf
            .inflate(cfg, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], true, 99)
            .unwrap();
        assert_eq!(r.data, b"Hello");
        assert!(!inf.has_context());
    }

    #[test]
    fn lost_context_fails_then_recovers() {
        let mut c = raw_compressor();
        let a = compress_msg(&mut c, b"abcdefghijabcdefghij");
        let b = compress_msg(&mut c, b"abcdefghij");
        let mut inf = Inflater::default();
        // Missed the first message: the second refers back into it.
        let e = inf.inflate(DeflateConfig::default(), &b, true, 1 << 20);
        assert!(e.is_err(), "{e:?}");
        assert!(!inf.has_context());
        let ok = inf
            .inflate(DeflateConfig::default(), &a, true, 1 << 20)
            .unwrap();
        assert_eq!(ok.data, b"abcdefghijabcdefghij");
    }

    /// More directions than the thread keeps live contexts for, messages
    /// interleaved: each inflates to exactly what was sent, whether it went
    /// on with its live context or was primed from its history.
    #[test]
    fn many_directions_interleaved_inflate_exactly() {
        let n = LIVE_CONTEXTS * 2 + 3;
        let mut senders: Vec<Compress> = (0..n).map(|_| raw_compressor()).collect();
        let mut inflaters: Vec<Inflater> = (0..n).map(|_| Inflater::default()).collect();
        for round in 0..40usize {
            // A few directions at a time, so that some stay live and others
            // are evicted in between.
            for d in (0..n).filter(|d| (d + round) % 3 != 0) {
                let msg =
                    format!("direction {d} round {round} says direction {d} round {round} again");
                let z = compress_msg(&mut senders[d], msg.as_bytes());
                let out = inflaters[d]
                    .inflate(DeflateConfig::default(), &z, true, 1 << 20)
                    .unwrap();
                assert_eq!(out.data, msg.as_bytes(), "direction {d}, round {round}");
            }
        }
    }

    /// A direction that lost its context (reset after a gap) must not go on
    /// with the live one the thread still holds for it.
    #[test]
    fn a_reset_direction_does_not_use_its_stale_live_context() {
        let mut c = raw_compressor();
        let a = compress_msg(&mut c, b"abcdefghijabcdefghij");
        let b = compress_msg(&mut c, b"abcdefghij");
        let mut inf = Inflater::default();
        inf.inflate(DeflateConfig::default(), &a, true, 1 << 20)
            .unwrap();
        assert!(inf.has_context());
        inf.reset();
        let e = inf.inflate(DeflateConfig::default(), &b, true, 1 << 20);
        assert!(e.is_err(), "{e:?}");
    }

    #[test]
    fn capped_output_counts_real_length_and_keeps_context() {
        let mut c = raw_compressor();
        let big = vec![b'x'; 100_000];
        let a = compress_msg(&mut c, &big);
        let b = compress_msg(&mut c, b"tail-message");
        let mut inf = Inflater::default();
        let r = inf
            .inflate(DeflateConfig::default(), &a, true, 1000)
            .unwrap();
        assert_eq!(r.data.len(), 1000);
        assert_eq!(r.len, 100_000);
        assert!(r.capped);
        let r = inf
            .inflate(DeflateConfig::default(), &b, true, 1000)
            .unwrap();
        assert_eq!(r.data, b"tail-message");
        assert!(!r.capped);
    }

    #[test]
    fn bomb_counting_is_bounded() {
        let mut c = raw_compressor();
        let bomb = compress_msg(&mut c, &vec![0u8; 4 << 20]);
        let mut inf = Inflater::default();
        let r = inf
            .inflate_limited(DeflateConfig::default(), &bomb, true, 1000, 1 << 20)
            .unwrap();
        assert!(r.capped);
        assert_eq!(r.data.len(), 1000);
        assert!(r.len > 1 << 20 && r.len < 4 << 20, "{}", r.len);
        assert!(!r.len_exact, "counting stopped: len is a lower bound");
        assert!(!inf.has_context(), "context given up");
    }

    #[test]
    fn final_block_ends_context() {
        // A sender may end a message with a BFINAL block (RFC 7692 §7.2.3.3).
        let mut c = raw_compressor();
        let mut out = Vec::with_capacity(64);
        c.compress_vec(b"done", &mut out, FlushCompress::Finish)
            .unwrap();
        let mut inf = Inflater::default();
        let r = inf
            .inflate(DeflateConfig::default(), &out, true, 100)
            .unwrap();
        assert_eq!(r.data, b"done");
        assert!(!inf.has_context());
    }

    #[test]
    fn window_bits_eight_clamped() {
        let mut c = Compress::new_with_window_bits(Compression::default(), false, 9);
        let a = compress_msg(&mut c, b"hello hello hello");
        let mut inf = Inflater::default();
        let cfg = DeflateConfig {
            window_bits: 8,
            no_context_takeover: false,
        };
        assert_eq!(
            inf.inflate(cfg, &a, true, 100).unwrap().data,
            b"hello hello hello"
        );
    }

    #[test]
    fn garbage_is_error() {
        let mut inf = Inflater::default();
        assert!(inf
            .inflate(
                DeflateConfig::default(),
                &[0xff, 0xff, 0xff, 0x00],
                true,
                100
            )
            .is_err());
    }
}
