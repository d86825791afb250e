//! The offline command line on a capture built here: `-c N`, `--port` and
//! `--host` filters, `--segments`, `--payload-max`, the summary on stderr,
//! bad input files, and a reader that goes away (`wstap -r f | head -1`),
//! which must end quietly with exit status 0.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Ethernet + IPv4 + TCP (no options; IP header checksum left zero, which
/// wstap does not verify; TCP checksum valid, as a receiver would see it).
fn packet(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    p.extend([0x08, 0x00]);
    let total = (20 + 20 + payload.len()) as u16;
    p.extend([
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    p.extend(src.0);
    p.extend(dst.0);
    p.extend(src.1.to_be_bytes());
    p.extend(dst.1.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(0u32.to_be_bytes());
    p.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    let sum = tcp_checksum(src.0, dst.0, &p[34..]);
    p[50..52].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The TCP checksum (RFC 9293 §3.1) of `tcp` with its checksum field zero,
/// summed the plain way: big-endian 16-bit words, one at a time, carries
/// folded at the end. Written apart from wstap's own word-at-a-time code,
/// so that each checks the other.
fn tcp_checksum(src: [u8; 4], dst: [u8; 4], tcp: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend(src);
    pseudo.extend(dst);
    pseudo.extend([0, 6]);
    pseudo.extend((tcp.len() as u16).to_be_bytes());
    let mut sum: u32 = 0;
    for bytes in [&pseudo[..], tcp] {
        for w in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `packet` with its TCP checksum made wrong.
fn bad_checksum(mut p: Vec<u8>) -> Vec<u8> {
    p[51] ^= 0x5a;
    p
}

/// A classic pcap file (microsecond timestamps, Ethernet).
fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(0xa1b2c3d4u32.to_le_bytes());
    f.extend(2u16.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    f.extend([0u8; 8]);
    f.extend(262144u32.to_le_bytes());
    f.extend(1u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend(1_700_000_000u32.to_le_bytes());
        f.extend((i as u32).to_le_bytes());
        f.extend((p.len() as u32).to_le_bytes());
        f.extend((p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    f
}

use capture_common::tcp_flags::{ACK, FIN, PSH, SYN};

/// One unmasked-server / masked-client WebSocket conversation on `cport`
/// with `n` server text messages of `size` bytes each.
fn conversation(cport: u16, sport: u16, n: usize, size: usize) -> Vec<Vec<u8>> {
    let c = ([10, 0, 0, 1], cport);
    let s = ([10, 0, 0, 2], sport);
    let req = b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let mut v = vec![
        packet(c, s, 100, SYN, b""),
        packet(s, c, 500, SYN | ACK, b""),
        packet(c, s, 101, ACK | PSH, req),
        packet(s, c, 501, ACK | PSH, resp),
    ];
    let mut sseq = 501 + resp.len() as u32;
    for i in 0..n {
        let text: Vec<u8> = format!("msg {i} ").bytes().cycle().take(size).collect();
        let mut f = vec![0x81u8];
        if size < 126 {
            f.push(size as u8);
        } else {
            f.push(126);
            f.extend((size as u16).to_be_bytes());
        }
        f.extend(text);
        v.push(packet(s, c, sseq, ACK | PSH, &f));
        sseq += f.len() as u32;
    }
    let cseq = 101 + req.len() as u32;
    v.push(packet(c, s, cseq, ACK | FIN, b""));
    v.push(packet(s, c, sseq, ACK | FIN, b""));
    v
}

fn write_capture(name: &str, packets: &[Vec<u8>]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wstap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, pcap(packets)).unwrap();
    p
}

/// `wstap -r - ARGS` with `bytes` on its standard input, fed from a thread
/// in small writes (as `tcpdump -w -` makes them) while its output is read.
fn wstap_stdin(bytes: Vec<u8>, args: &[&str]) -> std::process::Output {
    wstap_pipe("-", bytes, args)
}

/// `wstap -r PATH ARGS` with `bytes` on a pipe as its standard input
/// (`PATH`: `-` or `/dev/stdin`).
fn wstap_pipe(path: &str, bytes: Vec<u8>, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(tests::wstap_bin())
        .args(["-r", path])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for piece in bytes.chunks(777) {
            stdin.write_all(piece).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn wstap(file: &Path, args: &[&str]) -> std::process::Output {
    Command::new(tests::wstap_bin())
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn count_filters_segments_payload_max_and_summary() {
    let mut pk = conversation(40000, 8080, 5, 10);
    pk.extend(conversation(40001, 9090, 3, 300));
    let f = write_capture("two.pcap", &pk);

    let all = common::wstap_json(&f, &[]);
    assert_eq!(common::named(&all.events, "ws_message").len(), 8);
    assert!(all.stderr.contains("8 messages"), "summary: {}", all.stderr);
    assert!(
        all.stderr.contains("2 connections"),
        "summary: {}",
        all.stderr
    );

    let c = common::wstap_json(&f, &["-c", "2"]);
    assert_eq!(common::named(&c.events, "ws_message").len(), 2, "-c 2");

    let p = common::wstap_json(&f, &["--port", "9090"]);
    let msgs = common::named(&p.events, "ws_message");
    assert_eq!(msgs.len(), 3, "--port 9090");
    assert!(msgs.iter().all(|m| m["src"] == "10.0.0.2:9090"));
    let h = common::wstap_json(&f, &["--host", "10.0.0.0/24"]);
    assert_eq!(common::named(&h.events, "ws_message").len(), 8);
    let h = common::wstap_json(&f, &["--host", "10.9.0.0/16"]);
    assert!(h.events.is_empty(), "--host that matches nothing");

    let m = common::wstap_json(&f, &["--port", "9090", "--payload-max", "4"]);
    let msgs = common::named(&m.events, "ws_message");
    assert_eq!(msgs[0]["text"], "msg ");
    assert_eq!(msgs[0]["payload_truncated"], true);
    assert_eq!(msgs[0]["len"], 300);

    let s = common::wstap_json(&f, &["--segments"]);
    assert_eq!(s.events.len(), pk.len(), "one line per segment");
    assert!(s.events.iter().all(|e| e["event"] == "tcp_segment"));

    let t = wstap(&f, &["--port", "8080"]);
    assert!(t.status.success());
    let text = String::from_utf8(t.stdout).unwrap();
    let _ = std::fs::remove_file(&f);
    assert!(
        text.lines()
            .any(|l| l.contains("#1 10.0.0.2:8080 → 10.0.0.1:40000 ws_message text len=10")),
        "{text}"
    );
}

#[test]
fn closed_pipe_ends_quietly_with_success() {
    // Far more output than a pipe buffer holds.
    let f = write_capture("big.pcap", &conversation(40000, 8080, 3000, 1000));
    for format in ["json", "text"] {
        let mut child = Command::new(tests::wstap_bin())
            .arg("-r")
            .arg(&f)
            .args(["--format", format, "--payload-max", "100000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(!line.is_empty());
        drop(out); // like `head -1` exiting
        let res = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{format}: {} {err}", res.status);
        assert!(
            !err.contains("error") && !err.contains("panicked"),
            "{format}: {err}"
        );
    }
    let _ = std::fs::remove_file(&f);
}

#[test]
fn bad_files_are_errors_that_say_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("wstap-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("notes.txt");
    std::fs::File::create(&text)
        .unwrap()
        .write_all(b"hello, not a capture")
        .unwrap();
    let o = wstap(&text, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a pcap or pcapng file"));
    let o = wstap(&dir.join("missing.pcap"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such file"));
    // A capture cut in the middle of a record: what is there is decoded.
    let mut bytes = pcap(&conversation(1, 2, 4, 10));
    bytes.truncate(bytes.len() - 30);
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, bytes).unwrap();
    let r = common::wstap_json(&cut, &[]);
    assert_eq!(common::named(&r.events, "ws_message").len(), 4);
    assert!(r.stderr.contains("file cut mid-packet"), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-r FILE -w OUT.pcapng`: the written file decodes to the same events with
/// `wstap -r`, and tshark (an independent decoder) finds the same messages
/// with the same payloads in it.
#[test]
fn write_pcapng_from_a_capture_decodes_identically_in_wstap_and_tshark() {
    let mut pk = conversation(40010, 8080, 4, 20);
    pk.extend(conversation(40011, 8080, 2, 700));
    let f = write_capture("for-w.pcap", &pk);
    let out = f.with_extension("pcapng");
    let first = common::wstap_json(&f, &["-w", out.to_str().unwrap()]);
    let again = common::wstap_json(&out, &[]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(common::named(&first.events, "ws_message").len(), 6);
    assert_eq!(
        first.events, again.events,
        "decoding the -w file changed the events"
    );

    if tests::require_tool("write_pcapng_from_a_capture", "tshark") {
        let t = Command::new("tshark")
            .args(["-r", out.to_str().unwrap(), "-Y", "websocket.opcode == 1"])
            .args([
                "-T",
                "fields",
                "-e",
                "tcp.srcport",
                "-e",
                "websocket.payload.text",
            ])
            .output()
            .unwrap();
        assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
        let tshark: Vec<String> = String::from_utf8(t.stdout)
            .unwrap()
            .lines()
            .map(|l| l.replace('\t', " "))
            .collect();
        let ours: Vec<String> = common::named(&first.events, "ws_message")
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    common::port_of(&m["src"]),
                    m["text"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(tshark, ours, "tshark decodes the -w file differently");
    }
    let _ = std::fs::remove_file(&out);
}

/// The first line of the summary on stderr.
fn source_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.contains(" packets, "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"))
}

/// IP fragments have their own counter; without any the line reads exactly
/// as it always did.
#[test]
fn ip_fragments_are_counted_apart_from_non_tcp() {
    let c = ([10, 0, 0, 1], 40000);
    let s = ([10, 0, 0, 2], 8080);
    let whole = packet(c, s, 1, ACK, b"x");
    let mut frag = packet(c, s, 2, ACK, b"fragment");
    frag[20] = 0x20; // IPv4 more-fragments bit
    let mut udp = packet(c, s, 3, 0, b"");
    udp[23] = 17; // protocol UDP
    let f = write_capture("frag.pcap", &[whole.clone(), frag, udp.clone()]);
    let r = common::wstap_json(&f, &["--segments"]);
    assert_eq!(
        source_line(&r.stderr),
        "wstap: 3 packets, 1 TCP segments (0 filtered out), 1 non-TCP skipped, \
         1 IP fragments skipped (not reassembled), 0 malformed, 0 truncated by snaplen"
    );
    let f2 = write_capture("nofrag.pcap", &[whole, udp]);
    let r = common::wstap_json(&f2, &["--segments"]);
    assert_eq!(
        source_line(&r.stderr),
        "wstap: 2 packets, 1 TCP segments (0 filtered out), 1 non-TCP skipped, \
         0 malformed, 0 truncated by snaplen"
    );
    let _ = std::fs::remove_file(&f);
    let _ = std::fs::remove_file(&f2);
}

/// A little-endian pcapng file: one Ethernet interface, one Enhanced Packet
/// Block per packet (microsecond timestamps).
fn pcapng(packets: &[Vec<u8>]) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, kind: u32, mut body: Vec<u8>) {
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        out.extend(kind.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend(body);
        out.extend(len.to_le_bytes());
    }
    let mut f = Vec::new();
    let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend([0xff; 8]);
    block(&mut f, 0x0a0d0d0a, shb);
    block(&mut f, 1, vec![1, 0, 0, 0, 0, 0, 4, 0]);
    for (i, p) in packets.iter().enumerate() {
        let ts = 1_700_000_000_000_000u64 + i as u64;
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend(((ts >> 32) as u32).to_le_bytes());
        b.extend((ts as u32).to_le_bytes());
        b.extend((p.len() as u32).to_le_bytes());
        b.extend((p.len() as u32).to_le_bytes());
        b.extend_from_slice(p);
        block(&mut f, 6, b);
    }
    f
}

/// A corrupt block after some good ones: what was read is decoded and
/// summarised, then the error is printed once (issue 7: "Error reading
/// bytes: Error reading bytes"), and the exit status stays 1. A file that
/// ends inside its header says so.
#[test]
fn corrupt_pcapng_prints_the_summary_then_the_error_once() {
    let pk = conversation(40000, 8080, 3, 10);
    let mut bytes = pcapng(&pk);
    bytes.extend(6u32.to_le_bytes());
    bytes.extend(13u32.to_le_bytes()); // not a multiple of 4
    bytes.extend([0u8; 8]);
    let f = write_capture("corrupt.pcapng", &[]);
    std::fs::write(&f, bytes).unwrap();
    let o = Command::new(tests::wstap_bin())
        .arg("-r")
        .arg(&f)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        out.lines().filter(|l| l.contains("\"ws_message\"")).count(),
        3,
        "{out}"
    );
    let err = String::from_utf8(o.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert_eq!(
        lines[0],
        format!(
            "wstap: {} packets, {} TCP segments (0 filtered out), 0 non-TCP skipped, \
             0 malformed, 0 truncated by snaplen",
            pk.len(),
            pk.len()
        )
    );
    assert!(lines[1].contains(" 3 messages "), "{err}");
    assert_eq!(
        lines[3],
        format!(
            "wstap: error: reading {}: corrupt capture file after {} packets: \
             Invalid field value: Block: (initial_len % 4) != 0",
            f.display(),
            pk.len()
        )
    );

    // Cut inside the section header: the file is not a capture yet.
    std::fs::write(&f, &pcapng(&[])[..10]).unwrap();
    let o = wstap(&f, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        format!(
            "wstap: error: cannot read {}: the file ends inside its pcapng header\n",
            f.display()
        )
    );
    let _ = std::fs::remove_file(&f);
}

/// `-w` onto the `-r` file would truncate the capture before it is read
/// (issue 7: 55 MB became 8 MB, exit 0). Refused, whatever path names it:
/// the same path, another path, a symbolic link, a hard link; the file is
/// left byte for byte as it was. Another existing file is still written.
#[test]
fn write_onto_the_file_being_read_is_refused() {
    let f = write_capture("self.pcap", &conversation(40000, 8080, 3, 10));
    let dir = f.parent().unwrap().to_path_buf();
    let before = std::fs::read(&f).unwrap();
    let hard = dir.join("self-hard.pcap");
    let soft = dir.join("self-soft.pcapng");
    let _ = std::fs::remove_file(&hard);
    let _ = std::fs::remove_file(&soft);
    std::fs::hard_link(&f, &hard).unwrap();
    std::os::unix::fs::symlink(&f, &soft).unwrap();
    let other_path = dir.join(".").join("self.pcap");
    for w in [&f, &hard, &soft, &other_path] {
        let o = wstap(&f, &["-w", w.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "-w {}: {err}", w.display());
        assert_eq!(
            err,
            format!(
                "wstap: error: -w {} is the file being read (-r {}): writing it would destroy \
                 the capture; give -w another file\n",
                w.display(),
                f.display()
            )
        );
        assert!(o.stdout.is_empty(), "nothing decoded");
        assert_eq!(std::fs::read(&f).unwrap(), before, "-w {}", w.display());
    }
    // Reading through the link and writing the original is the same file.
    let o = wstap(&soft, &["-w", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&f).unwrap(), before);

    // An existing file that is not the capture is overwritten as before.
    let out = dir.join("self-out.pcapng");
    std::fs::write(&out, b"old contents").unwrap();
    let o = wstap(&f, &["-w", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = common::wstap_json(&out, &[]);
    assert_eq!(common::named(&again.events, "ws_message").len(), 3);
    for p in [&f, &hard, &soft, &out] {
        let _ = std::fs::remove_file(p);
    }
}

/// Sends `sig` to a child process.
fn signal(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// Waits until `child` catches SIGINT and SIGTERM (its handler is in place:
/// `SigCgt` in /proc/PID/status), so that a signal sent now is handled.
fn wait_for_handlers(child: &std::process::Child) {
    let want = (1u64 << (libc::SIGINT - 1)) | (1u64 << (libc::SIGTERM - 1));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or(0);
        if caught & want == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no signal handlers");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Checks what a stopped `wstap --format json` left: exit 0, complete JSON
/// lines on stdout with as many ws_message lines as the summary counts, the
/// summary and then the interruption on stderr. Returns the packets read.
fn check_stopped(out: std::process::Output, sig: &str, file: &Path) -> u64 {
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{sig}: {err}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "last line cut");
    let mut messages = 0;
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{sig}: line {l:?}: {e}"));
        messages += u64::from(v["event"] == "ws_message");
    }
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{sig}: {err}");
    let packets: u64 = source_line(&err)
        .strip_prefix("wstap: ")
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        lines[1].contains(&format!(" {messages} messages ")),
        "{sig}: {messages} printed, summary {err}"
    );
    assert_eq!(
        lines[3],
        format!(
            "wstap: interrupted by {sig} after {packets} packets; the rest of {} was not read",
            file.display()
        )
    );
    packets
}

/// SIGINT and SIGTERM while a large file is being read (issue 7: exit
/// 130/143, no summary): wstap stops, flushes whole lines, prints the
/// summary and exits 0 like tcpdump. Nobody reads stdout until the signal
/// is sent, so wstap is held mid-file by the full pipe.
#[test]
fn signal_stops_reading_a_large_file_with_summary_and_whole_lines() {
    // ~10 MB, ten times the 1 MiB read buffer whose records are still
    // decoded after a stop.
    let pk = conversation(40000, 8080, 60_000, 100);
    let f = write_capture("signal-big.pcap", &pk);
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let child = Command::new(tests::wstap_bin())
            .arg("-r")
            .arg(&f)
            .args(["--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_handlers(&child);
        std::thread::sleep(std::time::Duration::from_millis(200));
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        let packets = check_stopped(out, name, &f);
        assert!(
            packets > 0 && packets < pk.len() as u64,
            "{name}: stopped mid-file, after {packets} of {} packets",
            pk.len()
        );
    }
    let _ = std::fs::remove_file(&f);
}

/// A FIFO fed part of a capture and then left open without more data (a
/// read waiting in the kernel): the signal ends the wait, what was fed is
/// decoded and summarised, pcap and pcapng alike. Also a FIFO with no
/// writer yet (wstap waits in open).
#[test]
fn signal_stops_reading_a_fifo_that_waits_for_data() {
    let dir = std::env::temp_dir().join(format!("wstap-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pk = conversation(40000, 8080, 20, 10);
    // Everything but the last packets (the FINs): the connection is open.
    let fed = pk.len() - 2;
    for (format, bytes) in [("pcap", pcap(&pk[..fed])), ("pcapng", pcapng(&pk[..fed]))] {
        for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
            let fifo = dir.join(format!("feed.{format}"));
            let _ = std::fs::remove_file(&fifo);
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let child = Command::new(tests::wstap_bin())
                .arg("-r")
                .arg(&fifo)
                .args(["--format", "json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            w.write_all(&bytes).unwrap();
            w.flush().unwrap();
            // Wait until the FIFO is empty (wstap took every byte fed;
            // its output is buffered, so stdout tells nothing yet), then a
            // little longer for it to decode them and wait for more.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let mut queued: libc::c_int = 0;
                // SAFETY: FIONREAD on a FIFO descriptor into an int.
                let r = unsafe {
                    libc::ioctl(
                        std::os::unix::io::AsRawFd::as_raw_fd(&w),
                        libc::FIONREAD,
                        &mut queued,
                    )
                };
                assert_eq!(r, 0);
                if queued == 0 {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "wstap does not read");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            signal(&child, sig);
            let res = child.wait_with_output().unwrap();
            drop(w);
            let packets = check_stopped(res, name, &fifo);
            assert_eq!(packets, fed as u64, "{format} {name}: every packet fed");
            let _ = std::fs::remove_file(&fifo);
        }
    }
    // No writer at all: the signal ends the wait in open(2).
    let fifo = dir.join("nobody.pcap");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let child = Command::new(tests::wstap_bin())
        .arg("-r")
        .arg(&fifo)
        .args(["--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_handlers(&child);
    std::thread::sleep(std::time::Duration::from_millis(200));
    signal(&child, libc::SIGINT);
    let res = child.wait_with_output().unwrap();
    assert_eq!(check_stopped(res, "SIGINT", &fifo), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--ring-size` above 2 GiB is a usage error (exit 2) naming the limit,
/// not a silent 2 GiB ring.
#[test]
fn ring_size_above_2_gib_is_a_usage_error() {
    let o = Command::new(tests::wstap_bin())
        .args(["-i", "lo", "--ring-size", "4294967295"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "invalid value '4294967295' for '--ring-size <BYTES>': at most 2147483648 (2 GiB)"
        ),
        "{err}"
    );
}

/// Issue 7: TCP checksums. A server-to-client message is injected twice
/// with a wrong checksum (segments the client's kernel dropped): once in
/// front of the real segment with the same sequence number, once where the
/// real segment was lost. By default both are decoded (captures on
/// loopback carry partial checksums, so a bad one is no proof) and counted;
/// `--segments` marks them. With `--verify-checksums` they are dropped:
/// the real message is decoded, and where nothing replaces an injected
/// segment its hole is a gap, as if the packet had been lost.
#[test]
fn bad_checksums_are_counted_and_dropped_with_verify_checksums() {
    let c = ([10, 0, 0, 1], 40100);
    let s = ([10, 0, 0, 2], 8080);
    let mut pk = conversation(c.1, s.1, 0, 0);
    let fins = pk.split_off(4);
    let resp_len = pk[3].len() as u32 - 54;
    let frame = |t: &[u8]| {
        let mut f = vec![0x81, t.len() as u8];
        f.extend_from_slice(t);
        f
    };
    let (real0, evil0) = (frame(b"real message zero"), frame(b"evil message zero"));
    let (evil1, real2) = (frame(b"evil message one!"), frame(b"real message two!"));
    let len = real0.len() as u32;
    let seq = 501 + resp_len;
    pk.extend([
        bad_checksum(packet(s, c, seq, ACK | PSH, &evil0)),
        packet(s, c, seq, ACK | PSH, &real0),
        bad_checksum(packet(s, c, seq + len, ACK | PSH, &evil1)),
        packet(s, c, seq + 2 * len, ACK | PSH, &real2),
    ]);
    // The FINs after the messages.
    let cfin = fins[0].clone();
    let sfin = packet(s, c, seq + 3 * len, ACK | FIN, b"");
    pk.extend([cfin, sfin]);
    let f = write_capture("checksums.pcap", &pk);
    let texts = |r: &common::Run| -> Vec<String> {
        common::named(&r.events, "ws_message")
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    };

    let by_default = common::wstap_json(&f, &[]);
    assert_eq!(
        texts(&by_default),
        [
            "evil message zero",
            "evil message one!",
            "real message two!"
        ],
        "the first copy wins, checksum or not"
    );
    assert!(
        by_default.stderr.contains(
            "wstap: 2 TCP segments with a bad checksum decoded anyway (--verify-checksums \
             drops them, as the receiving kernel does); normal in captures taken on loopback \
             or of a host's own outgoing traffic, where offload leaves partial checksums"
        ),
        "{}",
        by_default.stderr
    );
    assert!(common::named(&by_default.events, "gap").is_empty());

    let verified = common::wstap_json(&f, &["--verify-checksums"]);
    let got = texts(&verified);
    assert_eq!(got[0], "real message zero", "{got:?}");
    assert!(got.iter().all(|t| !t.starts_with("evil")), "{got:?}");
    let gaps = common::named(&verified.events, "gap");
    assert_eq!(gaps.len(), 1, "{:?}", verified.events);
    assert_eq!(gaps[0]["bytes"], len, "the hole the dropped segment left");
    assert_eq!(gaps[0]["src"], "10.0.0.2:8080");
    assert!(
        verified
            .stderr
            .contains("wstap: 2 TCP segments with a bad checksum dropped (--verify-checksums"),
        "{}",
        verified.stderr
    );
    assert!(
        verified.stderr.contains("1 gaps (19 bytes)"),
        "{}",
        verified.stderr
    );

    // --segments: the field only on the two bad ones; with
    // --verify-checksums they are not printed.
    let segs = common::wstap_json(&f, &["--segments"]);
    let bad: Vec<&serde_json::Value> = segs
        .events
        .iter()
        .filter(|e| e.get("checksum").is_some())
        .collect();
    assert_eq!(bad.len(), 2, "{:?}", segs.events);
    assert!(bad.iter().all(|e| e["checksum"] == "bad"));
    assert_eq!(
        common::payload(bad[0]),
        evil0,
        "the injected one, not the real one"
    );
    assert!(segs
        .stderr
        .contains("2 TCP segments with a bad checksum decoded anyway"));
    let segs_v = common::wstap_json(&f, &["--segments", "--verify-checksums"]);
    assert_eq!(segs_v.events.len(), pk.len() - 2);
    assert!(segs_v.events.iter().all(|e| e.get("checksum").is_none()));
    let text = wstap(&f, &["--segments"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert_eq!(text.matches(" checksum=bad").count(), 2, "{text}");
    let _ = std::fs::remove_file(&f);
}

/// `wstap -r -` reads the capture from a pipe on standard input, in small
/// writes as tcpdump's `-w -` makes them, and prints exactly what `-r
/// FILE` prints; built captures (pcap and pcapng) and one of real peers
/// from the corpus when it is there. `-w` onto the file redirected to
/// standard input is refused like `-w` onto `-r FILE`.
#[test]
fn read_from_standard_input_decodes_like_the_file() {
    let mut files = vec![
        write_capture("stdin-pcap", &conversation(40100, 8080, 5, 3000)),
        {
            let p =
                std::env::temp_dir().join(format!("wstap-stdin-ng-{}.pcapng", std::process::id()));
            std::fs::write(&p, pcapng(&conversation(40101, 8080, 3, 100))).unwrap();
            p
        },
    ];
    if let Some(c) = tests::corpus_dir() {
        files.push(c.join("zeek/jupyter-websocket.pcap"));
    }
    for file in &files {
        let want = wstap(file, &["--format", "json"]);
        assert!(
            want.status.success(),
            "{}",
            String::from_utf8_lossy(&want.stderr)
        );
        for path in ["-", "/dev/stdin"] {
            let got = wstap_pipe(path, std::fs::read(file).unwrap(), &["--format", "json"]);
            let err = String::from_utf8_lossy(&got.stderr);
            assert!(got.status.success(), "{}: {err}", file.display());
            let messages = String::from_utf8_lossy(&got.stdout)
                .matches("\"ws_message\"")
                .count();
            assert!(messages > 0, "{}: no message decoded", file.display());
            assert_eq!(
                got.stdout,
                want.stdout,
                "{}: -r {path} from a pipe differs from -r FILE",
                file.display()
            );
        }
    }

    let file = &files[0];
    let out = Command::new(tests::wstap_bin())
        .args(["-r", "-", "-w"])
        .arg(file)
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the file being read (-r -)"), "{err}");
    assert!(
        std::fs::metadata(file).unwrap().len() > 0,
        "the capture was destroyed"
    );
    let out = Command::new(tests::wstap_bin())
        .args(["-r", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read standard input"), "{err}");
}

/// gzip `bytes` with the system's gzip.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(["-c", "-6"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `.pcap.gz` and `.pcapng.gz` (what `tcpdump -w - | gzip` and rotating
/// tools leave) decode exactly like the plain files, from a path and from
/// a pipe, in one gzip member or in several (`cat a.gz b.gz`); a gzip file
/// cut short prints what it held and says the file was truncated; corrupt
/// deflate data is an error that says so.
#[test]
fn gzip_captures_decode_like_the_plain_ones() {
    let mut files = vec![
        write_capture("gz-pcap", &conversation(40300, 8080, 5, 3000)),
        {
            let p = std::env::temp_dir().join(format!("wstap-gz-ng-{}.pcapng", std::process::id()));
            std::fs::write(&p, pcapng(&conversation(40301, 8080, 3, 100))).unwrap();
            p
        },
    ];
    if let Some(c) = tests::corpus_dir() {
        files.push(c.join("zeek/jupyter-websocket.pcap"));
    }
    for file in &files {
        let want = wstap(file, &["--format", "json"]);
        assert!(want.status.success());
        let plain = std::fs::read(file).unwrap();
        let one = gzip(&plain);
        let mut two = gzip(&plain[..plain.len() / 2]);
        two.extend(gzip(&plain[plain.len() / 2..]));
        for (what, gz) in [("one member", &one), ("two members", &two)] {
            let path = file.with_extension("gz");
            std::fs::write(&path, gz).unwrap();
            let got = wstap(&path, &["--format", "json"]);
            let err = String::from_utf8_lossy(&got.stderr);
            assert!(got.status.success(), "{}, {what}: {err}", file.display());
            assert!(String::from_utf8_lossy(&got.stdout).contains("\"ws_message\""));
            assert_eq!(
                got.stdout,
                want.stdout,
                "{}, {what}: differs",
                file.display()
            );
            let piped = wstap_stdin(gz.clone(), &["--format", "json"]);
            assert_eq!(
                piped.stdout,
                want.stdout,
                "{}, {what}, piped",
                file.display()
            );
            let _ = std::fs::remove_file(&path);
        }
    }

    let plain = std::fs::read(&files[0]).unwrap();
    let gz = gzip(&plain);
    let cut = wstap_stdin(gz[..gz.len() * 2 / 3].to_vec(), &["--format", "json"]);
    let err = String::from_utf8_lossy(&cut.stderr);
    assert!(cut.status.success(), "{err}");
    assert!(err.contains("truncated"), "{err}");
    let whole = wstap(&files[0], &["--format", "json"]).stdout;
    assert!(!cut.stdout.is_empty() && whole.starts_with(&cut.stdout[..cut.stdout.len() / 2]));

    let mut bad = gz.clone();
    for b in &mut bad[20..60] {
        *b ^= 0x5a;
    }
    let o = wstap_stdin(bad, &["--format", "json"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.to_lowercase().contains("deflate")
            || err.contains("corrupt")
            || err.contains("invalid"),
        "{err}"
    );
}

/// `-w -` writes the pcapng stream to standard output, byte for byte what
/// `-w FILE` writes, with nothing else on it; the decoded output then goes
/// to `-o FILE` (the same as without `-w`) or nowhere; and `wstap -w - |
/// wstap -r -` decodes every message. With `-- COMMAND` it is refused: the
/// command's output would mix into the stream.
#[test]
fn write_to_standard_output_is_the_pcapng_alone() {
    let mut files = vec![write_capture(
        "stdout-pcap",
        &conversation(40200, 8080, 4, 2500),
    )];
    if let Some(c) = tests::corpus_dir() {
        files.push(c.join("zeek/jupyter-websocket.pcap"));
    }
    let dir = std::env::temp_dir().join(format!("wstap-stdout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in &files {
        let to_file = dir.join("w.pcapng");
        let plain = wstap(file, &[]);
        let with_file = wstap(file, &["-w", to_file.to_str().unwrap()]);
        assert!(with_file.status.success());
        let decoded = dir.join("decoded.txt");
        let streamed = wstap(file, &["-w", "-", "-o", decoded.to_str().unwrap()]);
        assert!(
            streamed.status.success(),
            "{}",
            String::from_utf8_lossy(&streamed.stderr)
        );
        assert_eq!(
            streamed.stdout,
            std::fs::read(&to_file).unwrap(),
            "{}: -w - differs from -w FILE",
            file.display()
        );
        assert_eq!(
            std::fs::read(&decoded).unwrap(),
            plain.stdout,
            "-o with -w -"
        );
        let silent = wstap(file, &["-w", "-"]);
        assert_eq!(silent.stdout, streamed.stdout, "only the pcapng on stdout");

        let back = wstap_stdin(streamed.stdout.clone(), &["--format", "json"]);
        assert!(back.status.success());
        let want = String::from_utf8_lossy(&wstap(file, &["--format", "json"]).stdout)
            .matches("\"ws_message\"")
            .count();
        let got = String::from_utf8_lossy(&back.stdout)
            .matches("\"ws_message\"")
            .count();
        assert!(want > 0);
        assert_eq!(got, want, "{}: messages after -w - | -r -", file.display());
    }
    let out = Command::new(tests::wstap_bin())
        .args(["-i", "lo", "-w", "-", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-w - with -- COMMAND"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pcap of `packets` with packet `i` stamped `start_s + i * step_us`.
fn pcap_timed(packets: &[Vec<u8>], start_s: u32, step_us: u64) -> Vec<u8> {
    let mut f = pcap(&[]);
    for (i, p) in packets.iter().enumerate() {
        let t = u64::from(start_s) * 1_000_000 + i as u64 * step_us;
        f.extend(((t / 1_000_000) as u32).to_le_bytes());
        f.extend(((t % 1_000_000) as u32).to_le_bytes());
        f.extend((p.len() as u32).to_le_bytes());
        f.extend((p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    f
}

/// `--segments` lines of each file, in order, all files together.
fn segment_lines(files: &[PathBuf]) -> Vec<String> {
    let mut lines = Vec::new();
    for f in files {
        let out = wstap(f, &["--segments"]);
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        lines.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(String::from),
        );
    }
    lines
}

/// tcpdump's rotation (issue 13): `-C MB` starts FILE, FILE1, FILE2… once a
/// file is over MB million bytes; with `-W N` a ring of FILE0…FILE{N-1};
/// `-G SECONDS` names files by strftime at the start of each period (the
/// packets' time), and with `-W N` alone ends after N files. Every file is
/// a complete pcapng: read one by one, they hold exactly the packets of
/// the unrotated file, in order.
#[test]
fn rotation_by_size_and_time_makes_tcpdumps_files_each_readable() {
    let dir = std::env::temp_dir().join(format!("wstap-rotate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // About 3.9 MB of packets over 15 s of capture time (1,507 packets,
    // 10 ms apart).
    let pk = conversation(40300, 8080, 1500, 2500);
    let input = dir.join("in.pcap");
    std::fs::write(&input, pcap_timed(&pk, 1_700_000_000, 10_000)).unwrap();
    let whole = dir.join("whole.pcapng");
    assert!(wstap(&input, &["-w", whole.to_str().unwrap()])
        .status
        .success());
    let all = segment_lines(std::slice::from_ref(&whole));
    assert_eq!(all.len(), pk.len());
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };

    // -C 1: cap.pcapng, cap.pcapng1, 2, 3; each at most 1 MB plus a packet.
    let c = dir.join("c");
    std::fs::create_dir_all(&c).unwrap();
    let out = wstap(
        &input,
        &["-w", c.join("cap.pcapng").to_str().unwrap(), "-C", "1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        names(&c),
        ["cap.pcapng", "cap.pcapng1", "cap.pcapng2", "cap.pcapng3"]
    );
    let files: Vec<PathBuf> = ["cap.pcapng", "cap.pcapng1", "cap.pcapng2", "cap.pcapng3"]
        .iter()
        .map(|n| c.join(n))
        .collect();
    for f in &files[..3] {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(
            (1_000_000..1_000_000 + 3_000).contains(&len),
            "{}: {len} bytes",
            f.display()
        );
    }
    assert_eq!(segment_lines(&files), all, "-C files together differ");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("{} packets written to 4 files opened", pk.len())),
        "{said}"
    );
    if tests::require_tool("rotation", "tshark") {
        let mut n = 0;
        for f in &files {
            let t = Command::new("tshark").arg("-r").arg(f).output().unwrap();
            assert!(t.status.success(), "tshark -r {}", f.display());
            n += String::from_utf8_lossy(&t.stdout).lines().count();
        }
        assert_eq!(n, pk.len(), "tshark reads every packet of the -C files");
    }

    // -C 1 -W 2: a ring of cap0, cap1; the last file ends with the FINs.
    let w = dir.join("w");
    std::fs::create_dir_all(&w).unwrap();
    let out = wstap(
        &input,
        &["-w", w.join("cap").to_str().unwrap(), "-C", "1", "-W", "2"],
    );
    assert!(out.status.success());
    assert_eq!(names(&w), ["cap0", "cap1"]);
    // Opened cap0 cap1 cap0 cap1: the fourth file (the tail) is cap1, the
    // third (cap0) holds the packets before it.
    let ring = segment_lines(&[w.join("cap0"), w.join("cap1")]);
    assert_eq!(
        ring[..],
        all[all.len() - ring.len()..],
        "the ring keeps the tail"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 files opened (2 distinct"));

    // -G 5 on 15 s of packets: one file per period, named by its start.
    let g = dir.join("g");
    std::fs::create_dir_all(&g).unwrap();
    let template = g.join("cap-%s.pcapng");
    let out = wstap(&input, &["-w", template.to_str().unwrap(), "-G", "5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let timed = names(&g);
    assert_eq!(
        timed,
        [
            "cap-1700000000.pcapng",
            "cap-1700000005.pcapng",
            "cap-1700000010.pcapng",
            "cap-1700000015.pcapng"
        ]
    );
    let files: Vec<PathBuf> = timed.iter().map(|n| g.join(n)).collect();
    assert_eq!(segment_lines(&files), all, "-G files together differ");
    // 500 packets per 5 s.
    assert_eq!(segment_lines(&files[..1]).len(), 500);

    // -G 5 -W 2: two periods, then the end (as tcpdump exits).
    let gw = dir.join("gw");
    std::fs::create_dir_all(&gw).unwrap();
    let out = wstap(
        &input,
        &[
            "-w",
            gw.join("p-%s").to_str().unwrap(),
            "-G",
            "5",
            "-W",
            "2",
        ],
    );
    assert!(out.status.success());
    assert_eq!(names(&gw), ["p-1700000000", "p-1700000005"]);
    let two: Vec<PathBuf> = names(&gw).iter().map(|n| gw.join(n)).collect();
    assert_eq!(segment_lines(&two)[..], all[..1000]);

    // Refused: -W alone, rotation of standard output, -C without -w.
    for (args, needle) in [
        (
            vec!["-w", "x.pcapng", "-W", "3"],
            "-W N needs -C MB or -G SECONDS",
        ),
        (
            vec!["-w", "-", "-C", "1"],
            "cannot rotate -w - (standard output)",
        ),
        (vec!["-C", "1"], "--write"),
        (vec!["-w", "x.pcapng", "-C", "0"], "above 0"),
    ] {
        let out = wstap(&input, &args);
        assert!(!out.status.success(), "{args:?}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pipes people type (issue 13): `tcpdump -w - | wstap -r -` decodes
/// what wstap decodes from the file, and `wstap -w - | tshark -r -` shows
/// the messages wstap decodes.
#[test]
fn tcpdump_and_tshark_pipes_round_trip() {
    if !tests::require_tool("tcpdump_pipe", "tcpdump")
        || !tests::require_tool("tshark_pipe", "tshark")
    {
        return;
    }
    let f = write_capture("pipes.pcap", &conversation(40400, 8080, 5, 300));
    let sh = |script: &str| {
        let out = Command::new("sh")
            .args(["-c", script])
            .env("WSTAP", tests::wstap_bin())
            .env("IN", &f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let direct = String::from_utf8(wstap(&f, &[]).stdout).unwrap();
    assert!(direct.matches("text").count() >= 5, "{direct}");
    let piped = sh(r#"tcpdump -r "$IN" -w - 2>/dev/null | "$WSTAP" -r -"#);
    assert_eq!(piped, direct, "tcpdump -w - | wstap -r -");
    let shown = sh(
        r#""$WSTAP" -r "$IN" -w - 2>/dev/null | tshark -r - -Y "websocket.opcode == 1" -T fields -e websocket.payload.text"#,
    );
    let ours = common::wstap_json(&f, &[]);
    let texts: Vec<&str> = common::named(&ours.events, "ws_message")
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 5);
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        texts,
        "wstap -w - | tshark -r -"
    );
    let _ = std::fs::remove_file(&f);
}
