//! Owners: which process each end of a connection belongs to, a table
//! beside the decoder (see ARCHITECTURE.md). Filled from the kernel's
//! ownership hooks (`tap::SockFact`: an owner and the addresses of one
//! socket arrive as separate facts and are joined here by the socket's
//! identity) and, at start, from /proc for connections already open
//! ([`procfs`]). Read by the sinks when they format an event's connection
//! part (`src_pid`, `src_comm`, ...). The decoder core never calls in here.
//!
//! Shared between the ring thread (writer) and decoder threads (readers)
//! behind one mutex; readers come only when an event's connection part is
//! not cached, and the [`Owners::epoch`] tells them when a cached part may
//! be stale.

pub mod procfs;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use capture_common::sock_event;

use crate::tap::SockFact;

/// A process that owns one end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Thread group id: the pid `ps` shows.
    pub pid: u32,
    /// The kernel comm (at most 15 bytes) of the thread that acted.
    pub comm: Arc<str>,
    /// The owner filter (`--pid`, `--comm`, `-- COMMAND`) selects it.
    pub selected: bool,
    /// Where the process lives, when /proc could tell.
    pub place: Place,
}

/// The network namespace and cgroup of a process (containers), read from
/// /proc when its pid is first seen; `None` when it was gone by then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// Inode of its network namespace (`/proc/PID/ns/net`).
    pub netns: Option<u64>,
    /// Its cgroup v2 path (`/proc/PID/cgroup`, the `0::` line).
    pub cgroup: Option<Arc<str>>,
}

impl Place {
    /// Reads the place of process `pid` from /proc.
    pub fn of(pid: u32) -> Place {
        let netns = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .ok()
            .and_then(|l| netns_inode(l.to_str()?));
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("0::").map(Arc::from)));
        Place { netns, cgroup }
    }
}

/// `net:[4026531840]` → 4026531840.
pub fn netns_inode(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// This process's own network namespace: the JSON output names an owner's
/// namespace only when it is another one.
pub fn own_netns() -> Option<u64> {
    std::fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|l| netns_inode(l.to_str()?))
}

impl Owner {
    pub fn new(pid: u32, comm: &[u8]) -> Owner {
        let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        Owner {
            pid,
            comm: String::from_utf8_lossy(&comm[..end]).into(),
            selected: false,
            place: Place::default(),
        }
    }
}

/// The owner filter: `--pid`, `--comm` and `-- COMMAND` (whose process and
/// children the kernel follows). The kernel decides for the processes it
/// sees act (the `selected` byte of its records); this decides for owners
/// found in /proc at start.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
}

impl Selection {
    pub fn matches(&self, pid: u32, comm: &str) -> bool {
        self.pids.contains(&pid) || self.comms.iter().any(|c| c == comm)
    }
}

/// Local end, remote end.
type Tuple = (SocketAddr, SocketAddr);

/// What is known of one kernel socket so far.
#[derive(Default)]
struct SockState {
    owner: Option<Owner>,
    tuple: Option<Tuple>,
    /// Accepted (the local end is the server).
    passive: bool,
}

/// What the table knows of one kernel socket: its ends, and which is the
/// server's. The TLS plaintext source places a hooked call's bytes by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEnds {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Accepted: `local` is the server.
    pub passive: bool,
}

/// Most sockets and most 4-tuples remembered; the oldest go first.
pub const OWNERS_MAX: usize = 65536;

/// A map that keeps at most [`OWNERS_MAX`] keys, dropping the oldest
/// inserted first (both tables of [`Table`] are bounded alike).
struct Fifo<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K, V> Default for Fifo<K, V> {
    fn default() -> Self {
        Fifo {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy, V> Fifo<K, V> {
    /// Before `key` goes in: when it is new and the map is full, drops the
    /// oldest key and counts it in `evicted`.
    fn make_room(&mut self, key: K, evicted: &mut u64) {
        if self.map.contains_key(&key) {
            return;
        }
        if self.map.len() >= OWNERS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
                *evicted += 1;
            }
        }
        self.order.push_back(key);
    }
}

#[derive(Default)]
struct Table {
    by_sk: Fifo<u64, SockState>,
    by_tuple: Fifo<Tuple, Owner>,
    /// Listening addresses (`0.0.0.0:P` / `[::]:P` for every address) and
    /// their process: an accepted connection's owner until its own first
    /// read or send.
    listeners: Fifo<SocketAddr, Owner>,
    /// Where each pid seen lives (read once per pid).
    places: Fifo<u32, Place>,
    evicted: u64,
}

/// The owner table. See the module doc.
#[derive(Default)]
pub struct Owners {
    table: Mutex<Table>,
    epoch: AtomicU64,
    /// The owner filter, when on.
    selection: Option<Selection>,
    /// Events and segments the owner filter left out in user space.
    hidden: AtomicU64,
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 peer)
/// as the IPv4 addresses the packets carry.
fn plain(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

impl Owners {
    pub fn new() -> Arc<Owners> {
        Arc::new(Owners::default())
    }

    /// An owner table for a capture with the owner filter `selection`.
    pub fn with_selection(selection: Option<Selection>) -> Arc<Owners> {
        Arc::new(Owners {
            selection,
            ..Owners::default()
        })
    }

    /// Whether the owner filter is on.
    pub fn filtering(&self) -> bool {
        self.selection.is_some()
    }

    /// Whether a connection's events are shown: always without the owner
    /// filter; with it, when an end's owner is selected.
    pub fn shown(&self, src: SocketAddr, dst: SocketAddr) -> bool {
        if self.selection.is_none() {
            return true;
        }
        let t = self.lock();
        [t.owner_of(src, dst), t.owner_of(dst, src)]
            .iter()
            .any(|o| o.as_ref().is_some_and(|o| o.selected))
    }

    /// One more event or segment left out by the owner filter.
    pub fn count_hidden(&self) {
        self.hidden.fetch_add(1, Ordering::Relaxed);
    }

    /// Events and segments the owner filter left out in user space.
    pub fn hidden(&self) -> u64 {
        self.hidden.load(Ordering::Relaxed)
    }

    /// `owner` with the filter's verdict (for owners found in /proc).
    fn judged(&self, mut owner: Owner) -> Owner {
        owner.selected = self
            .selection
            .as_ref()
            .is_some_and(|s| s.matches(owner.pid, &owner.comm));
        owner
    }

    /// Changes whenever an owner is learned or replaced: a sink that cached
    /// a connection's formatted part under another epoch formats it again.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Owners evicted because the table was full.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// Number of 4-tuples with a known owner.
    pub fn len(&self) -> usize {
        self.lock().by_tuple.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic elsewhere while holding it leaves a table still worth reading.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The process owning the end `local` of the connection to `remote`.
    pub fn owner_of(&self, local: SocketAddr, remote: SocketAddr) -> Option<Owner> {
        self.lock().owner_of(local, remote)
    }

    /// The owners of both ends of a connection, `src`'s first, in one look.
    pub fn ends(&self, src: SocketAddr, dst: SocketAddr) -> [Option<Owner>; 2] {
        let t = self.lock();
        [t.owner_of(src, dst), t.owner_of(dst, src)]
    }

    /// Records that `owner` owns the end `local` of the connection to `remote`
    /// (a connection found open at start); returns it as recorded, with the
    /// owner filter's verdict and its place.
    pub fn insert(&self, local: SocketAddr, remote: SocketAddr, owner: Owner) -> Owner {
        let mut owner = self.judged(owner);
        let mut t = self.lock();
        owner.place = t.place(owner.pid);
        t.set_tuple_owner((plain(local), plain(remote)), owner.clone());
        self.epoch.fetch_add(1, Ordering::Relaxed);
        owner
    }

    /// Records that `owner` listens on `local` (found at start); returns it
    /// as recorded.
    pub fn insert_listener(&self, local: SocketAddr, owner: Owner) -> Owner {
        let mut owner = self.judged(owner);
        let mut t = self.lock();
        owner.place = t.place(owner.pid);
        t.set_listener(plain(local), owner.clone());
        owner
    }

    /// The ends of kernel socket `sk`, once its ESTABLISHED was seen.
    pub fn socket(&self, sk: u64) -> Option<SocketEnds> {
        let t = self.lock();
        let s = t.by_sk.map.get(&sk)?;
        s.tuple.map(|(local, remote)| SocketEnds {
            local,
            remote,
            passive: s.passive,
        })
    }

    /// Applies one fact from the kernel hooks.
    pub fn apply(&self, fact: &SockFact) {
        let mut t = self.lock();
        let changed = t.apply(fact);
        drop(t);
        if changed {
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Table {
    fn owner_of(&self, local: SocketAddr, remote: SocketAddr) -> Option<Owner> {
        self.by_tuple.map.get(&(local, remote)).cloned()
    }

    fn sock(&mut self, sk: u64) -> &mut SockState {
        self.by_sk.make_room(sk, &mut self.evicted);
        self.by_sk.map.entry(sk).or_default()
    }

    fn set_tuple_owner(&mut self, tuple: Tuple, owner: Owner) {
        self.by_tuple.make_room(tuple, &mut self.evicted);
        self.by_tuple.map.insert(tuple, owner);
    }

    fn set_listener(&mut self, local: SocketAddr, owner: Owner) {
        self.listeners.make_room(local, &mut self.evicted);
        self.listeners.map.insert(local, owner);
    }

    /// The process listening where `local` was accepted: on that address,
    /// or on every address of its family (or, dual-stack, of IPv6).
    fn listener_of(&self, local: SocketAddr) -> Option<Owner> {
        let port = local.port();
        let any4 = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port);
        let any6 = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), port);
        [local, any4, any6]
            .iter()
            .find_map(|a| self.listeners.map.get(a).cloned())
    }

    /// Where process `pid` lives, read from /proc the first time.
    fn place(&mut self, pid: u32) -> Place {
        if let Some(p) = self.places.map.get(&pid) {
            return p.clone();
        }
        let p = Place::of(pid);
        // Evicting a place costs only a re-read: not counted.
        let mut ignored = 0;
        self.places.make_room(pid, &mut ignored);
        self.places.map.insert(pid, p.clone());
        p
    }

    /// The owner a kernel record names, with its verdict and place.
    fn owner_from(&mut self, f: &SockFact) -> Owner {
        let mut o = Owner::new(f.tgid, &f.comm);
        o.selected = f.selected == capture_common::verdict::SELECTED;
        o.place = self.place(f.tgid);
        o
    }

    /// Returns whether a 4-tuple's owner changed.
    fn apply(&mut self, f: &SockFact) -> bool {
        let joined = match f.event {
            sock_event::CONNECT => {
                // connect() starts a new connection on this socket.
                let owner = self.owner_from(f);
                *self.sock(f.sk) = SockState {
                    owner: Some(owner),
                    tuple: None,
                    passive: false,
                };
                None
            }
            sock_event::IO => {
                let owner = self.owner_from(f);
                let s = self.sock(f.sk);
                s.owner = Some(owner.clone());
                s.tuple.map(|t| (t, owner))
            }
            sock_event::LISTEN => {
                let owner = self.owner_from(f);
                self.set_listener(plain(f.local), owner);
                None
            }
            sock_event::ESTABLISHED => {
                let tuple = (plain(f.local), plain(f.remote));
                let listener = if f.passive {
                    self.listener_of(tuple.0)
                } else {
                    None
                };
                let s = self.sock(f.sk);
                if s.tuple.is_some() || f.passive {
                    // A socket is established once: this pointer was freed
                    // and reused, and the old owner is not this one's. An
                    // accepted socket's owner before this is never its own
                    // either (a reused pointer of a socket established
                    // before wstap started): the kernel reports its reader
                    // again after ESTABLISHED, the listener stands in until.
                    s.owner = None;
                }
                s.tuple = Some(tuple);
                s.passive = f.passive;
                // An accepted socket is its listener's until its owner
                // reads or sends: then the request is attributed too.
                s.owner.clone().or(listener).map(|o| (tuple, o))
            }
            _ => None,
        };
        match joined {
            Some((tuple, owner)) => {
                if self.by_tuple.map.get(&tuple) == Some(&owner) {
                    return false;
                }
                self.set_tuple_owner(tuple, owner);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests;
