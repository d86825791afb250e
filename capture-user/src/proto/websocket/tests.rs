//! Protocol stack tests from byte fixtures: handshake, frames, messages, deflate,
//! violations, caps, gaps, resync, zero copy, and re-segmentation.

use flate2::Compress;
use proptest::prelude::*;

use super::deflate::tests::{compress_msg, raw_compressor};
use crate::event::{DeflateParams, Direction, EventKind, HttpEvent, MessageKind, WsEvent};
use crate::proto::{Emit, ProtoConfig, Role, Side, Stack};

const I: Side = Side::Initiator;
const R: Side = Side::Responder;
const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// RFC 6455 §1.3 (the value the RFC prints; sha1+base64 of key+GUID).
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// An event with everything owned, plus whether its payload was borrowed.
#[derive(Debug, Clone)]
struct Rec {
    side: Side,
    dir: Direction,
    kind: EventKind<'static>,
    borrowed: bool,
}

/// An event as the registry would emit it: which side, which direction.
struct ProtoEvent<'a> {
    side: Side,
    dir: Direction,
    kind: EventKind<'a>,
}

fn record(e: ProtoEvent<'_>) -> Rec {
    Rec {
        side: e.side,
        dir: e.dir,
        borrowed: e.kind.payload_borrowed(),
        kind: e.kind.into_owned(),
    }
}

/// One connection's stack fed as the registry feeds it: the role starts
/// from the SYN (`known`), learns what the layers report, and directs the
/// events.
struct Session {
    stack: Stack,
    role: Role,
    /// Bytes the layers reported consumed undecoded.
    skipped: u64,
}

impl Session {
    fn new(cfg: &ProtoConfig, known: bool) -> Self {
        Session {
            stack: Stack::new(cfg),
            skipped: 0,
            role: if known {
                Role::known(I)
            } else {
                Role::default()
            },
        }
    }

    fn call(
        &mut self,
        out: &mut dyn FnMut(ProtoEvent<'_>),
        f: impl FnOnce(&mut Stack, Role, &mut dyn FnMut(Emit<'_>)),
    ) {
        let (role, skipped) = (&mut self.role, &mut self.skipped);
        let r = *role;
        f(&mut self.stack, r, &mut |e| match e {
            Emit::Event(side, kind) | Emit::Decrypted(side, kind) => out(ProtoEvent {
                side,
                dir: role.dir(side),
                kind,
            }),
            Emit::Role(fact) => role.learn(fact),
            Emit::Skipped(_, n) => *skipped += n,
        });
    }

    fn on_data(&mut self, side: Side, d: &[u8], out: &mut dyn FnMut(ProtoEvent<'_>)) {
        self.call(out, |s, r, o| s.data(r, side, d, o));
    }

    fn on_gap(&mut self, side: Side, n: u64, out: &mut dyn FnMut(ProtoEvent<'_>)) {
        self.call(out, |s, r, o| s.gap(r, side, n, o));
    }

    fn on_end(&mut self, side: Side, out: &mut dyn FnMut(ProtoEvent<'_>)) {
        self.call(out, |s, r, o| s.end(r, side, o));
    }
}

/// What the harness feeds a session.
#[derive(Debug, Clone)]
enum Step {
    Data(Side, Vec<u8>),
    Gap(Side, u64),
    End(Side),
}
use Step::{Data, End, Gap};

fn run_with(cfg: &ProtoConfig, known: bool, steps: &[Step]) -> Vec<Rec> {
    let mut s = Session::new(cfg, known);
    let mut v = Vec::new();
    for st in steps {
        let mut out = |e: ProtoEvent<'_>| v.push(record(e));
        match st {
            Data(side, d) => s.on_data(*side, d, &mut out),
            Gap(side, n) => s.on_gap(*side, *n, &mut out),
            End(side) => s.on_end(*side, &mut out),
        }
    }
    v
}

fn run(steps: &[Step]) -> Vec<Rec> {
    run_with(&ProtoConfig::default(), true, steps)
}

/// Builds a frame; `rsv` is the 3-bit RSV field (RSV1 = 4).
fn frame(fin: bool, rsv: u8, op: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | (rsv << 4) | op];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

fn req(extensions: Option<&str>) -> Vec<u8> {
    let mut r = format!(
        "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
    );
    if let Some(e) = extensions {
        r += &format!("Sec-WebSocket-Extensions: {e}\r\n");
    }
    r += "\r\n";
    r.into_bytes()
}

fn resp(accept: &str, extensions: Option<&str>) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: chat\r\n"
    );
    if let Some(e) = extensions {
        r += &format!("Sec-WebSocket-Extensions: {e}\r\n");
    }
    r += "\r\n";
    r.into_bytes()
}

/// A handshake, then the given steps.
fn after_handshake(ext: Option<&str>, steps: Vec<Step>) -> Vec<Step> {
    let mut v = vec![Data(I, req(ext)), Data(R, resp(ACCEPT, ext))];
    v.extend(steps);
    v
}

/// Events after the HttpRequest and WsOpen of a handshake.
fn ws_events(ext: Option<&str>, steps: Vec<Step>) -> Vec<Rec> {
    let v = run(&after_handshake(ext, steps));
    assert!(
        matches!(v[0].kind, EventKind::Http(HttpEvent::Request { .. })),
        "{v:?}"
    );
    assert!(
        matches!(v[1].kind, EventKind::Ws(WsEvent::Open { .. })),
        "{v:?}"
    );
    v[2..].to_vec()
}

fn msg(r: &Rec) -> (MessageKind, Vec<u8>, u64, u64, bool, u32, bool, bool) {
    match &r.kind {
        EventKind::Ws(WsEvent::Message {
            kind,
            payload,
            len,
            wire_len,
            compressed,
            fragments,
            invalid_utf8,
            truncated,
            ..
        }) => (
            *kind,
            payload.to_vec(),
            *len,
            *wire_len,
            *compressed,
            *fragments,
            *invalid_utf8,
            *truncated,
        ),
        other => panic!("not a message: {other:?}"),
    }
}

fn text_of(r: &Rec) -> Vec<u8> {
    msg(r).1
}

fn violations(v: &[Rec]) -> Vec<String> {
    v.iter()
        .filter_map(|r| match &r.kind {
            EventKind::Violation(what) => Some(what.to_string()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- handshake

#[test]
fn handshake_open_fields() {
    let ext = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10";
    let v = run(&after_handshake(Some(ext), vec![]));
    assert_eq!(v.len(), 2, "{v:?}");
    match &v[0].kind {
        EventKind::Http(HttpEvent::Request {
            method,
            path,
            host,
            content_length,
        }) => {
            assert_eq!((method.as_str(), path.as_str()), ("GET", "/chat?x=1"));
            assert_eq!(host.as_deref(), Some("server.example.com"));
            assert_eq!(*content_length, None);
        }
        k => panic!("{k:?}"),
    }
    assert_eq!((v[0].side, v[0].dir), (I, C2S));
    assert_eq!((v[1].side, v[1].dir), (R, S2C));
    match &v[1].kind {
        EventKind::Ws(WsEvent::Open {
            host,
            path,
            subprotocol,
            extensions,
            deflate,
            accept_valid,
        }) => {
            assert_eq!(host.as_deref(), Some("server.example.com"));
            assert_eq!(path, "/chat?x=1");
            assert_eq!(subprotocol.as_deref(), Some("chat"));
            assert_eq!(extensions.as_deref(), Some(ext));
            assert_eq!(
                deflate,
                &Some(DeflateParams {
                    server_no_context_takeover: true,
                    client_no_context_takeover: false,
                    server_max_window_bits: 15,
                    client_max_window_bits: 10,
                })
            );
            assert!(*accept_valid);
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn wrong_accept_still_decoded() {
    let v = run(&[
        Data(I, req(None)),
        Data(R, resp("AAAAAAAAAAAAAAAAAAAAAAAAAAA=", None)),
        Data(R, frame(true, 0, 1, None, b"hi")),
    ]);
    assert!(matches!(
        v[1].kind,
        EventKind::Ws(WsEvent::Open {
            accept_valid: false,
            ..
        })
    ));
    assert_eq!(text_of(&v[2]), b"hi");
}

#[test]
fn refused_upgrade_is_plain_http() {
    let mut early = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
    early.extend_from_slice(b"");
    let v = run(&[
        Data(I, req(None)),
        Data(I, early),
        Data(R, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnopeHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()),
    ]);
    let kinds: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "http_request",
            "ws_upgrade_failed",
            "http_request",
            "http_response"
        ],
        "{v:?}"
    );
    assert!(
        matches!(&v[1].kind, EventKind::Ws(WsEvent::UpgradeFailed { status: 403, reason }) if reason == "Forbidden")
    );
    assert!(
        matches!(&v[2].kind, EventKind::Http(HttpEvent::Request { path, .. }) if path == "/next")
    );
    assert!(matches!(
        v[3].kind,
        EventKind::Http(HttpEvent::Response { status: 200, .. })
    ));
}

#[test]
fn client_frames_before_reply_are_held() {
    // The server has begun its reply, so the client's frames wait for it.
    let r = resp(ACCEPT, None);
    let v = run(&[
        Data(I, req(None)),
        Data(R, r[..10].to_vec()),
        Data(I, frame(true, 0, 1, Some(MASK), b"early")),
        Data(R, r[10..].to_vec()),
    ]);
    assert_eq!(v.len(), 3, "{v:?}");
    assert_eq!(v[1].kind.name(), "ws_open");
    assert_eq!(text_of(&v[2]), b"early");
    assert_eq!((v[2].side, v[2].dir), (I, C2S));
}

/// XDP sees ingress only: on a server's interface the 101 reply is never
/// seen. Masked frames after the upgrade request are decoded at once; a
/// reply seen late (cross-CPU reordering) opens the session without
/// resetting the client's stream.
#[test]
fn one_sided_capture_decodes_client_frames() {
    let mut d = frame(false, 0, 1, Some(MASK), b"frag");
    d.extend(frame(true, 0, 0, Some(MASK), b"mented"));
    let second = frame(true, 0, 2, Some(MASK), b"\x00\x01");
    let v = run(&[
        Data(I, req(None)),
        Data(I, d[..5].to_vec()),
        Data(I, d[5..].to_vec()),
    ]);
    let names: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(names, ["http_request", "ws_message"], "{v:?}");
    assert_eq!(text_of(&v[1]), b"fragmented");
    assert_eq!((v[1].side, v[1].dir), (I, C2S));

    let late = run(&[
        Data(I, req(None)),
        Data(I, d.clone()),
        Data(R, resp(ACCEPT, None)),
        Data(I, second.clone()),
    ]);
    let names: Vec<_> = late.iter().map(|r| r.kind.name()).collect();
    assert_eq!(
        names,
        ["http_request", "ws_message", "ws_open", "ws_message"],
        "{late:?}"
    );
    assert_eq!(msg(&late[3]).1, b"\x00\x01".to_vec());
}

#[test]
fn ping_coalesced_with_reply_same_as_separate() {
    let ping = frame(true, 0, 9, None, b"Zeek");
    let mut coalesced = resp(ACCEPT, None);
    coalesced.extend_from_slice(&ping);
    let a = run(&[Data(I, req(None)), Data(R, coalesced)]);
    let b = run(&[
        Data(I, req(None)),
        Data(R, resp(ACCEPT, None)),
        Data(R, ping),
    ]);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert!(
        matches!(&a[2].kind, EventKind::Ws(WsEvent::Ping { payload }) if &payload[..] == b"Zeek")
    );
}

#[test]
fn connect_tunnel_stops_decoding() {
    let v = run(&[
        Data(
            I,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(),
        ),
        Data(
            R,
            b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x02ab".to_vec(),
        ),
        Data(I, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
    ]);
    let kinds: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(kinds, ["http_request", "http_response"]);
}

#[test]
fn other_101_upgrade_stops_decoding() {
    let v = run(&[
        Data(I, b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n".to_vec()),
        Data(
            R,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\x00\x00\x12\x04".to_vec(),
        ),
        Data(I, b"PRI * HTTP/2.0\r\n\r\n".to_vec()),
    ]);
    let kinds: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(kinds, ["http_request", "http_response"]);
}

// ---------------------------------------------------------------- plain HTTP

#[test]
fn plain_http_keep_alive_and_bodies() {
    let v = run(&[
        Data(I, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        Data(I, b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec()),
        Data(I, b"HEAD /d HTTP/1.1\r\n\r\n".to_vec()),
        Data(R, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".to_vec()),
        Data(R, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n".to_vec()),
        Data(R, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        Data(R, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n".to_vec()),
        Data(R, b"HTTP/1.1 200 OK\r\n\r\nrest of stream".to_vec()),
    ]);
    let lines: Vec<String> = v
        .iter()
        .map(|r| match &r.kind {
            EventKind::Http(HttpEvent::Request {
                method,
                path,
                content_length,
                ..
            }) => {
                format!("{:?} {method} {path} {content_length:?}", r.dir)
            }
            EventKind::Http(HttpEvent::Response {
                status,
                content_length,
                ..
            }) => format!("{:?} {status} {content_length:?}", r.dir),
            k => format!("{k:?}"),
        })
        .collect();
    assert_eq!(
        lines,
        [
            "ClientToServer POST /a Some(5)",
            "ClientToServer GET /b None",
            "ClientToServer PUT /c None",
            "ClientToServer HEAD /d None",
            "ServerToClient 200 Some(3)",
            "ServerToClient 100 None",
            "ServerToClient 404 None",
            "ServerToClient 204 None",
            "ServerToClient 200 Some(99)",
            "ServerToClient 200 None",
        ]
    );
}

#[test]
fn http_edge_cases() {
    // Head too large.
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70_000));
    let v = run(&[Data(I, big)]);
    assert_eq!(violations(&v).len(), 1);
    // Bad chunk in a body; a gap inside a Content-Length body is skipped.
    let v = run(&[
        Data(
            R,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        ),
        Data(
            I,
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab".to_vec(),
        ),
        Gap(I, 5),
        Data(I, b"cdeGET /2 HTTP/1.1\r\n\r\n".to_vec()),
    ]);
    let names: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(
        names,
        ["http_response", "violation", "http_request", "http_request"],
        "{v:?}"
    );
    // A gap in a head: the half is no longer decoded.
    let v = run(&[
        Data(I, b"GET / HT".to_vec()),
        Gap(I, 3),
        Data(I, b"GET /x HTTP/1.1\r\n\r\n".to_vec()),
    ]);
    assert!(v.is_empty(), "{v:?}");
    // Response to a HEAD has no body even with a length.
    let v = run(&[
        Data(I, b"HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec()),
        Data(R, b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nHTTP/1.1 404 NF\r\nContent-Length: 0\r\n\r\n".to_vec()),
    ]);
    let st: Vec<_> = v
        .iter()
        .filter_map(|r| match r.kind {
            EventKind::Http(HttpEvent::Response { status, .. }) => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(st, [200, 404]);
}

#[test]
fn reply_without_seen_request_opens() {
    // Capture started after the GET: the 101 alone still switches to frames.
    let v = run(&[
        Data(R, resp(ACCEPT, None)),
        Data(R, frame(true, 0, 1, None, b"s")),
        Data(I, frame(true, 0, 1, Some(MASK), b"c")),
    ]);
    assert!(
        matches!(
            &v[0].kind,
            EventKind::Ws(WsEvent::Open {
                accept_valid: false,
                host: None,
                ..
            })
        ),
        "{v:?}"
    );
    assert_eq!((text_of(&v[1]), v[1].dir), (b"s".to_vec(), S2C));
    assert_eq!((text_of(&v[2]), v[2].dir), (b"c".to_vec(), C2S));
}

#[test]
fn early_client_bytes_are_bounded() {
    // The server has begun its reply, so client bytes are held, up to a cap.
    let r = resp(ACCEPT, None);
    let v = run(&[
        Data(I, req(None)),
        Data(R, r[..10].to_vec()),
        Data(I, vec![0x82; 300 * 1024]),
        Data(R, r[10..].to_vec()),
    ]);
    let names: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(names, ["http_request", "violation", "ws_open"], "{v:?}");
}

#[test]
fn gap_before_upgrade_reply_hunts_client_frames() {
    let mut d = frame(true, 0, 1, Some(MASK), b"after gap");
    d.extend(frame(true, 0, 1, Some(MASK), b"more"));
    let v = run(&[
        Data(I, req(None)),
        Gap(I, 7),
        Data(I, d),
        Data(R, resp(ACCEPT, None)),
    ]);
    let names: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(
        names,
        [
            "http_request",
            "ws_open",
            "resync",
            "ws_message",
            "ws_message"
        ],
        "{v:?}"
    );
}

/// A snap length that cuts the request and the 101 reply (both heads end in
/// a gap) must not lose the frames after them: both halves hunt for frames.
#[test]
fn handshake_heads_cut_by_gaps_still_decode_frames() {
    let r = req(None);
    let a = resp(ACCEPT, None);
    let mut c = frame(true, 0, 1, Some(MASK), b"client one");
    c.extend(frame(true, 0, 1, Some(MASK), b"client two"));
    let mut sv = frame(true, 0, 1, None, b"server one");
    sv.extend(frame(true, 0, 1, None, b"server two"));
    let v = run(&[
        Data(I, r[..20].to_vec()),
        Gap(I, (r.len() - 20) as u64),
        Data(R, a[..20].to_vec()),
        Gap(R, (a.len() - 20) as u64),
        Data(I, c),
        Data(R, sv),
    ]);
    let texts: Vec<(Side, Vec<u8>)> = v
        .iter()
        .filter(|r| r.kind.name() == "ws_message")
        .map(|r| (r.side, msg(r).1))
        .collect();
    assert_eq!(
        texts,
        [
            (I, b"client one".to_vec()),
            (I, b"client two".to_vec()),
            (R, b"server one".to_vec()),
            (R, b"server two".to_vec()),
        ],
        "{v:?}"
    );
}

#[test]
fn stream_end_flushes_cut_message() {
    let f = frame(true, 0, 1, None, b"cut short here");
    let v = ws_events(None, vec![Data(R, f[..8].to_vec()), End(R)]);
    let m = msg(&v[0]);
    assert_eq!((m.1, m.2, m.7), (b"cut sh".to_vec(), 6, true));
    assert!(!m.6, "a cut inside a character is not invalid UTF-8");
    let f = frame(true, 0, 1, None, "é".as_bytes());
    let v = ws_events(None, vec![Data(R, f[..3].to_vec()), End(R)]);
    assert!(!msg(&v[0]).6);
}

#[test]
fn false_sync_gives_up_after_repeated_losses() {
    // Plausible-looking frames that keep breaking: after a few losses of
    // sync, the direction is dropped.
    let mut s = Session::new(&ProtoConfig::default(), false);
    let mut n = 0;
    let mut out = |_e: ProtoEvent<'_>| n += 1;
    for _ in 0..50 {
        let mut d = frame(true, 0, 2, None, b"ab");
        d.extend(frame(true, 0, 2, None, b"cd"));
        d.extend(frame(true, 0, 2, None, b"ef"));
        d.extend(frame(true, 0, 2, None, b"gh"));
        d.extend([0x83, 0x00, 0x70, 0x70]);
        s.on_data(R, &d, &mut out);
    }
    assert!(n < 60, "{n} events");
}

#[test]
fn sizes_stay_small() {
    // 10,000 connections: a session without traffic must stay small.
    let s = std::mem::size_of::<Stack>();
    let w = std::mem::size_of::<super::stream::WsStream>();
    assert!(s <= 256, "Stack {s} bytes");
    assert!(w <= 256, "WsStream {w} bytes");
}

#[test]
fn trusted_after_enough_frames() {
    // Without a handshake, a reserved opcode right after the resync means a
    // wrong sync; after enough good frames it is an honest violation.
    let mut steps = vec![];
    for i in 0..10u8 {
        steps.push(Data(R, frame(true, 0, 2, None, &[i])));
    }
    steps.push(Data(R, frame(true, 0, 3, None, b"")));
    steps.push(Data(R, frame(true, 0, 2, None, b"last")));
    let v = run_with(&ProtoConfig::default(), false, &steps);
    assert_eq!(violations(&v), ["reserved opcode 0x3"]);
    assert_eq!(msg(v.last().unwrap()).1, b"last");
}

#[test]
fn malformed_http_is_one_violation() {
    let v = run(&[Data(
        I,
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
    )]);
    assert_eq!(v.len(), 1);
    assert_eq!(violations(&v).len(), 1);
}

// ---------------------------------------------------------------- frames

#[test]
fn rfc_unmasked_hello_is_borrowed() {
    let v = ws_events(
        None,
        vec![Data(R, vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])],
    );
    assert_eq!(v.len(), 1);
    assert_eq!(
        msg(&v[0]),
        (
            MessageKind::Text,
            b"Hello".to_vec(),
            5,
            5,
            false,
            1,
            false,
            false
        )
    );
    assert!(v[0].borrowed);
    assert_eq!((v[0].side, v[0].dir), (R, S2C));
}

#[test]
fn rfc_masked_hello_is_owned() {
    let v = ws_events(
        None,
        vec![Data(
            I,
            vec![
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
        )],
    );
    assert_eq!(text_of(&v[0]), b"Hello");
    assert!(!v[0].borrowed);
    assert_eq!((v[0].side, v[0].dir), (I, C2S));
}

#[test]
fn frame_cut_by_slice_is_owned() {
    let f = frame(true, 0, 2, None, b"abcdef");
    let v = ws_events(
        None,
        vec![Data(R, f[..4].to_vec()), Data(R, f[4..].to_vec())],
    );
    assert_eq!(msg(&v[0]).1, b"abcdef");
    assert!(!v[0].borrowed);
}

#[test]
fn rfc_fragmented_hello() {
    let v = ws_events(
        None,
        vec![Data(
            R,
            vec![0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f],
        )],
    );
    assert_eq!(
        msg(&v[0]),
        (
            MessageKind::Text,
            b"Hello".to_vec(),
            5,
            5,
            false,
            2,
            false,
            false
        )
    );
    assert!(!v[0].borrowed);
}

#[test]
fn rfc_ping_pong() {
    let v = ws_events(
        None,
        vec![
            Data(R, vec![0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
            Data(
                I,
                vec![
                    0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
                ],
            ),
            Data(I, frame(true, 0, 9, Some(MASK), b"")),
        ],
    );
    assert!(
        matches!(&v[0].kind, EventKind::Ws(WsEvent::Ping { payload }) if &payload[..] == b"Hello")
    );
    assert!(v[0].borrowed);
    assert!(
        matches!(&v[1].kind, EventKind::Ws(WsEvent::Pong { payload }) if &payload[..] == b"Hello")
    );
    assert!(!v[1].borrowed);
    assert!(matches!(&v[2].kind, EventKind::Ws(WsEvent::Ping { payload }) if payload.is_empty()));
}

#[test]
fn rfc_extended_lengths() {
    let p256: Vec<u8> = (0..256u32).map(|i| i as u8).collect();
    let p64k: Vec<u8> = (0..65536u32).map(|i| (i * 31) as u8).collect();
    let f1 = frame(true, 0, 2, None, &p256);
    assert_eq!(&f1[..4], &[0x82, 0x7e, 0x01, 0x00]);
    let f2 = frame(true, 0, 2, None, &p64k);
    assert_eq!(&f2[..10], &[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
    let f3 = frame(true, 0, 2, Some(MASK), &p64k);
    let v = ws_events(None, vec![Data(R, f1), Data(R, f2), Data(I, f3)]);
    assert_eq!(msg(&v[0]).1, p256);
    assert_eq!(msg(&v[1]).1, p64k);
    assert_eq!(msg(&v[2]).1, p64k);
    assert_eq!(msg(&v[2]).3, 65536);
}

#[test]
fn control_between_fragments() {
    let mut d = frame(false, 0, 1, Some(MASK), b"MALWARE_DOWNLOAD");
    d.extend(frame(true, 0, 9, Some(MASK), b"p"));
    d.extend(frame(false, 0, 0, Some(MASK), b" cmd"));
    d.extend(frame(true, 0, 0, Some(MASK), b"!"));
    let v = ws_events(None, vec![Data(I, d)]);
    assert!(matches!(v[0].kind, EventKind::Ws(WsEvent::Ping { .. })));
    assert_eq!(
        msg(&v[1]),
        (
            MessageKind::Text,
            b"MALWARE_DOWNLOAD cmd!".to_vec(),
            21,
            21,
            false,
            3,
            false,
            false
        )
    );
}

#[test]
fn close_code_and_reason() {
    let mut p = 1009u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"over size limit");
    let v = ws_events(
        None,
        vec![
            Data(I, frame(true, 0, 8, Some(MASK), &p)),
            Data(R, frame(true, 0, 8, None, &1000u16.to_be_bytes())),
            Data(R, frame(true, 0, 8, None, b"")),
        ],
    );
    assert!(
        matches!(&v[0].kind, EventKind::Ws(WsEvent::Close { code: Some(1009), reason }) if &reason[..] == b"over size limit")
    );
    assert!(
        matches!(&v[1].kind, EventKind::Ws(WsEvent::Close { code: Some(1000), reason }) if reason.is_empty())
    );
    assert!(matches!(
        &v[2].kind,
        EventKind::Ws(WsEvent::Close { code: None, .. })
    ));
    assert!(violations(&v).is_empty());
}

#[test]
fn close_one_byte_and_bad_code() {
    let v = ws_events(
        None,
        vec![
            Data(R, frame(true, 0, 8, None, b"x")),
            Data(R, frame(true, 0, 8, None, &1005u16.to_be_bytes())),
        ],
    );
    let vs = violations(&v);
    assert_eq!(vs.len(), 2, "{v:?}");
    assert!(vs[0].contains("1-byte"));
    assert!(vs[1].contains("1005"));
    assert_eq!(
        v.iter()
            .filter(|r| matches!(r.kind, EventKind::Ws(WsEvent::Close { .. })))
            .count(),
        2
    );
}

#[test]
fn invalid_utf8_kept_and_flagged() {
    let v = ws_events(None, vec![Data(R, frame(true, 0, 1, None, b"ok\xff\xfe"))]);
    let m = msg(&v[0]);
    assert_eq!(m.1, b"ok\xff\xfe");
    assert!(m.6);
    let v = ws_events(None, vec![Data(R, frame(true, 0, 2, None, b"\xff"))]);
    assert!(!msg(&v[0]).6, "binary is never flagged");
}

// ---------------------------------------------------------------- violations

#[test]
fn unmasked_client_reported_once() {
    let v = ws_events(
        None,
        vec![
            Data(I, frame(true, 0, 2, None, b"GET / HTTP/1.1")),
            Data(I, frame(true, 0, 2, None, b"again")),
        ],
    );
    let vs = violations(&v);
    assert_eq!(vs, ["client frame not masked"]);
    assert_eq!(
        v.iter().filter(|r| r.kind.name() == "ws_message").count(),
        2
    );
    assert_eq!(v.last().map(|r| r.dir), Some(C2S));
}

#[test]
fn masked_server_reported() {
    let v = ws_events(None, vec![Data(R, frame(true, 0, 1, Some(MASK), b"x"))]);
    assert_eq!(violations(&v), ["server frame masked"]);
    assert_eq!(text_of(&v[1]), b"x");
}

#[test]
fn reserved_bits_and_opcodes_skipped() {
    let v = ws_events(
        None,
        vec![
            Data(R, frame(true, 0, 3, None, b"zzz")),
            Data(R, frame(true, 2, 1, None, b"rsv2")),
            Data(R, frame(true, 4, 1, None, b"rsv1")),
            Data(R, frame(true, 0, 1, None, b"after")),
        ],
    );
    let vs = violations(&v);
    assert_eq!(vs.len(), 3, "{v:?}");
    assert!(vs[0].contains("reserved opcode 0x3"));
    let texts: Vec<_> = v
        .iter()
        .filter(|r| r.kind.name() == "ws_message")
        .map(text_of)
        .collect();
    // Reserved-bit frames are still delivered as they are; reserved opcodes are not.
    assert_eq!(
        texts,
        [b"rsv2".to_vec(), b"rsv1".to_vec(), b"after".to_vec()]
    );
}

#[test]
fn oversized_and_fragmented_control() {
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend(std::iter::repeat_n(b'r', 256));
    let mut f = vec![0x88, 0x7f];
    f.extend_from_slice(&(p.len() as u64).to_be_bytes());
    f.extend_from_slice(&p);
    let v = ws_events(
        None,
        vec![Data(R, f), Data(R, frame(false, 0, 9, None, b"x"))],
    );
    let vs = violations(&v);
    assert_eq!(vs.len(), 2, "{v:?}");
    assert!(vs[0].contains("258 bytes"));
    assert!(vs[1].contains("fragmented control"));
    assert!(
        matches!(&v[1].kind, EventKind::Ws(WsEvent::Close { code: Some(1000), reason }) if reason.len() == 256)
    );
}

#[test]
fn continuation_without_start_and_interrupted_message() {
    let v = ws_events(
        None,
        vec![
            Data(R, frame(true, 0, 0, None, b"orphan")),
            Data(R, frame(false, 0, 1, None, b"first")),
            Data(R, frame(true, 0, 1, None, b"second")),
        ],
    );
    let vs = violations(&v);
    assert_eq!(vs.len(), 2, "{v:?}");
    assert!(vs[0].contains("continuation"));
    assert!(vs[1].contains("previous message dropped"));
    assert_eq!(text_of(v.last().unwrap()), b"second");
}

// ---------------------------------------------------------------- deflate

const PMD: &str = "permessage-deflate";

#[test]
fn rfc7692_compressed_hello() {
    let v = ws_events(
        Some(PMD),
        vec![Data(
            R,
            vec![0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        )],
    );
    assert_eq!(
        msg(&v[0]),
        (
            MessageKind::Text,
            b"Hello".to_vec(),
            5,
            7,
            true,
            1,
            false,
            false
        )
    );
}

#[test]
fn context_takeover_across_messages() {
    let mut c = raw_compressor();
    let texts: Vec<String> = (0..10)
        .map(|i| format!("TOGGLE={i:016x} shared context shared context"))
        .collect();
    let frames: Vec<Step> = texts
        .iter()
        .map(|t| {
            Data(
                R,
                frame(true, 4, 1, None, &compress_msg(&mut c, t.as_bytes())),
            )
        })
        .collect();
    let v = ws_events(Some(PMD), frames);
    let got: Vec<_> = v.iter().map(text_of).collect();
    let want: Vec<_> = texts.iter().map(|t| t.as_bytes().to_vec()).collect();
    assert_eq!(got, want);
    assert!(v.iter().all(|r| msg(r).4));
}

#[test]
fn no_context_takeover_client_masked_fragmented() {
    let ext = "permessage-deflate; client_no_context_takeover";
    let mut steps = Vec::new();
    for t in ["aaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaa"] {
        let mut c = raw_compressor(); // fresh per message, as the client resets
        let z = compress_msg(&mut c, t.as_bytes());
        let (a, b) = z.split_at(z.len() / 2);
        let mut d = frame(false, 4, 1, Some(MASK), a);
        d.extend(frame(true, 0, 9, Some(MASK), b"ping"));
        d.extend(frame(true, 0, 0, Some([1, 2, 3, 4]), b));
        steps.push(Data(I, d));
    }
    let v = ws_events(Some(ext), steps);
    let msgs: Vec<_> = v
        .iter()
        .filter(|r| r.kind.name() == "ws_message")
        .map(msg)
        .collect();
    assert_eq!(msgs.len(), 2, "{v:?}");
    for m in msgs {
        assert_eq!(m.1, b"aaaaaaaaaaaaaaaaaaaa");
        assert_eq!(m.5, 2);
        assert!(m.4);
    }
    assert!(violations(&v).is_empty());
}

#[test]
fn rsv1_on_continuation_is_violation() {
    let mut c = raw_compressor();
    let z = compress_msg(&mut c, b"hello");
    let mut d = frame(false, 4, 1, None, &z[..2]);
    d.extend(frame(true, 4, 0, None, &z[2..]));
    let v = ws_events(Some(PMD), vec![Data(R, d)]);
    assert_eq!(violations(&v).len(), 1, "{v:?}");
    assert_eq!(text_of(v.last().unwrap()), b"hello");
}

#[test]
fn undecompressable_after_gap_then_recovers() {
    let mut c = raw_compressor();
    let m1 = frame(
        true,
        4,
        1,
        None,
        &compress_msg(&mut c, b"repeat me repeat me"),
    );
    let m2 = frame(
        true,
        4,
        1,
        None,
        &compress_msg(&mut c, b"repeat me repeat me"),
    );
    let m3 = frame(true, 4, 1, None, &compress_msg(&mut c, b"brand new 12345"));
    let mut m3b = m3.clone();
    m3b[0] = 0xc2; // binary: no history needed either way
    let mut gapped = m1.clone();
    let cut = gapped.len() - 3;
    gapped.truncate(cut);
    let v = ws_events(
        Some(PMD),
        vec![
            Data(R, gapped),
            Gap(R, 3),
            Data(R, m2.clone()),
            Data(R, m3.clone()),
        ],
    );
    // The message hit by the gap is dropped; m2 refers back into m1: cannot
    // be inflated; m3 has no back-references into m1/m2... or it might: only
    // assert it is either correct or reported, never wrong.
    let names: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(names[0], "ws_undecompressable", "{v:?}");
    match &v[0].kind {
        EventKind::Ws(WsEvent::Undecompressable { kind, raw, .. }) => {
            assert_eq!(*kind, MessageKind::Text);
            assert_eq!(&raw[..], &m2[2..]);
        }
        _ => unreachable!(),
    }
    if let EventKind::Ws(WsEvent::Message { payload, .. }) = &v[1].kind {
        assert_eq!(&payload[..], b"brand new 12345");
    }
}

#[test]
fn corrupt_compressed_message() {
    let v = ws_events(
        Some(PMD),
        vec![Data(R, frame(true, 4, 2, None, &[0xff, 0xff, 0xff, 0xff]))],
    );
    assert!(
        matches!(&v[0].kind, EventKind::Ws(WsEvent::Undecompressable { kind: MessageKind::Binary, raw, .. }) if raw.len() == 4)
    );
}

// ---------------------------------------------------------------- caps

#[test]
fn message_cap_truncates() {
    let cfg = ProtoConfig {
        max_message: 10,
        max_inflated: 1000,
        keylog: None,
    };
    let body: Vec<u8> = (0..100u8).collect();
    let mut steps = after_handshake(None, vec![]);
    steps.push(Data(R, frame(true, 0, 2, None, &body)));
    steps.push(Data(I, frame(false, 0, 2, Some(MASK), &body[..60])));
    steps.push(Data(I, frame(true, 0, 0, Some(MASK), &body[60..])));
    let v = run_with(&cfg, true, &steps);
    let a = msg(&v[2]);
    assert_eq!(
        (a.1.as_slice(), a.2, a.3, a.7),
        (&body[..10], 100, 100, true)
    );
    assert!(v[2].borrowed);
    let b = msg(&v[3]);
    assert_eq!(
        (b.1.as_slice(), b.2, b.3, b.5, b.7),
        (&body[..10], 100, 100, 2, true)
    );
}

#[test]
fn inflated_cap_truncates_and_counts() {
    let cfg = ProtoConfig {
        max_message: 1 << 20,
        max_inflated: 1000,
        keylog: None,
    };
    let mut c = raw_compressor();
    let big = vec![b'z'; 50_000];
    let mut steps = after_handshake(Some(PMD), vec![]);
    steps.push(Data(
        R,
        frame(true, 4, 1, None, &compress_msg(&mut c, &big)),
    ));
    steps.push(Data(
        R,
        frame(true, 4, 1, None, &compress_msg(&mut c, b"small")),
    ));
    let v = run_with(&cfg, true, &steps);
    let a = msg(&v[2]);
    assert_eq!((a.1.len(), a.2, a.7), (1000, 50_000, true));
    assert_eq!(text_of(&v[3]), b"small");
}

#[test]
fn hostile_length_never_allocates() {
    let mut f = vec![0x82, 0xff];
    f.extend_from_slice(&0x7fff_ffff_ffff_ffffu64.to_be_bytes());
    f.extend_from_slice(&MASK);
    f.extend_from_slice(&[0u8; 100]);
    let cfg = ProtoConfig {
        max_message: 64,
        max_inflated: 64,
        keylog: None,
    };
    let mut steps = after_handshake(None, vec![Data(I, f)]);
    steps.push(End(I));
    let v = run_with(&cfg, true, &steps);
    let m = msg(v.last().unwrap());
    assert_eq!((m.1.len(), m.2, m.7), (64, 100, true));
    // MSB set: a violation, then hunting.
    let mut f = vec![0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
    f.extend(frame(true, 0, 1, None, b"ok"));
    let v = ws_events(None, vec![Data(R, f)]);
    assert!(violations(&v)[0].contains("most significant"));
}

// ---------------------------------------------------------------- gaps, resync

#[test]
fn gap_inside_payload_keeps_sync() {
    let f = frame(true, 0, 2, None, &[7u8; 100]);
    let v = ws_events(
        None,
        vec![
            Data(R, f[..50].to_vec()),
            Gap(R, 20),
            Data(R, f[70..].to_vec()),
            Data(R, frame(true, 0, 1, None, b"next")),
        ],
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(text_of(&v[0]), b"next");
}

#[test]
fn gap_across_frames_resyncs() {
    let mut d = frame(true, 0, 1, None, b"one");
    d.extend(frame(true, 0, 1, None, b"two"));
    let mut after = frame(true, 0, 1, None, b"three").split_off(3); // tail of a frame
    after.extend(frame(true, 0, 1, None, b"four"));
    after.extend(frame(true, 0, 1, None, b"five"));
    after.extend(frame(true, 0, 1, None, b"six"));
    after.extend(frame(true, 0, 1, None, b"seven"));
    after.extend(frame(true, 0, 1, None, b"eight"));
    after.extend(frame(true, 0, 1, None, b"nine"));
    let v = ws_events(None, vec![Data(R, d), Gap(R, 100), Data(R, after)]);
    let names: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(
        names,
        [
            "ws_message",
            "ws_message",
            "resync",
            "ws_message",
            "ws_message",
            "ws_message",
            "ws_message",
            "ws_message",
            "ws_message"
        ],
        "{v:?}"
    );
    assert!(matches!(
        v[2].kind,
        EventKind::Ws(WsEvent::Resync { skipped: 4 })
    ));
    assert_eq!(text_of(&v[3]), b"four");
}

#[test]
fn midstream_pickup_without_handshake() {
    // Like nDPI/websocket.pcap: the capture starts between messages.
    let steps = vec![
        Data(R, frame(true, 0, 1, None, b"{\"msg\":\"welcome\"}")),
        Data(I, frame(true, 0, 1, Some(MASK), b"hello there")),
        Data(R, frame(true, 0, 1, None, b"reply")),
        End(I),
        End(R),
    ];
    let v = run_with(&ProtoConfig::default(), false, &steps);
    let names: Vec<_> = v.iter().map(|r| (r.kind.name(), r.side, r.dir)).collect();
    assert_eq!(
        names,
        [
            ("resync", R, Direction::Unknown),
            ("ws_message", R, Direction::Unknown),
            ("resync", I, C2S),
            ("ws_message", I, C2S),
            ("ws_message", R, S2C),
        ],
        "{v:?}"
    );
    assert!(matches!(
        v[0].kind,
        EventKind::Ws(WsEvent::Resync { skipped: 0 })
    ));
}

#[test]
fn midstream_with_syn_uses_initiator_and_roles() {
    // Server speaks first: its direction is known from the SYN, not masking.
    let v = run_with(
        &ProtoConfig::default(),
        true,
        &[
            Data(R, frame(true, 0, 2, None, b"back")),
            Data(I, frame(true, 0, 2, Some(MASK), b"tunnel")),
        ],
    );
    let dirs: Vec<_> = v
        .iter()
        .filter(|r| r.kind.name() == "ws_message")
        .map(|r| r.dir)
        .collect();
    assert_eq!(dirs, [S2C, C2S]);
    // With the SYN seen and no handshake, bytes that break the roles' masking
    // (a masked server, an unmasked client) are not taken for frames.
    let v = run_with(
        &ProtoConfig::default(),
        true,
        &[
            Data(I, frame(true, 0, 2, None, b"x")),
            Data(R, frame(true, 0, 2, Some(MASK), b"y")),
            End(I),
            End(R),
        ],
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(violations(&v).len(), 1);
}

#[test]
fn midstream_compressed_guessed() {
    let mut c = raw_compressor();
    let z = compress_msg(&mut c, b"guess me");
    let v = run_with(
        &ProtoConfig::default(),
        false,
        &[Data(R, frame(true, 4, 1, None, &z))],
    );
    assert_eq!(text_of(&v[1]), b"guess me");
}

#[test]
fn midstream_starting_inside_a_message() {
    let mut d = frame(true, 0, 0, None, b"end of a message");
    d.extend(frame(true, 0, 1, None, b"whole"));
    let v = run_with(&ProtoConfig::default(), false, &[Data(R, d)]);
    let names: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(names, ["resync", "ws_message"], "{v:?}");
}

/// Xorshift bytes: what random or encrypted payload looks like to a hunt.
/// Shared with `resync`'s tests.
pub(super) fn pseudo_random(n: usize, mut x: u32) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

#[test]
fn tls_or_random_is_quiet() {
    let mut tls = vec![0x16, 0x03, 0x01, 0x02, 0x00];
    tls.extend(pseudo_random(512, 7));
    let mut app = vec![0x17, 0x03, 0x03, 0x40, 0x00];
    app.extend(pseudo_random(16384, 9));
    let v = run_with(
        &ProtoConfig::default(),
        true,
        &[
            Data(I, tls),
            Data(R, app.clone()),
            Data(R, app),
            End(I),
            End(R),
        ],
    );
    // TLS is recognised: one event says it is not decoded.
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind.name(), "undecoded");
    // Random bytes that are not TLS: hunted, then one violation.
    let mut random = vec![0x42];
    random.extend(pseudo_random(16384, 9));
    let v = run_with(
        &ProtoConfig::default(),
        true,
        &[Data(I, random.clone()), Data(R, random), End(I), End(R)],
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        matches!(&v[0].kind, EventKind::Violation(what) if what.to_string().starts_with("no WebSocket framing"))
    );
}

#[test]
fn big_random_stream_gives_up() {
    let mut s = Session::new(&ProtoConfig::default(), false);
    let mut n = 0;
    let mut out = |e: ProtoEvent<'_>| {
        n += 1;
        assert!(
            !matches!(e.kind, EventKind::Ws(WsEvent::Message { .. })),
            "{:?}",
            record(e)
        );
    };
    for i in 0..40 {
        let mut chunk = vec![0x17, 0x03, 0x03];
        chunk.extend(pseudo_random(65536, 100 + i));
        s.on_data(R, &chunk, &mut out);
    }
    s.on_end(R, &mut out);
    assert!(n <= 3, "{n} events");
}

#[test]
fn gap_then_frames_found_at_end_of_stream() {
    let mut after = frame(true, 0, 1, None, b"three").split_off(3);
    after.extend(frame(true, 0, 1, None, b"four"));
    after.extend(frame(true, 0, 1, None, b"five"));
    let v = ws_events(
        None,
        vec![
            Data(R, frame(true, 0, 1, None, b"one")),
            Gap(R, 10),
            Data(R, after.clone()),
        ],
    );
    assert_eq!(v.len(), 1, "waits for more evidence: {v:?}");
    let v = ws_events(
        None,
        vec![
            Data(R, frame(true, 0, 1, None, b"one")),
            Gap(R, 10),
            Data(R, after),
            End(R),
        ],
    );
    let names: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(
        names,
        ["ws_message", "resync", "ws_message", "ws_message"],
        "{v:?}"
    );
}

// ---------------------------------------------------------------- re-segmentation

/// A conversation touching most paths: handshake with deflate, masked and
/// unmasked frames, fragments, control frames, 16/64-bit lengths, close.
fn conversation() -> Vec<(Side, Vec<u8>)> {
    let ext = "permessage-deflate; client_max_window_bits=12";
    let mut cc = Compress::new_with_window_bits(flate2::Compression::default(), false, 12);
    let mut sc = raw_compressor();
    let mut v = vec![(I, req(Some(ext))), (R, resp(ACCEPT, Some(ext)))];
    v.push((R, frame(true, 0, 9, None, b"Zeek")));
    v.push((I, frame(true, 0, 10, Some(MASK), b"Zeek")));
    v.push((
        I,
        frame(
            true,
            4,
            1,
            Some(MASK),
            &compress_msg(&mut cc, b"hello hello hello"),
        ),
    ));
    v.push((
        R,
        frame(
            true,
            4,
            1,
            None,
            &compress_msg(&mut sc, b"TOGGLE=5659131662f54334"),
        ),
    ));
    v.push((
        R,
        frame(
            true,
            4,
            1,
            None,
            &compress_msg(&mut sc, b"TOGGLE=5659131662f54334"),
        ),
    ));
    v.push((R, frame(true, 0, 1, None, b"plain")));
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    v.push((R, frame(true, 0, 2, None, &big)));
    v.push((I, frame(true, 0, 2, Some(MASK), &big[..300])));
    let mut frag = frame(false, 0, 2, None, b"Hello");
    frag.extend(frame(true, 0, 9, None, b""));
    frag.extend(frame(true, 0, 0, None, b" there!"));
    v.push((R, frag));
    v.push((R, frame(true, 0, 1, None, b"bad \xff utf8")));
    v.push((R, frame(true, 0, 3, None, b"reserved")));
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    v.push((I, frame(true, 0, 8, Some(MASK), &close)));
    v.push((R, frame(true, 0, 8, None, &close)));
    v
}

fn render(v: &[Rec]) -> Vec<String> {
    v.iter()
        .map(|r| format!("{:?} {:?} {:?}", r.side, r.dir, r.kind))
        .collect()
}

fn feed_cut(conv: &[(Side, Vec<u8>)], cuts: &[usize]) -> Vec<Rec> {
    let mut s = Session::new(&ProtoConfig::default(), false);
    let mut v = Vec::new();
    let mut k = 0;
    for (side, data) in conv {
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = cuts
                .get(k)
                .copied()
                .unwrap_or(usize::MAX)
                .clamp(1, rest.len());
            k += 1;
            let (a, b) = rest.split_at(n);
            s.on_data(*side, a, &mut |e| v.push(record(e)));
            rest = b;
        }
    }
    s.on_end(I, &mut |e| v.push(record(e)));
    s.on_end(R, &mut |e| v.push(record(e)));
    v
}

#[test]
fn conversation_whole_and_byte_by_byte() {
    let conv = conversation();
    let whole = feed_cut(&conv, &[]);
    let names: Vec<_> = whole.iter().map(|r| r.kind.name()).collect();
    assert_eq!(
        names,
        [
            "http_request",
            "ws_open",
            "ws_ping",
            "ws_pong",
            "ws_message",
            "ws_message",
            "ws_message",
            "ws_message",
            "ws_message",
            "ws_message",
            "ws_ping",
            "ws_message",
            "ws_message",
            "violation",
            "ws_close",
            "ws_close"
        ],
        "{whole:?}"
    );
    assert_eq!(text_of(&whole[5]), b"TOGGLE=5659131662f54334");
    assert_eq!(text_of(&whole[6]), b"TOGGLE=5659131662f54334");
    assert_eq!(text_of(&whole[11]), b"Hello there!");
    assert!(msg(&whole[12]).6);
    let bytes = feed_cut(&conv, &[1; 200_000]);
    assert_eq!(render(&whole), render(&bytes));
}

/// Feeds `conv` cut at `cuts`, with a gap of `gap.1` bytes in place of
/// the bytes of step `gap.0` (a whole step lost, so the bytes after it start
/// on a frame boundary).
fn feed_cut_gap(
    conv: &[(Side, Vec<u8>)],
    cuts: &[usize],
    known: bool,
    gap: Option<usize>,
) -> Vec<Rec> {
    let mut s = Session::new(&ProtoConfig::default(), known);
    let mut v = Vec::new();
    let mut k = 0;
    for (n, (side, data)) in conv.iter().enumerate() {
        if gap == Some(n) {
            s.on_gap(*side, data.len() as u64, &mut |e| v.push(record(e)));
            continue;
        }
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = cuts
                .get(k)
                .copied()
                .unwrap_or(usize::MAX)
                .clamp(1, rest.len());
            k += 1;
            let (a, b) = rest.split_at(n);
            s.on_data(*side, a, &mut |e| v.push(record(e)));
            rest = b;
        }
    }
    s.on_end(I, &mut |e| v.push(record(e)));
    s.on_end(R, &mut |e| v.push(record(e)));
    v
}

/// A conversation picked up mid-way: no handshake, the server speaks first.
fn midstream_conversation() -> Vec<(Side, Vec<u8>)> {
    let mut v = Vec::new();
    let mut cont = frame(true, 0, 0, None, b"tail of a message we missed");
    cont.extend(frame(true, 0, 1, None, b"{\"type\":\"welcome\"}"));
    v.push((R, cont));
    for i in 0..6u8 {
        let t = format!("client message {i}");
        v.push((I, frame(true, 0, 1, Some([i, 1, 2, 3]), t.as_bytes())));
        let big: Vec<u8> = (0..(300 * usize::from(i) + 10))
            .map(|j| (j % 7) as u8 + b'a')
            .collect();
        v.push((R, frame(true, 0, 1, None, &big)));
        v.push((R, frame(true, 0, 9, None, b"")));
    }
    v.push((I, frame(true, 0, 8, Some(MASK), &1001u16.to_be_bytes())));
    v
}

#[test]
fn midstream_conversation_decodes() {
    let v = feed_cut_gap(&midstream_conversation(), &[], false, None);
    let names: Vec<_> = v.iter().map(|r| r.kind.name()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "ws_message").count(),
        13,
        "{names:?}"
    );
    assert_eq!(names.iter().filter(|n| **n == "resync").count(), 2);
    assert!(violations(&v).is_empty(), "{v:?}");
    // After the client's masked frames, the server's direction is known too.
    assert_eq!(v.last().map(|r| r.dir), Some(C2S));
    assert!(v
        .iter()
        .filter(|r| r.side == R)
        .skip(3)
        .all(|r| r.dir == S2C));
}

#[test]
fn gap_of_whole_frames_resyncs_at_once() {
    let conv = conversation();
    // Step 9 is a server frame of 70,000 bytes.
    let v = feed_cut_gap(&conv, &[], false, Some(8));
    let i = v
        .iter()
        .position(|r| r.kind.name() == "resync")
        .expect("resync");
    assert!(matches!(
        v[i].kind,
        EventKind::Ws(WsEvent::Resync { skipped: 0 })
    ));
    assert!(
        matches!(&v[i + 1].kind, EventKind::Ws(WsEvent::Ping { .. })),
        "{v:?}"
    );
    assert!(
        matches!(
            &v[i + 2].kind,
            EventKind::Ws(WsEvent::Message { fragments: 2, .. })
        ),
        "{v:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cuts_do_not_change_midstream_events(cuts in proptest::collection::vec(
        prop_oneof![Just(1usize), 1usize..16, 1usize..3000], 0..400), known in any::<bool>()) {
        let conv = midstream_conversation();
        let whole = render(&feed_cut_gap(&conv, &[], known, None));
        let cut = render(&feed_cut_gap(&conv, &cuts, known, None));
        prop_assert_eq!(whole, cut);
    }

    #[test]
    fn cuts_do_not_change_events_after_gap(cuts in proptest::collection::vec(
        prop_oneof![Just(1usize), 1usize..16, 1usize..3000], 0..400), gap in 2usize..15) {
        let conv = conversation();
        let whole = render(&feed_cut_gap(&conv, &[], false, Some(gap)));
        let cut = render(&feed_cut_gap(&conv, &cuts, false, Some(gap)));
        prop_assert_eq!(whole, cut);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn cuts_do_not_change_events(cuts in proptest::collection::vec(
        prop_oneof![Just(1usize), 1usize..16, 1usize..3000], 0..400)) {
        let conv = conversation();
        let whole = render(&feed_cut(&conv, &[]));
        let cut = render(&feed_cut(&conv, &cuts));
        prop_assert_eq!(whole, cut);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        a in proptest::collection::vec(any::<u8>(), 0..600),
        b in proptest::collection::vec(any::<u8>(), 0..600),
        known in any::<bool>(),
        gap in 0u64..5,
    ) {
        let cfg = ProtoConfig { max_message: 128, max_inflated: 128, keylog: None };
        let mut s = Session::new(&cfg, known);
        let mut out = |_e: ProtoEvent<'_>| {};
        let (a1, a2) = a.split_at(a.len() / 2);
        s.on_data(I, a1, &mut out);
        s.on_data(R, &b, &mut out);
        s.on_gap(I, gap, &mut out);
        s.on_data(I, a2, &mut out);
        s.on_end(I, &mut out);
        s.on_end(R, &mut out);
    }

    #[test]
    fn frames_after_handshake_never_panic(body in proptest::collection::vec(any::<u8>(), 0..800), cut in 0usize..800) {
        let cfg = ProtoConfig { max_message: 64, max_inflated: 64, keylog: None };
        let mut s = Session::new(&cfg, true);
        let mut out = |_e: ProtoEvent<'_>| {};
        s.on_data(I, &req(Some(PMD)), &mut out);
        s.on_data(R, &resp(ACCEPT, Some(PMD)), &mut out);
        let c = cut.min(body.len());
        s.on_data(R, &body[..c], &mut out);
        s.on_data(R, &body[c..], &mut out);
        s.on_data(I, &body, &mut out);
        s.on_end(R, &mut out);
        s.on_end(I, &mut out);
    }
}

/// Any frame sequence (reserved bits and opcodes, bad control frames,
/// orphan continuations, compressed garbage) after a handshake.
fn arb_frames() -> impl Strategy<Value = Vec<(bool, Vec<u8>)>> {
    let one = (
        any::<bool>(),
        any::<bool>(),
        0u8..8,
        prop_oneof![
            Just(0u8),
            Just(1),
            Just(2),
            Just(8),
            Just(9),
            Just(10),
            0u8..16
        ],
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(client, fin, rsv, op, masked, payload)| {
            let mask = masked.then_some([9, 8, 7, 6]);
            (client, frame(fin, rsv, op, mask, &payload))
        });
    proptest::collection::vec(one, 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_frames_cut_anywhere_same_events(
        frames in arb_frames(),
        cuts in proptest::collection::vec(prop_oneof![Just(1usize), 1usize..40, 1usize..900], 0..300),
        cap in prop_oneof![Just(16usize << 20), 1usize..200],
    ) {
        let mut conv = vec![(I, req(Some(PMD))), (R, resp(ACCEPT, Some(PMD)))];
        conv.extend(frames.into_iter().map(|(client, f)| (if client { I } else { R }, f)));
        let cfg = ProtoConfig { max_message: cap, max_inflated: cap, keylog: None };
        let feed = |cuts: &[usize]| {
            let mut s = Session::new(&cfg, true);
            let mut v = Vec::new();
            let mut k = 0;
            for (side, data) in &conv {
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let n = cuts.get(k).copied().unwrap_or(usize::MAX).clamp(1, rest.len());
                    k += 1;
                    let (a, b) = rest.split_at(n);
                    s.on_data(*side, a, &mut |e| v.push(record(e)));
                    rest = b;
                }
            }
            s.on_end(I, &mut |e| v.push(record(e)));
            s.on_end(R, &mut |e| v.push(record(e)));
            render(&v)
        };
        prop_assert_eq!(feed(&[]), feed(&cuts));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_frames_with_gaps_never_panic(
        frames in arb_frames(),
        cuts in proptest::collection::vec(1usize..60, 0..200),
        gaps in proptest::collection::vec((0usize..200, 1u64..500), 0..6),
        known in any::<bool>(),
        handshake in any::<bool>(),
    ) {
        let mut conv = Vec::new();
        if handshake {
            conv.push((I, req(Some(PMD))));
            conv.push((R, resp(ACCEPT, Some(PMD))));
        }
        conv.extend(frames.into_iter().map(|(client, f)| (if client { I } else { R }, f)));
        let cfg = ProtoConfig { max_message: 100, max_inflated: 100, keylog: None };
        let mut s = Session::new(&cfg, known);
        let mut out = |_e: ProtoEvent<'_>| {};
        let mut k = 0;
        for (side, data) in &conv {
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = cuts.get(k).copied().unwrap_or(usize::MAX).clamp(1, rest.len());
                if let Some((_, g)) = gaps.iter().find(|(at, _)| *at == k) {
                    s.on_gap(*side, *g, &mut out);
                }
                k += 1;
                let (a, b) = rest.split_at(n);
                s.on_data(*side, a, &mut out);
                rest = b;
            }
        }
        s.on_end(I, &mut out);
        s.on_end(R, &mut out);
    }
}

#[test]
fn tls_is_reported_once_and_skipped() {
    // A TLS 1.2 ClientHello record start, and the server's answer: never
    // hunted for frames (ciphertext can look like frames), said once.
    let hello = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00];
    let mut server = vec![0x16, 0x03, 0x03, 0x00, 0x02, 0x02, 0x00];
    server.extend(frame(true, 0, 1, None, b"looks like a frame"));
    let v = run(&[Data(I, hello.to_vec()), Data(R, server), End(I), End(R)]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind.name(), "undecoded");
    assert_eq!(v[0].side, I);
}

#[test]
fn message_cap_never_cuts_control_frames() {
    // --max-message 4: a close (1000, "bye") and a 20-byte ping stay whole.
    let cfg = ProtoConfig {
        max_message: 4,
        max_inflated: 4,
        keylog: None,
    };
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    let v = run_with(
        &cfg,
        true,
        &after_handshake(
            None,
            vec![
                Data(R, frame(true, 0, 9, None, &[7; 20])),
                Data(I, frame(true, 0, 8, Some(MASK), &close)),
                Data(R, frame(true, 0, 1, None, b"longer than four")),
            ],
        ),
    );
    assert!(violations(&v).is_empty(), "{v:?}");
    assert!(matches!(&v[2].kind, EventKind::Ws(WsEvent::Ping { payload }) if payload.len() == 20));
    assert!(
        matches!(&v[3].kind, EventKind::Ws(WsEvent::Close { code: Some(1000), reason }) if &reason[..] == b"bye")
    );
    assert_eq!(msg(&v[4]).1, b"long");
    assert!(msg(&v[4]).7, "the data message is truncated");
}

/// `len_exact` of a message event.
fn len_exact(r: &Rec) -> bool {
    matches!(&r.kind, EventKind::Ws(WsEvent::Message { len_exact, .. }) if *len_exact)
}

#[test]
fn len_is_exact_unless_part_of_the_message_was_never_inflated() {
    // Cut at --max-inflated but counted to the end: exact (50,000).
    let cfg = ProtoConfig {
        max_message: 1 << 20,
        max_inflated: 1000,
        keylog: None,
    };
    let mut c = raw_compressor();
    let big = vec![b'z'; 50_000];
    let mut steps = after_handshake(Some(PMD), vec![]);
    steps.push(Data(
        R,
        frame(true, 4, 1, None, &compress_msg(&mut c, &big)),
    ));
    let v = run_with(&cfg, true, &steps);
    assert_eq!(msg(&v[2]).2, 50_000);
    assert!(len_exact(&v[2]));
    // Cut on the wire at --max-message before inflation: a lower bound.
    let cfg = ProtoConfig {
        max_message: 8,
        max_inflated: 1 << 20,
        keylog: None,
    };
    let mut c = raw_compressor();
    let noise = pseudo_random(4000, 3);
    let mut steps = after_handshake(Some(PMD), vec![]);
    steps.push(Data(
        R,
        frame(true, 4, 2, None, &compress_msg(&mut c, &noise)),
    ));
    let v = run_with(&cfg, true, &steps);
    let m = msg(&v[2]);
    assert!(m.7, "truncated");
    assert!(!len_exact(&v[2]), "len {} is a lower bound", m.2);
    assert!(m.2 < 4000);
}

#[test]
fn bytes_never_framed_after_a_hole_are_counted_as_skipped() {
    // After a handshake and a gap, 1 MB that never frames again: hunted
    // for ever (a handshake stream is never given up), and every byte of it
    // is counted, as issue 7 demands (209 MB once vanished here).
    let mut s = Session::new(&ProtoConfig::default(), true);
    let mut resync_skipped = 0;
    let mut out = |e: ProtoEvent<'_>| {
        if let EventKind::Ws(WsEvent::Resync { skipped }) = e.kind {
            resync_skipped += skipped;
        }
    };
    for st in after_handshake(None, vec![]) {
        if let Data(side, d) = st {
            s.on_data(side, &d, &mut out);
        }
    }
    s.on_gap(R, 1460, &mut out);
    // 0xff bytes: FIN + reserved bits + reserved opcode, never a header.
    let junk = vec![0xffu8; 1 << 20];
    for chunk in junk.chunks(1448) {
        s.on_data(R, chunk, &mut out);
    }
    s.on_end(R, &mut out);
    assert_eq!(s.skipped + resync_skipped, 1 << 20);
}

#[test]
fn ignored_and_undecoded_sides_count_their_bytes() {
    let mut s = Session::new(&ProtoConfig::default(), true);
    let mut out = |_e: ProtoEvent<'_>| {};
    let mut tls = vec![0x16, 0x03, 0x01, 0x00, 0x05];
    tls.extend([0u8; 995]);
    s.on_data(I, &tls, &mut out);
    s.on_data(I, &[7u8; 500], &mut out);
    // The first record (10 bytes, an empty HelloRequest) is well formed and
    // read by the TLS layer; the zeros after it are no record: skipped,
    // with all that follows.
    assert_eq!(
        s.skipped, 1490,
        "TLS side: every byte after the record skipped"
    );
}
