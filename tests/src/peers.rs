//! The real WebSocket peers (`tests/peers/ws_peer.py`, Python `websockets`)
//! and the small process helpers the tests that run them share.

use std::path::PathBuf;
use std::process::Child;

/// Kills (SIGTERM) and reaps a child on drop, so a failing test leaves no
/// server or capture running.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        // SAFETY: signalling a child we spawned and have not reaped yet.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Path of the peer script.
pub fn peer_script() -> PathBuf {
    crate::workspace_root().join("tests/peers/ws_peer.py")
}

/// Root, and a Python with `websockets`; otherwise a loud skip (a failure
/// in CI, where both are installed).
pub fn python_or_skip(test: &str) -> Option<PathBuf> {
    if !crate::require_root(test) {
        return None;
    }
    let py = crate::python_with_websockets();
    if py.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: python3-websockets missing; `cargo xtask setup` installs it");
        }
        crate::skip(test, "no python3 with websockets. Run `cargo xtask setup`");
    }
    py
}

/// A self-signed certificate and its key (PEM) in `dir`, for the wss://
/// servers: `(cert, key)`.
pub fn self_signed_cert(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=wstap-test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl req");
    assert!(st.success(), "openssl req failed");
    (cert, key)
}
