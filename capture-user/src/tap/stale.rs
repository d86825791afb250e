//! Filters a killed wstap left behind, and the kernel version check.
//!
//! TCX attachments are bpf_links owned by this process: the kernel removes
//! them when it dies, however it dies. Netlink TC filters (the path where
//! TCX is missing, kernels before 6.6, or `--attach tc-netlink`) belong to
//! the interface instead: Ctrl-C and SIGTERM remove them (the links' drop),
//! but after `kill -9` they stay, running a program whose ring nobody reads.
//! Every TC start therefore looks for filters named like wstap's programs
//! on the interfaces it attaches to, and removes them, saying so; `wstap
//! --cleanup` does it for every interface on demand.
//!
//! A filter of another wstap still running in this network namespace is not
//! stale: with one running (its filters cannot be told apart by name), no
//! filter is removed, and that is said too.

use aya::programs::tc::{qdisc_detach_program, TcError};
use aya::programs::TcAttachType;
use aya::util::KernelVersion;

use super::TapError;

/// The netlink filter names wstap uses: its TC programs' names, distinctive
/// so that another tool's filters are never taken for wstap's.
const FILTERS: [(&str, TcAttachType, &str); 2] = [
    (
        capture_common::PROG_TC_INGRESS,
        TcAttachType::Ingress,
        "ingress",
    ),
    (
        capture_common::PROG_TC_EGRESS,
        TcAttachType::Egress,
        "egress",
    ),
];

/// Another wstap process in this network namespace (not this one), by pid.
pub fn another_wstap() -> Option<u32> {
    let own_pid = std::process::id();
    let own_net = std::fs::read_link("/proc/self/ns/net").ok()?;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        if pid == own_pid {
            return None;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if comm.trim_end() != "wstap" {
            return None;
        }
        // A zombie (or a process gone meanwhile) has no namespace link.
        let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
        (net == own_net).then_some(pid)
    })
}

/// Removes wstap's netlink filters from `iface`; returns one line per
/// direction where some were found, or a line saying why none was looked
/// for. Empty when there was nothing to remove. `other` is
/// [`another_wstap`], looked up once by the caller for all its interfaces.
pub fn remove_stale(iface: &str, other: Option<u32>) -> Result<Vec<String>, TapError> {
    if let Some(pid) = other {
        return Ok(vec![format!(
            "another wstap (pid {pid}) runs in this network namespace: TC filters named {} or {} \
             on {iface} may be its own and are left alone",
            FILTERS[0].0, FILTERS[1].0
        )]);
    }
    let mut said = Vec::new();
    for (name, at, dir) in FILTERS {
        match qdisc_detach_program(iface, at, name) {
            Ok(()) => said.push(format!(
                "removed a stale wstap filter ({name}, {iface} {dir}) left by a wstap that did \
                 not exit cleanly"
            )),
            Err(e) if nothing_there(&e) => {}
            Err(e) => {
                return Err(TapError::Cleanup {
                    iface: iface.to_string(),
                    source: e,
                })
            }
        }
    }
    Ok(said)
}

/// No filter of that name, or no clsact qdisc (so no filter at all).
fn nothing_there(e: &TcError) -> bool {
    match e {
        TcError::IoError(io) => {
            io.kind() == std::io::ErrorKind::NotFound
                || matches!(io.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINVAL))
        }
        TcError::NetlinkError(nl) => {
            matches!(nl.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINVAL))
        }
        _ => false,
    }
}

/// `wstap --cleanup`: removes wstap's netlink filters from every interface
/// of this network namespace; returns what it did, one line each.
pub fn cleanup_all() -> Result<Vec<String>, TapError> {
    super::load::check_privileges()?;
    if let Some(pid) = another_wstap() {
        return Err(TapError::OtherRunning(pid));
    }
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut said = Vec::new();
    for iface in names {
        said.extend(remove_stale(&iface, None)?);
    }
    if said.is_empty() {
        said.push("no stale wstap filters found".into());
    }
    Ok(said)
}

/// The oldest kernel wstap runs on: the BPF ring buffer came in 5.8.
pub const MIN_KERNEL: (u8, u8) = (5, 8);
/// XDP with multi-buffer frames (`xdp.frags`, jumbo and GRO packets) came
/// in 5.18.
pub const MIN_KERNEL_XDP: (u8, u8) = (5, 18);
/// TCX links; before it, TC filters are attached through netlink.
pub const TCX_KERNEL: (u8, u8) = (6, 6);

/// True when the running kernel is at least `(major, minor)`; true too when
/// its version cannot be read (the kernel then has the last word).
pub fn kernel_at_least((major, minor): (u8, u8)) -> bool {
    KernelVersion::current().map_or(true, |v| v >= KernelVersion::new(major, minor, 0))
}

/// [`TapError::KernelTooOld`] when the kernel is older than `need`.
pub fn require_kernel(need: (u8, u8), what: &'static str) -> Result<(), TapError> {
    if kernel_at_least(need) {
        return Ok(());
    }
    let have = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    Err(TapError::KernelTooOld {
        have,
        need: format!("{}.{}", need.0, need.1),
        what,
    })
}
