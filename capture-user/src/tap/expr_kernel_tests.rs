//! The filter expression as the kernel runs it: the real TC program, loaded
//! (not attached) and fed packets with `BPF_PROG_TEST_RUN`, must keep
//! exactly the segments the parsed tree keeps, on random expressions and
//! random packets, and so must the XDP program and the compiled program run
//! in user space. Needs root and the built eBPF object.

use std::net::IpAddr;

use aya::maps::PerCpuArray;
use aya::programs::{SchedClassifier, Xdp};
use aya::{EbpfLoader, TestRun, TestRunOptions};
use etherparse::PacketBuilder;
use proptest::prelude::*;

use super::load::EBPF_OBJECT;
use crate::filter::expr::tests::{any_addr, any_port, any_tree};
use crate::filter::expr::{run, Node};

/// Why this test cannot run here, if it cannot. In CI a missing privilege
/// fails the test instead (CI runs as root).
fn cannot_run() -> Option<&'static str> {
    if EBPF_OBJECT.is_empty() {
        return Some("built with AYA_BUILD_SKIP=1: no eBPF object to load");
    }
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "the kernel filter test needs root, and CI runs as root"
        );
        return Some("not root: cannot load eBPF programs");
    }
    None
}

fn skip(reason: &str) {
    let line = format!("!!!! SKIPPED kernel_and_user_space_agree_on_expressions: {reason} !!!!");
    eprintln!("\n{line}\n");
    if let Some(path) = std::env::var_os("WSTAP_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// An Ethernet frame of one TCP segment with a byte of payload (a pure ACK
/// is never delivered, whatever the filter says).
fn frame(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!("one family per packet"),
    };
    let b = ip.tcp(sport, dport, 1000, 512).ack(1).psh();
    let mut out = Vec::new();
    b.write(&mut out, b"x").expect("a small packet builds");
    out
}

#[test]
fn kernel_and_user_space_agree_on_expressions() {
    if let Some(why) = cannot_run() {
        skip(why);
        return;
    }
    let on: u8 = 1;
    let mut ebpf = EbpfLoader::new()
        .override_global(capture_common::GLOBAL_FILTER_EXPR, &on, true)
        .load(EBPF_OBJECT)
        .expect("the object loads");
    {
        let tc: &mut SchedClassifier = ebpf
            .program_mut(capture_common::PROG_TC_INGRESS)
            .unwrap()
            .try_into()
            .unwrap();
        tc.load()
            .expect("the verifier accepts the expression loop (TC)");
    }
    {
        let xdp: &mut Xdp = ebpf
            .program_mut(capture_common::PROG_XDP)
            .unwrap()
            .try_into()
            .unwrap();
        xdp.load()
            .expect("the verifier accepts the expression loop (XDP)");
    }
    let exprs = aya::maps::Array::<_, capture_common::expr::ExprProgram>::try_from(
        ebpf.take_map(capture_common::MAP_FILTER_EXPR).unwrap(),
    )
    .unwrap();
    // The runner's closure is `Fn`: the map and the tallies go in cells.
    let exprs = std::cell::RefCell::new(exprs);
    let counters =
        PerCpuArray::<_, u64>::try_from(ebpf.take_map(capture_common::MAP_COUNTERS).unwrap())
            .unwrap();
    let matched = || -> u64 {
        counters
            .get(&capture_common::Counter::SegmentsMatched.index(), 0)
            .unwrap()
            .iter()
            .sum()
    };
    let tc: &SchedClassifier = ebpf
        .program(capture_common::PROG_TC_INGRESS)
        .unwrap()
        .try_into()
        .unwrap();
    let xdp: &Xdp = ebpf
        .program(capture_common::PROG_XDP)
        .unwrap()
        .try_into()
        .unwrap();
    // Runs the packet through `run` and says whether the program kept it
    // (counted it as matched).
    let kept_by = |run: &dyn Fn(
        TestRunOptions,
    ) -> Result<aya::TestRunResult, aya::programs::ProgramError>,
                   pkt: &[u8]|
     -> bool {
        let before = matched();
        run(TestRunOptions {
            data_in: Some(pkt),
            ..TestRunOptions::default()
        })
        .expect("BPF_PROG_TEST_RUN runs the program");
        let kept = matched() - before;
        assert!(kept <= 1, "one packet counted {kept} times");
        kept == 1
    };
    // The TC and the XDP program keep the same packets; returns whether.
    let kernel_keeps = |tree: &Node, src: IpAddr, sp: u16, dst: IpAddr, dp: u16| -> bool {
        let pkt = frame(src, sp, dst, dp);
        let by_tc = kept_by(&|o| tc.test_run(o), &pkt);
        let by_xdp = kept_by(&|o| xdp.test_run(o), &pkt);
        assert_eq!(
            by_tc, by_xdp,
            "{tree:?}: TC and XDP disagree on {src} {sp} -> {dst} {dp}"
        );
        by_tc
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    });
    let strategy = (
        any_tree(),
        proptest::collection::vec((any_addr(), any_port(), any_port(), any::<bool>()), 12),
    );
    let kept_total = std::cell::Cell::new(0u32);
    let dropped_total = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(tree, packets)| {
            let program = tree.compile().expect("small trees fit");
            exprs
                .borrow_mut()
                .set(0, program, 0)
                .expect("the expression map takes a program");
            for (a, sp, dp, swap) in packets {
                let b: IpAddr = if a.is_ipv4() {
                    [10, 1, 0, 1].into()
                } else {
                    "fd00:1::1".parse().unwrap()
                };
                let (s, d) = if swap { (b, a) } else { (a, b) };
                let want = tree.eval(s, sp, d, dp);
                let got = kernel_keeps(&tree, s, sp, d, dp);
                prop_assert_eq!(got, want, "{:?} on {} {} -> {} {}", tree, s, sp, d, dp);
                // And the compiled program run in user space (`-r`).
                prop_assert_eq!(run(&program, s, sp, d, dp), got);
                let tally = if got { &kept_total } else { &dropped_total };
                tally.set(tally.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // The random expressions must exercise both outcomes, or the test
    // proves nothing.
    let (kept, dropped) = (kept_total.get(), dropped_total.get());
    assert!(
        kept > 200 && dropped > 200,
        "kept {kept}, dropped {dropped}"
    );
}
