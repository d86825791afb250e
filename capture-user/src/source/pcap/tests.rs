//! pcap reader tests on small captures built in memory with pcap-file's writers.

use std::borrow::Cow;
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

use super::packet::{fast_ipv4_tcp, parse_packet_lax};
use super::*;
use crate::source::tcp_flags;
use crate::source::Checksum;

/// IPv4 + TCP (seq 1000, PSH|ACK) carrying `payload`, without link header.
fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 512)
        .psh()
        .ack(77);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn ipv6_tcp(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
        .tcp(1, 2, 3, 4)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn eth(ip: &[u8], ether_type: u16) -> Vec<u8> {
    let mut v = vec![0u8; 12];
    v.extend(ether_type.to_be_bytes());
    v.extend_from_slice(ip);
    v
}

fn pcap_file(link: DataLink, packets: &[(Vec<u8>, u32)]) -> Vec<u8> {
    let header = PcapHeader {
        datalink: link,
        snaplen: 262144,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    for (i, (data, orig)) in packets.iter().enumerate() {
        let p = PcapPacket::new(Duration::new(1_700_000_000, i as u32 * 1000), *orig, data);
        w.write_packet(&p).unwrap();
    }
    w.into_writer()
}

/// (src, dst, seq, flags, payload, ts_ns) of one segment.
type Seen = (String, String, u32, u8, Vec<u8>, u64);

/// Reads all segments.
fn read_all(file: Vec<u8>) -> (Vec<Seen>, SourceStats) {
    let mut src = PcapSource::from_reader(Cursor::new(file)).unwrap();
    let mut v = Vec::new();
    src.for_each_segment(|s, _lost| {
        v.push((
            s.src.to_string(),
            s.dst.to_string(),
            s.seq,
            s.flags,
            s.payload.to_vec(),
            s.ts_ns,
        ));
        ControlFlow::Continue(())
    })
    .unwrap();
    (v, src.stats().clone())
}

fn one(data: Vec<u8>, link: DataLink) -> Vec<u8> {
    let len = data.len() as u32;
    pcap_file(link, &[(data, len)])
}

#[test]
fn ethernet_ipv4() {
    let (segs, st) = read_all(one(eth(&ipv4_tcp(b"hi"), 0x0800), DataLink::ETHERNET));
    assert_eq!(segs.len(), 1);
    let (s, d, seq, flags, p, ts) = &segs[0];
    assert_eq!(
        (s.as_str(), d.as_str(), *seq),
        ("10.0.0.1:40000", "10.0.0.2:80", 1000)
    );
    assert_eq!(*flags, tcp_flags::PSH | tcp_flags::ACK);
    assert_eq!(p, b"hi");
    assert_eq!(*ts, 1_700_000_000_000_000_000);
    assert_eq!(st.segments, 1);
}

#[test]
fn ethernet_vlan_ipv6() {
    let mut frame = vec![0u8; 12];
    frame.extend([0x81, 0x00, 0x00, 0x05, 0x86, 0xdd]);
    frame.extend(ipv6_tcp(b"x"));
    let (segs, _) = read_all(one(frame, DataLink::ETHERNET));
    assert_eq!(segs[0].0, "[fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd]:1");
    assert_eq!(segs[0].3, tcp_flags::SYN);
}

#[test]
fn ipv4_with_options() {
    let mut ip = ipv4_tcp(b"opt");
    // Insert 4 bytes of options (NOP NOP NOP EOL): IHL 5 -> 6, total length + 4.
    ip[0] = 0x46;
    let tl = u16::from_be_bytes([ip[2], ip[3]]) + 4;
    ip[2..4].copy_from_slice(&tl.to_be_bytes());
    ip.splice(20..20, [1, 1, 1, 0]);
    ip[10] = 0;
    ip[11] = 0; // checksum is not verified
    let (segs, st) = read_all(one(ip, DataLink::RAW));
    assert_eq!(st.malformed, 0);
    assert_eq!(segs[0].4, b"opt");
}

#[test]
fn linux_sll_and_sll2() {
    let mut sll = vec![0u8; 14];
    sll.extend(0x0800u16.to_be_bytes());
    sll.extend(ipv4_tcp(b"sll"));
    let (segs, _) = read_all(one(sll, DataLink::LINUX_SLL));
    assert_eq!(segs[0].4, b"sll");

    let mut sll2 = 0x86ddu16.to_be_bytes().to_vec();
    sll2.extend([0u8; 18]);
    sll2.extend(ipv6_tcp(b"sll2"));
    let (segs, _) = read_all(one(sll2, DataLink::LINUX_SLL2));
    assert_eq!(segs[0].4, b"sll2");
}

#[test]
fn raw_ip_and_null_loopback() {
    let (segs, _) = read_all(one(ipv6_tcp(b"raw"), DataLink::RAW));
    assert_eq!(segs[0].4, b"raw");
    for link in [DataLink::IPV4, DataLink::Unknown(12), DataLink::Unknown(14)] {
        let (segs, _) = read_all(one(ipv4_tcp(b"r"), link));
        assert_eq!(segs.len(), 1, "{link:?}");
    }
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend(ipv4_tcp(b"null-le"));
    let (segs, _) = read_all(one(null, DataLink::NULL));
    assert_eq!(segs[0].4, b"null-le");
    let mut null = 30u32.to_be_bytes().to_vec();
    null.extend(ipv6_tcp(b"null-be"));
    let (segs, _) = read_all(one(null, DataLink::NULL));
    assert_eq!(segs[0].4, b"null-be");
    let mut lo = 24u32.to_be_bytes().to_vec();
    lo.extend(ipv6_tcp(b"loop"));
    let (segs, _) = read_all(one(lo, DataLink::LOOP));
    assert_eq!(segs[0].4, b"loop");
}

#[test]
fn non_tcp_malformed_and_truncated_are_counted() {
    let udp = {
        let mut v = Vec::new();
        PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
            .udp(53, 53)
            .write(&mut v, b"dns")
            .unwrap();
        eth(&v, 0x0800)
    };
    let arp = eth(&[0u8; 28], 0x0806);
    let short = vec![0u8; 5];
    let mut bad_tcp = ipv4_tcp(b"");
    bad_tcp[32] = 0x10; // TCP data offset 1 (< 5 words)
    let full = eth(&ipv4_tcp(b"0123456789"), 0x0800);
    let cut = full[..full.len() - 4].to_vec();
    let file = pcap_file(
        DataLink::ETHERNET,
        &[
            (udp.clone(), udp.len() as u32),
            (arp.clone(), arp.len() as u32),
            (short, 5),
            (eth(&bad_tcp, 0x0800), 54),
            (cut, full.len() as u32),
        ],
    );
    let (segs, st) = read_all(file);
    assert_eq!(st.packets, 5);
    assert_eq!(st.non_tcp, 2);
    assert_eq!(st.malformed, 2);
    assert_eq!(st.truncated, 1);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].4, b"012345", "payload as captured");
}

/// IP fragments are counted as fragments, not as non-TCP packets: the
/// first fragment of a TCP segment (more-fragments bit), a later one
/// (offset set), a UDP fragment and an IPv6 fragment header.
#[test]
fn ip_fragments_are_counted_apart_from_non_tcp() {
    let first = {
        let mut ip = ipv4_tcp(b"first half");
        ip[6] = 0x20; // more fragments, offset 0
        eth(&ip, 0x0800)
    };
    let later = {
        let mut ip = ipv4_tcp(b"second half");
        ip[6] = 0x00;
        ip[7] = 0x03; // offset 24 bytes
        eth(&ip, 0x0800)
    };
    let udp_frag = {
        let mut v = Vec::new();
        PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
            .udp(53, 53)
            .write(&mut v, b"dns")
            .unwrap();
        v[6] = 0x20;
        eth(&v, 0x0800)
    };
    let v6_frag = {
        // IPv6 header with next header 44 (fragment), then the 8-byte
        // fragment header (next header TCP, offset 1) and some bytes.
        let mut v = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
        v.extend([0xfd; 16]);
        v.extend([0xfe; 16]);
        v.extend([6, 0, 0, 8, 0, 0, 0, 1]);
        v.extend([0u8; 8]);
        eth(&v, 0x86dd)
    };
    let udp = {
        let mut v = Vec::new();
        PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
            .udp(53, 53)
            .write(&mut v, b"dns")
            .unwrap();
        eth(&v, 0x0800)
    };
    let whole = eth(&ipv4_tcp(b"whole"), 0x0800);
    let file = pcap_file(
        DataLink::ETHERNET,
        &[first, later, udp_frag, v6_frag, udp, whole].map(|p| {
            let n = p.len() as u32;
            (p, n)
        }),
    );
    let (segs, st) = read_all(file);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].4, b"whole");
    assert_eq!(
        (st.packets, st.fragments, st.non_tcp, st.malformed),
        (6, 4, 1, 0)
    );
}

#[test]
fn cut_payload_length_is_reported() {
    let full = eth(&ipv4_tcp(b"0123456789"), 0x0800);
    let cut = full[..full.len() - 4].to_vec();
    let v6 = eth(&ipv6_tcp(b"abcdefgh"), 0x86dd);
    let v6cut = v6[..v6.len() - 3].to_vec();
    let file = pcap_file(
        DataLink::ETHERNET,
        &[
            (cut, full.len() as u32),
            (v6cut, v6.len() as u32),
            (full.clone(), full.len() as u32),
        ],
    );
    let mut src = PcapSource::from_reader(Cursor::new(file)).unwrap();
    let mut lost = Vec::new();
    src.for_each_segment(|_, l| {
        lost.push(l);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(lost, [4, 3, 0]);
}

#[test]
fn pcapng_with_two_interfaces_and_tsresol() {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0))
        .unwrap();
    let mut idb = InterfaceDescriptionBlock::new(DataLink::RAW, 0);
    idb.options.push(InterfaceDescriptionOption::IfTsResol(9)); // nanoseconds
    w.write_pcapng_block(idb).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::Unknown(147), 0))
        .unwrap();
    let e = eth(&ipv4_tcp(b"a"), 0x0800);
    let r = ipv4_tcp(b"b");
    for (iface, data, ts) in [(0u32, &e, 5u64), (1, &r, 7), (2, &r, 1)] {
        let epb = EnhancedPacketBlock {
            interface_id: iface,
            timestamp: Duration::from_nanos(ts),
            original_len: data.len() as u32,
            data: Cow::Borrowed(data),
            options: vec![],
        };
        w.write_pcapng_block(epb).unwrap();
    }
    let (segs, st) = read_all(w.into_inner());
    assert_eq!(segs.len(), 2);
    assert_eq!(
        (segs[0].4.as_slice(), segs[0].5),
        (&b"a"[..], 5000),
        "default µs"
    );
    assert_eq!(
        (segs[1].4.as_slice(), segs[1].5),
        (&b"b"[..], 7),
        "if_tsresol 9"
    );
    assert_eq!(st.unsupported_link, 1);
}

/// pcapng written by hand, in either byte order.
struct Ng {
    be: bool,
    out: Vec<u8>,
}

impl Ng {
    fn new(be: bool) -> Ng {
        let mut n = Ng {
            be,
            out: Vec::new(),
        };
        n.section();
        n
    }

    fn u16(&self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn u32(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn block(&mut self, kind: u32, mut body: Vec<u8>) {
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = body.len() as u32 + 12;
        let (k, l) = (self.u32(kind), self.u32(len));
        self.out.extend(k);
        self.out.extend(l);
        self.out.extend(body);
        self.out.extend(l);
    }

    /// A Section Header Block in this byte order (starts a new section).
    fn section(&mut self) {
        let mut b = self.u32(0x1a2b_3c4d).to_vec();
        b.extend(self.u16(1));
        b.extend(self.u16(0));
        b.extend([0xff; 8]);
        self.block(0x0a0d_0d0a, b);
    }

    fn idb(&mut self, link: u16, tsresol: Option<u8>) {
        let mut b = self.u16(link).to_vec();
        b.extend([0, 0]);
        b.extend(self.u32(0));
        if let Some(r) = tsresol {
            // An if_name first, so that the walk over options is exercised.
            b.extend(self.u16(2));
            b.extend(self.u16(3));
            b.extend(b"lo\0\0");
            b.extend(self.u16(9));
            b.extend(self.u16(1));
            b.extend([r, 0, 0, 0]);
            b.extend([0, 0, 0, 0]);
        }
        self.block(1, b);
    }

    fn epb(&mut self, iface: u32, ts: u64, data: &[u8]) {
        let mut b = self.u32(iface).to_vec();
        b.extend(self.u32((ts >> 32) as u32));
        b.extend(self.u32(ts as u32));
        b.extend(self.u32(data.len() as u32));
        b.extend(self.u32(data.len() as u32));
        b.extend_from_slice(data);
        self.block(6, b);
    }
}

/// (interface, payload, timestamp) of every segment, and the counters.
fn read_ifaces(file: Vec<u8>) -> (Vec<(u32, Vec<u8>, u64)>, SourceStats) {
    let mut src = PcapSource::from_reader(Cursor::new(file)).unwrap();
    let mut v = Vec::new();
    src.for_each_segment(|s, _| {
        v.push((s.iface, s.payload.to_vec(), s.ts_ns));
        ControlFlow::Continue(())
    })
    .unwrap();
    (v, src.stats().clone())
}

/// 100,000 Interface Description Blocks (issue 7: the reader rebuilt its
/// interface list at every one, quadratic: 40,000 took 4 s). Every
/// interface up to the cap is kept with its own timestamp unit; a packet on
/// an interface past the cap is counted, one on an undeclared interface is
/// malformed. The time is printed, not asserted (benchmarks check speed).
#[test]
fn pcapng_with_100k_interfaces_is_read_in_linear_time_and_capped() {
    let mut ng = Ng::new(false);
    for i in 0..100_000u32 {
        // Interface MAX_INTERFACES - 1 (the last kept) counts nanoseconds.
        let res = (i as usize == MAX_INTERFACES - 1).then_some(9);
        ng.idb(1, res);
    }
    let e = eth(&ipv4_tcp(b"x"), 0x0800);
    let last = MAX_INTERFACES as u32 - 1;
    for (iface, ts) in [(0, 1), (last, 2), (last + 1, 3), (99_999, 4), (100_000, 5)] {
        ng.epb(iface, ts, &e);
    }
    let t = std::time::Instant::now();
    let (segs, st) = read_ifaces(ng.out);
    eprintln!("100,000 IDBs read in {:?}", t.elapsed());
    assert_eq!(
        segs,
        [(0, b"x".to_vec(), 1000), (last, b"x".to_vec(), 2)],
        "interface 0 in µs, the last kept one in ns"
    );
    assert_eq!(st.packets, 5);
    assert_eq!(st.iface_over_cap, 2, "interfaces past the cap");
    assert_eq!(st.malformed, 1, "interface 100000 was never declared");
}

/// A second section, big endian this time, starts with no interfaces.
#[test]
fn pcapng_sections_reset_interfaces_and_byte_order() {
    let e = eth(&ipv4_tcp(b"le"), 0x0800);
    let mut ng = Ng::new(false);
    ng.idb(1, None);
    ng.idb(101, Some(9));
    ng.epb(1, 7, &ipv4_tcp(b"raw"));
    let mut be = Ng::new(true);
    be.epb(0, 1, &e); // before any interface of this section
    be.idb(1, Some(3)); // milliseconds
    be.epb(0, (1 << 32) + 2, &eth(&ipv4_tcp(b"be"), 0x0800));
    be.epb(1, 3, &e); // interface 1 was declared in the first section only
    ng.out.extend(be.out);
    let (segs, st) = read_ifaces(ng.out);
    assert_eq!(
        segs,
        [
            (1, b"raw".to_vec(), 7),
            (0, b"be".to_vec(), ((1u64 << 32) + 2) * 1_000_000)
        ]
    );
    assert_eq!((st.packets, st.malformed), (4, 2));
}

/// Damaged framing: the same errors as pcap-file gave, and a cut block
/// still reads what came before it.
#[test]
fn pcapng_framing_errors_and_cuts() {
    let e = eth(&ipv4_tcp(b"ok"), 0x0800);
    let mut ng = Ng::new(false);
    ng.idb(1, None);
    ng.epb(0, 1, &e);
    let good = ng.out.clone();
    ng.epb(0, 2, &e);
    // Cut inside the second packet block.
    let mut cut = ng.out.clone();
    cut.truncate(cut.len() - 7);
    let (segs, st) = read_ifaces(cut);
    assert_eq!((segs.len(), st.file_truncated), (1, true));
    // A trailer that disagrees with the length.
    let mut bad_trailer = ng.out.clone();
    let n = bad_trailer.len();
    bad_trailer[n - 4] ^= 4;
    // A length that is not a multiple of 4.
    let mut bad_len = good.clone();
    bad_len.extend(6u32.to_le_bytes());
    bad_len.extend(13u32.to_le_bytes());
    bad_len.extend(13u32.to_le_bytes());
    // A captured length past the block.
    let mut bad_cap = good.clone();
    let mut b = Ng {
        be: false,
        out: Vec::new(),
    };
    b.epb(0, 1, &e);
    b.out[20..24].copy_from_slice(&1000u32.to_le_bytes());
    bad_cap.extend(b.out);
    for (file, want) in [
        (bad_trailer, "initial_length != trailer_length"),
        (bad_len, "(initial_len % 4) != 0"),
        (bad_cap, "captured_len + padding > block length"),
    ] {
        let mut src = PcapSource::from_reader(Cursor::new(file)).unwrap();
        let mut n = 0;
        let err = src
            .for_each_segment(|_, _| {
                n += 1;
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert_eq!(n, 1, "{want}: the packet before the damage");
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert!(chain.contains(want), "{chain}");
    }
}

/// Classic pcap in both byte orders and both timestamp resolutions (the
/// records are framed by hand), and a record length no capture has.
#[test]
fn pcap_byte_orders_resolutions_and_a_hostile_record_length() {
    let p = eth(&ipv4_tcp(b"abc"), 0x0800);
    for endianness in [pcap_file::Endianness::Big, pcap_file::Endianness::Little] {
        for (res, want) in [
            (
                pcap_file::TsResolution::MicroSecond,
                1_700_000_000_000_007_000,
            ),
            (
                pcap_file::TsResolution::NanoSecond,
                1_700_000_000_000_007_001,
            ),
        ] {
            let header = PcapHeader {
                datalink: DataLink::ETHERNET,
                endianness,
                ts_resolution: res,
                ..Default::default()
            };
            let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
            let ts = Duration::new(1_700_000_000, 7001);
            w.write_packet(&PcapPacket::new(ts, 100, &p)).unwrap();
            let (segs, st) = read_all(w.into_writer());
            let ctx = format!("{endianness:?} {res:?}");
            assert_eq!(segs.len(), 1, "{ctx}");
            assert_eq!(
                (segs[0].4.as_slice(), segs[0].5),
                (&b"abc"[..], want),
                "{ctx}"
            );
            assert_eq!(st.truncated, 1, "{ctx}: original length 100");
        }
    }
    // A record claiming 1 GiB after a good one: an error naming it, after
    // the good packet was handed on.
    let mut file = pcap_file(DataLink::ETHERNET, &[(p.clone(), p.len() as u32)]);
    let be = file[..4] == [0xa1, 0xb2, 0xc3, 0xd4];
    for v in [1_700_000_000u32, 0, 1 << 30, 1 << 30] {
        file.extend(if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    file.extend([0u8; 64]);
    let mut src = PcapSource::from_reader(Cursor::new(file)).unwrap();
    let mut n = 0;
    let e = src
        .for_each_segment(|_, _| {
            n += 1;
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert_eq!(n, 1);
    let chain = format!("{:#}", anyhow::Error::from(e));
    assert_eq!(
        chain,
        "corrupt capture file after 1 packets: Invalid field value: \
         PcapPacket: longer than the 16 MiB wstap reads"
    );
}

#[test]
fn errors_name_the_problem() {
    let e = PcapSource::from_reader(Cursor::new(b"GET / HTTP/1.1".to_vec()))
        .err()
        .unwrap();
    assert!(matches!(e, SourceError::NotPcap(0x47455420)), "{e}");
    assert!(e.to_string().contains("not a pcap or pcapng file"));
    let e = PcapSource::from_reader(Cursor::new(b"ab".to_vec()))
        .err()
        .unwrap();
    assert!(matches!(e, SourceError::NotPcap(_)));
    let file = pcap_file(DataLink::Unknown(147), &[]);
    let e = PcapSource::from_reader(Cursor::new(file)).err().unwrap();
    assert!(e.to_string().contains("unsupported link type 147"), "{e}");
}

#[test]
fn file_cut_mid_record_is_read_up_to_the_cut() {
    let p = eth(&ipv4_tcp(b"abc"), 0x0800);
    let mut file = pcap_file(
        DataLink::ETHERNET,
        &[(p.clone(), p.len() as u32), (p.clone(), p.len() as u32)],
    );
    file.truncate(file.len() - 10);
    let (segs, st) = read_all(file);
    assert_eq!(segs.len(), 1);
    assert!(st.file_truncated);
}

/// Ethernet / Linux SLL / SLL2 frames around IPv4 TCP (with and without IP
/// and TCP options), the kind the hand-written fast path takes.
fn fast_path_templates() -> Vec<(LinkType, Vec<u8>)> {
    let all_flags_builder = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([192, 168, 1, 2], [10, 9, 8, 7], 3)
        .tcp(65535, 1, u32::MAX, 0xffff)
        .syn()
        .fin()
        .rst()
        .urg(9)
        .ack(5);
    let mut with_tcp_opts = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([192, 168, 1, 2], [10, 9, 8, 7], 3)
        .tcp(65535, 1, u32::MAX, 0xffff)
        .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap()
        .syn()
        .write(&mut with_tcp_opts, b"opts")
        .unwrap();
    let mut all_flags = Vec::new();
    all_flags_builder.write(&mut all_flags, b"flags").unwrap();
    // IPv4 header with 4 bytes of options (IHL 6).
    let mut ip_opts = ipv4_tcp(b"ip options");
    ip_opts.splice(20..20, [1, 1, 1, 0]);
    ip_opts[0] = 0x46;
    let total = u16::from_be_bytes([ip_opts[2], ip_opts[3]]) + 4;
    ip_opts[2..4].copy_from_slice(&total.to_be_bytes());
    let mut sll = vec![0u8; 14];
    sll.extend([0x08, 0x00]);
    sll.extend(ipv4_tcp(b"sll"));
    let mut sll2 = vec![0x08, 0x00];
    sll2.extend([0u8; 18]);
    sll2.extend(ipv4_tcp(b"sll2"));
    let mut padded = eth(&ipv4_tcp(b"x"), 0x0800);
    padded.extend([0u8; 9]); // Ethernet padding after the IP packet
    vec![
        (LinkType::Ethernet, eth(&ipv4_tcp(b"hello"), 0x0800)),
        (LinkType::Ethernet, eth(&ipv4_tcp(b""), 0x0800)),
        (LinkType::Ethernet, padded),
        (LinkType::Ethernet, with_tcp_opts),
        (LinkType::Ethernet, all_flags),
        (LinkType::Ethernet, eth(&ip_opts, 0x0800)),
        (LinkType::LinuxSll, sll),
        (LinkType::LinuxSll2, sll2),
    ]
}

/// What a parse gave, payload position included (both must borrow the
/// same bytes).
fn parsed_repr(data: &[u8], p: &Parsed<'_>) -> String {
    match p {
        Parsed::Tcp(s, lost) => format!(
            "{s:?} lost={lost} at={}",
            s.payload.as_ptr() as usize - data.as_ptr() as usize
        ),
        other => format!("{other:?}"),
    }
}

#[test]
fn fast_path_matches_etherparse_on_templates() {
    for (link, data) in fast_path_templates() {
        let fast = parse_packet(link, 5, &data);
        assert!(matches!(fast, Parsed::Tcp(..)), "{link:?} {fast:?}");
        let ip = match link {
            LinkType::Ethernet => &data[14..],
            LinkType::LinuxSll => &data[16..],
            _ => &data[20..],
        };
        assert!(fast_ipv4_tcp(5, ip).is_some(), "{link:?}: fast path taken");
        assert_eq!(
            parsed_repr(&data, &fast),
            parsed_repr(&data, &parse_packet_lax(link, 5, &data)),
            "{link:?}"
        );
    }
    // Every flag bit comes through as etherparse reports it.
    let (link, data) = &fast_path_templates()[4];
    let Parsed::Tcp(s, _) = parse_packet(*link, 0, data) else {
        panic!()
    };
    use tcp_flags::*;
    assert_eq!(s.flags, SYN | FIN | RST | URG | ACK);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

    /// Mutated and cut frames: the fast path (or its fallback) gives exactly
    /// what etherparse alone gives, and never panics.
    #[test]
    fn fast_path_matches_etherparse_on_mutations(
        which in 0usize..8,
        edits in proptest::collection::vec((0usize..80, proptest::prelude::any::<u8>()), 0..4),
        cut in proptest::option::of(0usize..100),
    ) {
        let (link, mut data) = fast_path_templates().swap_remove(which);
        for (at, v) in edits {
            if let Some(b) = data.get_mut(at) {
                *b = v;
            }
        }
        if let Some(c) = cut {
            data.truncate(c);
        }
        let fast = parse_packet(link, 1, &data);
        let lax = parse_packet_lax(link, 1, &data);
        proptest::prop_assert_eq!(parsed_repr(&data, &fast), parsed_repr(&data, &lax));
    }
}

/// A reader that gives at most 7 bytes a read, fails every other read
/// with EINTR (with `eintr`), and raises a stop flag when told to after a
/// number of reads.
struct Eintr {
    data: Cursor<Vec<u8>>,
    calls: usize,
    eintr: bool,
    raise_at: Option<(usize, &'static AtomicBool)>,
}

impl Read for Eintr {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if let Some((at, flag)) = self.raise_at {
            if self.calls >= at {
                flag.store(true, Ordering::Relaxed);
            }
        }
        if self.eintr && self.calls % 2 == 1 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        // Small reads, so that the file takes many.
        let n = buf.len().min(7);
        self.data.read(&mut buf[..n])
    }
}

/// The stop flag ends reading at the next read from the file and ends a
/// read the signal interrupted; without it, interrupted reads are retried.
#[test]
fn stop_flag_ends_reading_and_interrupted_reads_are_retried_otherwise() {
    let p = eth(&ipv4_tcp(b"abc"), 0x0800);
    let file = pcap_file(DataLink::ETHERNET, &vec![(p.clone(), p.len() as u32); 3]);
    // EINTR all along, no flag: every packet.
    let r = Eintr {
        data: Cursor::new(file.clone()),
        calls: 0,
        eintr: true,
        raise_at: None,
    };
    let mut src = PcapSource::from_reader(r).unwrap();
    let mut n = 0;
    src.for_each_segment(|_, _| {
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!((n, src.stats().interrupted), (3, false));

    // Raised between records: nothing more is read from the file (what
    // is already in the parser's buffer is; here the reads are small, so
    // that is not the next packet).
    static BETWEEN: AtomicBool = AtomicBool::new(false);
    let r = Eintr {
        data: Cursor::new(file.clone()),
        calls: 0,
        eintr: false,
        raise_at: None,
    };
    let mut src = PcapSource::from_reader_until(r, Some(&BETWEEN)).unwrap();
    let mut n = 0;
    src.for_each_segment(|_, _| {
        n += 1;
        BETWEEN.store(true, Ordering::Relaxed);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        (n, src.stats().interrupted, src.stats().packets),
        (1, true, 1)
    );
    // A whole file in one read: its records are all decoded, then reading
    // stops at the next read.
    static AFTER: AtomicBool = AtomicBool::new(false);
    let mut src = PcapSource::from_reader_until(Cursor::new(file.clone()), Some(&AFTER)).unwrap();
    let mut n = 0;
    src.for_each_segment(|_, _| {
        n += 1;
        AFTER.store(true, Ordering::Relaxed);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!((n, src.stats().interrupted), (3, true));

    // Raised by the signal that interrupted a read (pcapng this time): the
    // interrupted read ends reading, quietly.
    static IN_READ: AtomicBool = AtomicBool::new(false);
    let mut ng = Ng::new(false);
    ng.idb(1, None);
    for _ in 0..3 {
        ng.epb(0, 1, &p);
    }
    let r = Eintr {
        data: Cursor::new(ng.out),
        calls: 0,
        eintr: true,
        raise_at: Some((15, &IN_READ)),
    };
    let mut src = PcapSource::from_reader_until(r, Some(&IN_READ)).unwrap();
    src.for_each_segment(|_, _| ControlFlow::Continue(()))
        .unwrap();
    let st = src.stats();
    assert!(st.interrupted && !st.file_truncated, "{st:?}");
    assert!(st.packets < 3, "{st:?}");
}

/// The checksum verdict of one frame, by the full parser (fast path
/// first) and by etherparse alone; the two must agree.
fn verdict(link: LinkType, data: &[u8]) -> Checksum {
    let of = |p: Parsed<'_>| match p {
        Parsed::Tcp(s, _) => s.checksum,
        other => panic!("not TCP: {other:?}"),
    };
    let v = of(parse_packet(link, 0, data));
    assert_eq!(
        v,
        of(parse_packet_lax(link, 0, data)),
        "fast path and etherparse"
    );
    v
}

/// An IPv6 TCP packet (checksummed over the header's destination) with a
/// type 2 routing header (one address) of `left` segments left.
fn ipv6_routed(left: u8) -> Vec<u8> {
    let mut ip = ipv6_tcp(b"routed");
    ip[6] = 43;
    let plen = u16::from_be_bytes([ip[4], ip[5]]) + 24;
    ip[4..6].copy_from_slice(&plen.to_be_bytes());
    let mut rh = vec![6, 2, 2, left, 0, 0, 0, 0];
    rh.extend([0x11; 16]);
    ip.splice(40..40, rh);
    eth(&ip, 0x86dd)
}

#[test]
fn checksums_verify_and_a_changed_byte_does_not() {
    let v4 = eth(&ipv4_tcp(b"hello"), 0x0800);
    let v6 = eth(&ipv6_tcp(b"hello"), 0x86dd);
    assert_eq!(verdict(LinkType::Ethernet, &v4), Checksum::Good);
    assert_eq!(verdict(LinkType::Ethernet, &v6), Checksum::Good);
    for good in [v4, v6] {
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x20;
        assert_eq!(verdict(LinkType::Ethernet, &bad), Checksum::Bad);
        // Link-layer padding after the IP packet is not summed.
        let mut padded = good.clone();
        padded.extend([0xaa; 7]);
        assert_eq!(verdict(LinkType::Ethernet, &padded), Checksum::Good);
    }
}

#[test]
fn checksums_not_verifiable_are_unchecked() {
    let v4 = eth(&ipv4_tcp(b"0123456789"), 0x0800);
    let v6 = eth(&ipv6_tcp(b"0123456789"), 0x86dd);
    // Cut by the snap length.
    for p in [&v4, &v6] {
        assert_eq!(
            verdict(LinkType::Ethernet, &p[..p.len() - 2]),
            Checksum::Unchecked
        );
    }
    // IPv4 total length 0, as in captures of TSO packets: the end of the
    // segment is not known.
    let mut tso = v4.clone();
    tso[16..18].copy_from_slice(&[0, 0]);
    assert_eq!(verdict(LinkType::Ethernet, &tso), Checksum::Unchecked);
    // IPv6 routing header: checked only once no segments are left (the
    // destination field is then the final destination).
    assert_eq!(verdict(LinkType::Ethernet, &ipv6_routed(0)), Checksum::Good);
    assert_eq!(
        verdict(LinkType::Ethernet, &ipv6_routed(1)),
        Checksum::Unchecked
    );
}

#[test]
fn ipv4_source_route_is_unchecked_other_options_are_verified() {
    let with_options = |opts: &[u8]| {
        let mut ip = ipv4_tcp(b"opt");
        ip[0] = 0x45 + (opts.len() / 4) as u8;
        let tl = u16::from_be_bytes([ip[2], ip[3]]) + opts.len() as u16;
        ip[2..4].copy_from_slice(&tl.to_be_bytes());
        ip.splice(20..20, opts.iter().copied());
        eth(&ip, 0x0800)
    };
    let nops = with_options(&[1, 1, 1, 0]);
    assert_eq!(verdict(LinkType::Ethernet, &nops), Checksum::Good);
    // NOP, then a loose source route (131) of one address, pointer 4.
    let lsrr = with_options(&[1, 131, 7, 4, 10, 0, 0, 9]);
    assert_eq!(verdict(LinkType::Ethernet, &lsrr), Checksum::Unchecked);
    // Strict source route (137) after a timestamp option (68, 8 bytes).
    let ssrr = with_options(&[68, 8, 5, 0, 0, 0, 0, 0, 137, 7, 4, 10, 0, 0, 9, 0]);
    assert_eq!(verdict(LinkType::Ethernet, &ssrr), Checksum::Unchecked);
    // An option whose length runs past the options: not trusted.
    let broken = with_options(&[7, 40, 0, 0]);
    assert_eq!(verdict(LinkType::Ethernet, &broken), Checksum::Unchecked);
}

/// Real packets: on two corpus captures (when `../shared/corpus` is
/// there), the verdicts are the ones tshark 4.0 gives with
/// `-o tcp.check_checksum:TRUE` (`tcp.checksum.status`): every segment of
/// zeek's broker-websocket.pcap verifies (22), every one of suricata's
/// example_websocket.pcap does not (27, taken where offload left partial
/// checksums).
#[test]
fn corpus_captures_give_tsharks_verdicts() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    for (file, good, bad) in [
        ("zeek/broker-websocket.pcap", 22, 0),
        (
            "suricata-verify/websocket-compressed/example_websocket.pcap",
            0,
            27,
        ),
    ] {
        let Ok(bytes) = std::fs::read(corpus.join(file)) else {
            eprintln!("skipped: {file} not found under {}", corpus.display());
            continue;
        };
        let mut src = PcapSource::from_reader(Cursor::new(bytes)).unwrap();
        let mut seen = (0, 0, 0);
        src.for_each_segment(|s, _| {
            match s.checksum {
                Checksum::Good => seen.0 += 1,
                Checksum::Bad => seen.1 += 1,
                Checksum::Unchecked => seen.2 += 1,
            }
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, (good, bad, 0), "{file}: (good, bad, unchecked)");
    }
}
