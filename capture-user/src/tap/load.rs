//! Loading: the eBPF object built by `build.rs`, the privilege check that
//! turns a kernel EPERM into advice, the loader with the read-only globals
//! set, the typed program lookup and the kernel log forwarder.

use aya::programs::ProgramError;
use aya::{Ebpf, EbpfLoader};
use tokio::io::unix::AsyncFd;

use super::ring::wakeup_bytes;
use super::{TapConfig, TapError};

/// The eBPF object built by `build.rs` (empty with `AYA_BUILD_SKIP=1`).
pub(super) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/capture-ebpf"));

/// Checks the effective capabilities for loading and attaching: CAP_BPF (or
/// CAP_SYS_ADMIN) and CAP_NET_ADMIN.
pub fn check_privileges() -> Result<(), TapError> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return Ok(()); // cannot tell: let the kernel decide
    };
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TapError::NotPermitted {
            missing: missing.join(" and "),
        })
    }
}

/// Loads the object with the ring sized and the filter and wakeup globals
/// set (read-only globals let the verifier prune the unused filter branch).
pub(super) fn load(cfg: &TapConfig, ring_size: u32) -> Result<Ebpf, TapError> {
    if EBPF_OBJECT.is_empty() {
        return Err(TapError::NotBuilt);
    }
    check_privileges()?;
    let hosts_on: u8 = (!cfg.filter.hosts.is_empty()).into();
    let ports_on: u8 = (!cfg.filter.ports.is_empty()).into();
    let expr_on: u8 = cfg.filter.expr.is_some().into();
    let owners_on: u8 = cfg.selection.is_some().into();
    let tls_on: u8 = cfg.tls.is_some().into();
    let log_level: u8 = match cfg.verbose {
        0 => 0,
        1 => aya_log::Level::Info as u8,
        _ => aya_log::Level::Trace as u8,
    };
    EbpfLoader::new()
        .map_max_entries(capture_common::MAP_RING, ring_size)
        .override_global(capture_common::GLOBAL_FILTER_HOSTS, &hosts_on, true)
        .override_global(capture_common::GLOBAL_FILTER_PORTS, &ports_on, true)
        .override_global(capture_common::GLOBAL_FILTER_EXPR, &expr_on, true)
        .override_global(capture_common::GLOBAL_FILTER_OWNERS, &owners_on, true)
        .override_global(capture_common::GLOBAL_TLS_ON, &tls_on, true)
        .override_global(
            capture_common::GLOBAL_WAKEUP_BYTES,
            &wakeup_bytes(ring_size),
            true,
        )
        .override_global(aya_log::LEVEL, &log_level, false)
        .load(EBPF_OBJECT)
        .map_err(|e| match &e {
            aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
                if io_error.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                TapError::NotPermitted {
                    missing: "CAP_BPF".into(),
                }
            }
            _ => TapError::Load(e),
        })
}

/// Program `name` of the object as its concrete type (`SchedClassifier`,
/// `Xdp`), loaded into the kernel, or which program was missing, of the
/// wrong kind or refused.
pub(super) fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, TapError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(TapError::Program {
            prog: name,
            source: ProgramError::NotLoaded,
        })?
        .try_into()
        .map_err(|e| TapError::Program {
            prog: name,
            source: e,
        })
}

/// Forwards aya-log records from the kernel to the `log` crate (env_logger).
pub(super) fn spawn_logger(ebpf: &mut Ebpf) -> Option<tokio::task::JoinHandle<()>> {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("kernel diagnostics unavailable: {e}");
            return None;
        }
    };
    // SAFETY: the logger's ring fd stays open and unchanged while the AsyncFd owns it.
    let mut fd =
        match unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) } {
            Ok(fd) => fd,
            Err(e) => {
                log::warn!("kernel diagnostics unavailable: {e}");
                return None;
            }
        };
    Some(tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }))
}
