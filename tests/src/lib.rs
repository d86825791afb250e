//! Shared harness for wstap's integration tests: private network namespaces,
//! veth pairs, locating the built `wstap` binary, and skipping loudly when a
//! test cannot run here (not root, tool missing).

pub mod netns;
pub mod peers;
pub mod tap;
pub mod tshark;

use std::path::PathBuf;

/// True when running as root (uid 0). Privileged tests need it.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Records that `test` skipped and why: a loud line on stderr (hidden by
/// cargo test's capture when the test "passes"), and a line in the file
/// named by `WSTAP_SKIP_LOG`, which `cargo xtask test` prints at the end so
/// no skip passes for a pass.
pub fn skip(test: &str, reason: &str) {
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = format!("!!!! SKIPPED {test}: {reason} !!!!");
    eprintln!("\n{line}\n");
    if let Some(path) = std::env::var_os("WSTAP_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Returns false, after printing a loud reason, when the test must skip.
/// In CI (`CI` set) a missing privilege is a failure, not a skip.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root, and CI runs as root: refusing to skip");
    }
    skip(
        test,
        "needs root (network namespaces, eBPF). Run `sudo -E cargo xtask test`",
    );
    false
}

/// Path of a program on PATH, if present.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Like [`require_root`], for an external tool (tshark, tcpdump, python3 module).
pub fn require_tool(test: &str, program: &str) -> bool {
    if which(program).is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {program} is not installed; `cargo xtask setup` installs it");
    }
    skip(
        test,
        &format!("{program} not found. Run `cargo xtask setup`"),
    );
    false
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `wstap` binary. `cargo xtask test` builds it first and passes its path
/// in `WSTAP_BIN`; otherwise the debug build under `target/` is used.
pub fn wstap_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WSTAP_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("wstap");
        if p.is_file() {
            return p;
        }
    }
    panic!("wstap binary not found: run `cargo build -p capture-user` or set WSTAP_BIN")
}

/// The shared corpus of public captures, if present beside the project.
pub fn corpus_dir() -> Option<PathBuf> {
    let d = workspace_root().parent()?.join("shared").join("corpus");
    d.is_dir().then_some(d)
}

/// Python interpreter that has the `websockets` module (Debian's python3-websockets).
pub fn python_with_websockets() -> Option<PathBuf> {
    for py in ["/usr/bin/python3", "python3"] {
        let ok = std::process::Command::new(py)
            .args(["-c", "import websockets"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Some(PathBuf::from(py));
        }
    }
    None
}
