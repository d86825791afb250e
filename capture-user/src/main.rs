//! The `wstap` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = wstap::cli::Cli::parse();
    wstap::app::main(cli)
}
