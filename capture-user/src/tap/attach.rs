//! Attaching: TC ingress + egress through TCX links, or XDP through an XDP
//! link, and the interface lookups around it. The links are owned values
//! (`take_link`): dropping them detaches, and since they are bpf_links owned
//! by this process the kernel detaches them too when it dies, even after
//! `kill -9`.

use aya::programs::{
    tc::SchedClassifierLink, xdp::XdpLink, ProgramError, SchedClassifier, TcAttachType, Xdp,
    XdpMode,
};
use aya::Ebpf;

use super::load::program;
use super::TapError;

/// Which program to attach, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// TC classifier on ingress and egress (egress only on loopback).
    Tc,
    /// XDP on ingress.
    Xdp(XdpAttachMode),
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

/// Attaches as `how` says to `iface` (index `index`); returns the links and
/// a description for the "listening on" line.
pub(super) fn attach(
    ebpf: &mut Ebpf,
    iface: &str,
    index: u32,
    how: Attach,
) -> Result<(Links, &'static str), TapError> {
    match how {
        Attach::Tc => attach_tc(ebpf, iface, is_loopback(iface, index)),
        Attach::Xdp(mode) => attach_xdp(ebpf, iface, mode),
    }
}

/// On loopback every packet passes egress and then ingress: only egress is
/// attached there, so each segment is seen once (as tcpdump shows it).
fn attach_tc(
    ebpf: &mut Ebpf,
    iface: &str,
    loopback: bool,
) -> Result<(Links, &'static str), TapError> {
    let mut dirs = vec![(capture_common::PROG_TC_EGRESS, TcAttachType::Egress)];
    if !loopback {
        dirs.insert(0, (capture_common::PROG_TC_INGRESS, TcAttachType::Ingress));
    }
    let mut links = Vec::new();
    for (name, at) in dirs {
        let prog: &mut SchedClassifier = program(ebpf, name)?;
        prog.load().map_err(|e| TapError::Program {
            prog: name,
            source: e,
        })?;
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
        let id = prog.attach(iface, at).map_err(attach_err)?;
        links.push(prog.take_link(id).map_err(attach_err)?);
    }
    let description = if loopback {
        "TC egress only, loopback"
    } else {
        "TC ingress+egress"
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
    prog.load().map_err(|e| TapError::Program {
        prog: name,
        source: e,
    })?;
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

fn is_loopback(name: &str, index: u32) -> bool {
    const IFF_LOOPBACK: u64 = 0x8;
    match std::fs::read_to_string(format!("/sys/class/net/{name}/flags")) {
        Ok(s) => u64::from_str_radix(s.trim().trim_start_matches("0x"), 16)
            .is_ok_and(|f| f & IFF_LOOPBACK != 0),
        Err(_) => index == 1 || name == "lo",
    }
}
