//! Attaching the ownership hooks (`capture-ebpf/src/sock.rs`). They are
//! optional: a kernel without one of them (or a tracepoint whose layout
//! differs from the one the program reads) turns attribution off with one
//! warning, and capture goes on. Dropping [`SockLinks`] detaches them; they
//! are perf-event/bpf_link fds of this process, so a killed wstap leaves
//! nothing attached.

use aya::programs::{trace_point::TracePointLink, ProgramError, TracePoint};
use aya::Ebpf;

use super::load::program;

/// The attached hooks; dropping this detaches them.
pub(super) struct SockLinks {
    _links: Vec<TracePointLink>,
}

/// The fields of `sock:inet_sock_set_state` the program reads, at the
/// offsets it reads them (`capture-ebpf/src/sock.rs`).
const STATE_FIELDS: &[(&str, usize)] = &[
    ("skaddr", 8),
    ("oldstate", 16),
    ("newstate", 20),
    ("sport", 24),
    ("dport", 26),
    ("family", 28),
    ("protocol", 30),
    ("saddr", 32),
    ("daddr", 36),
    ("saddr_v6", 40),
    ("daddr_v6", 56),
];

/// The fields of `sock:sock_send_length` and `sock:sock_recv_length`.
const IO_FIELDS: &[(&str, usize)] = &[("sk", 8), ("protocol", 18), ("ret", 20)];

/// The field of `sched:sched_process_fork` `follow_fork` reads.
const FORK_FIELDS: &[(&str, usize)] = &[("child_pid", 20)];

/// Fields a program reads from a tracepoint: name and offset.
type Fields = &'static [(&'static str, usize)];

/// Each hook: program, tracepoint category and name, the fields it reads.
const HOOKS: &[(&str, &str, &str, Fields)] = &[
    (
        capture_common::PROG_SOCK_STATE,
        "sock",
        "inet_sock_set_state",
        STATE_FIELDS,
    ),
    (
        capture_common::PROG_SOCK_SEND,
        "sock",
        "sock_send_length",
        IO_FIELDS,
    ),
    (
        capture_common::PROG_SOCK_IO,
        "sock",
        "sock_recv_length",
        IO_FIELDS,
    ),
];

/// Attached for `-- COMMAND` only: the command's children are followed.
const FORK_HOOK: (&str, &str, &str, Fields) = (
    capture_common::PROG_FOLLOW_FORK,
    "sched",
    "sched_process_fork",
    FORK_FIELDS,
);

/// Checks a tracepoint format file's text against `fields`.
pub(crate) fn check_format(format: &str, fields: &[(&str, usize)]) -> Result<(), String> {
    for &(name, offset) in fields {
        let found = format.lines().find_map(|l| {
            let decl = l.trim().strip_prefix("field:")?;
            let (decl, rest) = decl.split_once(';')?;
            let field = decl.rsplit(' ').next()?.split('[').next()?;
            if field != name {
                return None;
            }
            let off = rest.trim().strip_prefix("offset:")?.split(';').next()?;
            off.parse::<usize>().ok()
        });
        match found {
            Some(o) if o == offset => {}
            Some(o) => return Err(format!("field {name} at offset {o}, expected {offset}")),
            None => return Err(format!("field {name} missing")),
        }
    }
    Ok(())
}

/// `ip netns exec` (and many containers) give the process a fresh sysfs
/// without tracefs, and tracepoints cannot be attached without it. In a
/// mount namespace of its own (so nothing outside changes) wstap mounts
/// tracefs itself; in the host's it only says how.
fn ensure_tracefs() -> Result<(), String> {
    let mounted = |p: &str| std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some());
    if mounted("/sys/kernel/tracing") || mounted("/sys/kernel/debug/tracing") {
        return Ok(());
    }
    let own_ns = std::fs::read_link("/proc/self/ns/mnt").ok();
    let host_ns = std::fs::read_link("/proc/1/ns/mnt").ok();
    if own_ns.is_none() || own_ns == host_ns {
        return Err("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)".into());
    }
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let (src, target, fstype) = (c("tracefs"), c("/sys/kernel/tracing"), c("tracefs"));
    // SAFETY: valid NUL-terminated strings; no data argument.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(format!(
            "tracefs is not mounted in this mount namespace and mounting it failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn read_format(category: &str, event: &str) -> Result<String, String> {
    for base in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let path = format!("{base}/events/{category}/{event}/format");
        if let Ok(s) = std::fs::read_to_string(&path) {
            return Ok(s);
        }
    }
    Err(format!(
        "tracepoint {category}:{event} not found in this kernel"
    ))
}

/// Loads and attaches every hook (and, with `follow`, the fork hook), or
/// says why not (then none is attached).
pub(super) fn attach(ebpf: &mut Ebpf, follow: bool) -> Result<SockLinks, String> {
    ensure_tracefs()?;
    let hooks: Vec<_> = HOOKS
        .iter()
        .copied()
        .chain(follow.then_some(FORK_HOOK))
        .collect();
    for &(_, category, event, fields) in &hooks {
        check_format(&read_format(category, event)?, fields)
            .map_err(|e| format!("{category}:{event}: {e}"))?;
    }
    let mut links = Vec::new();
    for &(name, category, event, _) in &hooks {
        let fail = |e: ProgramError| format!("{name} on {category}:{event}: {e}");
        let prog: &mut TracePoint = program(ebpf, name).map_err(|e| e.to_string())?;
        if prog.fd().is_err() {
            prog.load().map_err(fail)?;
        }
        let id = prog.attach(category, event).map_err(fail)?;
        links.push(prog.take_link(id).map_err(fail)?);
    }
    Ok(SockLinks { _links: links })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
        \tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\
        \tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n\
        \tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\
        \tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;\n\
        \tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;\n\
        \tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;\n\
        \tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\
        \tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;\n\
        \tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\
        \tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;\n";

    #[test]
    fn format_of_this_layout_passes_and_a_moved_field_fails() {
        assert_eq!(check_format(STATE, STATE_FIELDS), Ok(()));
        let moved = STATE.replace("sport;\toffset:24", "sport;\toffset:22");
        assert!(check_format(&moved, STATE_FIELDS)
            .unwrap_err()
            .contains("sport"));
        let missing = STATE.replace("family", "famly");
        assert!(check_format(&missing, STATE_FIELDS)
            .unwrap_err()
            .contains("missing"));
    }

    #[test]
    fn this_kernels_formats_match_when_readable() {
        for &(_, category, event, fields) in HOOKS.iter().chain([&FORK_HOOK]) {
            match read_format(category, event) {
                Ok(f) => assert_eq!(check_format(&f, fields), Ok(()), "{event}"),
                Err(e) => eprintln!("SKIPPED {event}: cannot read its format here: {e}"),
            }
        }
    }
}
