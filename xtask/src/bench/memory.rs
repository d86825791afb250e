//! Section 4, memory: wstap's RSS with 10,000 open WebSocket connections,
//! half of them with permessage-deflate (`tests/peers/many_conns.py`),
//! idle and after each sent one message that came back.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{
    add_remark, fmt_count, mib, num_before, peer_script, problems, serve, spawn_listening, strings,
    summary_counts, wait_for_file, wstap_tap, Listening, Netns, Reaper, Section, WorkDir, PY,
};

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
        header: strings(&[
            "run",
            "connections open",
            "RSS MiB before",
            "RSS MiB idle",
            "RSS MiB after messages",
            "peak RSS MiB (VmHWM)",
            "messages decoded / on the wire",
            "remark",
        ]),
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
    const MANY_CONNS: &str = "many_conns.py";
    let work = WorkDir::create("wstap-bench-mem")?;
    let ns = Netns::named(&format!("wsbench-m{}", std::process::id()))?;
    let Listening { child, stderr } =
        spawn_listening(wstap_tap(&ns, wstap, "lo", PORT).args(extra), "wstap -i lo")?;
    let pid = child.id();
    let mut wstap_child = Reaper(child);
    let server = serve(
        &ns,
        MANY_CONNS,
        "127.0.0.1",
        PORT,
        &[],
        &work.join("server.ready"),
        "the many-connections server",
    )?;
    let (start_kib, _) = vm(pid);
    let (idle, go, sent_marker, log) = (
        work.join("idle"),
        work.join("go"),
        work.join("sent"),
        work.join("client.json"),
    );
    let mut client = Reaper(
        ns.exec(PY)
            .arg(peer_script(MANY_CONNS))
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
    let _ = wstap_child.stop();
    let stderr = stderr.collect();
    drop(server);
    drop(ns);
    let summary = std::fs::read_to_string(&log).context("reading the client's summary")?;
    let get = |k: &str| json_num(&summary, k).unwrap_or(0);
    let (decoded, _) = summary_counts(&stderr);
    let mut remark = problems(&stderr);
    if let Some(n) = num_before(&stderr, " records lost in kernel").filter(|&n| n > 0) {
        add_remark(&mut remark, &format!("{n} records lost in kernel"));
    }
    if get("failed") > 0 {
        add_remark(
            &mut remark,
            &format!("{} connections failed to open", get("failed")),
        );
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
