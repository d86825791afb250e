//! Attaching the way older kernels need it (issue 13): `--attach
//! tc-netlink` puts netlink filters on a clsact qdisc instead of TCX links.
//! Capture through them must be as complete as through TCX; Ctrl-C removes
//! them; after `kill -9` they stay, and the next start or `wstap --cleanup`
//! removes them, saying so. Also `-D`, which lists the interfaces.

use std::path::Path;
use std::time::Duration;

use tests::netns::{Netns, VethPair};
use tests::tap::{check_sized, parse_summary, run_sized, Wstap};

const PEER: &str = env!("CARGO_BIN_EXE_tcp_peer");

/// `tc filter show dev IFACE DIR` inside `ns`.
fn tc_filters(ns: &Netns, iface: &str, dir: &str) -> String {
    let out = ns
        .command("tc")
        .args(["filter", "show", "dev", iface, dir])
        .output()
        .expect("running tc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `wstap ARGS` to its end inside `ns`.
fn wstap_once(ns: &Netns, args: &[&str]) -> std::process::Output {
    ns.command(tests::wstap_bin())
        .args(args)
        .output()
        .expect("running wstap")
}

#[test]
fn tc_netlink_captures_every_byte_and_ctrl_c_removes_its_filters() {
    if !tests::require_root("tc_netlink_captures_every_byte_and_ctrl_c_removes_its_filters")
        || !tests::require_tool("tc_netlink", "tc")
    {
        return;
    }
    let v = VethPair::new().unwrap();
    let w = Wstap::start(
        &v.b,
        &[
            "-i",
            &v.b_if,
            "--attach",
            "tc-netlink",
            "--segments",
            "--hex",
        ],
    )
    .unwrap();
    assert!(
        w.stderr_so_far()
            .contains("(TC ingress+egress, netlink filters)"),
        "{}",
        w.stderr_so_far()
    );
    assert!(tc_filters(&v.b, &v.b_if, "ingress").contains("wstap_ingress"));
    assert!(tc_filters(&v.b, &v.b_if, "egress").contains("wstap_egress"));
    let sizes = [1_000usize, 70_000, 1 << 20];
    run_sized(
        Path::new(PEER),
        &v.b,
        &v.a,
        VethPair::B4,
        5100,
        &sizes,
        |s| s / 3 + 1,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = w.stop().unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    let sum = parse_summary(&out.stderr).unwrap();
    assert_eq!(sum.records_lost, 0, "{}", out.stderr);
    check_sized(&out.segments, VethPair::B4, 5100, &sizes, |s| s / 3 + 1).unwrap();
    for dir in ["ingress", "egress"] {
        let left = tc_filters(&v.b, &v.b_if, dir);
        assert!(
            !left.contains("wstap_"),
            "{dir}: a filter left after Ctrl-C:\n{left}"
        );
    }
}

#[test]
fn tc_netlink_filters_left_by_kill_9_are_removed_by_the_next_start_and_by_cleanup() {
    if !tests::require_root("tc_netlink_filters_left_by_kill_9_are_removed")
        || !tests::require_tool("tc_netlink_kill_9", "tc")
    {
        return;
    }
    let v = VethPair::new().unwrap();
    let start = || Wstap::start(&v.b, &["-i", &v.b_if, "--attach", "tc-netlink"]).unwrap();

    // kill -9: the filters stay (they belong to the interface, not to the
    // process); the next start removes them and says so.
    let out = start().signal_and_wait(libc::SIGKILL).unwrap();
    assert!(!out.status.success());
    assert!(tc_filters(&v.b, &v.b_if, "ingress").contains("wstap_ingress"));
    assert!(tc_filters(&v.b, &v.b_if, "egress").contains("wstap_egress"));
    let w = start();
    let said = w.stderr_so_far();
    for dir in ["ingress", "egress"] {
        let line = format!(
            "removed a stale wstap filter (wstap_{dir}, {} {dir})",
            v.b_if
        );
        assert!(said.contains(&line), "no {line:?} in:\n{said}");
        // Only the new wstap's filter is left: one per direction.
        let now = tc_filters(&v.b, &v.b_if, dir);
        assert_eq!(
            now.matches(&format!("name wstap_{dir}")).count(),
            1,
            "{now}"
        );
    }
    // While it runs, --cleanup refuses: its filters are not stale.
    let refused = wstap_once(&v.b, &["--cleanup"]);
    assert!(!refused.status.success());
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(
        e.contains(&format!("another wstap (pid {}) runs", w.pid())) && e.contains("stop it first"),
        "{e}"
    );
    // kill -9 again; --cleanup removes both, then finds none. Another
    // tool's filter on the same hook stays.
    let out = w.signal_and_wait(libc::SIGKILL).unwrap();
    assert!(!out.status.success());
    tests::netns::run(v.b.command("tc").args([
        "filter",
        "add",
        "dev",
        &v.b_if,
        "ingress",
        "pref",
        "7",
        "bpf",
        "bytecode",
        "1,6 0 0 4294967295,",
    ]))
    .unwrap();
    let cleaned = wstap_once(&v.b, &["--cleanup"]);
    assert!(cleaned.status.success(), "{cleaned:?}");
    let said = String::from_utf8_lossy(&cleaned.stdout);
    for dir in ["ingress", "egress"] {
        let line = format!(
            "removed a stale wstap filter (wstap_{dir}, {} {dir})",
            v.b_if
        );
        assert!(said.contains(&line), "no {line:?} in:\n{said}");
        assert!(!tc_filters(&v.b, &v.b_if, dir).contains("wstap_"));
    }
    let again = wstap_once(&v.b, &["--cleanup"]);
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "wstap: no stale wstap filters found"
    );
    let foreign = tc_filters(&v.b, &v.b_if, "ingress");
    assert!(
        foreign.contains("bytecode '1,6 0 0 4294967295'"),
        "{foreign}"
    );
}

#[test]
fn list_interfaces_names_each_with_its_state() {
    if !tests::require_root("list_interfaces_names_each_with_its_state") {
        return;
    }
    let v = VethPair::new().unwrap();
    // A veth pair of its own, left down (this kernel has no dummy driver).
    let extra = tests::netns::unique_name("dn");
    let extra_peer = tests::netns::unique_name("dp");
    v.b.ip(&[
        "link",
        "add",
        &extra,
        "type",
        "veth",
        "peer",
        "name",
        &extra_peer,
    ])
    .unwrap();
    let out = wstap_once(&v.b, &["-D"]);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 4, "{listed}");
    assert!(lines[0].starts_with("1.lo [Up"), "{listed}");
    assert!(lines[0].ends_with("Loopback]"), "{listed}");
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!(".{} [Up, Running]", v.b_if))),
        "{listed}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!(".{extra} [Down]"))),
        "{listed}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!(".{extra_peer} [Down]"))),
        "{listed}"
    );
}
