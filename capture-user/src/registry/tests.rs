//! The registry's tests: events with addresses and time, eviction, tombstones,
//! the plaintext source, SYN reuse, FIN waits and the memory budget.

use super::*;
use crate::event::Direction;
use crate::event::{Event, EventKind, TcpEvent, WsEvent};
use crate::source::tcp_flags::{ACK, FIN, RST, SYN};
use crate::source::Checksum;

fn seg<'a>(from: &str, to: &str, ts: u64, seq: u32, flags: u8, p: &'a [u8]) -> Segment<'a> {
    Segment {
        iface: 0,
        ts_ns: ts,
        src: from.parse().unwrap(),
        dst: to.parse().unwrap(),
        seq,
        ack: 0,
        flags,
        window: 0,
        payload: p,
        checksum: Checksum::Good,
    }
}

/// (name, src, dir, ts) of every event.
fn collect(dec: &mut Decoder, segs: &[Segment<'_>]) -> Vec<(String, String, Direction, u64)> {
    let mut v = Vec::new();
    let mut sink =
        |e: &Event<'_>| v.push((e.kind.name().to_string(), e.src.to_string(), e.dir, e.ts_ns));
    for s in segs {
        dec.push(s, &mut sink);
    }
    dec.finish(&mut sink);
    v
}

#[test]
fn flow_facts_become_events_with_addresses_and_time() {
    let (c, s) = ("10.0.0.1:1000", "10.0.0.2:80");
    let mut dec = Decoder::new(DecodeConfig::default());
    let evs = collect(
        &mut dec,
        &[
            seg(c, s, 10, 0, SYN, b""),
            seg(s, c, 11, 0, SYN | ACK, b""),
            seg(c, s, 12, 5, ACK, b"xy"), // ahead of a 4-byte hole
            seg(c, s, 13, 5, ACK, b"zz"), // differs from the held copy
            seg(s, c, 14, 1, RST, b""),   // hole flushed as a gap
        ],
    );
    // The session may add its own view of the garbage (violations); only
    // the flow-level events are checked here.
    let evs: Vec<_> = evs
        .into_iter()
        .filter(|e| e.0 != "violation" && e.0 != "resync")
        .collect();
    let names: Vec<&str> = evs.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["overlap_mismatch", "gap", "conn_close"]);
    assert_eq!(evs[0].1, c);
    assert_eq!(evs[0].2, Direction::ClientToServer);
    assert_eq!(evs[1].3, 14, "time of the segment that caused it");
    let st = dec.stats();
    assert_eq!(st.flow.gaps, 1);
    assert_eq!(st.flow.gap_bytes, 4);
    assert_eq!(st.flow.overlap_mismatches, 1);
    assert_eq!(st.flow.resets, 1);
}

#[test]
fn eviction_is_reported_and_midstream_direction_is_unknown() {
    let cfg = DecodeConfig {
        flow: FlowConfig {
            idle_timeout_ns: 100,
            ..FlowConfig::default()
        },
        ..DecodeConfig::default()
    };
    let mut dec = Decoder::new(cfg);
    let evs = collect(
        &mut dec,
        &[
            seg("1.1.1.1:1", "2.2.2.2:2", 0, 7, ACK, b"\x00"),
            seg("3.3.3.3:3", "2.2.2.2:2", 1000, 7, ACK, b"\x00"),
        ],
    );
    let ev = evs.iter().find(|e| e.0 == "flow_evicted").expect("evicted");
    assert_eq!(ev.2, Direction::Unknown);
    assert_eq!(dec.stats().evictions, 1);
}

/// An upgrade request and its 101 (RFC 6455's sample key and accept).
const REQ: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

const A: &str = "10.0.0.1:40000";
const B: &str = "10.0.0.2:80";

/// (event name, conn, src) of every event of `segs`, then of `finish`
/// when `finish` is set.
fn events(dec: &mut Decoder, segs: &[Segment<'_>], finish: bool) -> Vec<(String, ConnId, String)> {
    let mut v = Vec::new();
    let mut sink = |e: &Event<'_>| {
        let what = match &e.kind {
            EventKind::Tcp(TcpEvent::Evicted { reason }) => {
                format!("evicted {}", reason.as_str())
            }
            EventKind::Tcp(TcpEvent::Gap { bytes }) => format!("gap {bytes}"),
            EventKind::Tcp(TcpEvent::Close { reset }) => format!("close reset={reset}"),
            k => k.name().to_string(),
        };
        v.push((what, e.conn, e.src.to_string()))
    };
    for s in segs {
        dec.push(s, &mut sink);
    }
    if finish {
        dec.finish(&mut sink);
    }
    v
}

#[test]
fn tombstone_swallows_late_segments_and_a_new_syn_opens_a_new_connection() {
    let mut dec = Decoder::new(DecodeConfig::default());
    let evs = events(
        &mut dec,
        &[
            seg(A, B, 1, 100, SYN, b""),
            seg(B, A, 2, 5000, SYN | ACK, b""),
            seg(A, B, 3, 101, ACK | FIN, b""),
            seg(B, A, 4, 5001, ACK | FIN, b""),
            seg(A, B, 5, 101, ACK, b"hello"), // late: on the tombstone
        ],
        false,
    );
    assert_eq!(evs, [("close reset=false".to_string(), 1, A.to_string())]);
    let st = dec.stats();
    assert_eq!((st.flow.connections, st.flow.closed), (1, 1));
    assert_eq!(st.flow.bytes_after_end, 5);
    let evs = events(
        &mut dec,
        &[seg(A, B, 6, 9000, SYN, b""), seg(A, B, 7, 9001, RST, b"")],
        false,
    );
    assert_eq!(evs, [("close reset=true".to_string(), 2, A.to_string())]);
    assert_eq!(dec.stats().flow.connections, 2);
    assert_eq!(dec.stats().flow.resets, 1);
}

#[test]
fn pure_acks_of_unknown_connections_are_not_tracked() {
    let mut dec = Decoder::new(DecodeConfig::default());
    events(
        &mut dec,
        &[
            seg(B, A, 1, 777_777, ACK, b"server first"),
            seg("1.1.1.1:1", "2.2.2.2:2", 2, 5, ACK, b""),
        ],
        false,
    );
    assert_eq!(dec.stats().flow.connections, 1);
    assert_eq!(dec.stats().flow.untracked_segments, 1);
}

#[test]
fn eviction_when_table_full_takes_the_least_recently_active() {
    let cfg = DecodeConfig {
        flow: FlowConfig {
            max_flows: 2,
            ..FlowConfig::default()
        },
        ..DecodeConfig::default()
    };
    let mut dec = Decoder::new(cfg);
    let evs = events(
        &mut dec,
        &[
            seg("1.0.0.1:1", B, 1, 1, ACK, b"a"),
            seg("1.0.0.2:1", B, 2, 1, ACK, b"b"),
            seg("1.0.0.1:1", B, 3, 2, ACK, b"c"), // conn 1 now most recent
            seg("1.0.0.3:1", B, 4, 1, ACK, b"d"),
        ],
        false,
    );
    let evicted: Vec<ConnId> = evs
        .iter()
        .filter(|e| e.0 == "evicted flow table full")
        .map(|e| e.1)
        .collect();
    assert_eq!(evicted, [2]);
    assert_eq!(dec.len(), 2);
    assert_eq!(dec.stats().flow.evicted_full, 1);
}

#[test]
fn idle_timeout_by_capture_time_flushes_holes() {
    let cfg = DecodeConfig {
        flow: FlowConfig {
            idle_timeout_ns: 10_000,
            ..FlowConfig::default()
        },
        ..DecodeConfig::default()
    };
    let mut dec = Decoder::new(cfg);
    let evs = events(
        &mut dec,
        &[
            seg(A, B, 1_000_000_000, 1, ACK, b"a"),
            seg(A, B, 1_000_000_000, 5, ACK, b"e"), // hole: flushed on eviction
            seg("9.9.9.9:9", B, 1_000_020_000, 1, ACK, b"x"),
        ],
        false,
    );
    assert!(
        evs.contains(&("gap 3".to_string(), 1, A.to_string())),
        "{evs:?}"
    );
    assert!(evs.contains(&("evicted idle timeout".to_string(), 1, A.to_string())));
    assert_eq!(dec.stats().flow.evicted_idle, 1);
    assert_eq!(dec.len(), 1);
}

#[test]
fn protocol_counters_come_from_the_events() {
    let req = REQ;
    let resp = RESP;
    // A text message "a", a ping, and a frame with reserved opcode 3.
    let frames = [0x81, 0x01, b'a', 0x89, 0x00, 0x83, 0x00];
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut names = Vec::new();
    let segs = [
        seg(A, B, 1, 0, SYN, b""),
        seg(B, A, 2, 0, SYN | ACK, b""),
        seg(A, B, 3, 1, ACK, req),
        seg(B, A, 4, 1, ACK, resp),
        seg(B, A, 5, 1 + resp.len() as u32, ACK, &frames),
    ];
    for s in &segs {
        dec.push(s, &mut |e: &Event<'_>| names.push(e.kind.name()));
    }
    let st = dec.stats();
    assert_eq!(
        (st.messages, st.control_frames, st.violations),
        (1, 1, 1),
        "{names:?}"
    );
    assert_eq!((st.ws_opens, st.message_bytes), (1, 1));
}

#[test]
fn plaintext_source_decodes_like_segments() {
    let req = REQ;
    let resp = RESP;
    let masked = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    let server = [0x81, 0x02, b'o', b'k'];
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut got = Vec::new();
    let mut sink = |e: &Event<'_>| {
        let text = match &e.kind {
            EventKind::Ws(WsEvent::Message { payload, .. }) => {
                String::from_utf8_lossy(payload).into_owned()
            }
            EventKind::Tcp(TcpEvent::Gap { bytes }) => bytes.to_string(),
            _ => String::new(),
        };
        got.push((e.kind.name(), e.conn, e.dir, text))
    };
    let (c, s) = (A.parse().unwrap(), B.parse().unwrap());
    let id = dec.open_plain(0, c, s, 10, &mut sink);
    assert_eq!(
        dec.open_plain(0, c, s, 10, &mut sink),
        id,
        "same endpoints, same connection"
    );
    dec.push_plain(id, Side::Initiator, 0, req, 11, &mut sink)
        .unwrap();
    dec.push_plain(id, Side::Responder, 0, resp, 12, &mut sink)
        .unwrap();
    // A repeat of what was fed, then the frame: only the frame counts.
    dec.push_plain(id, Side::Initiator, 0, req, 13, &mut sink)
        .unwrap();
    dec.push_plain(
        id,
        Side::Initiator,
        req.len() as u64,
        &masked,
        13,
        &mut sink,
    )
    .unwrap();
    // A jump ahead is a gap; the server's next frame comes after it.
    let at = resp.len() as u64 + 3;
    dec.push_plain(id, Side::Responder, at, &server, 14, &mut sink)
        .unwrap();
    dec.end_plain(id, Side::Initiator, 15, &mut sink).unwrap();
    dec.end_plain(id, Side::Responder, 15, &mut sink).unwrap();
    assert_eq!(
        dec.push_plain(id, Side::Initiator, 0, b"x", 16, &mut sink),
        Err(PlainError::NotOpen(id))
    );
    let c2s = Direction::ClientToServer;
    let s2c = Direction::ServerToClient;
    assert_eq!(
        got,
        [
            ("http_request", id, c2s, String::new()),
            ("ws_open", id, s2c, String::new()),
            ("ws_message", id, c2s, "hi".to_string()),
            ("gap", id, s2c, "3".to_string()),
            ("resync", id, s2c, String::new()),
            ("ws_message", id, s2c, "ok".to_string()),
            ("conn_close", id, c2s, String::new()),
        ]
    );
    assert_eq!(dec.stats().flow.retransmitted_bytes, req.len() as u64);
}

#[test]
fn a_syn_that_does_not_fit_starts_a_new_connection() {
    for new_isn in [50u32, 1_000_000] {
        let mut dec = Decoder::new(DecodeConfig::default());
        let mut evs = events(
            &mut dec,
            &[
                seg(A, B, 1, 100, SYN, b""),
                seg(A, B, 2, 100, SYN, b""), // a retransmitted SYN fits
                seg(B, A, 3, 7000, SYN | ACK, b""),
                seg(A, B, 4, 101, ACK, REQ),
                // The old connection was never seen closing.
                seg(A, B, 5, new_isn, SYN, b""),
                seg(B, A, 6, 9000, SYN | ACK, b""),
                seg(A, B, 7, new_isn + 1, ACK, REQ),
            ],
            true,
        );
        evs.retain(|e| e.0 != "violation");
        assert_eq!(
            evs,
            [
                ("http_request".to_string(), 1, A.to_string()),
                (
                    "evicted endpoints reused by a new connection".to_string(),
                    1,
                    A.to_string()
                ),
                ("http_request".to_string(), 2, A.to_string()),
            ],
            "new ISN {new_isn}"
        );
        let st = dec.stats();
        assert_eq!((st.flow.connections, st.flow.evicted_reused), (2, 1));
        assert_eq!((st.flow.gaps, st.flow.retransmitted_bytes), (0, 0));
    }
}

#[test]
fn a_fin_behind_a_hole_closes_after_a_bounded_wait() {
    let t0 = 1_000_000_000;
    let mut dec = Decoder::new(DecodeConfig::default());
    let evs = events(
        &mut dec,
        &[
            seg(A, B, t0, 0, SYN, b""),
            seg(B, A, t0, 0, SYN | ACK, b""),
            seg(A, B, t0, 1, ACK, b"ab"),
            seg(A, B, t0, 5, ACK | FIN, b"ef"), // bytes 2..4 never come
            seg(B, A, t0, 1, ACK | FIN, b""),
            // Within the wait: nothing yet.
            seg("9.9.9.9:9", B, t0 + FIN_HOLE_WAIT_NS, 1, ACK, b"x"),
        ],
        false,
    );
    assert!(evs.iter().all(|e| e.1 != 1), "{evs:?}");
    let evs = events(
        &mut dec,
        &[seg("9.9.9.9:9", B, t0 + FIN_HOLE_WAIT_NS + 1, 2, ACK, b"y")],
        false,
    );
    let conn1: Vec<&str> = evs
        .iter()
        .filter(|e| e.1 == 1 && e.0 != "violation") // "ab??ef" is no WebSocket
        .map(|e| e.0.as_str())
        .collect();
    assert_eq!(conn1, ["gap 2", "close reset=false"], "{evs:?}");
    assert_eq!(dec.stats().flow.closed, 1);
}

#[test]
fn memory_stays_under_the_budget_by_evicting_the_largest_holders() {
    // 40 connections each hold 1 MiB of out-of-order data (a hole at
    // the start), then 40 more each hold a 1 MiB partial message; the
    // budget is 8 MiB.
    let budget = 8 << 20;
    let cfg = DecodeConfig {
        max_memory: budget,
        ..DecodeConfig::default()
    };
    let mut dec = Decoder::new(cfg);
    let mut evicted = 0;
    let mut sink = |e: &Event<'_>| {
        if let EventKind::Tcp(TcpEvent::Evicted { reason }) = e.kind {
            assert_eq!(reason.as_str(), "memory budget");
            evicted += 1;
        }
    };
    let chunk = vec![0x41u8; 64 << 10];
    let mut frame_head = vec![0x82, 0x7f];
    frame_head.extend((4u64 << 20).to_be_bytes()); // a 4 MiB binary frame
    for i in 0..80u32 {
        let client = format!("10.1.{}.{}:5000", i / 250, i % 250 + 1);
        let t = u64::from(i) * 1000;
        dec.push(&seg(&client, B, t, 0, SYN, b""), &mut sink);
        dec.push(&seg(B, &client, t, 0, SYN | ACK, b""), &mut sink);
        if i < 40 {
            // Bytes 0..10 never come: everything after is held.
            for k in 0..16u32 {
                let seq = 11 + k * chunk.len() as u32;
                dec.push(&seg(&client, B, t, seq, ACK, &chunk), &mut sink);
                assert!(dec.memory() <= budget, "{} > {budget}", dec.memory());
            }
        } else {
            // After a handshake, a 4 MiB message of which 1 MiB came.
            dec.push(&seg(&client, B, t, 1, ACK, REQ), &mut sink);
            dec.push(&seg(B, &client, t, 1, ACK, RESP), &mut sink);
            let at = 1 + RESP.len() as u32;
            dec.push(&seg(B, &client, t, at, ACK, &frame_head), &mut sink);
            for k in 0..16u32 {
                let seq = at + frame_head.len() as u32 + k * chunk.len() as u32;
                dec.push(&seg(B, &client, t, seq, ACK, &chunk), &mut sink);
                assert!(dec.memory() <= budget, "{} > {budget}", dec.memory());
            }
        }
    }
    let st = dec.stats();
    assert!(st.flow.evicted_memory > 0);
    assert_eq!(st.flow.evicted_memory, evicted);
    // 80 MiB held in all, at most 8 MiB at a time.
    assert!(evicted >= 70, "{evicted} evictions");
}
