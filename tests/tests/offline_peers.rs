//! End to end, offline: real WebSocket peers (Python `websockets`) talk over
//! the loopback of a private network namespace while tcpdump records; wstap
//! reads the recording, and every message the peers report sending (both
//! directions, in order per connection) must come out of wstap unchanged.
//! Conversations cover text and binary, 0 bytes to several MiB, 7/16/64-bit
//! lengths, fragmented messages, pings, close, and permessage-deflate with
//! context takeover, without it, and with reduced window bits.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::netns::Netns;
use tests::peers::{peer_script, Reaper};

const PORT: &str = "8765";

/// Waits until `p`'s size has not changed for 600 ms (at most 20 s).
fn wait_until_stable(p: &Path) {
    let t = Instant::now();
    let (mut last, mut same) = (u64::MAX, 0);
    while same < 3 && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
        let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        if len == last {
            same += 1;
        } else {
            (last, same) = (len, 0);
        }
    }
}

/// Records the namespace's loopback while `conversations` run; returns the
/// capture file and the client's log.
fn record(ns: &Netns, dir: &Path, py: &Path, conversations: &[&str]) -> (PathBuf, Value) {
    let cap = dir.join("capture.pcap");
    let mut tcpdump = ns
        .command("tcpdump")
        .args(["-i", "lo", "-n", "-s", "0", "-U", "-B", "131072", "-w"])
        .arg(&cap)
        .args(["tcp", "port", PORT])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("tcpdump");
    // -B: a 128 MiB kernel buffer, or 64 KiB loopback packets get dropped.
    // tcpdump says "listening on lo" once the capture is armed.
    let mut err = BufReader::new(tcpdump.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("listening") {
        line.clear();
    }
    let tcpdump = Reaper(tcpdump);

    let server = common::start_ws_server(ns, py, "127.0.0.1", PORT, dir);

    let log = dir.join("client.json");
    let mut client = ns.command(py);
    client
        .arg(peer_script())
        .args(["client", "--host", "127.0.0.1", "--port", PORT, "--log"])
        .arg(&log);
    for c in conversations {
        client.args(["--conversation", c]);
    }
    let st = client.status().expect("client");
    assert!(st.success(), "ws_peer client failed: {st}");
    // tcpdump stops at SIGTERM without draining its ring, so wait until it
    // has written everything: the file stops growing.
    wait_until_stable(&cap);
    drop(server);
    drop(tcpdump);
    let log: Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
    (cap, log)
}

#[test]
fn peers_conversations_decode_exactly() {
    let name = "peers_conversations_decode_exactly";
    if !tests::require_root(name) || !tests::require_tool(name, "tcpdump") {
        return;
    }
    let Some(py) = tests::python_with_websockets() else {
        if std::env::var_os("CI").is_some() {
            panic!("{name}: python3-websockets missing");
        }
        tests::skip(name, "no python3 with websockets. Run `cargo xtask setup`");
        return;
    };
    let dir = std::env::temp_dir().join(format!("wstap-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ns = Netns::new("op").expect("netns");
    let (cap, log) = record(
        &ns,
        &dir,
        &py,
        &["plain", "deflate", "deflate-nct", "deflate-bits", "large"],
    );

    let run = common::wstap_json(&cap, &[]);
    let events = &run.events;
    eprintln!("{}", run.stderr);
    for conv in log["conversations"].as_array().unwrap() {
        let cname = conv["name"].as_str().unwrap();
        let port = conv["local_port"].as_u64().unwrap() as u16;
        let of_conn: Vec<&Value> = events
            .iter()
            .filter(|e| common::port_of(&e["src"]) == port || common::port_of(&e["dst"]) == port)
            .collect();
        assert!(
            !of_conn.is_empty(),
            "{cname}: no events for client port {port}"
        );
        let opens: Vec<_> = of_conn.iter().filter(|e| e["event"] == "ws_open").collect();
        assert_eq!(opens.len(), 1, "{cname}: one ws_open");
        let deflate = !conv["extensions"].as_array().unwrap().is_empty();
        assert_eq!(
            opens[0]["deflate"].is_object(),
            deflate,
            "{cname}: deflate negotiated"
        );
        common::check_conversation(events, conv, common::Seen::Both);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
