//! Frame headers (RFC 6455 §5.2): parsing from a possibly short slice and the
//! rules a header can break.
//!
//! Parsing never reads past the slice: [`FrameHeader::parse`] answers
//! `Ok(None)` ("incomplete") until the whole header is there, so a header cut
//! by a segment end is simply parsed again once more bytes arrive.

use thiserror::Error;

/// The longest header: 2 bytes + 8-byte length + 4-byte mask key.
pub const MAX_HEADER: usize = 14;

/// A frame's opcode (RFC 6455 §5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
    /// 0x3-0x7 (data) and 0xB-0xF (control) are reserved.
    Reserved(u8),
}

impl Opcode {
    /// Maps the low nibble of the first header byte.
    pub fn from_nibble(n: u8) -> Opcode {
        match n & 0x0f {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            other => Opcode::Reserved(other),
        }
    }

    /// Control frames (opcode high bit set) may not be fragmented and carry at
    /// most 125 bytes; they may appear between the fragments of a message.
    pub fn is_control(self) -> bool {
        match self {
            Opcode::Close | Opcode::Ping | Opcode::Pong => true,
            Opcode::Reserved(n) => n >= 8,
            _ => false,
        }
    }
}

/// Everything a header says about its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the 3 low bits (RSV1 = 0b100): RSV1 marks a compressed
    /// message under permessage-deflate, the other two are never used.
    pub rsv: u8,
    pub opcode: Opcode,
    /// Masking key when the MASK bit is set (client → server frames).
    pub mask: Option<[u8; 4]>,
    /// Payload length as sent (up to 2^63 - 1; never trusted for allocation).
    pub len: u64,
    /// Bytes the header occupies (2..=14).
    pub header_len: usize,
    /// The length used more bytes than needed (RFC 6455 §5.2 "minimal").
    pub non_minimal_len: bool,
}

/// A rule a frame broke (RFC 6455 §5.2, §5.4, §5.5, §7.4). Reported as a
/// `Violation` event; decoding goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("64-bit payload length with the most significant bit set")]
    LengthMsb,
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("reserved bits set (rsv={0:#05b}) without a negotiated extension")]
    ReservedBits(u8),
    #[error("control frame payload of {0} bytes (limit 125)")]
    ControlTooLong(u64),
    #[error("fragmented control frame (FIN not set)")]
    ControlFragmented,
    #[error("client frame not masked")]
    UnmaskedClient,
    #[error("server frame masked")]
    MaskedServer,
    #[error("continuation frame without a message start")]
    ContinuationWithoutStart,
    #[error("new data frame while a fragmented message was in progress; previous message dropped")]
    MessageInterrupted,
    #[error("RSV1 set on a continuation or control frame")]
    Rsv1NotFirst,
    #[error("close frame with a 1-byte payload")]
    CloseOneByte,
    #[error("close code {0} is not allowed on the wire")]
    BadCloseCode(u16),
    #[error("frame header not plausible, frame sync lost")]
    SyncLost,
    #[error("frame sync lost {0} times without a handshake; direction ignored")]
    GaveUp(u32),
    #[error("no WebSocket framing found in {0} bytes")]
    NoFraming(u64),
    #[error("no WebSocket framing found in {0} bytes; direction ignored")]
    NoFramingIgnored(u64),
}

impl FrameHeader {
    /// Header length announced by the first two bytes, or `None` when fewer
    /// than two bytes are available.
    pub fn needed(b: &[u8]) -> Option<usize> {
        let b1 = *b.get(1)?;
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        Some(2 + ext + mask)
    }

    /// Parses a header at the start of `b`. `Ok(None)`: not enough bytes yet.
    /// `Err` only for a length that cannot be honoured (MSB set).
    pub fn parse(b: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
        let Some(header_len) = Self::needed(b) else {
            return Ok(None);
        };
        let Some(h) = b.get(..header_len) else {
            return Ok(None);
        };
        let (b0, b1) = (h[0], h[1]);
        let (len, non_minimal_len, mut at) = match b1 & 0x7f {
            126 => {
                let l = u64::from(u16::from_be_bytes([h[2], h[3]]));
                (l, l < 126, 4)
            }
            127 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&h[2..10]);
                let l = u64::from_be_bytes(a);
                if l >> 63 != 0 {
                    return Err(FrameError::LengthMsb);
                }
                (l, l <= 0xffff, 10)
            }
            l => (u64::from(l), false, 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let k = [h[at], h[at + 1], h[at + 2], h[at + 3]];
            at += 4;
            Some(k)
        } else {
            None
        };
        debug_assert_eq!(at, header_len);
        Ok(Some(FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: Opcode::from_nibble(b0),
            mask,
            len,
            header_len,
            non_minimal_len,
        }))
    }

    /// Rules this header breaks on its own (without message context).
    /// `rsv1_allowed`: permessage-deflate is (or may be) in use.
    pub fn violations(&self, rsv1_allowed: bool, mut f: impl FnMut(FrameError)) {
        if let Opcode::Reserved(n) = self.opcode {
            f(FrameError::ReservedOpcode(n));
        }
        let bad_rsv = if rsv1_allowed {
            self.rsv & 0b011
        } else {
            self.rsv
        };
        if bad_rsv != 0 {
            f(FrameError::ReservedBits(self.rsv));
        } else if self.rsv & 0b100 != 0 && !matches!(self.opcode, Opcode::Text | Opcode::Binary) {
            f(FrameError::Rsv1NotFirst);
        }
        if self.opcode.is_control() {
            if self.len > 125 {
                f(FrameError::ControlTooLong(self.len));
            }
            if !self.fin {
                f(FrameError::ControlFragmented);
            }
        }
    }

    /// Plausible as a real frame header when hunting for frame boundaries:
    /// no reserved opcode or RSV2/RSV3 bit, RSV1 only on a message start,
    /// control frames short and unfragmented, minimal length encoding.
    pub fn plausible(&self) -> bool {
        let mut ok = !self.non_minimal_len;
        self.violations(true, |_| ok = false);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_hello_unmasked() {
        let h = FrameHeader::parse(&[0x81, 0x05, 0x48]).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.opcode, Opcode::Text);
        assert_eq!(h.len, 5);
        assert_eq!(h.header_len, 2);
        assert_eq!(h.mask, None);
    }

    #[test]
    fn masked_and_extended_lengths() {
        let h = FrameHeader::parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.header_len, 6);
        let h = FrameHeader::parse(&[0x82, 0x7e, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h.len, h.header_len, h.non_minimal_len), (256, 4, false));
        let h = FrameHeader::parse(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.len, h.header_len), (65536, 10));
        let h = FrameHeader::parse(&[0x82, 0x7e, 0x00, 0x05])
            .unwrap()
            .unwrap();
        assert!(h.non_minimal_len && !h.plausible());
    }

    #[test]
    fn incomplete_headers() {
        let full = [0x82u8, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for n in 0..full.len() {
            assert_eq!(FrameHeader::parse(&full[..n]), Ok(None), "n={n}");
        }
        assert!(FrameHeader::parse(&full).unwrap().is_some());
    }

    #[test]
    fn length_msb_is_error() {
        let b = [0x82u8, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&b), Err(FrameError::LengthMsb));
    }

    #[test]
    fn violations_listed() {
        let mut v = Vec::new();
        // ping, FIN clear, RSV2, 126 bytes
        let h = FrameHeader::parse(&[0x29, 0x7e, 0x00, 0x7e])
            .unwrap()
            .unwrap();
        h.violations(false, |e| v.push(e));
        assert_eq!(
            v,
            vec![
                FrameError::ReservedBits(2),
                FrameError::ControlTooLong(126),
                FrameError::ControlFragmented
            ]
        );
        v.clear();
        let h = FrameHeader::parse(&[0x83, 0x00]).unwrap().unwrap();
        h.violations(false, |e| v.push(e));
        assert_eq!(v, vec![FrameError::ReservedOpcode(3)]);
        v.clear();
        let h = FrameHeader::parse(&[0xc1, 0x00]).unwrap().unwrap();
        h.violations(true, |e| v.push(e));
        assert!(v.is_empty());
        h.violations(false, |e| v.push(e));
        assert_eq!(v, vec![FrameError::ReservedBits(4)]);
        v.clear();
        let h = FrameHeader::parse(&[0xc0, 0x00]).unwrap().unwrap();
        h.violations(true, |e| v.push(e));
        assert_eq!(v, vec![FrameError::Rsv1NotFirst]);
    }
}
