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
//! Every ring record starts with a [`RecordPrefix`]: a [`kind`] byte and the
//! [`WIRE_VERSION`] byte. User space checks both before reading further and
//! counts a record it cannot read (unknown kind or version, or shorter than
//! its header says) instead of dropping it silently.
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
//! [`Counter::RecordsLost`]/[`Counter::BytesLost`]. Nothing else marks it:
//! user space sees the loss as a hole in that flow's sequence space (the
//! chunk at `seq + offset` is missing), which the reassembler reports as a
//! gap. Payload beyond [`CHUNKS_MAX`] chunks (a segment longer than
//! `CHUNKS_MAX * CHUNK_MAX` bytes) or that could not be read is counted in
//! [`Counter::CutShortSegments`]/[`Counter::CutShortBytes`] and the last
//! delivered record carries [`REC_CUT_SHORT`].

pub mod expr;

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

/// Kinds of ring record: the first byte of every record. User space reads
/// [`RecordPrefix`] first and interprets the rest by kind, so that new
/// sources (socket events, hooked plaintext, UDP datagrams) can share the
/// ring without guessing.
pub mod kind {
    /// A TCP segment (or one chunk of it): [`super::RecordHeader`] + payload.
    pub const TCP_SEGMENT: u8 = 1;
    /// A socket fact from the ownership hooks: [`super::SockRecord`].
    pub const SOCK: u8 = 2;
    /// Plaintext from a hooked TLS library, or a tie of a TLS object to a
    /// socket: [`super::TlsHeader`] (+ data).
    pub const TLS: u8 = 3;
}

/// What a [`SockRecord`] says (its `event` byte).
pub mod sock_event {
    /// A process called connect(): `tgid`/`comm` own socket `sk` (process
    /// context; the ports may not be chosen yet, so no addresses).
    pub const CONNECT: u8 = 1;
    /// A process other than the last known owner sent or received on `sk`
    /// (the accepting side's first read, a socket handed to a child).
    pub const IO: u8 = 3;
    /// Socket `sk` reached ESTABLISHED: its addresses (any context, so no
    /// owner). `saddr`/`sport` are the local end; `passive` is 1 for an
    /// accepted connection (from SYN_RECV).
    pub const ESTABLISHED: u8 = 4;
    /// A process called listen(): `tgid`/`comm` listen on `saddr`/`sport`
    /// (process context). Until an accepted socket's own first read or
    /// send, its owner is taken to be its listener's.
    pub const LISTEN: u8 = 5;
    /// Socket `sk` reached CLOSE (sent only while the TLS hooks are on:
    /// the TLS objects tied to it are untied, as the pointer may be reused).
    pub const CLOSE: u8 = 6;
}

/// The kernel's verdict on a process when an owner filter (`--pid`,
/// `--comm`, `-- COMMAND`) is on: the `selected` byte of an owner record
/// and the values of [`MAP_END_VERDICT`] and [`MAP_LISTEN_VERDICT`].
pub mod verdict {
    /// No owner filter: every process is shown.
    pub const NONE: u8 = 0;
    /// The process is one of those asked for.
    pub const SELECTED: u8 = 1;
    /// Another process.
    pub const OTHER: u8 = 2;
}

/// Values of [`MAP_SELECT_PIDS`].
pub mod select {
    /// This tgid is selected (`--pid`).
    pub const PID: u8 = 1;
    /// This tgid and every process it forks later (`-- COMMAND`).
    pub const FOLLOW: u8 = 2;
}

/// One end of a connection as the owner filter knows it (key of
/// [`MAP_END_VERDICT`]): the end whose local address is `local`/`lport`.
/// Addresses as in [`RecordHeader`] (IPv4 in the first 4 bytes, IPv4-mapped
/// IPv6 addresses stored as IPv4, so they match the packets); ports in host
/// order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndKey {
    pub local: [u8; 16],
    pub remote: [u8; 16],
    pub lport: u16,
    pub rport: u16,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    pub _pad: [u8; 3],
}

/// A socket fact, kind [`kind::SOCK`]. User space joins the owner records
/// and the address record of one `sk` into "this 4-tuple belongs to that
/// process". Addresses are in network order; IPv4 ones in the first four
/// bytes (`family` says which); ports in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockRecord {
    pub prefix: RecordPrefix,
    /// One of [`sock_event`].
    pub event: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`] (ESTABLISHED only).
    pub family: u8,
    /// Thread group id of the owner (0 for ESTABLISHED).
    pub tgid: u32,
    /// The kernel's socket pointer: only an identity, never dereferenced.
    pub sk: u64,
    pub ts_ns: u64,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    /// Kernel comm of the owning thread, NUL-padded.
    pub comm: [u8; 16],
    /// One of [`verdict`]: the owner filter's verdict on the owner (owner
    /// records only).
    pub selected: u8,
    /// ESTABLISHED: 1 when the socket was accepted (passive open).
    pub passive: u8,
    pub _pad: u16,
}

/// Bytes of a [`SockRecord`].
pub const SOCK_RECORD_LEN: usize = core::mem::size_of::<SockRecord>();

/// Version of the layout of each record kind, the second byte of every
/// record. Bumped whenever a kind's layout changes, so that a user space
/// built from another contract counts the records it cannot read instead of
/// misreading them.
pub const WIRE_VERSION: u8 = 4;

/// The first two bytes of every ring record, whatever its kind.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordPrefix {
    /// One of [`kind`].
    pub kind: u8,
    /// [`WIRE_VERSION`] of the program that wrote the record.
    pub version: u8,
}

/// Checksum knowledge of [`RecordHeader::csum`]: what the kernel can tell a
/// TC or XDP program about a segment's TCP checksum. The programs run before
/// TCP verifies checksums itself, and `__sk_buff` exposes only whether the
/// device (or a stack layer before TC) already verified it.
pub mod csum {
    /// Nothing known (XDP; TC ingress where no device verified it yet).
    pub const UNKNOWN: u8 = 0;
    /// The skb is `CHECKSUM_UNNECESSARY`: the device verified the checksum
    /// (`bpf_csum_level` answered); the receiving TCP will accept it.
    pub const VERIFIED: u8 = 1;
    /// Egress: built by this host; the checksum is filled in later (offload),
    /// so the bytes seen are what the local program sent.
    pub const LOCAL: u8 = 2;
}

/// Header of one ring record of kind [`kind::TCP_SEGMENT`], followed by
/// `chunk_len` payload bytes.
///
/// Addresses are in network byte order; an IPv4 address fills the first
/// 4 bytes of its 16-byte field, the rest is zero. Ports, seq, ack and window
/// are in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordHeader {
    /// Kind [`kind::TCP_SEGMENT`] and [`WIRE_VERSION`].
    pub prefix: RecordPrefix,
    /// TCP flags byte, see [`tcp_flags`].
    pub tcp_flags: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// [`DIR_INGRESS`] or [`DIR_EGRESS`].
    pub direction: u8,
    /// [`REC_FIRST`] | [`REC_LAST`] | [`REC_CUT_SHORT`].
    pub rec_flags: u8,
    /// One of [`csum`].
    pub csum: u8,
    pub _pad0: u8,
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
    pub _pad1: u16,
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

/// TCP flag bits as they appear in the TCP header's 14th byte (offset 13).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// The kernel's counters: one entry each in the per-CPU array
/// [`MAP_COUNTERS`] (u64), indexed by the variant's value. This one table is
/// what the programs count with and what user space reads, sums and prints,
/// so a new counter is one line here.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Packets the program ran on.
    PacketsSeen = 0,
    /// TCP segments that passed the filter and carried payload, SYN, FIN or RST.
    SegmentsMatched = 1,
    /// Payload bytes of the matched segments.
    BytesMatched = 2,
    /// Records written to the ring.
    Records = 3,
    /// Payload bytes written to the ring.
    Bytes = 4,
    /// Records dropped because the ring was full.
    RecordsLost = 5,
    /// Payload bytes in those records.
    BytesLost = 6,
    /// Segments whose payload was not delivered whole (too long, unreadable).
    CutShortSegments = 7,
    /// Payload bytes not delivered for that reason.
    CutShortBytes = 8,
    /// Packets whose headers could not be parsed (truncated, too many
    /// extension headers or VLAN tags).
    ParseErrors = 9,
    /// Socket records (ownership) dropped because the ring was full.
    SockRecordsLost = 10,
    /// Segments left out because their connection belongs to processes
    /// the owner filter does not select (`--pid`, `--comm`, `-- COMMAND`).
    OtherProcesses = 11,
    /// Hooked TLS calls that returned plaintext.
    TlsCalls = 12,
    /// TLS records (plaintext chunks and ties) dropped: the ring was full.
    TlsRecordsLost = 13,
    /// Plaintext bytes in those records.
    TlsBytesLost = 14,
    /// Plaintext bytes returned by a call that could not be copied
    /// (`bpf_probe_read_user` failed, or past [`TLS_CHUNKS_MAX`] chunks).
    TlsBytesUnreadable = 15,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 16] = [
        Counter::PacketsSeen,
        Counter::SegmentsMatched,
        Counter::BytesMatched,
        Counter::Records,
        Counter::Bytes,
        Counter::RecordsLost,
        Counter::BytesLost,
        Counter::CutShortSegments,
        Counter::CutShortBytes,
        Counter::ParseErrors,
        Counter::SockRecordsLost,
        Counter::OtherProcesses,
        Counter::TlsCalls,
        Counter::TlsRecordsLost,
        Counter::TlsBytesLost,
        Counter::TlsBytesUnreadable,
    ];
    /// Number of counters (entries of [`MAP_COUNTERS`]).
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// Index in [`MAP_COUNTERS`].
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// The words after the number in wstap's kernel summary line, e.g.
    /// "records lost" in "3 records lost". Tests parse the line by them.
    pub const fn label(self) -> &'static str {
        match self {
            Counter::PacketsSeen => "packets seen",
            Counter::SegmentsMatched => "segments matched",
            Counter::BytesMatched => "bytes matched",
            Counter::Records => "records delivered",
            Counter::Bytes => "bytes delivered",
            Counter::RecordsLost => "records lost",
            Counter::BytesLost => "bytes lost",
            Counter::CutShortSegments => "segments cut short",
            Counter::CutShortBytes => "bytes cut short",
            Counter::ParseErrors => "parse errors",
            Counter::SockRecordsLost => "socket records lost",
            Counter::OtherProcesses => "segments of other processes",
            Counter::TlsCalls => "TLS calls with plaintext",
            Counter::TlsRecordsLost => "TLS records lost",
            Counter::TlsBytesLost => "TLS bytes lost",
            Counter::TlsBytesUnreadable => "TLS bytes unreadable",
        }
    }
}

const _: () = {
    let mut i = 0;
    while i < Counter::ALL.len() {
        assert!(Counter::ALL[i] as usize == i);
        i += 1;
    }
};

/// Key of the IPv4 LPM trie [`MAP_HOSTS_V4`]: aya's `lpm_trie::Key<[u8; 4]>`.
/// Key of the IPv6 LPM trie [`MAP_HOSTS_V6`]: `lpm_trie::Key<[u8; 16]>`.
/// Values are `u8` (1).
pub const MAP_HOSTS_V4: &str = "HOSTS_V4";
pub const MAP_HOSTS_V6: &str = "HOSTS_V6";
/// `Array<u8>` of 65536 entries indexed by port; 1 = keep.
pub const MAP_PORTS: &str = "PORTS";
/// `PerCpuArray<u64>` of [`Counter::COUNT`] entries.
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
/// `u8`, nonzero when a filter expression is loaded in [`MAP_FILTER_EXPR`].
pub const GLOBAL_FILTER_EXPR: &str = "FILTER_EXPR_ON";
/// `Array<expr::ExprProgram>` of one entry: the filter expression.
pub const MAP_FILTER_EXPR: &str = "FILTER_EXPR";
/// Kernel-private `PerCpuArray<u64>` of one entry: the expression's
/// truth-value stack (see [`expr::eval`]).
pub const MAP_EXPR_STACK: &str = "EXPR_STACK";

/// `u64`: the programs ask the kernel to wake the ring's reader only once at
/// least this many bytes wait in the ring (`BPF_RB_FORCE_WAKEUP`); smaller
/// fills are written with `BPF_RB_NO_WAKEUP` and user space finds them by
/// polling on a short timer. A wakeup per record costs a self-IPI, which
/// measured as about 70 % of the per-packet cost in a VM. 0 = wake on every
/// record.
pub const GLOBAL_WAKEUP_BYTES: &str = "WAKEUP_BYTES";

/// Program names in the object. Map and program names are the names of the
/// statics and functions in `capture-ebpf`; a test in `capture-user` checks
/// the built object against every name here.
pub const PROG_TC_INGRESS: &str = "wstap_ingress";
pub const PROG_TC_EGRESS: &str = "wstap_egress";
/// A TC program that does nothing: with [`ENV_BENCH_NOOP`] set, wstap
/// attaches it beside its own so that `cargo xtask bench --only kernel`
/// measures the cost of merely running a program on the same packets.
pub const PROG_TC_NOOP: &str = "wstap_noop";
/// The environment variable that makes wstap attach [`PROG_TC_NOOP`]
/// (TCX only; its links die with the process like the others).
pub const ENV_BENCH_NOOP: &str = "WSTAP_BENCH_NOOP";
pub const PROG_XDP: &str = "xdp_tap";
/// The ownership hooks (`capture-ebpf/src/sock.rs`): tracepoint
/// `sock:inet_sock_set_state`, `sock_io` on `sock:sock_recv_length` and
/// [`PROG_SOCK_SEND`] on `sock:sock_send_length`.
pub const PROG_SOCK_STATE: &str = "sock_state";
pub const PROG_SOCK_IO: &str = "sock_io";
/// `LruHashMap<u64, u32>`: socket pointer → the tgid last reported for it,
/// so a send or receive is reported only when the owner changes.
pub const MAP_SOCK_OWNER: &str = "SOCK_OWNER";
/// Entries of [`MAP_SOCK_OWNER`].
pub const SOCK_OWNER_MAX: u32 = 65536;

/// The owner filter (`--pid`, `--comm`, `-- COMMAND`). `u8` global, nonzero
/// when on: the TC/XDP programs then leave out segments whose connection
/// ends are known to belong only to other processes, and the socket hooks
/// keep [`MAP_END_VERDICT`] up to date.
pub const GLOBAL_FILTER_OWNERS: &str = "FILTER_OWNERS";
/// `HashMap<u32, u8>`: selected tgids, values [`select`].
pub const MAP_SELECT_PIDS: &str = "SELECT_PIDS";
/// Entries of [`MAP_SELECT_PIDS`] (`--pid` values plus followed children).
pub const SELECT_PIDS_MAX: u32 = 16384;
/// `HashMap<[u8; 16], u8>`: selected comms (NUL-padded), value 1.
pub const MAP_SELECT_COMMS: &str = "SELECT_COMMS";
/// Entries of [`MAP_SELECT_COMMS`].
pub const SELECT_COMMS_MAX: u32 = 256;
/// `LruHashMap<EndKey, u8>`: the [`verdict`] on the owner of each known
/// connection end, read by the TC/XDP programs per segment.
pub const MAP_END_VERDICT: &str = "END_VERDICT";
/// `LruHashMap<u16, u8>`: the [`verdict`] on the last process to listen on
/// each local port, the verdict of a connection accepted there until its
/// owner reads or sends.
pub const MAP_LISTEN_VERDICT: &str = "LISTEN_VERDICT";
/// Entries of [`MAP_END_VERDICT`] (and of the kernel-private socket table).
pub const END_VERDICT_MAX: u32 = 65536;
/// Program on `sched:sched_process_fork`: a followed process's children
/// are followed too (`-- COMMAND`).
pub const PROG_FOLLOW_FORK: &str = "follow_fork";

/// The TLS hooks (`capture-ebpf/src/tls.rs`): uprobes on the entry of
/// `SSL_read`, `SSL_read_ex`, `SSL_write`, `SSL_write_ex` and one
/// uretprobe program on the return of all four.
pub const PROG_SSL_READ: &str = "ssl_read";
pub const PROG_SSL_READ_EX: &str = "ssl_read_ex";
pub const PROG_SSL_WRITE: &str = "ssl_write";
pub const PROG_SSL_WRITE_EX: &str = "ssl_write_ex";
pub const PROG_SSL_RET: &str = "ssl_ret";
pub const PROG_SSL_FREE: &str = "ssl_free";
/// Program on `sock:sock_send_length` (the ownership hook's send half; the
/// TLS hooks learn there which socket a write went to).
pub const PROG_SOCK_SEND: &str = "sock_send";
/// `u8` global, nonzero when the TLS hooks are attached: the socket hooks
/// then also keep the per-thread hints that tie TLS calls to sockets.
pub const GLOBAL_TLS_ON: &str = "TLS_ON";

/// Largest plaintext chunk in one TLS record.
pub const TLS_CHUNK_MAX: usize = 16 * 1024;
/// Most chunks one TLS call is copied in (8 MiB: a 4 MiB message is one
/// write with its frame header); the rest is counted in
/// [`Counter::TlsBytesUnreadable`] and seen by user space as a gap.
pub const TLS_CHUNKS_MAX: u32 = 512;

/// [`TlsHeader::event`] values.
pub mod tls_event {
    /// Plaintext a call returned (one chunk of it).
    pub const DATA: u8 = 1;
    /// The TLS object `ssl` wrote to socket `sk` (the first send on the
    /// thread after an `SSL_write*` without a send inside it).
    pub const TIE: u8 = 2;
    /// `SSL_free(ssl)`: the object's life ended; its address may come back
    /// as another connection's object (its stream offsets start again).
    pub const FREE: u8 = 3;
}

/// [`TlsHeader::dir`] values: which way the plaintext went through the
/// library.
pub mod tls_dir {
    /// `SSL_read*`: received from the peer.
    pub const READ: u8 = 0;
    /// `SSL_write*`: sent to the peer.
    pub const WRITE: u8 = 1;
}

/// [`TlsHeader::how`]: how `sk` was learned, strongest first.
pub mod tls_how {
    /// No socket known for this call.
    pub const NONE: u8 = 0;
    /// A send or receive made by the same thread inside the call (a
    /// blocking socket under the library): certain.
    pub const NESTED: u8 = 1;
    /// The thread's last receive before an `SSL_read*` (memory BIOs): a hint.
    pub const RECV_BEFORE: u8 = 2;
    /// The thread's first send after an `SSL_write*` (memory BIOs): a hint.
    pub const SEND_AFTER: u8 = 3;
}

/// One TLS ring record, kind [`kind::TLS`]: for [`tls_event::DATA`]
/// followed by `chunk_len` plaintext bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsHeader {
    pub prefix: RecordPrefix,
    /// One of [`tls_event`].
    pub event: u8,
    /// One of [`tls_dir`].
    pub dir: u8,
    /// One of [`tls_how`]: how `sk` was learned.
    pub how: u8,
    pub _pad: [u8; 3],
    /// The library's `SSL *`: only an identity.
    pub ssl: u64,
    /// The socket (`struct sock *`, as the socket hooks report it), or 0.
    pub sk: u64,
    pub ts_ns: u64,
    /// Offset of this chunk in the stream of (`ssl`, `dir`) since the
    /// hooks first saw it: a jump is plaintext lost.
    pub offset: u64,
    /// Bytes of plaintext after this header.
    pub chunk_len: u32,
    /// Bytes the call returned in all.
    pub call_len: u32,
    /// Thread group id of the caller.
    pub tgid: u32,
    /// Thread id of the caller.
    pub tid: u32,
}

const _: () = assert!(TLS_HEADER_LEN == 56);

/// Bytes of a [`TlsHeader`].
pub const TLS_HEADER_LEN: usize = core::mem::size_of::<TlsHeader>();

/// Per-CPU staging area of the TLS hooks, like [`Scratch`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsScratch {
    pub header: TlsHeader,
    pub data: [u8; TLS_CHUNK_MAX],
    /// Kernel-private loop state: bytes to deliver, and done so far.
    pub deliver: u32,
    pub done: u32,
    /// The caller's buffer.
    pub buf: u64,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, repr(C), no padding holes left implicit.
    unsafe impl aya::Pod for super::TlsHeader {}
    // SAFETY: plain-old-data, repr(C), no padding holes left implicit.
    unsafe impl aya::Pod for super::RecordHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::EndKey {}
    // SAFETY: as above (40-byte instructions after an 8-byte head).
    unsafe impl aya::Pod for super::expr::ExprProgram {}
}
