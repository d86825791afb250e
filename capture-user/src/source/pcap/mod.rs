//! pcap and pcapng reader producing [`Segment`]s.
//!
//! Zero copy: [`PcapSource::for_each_segment`] lends each segment borrowing
//! the reader's packet buffer, so in-order payload reaches the decoder without
//! being copied. Link types: Ethernet (1, with VLAN tags), Linux cooked SLL
//! (113) and SLL2 (276), raw IP (101, 12, 14, 228, 229), BSD null (0) and
//! loopback (108). IPv4 with options, IPv6 with extension headers (etherparse).
//! One packet's parsing, checksum verdict included, is `packet`; the common
//! case, a whole unfragmented IPv4 TCP packet over Ethernet or Linux SLL, is
//! sliced by hand first (tested to agree with etherparse).
//!
//! The file formats are framed by hand too (`framing`), out of one read
//! buffer: classic pcap records and pcapng blocks, with the framing checks
//! pcap-file makes. pcap-file's readers kept every pcapng Interface
//! Description Block (unbounded) and cost twice the time per small packet;
//! its error type is kept. This module reads files with them: the reading
//! loops, the counters, stopping on a signal.
//!
//! Never panics on malformed input: a packet that does not parse is counted
//! (and the first few logged); a packet cut by the snap length is decoded as
//! far as it was captured and counted as truncated (the flow table turns the
//! missing bytes into a gap); non-TCP packets and IP fragments are skipped
//! and counted, each on its own.

use std::fs::File;
use std::io::{Cursor, Read};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use pcap_file::PcapError;

use super::Segment;

mod checksum;
mod framing;
mod packet;

pub use framing::MAX_INTERFACES;
use framing::{
    Ifaces, NgBlocks, PcapRecords, ReadBuf, DECRYPTION_SECRETS_BLOCK, ENHANCED_PACKET_BLOCK,
    INTERFACE_DESCRIPTION_BLOCK, SECRETS_TLS_KEY_LOG, SECTION_HEADER_BLOCK, SIMPLE_PACKET_BLOCK,
};
pub use packet::{parse_packet, LinkType, Parsed};

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
    /// pcapng Decryption Secrets Blocks with TLS secrets, and of other
    /// kinds (not used).
    pub secrets_blocks: u64,
    pub secrets_blocks_other: u64,
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

/// A capture file being read.
pub struct PcapSource<R: Read> {
    inner: Inner<R>,
    stats: SourceStats,
    /// Where the TLS secrets of Decryption Secrets Blocks go.
    secrets: Option<std::sync::Arc<crate::proto::tls::KeyLog>>,
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
    /// that wait ends too (with [`SourceError::Interrupted`]). `-` is
    /// standard input (`tcpdump -w - | wstap -r -`).
    pub fn open_until(path: &Path, stop: Option<&'static AtomicBool>) -> Result<Self, SourceError> {
        if is_stdin(path) {
            return PcapSource::from_reader_until(stdin_file()?, stop);
        }
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
        if let Some(map) = map_regular_file(&file) {
            if map[..2] != GZIP_MAGIC {
                let m = u32::from_be_bytes([map[0], map[1], map[2], map[3]]);
                return PcapSource::with_buf(m, ReadBuf::mapped(map, 0, stop));
            }
        }
        PcapSource::from_reader_until(file, stop)
    }
}

/// A regular file of at least four bytes, mapped whole for reading in
/// place; `None` for pipes, FIFOs, devices, or when mapping fails (then the
/// file is read). The map shows the file as it is: a capture file another
/// process truncates while wstap reads it ends the process with SIGBUS, as
/// it would any reader of a mapped file (tcpdump and tshark read; a
/// capture still being written grows, which is safe: the map ends where
/// the file ended when it was opened).
fn map_regular_file(file: &File) -> Option<memmap2::Mmap> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() < 4 {
        return None;
    }
    // SAFETY: the map is only read; see above for a file truncated under it.
    let map = unsafe { memmap2::MmapOptions::new().map(file) }.ok()?;
    // Read front to back once: let the kernel read ahead.
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(map)
}

/// `-r -`: the capture comes on standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Standard input as a File of its own (a duplicate of fd 0), so that the
/// parsers read it in their large chunks like any file.
fn stdin_file() -> std::io::Result<File> {
    use std::os::unix::io::FromRawFd;
    // SAFETY: dup(2) of fd 0; the new descriptor is owned by the File.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
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
    /// waiting for data, ends too), [`for_each_segment`](PcapSource::for_each_segment)
    /// returns after the records already read and
    /// [`SourceStats::interrupted`] is set.
    pub fn from_reader_until(r: R, stop: Option<&'static AtomicBool>) -> Result<Self, SourceError> {
        let mut r = StopReader { inner: r, stop };
        let first = read_magic(&mut r)?;
        // A gzip member (`capture.pcap.gz`): the capture is what it holds,
        // read through the inflater like tshark and tcpdump do.
        let (magic, rest) = if first[..2] == GZIP_MAGIC {
            let mut gz = flate2::read::MultiGzDecoder::new(Cursor::new(first).chain(r));
            (read_magic(&mut gz)?, Unzip::Gz(Box::new(gz)))
        } else {
            (first, Unzip::Plain(r))
        };
        let chained = Cursor::new(magic).chain(rest);
        PcapSource::with_buf(u32::from_be_bytes(magic), ReadBuf::reading(chained))
    }
}

impl<R: Read> PcapSource<R> {
    /// The reader of format `m` (the magic number, still unread in `rd`).
    fn with_buf(m: u32, rd: ReadBuf<R>) -> Result<Self, SourceError> {
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
                let records = PcapRecords::new(rd).map_err(corrupt("pcap"))?;
                let link = LinkType::from_code(records.link)?;
                Inner::Pcap { records, link }
            }
            0x0a0d0d0a => Inner::Ng {
                blocks: NgBlocks::new(rd).map_err(corrupt("pcapng"))?,
                ifaces: Ifaces::default(),
            },
            other => return Err(SourceError::NotPcap(other)),
        };
        Ok(PcapSource {
            inner,
            stats: SourceStats::default(),
            secrets: None,
        })
    }
}

/// The reader type behind [`PcapSource::from_reader`] (the magic number is
/// read first, then put back in front).
pub type PcapChain<R> = std::io::Chain<Cursor<[u8; 4]>, Unzip<StopReader<R>>>;

/// The first two bytes of a gzip member (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The capture's bytes: as they are, or inflated from gzip members (a
/// corrupt member is an I/O error of kind `InvalidInput` or `InvalidData`,
/// one cut short ends the file like a cut record).
pub enum Unzip<R: Read> {
    Plain(R),
    Gz(Box<flate2::read::MultiGzDecoder<std::io::Chain<Cursor<[u8; 4]>, R>>>),
}

impl<R: Read> Read for Unzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Unzip::Plain(r) => r.read(buf),
            Unzip::Gz(g) => g.read(buf),
        }
    }
}

/// The first four bytes, which tell the format.
fn read_magic(r: &mut impl Read) -> Result<[u8; 4], SourceError> {
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
    Ok(magic)
}

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
    /// (snap length), for [`Decoder::push_cut`](crate::registry::Decoder::push_cut).
    pub fn for_each_segment(
        &mut self,
        mut f: impl FnMut(&Segment<'_>, u32) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let stats = &mut self.stats;
        match &mut self.inner {
            Inner::Pcap { records, link } => read_pcap(records, *link, stats, &mut f),
            Inner::Ng { blocks, ifaces } => {
                read_pcapng(blocks, ifaces, stats, self.secrets.as_deref(), &mut f)
            }
        }
    }

    /// TLS key-log secrets in the file (pcapng Decryption Secrets Blocks,
    /// what `editcap --inject-secrets tls,KEYS` writes) go to `k`, as they
    /// come: before the packets they unlock.
    pub fn secrets_to(&mut self, k: std::sync::Arc<crate::proto::tls::KeyLog>) {
        self.secrets = Some(k);
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
    secrets: Option<&crate::proto::tls::KeyLog>,
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
            DECRYPTION_SECRETS_BLOCK => {
                match blocks.dsb(body) {
                    Ok((SECRETS_TLS_KEY_LOG, text)) => {
                        stats.secrets_blocks += 1;
                        if let Some(k) = secrets {
                            k.add_block(text);
                        }
                    }
                    Ok(_) => stats.secrets_blocks_other += 1, // WireGuard, SSH, ...
                    Err(e) => return end_of_file(stats, e),
                }
                continue;
            }
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
