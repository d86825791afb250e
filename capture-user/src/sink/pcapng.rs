//! pcapng output (`-w FILE.pcapng`), so that a capture taken by wstap can be
//! opened in Wireshark or checked with tshark.
//!
//! [`PcapNgSink::write_segment`] rebuilds a packet from a segment (what the
//! kernel tap delivers, or what `-r ... -w` read: addresses, ports, seq,
//! ack, flags, window, payload) as Ethernet + IPv4/IPv6 + TCP with a valid
//! checksum, because the tap copies payloads, not whole frames; a segment
//! read with a bad checksum gets a bad one again, so that the file tells
//! what the capture did (and `--verify-checksums` can drop it).
//! [`PcapNgSink::write_raw`] writes a frame as it is (the rebuilt one). One
//! interface description block is written per interface name and link type,
//! with nanosecond timestamps (`if_tsresol` = 9).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{PcapNgBlock, PcapNgWriter};
use pcap_file::DataLink;

use crate::source::{tcp_flags, Checksum, Segment};

/// Largest TCP payload put in one rebuilt packet: an IPv4 total length is 16
/// bits, so a bigger live chunk is written as several packets.
const MAX_REBUILT_PAYLOAD: usize = 65_000;

/// Why writing the pcapng file failed.
#[derive(Debug, thiserror::Error)]
pub enum PcapNgError {
    #[error("cannot create {path}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("writing pcapng: {0}")]
    Write(#[from] pcap_file::PcapError),
    #[error("rebuilding a packet for pcapng: {0}")]
    Build(String),
}

/// Writes packets to a pcapng stream.
pub struct PcapNgSink<W: Write> {
    writer: PcapNgWriter<W>,
    /// (interface name, link type) → interface id in this section.
    interfaces: HashMap<(String, u32), u32>,
    scratch: Vec<u8>,
    packets: u64,
    /// Bytes of blocks written (the section header included), for `-C`.
    bytes: u64,
    /// The key log whose secrets are written as Decryption Secrets Blocks
    /// before the packets after them, and how much of its text is written.
    secrets: Option<(std::sync::Arc<crate::proto::tls::KeyLog>, usize)>,
}

/// pcapng Decryption Secrets Block, and its TLS key log secrets type.
pub const DECRYPTION_SECRETS_BLOCK: u32 = 0x0000_000A;
pub const SECRETS_TLS_KEY_LOG: u32 = 0x544c_534b;

/// `-w -`: the stdout wstap was started with, handed over by
/// [`set_stdout`] before fd 1 was moved elsewhere (decoded output must not
/// mix into the pcapng stream).
static STDOUT: std::sync::Mutex<Option<std::os::fd::OwnedFd>> = std::sync::Mutex::new(None);

/// Keeps `fd` as the stream `-w -` writes to.
pub fn set_stdout(fd: std::os::fd::OwnedFd) {
    *STDOUT.lock().unwrap_or_else(|e| e.into_inner()) = Some(fd);
}

/// `-w -` writes the pcapng stream to standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

impl PcapNgSink<BufWriter<File>> {
    /// Creates (truncates) `path`; `-` is the stream [`set_stdout`] kept.
    pub fn create(path: &Path) -> Result<Self, PcapNgError> {
        let file = if is_stdout(path) {
            let fd = STDOUT.lock().unwrap_or_else(|e| e.into_inner()).take();
            let fd = fd.ok_or_else(|| PcapNgError::Create {
                path: "standard output".into(),
                source: std::io::Error::other("standard output was not kept for -w -"),
            })?;
            File::from(fd)
        } else {
            File::create(path).map_err(|source| PcapNgError::Create {
                path: path.display().to_string(),
                source,
            })?
        };
        Self::new(BufWriter::with_capacity(1 << 20, file))
    }
}

impl<W: Write> PcapNgSink<W> {
    pub fn new(writer: W) -> Result<Self, PcapNgError> {
        Ok(PcapNgSink {
            writer: PcapNgWriter::new(writer)?,
            interfaces: HashMap::new(),
            scratch: Vec::with_capacity(2048),
            packets: 0,
            bytes: section_header_len(),
            secrets: None,
        })
    }

    /// Writes `k`'s secrets (all so far, then what it gains) into the file
    /// as Decryption Secrets Blocks, each before the packets that follow it.
    pub fn set_secrets(&mut self, k: std::sync::Arc<crate::proto::tls::KeyLog>) {
        self.secrets = Some((k, 0));
    }

    /// A Decryption Secrets Block of the key-log text not written yet.
    fn write_new_secrets(&mut self) -> Result<(), PcapNgError> {
        let Some((k, written)) = &mut self.secrets else {
            return Ok(());
        };
        if k.text_len() <= *written {
            return Ok(());
        }
        let text = k.text_from(*written);
        *written += text.len();
        // Body: secrets type, secrets length, the secrets padded to 32 bits;
        // in the section's byte order (the writer's: native).
        let mut body = Vec::with_capacity(8 + text.len() + 3);
        body.extend_from_slice(&SECRETS_TLS_KEY_LOG.to_ne_bytes());
        body.extend_from_slice(&(text.len() as u32).to_ne_bytes());
        body.extend_from_slice(&text);
        body.resize(body.len().next_multiple_of(4), 0);
        let block = pcap_file::pcapng::blocks::unknown::UnknownBlock::new(
            DECRYPTION_SECRETS_BLOCK,
            body.len() as u32 + 12,
            &body,
        );
        self.bytes += self.writer.write_block(&block.into_block())? as u64;
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Bytes written so far (buffered ones included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn interface_id(&mut self, name: &str, linktype: u32) -> Result<u32, PcapNgError> {
        if let Some(id) = self.interfaces.get(&(name.to_string(), linktype)) {
            return Ok(*id);
        }
        let id = self.interfaces.len() as u32;
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::from(linktype),
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(name.to_string())),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        self.bytes += self.writer.write_block(&idb.into_block())? as u64;
        self.interfaces.insert((name.to_string(), linktype), id);
        Ok(id)
    }

    /// Writes one packet as captured: `data` starts with the link-layer
    /// header of `linktype`; `orig_len` is its length on the wire; `comment`
    /// becomes its packet comment.
    pub fn write_raw(
        &mut self,
        iface: &str,
        linktype: u32,
        ts_ns: u64,
        data: &[u8],
        orig_len: u32,
        comment: Option<&str>,
    ) -> Result<(), PcapNgError> {
        self.write_new_secrets()?;
        let interface_id = self.interface_id(iface, linktype)?;
        let epb = EnhancedPacketBlock {
            interface_id,
            timestamp: Duration::from_nanos(ts_ns),
            original_len: orig_len.max(data.len() as u32),
            data: Cow::Borrowed(data),
            options: comment
                .map(|c| EnhancedPacketOption::Comment(Cow::Borrowed(c)))
                .into_iter()
                .collect(),
        };
        self.bytes += self.writer.write_block(&epb.into_block())? as u64;
        self.packets += 1;
        Ok(())
    }

    /// Rebuilds a segment from the live tap as an Ethernet frame and writes
    /// it; a payload over 65,000 bytes becomes several packets.
    pub fn write_segment(&mut self, iface: &str, seg: &Segment<'_>) -> Result<(), PcapNgError> {
        self.write_segment_with_comment(iface, seg, None)
    }

    /// [`Self::write_segment`] with a packet comment on each packet
    /// (`opt_comment`, Wireshark's `frame.comment`): live capture puts the
    /// processes of the segment's ends there.
    pub fn write_segment_with_comment(
        &mut self,
        iface: &str,
        seg: &Segment<'_>,
        comment: Option<&str>,
    ) -> Result<(), PcapNgError> {
        let mut offset = 0usize;
        loop {
            let end = (offset + MAX_REBUILT_PAYLOAD).min(seg.payload.len());
            let last = end == seg.payload.len();
            let part = Segment {
                seq: seg.seq.wrapping_add(offset as u32),
                // SYN belongs to the first packet, FIN to the last.
                flags: seg.flags
                    & !(if offset > 0 { tcp_flags::SYN } else { 0 })
                    & !(if last { 0 } else { tcp_flags::FIN }),
                payload: &seg.payload[offset..end],
                ..*seg
            };
            self.rebuild(&part)?;
            let (ts, len) = (part.ts_ns, self.scratch.len() as u32);
            let scratch = std::mem::take(&mut self.scratch);
            let res = self.write_raw(iface, DataLink::ETHERNET.into(), ts, &scratch, len, comment);
            self.scratch = scratch;
            res?;
            if last {
                return Ok(());
            }
            offset = end;
        }
    }

    fn rebuild(&mut self, seg: &Segment<'_>) -> Result<(), PcapNgError> {
        // Locally administered, recognisable MACs: 02:77:73:74:61:70 ("wstap").
        const MAC: [u8; 6] = [0x02, 0x77, 0x73, 0x74, 0x61, 0x70];
        let eth = PacketBuilder::ethernet2(MAC, MAC);
        let ip = match (seg.src, seg.dst) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                eth.ipv4(s.ip().octets(), d.ip().octets(), 64)
            }
            (SocketAddr::V6(s), SocketAddr::V6(d)) => {
                eth.ipv6(s.ip().octets(), d.ip().octets(), 64)
            }
            _ => return Err(PcapNgError::Build("mixed IPv4/IPv6 endpoints".into())),
        };
        let mut tcp = ip.tcp(seg.src.port(), seg.dst.port(), seg.seq, seg.window);
        if seg.has(tcp_flags::ACK) {
            tcp = tcp.ack(seg.ack);
        }
        if seg.has(tcp_flags::SYN) {
            tcp = tcp.syn();
        }
        if seg.has(tcp_flags::FIN) {
            tcp = tcp.fin();
        }
        if seg.has(tcp_flags::RST) {
            tcp = tcp.rst();
        }
        if seg.has(tcp_flags::PSH) {
            tcp = tcp.psh();
        }
        self.scratch.clear();
        tcp.write(&mut self.scratch, seg.payload)
            .map_err(|e| PcapNgError::Build(e.to_string()))?;
        if seg.checksum == Checksum::Bad {
            spoil_checksum(&mut self.scratch, seg.src.is_ipv6());
        }
        Ok(())
    }

    /// Flushes buffered packets to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.get_mut().flush()
    }
}

/// Length of the section header block [`PcapNgWriter::new`] writes first.
fn section_header_len() -> u64 {
    static LEN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *LEN.get_or_init(|| PcapNgWriter::new(Vec::new()).map_or(0, |w| w.into_inner().len() as u64))
}

/// Makes the valid TCP checksum of a rebuilt frame (Ethernet, IP header
/// without options or extensions, TCP) invalid. Flipping the lowest bit
/// moves the sum by one, which never lands on the other ones'-complement
/// zero, so the result never verifies.
fn spoil_checksum(frame: &mut [u8], ipv6: bool) {
    let at = 14 + if ipv6 { 40 } else { 20 } + 17;
    if let Some(b) = frame.get_mut(at) {
        *b ^= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    fn seg(payload: &[u8], flags: u8) -> Segment<'_> {
        Segment {
            iface: 0,
            ts_ns: 1_700_000_000_123_456_789,
            src: "10.0.0.1:40000".parse().unwrap(),
            dst: "10.0.0.2:80".parse().unwrap(),
            seq: 1000,
            ack: 77,
            flags,
            window: 512,
            payload,
            checksum: Checksum::Good,
        }
    }

    /// (interface id, timestamp ns, data) of one packet read back.
    type ReadPacket = (u32, u128, Vec<u8>);

    /// Reads back the interfaces and every packet.
    fn read_back(bytes: &[u8]) -> (Vec<InterfaceDescriptionBlock<'static>>, Vec<ReadPacket>) {
        let mut r = PcapNgReader::new(bytes).unwrap();
        let mut ifaces = vec![];
        let mut packets = vec![];
        while let Some(block) = r.next_block() {
            match block.unwrap() {
                Block::InterfaceDescription(i) => ifaces.push(i.into_owned()),
                Block::EnhancedPacket(p) => {
                    packets.push((p.interface_id, p.timestamp.as_nanos(), p.data.to_vec()))
                }
                _ => {}
            }
        }
        (ifaces, packets)
    }

    #[test]
    fn rebuilt_segment_parses_back_to_the_same_fields() {
        let mut out = Vec::new();
        let mut sink = PcapNgSink::new(&mut out).unwrap();
        sink.write_segment("veth0", &seg(b"hello", tcp_flags::ACK | tcp_flags::PSH))
            .unwrap();
        drop(sink);
        let (ifaces, packets) = read_back(&out);
        assert_eq!(ifaces.len(), 1);
        assert!(ifaces[0]
            .options
            .contains(&InterfaceDescriptionOption::IfTsResol(9)));
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].1, 1_700_000_000_123_456_789);
        let p = etherparse::SlicedPacket::from_ethernet(&packets[0].2).unwrap();
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("no tcp")
        };
        assert_eq!((tcp.source_port(), tcp.destination_port()), (40000, 80));
        assert_eq!(
            (tcp.sequence_number(), tcp.acknowledgment_number()),
            (1000, 77)
        );
        assert!(tcp.ack() && tcp.psh() && !tcp.syn() && !tcp.fin());
        assert_eq!(tcp.payload(), b"hello");
    }

    #[test]
    fn big_payload_is_split_with_fin_on_the_last_part_and_ipv6_works() {
        let payload: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = seg(&payload, tcp_flags::ACK | tcp_flags::FIN);
        s.src = "[fd00::1]:40000".parse().unwrap();
        s.dst = "[fd00::2]:80".parse().unwrap();
        let mut out = Vec::new();
        let mut sink = PcapNgSink::new(&mut out).unwrap();
        sink.write_segment("lo", &s).unwrap();
        assert_eq!(sink.packets(), 3);
        drop(sink);
        let (_, packets) = read_back(&out);
        let mut joined = Vec::new();
        for (i, (_, _, data)) in packets.iter().enumerate() {
            let p = etherparse::SlicedPacket::from_ethernet(data).unwrap();
            let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
                panic!()
            };
            assert_eq!(tcp.sequence_number(), 1000 + joined.len() as u32);
            assert_eq!(tcp.fin(), i == packets.len() - 1);
            joined.extend_from_slice(tcp.payload());
        }
        assert_eq!(joined, payload);
    }

    /// A segment read with a bad checksum is written with a bad one, a good
    /// one with a good one, IPv4 and IPv6: read back by the pcap source.
    #[test]
    fn rebuilt_checksum_is_bad_exactly_when_the_segment_was_bad() {
        use crate::source::pcap::{parse_packet, LinkType, Parsed};
        for v6 in [false, true] {
            for want in [Checksum::Good, Checksum::Bad] {
                let mut s = seg(b"some payload", tcp_flags::ACK);
                if v6 {
                    s.src = "[fd00::1]:40000".parse().unwrap();
                    s.dst = "[fd00::2]:80".parse().unwrap();
                }
                s.checksum = want;
                let mut out = Vec::new();
                let mut sink = PcapNgSink::new(&mut out).unwrap();
                sink.write_segment("lo", &s).unwrap();
                drop(sink);
                let (_, packets) = read_back(&out);
                let Parsed::Tcp(back, 0) = parse_packet(LinkType::Ethernet, 0, &packets[0].2)
                else {
                    panic!("not parsed back")
                };
                assert_eq!(back.checksum, want, "v6 {v6}");
                assert_eq!(back.payload, b"some payload");
            }
        }
    }

    #[test]
    fn raw_packets_keep_their_bytes_and_one_idb_per_interface() {
        let mut out = Vec::new();
        let mut sink = PcapNgSink::new(&mut out).unwrap();
        sink.write_raw("a", 1, 5, &[1, 2, 3], 3, None).unwrap();
        sink.write_raw("b", 113, 6, &[4, 5], 10, None).unwrap();
        sink.write_raw("a", 1, 7, &[6], 1, None).unwrap();
        drop(sink);
        let (ifaces, packets) = read_back(&out);
        assert_eq!(ifaces.len(), 2);
        assert_eq!(
            packets,
            vec![(0, 5, vec![1, 2, 3]), (1, 6, vec![4, 5]), (0, 7, vec![6])]
        );
    }
}
