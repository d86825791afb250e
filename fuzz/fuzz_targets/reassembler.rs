//! Arbitrary segment sequences into the Decoder (flow table + sessions), with
//! small caps so held-byte gaps, table-full eviction and idle timeouts are
//! all reached. Each record: 1 byte flags/endpoints, 4 bytes seq, 1 byte
//! length, 1 byte time step, then the payload bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap::event::Event;
use wstap::flow::FlowConfig;
use wstap::proto::ProtoConfig;
use wstap::registry::{DecodeConfig, Decoder};
use wstap::source::{Checksum, Segment};

fuzz_target!(|data: &[u8]| {
    let cfg = DecodeConfig {
        flow: FlowConfig {
            max_held: 2048,
            max_flows: 3,
            idle_timeout_ns: 1_000_000,
        },
        proto: ProtoConfig {
            max_message: 4096,
            max_inflated: 4096,
            keylog: None,
        },
        // Small, so that memory-budget evictions are reached too.
        max_memory: 16 * 1024,
        // Segments marked bad below are dropped, as lost ones would be.
        verify_checksums: true,
    };
    let mut dec = Decoder::new(cfg);
    let mut sink = |_e: &Event<'_>| {};
    let ends = [
        "10.0.0.1:1000".parse().unwrap(),
        "10.0.0.2:80".parse().unwrap(),
        "[fd00::1]:5".parse().unwrap(),
        "10.0.0.3:1000".parse().unwrap(),
    ];
    let mut ts = 0u64;
    let mut rest = data;
    while rest.len() >= 7 {
        let (h, tail) = rest.split_at(7);
        let len = (h[5] as usize).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        ts += u64::from(h[6]) * 20_000;
        let a = (h[0] >> 6) as usize;
        let b = (a + 1 + ((h[0] >> 5) & 1) as usize) % 4;
        let seg = Segment {
            iface: 0,
            ts_ns: ts,
            src: ends[a],
            dst: ends[b],
            seq: u32::from_le_bytes([h[1], h[2], h[3], h[4]]),
            ack: 0,
            flags: h[0] & 0x1f,
            window: 0,
            payload,
            // The top bit of the time step marks a bad checksum.
            checksum: if h[6] & 0x80 != 0 {
                Checksum::Bad
            } else {
                Checksum::Good
            },
        };
        dec.push(&seg, &mut sink);
    }
    dec.finish(&mut sink);
    let _ = dec.stats();
});
