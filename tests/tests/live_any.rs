//! `-i any` (issue 13), in a private namespace with loopback, a bridge with
//! a veth port (every segment passes two tapped interfaces there), a plain
//! veth, and a veth pair added during the capture: real WebSocket clients
//! in their own namespaces talk to one server; every message of every
//! conversation is decoded exactly once, the bridge's second copies are
//! counted, the interface added later is captured from its first SYN, and
//! the one deleted is reported while the capture goes on.

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tests::netns::{ip, unique_name, Netns};
use tests::peers::python_or_skip;
use tests::tap::{parse_summary, Wstap};

const PORT: &str = "8765";

/// A veth pair from `host` (end `h`, in `host`) to a new namespace
/// (end `c` with `client_addr/24`); `h` gets `host_addr/24` unless it is
/// to be a bridge port.
fn pair(host: &Netns, client_addr: &str, host_addr: Option<&str>) -> (Netns, String) {
    let client = Netns::new("c").unwrap();
    let h = unique_name("h");
    let c = unique_name("c");
    ip(&[
        "link",
        "add",
        &h,
        "netns",
        &host.name,
        "type",
        "veth",
        "peer",
        "name",
        &c,
        "netns",
        &client.name,
    ])
    .unwrap();
    client
        .ip(&["addr", "add", &format!("{client_addr}/24"), "dev", &c])
        .unwrap();
    client.ip(&["link", "set", &c, "up"]).unwrap();
    if let Some(a) = host_addr {
        host.ip(&["addr", "add", &format!("{a}/24"), "dev", &h])
            .unwrap();
    }
    host.ip(&["link", "set", &h, "up"]).unwrap();
    (client, h)
}

/// Runs one client's plain and deflate conversations in `ns` against
/// `server`; returns its logged conversations.
fn client(ns: &Netns, py: &Path, server: &str, dir: &Path, tag: &str) -> Vec<Value> {
    common::ws_client(
        ns,
        py,
        server,
        PORT,
        &dir.join(format!("{tag}.json")),
        |_| {},
    )
}

#[test]
fn any_interface_decodes_each_conversation_once_and_follows_links() {
    let Some(py) = python_or_skip("any_interface_decodes_each_conversation_once") else {
        return;
    };
    let dir = common::temp_dir("live-any");
    let host = Netns::new("any").unwrap();
    // A bridge with one veth port; the host's address is on the bridge.
    let br = unique_name("br");
    host.ip(&["link", "add", &br, "type", "bridge"]).unwrap();
    host.ip(&["addr", "add", "10.78.0.1/24", "dev", &br])
        .unwrap();
    host.ip(&["link", "set", &br, "up"]).unwrap();
    let (bridged, port) = pair(&host, "10.78.0.2", None);
    host.ip(&["link", "set", &port, "master", &br]).unwrap();
    // A plain veth.
    let (plain, _) = pair(&host, "10.79.0.2", Some("10.79.0.1"));
    let _server = common::start_ws_server(&host, &py, "0.0.0.0", PORT, &dir);
    // The bridge forwards once its port is past the listening/learning
    // states (no STP by default: at once), and the peers answer ARP.
    std::thread::sleep(Duration::from_millis(300));

    let w = Wstap::start(&host, &["-i", "any", "--format", "json"]).unwrap();
    let listening = w.stderr_so_far();
    for name in ["lo (TC egress only, loopback)", &br, &port, "any: "] {
        assert!(listening.contains(name), "{name}: {listening}");
    }
    let mut convs = Vec::new();
    convs.extend(client(&host, &py, "127.0.0.1", &dir, "lo"));
    convs.extend(client(&bridged, &py, "10.78.0.1", &dir, "bridged"));
    convs.extend(client(&plain, &py, "10.79.0.1", &dir, "plain"));
    // An interface added during the capture: attached as it comes up,
    // its conversation captured from the first SYN.
    let (late, late_if) = pair(&host, "10.80.0.2", Some("10.80.0.1"));
    std::thread::sleep(Duration::from_millis(200));
    convs.extend(client(&late, &py, "10.80.0.1", &dir, "late"));
    std::thread::sleep(Duration::from_millis(300));
    // And deleted: reported, the capture goes on.
    host.ip(&["link", "del", &late_if]).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let out = w.stop().unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    let sum = parse_summary(&out.stderr).unwrap();
    assert_eq!(sum.records_lost, 0, "{}", out.stderr);
    let events: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(convs.len(), 8);
    for conv in &convs {
        common::check_conversation(&events, conv, common::Seen::Both);
    }
    let late_handshake = events.iter().any(|e| {
        e["event"] == "http_request"
            && e["dst"]
                .as_str()
                .is_some_and(|d| d.starts_with("10.80.0.1:"))
    });
    assert!(
        late_handshake,
        "the late interface's handshake was not seen"
    );
    assert!(
        out.stderr.contains(&format!(
            "wstap: interface {late_if} came up: attached (TC ingress+egress)"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("wstap: interface {late_if} went away")),
        "{}",
        out.stderr
    );
    // The bridge and its port each saw every bridged segment: the second
    // copies are counted, not decoded.
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("wstap: interfaces: "))
        .unwrap_or_else(|| panic!("no interfaces line: {}", out.stderr));
    let dups: u64 = line["wstap: interfaces: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(dups > 20, "{line}");
    assert!(line.ends_with("1 interfaces went away"), "{line}");
}

#[test]
fn repeated_interfaces_and_any_with_others() {
    if !tests::require_root("repeated_interfaces_and_any_with_others") {
        return;
    }
    let host = Netns::new("rep").unwrap();
    let (_c, h) = pair(&host, "10.81.0.2", Some("10.81.0.1"));
    let w = Wstap::start(&host, &["-i", "lo", "-i", &h]).unwrap();
    let said = w.stderr_so_far();
    assert!(
        said.contains(&format!(
            "listening on lo (TC egress only, loopback), {h} (TC ingress+egress), ring"
        )),
        "{said}"
    );
    // The only other interface goes: the capture goes on on lo.
    host.ip(&["link", "del", &h]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = w.stop().unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("interface {h} went away (deleted, or moved to another network namespace); the capture goes on on 1 other")),
        "{}",
        out.stderr
    );
    let refused = host
        .command(tests::wstap_bin())
        .args(["-i", "any", "-i", "lo"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(
        e.contains("-i any means every interface: give it alone, not with -i lo"),
        "{e}"
    );
}
