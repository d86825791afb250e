//! The maps user space writes (the filter: ports and host prefixes) and
//! reads (the kernel's per-CPU counters), by the names in `capture-common`.

use std::net::IpAddr;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData, PerCpuArray};
use aya::Ebpf;
use capture_common::Counter;

use super::TapError;
use crate::filter::Filter;

/// The kernel's counters summed over CPUs, one per [`Counter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters([u64; Counter::COUNT as usize]);

impl Counters {
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c.index() as usize]
    }

    /// Every counter with its value, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.get(c)))
    }

    /// The kernel summary line: `kernel: N packets seen, N segments
    /// matched, ...`, every counter in the table's order and words.
    pub fn summary_line(&self) -> String {
        let parts: Vec<String> = self
            .iter()
            .map(|(c, v)| format!("{v} {}", c.label()))
            .collect();
        format!("kernel: {}", parts.join(", "))
    }
}

/// Reads the per-CPU counter array.
pub(super) fn read_counters(map: &PerCpuArray<MapData, u64>) -> Result<Counters, TapError> {
    let mut out = Counters::default();
    for c in Counter::ALL {
        let per_cpu = map.get(&c.index(), 0).map_err(|e| TapError::Map {
            map: capture_common::MAP_COUNTERS,
            source: e,
        })?;
        out.0[c.index() as usize] = per_cpu.iter().sum();
    }
    Ok(out)
}

/// Takes map `name` out of the object as a typed map.
pub(super) fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, TapError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(TapError::MissingMap(name))?;
    T::try_from(map).map_err(|e| TapError::Map {
        map: name,
        source: e,
    })
}

/// Writes the port list, the host prefixes (IPv4 hosts also as
/// IPv4-mapped IPv6, so dual-stack sockets match) and the compiled filter
/// expression.
pub(super) fn fill_filter(ebpf: &mut Ebpf, filter: &Filter) -> Result<(), TapError> {
    let map_err = |map: &'static str| move |e| TapError::Map { map, source: e };
    if let Some(expr) = &filter.expr {
        let name = capture_common::MAP_FILTER_EXPR;
        let mut prog: Array<&mut MapData, capture_common::expr::ExprProgram> =
            Array::try_from(map_mut(ebpf, name)?).map_err(map_err(name))?;
        prog.set(0, expr.program, 0).map_err(map_err(name))?;
    }
    {
        let name = capture_common::MAP_PORTS;
        let mut ports: Array<&mut MapData, u8> =
            Array::try_from(map_mut(ebpf, name)?).map_err(map_err(name))?;
        for &p in &filter.ports {
            ports.set(p as u32, 1u8, 0).map_err(map_err(name))?;
        }
    }
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for h in &filter.hosts {
        match h.addr {
            IpAddr::V4(a) => {
                v4.push(Key::new(h.prefix_len as u32, a.octets()));
                v6.push(Key::new(
                    96 + h.prefix_len as u32,
                    a.to_ipv6_mapped().octets(),
                ));
            }
            IpAddr::V6(a) => v6.push(Key::new(h.prefix_len as u32, a.octets())),
        }
    }
    {
        let name = capture_common::MAP_HOSTS_V4;
        let mut t: LpmTrie<&mut MapData, [u8; 4], u8> =
            LpmTrie::try_from(map_mut(ebpf, name)?).map_err(map_err(name))?;
        for k in &v4 {
            t.insert(k, 1u8, 0).map_err(map_err(name))?;
        }
    }
    {
        let name = capture_common::MAP_HOSTS_V6;
        let mut t: LpmTrie<&mut MapData, [u8; 16], u8> =
            LpmTrie::try_from(map_mut(ebpf, name)?).map_err(map_err(name))?;
        for k in &v6 {
            t.insert(k, 1u8, 0).map_err(map_err(name))?;
        }
    }
    Ok(())
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::maps::Map, TapError> {
    ebpf.map_mut(name).ok_or(TapError::MissingMap(name))
}
