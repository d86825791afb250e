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
//! Not kprobes or fentry: the kernels this runs on may have neither (this
//! VM's has no kprobes and refuses function tracing). The socket pointer is
//! only an identity for joining records in user space; no kernel struct is
//! read, so no field offsets are needed.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::{ring_buf::RingBufEntry, LruHashMap},
    programs::TracePointContext,
};
use capture_common::{
    kind, sock_event, Counter, RecordPrefix, SockRecord, FAMILY_V4, FAMILY_V6, SOCK_OWNER_MAX,
    WIRE_VERSION,
};

use crate::maps::{count, RECORDS};

/// `MAP_SOCK_OWNER`: socket pointer → tgid last reported as its owner.
#[map]
pub static SOCK_OWNER: LruHashMap<u64, u32> = LruHashMap::with_max_entries(SOCK_OWNER_MAX, 0);

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

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;
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
            TCP_SYN_SENT => owner(sk, sock_event::CONNECT, current_tgid()),
            TCP_CLOSE => {
                let _ = SOCK_OWNER.remove(sk);
            }
            TCP_ESTABLISHED => {
                // A passive socket sits in the accept queue before this
                // transition, so its owner's first read can be reported
                // first; user space then drops that owner as a reused
                // pointer's. Forgetting the report here makes the next
                // read or send report the owner again, after the tuple.
                let _ = SOCK_OWNER.remove(sk);
                let Some(mut e) = reserve(sock_event::ESTABLISHED, sk) else {
                    return Ok(());
                };
                let r = &mut *e.as_mut_ptr();
                r.sport = ctx.read_at(TP_SPORT).unwrap_or(0);
                r.dport = ctx.read_at(TP_DPORT).unwrap_or(0);
                match ctx.read_at::<u16>(TP_FAMILY).unwrap_or(0) {
                    AF_INET => {
                        r.family = FAMILY_V4;
                        let s: [u8; 4] = ctx.read_at(TP_SADDR).unwrap_or([0; 4]);
                        let d: [u8; 4] = ctx.read_at(TP_DADDR).unwrap_or([0; 4]);
                        r.saddr[..4].copy_from_slice(&s);
                        r.daddr[..4].copy_from_slice(&d);
                    }
                    AF_INET6 => {
                        r.family = FAMILY_V6;
                        r.saddr = ctx.read_at(TP_SADDR_V6).unwrap_or([0; 16]);
                        r.daddr = ctx.read_at(TP_DADDR_V6).unwrap_or([0; 16]);
                    }
                    _ => {
                        e.discard(0);
                        return Ok(());
                    }
                }
                e.submit(0);
            }
            _ => {}
        }
    }
    Ok(())
}

// Fields of `sock:sock_send_length` and `sock:sock_recv_length` (one
// layout; checked by user space like the one above).
const IO_SK: usize = 8;
const IO_PROTOCOL: usize = 18;

/// A process sent or received on a socket: the first time it does (or after
/// another process did), it is reported as the owner.
#[tracepoint]
pub fn sock_io(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets of this tracepoint's fields, checked by user space.
    let (sk, protocol) = unsafe {
        (
            ctx.read_at::<u64>(IO_SK).unwrap_or(0),
            ctx.read_at::<u16>(IO_PROTOCOL).unwrap_or(0),
        )
    };
    if protocol != IPPROTO_TCP || sk == 0 {
        return 0;
    }
    let tgid = current_tgid();
    // SAFETY: a plain u32 value; a concurrent update only makes us report twice.
    if unsafe { SOCK_OWNER.get(sk) } == Some(&tgid) {
        return 0;
    }
    owner(sk, sock_event::IO, tgid);
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

/// Reports the current process (`tgid`) as the owner of `sk` and remembers it.
#[inline(always)]
fn owner(sk: u64, event: u8, tgid: u32) {
    let Some(mut e) = reserve(event, sk) else {
        return;
    };
    // SAFETY: `reserve` initialised the whole record.
    let r = unsafe { &mut *e.as_mut_ptr() };
    r.tgid = tgid;
    r.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    e.submit(0);
    let _ = SOCK_OWNER.insert(sk, tgid, 0);
}
