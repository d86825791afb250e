//! Whole runs of the tool: live capture (`live`) or a capture file (`offline`).

pub mod common;
pub mod live;
pub mod offline;
pub mod shards;

use std::process::ExitCode;

use crate::cli::Cli;

/// Runs the command line and turns errors into a message and an exit code.
pub fn main(cli: Cli) -> ExitCode {
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();
    let result = if let Some(path) = cli.read.clone() {
        offline::run(&cli, &path)
    } else if let Some(iface) = cli.interface.clone() {
        live::run(&cli, &iface)
    } else {
        Err(anyhow::anyhow!(
            "nothing to capture from: give -i IFACE for live capture or -r FILE to read a capture"
        ))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wstap: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
