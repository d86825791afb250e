//! With several interfaces tapped, one segment can pass two of them (a
//! veth and the bridge it is enslaved to, say): the second copy is counted
//! and not decoded or printed again. A copy is the same segment (addresses,
//! ports, seq, ack, flags, length and the start of its payload) on another
//! interface within [`WINDOW_NS`]; a retransmission comes on the same
//! interface, or much later (TCP's retransmission timeout is at least
//! 200 ms), and is left to the reassembler.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;

use crate::source::Segment;

/// How far apart two copies of one segment can be seen.
pub const WINDOW_NS: u64 = 50_000_000;

/// Bytes of payload hashed into the key: enough to tell segments apart
/// that share everything else, cheap for large ones.
const PAYLOAD_PREFIX: usize = 128;

/// Entries kept before the old ones are swept.
const SWEEP_AT: usize = 1 << 16;

#[derive(Hash, PartialEq, Eq)]
struct Key {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    len: usize,
    payload: u64,
}

/// Recently seen segments and the interface each came on.
#[derive(Default)]
pub struct CrossIfaceDedup {
    recent: HashMap<Key, (u32, u64), foldhash::fast::RandomState>,
    duplicates: u64,
}

impl CrossIfaceDedup {
    /// True when `seg` is a copy of a segment just seen on another
    /// interface (and then counted); false for a first sighting, which is
    /// remembered.
    pub fn is_duplicate(&mut self, seg: &Segment<'_>) -> bool {
        let mut h = self.recent.hasher().build_hasher();
        h.write(&seg.payload[..seg.payload.len().min(PAYLOAD_PREFIX)]);
        let key = Key {
            src: seg.src,
            dst: seg.dst,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            len: seg.payload.len(),
            payload: h.finish(),
        };
        if let Some(&(iface, ts)) = self.recent.get(&key) {
            if iface != seg.iface && seg.ts_ns.abs_diff(ts) <= WINDOW_NS {
                self.duplicates += 1;
                return true;
            }
        }
        if self.recent.len() >= SWEEP_AT {
            let now = seg.ts_ns;
            self.recent
                .retain(|_, &mut (_, ts)| now.saturating_sub(ts) <= WINDOW_NS);
        }
        self.recent.insert(key, (seg.iface, seg.ts_ns));
        false
    }

    /// Copies seen so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Checksum;

    fn seg(iface: u32, ts_ns: u64, payload: &[u8]) -> Segment<'_> {
        Segment {
            iface,
            ts_ns,
            src: "10.0.0.1:1000".parse().unwrap(),
            dst: "10.0.0.2:80".parse().unwrap(),
            seq: 5,
            ack: 9,
            flags: 0x18,
            window: 100,
            payload,
            checksum: Checksum::Unchecked,
        }
    }

    #[test]
    fn a_copy_on_another_interface_is_one_a_retransmission_is_not() {
        let mut d = CrossIfaceDedup::default();
        assert!(!d.is_duplicate(&seg(2, 1_000, b"hello")));
        assert!(d.is_duplicate(&seg(3, 1_500, b"hello")), "bridge copy");
        // Same interface again: a retransmission, for the reassembler.
        assert!(!d.is_duplicate(&seg(2, 2_000, b"hello")));
        // Other payload, same everything else: not a copy.
        assert!(!d.is_duplicate(&seg(3, 2_100, b"world")));
        // Another interface, but long after: not a copy.
        assert!(!d.is_duplicate(&seg(4, 2_000 + WINDOW_NS + 1, b"hello")));
        assert_eq!(d.duplicates(), 1);
    }
}
