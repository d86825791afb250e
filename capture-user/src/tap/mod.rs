//! The kernel tap: load the eBPF programs (`capture-ebpf`) and fill their
//! filter maps (`load`, `maps`), attach them (`attach`), and drain the
//! ring buffer with tokio's `AsyncFd` (`ring`).
//!
//! # Loss
//!
//! A record the kernel could not write (ring full) is counted in the per-CPU
//! counters ([`Counters`], `Counter::RecordsLost`) and leaves a hole in that
//! flow's sequence space, which the reassembler reports as a gap. A record
//! user space cannot read is counted too ([`Tap::unreadable_records`]).
//!
//! # Timestamps
//!
//! The kernel stamps records with `bpf_ktime_get_ns` (CLOCK_MONOTONIC); the
//! offset CLOCK_REALTIME - CLOCK_MONOTONIC is taken once when the tap opens
//! and added, so [`Segment::ts_ns`](crate::source::Segment) is nanoseconds
//! since the Unix epoch.

mod attach;
pub mod dedup;
pub mod links;
mod load;
mod maps;
mod ring;
mod select;
mod sock;
pub mod stale;
pub mod tls;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::ProgramError;
use aya::Ebpf;
use tokio::io::unix::AsyncFd;

use crate::filter::Filter;

pub use attach::{if_index, if_name, interfaces, Attach, Interface, TcPath, XdpAttachMode};
pub use dedup::CrossIfaceDedup;
pub use links::{LinkEvent, LinkWatch};
pub use load::check_privileges;
pub use maps::Counters;
pub use ring::{
    ring_size_for, wakeup_bytes, Record, RingItem, SockFact, TlsRecord, Unreadable, POLL_INTERVAL,
};
pub use select::TapSelection;

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
    #[error("interface {iface} went away during the capture (deleted, or moved to another network namespace)")]
    InterfaceGone { iface: String },
    #[error("-i any means every interface: give it alone, not with -i {0}")]
    AnyWithOthers(String),
    #[error(
        "--pid, --comm and -- COMMAND need the ownership hooks, which cannot attach here: {0}"
    )]
    NoOwnerFilter(String),
    #[error("--tls needs the socket hooks, which tie each TLS call to its connection: {0}")]
    NoTls(String),
    #[error(
        "this kernel ({have}) is older than {need}, which {what} needs (see README, Requirements)"
    )]
    KernelTooOld {
        have: String,
        need: String,
        what: &'static str,
    },
    #[error("looking for stale wstap TC filters on {iface} failed")]
    Cleanup {
        iface: String,
        source: aya::programs::tc::TcError,
    },
    #[error(
        "another wstap (pid {0}) runs in this network namespace: its TC filters are not stale; stop it first"
    )]
    OtherRunning(u32),
    #[error("reading the ring buffer: {0}")]
    Io(#[from] std::io::Error),
}

/// What to tap and how.
#[derive(Debug, Clone)]
pub struct TapConfig {
    /// The interfaces (`-i`, repeatable); `["any"]`: every interface that
    /// is up, and those that come up later ([`Tap::link_event`]).
    pub ifaces: Vec<String>,
    pub filter: Filter,
    pub attach: Attach,
    /// Requested ring size; rounded up to a power of two of at least a page.
    pub ring_size: u32,
    /// 0: no kernel diagnostics; 1: parse failures; 2+: filter decisions too.
    pub verbose: u8,
    /// Attach the ownership hooks (which process each connection is).
    pub owners: bool,
    /// The owner filter (`--pid`, `--comm`, `-- COMMAND`); needs `owners`.
    pub selection: Option<TapSelection>,
    /// Hook OpenSSL (`--tls`): the libraries given with `--tls-lib`, beside
    /// those found. Needs `owners` (the socket table ties calls to sockets).
    pub tls: Option<Vec<std::path::PathBuf>>,
}

/// A loaded and attached tap.
pub struct Tap {
    /// Keeps the programs and the remaining maps loaded.
    _ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, u64>,
    /// The interfaces attached, by index; empty once detached.
    attached: std::collections::BTreeMap<u32, Attached>,
    /// `-i any`: interfaces that come up later are attached too.
    any: bool,
    attach: Attach,
    /// The ownership hooks; `None` when off, failed, or detached.
    sock_links: Option<sock::SockLinks>,
    /// Why attribution is off although asked for.
    owners_off: Option<String>,
    /// The TLS hooks; `None` when off or detached.
    tls_links: Option<tls::TlsLinks>,
    /// What attaching the TLS hooks found: one line per library.
    tls_report: Vec<String>,
    /// Stale netlink filters found and removed before attaching.
    stale_report: Vec<String>,
    clock_offset_ns: i64,
    ring_size: u32,
    unreadable: u64,
    log_task: Option<tokio::task::JoinHandle<()>>,
}

/// One interface the programs are attached to.
struct Attached {
    name: String,
    /// Keeps the links alive: dropping them detaches.
    _links: attach::Links,
    description: &'static str,
}

/// What a link notification changed (see [`Tap::link_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfaceChange {
    /// `-i any`: a new interface came up and is now tapped.
    Attached {
        name: String,
        description: &'static str,
        /// Stale wstap filters removed from it first.
        stale: Vec<String>,
    },
    /// `-i any`: a new interface came up but could not be tapped.
    NotAttached { name: String, why: String },
    /// A tapped interface went away; `left` are still tapped.
    Gone { name: String, left: usize },
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
        stale::require_kernel(stale::MIN_KERNEL, "the BPF ring buffer")?;
        if matches!(cfg.attach, Attach::Xdp(_)) {
            stale::require_kernel(stale::MIN_KERNEL_XDP, "XDP with multi-buffer frames")?;
        }
        let any = cfg.ifaces.iter().any(|i| i == "any");
        if let (true, Some(other)) = (any, cfg.ifaces.iter().find(|i| *i != "any")) {
            return Err(TapError::AnyWithOthers(other.clone()));
        }
        let mut wanted: Vec<(String, u32)> = if any {
            interfaces()?
                .into_iter()
                .filter(|i| i.up)
                .map(|i| (i.name, i.index))
                .collect()
        } else {
            let mut v = Vec::new();
            for name in &cfg.ifaces {
                v.push((name.clone(), if_index(name)?));
            }
            v
        };
        wanted.sort_by_key(|w| w.1);
        wanted.dedup_by_key(|w| w.1);
        let ring_size = ring_size_for(cfg.ring_size);
        let mut ebpf = load::load(cfg, ring_size)?;
        let log_task = if cfg.verbose > 0 {
            load::spawn_logger(&mut ebpf)
        } else {
            None
        };
        maps::fill_filter(&mut ebpf, &cfg.filter)?;
        if let Some(sel) = &cfg.selection {
            select::fill(&mut ebpf, sel)?;
        }
        // The hooks first: with the owner filter on, a connection made
        // between attaching TC and attaching them would have no verdict.
        let follow = cfg.selection.as_ref().is_some_and(|s| s.follow);
        let (sock_links, owners_off) = if cfg.owners {
            match sock::attach(&mut ebpf, follow) {
                Ok(l) => (Some(l), None),
                Err(why) => (None, Some(why)),
            }
        } else {
            (None, None)
        };
        if let (Some(why), Some(_)) = (&owners_off, &cfg.selection) {
            return Err(TapError::NoOwnerFilter(why.clone()));
        }
        let (tls_links, tls_report) = match &cfg.tls {
            None => (None, Vec::new()),
            Some(_) if owners_off.is_some() || !cfg.owners => {
                return Err(TapError::NoTls(owners_off.clone().unwrap_or_else(|| {
                    "--no-process turns the socket hooks off".into()
                })))
            }
            Some(extra) => {
                let libs = tls::find_libraries(extra);
                let l = tls::attach(&mut ebpf, &libs).map_err(TapError::NoTls)?;
                let mut report: Vec<String> = l
                    .hooked
                    .iter()
                    .map(|p| format!("hooked OpenSSL in {}", p.display()))
                    .collect();
                report.extend(l.problems.iter().cloned());
                if libs.is_empty() {
                    report.push(
                        "no OpenSSL library (libssl.so.*) found: wss:// stays encrypted (give one with --tls-lib PATH)"
                            .into(),
                    );
                }
                (Some(l), report)
            }
        };
        attach::load_programs(&mut ebpf, cfg.attach)?;
        let mut stale_report = Vec::new();
        let mut attached = std::collections::BTreeMap::new();
        let other_wstap = stale::another_wstap();
        for (name, index) in wanted {
            let (a, stale) = attach_one(&mut ebpf, &name, index, cfg.attach, other_wstap)?;
            stale_report.extend(stale);
            attached.insert(index, a);
        }

        let ring: RingBuf<MapData> = maps::take(&mut ebpf, capture_common::MAP_RING)?;
        // SAFETY: the ring's fd stays open and unchanged while the AsyncFd owns it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let counters = maps::take(&mut ebpf, capture_common::MAP_COUNTERS)?;

        let clock_offset_ns = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC);
        Ok(Tap {
            _ebpf: ebpf,
            ring,
            counters,
            attached,
            any,
            attach: cfg.attach,
            sock_links,
            owners_off,
            tls_links,
            tls_report,
            stale_report,
            clock_offset_ns,
            ring_size,
            unreadable: 0,
            log_task,
        })
    }

    /// Why process attribution is off although it was asked for (a hook
    /// missing from this kernel, say); `None` when it is on or not asked for.
    pub fn owners_off(&self) -> Option<&str> {
        self.owners_off.as_deref()
    }

    /// What attaching the TLS hooks found (hooked libraries, and one line
    /// per library that could not be hooked); empty without `--tls`.
    pub fn tls_report(&self) -> &[String] {
        &self.tls_report
    }

    /// Stale wstap TC filters removed before attaching (one line each), or
    /// why none was looked for.
    pub fn stale_report(&self) -> &[String] {
        &self.stale_report
    }

    /// Libraries whose functions are hooked.
    pub fn tls_hooked(&self) -> usize {
        self.tls_links.as_ref().map_or(0, |l| l.hooked.len())
    }

    /// Where and how the tap is attached, for the "listening on" line:
    /// `lo (TC egress only, loopback), eth0 (TC ingress+egress)`.
    pub fn description(&self) -> String {
        let each: Vec<String> = self
            .attached
            .values()
            .map(|a| format!("{} ({})", a.name, a.description))
            .collect();
        let all = each.join(", ");
        if self.any {
            format!("any: {all}; interfaces that come up are added")
        } else {
            all
        }
    }

    /// Interfaces tapped now.
    pub fn attached_count(&self) -> usize {
        self.attached.len()
    }

    /// `-i any`: interfaces that come up later are tapped too.
    pub fn follows_new_interfaces(&self) -> bool {
        self.any
    }

    /// Applies a link notification: with `-i any`, an interface that is up
    /// and not tapped yet is attached; a tapped one that is gone is
    /// forgotten (its links went with it). `Lost` notifications: every
    /// interface is looked at again.
    pub fn link_event(&mut self, ev: links::LinkEvent) -> Vec<IfaceChange> {
        let mut changes = Vec::new();
        match ev {
            links::LinkEvent::Exists { index, up } => {
                if up && self.any && !self.attached.contains_key(&index) {
                    changes.extend(self.attach_new(index));
                }
            }
            links::LinkEvent::Gone { index } => changes.extend(self.forget(index)),
            links::LinkEvent::Lost => {
                changes.extend(self.check_interfaces());
                if self.any {
                    let up: Vec<u32> = interfaces()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|i| i.up && !self.attached.contains_key(&i.index))
                        .map(|i| i.index)
                        .collect();
                    for index in up {
                        changes.extend(self.attach_new(index));
                    }
                }
            }
        }
        changes
    }

    fn attach_new(&mut self, index: u32) -> Option<IfaceChange> {
        let name = if_name(index)?;
        Some(
            match attach_one(
                &mut self._ebpf,
                &name,
                index,
                self.attach,
                stale::another_wstap(),
            ) {
                Ok((a, stale)) => {
                    let description = a.description;
                    self.attached.insert(index, a);
                    IfaceChange::Attached {
                        name,
                        description,
                        stale,
                    }
                }
                Err(e) => IfaceChange::NotAttached {
                    name,
                    why: format!("{:#}", anyhow::Error::new(e)),
                },
            },
        )
    }

    fn forget(&mut self, index: u32) -> Option<IfaceChange> {
        let a = self.attached.remove(&index)?;
        Some(IfaceChange::Gone {
            name: a.name,
            left: self.attached.len(),
        })
    }

    /// Tapped interfaces that no longer exist under their index (deleted
    /// while no notification was read), forgotten.
    pub fn check_interfaces(&mut self) -> Vec<IfaceChange> {
        let gone: Vec<u32> = self
            .attached
            .iter()
            .filter(|(i, a)| if_name(**i).as_deref() != Some(a.name.as_str()))
            .map(|(i, _)| *i)
            .collect();
        gone.into_iter().filter_map(|i| self.forget(i)).collect()
    }

    /// The ring size in bytes actually used.
    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }

    /// Add this to a record's kernel timestamp for nanoseconds since the epoch.
    pub fn clock_offset_ns(&self) -> i64 {
        self.clock_offset_ns
    }

    /// Ring items that could not be read as records (another kind or
    /// version, or shorter than their header says).
    pub fn unreadable_records(&self) -> u64 {
        self.unreadable
    }

    /// Waits until the ring has records, then hands every available record to
    /// `f`. Returns the number of ring items taken (unreadable ones, counted
    /// in [`Tap::unreadable_records`], included). Cancel-safe: nothing is consumed
    /// before the wait completes.
    pub async fn next_batch(&mut self, mut f: impl FnMut(RingItem<'_>)) -> Result<usize, TapError> {
        loop {
            // The kernel wakes us only when the ring fills past
            // `wakeup_bytes`; smaller amounts are picked up by this timer.
            let n = match tokio::time::timeout(POLL_INTERVAL, self.ring.readable_mut()).await {
                Ok(guard) => {
                    let mut guard = guard?;
                    let n = ring::drain(guard.get_inner_mut(), &mut self.unreadable, &mut f);
                    guard.clear_ready();
                    // Records may have arrived between the last read and
                    // clear_ready; drain once more so none waits for the
                    // next wakeup.
                    n + ring::drain(guard.get_inner_mut(), &mut self.unreadable, &mut f)
                }
                Err(_) => ring::drain(self.ring.get_mut(), &mut self.unreadable, &mut f),
            };
            if n > 0 {
                return Ok(n);
            }
        }
    }

    /// Hands every record now in the ring to `f`, without waiting.
    pub fn drain_now(&mut self, mut f: impl FnMut(RingItem<'_>)) -> usize {
        ring::drain(self.ring.get_mut(), &mut self.unreadable, &mut f)
    }

    /// Selects `pid` and, from now on, every process it forks (`-- COMMAND`).
    pub fn follow(&mut self, pid: u32) -> Result<(), TapError> {
        select::follow(&mut self._ebpf, pid)
    }

    /// Stops selecting `pid`; the children it forked meanwhile stay selected.
    pub fn unfollow(&mut self, pid: u32) -> Result<(), TapError> {
        select::unfollow(&mut self._ebpf, pid)
    }

    /// Gives the kernel the owner filter's verdicts on what was open at
    /// start (found in /proc), which its hooks never saw.
    pub fn mark_found(&mut self, found: &crate::owners::procfs::Found) -> Result<(), TapError> {
        for (local, remote, owner) in &found.ends {
            select::mark_end(&mut self._ebpf, *local, *remote, owner.selected)?;
        }
        for (local, owner) in &found.listeners {
            select::mark_listener(&mut self._ebpf, local.port(), owner.selected)?;
        }
        Ok(())
    }

    /// Current kernel counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, TapError> {
        maps::read_counters(&self.counters)
    }

    /// Detaches the programs (drops the links); the ring and counters stay
    /// readable, so a final [`Tap::drain_now`] and [`Tap::counters`] give
    /// exact totals.
    pub fn detach(&mut self) {
        self.attached.clear();
        self.tls_links = None;
        self.sock_links = None;
    }
}

/// Removes stale filters from `name` (TC; none while `other_wstap`, looked
/// up once by the caller, runs) and attaches to it; the stale report lines
/// come back with the attachment.
fn attach_one(
    ebpf: &mut Ebpf,
    name: &str,
    index: u32,
    how: Attach,
    other_wstap: Option<u32>,
) -> Result<(Attached, Vec<String>), TapError> {
    let stale = match how {
        Attach::Tc(_) => stale::remove_stale(name, other_wstap)?,
        Attach::Xdp(_) => Vec::new(),
    };
    let (links, description) = attach::attach(ebpf, name, index, how)?;
    Ok((
        Attached {
            name: name.to_string(),
            _links: links,
            description,
        },
        stale,
    ))
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.detach();
        if let Some(t) = self.log_task.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod expr_kernel_tests;

#[cfg(test)]
mod tests {
    use super::load::EBPF_OBJECT;

    /// The names user space uses (capture-common) are the names in the built
    /// object: every map, global and program.
    #[test]
    fn object_names_match_the_contract() {
        if EBPF_OBJECT.is_empty() {
            eprintln!(
                "!!!! SKIPPED object_names_match_the_contract: built with AYA_BUILD_SKIP=1, no eBPF object to check !!!!"
            );
            return;
        }
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("the eBPF object parses");
        for map in [
            capture_common::MAP_RING,
            capture_common::MAP_COUNTERS,
            capture_common::MAP_HOSTS_V4,
            capture_common::MAP_HOSTS_V6,
            capture_common::MAP_PORTS,
            capture_common::MAP_SOCK_OWNER,
            capture_common::MAP_SELECT_PIDS,
            capture_common::MAP_SELECT_COMMS,
            capture_common::MAP_END_VERDICT,
            capture_common::MAP_FILTER_EXPR,
            capture_common::MAP_EXPR_STACK,
            capture_common::MAP_LISTEN_VERDICT,
        ] {
            assert!(obj.maps.contains_key(map), "map {map} not in the object");
        }
        let counters = &obj.maps[capture_common::MAP_COUNTERS];
        assert_eq!(counters.max_entries(), capture_common::Counter::COUNT);
        for prog in [
            capture_common::PROG_TC_INGRESS,
            capture_common::PROG_TC_EGRESS,
            capture_common::PROG_TC_NOOP,
            capture_common::PROG_XDP,
            capture_common::PROG_SOCK_STATE,
            capture_common::PROG_SOCK_IO,
            capture_common::PROG_FOLLOW_FORK,
            capture_common::PROG_SSL_READ,
            capture_common::PROG_SSL_READ_EX,
            capture_common::PROG_SSL_WRITE,
            capture_common::PROG_SSL_WRITE_EX,
            capture_common::PROG_SSL_RET,
            capture_common::PROG_SSL_FREE,
        ] {
            assert!(
                obj.programs.contains_key(prog),
                "program {prog} not in the object"
            );
        }
        // Globals live in .rodata / .data; their names are ELF symbols.
        use object::{Object as _, ObjectSymbol as _};
        let elf = object::File::parse(EBPF_OBJECT).expect("the eBPF object is ELF");
        let symbols: Vec<&str> = elf.symbols().filter_map(|s| s.name().ok()).collect();
        for global in [
            capture_common::GLOBAL_FILTER_HOSTS,
            capture_common::GLOBAL_FILTER_PORTS,
            capture_common::GLOBAL_FILTER_EXPR,
            capture_common::GLOBAL_WAKEUP_BYTES,
            capture_common::GLOBAL_FILTER_OWNERS,
        ] {
            assert!(
                symbols.contains(&global),
                "global {global} not in the object"
            );
        }
    }
}
