//! pcap and pcapng reader producing [`Segment`]s.
//!
//! Zero copy: [`PcapSource::for_each_segment`] lends each segment borrowing
//! the reader's packet buffer, so in-order payload reaches the decoder without
//! being copied. Link types: Ethernet (1, with VLAN tags), Linux cooked SLL
//! (113) and SLL2 (276), raw IP (101, 12, 14, 228, 229), BSD null (0) and
//! loopback (108). IPv4 with options, IPv6 with extension headers (etherparse).
//! The common case, a whole unfragmented IPv4 TCP packet over Ethernet or
//! Linux SLL, is sliced by hand first (`fast_ipv4_tcp`, tested to agree with
//! etherparse); anything else goes to etherparse.
//!
//! The file formats are framed by hand too, out of one read buffer
//! (`ReadBuf`): classic pcap records (`PcapRecords`) and pcapng blocks
//! (`NgBlocks`, with the framing checks pcap-file makes). pcap-file's
//! readers kept every pcapng Interface Description Block (unbounded) and
//! cost twice the time per small packet; its error type is kept.
//!
//! Never panics on malformed input: a packet that does not parse is counted
//! (and the first few logged); a packet cut by the snap length is decoded as
//! far as it was captured and counted as truncated (the flow table turns the
//! missing bytes into a gap); non-TCP packets and IP fragments are skipped
//! and counted, each on its own.

use std::fs::File;
use std::io::{Cursor, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use etherparse::{
    EtherType, Ipv6ExtensionSlice, Ipv6ExtensionsSlice, LaxIpPayloadSlice, LaxNetSlice,
    LaxSlicedPacket, LenSource, TransportSlice,
};
use pcap_file::PcapError;

use super::{Checksum, Segment};

mod checksum;

/// Why a capture file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "not a pcap or pcapng file (magic number {0:#010x}); wstap reads what tcpdump -w writes"
    )]
    NotPcap(u32),
    #[error("unsupported link type {0}: wstap reads Ethernet (1), Linux SLL (113), SLL2 (276), raw IP (101, 12, 14, 228, 229) and null/loopback (0, 108)")]
    UnsupportedLinkType(u32),
    #[error("the file ends inside its {0} header")]
    HeaderCut(&'static str),
    #[error("reading the capture")]
    Io(#[from] std::io::Error),
    #[error("interrupted before the capture could be read")]
    Interrupted,
    // The cause is the error's source, not part of its text: printed as a
    // chain (`{:#}`), it would otherwise appear twice.
    #[error("corrupt capture file after {packets} packets")]
    Corrupt {
        packets: u64,
        #[source]
        source: PcapError,
    },
}

/// Counters of the reader, for the exit summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Packet records read.
    pub packets: u64,
    /// TCP segments handed on.
    pub segments: u64,
    /// Packets that are not TCP (UDP, ARP, ICMP, ...).
    pub non_tcp: u64,
    /// IPv4 or IPv6 fragments (of any protocol, the first fragment
    /// included): wstap does not reassemble IP fragments, so they are
    /// skipped.
    pub fragments: u64,
    /// Packets whose headers did not parse.
    pub malformed: u64,
    /// Packets captured shorter than they were on the wire.
    pub truncated: u64,
    /// pcapng packets on an interface with a link type wstap does not read.
    pub unsupported_link: u64,
    /// pcapng packets on an interface declared past the first
    /// [`MAX_INTERFACES`] of its section (not decoded).
    pub iface_over_cap: u64,
    /// The file ended in the middle of a record.
    pub file_truncated: bool,
    /// Reading stopped early because the stop flag was raised (a signal).
    pub interrupted: bool,
}

/// Layer-2 framing of a capture's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    RawIp,
    /// BSD null: 4-byte address family in the capturing host's byte order.
    Null,
    /// OpenBSD loopback: 4-byte address family, big endian.
    Loop,
}

impl LinkType {
    pub fn from_code(code: u32) -> Result<LinkType, SourceError> {
        Ok(match code {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            101 | 12 | 14 | 228 | 229 => LinkType::RawIp,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            n => return Err(SourceError::UnsupportedLinkType(n)),
        })
    }
}

/// Result of parsing one packet.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A TCP segment, and how many payload bytes the capture cut off (the
    /// IP header's length says more than was captured).
    Tcp(Segment<'a>, u32),
    NotTcp,
    /// An IP fragment (not reassembled).
    Fragment,
    Malformed(&'static str),
}

/// Parses one link-layer frame into a TCP segment.
pub fn parse_packet(link: LinkType, ts_ns: u64, data: &[u8]) -> Parsed<'_> {
    // The common case (IPv4 over Ethernet or Linux SLL, whole, unfragmented,
    // TCP) by hand; everything else, and anything odd, through etherparse.
    let ip = match link {
        LinkType::Ethernet if data.get(12..14) == Some(&[0x08, 0x00]) => data.get(14..),
        LinkType::LinuxSll if data.get(14..16) == Some(&[0x08, 0x00]) => data.get(16..),
        LinkType::LinuxSll2 if data.get(0..2) == Some(&[0x08, 0x00]) => data.get(20..),
        _ => None,
    };
    if let Some(p) = ip.and_then(|ip| fast_ipv4_tcp(ts_ns, ip)) {
        return p;
    }
    parse_packet_lax(link, ts_ns, data)
}

/// An IPv4 packet carrying a whole TCP segment, parsed as etherparse's lax
/// slicing would parse it; `None` for anything else (other protocols,
/// fragments, IP total length shorter than the header or longer than the
/// capture, IPsec AH, bad TCP data offset), which etherparse then handles.
fn fast_ipv4_tcp(ts_ns: u64, ip: &[u8]) -> Option<Parsed<'_>> {
    let &[vihl, _, tl0, tl1, _, _, fr0, fr1, _, proto, _, _, s0, s1, s2, s3, d0, d1, d2, d3, ..] =
        ip
    else {
        return None;
    };
    let hl = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([tl0, tl1]));
    // Version 4, header length >= 20, protocol TCP, not a fragment (no
    // more-fragments bit, offset 0).
    if vihl >> 4 != 4 || hl < 20 || proto != 6 || fr0 & 0x3f != 0 || fr1 != 0 {
        return None;
    }
    if total < hl || total > ip.len() {
        return None;
    }
    let tcp = ip.get(hl..total)?;
    let &[p0, p1, q0, q1, sq0, sq1, sq2, sq3, a0, a1, a2, a3, off, fl, w0, w1, ..] = tcp else {
        return None;
    };
    let thl = usize::from(off >> 4) * 4;
    if thl < 20 {
        return None;
    }
    let payload = tcp.get(thl..)?;
    let (src, dst) = ([s0, s1, s2, s3], [d0, d1, d2, d3]);
    let checksum = checksum_v4(src, dst, &ip[20..hl], tcp);
    let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    Some(Parsed::Tcp(
        Segment {
            iface: 0,
            ts_ns,
            src: SocketAddr::new(IpAddr::V4(src), u16::from_be_bytes([p0, p1])),
            dst: SocketAddr::new(IpAddr::V4(dst), u16::from_be_bytes([q0, q1])),
            seq: u32::from_be_bytes([sq0, sq1, sq2, sq3]),
            ack: u32::from_be_bytes([a0, a1, a2, a3]),
            // FIN, SYN, RST, PSH, ACK, URG are the low six bits, as in
            // `tcp_flags`.
            flags: fl & 0x3f,
            window: u16::from_be_bytes([w0, w1]),
            payload,
            checksum,
        },
        0,
    ))
}

/// The checksum verdict of a whole IPv4 TCP segment; `options` are the IP
/// header's. With a source route the destination field holds the next
/// hop, not the final destination the sender summed: unchecked.
fn checksum_v4(src: [u8; 4], dst: [u8; 4], options: &[u8], tcp: &[u8]) -> Checksum {
    if !options.is_empty() && source_routed(options) {
        return Checksum::Unchecked;
    }
    checksum::verify_v4(src, dst, tcp)
}

/// Whether IPv4 options carry a loose or strict source route (RFC 791
/// types 131 and 137). Options that do not parse count as a route: their
/// packet cannot be checked with confidence either.
fn source_routed(mut options: &[u8]) -> bool {
    while let [kind, rest @ ..] = options {
        match kind {
            0 => return false,
            1 => options = rest,
            131 | 137 => return true,
            _ => match rest.first().map(|&l| usize::from(l)) {
                Some(len) if len >= 2 && len <= options.len() => options = &options[len..],
                _ => return true,
            },
        }
    }
    false
}

/// The checksum verdict of an IPv6 TCP segment whose extension headers
/// are `ext`. A routing header with segments left means the destination
/// field is not yet the final destination the pseudo-header needs
/// (RFC 8200 §8.1): unchecked, rather than decoding each routing type's
/// address list.
fn checksum_v6(
    src: &[u8; 16],
    dst: &[u8; 16],
    ext: &Ipv6ExtensionsSlice<'_>,
    tcp: &[u8],
) -> Checksum {
    let routed = ext.clone().into_iter().any(|e| match e {
        Ipv6ExtensionSlice::Routing(r) => r.slice().get(3).is_none_or(|&left| left != 0),
        _ => false,
    });
    if routed {
        return Checksum::Unchecked;
    }
    checksum::verify_v6(src, dst, tcp)
}

/// [`parse_packet`] without the fast path: etherparse for everything.
pub(crate) fn parse_packet_lax(link: LinkType, ts_ns: u64, data: &[u8]) -> Parsed<'_> {
    let sliced = match link {
        LinkType::Ethernet => match LaxSlicedPacket::from_ethernet(data) {
            Ok(p) => p,
            Err(_) => return Parsed::Malformed("short Ethernet header"),
        },
        LinkType::LinuxSll => {
            if data.len() < 16 {
                return Parsed::Malformed("short Linux SLL header");
            }
            let et = u16::from_be_bytes([data[14], data[15]]);
            LaxSlicedPacket::from_ether_type(EtherType(et), &data[16..])
        }
        LinkType::LinuxSll2 => {
            if data.len() < 20 {
                return Parsed::Malformed("short Linux SLL2 header");
            }
            let et = u16::from_be_bytes([data[0], data[1]]);
            LaxSlicedPacket::from_ether_type(EtherType(et), &data[20..])
        }
        LinkType::RawIp => match ip_packet(data) {
            Some(p) => p,
            None => return Parsed::Malformed("bad IP header"),
        },
        LinkType::Null | LinkType::Loop => {
            if data.len() < 4 {
                return Parsed::Malformed("short loopback header");
            }
            let fam = [data[0], data[1], data[2], data[3]];
            let fam = if link == LinkType::Loop {
                u32::from_be_bytes(fam)
            } else {
                // Host byte order of the capturing machine: either reading
                // gives a small number, the other a huge one.
                let le = u32::from_le_bytes(fam);
                if le < 0x10000 {
                    le
                } else {
                    u32::from_be_bytes(fam)
                }
            };
            // AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 by OS.
            if !matches!(fam, 2 | 24 | 28 | 30) {
                return Parsed::NotTcp;
            }
            match ip_packet(&data[4..]) {
                Some(p) => p,
                None => return Parsed::Malformed("bad IP header"),
            }
        }
    };
    to_segment(sliced, ts_ns)
}

fn ip_packet(data: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    LaxSlicedPacket::from_ip(data).ok()
}

fn to_segment<'a>(p: LaxSlicedPacket<'a>, ts_ns: u64) -> Parsed<'a> {
    // `wire_len`: the IP payload length the header announces, when the
    // capture holds less of it (snap length).
    let (src_ip, dst_ip, fragmented, wire_len): (IpAddr, IpAddr, bool, Option<usize>) = match &p.net
    {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let pl = v4.payload();
            let wire = usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4);
            let wire = pl.incomplete.then_some(wire);
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                pl.fragmented,
                wire,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let pl = v6.payload();
            // The payload length counts extension headers too; they are
            // whole in the capture when the TCP header was reached.
            let ext = v6.extensions().slice().len();
            let wire = usize::from(h.payload_length()).saturating_sub(ext);
            let wire = pl.incomplete.then_some(wire);
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                pl.fragmented,
                wire,
            )
        }
        Some(LaxNetSlice::Arp(_)) => return Parsed::NotTcp,
        None => {
            return match p.stop_err {
                Some(_) => Parsed::Malformed("bad network header"),
                None => Parsed::NotTcp,
            }
        }
    };
    if fragmented {
        return Parsed::Fragment;
    }
    match &p.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let mut flags = 0u8;
            for (on, bit) in [
                (tcp.fin(), super::tcp_flags::FIN),
                (tcp.syn(), super::tcp_flags::SYN),
                (tcp.rst(), super::tcp_flags::RST),
                (tcp.psh(), super::tcp_flags::PSH),
                (tcp.ack(), super::tcp_flags::ACK),
                (tcp.urg(), super::tcp_flags::URG),
            ] {
                if on {
                    flags |= bit;
                }
            }
            let captured = tcp.slice().len();
            let lost = wire_len.map_or(0, |w| w.saturating_sub(captured));
            let lost = u32::try_from(lost).unwrap_or(u32::MAX);
            let checksum = lax_checksum(&p, tcp.slice());
            Parsed::Tcp(
                Segment {
                    iface: 0,
                    ts_ns,
                    src: SocketAddr::new(src_ip, tcp.source_port()),
                    dst: SocketAddr::new(dst_ip, tcp.destination_port()),
                    seq: tcp.sequence_number(),
                    ack: tcp.acknowledgment_number(),
                    flags,
                    window: tcp.window_size(),
                    payload: tcp.payload(),
                    checksum,
                },
                lost,
            )
        }
        Some(_) => Parsed::NotTcp,
        None => match p.stop_err {
            Some((_, etherparse::err::Layer::TcpHeader)) => Parsed::Malformed("bad TCP header"),
            Some(_) if is_tcp(&p) => Parsed::Malformed("bad TCP header"),
            _ => Parsed::NotTcp,
        },
    }
}

/// The checksum verdict of the TCP segment `tcp` (header and payload) of
/// `p`: verified only when the IP header gave its length and all of it was
/// captured, so that `tcp` is exactly the segment the sender summed.
fn lax_checksum(p: &LaxSlicedPacket<'_>, tcp: &[u8]) -> Checksum {
    match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) if whole(v4.payload(), LenSource::Ipv4HeaderTotalLen) => {
            let h = v4.header();
            checksum_v4(h.source(), h.destination(), h.options(), tcp)
        }
        Some(LaxNetSlice::Ipv6(v6)) if whole(v6.payload(), LenSource::Ipv6HeaderPayloadLen) => {
            let h = v6.header();
            checksum_v6(&h.source(), &h.destination(), v6.extensions(), tcp)
        }
        _ => Checksum::Unchecked,
    }
}

/// An IP payload captured whole, its length told by the IP header
/// (`from`), not guessed from the captured bytes: a zero length field
/// (IPv4 TSO captures, IPv6 jumbograms) leaves the end unknown, and the
/// captured bytes may hold link-layer padding after it.
fn whole(pl: &LaxIpPayloadSlice<'_>, from: LenSource) -> bool {
    !pl.incomplete && pl.len_source == from
}

fn is_tcp(p: &LaxSlicedPacket<'_>) -> bool {
    let n = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => v4.payload().ip_number,
        Some(LaxNetSlice::Ipv6(v6)) => v6.payload().ip_number,
        _ => return false,
    };
    n == etherparse::IpNumber::TCP
}

enum Inner<R: Read> {
    Pcap {
        records: PcapRecords<R>,
        link: LinkType,
    },
    Ng {
        blocks: NgBlocks<R>,
        ifaces: Ifaces,
    },
}

/// Most interfaces of one pcapng section wstap keeps (link type and
/// timestamp unit each, 16 bytes). Interface Description Blocks past it are
/// read and counted but not kept; packets on those interfaces are counted in
/// [`SourceStats::iface_over_cap`] and not decoded.
pub const MAX_INTERFACES: usize = 1 << 16;

/// The interfaces of the current pcapng section, in declaration order (the
/// index is the interface id of the packets).
#[derive(Default)]
struct Ifaces {
    /// Link type (or the unsupported code) and timestamp unit, at most
    /// [`MAX_INTERFACES`].
    kept: Vec<(Result<LinkType, u32>, TsUnit)>,
    /// Interface Description Blocks seen in this section, kept or not.
    declared: u64,
}

impl Ifaces {
    fn add(&mut self, link_code: u32, unit: TsUnit) {
        self.declared += 1;
        if self.kept.len() < MAX_INTERFACES {
            self.kept
                .push((LinkType::from_code(link_code).map_err(|_| link_code), unit));
        } else if self.declared == MAX_INTERFACES as u64 + 1 {
            log::warn!(
                "more than {MAX_INTERFACES} interfaces in one pcapng section; \
                 packets on the others are counted, not decoded"
            );
        }
    }

    fn clear(&mut self) {
        self.kept.clear();
        self.declared = 0;
    }
}

/// Timestamp resolution of a pcapng interface (`if_tsresol`).
#[derive(Debug, Clone, Copy)]
enum TsUnit {
    /// Multiply raw units by this many nanoseconds.
    MulNs(u64),
    /// Divide raw units by this (resolution finer than 1 ns).
    Div(u64),
}

impl TsUnit {
    fn from_tsresol(r: u8) -> TsUnit {
        let exp = u32::from(r & 0x7f);
        if r & 0x80 != 0 {
            // Power of two: 2^-exp seconds.
            if exp >= 30 {
                TsUnit::Div(1u64 << (exp - 30).min(63))
            } else {
                TsUnit::MulNs(1_000_000_000 >> exp)
            }
        } else if exp <= 9 {
            TsUnit::MulNs(10u64.pow(9 - exp))
        } else {
            TsUnit::Div(10u64.saturating_pow(exp - 9))
        }
    }

    fn to_ns(self, raw: u64) -> u64 {
        match self {
            TsUnit::MulNs(m) => raw.saturating_mul(m),
            TsUnit::Div(d) => raw / d.max(1),
        }
    }
}

/// pcapng block types wstap reads; every other block is skipped whole.
const SECTION_HEADER_BLOCK: u32 = 0x0a0d_0d0a;
const INTERFACE_DESCRIPTION_BLOCK: u32 = 1;
const SIMPLE_PACKET_BLOCK: u32 = 3;
const ENHANCED_PACKET_BLOCK: u32 = 6;

/// Largest pcapng block or pcap record read (one holds one packet; snap
/// lengths are at most 256 KiB in practice). A longer one is a corrupt file.
const MAX_BLOCK: usize = 16 << 20;

/// What the read buffer starts with (it grows up to [`MAX_BLOCK`] for a
/// block that does not fit).
const READ_BUFFER: usize = 1 << 20;

/// The file's bytes, read in large chunks; records are parsed in place.
struct ReadBuf<R: Read> {
    reader: R,
    buf: Vec<u8>,
    /// Unread bytes are `buf[pos..len]`.
    pos: usize,
    len: usize,
}

impl<R: Read> ReadBuf<R> {
    fn new(reader: R) -> Self {
        ReadBuf {
            reader,
            buf: vec![0; READ_BUFFER],
            pos: 0,
            len: 0,
        }
    }

    /// Makes `n` (at most [`MAX_BLOCK`]) unread bytes available; false at
    /// the end of the file.
    #[inline]
    fn fill_to(&mut self, n: usize) -> Result<bool, PcapError> {
        if self.len - self.pos >= n {
            return Ok(true);
        }
        self.fill_slow(n)
    }

    #[inline(never)]
    fn fill_slow(&mut self, n: usize) -> Result<bool, PcapError> {
        while self.len - self.pos < n {
            if self.buf.len() - self.pos < n {
                self.buf.copy_within(self.pos..self.len, 0);
                self.len -= self.pos;
                self.pos = 0;
                if self.buf.len() < n {
                    self.buf.resize(n.next_power_of_two().min(MAX_BLOCK), 0);
                }
            }
            match self.reader.read(&mut self.buf[self.len..]) {
                Ok(0) => return Ok(false),
                Ok(got) => self.len += got,
                Err(e) => return Err(PcapError::IoError(e)),
            }
        }
        Ok(true)
    }

    /// True at a clean end of the file (nothing left, nothing more to read).
    fn at_end(&mut self) -> Result<bool, PcapError> {
        Ok(self.pos == self.len && !self.fill_to(1)?)
    }
}

/// One classic pcap record: timestamp in nanoseconds, original length,
/// captured bytes.
type PcapRecord<'a> = (u64, u32, &'a [u8]);

/// Classic pcap records straight out of a read buffer (pcap-file's reader
/// did the same checks: only the record's length matters).
struct PcapRecords<R: Read> {
    rd: ReadBuf<R>,
    big_endian: bool,
    nanos: bool,
    /// The link type code of the file header.
    link: u32,
}

impl<R: Read> PcapRecords<R> {
    /// Reads the 24-byte file header.
    fn new(reader: R) -> Result<Self, PcapError> {
        let mut rd = ReadBuf::new(reader);
        if !rd.fill_to(24)? {
            return Err(cut());
        }
        let h = &rd.buf[..24];
        let (big_endian, nanos) = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
            0xa1b2_c3d4 => (true, false),
            0xa1b2_3c4d => (true, true),
            0xd4c3_b2a1 => (false, false),
            0x4d3c_b2a1 => (false, true),
            _ => return Err(bad("PcapHeader: wrong magic number")),
        };
        let l = [h[20], h[21], h[22], h[23]];
        let link = if big_endian {
            u32::from_be_bytes(l)
        } else {
            u32::from_le_bytes(l)
        };
        rd.pos = 24;
        Ok(PcapRecords {
            rd,
            big_endian,
            nanos,
            link,
        })
    }

    /// The next record: timestamp in nanoseconds, original length and the
    /// captured bytes; `None` at a clean end of file.
    #[inline]
    fn next_record(&mut self) -> Result<Option<PcapRecord<'_>>, PcapError> {
        if self.rd.at_end()? {
            return Ok(None);
        }
        if !self.rd.fill_to(16)? {
            return Err(cut());
        }
        let at = self.rd.pos;
        let h = &self.rd.buf[at..at + 16];
        let word = |i: usize| {
            let w = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if self.big_endian {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }
        };
        let (sec, frac, incl, orig) = (word(0), word(4), word(8) as usize, word(12));
        let frac = u64::from(frac) * if self.nanos { 1 } else { 1000 };
        let ts = u64::from(sec) * 1_000_000_000 + frac;
        if incl > MAX_BLOCK - 16 {
            return Err(bad("PcapPacket: longer than the 16 MiB wstap reads"));
        }
        if !self.rd.fill_to(16 + incl)? {
            return Err(cut());
        }
        let at = self.rd.pos + 16;
        self.rd.pos = at + incl;
        Ok(Some((ts, orig, &self.rd.buf[at..at + incl])))
    }
}

/// pcapng blocks straight out of a read buffer: the framing (type, length,
/// trailer) is checked as pcap-file checks it, then the four block types
/// wstap needs are sliced by hand, in place. pcap-file's own reader keeps a
/// copy of every Interface Description Block for as long as the section
/// lasts, which wstap cannot bound; here the caller keeps what it needs of
/// each one ([`Ifaces`]), in constant time per block.
struct NgBlocks<R: Read> {
    rd: ReadBuf<R>,
    /// Byte order of the current section.
    big_endian: bool,
}

fn bad(what: &'static str) -> PcapError {
    PcapError::InvalidField(what)
}

/// The end of the file inside a block, as pcap-file reports it.
fn cut() -> PcapError {
    PcapError::IoError(std::io::ErrorKind::UnexpectedEof.into())
}

impl<R: Read> NgBlocks<R> {
    /// Reads the first Section Header Block.
    fn new(reader: R) -> Result<Self, PcapError> {
        let mut b = NgBlocks {
            rd: ReadBuf::new(reader),
            big_endian: false,
        };
        match b.next_block()? {
            Some((SECTION_HEADER_BLOCK, body)) => b.section_header(body)?,
            Some(_) => return Err(bad("PcapNg: SectionHeader invalid or missing")),
            None => return Err(cut()),
        }
        Ok(b)
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    }

    fn u16_at(&self, b: &[u8], at: usize) -> u16 {
        let w = [b[at], b[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(w)
        } else {
            u16::from_le_bytes(w)
        }
    }

    /// The next block: its type and the range of its body in the buffer
    /// (valid until the next call); `None` at a clean end of file.
    fn next_block(&mut self) -> Result<Option<(u32, std::ops::Range<usize>)>, PcapError> {
        if self.rd.at_end()? {
            return Ok(None);
        }
        if !self.rd.fill_to(12)? {
            return Err(cut());
        }
        let head = &self.rd.buf[self.rd.pos..self.rd.pos + 12];
        let kind = self.u32_at(head, 0);
        let len = if kind == SECTION_HEADER_BLOCK {
            // The byte order is the new section's, told by its magic.
            let be = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            match u32::from_be_bytes([head[8], head[9], head[10], head[11]]) {
                0x1a2b_3c4d => be,
                0x4d3c_2b1a => be.swap_bytes(),
                _ => return Err(bad("SectionHeaderBlock: invalid magic number")),
            }
        } else {
            self.u32_at(head, 4)
        };
        if len % 4 != 0 {
            return Err(bad("Block: (initial_len % 4) != 0"));
        }
        if len < 12 {
            return Err(bad("Block: initial_len < 12"));
        }
        let len = len as usize;
        if len > MAX_BLOCK {
            return Err(bad("Block: longer than the 16 MiB wstap reads"));
        }
        if !self.rd.fill_to(len)? {
            return Err(cut());
        }
        let start = self.rd.pos;
        let trailer = if kind == SECTION_HEADER_BLOCK {
            let t = &self.rd.buf[start + len - 4..start + len];
            let magic = &self.rd.buf[start + 8..start + 12];
            let w = [t[0], t[1], t[2], t[3]];
            if magic == [0x1a, 0x2b, 0x3c, 0x4d] {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }
        } else {
            self.u32_at(&self.rd.buf, start + len - 4)
        };
        if trailer as usize != len {
            return Err(bad("Block: initial_length != trailer_length"));
        }
        self.rd.pos += len;
        Ok(Some((kind, start + 8..start + len - 4)))
    }

    /// A Section Header Block: sets the byte order of what follows.
    fn section_header(&mut self, body: std::ops::Range<usize>) -> Result<(), PcapError> {
        let b = &self.rd.buf[body];
        if b.len() < 16 {
            return Err(bad("SectionHeaderBlock: block length < 16"));
        }
        self.big_endian = b[..4] == [0x1a, 0x2b, 0x3c, 0x4d];
        Ok(())
    }

    /// An Interface Description Block: link type code and timestamp unit
    /// (`if_tsresol`, microseconds when absent). Options are walked only as
    /// far as they are well formed.
    fn idb(&self, body: std::ops::Range<usize>) -> Result<(u32, TsUnit), PcapError> {
        let b = &self.rd.buf[body];
        if b.len() < 8 {
            return Err(bad("InterfaceDescriptionBlock: block length < 8"));
        }
        let link = u32::from(self.u16_at(b, 0));
        let mut unit = TsUnit::MulNs(1000);
        let mut at = 8;
        while at + 4 <= b.len() {
            let code = self.u16_at(b, at);
            let olen = usize::from(self.u16_at(b, at + 2));
            if code == 0 || at + 4 + olen > b.len() {
                break;
            }
            if code == 9 && olen == 1 {
                unit = TsUnit::from_tsresol(b[at + 4]);
            }
            at += 4 + olen.div_ceil(4) * 4;
        }
        Ok((link, unit))
    }

    /// An Enhanced Packet Block: interface id, raw timestamp, original
    /// length and the captured bytes (options are not read).
    fn epb(&self, body: std::ops::Range<usize>) -> Result<(u32, u64, u32, &[u8]), PcapError> {
        let b = &self.rd.buf[body];
        if b.len() < 20 {
            return Err(bad("EnhancedPacketBlock: block length length < 20"));
        }
        let iface = self.u32_at(b, 0);
        let ts = u64::from(self.u32_at(b, 4)) << 32 | u64::from(self.u32_at(b, 8));
        let caplen = self.u32_at(b, 12) as usize;
        let orig_len = self.u32_at(b, 16);
        let data = b
            .get(20..)
            .and_then(|d| d.get(..caplen))
            .filter(|_| caplen.div_ceil(4) * 4 <= b.len() - 20)
            .ok_or_else(|| bad("EnhancedPacketBlock: captured_len + padding > block length"))?;
        Ok((iface, ts, orig_len, data))
    }

    /// A Simple Packet Block (interface 0): original length and the
    /// captured bytes (the padding cut off).
    fn spb(&self, body: std::ops::Range<usize>) -> Result<(u32, &[u8]), PcapError> {
        let b = &self.rd.buf[body];
        if b.len() < 4 {
            return Err(bad("SimplePacketBlock: block length < 4"));
        }
        let orig_len = self.u32_at(b, 0);
        let data = &b[4..];
        let n = data.len().min(orig_len as usize);
        Ok((orig_len, &data[..n]))
    }
}

/// A capture file being read.
pub struct PcapSource<R: Read> {
    inner: Inner<R>,
    stats: SourceStats,
}

/// How many malformed packets are logged one by one before only counting.
const LOG_MALFORMED: u64 = 5;

/// A capture file opened by path.
pub type FileSource = PcapSource<PcapChain<File>>;

impl FileSource {
    /// Opens a pcap or pcapng file (format by magic number). The parsers
    /// read in large chunks themselves, so the file is not wrapped in a
    /// BufReader.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        Self::open_until(path, None)
    }

    /// Like [`open`](Self::open), stopping once `stop` is raised: see
    /// [`PcapSource::from_reader_until`]. Opening a FIFO waits for a writer;
    /// that wait ends too (with [`SourceError::Interrupted`]).
    pub fn open_until(path: &Path, stop: Option<&'static AtomicBool>) -> Result<Self, SourceError> {
        let file = loop {
            // std's File::open retries EINTR by itself, so a stop signal
            // would go on waiting for a FIFO's writer; open(2) is called
            // here instead, and an interruption checked against the flag.
            match open_once(path) {
                Ok(f) => break f,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    if stopped(stop) {
                        return Err(SourceError::Interrupted);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        PcapSource::from_reader_until(file, stop)
    }
}

/// One open(2) of `path` for reading, EINTR reported, not retried.
fn open_once(path: &Path) -> std::io::Result<File> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::FromRawFd;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated path; the descriptor returned is owned by
    // the File from here on.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly opened descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn stopped(stop: Option<&AtomicBool>) -> bool {
    stop.is_some_and(|s| s.load(Ordering::Relaxed))
}

/// The file under the parsers: once the stop flag is up, every read fails
/// with `Interrupted`, which ends reading (the parsers first finish the
/// records already in their buffer, 1 MiB at a time). A read interrupted by
/// a signal (EINTR) is retried unless that signal raised the flag. The
/// flag is looked at once per read, not per record: a check per packet
/// cost 5-10 % on captures of small packets.
pub struct StopReader<R> {
    inner: R,
    stop: Option<&'static AtomicBool>,
}

impl<R: Read> Read for StopReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if stopped(self.stop) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            match self.inner.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl<R: Read> PcapSource<PcapChain<R>> {
    /// Wraps any reader; the format is told by the first four bytes.
    pub fn from_reader(r: R) -> Result<Self, SourceError> {
        Self::from_reader_until(r, None)
    }

    /// Like [`from_reader`](Self::from_reader), with a stop flag (raised by
    /// a signal handler): once it is up, nothing more is read from `r`
    /// ([`StopReader`]; a read the signal interrupted, on a FIFO or pipe
    /// waiting for data, ends too), [`for_each_segment`]
    /// (Self::for_each_segment) returns after the records already read and
    /// [`SourceStats::interrupted`] is set.
    pub fn from_reader_until(r: R, stop: Option<&'static AtomicBool>) -> Result<Self, SourceError> {
        let mut r = StopReader { inner: r, stop };
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = match r.read(&mut magic[got..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    return Err(SourceError::Interrupted)
                }
                n => n?,
            };
            if n == 0 {
                return Err(SourceError::NotPcap(u32::from_be_bytes(magic)));
            }
            got += n;
        }
        let m = u32::from_be_bytes(magic);
        let chained = Cursor::new(magic).chain(r);
        let corrupt = |format| {
            move |e| match e {
                PcapError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    SourceError::HeaderCut(format)
                }
                PcapError::IoError(io) if io.kind() == std::io::ErrorKind::Interrupted => {
                    SourceError::Interrupted
                }
                PcapError::IoError(io) => SourceError::Io(io),
                source => SourceError::Corrupt { packets: 0, source },
            }
        };
        let inner = match m {
            0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1 => {
                let records = PcapRecords::new(chained).map_err(corrupt("pcap"))?;
                let link = LinkType::from_code(records.link)?;
                Inner::Pcap { records, link }
            }
            0x0a0d0d0a => Inner::Ng {
                blocks: NgBlocks::new(chained).map_err(corrupt("pcapng"))?,
                ifaces: Ifaces::default(),
            },
            other => return Err(SourceError::NotPcap(other)),
        };
        Ok(PcapSource {
            inner,
            stats: SourceStats::default(),
        })
    }
}

/// The reader type behind [`PcapSource::from_reader`] (the magic number is
/// read first, then put back in front).
pub type PcapChain<R> = std::io::Chain<Cursor<[u8; 4]>, StopReader<R>>;

impl<R: Read> PcapSource<R> {
    pub fn stats(&self) -> &SourceStats {
        &self.stats
    }

    /// The link type of a classic pcap file (pcapng has one per interface).
    pub fn link_type(&self) -> Option<LinkType> {
        match &self.inner {
            Inner::Pcap { link, .. } => Some(*link),
            Inner::Ng { .. } => None,
        }
    }

    /// Calls `f` with every TCP segment, in file order, until the file ends or
    /// `f` breaks. Each segment borrows the reader's buffer (no copy). The
    /// second argument is the number of payload bytes the capture cut off
    /// (snap length), for [`Decoder::push_cut`](crate::decode::Decoder::push_cut).
    pub fn for_each_segment(
        &mut self,
        mut f: impl FnMut(&Segment<'_>, u32) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let stats = &mut self.stats;
        match &mut self.inner {
            Inner::Pcap { records, link } => read_pcap(records, *link, stats, &mut f),
            Inner::Ng { blocks, ifaces } => read_pcapng(blocks, ifaces, stats, &mut f),
        }
    }
}

/// The records of a classic pcap file, see [`PcapSource::for_each_segment`].
fn read_pcap<R: Read>(
    records: &mut PcapRecords<R>,
    link: LinkType,
    stats: &mut SourceStats,
    mut f: impl FnMut(&Segment<'_>, u32) -> ControlFlow<()>,
) -> Result<(), SourceError> {
    // An original length above the snap length is exactly what a capture
    // with a short snap length holds: counted as truncated, not refused.
    loop {
        let (ts, orig_len, data) = match records.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return end_of_file(stats, e),
        };
        let trunc = (orig_len as usize) > data.len();
        if handle(stats, link, 0, ts, data, trunc, &mut f).is_break() {
            break;
        }
    }
    Ok(())
}

/// The blocks of a pcapng file, see [`PcapSource::for_each_segment`].
fn read_pcapng<R: Read>(
    blocks: &mut NgBlocks<R>,
    ifaces: &mut Ifaces,
    stats: &mut SourceStats,
    mut f: impl FnMut(&Segment<'_>, u32) -> ControlFlow<()>,
) -> Result<(), SourceError> {
    loop {
        let (kind, body) = match blocks.next_block() {
            Ok(None) => break,
            Ok(Some(b)) => b,
            Err(e) => return end_of_file(stats, e),
        };
        let (iface, raw_ts, orig_len, data) = match kind {
            ENHANCED_PACKET_BLOCK => match blocks.epb(body) {
                Ok(p) => p,
                Err(e) => return end_of_file(stats, e),
            },
            SIMPLE_PACKET_BLOCK => match blocks.spb(body) {
                Ok((orig_len, data)) => (0, 0, orig_len, data),
                Err(e) => return end_of_file(stats, e),
            },
            INTERFACE_DESCRIPTION_BLOCK => match blocks.idb(body) {
                Ok((link, unit)) => {
                    ifaces.add(link, unit);
                    continue;
                }
                Err(e) => return end_of_file(stats, e),
            },
            SECTION_HEADER_BLOCK => {
                // A new section: its own byte order and interfaces.
                if let Err(e) = blocks.section_header(body) {
                    return end_of_file(stats, e);
                }
                ifaces.clear();
                continue;
            }
            _ => continue,
        };
        let Some(&(link, unit)) = ifaces.kept.get(iface as usize) else {
            stats.packets += 1;
            if u64::from(iface) < ifaces.declared {
                stats.iface_over_cap += 1;
            } else {
                count_malformed(stats, "packet on an undeclared interface");
            }
            continue;
        };
        let Ok(link) = link else {
            stats.packets += 1;
            stats.unsupported_link += 1;
            continue;
        };
        let trunc = (orig_len as usize) > data.len();
        let ts = unit.to_ns(raw_ts);
        if handle(stats, link, iface, ts, data, trunc, &mut f).is_break() {
            break;
        }
    }
    Ok(())
}

/// Parses one packet and hands it on if it is TCP.
fn handle(
    stats: &mut SourceStats,
    link: LinkType,
    iface: u32,
    ts_ns: u64,
    data: &[u8],
    truncated: bool,
    f: &mut dyn FnMut(&Segment<'_>, u32) -> ControlFlow<()>,
) -> ControlFlow<()> {
    stats.packets += 1;
    stats.truncated += u64::from(truncated);
    match parse_packet(link, ts_ns, data) {
        Parsed::Tcp(mut seg, lost) => {
            stats.segments += 1;
            seg.iface = iface;
            f(&seg, lost)
        }
        Parsed::NotTcp => {
            stats.non_tcp += 1;
            ControlFlow::Continue(())
        }
        Parsed::Fragment => {
            stats.fragments += 1;
            ControlFlow::Continue(())
        }
        Parsed::Malformed(why) => {
            count_malformed(stats, why);
            ControlFlow::Continue(())
        }
    }
}

fn count_malformed(stats: &mut SourceStats, why: &str) {
    stats.malformed += 1;
    if stats.malformed <= LOG_MALFORMED {
        log::warn!("packet {}: malformed ({why}); skipped", stats.packets);
    }
}

/// A read error: a record cut by the end of the file ends reading quietly
/// (counted); anything else is an error.
fn end_of_file(stats: &mut SourceStats, e: PcapError) -> Result<(), SourceError> {
    match e {
        PcapError::IncompleteBuffer => {
            stats.file_truncated = true;
            log::warn!("the capture file ends in the middle of a packet; read what was there");
            Ok(())
        }
        PcapError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            stats.file_truncated = true;
            Ok(())
        }
        // Only a raised stop flag lets an interrupted read through
        // (`StopReader`).
        PcapError::IoError(io) if io.kind() == std::io::ErrorKind::Interrupted => {
            stats.interrupted = true;
            Ok(())
        }
        PcapError::IoError(io) => Err(SourceError::Io(io)),
        other => Err(SourceError::Corrupt {
            packets: stats.packets,
            source: other,
        }),
    }
}

#[cfg(test)]
mod tests;
