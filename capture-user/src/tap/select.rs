//! The owner filter's kernel maps (`--pid`, `--comm`, `-- COMMAND`): the
//! selected pids and comms the socket hooks judge each process by, and the
//! per-end verdicts the TC/XDP programs read per segment
//! (`capture-ebpf/src/sock.rs` says when the kernel sets them itself). User
//! space adds the verdicts of what was open at start, which the hooks never
//! saw, and follows `-- COMMAND`.

use std::net::{IpAddr, SocketAddr};

use aya::maps::{HashMap, MapData};
use aya::Ebpf;
use capture_common::{select, verdict, EndKey, FAMILY_V4, FAMILY_V6};

use super::TapError;

/// What the owner filter selects.
#[derive(Debug, Clone, Default)]
pub struct TapSelection {
    pub pids: Vec<u32>,
    /// At most 15 bytes each.
    pub comms: Vec<String>,
    /// Attach the fork hook: pids added with [`super::Tap::follow`] take
    /// their children along.
    pub follow: bool,
}

fn map<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::maps::Map, TapError> {
    ebpf.map_mut(name).ok_or(TapError::MissingMap(name))
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> TapError {
    move |source| TapError::Map { map, source }
}

fn pids(ebpf: &mut Ebpf) -> Result<HashMap<&mut MapData, u32, u8>, TapError> {
    let name = capture_common::MAP_SELECT_PIDS;
    HashMap::try_from(map(ebpf, name)?).map_err(map_err(name))
}

/// Writes the selected pids and comms.
pub(super) fn fill(ebpf: &mut Ebpf, sel: &TapSelection) -> Result<(), TapError> {
    let mut p = pids(ebpf)?;
    for &pid in &sel.pids {
        p.insert(pid, select::PID, 0)
            .map_err(map_err(capture_common::MAP_SELECT_PIDS))?;
    }
    let name = capture_common::MAP_SELECT_COMMS;
    let mut c: HashMap<&mut MapData, [u8; 16], u8> =
        HashMap::try_from(map(ebpf, name)?).map_err(map_err(name))?;
    for comm in &sel.comms {
        let mut key = [0u8; 16];
        let n = comm.len().min(15);
        key[..n].copy_from_slice(&comm.as_bytes()[..n]);
        c.insert(key, 1u8, 0).map_err(map_err(name))?;
    }
    Ok(())
}

/// Selects `pid` and, with the fork hook attached, its future children.
pub(super) fn follow(ebpf: &mut Ebpf, pid: u32) -> Result<(), TapError> {
    pids(ebpf)?
        .insert(pid, select::FOLLOW, 0)
        .map_err(map_err(capture_common::MAP_SELECT_PIDS))
}

/// Stops selecting `pid` (children it forked stay selected).
pub(super) fn unfollow(ebpf: &mut Ebpf, pid: u32) -> Result<(), TapError> {
    match pids(ebpf)?.remove(&pid) {
        Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(map_err(capture_common::MAP_SELECT_PIDS)(e)),
    }
}

/// An address as the kernel programs key it: IPv4 (also IPv4-mapped IPv6)
/// in the first four bytes.
fn key_addr(a: IpAddr) -> ([u8; 16], u8) {
    let mut out = [0u8; 16];
    let v4 = match a {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    match (v4, a) {
        (Some(v4), _) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, FAMILY_V4)
        }
        (None, IpAddr::V6(v6)) => (v6.octets(), FAMILY_V6),
        (None, IpAddr::V4(_)) => unreachable!("an IPv4 address is always IPv4"),
    }
}

/// The kernel's key of the end `local` of the connection to `remote`.
pub(crate) fn end_key(local: SocketAddr, remote: SocketAddr) -> EndKey {
    let (l, family) = key_addr(local.ip());
    let (r, _) = key_addr(remote.ip());
    EndKey {
        local: l,
        remote: r,
        lport: local.port(),
        rport: remote.port(),
        family,
        _pad: [0; 3],
    }
}

fn verdict_of(selected: bool) -> u8 {
    if selected {
        verdict::SELECTED
    } else {
        verdict::OTHER
    }
}

/// Marks the verdict on the owner of a connection end found at start.
pub(super) fn mark_end(
    ebpf: &mut Ebpf,
    local: SocketAddr,
    remote: SocketAddr,
    selected: bool,
) -> Result<(), TapError> {
    let name = capture_common::MAP_END_VERDICT;
    let mut m: HashMap<&mut MapData, EndKey, u8> =
        HashMap::try_from(map(ebpf, name)?).map_err(map_err(name))?;
    m.insert(end_key(local, remote), verdict_of(selected), 0)
        .map_err(map_err(name))
}

/// Marks the verdict on a listener found at start (by port, as the kernel
/// keys it).
pub(super) fn mark_listener(ebpf: &mut Ebpf, port: u16, selected: bool) -> Result<(), TapError> {
    let name = capture_common::MAP_LISTEN_VERDICT;
    let mut m: HashMap<&mut MapData, u16, u8> =
        HashMap::try_from(map(ebpf, name)?).map_err(map_err(name))?;
    m.insert(port, verdict_of(selected), 0)
        .map_err(map_err(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_keyed_like_the_packets() {
        let k = end_key(
            "[::ffff:10.0.0.1]:5000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        assert_eq!(k.family, FAMILY_V4);
        assert_eq!(&k.local[..4], &[10, 0, 0, 1]);
        assert_eq!(&k.local[4..], &[0; 12]);
        assert_eq!(&k.remote[..4], &[10, 0, 0, 2]);
        assert_eq!((k.lport, k.rport), (5000, 80));
        let k6 = end_key(
            "[fd00::1]:1".parse().unwrap(),
            "[fd00::2]:2".parse().unwrap(),
        );
        assert_eq!(k6.family, FAMILY_V6);
        assert_eq!(k6.local[15], 1);
    }
}
