//! The kernel-side filter: a segment passes when the port list (if used)
//! holds either port, the host list (if used) holds either address, and
//! the filter expression (if given) holds. An empty list is not used at all
//! (the globals say so at load).

use aya_ebpf::maps::lpm_trie::Key;
use capture_common::{
    expr::{self, ExprFields},
    verdict, EndKey, FAMILY_V4,
};

use crate::maps::{
    END_VERDICT, EXPR_STACK, FILTER_EXPR, FILTER_EXPR_ON, FILTER_HOSTS, FILTER_OWNERS,
    FILTER_PORTS, HOSTS_V4, HOSTS_V6, PORTS,
};
use crate::parse::Seg;

#[inline(always)]
pub fn pass(seg: &Seg) -> bool {
    if FILTER_PORTS.load() != 0 {
        let s = PORTS.get(seg.sport as u32).copied().unwrap_or(0);
        let d = PORTS.get(seg.dport as u32).copied().unwrap_or(0);
        if s == 0 && d == 0 {
            return false;
        }
    }
    if FILTER_HOSTS.load() != 0 {
        if seg.family == FAMILY_V4 {
            let mut a = [0u8; 4];
            a.copy_from_slice(&seg.saddr[..4]);
            let mut b = [0u8; 4];
            b.copy_from_slice(&seg.daddr[..4]);
            if HOSTS_V4.get(Key::new(32, a)).is_none() && HOSTS_V4.get(Key::new(32, b)).is_none() {
                return false;
            }
        } else if HOSTS_V6.get(Key::new(128, seg.saddr)).is_none()
            && HOSTS_V6.get(Key::new(128, seg.daddr)).is_none()
        {
            return false;
        }
    }
    if FILTER_EXPR_ON.load() != 0 && !expr_pass(seg) {
        return false;
    }
    true
}

/// The filter expression (`capture_common::expr`), run on the segment's
/// addresses and ports. A missing map entry cannot happen (an array map);
/// it fails closed.
#[inline(always)]
fn expr_pass(seg: &Seg) -> bool {
    let (Some(prog), Some(stack)) = (FILTER_EXPR.get(0), EXPR_STACK.get_ptr_mut(0)) else {
        return false;
    };
    let fields = ExprFields {
        family: seg.family,
        saddr: &seg.saddr,
        daddr: &seg.daddr,
        sport: seg.sport,
        dport: seg.dport,
    };
    // SAFETY: `stack` points into this CPU's map cell. TC and XDP share it;
    // one cannot interrupt the other on a CPU (as with SCRATCH), except on
    // PREEMPT_RT kernels, where the record scratch has the same exposure.
    unsafe { expr::eval(prog, &fields, stack) }
}

/// The owner filter (`--pid`, `--comm`, `-- COMMAND`): false when the
/// segment's connection has an end owned by another process and no end
/// owned by a selected one. Ends not known yet (a handshake before its
/// socket is established, a remote peer) do not decide; user space
/// filters what the kernel could not (see `sock.rs` for when each end's
/// verdict is set).
#[inline(always)]
pub fn owner_pass(seg: &Seg) -> bool {
    if FILTER_OWNERS.load() == 0 {
        return true;
    }
    let mut key = EndKey {
        local: seg.saddr,
        remote: seg.daddr,
        lport: seg.sport,
        rport: seg.dport,
        family: seg.family,
        _pad: [0; 3],
    };
    // SAFETY: plain u8 values.
    let sender = unsafe { END_VERDICT.get(key) }
        .copied()
        .unwrap_or(verdict::NONE);
    if sender == verdict::SELECTED {
        return true;
    }
    key.local = seg.daddr;
    key.remote = seg.saddr;
    key.lport = seg.dport;
    key.rport = seg.sport;
    let receiver = unsafe { END_VERDICT.get(key) }
        .copied()
        .unwrap_or(verdict::NONE);
    if receiver == verdict::SELECTED {
        return true;
    }
    sender != verdict::OTHER && receiver != verdict::OTHER
}
