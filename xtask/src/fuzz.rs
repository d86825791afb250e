//! The fuzz smoke run of `cargo xtask test`: every target in `fuzz/` runs
//! for a short while (20 s each, `WSTAP_FUZZ_SECONDS` to change), so a
//! crash that a few hundred thousand random inputs find fails the tests.
//! Long runs stay manual: `cd fuzz && cargo +nightly fuzz run TARGET`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, status};

/// The cargo-fuzz release installed when none is there.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Seconds per target unless `WSTAP_FUZZ_SECONDS` says otherwise.
const DEFAULT_SECONDS: u64 = 20;

/// Installs cargo-fuzz when `cargo fuzz` does not run (about 2 minutes).
fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask test: installing cargo-fuzz {CARGO_FUZZ_VERSION} for the fuzz smoke run");
    status(Command::new("cargo").args([
        "install",
        "--locked",
        &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"),
    ]))
}

/// The targets: one file each in `fuzz/fuzz_targets`.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(fuzz_dir.join("fuzz_targets"))
        .context("listing fuzz/fuzz_targets")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Runs every target for the smoke duration; fails on the first crash
/// (libFuzzer leaves the input in `fuzz/artifacts/TARGET/`).
pub fn smoke() -> Result<()> {
    let seconds = match std::env::var("WSTAP_FUZZ_SECONDS") {
        Ok(s) => s
            .parse::<u64>()
            .with_context(|| format!("WSTAP_FUZZ_SECONDS={s:?} is not a number of seconds"))?,
        Err(_) => DEFAULT_SECONDS,
    };
    if seconds == 0 {
        eprintln!("\n!!!! SKIPPED the fuzz smoke run: WSTAP_FUZZ_SECONDS=0 !!!!\n");
        return Ok(());
    }
    ensure_cargo_fuzz()?;
    let dir = root().join("fuzz");
    for target in targets(&dir)? {
        eprintln!("xtask test: fuzzing {target} for {seconds} s");
        let ok = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", &target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .current_dir(&dir)
            .status()
            .with_context(|| format!("running cargo fuzz for {target}"))?
            .success();
        if !ok {
            bail!("fuzz target {target} failed: the crashing input is in fuzz/artifacts/{target}/");
        }
    }
    Ok(())
}
