//! The owner filter's last step in user space (`--pid`, `--comm`,
//! `-- COMMAND`): the kernel leaves out the segments of connections it
//! knows belong only to other processes, but cannot decide before an end's
//! owner is known (a handshake, a connection whose only local end is
//! another process's before its first read). This output passes on an
//! event only when an end of its connection is owned by a selected process,
//! as the owner table knows it when the event is written.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::Output;
use crate::event::{Event, EventSink};
use crate::owners::Owners;
use crate::source::Segment;

pub struct Selected {
    inner: Box<dyn Output>,
    owners: Arc<Owners>,
    /// The verdict for the last (src, dst, owner epoch): consecutive events
    /// of one connection cost no lookup.
    last: Option<((SocketAddr, SocketAddr, u64), bool)>,
}

impl Selected {
    pub fn new(inner: Box<dyn Output>, owners: Arc<Owners>) -> Self {
        Selected {
            inner,
            owners,
            last: None,
        }
    }

    fn shown(&mut self, src: SocketAddr, dst: SocketAddr) -> bool {
        let key = (src, dst, self.owners.epoch());
        if let Some((k, v)) = self.last {
            if k == key {
                return v;
            }
        }
        let v = self.owners.shown(src, dst);
        self.last = Some((key, v));
        v
    }
}

impl EventSink for Selected {
    fn event(&mut self, ev: &Event<'_>) {
        if self.shown(ev.src, ev.dst) {
            self.inner.event(ev);
        } else {
            self.owners.count_hidden();
        }
    }
}

impl Output for Selected {
    fn segment(&mut self, seg: &Segment<'_>) {
        if self.shown(seg.src, seg.dst) {
            self.inner.segment(seg);
        } else {
            self.owners.count_hidden();
        }
    }

    fn error(&self) -> Option<&io::Error> {
        self.inner.error()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
}
