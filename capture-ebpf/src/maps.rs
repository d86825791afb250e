//! The maps and read-only globals the programs share with user space, and
//! the two small helpers over them (counting, ring wakeups). Each static's
//! name is its name in the object, which is the name in `capture-common`
//! (`MAP_*`, `GLOBAL_*`); a test in `capture-user` checks the built object.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ringbuf_query,
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    Global,
};
use capture_common::{expr::ExprProgram, Counter, EndKey, Scratch, END_VERDICT_MAX, HOSTS_MAX};

/// The record ring (`MAP_RING`). Its real size is set by user space at load.
#[map]
pub static RECORDS: RingBuf = RingBuf::with_byte_size(1 << 16, 0);

/// `MAP_COUNTERS`: one u64 per [`Counter`], per CPU.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// `MAP_HOSTS_V4`: host prefixes to keep.
#[map]
pub static HOSTS_V4: LpmTrie<[u8; 4], u8> =
    LpmTrie::with_max_entries(HOSTS_MAX, 1 /* BPF_F_NO_PREALLOC */);

/// `MAP_HOSTS_V6`: host prefixes to keep (IPv4 ones also as IPv4-mapped).
#[map]
pub static HOSTS_V6: LpmTrie<[u8; 16], u8> =
    LpmTrie::with_max_entries(HOSTS_MAX, 1 /* BPF_F_NO_PREALLOC */);

/// `MAP_PORTS`: 1 at the index of every port to keep.
#[map]
pub static PORTS: Array<u8> = Array::with_max_entries(65536, 0);

/// `MAP_FILTER_EXPR`: the compiled filter expression (one entry).
#[map]
pub static FILTER_EXPR: Array<ExprProgram> = Array::with_max_entries(1, 0);

/// `MAP_EXPR_STACK`: the expression's truth-value stack, per CPU (see
/// `capture_common::expr::eval` for why it lives in a map).
#[map]
pub static EXPR_STACK: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Kernel-private: the per-CPU buffer a record is assembled in (too big for
/// the 512-byte stack).
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Nonzero: only hosts in HOSTS_V4/HOSTS_V6 pass. Read-only, set at load, so
/// the verifier prunes the unused branch.
#[no_mangle]
pub static FILTER_HOSTS: Global<u8> = Global::new(0);
/// Nonzero: only ports marked in PORTS pass.
#[no_mangle]
pub static FILTER_PORTS: Global<u8> = Global::new(0);
/// `GLOBAL_FILTER_EXPR`: nonzero when FILTER_EXPR holds an expression.
#[no_mangle]
pub static FILTER_EXPR_ON: Global<u8> = Global::new(0);

/// `MAP_END_VERDICT`: the owner filter's verdict per connection end,
/// written by the socket hooks (`sock.rs`) and by user space for
/// connections open at start, read per segment by [`crate::filter`].
#[map]
pub static END_VERDICT: LruHashMap<EndKey, u8> = LruHashMap::with_max_entries(END_VERDICT_MAX, 0);

/// Nonzero: the owner filter is on (`capture_common::GLOBAL_FILTER_OWNERS`).
#[no_mangle]
pub static FILTER_OWNERS: Global<u8> = Global::new(0);

/// `GLOBAL_TLS_ON`: the TLS hooks are attached (`tls.rs`).
#[no_mangle]
pub static TLS_ON: Global<u8> = Global::new(0);

/// See `capture_common::GLOBAL_WAKEUP_BYTES`.
#[no_mangle]
pub static WAKEUP_BYTES: Global<u64> = Global::new(0);

/// Adds `n` to this CPU's `counter`.
#[inline(always)]
pub fn count(counter: Counter, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(counter.index()) {
        // Per-CPU: no other writer, a plain add is enough.
        unsafe { *p += n };
    }
}

/// Ring output flags: wake the reader only when enough data waits (see
/// `capture_common::GLOBAL_WAKEUP_BYTES`).
#[inline(always)]
pub fn wakeup_flags(size: u64) -> u64 {
    let threshold = WAKEUP_BYTES.load();
    if threshold == 0 {
        return 0;
    }
    // SAFETY: RECORDS is a ring buffer map; the query only reads its positions.
    let waiting =
        unsafe { bpf_ringbuf_query(&RECORDS as *const _ as *mut _, BPF_RB_AVAIL_DATA as u64) };
    if waiting + size >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
