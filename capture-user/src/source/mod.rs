//! Where TCP segments come from: capture files (`pcap`) and, later, the live
//! kernel tap. Both produce the same [`Segment`], so every decoder test that
//! runs from a capture file also covers live capture.

pub mod hooked;
pub mod pcap;

use std::net::SocketAddr;

/// TCP flag bits, defined once in the wire contract (the kernel programs
/// use the same ones).
pub use capture_common::tcp_flags;

/// One TCP segment (or one chunk of a large segment) as seen on the wire.
///
/// The payload is borrowed: from a capture file's packet buffer or straight
/// from ring-buffer memory, so that in-order data can be decoded without a
/// copy. A chunk of a large live segment is a `Segment` whose `seq` already
/// includes the chunk's offset.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The interface it was seen on: the kernel's ifindex live, the
    /// interface id in a pcapng file, 0 in a pcap file. Part of a
    /// connection's identity, so that one connection seen on two
    /// interfaces is two streams, not one full of retransmissions.
    pub iface: u32,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Sequence number of the first payload byte (or of the SYN/FIN).
    pub seq: u32,
    pub ack: u32,
    /// See [`tcp_flags`].
    pub flags: u8,
    pub window: u16,
    pub payload: &'a [u8],
    /// Whether the TCP checksum verified (see [`Checksum`]).
    pub checksum: Checksum,
}

/// What the source found of a segment's TCP checksum.
///
/// Checked because a receiver's kernel drops a segment whose checksum is
/// wrong: decoding it anyway would show content the application never
/// received (an on-path sender could inject such segments on purpose).
/// Not verifying is not proof of injection, though: captures taken on
/// loopback or of a host's own egress traffic carry the partial checksums
/// left for offload, so a bad checksum is counted and shown, and dropped
/// only when asked (`--verify-checksums`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    /// Not verified: the capture cut the segment short (snap length), the
    /// pseudo-header's addresses are not the ones in the IP header (an IPv6
    /// routing header with segments left, IPv4 source routing), the IP
    /// header gives no length (the segment's end is not known), or the
    /// source cannot know (live: the kernel tap runs before TCP checks the
    /// checksum; see `tap::ring`).
    #[default]
    Unchecked,
    /// The ones'-complement sum over pseudo-header and segment verified (in
    /// a file), or the device verified it (live, `CHECKSUM_UNNECESSARY`).
    Good,
    /// The sum did not verify: the receiver's kernel would have dropped it,
    /// unless the capture saw it before checksum offload filled it in.
    Bad,
}

/// Counts of [`Checksum`] verdicts, for the exit summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChecksumStats {
    /// Segments whose checksum did not verify.
    pub bad: u64,
    /// Segments whose checksum could not be verified.
    pub unchecked: u64,
    /// Bad segments dropped unread (`--verify-checksums`).
    pub skipped: u64,
}

impl ChecksumStats {
    /// Counts one segment's verdict and says whether the segment goes on:
    /// not when it is bad and `verify` (`--verify-checksums`) asks to drop
    /// it as the receiver's kernel did. One place for the rule, whether
    /// segments go to the decoder or are printed (`--segments`).
    #[inline]
    pub fn admit(&mut self, c: Checksum, verify: bool) -> bool {
        match c {
            Checksum::Good => true,
            Checksum::Unchecked => {
                self.unchecked += 1;
                true
            }
            Checksum::Bad => {
                self.bad += 1;
                self.skipped += u64::from(verify);
                !verify
            }
        }
    }

    pub fn add(&mut self, other: &ChecksumStats) {
        self.bad += other.bad;
        self.unchecked += other.unchecked;
        self.skipped += other.skipped;
    }
}

impl Segment<'_> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}
