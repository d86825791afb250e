//! The registry's limits over time and space: FIN waits that end, the idle
//! timeout, a full table and the memory budget. Each eviction is an event
//! with its reason and a counter.

use super::conn::{on_tcp, Conn, ConnState, Key, Out, Release};
use super::Decoder;
use crate::event::{ConnId, EventSink, EvictReason};
use crate::flow::tcp::Outcome;

impl Decoder {
    /// Brings the memory of the connection at `key` up to date, and sheds
    /// the largest holders when the total passed the budget.
    pub(super) fn account(&mut self, key: &Key, ts_ns: u64, sink: &mut dyn EventSink) {
        if let Some(c) = self.conns.get_mut(key) {
            let now = c.mem_now();
            self.mem_total = self.mem_total - c.mem + now;
            c.mem = now;
        }
        if self.mem_total > self.cfg.max_memory {
            self.shed_memory(ts_ns, sink);
        }
    }

    /// [`account`](Self::account) by connection id.
    pub(super) fn account_id(&mut self, conn: ConnId, ts_ns: u64, sink: &mut dyn EventSink) {
        if let Some(key) = self.keys.get(&conn).copied() {
            self.account(&key, ts_ns, sink);
        }
    }

    /// Evicts the connections that hold most until a tenth of the budget is
    /// free again; each eviction is an event and a counter.
    pub(super) fn shed_memory(&mut self, ts_ns: u64, sink: &mut dyn EventSink) {
        let target = self.cfg.max_memory - self.cfg.max_memory / 10;
        let mut by_size: Vec<(usize, ConnId, Key)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.mem > 0)
            .map(|(k, c)| (c.mem, c.id, *k))
            .collect();
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Out {
            ts_ns,
            stats: &mut self.stats,
            sink,
        };
        for (_, id, key) in by_size {
            if self.mem_total <= target {
                break;
            }
            if let Some(mut c) = self.conns.remove(&key) {
                self.keys.remove(&id);
                self.mem_total -= c.mem;
                c.release(Release::Evicted(EvictReason::MemoryBudget), &mut out);
            }
        }
    }

    /// Takes a connection out of the table (its memory with it).
    pub(super) fn remove(&mut self, key: &Key) -> Option<Conn> {
        let c = self.conns.remove(key)?;
        self.keys.remove(&c.id);
        self.mem_total -= c.mem;
        Some(c)
    }

    /// Ends the waits of FINs behind holes that are over.
    pub(super) fn end_fin_waits(&mut self, ts_ns: u64, sink: &mut dyn EventSink) {
        while let Some(&(until, id, key)) = self.fin_waits.front() {
            if until >= self.now_ns {
                return;
            }
            self.fin_waits.pop_front();
            let Some(c) = self.conns.get_mut(&key).filter(|c| c.id == id) else {
                continue;
            };
            c.fin_wait_queued = false;
            let info = c.info();
            let (tcp_role, role) = (c.tcp_role, &mut c.role);
            let ConnState::Tcp { tcp, stack } = &mut c.state else {
                continue;
            };
            let mut out = Out {
                ts_ns,
                stats: &mut self.stats,
                sink,
            };
            let outcome = tcp.end_fin_waits(&mut |side, o| {
                on_tcp(stack, &info, tcp_role, role, &mut out, side, o)
            });
            if let Outcome::Closed { reset } = outcome {
                c.release(Release::Closed { reset }, &mut out);
            }
            self.account(&key, ts_ns, sink);
        }
    }

    /// Moves capture time on: ends FIN waits that are over, and drops
    /// connections idle for longer than the timeout (checked at most every
    /// tenth of the timeout of capture time).
    pub(super) fn advance_clock(&mut self, ts_ns: u64, sink: &mut dyn EventSink) {
        if ts_ns > self.now_ns {
            self.now_ns = ts_ns;
        }
        self.end_fin_waits(ts_ns, sink);
        let every = (self.cfg.flow.idle_timeout_ns / 10).max(1);
        if self.now_ns.saturating_sub(self.last_sweep_ns) < every {
            return;
        }
        self.last_sweep_ns = self.now_ns;
        let now = self.now_ns;
        let timeout = self.cfg.flow.idle_timeout_ns;
        let mut idle: Vec<(u64, ConnId, Key)> = self
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.last_ns) > timeout)
            .map(|(k, c)| (c.last_ns, c.id, *k))
            .collect();
        idle.sort();
        let mut out = Out {
            ts_ns,
            stats: &mut self.stats,
            sink,
        };
        for (_, id, k) in idle {
            if let Some(mut c) = self.conns.remove(&k) {
                self.keys.remove(&id);
                self.mem_total -= c.mem;
                c.release(Release::Evicted(EvictReason::IdleTimeout), &mut out);
            }
        }
    }

    /// Makes room: drops closed tombstones first, then the least recently
    /// active connections, about 1% of the table at a time so that a full
    /// table does not cost a scan per new connection.
    pub(super) fn evict_batch(&mut self, ts_ns: u64, sink: &mut dyn EventSink) {
        let batch = (self.cfg.flow.max_flows / 100).max(1);
        let mut order: Vec<(bool, u64, ConnId, Key)> = self
            .conns
            .iter()
            .map(|(k, c)| (!c.closed(), c.last_ns, c.id, *k))
            .collect();
        let n = batch.min(order.len());
        if n == 0 {
            return;
        }
        if n < order.len() {
            order.select_nth_unstable(n - 1);
            order.truncate(n);
        }
        order.sort();
        let mut out = Out {
            ts_ns,
            stats: &mut self.stats,
            sink,
        };
        for (_, _, id, k) in order {
            if let Some(mut c) = self.conns.remove(&k) {
                self.keys.remove(&id);
                self.mem_total -= c.mem;
                c.release(Release::Evicted(EvictReason::TableFull), &mut out);
            }
        }
    }
}
