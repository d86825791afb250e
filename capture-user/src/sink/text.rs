//! Human-readable output: one line per event.
//!
//! `HH:MM:SS.micro #conn src → dst event details [payload]`, time in UTC.
//! Text payloads are quoted with control characters escaped; binary payloads
//! show a short hex preview. Without `--payload-max`, text shows at most 256
//! bytes and binary 32, so one huge message cannot flood the terminal.

use std::io::{self, Write};
use std::sync::Arc;

use super::{
    push_addr, push_padded, push_u64, shorten, split_ts, write_out, ConnCache, Output, OUT_CHUNK,
};
use crate::event::{
    Event, EventKind, EventSink, HttpEvent, MessageKind, StackEvent, TcpEvent, TlsEvent, WsEvent,
};
use crate::owners::{Owner, Owners};
use crate::source::{tcp_flags, Checksum, Segment};

const DEFAULT_TEXT_PREVIEW: usize = 256;
const DEFAULT_HEX_PREVIEW: usize = 32;

/// Writes one line per event.
pub struct TextSink<W: Write> {
    out: W,
    err: Option<io::Error>,
    payload_max: Option<usize>,
    /// `--hex`: end `--segments` lines with the payload in hex.
    segment_hex: bool,
    /// Finished lines not yet written out, then the line being built
    /// (always UTF-8: only `str` pieces go in).
    line: Vec<u8>,
    /// ` #conn src → dst ` of recent events.
    conns: ConnCache,
    /// Who owns each end, when live capture attributes processes.
    owners: Option<Arc<Owners>>,
    /// The seconds of the last timestamp written and their `HH:MM:SS.`.
    ts_sec: u64,
    ts_sec_text: [u8; 9],
}

/// ` comm[pid]` after the address of an end owned by a local process.
fn push_owner(b: &mut Vec<u8>, owner: Option<Owner>) {
    let Some(w) = owner else {
        return;
    };
    b.push(b' ');
    // A comm is the program's own name: keep the line one line.
    b.extend(
        w.comm
            .bytes()
            .map(|c| if c.is_ascii_graphic() { c } else { b'?' }),
    );
    b.push(b'[');
    push_u64(b, w.pid as u64);
    b.push(b']');
}

impl<W: Write> TextSink<W> {
    /// Shows `comm[pid]` beside each end `owners` knows.
    pub fn with_owners(mut self, owners: Option<Arc<Owners>>) -> Self {
        self.owners = owners;
        self
    }

    pub fn new(w: W, payload_max: Option<usize>) -> Self {
        TextSink {
            out: w,
            err: None,
            payload_max,
            segment_hex: false,
            line: Vec::with_capacity(OUT_CHUNK + 4096),
            conns: ConnCache::new(),
            owners: None,
            ts_sec: u64::MAX,
            ts_sec_text: [0; 9],
        }
    }

    /// Appends `HH:MM:SS.micro` (UTC time of day).
    fn time_of_day(&mut self, ts_ns: u64) {
        let (s, ns) = split_ts(ts_ns);
        if s != self.ts_sec {
            self.ts_sec = s;
            let mut t = Vec::with_capacity(9);
            let day = s % 86_400;
            push_padded::<2>(&mut t, (day / 3600) as u32);
            t.push(b':');
            push_padded::<2>(&mut t, (day / 60 % 60) as u32);
            t.push(b':');
            push_padded::<2>(&mut t, (day % 60) as u32);
            t.push(b'.');
            self.ts_sec_text.copy_from_slice(&t);
        }
        self.line.extend_from_slice(&self.ts_sec_text);
        push_padded::<6>(&mut self.line, ns / 1000);
    }

    /// With `--segments`: print each segment's whole payload in hex (cut at
    /// `--payload-max` when given), like `tcpdump -x`.
    pub fn with_segment_hex(mut self, on: bool) -> Self {
        self.segment_hex = on;
        self
    }

    fn flush_line(&mut self) {
        self.line.push(b'\n');
        if self.line.len() >= OUT_CHUNK {
            write_out(&mut self.out, &mut self.line, &mut self.err);
        }
    }

    /// Appends the payload: quoted text (escaped) or a hex preview.
    fn payload(&mut self, p: &[u8], as_text: bool) {
        let text = as_text
            .then(|| simdutf8::basic::from_utf8(p).ok())
            .flatten();
        let l = &mut self.line;
        match text {
            Some(t) => {
                let max = self.payload_max.unwrap_or(DEFAULT_TEXT_PREVIEW);
                let (shown, cut) = shorten(p, Some(max), true);
                l.extend_from_slice(b" \"");
                // Cut at a character boundary: a prefix of the checked text.
                escape_into(l, t.get(..shown.len()).unwrap_or_default());
                l.push(b'"');
                if cut {
                    l.extend_from_slice(ELLIPSIS);
                }
            }
            None => {
                let max = self.payload_max.unwrap_or(DEFAULT_HEX_PREVIEW);
                let (shown, cut) = shorten(p, Some(max), false);
                if !shown.is_empty() {
                    l.extend_from_slice(b" hex:");
                }
                push_hex(l, shown);
                if cut {
                    l.extend_from_slice(ELLIPSIS);
                }
            }
        }
    }
}

const ELLIPSIS: &[u8] = "…".as_bytes();

/// Appends bytes as lowercase hex, two digits each.
fn push_hex(out: &mut Vec<u8>, p: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(p.len() * 2);
    for &b in p {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

impl<W: Write> Drop for TextSink<W> {
    /// Writes what is left, as a `BufWriter` would (errors ignored).
    fn drop(&mut self) {
        write_out(&mut self.out, &mut self.line, &mut self.err);
    }
}

/// Escapes control characters (`\n`, `\r`, `\t`, else `\u{..}`, C1
/// controls included), quotes and backslashes; every other character is
/// copied. Runs that need nothing are found eight bytes at a time
/// ([`plain_run`]) and copied whole.
pub fn escape_into(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len());
    let mut rest = s;
    loop {
        let n = plain_run(rest.as_bytes());
        out.extend_from_slice(&rest.as_bytes()[..n]);
        rest = &rest[n..];
        let Some(c) = rest.chars().next() else { return };
        escape_char(out, c);
        rest = &rest[c.len_utf8()..];
    }
}

/// One character as [`escape_into`] writes it.
fn escape_char(out: &mut Vec<u8>, c: char) {
    match c {
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
    }
}

/// Length of the prefix of UTF-8 `b` that [`escape_into`] copies as it is:
/// up to the first byte below 0x20, `"`, `\`, DEL, or 0xC2 (the lead byte of
/// U+0080..U+00BF, where the C1 controls are; the character decides). A
/// word-at-a-time scan (SWAR): a word is skipped when none of its bytes
/// is one of those; borrows can only flag bytes above a real hit, so the
/// lowest flagged byte is the first hit.
fn plain_run(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let special = |w: u64| {
        (w.wrapping_sub(LO * 0x20) & !w & HI)
            | zero_byte(w ^ (LO * u64::from(b'"')))
            | zero_byte(w ^ (LO * u64::from(b'\\')))
            | zero_byte(w ^ (LO * 0x7f))
            | zero_byte(w ^ (LO * 0xc2))
    };
    let mut i = 0;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let m = special(w);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let plain = |c: u8| c >= 0x20 && !matches!(c, b'"' | b'\\' | 0x7f | 0xc2);
    i + b[i..].iter().take_while(|&&c| plain(c)).count()
}

/// TCP flags as letters, tcpdump style (`S`, `.` for ACK, `P`, `F`, `R`, `U`).
pub fn flag_letters(flags: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (tcp_flags::SYN, 'S'),
        (tcp_flags::FIN, 'F'),
        (tcp_flags::RST, 'R'),
        (tcp_flags::PSH, 'P'),
        (tcp_flags::URG, 'U'),
        (tcp_flags::ACK, '.'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

impl<W: Write> EventSink for TextSink<W> {
    fn event(&mut self, ev: &Event<'_>) {
        if self.err.is_some() {
            return;
        }
        self.time_of_day(ev.ts_ns);
        let owners = self.owners.as_deref();
        let epoch = owners.map_or(0, Owners::epoch);
        let conn = self
            .conns
            .get((ev.conn, ev.src, ev.dst, ev.dir, epoch, ev.via), |b| {
                b.extend_from_slice(b" #");
                push_u64(b, ev.conn);
                b.push(b' ');
                if let Some(via) = ev.via.as_str() {
                    b.push(b'[');
                    b.extend_from_slice(via.as_bytes());
                    b.extend_from_slice(b"] ");
                }
                let [src_owner, dst_owner] =
                    owners.map_or([None, None], |o| o.ends(ev.src, ev.dst));
                push_addr(b, ev.src);
                push_owner(b, src_owner);
                b.extend_from_slice(" → ".as_bytes());
                push_addr(b, ev.dst);
                push_owner(b, dst_owner);
                b.push(b' ');
            });
        let l = &mut self.line;
        l.extend_from_slice(conn);
        l.extend_from_slice(ev.kind.name().as_bytes());
        match &ev.kind {
            EventKind::Ws(WsEvent::Open {
                host,
                path,
                subprotocol,
                extensions,
                accept_valid,
                ..
            }) => {
                let _ = write!(l, " {}{}", host.as_deref().unwrap_or(""), path);
                if let Some(p) = subprotocol {
                    let _ = write!(l, " subprotocol={p}");
                }
                if let Some(e) = extensions {
                    let _ = write!(l, " extensions={e:?}");
                }
                if !accept_valid {
                    l.extend_from_slice(b" ACCEPT-MISMATCH");
                }
            }
            EventKind::Ws(WsEvent::UpgradeFailed { status, reason }) => {
                let _ = write!(l, " {status} {reason}");
            }
            EventKind::Ws(WsEvent::Message {
                kind,
                payload,
                len,
                len_exact,
                compressed,
                fragments,
                truncated,
                invalid_utf8,
                ..
            }) => {
                let k = match kind {
                    MessageKind::Text => "text",
                    MessageKind::Binary => "binary",
                };
                l.push(b' ');
                l.extend_from_slice(k.as_bytes());
                l.extend_from_slice(if *len_exact { b" len=" } else { b" len>=" });
                push_u64(l, *len);
                if *compressed {
                    l.extend_from_slice(b" deflate");
                }
                if *fragments > 1 {
                    let _ = write!(l, " fragments={fragments}");
                }
                if *truncated {
                    l.extend_from_slice(b" TRUNCATED");
                }
                if *invalid_utf8 {
                    l.extend_from_slice(b" INVALID-UTF8");
                }
                self.payload(payload, *kind == MessageKind::Text);
            }
            EventKind::Ws(WsEvent::Ping { payload }) | EventKind::Ws(WsEvent::Pong { payload }) => {
                let _ = write!(l, " len={}", payload.len());
                self.payload(payload, true);
            }
            EventKind::Ws(WsEvent::Close { code, reason }) => {
                match code {
                    Some(c) => {
                        let _ = write!(l, " code={c}");
                    }
                    None => l.extend_from_slice(b" (no code)"),
                }
                if !reason.is_empty() {
                    self.payload(reason, true);
                }
            }
            EventKind::Ws(WsEvent::Undecompressable { raw, error, .. }) => {
                let _ = write!(l, " len={} error={error:?}", raw.len());
            }
            EventKind::Http(HttpEvent::Request {
                method, path, host, ..
            }) => {
                let _ = write!(l, " {method} {path}");
                if let Some(h) = host {
                    let _ = write!(l, " host={h}");
                }
            }
            EventKind::Http(HttpEvent::Response { status, reason, .. }) => {
                let _ = write!(l, " {status} {reason}");
            }
            EventKind::Tcp(TcpEvent::Gap { bytes }) => {
                let _ = write!(l, " bytes={bytes}");
            }
            EventKind::Ws(WsEvent::Resync { skipped }) => {
                let _ = write!(l, " skipped={skipped}");
            }
            EventKind::Violation(what) => {
                let _ = write!(l, " {what}");
            }
            EventKind::Stack(StackEvent::Undecoded { protocol, reason }) => {
                let _ = write!(l, " {} {reason}", protocol.as_str());
            }
            EventKind::Tls(TlsEvent::ClientHello {
                sni,
                alpn,
                versions,
                cipher_suites,
            }) => {
                if let Some(sni) = sni {
                    let _ = write!(l, " sni={sni:?}");
                }
                if !alpn.is_empty() {
                    let _ = write!(l, " alpn={}", alpn.join(","));
                }
                let v: Vec<String> = versions
                    .iter()
                    .map(|&v| crate::proto::tls::version_name(v))
                    .collect();
                let _ = write!(l, " versions={} cipher_suites={cipher_suites}", v.join(","));
            }
            EventKind::Tls(TlsEvent::ServerHello {
                version,
                cipher_suite,
                alpn,
                retry,
            }) => {
                let _ = write!(
                    l,
                    " version={} cipher_suite={}",
                    crate::proto::tls::version_name(*version),
                    crate::proto::tls::suite_name(*cipher_suite)
                );
                if let Some(a) = alpn {
                    let _ = write!(l, " alpn={a}");
                }
                if *retry {
                    l.extend_from_slice(b" hello_retry_request");
                }
            }
            EventKind::Tcp(TcpEvent::OverlapMismatch { offset, len }) => {
                let _ = write!(l, " offset={offset} len={len}");
            }
            EventKind::Tcp(TcpEvent::Evicted { reason }) => {
                let _ = write!(l, " {}", reason.as_str());
            }
            EventKind::Tcp(TcpEvent::Close { reset }) => {
                l.extend_from_slice(if *reset { " reset" } else { " fin" }.as_bytes());
            }
        }
        self.flush_line();
    }
}

impl<W: Write> Output for TextSink<W> {
    fn segment(&mut self, seg: &Segment<'_>) {
        if self.err.is_some() {
            return;
        }
        self.time_of_day(seg.ts_ns);
        let l = &mut self.line;
        let _ = write!(
            l,
            " {} → {} [{}] seq={} ack={} win={} len={}",
            seg.src,
            seg.dst,
            flag_letters(seg.flags),
            seg.seq,
            seg.ack,
            seg.window,
            seg.payload.len()
        );
        if seg.checksum == Checksum::Bad {
            l.extend_from_slice(b" checksum=bad");
        }
        if self.segment_hex {
            let (shown, cut) = shorten(seg.payload, self.payload_max, false);
            if !shown.is_empty() {
                l.extend_from_slice(b" hex:");
            }
            push_hex(l, shown);
            if cut {
                l.extend_from_slice(ELLIPSIS);
            }
        }
        self.flush_line();
    }

    fn error(&self) -> Option<&io::Error> {
        self.err.as_ref()
    }

    fn finish(&mut self) -> io::Result<()> {
        write_out(&mut self.out, &mut self.line, &mut self.err);
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::event::Direction;

    /// The escape a character at a time, as it was written first: the
    /// word-at-a-time scan must produce exactly this.
    fn escape_one_char_at_a_time(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for c in s.chars() {
            escape_char(&mut out, c);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn text_escape_matches_the_character_at_a_time_escape(
            s in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::char::range('\u{0}', '\u{7f}'),
                    proptest::char::range('\u{80}', '\u{c0}'),
                    proptest::prelude::any::<char>(),
                ],
                0..300,
            )
        ) {
            let s: String = s.into_iter().collect();
            let mut out = Vec::new();
            escape_into(&mut out, &s);
            proptest::prop_assert_eq!(out, escape_one_char_at_a_time(&s));
        }
    }

    #[test]
    fn text_escape_finds_each_special_character_at_every_offset() {
        for c in (0u8..=0x7f)
            .map(char::from)
            .chain(['\u{80}', '\u{9f}', '\u{a0}', '\u{bf}', '\u{2028}', 'é'])
        {
            for at in 0..20 {
                let s = format!("{}{c}{}", "x".repeat(at), "y".repeat(20 - at));
                let mut out = Vec::new();
                escape_into(&mut out, &s);
                assert_eq!(out, escape_one_char_at_a_time(&s), "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn local_ends_show_comm_and_pid() {
        let owners = Owners::new();
        let (src, dst) = (
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        owners.insert(src, dst, Owner::new(4242, b"my client"));
        let mut buf = Vec::new();
        {
            let mut s = TextSink::new(&mut buf, None).with_owners(Some(owners));
            s.event(&Event {
                ts_ns: 0,
                conn: 1,
                src,
                dst,
                dir: Direction::ClientToServer,
                via: crate::event::Via::Wire,
                kind: EventKind::Ws(WsEvent::Message {
                    kind: MessageKind::Text,
                    len_exact: true,
                    payload: Cow::Borrowed(b"hi"),
                    len: 2,
                    wire_len: 2,
                    compressed: false,
                    fragments: 1,
                    invalid_utf8: false,
                    truncated: false,
                }),
            });
            s.finish().unwrap();
        }
        let line = String::from_utf8(buf).unwrap();
        assert!(
            line.contains(" #1 10.0.0.1:40000 my?client[4242] → 10.0.0.2:80 ws_message"),
            "{line}"
        );
    }

    #[test]
    fn one_line_with_escaped_text_and_hex_preview() {
        let mut buf = Vec::new();
        {
            let mut s = TextSink::new(&mut buf, None);
            let mut ev = Event {
                ts_ns: 3_723_000_001_000,
                conn: 7,
                src: "10.0.0.1:1".parse().unwrap(),
                dst: "[::1]:80".parse().unwrap(),
                dir: Direction::ClientToServer,
                via: crate::event::Via::Wire,
                kind: EventKind::Ws(WsEvent::Message {
                    kind: MessageKind::Text,
                    len_exact: true,
                    payload: Cow::Borrowed(b"a\"b\n\x01"),
                    len: 5,
                    wire_len: 5,
                    compressed: false,
                    fragments: 1,
                    invalid_utf8: false,
                    truncated: false,
                }),
            };
            s.event(&ev);
            ev.kind = EventKind::Ws(WsEvent::Pong {
                payload: Cow::Borrowed(&[0xff, 0]),
            });
            s.event(&ev);
            s.finish().unwrap();
        }
        let out = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "01:02:03.000001 #7 10.0.0.1:1 → [::1]:80 ws_message text len=5 \"a\\\"b\\n\\u{1}\""
        );
        assert_eq!(
            lines[1],
            "01:02:03.000001 #7 10.0.0.1:1 → [::1]:80 ws_pong len=2 hex:ff00"
        );
    }
}
