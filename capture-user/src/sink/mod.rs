//! Output formats for events: human-readable text lines (`text`) and JSON
//! Lines (`json`). Both write through a `BufWriter` and remember the first
//! write error instead of panicking, so the caller can stop reading and, for
//! a closed pipe (`wstap -r f | head -1`), exit quietly.

pub mod json;
pub mod pcapng;
pub mod rotate;
pub mod selected;
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

/// Output is built in place, line after line, in one buffer that is written
/// out once it holds this much (no second copy through a `BufWriter`).
pub(crate) const OUT_CHUNK: usize = 1 << 16;

/// Writes `buf` out (unless a write failed before; the first error is kept)
/// and empties it.
pub(crate) fn write_out<W: io::Write>(w: &mut W, buf: &mut Vec<u8>, err: &mut Option<io::Error>) {
    if err.is_none() && !buf.is_empty() {
        if let Err(e) = w.write_all(buf) {
            *err = Some(e);
        }
    }
    buf.clear();
}

/// Appends `s` as a JSON string, quoted and escaped exactly as serde_json
/// escapes it (`\"`, `\\`, `\n` and friends, other control characters as
/// `\u00xx`); runs of bytes that need nothing are copied whole.
pub fn push_json_str(b: &mut Vec<u8>, s: &str) {
    // SIMD (sonic-rs's kernel): runs of plain bytes are copied 16 or 32 at a
    // time, the escapes are serde_json's (the property test holds it to that).
    json_escape_simd::escape_into(s, b);
}

/// Appends `p` in standard base64 with padding (the `base64` crate's
/// `STANDARD`), SIMD-encoded.
pub fn push_base64(b: &mut Vec<u8>, p: &[u8]) {
    base64_simd::STANDARD.encode_append(p, b);
}

/// Appends `v` in decimal.
#[inline]
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

/// What an event line's connection part depends on: the connection, its
/// ends, the direction, and the owner table's epoch (an owner learned later
/// changes the part).
pub(crate) type ConnKey = (
    ConnId,
    SocketAddr,
    SocketAddr,
    Direction,
    u64,
    crate::event::Via,
);

/// The formatted connection part of recent lines (connection id, both
/// addresses, direction), so the addresses are not formatted for every event.
/// Direct mapped by connection id and direction, so a conversation's two
/// directions have a slot each; a miss (or a clash) just formats again.
pub(crate) struct ConnCache {
    slots: Vec<Option<(ConnKey, Vec<u8>)>>,
}

impl ConnCache {
    const SLOTS: usize = 64;

    pub(crate) fn new() -> Self {
        ConnCache {
            slots: vec![None; Self::SLOTS],
        }
    }

    /// The bytes `make` writes for `key`, formatted once while cached.
    #[inline]
    pub(crate) fn get(&mut self, key: ConnKey, make: impl FnOnce(&mut Vec<u8>)) -> &[u8] {
        let dir = match key.3 {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
            Direction::Unknown => 2,
        };
        let i = (key.0 as usize).wrapping_mul(3).wrapping_add(dir) % Self::SLOTS;
        if !matches!(&self.slots[i], Some((k, _)) if *k == key) {
            let (k, bytes) = self.slots[i].get_or_insert_with(|| (key, Vec::with_capacity(96)));
            *k = key;
            bytes.clear();
            make(bytes);
        }
        self.slots[i].as_ref().map_or(&[], |(_, bytes)| bytes)
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

    proptest::proptest! {
        #[test]
        fn json_strings_are_escaped_as_serde_json_does(
            s in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::char::range('\u{0}', '\u{7f}'),
                    proptest::prelude::any::<char>(),
                ],
                0..300,
            )
        ) {
            let s: String = s.into_iter().collect();
            let mut b = Vec::new();
            push_json_str(&mut b, &s);
            proptest::prop_assert_eq!(b, serde_json::to_vec(&s).unwrap());
        }

        #[test]
        fn base64_is_the_base64_crates_standard(
            p in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            prefix in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..5),
        ) {
            use base64::Engine;
            let mut b = prefix.clone();
            push_base64(&mut b, &p);
            let mut want = prefix;
            want.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(&p).as_bytes());
            proptest::prop_assert_eq!(b, want);
        }
    }

    #[test]
    fn json_escape_finds_each_special_character_at_every_offset() {
        // The SIMD kernel works 16 or 32 bytes at a time: every position in
        // and across a block, and a long string of plain bytes around it.
        for c in [
            '"', '\\', '\n', '\u{1}', '\u{1f}', '\u{7f}', '\u{2028}', 'é',
        ] {
            for at in 0..70 {
                let s = format!("{}{c}{}", "a".repeat(at), "b".repeat(70 - at));
                let mut b = Vec::new();
                push_json_str(&mut b, &s);
                assert_eq!(b, serde_json::to_vec(&s).unwrap(), "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn json_escapes_every_control_character() {
        for c in (0u8..=0x7f)
            .map(char::from)
            .chain(['\u{80}', '\u{2028}', 'é'])
        {
            let s = format!("a{c}b");
            let mut b = Vec::new();
            push_json_str(&mut b, &s);
            assert_eq!(b, serde_json::to_vec(&s).unwrap(), "{c:?}");
        }
    }

    #[test]
    fn conn_cache_reformats_on_miss_and_keeps_hits() {
        let a: SocketAddr = "1.2.3.4:5".parse().unwrap();
        let c: SocketAddr = "6.7.8.9:10".parse().unwrap();
        let mut cache = ConnCache::new();
        let mut made = 0;
        for i in 0..40u64 {
            let key = (i % 10, a, c, Direction::Unknown, 0, crate::event::Via::Wire);
            let got = cache
                .get(key, |b| {
                    made += 1;
                    push_u64(b, i % 10)
                })
                .to_vec();
            assert_eq!(got, (i % 10).to_string().into_bytes());
        }
        assert_eq!(made, 10, "one slot per connection and direction");
        // Same slot, other addresses: formatted again.
        let other = (0, c, a, Direction::Unknown, 0, crate::event::Via::Wire);
        assert_eq!(cache.get(other, |b| b.push(b'o')), b"o");
        assert_eq!(cache.get(other, |_| unreachable!()), b"o");
        assert_eq!(
            cache.get(
                (64, c, a, Direction::Unknown, 0, crate::event::Via::Wire),
                |b| b.push(b'z')
            ),
            b"z"
        );
        assert_eq!(
            cache.get(other, |b| b.push(b'p')),
            b"p",
            "evicted by a clash"
        );
        let key = (1, a, c, Direction::Unknown, 0, crate::event::Via::Wire);
        assert_eq!(cache.get(key, |_| unreachable!()), b"1");
        // A new owner-table epoch formats again (an owner was learned).
        assert_eq!(
            cache.get(
                (1, a, c, Direction::Unknown, 1, crate::event::Via::Wire),
                |b| b.push(b'q')
            ),
            b"q"
        );
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
