//! `wstap [OPTIONS] -- COMMAND [ARGS...]`: the command wstap runs and
//! captures. It runs as the user who invoked wstap: under sudo (root, with
//! `SUDO_UID`/`SUDO_GID` set) that user, with their supplementary groups,
//! `HOME`, `USER` and `LOGNAME`, never root by surprise. Its stdin, stdout
//! and stderr are wstap's own (stdout is the terminal's even with
//! `--output FILE`, which moves only wstap's output).

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

/// The stdout wstap was started with, kept here when `--output` moved
/// wstap's own stdout to a file: the command writes to it.
static ORIGINAL_STDOUT: OnceLock<OwnedFd> = OnceLock::new();

/// `--output FILE`: from now on this process's stdout is `file`; the one it
/// had is kept for the command.
pub fn redirect_stdout(file: std::fs::File) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: fd 1 is open; dup returns a new fd this process owns.
    let saved = unsafe { libc::dup(1) };
    if saved < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd from dup, owned by nobody else.
    let saved = unsafe { OwnedFd::from_raw_fd(saved) };
    // SAFETY: both fds are open.
    if unsafe { libc::dup2(file.as_raw_fd(), 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let _ = ORIGINAL_STDOUT.set(saved);
    Ok(())
}

/// Why the command could not be started, with the shell's exit code for it.
#[derive(Debug, thiserror::Error)]
#[error("cannot run {program}: {source}")]
pub struct CannotStart {
    pub program: String,
    pub source: std::io::Error,
}

impl CannotStart {
    /// 127 when not found, 126 when found but not executable (as a shell).
    pub fn exit_code(&self) -> u8 {
        match self.source.kind() {
            std::io::ErrorKind::PermissionDenied => 126,
            _ => 127,
        }
    }
}

/// Whom the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub name: Option<String>,
    pub home: Option<String>,
}

/// The invoking user when wstap runs as root under sudo; `None` otherwise
/// (the command then runs as wstap itself does).
pub fn invoking_user() -> Result<Option<RunAs>, String> {
    // SAFETY: no arguments.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let Some(uid) = std::env::var("SUDO_UID").ok() else {
        return Ok(None);
    };
    let uid: u32 = uid
        .parse()
        .map_err(|_| format!("SUDO_UID={uid:?} is not a uid"))?;
    let gid: u32 = match std::env::var("SUDO_GID") {
        Ok(g) => g
            .parse()
            .map_err(|_| format!("SUDO_GID={g:?} is not a gid"))?,
        Err(_) => return Err("SUDO_UID is set but SUDO_GID is not".into()),
    };
    let (name, home) = passwd_entry(uid);
    let groups = match &name {
        Some(n) => group_list(n, gid),
        None => vec![gid],
    };
    Ok(Some(RunAs {
        uid,
        gid,
        groups,
        name,
        home,
    }))
}

/// The user name and home directory of `uid` from the password database.
fn passwd_entry(uid: u32) -> (Option<String>, Option<String>) {
    let mut buf = vec![0u8; 16384];
    // SAFETY: zeroed passwd is a valid out-parameter.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: buffers valid for their lengths; the strings live in `buf`.
    let r = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if r != 0 || result.is_null() {
        return (None, None);
    }
    // SAFETY: NUL-terminated strings inside `buf`, which is still alive.
    let s = |p: *const libc::c_char| unsafe {
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    (s(pw.pw_name), s(pw.pw_dir))
}

/// The supplementary groups of user `name` (with primary group `gid`).
fn group_list(name: &str, gid: u32) -> Vec<u32> {
    let Ok(cname) = CString::new(name) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let want = n;
        // SAFETY: `groups` holds `n` entries.
        let r = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if r >= 0 {
            groups.truncate(n as usize);
            return groups;
        }
        if n <= want {
            return vec![gid];
        }
    }
}

/// The command to start: `run_as` applied in the child before exec
/// (groups, then gid, then uid, so no root group is left behind); its
/// stdout the original one when `--output` moved wstap's.
pub fn command(argv: &[String], run_as: Option<&RunAs>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if let Some(fd) = ORIGINAL_STDOUT.get().and_then(|f| f.try_clone().ok()) {
        cmd.stdout(std::process::Stdio::from(fd));
    }
    if let Some(u) = run_as.cloned() {
        if let Some(name) = &u.name {
            cmd.env("USER", name).env("LOGNAME", name);
        }
        if let Some(home) = &u.home {
            cmd.env("HOME", home);
        }
        // SAFETY: only async-signal-safe calls (setgroups, setgid, setuid)
        // on memory allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(u.groups.len(), u.groups.as_ptr()) != 0
                    || libc::setgid(u.gid) != 0
                    || libc::setuid(u.uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.kill_on_drop(false);
    cmd
}

/// A shell's exit code for how the command ended: its own, or 128 + the
/// signal that killed it.
pub fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_a_shells() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
        let missing = CannotStart {
            program: "x".into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert_eq!(missing.exit_code(), 127);
    }

    #[test]
    fn root_has_a_passwd_entry_and_groups() {
        let (name, home) = passwd_entry(0);
        assert_eq!(name.as_deref(), Some("root"));
        assert!(home.is_some());
        assert!(group_list("root", 0).contains(&0));
    }
}
