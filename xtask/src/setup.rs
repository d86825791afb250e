//! `cargo xtask setup`: make a fresh machine ready to build and test wstap.
//! Each step checks first and does nothing when already done, and prints
//! one line saying what it found or did; the installers' own output is
//! kept and shown only when they fail.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages the tests and the demo use.
const DEBIAN_PACKAGES: &[&str] = &[
    "tshark",
    "tcpdump",
    "bpftool",
    "iproute2",
    "python3-websockets",
    "ethtool",
    "man-db",
    "python3-yaml",
];

/// The bpf-linker release that links with LLVM 22 (the nightly's).
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> Result<()> {
    build_tools()?;
    debian_packages()?;
    Ok(())
}

/// What building wstap needs (and no more: `cargo xtask install`, say in
/// a container image, needs no test tools).
pub fn build_tools() -> Result<()> {
    rust_src()?;
    bpf_linker()
}

/// One line for a step.
fn say(line: &str) {
    eprintln!("xtask setup: {line}");
}

/// Runs an installer with its output captured; on failure that output is
/// printed, then the error.
fn quietly(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("{cmd:?} failed ({})", out.status);
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The eBPF crate is built with nightly's `-Z build-std=core`, which needs rust-src.
fn rust_src() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        say("nightly toolchain (for the eBPF crate): installing");
        quietly(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        say("nightly toolchain with rust-src: present");
        return Ok(());
    }
    say("rust-src for the nightly toolchain: adding");
    quietly(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// bpf-linker must use the same LLVM as the nightly rustc that emits the
/// bitcode; no Debian package has that LLVM, so link to the nightly's own
/// libLLVM (see ../shared/TOOLCHAIN.md).
fn bpf_linker() -> Result<()> {
    let works = output(Command::new("bpf-linker").arg("--version"))
        .map(|v| v.contains(BPF_LINKER_VERSION))
        .unwrap_or(false);
    if works {
        say(&format!("bpf-linker {BPF_LINKER_VERSION}: present"));
        return Ok(());
    }
    say(&format!(
        "bpf-linker {BPF_LINKER_VERSION}: building against the nightly's libLLVM (about 2 minutes)"
    ));
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("rustc +nightly --print sysroot failed")?;
    let lib_dir = std::path::Path::new(sysroot.trim()).join("lib");
    let lib = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", lib_dir.display()))?;
    let rustflags = format!(
        "-C link-arg=-Wl,-rpath,{dir} -C link-arg={dir}/{lib}",
        dir = lib_dir.display()
    );
    let install = |locked: bool| {
        let mut cmd = Command::new("cargo");
        cmd.args(["install", &format!("bpf-linker@{BPF_LINKER_VERSION}")]);
        if locked {
            cmd.arg("--locked");
        }
        cmd.args([
            "--no-default-features",
            "--features",
            "llvm-22,no-llvm-linking",
        ])
        .env("RUSTFLAGS", &rustflags);
        quietly(&mut cmd)
    };
    // --locked can fail when the published lock file names a yanked crate;
    // retry with fresh resolution then.
    install(true).or_else(|_| install(false))
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f", "${Status}", p]))
                .map(|s| s.contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        say(&format!(
            "Debian packages ({}): present",
            DEBIAN_PACKAGES.join(", ")
        ));
        return Ok(());
    }
    if !crate::is_root() {
        bail!(
            "missing Debian packages {missing:?}; run `sudo apt-get install {}` or run this as root",
            missing.join(" ")
        );
    }
    say(&format!(
        "Debian packages {}: installing",
        missing.join(", ")
    ));
    quietly(Command::new("apt-get").args(["update", "-q"]))?;
    quietly(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
