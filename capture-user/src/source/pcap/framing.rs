//! The file formats, framed by hand out of one read buffer or a mapped
//! file (`ReadBuf`):
//! classic pcap records (`PcapRecords`) and pcapng blocks (`NgBlocks`, with
//! the framing checks pcap-file makes), and the interfaces of a pcapng
//! section (`Ifaces`, bounded by [`MAX_INTERFACES`]).

use std::io::Read;

use pcap_file::PcapError;

use super::packet::LinkType;

/// Most interfaces of one pcapng section wstap keeps (link type and
/// timestamp unit each, 16 bytes). Interface Description Blocks past it are
/// read and counted but not kept; packets on those interfaces are counted in
/// [`SourceStats::iface_over_cap`](super::SourceStats::iface_over_cap) and not decoded.
pub const MAX_INTERFACES: usize = 1 << 16;

/// The interfaces of the current pcapng section, in declaration order (the
/// index is the interface id of the packets).
#[derive(Default)]
pub(super) struct Ifaces {
    /// Link type (or the unsupported code) and timestamp unit, at most
    /// [`MAX_INTERFACES`].
    pub(super) kept: Vec<(Result<LinkType, u32>, TsUnit)>,
    /// Interface Description Blocks seen in this section, kept or not.
    pub(super) declared: u64,
}

impl Ifaces {
    pub(super) fn add(&mut self, link_code: u32, unit: TsUnit) {
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

    pub(super) fn clear(&mut self) {
        self.kept.clear();
        self.declared = 0;
    }
}

/// Timestamp resolution of a pcapng interface (`if_tsresol`).
#[derive(Debug, Clone, Copy)]
pub(super) enum TsUnit {
    /// Multiply raw units by this many nanoseconds.
    MulNs(u64),
    /// Divide raw units by this (resolution finer than 1 ns).
    Div(u64),
}

impl TsUnit {
    pub(super) fn from_tsresol(r: u8) -> TsUnit {
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

    pub(super) fn to_ns(self, raw: u64) -> u64 {
        match self {
            TsUnit::MulNs(m) => raw.saturating_mul(m),
            TsUnit::Div(d) => raw / d.max(1),
        }
    }
}

/// pcapng block types wstap reads; every other block is skipped whole.
pub(super) const SECTION_HEADER_BLOCK: u32 = 0x0a0d_0d0a;
pub(super) const INTERFACE_DESCRIPTION_BLOCK: u32 = 1;
pub(super) const SIMPLE_PACKET_BLOCK: u32 = 3;
pub(super) const ENHANCED_PACKET_BLOCK: u32 = 6;
pub(super) const DECRYPTION_SECRETS_BLOCK: u32 = 0x0a;
/// Secrets type of a Decryption Secrets Block holding a TLS key log.
pub(super) const SECRETS_TLS_KEY_LOG: u32 = 0x544c_534b;

/// Largest pcapng block or pcap record read (one holds one packet; snap
/// lengths are at most 256 KiB in practice). A longer one is a corrupt file.
const MAX_BLOCK: usize = 16 << 20;

/// What the read buffer starts with (it grows up to [`MAX_BLOCK`] for a
/// block that does not fit).
const READ_BUFFER: usize = 1 << 20;

/// Where the file's bytes are.
enum Store {
    /// Read in large chunks into this buffer.
    Read(Vec<u8>),
    /// A regular file mapped whole: records are parsed in the page cache,
    /// never copied.
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Store {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Store::Read(v) => v,
            Store::Mapped(m) => m,
        }
    }
}

/// How far a mapped file is read between two looks at the stop flag (a
/// look per packet cost 5-10 % on small packets; the read path looks once
/// per 1 MiB read).
const STOP_CHECK_EVERY: usize = 1 << 20;

/// The file's bytes, read in large chunks or mapped; records are parsed
/// in place.
pub(super) struct ReadBuf<R: Read> {
    /// `None` when the file is mapped.
    reader: Option<R>,
    buf: Store,
    /// Unread bytes are `buf[pos..len]`.
    pos: usize,
    len: usize,
    /// A mapped file stops once this is raised (a read one stops in its
    /// reader), at the next multiple of [`STOP_CHECK_EVERY`].
    stop: Option<&'static std::sync::atomic::AtomicBool>,
    next_stop_check: usize,
    /// A mapped file's pages before this offset were released.
    released: usize,
}

impl<R: Read> ReadBuf<R> {
    pub(super) fn reading(reader: R) -> Self {
        ReadBuf {
            reader: Some(reader),
            buf: Store::Read(vec![0; READ_BUFFER]),
            pos: 0,
            len: 0,
            stop: None,
            next_stop_check: usize::MAX,
            released: 0,
        }
    }

    /// The bytes of a mapped file, from `start`.
    pub(super) fn mapped(
        map: memmap2::Mmap,
        start: usize,
        stop: Option<&'static std::sync::atomic::AtomicBool>,
    ) -> Self {
        let len = map.len();
        ReadBuf {
            reader: None,
            buf: Store::Mapped(map),
            pos: start.min(len),
            len,
            stop,
            next_stop_check: STOP_CHECK_EVERY,
            released: 0,
        }
    }

    /// Unmaps the pages of a mapped file already parsed: they stay in the
    /// page cache, but no longer count in wstap's RSS (a 10 GB capture would
    /// otherwise show 10 GB resident by the end). Nothing refers to them:
    /// a segment borrows the buffer only while it is handed on, and what the
    /// decoder keeps it copied.
    fn release_read_pages(&mut self) {
        let Store::Mapped(map) = &self.buf else {
            return;
        };
        const PAGE: usize = 4096;
        let end = self.pos & !(PAGE - 1);
        if end > self.released {
            // SAFETY: MADV_DONTNEED on a read-only file mapping only drops
            // this process's page table entries; a later read of the range
            // faults the same file bytes back in. No reference into
            // `released..end` is alive (see above).
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.released,
                    end - self.released,
                )
            };
            self.released = end;
        }
    }

    /// Makes `n` (at most [`MAX_BLOCK`]) unread bytes available; false at
    /// the end of the file.
    #[inline]
    pub(super) fn fill_to(&mut self, n: usize) -> Result<bool, PcapError> {
        if self.len - self.pos >= n {
            return Ok(true);
        }
        self.fill_slow(n)
    }

    #[inline(never)]
    pub(super) fn fill_slow(&mut self, n: usize) -> Result<bool, PcapError> {
        let Store::Read(buf) = &mut self.buf else {
            return Ok(self.len - self.pos >= n);
        };
        let Some(reader) = self.reader.as_mut() else {
            return Ok(false);
        };
        while self.len - self.pos < n {
            if buf.len() - self.pos < n {
                buf.copy_within(self.pos..self.len, 0);
                self.len -= self.pos;
                self.pos = 0;
                if buf.len() < n {
                    buf.resize(n.next_power_of_two().min(MAX_BLOCK), 0);
                }
            }
            match reader.read(&mut buf[self.len..]) {
                Ok(0) => return Ok(false),
                Ok(got) => self.len += got,
                Err(e) => return Err(PcapError::IoError(e)),
            }
        }
        Ok(true)
    }

    /// True at a clean end of the file (nothing left, nothing more to read).
    /// A mapped file's stop flag is looked at here.
    #[inline]
    pub(super) fn at_end(&mut self) -> Result<bool, PcapError> {
        if self.pos >= self.next_stop_check {
            self.next_stop_check = self.pos + STOP_CHECK_EVERY;
            self.release_read_pages();
            if self
                .stop
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Err(PcapError::IoError(std::io::ErrorKind::Interrupted.into()));
            }
        }
        Ok(self.pos == self.len && !self.fill_to(1)?)
    }
}

/// One classic pcap record: timestamp in nanoseconds, original length,
/// captured bytes.
type PcapRecord<'a> = (u64, u32, &'a [u8]);

/// Classic pcap records straight out of a read buffer (pcap-file's reader
/// did the same checks: only the record's length matters).
pub(super) struct PcapRecords<R: Read> {
    rd: ReadBuf<R>,
    big_endian: bool,
    nanos: bool,
    /// The link type code of the file header.
    pub(super) link: u32,
}

impl<R: Read> PcapRecords<R> {
    /// Reads the 24-byte file header.
    pub(super) fn new(mut rd: ReadBuf<R>) -> Result<Self, PcapError> {
        if !rd.fill_to(24)? {
            return Err(cut());
        }
        let h = &rd.buf[rd.pos..rd.pos + 24];
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
        rd.pos += 24;
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
    pub(super) fn next_record(&mut self) -> Result<Option<PcapRecord<'_>>, PcapError> {
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
pub(super) struct NgBlocks<R: Read> {
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
    pub(super) fn new(rd: ReadBuf<R>) -> Result<Self, PcapError> {
        let mut b = NgBlocks {
            rd,
            big_endian: false,
        };
        match b.next_block()? {
            Some((SECTION_HEADER_BLOCK, body)) => b.section_header(body)?,
            Some(_) => return Err(bad("PcapNg: SectionHeader invalid or missing")),
            None => return Err(cut()),
        }
        Ok(b)
    }

    pub(super) fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    }

    pub(super) fn u16_at(&self, b: &[u8], at: usize) -> u16 {
        let w = [b[at], b[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(w)
        } else {
            u16::from_le_bytes(w)
        }
    }

    /// The next block: its type and the range of its body in the buffer
    /// (valid until the next call); `None` at a clean end of file.
    pub(super) fn next_block(
        &mut self,
    ) -> Result<Option<(u32, std::ops::Range<usize>)>, PcapError> {
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
    pub(super) fn section_header(&mut self, body: std::ops::Range<usize>) -> Result<(), PcapError> {
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
    pub(super) fn idb(&self, body: std::ops::Range<usize>) -> Result<(u32, TsUnit), PcapError> {
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
    pub(super) fn epb(
        &self,
        body: std::ops::Range<usize>,
    ) -> Result<(u32, u64, u32, &[u8]), PcapError> {
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

    /// A Decryption Secrets Block: its secrets type and data.
    pub(super) fn dsb(&self, body: std::ops::Range<usize>) -> Result<(u32, &[u8]), PcapError> {
        let b = &self.rd.buf[body];
        if b.len() < 8 {
            return Err(bad("DecryptionSecretsBlock: block length < 8"));
        }
        let kind = self.u32_at(b, 0);
        let len = self.u32_at(b, 4) as usize;
        let data = b
            .get(8..)
            .and_then(|d| d.get(..len))
            .ok_or_else(|| bad("DecryptionSecretsBlock: secrets length > block length"))?;
        Ok((kind, data))
    }

    /// A Simple Packet Block (interface 0): original length and the
    /// captured bytes (the padding cut off).
    pub(super) fn spb(&self, body: std::ops::Range<usize>) -> Result<(u32, &[u8]), PcapError> {
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
