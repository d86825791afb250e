//! One TCP connection: decides what each half-stream carries (HTTP request
//! heads, HTTP response heads, or WebSocket frames without a handshake),
//! follows the upgrade handshake, then hands both halves to [`WsStream`]s.
//!
//! The two halves are fed independently; the only cross-talk is the upgrade:
//! client bytes after an upgrade request are held (bounded) until the reply
//! says whether they are frames (101) or HTTP (anything else).

use std::collections::VecDeque;
use std::mem;

use super::deflate::DeflateConfig;
use super::stream::{Cx, DeflateMode, WsStream};
use crate::event::{DeflateParams, Direction, EventKind};
use crate::proto::http::{
    self, accept_for, parse_deflate, BodySkip, HeadReader, HeadStep, HttpError, Request, Response,
    UpgradeRequest,
};
use crate::proto::{ProtoConfig, ProtoEvent, ProtoStats, Side};

/// Client bytes held while the upgrade reply is awaited.
const MAX_EARLY: usize = 256 * 1024;
/// Requests remembered while their responses are awaited (pipelining).
const MAX_PENDING: usize = 64;
/// Longest request-method prefix needed to classify a half-stream.
const PROBE: usize = 8;

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// What one half-stream is being decoded as.
enum Half {
    /// Nothing decided yet; up to [`PROBE`] first bytes.
    Detect(Vec<u8>),
    /// HTTP heads (requests on the client side when `is_req`, responses on
    /// the server side), bodies skipped.
    Http {
        is_req: bool,
        head: HeadReader,
        body: Option<BodySkip>,
    },
    /// Client bytes after an upgrade request, held until the reply.
    AwaitUpgrade {
        early: Vec<u8>,
        lost: bool,
    },
    Ws(Box<WsStream>),
    /// Nothing more to decode here.
    Ignore,
}

/// An outstanding request, for pairing with its response.
struct Pending {
    /// A HEAD request: its response has no body.
    head: bool,
    /// A CONNECT request: a 2xx reply turns the connection into a tunnel.
    connect: bool,
    upgrade: Option<(UpgradeRequest, Option<String>, String)>,
}

enum Class {
    Request,
    Response,
    Frames,
    NeedMore,
}

fn classify(b: &[u8]) -> Class {
    let mut need_more = false;
    for m in METHODS.iter().copied().chain([&b"HTTP/1."[..]]) {
        if b.starts_with(m) {
            return if m == b"HTTP/1." {
                Class::Response
            } else {
                Class::Request
            };
        }
        if m.starts_with(b) {
            need_more = true;
        }
    }
    if need_more {
        Class::NeedMore
    } else {
        Class::Frames
    }
}

/// True when `b` starts with a header a client could send first: a known
/// data or control opcode (not a continuation), no RSV2/RSV3, mask bit set.
/// HTTP text ("GET ...") and unmasked bytes fail it.
fn starts_like_client_frame(b: &[u8]) -> bool {
    let [b0, b1, ..] = *b else {
        return false;
    };
    let opcode = b0 & 0x0f;
    matches!(opcode, 1 | 2 | 8 | 9 | 10) && b0 & 0x30 == 0 && b1 & 0x80 != 0
}

/// Per-connection protocol state: handshake, then frames in both directions.
pub struct Session {
    cfg: ProtoConfig,
    stats: ProtoStats,
    /// The client's side, once known (SYN, HTTP request, or masked frames).
    client: Option<Side>,
    halves: [Half; 2],
    pending: VecDeque<Pending>,
    /// A 101 was seen (frames follow a handshake).
    handshake: bool,
    deflate: Option<DeflateParams>,
    not_ws_reported: bool,
}

fn idx(s: Side) -> usize {
    match s {
        Side::Initiator => 0,
        Side::Responder => 1,
    }
}

impl Session {
    /// `initiator_known`: true when the SYN was seen, so `Side::Initiator` is
    /// surely the client.
    pub fn new(cfg: &ProtoConfig, initiator_known: bool) -> Self {
        Session {
            cfg: cfg.clone(),
            stats: ProtoStats::default(),
            client: initiator_known.then_some(Side::Initiator),
            halves: [Half::Detect(Vec::new()), Half::Detect(Vec::new())],
            pending: VecDeque::new(),
            handshake: false,
            deflate: None,
            not_ws_reported: false,
        }
    }

    /// In-order bytes of one half-stream, exactly once each, cut anywhere.
    pub fn on_data(&mut self, side: Side, data: &[u8], out: &mut dyn FnMut(ProtoEvent<'_>)) {
        let mut half = mem::replace(&mut self.halves[idx(side)], Half::Ignore);
        self.run(side, &mut half, data, out);
        self.put_back(side, half);
    }

    /// `bytes` of this half-stream are missing (never captured). The `Gap`
    /// event itself is the caller's; this only resets decoding state.
    pub fn on_gap(&mut self, side: Side, bytes: u64, out: &mut dyn FnMut(ProtoEvent<'_>)) {
        let mut half = mem::replace(&mut self.halves[idx(side)], Half::Ignore);
        match &mut half {
            Half::Detect(b) => b.clear(),
            Half::Http { body, .. } => {
                // A gap inside a length-delimited body is skipped. Anywhere
                // else the HTTP framing is lost; the likeliest cause is a
                // snap length that cut the upgrade handshake, so look for
                // WebSocket frames after it (the resync rules give up
                // quietly on plain HTTP).
                if !body.as_mut().is_some_and(|b| b.gap(bytes)) {
                    half = Half::Ws(Box::new(WsStream::hunting()));
                }
            }
            Half::AwaitUpgrade { early, lost } => {
                early.clear();
                *lost = true;
            }
            Half::Ws(s) => {
                let mut cx = self.cx(side);
                s.gap(bytes, &mut cx, out);
            }
            Half::Ignore => {}
        }
        self.put_back(side, half);
    }

    /// This half-stream ended (FIN, RST, eviction or end of capture).
    pub fn on_end(&mut self, side: Side, out: &mut dyn FnMut(ProtoEvent<'_>)) {
        let mut half = mem::replace(&mut self.halves[idx(side)], Half::Ignore);
        if let Half::Detect(b) = &mut half {
            if !b.is_empty() {
                let early = mem::take(b);
                half = Half::Ws(Box::new(WsStream::hunting()));
                self.run(side, &mut half, &early, out);
            }
        }
        if let Half::Ws(s) = &mut half {
            let mut cx = self.cx(side);
            s.end(&mut cx, out);
        }
        self.put_back(side, Half::Ignore);
    }

    /// Counters for the exit summary.
    pub fn stats(&self) -> &ProtoStats {
        &self.stats
    }

    /// Restores a half taken out for processing, unless processing the
    /// other side replaced it meanwhile (it never does for the same side).
    fn put_back(&mut self, side: Side, half: Half) {
        self.halves[idx(side)] = half;
    }

    fn dir(&self, side: Side) -> Direction {
        match self.client {
            Some(c) if c == side => Direction::ClientToServer,
            Some(_) => Direction::ServerToClient,
            None => Direction::Unknown,
        }
    }

    fn emit(&self, side: Side, out: &mut dyn FnMut(ProtoEvent<'_>), kind: EventKind<'_>) {
        out(ProtoEvent {
            side,
            dir: self.dir(side),
            kind,
        });
    }

    fn http_violation(&mut self, side: Side, e: HttpError, out: &mut dyn FnMut(ProtoEvent<'_>)) {
        self.stats.violations += 1;
        self.emit(
            side,
            out,
            EventKind::Violation {
                what: e.to_string(),
            },
        );
    }

    fn cx(&mut self, side: Side) -> Cx<'_> {
        let deflate = if !self.handshake {
            DeflateMode::Guess
        } else {
            match &self.deflate {
                None => DeflateMode::Off,
                Some(p) => {
                    let from_client = self.client.is_none_or(|c| c == side);
                    DeflateMode::On(if from_client {
                        DeflateConfig {
                            window_bits: p.client_max_window_bits,
                            no_context_takeover: p.client_no_context_takeover,
                        }
                    } else {
                        DeflateConfig {
                            window_bits: p.server_max_window_bits,
                            no_context_takeover: p.server_no_context_takeover,
                        }
                    })
                }
            }
        };
        Cx {
            side,
            cfg: &self.cfg,
            client: &mut self.client,
            deflate,
            stats: &mut self.stats,
            not_ws_reported: &mut self.not_ws_reported,
        }
    }

    /// Decodes `data` with `half`, switching its mode as the bytes demand.
    fn run(
        &mut self,
        side: Side,
        half: &mut Half,
        mut data: &[u8],
        out: &mut dyn FnMut(ProtoEvent<'_>),
    ) {
        while !data.is_empty() {
            match half {
                Half::Ignore => return,
                Half::Detect(probe) => {
                    let take = (PROBE - probe.len()).min(data.len());
                    probe.extend_from_slice(&data[..take]);
                    let class = classify(probe);
                    if let Class::NeedMore = class {
                        if probe.len() < PROBE {
                            return; // all of `data` is in `probe`
                        }
                    }
                    let early = mem::take(probe);
                    data = &data[take..];
                    *half = match class {
                        Class::Request => {
                            self.client.get_or_insert(side);
                            Half::Http {
                                is_req: true,
                                head: HeadReader::default(),
                                body: None,
                            }
                        }
                        Class::Response => {
                            self.client.get_or_insert(side.other());
                            Half::Http {
                                is_req: false,
                                head: HeadReader::default(),
                                body: None,
                            }
                        }
                        Class::Frames | Class::NeedMore => Half::Ws(Box::new(WsStream::hunting())),
                    };
                    self.run(side, half, &early, out);
                }
                Half::Http { is_req, head, body } => {
                    let is_req = *is_req;
                    if let Some(b) = body {
                        match b.skip(data) {
                            Ok(n) => data = &data[n..],
                            Err(e) => {
                                self.http_violation(side, e, out);
                                *half = Half::Ignore;
                                return;
                            }
                        }
                        if b.done() {
                            *body = None;
                        }
                        continue;
                    }
                    match head.push(data) {
                        HeadStep::Partial => return,
                        HeadStep::TooLarge => {
                            self.http_violation(
                                side,
                                HttpError::TooLarge(http::head::MAX_HEAD),
                                out,
                            );
                            *half = Half::Ignore;
                            return;
                        }
                        HeadStep::Done(n) => {
                            data = &data[n..];
                            let bytes = head.take();
                            let next = if is_req {
                                http::parse_request(&bytes).map(|r| self.on_request(side, r, out))
                            } else {
                                http::parse_response(&bytes).map(|r| self.on_response(side, r, out))
                            };
                            match next {
                                Ok(h) => *half = h,
                                Err(e) => {
                                    self.http_violation(side, e, out);
                                    *half = Half::Ignore;
                                    return;
                                }
                            }
                            if let Half::Http { body, .. } = half {
                                if body.is_some_and(|b| b.done()) {
                                    *body = None;
                                }
                            }
                        }
                    }
                }
                Half::AwaitUpgrade { early, lost } => {
                    if !*lost
                        && self.other_half_silent(side)
                        && starts_like_client_frame(if early.is_empty() { data } else { early })
                    {
                        // One-sided capture (XDP sees ingress only, or the
                        // reply was never captured): the other end has sent
                        // nothing, yet the client goes on after its upgrade
                        // request. Clients wait for the 101 before framing,
                        // so these bytes are frames starting right here.
                        let early = mem::take(early);
                        self.client = Some(side);
                        *half = Half::Ws(Box::new(WsStream::synced()));
                        if !early.is_empty() {
                            self.run(side, half, &early, out);
                        }
                        continue;
                    }
                    let room = MAX_EARLY.saturating_sub(early.len());
                    if data.len() > room {
                        self.stats.violations += 1;
                        self.emit(
                            side,
                            out,
                            EventKind::Violation {
                                what: format!(
                                    "over {MAX_EARLY} bytes sent before the upgrade reply; dropped"
                                ),
                            },
                        );
                        *half = Half::Ignore;
                        return;
                    }
                    early.extend_from_slice(data);
                    return;
                }
                Half::Ws(s) => {
                    let mut cx = self.cx(side);
                    s.feed(data, &mut cx, out);
                    return;
                }
            }
        }
    }

    /// A request head: report it and return the half's next mode (its body
    /// to skip, or holding bytes until the upgrade reply).
    fn on_request(&mut self, side: Side, r: Request, out: &mut dyn FnMut(ProtoEvent<'_>)) -> Half {
        self.emit(
            side,
            out,
            EventKind::HttpRequest {
                method: r.method.clone(),
                path: r.path.clone(),
                host: r.host.clone(),
                content_length: r.content_length,
            },
        );
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        let framing = r.framing();
        let upgrade = r.upgrade.map(|u| (u, r.host, r.path));
        let is_upgrade = upgrade.is_some();
        self.pending.push_back(Pending {
            head: r.method == "HEAD",
            connect: r.method == "CONNECT",
            upgrade,
        });
        if is_upgrade {
            Half::AwaitUpgrade {
                early: Vec::new(),
                lost: false,
            }
        } else {
            Half::Http {
                is_req: true,
                head: HeadReader::default(),
                body: Some(BodySkip::new(framing)),
            }
        }
    }

    /// A response head: pair it with its request; a 101 to a WebSocket
    /// upgrade switches both halves to frames. Returns the half's next mode.
    fn on_response(
        &mut self,
        side: Side,
        r: Response,
        out: &mut dyn FnMut(ProtoEvent<'_>),
    ) -> Half {
        let interim = r.status < 200 && r.status != 101;
        let pending = if interim {
            None
        } else {
            self.pending.pop_front()
        };
        let head_req = pending.as_ref().is_some_and(|p| p.head);
        let tunnel = pending.as_ref().is_some_and(|p| p.connect) && (200..300).contains(&r.status);
        let upgrade = pending.and_then(|p| p.upgrade);
        if r.status == 101 && (upgrade.is_some() || r.upgrade_websocket) {
            return self.open(side, r, upgrade, out);
        }
        if r.status == 101 || tunnel {
            // Some other protocol (h2c, a CONNECT tunnel, ...): nothing more
            // to decode.
            self.emit(
                side,
                out,
                EventKind::HttpResponse {
                    status: r.status,
                    reason: r.reason,
                    content_length: r.content_length,
                },
            );
            self.halves[idx(side.other())] = Half::Ignore;
            return Half::Ignore;
        }
        let framing = r.framing(head_req);
        if upgrade.is_some() {
            self.emit(
                side,
                out,
                EventKind::WsUpgradeFailed {
                    status: r.status,
                    reason: r.reason,
                },
            );
            // The client's held bytes are HTTP again.
            let other = side.other();
            let prev = mem::replace(&mut self.halves[idx(other)], Half::Ignore);
            let mut half = Half::Http {
                is_req: true,
                head: HeadReader::default(),
                body: None,
            };
            if let Half::AwaitUpgrade { early, lost } = prev {
                if lost {
                    half = Half::Ignore;
                } else {
                    self.run(other, &mut half, &early, out);
                }
            } else {
                half = prev;
            }
            self.halves[idx(other)] = half;
        } else {
            self.emit(
                side,
                out,
                EventKind::HttpResponse {
                    status: r.status,
                    reason: r.reason,
                    content_length: r.content_length,
                },
            );
        }
        Half::Http {
            is_req: false,
            head: HeadReader::default(),
            body: Some(BodySkip::new(framing)),
        }
    }

    /// True while the other half-stream has not sent a single byte.
    fn other_half_silent(&self, side: Side) -> bool {
        matches!(&self.halves[idx(side.other())], Half::Detect(b) if b.is_empty())
    }

    /// The upgrade succeeded: report it and decode frames both ways.
    fn open(
        &mut self,
        side: Side,
        r: Response,
        upgrade: Option<(UpgradeRequest, Option<String>, String)>,
        out: &mut dyn FnMut(ProtoEvent<'_>),
    ) -> Half {
        self.client = Some(side.other());
        self.handshake = true;
        self.deflate = r.extensions.as_deref().and_then(parse_deflate);
        let (req, host, path) = upgrade.unwrap_or_default();
        let accept_valid = match (&req.key, &r.accept) {
            (Some(k), Some(a)) => accept_for(k) == a.trim(),
            _ => false,
        };
        self.emit(
            side,
            out,
            EventKind::WsOpen {
                host,
                path,
                subprotocol: r.protocol,
                extensions: r.extensions,
                deflate: self.deflate.clone(),
                accept_valid,
            },
        );
        let other = side.other();
        let prev = mem::replace(&mut self.halves[idx(other)], Half::Ignore);
        let mut client = WsStream::synced();
        let early = match prev {
            Half::AwaitUpgrade { early, lost } => {
                if lost {
                    let mut cx = self.cx(other);
                    client.gap(1, &mut cx, out);
                }
                early
            }
            Half::Detect(probe) => probe,
            // Frames already being decoded one-sided (the reply came late):
            // keep that stream, its position is right.
            ws @ Half::Ws(_) => {
                self.halves[idx(other)] = ws;
                return Half::Ws(Box::new(WsStream::synced()));
            }
            _ => Vec::new(),
        };
        let mut half = Half::Ws(Box::new(client));
        self.run(other, &mut half, &early, out);
        self.halves[idx(other)] = half;
        Half::Ws(Box::new(WsStream::synced()))
    }
}
