use super::*;
use proptest::prelude::*;

fn parse(s: &str) -> Result<Expr, ExprError> {
    let words: Vec<String> = s.split_whitespace().map(String::from).collect();
    Expr::parse(&words)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Does `expr` keep a segment `src:sport -> dst:dport`? Checked three
/// ways that must agree: the tree, the compiled program, the Filter.
fn keeps(expr: &str, src: &str, sport: u16, dst: &str, dport: u16) -> bool {
    let e = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let (s, d) = (ip(src), ip(dst));
    let tree = e.tree.eval(s, sport, d, dport);
    assert_eq!(
        tree,
        e.matches(s, sport, d, dport),
        "{expr}: tree and program disagree"
    );
    tree
}

#[test]
fn primitives_mean_what_pcap_filter_says() {
    assert!(keeps("port 80", "10.0.0.1", 5000, "10.0.0.2", 80));
    assert!(keeps("port 80", "10.0.0.2", 80, "10.0.0.1", 5000));
    assert!(!keeps("port 80", "10.0.0.2", 81, "10.0.0.1", 5000));
    assert!(keeps("dst port 80", "10.0.0.1", 5000, "10.0.0.2", 80));
    assert!(!keeps("dst port 80", "10.0.0.2", 80, "10.0.0.1", 5000));
    assert!(keeps("src port 80", "10.0.0.2", 80, "10.0.0.1", 5000));
    assert!(keeps(
        "portrange 8000-8100",
        "10.0.0.1",
        8100,
        "10.0.0.2",
        1
    ));
    assert!(!keeps(
        "portrange 8000-8100",
        "10.0.0.1",
        8101,
        "10.0.0.2",
        1
    ));
    assert!(keeps("src and dst port 7", "1.1.1.1", 7, "2.2.2.2", 7));
    assert!(!keeps("src and dst port 7", "1.1.1.1", 7, "2.2.2.2", 8));
    assert!(keeps("src or dst port 8", "1.1.1.1", 7, "2.2.2.2", 8));
    assert!(keeps("host 10.0.0.5", "10.0.0.5", 1, "10.0.0.6", 2));
    assert!(keeps("host 10.0.0.5", "10.0.0.6", 1, "10.0.0.5", 2));
    assert!(!keeps("src host 10.0.0.5", "10.0.0.6", 1, "10.0.0.5", 2));
    assert!(keeps("src 10.0.0.6", "10.0.0.6", 1, "10.0.0.5", 2));
    assert!(keeps("10.0.0.6", "10.0.0.5", 1, "10.0.0.6", 2));
    assert!(keeps("net 10.0.0.0/8", "10.200.1.1", 1, "192.168.1.1", 2));
    assert!(keeps("net 10/8", "10.200.1.1", 1, "192.168.1.1", 2));
    assert!(keeps("net 10.200", "10.200.1.1", 1, "192.168.1.1", 2));
    assert!(!keeps("net 10.201", "10.200.1.1", 1, "192.168.1.1", 2));
    assert!(keeps(
        "net 192.168.0.0 mask 255.255.0.0",
        "10.0.0.1",
        1,
        "192.168.9.9",
        2
    ));
    assert!(keeps("net fd00::/8", "fd12::1", 1, "fe80::1", 2));
    assert!(!keeps("net fd00::/8", "10.0.0.1", 1, "10.0.0.2", 2));
    assert!(keeps("host ::1", "::1", 1, "::1", 2));
    assert!(keeps("tcp", "::1", 1, "::1", 2));
    assert!(keeps("ip", "1.1.1.1", 1, "2.2.2.2", 2));
    assert!(!keeps("ip", "::1", 1, "::1", 2));
    assert!(keeps("ip6", "::1", 1, "::1", 2));
    assert!(keeps("tcp dst port 80", "1.1.1.1", 1, "2.2.2.2", 80));
    assert!(!keeps("ip6 and port 80", "1.1.1.1", 1, "2.2.2.2", 80));
    // An IPv4-mapped address is IPv6 on the wire, as in the kernel.
    assert!(!keeps("host 1.2.3.4", "::ffff:1.2.3.4", 1, "::1", 2));
}

#[test]
fn and_or_have_equal_precedence_left_to_right_and_not_binds_tightest() {
    // (port 1 or port 2) and port 3, not port 1 or (port 2 and port 3).
    assert!(!keeps(
        "port 1 or port 2 and port 3",
        "1.1.1.1",
        1,
        "2.2.2.2",
        9
    ));
    assert!(keeps(
        "port 1 or port 2 and port 3",
        "1.1.1.1",
        1,
        "2.2.2.2",
        3
    ));
    assert!(keeps(
        "port 1 or ( port 2 and port 3 )",
        "1.1.1.1",
        1,
        "2.2.2.2",
        9
    ));
    assert!(keeps("not port 1 and port 2", "1.1.1.1", 3, "2.2.2.2", 2));
    assert!(!keeps("! ( port 1 || port 2 )", "1.1.1.1", 3, "2.2.2.2", 2));
    assert!(keeps("port 2 && ! port 1", "1.1.1.1", 3, "2.2.2.2", 2));
    // Punctuation needs no spaces.
    assert!(keeps("!(port 1||port 2)", "1.1.1.1", 3, "2.2.2.2", 4));
}

#[test]
fn a_bare_value_repeats_the_qualifiers_before_it() {
    let e = parse("tcp dst port 80 or 443").unwrap();
    let both = parse("tcp dst port 80 or tcp dst port 443").unwrap();
    assert_eq!(e.tree, both.tree);
    assert!(keeps("port 80 and not 443", "1.1.1.1", 80, "2.2.2.2", 5));
    assert!(!keeps("port 80 and not 443", "1.1.1.1", 80, "2.2.2.2", 443));
    assert!(keeps(
        "src host 1.1.1.1 or 3.3.3.3",
        "3.3.3.3",
        1,
        "2.2.2.2",
        2
    ));
    assert!(!keeps(
        "src host 1.1.1.1 or 3.3.3.3",
        "2.2.2.2",
        1,
        "3.3.3.3",
        2
    ));
}

#[test]
fn names_resolve_once_and_services_are_looked_up() {
    assert!(keeps("host localhost", "127.0.0.1", 1, "10.0.0.1", 2));
    if std::fs::read_to_string("/etc/services").is_ok_and(|s| s.contains("\nhttp\t")) {
        assert!(keeps("port http", "1.1.1.1", 80, "2.2.2.2", 5));
    }
}

/// The message and the caret's column and width.
fn refusal(s: &str) -> (String, usize, usize) {
    let e = parse(s).expect_err(s);
    let shown = e.to_string();
    let caret_line = shown.lines().nth(2).unwrap_or_else(|| panic!("{shown}"));
    let col = caret_line.find('^').unwrap() - 2;
    let width = caret_line.matches('^').count();
    assert_eq!(shown.lines().nth(1).unwrap(), format!("  {s}"), "{shown}");
    (e.why, col, width)
}

#[test]
fn what_it_cannot_evaluate_is_refused_with_the_token_pointed_at() {
    let (why, col, w) = refusal("port 80 and udp");
    assert!(why.contains("TCP only"), "{why}");
    assert_eq!((col, w), (12, 3));
    let (why, col, _) = refusal("tcp[13] & 2 != 0");
    assert!(why.contains("byte offsets"), "{why}");
    assert_eq!(col, 3);
    let (why, col, w) = refusal("ether host 00:11:22:33:44:55");
    assert!(why.contains("link-layer"), "{why}");
    assert_eq!((col, w), (0, 5));
    let (why, col, _) = refusal("greater 100");
    assert!(why.contains("not supported"), "{why}");
    assert_eq!(col, 0);
    let (why, col, _) = refusal("port 80 and");
    assert!(why.contains("unexpected end"), "{why}");
    assert_eq!(col, 11);
    let (why, col, _) = refusal("( port 80");
    assert!(why.contains("never closed"), "{why}");
    assert_eq!(col, 0);
    let (why, col, _) = refusal("port 80 )");
    assert!(why.contains("no ( to close"), "{why}");
    assert_eq!(col, 8);
    let (why, col, w) = refusal("port 99999");
    assert!(why.contains("outside 1-65535"), "{why}");
    assert_eq!((col, w), (5, 5));
    let (why, _, _) = refusal("port nosuchservice");
    assert!(why.contains("/etc/services"), "{why}");
    let (why, _, _) = refusal("portrange 90-80");
    assert!(why.contains("low end"), "{why}");
    let (why, _, _) = refusal("net 10.0.0.1/8");
    assert!(why.contains("non-network bits"), "{why}");
    let (why, _, _) = refusal("host 10.0.0.0/8");
    assert!(why.contains("belongs to `net`"), "{why}");
    let (why, col, _) = refusal("port 80 port 81");
    assert!(why.contains("expected `and` or `or`"), "{why}");
    assert_eq!(col, 8);
    let (why, _, _) = refusal("net 255.0.255.0 mask 255.0.255.0");
    assert!(why.contains("contiguous"), "{why}");
    let (why, _, _) = refusal("ip6 net 10.0.0.0/8");
    assert!(why.contains("family"), "{why}");
    let (why, col, _) = refusal("host and port 1");
    assert!(why.contains("expected a value for host"), "{why}");
    assert_eq!(col, 5);
    let (why, _, _) = refusal("port 1 or or port 2");
    assert!(why.contains("primitive"), "{why}");
    let long = vec!["port 1"; 40].join(" or ");
    let (why, _, _) = refusal(&long);
    assert!(why.contains("at most 64"), "{why}");
}

/// The text of a tree, fully parenthesised, for the parse round trip.
fn text(n: &Node) -> String {
    let d = |d: &Dir| match d {
        Dir::Either => "",
        Dir::Src => "src ",
        Dir::Dst => "dst ",
        Dir::Both => "src and dst ",
    };
    match n {
        Node::True => "tcp".into(),
        Node::Family(4) => "ip".into(),
        Node::Family(_) => "ip6".into(),
        Node::Net { dir, prefix } => format!("{}net {}/{}", d(dir), prefix.addr, prefix.prefix_len),
        Node::Port { dir, lo, hi } if lo == hi => format!("{}port {lo}", d(dir)),
        Node::Port { dir, lo, hi } => format!("{}portrange {lo}-{hi}", d(dir)),
        Node::And(a, b) => format!("( {} and {} )", text(a), text(b)),
        Node::Or(a, b) => format!("( {} || {} )", text(a), text(b)),
        Node::Not(a) => format!("not {}", text(a)),
    }
}

/// Addresses and ports from small pools, so that random primitives and
/// random packets meet often.
pub(crate) fn any_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..4).prop_map(|(a, b)| IpAddr::from([10, a, 0, b])),
        (0u16..3, 0u16..3).prop_map(|(a, b)| IpAddr::from([0xfd00, a, 0, 0, 0, 0, 0, b])),
    ]
}

pub(crate) fn any_port() -> impl Strategy<Value = u16> {
    prop_oneof![1u16..6, Just(80), Just(65535)]
}

fn any_dir() -> impl Strategy<Value = Dir> {
    prop_oneof![
        Just(Dir::Either),
        Just(Dir::Src),
        Just(Dir::Dst),
        Just(Dir::Both)
    ]
}

pub(crate) fn any_tree() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        Just(Node::True),
        prop_oneof![Just(FAMILY_V4), Just(FAMILY_V6)].prop_map(Node::Family),
        (any_dir(), any_addr(), 0u8..=128).prop_map(|(dir, a, len)| {
            let len = if a.is_ipv4() { len % 33 } else { len };
            let prefix = HostPrefix::parse(&format!("{a}/{len}")).unwrap();
            Node::Net { dir, prefix }
        }),
        (any_dir(), any_port(), any_port()).prop_map(|(dir, a, b)| Node::Port {
            dir,
            lo: a.min(b),
            hi: a.max(b),
        }),
    ];
    leaf.prop_recursive(5, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Node::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Node::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Node::Not(Box::new(a))),
        ]
    })
}

proptest! {
    /// The compiled program means what the tree means, on every packet.
    #[test]
    fn the_program_agrees_with_the_tree(
        tree in any_tree(),
        packets in proptest::collection::vec((any_addr(), any_port(), any_port(), any::<bool>()), 16),
    ) {
        let prog = tree.compile().expect("small trees fit");
        for (a, sp, dp, swap) in packets {
            // Both ends of one family, as in a real packet.
            let b = if a.is_ipv4() { IpAddr::from([10, 1, 0, 1]) } else { ip("fd00:1::1") };
            let (s, d) = if swap { (b, a) } else { (a, b) };
            prop_assert_eq!(tree.eval(s, sp, d, dp), run(&prog, s, sp, d, dp), "{}", text(&tree));
        }
    }

    /// Printing a tree and parsing the text gives the same tree.
    #[test]
    fn printed_trees_parse_back(tree in any_tree()) {
        let t = text(&tree);
        let parsed = parse(&t).map_err(|e| TestCaseError::fail(format!("{t}: {e}")))?;
        prop_assert_eq!(parsed.tree, tree, "{}", t);
    }
}

#[test]
fn libpcap_rules_the_review_found() {
    use clap::Parser as _;
    // After a group, a bare value takes the qualifiers from before it.
    let a = parse("port 80 and ( host 1.1.1.1 ) or 443").unwrap();
    let b = parse("port 80 and ( host 1.1.1.1 ) or port 443").unwrap();
    assert_eq!(a.tree, b.tree);
    let (why, col, _) = refusal("tcp or 443");
    assert!(why.contains("after `tcp`"), "{why}");
    assert_eq!(col, 7);
    let (why, _, _) = refusal("ip port 80");
    assert!(why.contains("not a valid qualifier pair"), "{why}");
    let (why, col, _) = refusal("tcp 80");
    assert!(
        why.contains("expected host, net, port or portrange after `tcp`"),
        "{why}"
    );
    assert_eq!(col, 4);
    for numeric in ["10.1", "010.0.0.1", "0x7f.1"] {
        let (why, _, _) = refusal(&format!("host {numeric}"));
        assert!(why.contains("not a full address"), "{numeric}: {why}");
    }
    assert!(keeps("portrange 0-1023", "1.1.1.1", 80, "2.2.2.2", 5000));
    let (why, _, _) = refusal("host [::1]");
    assert!(why.contains("brackets"), "{why}");
    // Hostile lengths are refused while parsing, not by overflowing the stack.
    for hostile in [
        "!".repeat(100_000),
        "(".repeat(100_000),
        vec!["port 1"; 5000].join(" or "),
    ] {
        let e = Expr::parse(std::slice::from_ref(&hostile)).expect_err("refused");
        assert!(
            e.why.contains("too deep") || e.why.contains("too long"),
            "{}",
            e.why
        );
    }
    let empty = crate::cli::Cli::try_parse_from(["wstap", "-r", "f", " "]).unwrap();
    assert_eq!(crate::filter::Filter::from_cli(&empty).unwrap().expr, None);
}
