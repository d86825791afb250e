//! The TLS layer: between TCP reassembly and HTTP/WebSocket for a
//! connection whose bytes are TLS records. It reads the hellos in the clear
//! (reported as `tls_client_hello` / `tls_server_hello`), and with a key log
//! (`--keylog`, or secrets from the capture file) decrypts the records and
//! hands the plaintext up, so a decrypted `wss://` conversation prints like
//! a plain one (marked `via: keylog`).
//!
//! - [`hello`]: ClientHello and ServerHello parsing.
//! - [`keylog`]: the NSS key log, followed as the application appends.
//! - [`crypto`]: suites, key derivation, record decryption.
//!
//! Per direction the records are framed (5-byte header, length checked),
//! then: before encryption, handshake messages are collected and the hellos
//! read; TLS 1.3 encrypts everything after the ServerHello under the
//! handshake secrets, then (after each side's Finished) under the traffic
//! secrets, renewed by KeyUpdate; TLS 1.2 encrypts after each side's
//! ChangeCipherSpec with keys from the master secret. A connection that
//! cannot be decrypted (no secret, a record that does not verify, a capture
//! that began after the handshake, a suite not supported, a gap) says so
//! once with the reason; its bytes are then counted as skipped, and nothing
//! wrong is printed.

pub mod crypto;
pub mod hello;
pub mod keylog;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crypto::{DecryptError, Decryptor, Suite, TLS12, TLS13};
use hello::{ClientHello, ServerHello};
pub use keylog::{KeyLog, KeyLogError, Secrets};

use super::{Emit, PerSide, RoleFact, Side};
use crate::event::{EventKind, Protocol, StackEvent, TlsEvent};

/// Largest record body allowed (RFC 8446 §5.2: 2^14 + 256; RFC 5246
/// allows 2^14 + 2048 for TLS 1.2 ciphertext).
const RECORD_MAX: usize = (1 << 14) + 2048;
/// Largest handshake message collected in the clear (a ClientHello, a
/// certificate chain is skipped by length without being kept whole).
const HANDSHAKE_KEEP_MAX: usize = 1 << 16;
/// Records held per connection while their secret is not in the key log
/// yet (live: the application writes it during the handshake).
pub const HELD_MAX: usize = 1 << 20;

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_ENCRYPTED_EXTENSIONS: u8 = 8;
const HS_FINISHED: u8 = 20;
const HS_KEY_UPDATE: u8 = 24;

/// Why a connection is not decrypted (the `undecoded` event's reason).
pub mod why {
    pub const NO_KEYLOG: &str = "encrypted: TLS records are not decrypted (no key); bytes skipped \
         (give --keylog FILE with the application's SSLKEYLOGFILE; live with --tls, the plaintext \
         of a process using a hooked OpenSSL comes as events via tls)";
    pub const NO_SECRET: &str =
        "encrypted: no secret for this TLS session in the key log; bytes skipped";
    pub const HELD_CAP: &str = "encrypted: no secret for this TLS session arrived in the key log \
         before 1 MiB of its records waited (the hold cap); bytes skipped";
    pub const BAD_TAG: &str = "encrypted: a TLS record did not decrypt with the logged secret \
         (a wrong key log line, or the record was altered); bytes from there skipped";
    pub const LATE: &str = "encrypted: the capture began after this connection's TLS handshake, \
         so its session (and its key) cannot be known; bytes skipped";
    pub const GAP: &str = "encrypted: bytes of the TLS stream were lost, so the records after \
         them cannot be decrypted; bytes from there skipped";
    pub const MALFORMED: &str =
        "encrypted: the TLS records or handshake are malformed; bytes from there skipped";
    pub const HTTP2: &str = "HTTP/2 (ALPN h2) is not decoded yet: the decrypted bytes are skipped";
}

/// What the layer hands on.
pub enum TlsOut<'a> {
    /// Decrypted application data of a side, in order.
    Plain(Side, &'a [u8]),
    Emit(Emit<'a>),
}

/// Where a direction is in the record protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Records in the clear (the hellos).
    Clear,
    /// TLS 1.3 handshake epoch: the handshake traffic secret.
    Handshake,
    /// Application traffic (TLS 1.3 traffic secret, TLS 1.2 key block).
    Traffic,
}

#[derive(Debug)]
struct Dir {
    /// The start of a record not complete yet.
    buf: Vec<u8>,
    /// Handshake bytes not yet a whole message (clear, or TLS 1.3 inner).
    hs: Vec<u8>,
    /// Bytes of a long handshake message still to skip (not kept).
    hs_skip: usize,
    phase: Phase,
    dec: Option<Decryptor>,
    /// TLS 1.3: the traffic secret `dec` was made from (for KeyUpdate).
    secret: Vec<u8>,
    /// Records waiting for their secret: (header, body), oldest first.
    held: VecDeque<([u8; 5], Vec<u8>)>,
    /// A switch to the traffic epoch after the record being processed.
    to_traffic: bool,
}

impl Dir {
    fn new() -> Self {
        Dir {
            buf: Vec::new(),
            hs: Vec::new(),
            hs_skip: 0,
            phase: Phase::Clear,
            dec: None,
            secret: Vec::new(),
            held: VecDeque::new(),
            to_traffic: false,
        }
    }
}

/// The TLS layer of one connection.
#[derive(Debug)]
pub struct Tls {
    keylog: Option<Arc<KeyLog>>,
    dirs: PerSide<Dir>,
    client: Option<Side>,
    client_random: Option<[u8; 32]>,
    server: Option<ServerHello>,
    suite: Option<Suite>,
    secrets: Option<Secrets>,
    /// Set once the connection cannot be decrypted; the reason was said.
    failed: bool,
    /// The decrypted application protocol is HTTP/2 (said once).
    http2: bool,
    decrypted_once: bool,
    held_bytes: usize,
    /// Records of this session waited for its secret (counted once).
    held_counted: bool,
}

impl Tls {
    pub fn new(keylog: Option<Arc<KeyLog>>) -> Self {
        Tls {
            keylog,
            dirs: PerSide::new(Dir::new(), Dir::new()),
            client: None,
            client_random: None,
            server: None,
            suite: None,
            secrets: None,
            failed: false,
            http2: false,
            decrypted_once: false,
            held_bytes: 0,
            held_counted: false,
        }
    }

    /// Memory held (buffers, records waiting for a secret).
    pub fn mem(&self) -> usize {
        let d = |d: &Dir| {
            d.buf.capacity()
                + d.hs.capacity()
                + d.held.iter().map(|(_, b)| b.capacity() + 5).sum::<usize>()
        };
        std::mem::size_of::<Self>()
            + d(&self.dirs[Side::Initiator])
            + d(&self.dirs[Side::Responder])
    }

    /// Secrets can come: `--keylog` given, or secrets blocks in the file.
    fn usable(&self) -> bool {
        self.keylog.as_ref().is_some_and(|k| k.has_sources())
    }

    /// Gives up on the connection with `reason` (said once), counting the
    /// bytes not decoded.
    fn fail(&mut self, side: Side, reason: &'static str, out: &mut dyn FnMut(TlsOut<'_>)) {
        if self.failed {
            return;
        }
        self.failed = true;
        if let Some(k) = self.keylog.as_ref().filter(|_| reason != why::NO_KEYLOG) {
            let t = &k.tally;
            let counter = match reason {
                why::NO_SECRET | why::HELD_CAP => &t.no_key,
                why::LATE => &t.late,
                why::BAD_TAG | why::GAP | why::MALFORMED => &t.failed,
                _ => &t.unsupported,
            };
            if !self.decrypted_once || reason == why::BAD_TAG {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut skipped = 0u64;
        for s in [Side::Initiator, Side::Responder] {
            let d = &mut self.dirs[s];
            skipped += d.buf.len() as u64;
            skipped += d.held.iter().map(|(_, b)| 5 + b.len() as u64).sum::<u64>();
            d.buf = Vec::new();
            d.held = VecDeque::new();
        }
        self.held_bytes = 0;
        out(TlsOut::Emit(Emit::Event(
            side,
            EventKind::Stack(StackEvent::Undecoded {
                protocol: Protocol::Tls,
                reason,
            }),
        )));
        if skipped > 0 {
            out(TlsOut::Emit(Emit::Skipped(side, skipped)));
        }
    }

    /// In-order bytes of `side`.
    pub fn data(&mut self, side: Side, bytes: &[u8], out: &mut dyn FnMut(TlsOut<'_>)) {
        if self.failed {
            out(TlsOut::Emit(Emit::Skipped(side, bytes.len() as u64)));
            return;
        }
        let mut buf = std::mem::take(&mut self.dirs[side].buf);
        buf.extend_from_slice(bytes);
        let mut at = 0;
        while buf.len() - at >= 5 && !self.failed {
            let header: [u8; 5] = buf[at..at + 5].try_into().expect("5 bytes");
            let len = u16::from_be_bytes([header[3], header[4]]) as usize;
            if !(CT_CCS..=CT_APPDATA + 1).contains(&header[0]) || header[1] != 3 || len > RECORD_MAX
            {
                self.dirs[side].buf = Vec::new();
                out(TlsOut::Emit(Emit::Skipped(side, (buf.len() - at) as u64)));
                self.fail(side, why::MALFORMED, out);
                return;
            }
            if buf.len() - at < 5 + len {
                break;
            }
            // Decrypted in place: the record is not copied again.
            let body = &mut buf[at + 5..at + 5 + len];
            at += 5 + len;
            self.record(side, header, body, out);
        }
        if self.failed {
            if buf.len() > at {
                out(TlsOut::Emit(Emit::Skipped(side, (buf.len() - at) as u64)));
            }
            return;
        }
        buf.drain(..at);
        self.dirs[side].buf = buf;
        self.retry_held(out);
    }

    /// `len` bytes of `side` are lost: record boundaries and sequence
    /// numbers with them.
    pub fn gap(&mut self, side: Side, _len: u64, out: &mut dyn FnMut(TlsOut<'_>)) {
        self.fail(side, why::GAP, out);
    }

    /// `side` ended: records still waiting for a secret get a last look.
    pub fn end(&mut self, side: Side, out: &mut dyn FnMut(TlsOut<'_>)) {
        self.retry_held(out);
        let waiting = self.dirs[side].held.len() + self.dirs[side.other()].held.len();
        if waiting > 0 && !self.failed {
            self.fail(side, why::NO_SECRET, out);
        }
        if !self.failed && !self.dirs[side].buf.is_empty() {
            let n = self.dirs[side].buf.len() as u64;
            self.dirs[side].buf.clear();
            out(TlsOut::Emit(Emit::Skipped(side, n)));
        }
    }

    fn record(
        &mut self,
        side: Side,
        header: [u8; 5],
        body: &mut [u8],
        out: &mut dyn FnMut(TlsOut<'_>),
    ) {
        let phase = self.dirs[side].phase;
        match (phase, header[0]) {
            (_, CT_CCS) => {
                // TLS 1.2: this side encrypts from its next record on.
                // TLS 1.3: middlebox compatibility only.
                if self.server.as_ref().is_some_and(|s| s.version == TLS12) {
                    self.dirs[side].phase = Phase::Traffic;
                }
            }
            (Phase::Clear, CT_HANDSHAKE) => self.clear_handshake(side, body, out),
            (Phase::Clear, CT_ALERT) => {}
            (Phase::Clear, _) => {
                if !self.usable() {
                    self.fail(side, why::NO_KEYLOG, out);
                } else if self.client_random.is_none() {
                    self.fail(side, why::LATE, out);
                } else {
                    self.fail(side, why::MALFORMED, out);
                }
            }
            (_, _) => self.encrypted(side, header, body, out),
        }
    }

    /// Handshake messages in the clear: the hellos.
    fn clear_handshake(&mut self, side: Side, body: &[u8], out: &mut dyn FnMut(TlsOut<'_>)) {
        let mut msgs = Vec::new();
        if !collect(&mut self.dirs[side], body, &mut msgs) {
            return self.fail(side, why::MALFORMED, out);
        }
        for (ty, msg) in msgs {
            match ty {
                HS_CLIENT_HELLO => {
                    let Some(h) = hello::client_hello(&msg) else {
                        return self.fail(side, why::MALFORMED, out);
                    };
                    self.client = Some(side);
                    self.client_random = Some(h.random);
                    out(TlsOut::Emit(Emit::Role(RoleFact::Suggests(side))));
                    out(TlsOut::Emit(Emit::Event(side, client_hello_event(&h))));
                }
                HS_SERVER_HELLO => {
                    let Some(h) = hello::server_hello(&msg) else {
                        return self.fail(side, why::MALFORMED, out);
                    };
                    out(TlsOut::Emit(Emit::Event(
                        side,
                        EventKind::Tls(TlsEvent::ServerHello {
                            version: h.version,
                            cipher_suite: h.suite,
                            alpn: h.alpn.clone(),
                            retry: h.retry,
                        }),
                    )));
                    if h.retry {
                        continue; // a second ClientHello, then the real one
                    }
                    if !self.usable() {
                        self.server = Some(h);
                        return self.fail(side, why::NO_KEYLOG, out);
                    }
                    if self.client_random.is_none() {
                        self.server = Some(h);
                        return self.fail(side, why::LATE, out);
                    }
                    match crypto::suite(h.version, h.suite) {
                        Ok(s) => self.suite = Some(s),
                        Err(reason) => {
                            self.server = Some(h);
                            return self.fail(side, reason, out);
                        }
                    }
                    if h.version == TLS13 {
                        for s in [Side::Initiator, Side::Responder] {
                            self.dirs[s].phase = Phase::Handshake;
                        }
                    }
                    if h.alpn.as_deref() == Some("h2") {
                        self.http2 = true;
                    }
                    self.server = Some(h);
                }
                _ => {}
            }
        }
    }

    /// The secrets of this session as far as `enough` needs them, looked
    /// up (again) when what is known is not enough.
    fn secrets(&mut self, enough: impl Fn(&Secrets) -> bool) -> Option<&Secrets> {
        if !self.secrets.as_ref().is_some_and(&enough) {
            let random = self.client_random?;
            self.secrets = self.keylog.as_ref()?.lookup_for(&random, &enough);
        }
        self.secrets.as_ref()
    }

    /// Makes `side`'s decryptor for its phase, if its secret is known.
    fn decryptor(&mut self, side: Side) -> bool {
        if self.dirs[side].dec.is_some() {
            return true;
        }
        let (Some(suite), Some(client)) = (self.suite, self.client) else {
            return false;
        };
        let is_client = side == client;
        let phase = self.dirs[side].phase;
        let version = self.server.as_ref().map_or(0, |s| s.version);
        let server_random = self.server.as_ref().map(|s| s.random);
        let client_random = self.client_random;
        let needed = |s: &Secrets| -> bool {
            if version == TLS12 {
                return s.master.is_some();
            }
            match (phase, is_client) {
                (Phase::Handshake, true) => s.client_handshake.is_some(),
                (Phase::Handshake, false) => s.server_handshake.is_some(),
                (_, true) => s.client_traffic.is_some(),
                (_, false) => s.server_traffic.is_some(),
            }
        };
        let Some(secrets) = self.secrets(needed).cloned() else {
            return false;
        };
        if version == TLS12 {
            let (Some(master), Some(cr), Some(sr)) =
                (&secrets.master, client_random, server_random)
            else {
                return false;
            };
            let Some((c, s)) = Decryptor::tls12(suite, master, &cr, &sr) else {
                return false;
            };
            self.dirs[side].dec = Some(if is_client { c } else { s });
            return true;
        }
        let secret = match (phase, is_client) {
            (Phase::Handshake, true) => &secrets.client_handshake,
            (Phase::Handshake, false) => &secrets.server_handshake,
            (_, true) => &secrets.client_traffic,
            (_, false) => &secrets.server_traffic,
        };
        let Some(secret) = secret.clone() else {
            return false;
        };
        let Some(dec) = Decryptor::tls13(suite, &secret) else {
            return false;
        };
        let d = &mut self.dirs[side];
        d.dec = Some(dec);
        d.secret = secret;
        true
    }

    /// An encrypted record of `side`.
    fn encrypted(
        &mut self,
        side: Side,
        header: [u8; 5],
        body: &mut [u8],
        out: &mut dyn FnMut(TlsOut<'_>),
    ) {
        if !self.usable() {
            return self.fail(side, why::NO_KEYLOG, out);
        }
        if !self.dirs[side].held.is_empty() || !self.decryptor(side) {
            if self.held_bytes == 0 && !self.held_counted {
                self.held_counted = true;
                if let Some(k) = &self.keylog {
                    k.tally.held.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.held_bytes += 5 + body.len();
            self.dirs[side].held.push_back((header, body.to_vec()));
            if self.held_bytes > HELD_MAX {
                self.fail(side, why::HELD_CAP, out);
            }
            return;
        }
        self.open(side, header, body, out);
    }

    /// Records held for a secret: decrypted, in order, once it is there.
    fn retry_held(&mut self, out: &mut dyn FnMut(TlsOut<'_>)) {
        for side in [Side::Initiator, Side::Responder] {
            while !self.failed && !self.dirs[side].held.is_empty() && self.decryptor(side) {
                let Some((header, mut body)) = self.dirs[side].held.pop_front() else {
                    break;
                };
                self.held_bytes -= 5 + body.len();
                self.open(side, header, &mut body, out);
            }
        }
    }

    fn open(
        &mut self,
        side: Side,
        header: [u8; 5],
        body: &mut [u8],
        out: &mut dyn FnMut(TlsOut<'_>),
    ) {
        let version = self.server.as_ref().map_or(0, |s| s.version);
        // The ciphertext, kept for a second try in the TLS 1.3 handshake
        // epoch only (a few records per connection).
        let saved =
            (version == TLS13 && self.dirs[side].phase == Phase::Handshake).then(|| body.to_vec());
        let dec = self.dirs[side].dec.as_mut().expect("decryptor made");
        let plain = match dec.open(&header, body) {
            Ok(range) => range,
            Err(DecryptError::BadTag) if saved.is_some() => {
                // A TLS 1.3 Finished not recognised: try the traffic secret.
                self.dirs[side].phase = Phase::Traffic;
                self.dirs[side].dec = None;
                body.copy_from_slice(&saved.expect("checked"));
                if !self.decryptor(side) {
                    return self.fail(side, why::BAD_TAG, out);
                }
                match self.dirs[side]
                    .dec
                    .as_mut()
                    .expect("made")
                    .open(&header, body)
                {
                    Ok(range) => range,
                    Err(_) => return self.fail(side, why::BAD_TAG, out),
                }
            }
            Err(DecryptError::BadTag) => return self.fail(side, why::BAD_TAG, out),
            Err(DecryptError::TooShort) => return self.fail(side, why::MALFORMED, out),
        };
        let mut body = &body[plain];
        if !self.decrypted_once {
            self.decrypted_once = true;
            if let Some(k) = &self.keylog {
                k.tally.decrypted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let content_type = if version == TLS13 {
            // The inner type is the last nonzero byte; zeros are padding.
            let Some(end) = body.iter().rposition(|&b| b != 0) else {
                return self.fail(side, why::MALFORMED, out);
            };
            let ty = body[end];
            body = &body[..end];
            ty
        } else {
            header[0]
        };
        match content_type {
            CT_APPDATA => {
                if self.http2 {
                    if !std::mem::replace(&mut self.failed, true) {
                        // Said of decrypted bytes: marked as such.
                        out(TlsOut::Emit(Emit::Decrypted(
                            side,
                            EventKind::Stack(StackEvent::Undecoded {
                                protocol: Protocol::Http2,
                                reason: why::HTTP2,
                            }),
                        )));
                    }
                    out(TlsOut::Emit(Emit::Skipped(side, body.len() as u64)));
                    return;
                }
                out(TlsOut::Plain(side, body));
            }
            CT_HANDSHAKE if version == TLS13 => self.inner_handshake(side, body, out),
            _ => {} // alerts, TLS 1.2 Finished
        }
        let d = &mut self.dirs[side];
        if std::mem::take(&mut d.to_traffic) {
            d.phase = Phase::Traffic;
            d.dec = None;
        }
    }

    /// TLS 1.3 handshake messages under encryption: Finished ends the
    /// handshake epoch, KeyUpdate renews the traffic secret, the server's
    /// EncryptedExtensions carry the ALPN chosen.
    fn inner_handshake(&mut self, side: Side, body: &[u8], out: &mut dyn FnMut(TlsOut<'_>)) {
        let mut msgs = Vec::new();
        if !collect(&mut self.dirs[side], body, &mut msgs) {
            return self.fail(side, why::MALFORMED, out);
        }
        for (ty, msg) in msgs {
            match ty {
                HS_FINISHED if self.dirs[side].phase == Phase::Handshake => {
                    self.dirs[side].to_traffic = true;
                }
                HS_KEY_UPDATE if self.dirs[side].phase == Phase::Traffic => {
                    let Some(suite) = self.suite else { return };
                    let d = &mut self.dirs[side];
                    match Decryptor::next_secret(suite.hash, &d.secret)
                        .and_then(|s| Decryptor::tls13(suite, &s).map(|dec| (s, dec)))
                    {
                        Some((s, dec)) => {
                            d.secret = s;
                            d.dec = Some(dec);
                        }
                        None => return self.fail(side, why::MALFORMED, out),
                    }
                }
                HS_ENCRYPTED_EXTENSIONS
                    if hello::encrypted_extensions_alpn(&msg).as_deref() == Some("h2") =>
                {
                    self.http2 = true;
                }
                _ => {}
            }
        }
    }
}

/// Adds `body` to `d`'s handshake bytes and moves the complete messages
/// (type, body) to `msgs`; a message longer than [`HANDSHAKE_KEEP_MAX`]
/// (a certificate chain) is skipped by its length. False when a length is
/// impossible.
fn collect(d: &mut Dir, mut body: &[u8], msgs: &mut Vec<(u8, Vec<u8>)>) -> bool {
    if d.hs_skip > 0 {
        let n = d.hs_skip.min(body.len());
        d.hs_skip -= n;
        body = &body[n..];
    }
    d.hs.extend_from_slice(body);
    let mut at = 0;
    while d.hs.len() - at >= 4 {
        let ty = d.hs[at];
        let len = u32::from_be_bytes([0, d.hs[at + 1], d.hs[at + 2], d.hs[at + 3]]) as usize;
        if len > HANDSHAKE_KEEP_MAX {
            if len > 1 << 24 {
                return false;
            }
            let have = d.hs.len() - at - 4;
            if have >= len {
                at += 4 + len;
                continue;
            }
            d.hs_skip = len - have;
            at = d.hs.len();
            break;
        }
        if d.hs.len() - at - 4 < len {
            break;
        }
        msgs.push((ty, d.hs[at + 4..at + 4 + len].to_vec()));
        at += 4 + len;
    }
    d.hs.drain(..at);
    true
}

fn client_hello_event(h: &ClientHello) -> EventKind<'static> {
    EventKind::Tls(TlsEvent::ClientHello {
        sni: h.sni.clone(),
        alpn: h.alpn.clone(),
        versions: h.versions.clone(),
        cipher_suites: h.cipher_suites,
    })
}

/// A version as people write it (`1.3`), for the events.
pub fn version_name(v: u16) -> String {
    match v {
        0x0304 => "1.3".into(),
        0x0303 => "1.2".into(),
        0x0302 => "1.1".into(),
        0x0301 => "1.0".into(),
        0x0300 => "ssl3".into(),
        v if v & 0x0f0f == 0x0a0a => "grease".into(),
        v => format!("{v:#06x}"),
    }
}

#[cfg(test)]
mod tests;

/// The IANA name of the suites wstap knows, else the number.
pub fn suite_name(id: u16) -> String {
    match id {
        0x1301 => "TLS_AES_128_GCM_SHA256".into(),
        0x1302 => "TLS_AES_256_GCM_SHA384".into(),
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256".into(),
        0xC02B => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
        0xC02C => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into(),
        0xC02F => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
        0xC030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into(),
        0xCCA8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256".into(),
        0xCCA9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".into(),
        0x009C => "TLS_RSA_WITH_AES_128_GCM_SHA256".into(),
        0x009D => "TLS_RSA_WITH_AES_256_GCM_SHA384".into(),
        id => format!("{id:#06x}"),
    }
}
