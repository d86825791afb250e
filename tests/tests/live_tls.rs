//! End to end, live: wss:// in the clear through the TLS hooks (`--tls`).
//! Python `websockets` server and client (asyncio, memory BIOs at both
//! ends) talk TLS across a veth pair, with and without permessage-deflate,
//! three connections at once on one event loop, messages up to 4 MiB. The
//! JSON output must hold exactly the messages the client logged, per
//! connection and direction, all `"via": "tls"`, none on a wrong
//! connection, and the ciphertext seen by TC must not be decoded as
//! WebSocket. Beside them: a blocking `ssl` socket (the library calls the
//! kernel itself), curl over HTTPS (another program, HTTP/1.1 decoded in
//! the clear), `-- COMMAND` (hooks implied, only the command's plaintext),
//! and a `kill -9` that must leave no uprobe behind.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tests::netns::{Netns, VethPair};
use tests::peers::{python_or_skip, Reaper};
use tests::tap::{bpf_fds, kernel_link_ids, still_in_kernel, Wstap, WstapOutput};

fn wss_peer() -> std::path::PathBuf {
    tests::workspace_root().join("tests/peers/wss_peer.py")
}

/// (client port, direction) → the messages' (length, text).
type PerConn = HashMap<(u16, String), Vec<(u64, Option<String>)>>;

/// Starts `wss_peer.py MODE CERT KEY B4 PORT [EXTRA] READY` in `ns` and
/// waits until it listens.
fn start_server(
    ns: &Netns,
    py: &Path,
    dir: &Path,
    mode: &str,
    port: &str,
    extra: &[&str],
) -> Reaper {
    let (cert, key) = tests::peers::self_signed_cert(dir);
    let ready = dir.join(format!("{mode}-ready"));
    let server = Reaper(
        ns.command(py)
            .arg(wss_peer())
            .arg(mode)
            .arg(&cert)
            .arg(&key)
            .args([VethPair::B4, port])
            .args(extra)
            .arg(&ready)
            .spawn()
            .expect("wss_peer server"),
    );
    common::wait_for_file(&ready, "wss_peer server");
    server
}

/// What a client of `wss_peer.py` logged it sent and got back.
fn client_log(log: &Path) -> PerConn {
    let mut want = PerConn::new();
    for l in std::fs::read_to_string(log).unwrap().lines() {
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
    want
}

/// The client's port of an event's connection.
fn client_port(e: &Value) -> u16 {
    let client = if e["dir"] == "client_to_server" {
        &e["src"]
    } else {
        &e["dst"]
    };
    common::port_of(client)
}

/// What wstap decoded from the hooks.
struct Decoded {
    /// Whole messages per connection and direction.
    messages: PerConn,
    /// `ws_open` events (each checked to be `via: tls` and to have
    /// `deflate` or not).
    opens: usize,
    /// Messages cut short (`truncated`), as JSON.
    cut: Vec<Value>,
}

/// The messages wstap decoded, after checking that every one came through
/// the hooks and that nothing went wrong on the way (no gap, resync or
/// violation). Every test but one expects `cut` to be empty.
fn decoded_all(out: &WstapOutput, deflate: bool) -> Decoded {
    let mut got = PerConn::new();
    let mut cut = Vec::new();
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
        if e["truncated"] != false {
            cut.push(e);
            continue;
        }
        let text = (e["opcode"] == "text").then(|| e["text"].as_str().unwrap().to_string());
        got.entry((client_port(&e), e["dir"].as_str().unwrap().to_string()))
            .or_default()
            .push((e["len"].as_u64().unwrap(), text));
    }
    Decoded {
        messages: got,
        opens,
        cut,
    }
}

/// [`decoded_all`] where no message may be cut short: (messages, opens).
fn decoded(out: &WstapOutput, deflate: bool) -> (PerConn, usize) {
    let d = decoded_all(out, deflate);
    assert!(d.cut.is_empty(), "messages cut short: {:?}", d.cut);
    (d.messages, d.opens)
}

fn assert_hooked(out: &WstapOutput) {
    assert!(
        out.stderr.contains("hooked OpenSSL in"),
        "no OpenSSL hooked:\n{}",
        out.stderr
    );
}

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
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(
        &v.b,
        &py,
        &dir,
        "server",
        port,
        &[if deflate { "1" } else { "0" }],
    );
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
    assert_hooked(&out);
    let want = client_log(&log);
    assert_eq!(want.len(), 6, "client log: {want:?}");
    let (got, opens) = decoded(&out, deflate);
    assert_eq!(opens, 3, "ws_open events:\n{}", out.lines.join("\n"));
    assert_eq!(
        got, want,
        "decoded messages differ from what the peers sent"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wss_decodes_from_the_hooked_library() {
    run(false);
}

#[test]
fn wss_with_deflate_decodes_from_the_hooked_library() {
    run(true);
}

/// A client on a blocking `ssl` socket: OpenSSL reads and writes the socket
/// itself (socket BIO), 256 KiB in one SSL_write and read with a 256 KiB
/// buffer, a WebSocket client made by hand against the asyncio server; then
/// a zero-length write and a process that exits in the middle of a message.
#[test]
fn a_blocking_ssl_socket_decodes_from_the_hooked_library() {
    let name = "a_blocking_ssl_socket_decodes_from_the_hooked_library";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let port = "8454";
    let dir = common::temp_dir(name);
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(&v.b, &py, &dir, "server", port, &["0"]);
    let w = Wstap::start(
        &v.a,
        &["-i", &v.a_if, "--port", port, "--tls", "--format", "json"],
    )
    .expect("wstap");
    let log = dir.join("blocking.jsonl");
    let st =
        v.a.command(&py)
            .arg(wss_peer())
            .args(["blocking", VethPair::B4, port])
            .arg(&log)
            .status()
            .expect("blocking client");
    assert!(st.success(), "blocking client failed");
    std::thread::sleep(Duration::from_millis(500));
    let out = w.stop().expect("wstap output");
    assert_hooked(&out);
    let want = client_log(&log);
    assert_eq!(want.len(), 2, "client log: {want:?}");
    let d = decoded_all(&out, false);
    assert_eq!(d.opens, 2, "ws_open events:\n{}", out.lines.join("\n"));
    assert_eq!(
        d.messages, want,
        "decoded messages differ from what the peers sent"
    );
    // The second connection's half message: shown once, as far as it was
    // sent, flagged cut short with a length that is only a lower bound.
    assert_eq!(d.cut.len(), 1, "cut messages: {:?}", d.cut);
    let half = &d.cut[0];
    assert_eq!(half["len_exact"], false, "{half}");
    assert_eq!(half["dir"], "client_to_server", "{half}");
    assert!(
        !want.keys().any(|k| k.0 == client_port(half)),
        "on the first connection: {half}"
    );
    let text = half["text"].as_str().unwrap();
    let sent = "never finished ".repeat(100);
    assert!(
        !text.is_empty() && text.len() < sent.len() && sent.starts_with(text),
        "{half}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// curl (a program of its own, linked to the system's libssl) asks a
/// Python HTTPS server for a page: the request and the response are
/// decoded in the clear, through the hooks, once each, and each end is
/// named by its process.
#[test]
fn curl_over_https_is_decoded_as_http_through_the_hooks() {
    let name = "curl_over_https_is_decoded_as_http_through_the_hooks";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    if !tests::require_tool(name, "curl") {
        return;
    }
    let port = "8455";
    let dir = common::temp_dir(name);
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(&v.b, &py, &dir, "https", port, &[]);
    let w = Wstap::start(
        &v.a,
        &["-i", &v.a_if, "--port", port, "--tls", "--format", "json"],
    )
    .expect("wstap");
    let url = format!("https://{}:{port}/wstap-page", VethPair::B4);
    let got =
        v.a.command("curl")
            .args(["-sk", "--http1.1", &url])
            .output()
            .expect("curl");
    assert!(got.status.success(), "curl failed");
    assert_eq!(got.stdout, b"hello over https\n");
    std::thread::sleep(Duration::from_millis(500));
    let out = w.stop().expect("wstap output");
    assert_hooked(&out);
    let events: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let requests = common::named(&events, "http_request");
    let responses = common::named(&events, "http_response");
    let all = out.lines.join("\n");
    assert_eq!(requests.len(), 1, "requests:\n{all}");
    assert_eq!(responses.len(), 1, "responses:\n{all}");
    let (rq, rs) = (requests[0], responses[0]);
    assert_eq!(rq["via"], "tls", "{rq}");
    assert_eq!(rq["method"], "GET", "{rq}");
    assert_eq!(rq["path"], "/wstap-page", "{rq}");
    assert_eq!(rq["host"], format!("{}:{port}", VethPair::B4), "{rq}");
    assert_eq!(common::port_of(&rq["dst"]), 8455, "{rq}");
    assert_eq!(rq["src_comm"], "curl", "{rq}");
    assert_eq!(rq["dst_comm"], "python3", "{rq}");
    assert_eq!(rs["via"], "tls", "{rs}");
    assert_eq!(rs["status"], 200, "{rs}");
    assert_eq!(rs["reason"], "OK", "{rs}");
    assert_eq!(rs["content_length"], 17, "{rs}");
    assert_eq!(rs["conn"], rq["conn"], "one connection: {rq}\n{rs}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `wstap --port P -- COMMAND`: no `--tls`, yet the command's wss://
/// messages are decoded through the hooks, and those of another client of
/// the same server running at the same time are not there at all.
#[test]
fn a_command_under_wstap_has_its_tls_decoded_and_no_one_elses() {
    let name = "a_command_under_wstap_has_its_tls_decoded_and_no_one_elses";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let port = "8456";
    let dir = common::temp_dir(name);
    // The command runs as nobody: it must be able to write its log here.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let v = VethPair::new().expect("veth pair");
    let _server = start_server(&v.b, &py, &dir, "server", port, &["0"]);
    let (mine, theirs) = (dir.join("mine.jsonl"), dir.join("theirs.jsonl"));
    let (py_s, script) = (py.to_str().unwrap(), wss_peer());
    let args = [
        "-i",
        &v.a_if,
        "--port",
        port,
        "--format",
        "json",
        "--",
        py_s,
        script.to_str().unwrap(),
        "client",
        VethPair::B4,
        port,
        "2",
        mine.to_str().unwrap(),
    ];
    let nobody = [("SUDO_UID", "65534"), ("SUDO_GID", "65534")];
    let w = Wstap::start_env(&v.a, &args, &nobody).expect("wstap");
    // The other client, while the command runs.
    let st =
        v.a.command(&py)
            .arg(wss_peer())
            .args(["client", VethPair::B4, port, "2"])
            .arg(&theirs)
            .status()
            .expect("other client");
    assert!(st.success(), "other client failed");
    let out = w.wait_exit(Duration::from_secs(120)).expect("wstap output");
    assert!(out.status.success(), "wstap: {}", out.stderr);
    assert_hooked(&out);
    let want = client_log(&mine);
    assert_eq!(want.len(), 4, "command's log: {want:?}");
    let other_ports: Vec<u16> = client_log(&theirs).keys().map(|k| k.0).collect();
    for l in &out.lines {
        let e: Value = serde_json::from_str(l).unwrap();
        let (s, d) = (common::port_of(&e["src"]), common::port_of(&e["dst"]));
        assert!(
            !other_ports.contains(&s) && !other_ports.contains(&d),
            "the other client's connection: {l}"
        );
    }
    let (got, opens) = decoded(&out, false);
    assert_eq!(opens, 2, "ws_open events:\n{}", out.lines.join("\n"));
    assert_eq!(
        got, want,
        "decoded messages differ from what the command sent"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` of `wstap --tls`: the uprobes are perf links held by its fds,
/// and the kernel must drop every one of them and their programs.
#[test]
fn kill_9_of_wstap_tls_leaves_no_uprobe_attached() {
    let name = "kill_9_of_wstap_tls_leaves_no_uprobe_attached";
    if !tests::require_root(name) || !tests::require_tool(name, "bpftool") {
        return;
    }
    let v = VethPair::new().expect("veth pair");
    let w = Wstap::start(&v.b, &["-i", &v.b_if, "--port", "8457", "--tls"]).expect("wstap");
    let (links, progs) = bpf_fds(w.pid()).unwrap();
    let perf: Vec<u32> = links
        .iter()
        .filter(|(_, t)| t == "perf")
        .map(|(id, _)| *id)
        .collect();
    // Four entry probes and one return probe per hooked library, beside
    // the socket tracepoints.
    assert!(perf.len() >= 5, "perf links held: {links:?}");
    let all = kernel_link_ids().unwrap();
    assert!(
        perf.iter().all(|id| all.contains(id)),
        "links {perf:?} not in the kernel's list {all:?}"
    );
    let out = w.signal_and_wait(libc::SIGKILL).unwrap();
    assert!(!out.status.success());
    let left = still_in_kernel(&perf, &progs).unwrap();
    assert!(
        left.is_empty(),
        "still in the kernel after kill -9: {left:?}"
    );
}

/// Libraries that cannot be hooked (a path that is not there, a library
/// that is not OpenSSL) get one clear line each; the system's OpenSSL is
/// still hooked and the capture runs and ends cleanly.
#[test]
fn libraries_that_cannot_be_hooked_get_one_line_each() {
    let name = "libraries_that_cannot_be_hooked_get_one_line_each";
    if !tests::require_root(name) {
        return;
    }
    let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a libc.so.6");
    let v = VethPair::new().expect("veth pair");
    let w = Wstap::start(
        &v.b,
        &[
            "-i",
            &v.b_if,
            "--port",
            "8458",
            "--tls-lib",
            "/nonexistent/libssl.so.3",
            "--tls-lib",
            libc,
        ],
    )
    .expect("wstap starts despite the bad libraries");
    let out = w.stop().expect("wstap output");
    assert!(out.status.success(), "{}", out.stderr);
    assert_hooked(&out);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let about = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert_eq!(
        about("/nonexistent/libssl.so.3: not hooked: cannot open it"),
        1,
        "{}",
        out.stderr
    );
    assert_eq!(
        about(&format!(
            "{libc}: not hooked: SSL_read, SSL_read_ex, SSL_write, SSL_write_ex: it exports none of them"
        )),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("WebSocket handshakes"),
        "{}",
        out.stderr
    );
}
