//! `cargo xtask bench`: measure wstap side by side with tshark on the same
//! traffic and print one markdown table (also written to
//! `<target>/bench-results.md`).
//!
//! Sections ([`Part`], `--only` picks some), each a function returning a
//! [`Section`], appended in [`run`]:
//! 1. Offline decode ([`offline`]): two captures recorded from real peers
//!    (`tests/peers/ws_peer.py`) on the loopback interface of a private
//!    network namespace, cached under `<target>/bench-data/`; `wstap -r` (JSON
//!    and text) versus `tshark -r FILE -Y websocket -T fields` printing the
//!    payloads.
//! 2. Live decode under load ([`live`]): real peers in two namespaces joined
//!    by a veth pair, `wstap -i` on the server's side, then `tcpdump -w
//!    /dev/null` on the same traffic; messages decoded, kernel losses, CPU.
//! 3. In-kernel cost per packet ([`kernel`]): `wstap -i lo` in a namespace,
//!    `run_time_ns / run_cnt` of its programs with `kernel.bpf_stats_enabled`.
//! 4. Memory ([`memory`]): wstap's RSS with 10,000 open WebSocket
//!    connections (`tests/peers/many_conns.py`), idle and after a message each.
//! - Criterion micro-benchmarks of the decoder
//!   (`capture-user/benches/decode.rs`), headline numbers only.
//!
//! Nothing leaves the namespaces: the peers talk over their own `lo`, or
//! over a veth pair whose both ends live in private namespaces.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{cargo, root, status, target_dir};

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Timed runs of wstap per capture and format (the best is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Timed runs of tshark per capture (it is slow; the best is reported).
    #[arg(long, default_value_t = 2)]
    pub tshark_runs: usize,
    /// Record the captures again even when cached.
    #[arg(long)]
    pub regenerate: bool,
    /// Run only these sections (repeat or comma-separate); default: all.
    /// `kernel` needs a wstap built with its eBPF programs.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Part>,
    /// Use this wstap binary instead of building one.
    #[arg(long, value_name = "PATH")]
    pub wstap_bin: Option<PathBuf>,
}

/// Sections of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Row 1: offline decode, wstap -r vs tshark -r.
    Offline,
    /// Row 2: live decode under load over a veth pair, wstap vs tcpdump.
    Live,
    /// Row 3: in-kernel cost per packet.
    Kernel,
    /// Row 4: RSS with 10,000 open WebSocket connections.
    Memory,
    /// Criterion micro-benchmarks of the decoder.
    Criterion,
}

/// One part of the results: a markdown table with notes under it.
pub struct Section {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
}

impl Section {
    /// A section that could not be measured, saying why.
    fn skipped(title: &str, why: String) -> Section {
        Section {
            title: title.into(),
            header: vec!["result".into()],
            rows: vec![vec![format!("not measured: {why}")]],
            notes: Vec::new(),
        }
    }

    fn markdown(&self) -> String {
        let mut s = format!("### {}\n\n", self.title);
        let _ = writeln!(s, "| {} |", self.header.join(" | "));
        let _ = writeln!(
            s,
            "|{}|",
            self.header
                .iter()
                .map(|_| "---")
                .collect::<Vec<_>>()
                .join("|")
        );
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        if !self.notes.is_empty() {
            s.push('\n');
            for n in &self.notes {
                let _ = writeln!(s, "{n}");
            }
        }
        s
    }
}

pub fn run(wstap: &Path, opts: &Opts) -> Result<()> {
    if opts.runs == 0 || opts.tshark_runs == 0 {
        bail!("--runs and --tshark-runs must be at least 1");
    }
    let started = Instant::now();
    let mut sections = Vec::new();
    let want = |p: Part| opts.only.is_empty() || opts.only.contains(&p);
    if want(Part::Offline) {
        sections.push(offline::run(wstap, opts)?);
    }
    if want(Part::Live) {
        sections.push(live::run(wstap)?);
    }
    if want(Part::Kernel) {
        sections.push(kernel::run(wstap)?);
    }
    if want(Part::Memory) {
        sections.push(memory::run(wstap)?);
    }
    if want(Part::Criterion) {
        sections.push(criterion()?);
    }
    let mut md = format!(
        "## wstap benchmark (`cargo xtask bench`)\n\n{}\n\n",
        machine_line()
    );
    for s in &sections {
        md += &s.markdown();
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "Total benchmark time: {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    let out = target_dir().join("bench-results.md");
    std::fs::write(&out, &md).with_context(|| format!("writing {}", out.display()))?;
    println!("{md}");
    eprintln!("bench: table written to {}", out.display());
    Ok(())
}

/// CPU model, core count and kernel, for the table's heading.
fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = command_line(Command::new("uname").arg("-r")).unwrap_or_default();
    let tshark = command_line(Command::new("tshark").arg("--version")).unwrap_or_default();
    format!(
        "Machine: {cpu}, {cores} cores, Linux {kernel}; {}.",
        tshark.trim_end_matches('.')
    )
}

/// First line of a command's stdout.
fn command_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines().next().map(|l| l.trim().to_string())
}

/// A finished child: wall time from spawn to exit, its peak RSS and CPU time.
struct Finished {
    status: ExitStatus,
    wall: Duration,
    max_rss_kib: u64,
    /// User plus system CPU time of the child (all its threads).
    cpu: Duration,
}

/// Waits for `child` with wait4(2), which also gives its resource usage.
fn wait_rusage(child: &mut Child, started: Instant) -> Result<Finished> {
    let pid = child.id() as libc::pid_t;
    let mut st: libc::c_int = 0;
    // SAFETY: rusage is plain old data, filled in by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; pid is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut st, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
    let wall = started.elapsed();
    use std::os::unix::process::ExitStatusExt;
    Ok(Finished {
        status: ExitStatus::from_raw(st),
        wall,
        max_rss_kib: ru.ru_maxrss as u64,
        cpu: timeval(ru.ru_utime) + timeval(ru.ru_stime),
    })
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

fn sigint(child: &Child) {
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
}

/// A scratch directory under the system temp dir; removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(prefix: &str) -> Result<Self> {
        let p = std::env::temp_dir().join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(WorkDir(p))
    }
}

impl std::ops::Deref for WorkDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills a child process on drop.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fmt_rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let head = s.len() % 3;
    let mut out = s[..head].to_string();
    for (i, c) in s[head..].chars().enumerate() {
        if i % 3 == 0 && !out.is_empty() {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Row 1: offline decode, wstap -r versus tshark -r.
mod offline {
    use super::*;

    /// A capture the benchmark records: what the peers do, and how much.
    pub struct Spec {
        pub name: &'static str,
        /// Arguments of each client process (run in parallel).
        pub clients: Vec<Vec<String>>,
        /// Shown in the table.
        pub describe: String,
        /// Thresholds: messages must be at least this many, this many bytes.
        pub min_messages: u64,
        pub min_bytes: u64,
        /// Target: wstap at least this many times tshark's throughput.
        pub target_ratio: f64,
    }

    pub fn specs() -> Vec<Spec> {
        const BULK_BYTES: u64 = 100 << 20;
        const SMALL_CLIENTS: u64 = 4;
        const SMALL_PER_CLIENT: u64 = 75_000;
        vec![
            Spec {
                name: "bulk",
                clients: vec![vec![
                    "--conversation".into(),
                    "bulk".into(),
                    "--size".into(),
                    BULK_BYTES.to_string(),
                ]],
                describe: "bulk: 1 connection, 100 binary messages of 1 MiB client→server (masked) + 100 echoed back".into(),
                min_messages: 200,
                min_bytes: 200_000_000,
                target_ratio: 20.0,
            },
            Spec {
                name: "small",
                clients: (0..SMALL_CLIENTS)
                    .map(|_| {
                        vec![
                            "--conversation".into(),
                            "small".into(),
                            "--count".into(),
                            SMALL_PER_CLIENT.to_string(),
                        ]
                    })
                    .collect(),
                describe: format!(
                    "small: {SMALL_CLIENTS} connections, {} text messages of 34-41 bytes client→server (masked) + the same echoed back",
                    fmt_count(SMALL_CLIENTS * SMALL_PER_CLIENT)
                ),
                min_messages: 500_000,
                min_bytes: 0,
                target_ratio: 50.0,
            },
        ]
    }

    /// What the peers logged: messages sent plus received, payload bytes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Truth {
        pub messages: u64,
        pub bytes: u64,
    }

    pub struct Capture {
        pub spec: Spec,
        pub file: PathBuf,
        pub file_bytes: u64,
        pub truth: Truth,
        pub packets: u64,
    }

    /// A tool's measurement on one capture.
    pub struct Measured {
        pub tool: String,
        pub wall: Duration,
        pub runs: usize,
        pub messages: Option<u64>,
        pub bytes: Option<u64>,
        pub max_rss_kib: u64,
        /// Something the reader must know about this row.
        pub remark: String,
    }

    pub fn run(wstap: &Path, opts: &Opts) -> Result<Section> {
        let data = target_dir().join("bench-data");
        std::fs::create_dir_all(&data)?;
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        let mut verdicts = Vec::new();
        for spec in specs() {
            let cap = capture(&data, spec, opts.regenerate)?;
            warm_cache(&cap.file)?;
            eprintln!(
                "bench: {} capture: {} messages, {} payload bytes, {} packets, {} file bytes",
                cap.spec.name, cap.truth.messages, cap.truth.bytes, cap.packets, cap.file_bytes
            );
            let json = measure_wstap(wstap, &cap, "json", opts.runs)?;
            let text = measure_wstap(wstap, &cap, "text", opts.runs)?;
            let tshark = measure_tshark(&cap, opts.tshark_runs)?;
            let t_tp = throughput(&cap, &tshark);
            for m in [&json, &text, &tshark] {
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
                rows.push(vec![
                    cap.spec.name.to_string(),
                    m.tool.clone(),
                    format!("{:.3} (best of {})", m.wall.as_secs_f64(), m.runs),
                    fmt_rate(tp / 1e6),
                    fmt_count((cap.truth.messages as f64 / m.wall.as_secs_f64()) as u64),
                    ratio,
                    counted,
                    format!("{:.1}", m.max_rss_kib as f64 / 1024.0),
                    m.remark.clone(),
                ]);
            }
            let r = throughput(&cap, &json) / t_tp;
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
                "- Recorded with tcpdump on `lo` of a private network namespace from real peers (`tests/peers/ws_peer.py`, Python `websockets`, echo server; no compression); tcpdump dropped 0 packets. Cached in `target/bench-data/` (`--regenerate` records again).",
                "- **MB/s** = WebSocket message payload bytes in the capture (sum of the message lengths the peers logged, both directions; 1 MB = 10⁶ bytes) / wall-clock seconds of the whole process, reading the file from the page cache. **msgs/s** = messages in the capture / wall-clock seconds. Ratio = throughput / tshark's on the same capture.",
                "- `wstap json`: `wstap -r FILE --format json > /dev/null`, every payload printed in full (base64 or text). `wstap text`: `wstap -r FILE > /dev/null`, default text output (payload previews). Message counts and bytes from wstap's exit summary.",
                "- `tshark`: `tshark -r FILE -Y websocket -T fields -e websocket.opcode -e websocket.payload.text -e data.data`, output read through a pipe and counted (opcode 1/2 fields = messages; text field length + hex digits/2 = payload bytes printed).",
                "- Counted: messages (and payload bytes) the tool put out, against the peers' logs; ✓ = both equal.",
                "- Peak RSS: `ru_maxrss` of the process (wait4).",
            ]
            .map(String::from),
        );
        Ok(Section {
            title: "1. Offline decode: `wstap -r` vs `tshark -r`".into(),
            header: [
                "capture",
                "tool",
                "wall s",
                "MB/s",
                "msgs/s",
                "vs tshark",
                "messages counted",
                "peak RSS MiB",
                "remark",
            ]
            .map(String::from)
            .to_vec(),
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

    fn measure_wstap(wstap: &Path, cap: &Capture, format: &str, runs: usize) -> Result<Measured> {
        let mut best: Option<Measured> = None;
        for _ in 0..runs {
            let started = Instant::now();
            let mut child = Command::new(wstap)
                .arg("-r")
                .arg(&cap.file)
                .args(["--format", format])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting wstap")?;
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err)?;
            let f = wait_rusage(&mut child, started)?;
            if !f.status.success() {
                bail!(
                    "wstap -r {} failed ({}): {err}",
                    cap.file.display(),
                    f.status
                );
            }
            let (messages, bytes) = summary_counts(&err);
            let remark = problems(&err);
            let m = Measured {
                tool: format!("wstap {format}"),
                wall: f.wall,
                runs,
                messages,
                bytes,
                max_rss_kib: f.max_rss_kib,
                remark,
            };
            if best.as_ref().is_none_or(|b| m.wall < b.wall) {
                best = Some(m);
            }
        }
        Ok(best.unwrap())
    }

    /// "N messages (B bytes)" from wstap's exit summary.
    pub(super) fn summary_counts(stderr: &str) -> (Option<u64>, Option<u64>) {
        for l in stderr.lines() {
            if let Some(i) = l.find(" messages (") {
                let n = l[..i].rsplit(' ').next().and_then(|s| s.parse().ok());
                let b = l[i + " messages (".len()..]
                    .split(' ')
                    .next()
                    .and_then(|s| s.parse().ok());
                return (n, b);
            }
        }
        (None, None)
    }

    /// Non-zero gap / violation / truncation counters in wstap's summary.
    pub(super) fn problems(stderr: &str) -> String {
        let mut out = Vec::new();
        for l in stderr.lines().filter(|l| l.starts_with("wstap:")) {
            for part in l.trim_start_matches("wstap:").split(',') {
                let p = part.trim();
                let n: u64 = p
                    .split(' ')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let bad = [
                    "gaps",
                    "violations",
                    "truncated messages",
                    "undecompressable",
                    "resyncs",
                    "malformed",
                ];
                if n > 0 && bad.iter().any(|b| p.contains(b)) {
                    out.push(p.to_string());
                }
            }
        }
        out.join(", ")
    }

    const TSHARK_FIELDS: &[&str] = &["websocket.opcode", "websocket.payload.text", "data.data"];

    fn measure_tshark(cap: &Capture, runs: usize) -> Result<Measured> {
        let mut best: Option<Measured> = None;
        for _ in 0..runs {
            let started = Instant::now();
            let mut cmd = Command::new("tshark");
            cmd.arg("-r")
                .arg(&cap.file)
                .args(["-Y", "websocket", "-T", "fields"]);
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
            let m = Measured {
                tool: "tshark".into(),
                wall: f.wall,
                runs,
                messages: Some(messages),
                bytes: Some(bytes),
                max_rss_kib: f.max_rss_kib,
                remark,
            };
            if best.as_ref().is_none_or(|b| m.wall < b.wall) {
                best = Some(m);
            }
        }
        Ok(best.unwrap())
    }

    /// Counts messages and payload bytes tshark printed. One line per packet;
    /// several frames in a packet give comma-separated occurrences. Also
    /// returns the largest binary payload printed when it is an exact
    /// power of two below the message size (tshark's unmasking cap).
    pub(super) fn count_tshark(out: impl Read) -> Result<(u64, u64, u64)> {
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
        let key = format!("{:?}", spec.clients);
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
            match record(&spec, &file, attempt) {
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

    /// A private network namespace with `lo` up; deleted on drop.
    pub(super) struct Netns(String);

    impl Netns {
        pub(super) fn create() -> Result<Self> {
            Self::named(&format!("wsbench{}", std::process::id()))
        }

        pub(super) fn named(name: &str) -> Result<Self> {
            status(Command::new("ip").args(["netns", "add", name]))?;
            let ns = Netns(name.to_string());
            status(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]))?;
            Ok(ns)
        }

        pub(super) fn name(&self) -> &str {
            &self.0
        }

        pub(super) fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.0]).arg(program);
            c
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    const PORT: &str = "9001";

    /// Records one capture; returns what the clients logged and the packet
    /// count. Fails when tcpdump dropped anything.
    fn record(spec: &Spec, file: &Path, attempt: u32) -> Result<(Truth, u64)> {
        if !crate::is_root() {
            bail!("recording the benchmark captures needs root (network namespace, tcpdump): sudo -E cargo xtask bench");
        }
        let py = "/usr/bin/python3";
        let peer = root().join("tests/peers/ws_peer.py");
        let work = WorkDir::create("wstap-bench")?;
        let ns = Netns::create().context("creating the benchmark's network namespace")?;
        let tmp = file.with_extension("pcap.tmp");
        // A bigger kernel buffer on each retry.
        let buf_kib = (256u32 << 10) * attempt;
        let mut tcpdump = ns
            .exec("tcpdump")
            .args([
                "-i",
                "lo",
                "-s",
                "0",
                "-U",
                "-Z",
                "root",
                "-B",
                &buf_kib.to_string(),
                "-w",
            ])
            .arg(&tmp)
            .args(["tcp", "port", PORT])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tcpdump")?;
        let mut err = BufReader::new(tcpdump.stderr.take().unwrap());
        let mut first = String::new();
        err.read_line(&mut first)?;
        if !first.contains("listening on") {
            let _ = tcpdump.kill();
            bail!("tcpdump did not start: {first}");
        }
        let tcpdump = Reaper(tcpdump);
        let ready = work.join("server.ready");
        let _server = Reaper(
            ns.exec(py)
                .arg(&peer)
                .args([
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    PORT,
                    "--no-compression",
                    "--ready",
                ])
                .arg(&ready)
                .stdout(Stdio::null())
                .spawn()
                .context("starting the WebSocket server")?,
        );
        let t0 = Instant::now();
        while !ready.exists() {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("the WebSocket server did not start within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let t0 = Instant::now();
        let mut clients = Vec::new();
        let mut logs = Vec::new();
        for (i, args) in spec.clients.iter().enumerate() {
            let log = work.join(format!("client{i}.json"));
            clients.push(Reaper(
                ns.exec(py)
                    .arg(&peer)
                    .args([
                        "client",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        PORT,
                        "--no-log-payload",
                        "--log",
                    ])
                    .arg(&log)
                    .args(args)
                    .spawn()
                    .context("starting a WebSocket client")?,
            ));
            logs.push(log);
        }
        for c in &mut clients {
            let st = c.0.wait()?;
            if !st.success() {
                bail!("a WebSocket client failed ({st})");
            }
        }
        eprintln!("bench: peers done in {:.1} s", t0.elapsed().as_secs_f64());
        // tcpdump hands packets over in blocks retired after at most 1 s:
        // give the last block time to reach the file before stopping it.
        std::thread::sleep(Duration::from_millis(2500));
        let mut tcpdump = tcpdump;
        sigint(&tcpdump.0);
        let st = tcpdump.0.wait()?;
        let mut rest = String::new();
        err.read_to_string(&mut rest)?;
        drop(ns);
        if !st.success() {
            bail!("tcpdump failed ({st}): {rest}");
        }
        let field = |what: &str| -> Option<u64> {
            rest.lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        };
        let dropped = field("dropped by kernel").context("no drop count from tcpdump")?;
        let packets = field("packets captured").context("no packet count from tcpdump")?;
        if dropped > 0 {
            bail!("tcpdump dropped {dropped} packets: the capture is not complete");
        }
        let mut truth = Truth {
            messages: 0,
            bytes: 0,
        };
        for log in &logs {
            let t = log_truth(log)?;
            truth.messages += t.messages;
            truth.bytes += t.bytes;
        }
        std::fs::rename(&tmp, file)?;
        Ok((truth, packets))
    }

    /// Messages sent and received and their payload bytes, from a client log
    /// written with `--no-log-payload`: every message entry, and nothing
    /// else, has a `"len"` key. Scanned as a stream rather than parsed into
    /// a tree: the peak RSS of this process is inherited by the children it
    /// measures (`ru_maxrss` survives exec), so it must stay small.
    pub(super) fn log_truth(log: &Path) -> Result<Truth> {
        let f = std::fs::File::open(log).with_context(|| format!("reading {}", log.display()))?;
        let mut r = BufReader::new(f);
        let mut tok = Vec::new();
        let mut t = Truth {
            messages: 0,
            bytes: 0,
        };
        loop {
            tok.clear();
            if r.read_until(b',', &mut tok)? == 0 {
                break;
            }
            let s = String::from_utf8_lossy(&tok);
            let s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '{' || c == '[');
            if let Some(v) = s.strip_prefix("\"len\":") {
                let digits: String = v.trim().chars().take_while(char::is_ascii_digit).collect();
                t.messages += 1;
                t.bytes += digits
                    .parse::<u64>()
                    .with_context(|| format!("bad len in {}", log.display()))?;
            }
        }
        if t.messages == 0 {
            bail!("no messages in the client log {}", log.display());
        }
        Ok(t)
    }
}

/// Row 3: in-kernel cost per packet of wstap's eBPF programs, from the
/// kernel's own accounting (`sysctl kernel.bpf_stats_enabled=1`, then
/// `run_time_ns` / `run_cnt` of each program in `bpftool prog show`).
mod kernel {
    use super::offline::Netns;
    use super::*;

    /// Traffic for this section: (label, client arguments).
    /// (label, client arguments, delivered?): delivered workloads talk to
    /// the filtered port, the rejected one to [`OTHER_PORT`], which the
    /// kernel filter drops after parsing.
    fn workloads() -> Vec<(&'static str, Vec<String>, bool)> {
        vec![
            (
                "bulk: 1 MiB binary messages, 50 MiB each way",
                [
                    "--conversation",
                    "bulk",
                    "--size",
                    &(50u64 << 20).to_string(),
                ]
                .map(String::from)
                .to_vec(),
                true,
            ),
            (
                "small: 50,000 text messages each way",
                ["--conversation", "small", "--count", "50000"]
                    .map(String::from)
                    .to_vec(),
                true,
            ),
            (
                "small, other port: rejected by the port filter",
                ["--conversation", "small", "--count", "50000"]
                    .map(String::from)
                    .to_vec(),
                false,
            ),
        ]
    }

    /// A second server's port, outside wstap's `--port` filter.
    const OTHER_PORT: &str = "9003";

    /// Restores `kernel.bpf_stats_enabled` on drop.
    struct BpfStats(String);

    const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

    impl BpfStats {
        fn enable() -> Result<Self> {
            let old =
                std::fs::read_to_string(SYSCTL).context("reading kernel.bpf_stats_enabled")?;
            std::fs::write(SYSCTL, "1").context("sysctl kernel.bpf_stats_enabled=1")?;
            Ok(BpfStats(old.trim().to_string()))
        }
    }

    impl Drop for BpfStats {
        fn drop(&mut self) {
            let _ = std::fs::write(SYSCTL, &self.0);
        }
    }

    const TITLE: &str = "3. In-kernel cost per packet";

    /// Ids of the BPF programs `pid` holds, from /proc/PID/fdinfo.
    fn prog_ids(pid: u32) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
            let Ok(s) = std::fs::read_to_string(e?.path()) else {
                continue;
            };
            for l in s.lines() {
                if let Some(v) = l.strip_prefix("prog_id:") {
                    if let Ok(id) = v.trim().parse() {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// (name, run_time_ns, run_cnt) of one program, from `bpftool prog show id N`.
    pub(super) fn prog_stats(id: u32) -> Result<(String, u64, u64)> {
        let out = Command::new("bpftool")
            .args(["prog", "show", "id", &id.to_string()])
            .output()
            .context("running bpftool")?;
        if !out.status.success() {
            bail!("bpftool prog show id {id} failed");
        }
        Ok(parse_prog_show(&String::from_utf8_lossy(&out.stdout)))
    }

    /// bpftool leaves out `run_time_ns` and `run_cnt` while they are 0.
    pub(super) fn parse_prog_show(s: &str) -> (String, u64, u64) {
        let words: Vec<&str> = s.split_whitespace().collect();
        let after = |k: &str| {
            words
                .iter()
                .position(|w| *w == k)
                .and_then(|i| words.get(i + 1))
        };
        let name = after("name").map(|s| s.to_string()).unwrap_or_default();
        let num = |k: &str| after(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        (name, num("run_time_ns"), num("run_cnt"))
    }

    pub fn run(wstap: &Path) -> Result<Section> {
        if !crate::is_root() {
            return Ok(Section::skipped(TITLE, "needs root".into()));
        }
        eprintln!("bench: in-kernel cost per packet (wstap -i lo in a private namespace)");
        let py = "/usr/bin/python3";
        let peer = root().join("tests/peers/ws_peer.py");
        let work = WorkDir::create("wstap-bench-k")?;
        let ns = Netns::create()?;
        let port = "9002";
        let mut child = ns
            .exec(wstap)
            .args(["-i", "lo", "--port", port, "--format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting wstap -i")?;
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut head = String::new();
        loop {
            let mut l = String::new();
            if err.read_line(&mut l)? == 0 {
                let st = child.wait()?;
                return Ok(Section::skipped(
                    TITLE,
                    format!(
                        "`wstap -i lo` did not attach ({st}): {}",
                        head.trim().replace('\n', " ")
                    ),
                ));
            }
            head += &l;
            if l.starts_with("listening on") {
                break;
            }
        }
        let pid = child.id();
        let wstap_child = Reaper(child);
        let ids = prog_ids(pid)?;
        if ids.is_empty() {
            return Ok(Section::skipped(TITLE, "wstap holds no BPF program".into()));
        }
        let ready = work.join("server.ready");
        let _server = Reaper(
            ns.exec(py)
                .arg(&peer)
                .args([
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    port,
                    "--no-compression",
                    "--ready",
                ])
                .arg(&ready)
                .stdout(Stdio::null())
                .spawn()
                .context("starting the WebSocket server")?,
        );
        let ready_other = work.join("other.ready");
        let _other_server = Reaper(
            ns.exec(py)
                .arg(&peer)
                .args([
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    OTHER_PORT,
                    "--no-compression",
                    "--ready",
                ])
                .arg(&ready_other)
                .stdout(Stdio::null())
                .spawn()
                .context("starting the second WebSocket server")?,
        );
        let t0 = Instant::now();
        while !ready.exists() || !ready_other.exists() {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("the WebSocket server did not start within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = BpfStats::enable()?;
        let snapshot =
            || -> Result<Vec<(String, u64, u64)>> { ids.iter().map(|&i| prog_stats(i)).collect() };
        let mut rows = Vec::new();
        for (label, args, delivered) in workloads() {
            let port = if delivered { port } else { OTHER_PORT };
            let before = snapshot()?;
            let st = ns
                .exec(py)
                .arg(&peer)
                .args([
                    "client",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    port,
                    "--no-log-payload",
                    "--log",
                ])
                .arg(work.join("client.json"))
                .args(&args)
                .status()?;
            if !st.success() {
                bail!("the WebSocket client failed ({st})");
            }
            std::thread::sleep(Duration::from_millis(300));
            let after = snapshot()?;
            for ((name, t0, n0), (_, t1, n1)) in before.iter().zip(&after) {
                let (dt, dn) = (t1 - t0, n1 - n0);
                if dn == 0 {
                    continue;
                }
                rows.push(vec![
                    format!(
                        "{label} ({})",
                        if delivered { "delivered" } else { "rejected" }
                    ),
                    name.clone(),
                    fmt_count(dn),
                    format!("{:.1}", dt as f64 / 1e6),
                    format!("**{:.0}**", dt as f64 / dn as f64),
                ]);
            }
        }
        drop(stats);
        let mut wstap_child = wstap_child;
        sigint(&wstap_child.0);
        let _ = wstap_child.0.wait();
        let mut tail = String::new();
        let _ = err.read_to_string(&mut tail);
        let kernel_line = tail
            .lines()
            .find(|l| l.starts_with("kernel:"))
            .unwrap_or("")
            .to_string();
        drop(ns);
        Ok(Section {
            title: "3. In-kernel cost per packet (`wstap -i lo`)".into(),
            header: ["traffic", "program", "runs (packets)", "total ms", "ns per packet"]
                .map(String::from)
                .to_vec(),
            rows,
            notes: vec![
                format!("- {}", head.lines().find(|l| l.starts_with("listening on")).unwrap_or("").trim()),
                "- Real peers on `lo` of a private namespace, `wstap -i lo --port 9002 --format json > /dev/null` running. Kernel accounting: `sysctl kernel.bpf_stats_enabled=1` during the runs (restored after), delta of `run_time_ns` / `run_cnt` of each program wstap holds (`bpftool prog show id N`). Includes the ring-buffer copy of matched segments; the stats themselves add a few ns per run.".into(),
                format!("- wstap's own count at exit: `{kernel_line}`"),
            ],
        })
    }
}

/// Spawns a capture tool whose stderr says "listening on" once attached;
/// returns it with that first part of its stderr and a thread collecting the
/// rest (so a chatty tool never blocks on a full pipe).
fn spawn_listening(
    cmd: &mut Command,
    what: &str,
) -> Result<(Child, String, std::thread::JoinHandle<String>)> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut head = String::new();
    loop {
        let mut l = String::new();
        if err.read_line(&mut l)? == 0 {
            let st = child.wait()?;
            bail!(
                "{what} did not start ({st}): {}",
                head.trim().replace('\n', " ")
            );
        }
        head += &l;
        if l.contains("listening on") {
            break;
        }
    }
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Ok((child, head, rest))
}

/// Waits until `f` exists; fails after `limit` or when `child` exits first.
fn wait_for_file(f: &Path, limit: Duration, child: Option<&mut Child>) -> Result<()> {
    let t0 = Instant::now();
    let mut child = child;
    while !f.exists() {
        if t0.elapsed() > limit {
            bail!(
                "{} did not appear within {} s",
                f.display(),
                limit.as_secs()
            );
        }
        if let Some(c) = child.as_deref_mut() {
            if let Some(st) = c.try_wait()? {
                bail!("a peer exited ({st}) before writing {}", f.display());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The number just before `key` on the first line containing it, as in
/// "12 packets dropped by kernel" or "…, 0 records lost in kernel".
fn num_before(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let i = l.find(key)?;
        l[..i].rsplit([' ', ',']).next()?.trim().parse().ok()
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Row 2: live decode under load. Two private namespaces joined by a veth
/// pair (10.204.0.1/24 and .2, nothing else), the echo server in one, the
/// clients in the other, the capture tool on the server's end of the pair:
/// first `wstap -i`, then `tcpdump -w /dev/null` with the same port filter
/// on the same kind of run.
mod live {
    use super::offline::{log_truth, problems, summary_counts, Netns, Truth};
    use super::*;

    const PORT: &str = "9004";
    const SERVER: &str = "10.204.0.1";
    const CLIENT: &str = "10.204.0.2";
    const CLIENTS: usize = 4;

    struct Workload {
        label: String,
        /// Arguments of each client process.
        args: Vec<String>,
        /// The server accepts permessage-deflate.
        deflate: bool,
    }

    fn workloads() -> Vec<Workload> {
        let bulk = |conv: &str, mib: u64| {
            vec![
                "--conversation".to_string(),
                conv.into(),
                "--size".into(),
                (mib << 20).to_string(),
            ]
        };
        vec![
            Workload {
                label: format!("bulk: {CLIENTS} connections × 192 × 1 MiB binary, echoed"),
                args: bulk("bulk", 192),
                deflate: false,
            },
            Workload {
                label: format!(
                    "bulk-deflate: {CLIENTS} connections × 48 × 1 MiB binary, permessage-deflate, echoed"
                ),
                args: bulk("bulk-deflate", 48),
                deflate: true,
            },
            Workload {
                label: format!("small: {CLIENTS} connections × 50,000 short text, echoed"),
                args: ["--conversation", "small", "--count", "50000"]
                    .map(String::from)
                    .to_vec(),
                deflate: false,
            },
        ]
    }

    /// Server and client namespaces joined by a veth pair; deleting the
    /// namespaces (on drop) deletes the pair.
    struct Pair {
        server: Netns,
        client: Netns,
        iface: String,
    }

    impl Pair {
        fn create() -> Result<Pair> {
            let id = std::process::id() % 100_000;
            let server = Netns::named(&format!("wsbench-s{id}"))?;
            let client = Netns::named(&format!("wsbench-c{id}"))?;
            let (si, ci) = (format!("wsv{id}s"), format!("wsv{id}c"));
            status(Command::new("ip").args([
                "link",
                "add",
                &si,
                "netns",
                server.name(),
                "type",
                "veth",
                "peer",
                "name",
                &ci,
                "netns",
                client.name(),
            ]))?;
            for (ns, ifc, addr) in [(&server, &si, SERVER), (&client, &ci, CLIENT)] {
                status(Command::new("ip").args([
                    "-n",
                    ns.name(),
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    ifc,
                ]))?;
                status(Command::new("ip").args(["-n", ns.name(), "link", "set", ifc, "up"]))?;
            }
            Ok(Pair {
                server,
                client,
                iface: si,
            })
        }
    }

    /// One capture tool's run over one workload.
    struct Run {
        truth: Truth,
        /// From the clients' start to the last one's exit.
        wall: Duration,
        /// The tool's user + system CPU time over its whole life.
        cpu: Duration,
        stderr: String,
    }

    fn run_once(
        pair: &Pair,
        tool: &mut Command,
        what: &str,
        w: &Workload,
        work: &Path,
    ) -> Result<Run> {
        let py = "/usr/bin/python3";
        let peer = root().join("tests/peers/ws_peer.py");
        let (child, head, rest) = spawn_listening(tool, what)?;
        let mut tool = Reaper(child);
        let t0 = Instant::now();
        let mut clients = Vec::new();
        let mut logs = Vec::new();
        for i in 0..CLIENTS {
            let log = work.join(format!("client{i}.json"));
            let _ = std::fs::remove_file(&log);
            clients.push(Reaper(
                pair.client
                    .exec(py)
                    .arg(&peer)
                    .args([
                        "client",
                        "--host",
                        SERVER,
                        "--port",
                        PORT,
                        "--no-log-payload",
                        "--log",
                    ])
                    .arg(&log)
                    .args(&w.args)
                    .spawn()
                    .context("starting a WebSocket client")?,
            ));
            logs.push(log);
        }
        for c in &mut clients {
            let st = c.0.wait()?;
            if !st.success() {
                bail!("a WebSocket client failed ({st})");
            }
        }
        let wall = t0.elapsed();
        // wstap looks at its ring every 5 ms; tcpdump hands over blocks at
        // least once a second. Let both finish what is in flight.
        std::thread::sleep(Duration::from_millis(1500));
        sigint(&tool.0);
        let f = wait_rusage(&mut tool.0, Instant::now())?;
        // Reaped by wait4: nothing left for the Reaper to kill or wait for.
        std::mem::forget(tool);
        let stderr = head + &rest.join().unwrap_or_default();
        if !f.status.success() {
            bail!("{what} failed ({}): {stderr}", f.status);
        }
        let mut truth = Truth {
            messages: 0,
            bytes: 0,
        };
        for log in &logs {
            let t = log_truth(log)?;
            truth.messages += t.messages;
            truth.bytes += t.bytes;
        }
        eprintln!(
            "bench: {what}: {} messages, {:.1} MB in {:.1} s; CPU {:.2} s",
            truth.messages,
            truth.bytes as f64 / 1e6,
            wall.as_secs_f64(),
            f.cpu.as_secs_f64()
        );
        Ok(Run {
            truth,
            wall,
            cpu: f.cpu,
            stderr,
        })
    }

    const TITLE: &str = "2. Live decode under load";

    pub fn run(wstap: &Path) -> Result<Section> {
        if !crate::is_root() {
            return Ok(Section::skipped(TITLE, "needs root".into()));
        }
        eprintln!("bench: live decode under load (veth pair between two private namespaces)");
        let py = "/usr/bin/python3";
        let peer = root().join("tests/peers/ws_peer.py");
        let work = WorkDir::create("wstap-bench-live")?;
        let pair = Pair::create().context("creating the namespaces and the veth pair")?;
        let mut rows = Vec::new();
        let mut listening = String::new();
        for w in workloads() {
            let ready = work.join("server.ready");
            let _ = std::fs::remove_file(&ready);
            let mut server = pair.server.exec(py);
            server
                .arg(&peer)
                .args(["server", "--host", SERVER, "--port", PORT, "--ready"])
                .arg(&ready)
                .stdout(Stdio::null());
            if !w.deflate {
                server.arg("--no-compression");
            }
            let mut server = Reaper(server.spawn().context("starting the WebSocket server")?);
            wait_for_file(&ready, Duration::from_secs(20), Some(&mut server.0))?;

            let mut cmd = pair.server.exec(wstap);
            cmd.args(["-i", &pair.iface, "--port", PORT, "--format", "json"]);
            let r = run_once(&pair, &mut cmd, "wstap", &w, &work)?;
            if let Some(l) = r.stderr.lines().find(|l| l.starts_with("listening on")) {
                listening = l.trim().to_string();
            }
            let (decoded, _) = summary_counts(&r.stderr);
            let lost = num_before(&r.stderr, " records lost in kernel");
            let cut = num_before(&r.stderr, " cut short");
            let decoded_cell = match decoded {
                Some(n) if n == r.truth.messages => format!("{} ✓", fmt_count(n)),
                Some(n) => format!("**{} ✗**", fmt_count(n)),
                None => "not counted ✗".into(),
            };
            let mut remark = problems(&r.stderr);
            if let Some(c) = cut.filter(|&c| c > 0) {
                if !remark.is_empty() {
                    remark += ", ";
                }
                remark += &format!("{c} segments cut short");
            }
            rows.push(row(
                &w.label,
                "wstap -i (JSON)",
                &r,
                decoded_cell,
                match lost {
                    Some(n) => format!("{} records lost", fmt_count(n)),
                    None => "?".into(),
                },
                remark,
            ));

            let mut cmd = pair.server.exec("tcpdump");
            cmd.args(["-i", &pair.iface, "-w", "/dev/null", "port", PORT]);
            let r = run_once(&pair, &mut cmd, "tcpdump", &w, &work)?;
            let dropped = num_before(&r.stderr, " packets dropped by kernel");
            let received = num_before(&r.stderr, " packets received by filter");
            let captured = num_before(&r.stderr, " packets captured");
            rows.push(row(
                &w.label,
                "tcpdump -w /dev/null",
                &r,
                format!(
                    "— ({} packets captured)",
                    captured.map(fmt_count).unwrap_or_else(|| "?".into())
                ),
                format!(
                    "{} dropped by kernel (of {} received by filter)",
                    dropped.map(fmt_count).unwrap_or_else(|| "?".into()),
                    received.map(fmt_count).unwrap_or_else(|| "?".into())
                ),
                String::new(),
            ));
        }
        drop(pair);
        Ok(Section {
            title: "2. Live decode under load (veth pair, real peers): `wstap -i` vs `tcpdump -w /dev/null`".into(),
            header: [
                "traffic",
                "tool",
                "messages (peers' logs)",
                "messages decoded",
                "kernel losses",
                "payload MB/s",
                "tool CPU s",
                "CPU % of wall",
                "remark",
            ]
            .map(String::from)
            .to_vec(),
            rows,
            notes: vec![
                format!("- {listening}"),
                format!("- Two private namespaces joined by a veth pair ({SERVER}/24 and {CLIENT}/24, nothing else); the echo server (`tests/peers/ws_peer.py server`) in one, {CLIENTS} client processes in parallel in the other, as fast as they go; each tool on the server's end of the pair, one run each: `wstap -i IF --port {PORT} --format json > /dev/null`, then `tcpdump -i IF -w /dev/null port {PORT}`."),
                "- Messages: sent + received (echo) in the clients' logs = messages on the wire; decoded = wstap's exit summary. Kernel losses: wstap's ring-full count; tcpdump's \"packets dropped by kernel\". MB/s = payload bytes in the clients' logs (both directions, 1 MB = 10⁶ B) / wall time of the client run. CPU = the tool's user + system time (wait4), start to exit, over the client run's wall time; kernel-side work in softirq context (the eBPF program, the packet socket copy) is charged to whichever task is running, mostly not to the tool.".into(),
                "- bulk-deflate sends the same incompressible bytes as bulk, so the compressed payload is about as large as the plain one; wstap inflates every message.".into(),
            ],
        })
    }

    fn row(
        label: &str,
        tool: &str,
        r: &Run,
        decoded: String,
        lost: String,
        remark: String,
    ) -> Vec<String> {
        let wall = r.wall.as_secs_f64();
        vec![
            label.to_string(),
            tool.to_string(),
            fmt_count(r.truth.messages),
            decoded,
            lost,
            fmt_rate(r.truth.bytes as f64 / 1e6 / wall),
            format!("{:.2}", r.cpu.as_secs_f64()),
            format!("{:.0} %", 100.0 * r.cpu.as_secs_f64() / wall),
            remark,
        ]
    }
}

/// Row 4: wstap's memory with 10,000 open WebSocket connections, half of
/// them with permessage-deflate (`tests/peers/many_conns.py`), idle and
/// after each sent one message that came back.
mod memory {
    use super::offline::{problems, summary_counts, Netns};
    use super::*;

    const PORT: &str = "9006";
    const CONNS: u64 = 10_000;
    /// Target: peak RSS under 256 MB.
    const TARGET_BYTES: u64 = 256_000_000;

    /// (label, extra wstap arguments, which connections offer deflate).
    fn runs() -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
        vec![
            ("default ring (64 MiB), half compressed", vec![], "half"),
            (
                "`--ring-size 4194304`, half compressed",
                vec!["--ring-size", "4194304"],
                "half",
            ),
            (
                "`--ring-size 4194304`, none compressed",
                vec!["--ring-size", "4194304"],
                "none",
            ),
        ]
    }

    /// VmRSS and VmHWM of `pid` in KiB.
    fn vm(pid: u32) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let get = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (get("VmRSS:"), get("VmHWM:"))
    }

    /// `"key": N` from the client's one-line JSON summary.
    fn json_num(s: &str, key: &str) -> Option<u64> {
        let i = s.find(&format!("\"{key}\":"))?;
        let v = s[i + key.len() + 3..].trim_start();
        v.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    }

    const TITLE: &str = "4. Memory with 10,000 open connections";

    pub fn run(wstap: &Path) -> Result<Section> {
        if !crate::is_root() {
            return Ok(Section::skipped(TITLE, "needs root".into()));
        }
        let mut rows = Vec::new();
        let mut verdict = String::new();
        for (label, extra, deflate) in runs() {
            eprintln!("bench: memory with {CONNS} connections: {label}");
            let r = one(wstap, &extra, deflate)?;
            let peak_bytes = r.peak_kib * 1024;
            let ok = peak_bytes < TARGET_BYTES;
            if verdict.is_empty() {
                verdict = format!(
                    "- Target: peak RSS under 256 MB (244 MiB) with {} connections, half compressed, default options: **{}** ({} MiB).",
                    fmt_count(CONNS),
                    if ok { "met" } else { "NOT met" },
                    mib(r.peak_kib)
                );
            }
            rows.push(vec![
                label.to_string(),
                format!(
                    "{} ({} compressed)",
                    fmt_count(r.opened),
                    fmt_count(r.compressed)
                ),
                mib(r.start_kib),
                mib(r.idle_kib),
                mib(r.after_kib),
                format!("**{}** {}", mib(r.peak_kib), if ok { "✓" } else { "✗" }),
                match r.decoded {
                    Some(n) if n == r.sent => {
                        format!("{} of {} ✓", fmt_count(n), fmt_count(r.sent))
                    }
                    Some(n) => format!("**{} of {} ✗**", fmt_count(n), fmt_count(r.sent)),
                    None => "not counted ✗".into(),
                },
                r.remark,
            ]);
        }
        Ok(Section {
            title: "4. Memory: `wstap -i lo` with 10,000 open WebSocket connections".into(),
            header: [
                "run",
                "connections open",
                "RSS MiB before",
                "RSS MiB idle",
                "RSS MiB after messages",
                "peak RSS MiB (VmHWM)",
                "messages decoded / on the wire",
                "remark",
            ]
            .map(String::from)
            .to_vec(),
            rows,
            notes: vec![
                verdict,
                format!("- `tests/peers/many_conns.py` on `lo` of a private namespace: a client process opens {} connections (200 at a time) to an echo server process; every other one offers permessage-deflate (websockets' default, which the server accepts with context takeover and 12 window bits both ways). All idle (RSS sampled 2 s after the last opened), then each sends one ~100-byte text message and awaits its echo (sampled 1.5 s after the last echo), holds 3 s and closes. Peak = VmHWM just before wstap is stopped. `wstap -i lo --port {PORT} --format json > /dev/null`.", fmt_count(CONNS)),
                "- RSS counts the ring buffer's pages mapped into wstap (the kernel maps the data area twice): about 2 × `--ring-size` of the \"before\" column.".into(),
            ],
        })
    }

    struct Measured {
        opened: u64,
        compressed: u64,
        start_kib: u64,
        idle_kib: u64,
        after_kib: u64,
        peak_kib: u64,
        sent: u64,
        decoded: Option<u64>,
        remark: String,
    }

    fn one(wstap: &Path, extra: &[&str], deflate: &str) -> Result<Measured> {
        let py = "/usr/bin/python3";
        let peer = root().join("tests/peers/many_conns.py");
        let work = WorkDir::create("wstap-bench-mem")?;
        let ns = Netns::named(&format!("wsbench-m{}", std::process::id()))?;
        let (child, head, rest) = spawn_listening(
            ns.exec(wstap)
                .args(["-i", "lo", "--port", PORT, "--format", "json"])
                .args(extra),
            "wstap -i lo",
        )?;
        let pid = child.id();
        let mut wstap_child = Reaper(child);
        let ready = work.join("server.ready");
        let mut server = Reaper(
            ns.exec(py)
                .arg(&peer)
                .args(["server", "--host", "127.0.0.1", "--port", PORT, "--ready"])
                .arg(&ready)
                .stdout(Stdio::null())
                .spawn()
                .context("starting the many-connections server")?,
        );
        wait_for_file(&ready, Duration::from_secs(20), Some(&mut server.0))?;
        let (start_kib, _) = vm(pid);
        let (idle, go, sent_marker, log) = (
            work.join("idle"),
            work.join("go"),
            work.join("sent"),
            work.join("client.json"),
        );
        let mut client = Reaper(
            ns.exec(py)
                .arg(&peer)
                .args(["client", "--host", "127.0.0.1", "--port", PORT])
                .args(["--count", &CONNS.to_string(), "--deflate", deflate])
                .arg("--log")
                .arg(&log)
                .arg("--idle-marker")
                .arg(&idle)
                .arg("--go")
                .arg(&go)
                .arg("--sent-marker")
                .arg(&sent_marker)
                .stdout(Stdio::null())
                .spawn()
                .context("starting the many-connections client")?,
        );
        wait_for_file(&idle, Duration::from_secs(300), Some(&mut client.0))?;
        std::thread::sleep(Duration::from_secs(2));
        let (idle_kib, _) = vm(pid);
        std::fs::write(&go, "go\n")?;
        wait_for_file(&sent_marker, Duration::from_secs(300), Some(&mut client.0))?;
        std::thread::sleep(Duration::from_millis(1500));
        let (after_kib, _) = vm(pid);
        let st = client.0.wait()?;
        if !st.success() {
            bail!("the many-connections client failed ({st})");
        }
        std::thread::sleep(Duration::from_millis(500));
        let (_, peak_kib) = vm(pid);
        sigint(&wstap_child.0);
        let _ = wstap_child.0.wait();
        let stderr = head + &rest.join().unwrap_or_default();
        drop(server);
        drop(ns);
        let summary = std::fs::read_to_string(&log).context("reading the client's summary")?;
        let get = |k: &str| json_num(&summary, k).unwrap_or(0);
        let (decoded, _) = summary_counts(&stderr);
        let mut remark = problems(&stderr);
        if let Some(n) = num_before(&stderr, " records lost in kernel").filter(|&n| n > 0) {
            if !remark.is_empty() {
                remark += ", ";
            }
            remark += &format!("{n} records lost in kernel");
        }
        if get("failed") > 0 {
            if !remark.is_empty() {
                remark += ", ";
            }
            remark += &format!("{} connections failed to open", get("failed"));
        }
        Ok(Measured {
            opened: get("opened"),
            compressed: get("compressed"),
            start_kib,
            idle_kib,
            after_kib,
            peak_kib,
            sent: get("sent") + get("received"),
            decoded,
            remark,
        })
    }
}

/// Criterion micro-benchmarks (`capture-user/benches/decode.rs`), quick mode;
/// the table keeps each benchmark's median time and throughput.
fn criterion() -> Result<Section> {
    eprintln!(
        "bench: criterion micro-benchmarks (cargo bench -p capture-user --bench decode -- --quick)"
    );
    let out = cargo()
        .args([
            "bench",
            "-p",
            "capture-user",
            "--bench",
            "decode",
            "--",
            "--quick",
            "--noplot",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    eprint!("{text}");
    if !out.status.success() {
        bail!("cargo bench failed ({})", out.status);
    }
    let mut rows = Vec::new();
    let mut name = String::new();
    let mut in_change = false;
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with("change:") {
            in_change = true;
        } else if t.contains('%') && (t.contains("time:") || t.contains("thrpt:")) {
            // A "change:" block against an earlier run: not a result.
        } else if let Some(i) = t.find("time:") {
            in_change = false;
            let head = t[..i].trim();
            if !head.is_empty() {
                name = head.to_string();
            }
            rows.push(vec![name.clone(), middle(&t[i + 5..]), String::new()]);
        } else if let Some(i) = t.find("thrpt:") {
            if let (false, Some(r)) = (in_change, rows.last_mut()) {
                r[2] = middle(&t[i + 6..]);
            }
        } else if !t.is_empty()
            && !t.contains(':')
            && !t.starts_with("Benchmarking")
            && !t.contains(' ')
        {
            name = t.to_string();
        }
    }
    Ok(Section {
        title: "Criterion micro-benchmarks (`cargo bench -p capture-user --bench decode`)".into(),
        header: ["benchmark", "time (median)", "throughput (median)"].map(String::from).to_vec(),
        rows,
        notes: vec![
            "- `--quick` mode; full runs: `cargo bench -p capture-user --bench decode`. Throughput counts input bytes (frames or segment payloads) or messages as labelled.".into(),
        ],
    })
}

/// The middle value of criterion's `[low mid high]`.
fn middle(s: &str) -> String {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    let parts: Vec<&str> = inner.split_whitespace().collect();
    if parts.len() >= 6 {
        format!("{} {}", parts[2], parts[3])
    } else {
        inner.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::offline::*;
    use super::*;

    #[test]
    fn client_log_counts_sent_and_received() {
        let p = std::env::temp_dir().join(format!("wstap-bench-log-{}.json", std::process::id()));
        std::fs::write(
            &p,
            r#"{"conversations": [{"name": "small", "compression": null, "sent": [{"type": "text", "len": 35, "fragments": 1}, {"type": "text", "len": 40, "fragments": 1}], "received": [{"type": "text", "len": 35, "fragments": null}, {"type": "text", "len": 40, "fragments": null}], "pings": [], "local_port": 4242, "extensions": [], "close": {"code": 1000, "reason": "bye"}}]}"#,
        )
        .unwrap();
        let t = log_truth(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        assert_eq!(
            t,
            Truth {
                messages: 4,
                bytes: 150
            }
        );
    }

    #[test]
    fn wstap_summary_is_parsed() {
        let err = "wstap: 2004 packets, 2004 TCP segments (0 filtered out), 0 non-TCP skipped, 0 malformed, 0 truncated by snaplen\n\
                   wstap: 1 connections, 1 WebSocket handshakes, 2000 messages (73780 bytes), 2 control frames\n\
                   wstap: 3 gaps (10 bytes), 0 retransmitted bytes, 0 overlap mismatches, 0 violations, 1 truncated messages, 0 undecompressable, 0 resyncs, 0 evicted\n";
        assert_eq!(summary_counts(err), (Some(2000), Some(73780)));
        assert_eq!(problems(err), "3 gaps (10 bytes), 1 truncated messages");
    }

    #[test]
    fn tshark_fields_are_counted() {
        let out = "1\thello\t\n1,1\tab,cd\t\n2\t\t0a0b0c0d\n8\t\t\n2\t\t0a0b\n";
        let (n, b, cut) = count_tshark(out.as_bytes()).unwrap();
        assert_eq!((n, b), (5, 5 + 4 + 4 + 2));
        assert_eq!(cut, 2);
    }

    #[test]
    fn bpftool_prog_show_is_parsed() {
        let s = "1004: sched_cls  name tc_egress  tag 12d0dd22552622eb  gpl run_time_ns 123456 run_cnt 789\n\tloaded_at 2026-11-21T23:48:46+0000  uid 0\n";
        assert_eq!(
            super::kernel::parse_prog_show(s),
            ("tc_egress".to_string(), 123456, 789)
        );
        assert_eq!(
            super::kernel::parse_prog_show("1004: sched_cls  name tc_egress  tag 12"),
            ("tc_egress".to_string(), 0, 0)
        );
    }

    #[test]
    fn numbers_before_keys_are_found() {
        let wstap = "listening on x\n100000 segments captured, 6504440 bytes, 7 records lost in kernel (ring full), 0 cut short\n";
        assert_eq!(num_before(wstap, " records lost in kernel"), Some(7));
        assert_eq!(num_before(wstap, " cut short"), Some(0));
        let tcpdump = "27734 packets captured\n31159 packets received by filter\n3425 packets dropped by kernel\n";
        assert_eq!(
            num_before(tcpdump, " packets dropped by kernel"),
            Some(3425)
        );
        assert_eq!(
            num_before(tcpdump, " packets received by filter"),
            Some(31159)
        );
        assert_eq!(num_before(tcpdump, " nothing"), None);
    }

    #[test]
    fn counts_have_separators() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(600_000), "600,000");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
    }
}
