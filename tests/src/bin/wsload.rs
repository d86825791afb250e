//! wsload: a WebSocket load generator that outruns the capture tools it
//! measures (the Python peers top out near 2 MB/s of small messages).
//!
//! ```text
//! wsload server --listen 10.204.0.1:9007 [--sink] [--ready FILE]
//! wsload client --connect 10.204.0.1:9007 --conns 8 --messages 1000 \
//!        --size 20-200 [--binary] [--rate MSGS_PER_S] [--one-way] \
//!        [--sources 127.1.0.0/16] --log FILE
//! ```
//!
//! The server echoes every data message (or, with `--sink`, only reads).
//! The client opens `--conns` connections (from many source addresses with
//! `--sources`, so that 100,000 of them fit in the ephemeral port range),
//! optionally waits for a go file, sends `--messages` per connection (or
//! for `--duration` seconds) paced to `--rate` messages per second in
//! total, awaits the echoes and closes. Its log says what was on the wire:
//! per connection the client and server addresses, messages and bytes each
//! way and a SHA-256 digest of the messages in order (each as its length,
//! u64 little endian, then its bytes), which the tests recompute from
//! wstap's JSON to check the benchmark's "decoded" figure instead of
//! assuming it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures_util::{FutureExt, SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(about = "WebSocket load generator for wstap's benchmarks and tests")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Runtime worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Accept connections; echo every data message back (or only read it).
    Server(ServerArgs),
    /// Open connections and send messages.
    Client(ClientArgs),
}

#[derive(clap::Args)]
struct ServerArgs {
    #[arg(long)]
    listen: SocketAddr,
    /// Read and count, send nothing back.
    #[arg(long)]
    sink: bool,
    /// Written once the server listens.
    #[arg(long)]
    ready: Option<PathBuf>,
    /// SO_REUSEPORT: several server processes share the port (and the
    /// kernel spreads connections over them), for more connections than
    /// one process may hold descriptors.
    #[arg(long)]
    reuse_port: bool,
}

#[derive(clap::Args)]
struct ClientArgs {
    #[arg(long)]
    connect: SocketAddr,
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Source addresses: an IPv4 network (`127.1.0.0/16`); its hosts are
    /// used in turn, `--per-source` connections each. Default: the
    /// kernel's choice.
    #[arg(long)]
    sources: Option<String>,
    /// Connections per source address (at most ~28,000 fit in the default
    /// ephemeral port range).
    #[arg(long, default_value_t = 20_000)]
    per_source: usize,
    /// Messages per connection (with `--duration`: until the time is up).
    #[arg(long, default_value_t = 100)]
    messages: u64,
    /// Send for this many seconds instead of a fixed count.
    #[arg(long)]
    duration: Option<f64>,
    /// Message size in bytes, `N` or `MIN-MAX` (uniform).
    #[arg(long, default_value = "20-200")]
    size: String,
    /// Binary messages (random bytes) instead of text (ASCII).
    #[arg(long)]
    binary: bool,
    /// Total messages per second over all connections; 0: as fast as
    /// possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Messages per write: a batch is queued and then flushed in one
    /// write (a busy server's way); 1: each message its own write.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// The server sinks: expect no echoes.
    #[arg(long)]
    one_way: bool,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    open_parallel: usize,
    /// Written once every connection is open (then the client waits for
    /// `--go` if given).
    #[arg(long)]
    idle_marker: Option<PathBuf>,
    /// Start sending when this file exists.
    #[arg(long)]
    go: Option<PathBuf>,
    /// Written when every message was sent (and echoed).
    #[arg(long)]
    sent_marker: Option<PathBuf>,
    /// Seconds to keep the connections open after the last echo.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// The log (JSON): totals and one entry per connection.
    #[arg(long)]
    log: PathBuf,
    /// Totals only in the log (100,000 entries are 25 MB to read).
    #[arg(long)]
    no_connections: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    raise_fd_limit();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(t) = cli.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.build()?;
    match cli.cmd {
        Cmd::Server(a) => rt.block_on(server(a)),
        Cmd::Client(a) => rt.block_on(client(a)),
    }
}

/// 100,000 connections need 100,000 descriptors on each side: as high as
/// the kernel allows (`fs.nr_open`, root may raise the hard limit), else
/// the hard limit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let nr_open: libc::rlim_t = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = libc::rlimit {
            rlim_cur: nr_open.max(lim.rlim_max),
            rlim_max: nr_open.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Small buffers: a connection costs a few KiB, not tungstenite's default
/// 128 KiB read buffer (100,000 of those would be 12.8 GB). Messages are
/// written when flushed (`feed` queues, `send` and `flush` write), so
/// that a batch of them leaves in one write.
fn ws_config(many: bool) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(if many { 4096 } else { 64 * 1024 })
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

async fn server(a: ServerArgs) -> Result<()> {
    let sock = match a.listen {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    sock.set_reuseaddr(true)?;
    if a.reuse_port {
        sock.set_reuseport(true)?;
    }
    sock.bind(a.listen)
        .with_context(|| format!("binding {}", a.listen))?;
    let listener = sock.listen(65535)?;
    if let Some(r) = &a.ready {
        std::fs::write(r, "ready\n")?;
    }
    serve(listener, a.sink).await
}

async fn serve(listener: TcpListener, sink: bool) -> Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors or memory: say so, keep serving.
                eprintln!("wsload server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) =
                tokio_tungstenite::accept_async_with_config(stream, Some(ws_config(true))).await
            else {
                return;
            };
            // Echoes of what has already arrived leave together; the
            // writes are flushed as soon as nothing more is waiting.
            let mut unflushed = false;
            loop {
                let next = match ws.next().now_or_never() {
                    Some(m) => m,
                    None => {
                        if unflushed {
                            if ws.flush().await.is_err() {
                                return;
                            }
                            unflushed = false;
                        }
                        ws.next().await
                    }
                };
                let Some(Ok(m)) = next else { return };
                match m {
                    Message::Text(_) | Message::Binary(_) if !sink => {
                        if ws.feed(m).await.is_err() {
                            return;
                        }
                        unflushed = true;
                    }
                    Message::Close(_) => {
                        // tungstenite answers the close; drain until EOF.
                    }
                    _ => {}
                }
            }
        });
    }
}

/// One direction of one connection: messages, bytes, running digest.
struct Tally {
    messages: u64,
    bytes: u64,
    digest: Sha256,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            messages: 0,
            bytes: 0,
            digest: Sha256::new(),
        }
    }

    fn add(&mut self, payload: &[u8]) {
        self.messages += 1;
        self.bytes += payload.len() as u64;
        self.digest.update((payload.len() as u64).to_le_bytes());
        self.digest.update(payload);
    }

    fn json(self) -> serde_json::Value {
        serde_json::json!({
            "messages": self.messages,
            "bytes": self.bytes,
            "sha256": hex(&self.digest.finalize()),
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `N` or `MIN-MAX`.
fn parse_size(s: &str) -> Result<(usize, usize)> {
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse()?, b.trim().parse()?),
        None => {
            let n = s.trim().parse()?;
            (n, n)
        }
    };
    if lo > hi || hi == 0 {
        bail!("--size {s}: need 1 ≤ MIN ≤ MAX");
    }
    Ok((lo, hi))
}

/// The first hosts of `net` (`a.b.c.d/len`), enough for `conns` at
/// `per_source` each.
fn sources(net: &str, conns: usize, per_source: usize) -> Result<Vec<Ipv4Addr>> {
    let (addr, len) = net
        .split_once('/')
        .with_context(|| format!("--sources {net}: want ADDR/LEN"))?;
    let base = u32::from(addr.parse::<Ipv4Addr>()?);
    let len: u32 = len.parse()?;
    if !(8..=30).contains(&len) {
        bail!("--sources {net}: prefix length 8..30");
    }
    let hosts = (1u64 << (32 - len)) - 2;
    let want = conns.div_ceil(per_source.max(1)).max(1) as u64;
    if want > hosts {
        bail!("--sources {net}: {hosts} hosts, {want} needed");
    }
    let net = base & !((1u64 << (32 - len)) as u32).wrapping_sub(1);
    Ok((0..want as u32)
        .map(|i| Ipv4Addr::from(net + 1 + i))
        .collect())
}

/// A small xorshift generator: messages are reproducible per connection
/// and cost almost nothing to make.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn fill(&mut self, buf: &mut [u8], text: bool) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            for (b, r) in chunk.iter_mut().zip(r) {
                *b = if text {
                    // Printable ASCII without '"', '\\' or ',' (tshark's
                    // field separator), so every tool prints it as is.
                    const SET: &[u8] =
                        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .:;-_";
                    SET[r as usize % SET.len()]
                } else {
                    r
                };
            }
        }
    }
}

struct Plan {
    messages: u64,
    until: Option<Instant>,
    size: (usize, usize),
    binary: bool,
    /// Messages per second for this connection; 0: unpaced.
    rate: f64,
    echo: bool,
    batch: usize,
}

/// One connection's result.
struct ConnLog {
    client: SocketAddr,
    server: SocketAddr,
    sent: Tally,
    received: Tally,
    error: Option<String>,
}

async fn client(a: ClientArgs) -> Result<()> {
    let size = parse_size(&a.size)?;
    let srcs = match &a.sources {
        Some(n) => sources(n, a.conns, a.per_source)?,
        None => Vec::new(),
    };
    let many = a.conns >= 1000;
    let gate = Arc::new(Semaphore::new(a.open_parallel.max(1)));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // Open every connection first.
    let mut opening = Vec::with_capacity(a.conns);
    for i in 0..a.conns {
        let src = srcs.get(i % srcs.len().max(1)).copied();
        let gate = gate.clone();
        let server = a.connect;
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            open(server, src, many).await
        }));
    }
    let mut open_conns = Vec::with_capacity(a.conns);
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    for o in opening {
        match o.await? {
            Ok(c) => open_conns.push(c),
            Err(e) => {
                failed.fetch_add(1, Ordering::Relaxed);
                *errors.entry(format!("{e:#}")).or_default() += 1;
            }
        }
    }
    let opened_in = started.elapsed();
    if let Some(m) = &a.idle_marker {
        std::fs::write(m, format!("{}\n", open_conns.len()))?;
    }
    if let Some(go) = &a.go {
        while !go.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let n = open_conns.len().max(1) as f64;
    let send_start = Instant::now();
    let until = a
        .duration
        .map(|d| send_start + Duration::from_secs_f64(d.max(0.0)));
    let mut running = Vec::with_capacity(open_conns.len());
    for (i, (ws, client_addr, server_addr)) in open_conns.into_iter().enumerate() {
        let plan = Plan {
            messages: a.messages,
            until,
            size,
            binary: a.binary,
            rate: a.rate / n,
            echo: !a.one_way,
            batch: a.batch.max(1),
        };
        running.push(tokio::spawn(talk(
            ws,
            client_addr,
            server_addr,
            plan,
            0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        )));
    }
    let mut logs = Vec::with_capacity(running.len());
    for r in running {
        logs.push(r.await?);
    }
    let send_elapsed = send_start.elapsed();
    if let Some(m) = &a.sent_marker {
        std::fs::write(m, "sent\n")?;
    }
    if a.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    }
    // Close every connection (their tasks hold the streams: dropping the
    // logs' owners closes them; a clean close is sent by `talk`).
    let (mut sent, mut sent_bytes, mut received, mut received_bytes) = (0, 0, 0, 0);
    let mut conns = Vec::with_capacity(logs.len());
    let mut conn_errors = 0u64;
    for l in logs {
        sent += l.sent.messages;
        sent_bytes += l.sent.bytes;
        received += l.received.messages;
        received_bytes += l.received.bytes;
        if let Some(e) = &l.error {
            conn_errors += 1;
            *errors.entry(e.clone()).or_default() += 1;
        }
        conns.push(serde_json::json!({
            "client": l.client.to_string(),
            "server": l.server.to_string(),
            "sent": l.sent.json(),
            "received": l.received.json(),
        }));
    }
    let log = serde_json::json!({
        "opened": conns.len(),
        "failed": failed.load(Ordering::Relaxed),
        "errors": conn_errors,
        "error_kinds": errors,
        "sent": sent,
        "sent_bytes": sent_bytes,
        "received": received,
        "received_bytes": received_bytes,
        "open_s": opened_in.as_secs_f64(),
        "send_s": send_elapsed.as_secs_f64(),
        "connections": if a.no_connections { Vec::new() } else { conns },
    });
    write_log(&a.log, &log)?;
    eprintln!(
        "wsload: {} connections ({} failed), sent {sent} messages ({sent_bytes} B), received {received} in {:.2} s ({:.0} msg/s sent)",
        log["opened"],
        log["failed"],
        send_elapsed.as_secs_f64(),
        sent as f64 / send_elapsed.as_secs_f64().max(1e-9)
    );
    if conn_errors > 0 {
        bail!("{conn_errors} connections failed while talking: {errors:?}");
    }
    Ok(())
}

fn write_log(path: &Path, log: &serde_json::Value) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(log)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(
    server: SocketAddr,
    src: Option<Ipv4Addr>,
    many: bool,
) -> Result<(Ws, SocketAddr, SocketAddr)> {
    let sock = match server {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .with_context(|| format!("binding {ip}"))?;
    }
    let stream = sock
        .connect(server)
        .await
        .with_context(|| format!("connecting to {server}"))?;
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let url = format!("ws://{server}/");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config(many)))
        .await
        .context("WebSocket handshake")?;
    Ok((ws, local, server))
}

/// Sends the plan's messages on one connection while reading the echoes;
/// then closes cleanly.
async fn talk(ws: Ws, client: SocketAddr, server: SocketAddr, plan: Plan, seed: u64) -> ConnLog {
    let (mut tx, mut rx) = ws.split();
    let echo = plan.echo;
    let sent_count = Arc::new(AtomicU64::new(0));
    let done_sending = Arc::new(tokio::sync::Notify::new());
    let reader = {
        let sent_count = sent_count.clone();
        let done_sending = done_sending.clone();
        tokio::spawn(async move {
            let mut t = Tally::new();
            let mut sender_done = false;
            loop {
                if echo && sender_done && t.messages >= sent_count.load(Ordering::Acquire) {
                    return (t, None::<String>);
                }
                if !echo && sender_done {
                    return (t, None);
                }
                tokio::select! {
                    m = rx.next() => match m {
                        Some(Ok(Message::Text(s))) => t.add(s.as_bytes()),
                        Some(Ok(Message::Binary(b))) => t.add(&b),
                        Some(Ok(Message::Close(_))) | None => {
                            let e = (echo && t.messages < sent_count.load(Ordering::Acquire))
                                .then(|| "closed before every echo came back".to_string());
                            return (t, e);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return (t, Some(format!("reading: {e}"))),
                    },
                    _ = done_sending.notified(), if !sender_done => sender_done = true,
                }
            }
        })
    };
    let mut rng = Rng(seed | 1);
    let mut sent = Tally::new();
    let mut error = None;
    let start = Instant::now();
    let mut buf = vec![0u8; plan.size.1];
    loop {
        if plan
            .until
            .map_or(sent.messages >= plan.messages, |u| Instant::now() >= u)
        {
            break;
        }
        if plan.rate > 0.0 {
            // Pacing: send what is due, sleep until the next one is.
            let due = (start.elapsed().as_secs_f64() * plan.rate) as u64 + 1;
            if sent.messages >= due {
                let next = Duration::from_secs_f64((sent.messages as f64) / plan.rate);
                if plan.batch > 1 && tx.flush().await.is_err() {
                    error = Some("sending: flush failed".into());
                    break;
                }
                tokio::time::sleep_until((start + next).into()).await;
                continue;
            }
        }
        let (lo, hi) = plan.size;
        let len = lo + (rng.next() as usize % (hi - lo + 1));
        rng.fill(&mut buf[..len], !plan.binary);
        let msg = if plan.binary {
            Message::Binary(buf[..len].to_vec().into())
        } else {
            // The text alphabet is ASCII.
            Message::Text(String::from_utf8(buf[..len].to_vec()).unwrap().into())
        };
        let batch_full = (sent.messages + 1).is_multiple_of(plan.batch as u64);
        let r = if batch_full {
            tx.send(msg).await
        } else {
            tx.feed(msg).await
        };
        if let Err(e) = r {
            error = Some(format!("sending: {e}"));
            break;
        }
        sent.add(&buf[..len]);
        sent_count.store(sent.messages, Ordering::Release);
    }
    if error.is_none() {
        if let Err(e) = tx.flush().await {
            error = Some(format!("sending: {e}"));
        }
    }
    done_sending.notify_one();
    let (received, read_error) = match tokio::time::timeout(Duration::from_secs(120), reader).await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (Tally::new(), Some(format!("reader: {e}"))),
        Err(_) => (
            Tally::new(),
            Some("echoes still missing after 120 s".into()),
        ),
    };
    let _ = tx.send(Message::Close(None)).await;
    let _ = tx.close().await;
    ConnLog {
        client,
        server,
        sent,
        received,
        error: error.or(read_error),
    }
}
