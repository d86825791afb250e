//! Developer tasks for wstap: `cargo xtask setup|build|run|test|demo|bench|install`.
//!
//! Everything a fresh machine needs is installed by `setup`, which every other
//! task calls first, so the README's first commands work on a new machine.

mod bench;
mod demo;
mod fuzz;
mod install;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "wstap developer tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent): nightly rust-src,
    /// bpf-linker built against the nightly's libLLVM, Debian packages.
    Setup,
    /// Build the eBPF object and the `wstap` binary (release).
    Build,
    /// Build, then run `wstap ARGS` as root.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Show wstap decoding a real WebSocket conversation in a private
    /// network namespace, then clean up.
    Demo {
        /// Print JSON Lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark wstap against tshark on captures of real traffic and run
    /// the decoder's criterion micro-benchmarks; prints a markdown table and
    /// writes it to target/bench-results.md. Needs root (records the
    /// captures in a private network namespace).
    Bench(bench::Opts),
    /// Build and install wstap (one binary, its eBPF programs embedded),
    /// its man page and bash/zsh/fish completions under a prefix.
    Install(install::Opts),
    /// Run every test of the workspace, the privileged ones included.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.task {
        Task::Setup => setup::run(),
        Task::Build => {
            setup::run()?;
            build_wstap().map(|_| ())
        }
        Task::Run { args } => {
            setup::run()?;
            let bin = build_wstap()?;
            run_as_root(&bin, &args)
        }
        Task::Demo { json } => {
            setup::run()?;
            let bin = build_wstap()?;
            demo::run(&bin, json)
        }
        Task::Bench(opts) => {
            setup::run()?;
            let bin = match &opts.wstap_bin {
                Some(b) => b.clone(),
                None => build_wstap()?,
            };
            bench::run(&bin, &opts)
        }
        Task::Install(opts) => {
            let bin = match &opts.wstap_bin {
                Some(b) => b.clone(),
                None => {
                    setup::build_tools()?;
                    build_wstap()?
                }
            };
            install::run(&bin, &opts.prefix)
        }
        Task::Test { args } => {
            setup::run()?;
            test(&args)
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command, failing with its name if it fails.
fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

/// Builds the release `wstap` binary (its build script builds the eBPF
/// object) and returns its path.
fn build_wstap() -> Result<PathBuf> {
    status(cargo().args(["build", "--release", "-p", "capture-user", "--bin", "wstap"]))?;
    Ok(target_dir().join("release").join("wstap"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run_as_root(bin: &Path, args: &[String]) -> Result<()> {
    let mut cmd = if is_root() {
        Command::new(bin)
    } else {
        eprintln!("xtask: wstap needs root for live capture; running it with sudo");
        let mut c = Command::new("sudo");
        c.arg(bin);
        c
    };
    cmd.args(args);
    let st = cmd.status().context("could not start wstap")?;
    std::process::exit(st.code().unwrap_or(1));
}

fn test(extra: &[String]) -> Result<()> {
    let bin = build_wstap()?;
    if !is_root() {
        eprintln!(
            "\n!!!! xtask test: not root: the privileged tests (eBPF, network namespaces) will SKIP. Run `sudo -E cargo xtask test` to run them. !!!!\n"
        );
    }
    // Tests that skip write a line here; printed below so that a skip is
    // never mistaken for a pass (cargo test hides a passing test's stderr).
    let skip_log = target_dir().join("skipped-tests.txt");
    let _ = std::fs::remove_file(&skip_log);
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"])
        .args(extra)
        .env("WSTAP_BIN", &bin)
        .env("WSTAP_SKIP_LOG", &skip_log);
    // The install test runs this very xtask (`install --wstap-bin`).
    if let Ok(me) = std::env::current_exe() {
        cmd.env("XTASK_BIN", me);
    }
    let result = status(&mut cmd);
    if let Ok(skips) = std::fs::read_to_string(&skip_log) {
        eprintln!();
        for line in skips.lines() {
            eprintln!("{line}");
        }
    }
    result?;
    if extra.is_empty() {
        fuzz::smoke()?;
    }
    // The README's first command must keep working: run the demo and check
    // that wstap decoded every message its peers exchanged.
    if extra.is_empty() {
        if is_root() {
            eprintln!("xtask test: running `cargo xtask demo` and checking its output");
            demo::run(&bin, false)?;
        } else {
            eprintln!("\n!!!! xtask test: SKIPPED the demo check: needs root !!!!\n");
        }
    }
    Ok(())
}
