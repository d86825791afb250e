//! Arbitrary bytes as the TLS records of both sides of a connection, with a
//! key log that holds secrets for one client random (so a fuzzed
//! ClientHello carrying it reaches key derivation and decryption). The
//! first byte picks how the input is cut and which side each piece goes to;
//! every piece is prefixed so that the stack takes the connection as TLS.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use wstap::proto::tls::KeyLog;
use wstap::proto::{Emit, ProtoConfig, Role, Side, Stack};

fn keylog() -> Arc<KeyLog> {
    let k = KeyLog::empty();
    let random = "00".repeat(32);
    let s32 = "11".repeat(32);
    let m48 = "22".repeat(48);
    let text = format!(
        "CLIENT_RANDOM {random} {m48}\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {random} {s32}\n\
         SERVER_HANDSHAKE_TRAFFIC_SECRET {random} {s32}\nCLIENT_TRAFFIC_SECRET_0 {random} {s32}\n\
         SERVER_TRAFFIC_SECRET_0 {random} {s32}\n"
    );
    k.add_block(text.as_bytes());
    Arc::new(k)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cfg = ProtoConfig {
        max_message: 1 << 16,
        max_inflated: 1 << 16,
        keylog: Some(keylog()),
    };
    let mut s = Stack::new(&cfg);
    let mut role = Role::default();
    let mut out = |e: Emit<'_>| {
        if let Emit::Role(fact) = e {
            role.learn(fact)
        }
    };
    // Both sides start as TLS handshake records.
    s.data(Role::default(), Side::Initiator, &[0x16, 0x03, 0x01], &mut out);
    s.data(Role::default(), Side::Responder, &[0x16, 0x03, 0x03], &mut out);
    let chunk = 1 + (mode & 0x3f) as usize * 5;
    for (i, piece) in rest.chunks(chunk).enumerate() {
        let side = if (mode >> 6) & 1 == 1 && i % 2 == 1 {
            Side::Responder
        } else {
            Side::Initiator
        };
        if mode >> 7 == 1 && piece.first() == Some(&0xee) {
            s.gap(Role::default(), side, 5, &mut out);
        }
        s.data(Role::default(), side, piece, &mut out);
    }
    s.end(Role::default(), Side::Initiator, &mut out);
    s.end(Role::default(), Side::Responder, &mut out);
});
