//! Command-line interface of the `wstap` binary. Lives in the library so that
//! both capture modes (`app::live`, `app::offline`) and tests share one
//! definition.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Tap TCP traffic with eBPF (or read a capture file) and print the WebSocket
/// conversations in it.
#[derive(Debug, Clone, Parser)]
#[command(name = "wstap", version, about, long_about = None)]
pub struct Cli {
    /// Remove the TC filters a wstap killed with -9 left behind (netlink
    /// filters only; TCX links go with their process), on every interface
    /// of this network namespace, and exit.
    #[arg(long, exclusive = true)]
    pub cleanup: bool,

    /// List the interfaces live capture can use, and exit (like tcpdump -D).
    #[arg(short = 'D', long = "list-interfaces", exclusive = true)]
    pub list_interfaces: bool,

    /// Print the man page (roff) on stdout and exit (`cargo xtask install`
    /// writes it to share/man/man1/wstap.1).
    #[arg(long, hide = true, exclusive = true)]
    pub generate_man: bool,

    /// Print the completion script for SHELL on stdout and exit.
    #[arg(long, hide = true, exclusive = true, value_name = "SHELL")]
    pub generate_completions: Option<clap_complete::Shell>,

    /// Decrypt TLS with this key log (NSS format, what SSLKEYLOGFILE,
    /// Python's keylog_filename or Node's --tls-keylog write; repeatable):
    /// TLS 1.3 and TLS 1.2 with AES-GCM or ChaCha20-Poly1305. Live, the file
    /// is followed as the application appends to it.
    #[arg(long = "keylog", value_name = "FILE")]
    pub keylog: Vec<PathBuf>,

    /// Capture live on this interface (needs root, or CAP_BPF + CAP_NET_ADMIN).
    /// Repeat for more; `any`: every interface that is up, and those that
    /// come up during the capture.
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        conflicts_with = "read"
    )]
    pub interface: Vec<String>,

    /// Read a pcap or pcapng file instead of capturing live (`-`: standard
    /// input, e.g. `tcpdump -w - | wstap -r -`); gzip'd files
    /// (`capture.pcap.gz`) are read as they are.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Option<PathBuf>,

    /// Only traffic to or from this host: an IPv4/IPv6 address or CIDR prefix.
    /// Repeat for more hosts; none means any host.
    #[arg(long = "host", value_name = "ADDR[/PREFIX]")]
    pub hosts: Vec<String>,

    /// Only traffic to or from this TCP port. Repeat for more; none means any.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// How the kernel program is attached (live capture).
    #[arg(long, value_enum, default_value_t = AttachKind::Tc)]
    pub attach: AttachKind,

    /// XDP attach mode, with `--attach xdp`.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Skb)]
    pub xdp_mode: XdpModeArg,

    /// Size of the kernel ring buffer in bytes, rounded up to a power of two
    /// multiple of the page size; at most 2147483648 (2 GiB).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, value_parser = ring_size)]
    pub ring_size: u32,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Print one line per captured TCP segment instead of decoding.
    #[arg(long)]
    pub segments: bool,

    /// With --segments (live capture): end each line with the segment's
    /// payload in hex, like `tcpdump -x`.
    #[arg(long)]
    pub hex: bool,

    /// Stop after this many WebSocket messages.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,

    /// Shorten printed payloads to this many bytes (the message is still
    /// decoded whole, up to --max-message).
    #[arg(long, value_name = "BYTES")]
    pub payload_max: Option<usize>,

    /// Largest message kept, in bytes; longer ones are reported truncated.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_message: usize,

    /// Largest inflated (permessage-deflate) message, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_inflated: usize,

    /// Bytes the decoder may hold in all (out-of-order data, partial
    /// messages, inflate history, hunt and handshake buffers); past it the
    /// connections holding most are evicted (`flow_evicted "memory budget"`).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    pub max_memory: usize,

    /// Drop TCP segments whose checksum does not verify, as the receiving
    /// kernel does: they are neither decoded nor printed by --segments, and
    /// the hole one leaves is reported as a gap. Off by default because
    /// captures on loopback or of a host's own outgoing traffic carry
    /// partial checksums (offload) that never verify. -w still writes them,
    /// their checksum still wrong. Reading files only (refused live: the
    /// tap runs before TCP checks checksums and cannot know its verdict).
    #[arg(long)]
    pub verify_checksums: bool,

    /// Write every captured packet to this pcapng file too (`-`: the pcapng
    /// stream on stdout, e.g. `| wireshark -k -i -`; the decoded output then
    /// goes to --output FILE, or nowhere).
    #[arg(short = 'w', long = "write", value_name = "FILE.pcapng")]
    pub write: Option<PathBuf>,

    /// With -w: start a new file once the current one is over MB million
    /// bytes (tcpdump -C). Files: FILE, FILE1, FILE2…; with -W N, a ring
    /// of N files FILE0…FILE{N-1}.
    #[arg(short = 'C', long = "file-size", value_name = "MB", requires = "write")]
    pub file_size: Option<u64>,

    /// With -w: start a new file every SECONDS (tcpdump -G); FILE is a
    /// strftime(3) format, e.g. `-w 'cap-%Y%m%d-%H%M%S.pcapng'`. Time is
    /// the packets' own (with -r, when they were captured).
    #[arg(
        short = 'G',
        long = "rotate-seconds",
        value_name = "SECONDS",
        requires = "write"
    )]
    pub rotate_seconds: Option<u64>,

    /// With -C: keep N files, overwriting the oldest (a ring); with -G
    /// alone: end the capture after N files (tcpdump -W).
    #[arg(short = 'W', long = "file-count", value_name = "N", requires = "write")]
    pub file_count: Option<u32>,

    /// Live capture: do not attribute connections to processes (no
    /// `src_pid`/`src_comm`/`dst_pid`/`dst_comm`, no ownership hooks).
    #[arg(long)]
    pub no_process: bool,

    /// Live capture: hook OpenSSL (libssl.so.* found in the linker's cache
    /// and in running processes) and decode wss:// plaintext like ws://;
    /// events from it carry `"via": "tls"`. Implied by --pid, --comm and
    /// -- COMMAND.
    #[arg(long, conflicts_with = "no_process")]
    pub tls: bool,

    /// Also hook this OpenSSL build (a libssl of its own, or a binary
    /// linked statically with its symbols); implies --tls. Repeatable.
    #[arg(long = "tls-lib", value_name = "PATH", conflicts_with = "no_process")]
    pub tls_libs: Vec<PathBuf>,

    /// Live capture: only connections of this process (its thread group id,
    /// the pid `ps` shows). Repeat for more; filtered in the kernel.
    #[arg(long = "pid", value_name = "PID", conflicts_with = "no_process")]
    pub pids: Vec<u32>,

    /// Live capture: only connections of processes with this name (the
    /// kernel's comm, at most 15 bytes, exact match). Repeat for more.
    #[arg(long = "comm", value_name = "NAME", conflicts_with = "no_process", value_parser = comm)]
    pub comms: Vec<String>,

    /// Write the decoded output (text or JSON) to this file instead of
    /// stdout; with `-- COMMAND`, the command's stdout stays the terminal's.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print a status line on stderr every second.
    #[arg(long)]
    pub stats: bool,

    /// Decoder threads (live capture); connections are sharded among them.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Show kernel-side diagnostics (aya-log) and debug logs. Repeat for more.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// A filter expression, as tcpdump's (pcap-filter(7)): `host`, `net`
    /// (CIDR or `mask`), `port`, `portrange`, `src`/`dst`, `tcp`, `ip`,
    /// `ip6`, `and`/`&&`, `or`/`||`, `not`/`!`, parentheses; for example
    /// `port 8080 and not host 10.0.0.5`. Evaluated in the kernel live and
    /// the same way for -r; combines with --host/--port (all must hold).
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,

    /// `-- COMMAND [ARGS...]`: run COMMAND (as the user who ran sudo, when
    /// under sudo), capture only its traffic and its children's, end when
    /// it ends and exit with its exit code.
    #[arg(last = true, value_name = "COMMAND", conflicts_with_all = ["read", "no_process"])]
    pub command: Vec<String>,
}

/// The kernel keeps 15 bytes of a process name (TASK_COMM_LEN 16 with the
/// NUL): a longer `--comm` would never match, so it is refused.
fn comm(arg: &str) -> Result<String, String> {
    if arg.is_empty() {
        return Err("empty process name".into());
    }
    if arg.len() > 15 {
        let mut cut = 15;
        while !arg.is_char_boundary(cut) {
            cut -= 1;
        }
        return Err(format!(
            "the kernel keeps only the first 15 bytes of a process name: use --comm '{}'",
            &arg[..cut]
        ));
    }
    Ok(arg.to_string())
}

/// Largest `--ring-size`: the kernel takes a power of two in 32 bits, so a
/// request above 2 GiB could only be rounded down, against what the help
/// promises; it is refused instead.
pub const MAX_RING_SIZE: u32 = 1 << 31;

fn ring_size(s: &str) -> Result<u32, String> {
    let n: u64 = s.parse().map_err(|e| format!("{e}"))?;
    if n > u64::from(MAX_RING_SIZE) {
        return Err(format!(
            "at most {MAX_RING_SIZE} (2 GiB): the ring size is rounded up to a power of \
             two, and 2 GiB is the largest the kernel takes"
        ));
    }
    // At most 2^31, so it fits, and rounding up stays within 2^31.
    Ok(n as u32)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachKind {
    /// TC classifier on ingress and egress (TCX links; netlink filters on
    /// kernels before 6.6).
    Tc,
    /// TC classifier through netlink filters on a clsact qdisc, as on
    /// kernels before 6.6, even where TCX exists.
    TcNetlink,
    /// XDP on ingress only.
    Xdp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// Generic XDP, works on every interface.
    Skb,
    /// Native driver XDP; fails if the driver lacks it.
    Driver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One human-readable line per event.
    Text,
    /// JSON Lines, one object per event (fields documented in the README).
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(arg: &str) -> Result<u32, String> {
        Cli::try_parse_from(["wstap", "-r", "f", "--ring-size", arg])
            .map(|c| c.ring_size)
            .map_err(|e| e.to_string())
    }

    /// Issue 7: 4294967295 was silently rounded down to 2 GiB although the
    /// help says up. Up to 2 GiB is taken as given (the tap rounds up);
    /// above is refused, saying the limit.
    #[test]
    fn ring_size_above_2_gib_is_refused() {
        assert_eq!(ring("2147483648"), Ok(1 << 31));
        assert_eq!(ring("2147483647"), Ok((1 << 31) - 1));
        assert_eq!(ring("4096"), Ok(4096));
        for big in ["2147483649", "4294967295", "4294967296", "99999999999"] {
            let e = ring(big).unwrap_err();
            assert!(e.contains("at most 2147483648 (2 GiB)"), "{big}: {e}");
        }
        assert!(ring("-1").is_err());
        let c = Cli::try_parse_from(["wstap", "-r", "f"]).unwrap();
        assert_eq!(c.ring_size, 64 << 20, "default");
    }

    #[test]
    fn process_filters_parse_and_a_long_comm_is_refused() {
        let c = Cli::try_parse_from([
            "wstap", "-i", "lo", "--pid", "12", "--pid", "34", "--comm", "python3", "--",
            "python3", "x.py", "--flag",
        ])
        .unwrap();
        assert_eq!(c.pids, [12, 34]);
        assert_eq!(c.comms, ["python3"]);
        assert_eq!(c.command, ["python3", "x.py", "--flag"]);
        let c = Cli::try_parse_from([
            "wstap", "-i", "lo", "port", "80", "and", "host", "::1", "--", "curl", "-s",
        ])
        .unwrap();
        assert_eq!(c.expression, ["port", "80", "and", "host", "::1"]);
        assert_eq!(c.command, ["curl", "-s"]);
        let e = Cli::try_parse_from(["wstap", "-i", "lo", "--comm", "a-very-long-name-indeed"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("use --comm 'a-very-long-nam'"), "{e}");
        assert!(Cli::try_parse_from(["wstap", "-i", "lo", "--no-process", "--pid", "1"]).is_err());
    }
}
