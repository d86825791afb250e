//! The load generator (`src/bin/wsload.rs`) against wstap, live: the
//! benchmark's "decoded" figures (`cargo xtask bench --only scale`) are
//! only as good as this check. In a private namespace's loopback, wsload's
//! server echoes and its client opens several connections from several
//! source addresses (127.1.0.0/16); `wstap -i lo --format json` taps them.
//! For every connection in the generator's log, the messages wstap decoded
//! each way must have the same count, bytes and SHA-256 digest (length,
//! then payload, message by message, in order) as what the generator sent
//! and received; nothing lost, no gap, no violation.

mod common;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tests::netns::Netns;
use tests::peers::Reaper;
use tests::tap::{parse_summary, Wstap};

const WSLOAD: &str = env!("CARGO_BIN_EXE_wsload");
const PORT: &str = "9107";

/// Count, bytes and digest of a sequence of payloads, as wsload logs them.
#[derive(Default)]
struct Tally {
    messages: u64,
    bytes: u64,
    digest: Sha256,
}

impl Tally {
    fn add(&mut self, payload: &[u8]) {
        self.messages += 1;
        self.bytes += payload.len() as u64;
        self.digest.update((payload.len() as u64).to_le_bytes());
        self.digest.update(payload);
    }

    fn check(self, logged: &Value, what: &str) {
        assert_eq!(
            self.messages,
            logged["messages"].as_u64().unwrap(),
            "{what}: messages"
        );
        assert_eq!(
            self.bytes,
            logged["bytes"].as_u64().unwrap(),
            "{what}: bytes"
        );
        let hex: String = self
            .digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, logged["sha256"].as_str().unwrap(), "{what}: digest");
    }
}

fn start_server(ns: &Netns, dir: &Path) -> Reaper {
    let ready = dir.join("server.ready");
    let child = ns
        .command(WSLOAD)
        .args([
            "server",
            "--listen",
            &format!("127.0.0.1:{PORT}"),
            "--ready",
        ])
        .arg(&ready)
        .spawn()
        .expect("wsload server");
    let server = Reaper(child);
    common::wait_for_file(&ready, "wsload server");
    server
}

/// Runs `wsload client ARGS` in `ns` and returns its log.
fn client(ns: &Netns, dir: &Path, name: &str, args: &[&str]) -> Value {
    let log = dir.join(format!("{name}.json"));
    let st = ns
        .command(WSLOAD)
        .args(["client", "--connect", &format!("127.0.0.1:{PORT}")])
        .args(["--sources", "127.1.0.0/16", "--per-source", "2", "--log"])
        .arg(&log)
        .args(args)
        .status()
        .expect("wsload client");
    assert!(st.success(), "wsload client {name} failed: {st}");
    serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap()
}

#[test]
fn generator_log_matches_wstap_json() {
    if !tests::require_root("generator_log_matches_wstap_json") {
        return;
    }
    let dir = common::temp_dir("load_gen");
    let ns = Netns::new("load").unwrap();
    let _server = start_server(&ns, &dir);
    let wstap = Wstap::start(&ns, &["-i", "lo", "--port", PORT, "--format", "json"]).unwrap();
    // Small text as fast as it goes, small text paced, and bulk binary.
    let logs = [
        client(&ns, &dir, "small", &["--conns", "6", "--messages", "1500"]),
        client(
            &ns,
            &dir,
            "paced",
            &[
                "--conns",
                "3",
                "--duration",
                "1",
                "--rate",
                "3000",
                "--size",
                "1-125",
            ],
        ),
        client(
            &ns,
            &dir,
            "bulk",
            &[
                "--conns",
                "2",
                "--messages",
                "40",
                "--size",
                "60000-70000",
                "--binary",
            ],
        ),
    ];
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = wstap.stop().unwrap();
    assert!(out.status.success(), "wstap failed: {}", out.stderr);
    let sum = parse_summary(&out.stderr).unwrap();
    assert_eq!(
        (sum.records_lost, sum.cut_short, sum.parse_errors),
        (0, 0, 0),
        "kernel losses: {}",
        out.stderr
    );

    let events: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for bad in [
        "gap",
        "violation",
        "ws_undecompressable",
        "overlap_mismatch",
    ] {
        let hit = events.iter().find(|e| e["event"] == bad);
        assert!(hit.is_none(), "unexpected {bad}: {hit:?}");
    }
    // Every decoded message, by (src, dst) in the order wstap printed it.
    let mut by_dir: HashMap<(String, String), Tally> = HashMap::new();
    let mut decoded = 0u64;
    for e in events.iter().filter(|e| e["event"] == "ws_message") {
        assert_eq!(e["truncated"], false, "{e}");
        let key = (
            e["src"].as_str().unwrap().to_string(),
            e["dst"].as_str().unwrap().to_string(),
        );
        by_dir.entry(key).or_default().add(&common::payload(e));
        decoded += 1;
    }
    let mut on_wire = 0u64;
    let mut sources = std::collections::BTreeSet::new();
    for log in &logs {
        assert_eq!(log["failed"], 0, "{log}");
        let conns = log["connections"].as_array().unwrap();
        assert!(conns.len() >= 2, "{log}");
        for c in conns {
            let (cl, sv) = (
                c["client"].as_str().unwrap().to_string(),
                c["server"].as_str().unwrap().to_string(),
            );
            sources.insert(cl.rsplit_once(':').unwrap().0.to_string());
            let sent = by_dir.remove(&(cl.clone(), sv.clone())).unwrap_or_default();
            sent.check(&c["sent"], &format!("{cl} → {sv}"));
            let echoed = by_dir.remove(&(sv.clone(), cl.clone())).unwrap_or_default();
            echoed.check(&c["received"], &format!("{sv} → {cl}"));
            on_wire += c["sent"]["messages"].as_u64().unwrap()
                + c["received"]["messages"].as_u64().unwrap();
        }
    }
    assert!(sources.len() >= 3, "source addresses used: {sources:?}");
    assert!(
        by_dir.is_empty(),
        "messages on connections the generator did not log: {:?}",
        by_dir.keys().collect::<Vec<_>>()
    );
    assert_eq!(decoded, on_wire);
    assert!(on_wire > 20_000, "only {on_wire} messages");
    // The exit summary counts the same messages.
    let said = out
        .stderr
        .lines()
        .find_map(|l| {
            let i = l.find(" messages (")?;
            l[..i].rsplit(' ').next()?.parse::<u64>().ok()
        })
        .unwrap_or_else(|| panic!("no message count in the summary: {}", out.stderr));
    assert_eq!(said, on_wire, "{}", out.stderr);
}
