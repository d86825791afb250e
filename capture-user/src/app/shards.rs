//! `--workers N` (N > 1): connections sharded across N decoder threads.
//!
//! The capture thread drains the ring and sends each segment to the worker
//! that owns its connection, chosen by a hash of the two endpoints that is
//! the same for both directions, so one decoder sees all of a connection
//! and per-connection order is kept. Ring records must be released before
//! the next batch, so payloads are copied into one buffer per worker and
//! batch (the price of sharding: the single-thread path decodes straight
//! from ring memory). Each worker has its own sink writing whole lines to
//! stdout under its lock, so lines of different connections interleave but
//! never mix. A bounded channel makes a slow worker slow the capture
//! thread down, and the kernel then counts what the ring could not hold.
//! Workers hand their emptied batches back, so that the buffers keep
//! their capacity: a fresh buffer per batch was grown by doubling and
//! faulted in page by page, at 2 GB/s of bulk payload the price of
//! sharding that lost records (measured: `cargo xtask bench --only scale`).

use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::common;
use crate::cli::Cli;
use crate::event::{Event, EventKind, EventSink};
use crate::owners::Owners;
use crate::registry::{DecodeStats, Decoder};
use crate::sink::Output;
use crate::source::{Checksum, Segment};

/// Batches a worker may have queued before the capture thread waits.
const QUEUE: usize = 64;

/// A segment's metadata; its payload is `data[start..start + len]` of the
/// batch.
struct Meta {
    ts_ns: u64,
    iface: u32,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    checksum: Checksum,
    lost: u32,
    start: usize,
    len: usize,
}

/// Segments for one worker, payloads copied into one buffer.
#[derive(Default)]
struct Batch {
    segs: Vec<Meta>,
    data: Vec<u8>,
}

impl Batch {
    fn push(&mut self, seg: &Segment<'_>, lost: u32) {
        self.segs.push(Meta {
            ts_ns: seg.ts_ns,
            iface: seg.iface,
            src: seg.src,
            dst: seg.dst,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            checksum: seg.checksum,
            lost,
            start: self.data.len(),
            len: seg.payload.len(),
        });
        self.data.extend_from_slice(seg.payload);
    }

    fn clear(&mut self) {
        self.segs.clear();
        self.data.clear();
    }

    fn segment<'a>(&'a self, m: &Meta) -> Segment<'a> {
        Segment {
            iface: m.iface,
            ts_ns: m.ts_ns,
            src: m.src,
            dst: m.dst,
            seq: m.seq,
            ack: m.ack,
            flags: m.flags,
            window: m.window,
            payload: &self.data[m.start..m.start + m.len],
            checksum: m.checksum,
        }
    }
}

/// What the workers share with the capture thread.
struct Shared {
    /// `-c N`.
    limit: Option<u64>,
    /// Messages printed so far, over all workers.
    printed: AtomicU64,
    /// stdout went away or failed: workers stop decoding.
    stopped: AtomicBool,
    /// The first write error.
    error: Mutex<Option<io::Error>>,
    /// Each worker's decoder counters after its latest batch (`--stats`).
    stats: Vec<Mutex<DecodeStats>>,
    /// The owner table the sinks read.
    owners: Option<Arc<Owners>>,
}

impl Shared {
    fn count_done(&self) -> bool {
        self.limit
            .is_some_and(|n| self.printed.load(Ordering::Relaxed) >= n)
    }

    fn fail(&self, e: io::Error) {
        self.stopped.store(true, Ordering::Relaxed);
        self.error.lock().unwrap().get_or_insert(e);
    }
}

/// The decoder threads and the batches being filled for them.
pub struct Shards {
    tx: Vec<SyncSender<Batch>>,
    pending: Vec<Batch>,
    /// Emptied batches coming back from the workers, for reuse.
    spare: Receiver<Batch>,
    workers: Vec<JoinHandle<DecodeStats>>,
    shared: Arc<Shared>,
    /// Sum of the workers' counters, once they have finished.
    totals: Option<DecodeStats>,
}

impl Shards {
    /// Starts `n` decoder threads.
    pub fn start(cli: &Cli, n: usize, owners: Option<Arc<Owners>>) -> io::Result<Shards> {
        let shared = Arc::new(Shared {
            owners,
            limit: cli.count,
            printed: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            error: Mutex::new(None),
            stats: (0..n).map(|_| Mutex::default()).collect(),
        });
        let (mut tx, mut workers) = (Vec::new(), Vec::new());
        // Room for every batch in flight: giving one back never blocks.
        let (give_back, spare) = sync_channel(n * (QUEUE + 2));
        for i in 0..n {
            let (s, r) = sync_channel(QUEUE);
            let (cli, shared, give_back) = (cli.clone(), shared.clone(), give_back.clone());
            let h = std::thread::Builder::new()
                .name(format!("wstap-decode-{i}"))
                .spawn(move || work(i, &cli, r, &give_back, &shared))?;
            tx.push(s);
            workers.push(h);
        }
        Ok(Shards {
            pending: (0..n).map(|_| Batch::default()).collect(),
            spare,
            tx,
            workers,
            shared,
            totals: None,
        })
    }

    /// Queues a segment for the worker that owns its connection.
    pub fn push(&mut self, seg: &Segment<'_>, lost: u32) {
        let i = (conn_hash(seg.src, seg.dst) % self.pending.len() as u64) as usize;
        self.pending[i].push(seg, lost);
    }

    /// Sends the batches filled since the last call.
    pub fn send(&mut self) {
        for (tx, b) in self.tx.iter().zip(&mut self.pending) {
            if !b.segs.is_empty() {
                let next = self.spare.try_recv().unwrap_or_default();
                // A worker only goes away by panicking; join reports that.
                let _ = tx.send(std::mem::replace(b, next));
            }
        }
    }

    /// True once `-c N` messages were printed.
    pub fn count_done(&self) -> bool {
        self.shared.count_done()
    }

    /// The first output error, taken (once), if a worker hit one.
    pub fn take_error(&self) -> Option<io::Error> {
        if !self.shared.stopped.load(Ordering::Relaxed) {
            return None;
        }
        self.shared.error.lock().unwrap().take()
    }

    /// Counters so far: the final sum once finished, else the workers'
    /// latest.
    pub fn stats(&self) -> DecodeStats {
        if let Some(t) = &self.totals {
            return t.clone();
        }
        let mut sum = DecodeStats::default();
        for s in &self.shared.stats {
            sum.add(&s.lock().unwrap());
        }
        sum
    }

    /// Sends what is pending, lets every worker flush its connections, and
    /// waits for them; their counters are summed for the summary.
    pub fn finish(&mut self, stopped: bool) {
        if stopped {
            self.shared.stopped.store(true, Ordering::Relaxed);
        }
        self.send();
        self.tx.clear(); // closes the channels: workers finish and return
        let mut sum = DecodeStats::default();
        for h in self.workers.drain(..) {
            match h.join() {
                Ok(s) => sum.add(&s),
                Err(_) => log::error!("a decoder thread panicked; its counters are lost"),
            }
        }
        self.totals = Some(sum);
    }
}

/// The same for (a, b) and (b, a): both directions go to one worker.
fn conn_hash(a: SocketAddr, b: SocketAddr) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (lo, hi).hash(&mut h);
    h.finish()
}

/// One decoder thread: decode every batch, write its events, flush.
fn work(
    i: usize,
    cli: &Cli,
    rx: Receiver<Batch>,
    give_back: &SyncSender<Batch>,
    shared: &Shared,
) -> DecodeStats {
    // The memory budget is the process's: each worker gets its share.
    let mut cfg = common::decode_config(cli);
    cfg.max_memory /= shared.stats.len().max(1);
    let mut dec = Decoder::new(cfg);
    let mut sink = WorkerSink {
        out: common::output_on(cli, LockedStdout, shared.owners.clone()),
        shared,
        index: i as u64,
        workers: shared.stats.len() as u64,
    };
    for mut batch in rx {
        if !shared.stopped.load(Ordering::Relaxed) {
            for m in &batch.segs {
                dec.push_cut(&batch.segment(m), m.lost, &mut sink);
            }
            sink.flush();
            *shared.stats[i].lock().unwrap() = dec.stats();
        }
        // Else only drained, so that the capture thread never blocks.
        batch.clear();
        let _ = give_back.try_send(batch);
    }
    if !shared.stopped.load(Ordering::Relaxed) {
        dec.finish(&mut sink);
        sink.flush();
    }
    dec.stats()
}

/// A worker's output with the shared `-c` count.
struct WorkerSink<'a> {
    out: Box<dyn Output>,
    shared: &'a Shared,
    /// This worker's index and the number of workers, to make the
    /// decoders' connection ids unique across workers.
    index: u64,
    workers: u64,
}

impl WorkerSink<'_> {
    fn flush(&mut self) {
        if let Err(e) = self.out.finish() {
            self.shared.fail(e);
        }
    }
}

impl EventSink for WorkerSink<'_> {
    fn event(&mut self, ev: &Event<'_>) {
        if let EventKind::Ws(crate::event::WsEvent::Message { .. }) = ev.kind {
            let n = self.shared.printed.fetch_add(1, Ordering::Relaxed);
            if self.shared.limit.is_some_and(|l| n >= l) {
                return;
            }
        } else if self.shared.count_done() {
            return;
        }
        // Each decoder numbers its connections 1, 2, 3...; worker i of N
        // turns its k-th into (k-1)*N + i + 1. The clone copies payloads
        // the decoder owned (unmasked, inflated): a cost of sharding only.
        let ev = Event {
            conn: (ev.conn.saturating_sub(1)) * self.workers + self.index + 1,
            ..ev.clone()
        };
        self.out.event(&ev);
    }
}

/// Writes each buffer whole while holding stdout's lock, so lines from
/// different workers never mix.
struct LockedStdout;

impl Write for LockedStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_hash_alike() {
        let a: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(conn_hash(a, b), conn_hash(b, a));
    }

    #[test]
    fn batch_gives_back_each_payload() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let seg = |p: &'static [u8]| Segment {
            iface: 0,
            ts_ns: 1,
            src: a,
            dst: a,
            seq: 7,
            ack: 0,
            flags: 0,
            window: 0,
            payload: p,
            checksum: Checksum::Good,
        };
        let mut b = Batch::default();
        b.push(&seg(b"abc"), 0);
        b.push(&seg(b""), 5);
        b.push(&seg(b"de"), 0);
        let got: Vec<&[u8]> = b.segs.iter().map(|m| b.segment(m).payload).collect();
        assert_eq!(got, [&b"abc"[..], b"", b"de"]);
        assert_eq!(b.segs[1].lost, 5);
    }
}
