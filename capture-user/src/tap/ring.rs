//! The ring: parsing its records and draining it.
//!
//! Each ring record starts with a [`capture_common::RecordPrefix`] (kind and
//! version); a record of kind TCP segment is a [`RecordHeader`] followed by
//! a payload chunk of at most [`capture_common::CHUNK_MAX`] bytes.
//! [`Record::segment`] turns it into a [`Segment`] that borrows the payload
//! straight from ring memory: a chunk at offset `k` becomes a segment with
//! `seq + k`; SYN stays on the first chunk, FIN, RST and PSH on the last.
//! A record that cannot be read (another kind or version, or shorter than
//! its header says) is counted, never dropped silently.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aya::maps::{MapData, RingBuf};
use capture_common::{
    kind, RecordHeader, SockRecord, TlsHeader, HEADER_LEN, SOCK_RECORD_LEN, TLS_HEADER_LEN,
    WIRE_VERSION,
};

use crate::source::{tcp_flags, Checksum, Segment};

/// How often user space looks into the ring without a kernel wakeup: the
/// longest a record below the wakeup threshold waits to be decoded.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// Fill level at which the kernel wakes the reader: an eighth of the ring,
/// at most 256 KiB, so a burst is read long before the ring is full while a
/// trickle costs no wakeups at all (the poll timer finds it).
pub fn wakeup_bytes(ring_size: u32) -> u64 {
    (u64::from(ring_size) / 8).clamp(1, 256 << 10)
}

/// Rounds a requested ring size up to a power of two, at least one page.
pub fn ring_size_for(requested: u32) -> u32 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    requested
        .max(page)
        .checked_next_power_of_two()
        .unwrap_or(1 << 31)
}

/// Why a ring item could not be read as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Shorter than the prefix, the header, or the chunk the header claims.
    Short,
    /// A kind this wstap does not know.
    Kind(u8),
    /// A layout version this wstap was not built for.
    Version(u8),
}

/// One ring record: header plus the payload chunk, borrowed from ring memory.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub header: RecordHeader,
    pub payload: &'a [u8],
}

impl<'a> Record<'a> {
    /// Parses a ring item, checking its kind, version and lengths.
    pub fn parse(item: &'a [u8]) -> Result<Self, Unreadable> {
        // The bytes of `RecordPrefix`: kind, then version.
        let &[record_kind, version, ..] = item else {
            return Err(Unreadable::Short);
        };
        if record_kind != kind::TCP_SEGMENT {
            return Err(Unreadable::Kind(record_kind));
        }
        if version != WIRE_VERSION {
            return Err(Unreadable::Version(version));
        }
        if item.len() < HEADER_LEN {
            return Err(Unreadable::Short);
        }
        // SAFETY: at least HEADER_LEN bytes; RecordHeader is Pod; unaligned read.
        let header: RecordHeader = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        let payload = item
            .get(HEADER_LEN..HEADER_LEN + header.chunk_len as usize)
            .ok_or(Unreadable::Short)?;
        Ok(Record { header, payload })
    }

    pub fn src(&self) -> SocketAddr {
        SocketAddr::new(
            addr(self.header.family, &self.header.saddr),
            self.header.sport,
        )
    }

    pub fn dst(&self) -> SocketAddr {
        SocketAddr::new(
            addr(self.header.family, &self.header.daddr),
            self.header.dport,
        )
    }

    pub fn is_egress(&self) -> bool {
        self.header.direction == capture_common::DIR_EGRESS
    }

    /// The record as a [`Segment`]; `clock_offset_ns` converts the kernel's
    /// monotonic timestamp to wall time (see [`super::Tap::clock_offset_ns`]).
    pub fn segment(&self, clock_offset_ns: i64) -> Segment<'a> {
        let h = &self.header;
        let mut flags = h.tcp_flags;
        if h.rec_flags & capture_common::REC_FIRST == 0 {
            flags &= !tcp_flags::SYN;
        }
        if h.rec_flags & capture_common::REC_LAST == 0 {
            flags &= !(tcp_flags::FIN | tcp_flags::RST | tcp_flags::PSH);
        }
        Segment {
            iface: h.ifindex,
            ts_ns: (h.ts_ns as i64).wrapping_add(clock_offset_ns) as u64,
            src: self.src(),
            dst: self.dst(),
            seq: h.seq.wrapping_add(h.offset),
            ack: h.ack,
            flags,
            window: h.window,
            payload: self.payload,
            checksum: checksum_of(h.csum),
        }
    }
}

/// What the kernel's checksum knowledge means for the decoder. TC ingress
/// runs before TCP verifies the checksum; the kernel tells the program only
/// whether a device already verified it (`CHECKSUM_UNNECESSARY`). Egress
/// segments are this host's own, their checksums filled in later by
/// offload. Neither can be found bad here, so live segments are `Good` or
/// `Unchecked`, never `Bad`.
fn checksum_of(csum: u8) -> Checksum {
    match csum {
        capture_common::csum::VERIFIED => Checksum::Good,
        _ => Checksum::Unchecked,
    }
}

fn addr(family: u8, b: &[u8; 16]) -> IpAddr {
    if family == capture_common::FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*b))
    }
}

/// Hands every record now in the ring to `f`; returns how many items were
/// taken and adds those that could not be read to `unreadable`.
/// One ring item, read by its kind.
#[derive(Debug, Clone, Copy)]
pub enum RingItem<'a> {
    Segment(Record<'a>),
    /// A fact from the ownership hooks, for the owner table.
    Sock(SockFact),
    /// Plaintext (or a socket tie) from the TLS hooks.
    Tls(TlsRecord<'a>),
}

impl<'a> RingItem<'a> {
    pub fn parse(item: &'a [u8]) -> Result<Self, Unreadable> {
        match item.first() {
            Some(&kind::SOCK) => SockFact::parse(item).map(RingItem::Sock),
            Some(&kind::TLS) => TlsRecord::parse(item).map(RingItem::Tls),
            _ => Record::parse(item).map(RingItem::Segment),
        }
    }
}

/// A TLS hook record: its header and the plaintext chunk after it,
/// borrowed from ring memory.
#[derive(Debug, Clone, Copy)]
pub struct TlsRecord<'a> {
    pub header: TlsHeader,
    pub data: &'a [u8],
}

impl<'a> TlsRecord<'a> {
    pub fn parse(item: &'a [u8]) -> Result<Self, Unreadable> {
        if item.get(1) != Some(&WIRE_VERSION) {
            return Err(Unreadable::Version(item.get(1).copied().unwrap_or(0)));
        }
        if item.len() < TLS_HEADER_LEN {
            return Err(Unreadable::Short);
        }
        // SAFETY: at least TLS_HEADER_LEN bytes; TlsHeader is Pod; unaligned read.
        let header: TlsHeader = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        let data = item
            .get(TLS_HEADER_LEN..TLS_HEADER_LEN + header.chunk_len as usize)
            .ok_or(Unreadable::Short)?;
        Ok(TlsRecord { header, data })
    }
}

/// A [`SockRecord`] in user-space types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFact {
    /// One of `capture_common::sock_event`.
    pub event: u8,
    pub sk: u64,
    pub tgid: u32,
    pub comm: [u8; 16],
    /// Local end, then remote end (ESTABLISHED; LISTEN has the local end).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The owner filter's verdict on the owner (`capture_common::verdict`).
    pub selected: u8,
    /// ESTABLISHED of an accepted socket.
    pub passive: bool,
    /// Kernel time (monotonic ns).
    pub ts_ns: u64,
}

impl SockFact {
    pub fn parse(item: &[u8]) -> Result<Self, Unreadable> {
        if item.get(1) != Some(&WIRE_VERSION) {
            return Err(Unreadable::Version(item.get(1).copied().unwrap_or(0)));
        }
        if item.len() < SOCK_RECORD_LEN {
            return Err(Unreadable::Short);
        }
        // SAFETY: at least SOCK_RECORD_LEN bytes; SockRecord is Pod; unaligned read.
        let r: SockRecord = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        Ok(SockFact {
            event: r.event,
            sk: r.sk,
            tgid: r.tgid,
            comm: r.comm,
            local: SocketAddr::new(addr(r.family, &r.saddr), r.sport),
            remote: SocketAddr::new(addr(r.family, &r.daddr), r.dport),
            selected: r.selected,
            passive: r.passive != 0,
            ts_ns: r.ts_ns,
        })
    }
}

pub(super) fn drain(
    ring: &mut RingBuf<MapData>,
    unreadable: &mut u64,
    f: &mut impl FnMut(RingItem<'_>),
) -> usize {
    let mut n = 0;
    while let Some(item) = ring.next() {
        match RingItem::parse(&item) {
            Ok(it) => f(it),
            Err(why) => {
                if *unreadable == 0 {
                    log::warn!("unreadable ring record ({why:?}); counted in the summary");
                }
                *unreadable += 1;
            }
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use capture_common::RecordPrefix;

    fn item(h: RecordHeader, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN];
        // SAFETY: v holds HEADER_LEN bytes; unaligned write of a Pod.
        unsafe { std::ptr::write_unaligned(v.as_mut_ptr().cast(), h) };
        v.extend_from_slice(payload);
        v
    }

    fn header(rec_flags: u8, offset: u32, len: u32) -> RecordHeader {
        let mut h = RecordHeader {
            prefix: RecordPrefix {
                kind: kind::TCP_SEGMENT,
                version: WIRE_VERSION,
            },
            ts_ns: 1_000,
            ifindex: 3,
            seq: u32::MAX - 1,
            ack: 7,
            seg_len: 40_000,
            offset,
            chunk_len: len,
            sport: 40_000,
            dport: 80,
            window: 512,
            tcp_flags: tcp_flags::ACK | tcp_flags::PSH | tcp_flags::FIN,
            family: capture_common::FAMILY_V4,
            direction: capture_common::DIR_EGRESS,
            rec_flags,
            ..Default::default()
        };
        h.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        h.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        h
    }

    #[test]
    fn chunk_becomes_segment_at_its_offset() {
        let it = item(header(capture_common::REC_FIRST, 0, 3), b"abc");
        let r = Record::parse(&it).unwrap();
        let s = r.segment(5);
        assert_eq!(s.payload, b"abc");
        assert_eq!(s.seq, u32::MAX - 1);
        assert_eq!(s.ts_ns, 1_005);
        assert_eq!(s.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "10.0.0.2:80".parse().unwrap());
        assert!(!s.has(tcp_flags::FIN) && !s.has(tcp_flags::PSH) && s.has(tcp_flags::ACK));
        assert!(r.is_egress());

        // The last chunk, 16 KiB in: seq wraps, FIN and PSH are back.
        let it = item(header(capture_common::REC_LAST, 16_384, 2), b"yz");
        let s = Record::parse(&it).unwrap().segment(0);
        assert_eq!(s.seq, (u32::MAX - 1).wrapping_add(16_384));
        assert!(s.has(tcp_flags::FIN) && s.has(tcp_flags::PSH));
    }

    #[test]
    fn sock_records_are_read_by_their_kind() {
        let mut r = capture_common::SockRecord {
            prefix: RecordPrefix {
                kind: kind::SOCK,
                version: WIRE_VERSION,
            },
            event: capture_common::sock_event::ESTABLISHED,
            family: capture_common::FAMILY_V4,
            sk: 0xffff_8880_1234_5678,
            sport: 40_000,
            dport: 80,
            ..Default::default()
        };
        r.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        r.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        let mut v = vec![0u8; capture_common::SOCK_RECORD_LEN];
        unsafe { std::ptr::write_unaligned(v.as_mut_ptr().cast(), r) };
        let RingItem::Sock(f) = RingItem::parse(&v).unwrap() else {
            panic!("not a socket fact");
        };
        assert_eq!(f.sk, 0xffff_8880_1234_5678);
        assert_eq!(f.local, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(f.remote, "10.0.0.2:80".parse().unwrap());
        assert_eq!(RingItem::parse(&v[..20]).unwrap_err(), Unreadable::Short);
        v[1] = WIRE_VERSION + 1;
        assert_eq!(
            RingItem::parse(&v).unwrap_err(),
            Unreadable::Version(WIRE_VERSION + 1)
        );
    }

    #[test]
    fn v6_addresses_and_short_items() {
        let mut h = header(capture_common::REC_FIRST | capture_common::REC_LAST, 0, 0);
        h.family = capture_common::FAMILY_V6;
        h.saddr = "fd77::1".parse::<Ipv6Addr>().unwrap().octets();
        h.daddr = "fd77::2".parse::<Ipv6Addr>().unwrap().octets();
        let it = item(h, b"");
        let s = Record::parse(&it).unwrap().segment(0);
        assert_eq!(s.src, "[fd77::1]:40000".parse().unwrap());
        assert!(s.payload.is_empty());
        // Shorter than the header, or than the chunk length it claims.
        assert_eq!(
            Record::parse(&it[..HEADER_LEN - 1]).unwrap_err(),
            Unreadable::Short
        );
        assert_eq!(Record::parse(&it[..1]).unwrap_err(), Unreadable::Short);
        let it = item(header(0, 0, 10), b"short");
        assert_eq!(Record::parse(&it).unwrap_err(), Unreadable::Short);
    }

    #[test]
    fn other_kinds_and_versions_are_not_misread() {
        let mut h = header(capture_common::REC_FIRST, 0, 3);
        h.prefix.kind = 99;
        assert_eq!(
            Record::parse(&item(h, b"abc")).unwrap_err(),
            Unreadable::Kind(99)
        );
        let mut h = header(capture_common::REC_FIRST, 0, 3);
        h.prefix.version = WIRE_VERSION + 1;
        assert_eq!(
            Record::parse(&item(h, b"abc")).unwrap_err(),
            Unreadable::Version(WIRE_VERSION + 1)
        );
    }

    #[test]
    fn kernel_checksum_knowledge_is_never_bad() {
        let mut h = header(capture_common::REC_FIRST | capture_common::REC_LAST, 0, 3);
        for (csum, want) in [
            (capture_common::csum::VERIFIED, Checksum::Good),
            (capture_common::csum::LOCAL, Checksum::Unchecked),
            (capture_common::csum::UNKNOWN, Checksum::Unchecked),
        ] {
            h.csum = csum;
            let it = item(h, b"abc");
            assert_eq!(Record::parse(&it).unwrap().segment(0).checksum, want);
        }
    }

    #[test]
    fn ring_sizes_round_up_to_pages_and_powers_of_two() {
        assert_eq!(ring_size_for(1), 4096);
        assert_eq!(ring_size_for(4096), 4096);
        assert_eq!(ring_size_for(5000), 8192);
        assert_eq!(ring_size_for(64 << 20), 64 << 20);
    }
}
