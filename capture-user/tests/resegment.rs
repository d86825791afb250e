//! Property: cutting a WebSocket conversation's TCP byte streams into random
//! segments, reordering them and duplicating some, must not change what the
//! decoder reports (messages, pings, pongs, closes, per direction, in order).
//!
//! The conversation is built by hand: an HTTP/1.1 upgrade with
//! permessage-deflate, masked client frames, a fragmented client message with
//! a ping between its fragments, a 64-bit-length server message, compressed
//! server messages sharing one deflate context, ping/pong and close both ways.

use std::io::Write;
use std::net::SocketAddr;

use base64::Engine;
use proptest::prelude::*;
use sha1::{Digest, Sha1};
use wstap::event::{Direction, Event, EventKind, HttpEvent, MessageKind, TcpEvent, WsEvent};
use wstap::registry::{DecodeConfig, Decoder};
use wstap::source::{tcp_flags, Checksum, Segment};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const C_ISN: u32 = 0xffff_ff00; // the client's sequence numbers wrap around
const S_ISN: u32 = 0x1234_5678;

fn client() -> SocketAddr {
    "10.1.0.1:50000".parse().unwrap()
}
fn server() -> SocketAddr {
    "10.1.0.2:8080".parse().unwrap()
}

/// One frame. Client frames are masked with a fixed key.
fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n < 65536 => {
            f.push(m | 126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            f.extend(k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// Raw deflate with a sync flush, minus the 00 00 ff ff tail (RFC 7692 §7.2.1).
fn deflate(c: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    while out.capacity() - out.len() < 16 {
        out.reserve(64);
        c.compress_vec(&[], &mut out, flate2::FlushCompress::Sync)
            .unwrap();
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// The two byte streams of the conversation: (client → server, server → client).
fn conversation() -> (Vec<u8>, Vec<u8>) {
    let mk = Some([0x37, 0xfa, 0x21, 0x3d]);
    let mut c = Vec::new();
    write!(
        c,
        "GET /chat HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )
    .unwrap();
    let accept = {
        let mut h = Sha1::new();
        h.update(KEY.as_bytes());
        h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    };
    let mut s = Vec::new();
    write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )
    .unwrap();

    c.extend(frame(true, false, 1, b"hello", mk));
    c.extend(frame(false, false, 2, &[0, 1, 2, 3], mk));
    c.extend(frame(true, false, 9, b"between fragments", mk));
    c.extend(frame(false, false, 0, &[4; 300], mk));
    c.extend(frame(true, false, 0, &[5, 6], mk));
    c.extend(frame(true, false, 1, b"", mk));
    c.extend(frame(true, false, 10, b"pong from client", mk));
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    c.extend(frame(true, false, 2, &big, mk));
    c.extend(frame(true, false, 8, &[0x03, 0xe8, b'b', b'y', b'e'], mk));

    let mut z = flate2::Compress::new(flate2::Compression::default(), false);
    s.extend(frame(true, false, 1, "héllo wörld".as_bytes(), None));
    s.extend(frame(true, false, 9, b"ping from server", None));
    s.extend(frame(
        true,
        true,
        1,
        &deflate(&mut z, b"compressed compressed compressed"),
        None,
    ));
    s.extend(frame(
        true,
        true,
        1,
        &deflate(&mut z, b"compressed again, same context"),
        None,
    ));
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
    s.extend(frame(true, false, 2, &big, None));
    s.extend(frame(true, false, 8, &[0x03, 0xe8], None));
    (c, s)
}

/// What we compare: the decoded facts of each direction, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fact {
    Msg(MessageKind, Vec<u8>, u32),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, Vec<u8>),
    Other(&'static str),
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Facts {
    c2s: Vec<Fact>,
    s2c: Vec<Fact>,
}

impl Facts {
    fn record(&mut self, ev: &Event<'_>) {
        let fact = match &ev.kind {
            EventKind::Ws(WsEvent::Message {
                kind,
                payload,
                fragments,
                ..
            }) => Fact::Msg(*kind, payload.to_vec(), *fragments),
            EventKind::Ws(WsEvent::Ping { payload }) => Fact::Ping(payload.to_vec()),
            EventKind::Ws(WsEvent::Pong { payload }) => Fact::Pong(payload.to_vec()),
            EventKind::Ws(WsEvent::Close { code, reason }) => Fact::Close(*code, reason.to_vec()),
            // Whole-connection events may come at different points.
            EventKind::Tcp(TcpEvent::Close { .. })
            | EventKind::Ws(WsEvent::Open { .. })
            | EventKind::Http(HttpEvent::Request { .. })
            | EventKind::Http(HttpEvent::Response { .. }) => return,
            // Anything else (violations, gaps, overlap mismatches) must not
            // appear at all: record it so the comparison fails loudly.
            k => Fact::Other(k.name()),
        };
        if ev.src == client() {
            assert_eq!(ev.dir, Direction::ClientToServer, "{ev:?}");
            self.c2s.push(fact);
        } else {
            assert_eq!(ev.dir, Direction::ServerToClient, "{ev:?}");
            self.s2c.push(fact);
        }
    }
}

/// A segment to feed: which direction, sequence number, payload, flags.
#[derive(Debug, Clone)]
struct Seg {
    from_client: bool,
    seq: u32,
    data: Vec<u8>,
    flags: u8,
}

fn run(segs: &[Seg]) -> (Facts, u64) {
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut facts = Facts::default();
    let mut opens = 0u64;
    let mut sink = |ev: &Event<'_>| {
        if matches!(ev.kind, EventKind::Ws(WsEvent::Open { .. })) {
            opens += 1;
        }
        facts.record(ev)
    };
    for (i, s) in segs.iter().enumerate() {
        let (src, dst) = if s.from_client {
            (client(), server())
        } else {
            (server(), client())
        };
        let seg = Segment {
            iface: 0,
            ts_ns: 1_000 + i as u64,
            src,
            dst,
            seq: s.seq,
            ack: 0,
            flags: s.flags,
            window: 1000,
            payload: &s.data,
            checksum: Checksum::Good,
        };
        dec.push(&seg, &mut sink);
    }
    dec.finish(&mut sink);
    (facts, opens)
}

/// The reassembled byte streams straight from the flow table (no protocol),
/// with gaps and overlap mismatches counted: checks the TCP half alone.
fn run_flow(segs: &[Seg]) -> (Vec<u8>, Vec<u8>, u64) {
    use wstap::flow::tcp::{TcpConn, TcpOut};
    use wstap::flow::{FlowConfig, FlowStats};
    use wstap::side::Side;
    // Every trace here starts with the client's SYN: the client initiates.
    let mut t = TcpConn::new(FlowConfig::default().max_held);
    let mut stats = FlowStats::default();
    let (mut c, mut s, mut bad) = (Vec::new(), Vec::new(), 0u64);
    for g in segs {
        let side = if g.from_client {
            Side::Initiator
        } else {
            Side::Responder
        };
        t.on_segment(
            side,
            g.seq,
            g.flags,
            &g.data,
            0,
            &mut stats,
            &mut |side, o| match o {
                TcpOut::Data(d) if side == Side::Initiator => c.extend_from_slice(d),
                TcpOut::Data(d) => s.extend_from_slice(d),
                TcpOut::Gap(_) | TcpOut::Mismatch { .. } => bad += 1,
                TcpOut::End => {}
            },
        );
    }
    (c, s, bad)
}

fn handshake() -> Vec<Seg> {
    vec![
        Seg {
            from_client: true,
            seq: C_ISN,
            data: vec![],
            flags: tcp_flags::SYN,
        },
        Seg {
            from_client: false,
            seq: S_ISN,
            data: vec![],
            flags: tcp_flags::SYN | tcp_flags::ACK,
        },
    ]
}

/// Cuts `stream` (starting at `isn + 1`) at the given fractions.
fn cut(stream: &[u8], from_client: bool, isn: u32, cuts: &[usize]) -> Vec<Seg> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort();
    points.dedup();
    points
        .windows(2)
        .map(|w| Seg {
            from_client,
            seq: isn.wrapping_add(1).wrapping_add(w[0] as u32),
            data: stream[w[0]..w[1]].to_vec(),
            flags: tcp_flags::ACK | tcp_flags::PSH,
        })
        .collect()
}

fn whole() -> Vec<Seg> {
    let (c, s) = conversation();
    let mut v = handshake();
    v.extend(cut(&c, true, C_ISN, &[]));
    v.extend(cut(&s, false, S_ISN, &[]));
    v
}

/// Shuffles `v` only within windows of `w` elements (bounded reordering),
/// with a deterministic permutation drawn from `keys`.
fn shuffle_windows(v: &mut [Seg], keys: &[u32], w: usize) {
    for (i, chunk) in v.chunks_mut(w.max(1)).enumerate() {
        let k = keys.get(i % keys.len().max(1)).copied().unwrap_or(0);
        let n = chunk.len();
        for j in (1..n).rev() {
            let r = (k.wrapping_mul(2654435761).wrapping_add(j as u32 * 40503) as usize) % (j + 1);
            chunk.swap(j, r);
        }
    }
}

#[test]
fn unsegmented_feed_decodes_everything() {
    let (facts, opens) = run(&whole());
    assert_eq!(opens, 1, "one ws_open");
    let names = |v: &[Fact]| -> Vec<String> {
        v.iter()
            .map(|f| format!("{:.40}", format!("{f:?}")))
            .collect()
    };
    assert_eq!(facts.c2s.len(), 7, "{:?}", names(&facts.c2s));
    assert_eq!(facts.s2c.len(), 6, "{:?}", names(&facts.s2c));
    assert_eq!(
        facts.c2s[0],
        Fact::Msg(MessageKind::Text, b"hello".to_vec(), 1)
    );
    assert_eq!(facts.c2s[1], Fact::Ping(b"between fragments".to_vec()));
    let mut frag = vec![0, 1, 2, 3];
    frag.extend([4; 300]);
    frag.extend([5, 6]);
    assert_eq!(facts.c2s[2], Fact::Msg(MessageKind::Binary, frag, 3));
    assert_eq!(facts.c2s[3], Fact::Msg(MessageKind::Text, vec![], 1));
    assert_eq!(facts.c2s[4], Fact::Pong(b"pong from client".to_vec()));
    assert!(matches!(&facts.c2s[5], Fact::Msg(MessageKind::Binary, p, 1) if p.len() == 70_000));
    assert_eq!(
        facts.s2c[0],
        Fact::Msg(MessageKind::Text, "héllo wörld".as_bytes().to_vec(), 1)
    );
    assert_eq!(
        facts.s2c[2],
        Fact::Msg(
            MessageKind::Text,
            b"compressed compressed compressed".to_vec(),
            1
        )
    );
    assert_eq!(
        facts.s2c[3],
        Fact::Msg(
            MessageKind::Text,
            b"compressed again, same context".to_vec(),
            1
        )
    );
    assert_eq!(facts.s2c[5], Fact::Close(Some(1000), vec![]));
    assert_eq!(facts.c2s[6], Fact::Close(Some(1000), b"bye".to_vec()));
}

/// Builds a randomly resegmented, interleaved, duplicated and reordered feed
/// of the conversation from the proptest-drawn parameters.
fn scrambled(
    c_cuts: &[usize],
    s_cuts: &[usize],
    keys: &[u32],
    window: usize,
    dups: &[usize],
    interleave: u64,
) -> Vec<Seg> {
    let (c, s) = conversation();
    // The HTTP request goes first (the response's meaning depends on it),
    // then everything else, both directions interleaved.
    let req_len = c.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut c_segs = cut(&c, true, C_ISN, c_cuts);
    let s_segs = cut(&s, false, S_ISN, s_cuts);
    let first_frame = c_segs
        .iter()
        .position(|g| g.seq.wrapping_sub(C_ISN.wrapping_add(1)) as usize + g.data.len() >= req_len)
        .unwrap();
    let mut rest_c = c_segs.split_off(first_frame + 1);
    let mut segs = handshake();
    segs.extend(c_segs);
    let mut s_iter = s_segs.into_iter();
    let mut bits = interleave;
    let mut merged = Vec::new();
    rest_c.reverse();
    loop {
        let take_c = bits & 1 == 1;
        bits = bits.rotate_right(1) ^ 0x9e37_79b9;
        let next = if take_c {
            rest_c.pop().or_else(|| s_iter.next())
        } else {
            s_iter.next().or_else(|| rest_c.pop())
        };
        match next {
            Some(g) => merged.push(g),
            None => break,
        }
    }
    // Duplicates: copies of random segments inserted at random places.
    for d in dups {
        if merged.is_empty() {
            break;
        }
        let g = merged[d % merged.len()].clone();
        let at = (d / 7) % (merged.len() + 1);
        merged.insert(at, g);
    }
    shuffle_windows(&mut merged, keys, window);
    segs.extend(merged);
    segs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The TCP half alone: both byte streams come out whole, no gap, no mismatch.
    #[test]
    fn reassembly_restores_both_streams(
        c_cuts in proptest::collection::vec(any::<usize>(), 0..60),
        s_cuts in proptest::collection::vec(any::<usize>(), 0..60),
        keys in proptest::collection::vec(any::<u32>(), 1..8),
        window in 1usize..12,
        dups in proptest::collection::vec(any::<usize>(), 0..20),
        interleave in any::<u64>(),
    ) {
        let segs = scrambled(&c_cuts, &s_cuts, &keys, window, &dups, interleave);
        let (c, s) = conversation();
        let (fc, fs, bad) = run_flow(&segs);
        prop_assert_eq!(bad, 0);
        prop_assert!(fc == c, "client stream differs");
        prop_assert!(fs == s, "server stream differs");
    }

    /// The whole decoder: identical messages to the unsegmented feed.
    #[test]
    fn resegmenting_reordering_duplicating_changes_nothing(
        c_cuts in proptest::collection::vec(any::<usize>(), 0..60),
        s_cuts in proptest::collection::vec(any::<usize>(), 0..60),
        keys in proptest::collection::vec(any::<u32>(), 1..8),
        window in 1usize..12,
        dups in proptest::collection::vec(any::<usize>(), 0..20),
        interleave in any::<u64>(),
    ) {
        let (want, _) = run(&whole());
        let segs = scrambled(&c_cuts, &s_cuts, &keys, window, &dups, interleave);
        let (got, opens) = run(&segs);
        prop_assert_eq!(opens, 1);
        prop_assert_eq!(got, want);
    }
}
