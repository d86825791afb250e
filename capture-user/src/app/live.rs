//! Live capture from an interface: open the kernel tap, decode what it
//! delivers until SIGINT/SIGTERM (or `-c N` messages, or a closed stdout),
//! then detach and print a summary on stderr.
//!
//! Ring records are turned into [`Segment`]s that borrow ring memory and go
//! straight into the [`Decoder`], so in-order data is decoded without a copy.
//! The output (text or JSON Lines, `--format`) is flushed after every batch
//! of records, so a reader of the pipe sees events as they happen.
//!
//! `--segments` prints one line per captured segment instead of decoding
//! (text: the tcpdump-like line below, `--hex` adds the payload; JSON: one
//! `tcp_segment` object):
//!
//! ```text
//! 12:00:01.123456 veth0 In  10.77.0.1:5000 > 10.77.0.2:41234 [P.] seq 1 ack 1 win 502 len 5
//! ```
//!
//! `-w FILE.pcapng` also writes every captured segment, rebuilt as an
//! Ethernet frame. `--stats` prints a status line on stderr every second.
//! `--workers N` (N > 1) decodes on N threads, connections sharded (see
//! [`super::shards`]); the default, one thread decoding in place from ring
//! memory, measured best on a 2-core machine (4.3 GB over two connections:
//! 1.45-1.51 s CPU with one thread, 1.77-1.93 s with two, same wall time, no
//! records lost either way).
//! On stderr, once attached: `listening on IFACE (HOW), ring N bytes`; at
//! the end:
//!
//! ```text
//! N records received, N payload bytes, N records lost in kernel (ring full), N cut short
//! kernel: N packets seen, N segments matched, N bytes matched, N records delivered, N bytes delivered, N records lost, N bytes lost, N segments cut short, N bytes cut short, N parse errors
//! wstap: N connections, N WebSocket handshakes, N messages (N bytes), N control frames
//! wstap: N gaps (N bytes), N retransmitted bytes, ... N violations, ...
//! ```

use std::collections::HashMap;
use std::io::{BufWriter, ErrorKind, StdoutLock, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::command;
use super::common::{self, Limit};
use super::shards::Shards;
use crate::cli::{AttachKind, XdpModeArg};
use crate::cli::{Cli, Format};
use crate::filter::Filter;
use crate::owners::{self, Owners};
use crate::registry::{DecodeStats, Decoder};
use crate::sink::is_broken_pipe;
use crate::sink::rotate::{now_ns, PcapNgFiles};
use crate::source::hooked::{Chunk, Hint, Hooked};
use crate::source::Segment;
use crate::tap::{
    self, Attach, Counters, Record, RingItem, Tap, TapConfig, TapSelection, TcPath, TlsRecord,
    XdpAttachMode,
};
use capture_common::{tls_dir, tls_event, tls_how, Counter};

/// Runs the capture; returns the exit code (the command's, with
/// `-- COMMAND`; otherwise 0).
pub fn run(cli: &Cli, ifaces: &[String]) -> anyhow::Result<u8> {
    if cli.verify_checksums {
        anyhow::bail!(
            "--verify-checksums works on capture files (-r) only: live, the tap runs before TCP \
             checks checksums, and the kernel tells it only whether a device already verified a \
             packet, not which ones TCP will drop (see README, TCP checksums)"
        );
    }
    let filter = Filter::from_cli(cli)?;
    common::open_keylog(cli)?;
    let selection = selection(cli)?;
    let cfg = TapConfig {
        ifaces: ifaces.to_vec(),
        filter,
        attach: match (cli.attach, cli.xdp_mode) {
            (AttachKind::Tc, _) => Attach::Tc(TcPath::Auto),
            (AttachKind::TcNetlink, _) => Attach::Tc(TcPath::Netlink),
            (AttachKind::Xdp, XdpModeArg::Skb) => Attach::Xdp(XdpAttachMode::Skb),
            (AttachKind::Xdp, XdpModeArg::Driver) => Attach::Xdp(XdpAttachMode::Driver),
        },
        ring_size: cli.ring_size,
        verbose: cli.verbose,
        owners: !cli.no_process,
        tls: tls_wanted(cli, selection.is_some()).then(|| cli.tls_libs.clone()),
        selection,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(capture(cli, cfg))
}

/// `--tls`, or `--tls-lib`, or an owner filter (its processes' wss:// is
/// what a user watching them wants), unless processes are not tracked.
fn tls_wanted(cli: &Cli, selecting: bool) -> bool {
    !cli.no_process && (cli.tls || !cli.tls_libs.is_empty() || selecting)
}

/// The owner filter of `--pid`, `--comm` and `-- COMMAND`, or `None`. A
/// `--pid` with no such process is said; with none of them left (and no
/// `--comm` or command) there is nothing to capture.
fn selection(cli: &Cli) -> anyhow::Result<Option<TapSelection>> {
    if cli.pids.is_empty() && cli.comms.is_empty() && cli.command.is_empty() {
        return Ok(None);
    }
    let alive: Vec<u32> = cli.pids.iter().copied().filter(|&p| pid_alive(p)).collect();
    for p in cli.pids.iter().filter(|p| !alive.contains(p)) {
        eprintln!("wstap: warning: --pid {p}: no such process");
    }
    if alive.is_empty() && cli.comms.is_empty() && cli.command.is_empty() {
        anyhow::bail!("none of the processes given with --pid exists");
    }
    Ok(Some(TapSelection {
        pids: cli.pids.clone(),
        comms: cli.comms.clone(),
        follow: !cli.command.is_empty(),
    }))
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// `--pid` processes still running: each one's end is said once.
struct PidWatch {
    running: Vec<u32>,
}

impl PidWatch {
    fn new(cli: &Cli) -> Self {
        PidWatch {
            running: cli.pids.iter().copied().filter(|&p| pid_alive(p)).collect(),
        }
    }

    fn check(&mut self) {
        self.running.retain(|&p| {
            let alive = pid_alive(p);
            if !alive {
                eprintln!("wstap: process {p} (--pid) ended; the capture goes on");
            }
            alive
        });
    }
}

/// What the user side saw.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    segments: u64,
    bytes: u64,
}

/// Why the capture loop stopped before a signal.
enum Stop {
    /// `-c N` messages printed.
    Count,
    /// stdout went away (`| head`): end quietly.
    Closed,
    /// Writing the output or the pcapng file failed.
    Failed(anyhow::Error),
    /// The capture's source went away (its interface was deleted): what was
    /// captured is finished and summarised like a normal end, then this
    /// error is the exit status.
    Gone(anyhow::Error),
}

/// What happens to each segment.
enum Mode {
    /// Decode WebSocket conversations (the default).
    Decode(Box<Decoder>),
    /// `--workers N`: decode on N threads, connections sharded.
    Sharded(Box<Shards>),
    /// `--segments --format json`: one `tcp_segment` object per segment.
    SegmentJson,
    /// `--segments` in text: the tcpdump-like line with interface and
    /// direction, which a [`Segment`] alone does not carry.
    SegmentLines(Printer, BufWriter<StdoutLock<'static>>),
}

/// `-w`: the pcapng file (or rotated files).
struct PcapOut {
    sink: PcapNgFiles,
}

/// Everything the capture loop feeds: the decoder or segment printer, the
/// output, the optional pcapng file, and the counts for the summary.
struct Live {
    mode: Mode,
    sink: Limit,
    pcap: Option<PcapOut>,
    names: IfNames,
    seen: Seen,
    clock_offset_ns: i64,
    stop: Option<Stop>,
    /// Who owns each connection's ends (`None` with `--no-process`).
    owners: Option<Arc<Owners>>,
    pcap_comment: PcapComment,
    /// The hooked TLS plaintext (`--tls`).
    hooked: Hooked,
    /// TLS records that could not be decoded here (segment modes, workers).
    tls_skipped: u64,
    /// Several interfaces tapped: copies of one segment seen on a second
    /// interface (a bridge and its port) are dropped here.
    dedup: Option<tap::CrossIfaceDedup>,
    /// Tapped interfaces that went away during the capture.
    ifaces_gone: u64,
}

/// The `-w` packet comment naming the processes of a segment's ends, kept
/// for the last (src, dst, owner epoch): consecutive segments of one
/// connection cost no lookup.
#[derive(Default)]
struct PcapComment {
    key: Option<(SocketAddr, SocketAddr, u64)>,
    text: Option<String>,
}

impl PcapComment {
    /// `src comm[pid], dst comm[pid]` (the ends that are known), or `None`.
    fn get(&mut self, owners: &Owners, src: SocketAddr, dst: SocketAddr) -> Option<&str> {
        let key = (src, dst, owners.epoch());
        if self.key != Some(key) {
            self.key = Some(key);
            let ends: Vec<String> = ["src", "dst"]
                .into_iter()
                .zip(owners.ends(src, dst))
                .filter_map(|(name, w)| w.map(|w| format!("{name} {}[{}]", w.comm, w.pid)))
                .collect();
            self.text = (!ends.is_empty()).then(|| ends.join(", "));
        }
        self.text.as_deref()
    }
}

impl Live {
    /// Creates the output and the `-w` file (before attaching, so a bad
    /// path fails without touching the interface).
    fn new(cli: &Cli) -> anyhow::Result<Live> {
        let workers = common::live_workers(cli)?;
        let selecting = !cli.pids.is_empty() || !cli.comms.is_empty() || !cli.command.is_empty();
        let selection = selecting.then(|| owners::Selection {
            pids: cli.pids.clone(),
            comms: cli.comms.clone(),
        });
        let owners = (!cli.no_process).then(|| Owners::with_selection(selection));
        let mode = match (cli.segments, cli.format) {
            (false, _) if workers > 1 => {
                Mode::Sharded(Box::new(Shards::start(cli, workers, owners.clone())?))
            }
            (false, _) => Mode::Decode(Box::new(Decoder::new(common::decode_config(cli)))),
            (true, Format::Json) => Mode::SegmentJson,
            (true, Format::Text) => Mode::SegmentLines(
                Printer::new(cli.hex),
                BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
            ),
        };
        let pcap = match &cli.write {
            Some(path) => Some(PcapOut {
                sink: common::pcap_files(cli, path, Some(now_ns()))?,
            }),
            None => None,
        };
        // The workers write stdout themselves: this thread must not hold
        // stdout's lock then, so its own sink writes nowhere.
        let out = match mode {
            Mode::Sharded(_) => common::output_on(cli, std::io::sink(), None),
            _ => common::output(cli, owners.clone()),
        };
        Ok(Live {
            mode,
            owners,
            pcap_comment: PcapComment::default(),
            sink: Limit::new(out, cli.count),
            pcap,
            names: IfNames::default(),
            seen: Seen::default(),
            clock_offset_ns: 0,
            stop: None,
            hooked: Hooked::new(Filter::from_cli(cli)?),
            tls_skipped: 0,
            dedup: None,
            ifaces_gone: 0,
        })
    }

    /// Says what link notifications changed; with no interface left (and
    /// no `-i any` to bring new ones), ends the capture with the error.
    fn interfaces_changed(&mut self, changes: Vec<tap::IfaceChange>, tap: &Tap) {
        for c in changes {
            match c {
                tap::IfaceChange::Attached {
                    name,
                    description,
                    stale,
                } => {
                    for line in stale {
                        eprintln!("wstap: {line}");
                    }
                    eprintln!("wstap: interface {name} came up: attached ({description})");
                }
                tap::IfaceChange::NotAttached { name, why } => {
                    eprintln!(
                        "wstap: warning: interface {name} came up but cannot be tapped: {why}"
                    );
                }
                tap::IfaceChange::Gone { name, left } => {
                    self.ifaces_gone += 1;
                    if left == 0 && !tap.follows_new_interfaces() {
                        let e = tap::TapError::InterfaceGone { iface: name };
                        self.stop.get_or_insert(Stop::Gone(e.into()));
                    } else {
                        eprintln!(
                            "wstap: interface {name} went away (deleted, or moved to another network \
                             namespace); the capture goes on on {left} other{}",
                            if left == 1 { "" } else { "s" }
                        );
                    }
                }
            }
        }
    }

    /// One ring record: count it, write it to `-w`, decode or print it.
    /// Records still in the ring after a stop are counted (they were
    /// captured, and the summary must match the kernel's) but not handled.
    /// One ring item: a segment record, or a socket fact for the owners.
    fn item(&mut self, item: &RingItem<'_>) {
        match item {
            RingItem::Segment(rec) => self.record(rec),
            RingItem::Sock(fact) => {
                if let Some(o) = &self.owners {
                    o.apply(fact);
                }
                if fact.event == capture_common::sock_event::CLOSE && self.stop.is_none() {
                    if let Mode::Decode(d) = &mut self.mode {
                        let ts_ns = (fact.ts_ns as i64).wrapping_add(self.clock_offset_ns) as u64;
                        self.hooked.closed(fact.sk, ts_ns, d, &mut self.sink);
                    }
                }
            }
            RingItem::Tls(rec) => self.tls(rec),
        }
    }

    /// One TLS hook record: plaintext or a tie, for the hooked source.
    fn tls(&mut self, rec: &TlsRecord<'_>) {
        let h = &rec.header;
        let (Mode::Decode(d), Some(owners), None) = (&mut self.mode, &self.owners, &self.stop)
        else {
            self.tls_skipped += 1;
            return;
        };
        let sockets = |sk| owners.socket(sk);
        let ts_ns = (h.ts_ns as i64).wrapping_add(self.clock_offset_ns) as u64;
        match h.event {
            tls_event::TIE => {
                self.hooked
                    .tie(h.tgid, h.ssl, h.sk, &sockets, d, &mut self.sink);
                return;
            }
            tls_event::FREE => {
                self.hooked.freed(h.tgid, h.ssl, ts_ns, d, &mut self.sink);
                return;
            }
            _ => {}
        }
        let chunk = Chunk {
            tgid: h.tgid,
            ssl: h.ssl,
            read: h.dir == tls_dir::READ,
            offset: h.offset,
            data: rec.data,
            sk: h.sk,
            hint: match h.how {
                tls_how::NESTED => Hint::Nested,
                tls_how::NONE => Hint::None,
                _ => Hint::Near,
            },
            ts_ns,
        };
        self.hooked.chunk(&chunk, &sockets, d, &mut self.sink);
        if self.sink.done() {
            self.stop = Some(Stop::Count);
        }
    }

    fn record(&mut self, rec: &Record<'_>) {
        self.seen.segments += 1;
        self.seen.bytes += rec.payload.len() as u64;
        if self.stop.is_some() {
            return;
        }
        let seg = rec.segment(self.clock_offset_ns);
        self.write_pcap(rec, &seg);
        if let Some(d) = &mut self.dedup {
            if d.is_duplicate(&seg) {
                return; // in -w as captured; decoded once
            }
        }
        match &mut self.mode {
            Mode::Decode(d) => {
                d.push_cut(&seg, lost_after(rec), &mut self.sink);
                if self.sink.done() {
                    // `-c N` reached: decode nothing more. The summary still
                    // counts what this segment decoded past the N-th message.
                    self.stop = Some(Stop::Count);
                }
            }
            Mode::Sharded(s) => s.push(&seg, lost_after(rec)),
            Mode::SegmentJson => self.sink.out.segment(&seg),
            Mode::SegmentLines(p, out) => {
                p.print(out, self.names.get(rec.header.ifindex), rec, &seg)
            }
        }
    }

    fn write_pcap(&mut self, rec: &Record<'_>, seg: &Segment<'_>) {
        let Some(p) = &mut self.pcap else { return };
        let iface = self.names.get(rec.header.ifindex);
        let comment = match &self.owners {
            Some(o) => self.pcap_comment.get(o, seg.src, seg.dst),
            None => None,
        };
        if let Err(e) = p.sink.write_segment(iface, seg, comment) {
            let e = anyhow::Error::new(e)
                .context(format!("writing {}", p.sink.current_path().display()));
            self.stop = Some(Stop::Failed(e));
        } else if p.sink.done() {
            // -G with -W N: N files are written, as tcpdump ends then.
            self.stop.get_or_insert(Stop::Count);
        }
    }

    /// End of a batch: flush the output (and `-w`) so readers see it now;
    /// with workers, hand them the batch and look at how they fare.
    fn end_batch(&mut self) {
        self.flush();
        if let Mode::Sharded(s) = &mut self.mode {
            s.send();
            let (err, done) = (s.take_error(), s.count_done());
            if let Some(e) = err {
                self.fail_output(e);
            }
            if done {
                self.stop.get_or_insert(Stop::Count);
            }
        }
    }

    fn flush(&mut self) {
        let out = match &mut self.mode {
            Mode::SegmentLines(p, out) if p.closed => Err(ErrorKind::BrokenPipe.into()),
            Mode::SegmentLines(_, out) => out.flush(),
            _ => self.sink.out.finish(),
        };
        if let Err(e) = out {
            self.fail_output(e);
        }
        if let Some(p) = &mut self.pcap {
            if let Err(e) = p.sink.flush() {
                let e = anyhow::Error::new(e)
                    .context(format!("writing {}", p.sink.current_path().display()));
                self.stop.get_or_insert(Stop::Failed(e));
            }
        }
    }

    fn fail_output(&mut self, e: std::io::Error) {
        let stop = if is_broken_pipe(&e) {
            Stop::Closed
        } else {
            Stop::Failed(anyhow::Error::new(e).context("writing the output"))
        };
        self.stop.get_or_insert(stop);
    }

    /// After the last record: let the decoder flush every connection (gaps,
    /// closes), unless stdout is gone, and flush the output.
    fn finish(&mut self) {
        let stopped = matches!(self.stop, Some(Stop::Closed | Stop::Failed(_)));
        match (&mut self.mode, stopped) {
            (Mode::Decode(d), false) => d.finish(&mut self.sink),
            (Mode::Sharded(s), _) => {
                s.finish(stopped);
                if let Some(e) = s.take_error() {
                    self.fail_output(e);
                }
            }
            _ => {}
        }
        if !stopped {
            self.flush();
        }
    }

    /// The decoder's counters, when decoding.
    fn decode_stats(&self) -> Option<DecodeStats> {
        match &self.mode {
            Mode::Decode(d) => Some(d.stats()),
            Mode::Sharded(s) => Some(s.stats()),
            _ => None,
        }
    }
}

/// Payload bytes of the record's segment that the kernel did not deliver
/// (more than `CHUNKS_MAX` chunks, or unreadable): the decoder reports them
/// as a gap when the stream reaches them instead of waiting for them.
fn lost_after(rec: &Record<'_>) -> u32 {
    let h = &rec.header;
    if h.rec_flags & capture_common::REC_CUT_SHORT == 0 {
        return 0;
    }
    h.seg_len
        .saturating_sub(h.offset.saturating_add(h.chunk_len))
}

/// Interface names by index, looked up once. The tap has its own cache,
/// but it is borrowed by `next_batch` while records are handled.
#[derive(Default)]
struct IfNames(HashMap<u32, String>);

impl IfNames {
    fn get(&mut self, index: u32) -> &str {
        self.0
            .entry(index)
            .or_insert_with(|| tap::if_name(index).unwrap_or_else(|| format!("if{index}")))
    }
}

async fn capture(cli: &Cli, cfg: TapConfig) -> anyhow::Result<u8> {
    use tokio::signal::unix::{signal, SignalKind};
    // Signal handlers first, so a SIGINT right after "listening" is not fatal.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut live = Live::new(cli)?;
    let mut tap = Tap::open(&cfg)?;
    live.clock_offset_ns = tap.clock_offset_ns();
    for line in tap.stale_report() {
        eprintln!("wstap: {line}");
    }
    // Once the hooks are attached (they see every later connection), and
    // before "listening": connections already open get their owners here.
    if let Some(owners) = &live.owners {
        if let Some(why) = tap.owners_off() {
            eprintln!(
                "wstap: warning: process attribution is off for new connections ({why}); \
                 connections open at start are still attributed from /proc"
            );
        }
        for line in tap.tls_report() {
            eprintln!("wstap: TLS: {line}");
        }
        let found = owners::procfs::scan(owners);
        if cfg.selection.is_some() {
            tap.mark_found(&found)?;
        }
    }
    eprintln!(
        "listening on {}, ring {} bytes",
        tap.description(),
        tap.ring_size()
    );
    // Interfaces coming and going: `-i any` attaches new ones; every
    // capture hears at once when a tapped one is deleted. Without the
    // socket, the once-a-second check below still sees deletions.
    let mut link_watch = match tap::LinkWatch::open() {
        Ok(w) => Some(w),
        Err(e) if tap.follows_new_interfaces() => {
            return Err(anyhow::Error::new(e)
                .context("-i any: subscribing to link notifications (rtnetlink)"))
        }
        Err(_) => None,
    };
    if tap.attached_count() > 1 || tap.follows_new_interfaces() {
        live.dedup = Some(tap::CrossIfaceDedup::default());
    }
    let mut child = match cli.command.is_empty() {
        true => None,
        false => Some(start_command(cli, &mut tap)?),
    };
    let mut pids = PidWatch::new(cli);
    let mut exit_code = 0u8;
    // Once the command has ended: what is still on its way through the
    // ring is taken until then.
    let mut ending: Option<tokio::time::Instant> = None;
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status = Status::new();

    while live.stop.is_none() {
        tokio::select! {
            _ = sigint.recv() => if !forward(&child, libc::SIGINT) { break },
            _ = sigterm.recv() => if !forward(&child, libc::SIGTERM) { break },
            r = wait_child(&mut child), if child.is_some() => {
                exit_code = r?;
                child = None;
                ending = Some(tokio::time::Instant::now() + COMMAND_LINGER);
            }
            _ = tokio::time::sleep_until(ending.unwrap_or_else(tokio::time::Instant::now)), if ending.is_some() => break,
            evs = next_link_events(&mut link_watch) => {
                match evs {
                    Ok(evs) => {
                        for ev in evs {
                            let changes = tap.link_event(ev);
                            live.interfaces_changed(changes, &tap);
                        }
                    }
                    Err(e) => {
                        eprintln!("wstap: warning: link notifications failed ({e}); interfaces are checked once a second");
                        link_watch = None;
                    }
                }
                if live.stop.is_some() {
                    break;
                }
            }
            _ = ticker.tick() => {
                // A deleted interface takes its links along: with none
                // left nothing more would arrive, so the capture ends with
                // the summary and says why.
                let changes = tap.check_interfaces();
                live.interfaces_changed(changes, &tap);
                if live.stop.is_some() {
                    break;
                }
                pids.check();
                if cli.stats {
                    status.print(&live, &tap.counters()?);
                }
            }
            r = tap.next_batch(|it| live.item(&it)) => {
                r?;
                live.end_batch();
            }
        }
    }
    // Detach first, then take what is left in the ring, then read the
    // counters: the totals are then exact.
    tap.detach();
    tap.drain_now(|it| live.item(&it));
    live.finish();
    let c = tap.counters()?;
    let unreadable = tap.unreadable_records();
    drop(tap);
    report(live, &c, unreadable)?;
    if let Some(mut c) = child {
        // Stopped before the command ended (a second signal, a closed
        // stdout): it is left running, and wstap's exit says so.
        eprintln!(
            "wstap: the command (pid {}) is still running",
            c.id().unwrap_or(0)
        );
        let _ = c.try_wait();
        exit_code = 1;
    }
    Ok(exit_code)
}

/// The next link notifications, or never without the socket.
async fn next_link_events(
    watch: &mut Option<tap::LinkWatch>,
) -> std::io::Result<Vec<tap::LinkEvent>> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// How long after the command ends the capture goes on, for its last
/// segments (the peer's FIN) to come through the ring.
const COMMAND_LINGER: Duration = Duration::from_millis(300);

/// Starts `-- COMMAND` with the kernel following it: wstap's own process is
/// followed while it forks, so the child is selected before it first runs,
/// and its children after it.
fn start_command(cli: &Cli, tap: &mut Tap) -> anyhow::Result<tokio::process::Child> {
    let run_as = command::invoking_user().map_err(anyhow::Error::msg)?;
    let me = std::process::id();
    tap.follow(me)?;
    let spawned = command::command(&cli.command, run_as.as_ref()).spawn();
    tap.unfollow(me)?;
    let child = spawned.map_err(|source| command::CannotStart {
        program: cli.command[0].clone(),
        source,
    })?;
    if let Some(pid) = child.id() {
        // Also when the fork hook missed it (the map full, say).
        tap.follow(pid)?;
        let who = run_as.map_or(String::new(), |u| format!(" as uid {}", u.uid));
        eprintln!("wstap: started {} (pid {pid}){who}", cli.command[0]);
    }
    Ok(child)
}

/// A signal for wstap, with a command running: passed on to it, and the
/// capture ends when the command does (true). A second one, or none
/// running: the capture ends now (false).
fn forward(child: &Option<tokio::process::Child>, sig: libc::c_int) -> bool {
    let Some(pid) = child.as_ref().and_then(|c| c.id()) else {
        return false;
    };
    static FORWARDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if FORWARDED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
    true
}

async fn wait_child(child: &mut Option<tokio::process::Child>) -> anyhow::Result<u8> {
    match child {
        Some(c) => {
            let status = c.wait().await.context("waiting for the command")?;
            Ok(command::exit_code(status))
        }
        None => std::future::pending().await,
    }
}

/// The exit summary, or the error that stopped the capture. A closed stdout
/// is a normal end (`wstap -i eth0 | head`) and prints nothing.
fn report(mut live: Live, c: &Counters, unreadable: u64) -> anyhow::Result<()> {
    let gone = match live.stop.take() {
        Some(Stop::Closed) => return Ok(()),
        Some(Stop::Failed(e)) => {
            summary(&live.seen, c, unreadable);
            return Err(e);
        }
        Some(Stop::Gone(e)) => Some(e),
        Some(Stop::Count) | None => None,
    };
    summary(&live.seen, c, unreadable);
    let duplicates = live.dedup.as_ref().map_or(0, |d| d.duplicates());
    if duplicates > 0 || live.ifaces_gone > 0 {
        eprintln!(
            "wstap: interfaces: {duplicates} segments seen again on a second interface (decoded once), \
             {} interfaces went away",
            live.ifaces_gone
        );
    }
    if let Some(d) = live.decode_stats() {
        common::print_decode_summary(&d);
    }
    common::print_keylog_summary();
    if let Some(o) = &live.owners {
        eprintln!(
            "wstap: {} connection ends attributed to processes, {} owners evicted (table full)",
            o.len(),
            o.evicted()
        );
        if o.filtering() {
            eprintln!(
                "wstap: owner filter: {} segments of other processes left out in the kernel, {} events left out here",
                c.get(Counter::OtherProcesses),
                o.hidden()
            );
        }
    }
    if c.get(Counter::TlsCalls) > 0 || live.tls_skipped > 0 {
        let h = live.hooked.stats();
        eprintln!(
            "wstap: TLS: {} calls hooked, {} plaintext bytes decoded, {} seen by both ends (taken once), \
             {} never tied to a connection, {} on sockets opened before wstap, {} of connections the host/port filter leaves out, {} hints disagreed, \
             {} records lost (ring full, {} bytes), {} bytes unreadable, {} records not decoded (--segments/--workers)",
            c.get(Counter::TlsCalls),
            h.decoded_bytes,
            h.twice_bytes,
            h.untied_bytes,
            h.unknown_socket_bytes,
            h.filtered_bytes,
            h.disagreeing_hints,
            c.get(Counter::TlsRecordsLost),
            c.get(Counter::TlsBytesLost),
            c.get(Counter::TlsBytesUnreadable),
            live.tls_skipped,
        );
    }
    if let Some(p) = &live.pcap {
        eprintln!(
            "wstap: {} packets written to {}",
            p.sink.packets(),
            p.sink.describe()
        );
    }
    gone.map_or(Ok(()), Err)
}

fn summary(seen: &Seen, c: &Counters, unreadable: u64) {
    eprintln!(
        "{} records received, {} payload bytes, {} records lost in kernel (ring full), {} cut short",
        seen.segments,
        seen.bytes,
        c.get(Counter::RecordsLost),
        c.get(Counter::CutShortSegments)
    );
    eprintln!("{}", c.summary_line());
    if unreadable > 0 {
        eprintln!(
            "wstap: {unreadable} ring records unreadable (another record kind or wire version, \
             or shorter than their header): is this wstap built from the same capture-common as its eBPF programs?"
        );
    }
}

/// `--stats`: rates since the previous line, from the totals now and then.
struct Status {
    at: Instant,
    seen: Seen,
    messages: u64,
}

impl Status {
    fn new() -> Self {
        Status {
            at: Instant::now(),
            seen: Seen::default(),
            messages: 0,
        }
    }

    /// One line on stderr: segments/s, MB/s, messages/s, kernel losses (new
    /// and total), open connections.
    fn print(&mut self, live: &Live, c: &Counters) {
        let now = Instant::now();
        let secs = now.duration_since(self.at).as_secs_f64().max(1e-3);
        let stats = live.decode_stats().unwrap_or_default();
        let rate = |now: u64, then: u64| (now.saturating_sub(then)) as f64 / secs;
        eprintln!(
            "wstap: {:.0} segments/s, {:.2} MB/s, {:.0} messages/s, {} records lost in kernel, {} flows open ({} seen)",
            rate(live.seen.segments, self.seen.segments),
            rate(live.seen.bytes, self.seen.bytes) / 1e6,
            rate(stats.messages, self.messages),
            c.get(Counter::RecordsLost),
            common::open_flows(&stats),
            stats.flow.connections,
        );
        self.at = now;
        self.seen = live.seen;
        self.messages = stats.messages;
    }
}

struct Printer {
    hex: bool,
    line: String,
    /// stdout went away (`| head`): print nothing more.
    closed: bool,
}

impl Printer {
    fn new(hex: bool) -> Self {
        Printer {
            hex,
            line: String::new(),
            closed: false,
        }
    }

    fn print(&mut self, out: &mut impl Write, ifname: &str, rec: &Record<'_>, seg: &Segment<'_>) {
        if self.closed {
            return;
        }
        use std::fmt::Write as _;
        let secs = seg.ts_ns / 1_000_000_000;
        let micros = (seg.ts_ns % 1_000_000_000) / 1000;
        let l = &mut self.line;
        l.clear();
        let _ = write!(
            l,
            "{:02}:{:02}:{:02}.{:06} {} {} {} > {} [{}] seq {} ack {} win {} len {}",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            micros,
            ifname,
            if rec.is_egress() { "Out" } else { "In " },
            seg.src,
            seg.dst,
            crate::sink::text::flag_letters(seg.flags),
            seg.seq,
            seg.ack,
            seg.window,
            seg.payload.len()
        );
        if self.hex && !seg.payload.is_empty() {
            l.push_str(" data ");
            for b in seg.payload {
                let _ = write!(l, "{b:02x}");
            }
        }
        l.push('\n');
        if let Err(e) = out.write_all(l.as_bytes()) {
            if e.kind() == ErrorKind::BrokenPipe {
                self.closed = true;
            } else {
                self.closed = true;
                log::warn!("writing to stdout: {e}");
            }
        }
    }
}
