//! Packet access, the same for an skb (TC) and an XDP buffer, so that one
//! parser serves both program types. Bytes are read with
//! `bpf_skb_load_bytes` / `bpf_xdp_load_bytes`, so nonlinear skbs (GSO/GRO,
//! 64 KiB and more) and multi-buffer XDP frames are read whole.

use aya_ebpf::{
    bindings::BPF_CSUM_LEVEL_QUERY,
    helpers::{bpf_csum_level, bpf_skb_load_bytes, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};
use capture_common::csum;

pub trait Packet {
    /// Reads `N` bytes at `off` (a header, into a stack buffer).
    #[inline(always)]
    fn load<const N: usize>(&self, off: u32) -> Option<[u8; N]> {
        let mut buf = [0u8; N];
        if self.load_chunk(off, buf.as_mut_ptr(), N as u32) {
            Some(buf)
        } else {
            None
        }
    }
    /// Reads `len` (1..=CHUNK_MAX, checked by the caller) bytes at `off` into `dst`.
    fn load_chunk(&self, off: u32, dst: *mut u8, len: u32) -> bool;
    /// Total length of the packet, linear part and fragments.
    fn total_len(&self) -> u32;
    fn ifindex(&self) -> u32;
    /// What the kernel knows of the TCP checksum on the way in (see
    /// `capture_common::csum`).
    fn ingress_csum(&self) -> u8;
}

impl Packet for TcContext {
    /// Headers in the linear part of the skb (nearly always) are read
    /// straight from packet memory, checked against `data_end`; only what
    /// lies past it goes through `bpf_skb_load_bytes` (a helper call per
    /// header was most of the cost of a packet the filter rejects).
    #[inline(always)]
    fn load<const N: usize>(&self, off: u32) -> Option<[u8; N]> {
        // Bounded for the verifier: header offsets are far below 64 KiB.
        let off = (off & 0xffff) as usize;
        let start = self.data();
        let end = self.data_end();
        if start + off + N <= end {
            // SAFETY: `start + off .. + N` lies inside the linear packet
            // data, as just checked against `data_end`.
            return Some(unsafe { core::ptr::read_unaligned((start + off) as *const [u8; N]) });
        }
        let mut buf = [0u8; N];
        if self.load_chunk(off as u32, buf.as_mut_ptr(), N as u32) {
            Some(buf)
        } else {
            None
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
    #[inline(always)]
    fn ingress_csum(&self) -> u8 {
        // The query answers the checksum level when the skb is
        // CHECKSUM_UNNECESSARY and -EACCES otherwise.
        if unsafe { bpf_csum_level(self.skb.skb, BPF_CSUM_LEVEL_QUERY as u64) } >= 0 {
            csum::VERIFIED
        } else {
            csum::UNKNOWN
        }
    }
}

impl Packet for XdpContext {
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
    #[inline(always)]
    fn ingress_csum(&self) -> u8 {
        // XDP runs before the driver builds an skb: no checksum state yet.
        csum::UNKNOWN
    }
}
