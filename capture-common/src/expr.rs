//! Filter expressions (`wstap port 8080 and not host 10.0.0.5`) as the
//! kernel runs them: a postfix program of at most [`EXPR_MAX`] instructions
//! in the one entry of the array map [`MAP_FILTER_EXPR`](crate::MAP_FILTER_EXPR).
//! User space parses the pcap-filter(7) text and compiles it
//! (`capture-user/src/filter/expr`); the kernel (TC and XDP) and user space
//! (`-r` files, hooked TLS plaintext) both run [`eval`], this one function,
//! so the two modes cannot disagree on what a program means.
//!
//! Why a small stack machine and not maps of hosts and ports: an expression
//! mixes `and`, `or` and `not` over primitives freely, which no fixed set of
//! lookups expresses, and a postfix program needs no recursion and no
//! indexed stack: the truth values live in the bits of one `u64` (bit 0 is
//! the top; kept in a per-CPU map cell in the kernel, see [`eval`]). A primitive pushes its result; `and`/`or` pop two and push
//! one; `not` flips the top.

/// Most instructions in one program (the verifier sees a loop of this many
/// iterations; the parser refuses longer expressions).
pub const EXPR_MAX: usize = 64;

/// Operations ([`ExprInsn::op`]).
pub mod op {
    /// Pushes true (`tcp`: everything the tap delivers is TCP).
    pub const TRUE: u8 = 1;
    /// Pushes whether the packet's family is [`ExprInsn::family`](super::ExprInsn)
    /// (`ip`, `ip6`).
    pub const FAMILY: u8 = 2;
    /// Pushes whether the address(es) chosen by `dir` lie in the prefix
    /// `addr`/`mask` of `family` (`host`, `net`).
    pub const NET: u8 = 3;
    /// Pushes whether the port(s) chosen by `dir` lie in `port_lo..=port_hi`
    /// (`port`, `portrange`).
    pub const PORT: u8 = 4;
    /// Pops two, pushes their conjunction.
    pub const AND: u8 = 5;
    /// Pops two, pushes their disjunction.
    pub const OR: u8 = 6;
    /// Flips the top.
    pub const NOT: u8 = 7;
}

/// Which end a [`op::NET`] or [`op::PORT`] test looks at ([`ExprInsn::dir`]).
pub mod dir {
    /// `src or dst` (pcap's default).
    pub const EITHER: u8 = 0;
    pub const SRC: u8 = 1;
    pub const DST: u8 = 2;
    /// `src and dst`.
    pub const BOTH: u8 = 3;
}

/// One instruction. Addresses are network order, IPv4 in the first four
/// bytes (the rest zero), as in the kernel's parsed segment; `addr` has the
/// bits outside `mask` cleared.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExprInsn {
    pub op: u8,
    pub dir: u8,
    pub family: u8,
    pub _pad: u8,
    pub port_lo: u16,
    pub port_hi: u16,
    pub addr: [u8; 16],
    pub mask: [u8; 16],
}

/// The value of the one entry of `MAP_FILTER_EXPR`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExprProgram {
    /// Instructions used, at most [`EXPR_MAX`].
    pub len: u32,
    pub _pad: u32,
    pub insns: [ExprInsn; EXPR_MAX],
}

impl Default for ExprProgram {
    fn default() -> Self {
        ExprProgram {
            len: 0,
            _pad: 0,
            insns: [ExprInsn::default(); EXPR_MAX],
        }
    }
}

/// What a program looks at in a segment; the kernel's parsed segment and
/// user space's decoded packet both fill it the same way.
pub struct ExprFields<'a> {
    pub family: u8,
    pub saddr: &'a [u8; 16],
    pub daddr: &'a [u8; 16],
    pub sport: u16,
    pub dport: u16,
}

#[inline(always)]
fn in_prefix(a: &[u8; 16], i: &ExprInsn) -> bool {
    let mut j = 0;
    while j < 16 {
        if a[j] & i.mask[j] != i.addr[j] {
            return false;
        }
        j += 1;
    }
    true
}

#[inline(always)]
fn by_dir(dir: u8, s: bool, d: bool) -> bool {
    match dir {
        dir::SRC => s,
        dir::DST => d,
        dir::BOTH => s && d,
        _ => s || d,
    }
}

/// Runs `prog` on `f`: true when the segment passes. An empty program
/// passes everything.
///
/// `stack` holds the truth-value stack between instructions. It is read
/// and written with volatile accesses so that, in the kernel, it stays in
/// the per-CPU map cell the caller passes: the verifier then sees an
/// unknown value at every loop head, and the states of different
/// instruction sequences prune into one instead of multiplying per
/// iteration. In user space it is any `u64`.
///
/// # Safety
/// `stack` must be valid for reads and writes of a `u64`.
#[inline(always)]
pub unsafe fn eval(prog: &ExprProgram, f: &ExprFields, stack: *mut u64) -> bool {
    if prog.len == 0 {
        return true;
    }
    core::ptr::write_volatile(stack, 0);
    let mut i = 0;
    while i < EXPR_MAX {
        if i as u32 >= prog.len {
            break;
        }
        let insn = &prog.insns[i];
        let s = core::ptr::read_volatile(stack);
        let next = match insn.op {
            op::TRUE => (s << 1) | 1,
            op::FAMILY => (s << 1) | (f.family == insn.family) as u64,
            op::NET => {
                let hit = f.family == insn.family
                    && by_dir(insn.dir, in_prefix(f.saddr, insn), in_prefix(f.daddr, insn));
                (s << 1) | hit as u64
            }
            op::PORT => {
                let sp = f.sport >= insn.port_lo && f.sport <= insn.port_hi;
                let dp = f.dport >= insn.port_lo && f.dport <= insn.port_hi;
                (s << 1) | by_dir(insn.dir, sp, dp) as u64
            }
            op::AND => ((s >> 2) << 1) | (s & (s >> 1) & 1),
            op::OR => ((s >> 2) << 1) | ((s | (s >> 1)) & 1),
            op::NOT => s ^ 1,
            // The compiler never writes another op; fail closed.
            _ => return false,
        };
        core::ptr::write_volatile(stack, next);
        i += 1;
    }
    core::ptr::read_volatile(stack) & 1 != 0
}
