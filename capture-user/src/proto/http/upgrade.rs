//! The WebSocket-specific parts of the handshake: the accept value
//! (RFC 6455 §4.2.2) and permessage-deflate parameters (RFC 7692 §7.1).

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::event::DeflateParams;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The Sec-WebSocket-Accept a server must send for `key`.
pub fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// permessage-deflate parameters from a Sec-WebSocket-Extensions value (the
/// server's choice), or `None` when that extension is not in it. Unknown or
/// malformed parameters are ignored; window bits outside 8..=15 fall back
/// to 15.
pub fn parse_deflate(ext: &str) -> Option<DeflateParams> {
    let chosen = ext.split(',').find(|e| {
        e.split(';')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("permessage-deflate"))
    })?;
    let mut p = DeflateParams {
        server_max_window_bits: 15,
        client_max_window_bits: 15,
        ..Default::default()
    };
    for param in chosen.split(';').skip(1) {
        let (k, v) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (param.trim(), None),
        };
        let bits = || {
            v.and_then(|v| v.parse::<u8>().ok())
                .filter(|b| (8..=15).contains(b))
                .unwrap_or(15)
        };
        match k.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => p.server_no_context_takeover = true,
            "client_no_context_takeover" => p.client_no_context_takeover = true,
            "server_max_window_bits" => p.server_max_window_bits = bits(),
            "client_max_window_bits" => p.client_max_window_bits = bits(),
            _ => {}
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept() {
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            accept_for(" dGhlIHNhbXBsZSBub25jZQ== "),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn deflate_params() {
        assert_eq!(parse_deflate("x-webkit-deflate-frame"), None);
        let p = parse_deflate("permessage-deflate").unwrap();
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (15, 15)
        );
        assert!(!p.server_no_context_takeover && !p.client_no_context_takeover);
        let p = parse_deflate(
            "foo, permessage-deflate; server_no_context_takeover; client_max_window_bits=\"10\"; server_max_window_bits=9; client_no_context_takeover",
        )
        .unwrap();
        assert_eq!(
            p,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 9,
                client_max_window_bits: 10
            }
        );
        assert_eq!(
            parse_deflate("permessage-deflate; server_max_window_bits=99")
                .unwrap()
                .server_max_window_bits,
            15
        );
    }
}
