//! Arbitrary bytes into a WebSocket session: either right after a synthetic
//! handshake (with or without permessage-deflate) or mid-stream (no
//! handshake). The first byte picks the mode and how the input is cut into
//! `on_data` calls, so frames and headers are split at every position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap::proto::{ProtoConfig, Session, Side};

const REQ: &[u8] = b"GET /f HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
const RESP_PLAIN: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
const RESP_DEFLATE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=9\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Small caps so truncation paths are reached too.
    let cfg = ProtoConfig {
        max_message: 1 << 16,
        max_inflated: 1 << 16,
    };
    let mut s = Session::new(&cfg, mode & 1 == 1);
    let mut sink = |_ev: wstap::proto::ProtoEvent<'_>| {};
    match (mode >> 1) & 3 {
        0 => {}
        1 => {
            s.on_data(Side::Initiator, REQ, &mut sink);
            s.on_data(Side::Responder, RESP_PLAIN, &mut sink);
        }
        _ => {
            s.on_data(Side::Initiator, REQ, &mut sink);
            s.on_data(Side::Responder, RESP_DEFLATE, &mut sink);
        }
    }
    let chunk = 1 + (mode >> 3) as usize * 7;
    for (i, piece) in rest.chunks(chunk).enumerate() {
        let side = if (mode >> 7) == 1 && i % 3 == 2 {
            Side::Initiator
        } else {
            Side::Responder
        };
        if piece.first() == Some(&0xee) && piece.len() > 1 {
            s.on_gap(side, piece[1] as u64, &mut sink);
        }
        s.on_data(side, piece, &mut sink);
    }
    s.on_end(Side::Initiator, &mut sink);
    s.on_end(Side::Responder, &mut sink);
});
