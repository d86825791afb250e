//! Section 5, what `--tls` costs: a wss:// echo between two Python
//! `websockets` peers on `lo` of a private namespace (asyncio, OpenSSL with
//! memory BIOs at both ends, so every message is one hooked SSL_write_ex and
//! one or more SSL_read_ex in each process), timed without wstap and with
//! `wstap -i lo --port P --tls`, alternately, best of [`RUNS`]; and the
//! cost of each hooked call from the kernel's accounting of the uprobe
//! programs (`kernel.bpf_stats_enabled`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::kernel::{prog_ids, prog_stats, BpfStats};
use super::{
    fmt_count, listening_line, peer_script, summary_counts, try_spawn_listening, wait_for_file,
    wstap_tap, Listening, Netns, Reaper, Section, WorkDir, PY,
};

const TITLE: &str = "5. TLS hooks (`--tls`): wss echo throughput and cost per hooked call";
const PORT: &str = "9443";
const SCRIPT: &str = "wss_peer.py";
/// Timed runs of each workload with and without wstap; the best counts.
const RUNS: usize = 3;

/// (label, messages, bytes per message).
fn workloads() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("small: 5,000 × 64 B", 5000, 64),
        ("bulk: 100 × 1 MiB", 100, 1 << 20),
    ]
}

/// The hooks' programs (entry probes and the shared return probe).
fn is_hook(program: &str) -> bool {
    program.starts_with("ssl_")
}

/// One timed echo run: seconds, from the client's own clock.
fn echo(ns: &Netns, count: u64, size: u64) -> Result<f64> {
    let out = ns
        .exec(PY)
        .arg(peer_script(SCRIPT))
        .args(["bench", "127.0.0.1", PORT])
        .args([count.to_string(), size.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("running the wss bench client")?;
    if !out.status.success() {
        bail!("the wss bench client failed ({})", out.status);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("the bench client's result")?;
    v["seconds"].as_f64().context("no seconds in the result")
}

/// What a workload measured with wstap attached.
#[derive(Default)]
struct Hooked {
    best: f64,
    /// Runs of the return probe: one per hooked call that returned.
    calls: u64,
    /// run_time_ns of all hook programs.
    ns: u64,
    /// Messages wstap decoded over its runs, and the messages sent (both
    /// directions).
    decoded: u64,
    sent: u64,
}

pub fn run(wstap: &Path) -> Result<Section> {
    if !crate::is_root() {
        return Ok(Section::skipped(TITLE, "needs root".into()));
    }
    for tool in ["openssl", "bpftool"] {
        if Command::new(tool).arg("version").output().is_err() {
            return Ok(Section::skipped(TITLE, format!("`{tool}` not found")));
        }
    }
    eprintln!("bench: --tls (wss echo on lo in a private namespace)");
    let work = WorkDir::create("wstap-bench-tls")?;
    let (cert, key) = super::self_signed_cert(&work)?;
    let ns = Netns::named(&format!("wsbenchtls{}", std::process::id()))?;
    let ready = work.join("server.ready");
    let mut server = Reaper(
        ns.exec(PY)
            .arg(peer_script(SCRIPT))
            .arg("server")
            .arg(&cert)
            .arg(&key)
            .args(["127.0.0.1", PORT, "0"])
            .arg(&ready)
            .stdout(Stdio::null())
            .spawn()
            .context("starting the wss server")?,
    );
    wait_for_file(&ready, Duration::from_secs(20), Some(&mut server.0))
        .context("the wss server did not start")?;

    let mut rows = Vec::new();
    let mut listening = String::new();
    for (label, count, size) in workloads() {
        let mut without = f64::MAX;
        let mut with = Hooked {
            best: f64::MAX,
            ..Hooked::default()
        };
        for _ in 0..RUNS {
            without = without.min(echo(&ns, count, size)?);
            let mut cmd = wstap_tap(&ns, wstap, "lo", PORT);
            cmd.arg("--tls");
            let Listening { child, stderr } = match try_spawn_listening(&mut cmd, "wstap --tls")? {
                Ok(l) => l,
                Err((st, head)) => {
                    return Ok(Section::skipped(
                        TITLE,
                        format!(
                            "`wstap --tls` did not attach ({st}): {}",
                            head.trim().replace('\n', " ")
                        ),
                    ))
                }
            };
            let ids = prog_ids(child.id())?;
            let mut tap = Reaper(child);
            let stats = BpfStats::enable()?;
            let snapshot = || -> Result<Vec<(String, u64, u64)>> {
                ids.iter().map(|&i| prog_stats(i)).collect()
            };
            let before = snapshot()?;
            with.best = with.best.min(echo(&ns, count, size)?);
            std::thread::sleep(Duration::from_millis(300));
            let after = snapshot()?;
            drop(stats);
            for ((name, t0, n0), (_, t1, n1)) in before.into_iter().zip(after) {
                if is_hook(&name) {
                    with.ns += t1 - t0;
                    if name == "ssl_ret" {
                        with.calls += n1 - n0;
                    }
                }
            }
            let _ = tap.stop();
            let stderr = stderr.collect();
            if listening.is_empty() {
                listening = listening_line(&stderr).to_string();
            }
            with.decoded += summary_counts(&stderr).0.unwrap_or(0);
            with.sent += 2 * count;
        }
        let rate = |secs: f64| {
            format!(
                "{secs:.2} s ({} msg/s, {:.1} MB/s)",
                fmt_count((count as f64 / secs) as u64),
                (count * size) as f64 / 1e6 / secs
            )
        };
        rows.push(vec![
            label.to_string(),
            rate(without),
            rate(with.best),
            format!("**{:.2}**", with.best / without),
            fmt_count(with.calls),
            format!("**{:.0}**", with.ns as f64 / with.calls.max(1) as f64),
            format!("{} / {}", fmt_count(with.decoded), fmt_count(with.sent)),
        ]);
    }
    let _ = server.0.kill();
    let _ = server.0.wait();
    Ok(Section {
        title: TITLE.into(),
        header: super::strings(&[
            "workload (one connection, each message echoed)",
            "without wstap",
            "with `wstap --tls`",
            "with / without",
            "hooked SSL calls",
            "ns per call (entry + return probe)",
            "messages decoded / sent",
        ]),
        rows,
        notes: vec![
            format!("- {listening}"),
            format!("- `tests/peers/wss_peer.py bench` against its `server` (Python `websockets`, asyncio, OpenSSL memory BIOs) on `lo` of a private namespace, port {PORT}, no compression; `wstap -i lo --port {PORT} --format json --tls > /dev/null`. Times are the client's, best of {RUNS}, runs with and without wstap alternating. Both peers are hooked, so each message is seen by four calls (a write and a read in each process); wstap decodes each direction once."),
            "- ns per call: run_time_ns of the hook programs (`ssl_*`, entry probes and the return probe that copies the plaintext into the ring) over the return probe's run_cnt, with `kernel.bpf_stats_enabled=1` during the runs. The uprobe's own trap (a breakpoint and a return trampoline per call) is not in it: it shows in the throughput ratio, with wstap's user-space decode on the same 2 cores.".into(),
        ],
    })
}
