//! Run-loop pieces both capture modes share: the output sink chosen by the
//! command line, the decoder limits, the `-c` message limit and the decode
//! part of the exit summary. Kept here so that `live` and `offline` print
//! the same things the same way.

use std::sync::Arc;

use crate::owners::Owners;
use std::io::Write;

use crate::cli::{Cli, Format};
use crate::event::{Event, EventKind, EventSink};
use crate::proto::tls::KeyLog;
use crate::proto::ProtoConfig;
use crate::registry::{DecodeConfig, DecodeStats};
use crate::sink::json::JsonSink;
use crate::sink::rotate::{PcapNgFiles, Rotation};
use crate::sink::selected::Selected;
use crate::sink::text::TextSink;
use crate::sink::Output;
use crate::source::ChecksumStats;

/// The stdout sink for `--format`, with `--payload-max` (and `--hex` for
/// text segment lines).
pub fn output(cli: &Cli, owners: Option<Arc<Owners>>) -> Box<dyn Output> {
    output_on(cli, std::io::stdout().lock(), owners)
}

/// Like [`output`], writing to `w` (a decoder thread's share of stdout).
/// `owners`: the process of each end, when live capture attributes them.
pub fn output_on<W: Write + 'static>(
    cli: &Cli,
    w: W,
    owners: Option<Arc<Owners>>,
) -> Box<dyn Output> {
    let out: Box<dyn Output> = match cli.format {
        Format::Text => Box::new(
            TextSink::new(w, cli.payload_max)
                .with_segment_hex(cli.hex)
                .with_owners(owners.clone()),
        ),
        Format::Json => Box::new(JsonSink::new(w, cli.payload_max).with_owners(owners.clone())),
    };
    match owners {
        Some(o) if o.filtering() => Box::new(Selected::new(out, o)),
        _ => out,
    }
}

/// Decoder limits from the command line; the rest keeps its defaults.
/// The key logs of `--keylog`, opened once per run and shared by every
/// decoder (and fed by pcapng Decryption Secrets Blocks).
static KEYLOG: std::sync::OnceLock<Option<Arc<KeyLog>>> = std::sync::OnceLock::new();

/// Opens `--keylog` (each file must be readable now); the first call wins.
pub fn open_keylog(cli: &Cli) -> anyhow::Result<()> {
    if KEYLOG.get().is_some() {
        return Ok(());
    }
    // Always one, empty without --keylog: a capture file's Decryption
    // Secrets Blocks may fill it.
    let log = if cli.keylog.is_empty() {
        KeyLog::empty()
    } else {
        KeyLog::open(&cli.keylog)?
    };
    let _ = KEYLOG.set(Some(Arc::new(log)));
    Ok(())
}

/// The key log, if `--keylog` was given.
pub fn keylog() -> Option<Arc<KeyLog>> {
    KEYLOG.get().cloned().flatten()
}

/// The key log's summary line, when one was given.
pub fn print_keylog_summary() {
    if let Some(k) = keylog().filter(|k| k.has_sources()) {
        eprintln!("{}", k.summary());
    }
}

pub fn decode_config(cli: &Cli) -> DecodeConfig {
    DecodeConfig {
        proto: ProtoConfig {
            max_message: cli.max_message,
            max_inflated: cli.max_inflated,
            keylog: keylog(),
        },
        max_memory: cli.max_memory,
        verify_checksums: cli.verify_checksums,
        ..DecodeConfig::default()
    }
}

/// For a mode that decodes on one thread (reading a file): a different
/// `--workers` is refused rather than silently ignored, so nobody
/// benchmarks a flag that does nothing.
pub fn check_workers(cli: &Cli) -> anyhow::Result<()> {
    match cli.workers {
        None | Some(1) => Ok(()),
        Some(n) => anyhow::bail!(
            "--workers {n}: only live capture (-i) shards decoding across threads; \
             reading a file uses one thread, leave out --workers"
        ),
    }
}

/// `-w FILE` with `-C`/`-G`/`-W` as asked: `start_ns` is now for live
/// capture, `None` for a file (its packets' time names `-G` files).
pub fn pcap_files(
    cli: &Cli,
    path: &std::path::Path,
    start_ns: Option<u64>,
) -> anyhow::Result<PcapNgFiles> {
    let rotation = Rotation::new(cli.file_size, cli.rotate_seconds, cli.file_count)
        .map_err(anyhow::Error::msg)?;
    if rotation.any() && crate::sink::pcapng::is_stdout(path) {
        anyhow::bail!("-C and -G rotate files: they cannot rotate -w - (standard output)");
    }
    // The secrets go into the file too (Decryption Secrets Blocks), so
    // that Wireshark decrypts it without a key file.
    let secrets = keylog().filter(|_| !cli.keylog.is_empty());
    Ok(PcapNgFiles::create(path, rotation, start_ns, secrets)?)
}

/// Decoder threads for live capture: `--workers N`, default 1 (one thread
/// decoding straight from ring memory measured best; see `app::live`).
pub fn live_workers(cli: &Cli) -> anyhow::Result<usize> {
    match cli.workers {
        None => Ok(1),
        Some(0) => anyhow::bail!("--workers 0: give at least 1 decoder thread"),
        Some(n) => Ok(n),
    }
}

/// Passes events to the output and counts messages for `-c`; once the count
/// is reached it drops everything after (the rest of the batch being
/// decoded, and what `finish` flushes), so exactly N messages are printed.
pub struct Limit {
    pub out: Box<dyn Output>,
    left: Option<u64>,
}

impl Limit {
    pub fn new(out: Box<dyn Output>, count: Option<u64>) -> Self {
        Limit { out, left: count }
    }

    /// True once `-c N` messages went out.
    pub fn done(&self) -> bool {
        self.left == Some(0)
    }
}

impl EventSink for Limit {
    fn event(&mut self, ev: &Event<'_>) {
        if self.done() {
            return;
        }
        self.out.event(ev);
        if let (EventKind::Ws(crate::event::WsEvent::Message { .. }), Some(n)) =
            (&ev.kind, self.left.as_mut())
        {
            *n -= 1;
        }
    }
}

/// The decoder's part of the exit summary on stderr: connections and
/// messages, then everything that went wrong (gaps, violations, caps).
pub fn print_decode_summary(d: &DecodeStats) {
    let f = &d.flow;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "wstap: {} connections, {} WebSocket handshakes, {} messages ({} bytes), {} control frames",
        f.connections, d.ws_opens, d.messages, d.message_bytes, d.control_frames,
    );
    let _ = writeln!(
        e,
        "wstap: {} gaps ({} bytes), {} retransmitted bytes, {} overlap mismatches, {} violations, \
         {} truncated messages, {} undecompressable, {} resyncs, {} evicted",
        f.gaps,
        f.gap_bytes,
        f.retransmitted_bytes,
        f.overlap_mismatches,
        d.violations,
        d.truncated_messages,
        d.undecompressable,
        d.resyncs,
        d.evictions,
    );
    let skipped = d.skipped_bytes + d.resync_skipped_bytes;
    if skipped > 0 {
        let _ = writeln!(
            e,
            "wstap: {skipped} bytes skipped undecoded ({} before resyncs; no framing, \
             undecoded protocols, messages dropped after gaps)",
            d.resync_skipped_bytes
        );
    }
    if f.bytes_after_end > 0 {
        let _ = writeln!(
            e,
            "wstap: {} bytes after a FIN or RST ignored (the receiver never gets them)",
            f.bytes_after_end
        );
    }
    if d.undecoded > 0 {
        let _ = writeln!(
            e,
            "wstap: {} connections not decoded (TLS, no key to decrypt it)",
            d.undecoded
        );
    }
    drop(e);
    print_checksum_summary(&d.checksum);
}

/// The summary line on TCP checksums, only when some did not verify:
/// whether those segments were decoded or dropped, and why that many may
/// be harmless.
pub fn print_checksum_summary(c: &ChecksumStats) {
    if c.bad == 0 {
        return;
    }
    let what = if c.skipped > 0 {
        "dropped (--verify-checksums; a hole one leaves is a gap)"
    } else {
        "decoded anyway (--verify-checksums drops them, as the receiving kernel does)"
    };
    let _ = writeln!(
        std::io::stderr(),
        "wstap: {} TCP segments with a bad checksum {what}; normal in captures taken on \
         loopback or of a host's own outgoing traffic, where offload leaves partial checksums",
        c.bad,
    );
}

/// Connections still in the table: seen minus closed minus evicted.
pub fn open_flows(d: &DecodeStats) -> u64 {
    let f = &d.flow;
    f.connections
        .saturating_sub(f.closed)
        .saturating_sub(f.evicted_idle)
        .saturating_sub(f.evicted_full)
        .saturating_sub(f.evicted_reused)
        .saturating_sub(f.evicted_memory)
}
