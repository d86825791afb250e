//! Section 6, live at server scale, driven by `wsload` (the Rust load
//! generator in `tests/src/bin/wsload.rs`) instead of the Python peers,
//! which top out near 2 MB/s of small messages and so measured themselves:
//!
//! - a rate ladder of small text messages over the veth pair: for wstap,
//!   tcpdump and tshark, the highest rate at which each loses nothing, and
//!   the first one at which it does;
//! - bulk and unpaced small messages with `--workers 1` and `--workers 2`;
//! - memory with 100,000 concurrent connections.
//!
//! The generator runs on the same two cores as the tool it measures.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::live::{Pair, CLIENT, SERVER};
use super::{
    add_remark, fmt_count, fmt_rate, mib, num_before, peer_script, problems, serve,
    spawn_listening, strings, summary_counts, wait_for_file, wait_rusage, wstap_tap, Listening,
    Netns, Reaper, Section, WorkDir, PY,
};
use crate::{cargo, status, target_dir};

const PORT: &str = "9007";
/// Connections of the rate ladder and the workers runs.
const CONNS: usize = 8;
/// Seconds of traffic per step.
const STEP_SECS: f64 = 2.0;
/// Target rates in messages per second on the wire (both directions);
/// 0: as fast as the generator goes.
const LADDER: &[u64] = &[
    25_000, 50_000, 100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000, 0,
];
/// Messages per write at most (the generator flushes a batch at once, as
/// a busy server does; paced steps write what is due each millisecond).
const BATCH: &str = "16";

/// Builds the generator and returns its path.
pub fn build_wsload() -> Result<PathBuf> {
    status(cargo().args(["build", "--release", "-p", "tests", "--bin", "wsload"]))?;
    Ok(target_dir().join("release").join("wsload"))
}

/// What the generator reported for one run, plus the packets the server's
/// veth end saw (both directions) meanwhile.
struct Load {
    messages: u64,
    bytes: u64,
    send_s: f64,
    packets: u64,
}

impl Load {
    fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.send_s.max(1e-9)
    }
    fn packets_per_s(&self) -> f64 {
        self.packets as f64 / self.send_s.max(1e-9)
    }
}

fn iface_packets(ns: &Netns, iface: &str) -> Result<u64> {
    let mut n = 0;
    for dir in ["rx", "tx"] {
        let out = ns
            .exec("cat")
            .arg(format!("/sys/class/net/{iface}/statistics/{dir}_packets"))
            .output()?;
        n += String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .context("interface statistics")?;
    }
    Ok(n)
}

/// Runs `wsload client ARGS` in the pair's client namespace.
fn load(pair: &Pair, wsload: &Path, work: &Path, args: &[String]) -> Result<Load> {
    let log = work.join("load.json");
    let _ = std::fs::remove_file(&log);
    let before = iface_packets(&pair.server, &pair.iface)?;
    let out = pair
        .client
        .exec(wsload)
        .args(["client", "--connect", &format!("{SERVER}:{PORT}")])
        .args(["--no-connections", "--log"])
        .arg(&log)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running wsload")?;
    if !out.status.success() {
        bail!(
            "wsload failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = iface_packets(&pair.server, &pair.iface)?;
    let v: Value = serde_json::from_slice(&std::fs::read(&log)?)?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Ok(Load {
        messages: n("sent") + n("received"),
        bytes: n("sent_bytes") + n("received_bytes"),
        send_s: v["send_s"].as_f64().unwrap_or(0.0),
        packets: after - before,
    })
}

/// One tool on one run of traffic.
struct Outcome {
    load: Load,
    /// Nothing lost, every message decoded (or, for tcpdump, every packet
    /// kept).
    clean: bool,
    /// What the tool said it got or lost.
    what: String,
    cpu: Duration,
}

#[derive(Clone)]
enum Tool {
    Wstap(Vec<String>),
    Tcpdump,
    Tshark,
}

impl Tool {
    fn label(&self) -> String {
        match self {
            Tool::Wstap(extra) if extra.is_empty() => "wstap -i (JSON)".into(),
            Tool::Wstap(extra) => format!("wstap -i (JSON) {}", extra.join(" ")),
            Tool::Tcpdump => "tcpdump -w /dev/null".into(),
            Tool::Tshark => "tshark -i (payloads printed)".into(),
        }
    }
}

fn run_tool(
    pair: &Pair,
    wstap: &Path,
    wsload: &Path,
    work: &Path,
    tool: &Tool,
    args: &[String],
) -> Result<Outcome> {
    match tool {
        Tool::Wstap(extra) => {
            let Listening { child, stderr } = spawn_listening(
                wstap_tap(&pair.server, wstap, &pair.iface, PORT).args(extra),
                "wstap",
            )?;
            let tool = Reaper(child);
            let l = load(pair, wsload, work, args)?;
            std::thread::sleep(Duration::from_millis(1500));
            let f = tool.stop_rusage()?;
            let stderr = stderr.collect();
            if !f.status.success() {
                bail!("wstap failed ({}): {stderr}", f.status);
            }
            let (decoded, _) = summary_counts(&stderr);
            let lost = num_before(&stderr, " records lost in kernel").unwrap_or(u64::MAX);
            let cut = num_before(&stderr, " cut short").unwrap_or(0);
            let mut what = format!(
                "{} decoded, {} records lost",
                decoded.map(fmt_count).unwrap_or_else(|| "?".into()),
                fmt_count(lost)
            );
            let bad = problems(&stderr);
            if !bad.is_empty() {
                add_remark(&mut what, &bad);
            }
            if cut > 0 {
                add_remark(&mut what, &format!("{cut} segments cut short"));
            }
            Ok(Outcome {
                clean: decoded == Some(l.messages) && lost == 0 && bad.is_empty() && cut == 0,
                load: l,
                what,
                cpu: f.cpu,
            })
        }
        Tool::Tcpdump => {
            let mut cmd = pair.server.exec("tcpdump");
            cmd.args(["-i", &pair.iface, "-w", "/dev/null", "port", PORT]);
            let Listening { child, stderr } = spawn_listening(&mut cmd, "tcpdump")?;
            let tool = Reaper(child);
            let l = load(pair, wsload, work, args)?;
            std::thread::sleep(Duration::from_millis(1500));
            let f = tool.stop_rusage()?;
            let stderr = stderr.collect();
            let captured = num_before(&stderr, " packets captured").unwrap_or(0);
            let dropped = num_before(&stderr, " packets dropped by kernel").unwrap_or(u64::MAX);
            let if_dropped = num_before(&stderr, " packets dropped by interface").unwrap_or(0);
            Ok(Outcome {
                clean: dropped == 0 && if_dropped == 0,
                what: format!(
                    "{} packets captured, {} dropped by kernel",
                    fmt_count(captured),
                    fmt_count(dropped)
                ),
                load: l,
                cpu: f.cpu,
            })
        }
        Tool::Tshark => run_tshark(pair, wsload, work, args),
    }
}

/// tshark capturing and decoding live, printing each message's opcode
/// and payload; its output is counted as it comes (`-l`: a line per
/// packet, flushed), and it is stopped once the count stops growing.
fn run_tshark(pair: &Pair, wsload: &Path, work: &Path, args: &[String]) -> Result<Outcome> {
    let started = Instant::now();
    let mut child = pair
        .server
        .exec("tshark")
        .args(["-l", "-i", &pair.iface, "-f", &format!("tcp port {PORT}")])
        .args(["-d", &format!("tcp.port=={PORT},http"), "-Y", "websocket"])
        .args([
            "-T",
            "fields",
            "-e",
            "websocket.opcode",
            "-e",
            "websocket.payload.text",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting tshark")?;
    let printed = Arc::new(AtomicU64::new(0));
    let out = child.stdout.take().unwrap();
    let counter = {
        let printed = printed.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).split(b'\n').map_while(|l| l.ok()) {
                let ops = l.split(|&b| b == b'\t').next().unwrap_or_default();
                let n = ops
                    .split(|&b| b == b',')
                    .filter(|o| *o == b"1" || *o == b"2")
                    .count() as u64;
                printed.fetch_add(n, Ordering::Relaxed);
            }
        })
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        let mut all = String::new();
        for l in BufReader::new(err).lines().map_while(|l| l.ok()) {
            if l.contains("Capturing on") {
                let _ = tx.send(());
            }
            all += &l;
            all.push('\n');
        }
        all
    });
    let mut tshark = Reaper(child);
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        bail!("tshark did not start capturing");
    }
    // dumpcap is attached once tshark says so; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let l = load(pair, wsload, work, args)?;
    // tshark decodes behind the capture: wait until it has printed every
    // message or stopped making progress for 3 s (at most 2 minutes).
    let (mut last, mut still) = (u64::MAX, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = printed.load(Ordering::Relaxed);
        if n >= l.messages || Instant::now() > deadline {
            break;
        }
        if n != last {
            (last, still) = (n, Instant::now());
        } else if still.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    tshark.sigint();
    let f = wait_rusage(&mut tshark.0, started)?;
    std::mem::forget(tshark);
    let _ = counter.join();
    let stderr = err_thread.join().unwrap_or_default();
    let n = printed.load(Ordering::Relaxed);
    let mut what = format!("{} messages printed", fmt_count(n));
    if let Some(d) = num_before(&stderr, " packets dropped").filter(|&d| d > 0) {
        add_remark(&mut what, &format!("{} packets dropped", fmt_count(d)));
    }
    Ok(Outcome {
        clean: n == l.messages,
        load: l,
        what,
        cpu: f.cpu,
    })
}

fn small_args(rate: u64) -> Vec<String> {
    strings(&[
        "--conns",
        &CONNS.to_string(),
        "--duration",
        &STEP_SECS.to_string(),
        // Echoed: half the target is sent, half comes back.
        "--rate",
        &(rate / 2).to_string(),
        "--batch",
        BATCH,
        "--size",
        "20-200",
    ])
}

fn fmt_target(rate: u64) -> String {
    if rate == 0 {
        "unpaced".into()
    } else {
        fmt_count(rate)
    }
}

const TITLE: &str = "6. Live at server scale";

pub fn run(wstap: &Path) -> Result<Vec<Section>> {
    if !crate::is_root() {
        return Ok(vec![Section::skipped(TITLE, "needs root".into())]);
    }
    let wsload = build_wsload()?;
    let work = WorkDir::create("wstap-bench-scale")?;
    let pair = Pair::create().context("creating the namespaces and the veth pair")?;
    let mut sections = vec![ladder(&pair, wstap, &wsload, &work)?];
    sections.push(workers(&pair, wstap, &wsload, &work)?);
    drop(pair);
    sections.push(memory(wstap, &wsload, &work)?);
    Ok(sections)
}

/// The rate ladder: each tool climbs until it first loses something.
fn ladder(pair: &Pair, wstap: &Path, wsload: &Path, work: &Path) -> Result<Section> {
    let _server = wsload_server(&pair.server, wsload, SERVER, work, &[])?;
    let mut rows = Vec::new();
    for tool in [Tool::Wstap(Vec::new()), Tool::Tcpdump, Tool::Tshark] {
        let mut best: Option<(u64, Outcome)> = None;
        let mut failed: Option<(u64, Outcome)> = None;
        for &rate in LADDER {
            let o = run_tool(pair, wstap, wsload, work, &tool, &small_args(rate))?;
            eprintln!(
                "bench: scale: {} at {}: {:.0} msg/s, {:.0} packets/s: {} ({})",
                tool.label(),
                fmt_target(rate),
                o.load.msgs_per_s(),
                o.load.packets_per_s(),
                if o.clean { "clean" } else { "LOST" },
                o.what
            );
            if o.clean {
                best = Some((rate, o));
            } else {
                failed = Some((rate, o));
                break;
            }
        }
        let cell = |r: &Option<(u64, Outcome)>| match r {
            Some((rate, o)) => format!(
                "{} msg/s ({} packets/s; target {}): {}",
                fmt_count(o.load.msgs_per_s() as u64),
                fmt_count(o.load.packets_per_s() as u64),
                fmt_target(*rate),
                o.what
            ),
            None => "—".into(),
        };
        rows.push(vec![
            tool.label(),
            match &best {
                Some(_) => format!("**{}**", cell(&best)),
                None => format!("none: lost at {}", fmt_target(LADDER[0])),
            },
            match &failed {
                Some(_) => cell(&failed),
                None => "none up to the generator's top speed".into(),
            },
            best.as_ref()
                .map(|(_, o)| {
                    format!(
                        "{:.0} %",
                        100.0 * o.cpu.as_secs_f64() / o.load.send_s.max(1e-9)
                    )
                })
                .unwrap_or_default(),
        ]);
    }
    Ok(Section {
        title: "6a. Live at server scale: the highest loss-free rate of small messages (`wsload`, veth pair)".into(),
        header: strings(&[
            "tool",
            "highest rate with nothing lost",
            "first rate with a loss",
            "tool CPU % of wall at the highest",
        ]),
        rows,
        notes: vec![
            format!("- Generator: `wsload` (tests/src/bin/wsload.rs, tokio + tokio-tungstenite) in two private namespaces joined by a veth pair ({SERVER}/24 server, {CLIENT}/24 client): {CONNS} connections, text messages of 20-200 random bytes, echoed by the server, at most {BATCH} per write, {STEP_SECS} s per step at a target rate on the wire (both directions) of {} messages/s, then unpaced. Each tool on the server's end of the pair, one step per run, climbing until it first loses something. The generator, the kernel's TCP and the tool share the machine's cores.", LADDER.iter().map(|&r| fmt_target(r)).collect::<Vec<_>>().join(", ")),
            "- Rates are what the generator achieved (messages sent / its sending time), packets/s what the server's veth end counted both ways (data and ACKs) over that time. Nothing lost: wstap decoded every message the generator logged with no ring loss, gap or violation; tcpdump (`-w /dev/null port P`, default 2 MiB buffer) dropped no packet; tshark (`-i IF -f 'tcp port P' -d tcp.port==P,http -Y websocket -T fields -e websocket.opcode -e websocket.payload.text`, `-l`) printed every message (it is stopped once its output stops growing for 3 s).".into(),
        ],
    })
}

/// Bulk and unpaced small traffic with one and two decoder threads.
fn workers(pair: &Pair, wstap: &Path, wsload: &Path, work: &Path) -> Result<Section> {
    let _server = wsload_server(&pair.server, wsload, SERVER, work, &[])?;
    let bulk = strings(&[
        "--conns",
        "4",
        "--duration",
        "3",
        "--size",
        "65536",
        "--binary",
    ]);
    let packets = strings(&[
        "--conns",
        &CONNS.to_string(),
        "--duration",
        "3",
        "--size",
        "20-200",
    ]);
    // The same, several messages per write (as in the rate ladder).
    let mut small = packets.clone();
    small.extend(strings(&["--batch", BATCH]));
    let traffic = [
        (
            "bulk: 4 connections × 64 KiB binary, echoed, unpaced, 3 s",
            bulk,
        ),
        (
            "small, one per write: 8 connections × 20-200 B text, echoed, unpaced, 3 s",
            packets,
        ),
        (
            "small: 8 connections × 20-200 B text (≤ 16 per write), echoed, unpaced, 3 s",
            small,
        ),
    ];
    let tools = [
        Tool::Wstap(strings(&["--workers", "1"])),
        Tool::Wstap(strings(&["--workers", "2"])),
        Tool::Tcpdump,
    ];
    let mut rows = Vec::new();
    for (label, args) in &traffic {
        for tool in &tools {
            let o = run_tool(pair, wstap, wsload, work, tool, args)?;
            let s = o.load.send_s.max(1e-9);
            eprintln!("bench: scale: {label}: {}: {}", tool.label(), o.what);
            rows.push(vec![
                label.to_string(),
                tool.label(),
                fmt_count(o.load.messages),
                format!("{} {}", o.what, if o.clean { "✓" } else { "✗" }),
                fmt_rate(o.load.bytes as f64 / 1e9 / s),
                fmt_count(o.load.msgs_per_s() as u64),
                fmt_count(o.load.packets_per_s() as u64),
                format!("{:.2}", o.cpu.as_secs_f64()),
                format!("{:.0} %", 100.0 * o.cpu.as_secs_f64() / s),
            ]);
        }
    }
    Ok(Section {
        title: "6b. Live at the generator's top speed: `--workers 1` and `--workers 2` (veth pair)".into(),
        header: strings(&[
            "traffic",
            "tool",
            "messages (generator's log)",
            "decoded / lost",
            "payload GB/s",
            "msg/s",
            "packets/s",
            "tool CPU s",
            "CPU % of wall",
        ]),
        rows,
        notes: vec![
            "- wsload as in 6a, echoing, as fast as it goes; GB/s = payload bytes both ways in the generator's log (10⁹ B) / its sending time. On this 2-core machine the generator (client and server, 2 runtime threads each), the kernel's TCP and the tool share both cores: a second decoder thread competes with the generator for them.".into(),
        ],
    })
}

/// Starts `wsload server` in `ns` on HOST:PORT and waits until it listens.
fn wsload_server(
    ns: &Netns,
    wsload: &Path,
    host: &str,
    work: &Path,
    extra: &[&str],
) -> Result<Reaper> {
    let ready = work.join("wsload-server.ready");
    let _ = std::fs::remove_file(&ready);
    let mut server = Reaper(
        ns.exec(wsload)
            .args(["server", "--listen", &format!("{host}:{PORT}"), "--ready"])
            .arg(&ready)
            .args(extra)
            .spawn()
            .context("starting wsload server")?,
    );
    wait_for_file(&ready, Duration::from_secs(20), Some(&mut server.0))?;
    Ok(server)
}

/// Connections of the memory run: wsload's (plain) and the Python peers'
/// (permessage-deflate, which tokio-tungstenite does not implement).
const MANY_PLAIN: u64 = 90_000;
const MANY_DEFLATE: u64 = 10_000;
const DEFLATE_PORT: &str = "9008";
const MEMORY_TARGET: u64 = 512 << 20;
/// Processes holding the plain connections, each side.
const PLAIN_CLIENTS: u64 = 6;
const PLAIN_SERVERS: usize = 8;

fn vm_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// 100,000 connections on a namespace's loopback: idle, then each sends
/// one message that comes back.
fn memory(wstap: &Path, wsload: &Path, work: &Path) -> Result<Section> {
    eprintln!(
        "bench: scale: memory with {} connections",
        MANY_PLAIN + MANY_DEFLATE
    );
    let ns = Netns::named(&format!("wsbench-x{}", std::process::id()))?;
    // A listen backlog for a storm of connects.
    status(
        ns.exec("sysctl")
            .args(["-q", "-w", "net.core.somaxconn=65535"]),
    )?;
    status(
        ns.exec("sysctl")
            .args(["-q", "-w", "net.ipv4.tcp_max_syn_backlog=65535"]),
    )?;
    let expr = format!("tcp port {PORT} or tcp port {DEFLATE_PORT}");
    let Listening { child, stderr } = spawn_listening(
        ns.exec(wstap).args(["-i", "lo", "--format", "json", &expr]),
        "wstap -i lo",
    )?;
    let pid = child.id();
    let mut wstap_child = Reaper(child);
    let before = vm_kib(pid, "VmRSS:");
    // This machine's processes may hold 20,000 descriptors at most (a
    // hard limit root cannot raise here: no CAP_SYS_RESOURCE), so the
    // connections are spread over processes: servers sharing the port.
    let mut servers = Vec::new();
    for i in 0..PLAIN_SERVERS {
        servers.push(wsload_server(
            &ns,
            wsload,
            "127.0.0.1",
            work,
            &["--reuse-port", &format!("--threads={}", 1 + i % 2)],
        )?);
    }
    let _deflate_server = serve(
        &ns,
        "many_conns.py",
        "127.0.0.1",
        DEFLATE_PORT,
        &[],
        &work.join("py.ready"),
        "the many-connections server",
    )?;
    let marker = |n: &str| {
        let p = work.join(n);
        let _ = std::fs::remove_file(&p);
        p
    };
    let go = marker("go");
    let per_client = MANY_PLAIN / PLAIN_CLIENTS;
    let mut clients = Vec::new();
    for i in 0..PLAIN_CLIENTS {
        let (idle, sent, log) = (
            marker(&format!("idle.{i}")),
            marker(&format!("sent.{i}")),
            work.join(format!("plain{i}.json")),
        );
        let child = ns
            .exec(wsload)
            .args(["--threads", "1", "client"])
            .args(["--connect", &format!("127.0.0.1:{PORT}")])
            .args(["--conns", &per_client.to_string(), "--messages", "1"])
            .args(["--sources", &format!("127.1.{}.0/24", i + 1)])
            .args(["--per-source", "10000", "--open-parallel", "256"])
            .args(["--hold", "3", "--no-connections"])
            .arg("--idle-marker")
            .arg(&idle)
            .arg("--go")
            .arg(&go)
            .arg("--sent-marker")
            .arg(&sent)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
            .context("starting wsload client")?;
        clients.push((Reaper(child), idle, sent, log, "wsload client"));
    }
    let (idle_b, sent_b, log_b) = (
        marker("idle.py"),
        marker("sent.py"),
        work.join("deflate.json"),
    );
    let deflate = ns
        .exec(PY)
        .arg(peer_script("many_conns.py"))
        .args(["client", "--host", "127.0.0.1", "--port", DEFLATE_PORT])
        .args(["--count", &MANY_DEFLATE.to_string(), "--deflate", "all"])
        .arg("--log")
        .arg(&log_b)
        .arg("--idle-marker")
        .arg(&idle_b)
        .arg("--go")
        .arg(&go)
        .arg("--sent-marker")
        .arg(&sent_b)
        .stdout(Stdio::null())
        .spawn()
        .context("starting the many-connections client")?;
    clients.push((
        Reaper(deflate),
        idle_b,
        sent_b,
        log_b,
        "many_conns.py client",
    ));
    let t0 = Instant::now();
    for (c, idle, ..) in &mut clients {
        wait_for_file(idle, Duration::from_secs(600), Some(&mut c.0))?;
    }
    let opened_in = t0.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let idle = vm_kib(pid, "VmRSS:");
    std::fs::write(&go, "go\n")?;
    for (c, _, sent, ..) in &mut clients {
        wait_for_file(sent, Duration::from_secs(600), Some(&mut c.0))?;
    }
    std::thread::sleep(Duration::from_millis(1500));
    let after = vm_kib(pid, "VmRSS:");
    let mut logs = Vec::new();
    for (c, _, _, log, what) in &mut clients {
        let st = c.0.wait()?;
        if !st.success() {
            bail!("{what} failed ({st})");
        }
        logs.push(serde_json::from_slice::<Value>(&std::fs::read(&*log)?)?);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let peak = vm_kib(pid, "VmHWM:");
    let _ = wstap_child.stop();
    let stderr = stderr.collect();
    drop(servers);
    drop(ns);
    let sum = |k: &str| logs.iter().map(|v| v[k].as_u64().unwrap_or(0)).sum::<u64>();
    let opened = sum("opened");
    let compressed = sum("compressed");
    let on_wire = sum("sent") + sum("received");
    let failed = sum("failed");
    let (decoded, _) = summary_counts(&stderr);
    let mut remark = problems(&stderr);
    if let Some(l) = num_before(&stderr, " records lost in kernel").filter(|&l| l > 0) {
        add_remark(&mut remark, &format!("{l} records lost in kernel"));
    }
    if failed > 0 {
        add_remark(&mut remark, &format!("{failed} connections failed to open"));
    }
    let ok = peak * 1024 < MEMORY_TARGET;
    Ok(Section {
        title: format!(
            "6c. Memory with {} concurrent connections (`wstap -i lo`, default ring)",
            fmt_count(MANY_PLAIN + MANY_DEFLATE)
        ),
        header: strings(&[
            "connections open",
            "opened in",
            "RSS MiB before",
            "RSS MiB idle",
            "RSS MiB after messages",
            "peak RSS MiB (VmHWM)",
            "messages decoded / on the wire",
            "remark",
        ]),
        rows: vec![vec![
            format!(
                "{} ({} compressed)",
                fmt_count(opened),
                fmt_count(compressed)
            ),
            format!("{:.0} s", opened_in.as_secs_f64()),
            mib(before),
            mib(idle),
            mib(after),
            format!("**{}** {}", mib(peak), if ok { "✓" } else { "✗" }),
            match decoded {
                Some(d) if d == on_wire => format!("{} of {} ✓", fmt_count(d), fmt_count(on_wire)),
                Some(d) => format!("**{} of {} ✗**", fmt_count(d), fmt_count(on_wire)),
                None => "not counted ✗".into(),
            },
            remark,
        ]],
        notes: vec![
            format!("- Target: peak RSS under 512 MiB with {} connections and the default 64 MiB ring: **{}**.", fmt_count(MANY_PLAIN + MANY_DEFLATE), if ok { "met" } else { "NOT met" }),
            format!("- On `lo` of a private namespace: {PLAIN_CLIENTS} `wsload client` processes open {} plain connections from 127.1.N.1-2 (10,000 per address, 256 at a time per process) to {PLAIN_SERVERS} `wsload server` processes sharing the port (SO_REUSEPORT: this machine allows a process 20,000 descriptors and root cannot raise that here); `tests/peers/many_conns.py` opens {} more with permessage-deflate (Python `websockets`, context takeover, 12 window bits; tokio-tungstenite has no permessage-deflate) to its own server. All idle (RSS sampled 2 s after the last opened), then every connection sends one text message and awaits its echo, holds 3 s, closes. `wstap -i lo --format json 'tcp port {PORT} or tcp port {DEFLATE_PORT}' > /dev/null`; peak = VmHWM just before it is stopped; RSS counts the ring's pages twice (see section 4).", fmt_count(MANY_PLAIN), fmt_count(MANY_DEFLATE)),
        ],
    })
}
