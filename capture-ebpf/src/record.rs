//! Ring records: a segment's header fields and its payload, copied into the
//! ring in chunks of at most `CHUNK_MAX` bytes (the layout is
//! `capture_common::RecordHeader`). Every record that does not fit is
//! counted, never dropped silently.

use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_ringbuf_output};
use capture_common::{
    kind, Counter, RecordHeader, RecordPrefix, Scratch, CHUNKS_MAX, CHUNK_MAX, HEADER_LEN,
    REC_CUT_SHORT, REC_FIRST, REC_LAST, WIRE_VERSION,
};

use crate::maps::{count, wakeup_flags, RECORDS, SCRATCH};
use crate::packet::Packet;
use crate::parse::Seg;

/// Writes `seg` as one record per chunk. `csum` is what the kernel knows of
/// its checksum (`capture_common::csum`).
#[inline(always)]
pub fn emit<P: Packet>(p: &P, seg: &Seg, direction: u8, csum: u8) {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let scratch = unsafe { &mut *scratch };
    let h: &mut RecordHeader = &mut scratch.header;
    h.prefix = RecordPrefix {
        kind: kind::TCP_SEGMENT,
        version: WIRE_VERSION,
    };
    h.ts_ns = unsafe { bpf_ktime_get_ns() };
    h.saddr = seg.saddr;
    h.daddr = seg.daddr;
    h.ifindex = p.ifindex();
    h.seq = seg.seq;
    h.ack = seg.ack;
    h.seg_len = seg.payload_len;
    h.sport = seg.sport;
    h.dport = seg.dport;
    h.window = seg.window;
    h.tcp_flags = seg.flags;
    h.family = seg.family;
    h.direction = direction;
    h.csum = csum;

    let total = seg.payload_len as u64;
    let limit = CHUNKS_MAX as u64 * CHUNK_MAX as u64;
    let deliver = if total > limit { limit } else { total };
    // The loop state lives in map memory and is re-read with volatile loads
    // each iteration: the verifier then sees unknown (bounded) scalars instead
    // of exact ranges, so every iteration verifies alike and states prune.
    h.offset = 0;
    unsafe {
        core::ptr::write_volatile(&mut scratch.deliver, deliver as u32);
        core::ptr::write_volatile(&mut scratch.payload_off, seg.payload_off);
    }
    let mut i: u32 = 0;
    while i < CHUNKS_MAX {
        let (done, deliver, poff) = unsafe {
            (
                core::ptr::read_volatile(&scratch.header.offset) as u64,
                core::ptr::read_volatile(&scratch.deliver) as u64,
                core::ptr::read_volatile(&scratch.payload_off) as u64,
            )
        };
        if done > deliver {
            break;
        }
        let rest = deliver - done;
        let len = if rest > CHUNK_MAX as u64 {
            CHUNK_MAX as u64
        } else {
            rest
        };
        let last = done + len >= deliver;
        if len > 0 {
            if !aya_ebpf::check_bounds_signed(len as i64, 1, CHUNK_MAX as i64) {
                break;
            }
            if !p.load_chunk((poff + done) as u32, scratch.data.as_mut_ptr(), len as u32) {
                // Unreadable: count everything from here on as cut short.
                count(Counter::CutShortSegments, 1);
                count(Counter::CutShortBytes, total - done);
                return;
            }
        }
        let mut rf = 0u8;
        if i == 0 {
            rf |= REC_FIRST;
        }
        if last {
            rf |= REC_LAST;
            if total > deliver {
                rf |= REC_CUT_SHORT;
            }
        }
        let h = &mut scratch.header;
        h.chunk_len = len as u32;
        h.rec_flags = rf;
        let size = HEADER_LEN as u64 + len;
        if !aya_ebpf::check_bounds_signed(
            size as i64,
            HEADER_LEN as i64,
            (HEADER_LEN + CHUNK_MAX) as i64,
        ) {
            break;
        }
        let r = unsafe {
            bpf_ringbuf_output(
                &RECORDS as *const _ as *mut _,
                scratch as *mut Scratch as *mut _,
                size,
                wakeup_flags(size),
            )
        };
        if r < 0 {
            count(Counter::RecordsLost, 1);
            count(Counter::BytesLost, len);
        } else {
            count(Counter::Records, 1);
            count(Counter::Bytes, len);
        }
        if last {
            break;
        }
        unsafe { core::ptr::write_volatile(&mut scratch.header.offset, (done + len) as u32) };
        i += 1;
    }
    if total > deliver {
        count(Counter::CutShortSegments, 1);
        count(Counter::CutShortBytes, total - deliver);
    }
}
