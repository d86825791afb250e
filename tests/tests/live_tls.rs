//! End to end, live: wss:// in the clear through the TLS hooks (`--tls`).
//! Python `websockets` server and client (asyncio, memory BIOs at both
//! ends) talk TLS across a veth pair, with and without permessage-deflate,
//! three connections at once on one event loop, messages up to 4 MiB. The
//! JSON output must hold exactly the messages the client logged, per
//! connection and direction, all `"via": "tls"`, none on a wrong
//! connection, and the ciphertext seen by TC must not be decoded as
//! WebSocket.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tests::netns::VethPair;
use tests::peers::python_or_skip;
use tests::tap::Wstap;

fn wss_peer() -> std::path::PathBuf {
    tests::workspace_root().join("tests/peers/wss_peer.py")
}

/// (client port, direction) → the messages' (length, text).
type PerConn = HashMap<(u16, String), Vec<(u64, Option<String>)>>;

fn run(deflate: bool) {
    let name = if deflate {
        "wss_with_deflate_decodes_from_the_hooked_library"
    } else {
        "wss_decodes_from_the_hooked_library"
    };
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let port = if deflate { "8453" } else { "8452" };
    let dir = common::temp_dir(name);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=wstap-test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl req");
    assert!(st.success(), "openssl req failed");
    let v = VethPair::new().expect("veth pair");
    let ready = dir.join("ready");
    let mut server =
        v.b.command(&py)
            .arg(wss_peer())
            .arg("server")
            .arg(&cert)
            .arg(&key)
            .args([VethPair::B4, port, if deflate { "1" } else { "0" }])
            .arg(&ready)
            .spawn()
            .expect("wss server");
    common::wait_for_file(&ready, "wss server");
    let w = Wstap::start(
        &v.b,
        &["-i", &v.b_if, "--port", port, "--tls", "--format", "json"],
    )
    .expect("wstap");
    let log = dir.join("client.jsonl");
    let st =
        v.a.command(&py)
            .arg(wss_peer())
            .args(["client", VethPair::B4, port, "3"])
            .arg(&log)
            .status()
            .expect("wss client");
    assert!(st.success(), "wss client failed");
    std::thread::sleep(Duration::from_millis(500));
    let out = w.stop().expect("wstap output");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.stderr.contains("hooked OpenSSL in"),
        "no OpenSSL hooked:\n{}",
        out.stderr
    );

    let mut want = PerConn::new();
    for l in std::fs::read_to_string(&log).unwrap().lines() {
        let e: Value = serde_json::from_str(l).unwrap();
        want.entry((
            e["port"].as_u64().unwrap() as u16,
            e["dir"].as_str().unwrap().into(),
        ))
        .or_default()
        .push((
            e["len"].as_u64().unwrap(),
            e["text"].as_str().map(String::from),
        ));
    }
    assert_eq!(want.len(), 6, "client log: {want:?}");

    let mut got = PerConn::new();
    let mut opens = 0;
    for l in &out.lines {
        let e: Value = serde_json::from_str(l).expect(l);
        let l = l.as_str();
        let ev = e["event"].as_str().unwrap();
        let tls = e["via"] == "tls";
        assert!(
            !matches!(ev, "violation" | "resync" | "gap"),
            "unexpected event: {l}\n{}",
            out.stderr
        );
        if ev == "ws_open" {
            assert!(tls, "ws_open not via tls: {l}");
            assert_eq!(e["deflate"].is_object(), deflate, "{l}");
            opens += 1;
        }
        if ev != "ws_message" {
            continue;
        }
        assert!(tls, "a message decoded from the ciphertext: {l}");
        assert_eq!(e["truncated"], false, "{l}");
        let d = e["dir"].as_str().unwrap().to_string();
        let client = if d == "client_to_server" {
            &e["src"]
        } else {
            &e["dst"]
        };
        let cport: u16 = client
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let text = (e["opcode"] == "text").then(|| e["text"].as_str().unwrap().to_string());
        got.entry((cport, d))
            .or_default()
            .push((e["len"].as_u64().unwrap(), text));
    }
    assert_eq!(opens, 3, "ws_open events:\n{}", out.lines.join("\n"));
    assert_eq!(
        got, want,
        "decoded messages differ from what the peers sent"
    );
}

#[test]
fn wss_decodes_from_the_hooked_library() {
    run(false);
}

#[test]
fn wss_with_deflate_decodes_from_the_hooked_library() {
    run(true);
}
