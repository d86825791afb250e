//! One captured packet to a [`Segment`]: the link layer (Ethernet with
//! VLAN tags, Linux SLL/SLL2, raw IP, BSD null and loopback), IP and TCP,
//! and the TCP checksum verdict. The common case, a whole unfragmented IPv4
//! TCP packet over Ethernet or Linux SLL, is sliced by hand first
//! (`fast_ipv4_tcp`, tested to agree with etherparse); anything else goes to
//! etherparse.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use etherparse::{
    EtherType, Ipv6ExtensionSlice, Ipv6ExtensionsSlice, LaxIpPayloadSlice, LaxNetSlice,
    LaxSlicedPacket, LenSource, TransportSlice,
};

use super::{checksum, SourceError};
use crate::source::{Checksum, Segment};

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
pub(super) fn fast_ipv4_tcp(ts_ns: u64, ip: &[u8]) -> Option<Parsed<'_>> {
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
                (tcp.fin(), crate::source::tcp_flags::FIN),
                (tcp.syn(), crate::source::tcp_flags::SYN),
                (tcp.rst(), crate::source::tcp_flags::RST),
                (tcp.psh(), crate::source::tcp_flags::PSH),
                (tcp.ack(), crate::source::tcp_flags::ACK),
                (tcp.urg(), crate::source::tcp_flags::URG),
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
