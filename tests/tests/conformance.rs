//! Conformance on public captures (`../shared/corpus`, never copied into the
//! repository): for every capture, `wstap -r FILE --format json` must exit 0
//! without a panic, and its data messages must equal tshark's, message for
//! message, per direction of every connection. Where tshark 4.0 is wrong or
//! gives up, the test says so and asserts the right answer instead. The
//! corpus README's stated facts are asserted too.
//!
//! tshark's view is read from `tshark -r FILE -Y websocket -T json
//! --no-duplicate-keys`: for each frame with FIN set and a data opcode (or a
//! final continuation), the message payload is `websocket.payload.text`
//! (text, inflated and reassembled by tshark) or the next `data.data` of the
//! packet (binary); pings and pongs carry `websocket.payload.ping`/`.pong`.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tests::tshark::ByDir;

fn corpus() -> Option<PathBuf> {
    let d = tests::corpus_dir();
    if d.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("../shared/corpus is missing in CI");
        }
        tests::skip(
            "conformance",
            "../shared/corpus not found beside the project",
        );
    }
    d
}

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn short(by: &ByDir) -> String {
    by.iter()
        .map(|(k, v)| {
            let m: Vec<String> = v
                .iter()
                .map(|(o, p)| format!("{o}:{:?}", String::from_utf8_lossy(&p[..p.len().min(24)])))
                .collect();
            format!("{k}: {} [{}]", v.len(), m.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Captures where tshark 4.0 is known to disagree, and why (asserted below).
fn tshark_is_wrong(name: &str) -> Option<&'static str> {
    match name {
        // Picked up mid-stream: tshark does not know the TCP stream is
        // WebSocket without the handshake, so it decodes nothing.
        "nDPI/websocket.pcap" => Some("no handshake: tshark does not decode mid-stream"),
        _ => None,
    }
}

#[test]
fn corpus_matches_tshark() {
    let Some(dir) = corpus() else { return };
    if !tests::require_tool("corpus_matches_tshark", "tshark") {
        return;
    }
    let mut failures = Vec::new();
    for file in captures(&dir) {
        let name = file
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let run = common::wstap_json(&file, &[]);
        let ours = tests::tshark::wstap_messages(&run.events);
        if let Some(why) = tshark_is_wrong(&name) {
            eprintln!("{name}: not compared with tshark ({why})");
            continue;
        }
        let theirs = tests::tshark::messages(&file, &[]);
        if ours != theirs {
            failures.push(format!(
                "== {name}\n-- wstap:\n{}\n-- tshark:\n{}",
                short(&ours),
                short(&theirs)
            ));
        } else {
            let n: usize = ours.values().map(Vec::len).sum();
            eprintln!("{name}: {n} messages, same as tshark");
        }
    }
    assert!(
        failures.is_empty(),
        "differences from tshark:\n{}",
        failures.join("\n")
    );
}

fn run(dir: &Path, rel: &str) -> Vec<Value> {
    common::wstap_json(&dir.join(rel), &[]).events
}

#[test]
fn corpus_readme_facts() {
    let Some(dir) = corpus() else { return };

    // Compressed messages sharing one deflate context: the last inflates to
    // TOGGLE=5659131662f54334.
    let ev = run(
        &dir,
        "suricata-verify/websocket-compressed/example_websocket.pcap",
    );
    let msgs = common::named(&ev, "ws_message");
    assert_eq!(msgs.len(), 10, "10 compressed server text frames");
    assert!(msgs.iter().all(|m| m["compressed"] == true));
    assert_eq!(msgs.last().unwrap()["text"], "TOGGLE=5659131662f54334");

    // A ping in the 101 reply's segment or in its own: identical output
    // (apart from timestamps and ports).
    let strip = |evs: Vec<Value>| -> Vec<Value> {
        evs.into_iter()
            .map(|mut e| {
                let o = e.as_object_mut().unwrap();
                for k in ["ts", "src", "dst", "conn"] {
                    o.remove(k);
                }
                e
            })
            .collect()
    };
    let a = strip(run(&dir, "zeek/reply-ping-coalesced.pcap"));
    let b = strip(run(&dir, "zeek/reply-ping-separate.pcap"));
    assert!(
        !common::named(&a, "ws_ping").is_empty(),
        "the ping is decoded"
    );
    assert_eq!(a, b, "coalesced and separate replies decode the same");

    // Control frame between fragments: the message is whole.
    let ev = run(&dir, "suricata-verify/websocket-control-frag/input.pcap");
    let msgs = common::named(&ev, "ws_message");
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0]["text"],
        "MALWARE_DOWNLOAD cmd.exe /c powershell -enc AAAA"
    );
    assert_eq!(msgs[0]["fragments"], 2);
    assert_eq!(common::named(&ev, "ws_ping").len(), 1);

    // Server binary message "Hello" + " there!" in two fragments.
    let ev = run(&dir, "zeek/two-binary-fragments.pcap");
    let msgs = common::named(&ev, "ws_message");
    assert!(msgs
        .iter()
        .any(|m| common::payload(m) == b"Hello there!" && m["fragments"] == 2));

    // Close 1009 with its reason.
    let ev = run(&dir, "zeek/message-too-big-status.pcap");
    let closes = common::named(&ev, "ws_close");
    assert!(closes
        .iter()
        .any(|c| c["code"] == 1009 && c["reason"] == "over size limit (4 > 2 bytes)"));
    assert!(closes.iter().any(|c| c["code"] == 1000));

    // A 101 with a wrong Sec-WebSocket-Accept: still decoded, flagged.
    let ev = run(&dir, "zeek/wrong-accept-header.pcap");
    let open = common::named(&ev, "ws_open");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["accept_valid"], false);

    // Server declines permessage-deflate: no deflate parameters.
    let ev = run(&dir, "zeek/broker-websocket.pcap");
    let open = common::named(&ev, "ws_open");
    assert_eq!(open.len(), 1);
    assert!(open[0]["deflate"].is_null());

    // Oversized close frame (258-byte payload): a violation, decoding goes on.
    let ev = run(&dir, "zeek/oversized-close-frame.pcapng");
    assert!(
        !common::named(&ev, "violation").is_empty(),
        "control frame > 125 bytes reported"
    );

    // Linux cooked capture, empty unmasked client ping, a pong.
    let ev = run(&dir, "suricata-verify/websocket-ping/input.pcap");
    let pings = common::named(&ev, "ws_ping");
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0]["len"], 0);
    assert_eq!(common::named(&ev, "ws_pong").len(), 1);

    // Masked client text frames (3) and server text frames (14).
    let ev = run(&dir, "suricata-verify/websocket/basic_websockets.pcap");
    let msgs = common::named(&ev, "ws_message");
    let c2s = msgs
        .iter()
        .filter(|m| m["dir"] == "client_to_server")
        .count();
    let s2c = msgs
        .iter()
        .filter(|m| m["dir"] == "server_to_client")
        .count();
    assert_eq!((c2s, s2c), (3, 14));

    // The same chat with and without the handshake: the mid-stream copy
    // (nDPI) decodes the messages it holds, identical to Arkime's.
    let with = run(&dir, "arkime/websocket.pcap");
    let without = run(&dir, "nDPI/websocket.pcap");
    let texts = |ev: &[Value]| -> Vec<Vec<u8>> {
        common::named(ev, "ws_message")
            .iter()
            .map(|m| common::payload(m))
            .collect()
    };
    let (tw, tn) = (texts(&with), texts(&without));
    assert!(!tn.is_empty(), "mid-stream messages decoded");
    assert!(
        tn.iter().all(|m| tw.contains(m)),
        "mid-stream messages {tn:?} all in {tw:?}"
    );

    // Two connections, client pings (wstunnel-ssh).
    let ev = run(&dir, "zeek/wstunnel-ssh.pcap");
    let conns: std::collections::BTreeSet<u64> =
        ev.iter().filter_map(|e| e["conn"].as_u64()).collect();
    assert_eq!(conns.len(), 2);
    assert!(!common::named(&ev, "ws_ping").is_empty());

    // Unmasked client frames (wstunnel-http) are decoded and reported.
    let ev = run(&dir, "zeek/wstunnel-http.pcap");
    assert!(!common::named(&ev, "ws_message").is_empty());
    assert!(
        !common::named(&ev, "violation").is_empty(),
        "unmasked client frames are a violation"
    );

    // SLL link type, pcapng, binary frames up to 2048 bytes.
    let ev = run(&dir, "nDPI/tls_heur__vmess-websocket.pcapng");
    let msgs = common::named(&ev, "ws_message");
    assert!(!msgs.is_empty());
    assert!(msgs.iter().all(|m| m["opcode"] == "binary"));
}
