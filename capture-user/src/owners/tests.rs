use super::*;
use std::net::SocketAddr;

fn comm(s: &str) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..s.len()].copy_from_slice(s.as_bytes());
    c
}

fn fact(event: u8, sk: u64, tgid: u32, name: &str, local: &str, remote: &str) -> SockFact {
    SockFact {
        event,
        sk,
        tgid,
        comm: comm(name),
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        selected: 0,
        passive: false,
        ts_ns: 0,
    }
}

const ANY: &str = "0.0.0.0:0";

#[test]
fn client_connect_then_established_joins() {
    let o = Owners::new();
    o.apply(&fact(sock_event::CONNECT, 1, 42, "client", ANY, ANY));
    assert!(o.is_empty());
    let e0 = o.epoch();
    o.apply(&fact(
        sock_event::ESTABLISHED,
        1,
        0,
        "",
        "10.0.0.1:40000",
        "10.0.0.2:80",
    ));
    assert!(o.epoch() > e0);
    let got = o.owner_of(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:80".parse().unwrap(),
    );
    assert_eq!(
        got.map(|w| (w.pid, w.comm.to_string())),
        Some((42, "client".to_string()))
    );
    // The other end is not this process.
    assert_eq!(
        o.owner_of(
            "10.0.0.2:80".parse().unwrap(),
            "10.0.0.1:40000".parse().unwrap()
        ),
        None
    );
}

#[test]
fn server_established_then_first_read_joins() {
    let o = Owners::new();
    o.apply(&fact(
        sock_event::ESTABLISHED,
        7,
        0,
        "",
        "10.0.0.2:80",
        "10.0.0.1:40000",
    ));
    assert!(o.is_empty());
    o.apply(&fact(sock_event::IO, 7, 9, "server", ANY, ANY));
    let got = o.owner_of(
        "10.0.0.2:80".parse().unwrap(),
        "10.0.0.1:40000".parse().unwrap(),
    );
    assert_eq!(
        got.map(|w| (w.pid, w.comm.to_string())),
        Some((9, "server".into()))
    );
}

#[test]
fn a_reused_socket_pointer_does_not_inherit_the_old_owner() {
    let o = Owners::new();
    o.apply(&fact(
        sock_event::ESTABLISHED,
        7,
        0,
        "",
        "10.0.0.2:80",
        "10.0.0.1:1",
    ));
    o.apply(&fact(sock_event::IO, 7, 9, "old", ANY, ANY));
    o.apply(&fact(
        sock_event::ESTABLISHED,
        7,
        0,
        "",
        "10.0.0.2:80",
        "10.0.0.1:2",
    ));
    assert_eq!(
        o.owner_of(
            "10.0.0.2:80".parse().unwrap(),
            "10.0.0.1:2".parse().unwrap()
        ),
        None
    );
    o.apply(&fact(sock_event::IO, 7, 10, "new", ANY, ANY));
    let new = o.owner_of(
        "10.0.0.2:80".parse().unwrap(),
        "10.0.0.1:2".parse().unwrap(),
    );
    assert_eq!(new.map(|w| w.pid), Some(10));
    // The first connection keeps its owner.
    let old = o.owner_of(
        "10.0.0.2:80".parse().unwrap(),
        "10.0.0.1:1".parse().unwrap(),
    );
    assert_eq!(old.map(|w| w.pid), Some(9));
}

#[test]
fn a_sender_other_than_the_owner_takes_over() {
    let o = Owners::new();
    o.apply(&fact(sock_event::CONNECT, 3, 5, "parent", ANY, ANY));
    o.apply(&fact(
        sock_event::ESTABLISHED,
        3,
        0,
        "",
        "10.0.0.1:3",
        "10.0.0.2:80",
    ));
    o.apply(&fact(sock_event::IO, 3, 6, "child", ANY, ANY));
    let got = o.owner_of(
        "10.0.0.1:3".parse().unwrap(),
        "10.0.0.2:80".parse().unwrap(),
    );
    assert_eq!(got.map(|w| w.pid), Some(6));
}

#[test]
fn v4_mapped_addresses_match_v4_packets() {
    let o = Owners::new();
    o.apply(&fact(sock_event::CONNECT, 1, 42, "c", ANY, ANY));
    o.apply(&fact(
        sock_event::ESTABLISHED,
        1,
        0,
        "",
        "[::ffff:10.0.0.1]:5",
        "[::ffff:10.0.0.2]:80",
    ));
    assert!(o
        .owner_of(
            "10.0.0.1:5".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap()
        )
        .is_some());
}

#[test]
fn the_table_is_bounded_and_counts_evictions() {
    let o = Owners::new();
    for i in 0..(OWNERS_MAX as u64 + 10) {
        let local = SocketAddr::new("10.0.0.1".parse().unwrap(), (i % 60000) as u16);
        let remote = SocketAddr::new("10.0.0.2".parse().unwrap(), (i / 60000) as u16 + 1);
        o.insert(local, remote, Owner::new(1, b"x"));
    }
    assert_eq!(o.len(), OWNERS_MAX);
    assert_eq!(o.evicted(), 10);
}

#[test]
fn an_accepted_connection_is_its_listeners_until_its_first_read() {
    let o = Owners::new();
    o.apply(&fact(
        sock_event::LISTEN,
        1,
        50,
        "server",
        "0.0.0.0:80",
        ANY,
    ));
    let mut est = fact(
        sock_event::ESTABLISHED,
        2,
        0,
        "",
        "10.0.0.2:80",
        "10.0.0.1:40000",
    );
    est.passive = true;
    o.apply(&est);
    let (server, client) = (
        "10.0.0.2:80".parse().unwrap(),
        "10.0.0.1:40000".parse().unwrap(),
    );
    assert_eq!(o.owner_of(server, client).map(|w| w.pid), Some(50));
    // A worker process accepts and reads: it is the owner from then on.
    o.apply(&fact(sock_event::IO, 2, 51, "worker", ANY, ANY));
    assert_eq!(o.owner_of(server, client).map(|w| w.pid), Some(51));
    // An active open on the same port is not the listener's.
    let mut out = fact(
        sock_event::ESTABLISHED,
        3,
        0,
        "",
        "10.0.0.2:80",
        "10.0.0.9:5",
    );
    out.passive = false;
    o.apply(&out);
    assert_eq!(
        o.owner_of(server, "10.0.0.9:5".parse().unwrap()),
        None,
        "not accepted"
    );
}

#[test]
fn the_owner_filter_shows_connections_with_a_selected_end() {
    let o = Owners::with_selection(Some(Selection {
        pids: vec![7],
        comms: vec!["curl".into()],
    }));
    let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let c: SocketAddr = "10.0.0.3:2000".parse().unwrap();
    assert!(!o.shown(a, b), "no owner known: not shown");
    // Found in /proc: judged here.
    assert!(o.insert(a, b, Owner::new(7, b"app")).selected);
    assert!(o.shown(a, b) && o.shown(b, a), "either direction");
    assert!(!o.insert(c, b, Owner::new(8, b"other")).selected);
    assert!(!o.shown(c, b));
    assert!(o.insert(b, c, Owner::new(9, b"curl")).selected);
    assert!(o.shown(c, b), "the other end is selected by comm");
    // From the kernel: its verdict is taken.
    let mut f = fact(sock_event::CONNECT, 5, 10, "x", ANY, ANY);
    f.selected = capture_common::verdict::SELECTED;
    o.apply(&f);
    o.apply(&fact(
        sock_event::ESTABLISHED,
        5,
        0,
        "",
        "10.0.0.1:3000",
        "10.0.0.2:80",
    ));
    assert!(o.shown(
        "10.0.0.2:80".parse().unwrap(),
        "10.0.0.1:3000".parse().unwrap()
    ));
    // Without a filter everything is shown.
    assert!(Owners::new().shown(a, b));
}

#[test]
fn an_owners_place_is_read_from_proc() {
    let o = Owners::new();
    let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
    let me = o.insert(a, b, Owner::new(std::process::id(), b"me"));
    assert_eq!(me.place.netns, own_netns());
    assert!(me.place.cgroup.is_some_and(|c| c.starts_with('/')));
}

#[test]
fn a_reused_pointer_of_a_socket_older_than_wstap_does_not_own_an_accepted_one() {
    let o = Owners::new();
    o.apply(&fact(
        sock_event::LISTEN,
        1,
        50,
        "server",
        "10.0.0.2:80",
        ANY,
    ));
    // A socket established before wstap started: only its reads are seen.
    o.apply(&fact(sock_event::IO, 9, 31, "early", ANY, ANY));
    // Freed; the pointer comes back as an accepted socket of the server.
    let mut est = fact(
        sock_event::ESTABLISHED,
        9,
        0,
        "",
        "10.0.0.2:80",
        "10.0.0.1:40000",
    );
    est.passive = true;
    o.apply(&est);
    let (server, client) = (
        "10.0.0.2:80".parse().unwrap(),
        "10.0.0.1:40000".parse().unwrap(),
    );
    assert_eq!(o.owner_of(server, client).map(|w| w.pid), Some(50));
}
