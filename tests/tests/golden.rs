//! Golden output: `wstap -r` on every capture of `../shared/corpus`, and on
//! mutated copies of each (packets dropped, swapped, duplicated, so that
//! gaps, reordering and retransmissions are covered too), must print exactly
//! what it printed when `tests/golden/corpus.tsv` was written: stdout and
//! stderr byte for byte (compared by SHA-256) and the exit code.
//!
//! The corpus is read from `../shared/corpus` and never copied into the
//! project; only the hashes are kept here. After an intended change of output,
//! rewrite the table with `WSTAP_GOLDEN_BLESS=1 cargo test -p tests --test
//! golden` and say in the commit why the output changed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, TsResolution};
use sha2::{Digest, Sha256};

/// Output modes every capture is decoded in.
const MODES: [(&str, &[&str]); 4] = [
    ("text", &[]),
    ("json", &["--format", "json"]),
    ("segments", &["--segments", "--format", "json"]),
    ("payload-max", &["--payload-max", "8", "--hex"]),
];

/// One packet read back from a capture, for re-writing mutated copies.
struct Packet {
    ts_ns: u64,
    orig_len: u32,
    data: Vec<u8>,
}

fn table_path() -> PathBuf {
    tests::workspace_root().join("tests/golden/corpus.tsv")
}

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// All packets of a capture with one link type, or None when the file mixes
/// link types (a mutated copy is written as classic pcap, one link type).
fn read_packets(path: &Path) -> Option<(DataLink, Vec<Packet>)> {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut r = PcapNgReader::new(&bytes[..]).ok()?;
        let mut links: Vec<(DataLink, u64)> = Vec::new();
        let mut pkts = Vec::new();
        while let Some(b) = r.next_block() {
            match b.ok()? {
                Block::InterfaceDescription(idb) => {
                    let mut per_sec = 1_000_000u64;
                    for o in &idb.options {
                        if let pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption::IfTsResol(res) = o {
                            per_sec = if res & 0x80 == 0 { 10u64.pow(u32::from(*res)) } else { 1 << (res & 0x7f) };
                        }
                    }
                    links.push((idb.linktype, per_sec));
                }
                Block::EnhancedPacket(epb) => {
                    let (_, per_sec) = *links.get(epb.interface_id as usize)?;
                    // pcap-file hands the raw timestamp over as nanoseconds.
                    let ticks = epb.timestamp.as_nanos() as u64;
                    pkts.push(Packet {
                        ts_ns: (ticks as u128 * 1_000_000_000 / per_sec as u128) as u64,
                        orig_len: epb.original_len,
                        data: epb.data.into_owned(),
                    });
                }
                _ => {}
            }
        }
        let first = links.first()?.0;
        links.iter().all(|l| l.0 == first).then_some((first, pkts))
    } else {
        let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).ok()?;
        let link = r.header().datalink;
        let mut pkts = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.ok()?;
            pkts.push(Packet {
                ts_ns: p.timestamp.as_nanos() as u64,
                orig_len: p.orig_len,
                data: p.data.into_owned(),
            });
        }
        Some((link, pkts))
    }
}

/// Deterministic damage: which packets are kept, in which order, how often.
fn mutate(name: &str, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    match name {
        "drop" => order.retain(|i| i % 5 != 3),
        "swap" => {
            let mut i = 1;
            while i + 1 < order.len() {
                order.swap(i, i + 1);
                i += 4;
            }
        }
        "dup" => {
            order = (0..n)
                .flat_map(|i| if i % 3 == 2 { vec![i, i] } else { vec![i] })
                .collect()
        }
        _ => unreachable!(),
    }
    order
}

fn write_pcap(path: &Path, link: DataLink, pkts: &[Packet], order: &[usize]) {
    let header = PcapHeader {
        datalink: link,
        ts_resolution: TsResolution::NanoSecond,
        snaplen: 262_144,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(File::create(path).unwrap(), header).unwrap();
    for &i in order {
        let p = &pkts[i];
        w.write_packet(&PcapPacket::new_owned(
            std::time::Duration::from_nanos(p.ts_ns),
            p.orig_len,
            p.data.clone(),
        ))
        .unwrap();
    }
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b).iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// `name\tmode` → `stdout-sha\tstderr-sha\texit-code` for every run.
fn run_all(corpus: &Path, scratch: &Path) -> BTreeMap<String, String> {
    let mut runs: Vec<(String, PathBuf)> = Vec::new();
    for cap in captures(corpus) {
        let rel = cap.strip_prefix(corpus).unwrap().display().to_string();
        runs.push((rel.clone(), cap.clone()));
        if let Some((link, pkts)) = read_packets(&cap) {
            for m in ["drop", "swap", "dup"] {
                let out = scratch.join(format!("{}.{m}.pcap", rel.replace('/', "_")));
                write_pcap(&out, link, &pkts, &mutate(m, pkts.len()));
                runs.push((format!("{rel}+{m}"), out));
            }
        }
    }
    let mut table = BTreeMap::new();
    for (name, file) in runs {
        for (mode, args) in MODES {
            let out = Command::new(tests::wstap_bin())
                .arg("-r")
                .arg(&file)
                .args(args)
                .output()
                .expect("running wstap");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{name} {mode}: {stderr}");
            table.insert(
                format!("{name}\t{mode}"),
                format!(
                    "{}\t{}\t{}",
                    sha(&out.stdout),
                    sha(&out.stderr),
                    out.status.code().unwrap_or(-1)
                ),
            );
        }
    }
    table
}

#[test]
fn corpus_output_is_unchanged() {
    let Some(corpus) = tests::corpus_dir() else {
        if std::env::var_os("CI").is_some() {
            panic!("../shared/corpus is missing in CI");
        }
        tests::skip("golden", "../shared/corpus not found beside the project");
        return;
    };
    let scratch = std::env::temp_dir().join(format!("wstap-golden-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let got = run_all(&corpus, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);

    if std::env::var_os("WSTAP_GOLDEN_BLESS").is_some() {
        let mut s = String::from("# capture\tmode\tstdout sha256\tstderr sha256\texit code\n");
        for (k, v) in &got {
            let _ = writeln!(s, "{k}\t{v}");
        }
        std::fs::write(table_path(), s).unwrap();
        eprintln!(
            "golden: wrote {} rows to {}",
            got.len(),
            table_path().display()
        );
        return;
    }
    let want: BTreeMap<String, String> = std::fs::read_to_string(table_path())
        .expect("tests/golden/corpus.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let (a, b, rest) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            (format!("{a}\t{b}"), rest.to_string())
        })
        .collect();
    let mut diffs = Vec::new();
    for (k, v) in &want {
        match got.get(k) {
            Some(g) if g == v => {}
            Some(g) => diffs.push(format!("changed: {k}\n   was {v}\n   now {g}")),
            None => diffs.push(format!("missing: {k}")),
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        diffs.push(format!("new (not in the table): {k}"));
    }
    assert!(
        diffs.is_empty(),
        "{} of {} golden runs differ:\n{}",
        diffs.len(),
        want.len(),
        diffs.join("\n")
    );
}
