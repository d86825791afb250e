//! `cargo xtask bench`: measure wstap side by side with tshark on the same
//! traffic and print one markdown table (also written to
//! `<target>/bench-results.md`).
//!
//! Sections ([`Part`], `--only` picks some), each a module whose `run`
//! returns a [`Section`], appended in [`run`]:
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
//! - Criterion micro-benchmarks of the decoder ([`criterion`],
//!   `capture-user/benches/decode.rs`), headline numbers only.
//!
//! With `--baseline PATH`, `offline` and `kernel` also measure a second wstap
//! binary in the same run, in rows of their own next to the current one's.
//!
//! This file holds what the sections share: the options, the table, child
//! processes (resource usage, clean-up), namespaces, the peers and their
//! logs, wstap's exit summary, number formatting.
//!
//! Nothing leaves the namespaces: the peers talk over their own `lo`, or
//! over a veth pair whose both ends live in private namespaces.

mod criterion;
mod kernel;
mod live;
mod memory;
mod offline;
mod scale;
mod tls;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{root, status, target_dir};

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
    /// A second wstap binary to compare with (e.g. a build of the previous
    /// commit): `offline` runs it alternately with the current one on the
    /// same captures, `kernel` attaches it after the current one to the
    /// same traffic. Extra rows labelled `(baseline)` and a `current /
    /// baseline` column (below 1: the current binary is faster). The other
    /// sections ignore it.
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
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
    /// Row 5: --tls, wss echo throughput and cost per hooked SSL call.
    Tls,
    /// Row 6: live at server scale with the Rust load generator: the
    /// highest loss-free rate (wstap, tcpdump, tshark), `--workers 1/2`,
    /// 100,000 connections.
    Scale,
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
    if let Some(b) = &opts.baseline {
        if !b.is_file() {
            bail!("--baseline {}: no such file", b.display());
        }
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
        sections.push(kernel::run(wstap, opts.baseline.as_deref())?);
    }
    if want(Part::Memory) {
        sections.push(memory::run(wstap)?);
    }
    if want(Part::Tls) {
        sections.push(tls::run(wstap)?);
    }
    if want(Part::Scale) {
        sections.extend(scale::run(wstap)?);
    }
    if want(Part::Criterion) {
        sections.push(criterion::run()?);
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

/// A wstap binary a section measures: the current one, or `--baseline`.
#[derive(Clone, Copy)]
struct Wstap<'a> {
    path: &'a Path,
    baseline: bool,
}

impl Wstap<'_> {
    /// `what`, marked as the baseline's when it is.
    fn label(&self, what: &str) -> String {
        if self.baseline {
            format!("{what} (baseline)")
        } else {
            what.to_string()
        }
    }
}

/// The binaries to compare: `wstap`, then the baseline if there is one.
fn binaries<'a>(wstap: &'a Path, baseline: Option<&'a Path>) -> Vec<Wstap<'a>> {
    let mut v = vec![Wstap {
        path: wstap,
        baseline: false,
    }];
    v.extend(baseline.map(|path| Wstap {
        path,
        baseline: true,
    }));
    v
}

/// Header of the column comparing the current binary with the baseline.
const VS_BASELINE: &str = "current / baseline";

/// The `current / baseline` cell: a ratio of costs (time, ns per packet),
/// below 1 when the current binary is cheaper.
fn fmt_vs_baseline(current: f64, baseline: f64) -> String {
    format!("{:.2}", current / baseline)
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

impl Reaper {
    /// Stops the child as Ctrl-C would (SIGINT) and waits for it.
    fn stop(&mut self) -> std::io::Result<ExitStatus> {
        self.sigint();
        self.0.wait()
    }

    /// [`Reaper::stop`], through wait4 for the child's resource usage.
    fn stop_rusage(mut self) -> Result<Finished> {
        self.sigint();
        let f = wait_rusage(&mut self.0, Instant::now());
        // Reaped by wait4: nothing left for the drop to kill or wait for.
        std::mem::forget(self);
        f
    }

    fn sigint(&self) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGINT);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private network namespace with `lo` up; deleted on drop.
struct Netns(String);

impl Netns {
    fn create() -> Result<Self> {
        Self::named(&format!("wsbench{}", std::process::id()))
    }

    fn named(name: &str) -> Result<Self> {
        status(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Netns(name.to_string());
        status(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    fn name(&self) -> &str {
        &self.0
    }

    fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
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

/// The Python that runs the peers (it has `websockets`).
const PY: &str = "/usr/bin/python3";
/// The WebSocket peer of the tests: an echo server and scripted clients.
const WS_PEER: &str = "ws_peer.py";

/// A peer script under `tests/peers/`.
fn peer_script(name: &str) -> PathBuf {
    root().join("tests/peers").join(name)
}

/// Starts `tests/peers/SCRIPT server --host HOST --port PORT EXTRA` in `ns`
/// and waits for the file it writes once it listens.
/// A self-signed certificate and key (PEM) in `dir`, for the wss:// peers.
fn self_signed_cert(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=wstap-bench", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .context("running openssl req")?;
    if !st.success() {
        bail!("openssl req failed");
    }
    Ok((cert, key))
}

fn serve(
    ns: &Netns,
    script: &str,
    host: &str,
    port: &str,
    extra: &[&str],
    ready: &Path,
    what: &str,
) -> Result<Reaper> {
    let _ = std::fs::remove_file(ready);
    let mut server = Reaper(
        ns.exec(PY)
            .arg(peer_script(script))
            .args(["server", "--host", host, "--port", port])
            .args(extra)
            .arg("--ready")
            .arg(ready)
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {what}"))?,
    );
    wait_for_file(ready, Duration::from_secs(20), Some(&mut server.0))
        .with_context(|| format!("{what} did not start"))?;
    Ok(server)
}

/// Runs one `ws_peer.py client` per entry of `clients` (its arguments) in
/// parallel in `ns` against HOST:PORT and waits for all. Returns their logs
/// (`WORK/clientN.json`, message sizes without payloads).
fn run_clients(
    ns: &Netns,
    host: &str,
    port: &str,
    work: &Path,
    clients: &[Vec<String>],
) -> Result<Vec<PathBuf>> {
    let mut running = Vec::new();
    let mut logs = Vec::new();
    for (i, args) in clients.iter().enumerate() {
        let log = work.join(format!("client{i}.json"));
        let _ = std::fs::remove_file(&log);
        running.push(Reaper(
            ns.exec(PY)
                .arg(peer_script(WS_PEER))
                .args(["client", "--host", host, "--port", port])
                .args(["--no-log-payload", "--log"])
                .arg(&log)
                .args(args)
                .spawn()
                .context("starting a WebSocket client")?,
        ));
        logs.push(log);
    }
    for c in &mut running {
        let st = c.0.wait()?;
        if !st.success() {
            bail!("a WebSocket client failed ({st})");
        }
    }
    Ok(logs)
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

/// What the peers logged: messages sent plus received, payload bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Truth {
    messages: u64,
    bytes: u64,
}

impl Truth {
    /// The sum over the clients' logs.
    fn of_logs(logs: &[PathBuf]) -> Result<Truth> {
        let mut sum = Truth::default();
        for log in logs {
            let t = log_truth(log)?;
            sum.messages += t.messages;
            sum.bytes += t.bytes;
        }
        Ok(sum)
    }
}

/// Messages sent and received and their payload bytes, from a client log
/// written with `--no-log-payload`: every message entry, and nothing
/// else, has a `"len"` key. Scanned as a stream rather than parsed into
/// a tree: the peak RSS of this process is inherited by the children it
/// measures (`ru_maxrss` survives exec), so it must stay small.
fn log_truth(log: &Path) -> Result<Truth> {
    let f = std::fs::File::open(log).with_context(|| format!("reading {}", log.display()))?;
    let mut r = BufReader::new(f);
    let mut tok = Vec::new();
    let mut t = Truth::default();
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

/// `wstap -i IFACE --port PORT --format json` in `ns`.
fn wstap_tap(ns: &Netns, wstap: &Path, iface: &str, port: &str) -> Command {
    let mut c = ns.exec(wstap);
    c.args(["-i", iface, "--port", port, "--format", "json"]);
    c
}

/// A capture tool that has said "listening on".
struct Listening {
    child: Child,
    stderr: Stderr,
}

/// A tool's stderr: what it said up to "listening on", and a thread
/// collecting the rest (so that a chatty tool never blocks on a full pipe).
struct Stderr {
    head: String,
    rest: std::thread::JoinHandle<String>,
}

impl Stderr {
    /// Everything the tool wrote on stderr, once it has exited.
    fn collect(self) -> String {
        self.head + &self.rest.join().unwrap_or_default()
    }
}

/// Spawns a capture tool whose stderr says "listening on" once attached.
/// When it exits before that, returns its exit status and what it said,
/// for the caller to report.
fn try_spawn_listening(
    cmd: &mut Command,
    what: &str,
) -> Result<std::result::Result<Listening, (ExitStatus, String)>> {
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
            return Ok(Err((st, head)));
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
    Ok(Ok(Listening {
        child,
        stderr: Stderr { head, rest },
    }))
}

/// [`try_spawn_listening`], failing when the tool does not start.
fn spawn_listening(cmd: &mut Command, what: &str) -> Result<Listening> {
    match try_spawn_listening(cmd, what)? {
        Ok(l) => Ok(l),
        Err((st, head)) => bail!(
            "{what} did not start ({st}): {}",
            head.trim().replace('\n', " ")
        ),
    }
}

/// wstap's "listening on …" line, trimmed; empty when there is none.
fn listening_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("listening on"))
        .unwrap_or("")
        .trim()
}

/// "N messages (B bytes)" from wstap's exit summary.
fn summary_counts(stderr: &str) -> (Option<u64>, Option<u64>) {
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
fn problems(stderr: &str) -> String {
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

/// Appends `more` to a remark cell, comma-separated.
fn add_remark(remark: &mut String, more: &str) {
    if !remark.is_empty() {
        remark.push_str(", ");
    }
    remark.push_str(more);
}

/// The number just before `key` on the first line containing it, as in
/// "12 packets dropped by kernel" or "…, 0 records lost in kernel".
fn num_before(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let i = l.find(key)?;
        l[..i].rsplit([' ', ',']).next()?.trim().parse().ok()
    })
}

/// Owned copies, for table headers and argument lists.
fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
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

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
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
    fn numbers_before_keys_are_found() {
        let wstap = "listening on x\n100000 records received, 6504440 payload bytes, 7 records lost in kernel (ring full), 0 cut short\n";
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
