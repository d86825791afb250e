//! Attaching: TC ingress + egress through TCX links (netlink filters on
//! kernels without TCX, or with `--attach tc-netlink`), or XDP through an
//! XDP link, and the interface lookups around it. The links are owned values
//! (`take_link`): dropping them detaches. TCX and XDP links are bpf_links
//! owned by this process, so the kernel detaches them too when it dies, even
//! after `kill -9`; netlink filters stay then, and [`super::stale`] removes
//! them at the next start.

use aya::programs::{
    tc::{qdisc_add_clsact, NlOptions, SchedClassifierLink, TcAttachOptions},
    xdp::XdpLink,
    LinkOrder, ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
};
use aya::Ebpf;

use super::load::program;
use super::TapError;

/// Which program to attach, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// TC classifier on ingress and egress (egress only on loopback).
    Tc(TcPath),
    /// XDP on ingress.
    Xdp(XdpAttachMode),
}

/// Through which kernel interface the TC programs are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcPath {
    /// TCX links where the kernel has them (6.6), netlink filters before.
    Auto,
    /// Netlink filters on a clsact qdisc, as before TCX (`--attach
    /// tc-netlink`: the older kernels' path, tested on a new one).
    Netlink,
}

/// How an XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// Generic XDP (after the skb is built): works on every interface.
    Skb,
    /// Native driver XDP: fails on drivers without it.
    Driver,
}

/// The attached programs. Dropping this detaches them.
pub(super) enum Links {
    /// Keeps the links alive; never read.
    Tc(#[allow(dead_code)] Vec<SchedClassifierLink>),
    Xdp(#[allow(dead_code)] XdpLink),
}

/// Loads the programs `how` attaches, once: each interface then gets links
/// of its own to the same programs.
pub(super) fn load_programs(ebpf: &mut Ebpf, how: Attach) -> Result<(), TapError> {
    let names: &[&'static str] = match how {
        Attach::Tc(_) => &[
            capture_common::PROG_TC_INGRESS,
            capture_common::PROG_TC_EGRESS,
        ],
        Attach::Xdp(_) => &[capture_common::PROG_XDP],
    };
    let noop = [capture_common::PROG_TC_NOOP];
    let extra: &[&'static str] = if matches!(how, Attach::Tc(_)) && bench_noop() {
        &noop
    } else {
        &[]
    };
    for &name in names.iter().chain(extra) {
        let loaded = match how {
            Attach::Tc(_) => program::<SchedClassifier>(ebpf, name)?.load(),
            Attach::Xdp(_) => program::<Xdp>(ebpf, name)?.load(),
        };
        loaded.map_err(|e| TapError::Program {
            prog: name,
            source: e,
        })?;
    }
    Ok(())
}

/// Attaches the programs [`load_programs`] loaded as `how` says to `iface`
/// (index `index`); returns the links and a description for the
/// "listening on" line.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    iface: &str,
    index: u32,
    how: Attach,
) -> Result<(Links, &'static str), TapError> {
    match how {
        Attach::Tc(path) => {
            let netlink =
                path == TcPath::Netlink || !super::stale::kernel_at_least(super::stale::TCX_KERNEL);
            attach_tc(ebpf, iface, is_loopback(iface, index), netlink)
        }
        Attach::Xdp(mode) => attach_xdp(ebpf, iface, mode),
    }
}

/// `WSTAP_BENCH_NOOP` is set: attach the no-op program too
/// ([`capture_common::PROG_TC_NOOP`]).
fn bench_noop() -> bool {
    std::env::var_os(capture_common::ENV_BENCH_NOOP).is_some()
}

/// On loopback every packet passes egress and then ingress: only egress is
/// attached there, so each segment is seen once (as tcpdump shows it).
fn attach_tc(
    ebpf: &mut Ebpf,
    iface: &str,
    loopback: bool,
    netlink: bool,
) -> Result<(Links, &'static str), TapError> {
    if netlink {
        // The filters hang off a clsact qdisc; one already there is fine.
        // It is left in place at the end (empty): other tools may use it.
        if let Err(e) = qdisc_add_clsact(iface) {
            let exists = matches!(&e, aya::programs::tc::TcError::NetlinkError(n)
                if n.raw_os_error() == Some(libc::EEXIST));
            if !exists {
                return Err(TapError::Attach {
                    what: "the clsact qdisc (for netlink TC filters)",
                    iface: iface.to_string(),
                    source: e.into(),
                });
            }
        }
    }
    let mut dirs = vec![(capture_common::PROG_TC_EGRESS, TcAttachType::Egress)];
    if !loopback {
        dirs.insert(0, (capture_common::PROG_TC_INGRESS, TcAttachType::Ingress));
    }
    if !netlink && bench_noop() {
        // After wstap's own on each hook, for the kernel benchmark.
        let noop = dirs
            .iter()
            .map(|&(_, at)| (capture_common::PROG_TC_NOOP, at))
            .collect::<Vec<_>>();
        dirs.extend(noop);
    }
    let mut links = Vec::new();
    for (name, at) in dirs {
        let prog: &mut SchedClassifier = program(ebpf, name)?;
        let what = if at == TcAttachType::Ingress {
            "the TC ingress program"
        } else {
            "the TC egress program"
        };
        let attach_err = |source| TapError::Attach {
            what,
            iface: iface.to_string(),
            source,
        };
        let options = if netlink {
            TcAttachOptions::Netlink(NlOptions::default())
        } else {
            TcAttachOptions::TcxOrder(LinkOrder::default())
        };
        let id = prog
            .attach_with_options(iface, at, options)
            .map_err(attach_err)?;
        links.push(prog.take_link(id).map_err(attach_err)?);
    }
    let description = match (loopback, netlink) {
        (true, false) => "TC egress only, loopback",
        (false, false) => "TC ingress+egress",
        (true, true) => "TC egress only, loopback, netlink filter",
        (false, true) => "TC ingress+egress, netlink filters",
    };
    Ok((Links::Tc(links), description))
}

fn attach_xdp(
    ebpf: &mut Ebpf,
    iface: &str,
    mode: XdpAttachMode,
) -> Result<(Links, &'static str), TapError> {
    let name = capture_common::PROG_XDP;
    let prog: &mut Xdp = program(ebpf, name)?;
    let flags = match mode {
        XdpAttachMode::Skb => XdpMode::Skb,
        XdpAttachMode::Driver => XdpMode::Driver,
    };
    let attach_err = |e: ProgramError| {
        let unsupported = matches!(&e, ProgramError::SyscallError(s)
            if matches!(s.io_error.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)))
            || matches!(&e, ProgramError::XdpError(_));
        if mode == XdpAttachMode::Driver && unsupported {
            TapError::XdpModeUnsupported {
                iface: iface.to_string(),
                source: e,
            }
        } else {
            TapError::Attach {
                what: "the XDP program",
                iface: iface.to_string(),
                source: e,
            }
        }
    };
    let id = prog.attach(iface, flags).map_err(attach_err)?;
    let link = prog.take_link(id).map_err(attach_err)?;
    let description = match mode {
        XdpAttachMode::Driver => "XDP driver mode, ingress",
        XdpAttachMode::Skb => "XDP skb mode, ingress",
    };
    Ok((Links::Xdp(link), description))
}

/// The interface index of `name`, or [`TapError::NoInterface`].
pub fn if_index(name: &str) -> Result<u32, TapError> {
    let c = std::ffi::CString::new(name).map_err(|_| TapError::NoInterface(name.to_string()))?;
    // SAFETY: valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(TapError::NoInterface(name.to_string()))
    } else {
        Ok(idx)
    }
}

/// The name of interface `index` now, or `None` when there is none (it was
/// deleted, or never existed in this network namespace).
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buffer of IF_NAMESIZE bytes as required.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    Some(
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

const IFF_UP: u64 = 0x1;
const IFF_LOOPBACK: u64 = 0x8;

/// The interface flags (`IFF_*`) of `name`, from sysfs.
fn if_flags(name: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).ok()?;
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

fn is_loopback(name: &str, index: u32) -> bool {
    match if_flags(name) {
        Some(f) => f & IFF_LOOPBACK != 0,
        None => index == 1 || name == "lo",
    }
}

/// An interface of this network namespace, as `-D` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    pub up: bool,
    pub running: bool,
    pub loopback: bool,
}

impl std::fmt::Display for Interface {
    /// tcpdump -D's shape: `1.lo [Up, Running, Loopback]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut flags = vec![if self.up { "Up" } else { "Down" }];
        if self.running {
            flags.push("Running");
        }
        if self.loopback {
            flags.push("Loopback");
        }
        write!(f, "{}.{} [{}]", self.index, self.name, flags.join(", "))
    }
}

/// sysfs `flags` hold the configured flags only (never IFF_RUNNING);
/// whether the link is running (`ip link`'s LOWER_UP) is its carrier.
fn has_carrier(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/carrier")).is_ok_and(|s| s.trim() == "1")
}

/// The interfaces of this network namespace, by index.
pub fn interfaces() -> std::io::Result<Vec<Interface>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net")?.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(index) = if_index(&name) else {
            continue; // gone meanwhile
        };
        let flags = if_flags(&name).unwrap_or(0);
        all.push(Interface {
            index,
            up: flags & IFF_UP != 0,
            running: has_carrier(&name),
            loopback: flags & IFF_LOOPBACK != 0,
            name,
        });
    }
    all.sort_by_key(|i| i.index);
    Ok(all)
}
