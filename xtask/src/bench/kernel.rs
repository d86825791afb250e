//! Section 3, in-kernel cost per packet of wstap's eBPF programs, from the
//! kernel's own accounting (`sysctl kernel.bpf_stats_enabled=1`, then
//! `run_time_ns` / `run_cnt` of each program in `bpftool prog show`), with
//! `wstap -i lo` in a private namespace; with `--baseline`, the baseline's
//! programs on the same traffic too.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{
    binaries, fmt_count, fmt_vs_baseline, listening_line, run_clients, serve, strings,
    try_spawn_listening, wstap_tap, Listening, Netns, Reaper, Section, WorkDir, Wstap, VS_BASELINE,
    WS_PEER,
};

/// Traffic for this section: (label, client arguments, delivered?):
/// delivered workloads talk to the filtered port [`PORT`], the rejected one
/// to [`OTHER_PORT`], which the kernel filter drops after parsing.
fn workloads() -> Vec<(&'static str, Vec<String>, bool)> {
    vec![
        (
            "bulk: 1 MiB binary messages, 50 MiB each way",
            strings(&[
                "--conversation",
                "bulk",
                "--size",
                &(50u64 << 20).to_string(),
            ]),
            true,
        ),
        (
            "small: 50,000 text messages each way",
            strings(&["--conversation", "small", "--count", "50000"]),
            true,
        ),
        (
            "small, other port",
            strings(&["--conversation", "small", "--count", "50000"]),
            false,
        ),
    ]
}

/// Makes wstap attach its no-op TC program beside its own
/// (`capture_common::ENV_BENCH_NOOP`).
const NOOP_ENV: &str = "WSTAP_BENCH_NOOP";
/// That program's name (`capture_common::PROG_TC_NOOP`).
const NOOP_PROG: &str = "wstap_noop";

/// Each row's TC program against the no-op program on the same packets
/// (absolute nanoseconds move with the machine; the ratio less), with the
/// targets: a packet the filter rejects at most 1.5× the no-op, a
/// delivered small one at most 4×.
fn against_noop(costs: &[(String, Vec<Cost>)]) -> Vec<String> {
    let mut v = Vec::new();
    for (traffic, cs) in costs {
        let Some(noop) = cs.iter().find(|c| c.program == NOOP_PROG) else {
            continue;
        };
        for tap in cs
            .iter()
            .filter(|c| c.program.starts_with("wstap_") && c.program != NOOP_PROG)
        {
            let ratio = tap.per_packet() / noop.per_packet();
            let target = if traffic.contains("rejected by the port filter") {
                Some(1.5)
            } else if traffic.contains("small") && traffic.contains("(delivered)") {
                Some(4.0)
            } else {
                None
            };
            let verdict = match target {
                Some(t) if ratio <= t => format!("; target ≤ {t}×: **met**"),
                Some(t) => format!("; target ≤ {t}×: **NOT met**"),
                None => String::new(),
            };
            v.push(format!(
                "- {traffic}: `{}` {:.0} ns per packet = **{ratio:.2}×** the no-op program's {:.0} ns on the same packets{verdict}.",
                tap.program,
                tap.per_packet(),
                noop.per_packet()
            ));
        }
    }
    if !v.is_empty() {
        v.insert(0, format!("- `{NOOP_PROG}` is a TC program that returns at once, attached after wstap's on the same hooks (`{NOOP_ENV}=1`): what running any program costs here."));
    }
    v
}

/// The port wstap filters on.
const PORT: &str = "9002";
/// A second server's port, outside wstap's `--port` filter.
const OTHER_PORT: &str = "9003";

/// Restores `kernel.bpf_stats_enabled` on drop.
pub(super) struct BpfStats(String);

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub(super) fn enable() -> Result<Self> {
        let old = std::fs::read_to_string(SYSCTL).context("reading kernel.bpf_stats_enabled")?;
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
pub(super) fn prog_ids(pid: u32) -> Result<Vec<u32>> {
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
fn parse_prog_show(s: &str) -> (String, u64, u64) {
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

/// What one program cost over one workload.
struct Cost {
    program: String,
    /// Delta of `run_time_ns`.
    ns: u64,
    /// Delta of `run_cnt`: packets.
    runs: u64,
}

impl Cost {
    fn per_packet(&self) -> f64 {
        self.ns as f64 / self.runs as f64
    }
}

/// One wstap binary's measurement.
struct Measured {
    /// Its "listening on …" line (of the default run).
    listening: String,
    /// Its own count at exit (the "kernel:" line of the default run's summary).
    kernel_line: String,
    /// Per traffic row (setup and workload), the programs that ran.
    costs: Vec<(String, Vec<Cost>)>,
}

/// How wstap runs for a row: a label, the options after `-i lo --port PORT
/// --format json`, and which [`workloads`] it runs (by index).
struct Setup {
    label: &'static str,
    args: Vec<String>,
    workloads: Vec<usize>,
}

/// The setups: the default (process attribution on) over every workload;
/// for the current binary also attribution off, and the owner filter
/// rejecting the traffic (`--pid` of a process not in it), on the small
/// messages, where per-packet costs show most.
fn setups(other_pid: u32, current: bool) -> Vec<Setup> {
    let mut v = vec![Setup {
        label: "default (attribution on)",
        args: Vec::new(),
        workloads: (0..workloads().len()).collect(),
    }];
    if current {
        v.push(Setup {
            label: "--no-process",
            args: strings(&["--no-process"]),
            workloads: vec![1],
        });
        v.push(Setup {
            label: "--pid OTHER (owner filter rejects)",
            args: vec!["--pid".into(), other_pid.to_string()],
            workloads: vec![1],
        });
    }
    v
}

pub fn run(wstap: &Path, baseline: Option<&Path>) -> Result<Section> {
    if !crate::is_root() {
        return Ok(Section::skipped(TITLE, "needs root".into()));
    }
    eprintln!("bench: in-kernel cost per packet (wstap -i lo in a private namespace)");
    let mut measured: Vec<(Wstap, Measured)> = Vec::new();
    let mut baseline_failed = None;
    for b in binaries(wstap, baseline) {
        if b.baseline {
            eprintln!("bench: the same with the baseline {}", b.path.display());
        }
        match measure(b.path, !b.baseline)? {
            Ok(m) => measured.push((b, m)),
            Err(why) if !b.baseline => return Ok(Section::skipped(TITLE, why)),
            Err(why) => baseline_failed = Some(format!("`{}`: {why}", b.path.display())),
        }
    }
    let compare = measured.len() > 1;
    let current = &measured[0].1;
    let mut rows = Vec::new();
    for (traffic, _) in &current.costs {
        for (b, m) in &measured {
            let Some((_, costs)) = m.costs.iter().find(|(t, _)| t == traffic) else {
                continue;
            };
            for c in costs {
                let mut row = vec![
                    traffic.clone(),
                    b.label(&c.program),
                    fmt_count(c.runs),
                    format!("{:.1}", c.ns as f64 / 1e6),
                    format!("**{:.0}**", c.per_packet()),
                ];
                if compare {
                    row.push(if b.baseline {
                        current
                            .costs
                            .iter()
                            .find(|(t, _)| t == traffic)
                            .and_then(|(_, cs)| cs.iter().find(|x| x.program == c.program))
                            .map(|x| fmt_vs_baseline(x.per_packet(), c.per_packet()))
                            .unwrap_or_default()
                    } else {
                        String::new()
                    });
                }
                rows.push(row);
            }
        }
    }
    let mut header = strings(&[
        "wstap, traffic",
        "program",
        "runs",
        "total ms",
        "ns per run",
    ]);
    let mut notes = vec![
        format!("- {}", current.listening),
        format!("- Real peers on `lo` of a private namespace, `wstap -i lo --port {PORT} --format json > /dev/null` running (plus the options of the row). Kernel accounting: `sysctl kernel.bpf_stats_enabled=1` during the runs (restored after), delta of `run_time_ns` / `run_cnt` of each program wstap holds (`bpftool prog show id N`). A run of `wstap_ingress`/`wstap_egress` is a packet; of `sock_io` a send or receive call; of `sock_state` a TCP state change. Includes the ring-buffer copy of matched segments; the stats themselves add a few ns per run."),
        "- Process attribution is the `sock_state` and `sock_io` rows; `--no-process` shows the TC programs without them. `--pid OTHER` selects a process that takes no part in the traffic (the second server), so the owner filter rejects every segment in the kernel: compare its `tc_*` rows with the port filter's rejection (\"other port\") and with delivery.".into(),
        format!("- wstap's own count at exit: `{}`", current.kernel_line),
    ];
    notes.extend(against_noop(&current.costs));
    if let Some((b, m)) = measured.iter().find(|(b, _)| b.baseline) {
        header.push(VS_BASELINE.into());
        notes.push(format!(
            "- `(baseline)` rows: `{}` (`--baseline`), attached after the current binary had stopped, to the same workloads in a fresh namespace; one run of each workload per binary. **{VS_BASELINE}** = the current binary's ns per packet / the baseline's for the program of the same name (below 1: the current one is cheaper).",
            b.path.display()
        ));
        notes.push(format!(
            "- Baseline: {}; its own count at exit: `{}`",
            m.listening, m.kernel_line
        ));
    }
    if let Some(why) = baseline_failed {
        notes.push(format!("- Baseline not measured: {why}"));
    }
    Ok(Section {
        title: "3. In-kernel cost per packet (`wstap -i lo`)".into(),
        header,
        rows,
        notes,
    })
}

/// Runs the workloads with `wstap -i lo` attached, once per [`setups`]
/// entry, and reads its programs' costs. The inner error says why there is
/// nothing to measure (wstap did not attach, or holds no BPF program): the
/// section is then skipped.
fn measure(wstap: &Path, current: bool) -> Result<std::result::Result<Measured, String>> {
    let work = WorkDir::create("wstap-bench-k")?;
    let ns = Netns::create()?;
    let no_compression = ["--no-compression"];
    let _server = serve(
        &ns,
        WS_PEER,
        "127.0.0.1",
        PORT,
        &no_compression,
        &work.join("server.ready"),
        "the WebSocket server",
    )?;
    let other_server = serve(
        &ns,
        WS_PEER,
        "127.0.0.1",
        OTHER_PORT,
        &no_compression,
        &work.join("other.ready"),
        "the second WebSocket server",
    )?;
    let all = workloads();
    let mut out = Measured {
        listening: String::new(),
        kernel_line: String::new(),
        costs: Vec::new(),
    };
    for (n, setup) in setups(other_server.0.id(), current).into_iter().enumerate() {
        let mut cmd = wstap_tap(&ns, wstap, "lo", PORT);
        cmd.args(&setup.args);
        if current {
            // The no-op program beside wstap's: the yardstick of each row.
            cmd.env(NOOP_ENV, "1");
        }
        let Listening { child, stderr } = match try_spawn_listening(&mut cmd, "wstap -i")? {
            Ok(l) => l,
            Err((st, head)) => {
                return Ok(Err(format!(
                    "`wstap -i lo {}` did not attach ({st}): {}",
                    setup.args.join(" "),
                    head.trim().replace('\n', " ")
                )))
            }
        };
        let pid = child.id();
        let mut tap = Reaper(child);
        let ids = prog_ids(pid)?;
        if ids.is_empty() {
            return Ok(Err("wstap holds no BPF program".into()));
        }
        let stats = BpfStats::enable()?;
        let snapshot =
            || -> Result<Vec<(String, u64, u64)>> { ids.iter().map(|&i| prog_stats(i)).collect() };
        for &w in &setup.workloads {
            let (label, args, delivered) = &all[w];
            let port = if *delivered { PORT } else { OTHER_PORT };
            let before = snapshot()?;
            run_clients(&ns, "127.0.0.1", port, &work, std::slice::from_ref(args))?;
            std::thread::sleep(Duration::from_millis(300));
            let after = snapshot()?;
            let verdict = match (*delivered, n) {
                (false, _) => "rejected by the port filter",
                (true, 2) => "rejected by the owner filter",
                (true, _) => "delivered",
            };
            out.costs.push((
                format!("{}: {label} ({verdict})", setup.label),
                before
                    .into_iter()
                    .zip(after)
                    .filter(|((_, _, n0), (_, _, n1))| n1 > n0)
                    .map(|((program, t0, n0), (_, t1, n1))| Cost {
                        program,
                        ns: t1 - t0,
                        runs: n1 - n0,
                    })
                    .collect(),
            ));
        }
        drop(stats);
        let _ = tap.stop();
        let stderr = stderr.collect();
        if n == 0 {
            out.listening = listening_line(&stderr).to_string();
            out.kernel_line = stderr
                .lines()
                .find(|l| l.starts_with("kernel:"))
                .unwrap_or("")
                .to_string();
        }
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftool_prog_show_is_parsed() {
        let s = "1004: sched_cls  name wstap_egress  tag 12d0dd22552622eb  gpl run_time_ns 123456 run_cnt 789\n\tloaded_at 2026-11-21T23:48:46+0000  uid 0\n";
        assert_eq!(
            parse_prog_show(s),
            ("wstap_egress".to_string(), 123456, 789)
        );
        assert_eq!(
            parse_prog_show("1004: sched_cls  name wstap_egress  tag 12"),
            ("wstap_egress".to_string(), 0, 0)
        );
    }
}
