//! Section 1, offline decode: `wstap -r` (JSON and text) versus `tshark -r`
//! on captures of real peers, recorded once and cached under
//! `<target>/bench-data/`; with `--baseline`, the baseline's `wstap -r` too.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{
    binaries, fmt_count, fmt_rate, fmt_vs_baseline, mib, problems, run_clients, serve,
    spawn_listening, strings, summary_counts, wait_rusage, Listening, Netns, Opts, Reaper, Section,
    Truth, WorkDir, Wstap, VS_BASELINE, WS_PEER,
};
use crate::target_dir;

/// A capture the benchmark records: what the peers do, and how much.
struct Spec {
    name: &'static str,
    /// Arguments of each client process (run in parallel).
    clients: Vec<Vec<String>>,
    /// Shown in the table.
    describe: String,
    /// Thresholds: messages must be at least this many, this many bytes.
    min_messages: u64,
    min_bytes: u64,
    /// Target: wstap at least this many times tshark's throughput.
    target_ratio: f64,
    /// Over wss:// (TLS 1.3, AES-256-GCM): the client logs its secrets,
    /// wstap and tshark decrypt with them.
    tls: bool,
    /// The server accepts permessage-deflate (the clients ask for it with
    /// their `-deflate` conversations).
    deflate: bool,
}

fn specs() -> Vec<Spec> {
    const BULK_BYTES: u64 = 100 << 20;
    const SMALL_CLIENTS: u64 = 4;
    const SMALL_PER_CLIENT: u64 = 75_000;
    vec![
        Spec {
            name: "bulk",
            clients: vec![strings(&[
                "--conversation",
                "bulk",
                "--size",
                &BULK_BYTES.to_string(),
            ])],
            describe: "bulk: 1 connection, 100 binary messages of 1 MiB client→server (masked) + 100 echoed back".into(),
            min_messages: 200,
            min_bytes: 200_000_000,
            target_ratio: 20.0,
            tls: false,
            deflate: false,
        },
        Spec {
            name: "wss-bulk",
            clients: vec![strings(&[
                "--conversation",
                "bulk",
                "--size",
                &BULK_BYTES.to_string(),
            ])],
            describe: "wss-bulk: the bulk conversation over wss:// (TLS 1.3, TLS_AES_256_GCM_SHA384), decrypted with the client's key log (`--keylog`; tshark `-o tls.keylog_file:`)".into(),
            min_messages: 200,
            min_bytes: 200_000_000,
            target_ratio: 10.0,
            tls: true,
            deflate: false,
        },
        Spec {
            name: "small",
            clients: (0..SMALL_CLIENTS)
                .map(|_| {
                    strings(&[
                        "--conversation",
                        "small",
                        "--count",
                        &SMALL_PER_CLIENT.to_string(),
                    ])
                })
                .collect(),
            describe: format!(
                "small: {SMALL_CLIENTS} connections, {} text messages of 34-41 bytes client→server (masked) + the same echoed back",
                fmt_count(SMALL_CLIENTS * SMALL_PER_CLIENT)
            ),
            min_messages: 500_000,
            min_bytes: 0,
            target_ratio: 50.0,
            tls: false,
            deflate: false,
        },
        Spec {
            name: "deflate-bulk",
            clients: (0..4)
                .map(|_| {
                    strings(&[
                        "--conversation",
                        "bulk64k-deflate",
                        "--size",
                        &(20u64 << 20).to_string(),
                    ])
                })
                .collect(),
            describe: "deflate-bulk: 4 connections × 20 MiB of random 64 KiB binary messages, permessage-deflate (context takeover), echoed".into(),
            min_messages: 2_000,
            min_bytes: 150_000_000,
            target_ratio: 30.0,
            tls: false,
            deflate: true,
        },
        Spec {
            name: "large-text",
            clients: vec![strings(&["--conversation", "large-text"])],
            describe: "large-text: 1 connection, 5 texts of 64 KiB, 256 KiB, 1 MiB, 4 MiB and 16 MiB (multibyte characters, quotes, backslashes, tabs, newlines, a control character), echoed; no compression".into(),
            min_messages: 10,
            min_bytes: 40_000_000,
            target_ratio: 30.0,
            tls: false,
            deflate: false,
        },
        Spec {
            name: "large-text-deflate",
            clients: vec![strings(&["--conversation", "large-text-deflate"])],
            describe: "large-text-deflate: the large texts with permessage-deflate (context takeover)".into(),
            min_messages: 10,
            min_bytes: 40_000_000,
            target_ratio: 30.0,
            tls: false,
            deflate: true,
        },
        Spec {
            name: "small-deflate",
            clients: (0..SMALL_CLIENTS)
                .map(|_| {
                    strings(&[
                        "--conversation",
                        "small-deflate",
                        "--count",
                        &SMALL_PER_CLIENT.to_string(),
                    ])
                })
                .collect(),
            describe: format!(
                "small-deflate: the small conversation with permessage-deflate (context takeover): {} compressed text messages",
                fmt_count(2 * SMALL_CLIENTS * SMALL_PER_CLIENT)
            ),
            min_messages: 500_000,
            min_bytes: 0,
            target_ratio: 30.0,
            tls: false,
            deflate: true,
        },
    ]
}

struct Capture {
    spec: Spec,
    file: PathBuf,
    /// The key log of a wss:// capture.
    keys: Option<PathBuf>,
    file_bytes: u64,
    truth: Truth,
    packets: u64,
}

/// A tool's measurement on one capture.
struct Measured {
    tool: String,
    /// The fastest run.
    wall: Duration,
    /// The slowest run, for the spread.
    slowest: Duration,
    runs: usize,
    messages: Option<u64>,
    bytes: Option<u64>,
    max_rss_kib: u64,
    /// Something the reader must know about this row.
    remark: String,
}

impl Measured {
    /// Slowest / fastest run − 1, in percent.
    fn spread(&self) -> String {
        format!(
            "{:.0} %",
            100.0 * (self.slowest.as_secs_f64() / self.wall.as_secs_f64() - 1.0)
        )
    }
}

/// Keeps the fastest run in `best` (the first of equals), and the slowest
/// wall time seen.
fn keep_best(best: &mut Option<Measured>, m: Measured) {
    match best {
        Some(b) if b.wall <= m.wall => b.slowest = b.slowest.max(m.wall),
        _ => {
            let slowest = best.as_ref().map_or(m.wall, |b| b.slowest.max(m.wall));
            *best = Some(Measured { slowest, ..m });
        }
    }
}

pub fn run(wstap: &Path, opts: &Opts) -> Result<Section> {
    let bins = binaries(wstap, opts.baseline.as_deref());
    let compare = bins.len() > 1;
    let data = target_dir().join("bench-data");
    std::fs::create_dir_all(&data)?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut verdicts = Vec::new();
    let mut spreads = Vec::new();
    for spec in specs() {
        let cap = capture(&data, spec, opts.regenerate)?;
        warm_cache(&cap.file)?;
        eprintln!(
            "bench: {} capture: {} messages, {} payload bytes, {} packets, {} file bytes",
            cap.spec.name, cap.truth.messages, cap.truth.bytes, cap.packets, cap.file_bytes
        );
        // Each tool's row, with its `current / baseline` cell.
        let mut tools: Vec<(Measured, String)> = Vec::new();
        for format in ["json", "text"] {
            let measured = measure_wstap(&bins, &cap, format, opts.runs)?;
            for (b, m) in bins.iter().zip(measured) {
                let vs = if b.baseline {
                    // The current binary's row, just pushed.
                    let current = &tools.last().unwrap().0;
                    spreads.push(format!(
                        "{} {format} {} / {}",
                        cap.spec.name,
                        current.spread(),
                        m.spread()
                    ));
                    fmt_vs_baseline(current.wall.as_secs_f64(), m.wall.as_secs_f64())
                } else {
                    String::new()
                };
                tools.push((m, vs));
            }
        }
        let tshark = measure_tshark(&cap, opts.tshark_runs)?;
        let t_tp = throughput(&cap, &tshark);
        for (m, vs) in tools.iter().chain([&(tshark, String::new())]) {
            let tp = throughput(&cap, m);
            let ratio = if m.tool.starts_with("tshark") {
                "1×".to_string()
            } else {
                format!("**{:.1}×**", tp / t_tp)
            };
            let counted = match (m.messages, m.bytes) {
                (Some(n), Some(b)) if n == cap.truth.messages && b == cap.truth.bytes => {
                    format!("{} ✓", fmt_count(n))
                }
                (Some(n), Some(b)) if n == cap.truth.messages => {
                    format!(
                        "{} msgs ✓, payload {} of {} B ✗",
                        fmt_count(n),
                        b,
                        cap.truth.bytes
                    )
                }
                (Some(n), _) => {
                    format!(
                        "**{} of {} ✗**",
                        fmt_count(n),
                        fmt_count(cap.truth.messages)
                    )
                }
                (None, _) => "not counted ✗".into(),
            };
            let mut row = vec![
                cap.spec.name.to_string(),
                m.tool.clone(),
                format!("{:.3} (best of {})", m.wall.as_secs_f64(), m.runs),
                fmt_rate(tp / 1e6),
                fmt_count((cap.truth.messages as f64 / m.wall.as_secs_f64()) as u64),
                ratio,
                counted,
                mib(m.max_rss_kib),
                m.remark.clone(),
            ];
            if compare {
                row.push(vs.clone());
            }
            rows.push(row);
        }
        // The current binary's JSON row comes first.
        let r = throughput(&cap, &tools[0].0) / t_tp;
        verdicts.push(format!(
            "- {}: wstap (JSON, full payloads) is {:.1}× tshark; target ≥ {:.0}×: **{}**.",
            cap.spec.name,
            r,
            cap.spec.target_ratio,
            if r >= cap.spec.target_ratio {
                "met"
            } else {
                "NOT met"
            }
        ));
        notes.push(format!(
            "- {}; {} packets, {:.1} MB file, {} WebSocket messages carrying {:.1} MB of payload (peers' logs).",
            cap.spec.describe,
            fmt_count(cap.packets),
            cap.file_bytes as f64 / 1e6,
            fmt_count(cap.truth.messages),
            cap.truth.bytes as f64 / 1e6
        ));
    }
    let mut all_notes = verdicts;
    all_notes.push(String::new());
    all_notes.extend(notes);
    all_notes.extend(
        [
            "- Recorded with tcpdump on `lo` of a private network namespace from real peers (`tests/peers/ws_peer.py`, Python `websockets`, echo server; compression only in the `deflate` captures); tcpdump dropped 0 packets. Cached in `target/bench-data/` (`--regenerate` records again).",
            "- **MB/s** = WebSocket message payload bytes in the capture (sum of the message lengths the peers logged, both directions; 1 MB = 10⁶ bytes) / wall-clock seconds of the whole process, reading the file from the page cache. **msgs/s** = messages in the capture / wall-clock seconds. Ratio = throughput / tshark's on the same capture.",
            "- `wstap json`: `wstap -r FILE --format json > /dev/null`, every payload printed in full (base64 or text). `wstap text`: `wstap -r FILE > /dev/null`, default text output (payload previews). Message counts and bytes from wstap's exit summary.",
            "- `tshark`: `tshark -r FILE -Y websocket -T fields -e websocket.opcode -e websocket.payload.text -e data.data`, output read through a pipe and counted (opcode 1/2 fields = messages; text field length + hex digits/2 = payload bytes printed).",
            "- Counted: messages (and payload bytes) the tool put out, against the peers' logs; ✓ = both equal.",
            "- Peak RSS: `ru_maxrss` of the process (wait4).",
        ]
        .map(String::from),
    );
    let mut header = strings(&[
        "capture",
        "tool",
        "wall s",
        "MB/s",
        "msgs/s",
        "vs tshark",
        "messages counted",
        "peak RSS MiB",
        "remark",
    ]);
    if let Some(b) = bins.iter().find(|b| b.baseline) {
        header.push(VS_BASELINE.into());
        all_notes.push(format!(
            "- `(baseline)` rows: `{}` (`--baseline`), the same commands on the same captures; the timed runs alternate between the two binaries (current, baseline, current, …), best of {} each. **{VS_BASELINE}** = the current binary's best wall time / the baseline's (below 1: the current one is faster).",
            b.path.display(),
            opts.runs
        ));
        if opts.runs > 1 {
            all_notes.push(format!(
                "- Spread of the timed runs (slowest / fastest − 1), current / baseline: {}.",
                spreads.join(", ")
            ));
        }
    }
    Ok(Section {
        title: "1. Offline decode: `wstap -r` vs `tshark -r`".into(),
        header,
        rows,
        notes: all_notes,
    })
}

fn throughput(cap: &Capture, m: &Measured) -> f64 {
    cap.truth.bytes as f64 / m.wall.as_secs_f64()
}

/// Reads the file once so that every timed run finds it in the page cache.
fn warm_cache(f: &Path) -> Result<()> {
    let mut file = std::fs::File::open(f)?;
    let mut buf = vec![0u8; 1 << 20];
    while file.read(&mut buf)? > 0 {}
    Ok(())
}

/// The best of `runs` timed runs of `wstap -r FILE --format FORMAT` for each
/// binary, in the order of `bins`. The binaries take turns, so that a change
/// in the machine's load hits them alike.
fn measure_wstap(
    bins: &[Wstap],
    cap: &Capture,
    format: &str,
    runs: usize,
) -> Result<Vec<Measured>> {
    let mut best: Vec<Option<Measured>> = bins.iter().map(|_| None).collect();
    for _ in 0..runs {
        for (b, best) in bins.iter().zip(&mut best) {
            keep_best(best, run_wstap(b, cap, format, runs)?);
        }
    }
    Ok(best.into_iter().flatten().collect())
}

/// One timed run of `wstap -r FILE --format FORMAT > /dev/null`.
fn run_wstap(b: &Wstap, cap: &Capture, format: &str, runs: usize) -> Result<Measured> {
    let started = Instant::now();
    let mut child = Command::new(b.path)
        .arg("-r")
        .arg(&cap.file)
        .args(["--format", format])
        .args(
            cap.keys
                .iter()
                .flat_map(|k| [std::ffi::OsStr::new("--keylog"), k.as_os_str()]),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", b.label("wstap")))?;
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err)?;
    let f = wait_rusage(&mut child, started)?;
    if !f.status.success() {
        bail!(
            "{} -r {} failed ({}): {err}",
            b.label("wstap"),
            cap.file.display(),
            f.status
        );
    }
    let (messages, bytes) = summary_counts(&err);
    Ok(Measured {
        tool: b.label(&format!("wstap {format}")),
        wall: f.wall,
        slowest: f.wall,
        runs,
        messages,
        bytes,
        max_rss_kib: f.max_rss_kib,
        remark: problems(&err),
    })
}

const TSHARK_FIELDS: &[&str] = &["websocket.opcode", "websocket.payload.text", "data.data"];

fn measure_tshark(cap: &Capture, runs: usize) -> Result<Measured> {
    let mut best = None;
    for _ in 0..runs {
        keep_best(&mut best, run_tshark(cap, runs)?);
    }
    Ok(best.unwrap())
}

/// One timed run of tshark printing the payloads, its output counted.
fn run_tshark(cap: &Capture, runs: usize) -> Result<Measured> {
    let started = Instant::now();
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&cap.file)
        .args(["-Y", "websocket", "-T", "fields"]);
    if let Some(k) = &cap.keys {
        cmd.args(["-o", &format!("tls.keylog_file:{}", k.display())])
            .args(["-d", &format!("tcp.port=={PORT},tls")]);
    }
    for f in TSHARK_FIELDS {
        cmd.args(["-e", f]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting tshark")?;
    let out = child.stdout.take().unwrap();
    let counter = std::thread::spawn(move || count_tshark(out));
    let f = wait_rusage(&mut child, started)?;
    let (messages, bytes, max_masked) = counter.join().unwrap()?;
    if !f.status.success() {
        bail!("tshark -r {} failed ({})", cap.file.display(), f.status);
    }
    let remark = if bytes < cap.truth.bytes && max_masked > 0 {
        format!(
            "printed {:.1} of {:.1} MB: masked payloads cut at {} KiB",
            bytes as f64 / 1e6,
            cap.truth.bytes as f64 / 1e6,
            max_masked / 1024
        )
    } else {
        String::new()
    };
    Ok(Measured {
        tool: "tshark".into(),
        wall: f.wall,
        slowest: f.wall,
        runs,
        messages: Some(messages),
        bytes: Some(bytes),
        max_rss_kib: f.max_rss_kib,
        remark,
    })
}

/// Counts messages and payload bytes tshark printed. One line per packet;
/// several frames in a packet give comma-separated occurrences. Also
/// returns the largest binary payload printed when it is an exact
/// power of two below the message size (tshark's unmasking cap).
fn count_tshark(out: impl Read) -> Result<(u64, u64, u64)> {
    let mut r = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::new();
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        let mut fields = l.split(|&b| b == b'\t');
        let ops = fields.next().unwrap_or_default();
        let text = fields.next().unwrap_or_default();
        let data = fields.next().unwrap_or_default();
        let n_msgs = ops
            .split(|&b| b == b',')
            .filter(|o| *o == b"1" || *o == b"2")
            .count() as u64;
        messages += n_msgs;
        if !text.is_empty() {
            let occurrences = text.iter().filter(|&&b| b == b',').count() as u64 + 1;
            // Best effort: commas inside the text would be miscounted;
            // the benchmark's texts have none.
            bytes += text.len() as u64 - (occurrences - 1);
        }
        for d in data.split(|&b| b == b',').filter(|d| !d.is_empty()) {
            let n = d.len() as u64 / 2;
            bytes += n;
            *sizes.entry(n).or_default() += 1;
        }
    }
    // The client's 1 MiB binary messages are masked; tshark prints only
    // the first 256 KiB of a masked payload. Report the size most
    // common among the short ones.
    let max = sizes.keys().next_back().copied().unwrap_or(0);
    let cut = sizes
        .iter()
        .filter(|(s, _)| **s < max && s.is_power_of_two())
        .max_by_key(|(_, n)| **n)
        .map(|(s, _)| *s)
        .unwrap_or(0);
    Ok((messages, bytes, cut))
}

/// Returns the cached capture for `spec`, recording it when missing.
fn capture(data: &Path, spec: Spec, regenerate: bool) -> Result<Capture> {
    let file = data.join(format!("{}.pcap", spec.name));
    let meta = data.join(format!("{}.meta", spec.name));
    let keys = spec.tls.then(|| data.join(format!("{}.keys", spec.name)));
    let key = format!("{:?} tls={}", spec.clients, spec.tls);
    if !regenerate && file.exists() {
        if let Some(m) = read_meta(&meta) {
            if m.get("clients").map(String::as_str) == Some(key.as_str()) {
                let get = |k: &str| m.get(k).and_then(|v| v.parse().ok());
                if let (Some(messages), Some(bytes), Some(packets)) =
                    (get("messages"), get("bytes"), get("packets"))
                {
                    let file_bytes = std::fs::metadata(&file)?.len();
                    return Ok(Capture {
                        spec,
                        file,
                        keys,
                        file_bytes,
                        truth: Truth { messages, bytes },
                        packets,
                    });
                }
            }
        }
    }
    let _ = std::fs::remove_file(&meta);
    let mut last_err = None;
    for attempt in 1..=3 {
        eprintln!(
            "bench: recording the {} capture (attempt {attempt})",
            spec.name
        );
        match record(&spec, &file, keys.as_deref(), attempt) {
            Ok((truth, packets)) => {
                if truth.messages < spec.min_messages || truth.bytes < spec.min_bytes {
                    bail!("the {} capture is too small: {truth:?}", spec.name);
                }
                std::fs::write(
                    &meta,
                    format!(
                        "clients={key}\nmessages={}\nbytes={}\npackets={packets}\n",
                        truth.messages, truth.bytes
                    ),
                )?;
                let file_bytes = std::fs::metadata(&file)?.len();
                return Ok(Capture {
                    spec,
                    file,
                    keys,
                    file_bytes,
                    truth,
                    packets,
                });
            }
            Err(e) => {
                eprintln!("bench: recording failed: {e:#}");
                last_err = Some(e);
            }
        }
    }
    Err(last_err
        .unwrap()
        .context(format!("could not record the {} capture", spec.name)))
}

fn read_meta(p: &Path) -> Option<BTreeMap<String, String>> {
    let s = std::fs::read_to_string(p).ok()?;
    Some(
        s.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

const PORT: &str = "9001";

/// Records one capture; returns what the clients logged and the packet
/// count. Fails when tcpdump dropped anything.
fn record(spec: &Spec, file: &Path, keys: Option<&Path>, attempt: u32) -> Result<(Truth, u64)> {
    if !crate::is_root() {
        bail!("recording the benchmark captures needs root (network namespace, tcpdump): sudo -E cargo xtask bench");
    }
    let work = WorkDir::create("wstap-bench")?;
    let ns = Netns::create().context("creating the benchmark's network namespace")?;
    let tmp = file.with_extension("pcap.tmp");
    // A bigger kernel buffer on each retry.
    let buf_kib = (256u32 << 10) * attempt;
    let Listening { child, stderr } = spawn_listening(
        ns.exec("tcpdump")
            .args(["-i", "lo", "-s", "0", "-U", "-Z", "root", "-B"])
            .arg(buf_kib.to_string())
            .arg("-w")
            .arg(&tmp)
            .args(["tcp", "port", PORT]),
        "tcpdump",
    )?;
    let mut tcpdump = Reaper(child);
    let mut server_args = if spec.deflate {
        Vec::new()
    } else {
        strings(&["--no-compression"])
    };
    let mut clients = spec.clients.clone();
    if let Some(keys) = keys {
        let (cert, key) = super::self_signed_cert(&work)?;
        server_args.extend([
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ]);
        let _ = std::fs::remove_file(keys);
        for c in &mut clients {
            c.extend([
                "--tls".into(),
                "--keylog".into(),
                keys.display().to_string(),
            ]);
        }
    }
    let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let _server = serve(
        &ns,
        WS_PEER,
        "127.0.0.1",
        PORT,
        &server_args,
        &work.join("server.ready"),
        "the WebSocket server",
    )?;
    let t0 = Instant::now();
    let logs = run_clients(&ns, "127.0.0.1", PORT, &work, &clients)?;
    eprintln!("bench: peers done in {:.1} s", t0.elapsed().as_secs_f64());
    // tcpdump hands packets over in blocks retired after at most 1 s:
    // give the last block time to reach the file before stopping it.
    std::thread::sleep(Duration::from_millis(2500));
    let st = tcpdump.stop()?;
    let stats = stderr.collect();
    drop(ns);
    if !st.success() {
        bail!("tcpdump failed ({st}): {stats}");
    }
    let field = |what: &str| -> Option<u64> {
        stats
            .lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    let dropped = field("dropped by kernel").context("no drop count from tcpdump")?;
    let packets = field("packets captured").context("no packet count from tcpdump")?;
    if dropped > 0 {
        bail!("tcpdump dropped {dropped} packets: the capture is not complete");
    }
    let truth = Truth::of_logs(&logs)?;
    std::fs::rename(&tmp, file)?;
    Ok((truth, packets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tshark_fields_are_counted() {
        let out = "1\thello\t\n1,1\tab,cd\t\n2\t\t0a0b0c0d\n8\t\t\n2\t\t0a0b\n";
        let (n, b, cut) = count_tshark(out.as_bytes()).unwrap();
        assert_eq!((n, b), (5, 5 + 4 + 4 + 2));
        assert_eq!(cut, 2);
    }

    #[test]
    fn the_fastest_run_is_kept_with_the_slowest_time() {
        let m = |tool: &str, ms: u64| Measured {
            tool: tool.into(),
            wall: Duration::from_millis(ms),
            slowest: Duration::from_millis(ms),
            runs: 3,
            messages: None,
            bytes: None,
            max_rss_kib: 0,
            remark: String::new(),
        };
        let mut best = None;
        keep_best(&mut best, m("a", 20));
        keep_best(&mut best, m("b", 10));
        keep_best(&mut best, m("c", 10));
        keep_best(&mut best, m("d", 30));
        let b = best.unwrap();
        assert_eq!(b.tool, "b");
        assert_eq!(b.wall, Duration::from_millis(10));
        assert_eq!(b.slowest, Duration::from_millis(30));
        assert_eq!(b.spread(), "200 %");
    }
}
