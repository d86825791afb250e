//! The criterion micro-benchmarks of the decoder
//! (`capture-user/benches/decode.rs`), quick mode: the table keeps each
//! benchmark's median time and throughput.

use std::process::Stdio;

use anyhow::{bail, Context, Result};

use super::{strings, Section};
use crate::cargo;

/// Runs `cargo bench -p capture-user --bench decode -- --quick` and reads
/// its results.
pub fn run() -> Result<Section> {
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
        header: strings(&["benchmark", "time (median)", "throughput (median)"]),
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
