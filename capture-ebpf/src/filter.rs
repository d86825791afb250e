//! The kernel-side filter: a segment passes when the port list (if used)
//! holds either port and the host list (if used) holds either address.
//! An empty list is not used at all (the globals say so at load).

use aya_ebpf::maps::lpm_trie::Key;
use capture_common::FAMILY_V4;

use crate::maps::{FILTER_HOSTS, FILTER_PORTS, HOSTS_V4, HOSTS_V6, PORTS};
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
    true
}
