//! Filter expressions (issue 13), with real WebSocket peers on loopback in
//! a private namespace: three clients (plain and permessage-deflate
//! conversations each) to servers on two ports and two addresses, tapped
//! live by `wstap -i lo EXPRESSION` while tcpdump records everything.
//! Live, the kernel keeps exactly the selected conversations, every
//! message of them decoded; offline, the same expression on tcpdump's file
//! decodes the same messages, an expression decodes what the equivalent
//! `--host`/`--port` run decodes, and directional and negated expressions
//! keep exactly the segments tshark's equivalent display filter keeps.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tests::netns::Netns;
use tests::peers::python_or_skip;
use tests::tap::{parse_summary, Wstap};

/// Runs one client's plain and deflate conversations against
/// `server`:`port`; returns its logged conversations.
fn client(ns: &Netns, py: &Path, server: &str, port: &str, dir: &Path, tag: &str) -> Vec<Value> {
    common::ws_client(
        ns,
        py,
        server,
        port,
        &dir.join(format!("{tag}.json")),
        |_| {},
    )
}

fn words(expr: &str) -> Vec<&str> {
    expr.split_whitespace().collect()
}

/// The ws_message events as "src dst length digest" lines, the part of
/// the output that does not depend on when the capture started (short
/// enough to print when two runs differ).
fn messages(events: &[Value]) -> Vec<String> {
    use std::hash::{Hash, Hasher};
    common::named(events, "ws_message")
        .into_iter()
        .map(|e| {
            let p = common::payload(e);
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            format!(
                "{} {} {} {:016x}",
                e["src"].as_str().unwrap(),
                e["dst"].as_str().unwrap(),
                p.len(),
                h.finish()
            )
        })
        .collect()
}

/// Segments `wstap -r FILE EXPR` keeps: its summary's TCP segments less
/// those filtered out.
fn segments_kept(file: &Path, expr: &str) -> u64 {
    let out = Command::new(tests::wstap_bin())
        .arg("-r")
        .arg(file)
        .arg("--segments")
        .args(words(expr))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{expr}: {err}");
    let line = err
        .lines()
        .find(|l| l.contains(" TCP segments ("))
        .unwrap_or_else(|| panic!("{expr}: no summary: {err}"));
    let num_before = |marker: &str| -> u64 {
        let head = &line[..line.find(marker).unwrap()];
        head.rsplit(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    num_before(" TCP segments (") - num_before(" filtered out)")
}

/// Frames tshark's display filter keeps.
fn tshark_count(file: &Path, display_filter: &str) -> u64 {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args([
            "-Y",
            &format!("tcp and ({display_filter})"),
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark -Y {display_filter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count() as u64
}

#[test]
fn expressions_select_live_and_offline_as_tcpdump_and_tshark_would() {
    let Some(py) = python_or_skip("expressions_select_live_and_offline") else {
        return;
    };
    if !tests::require_tool("expressions_select_live_and_offline", "tcpdump")
        || !tests::require_tool("expressions_select_live_and_offline", "tshark")
    {
        return;
    }
    let dir = common::temp_dir("filter-expr");
    let ns = Netns::new("expr").unwrap();
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let (d1, d2) = (dir.join("s1"), dir.join("s2"));
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    let _s1 = common::start_ws_server(&ns, &py, "0.0.0.0", "8765", &d1);
    let _s2 = common::start_ws_server(&ns, &py, "0.0.0.0", "8766", &d2);

    // tcpdump records everything on lo, for the offline half.
    let all = dir.join("all.pcap");
    let td = common::start_tcpdump(&ns, &all);

    let live_expr = "( port 8766 or host 127.0.0.2 ) and tcp";
    let mut args = vec!["-i", "lo", "--format", "json"];
    args.extend(words(live_expr));
    let w = Wstap::start(&ns, &args).unwrap();
    let excluded = client(&ns, &py, "127.0.0.1", "8765", &dir, "a");
    let mut selected = client(&ns, &py, "127.0.0.2", "8765", &dir, "b");
    selected.extend(client(&ns, &py, "127.0.0.1", "8766", &dir, "c"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = w.stop().unwrap();
    common::stop_tcpdump(td);

    assert!(out.status.success(), "{}", out.stderr);
    let sum = parse_summary(&out.stderr).unwrap();
    assert_eq!(sum.records_lost, 0, "{}", out.stderr);
    let live: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(selected.len(), 4);
    for conv in &selected {
        common::check_conversation(&live, conv, common::Seen::Both);
    }
    for conv in &excluded {
        let port = conv["local_port"].as_u64().unwrap() as u16;
        let leaked: Vec<&Value> = live
            .iter()
            .filter(|e| common::port_of(&e["src"]) == port || common::port_of(&e["dst"]) == port)
            .collect();
        assert!(
            leaked.is_empty(),
            "excluded connection {port} decoded: {leaked:?}"
        );
    }

    // Offline: the same expression on everything tcpdump saw decodes the
    // same messages as the kernel selected live.
    let offline = common::wstap_json(&all, &words(live_expr));
    assert_eq!(messages(&offline.events), messages(&live));
    let everything = common::wstap_json(&all, &[]);
    assert!(messages(&everything.events).len() > messages(&live).len());

    // An expression and the equivalent --host / --port give the same output.
    for (expr, flags) in [
        ("port 8766", vec!["--port", "8766"]),
        ("host 127.0.0.2", vec!["--host", "127.0.0.2"]),
        (
            "host 127.0.0.2 and port 8765",
            vec!["--host", "127.0.0.2", "--port", "8765"],
        ),
    ] {
        let by_expr = common::wstap_json(&all, &words(expr));
        let by_flags = common::wstap_json(&all, &flags);
        assert!(
            !messages(&by_expr.events).is_empty(),
            "{expr}: nothing decoded"
        );
        assert_eq!(by_expr.events, by_flags.events, "{expr} vs {flags:?}");
    }
    // Combined with --port, both must hold.
    let both = common::wstap_json(&all, &["--port", "8765", "host", "127.0.0.2"]);
    assert_eq!(
        messages(&both.events),
        messages(&common::wstap_json(&all, &words("host 127.0.0.2 and port 8765")).events)
    );

    // Direction, ranges, networks and negation, segment for segment
    // against tshark's display filters.
    let total = tshark_count(&all, "tcp");
    for (expr, display) in [
        ("port 8766", "tcp.port == 8766"),
        (
            "dst port 8765 and not dst host 127.0.0.2",
            "tcp.dstport == 8765 and not ip.dst == 127.0.0.2",
        ),
        (
            "src host 127.0.0.1 and ( portrange 8760-8765 or ip6 )",
            "ip.src == 127.0.0.1 and ((tcp.srcport >= 8760 and tcp.srcport <= 8765) or (tcp.dstport >= 8760 and tcp.dstport <= 8765))",
        ),
        (
            "net 127.0.0.0/31 and not port 8766",
            "ip.addr == 127.0.0.0/31 and not tcp.port == 8766",
        ),
        (
            "ip6 or src and dst net 127.0.0.1 mask 255.255.255.255",
            "ipv6 or (ip.src == 127.0.0.1 and ip.dst == 127.0.0.1)",
        ),
        ("src port 8765 or 8766", "tcp.srcport == 8765 or tcp.srcport == 8766"),
        ("! tcp", "not tcp"),
    ] {
        let want = tshark_count(&all, display);
        let got = segments_kept(&all, expr);
        assert_eq!(got, want, "{expr} kept {got} segments, tshark's {display} {want}");
        if expr != "! tcp" {
            assert!(got > 0 && got < total, "{expr}: {got} of {total} is no test");
        }
    }
}

#[test]
fn refused_expressions_point_at_the_token() {
    let file = common::temp_dir("filter-expr-refused").join("empty.pcap");
    // A valid, empty pcap: the refusal must come before the file matters.
    let mut pcap = Vec::new();
    for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        pcap.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&file, &pcap).unwrap();
    for (expr, message, caret) in [
        (
            "port 8080 and udp",
            "`udp`: wstap captures TCP only, so this protocol can never match; leave it out",
            "                ^^^",
        ),
        (
            "tcp[13] & 2 != 0",
            "byte offsets (`tcp[13]`) are not supported",
            "     ^",
        ),
        ("port 80 and", "unexpected end", "             ^"),
        (
            "port 70000",
            "port 70000 is outside 1-65535",
            "       ^^^^^",
        ),
        ("( host ::1", "this ( is never closed", "  ^"),
        (
            "vlan 10",
            "link-layer and encapsulation primitives are not supported",
            "  ^^^^",
        ),
    ] {
        for live in [false, true] {
            let mut cmd = Command::new(tests::wstap_bin());
            if live {
                cmd.args(["-i", "lo"]);
            } else {
                cmd.arg("-r").arg(&file);
            }
            let out = cmd.args(words(expr)).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{expr}: {err}");
            let lines: Vec<&str> = err.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.starts_with("wstap: error: filter expression: "))
                .unwrap_or_else(|| panic!("{expr}: {err}"));
            assert!(lines[at].contains(message), "{expr}: {err}");
            assert_eq!(lines[at + 1], format!("  {expr}"), "{expr}: {err}");
            assert_eq!(lines[at + 2], caret, "{expr}: {err}");
        }
    }
}
