//! Filter expressions: the part of pcap-filter(7) people type after
//! tcpdump's options (`port 8080 and host 10.0.0.5`, `net 10.0.0.0/8 and
//! not port 22`, `src portrange 8000-8100 or (ip6 and dst host ::1)`).
//!
//! The text is parsed once into a [`Node`] tree, then compiled into the
//! postfix program the kernel runs ([`capture_common::expr`]); user space
//! runs that same program on capture files, so live and offline select the
//! same segments. [`Node::eval`] evaluates the tree directly: it is the
//! reference the property tests hold the compiled program (and the kernel)
//! against.
//!
//! Grammar, as libpcap's: `not` binds tightest; `and` and `or` have equal
//! precedence and group left to right (`a or b and c` is `(a or b) and c`).
//! A primitive is `[tcp|ip|ip6] [src|dst|src or dst|src and dst]
//! [host|net|port|portrange] ID`; a bare ID repeats the qualifiers of the
//! primitive before it (`port 80 or 443`; after a parenthesised group,
//! those from before the group), or means `host ID` when there is none (an
//! extension: libpcap wants a qualifier there). Also beyond libpcap: the
//! short `net 10/8`. A value that only looks numeric (`host 10.1`) is
//! refused rather than read the way the system resolver would. Whatever else pcap-filter(7) knows (`udp`, `ether`, `vlan`,
//! `tcp[13]`, `greater`, …) is refused with the token pointed at: wstap
//! never evaluates a narrower or wider filter than the one typed.

use std::net::{IpAddr, ToSocketAddrs};

use capture_common::expr::{dir, op, ExprFields, ExprInsn, ExprProgram, EXPR_MAX};
use capture_common::{FAMILY_V4, FAMILY_V6};

use super::HostPrefix;

/// An expression refused, with where: shown as the expression with a caret
/// line under the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter expression: {why}\n  {text}\n  {caret}")]
pub struct ExprError {
    pub why: String,
    pub text: String,
    /// Byte offset of the offending token in `text`.
    pub at: usize,
    caret: String,
}

impl ExprError {
    fn new(text: &str, at: usize, len: usize, why: impl Into<String>) -> Self {
        let col = text[..at.min(text.len())].chars().count();
        ExprError {
            why: why.into(),
            // Tabs and newlines inside a word would shift the caret.
            text: text
                .chars()
                .map(|c| if c.is_whitespace() { ' ' } else { c })
                .collect(),
            at,
            caret: format!("{}{}", " ".repeat(col), "^".repeat(len.max(1))),
        }
    }
}

/// Which end a host or port primitive tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Either,
    Src,
    Dst,
    Both,
}

impl Dir {
    fn code(self) -> u8 {
        match self {
            Dir::Either => dir::EITHER,
            Dir::Src => dir::SRC,
            Dir::Dst => dir::DST,
            Dir::Both => dir::BOTH,
        }
    }

    fn apply(self, s: bool, d: bool) -> bool {
        match self {
            Dir::Either => s || d,
            Dir::Src => s,
            Dir::Dst => d,
            Dir::Both => s && d,
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `tcp`: everything wstap captures.
    True,
    /// `ip` (IPv4) or `ip6`.
    Family(u8),
    /// `host` or `net`: an address prefix.
    Net {
        dir: Dir,
        prefix: HostPrefix,
    },
    /// `port` or `portrange`.
    Port {
        dir: Dir,
        lo: u16,
        hi: u16,
    },
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
}

fn family_of(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        FAMILY_V4
    } else {
        FAMILY_V6
    }
}

impl Node {
    /// The reference meaning: true when a segment from `src`:`sport` to
    /// `dst`:`dport` passes. Addresses are taken as they are on the wire
    /// (an IPv4-mapped IPv6 address is IPv6), both of one family, as in
    /// every packet (the kernel checks the packet's family once, this
    /// checks each address).
    pub fn eval(&self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> bool {
        match self {
            Node::True => true,
            Node::Family(f) => family_of(src) == *f,
            Node::Net { dir, prefix } => {
                let hit = |ip: IpAddr| {
                    ip.is_ipv4() == prefix.addr.is_ipv4()
                        && super::mask(ip, prefix.prefix_len) == prefix.addr
                };
                family_of(src) == family_of(prefix.addr) && dir.apply(hit(src), hit(dst))
            }
            Node::Port { dir, lo, hi } => {
                let r = |p: u16| (*lo..=*hi).contains(&p);
                dir.apply(r(sport), r(dport))
            }
            Node::And(a, b) => a.eval(src, sport, dst, dport) && b.eval(src, sport, dst, dport),
            Node::Or(a, b) => a.eval(src, sport, dst, dport) || b.eval(src, sport, dst, dport),
            Node::Not(a) => !a.eval(src, sport, dst, dport),
        }
    }

    fn emit(&self, out: &mut Vec<ExprInsn>) {
        let mut insn = ExprInsn::default();
        match self {
            Node::True => insn.op = op::TRUE,
            Node::Family(f) => {
                insn.op = op::FAMILY;
                insn.family = *f;
            }
            Node::Net { dir, prefix } => {
                insn.op = op::NET;
                insn.dir = dir.code();
                insn.family = family_of(prefix.addr);
                let (addr, mask) = addr_and_mask(prefix);
                insn.addr = addr;
                insn.mask = mask;
            }
            Node::Port { dir, lo, hi } => {
                insn.op = op::PORT;
                insn.dir = dir.code();
                insn.port_lo = *lo;
                insn.port_hi = *hi;
            }
            Node::And(a, b) | Node::Or(a, b) => {
                a.emit(out);
                b.emit(out);
                insn.op = if matches!(self, Node::And(..)) {
                    op::AND
                } else {
                    op::OR
                };
            }
            Node::Not(a) => {
                a.emit(out);
                insn.op = op::NOT;
            }
        }
        out.push(insn);
    }

    /// The postfix program of this tree, or None when it needs more than
    /// [`EXPR_MAX`] instructions.
    pub fn compile(&self) -> Option<ExprProgram> {
        let mut insns = Vec::new();
        self.emit(&mut insns);
        if insns.len() > EXPR_MAX {
            return None;
        }
        let mut prog = ExprProgram {
            len: insns.len() as u32,
            ..ExprProgram::default()
        };
        prog.insns[..insns.len()].copy_from_slice(&insns);
        Some(prog)
    }
}

/// The 16-byte network-order address and mask of a prefix, IPv4 in the
/// first four bytes (the layout of the kernel's parsed segment).
fn addr_and_mask(p: &HostPrefix) -> ([u8; 16], [u8; 16]) {
    let mut addr = [0u8; 16];
    let mut mask = [0u8; 16];
    let bits = p.prefix_len as usize;
    match p.addr {
        IpAddr::V4(a) => addr[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => addr.copy_from_slice(&a.octets()),
    }
    for (i, m) in mask.iter_mut().enumerate() {
        let have = bits.saturating_sub(i * 8).min(8);
        *m = if have == 0 { 0 } else { 0xffu8 << (8 - have) };
    }
    (addr, mask)
}

/// The address fields of a segment as the kernel lays them out.
pub fn fields_of(ip: IpAddr) -> (u8, [u8; 16]) {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a.copy_from_slice(&v6.octets()),
    }
    (family_of(ip), a)
}

/// Runs a compiled program in user space: the same function the kernel runs.
pub fn run(prog: &ExprProgram, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> bool {
    let (family, saddr) = fields_of(src);
    let (_, daddr) = fields_of(dst);
    let fields = ExprFields {
        family,
        saddr: &saddr,
        daddr: &daddr,
        sport,
        dport,
    };
    let mut stack = 0u64;
    // SAFETY: a local u64.
    unsafe { capture_common::expr::eval(prog, &fields, &mut stack) }
}

/// A parsed and compiled expression.
#[derive(Debug, Clone)]
pub struct Expr {
    /// The expression as given (its words joined by spaces).
    pub text: String,
    pub tree: Node,
    pub program: ExprProgram,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.tree == other.tree
    }
}
impl Eq for Expr {}

impl Expr {
    /// Parses the words of an expression (as the shell split them; joined
    /// with spaces, as tcpdump does).
    pub fn parse(words: &[String]) -> Result<Expr, ExprError> {
        let text = words.join(" ");
        let tokens = lex(&text)?;
        let mut p = Parser {
            text: &text,
            tokens,
            pos: 0,
            last: None,
            after_proto: None,
            depth: 0,
            steps: 0,
        };
        let tree = p.expr()?;
        if let Some(t) = p.peek() {
            let why = if t.s == ")" {
                "unbalanced parenthesis: no ( to close".to_string()
            } else {
                format!("expected `and` or `or` before `{}`", t.s)
            };
            return Err(p.error_at(t, why));
        }
        let program = tree.compile().ok_or_else(|| {
            ExprError::new(
                &text,
                0,
                text.chars().count(),
                format!("too long: the kernel runs at most {EXPR_MAX} steps (each primitive, and, or and not is one)"),
            )
        })?;
        Ok(Expr {
            text,
            tree,
            program,
        })
    }

    pub fn matches(&self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> bool {
        run(&self.program, src, sport, dst, dport)
    }
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    s: &'a str,
    at: usize,
}

/// Splits into words (addresses, numbers, keywords, ranges) and the
/// punctuation `( ) ! && ||`; anything else pcap knows (`[`, `=`, `>`) is
/// refused here.
fn lex(text: &str) -> Result<Vec<Token<'_>>, ExprError> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c == b'(' || c == b')' || (c == b'!' && b.get(i + 1) != Some(&b'=')) {
            i += 1;
        } else if (c == b'&' || c == b'|') && b.get(i + 1) == Some(&c) {
            i += 2;
        } else if c.is_ascii_alphanumeric() || b".:/-_*".contains(&c) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b".:/-_*".contains(&b[i])) {
                i += 1;
            }
        } else {
            let len = text[i..].chars().next().map_or(1, char::len_utf8);
            let why = match c {
                b'[' if i > 0 && b[i - 1].is_ascii_alphanumeric() => "byte offsets (`tcp[13]`) are not supported: wstap filters on hosts, networks and ports".to_string(),
                b'[' | b']' => "brackets are not pcap syntax: write an IPv6 address without them".to_string(),
                b'=' | b'<' | b'>' | b'&' | b'|' | b'!' => {
                    "comparisons and bit operations are not supported: wstap filters on hosts, networks and ports".to_string()
                }
                _ => format!("unexpected character {:?}", &text[i..i + len]),
            };
            return Err(ExprError::new(text, i, len, why));
        }
        out.push(Token {
            s: &text[start..i],
            at: start,
        });
    }
    Ok(out)
}

/// The qualifiers of a primitive, kept for the bare IDs after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    PortRange,
}

#[derive(Debug, Clone, Copy)]
struct Quals {
    proto: Option<u8>,
    dir: Dir,
    kind: Kind,
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token<'a>>,
    pos: usize,
    /// The qualifiers of the last primitive (for `port 80 or 443`).
    last: Option<Quals>,
    /// The last primitive was a protocol alone (`tcp`): a bare value after
    /// it has no qualifiers to repeat, and libpcap refuses it.
    after_proto: Option<&'a str>,
    /// Nesting of `not` and `(` so far, and steps of the program so far:
    /// both bounded while parsing, so that no input recurses deeply or
    /// resolves names for an expression refused anyway.
    depth: usize,
    steps: usize,
}

/// pcap-filter(7) words wstap does not evaluate, and why.
fn unsupported(word: &str) -> Option<&'static str> {
    Some(match word {
        "udp" | "icmp" | "icmp6" | "igmp" | "igmpv3" | "igrp" | "sctp" | "pim" | "vrrp" | "carp" | "ah"
        | "esp" | "arp" | "rarp" | "atalk" | "aarp" | "decnet" | "iso" | "stp" | "ipx"
        | "netbeui" | "lat" | "moprc" | "mopdl" | "clnp" | "esis" | "isis" | "l1" | "l2"
        | "iih" | "lsp" | "snp" | "csnp" | "psnp" => {
            "wstap captures TCP only, so this protocol can never match; leave it out"
        }
        "ether" | "fddi" | "tr" | "wlan" | "ppp" | "slip" | "link" | "llc" | "vlan" | "mpls"
        | "pppoed" | "pppoes" | "geneve" | "vxlan" | "atm" | "lane" | "oamf4" | "oamf4sc"
        | "oamf4ec" | "oam" | "vpi" | "vci" | "metac" | "bcc" | "sc" | "ilmic" | "connectmsg"
        | "metaconnect" | "radio" | "sca" | "batadv" | "fisu" | "lssu" | "msu" | "hfisu" | "hlssu"
        | "hmsu" | "sio" | "opc" | "dpc" | "sls" | "hsio" | "hopc" | "hdpc" | "hsls" | "es-is"
        | "is-is" => {
            "link-layer and encapsulation primitives are not supported: wstap filters on hosts, networks and ports"
        }
        "gateway" | "broadcast" | "multicast" | "less" | "greater" | "len" | "proto" | "protochain"
        | "inbound" | "outbound" | "ifname" | "on" | "rnr" | "rulenum" | "reason" | "rset"
        | "ruleset" | "srnr" | "subrulenum" | "action" | "type" | "subtype" | "length" | "ifindex" | "addr1"
        | "addr2" | "addr3" | "addr4" | "ra" | "ta" | "dir" | "byte" | "tcpflags" => {
            "this primitive is not supported: wstap filters on host, net, port, portrange, src, dst, tcp, ip and ip6"
        }
        _ => return None,
    })
}

fn is_keyword(w: &str) -> bool {
    matches!(
        w,
        "and"
            | "or"
            | "not"
            | "&&"
            | "||"
            | "!"
            | "("
            | ")"
            | "src"
            | "dst"
            | "host"
            | "net"
            | "port"
            | "portrange"
            | "mask"
            | "tcp"
            | "ip"
            | "ip6"
    )
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.pos).cloned()
    }

    fn peek_is(&self, words: &[&str]) -> bool {
        self.peek().is_some_and(|t| words.contains(&t.s))
    }

    fn next(&mut self) -> Option<Token<'a>> {
        let t = self.peek();
        self.pos += 1;
        t
    }

    fn error_at(&self, t: Token, why: impl Into<String>) -> ExprError {
        ExprError::new(self.text, t.at, t.s.chars().count(), why)
    }

    fn error_at_end(&self, why: impl Into<String>) -> ExprError {
        ExprError::new(self.text, self.text.len(), 1, why)
    }

    /// Counts `n` more program steps at `t`; refuses past [`EXPR_MAX`].
    fn step(&mut self, t: Token, n: usize) -> Result<(), ExprError> {
        self.steps += n;
        if self.steps > EXPR_MAX {
            return Err(self.error_at(
                t,
                format!("too long: the kernel runs at most {EXPR_MAX} steps (each primitive, address of a name, and, or and not is one); this is past it"),
            ));
        }
        Ok(())
    }

    /// `term (and|or term)*`, left to right.
    fn expr(&mut self) -> Result<Node, ExprError> {
        let mut left = self.term()?;
        while let Some(t) = self.peek() {
            let and = match t.s {
                "and" | "&&" => true,
                "or" | "||" => false,
                _ => break,
            };
            self.step(t, 1)?;
            self.pos += 1;
            let right = self.term()?;
            left = if and {
                Node::And(Box::new(left), Box::new(right))
            } else {
                Node::Or(Box::new(left), Box::new(right))
            };
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Node, ExprError> {
        let Some(t) = self.peek() else {
            return Err(
                self.error_at_end("unexpected end: a primitive (host, net, port, …) is missing")
            );
        };
        if matches!(t.s, "not" | "!" | "(") {
            self.depth += 1;
            if self.depth > EXPR_MAX {
                return Err(self.error_at(
                    t,
                    format!("nested too deep (more than {EXPR_MAX} levels of not and parentheses)"),
                ));
            }
        }
        match t.s {
            "not" | "!" => {
                self.step(t, 1)?;
                self.pos += 1;
                let inner = self.term()?;
                self.depth -= 1;
                Ok(Node::Not(Box::new(inner)))
            }
            "(" => {
                self.pos += 1;
                // After the group, a bare value repeats the qualifiers from
                // before it (libpcap's `paren expr ')'` rule).
                let (last, after_proto) = (self.last, self.after_proto);
                let inner = self.expr()?;
                self.depth -= 1;
                match self.next() {
                    Some(c) if c.s == ")" => {
                        self.last = last;
                        self.after_proto = after_proto;
                        Ok(inner)
                    }
                    Some(other) => {
                        Err(self.error_at(other, format!("expected `)` before `{}`", other.s)))
                    }
                    None => Err(self.error_at(t, "unbalanced parenthesis: this ( is never closed")),
                }
            }
            ")" | "and" | "&&" | "or" | "||" => Err(self.error_at(
                t,
                format!(
                    "unexpected `{}`: a primitive (host, net, port, …) is missing",
                    t.s
                ),
            )),
            _ => self.primitive(),
        }
    }

    /// `[proto] [dir] [kind] ID`, or a bare ID with the last qualifiers.
    fn primitive(&mut self) -> Result<Node, ExprError> {
        let first = self.peek().expect("term checked a token is there");
        if let Some(why) = unsupported(first.s) {
            return Err(self.error_at(first, format!("`{}`: {why}", first.s)));
        }
        let mut proto = None;
        if let Some(t) = self.peek() {
            match t.s {
                "tcp" => {
                    self.pos += 1;
                    proto = Some(0);
                }
                "ip" => {
                    self.pos += 1;
                    proto = Some(FAMILY_V4);
                }
                "ip6" => {
                    self.pos += 1;
                    proto = Some(FAMILY_V6);
                }
                _ => {}
            }
        }
        let dir = self.direction()?;
        let kind = match self.peek().map(|t| t.s) {
            Some("host") => Some(Kind::Host),
            Some("net") => Some(Kind::Net),
            Some("port") => Some(Kind::Port),
            Some("portrange") => Some(Kind::PortRange),
            _ => None,
        };
        if kind.is_some() {
            self.pos += 1;
        }
        if let Some(t) = self.peek() {
            if let Some(why) = unsupported(t.s) {
                return Err(self.error_at(t, format!("`{}`: {why}", t.s)));
            }
        }
        // A protocol alone (`tcp`, `ip6`) is a whole primitive.
        let id_follows = self.peek().is_some_and(|t| !is_keyword(t.s));
        self.step(first, 1)?;
        if proto.is_some() && dir.is_none() && kind.is_none() {
            if id_follows {
                let t = self.peek().expect("an ID follows");
                return Err(self.error_at(
                    t,
                    format!("expected host, net, port or portrange after `{}`", first.s),
                ));
            }
            self.after_proto = Some(first.s);
            return Ok(match proto {
                Some(0) => Node::True,
                Some(f) => Node::Family(f),
                None => unreachable!(),
            });
        }
        if matches!(proto, Some(FAMILY_V4 | FAMILY_V6))
            && matches!(kind, Some(Kind::Port | Kind::PortRange))
        {
            return Err(self.error_at(
                first,
                format!("`{} port` is not a valid qualifier pair (libpcap refuses it too): write `{} and port N`", first.s, first.s),
            ));
        }
        let bare = proto.is_none() && dir.is_none() && kind.is_none();
        if bare {
            if let Some(p) = self.after_proto {
                return Err(self.error_at(
                    first,
                    format!("a bare value after `{p}` has no qualifiers to repeat: write host, net or port before it"),
                ));
            }
        }
        let quals = if bare {
            // A bare ID: the qualifiers of the primitive before, or host.
            self.last.unwrap_or(Quals {
                proto: None,
                dir: Dir::Either,
                kind: Kind::Host,
            })
        } else {
            Quals {
                proto,
                dir: dir.unwrap_or(Dir::Either),
                kind: kind.unwrap_or(Kind::Host),
            }
        };
        let Some(id) = self.next() else {
            return Err(self.error_at_end(format!(
                "unexpected end: {} needs a value",
                kind_name(quals.kind)
            )));
        };
        if is_keyword(id.s) {
            return Err(self.error_at(
                id,
                format!(
                    "expected a value for {}, found `{}`",
                    kind_name(quals.kind),
                    id.s
                ),
            ));
        }
        let node = self.value(&quals, id)?;
        self.last = Some(quals);
        self.after_proto = None;
        Ok(match quals.proto {
            Some(f) if f != 0 => Node::And(Box::new(Node::Family(f)), Box::new(node)),
            _ => node,
        })
    }

    /// `src`, `dst`, `src or dst`, `src and dst` (either order).
    fn direction(&mut self) -> Result<Option<Dir>, ExprError> {
        let Some(t) = self.peek() else {
            return Ok(None);
        };
        let d = match t.s {
            "src" => Dir::Src,
            "dst" => Dir::Dst,
            _ => return Ok(None),
        };
        self.pos += 1;
        let other = if d == Dir::Src { "dst" } else { "src" };
        let pair = self.tokens.get(self.pos).map(|t| t.s);
        let then = self.tokens.get(self.pos + 1).map(|t| t.s);
        if then == Some(other) {
            match pair {
                Some("or") | Some("||") => {
                    self.pos += 2;
                    return Ok(Some(Dir::Either));
                }
                Some("and") | Some("&&") => {
                    self.pos += 2;
                    return Ok(Some(Dir::Both));
                }
                _ => {}
            }
        }
        Ok(Some(d))
    }

    fn value(&mut self, q: &Quals, id: Token<'a>) -> Result<Node, ExprError> {
        match q.kind {
            Kind::Port => {
                let p = self.port(id)?;
                Ok(Node::Port {
                    dir: q.dir,
                    lo: p,
                    hi: p,
                })
            }
            Kind::PortRange => {
                let Some((a, b)) = id.s.split_once('-') else {
                    return Err(
                        self.error_at(id, "portrange needs LOW-HIGH, for example 8000-8100")
                    );
                };
                let lo = if a == "0" { 0 } else { self.port_str(a, id)? };
                let hi = self.port_str(b, id)?;
                if lo > hi {
                    return Err(self.error_at(
                        id,
                        format!("portrange {lo}-{hi}: the low end is above the high end"),
                    ));
                }
                Ok(Node::Port { dir: q.dir, lo, hi })
            }
            Kind::Host => {
                if id.s.contains('/') {
                    return Err(self.error_at(
                        id,
                        "a /prefix belongs to `net`, not `host` (write net ADDR/LEN)",
                    ));
                }
                let addrs = match id.s.parse::<IpAddr>() {
                    Ok(a) => vec![a],
                    Err(_) if looks_numeric(id.s) => {
                        // The resolver would read `10.1` as 10.0.0.1 and
                        // `010.0.0.1` as octal; libpcap means neither.
                        return Err(self.error_at(
                            id,
                            format!("`{}` is not a full address: give all four numbers, or write net {} for a network", id.s, id.s),
                        ));
                    }
                    Err(_) => self.resolve(id)?,
                };
                let mut nodes = Vec::new();
                for a in addrs {
                    if let Some(f) = q.proto.filter(|&f| f != 0) {
                        if family_of(a) != f {
                            continue; // `ip host NAME`: its IPv4 addresses only
                        }
                    }
                    let prefix = HostPrefix {
                        addr: a,
                        prefix_len: if a.is_ipv4() { 32 } else { 128 },
                    };
                    nodes.push(Node::Net { dir: q.dir, prefix });
                }
                if nodes.len() > 1 {
                    self.step(id, 2 * (nodes.len() - 1))?;
                }
                let mut it = nodes.into_iter();
                let Some(first) = it.next() else {
                    return Err(self.error_at(id, "no address of the family asked for (ip / ip6)"));
                };
                Ok(it.fold(first, |acc, n| Node::Or(Box::new(acc), Box::new(n))))
            }
            Kind::Net => {
                let prefix = self.network(id)?;
                if let Some(f) = q.proto.filter(|&f| f != 0) {
                    if family_of(prefix.addr) != f {
                        return Err(self.error_at(
                            id,
                            "this network is not of the family asked for (ip / ip6)",
                        ));
                    }
                }
                Ok(Node::Net { dir: q.dir, prefix })
            }
        }
    }

    fn port(&self, id: Token<'a>) -> Result<u16, ExprError> {
        self.port_str(id.s, id)
    }

    fn port_str(&self, s: &str, id: Token<'a>) -> Result<u16, ExprError> {
        if let Ok(n) = s.parse::<u32>() {
            return match n {
                1..=65535 => Ok(n as u16),
                _ => Err(self.error_at(id, format!("port {n} is outside 1-65535"))),
            };
        }
        service_port(s).ok_or_else(|| {
            self.error_at(
                id,
                format!("`{s}` is not a port number or a TCP service name in /etc/services"),
            )
        })
    }

    /// A host name: every address the system resolver gives, at start
    /// (as tcpdump does).
    fn resolve(&self, id: Token<'a>) -> Result<Vec<IpAddr>, ExprError> {
        let bad = |why: String| self.error_at(id, why);
        if !id
            .s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        {
            return Err(bad(format!("`{}` is not an address or a host name", id.s)));
        }
        let mut addrs: Vec<IpAddr> = (id.s, 0u16)
            .to_socket_addrs()
            .map_err(|e| bad(format!("cannot resolve host `{}`: {e}", id.s)))?
            .map(|sa| sa.ip())
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(bad(format!("host `{}` has no address", id.s)));
        }
        Ok(addrs)
    }

    /// `net` values: CIDR (`10.0.0.0/8`, `fd00::/8`), `ADDR mask MASK`, or
    /// a dotted IPv4 prefix of one to four numbers (`10`, `10.1`: /8, /16).
    fn network(&mut self, id: Token<'a>) -> Result<HostPrefix, ExprError> {
        if self.peek_is(&["mask"]) {
            let mask_tok = self.next().expect("peeked");
            let Some(m) = self.next() else {
                return Err(self.error_at(mask_tok, "mask needs a value, for example 255.255.0.0"));
            };
            let (Ok(addr), Ok(mask)) = (id.s.parse::<IpAddr>(), m.s.parse::<IpAddr>()) else {
                return Err(self.error_at(m, "net ADDR mask MASK needs two addresses"));
            };
            let (IpAddr::V4(_), IpAddr::V4(mv4)) = (addr, mask) else {
                return Err(self.error_at(m, "`mask` is for IPv4; write IPv6 networks as ADDR/LEN"));
            };
            let bits = u32::from(mv4);
            let len = bits.leading_ones();
            if bits.checked_shl(len).unwrap_or(0) != 0 {
                return Err(self.error_at(
                    m,
                    "a mask must be contiguous ones (255.255.240.0, not 255.0.255.0)",
                ));
            }
            return self.prefix(&format!("{addr}/{len}"), id);
        }
        if id.s.contains('/') || id.s.parse::<IpAddr>().is_ok() {
            let (a, _) = id.s.split_once('/').unwrap_or((id.s, ""));
            if !a.contains(':') && a.split('.').count() < 4 {
                // `net 10/8`: a short dotted form with a length.
                let (parts, len) = id.s.split_once('/').expect("has a slash");
                let padded = pad_dotted(parts).ok_or_else(|| self.error_at(id, "not a network"))?;
                return self.prefix(&format!("{padded}/{len}"), id);
            }
            return self.prefix(id.s, id);
        }
        let parts = id.s.split('.').count();
        match pad_dotted(id.s) {
            Some(padded) => self.prefix(&format!("{padded}/{}", parts * 8), id),
            None => Err(self.error_at(
                id,
                format!("`{}` is not a network (examples: 10.0.0.0/8, 10.1, 192.168.0.0 mask 255.255.0.0, fd00::/8)", id.s),
            )),
        }
    }

    fn prefix(&self, s: &str, id: Token<'a>) -> Result<HostPrefix, ExprError> {
        let p = HostPrefix::parse(s)
            .map_err(|e| self.error_at(id, e.to_string().replace("--host ", "net ")))?;
        // pcap refuses a network with host bits set (`net 10.0.0.1/8`)
        // rather than guess which was meant.
        let given: IpAddr = s
            .split('/')
            .next()
            .unwrap_or(s)
            .parse()
            .map_err(|_| self.error_at(id, "not a network"))?;
        if given != p.addr {
            return Err(self.error_at(
                id,
                format!(
                    "non-network bits set in {s} (did you mean net {}/{}?)",
                    p.addr, p.prefix_len
                ),
            ));
        }
        Ok(p)
    }
}

/// Digits and dots only, or a hex number: what the system resolver would
/// read as an address in forms libpcap does not mean.
fn looks_numeric(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || s.strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.'))
}

/// `10` → `10.0.0.0`, `10.1` → `10.1.0.0`; None unless one to four numbers.
fn pad_dotted(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 || parts.iter().any(|p| p.parse::<u8>().is_err()) {
        return None;
    }
    let mut all: Vec<&str> = parts.clone();
    all.resize(4, "0");
    Some(all.join("."))
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Host => "host",
        Kind::Net => "net",
        Kind::Port => "port",
        Kind::PortRange => "portrange",
    }
}

/// The TCP port of a service name in /etc/services (`http`, `https`).
fn service_port(name: &str) -> Option<u16> {
    let text = std::fs::read_to_string("/etc/services").ok()?;
    text.lines().find_map(|line| {
        let line = line.split('#').next()?;
        let mut words = line.split_whitespace();
        let service = words.next()?;
        let (port, proto) = words.next()?.split_once('/')?;
        let hit = proto == "tcp" && (service == name || words.any(|alias| alias == name));
        if hit {
            port.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
pub(crate) mod tests;
