//! Helpers shared by the offline tests: run `wstap -r FILE --format json` and
//! read its events back.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use base64::Engine;
use serde_json::Value;

/// The output of one `wstap -r` run.
pub struct Run {
    pub events: Vec<Value>,
    pub stderr: String,
}

/// Runs wstap on `file` with `--format json` plus `extra` arguments; panics
/// (with stderr) unless it exits 0.
pub fn wstap_json(file: &Path, extra: &[&str]) -> Run {
    let out = Command::new(tests::wstap_bin())
        .arg("-r")
        .arg(file)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .expect("running wstap");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "wstap -r {} failed ({}): {stderr}",
        file.display(),
        out.status
    );
    assert!(!stderr.contains("panicked"), "wstap panicked: {stderr}");
    let events = String::from_utf8(out.stdout)
        .expect("wstap output is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    Run { events, stderr }
}

/// The payload bytes of an event (`text` or `data_b64`).
pub fn payload(ev: &Value) -> Vec<u8> {
    if let Some(t) = ev["text"].as_str() {
        return t.as_bytes().to_vec();
    }
    if let Some(b) = ev["data_b64"].as_str() {
        return base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("base64");
    }
    Vec::new()
}

/// Events named `name`.
pub fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// Port of an "ip:port" / "[ip]:port" string.
pub fn port_of(addr: &Value) -> u16 {
    addr.as_str()
        .and_then(|s| s.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}
