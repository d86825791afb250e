//! Builds the eBPF object (`capture-ebpf`) with aya-build and leaves it in
//! `$OUT_DIR/capture-ebpf`, where `tap` embeds it with
//! `aya::include_bytes_aligned!`.
//!
//! The eBPF crate needs the nightly toolchain (with rust-src) and
//! bpf-linker; `cargo xtask setup` installs both. With `AYA_BUILD_SKIP=1` the
//! build is skipped and an empty object is embedded: everything but live
//! capture works, and `wstap -i` says how to get a real build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let ebpf_dir = root.join("capture-ebpf");
    let common_dir = root.join("capture-common");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let object = out_dir.join("capture-ebpf");

    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-changed={}", ebpf_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        common_dir.join("src").display()
    );

    let skip = std::env::var("AYA_BUILD_SKIP")
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(false);
    if skip {
        println!("cargo:warning=AYA_BUILD_SKIP set: wstap is built without its eBPF programs (no live capture)");
        std::fs::write(&object, b"").expect("writing empty eBPF object");
        return;
    }

    check_toolchain();

    // aya-build runs `cargo build --package capture-ebpf` in the current
    // directory; capture-ebpf is its own workspace, so build from there.
    std::env::set_current_dir(&ebpf_dir).expect("entering capture-ebpf");
    let pkg = aya_build::Package {
        name: "capture-ebpf",
        root_dir: ebpf_dir.to_str().unwrap(),
        ..Default::default()
    };
    if let Err(e) = aya_build::build_ebpf([pkg], aya_build::Toolchain::Nightly) {
        panic!(
            "building the eBPF programs (capture-ebpf) failed: {e:#}\n\
             If the nightly toolchain, rust-src or bpf-linker is missing, run `cargo xtask setup`.\n\
             To build without live capture, set AYA_BUILD_SKIP=1."
        );
    }
    if !object.is_file() {
        panic!(
            "aya-build did not produce {}; run `cargo xtask setup`",
            object.display()
        );
    }
}

/// Fails the build early, with what to do, when nightly + rust-src or
/// bpf-linker is missing.
fn check_toolchain() {
    let setup = "run `cargo xtask setup` (or set AYA_BUILD_SKIP=1 to build without live capture)";
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output();
    let sysroot = match nightly {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => panic!("the nightly Rust toolchain is needed to build the eBPF programs: {setup}"),
    };
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        panic!("the nightly toolchain lacks the rust-src component: {setup}");
    }
    let linker = Command::new("bpf-linker").arg("--version").output();
    if !matches!(linker, Ok(o) if o.status.success()) {
        panic!("bpf-linker is not installed (or does not start): {setup}");
    }
}
