//! Ownership hooks: which process a TCP socket belongs to, recorded in
//! process context where the kernel knows it (a packet at TC does not).
//! Two tracepoint programs (stable hooks), each writing a
//! `capture_common::SockRecord` into the same ring as the segments:
//!
//! - `sock:inet_sock_set_state`: CLOSE→SYN_SENT runs inside connect()
//!   (owner known, before the SYN leaves; the port may not be chosen yet);
//!   any →ESTABLISHED gives the socket's addresses (often in softirq, no
//!   owner); →CLOSE forgets the socket here, as its pointer may be reused.
//! - `sock:sock_send_length` and `sock:sock_recv_length` (one program): a
//!   process that sends or receives on a socket and is not its owner last
//!   reported. This is where the passive side gets its owner (it is
//!   established in softirq; its first recv follows accept), and where a
//!   socket handed to a child changes hands.
//!
//! - `sched:sched_process_fork` (`follow_fork`, attached only for
//!   `-- COMMAND`): the children of a followed process are followed too.
//!
//! With the owner filter on (`--pid`, `--comm`, `-- COMMAND`) the same
//! hooks keep `END_VERDICT`, the per-end verdict the TC/XDP programs read
//! per segment (`filter::owner_pass`):
//!
//! - connect(): the caller's verdict waits in `SK_END` for the addresses;
//!   at ESTABLISHED a selected caller's end is marked at once. Another
//!   process's end is marked at its first read or send instead: a local
//!   server of the same connection may be selected, and its end is marked
//!   only when it is established, after the client's.
//! - listen(): the verdict on the listener goes by port into
//!   `LISTEN_VERDICT`, and an accepted socket's end gets it at ESTABLISHED
//!   (before its request arrives, so a selected server sees its first bytes).
//! - every read or send by a process with another verdict than its end's
//!   (the accepting process, a socket handed to a child) marks it again.
//! - CLOSE forgets the socket and its end.
//!
//! Not kprobes or fentry: the kernels this runs on may have neither (this
//! VM's has no kprobes and refuses function tracing). The socket pointer is
//! only an identity for joining records in user space; no kernel struct is
//! read, so no field offsets are needed.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::{ring_buf::RingBufEntry, HashMap, LruHashMap},
    programs::TracePointContext,
};
use capture_common::{
    kind, select, sock_event, verdict, Counter, EndKey, RecordPrefix, SockRecord, END_VERDICT_MAX,
    FAMILY_V4, FAMILY_V6, SELECT_COMMS_MAX, SELECT_PIDS_MAX, SOCK_OWNER_MAX, WIRE_VERSION,
};

use crate::maps::{count, END_VERDICT, FILTER_OWNERS, RECORDS, TLS_ON};
use crate::tls;

/// `MAP_SOCK_OWNER`: socket pointer → tgid last reported as its owner.
#[map]
pub static SOCK_OWNER: LruHashMap<u64, u32> = LruHashMap::with_max_entries(SOCK_OWNER_MAX, 0);

/// `MAP_SELECT_PIDS`: the selected tgids (`capture_common::select`).
#[map]
pub static SELECT_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(SELECT_PIDS_MAX, 0);

/// `MAP_SELECT_COMMS`: the selected comms, NUL-padded.
#[map]
pub static SELECT_COMMS: HashMap<[u8; 16], u8> = HashMap::with_max_entries(SELECT_COMMS_MAX, 0);

/// `MAP_LISTEN_VERDICT`: local port → verdict on its last listener.
#[map]
pub static LISTEN_VERDICT: LruHashMap<u16, u8> = LruHashMap::with_max_entries(4096, 0);

/// What the owner filter knows of one socket: its end (once established)
/// and the verdict marked for that end in `END_VERDICT` (or, before
/// ESTABLISHED, the verdict on the process that called connect()).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct SockEnd {
    key: EndKey,
    /// The verdict of the connect() caller, or the one last marked.
    verdict: u8,
    /// 1 once `key` is known (ESTABLISHED).
    established: u8,
    /// 1 once `verdict` is marked in `END_VERDICT`.
    marked: u8,
    _pad: u8,
}

/// Kernel-private: socket pointer → [`SockEnd`].
#[map]
static SK_END: LruHashMap<u64, SockEnd> = LruHashMap::with_max_entries(END_VERDICT_MAX, 0);

// Field offsets of `sock:inet_sock_set_state` (its format file, a stable
// tracepoint ABI; user space checks them against the running kernel's
// format before attaching).
const TP_SKADDR: usize = 8;
const TP_NEWSTATE: usize = 20;
const TP_SPORT: usize = 24;
const TP_DPORT: usize = 26;
const TP_FAMILY: usize = 28;
const TP_PROTOCOL: usize = 30;
const TP_SADDR: usize = 32;
const TP_DADDR: usize = 36;
const TP_SADDR_V6: usize = 40;
const TP_DADDR_V6: usize = 56;

const TP_OLDSTATE: usize = 16;

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;
const TCP_LISTEN: i32 = 10;
const IPPROTO_TCP: u16 = 6;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

#[tracepoint]
pub fn sock_state(ctx: TracePointContext) -> u32 {
    let _ = on_state(&ctx);
    0
}

fn on_state(ctx: &TracePointContext) -> Result<(), i32> {
    // SAFETY: offsets of this tracepoint's fields, checked by user space.
    unsafe {
        if ctx.read_at::<u16>(TP_PROTOCOL)? != IPPROTO_TCP {
            return Ok(());
        }
        let sk: u64 = ctx.read_at(TP_SKADDR)?;
        match ctx.read_at::<i32>(TP_NEWSTATE)? {
            TCP_SYN_SENT => {
                let tgid = current_tgid();
                let v = owner(sk, sock_event::CONNECT, tgid);
                if FILTER_OWNERS.load() != 0 {
                    let end = SockEnd {
                        key: EndKey::default(),
                        verdict: v,
                        established: 0,
                        marked: 0,
                        _pad: 0,
                    };
                    let _ = SK_END.insert(sk, end, 0);
                }
            }
            TCP_LISTEN => {
                let Some(key) = end_key(ctx) else {
                    return Ok(());
                };
                let Some(mut e) = reserve(sock_event::LISTEN, sk) else {
                    return Ok(());
                };
                let r = &mut *e.as_mut_ptr();
                set_addresses(r, &key);
                r.tgid = current_tgid();
                r.comm = bpf_get_current_comm().unwrap_or([0; 16]);
                r.selected = verdict_of(r.tgid, &r.comm);
                let v = r.selected;
                e.submit(0);
                if FILTER_OWNERS.load() != 0 {
                    let _ = LISTEN_VERDICT.insert(key.lport, v, 0);
                }
            }
            TCP_CLOSE => {
                let _ = SOCK_OWNER.remove(sk);
                if TLS_ON.load() != 0 {
                    if let Some(e) = reserve(sock_event::CLOSE, sk) {
                        e.submit(0);
                    }
                }
                if FILTER_OWNERS.load() != 0 {
                    if let Some(end) = SK_END.get(sk) {
                        if end.established != 0 {
                            let _ = END_VERDICT.remove(end.key);
                        }
                    }
                    let _ = SK_END.remove(sk);
                }
            }
            TCP_ESTABLISHED => {
                // A passive socket sits in the accept queue before this
                // transition, so its owner's first read can be reported
                // first; user space then drops that owner as a reused
                // pointer's. Forgetting the report here makes the next
                // read or send report the owner again, after the tuple.
                let _ = SOCK_OWNER.remove(sk);
                let Some(key) = end_key(ctx) else {
                    return Ok(());
                };
                let passive = ctx.read_at::<i32>(TP_OLDSTATE).unwrap_or(0) == TCP_SYN_RECV;
                if let Some(mut e) = reserve(sock_event::ESTABLISHED, sk) {
                    let r = &mut *e.as_mut_ptr();
                    set_addresses(r, &key);
                    r.passive = passive as u8;
                    e.submit(0);
                }
                if FILTER_OWNERS.load() != 0 {
                    established(sk, key, passive);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The owner filter at ESTABLISHED: an accepted end takes its listener's
/// verdict, a connected end its caller's when selected (see the module doc
/// for why another's waits for its first read or send).
#[inline(always)]
fn established(sk: u64, key: EndKey, passive: bool) {
    // SAFETY: plain values, copied out.
    let v = if passive {
        unsafe { LISTEN_VERDICT.get(key.lport) }
            .copied()
            .unwrap_or(verdict::NONE)
    } else {
        unsafe { SK_END.get(sk) }.map_or(verdict::NONE, |e| e.verdict)
    };
    let mark = v == verdict::SELECTED || (passive && v == verdict::OTHER);
    if mark {
        let _ = END_VERDICT.insert(key, v, 0);
    }
    let end = SockEnd {
        key,
        verdict: v,
        established: 1,
        marked: mark as u8,
        _pad: 0,
    };
    let _ = SK_END.insert(sk, end, 0);
}

/// This socket's end from the tracepoint's fields, IPv4-mapped IPv6
/// addresses (a dual-stack socket's IPv4 peer) as the IPv4 the packets carry.
#[inline(always)]
fn end_key(ctx: &TracePointContext) -> Option<EndKey> {
    // SAFETY: offsets of this tracepoint's fields, checked by user space.
    unsafe {
        let mut key = EndKey {
            lport: ctx.read_at(TP_SPORT).ok()?,
            rport: ctx.read_at(TP_DPORT).ok()?,
            ..EndKey::default()
        };
        match ctx.read_at::<u16>(TP_FAMILY).ok()? {
            AF_INET => {}
            AF_INET6 => {
                key.local = ctx.read_at(TP_SADDR_V6).ok()?;
                key.remote = ctx.read_at(TP_DADDR_V6).ok()?;
                if !(is_v4_mapped(&key.local) && is_v4_mapped(&key.remote)) {
                    key.family = FAMILY_V6;
                    return Some(key);
                }
                key.local = [0; 16];
                key.remote = [0; 16];
            }
            _ => return None,
        }
        key.family = FAMILY_V4;
        let s: [u8; 4] = ctx.read_at(TP_SADDR).ok()?;
        let d: [u8; 4] = ctx.read_at(TP_DADDR).ok()?;
        key.local[..4].copy_from_slice(&s);
        key.remote[..4].copy_from_slice(&d);
        Some(key)
    }
}

/// `::ffff:a.b.c.d` (and `::`, a listener on every address, which the
/// tracepoint also fills in the IPv4 fields).
#[inline(always)]
fn is_v4_mapped(a: &[u8; 16]) -> bool {
    let zero = a[..10].iter().all(|&b| b == 0);
    zero && ((a[10] == 0xff && a[11] == 0xff) || a[10..].iter().all(|&b| b == 0))
}

#[inline(always)]
fn set_addresses(r: &mut SockRecord, key: &EndKey) {
    r.family = key.family;
    r.saddr = key.local;
    r.daddr = key.remote;
    r.sport = key.lport;
    r.dport = key.rport;
}

/// The owner filter's verdict on process `tgid` named `comm`
/// ([`verdict::NONE`] when the filter is off).
#[inline(always)]
pub fn verdict_of(tgid: u32, comm: &[u8; 16]) -> u8 {
    if FILTER_OWNERS.load() == 0 {
        return verdict::NONE;
    }
    // SAFETY: plain values.
    let selected = unsafe { SELECT_PIDS.get(tgid).is_some() || SELECT_COMMS.get(comm).is_some() };
    if selected {
        verdict::SELECTED
    } else {
        verdict::OTHER
    }
}

// Fields of `sock:sock_send_length` and `sock:sock_recv_length` (one
// layout; checked by user space like the one above).
const IO_SK: usize = 8;
const IO_PROTOCOL: usize = 18;
const IO_RET: usize = 20;

/// A process received on a socket (`sock:sock_recv_length`): the first
/// time it does (or after another process did), it is reported as the owner.
#[tracepoint]
pub fn sock_io(ctx: TracePointContext) -> u32 {
    on_io(&ctx, false);
    0
}

/// The same for a send (`sock:sock_send_length`); a program of its own so
/// that the TLS hooks know a send from a receive.
#[tracepoint]
pub fn sock_send(ctx: TracePointContext) -> u32 {
    on_io(&ctx, true);
    0
}

#[inline(always)]
fn on_io(ctx: &TracePointContext, send: bool) {
    // SAFETY: offsets of this tracepoint's fields, checked by user space.
    let (sk, protocol, ret) = unsafe {
        (
            ctx.read_at::<u64>(IO_SK).unwrap_or(0),
            ctx.read_at::<u16>(IO_PROTOCOL).unwrap_or(0),
            ctx.read_at::<i32>(IO_RET).unwrap_or(0),
        )
    };
    if protocol != IPPROTO_TCP || sk == 0 {
        return;
    }
    if TLS_ON.load() != 0 {
        tls::on_sock_io(sk, send, ret);
    }
    let tgid = current_tgid();
    // SAFETY: a plain u32 value; a concurrent update only makes us report twice.
    if unsafe { SOCK_OWNER.get(sk) } == Some(&tgid) {
        return;
    }
    let v = owner(sk, sock_event::IO, tgid);
    if FILTER_OWNERS.load() != 0 {
        mark_io(sk, v);
    }
}

/// The owner filter on a read or send by a process with verdict `v`: its
/// end is marked `v` unless it already is.
#[inline(always)]
fn mark_io(sk: u64, v: u8) {
    let Some(end) = SK_END.get_ptr_mut(sk) else {
        return;
    };
    // SAFETY: a map value of this program's type; concurrent writers only
    // make a mark be written twice.
    let end = unsafe { &mut *end };
    if end.established == 0 || (end.marked != 0 && end.verdict == v) {
        return;
    }
    let _ = END_VERDICT.insert(end.key, v, 0);
    end.verdict = v;
    end.marked = 1;
}

// Field of `sched:sched_process_fork` (checked by user space).
const FORK_CHILD_PID: usize = 20;

/// A followed process forked: its child is followed too. Runs in the
/// parent before the child first runs, so the child's first connection is
/// already selected. Threads come here too (their id is not a tgid, so
/// the entry is harmless).
#[tracepoint]
pub fn follow_fork(ctx: TracePointContext) -> u32 {
    let tgid = current_tgid();
    // SAFETY: a plain u8 value.
    if unsafe { SELECT_PIDS.get(tgid) }.copied() != Some(select::FOLLOW) {
        return 0;
    }
    // SAFETY: offset of this tracepoint's field, checked by user space.
    let Ok(child) = (unsafe { ctx.read_at::<u32>(FORK_CHILD_PID) }) else {
        return 0;
    };
    let _ = SELECT_PIDS.insert(child, select::FOLLOW, 0);
    0
}

/// A ring record for `event` on `sk`, zeroed but for its prefix, event,
/// socket and time; `None` (and counted lost) when the ring is full.
#[inline(always)]
fn reserve(event: u8, sk: u64) -> Option<RingBufEntry<SockRecord>> {
    let Some(mut e) = RECORDS.reserve::<SockRecord>(0) else {
        count(Counter::SockRecordsLost, 1);
        return None;
    };
    e.write(SockRecord {
        prefix: RecordPrefix {
            kind: kind::SOCK,
            version: WIRE_VERSION,
        },
        event,
        sk,
        // SAFETY: a helper without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        ..SockRecord::default()
    });
    Some(e)
}

/// The current thread group id (the pid `ps` shows).
#[inline(always)]
fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// Reports the current process (`tgid`) as the owner of `sk` and remembers
/// it; returns the owner filter's verdict on it.
#[inline(always)]
fn owner(sk: u64, event: u8, tgid: u32) -> u8 {
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    let v = verdict_of(tgid, &comm);
    let Some(mut e) = reserve(event, sk) else {
        return v;
    };
    // SAFETY: `reserve` initialised the whole record.
    let r = unsafe { &mut *e.as_mut_ptr() };
    r.tgid = tgid;
    r.comm = comm;
    r.selected = v;
    e.submit(0);
    let _ = SOCK_OWNER.insert(sk, tgid, 0);
    v
}
