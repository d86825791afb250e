//! The HTTP/1.x layer of one connection: request and response heads
//! (bodies skipped, never buffered), requests paired with their responses,
//! and the WebSocket upgrade.
//!
//! Both sides live here because the upgrade ties them together: client
//! bytes after an upgrade request are held (bounded) until the reply says
//! whether they are frames (101) or HTTP again (anything else). After a 101
//! a side's bytes go up unchanged ([`HttpOut::Data`]) to the next layer.

use std::collections::VecDeque;
use std::mem;

use super::{
    accept_for, head::MAX_HEAD, parse_deflate, parse_request, parse_response, BodySkip, HeadReader,
    HeadStep, HttpError, Request, Response, UpgradeRequest,
};
use crate::event::{DeflateParams, EventKind, HttpEvent, WsEvent};
use crate::proto::{Cx, Emit, Layer, PerSide, RoleFact, Side};

/// Client bytes held while the upgrade reply is awaited.
const MAX_EARLY: usize = 256 * 1024;
/// Requests remembered while their responses are awaited (pipelining).
const MAX_PENDING: usize = 64;

/// What the HTTP layer hands on.
#[derive(Debug)]
pub enum HttpOut<'a> {
    /// An event or a role fact, for the connection.
    Emit(Emit<'a>),
    /// The next layer starts on `side`.
    Start(Side, crate::proto::websocket::Start),
    /// A 101 upgraded the connection to WebSocket; `server` sent it.
    Upgraded {
        server: Side,
        deflate: Option<DeflateParams>,
    },
    /// In-order bytes of `side` for the next layer.
    Data(Side, &'a [u8]),
    /// Bytes of `side` the next layer will never see.
    Gap(Side, u64),
    /// `side` ended; the next layer flushes it.
    End(Side),
    /// Another protocol took over the connection (h2c, a CONNECT tunnel):
    /// nothing more of `side` is decoded, by any layer.
    Stop(Side),
}

/// What one side is being read as.
enum Half {
    /// Not HTTP (the stack routes it elsewhere), or nothing came yet.
    Idle,
    /// HTTP heads (requests on the client side when `is_req`, responses on
    /// the server side), bodies skipped.
    Heads {
        is_req: bool,
        head: HeadReader,
        body: Option<BodySkip>,
    },
    /// Client bytes after an upgrade request, held until the reply.
    AwaitUpgrade { early: Vec<u8>, lost: bool },
    /// Bytes go up to the next layer unchanged.
    Forward,
    /// Nothing more to decode here.
    Done,
}

impl Half {
    fn heads(is_req: bool, body: Option<BodySkip>) -> Half {
        Half::Heads {
            is_req,
            head: HeadReader::default(),
            body,
        }
    }
}

/// An outstanding request, for pairing with its response.
struct Pending {
    /// A HEAD request: its response has no body.
    head: bool,
    /// A CONNECT request: a 2xx reply turns the connection into a tunnel.
    connect: bool,
    upgrade: Option<(UpgradeRequest, Option<String>, String)>,
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

/// HTTP state of both sides of a connection.
pub struct Http {
    halves: PerSide<Half>,
    pending: VecDeque<Pending>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            halves: PerSide::new(Half::Idle, Half::Idle),
            pending: VecDeque::new(),
        }
    }
}

impl Http {
    /// Memory held: heads being read, client bytes awaiting the upgrade
    /// reply, requests awaiting their responses.
    #[inline]
    pub fn mem(&self) -> usize {
        let halves: usize = self
            .halves
            .both()
            .iter()
            .map(|h| match h {
                Half::Heads { head, .. } => head.capacity(),
                Half::AwaitUpgrade { early, .. } => early.capacity(),
                _ => 0,
            })
            .sum();
        halves + self.pending.len() * std::mem::size_of::<Pending>()
    }

    /// True once `side` only passes its bytes up unchanged (after an
    /// upgrade): the stack then routes them past this layer.
    pub fn forwards(&self, side: Side) -> bool {
        matches!(self.halves[side], Half::Forward)
    }

    /// `side` starts with an HTTP head: requests when `is_req`.
    pub fn begin(&mut self, side: Side, is_req: bool) {
        self.halves[side] = Half::heads(is_req, None);
    }

    fn skipped(out: &mut dyn FnMut(HttpOut<'_>), side: Side, n: usize) {
        if n > 0 {
            out(HttpOut::Emit(Emit::Skipped(side, n as u64)));
        }
    }

    fn emit(out: &mut dyn FnMut(HttpOut<'_>), side: Side, kind: EventKind<'_>) {
        out(HttpOut::Emit(Emit::Event(side, kind)));
    }

    fn violation(&mut self, side: Side, e: HttpError, out: &mut dyn FnMut(HttpOut<'_>)) {
        Self::emit(out, side, EventKind::Violation(e.into()));
        self.halves[side] = Half::Done;
    }

    /// Decodes `data` of `side`, switching its mode as the bytes demand.
    fn run(&mut self, cx: Cx, side: Side, mut data: &[u8], out: &mut dyn FnMut(HttpOut<'_>)) {
        while !data.is_empty() {
            match &mut self.halves[side] {
                Half::Idle | Half::Done => return Self::skipped(out, side, data.len()),
                Half::Forward => {
                    out(HttpOut::Data(side, data));
                    return;
                }
                Half::Heads { body: Some(b), .. } => {
                    match b.skip(data) {
                        Ok(n) => data = &data[n..],
                        Err(e) => return self.violation(side, e, out),
                    }
                    if b.done() {
                        if let Half::Heads { body, .. } = &mut self.halves[side] {
                            *body = None;
                        }
                    }
                }
                Half::Heads { is_req, head, .. } => match head.push(data) {
                    HeadStep::Partial => return,
                    HeadStep::TooLarge => {
                        return self.violation(side, HttpError::TooLarge(MAX_HEAD), out)
                    }
                    HeadStep::Done(n) => {
                        data = &data[n..];
                        let is_req = *is_req;
                        let bytes = head.take();
                        let next = if is_req {
                            parse_request(&bytes).map(|r| self.on_request(side, r, out))
                        } else {
                            parse_response(&bytes).map(|r| self.on_response(cx, side, r, out))
                        };
                        match next {
                            Ok(Half::Heads {
                                is_req,
                                head,
                                body: Some(b),
                            }) if b.done() => {
                                self.halves[side] = Half::Heads {
                                    is_req,
                                    head,
                                    body: None,
                                }
                            }
                            Ok(h) => self.halves[side] = h,
                            Err(e) => return self.violation(side, e, out),
                        }
                    }
                },
                Half::AwaitUpgrade { early, lost } => {
                    if !*lost
                        && cx.peer_silent
                        && starts_like_client_frame(if early.is_empty() { data } else { early })
                    {
                        // One-sided capture (XDP sees ingress only, or the
                        // reply was never captured): the other end has sent
                        // nothing, yet the client goes on after its upgrade
                        // request. Clients wait for the 101 before framing,
                        // so these bytes are frames starting right here.
                        let early = mem::take(early);
                        self.halves[side] = Half::Forward;
                        out(HttpOut::Emit(Emit::Role(RoleFact::Proves(side))));
                        out(HttpOut::Start(side, crate::proto::websocket::Start::Framed));
                        if !early.is_empty() {
                            out(HttpOut::Data(side, &early));
                        }
                        continue;
                    }
                    if data.len() > MAX_EARLY.saturating_sub(early.len()) {
                        Self::skipped(out, side, early.len() + data.len());
                        return self.violation(side, HttpError::EarlyDataOverflow(MAX_EARLY), out);
                    }
                    early.extend_from_slice(data);
                    return;
                }
            }
        }
    }

    /// A request head: report it and return the side's next mode (its body
    /// to skip, or holding bytes until the upgrade reply).
    fn on_request(&mut self, side: Side, r: Request, out: &mut dyn FnMut(HttpOut<'_>)) -> Half {
        Self::emit(
            out,
            side,
            EventKind::Http(HttpEvent::Request {
                method: r.method.clone(),
                path: r.path.clone(),
                host: r.host.clone(),
                content_length: r.content_length,
            }),
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
            Half::heads(true, Some(BodySkip::new(framing)))
        }
    }

    /// A response head: pair it with its request; a 101 to a WebSocket
    /// upgrade switches both sides to frames. Returns the side's next mode.
    fn on_response(
        &mut self,
        cx: Cx,
        side: Side,
        r: Response,
        out: &mut dyn FnMut(HttpOut<'_>),
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
            Self::emit(out, side, response_event(r));
            self.halves[side.other()] = Half::Done;
            out(HttpOut::Stop(side.other()));
            out(HttpOut::Stop(side));
            return Half::Done;
        }
        let framing = r.framing(head_req);
        if upgrade.is_some() {
            Self::emit(
                out,
                side,
                EventKind::Ws(WsEvent::UpgradeFailed {
                    status: r.status,
                    reason: r.reason,
                }),
            );
            // The client's held bytes are HTTP again.
            let other = side.other();
            if let Half::AwaitUpgrade { early, lost } = &mut self.halves[other] {
                let (early, lost) = (mem::take(early), *lost);
                self.halves[other] = Half::Done;
                if !lost {
                    self.halves[other] = Half::heads(true, None);
                    let cx = Cx {
                        peer_silent: false,
                        ..cx
                    };
                    self.run(cx, other, &early, out);
                }
            }
        } else {
            Self::emit(out, side, response_event(r));
        }
        Half::heads(false, Some(BodySkip::new(framing)))
    }

    /// The upgrade succeeded: report it, and hand both sides to the next
    /// layer (the client's held bytes first).
    fn open(
        &mut self,
        side: Side,
        r: Response,
        upgrade: Option<(UpgradeRequest, Option<String>, String)>,
        out: &mut dyn FnMut(HttpOut<'_>),
    ) -> Half {
        let deflate = r.extensions.as_deref().and_then(parse_deflate);
        let (req, host, path) = upgrade.unwrap_or_default();
        let accept_valid = match (&req.key, &r.accept) {
            (Some(k), Some(a)) => accept_for(k) == a.trim(),
            _ => false,
        };
        let client = side.other();
        out(HttpOut::Emit(Emit::Role(RoleFact::Proves(client))));
        Self::emit(
            out,
            side,
            EventKind::Ws(WsEvent::Open {
                host,
                path,
                subprotocol: r.protocol,
                extensions: r.extensions,
                deflate: deflate.clone(),
                accept_valid,
            }),
        );
        out(HttpOut::Upgraded {
            server: side,
            deflate,
        });
        match mem::replace(&mut self.halves[client], Half::Forward) {
            Half::AwaitUpgrade { early, lost } => {
                if lost {
                    out(HttpOut::Gap(client, 1));
                }
                if !early.is_empty() {
                    out(HttpOut::Data(client, &early));
                }
            }
            // The client side was never HTTP (the stack decodes it).
            Half::Idle => self.halves[client] = Half::Idle,
            _ => {}
        }
        Half::Forward
    }
}

fn response_event(r: Response) -> EventKind<'static> {
    EventKind::Http(HttpEvent::Response {
        status: r.status,
        reason: r.reason,
        content_length: r.content_length,
    })
}

impl Layer for Http {
    type Out<'a> = HttpOut<'a>;

    fn data(&mut self, cx: Cx, side: Side, bytes: &[u8], out: &mut dyn FnMut(HttpOut<'_>)) {
        self.run(cx, side, bytes, out);
    }

    fn gap(&mut self, _cx: Cx, side: Side, len: u64, out: &mut dyn FnMut(HttpOut<'_>)) {
        match &mut self.halves[side] {
            Half::Heads { body, .. } => {
                // A gap inside a length-delimited body is skipped. Anywhere
                // else the HTTP framing is lost; the likeliest cause is a
                // snap length that cut the upgrade handshake, so look for
                // WebSocket frames after it (the resync rules give up
                // quietly on plain HTTP).
                if !body.as_mut().is_some_and(|b| b.gap(len)) {
                    self.halves[side] = Half::Forward;
                    out(HttpOut::Start(side, crate::proto::websocket::Start::Hunt));
                }
            }
            Half::AwaitUpgrade { early, lost } => {
                Self::skipped(out, side, early.len());
                early.clear();
                *lost = true;
            }
            Half::Forward => out(HttpOut::Gap(side, len)),
            Half::Idle | Half::Done => {}
        }
    }

    fn end(&mut self, _cx: Cx, side: Side, out: &mut dyn FnMut(HttpOut<'_>)) {
        match mem::replace(&mut self.halves[side], Half::Done) {
            Half::Forward => out(HttpOut::End(side)),
            // Held for a reply that never came, or a head never finished.
            Half::AwaitUpgrade { early, .. } => Self::skipped(out, side, early.len()),
            Half::Heads { head, .. } => Self::skipped(out, side, head.buffered().len()),
            Half::Idle | Half::Done => {}
        }
    }
}
