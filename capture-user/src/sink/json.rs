//! JSON Lines output: one object per event, fields documented in
//! `capture-user/JSON.md` (stable names; new fields may be added).
//!
//! Objects are written field by field straight into the output buffer
//! (strings escaped as serde_json escapes them), so a message costs no
//! intermediate `Value` tree; the connection part of a line is formatted once
//! per connection and direction.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use super::{
    push_addr, push_base64, push_json_str, push_padded, push_u64, shorten, split_ts, write_out,
    ConnCache, Output, OUT_CHUNK,
};
use crate::event::{
    Event, EventKind, EventSink, HttpEvent, MessageKind, StackEvent, TcpEvent, TlsEvent, WsEvent,
};
use crate::owners::Owners;
use crate::source::{Checksum, Segment};

/// Writes events as JSON Lines.
pub struct JsonSink<W: Write> {
    out: W,
    err: Option<io::Error>,
    payload_max: Option<usize>,
    /// Finished lines not yet written out, then the line being built.
    line: Vec<u8>,
    /// `,"conn":..,"src":..,"dst":..,"dir":..` of recent events.
    conns: ConnCache,
    /// Who owns each end, when live capture attributes processes.
    owners: Option<Arc<Owners>>,
    /// wstap's own network namespace: an owner in another one is named.
    own_netns: Option<u64>,
    /// The seconds of the last timestamp written and their digits.
    ts_sec: u64,
    ts_sec_digits: Vec<u8>,
}

impl<W: Write> JsonSink<W> {
    /// `payload_max`: print at most this many payload bytes per event
    /// (`--payload-max`); the event says `"payload_truncated": true` then.
    /// Adds `src_pid`/`src_comm`/`dst_pid`/`dst_comm` from `owners`.
    /// and, for a process in another network namespace or a cgroup,
    /// `src_netns`/`src_cgroup`/`dst_netns`/`dst_cgroup`.
    pub fn with_owners(mut self, owners: Option<Arc<Owners>>) -> Self {
        self.own_netns = crate::owners::own_netns();
        self.owners = owners;
        self
    }

    pub fn new(w: W, payload_max: Option<usize>) -> Self {
        JsonSink {
            out: w,
            err: None,
            payload_max,
            line: Vec::with_capacity(OUT_CHUNK + 4096),
            conns: ConnCache::new(),
            owners: None,
            own_netns: None,
            ts_sec: u64::MAX,
            ts_sec_digits: Vec::new(),
        }
    }

    /// Starts a line with `{"ts":SECONDS.NANOSECONDS` (nine digits).
    fn start_ts(&mut self, ts_ns: u64) {
        let (s, ns) = split_ts(ts_ns);
        if s != self.ts_sec {
            self.ts_sec = s;
            self.ts_sec_digits.clear();
            push_u64(&mut self.ts_sec_digits, s);
        }
        self.line.extend_from_slice(b"{\"ts\":");
        self.line.extend_from_slice(&self.ts_sec_digits);
        self.line.push(b'.');
        push_padded::<9>(&mut self.line, ns);
    }

    fn flush_line(&mut self) {
        self.line.push(b'\n');
        if self.line.len() >= OUT_CHUNK {
            write_out(&mut self.out, &mut self.line, &mut self.err);
        }
    }
}

impl<W: Write> Drop for JsonSink<W> {
    /// Writes what is left, as a `BufWriter` would (errors ignored).
    fn drop(&mut self) {
        write_out(&mut self.out, &mut self.line, &mut self.err);
    }
}

/// Builds one JSON object in a byte buffer.
struct Obj<'a> {
    b: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(b: &'a mut Vec<u8>) -> Self {
        b.push(b'{');
        Obj { b, first: true }
    }
    /// Goes on with an object whose `{` and first fields are already in `b`.
    fn resume(b: &'a mut Vec<u8>) -> Self {
        Obj { b, first: false }
    }
    #[inline]
    fn key(&mut self, k: &str) {
        if !self.first {
            self.b.push(b',');
        }
        self.first = false;
        self.b.push(b'"');
        self.b.extend_from_slice(k.as_bytes());
        self.b.extend_from_slice(b"\":");
    }
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_json_str(self.b, v);
    }
    /// A string known to need no escaping (names from this crate).
    fn name(&mut self, k: &str, v: &'static str) {
        debug_assert!(v
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\\'));
        self.key(k);
        self.b.push(b'"');
        self.b.extend_from_slice(v.as_bytes());
        self.b.push(b'"');
    }
    /// An array of strings.
    fn strs<S: AsRef<str>>(&mut self, k: &str, v: impl Iterator<Item = S>) {
        self.key(k);
        self.b.push(b'[');
        for (i, s) in v.enumerate() {
            if i > 0 {
                self.b.push(b',');
            }
            push_json_str(self.b, s.as_ref());
        }
        self.b.push(b']');
    }
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }
    #[inline]
    fn num(&mut self, k: &str, v: u64) {
        self.key(k);
        push_u64(self.b, v);
    }
    #[inline]
    fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.b.extend_from_slice(if v { b"true" } else { b"false" });
    }
    fn addr(&mut self, k: &str, a: SocketAddr) {
        // Written as SocketAddr's Display does: IPv6 as [ip]:port.
        self.key(k);
        self.b.push(b'"');
        push_addr(self.b, a);
        self.b.push(b'"');
    }
    /// Payload as `text` when it is UTF-8 (and `prefer_text`), else
    /// `data_b64`; cut at `max` with `payload_truncated`.
    fn payload(&mut self, p: &[u8], prefer_text: bool, max: Option<usize>) {
        let text = prefer_text
            .then(|| simdutf8::basic::from_utf8(p).ok())
            .flatten();
        let (shown, cut) = shorten(p, max, text.is_some());
        match text {
            Some(t) => {
                // Cut at a character boundary: a prefix of the checked text.
                let s = t.get(..shown.len()).unwrap_or_default();
                self.str("text", s);
            }
            None => {
                self.key("data_b64");
                self.b.push(b'"');
                push_base64(self.b, shown);
                self.b.push(b'"');
            }
        }
        if cut {
            self.bool("payload_truncated", true);
        }
    }
    fn end(self) {
        self.b.push(b'}');
    }
}

fn opcode(k: MessageKind) -> &'static str {
    match k {
        MessageKind::Text => "text",
        MessageKind::Binary => "binary",
    }
}

impl<W: Write> EventSink for JsonSink<W> {
    fn event(&mut self, ev: &Event<'_>) {
        if self.err.is_some() {
            return;
        }
        let max = self.payload_max;
        self.start_ts(ev.ts_ns);
        let owners = self.owners.as_deref();
        let own_netns = self.own_netns;
        let epoch = owners.map_or(0, Owners::epoch);
        let conn = self
            .conns
            .get((ev.conn, ev.src, ev.dst, ev.dir, epoch, ev.via), |b| {
                let mut o = Obj::resume(b);
                o.num("conn", ev.conn);
                o.addr("src", ev.src);
                o.addr("dst", ev.dst);
                o.name("dir", ev.dir.as_str());
                if let Some(via) = ev.via.as_str() {
                    o.name("via", via);
                }
                let [src, dst] = owners.map_or([None, None], |o| o.ends(ev.src, ev.dst));
                for (w, [pid, comm, netns, cgroup]) in [
                    (src, ["src_pid", "src_comm", "src_netns", "src_cgroup"]),
                    (dst, ["dst_pid", "dst_comm", "dst_netns", "dst_cgroup"]),
                ] {
                    let Some(w) = w else { continue };
                    o.num(pid, w.pid as u64);
                    o.str(comm, &w.comm);
                    if let Some(ns) = w.place.netns.filter(|&ns| Some(ns) != own_netns) {
                        o.num(netns, ns);
                    }
                    if let Some(cg) = &w.place.cgroup {
                        o.str(cgroup, cg);
                    }
                }
            });
        self.line.extend_from_slice(conn);
        let mut o = Obj::resume(&mut self.line);
        o.name("event", ev.kind.name());
        match &ev.kind {
            EventKind::Ws(WsEvent::Open {
                host,
                path,
                subprotocol,
                extensions,
                deflate,
                accept_valid,
            }) => {
                o.opt_str("host", host.as_deref());
                o.str("path", path);
                o.opt_str("subprotocol", subprotocol.as_deref());
                o.opt_str("extensions", extensions.as_deref());
                if let Some(d) = deflate {
                    o.key("deflate");
                    let mut d2 = Obj::new(o.b);
                    d2.bool("server_no_context_takeover", d.server_no_context_takeover);
                    d2.bool("client_no_context_takeover", d.client_no_context_takeover);
                    d2.num("server_max_window_bits", d.server_max_window_bits.into());
                    d2.num("client_max_window_bits", d.client_max_window_bits.into());
                    d2.end();
                }
                o.bool("accept_valid", *accept_valid);
            }
            EventKind::Ws(WsEvent::UpgradeFailed { status, reason }) => {
                o.num("status", (*status).into());
                o.str("reason", reason);
            }
            EventKind::Ws(WsEvent::Message {
                kind,
                payload,
                len,
                len_exact,
                wire_len,
                compressed,
                fragments,
                invalid_utf8,
                truncated,
            }) => {
                // The fixed part in few pieces (same fields as one by one).
                o.b.extend_from_slice(match kind {
                    MessageKind::Text => &b",\"opcode\":\"text\",\"len\":"[..],
                    MessageKind::Binary => &b",\"opcode\":\"binary\",\"len\":"[..],
                });
                push_u64(o.b, *len);
                o.b.extend_from_slice(b",\"wire_len\":");
                push_u64(o.b, *wire_len);
                if !len_exact {
                    o.bool("len_exact", false);
                }
                if !compressed && *fragments == 1 && !truncated && !invalid_utf8 {
                    // The common case, in one piece (same bytes as below).
                    o.b.extend_from_slice(
                        b",\"compressed\":false,\"fragments\":1,\"truncated\":false,\"invalid_utf8\":false",
                    );
                } else {
                    o.bool("compressed", *compressed);
                    o.num("fragments", (*fragments).into());
                    o.bool("truncated", *truncated);
                    o.bool("invalid_utf8", *invalid_utf8);
                }
                o.payload(payload, *kind == MessageKind::Text, max);
            }
            EventKind::Ws(WsEvent::Ping { payload }) | EventKind::Ws(WsEvent::Pong { payload }) => {
                o.num("len", payload.len() as u64);
                o.payload(payload, true, max);
            }
            EventKind::Ws(WsEvent::Close { code, reason }) => {
                if let Some(c) = code {
                    o.num("code", (*c).into());
                }
                o.str("reason", &String::from_utf8_lossy(reason));
            }
            EventKind::Ws(WsEvent::Undecompressable { kind, raw, error }) => {
                o.str("opcode", opcode(*kind));
                o.num("len", raw.len() as u64);
                o.str("error", error);
                o.payload(raw, false, max);
            }
            EventKind::Http(HttpEvent::Request {
                method,
                path,
                host,
                content_length,
            }) => {
                o.str("method", method);
                o.str("path", path);
                o.opt_str("host", host.as_deref());
                if let Some(n) = content_length {
                    o.num("content_length", *n);
                }
            }
            EventKind::Http(HttpEvent::Response {
                status,
                reason,
                content_length,
            }) => {
                o.num("status", (*status).into());
                o.str("reason", reason);
                if let Some(n) = content_length {
                    o.num("content_length", *n);
                }
            }
            EventKind::Tcp(TcpEvent::Gap { bytes }) => o.num("bytes", *bytes),
            EventKind::Ws(WsEvent::Resync { skipped }) => o.num("skipped", *skipped),
            EventKind::Violation(what) => o.str("what", &what.to_string()),
            EventKind::Stack(StackEvent::Undecoded { protocol, reason }) => {
                o.str("protocol", protocol.as_str());
                o.str("reason", reason);
            }
            EventKind::Tls(TlsEvent::ClientHello {
                sni,
                alpn,
                versions,
                cipher_suites,
            }) => {
                o.opt_str("sni", sni.as_deref());
                o.strs("alpn", alpn.iter().map(String::as_str));
                o.strs(
                    "versions",
                    versions.iter().map(|&v| crate::proto::tls::version_name(v)),
                );
                o.num("cipher_suites", *cipher_suites as u64);
            }
            EventKind::Tls(TlsEvent::ServerHello {
                version,
                cipher_suite,
                alpn,
                retry,
            }) => {
                o.str("version", &crate::proto::tls::version_name(*version));
                o.str(
                    "cipher_suite",
                    &crate::proto::tls::suite_name(*cipher_suite),
                );
                o.opt_str("alpn", alpn.as_deref());
                if *retry {
                    o.bool("hello_retry_request", true);
                }
            }
            EventKind::Tcp(TcpEvent::OverlapMismatch { offset, len }) => {
                o.num("offset", *offset);
                o.num("len", *len);
            }
            EventKind::Tcp(TcpEvent::Evicted { reason }) => o.str("reason", reason.as_str()),
            EventKind::Tcp(TcpEvent::Close { reset }) => o.bool("reset", *reset),
        }
        o.end();
        self.flush_line();
    }
}

impl<W: Write> Output for JsonSink<W> {
    fn segment(&mut self, seg: &Segment<'_>) {
        if self.err.is_some() {
            return;
        }
        let max = self.payload_max;
        self.start_ts(seg.ts_ns);
        let mut o = Obj::resume(&mut self.line);
        o.addr("src", seg.src);
        o.addr("dst", seg.dst);
        o.str("event", "tcp_segment");
        o.num("seq", seg.seq.into());
        o.num("ack", seg.ack.into());
        o.str("flags", &super::text::flag_letters(seg.flags));
        o.num("window", seg.window.into());
        o.num("len", seg.payload.len() as u64);
        // Only when bad, so that a line of a segment that verified (or
        // could not be checked) reads as it always did.
        if seg.checksum == Checksum::Bad {
            o.str("checksum", "bad");
        }
        o.payload(seg.payload, false, max);
        o.end();
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
    use crate::owners::Owner;

    fn line(ev: &Event<'_>, max: Option<usize>) -> serde_json::Value {
        let mut buf = Vec::new();
        let mut s = JsonSink::new(&mut buf, max);
        s.event(ev);
        s.finish().unwrap();
        drop(s);
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&buf).unwrap()
    }

    fn msg(kind: MessageKind, p: &[u8]) -> Event<'_> {
        Event {
            ts_ns: 1_700_000_000_000_000_001,
            conn: 3,
            src: "[fd00::1]:443".parse().unwrap(),
            dst: "10.0.0.2:5000".parse().unwrap(),
            dir: Direction::ServerToClient,
            via: crate::event::Via::Wire,
            kind: EventKind::Ws(WsEvent::Message {
                kind,
                len_exact: true,
                payload: Cow::Borrowed(p),
                len: p.len() as u64,
                wire_len: 3,
                compressed: true,
                fragments: 2,
                invalid_utf8: false,
                truncated: false,
            }),
        }
    }

    #[test]
    fn message_fields() {
        let v = line(&msg(MessageKind::Text, "héllo".as_bytes()), None);
        assert_eq!(v["ts"].as_f64().unwrap(), 1_700_000_000.000_000_001);
        assert_eq!(v["conn"], 3);
        assert_eq!(v["src"], "[fd00::1]:443");
        assert_eq!(v["dst"], "10.0.0.2:5000");
        assert_eq!(v["dir"], "server_to_client");
        assert_eq!(v["event"], "ws_message");
        assert_eq!(v["opcode"], "text");
        assert_eq!(v["len"], 6);
        assert_eq!(v["compressed"], true);
        assert_eq!(v["fragments"], 2);
        assert_eq!(v["text"], "héllo");
        assert!(v.get("payload_truncated").is_none());
    }

    #[test]
    fn owners_appear_on_their_ends_and_a_later_owner_is_not_cached_away() {
        let owners = Owners::new();
        let ev = msg(MessageKind::Text, b"x");
        let mut buf = Vec::new();
        let mut s = JsonSink::new(&mut buf, None).with_owners(Some(owners.clone()));
        s.event(&ev);
        // The receiving end becomes known between two events.
        owners.insert(ev.dst, ev.src, Owner::new(77, b"client"));
        s.event(&ev);
        owners.insert(ev.src, ev.dst, Owner::new(5, b"server\0\0"));
        s.event(&ev);
        s.finish().unwrap();
        drop(s);
        let v: Vec<serde_json::Value> = buf
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert!(v[0].get("src_pid").is_none() && v[0].get("dst_pid").is_none());
        assert!(v[1].get("src_pid").is_none());
        assert_eq!(
            (&v[1]["dst_pid"], &v[1]["dst_comm"]),
            (&77.into(), &"client".into())
        );
        assert_eq!(
            (&v[2]["src_pid"], &v[2]["src_comm"]),
            (&5.into(), &"server".into())
        );
        assert_eq!(v[2]["dst_pid"], 77);
    }

    #[test]
    fn binary_is_base64_and_payload_max_marks_the_cut() {
        let v = line(&msg(MessageKind::Binary, &[0, 1, 2, 3]), Some(2));
        assert_eq!(v["data_b64"], "AAE=");
        assert_eq!(v["payload_truncated"], true);
        assert_eq!(v["len"], 4);
        let v = line(&msg(MessageKind::Text, "héllo".as_bytes()), Some(2));
        assert_eq!(v["text"], "h", "cut at a character boundary");
        let v = line(&msg(MessageKind::Text, &[0xff, b'a']), None);
        assert_eq!(v["data_b64"], "/2E=", "invalid UTF-8 text goes as base64");
    }

    #[test]
    fn close_and_gap() {
        let mut ev = msg(MessageKind::Text, b"");
        ev.kind = EventKind::Ws(WsEvent::Close {
            code: Some(1000),
            reason: Cow::Borrowed(b"bye"),
        });
        let v = line(&ev, None);
        assert_eq!(
            (v["code"].as_u64(), v["reason"].as_str()),
            (Some(1000), Some("bye"))
        );
        ev.kind = EventKind::Tcp(TcpEvent::Gap { bytes: 77 });
        assert_eq!(line(&ev, None)["bytes"], 77);
    }
}
