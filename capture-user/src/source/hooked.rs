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
//!   directions they fed.

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
                self.votes.sort_by(|a, b| b.1.cmp(&a.1));
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
        let mut done = Vec::new();
        for (key, c) in self.conns.iter_mut() {
            for side in [Side::Initiator, Side::Responder] {
                if c.socks[side] == sk && c.claims[side].is_some() {
                    c.claims[side] = None;
                    c.socks[side] = 0;
                    let _ = dec.end_plain(c.id, side, ts_ns, sink);
                }
            }
            if c.claims.initiator.is_none() && c.claims.responder.is_none() {
                done.push(*key);
            }
        }
        for k in done {
            self.conns.remove(&k);
        }
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
        if !self
            .filter
            .matches(client.ip(), client.port(), server.ip(), server.port())
        {
            self.stats.filtered_bytes += data.len() as u64;
            return;
        }
        let sender = if read { ends.remote } else { ends.local };
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
