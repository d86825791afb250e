//! Header parsing, one helper per layer: Ethernet with up to two VLAN tags,
//! IPv4 (with options) or IPv6 (skipping hop-by-hop, routing,
//! destination-options and fragment headers), then TCP (with options). Each
//! helper reads only its own header and says where the next one starts;
//! [`parse`] chains them. Every helper is `inline(always)` so the verifier
//! sees one straight function, as it did before the split.

use crate::packet::Packet;
use capture_common::{FAMILY_V4, FAMILY_V6};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;
/// IPv6 extension headers skipped on the way to TCP.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;
/// Most IPv6 extension headers followed (a bounded loop for the verifier).
const IPV6_EXT_MAX: usize = 6;

/// Why a packet yields no segment.
pub enum Skip {
    /// Not TCP, or a later IP fragment (no TCP header in it): not ours.
    NotTcp,
    /// Headers that claim more than the packet holds, or are malformed.
    Error,
}

/// The fields of one TCP segment that go into its records.
pub struct Seg {
    pub family: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub payload_off: u32,
    pub payload_len: u32,
}

/// Where the network layer left off: the addresses, the TCP header's offset
/// and the end of the IP packet (the packet may carry link-layer padding).
struct Network {
    family: u8,
    saddr: [u8; 16],
    daddr: [u8; 16],
    l4: u32,
    end: u32,
}

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

#[inline(always)]
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Parses the packet down to the TCP payload.
#[inline(always)]
pub fn parse<P: Packet>(p: &P) -> Result<Seg, Skip> {
    let pkt_len = p.total_len();
    let (ethertype, l3) = ethernet(p)?;
    let net = match ethertype {
        ETH_P_IP => ipv4(p, l3, pkt_len)?,
        ETH_P_IPV6 => ipv6(p, l3, pkt_len)?,
        _ => return Err(Skip::NotTcp),
    };
    tcp(p, &net, pkt_len)
}

/// Ethernet and up to two VLAN tags (802.1ad outer, 802.1Q inner): the
/// ethertype of the network layer and its offset.
#[inline(always)]
fn ethernet<P: Packet>(p: &P) -> Result<(u16, u32), Skip> {
    let eth = p.load::<14>(0).ok_or(Skip::Error)?;
    let mut proto = be16(&eth, 12);
    let mut off: u32 = 14;
    for _ in 0..2 {
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            let tag = p.load::<4>(off).ok_or(Skip::Error)?;
            proto = be16(&tag, 2);
            off += 4;
        }
    }
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        return Err(Skip::Error);
    }
    Ok((proto, off))
}

#[inline(always)]
fn ipv4<P: Packet>(p: &P, off: u32, pkt_len: u32) -> Result<Network, Skip> {
    let ip = p.load::<20>(off).ok_or(Skip::Error)?;
    let ihl = ((ip[0] & 0x0f) as u32) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return Err(Skip::Error);
    }
    if ip[9] != IPPROTO_TCP {
        return Err(Skip::NotTcp);
    }
    // Not the first fragment: no TCP header here.
    if be16(&ip, 6) & 0x1fff != 0 {
        return Err(Skip::NotTcp);
    }
    let tot = be16(&ip, 2) as u32;
    let mut net = Network {
        family: FAMILY_V4,
        saddr: [0; 16],
        daddr: [0; 16],
        l4: off + ihl,
        // tot_len 0: a BIG TCP GSO packet; its length is the skb's.
        end: if tot == 0 { pkt_len } else { off + tot },
    };
    net.saddr[..4].copy_from_slice(&ip[12..16]);
    net.daddr[..4].copy_from_slice(&ip[16..20]);
    Ok(net)
}

#[inline(always)]
fn ipv6<P: Packet>(p: &P, off: u32, pkt_len: u32) -> Result<Network, Skip> {
    let ip = p.load::<40>(off).ok_or(Skip::Error)?;
    if ip[0] >> 4 != 6 {
        return Err(Skip::Error);
    }
    let plen = be16(&ip, 4) as u32;
    let mut net = Network {
        family: FAMILY_V6,
        saddr: [0; 16],
        daddr: [0; 16],
        l4: 0,
        // payload_len 0: jumbogram / BIG TCP; take the packet's length.
        end: if plen == 0 { pkt_len } else { off + 40 + plen },
    };
    net.saddr.copy_from_slice(&ip[8..24]);
    net.daddr.copy_from_slice(&ip[24..40]);
    let mut next = ip[6];
    let mut h = off + 40;
    for _ in 0..IPV6_EXT_MAX {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let x = p.load::<2>(h).ok_or(Skip::Error)?;
                next = x[0];
                h += (x[1] as u32 + 1) * 8;
            }
            IPV6_FRAGMENT => {
                let x = p.load::<4>(h).ok_or(Skip::Error)?;
                if be16(&x, 2) & 0xfff8 != 0 {
                    return Err(Skip::NotTcp); // a later fragment
                }
                next = x[0];
                h += 8;
            }
            _ => break,
        }
    }
    match next {
        IPPROTO_TCP => {}
        // Still inside the extension headers after the most we follow.
        IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_DEST_OPTS => return Err(Skip::Error),
        _ => return Err(Skip::NotTcp),
    }
    net.l4 = h;
    Ok(net)
}

#[inline(always)]
fn tcp<P: Packet>(p: &P, net: &Network, pkt_len: u32) -> Result<Seg, Skip> {
    let tcp = p.load::<20>(net.l4).ok_or(Skip::Error)?;
    let doff = ((tcp[12] >> 4) as u32) * 4;
    if doff < 20 {
        return Err(Skip::Error);
    }
    let payload_off = net.l4 + doff;
    let end = if net.end > pkt_len { pkt_len } else { net.end };
    if end < payload_off {
        return Err(Skip::Error);
    }
    Ok(Seg {
        family: net.family,
        saddr: net.saddr,
        daddr: net.daddr,
        sport: be16(&tcp, 0),
        dport: be16(&tcp, 2),
        seq: be32(&tcp, 4),
        ack: be32(&tcp, 8),
        flags: tcp[13],
        window: be16(&tcp, 14),
        payload_off,
        payload_len: end - payload_off,
    })
}
