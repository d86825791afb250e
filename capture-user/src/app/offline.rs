//! Decoding a capture file: pcap/pcapng → user-space filter → decoder → sink,
//! then a summary on stderr.
//!
//! `-c N` stops after N `ws_message` events; `--segments` prints the TCP
//! segments instead of decoding. A closed stdout (`wstap -r f | head -1`)
//! ends the run quietly with success. SIGINT or SIGTERM stops reading; what
//! was read is decoded to the end, the output flushed and the summary
//! printed, and the exit status is 0, as tcpdump does (a second signal
//! kills at once).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::Context;

use crate::app::common::{self, Limit};
use crate::filter::Filter;
use crate::registry::{DecodeStats, Decoder};
use crate::sink::is_broken_pipe;
use crate::source::pcap::{is_stdin, FileSource, SourceError, SourceStats, MAX_INTERFACES};
use crate::source::ChecksumStats;

/// Reads `path` and prints what the command line asks for. With `-w`, the
/// TCP segments that pass the filter are also written to a pcapng file,
/// rebuilt as Ethernet + IP + TCP exactly as live capture writes them, so
/// that `-r` and `-i` produce the same kind of file.
pub fn run(cli: &crate::cli::Cli, path: &Path) -> anyhow::Result<()> {
    common::check_workers(cli)?;
    let filter = Filter::from_cli(cli)?;
    common::open_keylog(cli)?;
    let stop = on_stop_signal();
    let mut source = match FileSource::open_until(path, Some(stop)) {
        Ok(s) => s,
        Err(SourceError::Interrupted) => {
            // Nothing was read: an empty summary, then why.
            let stats = SourceStats {
                interrupted: true,
                ..SourceStats::default()
            };
            summary(&stats, 0, &DecodeStats::default(), cli);
            interrupted(path, &stats);
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", shown(path))),
    };
    if let Some(k) = common::keylog() {
        source.secrets_to(k);
    }
    let mut pcapng = match &cli.write {
        Some(w) => {
            refuse_same_file(path, w)?;
            Some(common::pcap_files(cli, w, None)?)
        }
        None => None,
    };
    let iface_name = if is_stdin(path) {
        "stdin".into()
    } else {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into())
    };
    let mut decoder = Decoder::new(common::decode_config(cli));
    let mut filtered = 0u64;
    // With --segments the decoder is not used: the checksum verdicts of the
    // segments printed are counted here, by the same rule.
    let mut seg_checksums = ChecksumStats::default();
    let mut sink = Limit::new(common::output(cli, None), cli.count);
    let mut write_error = None;
    let read = source.for_each_segment(|seg, lost| {
        if !filter.matches(seg.src.ip(), seg.src.port(), seg.dst.ip(), seg.dst.port()) {
            filtered += 1;
            return ControlFlow::Continue(());
        }
        if let Some(w) = pcapng.as_mut() {
            if let Err(e) = w.write_segment(&iface_name, seg, None) {
                write_error = Some(e);
                return ControlFlow::Break(());
            }
            if w.done() {
                return ControlFlow::Break(());
            }
        }
        if cli.segments {
            if seg_checksums.admit(seg.checksum, cli.verify_checksums) {
                sink.out.segment(seg);
            }
        } else {
            decoder.push_cut(seg, lost, &mut sink);
        }
        if sink.done() || sink.out.error().is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(e) = write_error {
        return Err(e).context("writing the -w pcapng file");
    }
    if let Some(w) = pcapng.as_mut() {
        w.flush().context("writing the -w pcapng file")?;
        if cli.file_size.is_some() || cli.rotate_seconds.is_some() {
            eprintln!("wstap: {} packets written to {}", w.packets(), w.describe());
        }
    }
    if !cli.segments && !sink.done() && sink.out.error().is_none() {
        decoder.finish(&mut sink);
    }
    let written = sink.out.finish();
    let stopped_early = matches!(&written, Err(e) if is_broken_pipe(e));
    if let Err(e) = written {
        if !stopped_early {
            return Err(e).context("writing the output");
        }
    }
    // The summary of what was read comes first, also when reading ended
    // with an error (printed after it by the caller, exit status 1).
    if !stopped_early {
        let mut decoded = decoder.stats();
        if cli.segments {
            decoded.checksum = seg_checksums;
        }
        summary(source.stats(), filtered, &decoded, cli);
        common::print_keylog_summary();
        if source.stats().interrupted {
            interrupted(path, source.stats());
        }
    }
    read.with_context(|| format!("reading {}", shown(path)))?;
    Ok(())
}

/// Raised by the SIGINT/SIGTERM handler; the signal number is kept too.
static STOP: AtomicBool = AtomicBool::new(false);
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn stop_handler(sig: libc::c_int) {
    // Only atomic stores: async-signal-safe.
    STOP_SIGNAL.store(sig, Ordering::Relaxed);
    STOP.store(true, Ordering::Relaxed);
}

/// Installs the SIGINT and SIGTERM handler that raises [`STOP`]. Without
/// SA_RESTART, so that a read waiting on a FIFO or pipe returns (EINTR)
/// and reading ends; with SA_RESETHAND, so that a second signal kills at
/// once (the default action) if finishing takes too long.
fn on_stop_signal() -> &'static AtomicBool {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores
        // atomics.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = stop_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    &STOP
}

/// The last line on stderr after a stop signal.
fn interrupted(path: &Path, src: &SourceStats) {
    let sig = match STOP_SIGNAL.load(Ordering::Relaxed) {
        libc::SIGTERM => "SIGTERM",
        _ => "SIGINT",
    };
    let _ = writeln!(
        std::io::stderr(),
        "wstap: interrupted by {sig} after {} packets; the rest of {} was not read",
        src.packets,
        shown(path)
    );
}

/// `-r`'s path as the messages name it.
fn shown(path: &Path) -> String {
    if is_stdin(path) {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}

/// Refuses `-w` onto the file `-r` reads: creating it would truncate the
/// capture before it is read. Same file = same device and inode, so another
/// path, a symbolic link or a hard link to it is refused too. A `-w` file
/// that does not exist yet cannot be the one being read.
fn refuse_same_file(read: &Path, write: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(w) = std::fs::metadata(write) else {
        return Ok(());
    };
    // Standard input's file, when it is one (`-r - < capture.pcap`).
    let read_meta = if is_stdin(read) {
        std::fs::metadata("/proc/self/fd/0")
    } else {
        std::fs::metadata(read)
    };
    let r = read_meta.with_context(|| format!("cannot read {}", shown(read)))?;
    if (r.dev(), r.ino()) == (w.dev(), w.ino()) {
        anyhow::bail!(
            "-w {} is the file being read (-r {}): writing it would destroy the capture; \
             give -w another file",
            write.display(),
            read.display()
        );
    }
    Ok(())
}

/// The exit summary on stderr: what was read, what was decoded, what was
/// lost. With `--segments`, `d` holds only the checksum counts.
fn summary(src: &SourceStats, filtered: u64, d: &DecodeStats, cli: &crate::cli::Cli) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "wstap: {} packets, {} TCP segments ({} filtered out), {} non-TCP skipped{}, {} malformed, {} truncated by snaplen{}",
        src.packets,
        src.segments,
        filtered,
        src.non_tcp,
        // Only when there are any, so that the line of a capture without
        // fragments reads as it always did.
        match src.fragments {
            0 => String::new(),
            n => format!(", {n} IP fragments skipped (not reassembled)"),
        },
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
    if src.iface_over_cap > 0 {
        let _ = writeln!(
            e,
            "wstap: {} packets on pcapng interfaces past the first {MAX_INTERFACES} of their section (not decoded)",
            src.iface_over_cap
        );
    }
    drop(e);
    if cli.segments {
        common::print_checksum_summary(&d.checksum);
    } else {
        common::print_decode_summary(d);
    }
    if cli.verify_checksums && d.checksum.unchecked > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "wstap: {} TCP segments kept unverified: cut by the snap length, no IP length, \
             or routed (IPv6 routing header, IPv4 source route)",
            d.checksum.unchecked
        );
    }
}
