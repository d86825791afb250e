//! End to end, live: real WebSocket peers (Python `websockets`, see
//! `tests/peers/ws_peer.py`) talk across a veth pair (or a namespace's
//! loopback) while `wstap -i IFACE --format json` decodes from the kernel
//! tap. Every message a client logs as sent or received must come out of
//! wstap unchanged, in order, per connection (matched by the client's port).
//!
//! - TC on the server's veth sees both directions; several clients run at
//!   once; `-w` writes a pcapng that must decode the same with `wstap -r`
//!   and with tshark; `--workers 3` shards the same traffic across threads.
//! - XDP sees only ingress, so on a namespace's loopback (where every packet
//!   is received once) it sees both directions; on the server's veth it sees
//!   only the client's half.
//! - A tiny ring forces kernel losses: they must be counted, show up as
//!   gaps, and no decoded message may differ from one that was sent.
//!
//! Every run stops wstap with SIGINT and checks exit status 0 and summary.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::netns::{Netns, VethPair};
use tests::peers::{peer_script, python_or_skip, Reaper};
use tests::tap::{parse_summary, Summary, Wstap, WstapOutput};

const PORT: &str = "8765";

use common::temp_dir;

/// Starts the echo server in `ns` on `host` and waits until it listens.
fn start_server(ns: &Netns, py: &Path, host: &str, dir: &Path) -> Reaper {
    common::start_ws_server(ns, py, host, PORT, dir)
}

/// Runs one client process per entry of `clients` at the same time (each
/// entry: its `ws_peer.py client` arguments after `--log`); returns every
/// logged conversation of all of them.
fn run_clients(ns: &Netns, py: &Path, host: &str, dir: &Path, clients: &[&[&str]]) -> Vec<Value> {
    let mut running = Vec::new();
    for (i, args) in clients.iter().enumerate() {
        let log = dir.join(format!("client{i}.json"));
        let child = ns
            .command(py)
            .arg(peer_script())
            .args(["client", "--host", host, "--port", PORT, "--log"])
            .arg(&log)
            .args(*args)
            .spawn()
            .expect("client");
        running.push((child, log));
    }
    let mut convs = Vec::new();
    for (mut child, log) in running {
        let st = child.wait().expect("client");
        assert!(st.success(), "ws_peer client failed: {st}");
        let v: Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
        convs.extend(v["conversations"].as_array().unwrap().iter().cloned());
    }
    // The last ACKs and FINs are on the wire a moment after the client exits.
    std::thread::sleep(Duration::from_millis(300));
    convs
}

/// Stops wstap with SIGINT; checks exit 0 and the summary; returns the
/// kernel summary, the JSON events and stderr.
fn stop(w: Wstap) -> (Summary, Vec<Value>, String) {
    let out: WstapOutput = w.stop().unwrap();
    assert!(
        out.status.success(),
        "wstap failed ({}): {}",
        out.status,
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let sum = parse_summary(&out.stderr).unwrap();
    let events: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect();
    let msgs = common::named(&events, "ws_message").len();
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("WebSocket handshakes"))
        .unwrap_or_else(|| panic!("no decode summary: {}", out.stderr));
    assert!(
        line.contains(&format!(" {msgs} messages")),
        "summary counts {msgs} messages: {line}"
    );
    assert!(out.stderr.contains(" gaps ("), "{}", out.stderr);
    (sum, events, out.stderr)
}

/// Reading the `-w` file back must give exactly the live events (the file
/// keeps nanosecond timestamps), and tshark must see the same messages.
fn check_pcapng(file: &Path, live: &[Value]) {
    let run = common::wstap_json(file, &[]);
    eprintln!("wstap -r {}:\n{}", file.display(), run.stderr);
    assert_eq!(
        run.events.len(),
        live.len(),
        "same number of events from -r"
    );
    for (i, (r, l)) in run.events.iter().zip(live).enumerate() {
        // A file knows no processes: live events carry their owners too.
        let mut l = l.clone();
        for f in [
            "src_pid",
            "src_comm",
            "src_netns",
            "src_cgroup",
            "dst_pid",
            "dst_comm",
            "dst_netns",
            "dst_cgroup",
        ] {
            l.as_object_mut().unwrap().remove(f);
        }
        assert_eq!(
            r, &l,
            "event #{i} differs between live and -r of the pcapng"
        );
    }
    if tests::require_tool("live pcapng vs tshark", "tshark") {
        let n = tests::tshark::compare(live, file, &[]);
        eprintln!("tshark: same messages; {n} payloads compared");
    }
}

/// The clients of the TC tests: six connections from three processes at
/// once, every conversation kind.
fn tc_clients(v: &VethPair, py: &Path, dir: &Path) -> Vec<Value> {
    let c = |n: &'static str| ["--conversation", n];
    let convs = run_clients(
        &v.a,
        py,
        VethPair::B4,
        dir,
        &[
            &[c("plain"), c("deflate"), c("large")].concat(),
            &[c("deflate-nct"), c("deflate-bits")].concat(),
            &c("large"),
        ],
    );
    assert_eq!(convs.len(), 6);
    convs
}

#[test]
fn live_tc_concurrent_conversations_and_pcapng() {
    let name = "live_tc_concurrent_conversations_and_pcapng";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = temp_dir("tc");
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(&v.b, &py, VethPair::B4, &dir);
    let pcap = dir.join("live.pcapng");
    let pcap_s = pcap.to_str().unwrap();
    let w = Wstap::start(
        &v.b,
        &[
            "-i", &v.b_if, "--port", PORT, "--format", "json", "-w", pcap_s, "--stats",
        ],
    )
    .unwrap();
    let convs = tc_clients(&v, &py, &dir);
    // Past the first --stats tick, which then has seen the traffic.
    std::thread::sleep(Duration::from_millis(1200));
    let (sum, events, stderr) = stop(w);
    eprintln!("{stderr}");
    assert_eq!(sum.records_lost, 0, "{stderr}");
    for conv in &convs {
        common::check_conversation(&events, conv, common::Seen::Both);
    }
    assert!(stderr.contains("packets written to"), "{stderr}");
    check_status_lines(&stderr);
    check_pcapng(&pcap, &events);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--workers 3`: connections sharded across decoder threads decode just
/// the same, and every connection keeps one id of its own.
#[test]
fn live_tc_workers_shard_connections() {
    let name = "live_tc_workers_shard_connections";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = temp_dir("workers");
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(&v.b, &py, VethPair::B4, &dir);
    let w = Wstap::start(
        &v.b,
        &[
            "-i",
            &v.b_if,
            "--port",
            PORT,
            "--format",
            "json",
            "--workers",
            "3",
        ],
    )
    .unwrap();
    let convs = tc_clients(&v, &py, &dir);
    let (sum, events, stderr) = stop(w);
    eprintln!("{stderr}");
    assert_eq!(sum.records_lost, 0, "{stderr}");
    let mut ids = HashSet::new();
    for conv in &convs {
        common::check_conversation(&events, conv, common::Seen::Both);
        let port = conv["local_port"].as_u64().unwrap() as u16;
        let of_conn: HashSet<u64> = events
            .iter()
            .filter(|e| common::port_of(&e["src"]) == port || common::port_of(&e["dst"]) == port)
            .map(|e| e["conn"].as_u64().unwrap())
            .collect();
        assert_eq!(of_conn.len(), 1, "one conn id for port {port}");
        assert!(
            ids.insert(*of_conn.iter().next().unwrap()),
            "conn ids unique"
        );
    }
    assert!(
        stderr.contains(" 6 connections, 6 WebSocket handshakes"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_xdp_loopback_both_directions() {
    let name = "live_xdp_loopback_both_directions";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = temp_dir("xdplo");
    let ns = Netns::new("xl").expect("netns");
    let _server = start_server(&ns, &py, "127.0.0.1", &dir);
    let w = Wstap::start(
        &ns,
        &[
            "-i", "lo", "--attach", "xdp", "--port", PORT, "--format", "json",
        ],
    )
    .unwrap();
    let args = ["plain", "deflate", "deflate-bits", "large"]
        .iter()
        .flat_map(|n| ["--conversation", n])
        .collect::<Vec<_>>();
    let convs = run_clients(
        &ns,
        &py,
        "127.0.0.1",
        &dir,
        &[&args, &["--conversation", "deflate-nct"]],
    );
    let (sum, events, stderr) = stop(w);
    eprintln!("{stderr}");
    assert_eq!(sum.records_lost, 0, "{stderr}");
    for conv in &convs {
        common::check_conversation(&events, conv, common::Seen::Both);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// XDP on the server's veth sees only what the client sends (ingress): the
/// 101 reply is never seen, so the decoder must take the client's masked
/// frames after its upgrade request on their own (one-sided decoding), the
/// compressed ones included.
#[test]
fn live_xdp_server_veth_client_messages() {
    let name = "live_xdp_server_veth_client_messages";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = temp_dir("xdpveth");
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(&v.b, &py, VethPair::B4, &dir);
    let w = Wstap::start(
        &v.b,
        &[
            "-i", &v.b_if, "--attach", "xdp", "--port", PORT, "--format", "json",
        ],
    )
    .unwrap();
    let convs = run_clients(
        &v.a,
        &py,
        VethPair::B4,
        &dir,
        &[&["--conversation", "plain", "--conversation", "deflate"]],
    );
    let (_, events, _) = stop(w);
    for conv in &convs {
        common::check_conversation(&events, conv, common::Seen::ClientToServer);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tiny ring under bulk traffic: the kernel loses records. The summary
/// must count them, the decoder must report gaps, and every message it
/// still decodes must be one that was really sent.
#[test]
fn live_tiny_ring_losses_are_gaps_not_wrong_messages() {
    let name = "live_tiny_ring_losses_are_gaps_not_wrong_messages";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = temp_dir("tiny");
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(&v.b, &py, VethPair::B4, &dir);
    let w = Wstap::start(
        &v.b,
        &[
            "-i",
            &v.b_if,
            "--port",
            PORT,
            "--format",
            "json",
            "--ring-size",
            "8192",
        ],
    )
    .unwrap();
    let size = (24 << 20).to_string();
    let convs = run_clients(
        &v.a,
        &py,
        VethPair::B4,
        &dir,
        &[
            &["--conversation", "bulk", "--size", &size],
            &["--conversation", "small", "--count", "4000"],
        ],
    );
    let (sum, events, stderr) = stop(w);
    eprintln!("{stderr}");
    assert!(sum.records_lost > 0, "a tiny ring loses records: {stderr}");
    let gaps = common::named(&events, "gap");
    assert!(!gaps.is_empty(), "losses show as gap events");
    assert!(
        !stderr.contains(" 0 gaps ("),
        "summary counts gaps: {stderr}"
    );
    // Client and server send the same messages (echo): one set of payloads.
    let sent: HashSet<Vec<u8>> = convs
        .iter()
        .flat_map(|c| c["sent"].as_array().unwrap().iter().map(common::logged))
        .collect();
    let msgs = common::named(&events, "ws_message");
    let wrong: Vec<&Value> = msgs
        .iter()
        .copied()
        .filter(|m| !sent.contains(&common::payload(m)))
        .collect();
    for m in wrong.iter().take(3) {
        let mut m = (*m).clone();
        if let Some(o) = m.as_object_mut() {
            for k in ["data", "text", "data_b64"] {
                if let Some(Value::String(v)) = o.get_mut(k) {
                    v.truncate(64);
                }
            }
        }
        eprintln!("never sent: {m}");
    }
    if let Some(first) = wrong.first() {
        // What led to it: the events of its connection just before.
        let at = events.iter().position(|e| std::ptr::eq(e, *first)).unwrap();
        let before: Vec<String> = events[..at]
            .iter()
            .filter(|e| e["conn"] == first["conn"] && e["event"] != "ws_message")
            .rev()
            .take(8)
            .map(|e| e.to_string())
            .collect();
        eprintln!("events before it (latest first): {before:#?}");
    }
    let wrong = wrong.len();
    let total: usize = convs
        .iter()
        .map(|c| 2 * c["sent"].as_array().unwrap().len())
        .sum();
    eprintln!(
        "{} of {total} messages decoded, {} gaps, {} records lost in kernel",
        msgs.len(),
        gaps.len(),
        sum.records_lost
    );
    assert_eq!(wrong, 0, "decoded messages that were never sent");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--stats` printed at least one well-formed status line, and one of them
/// saw messages (the run lasts several seconds).
fn check_status_lines(stderr: &str) {
    let status: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" segments/s, "))
        .collect();
    assert!(!status.is_empty(), "no --stats line: {stderr}");
    for l in &status {
        let ok = l.starts_with("wstap: ")
            && l.contains(" MB/s, ")
            && l.contains(" messages/s, ")
            && l.contains(" records lost in kernel, ")
            && l.contains(" flows open (");
        assert!(ok, "status line: {l}");
    }
    assert!(
        status.iter().any(|l| !l.contains(" 0 messages/s")),
        "a status line with messages: {status:?}"
    );
}

/// `-c N` stops by itself after exactly N messages, exit 0, with the
/// summary; the ring is drained and counted all the same.
#[test]
fn live_count_stops_after_n_messages() {
    let name = "live_count_stops_after_n_messages";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = temp_dir("count");
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(&v.b, &py, VethPair::B4, &dir);
    let w = Wstap::start(
        &v.b,
        &["-i", &v.b_if, "--port", PORT, "--format", "json", "-c", "7"],
    )
    .unwrap();
    run_clients(
        &v.a,
        &py,
        VethPair::B4,
        &dir,
        &[&["--conversation", "plain"]],
    );
    // Signal 0 only checks the process: this waits for wstap's own exit.
    let out = w.signal_and_wait(0).unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    let events: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(common::named(&events, "ws_message").len(), 7);
    assert_eq!(events.last().unwrap()["event"], "ws_message");
    let sum = parse_summary(&out.stderr).unwrap();
    assert_eq!(sum.segments, sum.records, "every delivered record counted");
    // The summary counts what was decoded: the 7 printed, plus any more
    // that the segment holding the 7th one completed.
    let decoded: u64 = out
        .stderr
        .lines()
        .filter(|l| l.contains(" messages ("))
        .find_map(|l| {
            l.split(" messages (")
                .next()?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no message count: {}", out.stderr));
    assert!((7..10).contains(&decoded), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reader that goes away (`wstap ... | head -n 2`) ends wstap quietly
/// with status 0 while traffic goes on.
#[test]
fn live_closed_stdout_ends_quietly() {
    let name = "live_closed_stdout_ends_quietly";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = temp_dir("pipe");
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(&v.b, &py, VethPair::B4, &dir);
    let script = format!(
        "set -o pipefail; {} -i {} --port {PORT} --format json 2>{} | head -n 2 >/dev/null",
        tests::wstap_bin().display(),
        v.b_if,
        dir.join("stderr").display()
    );
    let mut sh = v.b.command("bash").args(["-c", &script]).spawn().unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(dir.join("stderr"))
        .unwrap_or_default()
        .contains("listening on")
    {
        assert!(t.elapsed() < Duration::from_secs(30), "wstap did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    run_clients(
        &v.a,
        &py,
        VethPair::B4,
        &dir,
        &[&["--conversation", "plain", "--conversation", "deflate"]],
    );
    let st = sh.wait().unwrap();
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap();
    assert!(st.success(), "wstap | head: {st}: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
