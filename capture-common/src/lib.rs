#![no_std]
//! The wire contract between wstap's eBPF programs (`capture-ebpf`) and user
//! space (`capture-user`): the ring-buffer record layout, the filter map keys,
//! the counter indices and the names of maps and globals.
//!
//! A change here is a change of wire format: both sides are built from this
//! one definition, so keep it small and `#[repr(C)]` with explicit padding.
//!
//! # Records
//!
//! Every matching TCP segment becomes one or more ring records. A record is a
//! [`RecordHeader`] immediately followed by `chunk_len` payload bytes (the
//! ring item is exactly `size_of::<RecordHeader>() + chunk_len` bytes long).
//! A segment whose payload is longer than [`CHUNK_MAX`] is split into several
//! records with increasing `offset`; the first carries [`REC_FIRST`], the last
//! [`REC_LAST`] (a record can carry both). A segment without payload (SYN,
//! FIN or RST) is one record with `chunk_len == 0`.
//!
//! # Loss
//!
//! When the ring is full a record is dropped and counted in
//! [`counter::RECORDS_LOST`]/[`counter::BYTES_LOST`]. Nothing else marks it:
//! user space sees the loss as a hole in that flow's sequence space (the
//! chunk at `seq + offset` is missing), which the reassembler reports as a
//! gap. Payload beyond [`CHUNKS_MAX`] chunks (a segment longer than
//! `CHUNKS_MAX * CHUNK_MAX` bytes) or that could not be read is counted in
//! [`counter::CUT_SHORT_SEGMENTS`]/[`counter::CUT_SHORT_BYTES`] and the last
//! delivered record carries [`REC_CUT_SHORT`].

/// Largest payload chunk in one record, in bytes.
pub const CHUNK_MAX: usize = 16 * 1024;
/// Most chunks one segment is split into (so at most 1 MiB per segment; GSO
/// and GRO skbs reach 64 KiB, or 512 KiB with BIG TCP).
pub const CHUNKS_MAX: u32 = 64;

/// Record flag: first record of a segment.
pub const REC_FIRST: u8 = 0x01;
/// Record flag: last record of a segment.
pub const REC_LAST: u8 = 0x02;
/// Record flag: the segment's payload was not delivered whole (see module docs).
pub const REC_CUT_SHORT: u8 = 0x04;

/// Address family values of [`RecordHeader::family`].
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Direction values of [`RecordHeader::direction`].
pub const DIR_INGRESS: u8 = 0;
pub const DIR_EGRESS: u8 = 1;

/// Header of one ring record, followed by `chunk_len` payload bytes.
///
/// Addresses are in network byte order; an IPv4 address fills the first
/// 4 bytes of its 16-byte field, the rest is zero. Ports, seq, ack and window
/// are in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordHeader {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds. User space adds
    /// (CLOCK_REALTIME - CLOCK_MONOTONIC), measured at start, for wall time.
    pub ts_ns: u64,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub ifindex: u32,
    /// Sequence number of the segment (not of the chunk: add `offset`).
    pub seq: u32,
    pub ack: u32,
    /// Total payload length of the segment.
    pub seg_len: u32,
    /// Offset of this chunk in the segment's payload.
    pub offset: u32,
    /// Payload bytes following this header.
    pub chunk_len: u32,
    pub sport: u16,
    pub dport: u16,
    pub window: u16,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20).
    pub tcp_flags: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// [`DIR_INGRESS`] or [`DIR_EGRESS`].
    pub direction: u8,
    /// [`REC_FIRST`] | [`REC_LAST`] | [`REC_CUT_SHORT`].
    pub rec_flags: u8,
    pub _pad: [u8; 6],
}

/// Size of [`RecordHeader`] in bytes (a multiple of 8).
pub const HEADER_LEN: usize = core::mem::size_of::<RecordHeader>();
const _: () = assert!(HEADER_LEN == 80 && HEADER_LEN & 7 == 0);

/// Per-CPU scratch buffer the kernel assembles a record in before
/// `bpf_ringbuf_output` copies `HEADER_LEN + chunk_len` bytes of it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Scratch {
    pub header: RecordHeader,
    pub data: [u8; CHUNK_MAX],
    /// Kernel-private loop state (kept in map memory so that the verifier
    /// sees every chunk iteration alike): payload bytes to deliver, and the
    /// payload's offset in the packet.
    pub deliver: u32,
    pub payload_off: u32,
}

/// Indices into the per-CPU counter array [`MAP_COUNTERS`] (u64 each).
pub mod counter {
    /// Packets the program ran on.
    pub const PACKETS_SEEN: u32 = 0;
    /// TCP segments that passed the filter and carried payload, SYN, FIN or RST.
    pub const SEGMENTS_MATCHED: u32 = 1;
    /// Payload bytes of the matched segments.
    pub const BYTES_MATCHED: u32 = 2;
    /// Records written to the ring.
    pub const RECORDS: u32 = 3;
    /// Payload bytes written to the ring.
    pub const BYTES: u32 = 4;
    /// Records dropped because the ring was full.
    pub const RECORDS_LOST: u32 = 5;
    /// Payload bytes in those records.
    pub const BYTES_LOST: u32 = 6;
    /// Segments whose payload was not delivered whole (too long, unreadable).
    pub const CUT_SHORT_SEGMENTS: u32 = 7;
    /// Payload bytes not delivered for that reason.
    pub const CUT_SHORT_BYTES: u32 = 8;
    /// Packets whose headers could not be parsed (truncated, too many
    /// extension headers or VLAN tags).
    pub const PARSE_ERRORS: u32 = 9;
    /// Number of counters.
    pub const COUNT: u32 = 10;
}

/// Key of the IPv4 LPM trie [`MAP_HOSTS_V4`]: aya's `lpm_trie::Key<[u8; 4]>`.
/// Key of the IPv6 LPM trie [`MAP_HOSTS_V6`]: `lpm_trie::Key<[u8; 16]>`.
/// Values are `u8` (1).
pub const MAP_HOSTS_V4: &str = "HOSTS_V4";
pub const MAP_HOSTS_V6: &str = "HOSTS_V6";
/// `Array<u8>` of 65536 entries indexed by port; 1 = keep.
pub const MAP_PORTS: &str = "PORTS";
/// `PerCpuArray<u64>` of [`counter::COUNT`] entries.
pub const MAP_COUNTERS: &str = "COUNTERS";
/// The record ring (`RingBuf`); its size is set by user space at load.
pub const MAP_RING: &str = "RECORDS";
/// Most host prefixes per address family.
pub const HOSTS_MAX: u32 = 4096;

/// Read-only globals set by user space at load (`EbpfLoader::override_global`):
/// `u8`, nonzero when the host list is used (empty list = any host).
pub const GLOBAL_FILTER_HOSTS: &str = "FILTER_HOSTS";
/// `u8`, nonzero when the port list is used (empty list = any port).
pub const GLOBAL_FILTER_PORTS: &str = "FILTER_PORTS";

/// `u64`: the programs ask the kernel to wake the ring's reader only once at
/// least this many bytes wait in the ring (`BPF_RB_FORCE_WAKEUP`); smaller
/// fills are written with `BPF_RB_NO_WAKEUP` and user space finds them by
/// polling on a short timer. A wakeup per record costs a self-IPI, which
/// measured as about 70 % of the per-packet cost in a VM. 0 = wake on every
/// record.
pub const GLOBAL_WAKEUP_BYTES: &str = "WAKEUP_BYTES";

/// Program names in the object.
pub const PROG_TC_INGRESS: &str = "tc_ingress";
pub const PROG_TC_EGRESS: &str = "tc_egress";
pub const PROG_XDP: &str = "xdp_tap";

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, repr(C), no padding holes left implicit.
    unsafe impl aya::Pod for super::RecordHeader {}
}
