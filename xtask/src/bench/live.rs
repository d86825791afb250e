//! Section 2, live decode under load: two private namespaces joined by a
//! veth pair (10.204.0.1/24 and .2, nothing else), the echo server in one,
//! the clients in the other, the capture tool on the server's end of the
//! pair: first `wstap -i`, then `tcpdump -w /dev/null` with the same port
//! filter on the same kind of run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{
    add_remark, fmt_count, fmt_rate, listening_line, num_before, problems, run_clients, serve,
    spawn_listening, strings, summary_counts, wstap_tap, Listening, Netns, Reaper, Section, Truth,
    WorkDir, WS_PEER,
};
use crate::status;

const PORT: &str = "9004";
pub(super) const SERVER: &str = "10.204.0.1";
pub(super) const CLIENT: &str = "10.204.0.2";
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
            args: strings(&["--conversation", "small", "--count", "50000"]),
            deflate: false,
        },
    ]
}

/// Server and client namespaces joined by a veth pair; deleting the
/// namespaces (on drop) deletes the pair.
pub(super) struct Pair {
    pub(super) server: Netns,
    pub(super) client: Netns,
    /// The server's end.
    pub(super) iface: String,
}

impl Pair {
    pub(super) fn create() -> Result<Pair> {
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

fn run_once(pair: &Pair, tool: &mut Command, what: &str, w: &Workload, work: &Path) -> Result<Run> {
    let Listening { child, stderr } = spawn_listening(tool, what)?;
    let tool = Reaper(child);
    let t0 = Instant::now();
    let logs = run_clients(
        &pair.client,
        SERVER,
        PORT,
        work,
        &vec![w.args.clone(); CLIENTS],
    )?;
    let wall = t0.elapsed();
    // wstap looks at its ring every 5 ms; tcpdump hands over blocks at
    // least once a second. Let both finish what is in flight.
    std::thread::sleep(Duration::from_millis(1500));
    let f = tool.stop_rusage()?;
    let stderr = stderr.collect();
    if !f.status.success() {
        bail!("{what} failed ({}): {stderr}", f.status);
    }
    let truth = Truth::of_logs(&logs)?;
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
    let work = WorkDir::create("wstap-bench-live")?;
    let pair = Pair::create().context("creating the namespaces and the veth pair")?;
    let mut rows = Vec::new();
    let mut listening = String::new();
    for w in workloads() {
        let _server = serve(
            &pair.server,
            WS_PEER,
            SERVER,
            PORT,
            if w.deflate {
                &[]
            } else {
                &["--no-compression"]
            },
            &work.join("server.ready"),
            "the WebSocket server",
        )?;

        let mut cmd = wstap_tap(&pair.server, wstap, &pair.iface, PORT);
        let r = run_once(&pair, &mut cmd, "wstap", &w, &work)?;
        let l = listening_line(&r.stderr);
        if !l.is_empty() {
            listening = l.to_string();
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
            add_remark(&mut remark, &format!("{c} segments cut short"));
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
        header: strings(&[
            "traffic",
            "tool",
            "messages (peers' logs)",
            "messages decoded",
            "kernel losses",
            "payload MB/s",
            "tool CPU s",
            "CPU % of wall",
            "remark",
        ]),
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
