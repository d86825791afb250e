//! The plaintext entry points: a source of already-ordered bytes (TLS
//! plaintext from hooked libraries) opens, feeds and ends connections by
//! id, through the same stacks and events as TCP.

use std::net::SocketAddr;

use super::conn::{key_of, stack_call, ConnState, Out, Release, Via};
use super::Decoder;
use crate::event::{ConnId, EventKind, EventSink, TcpEvent};
use crate::proto::Stack;
use crate::side::{PerSide, Role, Side};

/// What [`Decoder::push_plain`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("connection {0} is not open for plaintext (never opened, closed or evicted)")]
    NotOpen(ConnId),
}

impl Decoder {
    /// Opens a connection whose bytes arrive already decrypted and in order
    /// (TLS plaintext from hooked libraries), `client` → `server`; returns
    /// its id for [`push_plain`](Self::push_plain). An open plaintext
    /// connection with the same endpoints is returned as it is.
    pub fn open_plain(
        &mut self,
        iface: u32,
        client: SocketAddr,
        server: SocketAddr,
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> ConnId {
        self.last_ts_ns = self.last_ts_ns.max(ts_ns);
        self.advance_clock(ts_ns, sink);
        let key = key_of(Via::Plain, iface, client, server);
        if let Some(c) = self.conns.get(&key).filter(|c| !c.closed()) {
            return c.id;
        }
        self.remove(&key);
        let state = ConnState::Plain {
            next: PerSide::default(),
            ended: PerSide::default(),
            stack: Box::new(Stack::new(&self.cfg.proto)),
        };
        let role = Role::known(Side::Initiator);
        self.insert(key, client, server, role, state, ts_ns, sink)
    }

    /// In-order plaintext of `conn`'s `side` starting at stream `offset`.
    /// Bytes before what was already fed are counted as retransmitted and
    /// dropped; a jump ahead is a gap.
    pub fn push_plain(
        &mut self,
        conn: ConnId,
        side: Side,
        offset: u64,
        bytes: &[u8],
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> Result<(), PlainError> {
        let r = self.feed_plain(conn, side, offset, bytes, ts_ns, sink);
        self.account_id(conn, ts_ns, sink);
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn feed_plain(
        &mut self,
        conn: ConnId,
        side: Side,
        offset: u64,
        bytes: &[u8],
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> Result<(), PlainError> {
        self.last_ts_ns = self.last_ts_ns.max(ts_ns);
        self.advance_clock(ts_ns, sink);
        let Decoder {
            conns,
            keys,
            stats,
            now_ns,
            ..
        } = self;
        let c = keys
            .get(&conn)
            .and_then(|k| conns.get_mut(k))
            .ok_or(PlainError::NotOpen(conn))?;
        let info = c.info();
        let (tcp_role, role) = (c.tcp_role, &mut c.role);
        let ConnState::Plain { next, ended, stack } = &mut c.state else {
            return Err(PlainError::NotOpen(conn));
        };
        if ended[side] {
            stats.flow.bytes_after_end += bytes.len() as u64;
            return Ok(());
        }
        c.last_ns = *now_ns;
        let mut out = Out { ts_ns, stats, sink };
        let expected = next[side];
        let mut data = bytes;
        if offset > expected {
            let missing = offset - expected;
            out.event(
                &info,
                side,
                tcp_role,
                EventKind::Tcp(TcpEvent::Gap { bytes: missing }),
            );
            stack_call(stack, &info, role, &mut out, |s, r, e| {
                s.gap(r, side, missing, e)
            });
        } else {
            let dup = (expected - offset).min(data.len() as u64);
            out.stats.flow.retransmitted_bytes += dup;
            data = &data[dup as usize..];
        }
        next[side] = next[side].max(offset + bytes.len() as u64);
        if !data.is_empty() {
            stack_call(stack, &info, role, &mut out, |s, r, e| {
                s.data(r, side, data, e)
            });
        }
        Ok(())
    }

    /// `side` of a plaintext connection ended; once both did, the
    /// connection closes.
    pub fn end_plain(
        &mut self,
        conn: ConnId,
        side: Side,
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> Result<(), PlainError> {
        let r = self.close_plain(conn, side, ts_ns, sink);
        self.account_id(conn, ts_ns, sink);
        r
    }

    fn close_plain(
        &mut self,
        conn: ConnId,
        side: Side,
        ts_ns: u64,
        sink: &mut dyn EventSink,
    ) -> Result<(), PlainError> {
        let Decoder {
            conns, keys, stats, ..
        } = self;
        let c = keys
            .get(&conn)
            .and_then(|k| conns.get_mut(k))
            .ok_or(PlainError::NotOpen(conn))?;
        let info = c.info();
        let role = &mut c.role;
        let ConnState::Plain { ended, stack, .. } = &mut c.state else {
            return Err(PlainError::NotOpen(conn));
        };
        let mut out = Out { ts_ns, stats, sink };
        if !std::mem::replace(&mut ended[side], true) {
            stack_call(stack, &info, role, &mut out, |s, r, e| s.end(r, side, e));
        }
        if ended.initiator && ended.responder {
            c.release(Release::Closed { reset: false }, &mut out);
        }
        Ok(())
    }
}
