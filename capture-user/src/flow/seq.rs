//! TCP sequence numbers compare modulo 2^32 (RFC 793 §3.3, as smoltcp's
//! `TcpSeqNumber`): "a is before b" means `b - a` wraps to less than 2^31.

/// A 32-bit TCP sequence number with wrapping arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Signed distance from `self` to `other` (positive when `other` is later).
    /// Distances of 2^31 and more are ambiguous on the wire; they read as negative.
    pub fn distance_to(self, other: SeqNum) -> i32 {
        other.0.wrapping_sub(self.0) as i32
    }

    /// This number advanced by `n` bytes, wrapping at 2^32.
    pub fn advance(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }

    /// True when `self` comes strictly before `other` in sequence space.
    pub fn before(self, other: SeqNum) -> bool {
        self.distance_to(other) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_around() {
        let a = SeqNum(u32::MAX - 1);
        let b = a.advance(4);
        assert_eq!(b, SeqNum(2));
        assert_eq!(a.distance_to(b), 4);
        assert_eq!(b.distance_to(a), -4);
        assert!(a.before(b));
        assert!(!b.before(a));
        assert!(!a.before(a));
    }
}
