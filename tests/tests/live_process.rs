//! End to end, live: which process sent each message. A WebSocket server
//! and several client processes (Python `websockets`) talk across a veth
//! pair while `wstap -i IFACE --format json` decodes; every message must
//! carry the pids the test itself started, on the right ends, and their
//! comm. Also attributed: a connection opened before wstap started (found
//! through /proc) and a client that connects, sends and exits within a few
//! milliseconds (recorded by the kernel hooks at connect time).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;
use tests::netns::VethPair;
use tests::peers::{peer_script, python_or_skip};
use tests::tap::Wstap;

const PORT: &str = "8766";

fn owner_script() -> std::path::PathBuf {
    tests::workspace_root().join("tests/peers/owner_client.py")
}

/// The kernel comm of a process started from `py`: its file name, cut to
/// 15 bytes.
fn comm_of(py: &Path) -> String {
    let name = py.file_name().unwrap().to_str().unwrap();
    name[..name.len().min(15)].to_string()
}

fn wait_ok(mut c: Child, what: &str) {
    let st = c.wait().expect(what);
    assert!(st.success(), "{what} failed: {st}");
}

#[test]
fn live_messages_carry_the_processes_that_sent_them() {
    let name = "live_messages_carry_the_processes_that_sent_them";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = common::temp_dir("owners");
    let v = VethPair::new().expect("veth pair");
    let server = common::start_ws_server(&v.b, &py, VethPair::B4, PORT, &dir);
    let server_pid = server.0.id();
    let uri = format!("ws://{}:{PORT}/owners", VethPair::B4);

    // Opened before wstap: it waits for `go` to send.
    let (early_ready, go) = (dir.join("early-ready"), dir.join("go"));
    let early =
        v.a.command(&py)
            .arg(owner_script())
            .args(["early", &uri])
            .arg(&early_ready)
            .arg(&go)
            .spawn()
            .expect("early client");
    common::wait_for_file(&early_ready, "early client");
    let early_pid = early.id();
    let early_port: u16 = std::fs::read_to_string(&early_ready)
        .unwrap()
        .parse()
        .unwrap();

    let pcap = dir.join("owners.pcapng");
    let w = Wstap::start(
        &v.b,
        &[
            "-i",
            &v.b_if,
            "--port",
            PORT,
            "--format",
            "json",
            "-w",
            pcap.to_str().unwrap(),
        ],
    )
    .unwrap();
    std::fs::write(&go, "go").unwrap();
    wait_ok(early, "early client");

    // Two ws_peer clients at once, each its own process.
    let mut port_pid: HashMap<u16, u32> = HashMap::new();
    port_pid.insert(early_port, early_pid);
    let mut running = Vec::new();
    for i in 0..2 {
        let log = dir.join(format!("client{i}.json"));
        let child =
            v.a.command(&py)
                .arg(peer_script())
                .args(["client", "--host", VethPair::B4, "--port", PORT, "--log"])
                .arg(&log)
                .args(["--conversation", "plain"])
                .spawn()
                .expect("client");
        running.push((child, log));
    }
    let mut convs = Vec::new();
    for (child, log) in running {
        let pid = child.id();
        wait_ok(child, "ws_peer client");
        let v: Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
        for c in v["conversations"].as_array().unwrap() {
            port_pid.insert(c["local_port"].as_u64().unwrap() as u16, pid);
            convs.push(c.clone());
        }
    }
    // A client that lives a few milliseconds.
    let quick =
        v.a.command(&py)
            .arg(owner_script())
            .args(["quick", &uri])
            .spawn()
            .expect("quick client");
    let quick_pid = quick.id();
    wait_ok(quick, "quick client");
    std::thread::sleep(Duration::from_millis(400));

    let out = w.stop().unwrap();
    eprintln!("{}", out.stderr);
    assert!(out.status.success(), "wstap failed: {}", out.stderr);
    let events: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for c in &convs {
        common::check_conversation(&events, c, common::Seen::Both);
    }

    let comm = comm_of(&py);
    // The clients live in another network namespace than wstap (a
    // container's case): their ends name it; the server shares wstap's.
    let client_netns = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/run/netns/{}", v.a.name))
            .expect("the clients' netns")
            .ino()
    };
    let msgs: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "ws_message")
        .collect();
    let mut seen_quick = false;
    let mut seen_early = false;
    let mut checked = 0;
    for m in &msgs {
        let c2s = m["dir"] == "client_to_server";
        let (client_end, server_end) = if c2s { ("src", "dst") } else { ("dst", "src") };
        let client_port = common::port_of(&m[client_end]);
        let want_client = match port_pid.get(&client_port) {
            Some(&p) => p,
            None => {
                // The quick client's port is not logged: its one message
                // (and perhaps the echo racing its exit).
                assert_eq!(
                    common::payload(m),
                    b"sent by a process that exits at once",
                    "{m}"
                );
                seen_quick = true;
                quick_pid
            }
        };
        if want_client == early_pid {
            seen_early = true;
        }
        assert_eq!(
            m[format!("{client_end}_pid")],
            want_client,
            "client end: {m}"
        );
        assert_eq!(
            m[format!("{client_end}_comm")],
            comm.as_str(),
            "client comm: {m}"
        );
        assert_eq!(
            m[format!("{server_end}_pid")],
            server_pid,
            "server end: {m}"
        );
        assert_eq!(
            m[format!("{server_end}_comm")],
            comm.as_str(),
            "server comm: {m}"
        );
        if want_client != quick_pid {
            // The quick client may be gone before /proc is read.
            assert_eq!(m[format!("{client_end}_netns")], client_netns, "{m}");
            assert!(m[format!("{client_end}_cgroup")].is_string(), "{m}");
        }
        assert!(m.get(format!("{server_end}_netns")).is_none(), "{m}");
        checked += 1;
    }
    assert!(seen_early, "the connection opened before wstap was decoded");
    assert!(seen_quick, "the quick client's message was decoded");
    assert!(checked > convs.len() * 2, "{checked} messages checked");
    assert!(
        out.stderr
            .contains("connection ends attributed to processes, 0 owners evicted"),
        "{}",
        out.stderr
    );
    if tests::require_tool(name, "tshark") {
        check_pcapng_comments(&pcap, &port_pid, server_pid, &comm);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every packet of a logged client's connection that carries payload names
/// the client's process and the server's in its pcapng comment, as
/// Wireshark reads it (`frame.comment`); the first (the request, sent
/// before the server read anything) too, by the server's listener.
fn check_pcapng_comments(file: &Path, port_pid: &HashMap<u16, u32>, server_pid: u32, comm: &str) {
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.len",
            "-e",
            "frame.comment",
        ])
        .output()
        .expect("tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut payload_packets: HashMap<u16, usize> = HashMap::new();
    let mut checked = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        let (sport, dport): (u16, u16) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let len: usize = f[2].parse().unwrap_or(0);
        let client_port = if sport.to_string() == PORT {
            dport
        } else {
            sport
        };
        let Some(&pid) = port_pid.get(&client_port) else {
            continue;
        };
        if len == 0 {
            continue;
        }
        let n = payload_packets.entry(client_port).or_default();
        *n += 1;
        let comment = f.get(3).copied().unwrap_or("");
        assert!(
            comment.contains(&format!("{comm}[{pid}]")),
            "packet {line}: the client's process in the comment"
        );
        assert!(
            comment.contains(&format!("{comm}[{server_pid}]")),
            "packet {line} (#{n} of its connection): the server's process in the comment"
        );
        checked += 1;
    }
    assert!(checked > 10, "{checked} packet comments checked");
    eprintln!("pcapng: {checked} packet comments name their processes");
}
