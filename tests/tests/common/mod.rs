//! Helpers shared by the integration tests: run `wstap -r FILE --format
//! json` and read its events back, compare with what peers logged, and start
//! the peers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

/// A fresh scratch directory for `test` (this process's own).
pub fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wstap-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits (at most 20 s) until `p` exists: a peer writes it once it is up.
pub fn wait_for_file(p: &Path, what: &str) {
    let t = Instant::now();
    while !p.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the `ws_peer.py` echo server in `ns` on `host:port` and waits
/// until it listens.
pub fn start_ws_server(
    ns: &tests::netns::Netns,
    py: &Path,
    host: &str,
    port: &str,
    dir: &Path,
) -> tests::peers::Reaper {
    let ready = dir.join("server-ready");
    let server = tests::peers::Reaper(
        ns.command(py)
            .arg(tests::peers::peer_script())
            .args(["server", "--host", host, "--port", port, "--ready"])
            .arg(&ready)
            .spawn()
            .expect("ws_peer server"),
    );
    wait_for_file(&ready, "ws_peer server");
    server
}

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

/// Bytes of a logged message.
pub fn logged(m: &Value) -> Vec<u8> {
    if let Some(t) = m["text"].as_str() {
        return t.as_bytes().to_vec();
    }
    base64::engine::general_purpose::STANDARD
        .decode(m["b64"].as_str().unwrap())
        .unwrap()
}

/// Which directions the capture saw.
#[derive(Clone, Copy, PartialEq)]
pub enum Seen {
    Both,
    ClientToServer,
}

/// Checks one logged conversation against wstap's events: every message,
/// in order, with its type, length, fragments, compression and payload;
/// client pings; the client's close; and no gap or violation.
pub fn check_conversation(events: &[Value], conv: &Value, seen: Seen) {
    let cname = conv["name"].as_str().unwrap();
    let port = conv["local_port"].as_u64().unwrap() as u16;
    let of_conn: Vec<&Value> = events
        .iter()
        .filter(|e| port_of(&e["src"]) == port || port_of(&e["dst"]) == port)
        .collect();
    assert!(!of_conn.is_empty(), "{cname}: no events for port {port}");
    let deflate = !conv["extensions"].as_array().unwrap().is_empty();
    let mut dirs = vec![("client_to_server", "sent", true)];
    if seen == Seen::Both {
        dirs.push(("server_to_client", "received", false));
    }
    for (dir, list, from_client) in dirs {
        let got: Vec<&&Value> = of_conn
            .iter()
            .filter(|e| e["event"] == "ws_message")
            .filter(|e| (port_of(&e["src"]) == port) == from_client)
            .collect();
        let want = conv[list].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{cname} {dir}: message count");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let at = format!("{cname} {dir} #{i}");
            assert_eq!(g["dir"], dir, "{at}");
            assert_eq!(g["opcode"], w["type"], "{at}: opcode");
            assert_eq!(g["len"], w["len"], "{at}: len");
            assert_eq!(g["truncated"], false, "{at}");
            assert_eq!(g["compressed"], deflate, "{at}: compressed");
            if let Some(f) = w["fragments"].as_u64() {
                assert_eq!(g["fragments"].as_u64(), Some(f), "{at}: fragments");
            }
            assert!(payload(g) == logged(w), "{at}: payload differs");
        }
    }
    let pings: Vec<String> = of_conn
        .iter()
        .filter(|e| e["event"] == "ws_ping" && port_of(&e["src"]) == port)
        .map(|e| base64::engine::general_purpose::STANDARD.encode(payload(e)))
        .collect();
    let want: Vec<&str> = conv["pings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(pings, want, "{cname}: pings");
    let close = of_conn
        .iter()
        .find(|e| e["event"] == "ws_close" && port_of(&e["src"]) == port)
        .unwrap_or_else(|| panic!("{cname}: no client close"));
    assert_eq!(
        (&close["code"], &close["reason"]),
        (&1000.into(), &"bye".into())
    );
    for bad in [
        "gap",
        "violation",
        "ws_undecompressable",
        "overlap_mismatch",
    ] {
        let hit = of_conn.iter().find(|e| e["event"] == bad);
        assert!(hit.is_none(), "{cname}: unexpected {bad}: {hit:?}");
    }
}

/// tcpdump on `ns`'s loopback into `file`, capturing when this returns
/// (immediate mode and a 64 MiB buffer: otherwise the last second of
/// packets may still wait in its kernel ring when it is stopped, or a burst
/// may be dropped under load).
pub fn start_tcpdump(ns: &tests::netns::Netns, file: &Path) -> tests::peers::Reaper {
    use std::io::BufRead as _;
    let mut td = ns
        .command("tcpdump")
        .args(["-i", "lo", "--immediate-mode", "-B", "65536", "-U", "-w"])
        .arg(file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let mut line = String::new();
    std::io::BufReader::new(td.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on"), "tcpdump: {line}");
    tests::peers::Reaper(td)
}

/// Stops tcpdump once the last packets reached it, and waits for it.
pub fn stop_tcpdump(td: tests::peers::Reaper) {
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling a child we spawned and have not reaped yet.
    unsafe { libc::kill(td.0.id() as i32, libc::SIGINT) };
    drop(td);
}

/// Runs `ws_peer.py client` in `ns` against `server`:`port` with the plain
/// and deflate conversations (and `more` arguments, or environment, set by
/// `adjust`), logging to `log`; returns its logged conversations.
pub fn ws_client(
    ns: &tests::netns::Netns,
    py: &Path,
    server: &str,
    port: &str,
    log: &Path,
    adjust: impl FnOnce(&mut Command),
) -> Vec<Value> {
    let mut cmd = ns.command(py);
    cmd.arg(tests::peers::peer_script())
        .args(["client", "--host", server, "--port", port, "--log"])
        .arg(log)
        .args(["--conversation", "plain", "--conversation", "deflate"]);
    adjust(&mut cmd);
    let st = cmd.status().unwrap();
    assert!(st.success(), "{}: client failed", log.display());
    let v: Value = serde_json::from_slice(&std::fs::read(log).unwrap()).unwrap();
    v["conversations"].as_array().unwrap().clone()
}
