//! wstap's kernel programs: a TC classifier (attached on ingress and egress,
//! as the two entry points `tc_ingress` and `tc_egress` around one body) and
//! an XDP program (ingress). Both parse Ethernet, up to two 802.1Q/802.1ad
//! tags, IPv4 (with options) or IPv6 (skipping hop-by-hop, routing,
//! destination-options and fragment headers) and TCP (with options); filter
//! by host and port; and copy each matching segment's header fields and
//! payload into the ring buffer in chunks (see `capture-common`). They never
//! change or drop traffic: TC returns TC_ACT_UNSPEC (pass on to the next
//! program or the stack), XDP returns XDP_PASS.
//!
//! Packet bytes are read with `bpf_skb_load_bytes` / `bpf_xdp_load_bytes`, so
//! nonlinear skbs (GSO/GRO, 64 KiB and more) and multi-buffer XDP frames are
//! read whole.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{
        xdp_action, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, TC_ACT_UNSPEC,
    },
    helpers::{
        bpf_ktime_get_ns, bpf_ringbuf_output, bpf_ringbuf_query, bpf_skb_load_bytes,
        bpf_xdp_get_buff_len, bpf_xdp_load_bytes,
    },
    macros::{classifier, map, xdp},
    maps::{lpm_trie::Key, Array, LpmTrie, PerCpuArray, RingBuf},
    programs::{TcContext, XdpContext},
    Global,
};
use aya_log_ebpf::{debug, info};
use capture_common::{
    counter, RecordHeader, Scratch, CHUNKS_MAX, CHUNK_MAX, HEADER_LEN, HOSTS_MAX,
};

// ---- maps and globals (names are part of the contract in capture-common) ----

/// The record ring. Its real size is set by user space at load time.
#[map(name = "RECORDS")]
static RECORDS: RingBuf = RingBuf::with_byte_size(1 << 16, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[map(name = "HOSTS_V4")]
static HOSTS_V4: LpmTrie<[u8; 4], u8> =
    LpmTrie::with_max_entries(HOSTS_MAX, 1 /* BPF_F_NO_PREALLOC */);

#[map(name = "HOSTS_V6")]
static HOSTS_V6: LpmTrie<[u8; 16], u8> =
    LpmTrie::with_max_entries(HOSTS_MAX, 1 /* BPF_F_NO_PREALLOC */);

#[map(name = "PORTS")]
static PORTS: Array<u8> = Array::with_max_entries(65536, 0);

#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Nonzero: only hosts in HOSTS_V4/HOSTS_V6 pass. Read-only, set at load, so
/// the verifier prunes the unused branch.
#[no_mangle]
static FILTER_HOSTS: Global<u8> = Global::new(0);
/// Nonzero: only ports marked in PORTS pass.
#[no_mangle]
static FILTER_PORTS: Global<u8> = Global::new(0);

/// See `capture_common::GLOBAL_WAKEUP_BYTES`.
#[no_mangle]
static WAKEUP_BYTES: Global<u64> = Global::new(0);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

// ---- packet access, the same for skb and xdp ----

trait Packet {
    /// Reads `N` bytes at `off`.
    fn load<const N: usize>(&self, off: u32) -> Option<[u8; N]>;
    /// Reads `len` (1..=CHUNK_MAX, checked by the caller) bytes at `off` into `dst`.
    fn load_chunk(&self, off: u32, dst: *mut u8, len: u32) -> bool;
    /// Total length of the packet, linear part and fragments.
    fn total_len(&self) -> u32;
    fn ifindex(&self) -> u32;
}

impl Packet for TcContext {
    #[inline(always)]
    fn load<const N: usize>(&self, off: u32) -> Option<[u8; N]> {
        let mut buf = [0u8; N];
        let r = unsafe {
            bpf_skb_load_bytes(
                self.skb.skb as *const _,
                off,
                buf.as_mut_ptr() as *mut _,
                N as u32,
            )
        };
        if r < 0 {
            None
        } else {
            Some(buf)
        }
    }
    #[inline(always)]
    fn load_chunk(&self, off: u32, dst: *mut u8, len: u32) -> bool {
        unsafe { bpf_skb_load_bytes(self.skb.skb as *const _, off, dst as *mut _, len) >= 0 }
    }
    #[inline(always)]
    fn total_len(&self) -> u32 {
        self.len()
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        unsafe { (*self.skb.skb).ifindex }
    }
}

impl Packet for XdpContext {
    #[inline(always)]
    fn load<const N: usize>(&self, off: u32) -> Option<[u8; N]> {
        let mut buf = [0u8; N];
        let r = unsafe { bpf_xdp_load_bytes(self.ctx, off, buf.as_mut_ptr() as *mut _, N as u32) };
        if r < 0 {
            None
        } else {
            Some(buf)
        }
    }
    #[inline(always)]
    fn load_chunk(&self, off: u32, dst: *mut u8, len: u32) -> bool {
        unsafe { bpf_xdp_load_bytes(self.ctx, off, dst as *mut _, len) >= 0 }
    }
    #[inline(always)]
    fn total_len(&self) -> u32 {
        unsafe { bpf_xdp_get_buff_len(self.ctx) as u32 }
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        self.ingress_ifindex() as u32
    }
}

// ---- counters ----

#[inline(always)]
fn count(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // Per-CPU: no other writer, a plain add is enough.
        unsafe { *p += n };
    }
}

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

#[inline(always)]
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Outcome of parsing: not TCP (or not the first fragment) → ignore.
enum Parsed {
    Ignore,
    Error,
    Tcp(Seg),
}

struct Seg {
    family: u8,
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload_off: u32,
    payload_len: u32,
}

#[inline(always)]
fn parse<P: Packet>(p: &P) -> Parsed {
    let pkt_len = p.total_len();
    let Some(eth) = p.load::<14>(0) else {
        return Parsed::Error;
    };
    let mut proto = be16(&eth, 12);
    let mut off: u32 = 14;
    // Up to two VLAN tags (802.1ad outer, 802.1Q inner).
    for _ in 0..2 {
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            let Some(tag) = p.load::<4>(off) else {
                return Parsed::Error;
            };
            proto = be16(&tag, 2);
            off += 4;
        }
    }
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        return Parsed::Error;
    }
    let mut seg = Seg {
        family: 0,
        saddr: [0; 16],
        daddr: [0; 16],
        sport: 0,
        dport: 0,
        seq: 0,
        ack: 0,
        flags: 0,
        window: 0,
        payload_off: 0,
        payload_len: 0,
    };
    let l4: u32;
    let end: u32;
    if proto == ETH_P_IP {
        let Some(ip) = p.load::<20>(off) else {
            return Parsed::Error;
        };
        let ihl = ((ip[0] & 0x0f) as u32) * 4;
        if ip[0] >> 4 != 4 || ihl < 20 {
            return Parsed::Error;
        }
        if ip[9] != IPPROTO_TCP {
            return Parsed::Ignore;
        }
        // Not the first fragment: no TCP header here.
        if be16(&ip, 6) & 0x1fff != 0 {
            return Parsed::Ignore;
        }
        let tot = be16(&ip, 2) as u32;
        seg.family = capture_common::FAMILY_V4;
        seg.saddr[..4].copy_from_slice(&ip[12..16]);
        seg.daddr[..4].copy_from_slice(&ip[16..20]);
        l4 = off + ihl;
        // tot_len 0: a BIG TCP GSO packet; its length is the skb's.
        end = if tot == 0 { pkt_len } else { off + tot };
    } else if proto == ETH_P_IPV6 {
        let Some(ip) = p.load::<40>(off) else {
            return Parsed::Error;
        };
        if ip[0] >> 4 != 6 {
            return Parsed::Error;
        }
        let plen = be16(&ip, 4) as u32;
        let mut next = ip[6];
        seg.family = capture_common::FAMILY_V6;
        seg.saddr.copy_from_slice(&ip[8..24]);
        seg.daddr.copy_from_slice(&ip[24..40]);
        let mut h = off + 40;
        // Extension headers: hop-by-hop (0), routing (43), fragment (44),
        // destination options (60). At most 6.
        for _ in 0..6 {
            match next {
                0 | 43 | 60 => {
                    let Some(x) = p.load::<2>(h) else {
                        return Parsed::Error;
                    };
                    next = x[0];
                    h += (x[1] as u32 + 1) * 8;
                }
                44 => {
                    let Some(x) = p.load::<4>(h) else {
                        return Parsed::Error;
                    };
                    if be16(&x, 2) & 0xfff8 != 0 {
                        return Parsed::Ignore;
                    }
                    next = x[0];
                    h += 8;
                }
                _ => break,
            }
        }
        if next != IPPROTO_TCP {
            if next == 0 || next == 43 || next == 44 || next == 60 {
                return Parsed::Error;
            }
            return Parsed::Ignore;
        }
        l4 = h;
        // payload_len 0: jumbogram / BIG TCP; take the packet's length.
        end = if plen == 0 { pkt_len } else { off + 40 + plen };
    } else {
        return Parsed::Ignore;
    }
    let Some(tcp) = p.load::<20>(l4) else {
        return Parsed::Error;
    };
    let doff = ((tcp[12] >> 4) as u32) * 4;
    if doff < 20 {
        return Parsed::Error;
    }
    seg.sport = be16(&tcp, 0);
    seg.dport = be16(&tcp, 2);
    seg.seq = be32(&tcp, 4);
    seg.ack = be32(&tcp, 8);
    seg.flags = tcp[13];
    seg.window = be16(&tcp, 14);
    seg.payload_off = l4 + doff;
    let end = if end > pkt_len { pkt_len } else { end };
    if end < seg.payload_off {
        return Parsed::Error;
    }
    seg.payload_len = end - seg.payload_off;
    Parsed::Tcp(seg)
}

#[inline(always)]
fn filter_pass(seg: &Seg) -> bool {
    if FILTER_PORTS.load() != 0 {
        let s = PORTS.get(seg.sport as u32).copied().unwrap_or(0);
        let d = PORTS.get(seg.dport as u32).copied().unwrap_or(0);
        if s == 0 && d == 0 {
            return false;
        }
    }
    if FILTER_HOSTS.load() != 0 {
        if seg.family == capture_common::FAMILY_V4 {
            let mut a = [0u8; 4];
            a.copy_from_slice(&seg.saddr[..4]);
            let mut b = [0u8; 4];
            b.copy_from_slice(&seg.daddr[..4]);
            if HOSTS_V4.get(Key::new(32, a)).is_none() && HOSTS_V4.get(Key::new(32, b)).is_none() {
                return false;
            }
        } else if HOSTS_V6.get(Key::new(128, seg.saddr)).is_none()
            && HOSTS_V6.get(Key::new(128, seg.daddr)).is_none()
        {
            return false;
        }
    }
    true
}

#[inline(always)]
fn tap<C: Packet + aya_ebpf::EbpfContext>(ctx: &C, direction: u8) {
    count(counter::PACKETS_SEEN, 1);
    let seg = match parse(ctx) {
        Parsed::Tcp(s) => s,
        Parsed::Ignore => return,
        Parsed::Error => {
            count(counter::PARSE_ERRORS, 1);
            info!(ctx, "wstap: cannot parse packet (len {})", ctx.total_len());
            return;
        }
    };
    if seg.payload_len == 0 && seg.flags & (TCP_SYN | TCP_FIN | TCP_RST) == 0 {
        return; // a pure ACK: nothing to deliver
    }
    if !filter_pass(&seg) {
        debug!(
            ctx,
            "wstap: filtered out port {} -> {}", seg.sport, seg.dport
        );
        return;
    }
    debug!(
        ctx,
        "wstap: match port {} -> {} len {}", seg.sport, seg.dport, seg.payload_len
    );
    count(counter::SEGMENTS_MATCHED, 1);
    count(counter::BYTES_MATCHED, seg.payload_len as u64);
    emit(ctx, &seg, direction);
}

#[inline(always)]
fn emit<P: Packet>(p: &P, seg: &Seg, direction: u8) {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let scratch = unsafe { &mut *scratch };
    let h: &mut RecordHeader = &mut scratch.header;
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
                count(counter::CUT_SHORT_SEGMENTS, 1);
                count(counter::CUT_SHORT_BYTES, total - done);
                return;
            }
        }
        let mut rf = 0u8;
        if i == 0 {
            rf |= capture_common::REC_FIRST;
        }
        if last {
            rf |= capture_common::REC_LAST;
            if total > deliver {
                rf |= capture_common::REC_CUT_SHORT;
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
            count(counter::RECORDS_LOST, 1);
            count(counter::BYTES_LOST, len);
        } else {
            count(counter::RECORDS, 1);
            count(counter::BYTES, len);
        }
        if last {
            break;
        }
        unsafe { core::ptr::write_volatile(&mut scratch.header.offset, (done + len) as u32) };
        i += 1;
    }
    if total > deliver {
        count(counter::CUT_SHORT_SEGMENTS, 1);
        count(counter::CUT_SHORT_BYTES, total - deliver);
    }
}

#[classifier]
pub fn tc_ingress(ctx: TcContext) -> i32 {
    tap(&ctx, capture_common::DIR_INGRESS);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn tc_egress(ctx: TcContext) -> i32 {
    tap(&ctx, capture_common::DIR_EGRESS);
    TC_ACT_UNSPEC
}

#[xdp(frags)]
pub fn xdp_tap(ctx: XdpContext) -> u32 {
    tap(&ctx, capture_common::DIR_INGRESS);
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";

/// Ring output flags: wake the reader only when enough data waits (see
/// `capture_common::GLOBAL_WAKEUP_BYTES`).
#[inline(always)]
fn wakeup_flags(size: u64) -> u64 {
    let threshold = WAKEUP_BYTES.load();
    if threshold == 0 {
        return 0;
    }
    // SAFETY: RECORDS is a ring buffer map; the query only reads its positions.
    let waiting =
        unsafe { bpf_ringbuf_query(&RECORDS as *const _ as *mut _, BPF_RB_AVAIL_DATA as u64) };
    if waiting + size >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
