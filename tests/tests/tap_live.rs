//! End-to-end tests of the kernel tap: `wstap -i IFACE --segments --hex` on
//! one end of a veth pair between two private namespaces, real TCP peers
//! (`tcp_peer`) on both sides, and every captured payload byte checked
//! against what was sent.

use std::path::Path;
use std::time::Duration;

use tests::netns::{Netns, VethPair};
use tests::tap::{
    bpf_fds, bpftool_net, check_pattern, check_sized, client_of, kernel_link_ids, parse_summary,
    reassemble, run_peers, run_sized, still_in_kernel, wstap_output, Wstap, CLIENT_SEED,
    SERVER_SEED,
};

const PEER: &str = env!("CARGO_BIN_EXE_tcp_peer");

fn peer() -> &'static Path {
    Path::new(PEER)
}

fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

const SIZES: [usize; 5] = [1, 1_000, 70_000, 1 << 20, 4 << 20];

#[test]
fn tap_tc_every_byte_both_ways() {
    if !tests::require_root("tap_tc_every_byte_both_ways")
        || !tests::require_tool("tap_tc", "bpftool")
    {
        return;
    }
    let v = VethPair::new().unwrap();
    let w = Wstap::start(&v.b, &["-i", &v.b_if, "--segments", "--hex"]).unwrap();
    run_sized(peer(), &v.b, &v.a, VethPair::B4, 5000, &SIZES, |s| {
        s / 2 + 1
    })
    .unwrap();
    settle();
    let out = w.stop().unwrap();
    assert!(out.status.success(), "wstap failed: {}", out.stderr);
    let sum = parse_summary(&out.stderr).unwrap();
    assert_eq!(sum.records_lost, 0, "{}", out.stderr);
    assert_eq!(sum.cut_short, 0, "{}", out.stderr);
    assert_eq!(sum.segments as usize, out.segments.len());
    check_sized(&out.segments, VethPair::B4, 5000, &SIZES, |s| s / 2 + 1).unwrap();
    // Both directions were seen on the tapped interface.
    assert!(out.segments.iter().any(|s| s.egress) && out.segments.iter().any(|s| !s.egress));
    assert!(out.segments.iter().all(|s| s.iface == v.b_if));
}

#[test]
fn tap_xdp_every_ingress_byte() {
    if !tests::require_root("tap_xdp_every_ingress_byte") {
        return;
    }
    let v = VethPair::new().unwrap();
    let w = Wstap::start(
        &v.b,
        &["-i", &v.b_if, "--attach", "xdp", "--segments", "--hex"],
    )
    .unwrap();
    for (k, &size) in SIZES.iter().enumerate() {
        let addr = format!("{}:{}", VethPair::B4, 5000 + k);
        run_peers(peer(), &v.b, &v.a, &addr, size as u64, 10).unwrap();
    }
    settle();
    let out = w.stop().unwrap();
    assert!(out.status.success(), "wstap failed: {}", out.stderr);
    let sum = parse_summary(&out.stderr).unwrap();
    assert_eq!(sum.records_lost, 0, "{}", out.stderr);
    assert!(
        out.segments.iter().all(|s| !s.egress),
        "XDP sees ingress only"
    );
    for (k, &size) in SIZES.iter().enumerate() {
        let server = format!("{}:{}", VethPair::B4, 5000 + k);
        let client = client_of(&out.segments, &server).expect("client SYN captured");
        let up = reassemble(&out.segments, &client, &server).unwrap();
        check_pattern(
            &format!("{size} bytes client->server (XDP)"),
            &up,
            CLIENT_SEED,
            size,
        )
        .unwrap();
        // Nothing from the server: XDP sees only what b receives.
        assert!(!out.segments.iter().any(|s| s.src == server));
    }
}

#[test]
fn tap_filters_hosts_and_ports_v4_v6() {
    if !tests::require_root("tap_filters_hosts_and_ports_v4_v6") {
        return;
    }
    let v = VethPair::new().unwrap();
    // Port and host filter: only port 5100, only with 10.77.0.1.
    let w = Wstap::start(
        &v.b,
        &[
            "-i",
            &v.b_if,
            "--segments",
            "--hex",
            "--port",
            "5100",
            "--host",
            "10.77.0.0/24",
        ],
    )
    .unwrap();
    run_peers(peer(), &v.b, &v.a, "10.77.0.2:5101", 5000, 5000).unwrap();
    run_peers(peer(), &v.b, &v.a, "10.77.0.2:5100", 3000, 2000).unwrap();
    run_peers(peer(), &v.b, &v.a, "[fd77::2]:5100", 3000, 2000).unwrap(); // v6: host filter is v4 only
    settle();
    let out = w.stop().unwrap();
    assert!(!out.segments.is_empty());
    assert!(
        out.segments
            .iter()
            .all(|s| s.src.ends_with(":5100") || s.dst.ends_with(":5100")),
        "a segment outside --port 5100 was captured"
    );
    assert!(
        out.segments.iter().all(|s| s.src.starts_with("10.77.0.")),
        "v6 segment passed a v4 host filter"
    );
    let client = client_of(&out.segments, "10.77.0.2:5100").unwrap();
    check_pattern(
        "filtered v4",
        &reassemble(&out.segments, &client, "10.77.0.2:5100").unwrap(),
        CLIENT_SEED,
        3000,
    )
    .unwrap();

    // A host nobody talks to: no records at all.
    let w = Wstap::start(
        &v.b,
        &[
            "-i",
            &v.b_if,
            "--segments",
            "--host",
            "10.77.0.99",
            "--host",
            "fd00::/64",
        ],
    )
    .unwrap();
    run_peers(peer(), &v.b, &v.a, "10.77.0.2:5102", 5000, 5000).unwrap();
    run_peers(peer(), &v.b, &v.a, "[fd77::2]:5102", 5000, 5000).unwrap();
    settle();
    let out = w.stop().unwrap();
    let sum = parse_summary(&out.stderr).unwrap();
    assert!(
        out.segments.is_empty(),
        "records for a host outside the filter: {:?}",
        out.lines.first()
    );
    assert_eq!(sum.segments_matched, 0);
    assert!(sum.packets_seen > 0);

    // IPv6 works like IPv4: host prefix and port.
    let w = Wstap::start(
        &v.b,
        &[
            "-i",
            &v.b_if,
            "--segments",
            "--hex",
            "--host",
            "fd77::/64",
            "--port",
            "5200",
        ],
    )
    .unwrap();
    run_peers(peer(), &v.b, &v.a, "[fd77::2]:5200", 100_000, 70_000).unwrap();
    run_peers(peer(), &v.b, &v.a, "10.77.0.2:5200", 1000, 1000).unwrap();
    settle();
    let out = w.stop().unwrap();
    let server = "[fd77::2]:5200";
    let client = client_of(&out.segments, server).unwrap();
    assert!(client.starts_with("[fd77::1]:"), "{client}");
    check_pattern(
        "v6 up",
        &reassemble(&out.segments, &client, server).unwrap(),
        CLIENT_SEED,
        100_000,
    )
    .unwrap();
    check_pattern(
        "v6 down",
        &reassemble(&out.segments, server, &client).unwrap(),
        SERVER_SEED,
        70_000,
    )
    .unwrap();
    assert!(
        out.segments.iter().all(|s| s.src.starts_with('[')),
        "v4 segment passed a v6 host filter"
    );
}

#[test]
fn tap_vlan_subinterface() {
    if !tests::require_root("tap_vlan_subinterface")
        || !tests::require_tool("tap_vlan_subinterface", "ethtool")
    {
        return;
    }
    let v = VethPair::new().unwrap();
    for (ns, ifn, addr) in [
        (&v.a, &v.a_if, "10.78.0.1/24"),
        (&v.b, &v.b_if, "10.78.0.2/24"),
    ] {
        let vl = format!("{ifn}.7");
        if let Err(e) = ns.ip(&[
            "link", "add", "link", ifn, "name", &vl, "type", "vlan", "id", "7",
        ]) {
            tests::skip(
                "tap_vlan_subinterface",
                &format!(
                    "this kernel cannot make VLAN interfaces ({e}); \
                     tap_parses_crafted_frames still covers tag parsing"
                ),
            );
            return;
        }
        ns.ip(&["addr", "add", addr, "dev", &vl]).unwrap();
        ns.ip(&["link", "set", &vl, "up"]).unwrap();
    }
    // Without VLAN offload the tag is in the frame's bytes, which is what
    // XDP (and TC on a NIC without offload) parse.
    tests::netns::run(
        v.a.command("ethtool")
            .args(["-K", &v.a_if, "txvlan", "off"]),
    )
    .unwrap();
    tests::netns::run(
        v.b.command("ethtool")
            .args(["-K", &v.b_if, "txvlan", "off"]),
    )
    .unwrap();
    for attach in ["tc", "xdp"] {
        let w = Wstap::start(
            &v.b,
            &["-i", &v.b_if, "--attach", attach, "--segments", "--hex"],
        )
        .unwrap();
        run_peers(peer(), &v.b, &v.a, "10.78.0.2:5300", 200_000, 50_000).unwrap();
        settle();
        let out = w.stop().unwrap();
        let sum = parse_summary(&out.stderr).unwrap();
        assert_eq!(sum.parse_errors, 0, "{}", out.stderr);
        let server = "10.78.0.2:5300";
        let client = client_of(&out.segments, server)
            .unwrap_or_else(|| panic!("{attach}: nothing on the VLAN"));
        check_pattern(
            &format!("vlan {attach} up"),
            &reassemble(&out.segments, &client, server).unwrap(),
            CLIENT_SEED,
            200_000,
        )
        .unwrap();
        if attach == "tc" {
            check_pattern(
                "vlan tc down",
                &reassemble(&out.segments, server, &client).unwrap(),
                SERVER_SEED,
                50_000,
            )
            .unwrap();
        }
    }
}

/// Sends hand-made frames from namespace a: 802.1Q and 802.1ad+802.1Q
/// tagged TCP, IPv4 with options, IPv6 with hop-by-hop, routing,
/// destination-options and fragment headers, plus frames that must be
/// ignored (UDP, a non-first fragment) or counted as unparsable (a cut TCP
/// header). Each TCP frame carries `tag-N` as payload, seq 1000+N, sport 4000+N.
const FRAMES_PY: &str = r#"
import socket, struct, sys
ifname, dst = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', ''))
src = bytes.fromhex('020000000001')
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
def tcp(n, payload):
    return struct.pack('!HHIIBBHHH', 4000+n, 5700, 1000+n, 0, 5<<4, 0x18, 512, 0, 0) + payload
def ip4(l4, proto=6, opts=b'', frag=0):
    ihl = 5 + len(opts)//4
    h = struct.pack('!BBHHHBBH4s4s', (4<<4)|ihl, 0, ihl*4+len(l4), 1, frag, 64, proto, 0,
                    socket.inet_aton('10.77.0.1'), socket.inet_aton('10.77.0.2')) + opts
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + l4
def ip6(nh, rest):
    return struct.pack('!IHBB16s16s', 6<<28, len(rest), nh, 64,
                       socket.inet_pton(socket.AF_INET6, 'fd77::1'), socket.inet_pton(socket.AF_INET6, 'fd77::2')) + rest
def eth(t, body, tags=()):
    h = dst + src
    for tpid, vid in tags: h += struct.pack('!HH', tpid, vid)
    return h + struct.pack('!H', t) + body
frames = [
    eth(0x0800, ip4(tcp(1, b'tag-1')), [(0x8100, 7)]),
    eth(0x0800, ip4(tcp(2, b'tag-2')), [(0x88a8, 100), (0x8100, 7)]),
    eth(0x0800, ip4(tcp(3, b'tag-3'), opts=b'\x01\x01\x01\x00')),
    # hop-by-hop(0) -> routing(43) -> dest opts(60) -> fragment(44, offset 0) -> TCP
    eth(0x86dd, ip6(0, bytes([43, 0, 1, 4, 0, 0, 0, 0]) + bytes([60, 0, 0, 0, 0, 0, 0, 0])
                  + bytes([44, 0, 1, 4, 0, 0, 0, 0]) + bytes([6, 0, 0, 0, 0, 0, 0, 1]) + tcp(4, b'tag-4'))),
    eth(0x86dd, ip6(6, tcp(5, b'tag-5')), [(0x8100, 7)]),
    # ignored: UDP, and an IPv4 fragment that is not the first
    eth(0x0800, ip4(struct.pack('!HHHH', 1, 2, 8, 0), proto=17)),
    eth(0x0800, ip4(tcp(6, b'tag-6'), frag=100)),
    # unparsable: TCP header cut short
    eth(0x0800, ip4(tcp(7, b'')[:10])),
]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for f in frames: s.send(f)
"#;

#[test]
fn tap_parses_crafted_frames() {
    if !tests::require_root("tap_parses_crafted_frames")
        || !tests::require_tool("tap_parses_crafted_frames", "python3")
    {
        return;
    }
    let v = VethPair::new().unwrap();
    // /sys inside `ip netns exec` shows namespace b's interfaces.
    let out = tests::netns::run(
        v.b.command("cat")
            .arg(format!("/sys/class/net/{}/address", v.b_if)),
    )
    .unwrap();
    let mac = String::from_utf8_lossy(&out.stdout).trim().to_string();
    for attach in ["xdp", "tc"] {
        let w = Wstap::start(
            &v.b,
            &[
                "-i",
                &v.b_if,
                "--attach",
                attach,
                "--segments",
                "--hex",
                "-v",
            ],
        )
        .unwrap();
        tests::netns::run(
            v.a.command("python3")
                .args(["-c", FRAMES_PY, &v.a_if, &mac]),
        )
        .unwrap();
        settle();
        let out = w.stop().unwrap();
        let sum = parse_summary(&out.stderr).unwrap();
        for n in 1..=5u32 {
            let want = format!("tag-{n}");
            let seg = out
                .segments
                .iter()
                .find(|s| s.data == want.as_bytes())
                .unwrap_or_else(|| {
                    panic!("{attach}: frame {n} not captured; got {:#?}", out.lines)
                });
            assert_eq!(seg.seq, 1000 + n, "{attach}: frame {n}");
            assert!(
                seg.src.ends_with(&format!(":{}", 4000 + n)) && seg.dst.ends_with(":5700"),
                "{seg:?}"
            );
            assert_eq!(
                seg.src.starts_with('['),
                n >= 4,
                "{attach}: frame {n} family: {seg:?}"
            );
        }
        assert!(
            !out.segments.iter().any(|s| s.data == b"tag-6"),
            "{attach}: non-first fragment parsed as TCP"
        );
        assert!(
            out.segments.iter().all(|s| !s.dst.ends_with(":2")),
            "{attach}: UDP captured"
        );
        assert_eq!(
            sum.parse_errors, 1,
            "{attach}: the cut TCP header: {}",
            out.stderr
        );
        // With -v the kernel's diagnostics (aya-log) reach stderr.
        assert!(
            out.stderr.contains("cannot parse packet"),
            "{attach}: no kernel diagnostic: {}",
            out.stderr
        );
    }
}

#[test]
fn tap_tiny_ring_counts_losses() {
    if !tests::require_root("tap_tiny_ring_counts_losses") {
        return;
    }
    let v = VethPair::new().unwrap();
    let w = Wstap::start(
        &v.b,
        &["-i", &v.b_if, "--segments", "--hex", "--ring-size", "4096"],
    )
    .unwrap();
    let size = 4 << 20;
    run_peers(peer(), &v.b, &v.a, "10.77.0.2:5400", size, 0).unwrap();
    settle();
    let out = w.stop().unwrap();
    let s = parse_summary(&out.stderr).unwrap();
    eprintln!("{}", out.stderr);
    assert!(
        s.records_lost > 0,
        "a 4 KiB ring took a 4 MiB burst without loss?"
    );
    // Everything the user side got is what the kernel delivered ...
    assert_eq!(s.segments, s.records);
    assert_eq!(s.bytes, s.records_bytes);
    assert_eq!(s.segments as usize, out.segments.len());
    // ... and delivered + lost (+ cut short) is what matched.
    assert_eq!(
        s.records_bytes + s.bytes_lost + s.cut_short_bytes,
        s.bytes_matched
    );
    assert!(s.bytes_matched >= size);
    // The loss is visible as a hole in the flow's sequence space.
    let server = "10.77.0.2:5400";
    let client = client_of(&out.segments, server).unwrap();
    let err = reassemble(&out.segments, &client, server).expect_err("loss must leave a hole");
    assert!(err.to_string().contains("hole"), "{err}");
}

#[test]
fn tap_loopback_shows_each_segment_once() {
    if !tests::require_root("tap_loopback_shows_each_segment_once") {
        return;
    }
    let ns = Netns::new("lo").unwrap();
    let w = Wstap::start(&ns, &["-i", "lo", "--segments", "--hex"]).unwrap();
    run_peers(peer(), &ns, &ns, "127.0.0.1:5500", 300_000, 1000).unwrap();
    settle();
    let out = w.stop().unwrap();
    let server = "127.0.0.1:5500";
    let client = client_of(&out.segments, server).unwrap();
    check_pattern(
        "lo up",
        &reassemble(&out.segments, &client, server).unwrap(),
        CLIENT_SEED,
        300_000,
    )
    .unwrap();
    check_pattern(
        "lo down",
        &reassemble(&out.segments, server, &client).unwrap(),
        SERVER_SEED,
        1000,
    )
    .unwrap();
    let mut keys: Vec<_> = out
        .segments
        .iter()
        .map(|s| (s.src.clone(), s.seq, s.len, s.flags.clone()))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "a loopback segment was reported twice");
}

#[test]
fn tap_kill_9_leaves_nothing_attached() {
    if !tests::require_root("tap_kill_9_leaves_nothing_attached")
        || !tests::require_tool("tap_kill_9", "bpftool")
    {
        return;
    }
    let v = VethPair::new().unwrap();
    for attach in ["tc", "xdp"] {
        let w = Wstap::start(&v.b, &["-i", &v.b_if, "--attach", attach]).unwrap();
        // The links wstap holds, as the kernel lists them.
        let (links, progs) = bpf_fds(w.pid()).unwrap();
        let want = if attach == "tc" { "tcx" } else { "xdp" };
        assert!(
            links.iter().any(|(_, t)| t == want),
            "{attach}: no {want} link held: {links:?}"
        );
        let all = kernel_link_ids().unwrap();
        assert!(
            links.iter().all(|(id, _)| all.contains(id)),
            "links {links:?} not in the kernel's list {all:?}"
        );
        if attach == "xdp" {
            assert!(bpftool_net(&v.b, &v.b_if).unwrap().contains(" generic id "));
        }
        let out = w.signal_and_wait(libc::SIGKILL).unwrap();
        assert!(!out.status.success());
        let link_ids: Vec<u32> = links.iter().map(|(id, _)| *id).collect();
        let left = still_in_kernel(&link_ids, &progs).unwrap();
        assert!(
            left.is_empty(),
            "{attach}: still in the kernel after kill -9: {left:?}"
        );
        let net = bpftool_net(&v.b, &v.b_if).unwrap();
        assert!(!net.contains(" id "), "{attach}: still attached:\n{net}");
    }
}

#[test]
fn tap_sigterm_detaches_and_summarises() {
    if !tests::require_root("tap_sigterm_detaches_and_summarises")
        || !tests::require_tool("tap_sigterm", "bpftool")
    {
        return;
    }
    let v = VethPair::new().unwrap();
    // --segments: one stdout line per segment, counted against the summary.
    let w = Wstap::start(&v.b, &["-i", &v.b_if, "--segments"]).unwrap();
    let (links, _) = bpf_fds(w.pid()).unwrap();
    assert_eq!(
        links.iter().filter(|(_, t)| t == "tcx").count(),
        2,
        "ingress and egress: {links:?}"
    );
    run_peers(peer(), &v.b, &v.a, "10.77.0.2:5600", 1000, 1000).unwrap();
    settle();
    let out = w.signal_and_wait(libc::SIGTERM).unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    let s = parse_summary(&out.stderr).unwrap();
    // SYN, SYN-ACK, FIN each way and the payload; both directions.
    assert!(s.segments >= 6 && s.bytes == 2000, "{}", out.stderr);
    assert_eq!(s.segments as usize, out.lines.len());
    let all = kernel_link_ids().unwrap();
    assert!(
        links.iter().all(|(id, _)| !all.contains(id)),
        "links left after SIGTERM"
    );
}

/// Issue 7 item 10: deleting the tapped interface ends the capture with the
/// summary of what was captured and an error naming the interface, instead
/// of leaving wstap running with nothing attached.
#[test]
fn tap_interface_deleted_ends_with_summary_and_error() {
    if !tests::require_root("tap_interface_deleted_ends_with_summary_and_error") {
        return;
    }
    let v = VethPair::new().unwrap();
    let w = Wstap::start(&v.b, &["-i", &v.b_if, "--segments"]).unwrap();
    run_peers(peer(), &v.b, &v.a, "10.77.0.2:5610", 700, 300).unwrap();
    settle();
    v.b.ip(&["link", "del", &v.b_if]).unwrap();
    let out = w.wait_exit(Duration::from_secs(15)).unwrap();
    assert!(!out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("interface {} went away", v.b_if)),
        "{}",
        out.stderr
    );
    // What was captured before is summarised and was printed.
    let s = parse_summary(&out.stderr).unwrap();
    assert_eq!(s.bytes, 1000, "{}", out.stderr);
    assert_eq!(s.segments as usize, out.lines.len());

    // Decoding: the connection is finished (flushed, its close printed) and
    // the decode summary is there too, before the error.
    let v = VethPair::new().unwrap();
    let w = Wstap::start(&v.b, &["-i", &v.b_if, "--format", "json"]).unwrap();
    run_peers(peer(), &v.b, &v.a, "10.77.0.2:5611", 700, 300).unwrap();
    settle();
    v.b.ip(&["link", "del", &v.b_if]).unwrap();
    let out = w.wait_exit(Duration::from_secs(15)).unwrap();
    assert!(!out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains("went away"), "{}", out.stderr);
    assert!(
        out.stderr.contains("wstap: 1 connections"),
        "decode summary missing: {}",
        out.stderr
    );
    assert!(
        out.lines
            .iter()
            .any(|l| l.contains("\"event\":\"conn_close\"")),
        "the connection's close: {:?}",
        out.lines
    );
}

fn assert_fails_with(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
}

#[test]
fn tap_error_messages() {
    if !tests::require_root("tap_error_messages") {
        return;
    }
    let ns = Netns::new("err").unwrap();
    assert_fails_with(
        &wstap_output(Some(&ns), &[], &["-i", "nosuchif0"]).unwrap(),
        "no interface named \"nosuchif0\"",
    );
    assert_fails_with(
        &wstap_output(Some(&ns), &[], &["-i", "lo", "--host", "10.0.0.300"]).unwrap(),
        "--host",
    );
    assert_fails_with(
        &wstap_output(Some(&ns), &[], &["-i", "lo", "--host", "10.0.0.0/40"]).unwrap(),
        "prefix length",
    );
    assert_fails_with(
        &wstap_output(Some(&ns), &[], &["-i", "lo", "--port", "0"]).unwrap(),
        "--port 0",
    );
    assert_fails_with(
        &wstap_output(Some(&ns), &[], &["-i", "lo", "--verify-checksums"]).unwrap(),
        "--verify-checksums works on capture files (-r) only",
    );
    assert_fails_with(
        &wstap_output(Some(&ns), &[], &["-i", "lo", "--port", "70000"]).unwrap(),
        "70000",
    );
    assert_fails_with(
        &wstap_output(
            Some(&ns),
            &[],
            &["-i", "lo", "--attach", "xdp", "--xdp-mode", "driver"],
        )
        .unwrap(),
        "--xdp-mode skb",
    );
    if tests::which("setpriv").is_some() {
        let nobody = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ];
        let out = wstap_output(Some(&ns), &nobody, &["-i", "lo"]).unwrap();
        // The binary may not be readable by nobody (e.g. under /root); then
        // there is no message of ours to check.
        if !String::from_utf8_lossy(&out.stderr).contains("Permission denied") {
            assert_fails_with(&out, "CAP_BPF and CAP_NET_ADMIN");
        }
        let no_bpf = ["setpriv", "--bounding-set=-bpf,-sys_admin"];
        assert_fails_with(
            &wstap_output(Some(&ns), &no_bpf, &["-i", "lo"]).unwrap(),
            "needs CAP_BPF,",
        );
        let no_net = ["setpriv", "--bounding-set=-net_admin"];
        assert_fails_with(
            &wstap_output(Some(&ns), &no_net, &["-i", "lo"]).unwrap(),
            "needs CAP_NET_ADMIN,",
        );
    }
}
