//! TLS hooks: the plaintext a process hands to (or gets from) its OpenSSL,
//! read where the library's API sees it, so `wss://` decodes like `ws://`.
//!
//! - Entry uprobes on `SSL_read`, `SSL_read_ex`, `SSL_write`, `SSL_write_ex`
//!   keep the call's `SSL *`, buffer and (for `_ex`) byte-count pointer by
//!   thread in `TLS_CALLS`. The four never call each other in OpenSSL 1.1
//!   and 3.x, so nothing is counted twice.
//! - One uretprobe program on all four reads how many bytes the call
//!   returned (`SSL_read`/`SSL_write`: the return value when positive;
//!   `_ex`: `*readbytes`/`*written` when it returned 1) and copies exactly
//!   those into the ring, in chunks, with their offset in the stream of
//!   (`SSL *`, direction): a jump in offsets is plaintext lost.
//! - Which socket a call belongs to comes from the socket hooks
//!   (`sock.rs`, `on_tls_io`): a send or receive made by the same thread
//!   inside the call (blocking sockets) is certain; otherwise the thread's
//!   last receive before a read, or its first send after a write, is a hint
//!   (memory BIOs, as in Python's asyncio). User space weighs the hints
//!   and never prints plaintext on a socket it is unsure of.
//!
//! No struct of the library is read (no per-version offsets): only the
//! arguments and the caller's buffer.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user,
        bpf_ringbuf_output, generated::bpf_probe_read_user as probe_read_user_raw,
    },
    macros::{map, uprobe, uretprobe},
    maps::{LruHashMap, PerCpuArray},
    programs::{ProbeContext, RetProbeContext},
};
use capture_common::{
    kind, tls_dir, tls_event, tls_how, verdict, Counter, RecordPrefix, TlsHeader, TlsScratch,
    TLS_CHUNKS_MAX, TLS_CHUNK_MAX, TLS_HEADER_LEN, WIRE_VERSION,
};

use crate::maps::{count, wakeup_flags, FILTER_OWNERS, RECORDS};
use crate::sock::verdict_of;

/// One SSL call in progress on a thread.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Call {
    ssl: u64,
    buf: u64,
    /// `_ex`: where the library writes the byte count; 0 otherwise.
    count_ptr: u64,
    /// A socket the thread sent or received on inside the call.
    nested_sk: u64,
    /// The thread's last receive before the call (reads only).
    recv_before: u64,
    dir: u8,
    ex: u8,
    _pad: [u8; 6],
}

/// Thread (pid_tgid) → its SSL call in progress.
#[map]
static TLS_CALLS: LruHashMap<u64, Call> = LruHashMap::with_max_entries(16384, 0);

/// Thread → the socket it last received on (kept while the TLS hooks are on).
#[map]
pub static LAST_RECV: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16384, 0);

/// Thread → the `SSL *` of its last write that sent nothing inside the
/// call: its next send names the socket.
#[map]
pub static AWAIT_SEND: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16384, 0);

/// [`SSL *`, tgid << 1 | direction] → plaintext bytes seen so far. The
/// tgid matters: two processes of one program often hold objects at the
/// same address.
#[map]
static TLS_POS: LruHashMap<[u64; 2], u64> = LruHashMap::with_max_entries(65536, 0);

/// The staging area of one TLS record.
#[map]
static TLS_SCRATCH: PerCpuArray<TlsScratch> = PerCpuArray::with_max_entries(1, 0);

#[uprobe]
pub fn ssl_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, tls_dir::READ, false);
    0
}

#[uprobe]
pub fn ssl_read_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, tls_dir::READ, true);
    0
}

#[uprobe]
pub fn ssl_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, tls_dir::WRITE, false);
    0
}

#[uprobe]
pub fn ssl_write_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, tls_dir::WRITE, true);
    0
}

/// The owner filter (`--pid`, `--comm`, `-- COMMAND`): only the selected
/// processes' calls are read; the others' cost this lookup. True when the
/// filter is off.
#[inline(always)]
fn owner_selected(pid_tgid: u64) -> bool {
    if FILTER_OWNERS.load() == 0 {
        return true;
    }
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    verdict_of((pid_tgid >> 32) as u32, &comm) == verdict::SELECTED
}

#[inline(always)]
fn enter(ctx: &ProbeContext, dir: u8, ex: bool) {
    let id = bpf_get_current_pid_tgid();
    if !owner_selected(id) {
        return;
    }
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return;
    };
    let count_ptr = if ex {
        ctx.arg::<u64>(3).unwrap_or(0)
    } else {
        0
    };
    let recv_before = if dir == tls_dir::READ {
        // SAFETY: a plain u64 value.
        unsafe { LAST_RECV.get(id) }.copied().unwrap_or(0)
    } else {
        0
    };
    let call = Call {
        ssl,
        buf,
        count_ptr,
        nested_sk: 0,
        recv_before,
        dir,
        ex: ex as u8,
        _pad: [0; 6],
    };
    let _ = TLS_CALLS.insert(id, call, 0);
}

/// `SSL_free(ssl)`: the address may be reused by the next `SSL_new`, whose
/// streams start at 0 again, so the positions are forgotten and user space
/// is told (it unties the object and ends what it fed).
#[uprobe]
pub fn ssl_free(ctx: ProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if !owner_selected(id) {
        return 0;
    }
    let Some(ssl) = ctx.arg::<u64>(0) else {
        return 0;
    };
    let tgid2 = (id >> 32) << 1;
    let read = [ssl, tgid2 | tls_dir::READ as u64];
    let write = [ssl, tgid2 | tls_dir::WRITE as u64];
    // SAFETY: plain u64 values.
    let seen = unsafe { TLS_POS.get(read).is_some() || TLS_POS.get(write).is_some() };
    if !seen {
        return 0; // an object that never returned plaintext: nothing to say
    }
    let _ = TLS_POS.remove(read);
    let _ = TLS_POS.remove(write);
    let Some(scratch) = TLS_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's staging area.
    let scratch = unsafe { &mut *scratch };
    scratch.header = header(tls_event::FREE, tls_dir::READ, tls_how::NONE, ssl, 0, id);
    output(scratch, 0);
    0
}

/// The socket hooks' part: a send (`send` true) or receive on `sk` by the
/// current thread, with `ret` bytes. Inside an SSL call it names the call's
/// socket; outside one it is remembered as a hint for the next read, or
/// ties a write that sent nothing inside its call.
#[inline(always)]
pub fn on_sock_io(sk: u64, send: bool, ret: i32) {
    let id = bpf_get_current_pid_tgid();
    if let Some(call) = TLS_CALLS.get_ptr_mut(id) {
        // SAFETY: a map value of this module's type, this thread's only.
        let call = unsafe { &mut *call };
        if call.nested_sk == 0 {
            call.nested_sk = sk;
        }
        return;
    }
    if ret <= 0 {
        return;
    }
    if !send {
        let _ = LAST_RECV.insert(id, sk, 0);
        return;
    }
    // SAFETY: a plain u64 value.
    let Some(ssl) = (unsafe { AWAIT_SEND.get(id) }).copied() else {
        return;
    };
    let _ = AWAIT_SEND.remove(id);
    let Some(scratch) = TLS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's staging area.
    let scratch = unsafe { &mut *scratch };
    scratch.header = header(
        tls_event::TIE,
        tls_dir::WRITE,
        tls_how::SEND_AFTER,
        ssl,
        sk,
        id,
    );
    output(scratch, 0);
}

#[inline(always)]
fn header(event: u8, dir: u8, how: u8, ssl: u64, sk: u64, id: u64) -> TlsHeader {
    TlsHeader {
        prefix: RecordPrefix {
            kind: kind::TLS,
            version: WIRE_VERSION,
        },
        event,
        dir,
        how,
        _pad: [0; 3],
        ssl,
        sk,
        // SAFETY: a helper without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        offset: 0,
        chunk_len: 0,
        call_len: 0,
        tgid: (id >> 32) as u32,
        tid: id as u32,
    }
}

/// Writes the staged header and `len` bytes; false when the ring was full
/// (counted).
#[inline(always)]
fn output(scratch: &mut TlsScratch, len: u64) -> bool {
    let size = TLS_HEADER_LEN as u64 + len;
    if !aya_ebpf::check_bounds_signed(
        size as i64,
        TLS_HEADER_LEN as i64,
        (TLS_HEADER_LEN + TLS_CHUNK_MAX) as i64,
    ) {
        return false;
    }
    // SAFETY: `size` bytes of the staging area, bounded above.
    let r = unsafe {
        bpf_ringbuf_output(
            &RECORDS as *const _ as *mut _,
            scratch as *mut TlsScratch as *mut _,
            size,
            wakeup_flags(size),
        )
    };
    if r < 0 {
        count(Counter::TlsRecordsLost, 1);
        count(Counter::TlsBytesLost, len);
        return false;
    }
    true
}

#[uretprobe]
pub fn ssl_ret(ctx: RetProbeContext) -> u32 {
    leave(&ctx);
    0
}

#[inline(always)]
fn leave(ctx: &RetProbeContext) {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: copied out before the entry is removed.
    let Some(call) = (unsafe { TLS_CALLS.get(id) }).copied() else {
        return;
    };
    let _ = TLS_CALLS.remove(id);
    let ret = ctx.ret::<u64>() as i32;
    let n: u64 = if call.ex != 0 {
        if ret != 1 || call.count_ptr == 0 {
            return;
        }
        // SAFETY: reads user memory through the helper, which checks it.
        unsafe { bpf_probe_read_user(call.count_ptr as *const u64) }.unwrap_or(0)
    } else if ret > 0 {
        ret as u64
    } else {
        0
    };
    if n == 0 {
        return;
    }
    count(Counter::TlsCalls, 1);
    let pos_key = [call.ssl, (id >> 32) << 1 | call.dir as u64];
    // SAFETY: a plain u64 value.
    let pos = unsafe { TLS_POS.get(pos_key) }.copied().unwrap_or(0);
    let _ = TLS_POS.insert(pos_key, pos.wrapping_add(n), 0);
    let (sk, how) = if call.nested_sk != 0 {
        (call.nested_sk, tls_how::NESTED)
    } else if call.recv_before != 0 {
        (call.recv_before, tls_how::RECV_BEFORE)
    } else {
        (0, tls_how::NONE)
    };
    if call.dir == tls_dir::WRITE && call.nested_sk == 0 {
        let _ = AWAIT_SEND.insert(id, call.ssl, 0);
    }
    copy_out(&call, id, sk, how, pos, n);
}

/// Copies the `n` bytes the call returned into the ring, chunk by chunk.
#[inline(always)]
fn copy_out(call: &Call, id: u64, sk: u64, how: u8, pos: u64, n: u64) {
    let Some(scratch) = TLS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's staging area.
    let scratch = unsafe { &mut *scratch };
    let limit = TLS_CHUNKS_MAX as u64 * TLS_CHUNK_MAX as u64;
    let deliver = if n > limit { limit } else { n };
    scratch.header = header(tls_event::DATA, call.dir, how, call.ssl, sk, id);
    scratch.header.call_len = n as u32;
    // As in `record.rs`: the loop state lives in map memory, re-read with
    // volatile loads, so every iteration verifies alike.
    // SAFETY: fields of this CPU's staging area.
    unsafe {
        core::ptr::write_volatile(&mut scratch.deliver, deliver as u32);
        core::ptr::write_volatile(&mut scratch.done, 0);
        core::ptr::write_volatile(&mut scratch.buf, call.buf);
    }
    let mut i: u32 = 0;
    while i < TLS_CHUNKS_MAX {
        // SAFETY: fields of this CPU's staging area.
        let (done, deliver, buf) = unsafe {
            (
                core::ptr::read_volatile(&scratch.done) as u64,
                core::ptr::read_volatile(&scratch.deliver) as u64,
                core::ptr::read_volatile(&scratch.buf),
            )
        };
        if done >= deliver {
            break;
        }
        let rest = deliver - done;
        let len = if rest > TLS_CHUNK_MAX as u64 {
            TLS_CHUNK_MAX as u64
        } else {
            rest
        };
        if !aya_ebpf::check_bounds_signed(len as i64, 1, TLS_CHUNK_MAX as i64) {
            break;
        }
        // SAFETY: `len` ≤ TLS_CHUNK_MAX bytes into the staging area; the
        // helper checks the user address.
        let r = unsafe {
            probe_read_user_raw(
                scratch.data.as_mut_ptr().cast(),
                len as u32,
                (buf + done) as *const _,
            )
        };
        if r < 0 {
            count(Counter::TlsBytesUnreadable, n - done);
            return;
        }
        scratch.header.offset = pos + done;
        scratch.header.chunk_len = len as u32;
        output(scratch, len);
        // SAFETY: a field of this CPU's staging area.
        unsafe { core::ptr::write_volatile(&mut scratch.done, (done + len) as u32) };
        i += 1;
    }
    if n > deliver {
        count(Counter::TlsBytesUnreadable, n - deliver);
    }
}
