//! Live capture from an interface: open the kernel tap, print one line per
//! captured segment until SIGINT/SIGTERM, then detach and print a summary on
//! stderr.
//!
//! Until the decoder is wired in, every record is printed as a segment line
//! (the format is not final):
//!
//! ```text
//! 12:00:01.123456 veth0 In  10.77.0.1:5000 > 10.77.0.2:41234 [P.] seq 1 ack 1 win 502 len 5
//! ```
//!
//! With `--hex` the line ends with ` data <payload hex>`. On stderr, once
//! attached: `listening on IFACE (HOW), ring N bytes`; at the end:
//!
//! ```text
//! N segments captured, N bytes, N records lost in kernel (ring full), N cut short
//! kernel: N packets seen, N segments matched (N bytes), N records delivered (N bytes), N records lost (N bytes), N segments cut short (N bytes), N parse errors
//! ```

use std::io::{ErrorKind, Write};

use anyhow::Context;

use crate::cli::Cli;
use crate::filter::Filter;
use crate::source::{tcp_flags, Segment};
use crate::tap::{Counters, Record, Tap, TapConfig};

pub fn run(cli: &Cli, iface: &str) -> anyhow::Result<()> {
    let filter = Filter::parse(&cli.hosts, &cli.ports)?;
    let cfg = TapConfig {
        iface: iface.to_string(),
        filter,
        attach: cli.attach,
        xdp_mode: cli.xdp_mode,
        ring_size: cli.ring_size,
        verbose: cli.verbose,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(capture(cfg, cli.hex))
}

/// What the user side saw.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    segments: u64,
    bytes: u64,
}

async fn capture(cfg: TapConfig, hex: bool) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Signal handlers first, so a SIGINT right after "listening" is not fatal.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tap = Tap::open(&cfg)?;
    eprintln!(
        "listening on {} ({}), ring {} bytes",
        cfg.iface,
        tap.description(),
        tap.ring_size()
    );

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut seen = Seen::default();
    let mut printer = Printer {
        hex,
        line: String::new(),
        closed: false,
    };
    let offset = tap.clock_offset_ns();
    let mut names = std::collections::HashMap::new();

    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            r = tap.next_batch(|rec| {
                seen.segments += 1;
                seen.bytes += rec.payload.len() as u64;
                printer.print(&mut out, &mut names, &rec, offset);
            }) => {
                r?;
                if !printer.closed && out.flush().is_err() {
                    printer.closed = true;
                }
                if printer.closed {
                    break; // stdout is gone (`| head`): end quietly
                }
            }
        }
    }
    // Detach first, then take what is left in the ring, then read the
    // counters: the totals are then exact.
    tap.detach();
    tap.drain_now(|rec| {
        seen.segments += 1;
        seen.bytes += rec.payload.len() as u64;
        printer.print(&mut out, &mut names, &rec, offset);
    });
    let _ = out.flush();
    drop(out);
    let c = tap.counters()?;
    drop(tap);
    summary(&seen, &c);
    Ok(())
}

fn summary(seen: &Seen, c: &Counters) {
    eprintln!(
        "{} segments captured, {} bytes, {} records lost in kernel (ring full), {} cut short",
        seen.segments, seen.bytes, c.records_lost, c.cut_short_segments
    );
    eprintln!(
        "kernel: {} packets seen, {} segments matched ({} bytes), {} records delivered ({} bytes), \
         {} records lost ({} bytes), {} segments cut short ({} bytes), {} parse errors",
        c.packets_seen,
        c.segments_matched,
        c.bytes_matched,
        c.records,
        c.bytes,
        c.records_lost,
        c.bytes_lost,
        c.cut_short_segments,
        c.cut_short_bytes,
        c.parse_errors
    );
}

struct Printer {
    hex: bool,
    line: String,
    /// stdout went away (`| head`): keep draining quietly, print nothing.
    closed: bool,
}

impl Printer {
    fn print(
        &mut self,
        out: &mut impl Write,
        names: &mut std::collections::HashMap<u32, String>,
        rec: &Record<'_>,
        clock_offset_ns: i64,
    ) {
        if self.closed {
            return;
        }
        use std::fmt::Write as _;
        let seg: Segment<'_> = rec.segment(clock_offset_ns);
        let ifname = names.entry(rec.header.ifindex).or_insert_with(|| {
            let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
            // SAFETY: buffer of IF_NAMESIZE bytes.
            let p = unsafe { libc::if_indextoname(rec.header.ifindex, buf.as_mut_ptr()) };
            if p.is_null() {
                format!("if{}", rec.header.ifindex)
            } else {
                // SAFETY: NUL-terminated by if_indextoname.
                unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            }
        });
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
            flags_str(seg.flags),
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

/// tcpdump-style flags: S F R P U and `.` for ACK.
fn flags_str(f: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (tcp_flags::SYN, 'S'),
        (tcp_flags::FIN, 'F'),
        (tcp_flags::RST, 'R'),
        (tcp_flags::PSH, 'P'),
        (tcp_flags::URG, 'U'),
        (tcp_flags::ACK, '.'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}
