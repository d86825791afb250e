//! Arbitrary bytes into a connection's protocol stack: either right after a synthetic
//! handshake (with or without permessage-deflate) or mid-stream (no
//! handshake). The first byte picks the mode and how the input is cut into
//! `data` calls, so frames and headers are split at every position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap::proto::{Emit, ProtoConfig, Role, Side, Stack};

const REQ: &[u8] = b"GET /f HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
const RESP_PLAIN: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
const RESP_DEFLATE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits=9\r\n\r\n";

/// One stack call, with the role kept as the registry keeps it.
fn call(
    s: &mut Stack,
    role: &mut Role,
    f: impl FnOnce(&mut Stack, Role, &mut dyn FnMut(Emit<'_>)),
) {
    let r = *role;
    f(s, r, &mut |e| {
        if let Emit::Role(fact) = e {
            role.learn(fact)
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Small caps so truncation paths are reached too.
    let cfg = ProtoConfig {
        max_message: 1 << 16,
        max_inflated: 1 << 16,
        keylog: None,
    };
    let mut s = Stack::new(&cfg);
    let mut role = if mode & 1 == 1 {
        Role::known(Side::Initiator)
    } else {
        Role::default()
    };
    let r = &mut role;
    match (mode >> 1) & 3 {
        0 => {}
        1 => {
            call(&mut s, r, |s, x, o| s.data(x, Side::Initiator, REQ, o));
            call(&mut s, r, |s, x, o| {
                s.data(x, Side::Responder, RESP_PLAIN, o)
            });
        }
        _ => {
            call(&mut s, r, |s, x, o| s.data(x, Side::Initiator, REQ, o));
            call(&mut s, r, |s, x, o| {
                s.data(x, Side::Responder, RESP_DEFLATE, o)
            });
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
            call(&mut s, r, |s, x, o| s.gap(x, side, piece[1] as u64, o));
        }
        call(&mut s, r, |s, x, o| s.data(x, side, piece, o));
    }
    call(&mut s, r, |s, x, o| s.end(x, Side::Initiator, o));
    call(&mut s, r, |s, x, o| s.end(x, Side::Responder, o));
});
