//! Hooked TLS plaintext as a source: the calls the TLS hooks report
//! (`capture-ebpf/src/tls.rs`), tied to their connections and fed to the
//! decoder's plaintext entry points, so `wss://` decodes like `ws://`.
//!
//! - **Tying a TLS object to a socket.** A call's socket is certain when the
//!   thread sent or received on it inside the call (blocking sockets). With
//!   memory BIOs (Python asyncio) the kernel only gives hints: the thread's
//!   last receive before a read, its first send after a write. Hints are
//!   votes; an object is tied when two agree and none disagrees, or one
//!   socket leads the others by three. Until then its plaintext waits
//!   (bounded); what never gets tied is counted, never printed on a guess.
//! - **One end per direction.** When both ends of a connection are hooked
//!   (loopback, two local containers) the sender's write and the receiver's
//!   read carry the same bytes: the first end to deliver a direction claims
//!   it, the other's copy is counted as seen twice.
//! - **Loss.** Each chunk has its offset in its object's stream; a jump is
//!   a gap on the connection, so the decoder resyncs.
//! - A socket's CLOSE unties its objects (pointers are reused) and ends the
//!   directions they fed; so does `SSL_free` of an object, whose address
//!   the next connection's object may get, with its streams from 0.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use crate::event::{ConnId, EventSink};
use crate::filter::Filter;
use crate::owners::SocketEnds;
use crate::registry::Decoder;
use crate::side::{PerSide, Side};

/// How a call's socket was learned (`capture_common::tls_how`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    None,
    /// A send or receive inside the call: certain.
    Nested,
    /// The thread's last receive before the read, or first send after the
    /// write: a vote.
    Near,
}

/// One chunk of plaintext a hooked call returned.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    pub tgid: u32,
    /// The library's object (`SSL *`).
    pub ssl: u64,
    /// `SSL_read*` (from the peer) rather than `SSL_write*`.
    pub read: bool,
    /// Offset in the object's stream of this direction.
    pub offset: u64,
    pub data: &'a [u8],
    pub sk: u64,
    pub hint: Hint,
    pub ts_ns: u64,
}

/// Counters of the hooked plaintext, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookedStats {
    /// Bytes handed to the decoder.
    pub decoded_bytes: u64,
    /// Bytes both ends reported (taken once, from the end that claimed).
    pub twice_bytes: u64,
    /// Bytes of objects never tied to a socket (or past the wait cap).
    pub untied_bytes: u64,
    /// Bytes tied to a socket whose ends were never seen (opened before
    /// wstap started).
    pub unknown_socket_bytes: u64,
    /// Hints that disagreed with an object's tie (ignored).
    pub disagreeing_hints: u64,
    /// Objects tied to a socket.
    pub tied: u64,
    /// Bytes of connections the host/port filter leaves out.
    pub filtered_bytes: u64,
}

/// Plaintext an untied object may keep waiting, and all of them together.
const WAIT_PER_OBJECT: usize = 16 << 20;
const WAIT_TOTAL: usize = 256 << 20;

struct Waiting {
    read: bool,
    offset: u64,
    data: Vec<u8>,
    ts_ns: u64,
}

#[derive(Default)]
struct Object {
    tied: Option<u64>,
    votes: Vec<(u64, u32)>,
    waiting: VecDeque<Waiting>,
    waiting_bytes: usize,
}

impl Object {
    /// Applies a hint; returns true when it ties the object now.
    fn hint(&mut self, sk: u64, hint: Hint, stats: &mut HookedStats) -> bool {
        if sk == 0 || hint == Hint::None {
            return false;
        }
        match (self.tied, hint) {
            (Some(t), _) if t == sk => false,
            (Some(_), Hint::Nested) => {
                // Certain beats voted: the vote was wrong.
                stats.disagreeing_hints += 1;
                self.tied = Some(sk);
                false
            }
            (Some(_), _) => {
                stats.disagreeing_hints += 1;
                false
            }
            (None, Hint::Nested) => {
                self.tied = Some(sk);
                true
            }
            (None, _) => {
                match self.votes.iter_mut().find(|v| v.0 == sk) {
                    Some(v) => v.1 += 1,
                    None => self.votes.push((sk, 1)),
                }
                self.votes.sort_by_key(|v| std::cmp::Reverse(v.1));
                let best = self.votes[0].1;
                let others: u32 = self.votes[1..].iter().map(|v| v.1).sum();
                if (best >= 2 && others == 0) || best >= others + 3 {
                    self.tied = Some(self.votes[0].0);
                    return true;
                }
                false
            }
        }
    }
}

/// Who feeds one direction of a plaintext connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    tgid: u32,
    ssl: u64,
    read: bool,
}

struct PlainConn {
    id: ConnId,
    claims: PerSide<Option<Claim>>,
    /// The sockets whose objects claimed each side.
    socks: PerSide<u64>,
}

/// The hooked-plaintext source. See the module doc.
#[derive(Default)]
pub struct Hooked {
    /// The host/port filter: the hooks see every process on the host, so
    /// the filter the kernel applies to packets is applied here.
    filter: Filter,
    objects: HashMap<(u32, u64), Object>,
    conns: HashMap<(SocketAddr, SocketAddr), PlainConn>,
    waiting_total: usize,
    stats: HookedStats,
}

impl Hooked {
    pub fn new(filter: Filter) -> Self {
        Hooked {
            filter,
            ..Hooked::default()
        }
    }

    pub fn stats(&self) -> HookedStats {
        let mut s = self.stats.clone();
        s.untied_bytes += self.waiting_total as u64;
        s
    }

    /// One chunk; `sockets` looks a kernel socket's ends up.
    pub fn chunk(
        &mut self,
        c: &Chunk<'_>,
        sockets: &dyn Fn(u64) -> Option<SocketEnds>,
        dec: &mut Decoder,
        sink: &mut dyn EventSink,
    ) {
        let obj = self.objects.entry((c.tgid, c.ssl)).or_default();
        let now_tied = obj.hint(c.sk, c.hint, &mut self.stats);
        if now_tied {
            self.stats.tied += 1;
            self.flush_waiting(c.tgid, c.ssl, sockets, dec, sink);
        }
        let obj = self.objects.get_mut(&(c.tgid, c.ssl)).expect("present");
        match obj.tied {
            Some(sk) => self.deliver(
                c.tgid, c.ssl, sk, c.read, c.offset, c.data, c.ts_ns, sockets, dec, sink,
            ),
            None => {
                if obj.waiting_bytes + c.data.len() > WAIT_PER_OBJECT
                    || self.waiting_total + c.data.len() > WAIT_TOTAL
                {
                    self.stats.untied_bytes += c.data.len() as u64;
                    return;
                }
                obj.waiting_bytes += c.data.len();
                self.waiting_total += c.data.len();
                obj.waiting.push_back(Waiting {
                    read: c.read,
                    offset: c.offset,
                    data: c.data.to_vec(),
                    ts_ns: c.ts_ns,
                });
            }
        }
    }

    /// A tie record: object `ssl` of `tgid` sent on `sk` (a vote).
    pub fn tie(
        &mut self,
        tgid: u32,
        ssl: u64,
        sk: u64,
        sockets: &dyn Fn(u64) -> Option<SocketEnds>,
        dec: &mut Decoder,
        sink: &mut dyn EventSink,
    ) {
        let obj = self.objects.entry((tgid, ssl)).or_default();
        if obj.hint(sk, Hint::Near, &mut self.stats) {
            self.stats.tied += 1;
            self.flush_waiting(tgid, ssl, sockets, dec, sink);
        }
    }

    /// Socket `sk` closed: its objects are untied and the directions they
    /// fed end.
    pub fn closed(&mut self, sk: u64, ts_ns: u64, dec: &mut Decoder, sink: &mut dyn EventSink) {
        let before = self.objects.len();
        self.objects.retain(|_, o| o.tied != Some(sk));
        if before == self.objects.len() {
            return;
        }
        self.end_claims(ts_ns, dec, sink, |_, claim_sk| claim_sk == sk);
    }

    /// `SSL_free`: object `ssl` of `tgid` is gone. Its address may come
    /// back as another connection's object, with streams from 0 again: it
    /// is forgotten (what still waited untied is counted), and the
    /// directions it fed end.
    pub fn freed(
        &mut self,
        tgid: u32,
        ssl: u64,
        ts_ns: u64,
        dec: &mut Decoder,
        sink: &mut dyn EventSink,
    ) {
        if let Some(obj) = self.objects.remove(&(tgid, ssl)) {
            self.waiting_total -= obj.waiting_bytes;
            self.stats.untied_bytes += obj.waiting_bytes as u64;
        }
        self.end_claims(ts_ns, dec, sink, |c, _| c.tgid == tgid && c.ssl == ssl);
    }

    /// Ends every claimed direction whose claim (and the socket it came
    /// from) `ends` picks, and forgets connections left with no claim.
    fn end_claims(
        &mut self,
        ts_ns: u64,
        dec: &mut Decoder,
        sink: &mut dyn EventSink,
        ends: impl Fn(&Claim, u64) -> bool,
    ) {
        self.conns.retain(|_, c| {
            for side in [Side::Initiator, Side::Responder] {
                if c.claims[side].is_some_and(|cl| ends(&cl, c.socks[side])) {
                    c.claims[side] = None;
                    c.socks[side] = 0;
                    let _ = dec.end_plain(c.id, side, ts_ns, sink);
                }
            }
            c.claims.initiator.is_some() || c.claims.responder.is_some()
        });
    }

    fn flush_waiting(
        &mut self,
        tgid: u32,
        ssl: u64,
        sockets: &dyn Fn(u64) -> Option<SocketEnds>,
        dec: &mut Decoder,
        sink: &mut dyn EventSink,
    ) {
        let Some(obj) = self.objects.get_mut(&(tgid, ssl)) else {
            return;
        };
        let Some(sk) = obj.tied else { return };
        let waiting = std::mem::take(&mut obj.waiting);
        self.waiting_total -= obj.waiting_bytes;
        obj.waiting_bytes = 0;
        for w in waiting {
            self.deliver(
                tgid, ssl, sk, w.read, w.offset, &w.data, w.ts_ns, sockets, dec, sink,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        tgid: u32,
        ssl: u64,
        sk: u64,
        read: bool,
        offset: u64,
        data: &[u8],
        ts_ns: u64,
        sockets: &dyn Fn(u64) -> Option<SocketEnds>,
        dec: &mut Decoder,
        sink: &mut dyn EventSink,
    ) {
        let Some(ends) = sockets(sk) else {
            self.stats.unknown_socket_bytes += data.len() as u64;
            return;
        };
        let (client, server) = if ends.passive {
            (ends.remote, ends.local)
        } else {
            (ends.local, ends.remote)
        };
        let sender = if read { ends.remote } else { ends.local };
        let receiver = if read { ends.local } else { ends.remote };
        // Sender as source, as a packet of these bytes would have it
        // (`src port 8080` keeps what the server at 8080 sends).
        if !self
            .filter
            .matches(sender.ip(), sender.port(), receiver.ip(), receiver.port())
        {
            self.stats.filtered_bytes += data.len() as u64;
            return;
        }
        let side = if sender == client {
            Side::Initiator
        } else {
            Side::Responder
        };
        let claim = Claim { tgid, ssl, read };
        let conn = self
            .conns
            .entry((client, server))
            .or_insert_with(|| PlainConn {
                id: dec.open_plain(0, client, server, ts_ns, sink),
                claims: PerSide::default(),
                socks: PerSide::default(),
            });
        match conn.claims[side] {
            None => {
                conn.claims[side] = Some(claim);
                conn.socks[side] = sk;
            }
            Some(c) if c == claim => {}
            Some(c) if c.read != claim.read => {
                // The other end's copy of the same bytes.
                self.stats.twice_bytes += data.len() as u64;
                return;
            }
            Some(_) => {
                // Another object of the same end on these endpoints: a new
                // connection reusing them.
                let _ = dec.end_plain(conn.id, Side::Initiator, ts_ns, sink);
                let _ = dec.end_plain(conn.id, Side::Responder, ts_ns, sink);
                conn.id = dec.open_plain(0, client, server, ts_ns, sink);
                conn.claims = PerSide::default();
                conn.claims[side] = Some(claim);
                conn.socks = PerSide::default();
                conn.socks[side] = sk;
            }
        }
        self.stats.decoded_bytes += data.len() as u64;
        if dec
            .push_plain(conn.id, side, offset, data, ts_ns, sink)
            .is_err()
        {
            // Evicted meanwhile: a fresh connection takes it from here.
            conn.id = dec.open_plain(0, client, server, ts_ns, sink);
            let _ = dec.push_plain(conn.id, side, offset, data, ts_ns, sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Direction, Event, EventKind, TcpEvent, WsEvent};
    use crate::registry::DecodeConfig;

    const CLIENT_SK: u64 = 0x1000;
    const SERVER_SK: u64 = 0x2000;
    const OTHER_SK: u64 = 0x3000;
    const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: s\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    /// An unmasked server frame: text "hi".
    const HI: &[u8] = &[0x81, 0x02, b'h', b'i'];

    fn client() -> SocketAddr {
        "10.0.0.1:5000".parse().unwrap()
    }
    fn server() -> SocketAddr {
        "10.0.0.2:80".parse().unwrap()
    }

    /// The client's socket, the server's accepted one, and one of another
    /// connection.
    fn sockets(sk: u64) -> Option<SocketEnds> {
        match sk {
            CLIENT_SK => Some(SocketEnds {
                local: client(),
                remote: server(),
                passive: false,
            }),
            SERVER_SK => Some(SocketEnds {
                local: server(),
                remote: client(),
                passive: true,
            }),
            OTHER_SK => Some(SocketEnds {
                local: "10.0.0.1:6000".parse().unwrap(),
                remote: server(),
                passive: false,
            }),
            _ => None,
        }
    }

    /// What the tests look at in an event.
    #[derive(Debug, Clone, PartialEq)]
    struct Seen {
        conn: ConnId,
        dir: Direction,
        tls: bool,
        name: &'static str,
        text: Option<String>,
        gap: Option<u64>,
    }

    struct Rig {
        hooked: Hooked,
        dec: Option<Decoder>,
        seen: Vec<Seen>,
    }

    impl Rig {
        fn new(filter: Filter) -> Rig {
            Rig {
                hooked: Hooked::new(filter),
                dec: Some(Decoder::new(DecodeConfig::default())),
                seen: Vec::new(),
            }
        }

        fn sink(seen: &mut Vec<Seen>) -> impl FnMut(&Event<'_>) + '_ {
            move |e: &Event<'_>| {
                let text = match &e.kind {
                    EventKind::Ws(WsEvent::Message { payload, .. }) => {
                        Some(String::from_utf8_lossy(payload).into_owned())
                    }
                    _ => None,
                };
                let gap = match &e.kind {
                    EventKind::Tcp(TcpEvent::Gap { bytes }) => Some(*bytes),
                    _ => None,
                };
                seen.push(Seen {
                    conn: e.conn,
                    dir: e.dir,
                    tls: e.via == crate::event::Via::Hooked,
                    name: e.kind.name(),
                    text,
                    gap,
                })
            }
        }

        #[allow(clippy::too_many_arguments)]
        fn call(
            &mut self,
            tgid: u32,
            ssl: u64,
            read: bool,
            offset: u64,
            data: &[u8],
            sk: u64,
            hint: Hint,
        ) {
            let c = Chunk {
                tgid,
                ssl,
                read,
                offset,
                data,
                sk,
                hint,
                ts_ns: 1_000_000_000 + offset,
            };
            let dec = self.dec.as_mut().unwrap();
            self.hooked
                .chunk(&c, &sockets, dec, &mut Self::sink(&mut self.seen));
        }

        fn tie(&mut self, tgid: u32, ssl: u64, sk: u64) {
            let dec = self.dec.as_mut().unwrap();
            self.hooked.tie(
                tgid,
                ssl,
                sk,
                &sockets,
                dec,
                &mut Self::sink(&mut self.seen),
            );
        }

        fn close(&mut self, sk: u64) {
            let dec = self.dec.as_mut().unwrap();
            self.hooked
                .closed(sk, 2_000_000_000, dec, &mut Self::sink(&mut self.seen));
        }

        fn names(&self) -> Vec<&'static str> {
            self.seen.iter().map(|s| s.name).collect()
        }

        fn messages(&self) -> Vec<(Direction, String)> {
            self.seen
                .iter()
                .filter_map(|s| s.text.clone().map(|t| (s.dir, t)))
                .collect()
        }

        /// The client's whole conversation, every call tied as `hint`.
        fn client_conversation(&mut self, ssl: u64, sk: u64, hint: Hint) {
            self.call(10, ssl, false, 0, REQUEST, sk, hint);
            self.call(10, ssl, true, 0, RESPONSE, sk, hint);
            self.call(10, ssl, true, RESPONSE.len() as u64, HI, sk, hint);
        }
    }

    #[test]
    fn a_call_on_its_own_socket_ties_at_once_and_decodes_like_ws() {
        let mut r = Rig::new(Filter::default());
        r.client_conversation(0xA, CLIENT_SK, Hint::Nested);
        assert!(r.names().contains(&"ws_open"), "{:?}", r.seen);
        assert_eq!(
            r.messages(),
            vec![(Direction::ServerToClient, "hi".to_string())]
        );
        assert!(r.seen.iter().all(|s| s.tls), "{:?}", r.seen);
        let st = r.hooked.stats();
        assert_eq!(st.tied, 1);
        let all = (REQUEST.len() + RESPONSE.len() + HI.len()) as u64;
        assert_eq!(st.decoded_bytes, all);
        assert_eq!(st.untied_bytes, 0);
    }

    #[test]
    fn hints_wait_until_two_agree_then_everything_waiting_is_decoded() {
        let mut r = Rig::new(Filter::default());
        r.call(10, 0xA, false, 0, REQUEST, CLIENT_SK, Hint::Near);
        assert!(r.seen.is_empty(), "one hint printed: {:?}", r.seen);
        assert_eq!(r.hooked.stats().untied_bytes, REQUEST.len() as u64);
        r.tie(10, 0xA, CLIENT_SK);
        assert_eq!(r.hooked.stats().tied, 1);
        assert_eq!(r.hooked.stats().untied_bytes, 0);
        assert!(r.names().contains(&"http_request"), "{:?}", r.seen);
        r.call(10, 0xA, true, 0, RESPONSE, 0, Hint::None);
        r.call(10, 0xA, true, RESPONSE.len() as u64, HI, 0, Hint::None);
        assert_eq!(
            r.messages(),
            vec![(Direction::ServerToClient, "hi".to_string())]
        );
    }

    #[test]
    fn disagreeing_hints_print_nothing_and_count_the_bytes() {
        let mut r = Rig::new(Filter::default());
        r.call(10, 0xA, false, 0, REQUEST, CLIENT_SK, Hint::Near);
        r.call(10, 0xA, true, 0, RESPONSE, OTHER_SK, Hint::Near);
        r.tie(10, 0xA, CLIENT_SK);
        r.tie(10, 0xA, OTHER_SK);
        assert!(r.seen.is_empty(), "printed on a guess: {:?}", r.seen);
        let st = r.hooked.stats();
        assert_eq!(st.tied, 0);
        assert_eq!(st.untied_bytes, (REQUEST.len() + RESPONSE.len()) as u64);
    }

    #[test]
    fn a_vote_against_a_tie_is_counted_and_ignored() {
        let mut r = Rig::new(Filter::default());
        r.call(10, 0xA, false, 0, REQUEST, CLIENT_SK, Hint::Nested);
        r.tie(10, 0xA, OTHER_SK);
        r.call(10, 0xA, true, 0, RESPONSE, 0, Hint::None);
        r.call(10, 0xA, true, RESPONSE.len() as u64, HI, 0, Hint::None);
        assert_eq!(r.hooked.stats().disagreeing_hints, 1);
        let conns: std::collections::HashSet<_> = r.seen.iter().map(|s| s.conn).collect();
        assert_eq!(conns.len(), 1, "{:?}", r.seen);
        assert_eq!(r.messages().len(), 1);
    }

    #[test]
    fn both_ends_hooked_give_each_direction_once() {
        let mut r = Rig::new(Filter::default());
        // Client writes, server reads the same bytes; server writes, client
        // reads them.
        r.call(10, 0xA, false, 0, REQUEST, CLIENT_SK, Hint::Nested);
        r.call(20, 0xB, true, 0, REQUEST, SERVER_SK, Hint::Nested);
        r.call(20, 0xB, false, 0, RESPONSE, SERVER_SK, Hint::Nested);
        r.call(10, 0xA, true, 0, RESPONSE, CLIENT_SK, Hint::Nested);
        r.call(
            20,
            0xB,
            false,
            RESPONSE.len() as u64,
            HI,
            SERVER_SK,
            Hint::Nested,
        );
        r.call(
            10,
            0xA,
            true,
            RESPONSE.len() as u64,
            HI,
            CLIENT_SK,
            Hint::Nested,
        );
        let names = r.names();
        assert_eq!(names.iter().filter(|n| **n == "http_request").count(), 1);
        assert_eq!(names.iter().filter(|n| **n == "ws_open").count(), 1);
        assert_eq!(r.messages().len(), 1, "{:?}", r.seen);
        let st = r.hooked.stats();
        assert_eq!(
            st.twice_bytes,
            (REQUEST.len() + RESPONSE.len() + HI.len()) as u64
        );
        assert_eq!(
            st.decoded_bytes,
            (REQUEST.len() + RESPONSE.len() + HI.len()) as u64
        );
    }

    #[test]
    fn a_jump_in_the_stream_is_a_gap_and_the_decoder_goes_on() {
        let mut r = Rig::new(Filter::default());
        r.call(10, 0xA, false, 0, REQUEST, CLIENT_SK, Hint::Nested);
        r.call(10, 0xA, true, 0, RESPONSE, CLIENT_SK, Hint::Nested);
        // 10 bytes of plaintext lost (a full ring), then a frame.
        let at = RESPONSE.len() as u64 + 10;
        r.call(10, 0xA, true, at, HI, CLIENT_SK, Hint::Nested);
        let gaps: Vec<u64> = r.seen.iter().filter_map(|s| s.gap).collect();
        assert_eq!(gaps, vec![10], "{:?}", r.seen);
        // Nothing lost afterwards: the next frame after the resync decodes.
        r.call(
            10,
            0xA,
            true,
            at + HI.len() as u64,
            HI,
            CLIENT_SK,
            Hint::Nested,
        );
        assert!(
            r.messages()
                .contains(&(Direction::ServerToClient, "hi".into())),
            "{:?}",
            r.seen
        );
    }

    #[test]
    fn unknown_sockets_and_filtered_connections_are_counted_not_printed() {
        let mut r = Rig::new(Filter::parse(&[], &[443]).unwrap());
        r.call(10, 0xA, false, 0, REQUEST, CLIENT_SK, Hint::Nested);
        r.call(10, 0xC, false, 0, REQUEST, 0x9999, Hint::Nested);
        assert!(r.seen.is_empty(), "{:?}", r.seen);
        let st = r.hooked.stats();
        assert_eq!(st.filtered_bytes, REQUEST.len() as u64);
        assert_eq!(st.unknown_socket_bytes, REQUEST.len() as u64);
        assert_eq!(st.decoded_bytes, 0);
    }

    #[test]
    fn a_freed_object_ends_its_directions_and_its_address_starts_afresh() {
        let mut r = Rig::new(Filter::default());
        r.client_conversation(0xA, CLIENT_SK, Hint::Nested);
        let first = r.seen[0].conn;
        r.hooked.freed(
            10,
            0xA,
            2_000_000_000,
            r.dec.as_mut().unwrap(),
            &mut Rig::sink(&mut r.seen),
        );
        assert_eq!(r.seen.last().unwrap().name, "conn_close", "{:?}", r.seen);
        // The same address as the next connection's object, on the same
        // socket pointer, from offset 0: a new connection, no gap.
        r.seen.clear();
        r.client_conversation(0xA, CLIENT_SK, Hint::Nested);
        assert!(
            r.seen.iter().all(|s| s.gap.is_none() && s.conn != first),
            "{:?}",
            r.seen
        );
        assert_eq!(r.messages().len(), 1, "{:?}", r.seen);
    }

    #[test]
    fn a_socket_close_ends_the_connection_and_unties_its_objects() {
        let mut r = Rig::new(Filter::default());
        r.client_conversation(0xA, CLIENT_SK, Hint::Nested);
        let first = r.seen[0].conn;
        r.close(CLIENT_SK);
        assert_eq!(r.seen.last().unwrap().name, "conn_close", "{:?}", r.seen);
        // The pointer reused by a new connection on another socket is tied
        // afresh: nothing of it lands on the old connection.
        r.seen.clear();
        r.call(10, 0xA, false, 0, REQUEST, OTHER_SK, Hint::Nested);
        assert!(!r.seen.is_empty());
        assert!(r.seen.iter().all(|s| s.conn != first), "{:?}", r.seen);
    }
}
