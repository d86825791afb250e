//! Helpers for the live-capture (kernel tap) tests: the byte pattern the
//! `tcp_peer` helper sends, running `wstap --segments --hex` in a namespace,
//! parsing its segment lines and summary, and reassembling each direction of
//! a connection from the captured segments.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use capture_common::Counter;

use crate::netns::Netns;

pub const CLIENT_SEED: u8 = 1;
pub const SERVER_SEED: u8 = 2;

/// Byte `off` of the stream sent by the side with `seed`. Not periodic at
/// powers of two, so a chunk placed at a wrong offset shows.
pub fn pattern_byte(seed: u8, off: u64) -> u8 {
    ((off.wrapping_mul(131) + (off >> 9) + seed as u64 * 17) % 251) as u8
}

pub fn fill_pattern(seed: u8, start: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, start + i as u64);
    }
}

pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_pattern(seed, 0, &mut v);
    v
}

/// One `--segments` line of wstap.
#[derive(Debug, Clone)]
pub struct SegLine {
    pub iface: String,
    pub egress: bool,
    pub src: String,
    pub dst: String,
    pub flags: String,
    pub seq: u32,
    pub len: usize,
    pub data: Vec<u8>,
}

/// Parses `HH:MM:SS.us IFACE In|Out SRC > DST [FLAGS] seq N ack N win N len N [data HEX]`.
pub fn parse_line(line: &str) -> Option<SegLine> {
    let t: Vec<&str> = line.split_whitespace().collect();
    if t.len() < 15 || t[4] != ">" || t[7] != "seq" || t[11] != "win" || t[13] != "len" {
        return None;
    }
    let data = if t.len() >= 17 && t[15] == "data" {
        hex(t[16])?
    } else {
        Vec::new()
    };
    let seg = SegLine {
        iface: t[1].to_string(),
        egress: t[2] == "Out",
        src: t[3].to_string(),
        dst: t[5].to_string(),
        flags: t[6].trim_matches(|c| c == '[' || c == ']').to_string(),
        seq: t[8].parse().ok()?,
        len: t[14].parse().ok()?,
        data,
    };
    Some(seg)
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The kernel counters from wstap's summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub segments: u64,
    pub bytes: u64,
    pub packets_seen: u64,
    pub segments_matched: u64,
    pub bytes_matched: u64,
    pub records: u64,
    pub records_bytes: u64,
    pub records_lost: u64,
    pub bytes_lost: u64,
    pub cut_short: u64,
    pub cut_short_bytes: u64,
    pub parse_errors: u64,
}

/// Parses the two summary lines wstap prints on stderr at exit.
pub fn parse_summary(stderr: &str) -> Result<Summary> {
    let nums = |l: &str| -> Vec<u64> {
        l.split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    let first = stderr
        .lines()
        .find(|l| l.contains("records received"))
        .ok_or_else(|| anyhow!("no summary in stderr:\n{stderr}"))?;
    let kernel = stderr
        .lines()
        .find(|l| l.starts_with("kernel:"))
        .ok_or_else(|| anyhow!("no kernel summary in stderr:\n{stderr}"))?;
    let a = nums(first);
    if a.len() < 2 {
        bail!("unexpected summary: {first}");
    }
    // "kernel: N packets seen, N segments matched, ...": each part is a
    // number and a counter's label from the wire contract's table.
    let body = kernel.trim_start_matches("kernel:");
    let k = |c: Counter| -> Result<u64> {
        body.split(',')
            .map(str::trim)
            .find_map(|part| {
                let (n, label) = part.split_once(' ')?;
                (label == c.label()).then(|| n.parse().ok())?
            })
            .ok_or_else(|| anyhow!("no {:?} in the kernel summary: {kernel}", c.label()))
    };
    Ok(Summary {
        segments: a[0],
        bytes: a[1],
        packets_seen: k(Counter::PacketsSeen)?,
        segments_matched: k(Counter::SegmentsMatched)?,
        bytes_matched: k(Counter::BytesMatched)?,
        records: k(Counter::Records)?,
        records_bytes: k(Counter::Bytes)?,
        records_lost: k(Counter::RecordsLost)?,
        bytes_lost: k(Counter::BytesLost)?,
        cut_short: k(Counter::CutShortSegments)?,
        cut_short_bytes: k(Counter::CutShortBytes)?,
        parse_errors: k(Counter::ParseErrors)?,
    })
}

/// A running `wstap` in a namespace.
pub struct Wstap {
    child: Child,
    stdout: Option<std::thread::JoinHandle<Vec<String>>>,
    stderr_rx: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

/// What a stopped wstap printed.
pub struct WstapOutput {
    pub lines: Vec<String>,
    pub segments: Vec<SegLine>,
    pub stderr: String,
    pub status: std::process::ExitStatus,
}

impl Wstap {
    /// Starts `wstap ARGS` in `ns` and waits until it says it is listening.
    pub fn start(ns: &Netns, args: &[&str]) -> Result<Wstap> {
        Self::start_env(ns, args, &[])
    }

    /// Like [`Wstap::start`], with these environment variables set.
    pub fn start_env(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> Result<Wstap> {
        let bin = crate::wstap_bin();
        let mut full = vec![bin.to_str().context("wstap path")?];
        full.extend_from_slice(args);
        Self::spawn(ns, &full, env)
    }

    /// Starts `program_and_args` (wstap behind a wrapper such as setpriv:
    /// its path is among the arguments) in `ns`, like [`Wstap::start`].
    pub fn start_with_prefix(ns: &Netns, program_and_args: &[&str]) -> Result<Wstap> {
        Self::spawn(ns, program_and_args, &[])
    }

    fn spawn(ns: &Netns, program_and_args: &[&str], env: &[(&str, &str)]) -> Result<Wstap> {
        let mut child = ns
            .command(program_and_args[0])
            .args(&program_and_args[1..])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning wstap")?;
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let stdout =
            std::thread::spawn(move || BufReader::new(out).lines().map_while(|l| l.ok()).collect());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(|l| l.ok()) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut w = Wstap {
            child,
            stdout: Some(stdout),
            stderr_rx: rx,
            stderr: Vec::new(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match w.stderr_rx.recv_timeout(left) {
                Ok(l) => {
                    let done = l.starts_with("listening on");
                    w.stderr.push(l);
                    if done {
                        return Ok(w);
                    }
                }
                Err(_) => {
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    bail!("wstap did not start listening: {}", w.stderr.join("\n"));
                }
            }
        }
    }

    /// What wstap wrote on stderr up to "listening on".
    pub fn stderr_so_far(&self) -> String {
        self.stderr.join("\n")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGINT and collects the output.
    pub fn stop(self) -> Result<WstapOutput> {
        self.signal_and_wait(libc::SIGINT)
    }

    pub fn signal_and_wait(self, sig: i32) -> Result<WstapOutput> {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.pid(), sig) };
        self.wait_exit(Duration::from_secs(60))
    }

    /// Waits for wstap to end by itself within `timeout` (killed and an
    /// error after that) and collects the output.
    pub fn wait_exit(mut self, timeout: Duration) -> Result<WstapOutput> {
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait()? {
                break st;
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "wstap did not exit within {timeout:?}; stderr so far: {}",
                    self.stderr.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let lines = self
            .stdout
            .take()
            .unwrap()
            .join()
            .map_err(|_| anyhow!("stdout reader panicked"))?;
        while let Ok(l) = self.stderr_rx.recv_timeout(Duration::from_secs(2)) {
            self.stderr.push(l);
        }
        let segments = lines.iter().filter_map(|l| parse_line(l)).collect();
        Ok(WstapOutput {
            lines,
            segments,
            stderr: self.stderr.join("\n"),
            status,
        })
    }
}

impl Drop for Wstap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one connection per size in `sizes`, to `server_ip:port0+k` in
/// `server_ns` from `client_ns` ([`run_peers`]): the client sends `size`
/// bytes, the server `answer(size)` (different each way, so a swapped
/// direction shows).
pub fn run_sized(
    peer: &Path,
    server_ns: &Netns,
    client_ns: &Netns,
    server_ip: &str,
    port0: u16,
    sizes: &[usize],
    answer: fn(usize) -> usize,
) -> Result<()> {
    for (k, &size) in sizes.iter().enumerate() {
        let addr = format!("{server_ip}:{}", port0 as usize + k);
        run_peers(
            peer,
            server_ns,
            client_ns,
            &addr,
            size as u64,
            answer(size) as u64,
        )?;
    }
    Ok(())
}

/// Checks that `segs` hold every connection [`run_sized`] made, each byte
/// both ways, from the client's SYN.
pub fn check_sized(
    segs: &[SegLine],
    server_ip: &str,
    port0: u16,
    sizes: &[usize],
    answer: fn(usize) -> usize,
) -> Result<()> {
    for (k, &size) in sizes.iter().enumerate() {
        let server = format!("{server_ip}:{}", port0 as usize + k);
        let client =
            client_of(segs, &server).ok_or_else(|| anyhow!("{server}: client SYN not captured"))?;
        let up = reassemble(segs, &client, &server)?;
        check_pattern(
            &format!("{size} bytes client->server"),
            &up,
            CLIENT_SEED,
            size,
        )?;
        let down = reassemble(segs, &server, &client)?;
        let back = answer(size);
        check_pattern(
            &format!("{back} bytes server->client"),
            &down,
            SERVER_SEED,
            back,
        )?;
    }
    Ok(())
}

/// Runs one connection: `tcp_peer server` in `server_ns` on `server_addr`
/// (e.g. "10.77.0.2:5000" or "[fd77::2]:5000") and `tcp_peer client` in
/// `client_ns`, each sending its byte count. Returns when both have finished.
pub fn run_peers(
    peer: &Path,
    server_ns: &Netns,
    client_ns: &Netns,
    server_addr: &str,
    client_send: u64,
    server_send: u64,
) -> Result<String> {
    let mut server = server_ns
        .command(peer)
        .args(["server", server_addr, &server_send.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut sout = BufReader::new(server.stdout.take().unwrap());
    let mut ready = String::new();
    sout.read_line(&mut ready)?;
    if ready.trim() != "ready" {
        bail!("server did not start: {ready:?}");
    }
    let client = client_ns
        .command(peer)
        .args(["client", server_addr, &client_send.to_string()])
        .stdout(Stdio::piped())
        .output()?;
    let status = server.wait()?;
    if !client.status.success() || !status.success() {
        bail!(
            "peers failed: client {:?} server {:?}",
            client.status,
            status
        );
    }
    Ok(String::from_utf8_lossy(&client.stdout).into_owned())
}

/// Reassembles the bytes sent from `src` to `dst` (as printed, e.g.
/// "10.77.0.1:40000") from captured segments: payloads are placed by sequence
/// number relative to the SYN; overlaps must agree and no hole may remain.
pub fn reassemble(segs: &[SegLine], src: &str, dst: &str) -> Result<Vec<u8>> {
    let mine: Vec<&SegLine> = segs
        .iter()
        .filter(|s| s.src == src && s.dst == dst)
        .collect();
    let syn = mine
        .iter()
        .find(|s| s.flags.contains('S'))
        .ok_or_else(|| anyhow!("no SYN from {src} to {dst} among {} segments", mine.len()))?;
    let base = syn.seq.wrapping_add(1);
    let mut pieces: BTreeMap<u64, &[u8]> = BTreeMap::new();
    for s in &mine {
        if s.len == 0 {
            continue;
        }
        if s.data.len() != s.len {
            bail!("segment printed without its payload (use --hex): {s:?}");
        }
        let rel = s.seq.wrapping_sub(base) as u64;
        if let Some(prev) = pieces.get(&rel) {
            if *prev != &s.data[..] {
                bail!("two different payloads at offset {rel}");
            }
        }
        pieces.insert(rel, &s.data);
    }
    let mut out: Vec<u8> = Vec::new();
    for (rel, data) in pieces {
        let rel = rel as usize;
        if rel > out.len() {
            bail!(
                "hole in {src} > {dst}: bytes {}..{} missing",
                out.len(),
                rel
            );
        }
        let overlap = out.len() - rel;
        if overlap >= data.len() {
            if out[rel..rel + data.len()] != *data {
                bail!("retransmission at {rel} differs");
            }
            continue;
        }
        if out[rel..] != data[..overlap] {
            bail!("overlap at {rel} differs");
        }
        out.extend_from_slice(&data[overlap..]);
    }
    Ok(out)
}

/// The client-side address a captured connection to `server` used.
pub fn client_of(segs: &[SegLine], server: &str) -> Option<String> {
    segs.iter()
        .find(|s| s.dst == server && s.flags == "S")
        .map(|s| s.src.clone())
}

/// Checks that `got` is exactly the pattern of `seed` and `len` bytes,
/// naming the first difference.
pub fn check_pattern(what: &str, got: &[u8], seed: u8, len: usize) -> Result<()> {
    if got.len() != len {
        bail!("{what}: {} bytes captured, {len} sent", got.len());
    }
    if let Some(i) = (0..len).find(|&i| got[i] != pattern_byte(seed, i as u64)) {
        bail!("{what}: byte {i} differs");
    }
    Ok(())
}

/// `bpftool net show dev IFACE` inside the namespace.
pub fn bpftool_net(ns: &Netns, iface: &str) -> Result<String> {
    let out = ns
        .command("bpftool")
        .args(["net", "show", "dev", iface])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs wstap to completion (for error cases) with a timeout.
pub fn wstap_output(
    ns: Option<&Netns>,
    wrap: &[&str],
    args: &[&str],
) -> Result<std::process::Output> {
    let mut cmd = match (ns, wrap.first()) {
        (Some(ns), Some(w)) => {
            let mut c = ns.command(w);
            c.args(&wrap[1..]).arg(crate::wstap_bin());
            c
        }
        (Some(ns), None) => ns.command(crate::wstap_bin()),
        (None, Some(w)) => {
            let mut c = Command::new(w);
            c.args(&wrap[1..]).arg(crate::wstap_bin());
            c
        }
        (None, None) => Command::new(crate::wstap_bin()),
    };
    cmd.args(args).stdin(Stdio::null());
    Ok(cmd.output()?)
}

/// `(link id, link type)` pairs and program ids.
pub type BpfFds = (Vec<(u32, String)>, Vec<u32>);

/// The bpf link ids and program ids that process `pid` holds (from
/// /proc/PID/fdinfo), with each link's type ("tcx", "xdp", ...).
pub fn bpf_fds(pid: i32) -> Result<BpfFds> {
    let mut links = Vec::new();
    let mut progs = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(info) = std::fs::read_to_string(e?.path()) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if let Some(id) = field("link_id:") {
            links.push((id.parse()?, field("link_type:").unwrap_or_default()));
        } else if let (Some(id), Some(_)) = (field("prog_id:"), field("prog_type:")) {
            progs.push(id.parse()?);
        }
    }
    Ok((links, progs))
}

/// Ids of all bpf links in the kernel (`bpftool -j link show`).
pub fn kernel_link_ids() -> Result<Vec<u32>> {
    bpftool_ids("link")
}

/// Ids of all loaded bpf programs (`bpftool -j prog show`).
pub fn kernel_prog_ids() -> Result<Vec<u32>> {
    bpftool_ids("prog")
}

/// Waits (up to 5 s) for the kernel to release these links and programs,
/// held by a process that is gone: they go with its fds, but the release
/// is deferred. Returns the ids still there (empty when all went).
pub fn still_in_kernel(links: &[u32], progs: &[u32]) -> Result<Vec<u32>> {
    let mut left = Vec::new();
    for _ in 0..50 {
        let (links_now, progs_now) = (kernel_link_ids()?, kernel_prog_ids()?);
        left = links
            .iter()
            .filter(|id| links_now.contains(id))
            .chain(progs.iter().filter(|id| progs_now.contains(id)))
            .copied()
            .collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(left)
}

/// Ids of every object of `kind` ("link", "prog") the kernel lists.
/// bpftool walks the ids and then opens each one, so an object released
/// between the two (another test's link going away) fails the whole
/// listing: that race is retried, a few times, before it counts as an error.
fn bpftool_ids(kind: &str) -> Result<Vec<u32>> {
    let mut tries = 0;
    let out = loop {
        match crate::netns::run(Command::new("bpftool").args(["-j", kind, "show"])) {
            Ok(out) => break out,
            Err(_) if tries < 5 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["id"].as_u64())
                .map(|i| i as u32)
                .collect()
        })
        .unwrap_or_default())
}
