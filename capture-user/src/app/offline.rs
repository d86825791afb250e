//! Decoding a capture file: pcap/pcapng → user-space filter → decoder → sink,
//! then a summary on stderr.
//!
//! `-c N` stops after N `ws_message` events; `--segments` prints the TCP
//! segments instead of decoding. A closed stdout (`wstap -r f | head -1`)
//! ends the run quietly with success.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::Context;

use crate::cli::{Cli, Format};
use crate::decode::{DecodeConfig, DecodeStats, Decoder};
use crate::event::{Event, EventKind, EventSink};
use crate::filter::Filter;
use crate::proto::ProtoConfig;
use crate::sink::json::JsonSink;
use crate::sink::text::TextSink;
use crate::sink::{is_broken_pipe, Output};
use crate::source::pcap::{FileSource, SourceStats};

/// Passes events on and counts messages for `-c`; once the count is reached
/// it drops everything after (the rest of the segment being decoded).
struct Limit<'a> {
    out: &'a mut dyn Output,
    left: Option<u64>,
}

impl Limit<'_> {
    fn done(&self) -> bool {
        self.left == Some(0)
    }
}

impl EventSink for Limit<'_> {
    fn event(&mut self, ev: &Event<'_>) {
        if self.done() {
            return;
        }
        self.out.event(ev);
        if let (EventKind::WsMessage { .. }, Some(n)) = (&ev.kind, self.left.as_mut()) {
            *n -= 1;
        }
    }
}

/// Reads `path` and prints what the command line asks for.
pub fn run(cli: &Cli, path: &Path) -> anyhow::Result<()> {
    if cli.write.is_some() {
        anyhow::bail!("-w (writing pcapng) is not available when reading a file yet");
    }
    let filter = Filter::parse(&cli.hosts, &cli.ports)?;
    let mut source =
        FileSource::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let stdout = std::io::stdout().lock();
    let mut out: Box<dyn Output> = match cli.format {
        Format::Text => Box::new(TextSink::new(stdout, cli.payload_max).with_segment_hex(cli.hex)),
        Format::Json => Box::new(JsonSink::new(stdout, cli.payload_max)),
    };
    let cfg = DecodeConfig {
        proto: ProtoConfig {
            max_message: cli.max_message,
            max_inflated: cli.max_inflated,
        },
        ..DecodeConfig::default()
    };
    let mut decoder = Decoder::new(cfg);
    let mut filtered = 0u64;
    let mut sink = Limit {
        out: out.as_mut(),
        left: cli.count,
    };
    let read = source.for_each_segment(|seg, lost| {
        if !filter.matches(seg.src.ip(), seg.src.port(), seg.dst.ip(), seg.dst.port()) {
            filtered += 1;
            return ControlFlow::Continue(());
        }
        if cli.segments {
            sink.out.segment(seg);
        } else {
            decoder.push_cut(seg, lost, &mut sink);
        }
        if sink.done() || sink.out.error().is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if !cli.segments && !sink.done() && sink.out.error().is_none() {
        decoder.finish(&mut sink);
    }
    let written = out.finish();
    let stopped_early = matches!(&written, Err(e) if is_broken_pipe(e));
    if let Err(e) = written {
        if !stopped_early {
            return Err(e).context("writing the output");
        }
    }
    read.with_context(|| format!("reading {}", path.display()))?;
    if !stopped_early {
        summary(source.stats(), filtered, &decoder.stats(), cli.segments);
    }
    Ok(())
}

/// The exit summary on stderr: what was read, what was decoded, what was lost.
fn summary(src: &SourceStats, filtered: u64, d: &DecodeStats, segments_only: bool) {
    let f = &d.flow;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "wstap: {} packets, {} TCP segments ({} filtered out), {} non-TCP skipped, {} malformed, {} truncated by snaplen{}",
        src.packets,
        src.segments,
        filtered,
        src.non_tcp,
        src.malformed,
        src.truncated,
        if src.file_truncated { ", file cut mid-packet" } else { "" },
    );
    if src.unsupported_link > 0 {
        let _ = writeln!(
            e,
            "wstap: {} packets on interfaces with unsupported link types",
            src.unsupported_link
        );
    }
    if segments_only {
        return;
    }
    let _ = writeln!(
        e,
        "wstap: {} connections, {} WebSocket handshakes, {} messages ({} bytes), {} control frames",
        f.connections, d.ws_opens, d.messages, d.message_bytes, d.control_frames,
    );
    let _ = writeln!(
        e,
        "wstap: {} gaps ({} bytes), {} retransmitted bytes, {} overlap mismatches, {} violations, {} truncated messages, {} undecompressable, {} resyncs, {} evicted",
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
}
