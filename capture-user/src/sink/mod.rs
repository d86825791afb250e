//! Output formats for events: human-readable text lines (`text`) and JSON
//! Lines (`json`). Both write through a `BufWriter` and remember the first
//! write error instead of panicking, so the caller can stop reading and, for
//! a closed pipe (`wstap -r f | head -1`), exit quietly.

pub mod json;
pub mod pcapng;
pub mod text;

use std::io::{self, Write as _};
use std::net::SocketAddr;

use crate::event::{ConnId, Direction, EventSink};
use crate::source::Segment;

/// An [`EventSink`] that writes somewhere and can fail.
pub trait Output: EventSink {
    /// One line for a raw TCP segment (`--segments`).
    fn segment(&mut self, seg: &Segment<'_>);
    /// The first write error, if any; once set, later events are dropped.
    fn error(&self) -> Option<&io::Error>;
    /// Flushes buffered output; returns the first error seen.
    fn finish(&mut self) -> io::Result<()>;
}

/// True for the error a closed pipe gives (the reader went away).
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// Cuts `p` to at most `max` bytes; for text, at a UTF-8 character boundary.
pub fn shorten(p: &[u8], max: Option<usize>, text: bool) -> (&[u8], bool) {
    let Some(max) = max else { return (p, false) };
    if p.len() <= max {
        return (p, false);
    }
    let mut cut = max;
    if text {
        // Back off over continuation bytes (10xxxxxx) so a character stays whole.
        while cut > 0 && cut < p.len() && (p[cut] & 0xc0) == 0x80 {
            cut -= 1;
        }
    }
    (&p[..cut], true)
}

/// Seconds and nanoseconds of a capture timestamp.
pub fn split_ts(ts_ns: u64) -> (u64, u32) {
    (ts_ns / 1_000_000_000, (ts_ns % 1_000_000_000) as u32)
}

/// Appends `v` in decimal.
pub(crate) fn push_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends the last `N` decimal digits of `v`, zero-padded (`{v:0N}` for
/// `v < 10^N`).
pub(crate) fn push_padded<const N: usize>(b: &mut Vec<u8>, mut v: u32) {
    let mut d = [b'0'; N];
    for c in d.iter_mut().rev() {
        *c = b'0' + (v % 10) as u8;
        v /= 10;
    }
    b.extend_from_slice(&d);
}

/// Appends `a` as its `Display` form writes it (`1.2.3.4:80`, `[::1]:80`);
/// IPv4 by hand, IPv6 through `fmt`.
pub(crate) fn push_addr(b: &mut Vec<u8>, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            let mut n = itoa::Buffer::new();
            let [o0, o1, o2, o3] = v4.ip().octets();
            b.extend_from_slice(n.format(o0).as_bytes());
            b.push(b'.');
            b.extend_from_slice(n.format(o1).as_bytes());
            b.push(b'.');
            b.extend_from_slice(n.format(o2).as_bytes());
            b.push(b'.');
            b.extend_from_slice(n.format(o3).as_bytes());
            b.push(b':');
            b.extend_from_slice(n.format(v4.port()).as_bytes());
        }
        SocketAddr::V6(_) => {
            // Writing into a Vec cannot fail.
            let _ = write!(b, "{a}");
        }
    }
}

/// What an event line's connection part depends on.
pub(crate) type ConnKey = (ConnId, SocketAddr, SocketAddr, Direction);

/// The formatted connection part of recent lines (connection id, both
/// addresses, direction), so the addresses are not formatted for every event.
/// A few entries, replaced round robin: it only has to catch the ping-pong
/// of a conversation's two directions; a miss just formats again.
pub(crate) struct ConnCache {
    slots: Vec<(ConnKey, Vec<u8>)>,
    next: usize,
}

impl ConnCache {
    const SLOTS: usize = 8;

    pub(crate) fn new() -> Self {
        ConnCache {
            slots: Vec::with_capacity(Self::SLOTS),
            next: 0,
        }
    }

    /// The bytes `make` writes for `key`, formatted once while cached.
    pub(crate) fn get(&mut self, key: ConnKey, make: impl FnOnce(&mut Vec<u8>)) -> &[u8] {
        if let Some(i) = self.slots.iter().position(|(k, _)| *k == key) {
            return &self.slots[i].1;
        }
        let i = if self.slots.len() < Self::SLOTS {
            self.slots.push((key, Vec::with_capacity(96)));
            self.slots.len() - 1
        } else {
            let i = self.next;
            self.next = (i + 1) % Self::SLOTS;
            i
        };
        let slot = &mut self.slots[i];
        slot.0 = key;
        slot.1.clear();
        make(&mut slot.1);
        &slot.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_formatting_matches_fmt() {
        for a in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.3.100:8080",
            "[::1]:80",
            "[fe80::1%2]:443",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let mut b = Vec::new();
            push_addr(&mut b, a);
            assert_eq!(String::from_utf8(b).unwrap(), a.to_string());
        }
        for v in [0u32, 7, 999_999, 123_456_789, 999_999_999] {
            let mut b = Vec::new();
            push_padded::<9>(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), format!("{v:09}"));
            let mut b = Vec::new();
            push_u64(&mut b, u64::from(v));
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
        let mut b = Vec::new();
        push_padded::<6>(&mut b, 42);
        assert_eq!(b, b"000042");
    }

    #[test]
    fn conn_cache_reformats_on_miss_and_keeps_hits() {
        let a: SocketAddr = "1.2.3.4:5".parse().unwrap();
        let c: SocketAddr = "6.7.8.9:10".parse().unwrap();
        let mut cache = ConnCache::new();
        let mut made = 0;
        for i in 0..40u64 {
            let key = (i % 10, a, c, Direction::Unknown);
            let got = cache
                .get(key, |b| {
                    made += 1;
                    push_u64(b, i % 10)
                })
                .to_vec();
            assert_eq!(got, (i % 10).to_string().into_bytes());
        }
        assert_eq!(made, 40, "10 keys round robin through 8 slots always miss");
        let key = (1, a, c, Direction::Unknown);
        cache.get(key, |b| b.push(b'x'));
        assert_eq!(cache.get(key, |_| unreachable!()), b"x");
    }

    #[test]
    fn shorten_keeps_characters_whole() {
        assert_eq!(
            shorten("héllo".as_bytes(), Some(2), true),
            ("h".as_bytes(), true)
        );
        assert_eq!(shorten(b"hello", Some(2), false), (&b"he"[..], true));
        assert_eq!(shorten(b"hi", Some(2), true), (&b"hi"[..], false));
        assert_eq!(shorten(b"hi", None, true), (&b"hi"[..], false));
    }
}
