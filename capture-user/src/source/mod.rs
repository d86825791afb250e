//! Where TCP segments come from: capture files (`pcap`) and, later, the live
//! kernel tap. Both produce the same [`Segment`], so every decoder test that
//! runs from a capture file also covers live capture.

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
}

impl Segment<'_> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}
