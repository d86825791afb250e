//! Criterion micro-benchmarks of the decoder's hot paths:
//!
//! - `unmask`: XOR unmasking in place, several buffer sizes.
//! - `session`: `Stack::data` after a handshake, on a stream of many
//!   small masked text frames and on large binary frames (masked
//!   client→server, unmasked server→client), fed in MSS- or GSO-sized pieces.
//! - `decoder`: `Decoder::push` on a generated TCP segment stream (handshake,
//!   then request/echo messages), flow reassembly included.
//!
//! Every benchmark checks that the messages came out, so a broken decoder
//! cannot look fast. Run: `cargo bench -p capture-user --bench decode`.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use wstap::event::{Event, EventKind, WsEvent};
use wstap::proto::http::accept_for;
use wstap::proto::websocket::unmask::unmask;
use wstap::proto::{Emit, ProtoConfig, Role, Side, Stack};
use wstap::registry::{DecodeConfig, Decoder};
use wstap::source::tcp_flags::{ACK, PSH, SYN};
use wstap::source::{Checksum, Segment};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// Typical Ethernet MSS: the piece size for small-message streams.
const MSS: usize = 1448;
/// Piece size for bulk streams (a GSO/loopback-sized segment).
const BIG_PIECE: usize = 64 * 1024;

fn frame(op: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | op];
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

fn request() -> Vec<u8> {
    format!(
        "GET /chat HTTP/1.1\r\nHost: bench.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

fn response() -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_for(KEY)
    )
    .into_bytes()
}

/// Deterministic, incompressible-looking bytes.
fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

/// Short texts like the offline benchmark's: 20-200 bytes.
fn small_text(i: usize) -> Vec<u8> {
    let mut t = format!("message number {i} with a little text").into_bytes();
    t.resize(20 + (i * 37) % 181, b'.');
    t
}

fn bench_unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for size in [64usize, 1448, 64 * 1024, 1 << 20] {
        let mut buf = pattern(size, 1);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| unmask(black_box(&mut buf), MASK, 1))
        });
    }
    g.finish();
}

/// Text for the escaping benchmarks: `escapes` pairs of characters JSON
/// must escape (a quote, a newline) per KiB, the rest ASCII and two- and three-byte characters.
fn text(n: usize, escapes: usize) -> String {
    let parts = ["hello, world ", "Grüße ", "价格 ", "{k: 1} "];
    let mut s = String::with_capacity(n + 16);
    let mut i = 0;
    while s.len() < n {
        s.push_str(parts[i % parts.len()]);
        if escapes > 0 && i % (1024 / 14 / escapes).max(1) == 0 {
            s.push_str("\"\n");
        }
        i += 1;
    }
    s
}

/// The output's encoders, per byte of payload: JSON string escaping (text
/// payloads, mostly plain, and with a newline and quotes every few dozen
/// bytes), the text sink's escaping, and base64 (binary payloads).
fn bench_output(c: &mut Criterion) {
    let mut g = c.benchmark_group("output");
    let mut out = Vec::with_capacity(3 << 20);
    for (label, escapes) in [("plain", 0), ("escapes", 8)] {
        let t = text(1 << 20, escapes);
        g.throughput(Throughput::Bytes(t.len() as u64));
        g.bench_function(format!("json_escape_{label}_1MiB"), |b| {
            b.iter(|| {
                out.clear();
                wstap::sink::push_json_str(&mut out, black_box(&t));
            })
        });
        g.bench_function(format!("text_escape_{label}_1MiB"), |b| {
            b.iter(|| {
                out.clear();
                wstap::sink::text::escape_into(&mut out, black_box(&t));
            })
        });
    }
    let small = text(100, 0);
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("json_escape_plain_100B", |b| {
        b.iter(|| {
            out.clear();
            wstap::sink::push_json_str(&mut out, black_box(&small));
        })
    });
    let bin = pattern(1 << 20, 7);
    g.throughput(Throughput::Bytes(bin.len() as u64));
    g.bench_function("base64_1MiB", |b| {
        b.iter(|| {
            out.clear();
            wstap::sink::push_base64(&mut out, black_box(&bin));
        })
    });
    g.finish();
}

/// The client of the benchmarked connections (its SYN was seen).
fn role() -> Role {
    Role::known(Side::Initiator)
}

/// A connection's protocol stack that has seen the handshake.
fn open_session() -> Stack {
    let mut s = Stack::new(&ProtoConfig::default());
    let mut opened = false;
    let mut out =
        |e: Emit<'_>| opened |= matches!(e, Emit::Event(_, EventKind::Ws(WsEvent::Open { .. })));
    s.data(role(), Side::Initiator, &request(), &mut out);
    s.data(role(), Side::Responder, &response(), &mut out);
    assert!(opened, "handshake not accepted");
    s
}

/// Feeds `stream` in `piece`-sized slices; returns messages and payload bytes.
fn feed(s: &mut Stack, side: Side, stream: &[u8], piece: usize) -> (u64, u64) {
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut out = |e: Emit<'_>| {
        if let Emit::Event(_, EventKind::Ws(WsEvent::Message { payload, .. })) = &e {
            n += 1;
            bytes += black_box(payload).len() as u64;
        }
    };
    for p in stream.chunks(piece) {
        s.data(role(), side, p, &mut out);
    }
    (n, bytes)
}

fn bench_session(c: &mut Criterion) {
    let mut g = c.benchmark_group("session");

    const SMALL: usize = 10_000;
    let small: Vec<u8> = (0..SMALL)
        .flat_map(|i| frame(1, Some(MASK), &small_text(i)))
        .collect();
    let small_payload: u64 = (0..SMALL).map(|i| small_text(i).len() as u64).sum();
    assert_eq!(
        feed(&mut open_session(), Side::Initiator, &small, MSS),
        (SMALL as u64, small_payload)
    );
    g.throughput(Throughput::Elements(SMALL as u64));
    g.bench_function("small_text_masked_msgs", |b| {
        b.iter_batched(
            open_session,
            |mut s| feed(&mut s, Side::Initiator, &small, MSS),
            BatchSize::SmallInput,
        )
    });

    const LARGE: usize = 1 << 20;
    const N_LARGE: usize = 16;
    let data = pattern(LARGE, 9);
    for (name, side, mask) in [
        ("large_binary_masked_bytes", Side::Initiator, Some(MASK)),
        ("large_binary_unmasked_bytes", Side::Responder, None),
    ] {
        let one = frame(2, mask, &data);
        let stream: Vec<u8> = (0..N_LARGE).flat_map(|_| one.iter().copied()).collect();
        let want = (N_LARGE as u64, (N_LARGE * LARGE) as u64);
        assert_eq!(feed(&mut open_session(), side, &stream, BIG_PIECE), want);
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                open_session,
                |mut s| feed(&mut s, side, &stream, BIG_PIECE),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// One direction of a generated TCP connection.
struct Dir {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
}

/// A generated capture: owned payloads plus (direction, flags, range) per
/// segment, turned into borrowed `Segment`s by `segments`.
struct Trace {
    client: Dir,
    server: Dir,
    /// (from client, flags, payload)
    segs: Vec<(bool, u8, Vec<u8>)>,
}

impl Trace {
    fn new() -> Self {
        let mut t = Trace {
            client: Dir {
                src: "10.0.0.1:40000".parse().unwrap(),
                dst: "10.0.0.2:80".parse().unwrap(),
                seq: 1000,
            },
            server: Dir {
                src: "10.0.0.2:80".parse().unwrap(),
                dst: "10.0.0.1:40000".parse().unwrap(),
                seq: 5000,
            },
            segs: Vec::new(),
        };
        t.segs.push((true, SYN, Vec::new()));
        t.segs.push((false, SYN | ACK, Vec::new()));
        t.segs.push((true, ACK | PSH, request()));
        t.segs.push((false, ACK | PSH, response()));
        t
    }

    /// Adds `bytes` from one side, cut into `piece`-sized segments.
    fn send(&mut self, from_client: bool, bytes: &[u8], piece: usize) {
        for p in bytes.chunks(piece) {
            self.segs.push((from_client, ACK | PSH, p.to_vec()));
        }
    }

    fn segments(&self) -> Vec<Segment<'_>> {
        let (mut cseq, mut sseq) = (self.client.seq, self.server.seq);
        self.segs
            .iter()
            .enumerate()
            .map(|(i, (from_client, flags, p))| {
                let (d, seq, other) = if *from_client {
                    (&self.client, &mut cseq, sseq)
                } else {
                    (&self.server, &mut sseq, cseq)
                };
                let s = Segment {
                    iface: 0,
                    ts_ns: 1_000_000 * i as u64,
                    src: d.src,
                    dst: d.dst,
                    seq: *seq,
                    ack: other,
                    flags: *flags,
                    window: 65535,
                    payload: p,
                    checksum: Checksum::Good,
                };
                *seq = seq.wrapping_add(p.len() as u32 + u32::from(flags & SYN != 0));
                s
            })
            .collect()
    }
}

/// Pushes every segment into a fresh decoder; returns messages and bytes.
fn decode_all(segs: &[Segment<'_>]) -> (u64, u64) {
    let mut dec = Decoder::new(DecodeConfig::default());
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut sink = |e: &Event<'_>| {
        if let EventKind::Ws(WsEvent::Message { payload, .. }) = &e.kind {
            n += 1;
            bytes += black_box(payload).len() as u64;
        }
    };
    for s in segs {
        dec.push(s, &mut sink);
    }
    dec.finish(&mut sink);
    (n, bytes)
}

fn bench_decoder(c: &mut Criterion) {
    let mut g = c.benchmark_group("decoder");

    // Request/echo of small texts, one message per segment.
    const SMALL: usize = 10_000;
    let mut t = Trace::new();
    for i in 0..SMALL {
        let text = small_text(i);
        t.send(true, &frame(1, Some(MASK), &text), MSS);
        t.send(false, &frame(1, None, &text), MSS);
    }
    let segs = t.segments();
    assert_eq!(decode_all(&segs).0, 2 * SMALL as u64);
    g.throughput(Throughput::Elements(2 * SMALL as u64));
    g.bench_function("small_echo_msgs", |b| b.iter(|| decode_all(&segs)));

    // 1 MiB binary messages both ways in 64 KiB segments.
    const LARGE: usize = 1 << 20;
    const N_LARGE: usize = 8;
    let data = pattern(LARGE, 9);
    let mut t = Trace::new();
    let (up, down) = (frame(2, Some(MASK), &data), frame(2, None, &data));
    for _ in 0..N_LARGE {
        t.send(true, &up, BIG_PIECE);
        t.send(false, &down, BIG_PIECE);
    }
    let segs = t.segments();
    let total: u64 = segs.iter().map(|s| s.payload.len() as u64).sum();
    assert_eq!(
        decode_all(&segs),
        (2 * N_LARGE as u64, (2 * N_LARGE * LARGE) as u64)
    );
    g.throughput(Throughput::Bytes(total));
    g.bench_function("bulk_echo_bytes", |b| b.iter(|| decode_all(&segs)));
    g.finish();
}

criterion_group!(
    benches,
    bench_unmask,
    bench_output,
    bench_session,
    bench_decoder
);
criterion_main!(benches);
