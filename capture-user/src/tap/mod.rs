//! The kernel tap: load the eBPF programs (`capture-ebpf`), fill the filter
//! maps, attach (TC ingress + egress through TCX links, or XDP through an
//! XDP link), and drain the ring buffer with tokio's `AsyncFd`.
//!
//! Attachments are bpf_links owned by this process: they go away when it
//! exits, even after `kill -9`.
//!
//! # Records and segments
//!
//! Each ring record is a [`capture_common::RecordHeader`] followed by a
//! payload chunk of at most [`capture_common::CHUNK_MAX`] bytes.
//! [`Record::segment`] turns a record into a [`Segment`] that borrows the
//! payload straight from ring memory: a chunk at offset `k` becomes a segment
//! with `seq + k`; SYN stays on the first chunk, FIN, RST and PSH on the last.
//!
//! # Loss
//!
//! A record the kernel could not write (ring full) is counted in the per-CPU
//! counters ([`Counters::records_lost`]) and leaves a hole in that flow's
//! sequence space, which the reassembler reports as a gap.
//!
//! # Loopback
//!
//! On a loopback interface every packet passes egress and then ingress. With
//! `--attach tc` wstap attaches only the egress program there, so each segment
//! is seen once (as tcpdump shows it) and reported as `Out`.
//!
//! # Timestamps
//!
//! The kernel stamps records with `bpf_ktime_get_ns` (CLOCK_MONOTONIC); the
//! offset CLOCK_REALTIME - CLOCK_MONOTONIC is taken once when the tap opens
//! and added, so [`Segment::ts_ns`] is nanoseconds since the Unix epoch.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::{
    tc::SchedClassifierLinkId, xdp::XdpLinkId, ProgramError, SchedClassifier, TcAttachType, Xdp,
    XdpMode,
};
use aya::{Ebpf, EbpfLoader};
use capture_common::{counter, RecordHeader, HEADER_LEN};
use tokio::io::unix::AsyncFd;

use crate::cli::{AttachKind, XdpModeArg};
use crate::filter::Filter;
use crate::source::{tcp_flags, Segment};

/// The eBPF object built by `build.rs` (empty with `AYA_BUILD_SKIP=1`).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/capture-ebpf"));

/// Errors of the kernel tap. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error(
        "this wstap was built without its eBPF programs (AYA_BUILD_SKIP=1), so it cannot capture live; \
         rebuild without AYA_BUILD_SKIP (run `cargo xtask setup` first if the nightly toolchain or bpf-linker is missing)"
    )]
    NotBuilt,
    #[error(
        "live capture needs {missing}, which this process lacks: run as root, or grant the capabilities \
         (e.g. `sudo setcap cap_bpf,cap_net_admin,cap_perfmon+ep $(command -v wstap)`)"
    )]
    NotPermitted { missing: String },
    #[error("no interface named {0:?} (see `ip link`)")]
    NoInterface(String),
    #[error("interface {iface} does not support native (driver) XDP; use --xdp-mode skb")]
    XdpModeUnsupported { iface: String, source: ProgramError },
    #[error("loading the eBPF programs failed")]
    Load(#[source] aya::EbpfError),
    #[error("preparing program {prog} failed")]
    Program {
        prog: &'static str,
        source: ProgramError,
    },
    #[error("attaching {what} to {iface} failed")]
    Attach {
        what: &'static str,
        iface: String,
        source: ProgramError,
    },
    #[error("eBPF map {map}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("eBPF map {0} missing from the object")]
    MissingMap(&'static str),
    #[error("reading the ring buffer: {0}")]
    Io(#[from] std::io::Error),
}

/// What to tap and how.
#[derive(Debug, Clone)]
pub struct TapConfig {
    pub iface: String,
    pub filter: Filter,
    pub attach: AttachKind,
    pub xdp_mode: XdpModeArg,
    /// Requested ring size; rounded up to a power of two of at least a page.
    pub ring_size: u32,
    /// 0: no kernel diagnostics; 1: parse failures; 2+: filter decisions too.
    pub verbose: u8,
}

/// Sum over CPUs of the kernel's counters (see `capture_common::counter`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets_seen: u64,
    pub segments_matched: u64,
    pub bytes_matched: u64,
    pub records: u64,
    pub bytes: u64,
    pub records_lost: u64,
    pub bytes_lost: u64,
    pub cut_short_segments: u64,
    pub cut_short_bytes: u64,
    pub parse_errors: u64,
}

/// One ring record: header plus the payload chunk, borrowed from ring memory.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub header: RecordHeader,
    pub payload: &'a [u8],
}

impl<'a> Record<'a> {
    /// Parses a ring item; `None` if it is shorter than its header says.
    pub fn parse(item: &'a [u8]) -> Option<Self> {
        if item.len() < HEADER_LEN {
            return None;
        }
        // SAFETY: at least HEADER_LEN bytes; RecordHeader is Pod; unaligned read.
        let header: RecordHeader = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        let payload = item.get(HEADER_LEN..HEADER_LEN + header.chunk_len as usize)?;
        Some(Record { header, payload })
    }

    pub fn src(&self) -> SocketAddr {
        SocketAddr::new(
            addr(self.header.family, &self.header.saddr),
            self.header.sport,
        )
    }

    pub fn dst(&self) -> SocketAddr {
        SocketAddr::new(
            addr(self.header.family, &self.header.daddr),
            self.header.dport,
        )
    }

    pub fn is_egress(&self) -> bool {
        self.header.direction == capture_common::DIR_EGRESS
    }

    /// The record as a [`Segment`]; `clock_offset_ns` converts the kernel's
    /// monotonic timestamp to wall time (see [`Tap::clock_offset_ns`]).
    pub fn segment(&self, clock_offset_ns: i64) -> Segment<'a> {
        let h = &self.header;
        let mut flags = h.tcp_flags;
        if h.rec_flags & capture_common::REC_FIRST == 0 {
            flags &= !tcp_flags::SYN;
        }
        if h.rec_flags & capture_common::REC_LAST == 0 {
            flags &= !(tcp_flags::FIN | tcp_flags::RST | tcp_flags::PSH);
        }
        Segment {
            iface: h.ifindex,
            ts_ns: (h.ts_ns as i64).wrapping_add(clock_offset_ns) as u64,
            src: self.src(),
            dst: self.dst(),
            seq: h.seq.wrapping_add(h.offset),
            ack: h.ack,
            flags,
            window: h.window,
            payload: self.payload,
            checksum: crate::source::Checksum::Unchecked,
        }
    }
}

fn addr(family: u8, b: &[u8; 16]) -> IpAddr {
    if family == capture_common::FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*b))
    }
}

enum Links {
    Tc(Vec<(&'static str, SchedClassifierLinkId)>),
    Xdp(XdpLinkId),
    None,
}

/// A loaded and attached tap.
pub struct Tap {
    ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    links: Links,
    clock_offset_ns: i64,
    ring_size: u32,
    description: String,
    ifnames: HashMap<u32, String>,
    log_task: Option<tokio::task::JoinHandle<()>>,
}

/// Checks the effective capabilities for loading and attaching: CAP_BPF (or
/// CAP_SYS_ADMIN) and CAP_NET_ADMIN.
pub fn check_privileges() -> Result<(), TapError> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return Ok(()); // cannot tell: let the kernel decide
    };
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TapError::NotPermitted {
            missing: missing.join(" and "),
        })
    }
}

/// The interface index of `name`, or [`TapError::NoInterface`].
pub fn if_index(name: &str) -> Result<u32, TapError> {
    let c = std::ffi::CString::new(name).map_err(|_| TapError::NoInterface(name.to_string()))?;
    // SAFETY: valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(TapError::NoInterface(name.to_string()))
    } else {
        Ok(idx)
    }
}

fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buffer of IF_NAMESIZE bytes as required.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn is_loopback(name: &str, index: u32) -> bool {
    const IFF_LOOPBACK: u64 = 0x8;
    match std::fs::read_to_string(format!("/sys/class/net/{name}/flags")) {
        Ok(s) => u64::from_str_radix(s.trim().trim_start_matches("0x"), 16)
            .is_ok_and(|f| f & IFF_LOOPBACK != 0),
        Err(_) => index == 1 || name == "lo",
    }
}

/// Program `name` of the object as its concrete type (`SchedClassifier`,
/// `Xdp`), or which program was missing or of the wrong kind.
fn program<'a, T>(ebpf: &'a mut aya::Ebpf, name: &'static str) -> Result<&'a mut T, TapError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(TapError::Program {
            prog: name,
            source: ProgramError::NotLoaded,
        })?
        .try_into()
        .map_err(|e| TapError::Program {
            prog: name,
            source: e,
        })
}

/// How often user space looks into the ring without a kernel wakeup: the
/// longest a record below the wakeup threshold waits to be decoded.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// Fill level at which the kernel wakes the reader: an eighth of the ring,
/// at most 256 KiB, so a burst is read long before the ring is full while a
/// trickle costs no wakeups at all (the poll timer finds it).
pub fn wakeup_bytes(ring_size: u32) -> u64 {
    (u64::from(ring_size) / 8).clamp(1, 256 << 10)
}

/// Rounds a requested ring size up to a power of two, at least one page.
pub fn ring_size_for(requested: u32) -> u32 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    requested
        .max(page)
        .checked_next_power_of_two()
        .unwrap_or(1 << 31)
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl Tap {
    /// Loads the programs, fills the filter maps and attaches. Must run inside
    /// a tokio runtime (the ring is registered with its reactor).
    pub fn open(cfg: &TapConfig) -> Result<Tap, TapError> {
        let index = if_index(&cfg.iface)?;
        if EBPF_OBJECT.is_empty() {
            return Err(TapError::NotBuilt);
        }
        check_privileges()?;

        let ring_size = ring_size_for(cfg.ring_size);
        let hosts_on: u8 = (!cfg.filter.hosts.is_empty()).into();
        let ports_on: u8 = (!cfg.filter.ports.is_empty()).into();
        let log_level: u8 = match cfg.verbose {
            0 => 0,
            1 => aya_log::Level::Info as u8,
            _ => aya_log::Level::Trace as u8,
        };
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(capture_common::MAP_RING, ring_size)
            .override_global(capture_common::GLOBAL_FILTER_HOSTS, &hosts_on, true)
            .override_global(capture_common::GLOBAL_FILTER_PORTS, &ports_on, true)
            .override_global(
                capture_common::GLOBAL_WAKEUP_BYTES,
                &wakeup_bytes(ring_size),
                true,
            )
            .override_global(aya_log::LEVEL, &log_level, false)
            .load(EBPF_OBJECT)
            .map_err(|e| match &e {
                aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
                    if io_error.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    TapError::NotPermitted {
                        missing: "CAP_BPF".into(),
                    }
                }
                _ => TapError::Load(e),
            })?;

        let log_task = if cfg.verbose > 0 {
            spawn_logger(&mut ebpf)
        } else {
            None
        };

        fill_filter(&mut ebpf, &cfg.filter)?;

        let (links, description) = match cfg.attach {
            AttachKind::Tc => {
                let loopback = is_loopback(&cfg.iface, index);
                let mut dirs = vec![(capture_common::PROG_TC_EGRESS, TcAttachType::Egress)];
                if !loopback {
                    dirs.insert(0, (capture_common::PROG_TC_INGRESS, TcAttachType::Ingress));
                }
                let mut ids = Vec::new();
                for (name, at) in dirs {
                    let prog: &mut SchedClassifier = program(&mut ebpf, name)?;
                    prog.load().map_err(|e| TapError::Program {
                        prog: name,
                        source: e,
                    })?;
                    let id = prog.attach(&cfg.iface, at).map_err(|e| TapError::Attach {
                        what: if at == TcAttachType::Ingress {
                            "the TC ingress program"
                        } else {
                            "the TC egress program"
                        },
                        iface: cfg.iface.clone(),
                        source: e,
                    })?;
                    ids.push((name, id));
                }
                let d = if loopback {
                    "TC egress only, loopback"
                } else {
                    "TC ingress+egress"
                };
                (Links::Tc(ids), d.to_string())
            }
            AttachKind::Xdp => {
                let name = capture_common::PROG_XDP;
                let prog: &mut Xdp = program(&mut ebpf, name)?;
                prog.load().map_err(|e| TapError::Program {
                    prog: name,
                    source: e,
                })?;
                let mode = match cfg.xdp_mode {
                    XdpModeArg::Skb => XdpMode::Skb,
                    XdpModeArg::Driver => XdpMode::Driver,
                };
                let id = prog.attach(&cfg.iface, mode).map_err(|e| {
                    let unsupported = matches!(&e, ProgramError::SyscallError(s)
                        if matches!(s.io_error.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)))
                        || matches!(&e, ProgramError::XdpError(_));
                    if mode == XdpMode::Driver && unsupported {
                        TapError::XdpModeUnsupported { iface: cfg.iface.clone(), source: e }
                    } else {
                        TapError::Attach { what: "the XDP program", iface: cfg.iface.clone(), source: e }
                    }
                })?;
                let d = match mode {
                    XdpMode::Driver => "XDP driver mode, ingress",
                    _ => "XDP skb mode, ingress",
                };
                (Links::Xdp(id), d.to_string())
            }
        };

        let ring = RingBuf::try_from(
            ebpf.take_map(capture_common::MAP_RING)
                .ok_or(TapError::MissingMap(capture_common::MAP_RING))?,
        )
        .map_err(|e| TapError::Map {
            map: capture_common::MAP_RING,
            source: e,
        })?;
        // SAFETY: the ring's fd stays open and unchanged while the AsyncFd owns it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let counters = PerCpuArray::try_from(
            ebpf.take_map(capture_common::MAP_COUNTERS)
                .ok_or(TapError::MissingMap(capture_common::MAP_COUNTERS))?,
        )
        .map_err(|e| TapError::Map {
            map: capture_common::MAP_COUNTERS,
            source: e,
        })?;

        let clock_offset_ns = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC);
        let mut ifnames = HashMap::new();
        ifnames.insert(index, cfg.iface.clone());
        Ok(Tap {
            ebpf,
            ring,
            counters,
            links,
            clock_offset_ns,
            ring_size,
            description,
            ifnames,
            log_task,
        })
    }

    /// How the tap is attached, e.g. "TC ingress+egress".
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The ring size in bytes actually used.
    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }

    /// Add this to a record's kernel timestamp for nanoseconds since the epoch.
    pub fn clock_offset_ns(&self) -> i64 {
        self.clock_offset_ns
    }

    /// Name of an interface index seen in records (cached).
    pub fn ifname(&mut self, index: u32) -> &str {
        self.ifnames
            .entry(index)
            .or_insert_with(|| if_name(index).unwrap_or_else(|| format!("if{index}")))
    }

    /// Waits until the ring has records, then hands every available record to
    /// `f`. Returns the number of records. Cancel-safe: nothing is consumed
    /// before the wait completes.
    pub async fn next_batch(&mut self, mut f: impl FnMut(Record<'_>)) -> Result<usize, TapError> {
        loop {
            // The kernel wakes us only when the ring fills past
            // `wakeup_bytes`; smaller amounts are picked up by this timer.
            let n = match tokio::time::timeout(POLL_INTERVAL, self.ring.readable_mut()).await {
                Ok(guard) => {
                    let mut guard = guard?;
                    let n = drain(guard.get_inner_mut(), &mut f);
                    guard.clear_ready();
                    // Records may have arrived between the last read and
                    // clear_ready; drain once more so none waits for the
                    // next wakeup.
                    n + drain(guard.get_inner_mut(), &mut f)
                }
                Err(_) => drain(self.ring.get_mut(), &mut f),
            };
            if n > 0 {
                return Ok(n);
            }
        }
    }

    /// Hands every record now in the ring to `f`, without waiting.
    pub fn drain_now(&mut self, mut f: impl FnMut(Record<'_>)) -> usize {
        drain(self.ring.get_mut(), &mut f)
    }

    /// Current kernel counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, TapError> {
        let get = |i: u32| -> Result<u64, TapError> {
            let v = self.counters.get(&i, 0).map_err(|e| TapError::Map {
                map: capture_common::MAP_COUNTERS,
                source: e,
            })?;
            Ok(v.iter().sum())
        };
        Ok(Counters {
            packets_seen: get(counter::PACKETS_SEEN)?,
            segments_matched: get(counter::SEGMENTS_MATCHED)?,
            bytes_matched: get(counter::BYTES_MATCHED)?,
            records: get(counter::RECORDS)?,
            bytes: get(counter::BYTES)?,
            records_lost: get(counter::RECORDS_LOST)?,
            bytes_lost: get(counter::BYTES_LOST)?,
            cut_short_segments: get(counter::CUT_SHORT_SEGMENTS)?,
            cut_short_bytes: get(counter::CUT_SHORT_BYTES)?,
            parse_errors: get(counter::PARSE_ERRORS)?,
        })
    }

    /// Detaches the programs; the ring and counters stay readable, so a
    /// final [`Tap::drain_now`] and [`Tap::counters`] give exact totals.
    pub fn detach(&mut self) {
        match std::mem::replace(&mut self.links, Links::None) {
            Links::Tc(ids) => {
                for (name, id) in ids {
                    if let Some(Ok(p)) = self
                        .ebpf
                        .program_mut(name)
                        .map(<&mut SchedClassifier>::try_from)
                    {
                        let _ = p.detach(id);
                    }
                }
            }
            Links::Xdp(id) => {
                if let Some(Ok(p)) = self
                    .ebpf
                    .program_mut(capture_common::PROG_XDP)
                    .map(<&mut Xdp>::try_from)
                {
                    let _ = p.detach(id);
                }
            }
            Links::None => {}
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.detach();
        if let Some(t) = self.log_task.take() {
            t.abort();
        }
    }
}

fn drain(ring: &mut RingBuf<MapData>, f: &mut impl FnMut(Record<'_>)) -> usize {
    let mut n = 0;
    while let Some(item) = ring.next() {
        if let Some(rec) = Record::parse(&item) {
            f(rec);
            n += 1;
        }
    }
    n
}

fn fill_filter(ebpf: &mut Ebpf, filter: &Filter) -> Result<(), TapError> {
    let map_err = |map: &'static str| move |e| TapError::Map { map, source: e };
    {
        let m = ebpf
            .map_mut(capture_common::MAP_PORTS)
            .ok_or(TapError::MissingMap(capture_common::MAP_PORTS))?;
        let mut ports: Array<&mut MapData, u8> =
            Array::try_from(m).map_err(map_err(capture_common::MAP_PORTS))?;
        for &p in &filter.ports {
            ports
                .set(p as u32, 1u8, 0)
                .map_err(map_err(capture_common::MAP_PORTS))?;
        }
    }
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for h in &filter.hosts {
        match h.addr {
            IpAddr::V4(a) => {
                v4.push(Key::new(h.prefix_len as u32, a.octets()));
                // The same host as an IPv4-mapped IPv6 address.
                v6.push(Key::new(
                    96 + h.prefix_len as u32,
                    a.to_ipv6_mapped().octets(),
                ));
            }
            IpAddr::V6(a) => v6.push(Key::new(h.prefix_len as u32, a.octets())),
        }
    }
    {
        let m = ebpf
            .map_mut(capture_common::MAP_HOSTS_V4)
            .ok_or(TapError::MissingMap(capture_common::MAP_HOSTS_V4))?;
        let mut t: LpmTrie<&mut MapData, [u8; 4], u8> =
            LpmTrie::try_from(m).map_err(map_err(capture_common::MAP_HOSTS_V4))?;
        for k in &v4 {
            t.insert(k, 1u8, 0)
                .map_err(map_err(capture_common::MAP_HOSTS_V4))?;
        }
    }
    {
        let m = ebpf
            .map_mut(capture_common::MAP_HOSTS_V6)
            .ok_or(TapError::MissingMap(capture_common::MAP_HOSTS_V6))?;
        let mut t: LpmTrie<&mut MapData, [u8; 16], u8> =
            LpmTrie::try_from(m).map_err(map_err(capture_common::MAP_HOSTS_V6))?;
        for k in &v6 {
            t.insert(k, 1u8, 0)
                .map_err(map_err(capture_common::MAP_HOSTS_V6))?;
        }
    }
    Ok(())
}

/// Forwards aya-log records from the kernel to the `log` crate (env_logger).
fn spawn_logger(ebpf: &mut Ebpf) -> Option<tokio::task::JoinHandle<()>> {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("kernel diagnostics unavailable: {e}");
            return None;
        }
    };
    // SAFETY: the logger's ring fd stays open and unchanged while the AsyncFd owns it.
    let mut fd =
        match unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) } {
            Ok(fd) => fd,
            Err(e) => {
                log::warn!("kernel diagnostics unavailable: {e}");
                return None;
            }
        };
    Some(tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(h: RecordHeader, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN];
        // SAFETY: v holds HEADER_LEN bytes; unaligned write of a Pod.
        unsafe { std::ptr::write_unaligned(v.as_mut_ptr().cast(), h) };
        v.extend_from_slice(payload);
        v
    }

    fn header(rec_flags: u8, offset: u32, len: u32) -> RecordHeader {
        let mut h = RecordHeader {
            ts_ns: 1_000,
            ifindex: 3,
            seq: u32::MAX - 1,
            ack: 7,
            seg_len: 40_000,
            offset,
            chunk_len: len,
            sport: 40_000,
            dport: 80,
            window: 512,
            tcp_flags: tcp_flags::ACK | tcp_flags::PSH | tcp_flags::FIN,
            family: capture_common::FAMILY_V4,
            direction: capture_common::DIR_EGRESS,
            rec_flags,
            ..Default::default()
        };
        h.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        h.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        h
    }

    #[test]
    fn chunk_becomes_segment_at_its_offset() {
        let it = item(header(capture_common::REC_FIRST, 0, 3), b"abc");
        let r = Record::parse(&it).unwrap();
        let s = r.segment(5);
        assert_eq!(s.payload, b"abc");
        assert_eq!(s.seq, u32::MAX - 1);
        assert_eq!(s.ts_ns, 1_005);
        assert_eq!(s.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "10.0.0.2:80".parse().unwrap());
        assert!(!s.has(tcp_flags::FIN) && !s.has(tcp_flags::PSH) && s.has(tcp_flags::ACK));
        assert!(r.is_egress());

        // The last chunk, 16 KiB in: seq wraps, FIN and PSH are back.
        let it = item(header(capture_common::REC_LAST, 16_384, 2), b"yz");
        let s = Record::parse(&it).unwrap().segment(0);
        assert_eq!(s.seq, (u32::MAX - 1).wrapping_add(16_384));
        assert!(s.has(tcp_flags::FIN) && s.has(tcp_flags::PSH));
    }

    #[test]
    fn v6_addresses_and_short_items() {
        let mut h = header(capture_common::REC_FIRST | capture_common::REC_LAST, 0, 0);
        h.family = capture_common::FAMILY_V6;
        h.saddr = "fd77::1".parse::<Ipv6Addr>().unwrap().octets();
        h.daddr = "fd77::2".parse::<Ipv6Addr>().unwrap().octets();
        let it = item(h, b"");
        let s = Record::parse(&it).unwrap().segment(0);
        assert_eq!(s.src, "[fd77::1]:40000".parse().unwrap());
        assert!(s.payload.is_empty());
        // Shorter than the header, or than the chunk length it claims.
        assert!(Record::parse(&it[..HEADER_LEN - 1]).is_none());
        let it = item(header(0, 0, 10), b"short");
        assert!(Record::parse(&it).is_none());
    }

    #[test]
    fn ring_sizes_round_up_to_pages_and_powers_of_two() {
        assert_eq!(ring_size_for(1), 4096);
        assert_eq!(ring_size_for(4096), 4096);
        assert_eq!(ring_size_for(5000), 8192);
        assert_eq!(ring_size_for(64 << 20), 64 << 20);
    }
}
