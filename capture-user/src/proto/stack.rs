//! The protocol stack of one connection: which layer each side's bytes go
//! to, and the wiring between the layers.
//!
//! A side starts in detection; its first bytes choose its route:
//! - an HTTP request or response: the [`Http`] layer, which hands the bytes
//!   after a 101 up to the [`WebSocket`] layer;
//! - a TLS record: the [`Tls`] layer, which reads the hellos and, with a
//!   key log, decrypts; its plaintext goes through the same routes again
//!   (detection, HTTP, WebSocket), its events marked as decrypted;
//! - anything else (frames picked up mid-stream, garbage): the WebSocket
//!   layer directly, hunting for frame boundaries (it reports once, and
//!   gives up, when there are none).
//!
//! The stack keeps a running copy of the connection's [`Role`] during a
//! call, so that what one layer learns (an HTTP request, masked frames)
//! reaches the next layer called in the same call; every fact is also
//! passed out, for the connection to keep.

use std::cell::Cell;
use std::mem;
use std::sync::Arc;

use super::detect::{self, Class, PROBE};
use super::http::{Http, HttpOut};
use super::tls::{KeyLog, Tls, TlsOut};
use super::websocket::{Start, WebSocket};
use super::{Cx, Emit, Layer, PerSide, ProtoConfig, Role, RoleFact, Side};

/// Where a side's bytes go.
enum Route {
    /// Nothing decided yet; up to [`PROBE`] first bytes.
    Detect(Vec<u8>),
    /// The HTTP layer (and through it, after an upgrade, WebSocket).
    Http,
    /// The WebSocket layer directly.
    Ws,
    /// Nothing more to decode on this side.
    Ignore,
}

/// The layers of one connection: TLS (when a side's bytes are TLS
/// records) under the plaintext routes.
pub struct Stack {
    layers: Layers,
    /// The TLS layer, made when a side's first bytes are a TLS record.
    tls: Option<Box<Tls>>,
    /// Sides whose bytes go through [`Tls`] first.
    encrypted: PerSide<bool>,
    keylog: Option<Arc<KeyLog>>,
}

/// The plaintext layers and their routes.
struct Layers {
    routes: PerSide<Route>,
    http: Http,
    ws: WebSocket,
}

/// What [`Stack`] calls need beside the layers: the other routes, the
/// WebSocket layer, the running role and the caller's output.
struct Wiring<'s, 'o> {
    routes: &'s mut PerSide<Route>,
    ws: &'s mut WebSocket,
    role: Role,
    out: &'o mut dyn FnMut(Emit<'_>),
}

impl Wiring<'_, '_> {
    fn emit(&mut self, e: Emit<'_>) {
        if let Emit::Role(fact) = e {
            self.role.learn(fact);
        }
        (self.out)(e);
    }

    fn cx(&self, side: Side) -> Cx {
        Cx {
            role: self.role,
            peer_silent: matches!(&self.routes[side.other()], Route::Detect(b) if b.is_empty()),
        }
    }

    /// Calls the WebSocket layer, passing its facts through this wiring.
    fn ws(&mut self, side: Side, call: impl FnOnce(&mut WebSocket, Cx, &mut dyn FnMut(Emit<'_>))) {
        let cx = self.cx(side);
        let Wiring { ws, role, out, .. } = self;
        call(ws, cx, &mut |e| {
            if let Emit::Role(fact) = e {
                role.learn(fact);
            }
            out(e)
        });
    }

    /// What the HTTP layer hands up.
    fn up_from_http(&mut self, o: HttpOut<'_>) {
        match o {
            HttpOut::Emit(e) => self.emit(e),
            HttpOut::Start(side, how) => self.ws.start(side, how),
            HttpOut::Upgraded { server, deflate } => {
                self.ws.handshake(deflate);
                let client = server.other();
                if !self.ws.started(client) {
                    self.ws.start(client, Start::Framed);
                    // A client side still in detection goes straight to
                    // frames, with what it probed so far.
                    if let Route::Detect(probe) = &mut self.routes[client] {
                        let probe = mem::take(probe);
                        self.routes[client] = Route::Ws;
                        self.ws(client, |ws, cx, out| ws.data(cx, client, &probe, out));
                    }
                }
                self.ws.start(server, Start::Framed);
            }
            HttpOut::Data(side, bytes) => {
                self.ws(side, |ws, cx, out| ws.data(cx, side, bytes, out))
            }
            HttpOut::Gap(side, n) => self.ws(side, |ws, cx, out| ws.gap(cx, side, n, out)),
            HttpOut::End(side) => self.ws(side, |ws, cx, out| ws.end(cx, side, out)),
            HttpOut::Stop(side) => {
                self.routes[side] = Route::Ignore;
                self.ws.discard(side);
            }
        }
    }
}

impl Stack {
    pub fn new(cfg: &ProtoConfig) -> Self {
        Stack {
            layers: Layers::new(cfg),
            tls: None,
            encrypted: PerSide::new(false, false),
            keylog: cfg.keylog.clone(),
        }
    }

    /// Memory the stack holds (counted against the decoder's budget).
    #[inline]
    pub fn mem(&self) -> usize {
        std::mem::size_of::<Self>() + self.layers.mem() + self.tls.as_ref().map_or(0, |t| t.mem())
    }

    /// In-order bytes of `side`, exactly once each, cut anywhere.
    pub fn data(&mut self, role: Role, side: Side, data: &[u8], out: &mut dyn FnMut(Emit<'_>)) {
        if self.encrypted[side] {
            return self.tls_call(role, out, |tls, o| tls.data(side, data, o));
        }
        if let Some(records) = self.layers.data(role, side, data, true, out) {
            self.encrypted[side] = true;
            let keylog = self.keylog.clone();
            self.tls.get_or_insert_with(|| Box::new(Tls::new(keylog)));
            self.tls_call(role, out, |tls, o| tls.data(side, &records, o));
        }
    }

    /// `len` bytes of `side` are missing (never captured). The gap event
    /// itself is the caller's; the layers only find their footing again.
    pub fn gap(&mut self, role: Role, side: Side, len: u64, out: &mut dyn FnMut(Emit<'_>)) {
        if self.encrypted[side] {
            self.tls_call(role, out, |tls, o| tls.gap(side, len, o));
            let mut decrypted = as_decrypted(out);
            self.layers.gap(role, side, len, &mut decrypted);
            return;
        }
        self.layers.gap(role, side, len, out);
    }

    /// `side` ended (FIN, RST, eviction or end of capture).
    pub fn end(&mut self, role: Role, side: Side, out: &mut dyn FnMut(Emit<'_>)) {
        if self.encrypted[side] {
            self.tls_call(role, out, |tls, o| tls.end(side, o));
            let mut decrypted = as_decrypted(out);
            self.layers.end(role, side, &mut decrypted);
            return;
        }
        self.layers.end(role, side, out);
    }

    /// Runs one call of the TLS layer: its plaintext goes through the
    /// plaintext routes (events marked decrypted), its own events out. Role
    /// facts learned by one piece of plaintext reach the next.
    fn tls_call(
        &mut self,
        role: Role,
        out: &mut dyn FnMut(Emit<'_>),
        call: impl FnOnce(&mut Tls, &mut dyn FnMut(TlsOut<'_>)),
    ) {
        let Stack { layers, tls, .. } = self;
        let Some(tls) = tls.as_deref_mut() else {
            return;
        };
        let role = Cell::new(role);
        let learn = |e: &Emit<'_>| {
            if let Emit::Role(fact) = e {
                let mut r = role.get();
                r.learn(*fact);
                role.set(r);
            }
        };
        call(tls, &mut |o| match o {
            TlsOut::Plain(side, bytes) => {
                // Plaintext is never TLS again: a nested record is data.
                let nested = layers.data(role.get(), side, bytes, false, &mut |e| {
                    learn(&e);
                    out(decrypted(e))
                });
                debug_assert!(nested.is_none());
            }
            TlsOut::Emit(e) => {
                learn(&e);
                out(e)
            }
        });
    }
}

/// An event of the plaintext layers, marked as decrypted.
fn decrypted(e: Emit<'_>) -> Emit<'_> {
    match e {
        Emit::Event(s, k) => Emit::Decrypted(s, k),
        other => other,
    }
}

/// `out`, with the plaintext layers' events marked decrypted.
fn as_decrypted<'o>(out: &'o mut dyn FnMut(Emit<'_>)) -> impl FnMut(Emit<'_>) + 'o {
    move |e| out(decrypted(e))
}

impl Layers {
    fn new(cfg: &ProtoConfig) -> Self {
        Layers {
            routes: PerSide::new(Route::Detect(Vec::new()), Route::Detect(Vec::new())),
            http: Http::default(),
            ws: WebSocket::new(cfg),
        }
    }

    /// The layers apart, for one call.
    fn wiring<'s, 'o>(
        &'s mut self,
        role: Role,
        out: &'o mut dyn FnMut(Emit<'_>),
    ) -> (Wiring<'s, 'o>, &'s mut Http) {
        let Layers { routes, http, ws } = self;
        let w = Wiring {
            routes,
            ws,
            role,
            out,
        };
        (w, http)
    }

    fn mem(&self) -> usize {
        let probes: usize = self
            .routes
            .both()
            .iter()
            .map(|r| match r {
                Route::Detect(b) => b.capacity(),
                _ => 0,
            })
            .sum();
        std::mem::size_of::<Self>() + probes + self.http.mem() + self.ws.mem()
    }

    /// In-order bytes of `side`, exactly once each, cut anywhere. When the
    /// side's first bytes are a TLS record, nothing is routed: its bytes so
    /// far come back, for the TLS layer (the route stays in detection, for
    /// the plaintext).
    fn data(
        &mut self,
        role: Role,
        side: Side,
        data: &[u8],
        tls_allowed: bool,
        out: &mut dyn FnMut(Emit<'_>),
    ) -> Option<Vec<u8>> {
        let (mut w, http) = self.wiring(role, out);
        let mut data = data;
        if let Route::Detect(probe) = &mut w.routes[side] {
            let take = (PROBE - probe.len()).min(data.len());
            probe.extend_from_slice(&data[..take]);
            let class = detect::classify(probe);
            if class == Class::NeedMore && probe.len() < PROBE {
                return None; // all of `data` is in the probe
            }
            let early = mem::take(probe);
            data = &data[take..];
            w.routes[side] = match class {
                Class::Request | Class::Response => {
                    let is_req = class == Class::Request;
                    let client = if is_req { side } else { side.other() };
                    w.emit(Emit::Role(RoleFact::Suggests(client)));
                    http.begin(side, is_req);
                    Route::Http
                }
                Class::Tls if tls_allowed => {
                    // A TLS record never starts a valid WebSocket frame
                    // (its first byte has RSV1 and a reserved opcode):
                    // hunting would only find false frames in ciphertext.
                    // The TLS layer takes it; plaintext starts detection
                    // afresh.
                    let mut records = early;
                    records.extend_from_slice(data);
                    return Some(records);
                }
                // Decrypted plaintext that looks like TLS: just bytes.
                Class::Tls | Class::Unknown | Class::NeedMore => {
                    w.ws.start(side, Start::Hunt);
                    Route::Ws
                }
            };
            Self::route(&mut w, http, side, &early);
        }
        if !data.is_empty() {
            Self::route(&mut w, http, side, data);
        }
        None
    }

    /// Sides the HTTP layer only forwards (after an upgrade) go straight to
    /// the WebSocket layer from now on: the same bytes, gaps and ends reach
    /// it, one hop shorter per segment.
    fn bypass_forwarding(routes: &mut PerSide<Route>, http: &Http) {
        for side in [Side::Initiator, Side::Responder] {
            if matches!(routes[side], Route::Http) && http.forwards(side) {
                routes[side] = Route::Ws;
            }
        }
    }

    /// Hands `data` of `side` to the layer its route names.
    fn route(w: &mut Wiring<'_, '_>, http: &mut Http, side: Side, data: &[u8]) {
        match w.routes[side] {
            Route::Detect(_) => {}
            Route::Ignore => w.emit(Emit::Skipped(side, data.len() as u64)),
            Route::Http => {
                let cx = w.cx(side);
                http.data(cx, side, data, &mut |o| w.up_from_http(o));
                Self::bypass_forwarding(w.routes, http);
            }
            Route::Ws => w.ws(side, |ws, cx, out| ws.data(cx, side, data, out)),
        }
    }

    fn gap(&mut self, role: Role, side: Side, len: u64, out: &mut dyn FnMut(Emit<'_>)) {
        let (mut w, http) = self.wiring(role, out);
        match &mut w.routes[side] {
            Route::Detect(b) => {
                let n = b.len() as u64;
                b.clear();
                if n > 0 {
                    w.emit(Emit::Skipped(side, n));
                }
            }
            Route::Http => {
                let cx = w.cx(side);
                http.gap(cx, side, len, &mut |o| w.up_from_http(o));
                Self::bypass_forwarding(w.routes, http);
            }
            Route::Ws => w.ws(side, |ws, cx, out| ws.gap(cx, side, len, out)),
            Route::Ignore => {}
        }
    }

    fn end(&mut self, role: Role, side: Side, out: &mut dyn FnMut(Emit<'_>)) {
        let (mut w, http) = self.wiring(role, out);
        // Bytes still in detection are too few to classify: try them as
        // frames.
        if let Route::Detect(b) = &mut w.routes[side] {
            if !b.is_empty() {
                let early = mem::take(b);
                w.routes[side] = Route::Ws;
                w.ws.start(side, Start::Hunt);
                w.ws(side, |ws, cx, out| ws.data(cx, side, &early, out));
            }
        }
        match w.routes[side] {
            Route::Http => {
                let cx = w.cx(side);
                http.end(cx, side, &mut |o| w.up_from_http(o));
            }
            Route::Ws => w.ws(side, |ws, cx, out| ws.end(cx, side, out)),
            Route::Detect(_) | Route::Ignore => {}
        }
        w.routes[side] = Route::Ignore;
    }
}
