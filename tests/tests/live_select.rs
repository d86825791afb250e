//! End to end, live: the owner filter. `--pid` and `--comm` keep only the
//! connections of the processes asked for (and the kernel leaves the rest
//! out before the ring), `-- COMMAND` captures the command it runs and
//! nothing else, as the user who ran sudo, and exits with its exit code.
//! Real peers (Python `websockets`) across a veth pair; every decoded
//! message is compared with what the selected client logged, and the other
//! client's connections must be absent.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use serde_json::Value;
use tests::netns::{Netns, VethPair};
use tests::peers::{peer_script, python_or_skip};
use tests::tap::{Wstap, WstapOutput};

const PORT: &str = "8767";

/// A client that waits for `go` before connecting, so that wstap can be
/// started with its pid in between.
struct Client {
    child: Child,
    log: PathBuf,
}

impl Client {
    fn start(ns: &Netns, exe: &Path, log: PathBuf, go: &Path) -> Client {
        let child = ns
            .command(exe)
            .arg(peer_script())
            .args(["client", "--host", VethPair::B4, "--port", PORT])
            .args(["--conversation", "plain", "--conversation", "deflate"])
            .arg("--log")
            .arg(&log)
            .arg("--wait-for")
            .arg(go)
            .spawn()
            .expect("ws_peer client");
        Client { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it and returns its log.
    fn finish(mut self) -> Value {
        let st = self.child.wait().expect("client");
        assert!(st.success(), "client failed: {st}");
        serde_json::from_slice(&std::fs::read(&self.log).unwrap()).unwrap()
    }
}

/// A python under another name: its processes have that kernel comm.
fn python_named(py: &Path, dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(py, &link).unwrap();
    link
}

fn events_of(out: &WstapOutput) -> Vec<Value> {
    out.lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ports_of(log: &Value) -> HashSet<u16> {
    log["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["local_port"].as_u64().unwrap() as u16)
        .collect()
}

/// The number in `N <words>` of wstap's summary.
fn summary_count(stderr: &str, words: &str) -> u64 {
    let at = stderr
        .find(words)
        .unwrap_or_else(|| panic!("no '{words}' in: {stderr}"));
    stderr[..at]
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before '{words}'"))
}

/// Only the selected client's conversations were decoded, each whole and
/// right; every event's connection is one of its; its end of every
/// message names it; and the kernel left the other client's traffic out.
fn check_only(out: &WstapOutput, selected: &Value, other: &Value, comm: &str) {
    eprintln!("{}", out.stderr);
    let events = events_of(out);
    for c in selected["conversations"].as_array().unwrap() {
        common::check_conversation(&events, c, common::Seen::Both);
    }
    let mine = ports_of(selected);
    let theirs = ports_of(other);
    let pid = selected["pid"].as_u64().unwrap();
    let mut messages = 0;
    for e in &events {
        let (s, d) = (common::port_of(&e["src"]), common::port_of(&e["dst"]));
        assert!(
            !theirs.contains(&s) && !theirs.contains(&d),
            "the other client's connection: {e}"
        );
        let client_end = if mine.contains(&s) {
            "src"
        } else if mine.contains(&d) {
            "dst"
        } else {
            panic!("an event of a connection not of the selected client: {e}");
        };
        if e["event"] == "ws_message" {
            assert_eq!(e[format!("{client_end}_pid")], pid, "{e}");
            assert_eq!(e[format!("{client_end}_comm")], comm, "{e}");
            messages += 1;
        }
    }
    assert!(messages >= 8, "{messages} messages checked");
    let left_out = summary_count(&out.stderr, "segments of other processes left out");
    assert!(
        left_out > 0,
        "the kernel left out none of the other client's segments"
    );
}

#[test]
fn pid_and_comm_keep_only_the_selected_clients_connections() {
    let name = "pid_and_comm_keep_only_the_selected_clients_connections";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = common::temp_dir("select");
    let v = VethPair::new().expect("veth pair");
    let _server = common::start_ws_server(&v.b, &py, VethPair::B4, PORT, &dir);
    let capture = |extra: &[&str], go: &Path, a: Client, b: Client| {
        let mut args = vec!["-i", &v.b_if, "--port", PORT, "--format", "json"];
        args.extend_from_slice(extra);
        let w = Wstap::start(&v.b, &args).unwrap();
        std::fs::write(go, "go").unwrap();
        let (a, b) = (a.finish(), b.finish());
        std::thread::sleep(Duration::from_millis(300));
        let out = w.stop().unwrap();
        assert!(out.status.success(), "wstap failed: {}", out.stderr);
        (out, a, b)
    };

    // --pid: two clients of one program, one of them asked for.
    let go = dir.join("go-pid");
    let a = Client::start(&v.a, &py, dir.join("a.json"), &go);
    let b = Client::start(&v.a, &py, dir.join("b.json"), &go);
    let pid = a.pid().to_string();
    let (out, a, b) = capture(&["--pid", &pid], &go, a, b);
    check_only(&out, &a, &b, "python3");

    // --comm: the asked-for client runs under another name.
    let go = dir.join("go-comm");
    let named = python_named(&py, &dir, "ws-selected");
    let a = Client::start(&v.a, &named, dir.join("a2.json"), &go);
    let b = Client::start(&v.a, &py, dir.join("b2.json"), &go);
    let (out, a, b) = capture(&["--comm", "ws-selected"], &go, a, b);
    check_only(&out, &a, &b, "ws-selected");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server selected by name, started after wstap: its listener's verdict
/// covers each accepted connection before its request arrives, so every
/// client's conversation is decoded from its first byte, and the request
/// already names the server.
#[test]
fn a_selected_server_sees_all_its_clients_from_the_first_byte() {
    let name = "a_selected_server_sees_all_its_clients_from_the_first_byte";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = common::temp_dir("select-server");
    let v = VethPair::new().expect("veth pair");
    let w = Wstap::start(
        &v.b,
        &["-i", &v.b_if, "--format", "json", "--comm", "ws-server-sel"],
    )
    .unwrap();
    let named = python_named(&py, &dir, "ws-server-sel");
    let server = common::start_ws_server(&v.b, &named, VethPair::B4, PORT, &dir);
    let server_pid = server.0.id();
    let go = dir.join("go");
    std::fs::write(&go, "go").unwrap();
    let a = Client::start(&v.a, &py, dir.join("a.json"), &go).finish();
    let b = Client::start(&v.a, &py, dir.join("b.json"), &go).finish();
    std::thread::sleep(Duration::from_millis(300));
    let out = w.stop().unwrap();
    eprintln!("{}", out.stderr);
    assert!(out.status.success(), "wstap failed: {}", out.stderr);
    let events = events_of(&out);
    for log in [&a, &b] {
        for c in log["conversations"].as_array().unwrap() {
            common::check_conversation(&events, c, common::Seen::Both);
        }
    }
    let requests = common::named(&events, "http_request");
    assert_eq!(requests.len(), 4, "one upgrade request per conversation");
    for r in requests {
        assert_eq!(r["dst_pid"], server_pid, "{r}");
        assert_eq!(r["dst_comm"], "ws-server-sel", "{r}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `wstap -- COMMAND`: the command (a client) is captured and a second
/// client running at the same time is not; the command runs as the user of
/// `SUDO_UID`/`SUDO_GID`; wstap ends when it ends and exits with its exit
/// code. A command that cannot start exits 127.
#[test]
fn a_command_under_wstap_is_captured_alone_and_sets_the_exit_code() {
    let name = "a_command_under_wstap_is_captured_alone_and_sets_the_exit_code";
    let Some(py) = python_or_skip(name) else {
        return;
    };
    let dir = common::temp_dir("select-command");
    // The command runs as nobody: it must be able to write its log here.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let v = VethPair::new().expect("veth pair");
    let _server = common::start_ws_server(&v.b, &py, VethPair::B4, PORT, &dir);
    let go = dir.join("go");
    let other = Client::start(&v.a, &py, dir.join("other.json"), &go);
    let log = dir.join("command.json");
    let (py_s, script, log_s) = (
        py.to_str().unwrap(),
        peer_script(),
        log.to_str().unwrap().to_string(),
    );
    let args = [
        "-i",
        &v.a_if,
        "--format",
        "json",
        "--port",
        PORT,
        "--",
        py_s,
        script.to_str().unwrap(),
        "client",
        "--host",
        VethPair::B4,
        "--port",
        PORT,
        "--conversation",
        "plain",
        "--conversation",
        "deflate",
        "--log",
        &log_s,
        "--wait-for",
        go.to_str().unwrap(),
        "--exit-code",
        "3",
    ];
    let nobody = [("SUDO_UID", "65534"), ("SUDO_GID", "65534")];
    let w = Wstap::start_env(&v.a, &args, &nobody).unwrap();
    std::fs::write(&go, "go").unwrap();
    let other = other.finish();
    let out = w.wait_exit(Duration::from_secs(60)).unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "wstap exits with the command's code: {}",
        out.stderr
    );
    let mine: Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
    assert_eq!(mine["uid"], 65534, "the command ran as SUDO_UID");
    assert_eq!(mine["gid"], 65534, "the command ran as SUDO_GID");
    check_only(&out, &mine, &other, "python3");
    assert!(
        out.stderr.contains("WebSocket handshakes"),
        "the summary is printed after the command ended: {}",
        out.stderr
    );

    // A command that does not exist: its error, and a shell's 127.
    let w = Wstap::start(&v.a, &["-i", &v.a_if, "--", "/nonexistent/wstap-test-cmd"]);
    let out = match w {
        Ok(w) => w.wait_exit(Duration::from_secs(30)).unwrap(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(out.status.code(), Some(127), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot run /nonexistent/wstap-test-cmd"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}
