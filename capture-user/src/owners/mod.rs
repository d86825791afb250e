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
}

impl Owner {
    pub fn new(pid: u32, comm: &[u8]) -> Owner {
        let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        Owner {
            pid,
            comm: String::from_utf8_lossy(&comm[..end]).into(),
        }
    }
}

/// Local end, remote end.
type Tuple = (SocketAddr, SocketAddr);

/// What is known of one kernel socket so far.
#[derive(Default)]
struct SockState {
    owner: Option<Owner>,
    tuple: Option<Tuple>,
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
    evicted: u64,
}

/// The owner table. See the module doc.
#[derive(Default)]
pub struct Owners {
    table: Mutex<Table>,
    epoch: AtomicU64,
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
    /// (a connection found open at start).
    pub fn insert(&self, local: SocketAddr, remote: SocketAddr, owner: Owner) {
        let mut t = self.lock();
        t.set_tuple_owner((plain(local), plain(remote)), owner);
        self.epoch.fetch_add(1, Ordering::Relaxed);
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

    /// Returns whether a 4-tuple's owner changed.
    fn apply(&mut self, f: &SockFact) -> bool {
        let joined = match f.event {
            sock_event::CONNECT => {
                // connect() starts a new connection on this socket.
                *self.sock(f.sk) = SockState {
                    owner: Some(Owner::new(f.tgid, &f.comm)),
                    tuple: None,
                };
                None
            }
            sock_event::IO => {
                let s = self.sock(f.sk);
                let owner = Owner::new(f.tgid, &f.comm);
                s.owner = Some(owner.clone());
                s.tuple.map(|t| (t, owner))
            }
            sock_event::ESTABLISHED => {
                let tuple = (plain(f.local), plain(f.remote));
                let s = self.sock(f.sk);
                if s.tuple.is_some() {
                    // A socket is established once: this pointer was freed
                    // and reused, and the old owner is not this one's.
                    s.owner = None;
                }
                s.tuple = Some(tuple);
                s.owner.clone().map(|o| (tuple, o))
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
