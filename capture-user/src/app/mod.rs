//! Whole runs of the tool: live capture (`live`) or a capture file (`offline`).

pub mod command;
pub mod common;
pub mod live;
pub mod offline;
pub mod shards;

use std::os::fd::AsFd;
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
    if cli.generate_man || cli.generate_completions.is_some() {
        return match generate(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wstap: error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    if cli.list_interfaces || cli.cleanup {
        return match maintenance(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wstap: error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let result = output(&cli).and_then(|()| {
        if let Some(path) = cli.read.clone() {
            offline::run(&cli, &path).map(|()| 0)
        } else if !cli.interface.is_empty() {
            live::run(&cli, &cli.interface)
        } else if !cli.command.is_empty() {
            Err(anyhow::anyhow!(
                "-- COMMAND needs -i IFACE: the interface its traffic crosses (lo for peers on this host)"
            ))
        } else {
            Err(anyhow::anyhow!(
                "nothing to capture from: give -i IFACE for live capture or -r FILE to read a capture"
            ))
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("wstap: error: {e:#}");
            match e.downcast_ref::<command::CannotStart>() {
                Some(c) => ExitCode::from(c.exit_code()),
                None => ExitCode::from(1),
            }
        }
    }
}

/// `--generate-man` and `--generate-completions SHELL`: made from the
/// command-line definition itself, so they never drift from it.
fn generate(cli: &Cli) -> std::io::Result<()> {
    use clap::CommandFactory as _;
    let mut out = std::io::stdout().lock();
    match cli.generate_completions {
        Some(shell) => {
            clap_complete::generate(shell, &mut Cli::command(), "wstap", &mut out);
            Ok(())
        }
        None => clap_mangen::Man::new(Cli::command()).render(&mut out),
    }
}

/// `-D` (the interfaces, on stdout) and `--cleanup` (what it removed, on
/// stdout): the actions that capture nothing.
fn maintenance(cli: &Cli) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if cli.list_interfaces {
        for i in crate::tap::interfaces().context("listing /sys/class/net")? {
            println!("{i}");
        }
    } else {
        for line in crate::tap::stale::cleanup_all()? {
            println!("wstap: {line}");
        }
    }
    Ok(())
}

/// `--output FILE`: wstap's stdout becomes the file (the command of
/// `-- COMMAND` keeps the original). `-w -`: the pcapng stream takes stdout,
/// and the decoded output goes to `--output FILE`, or nowhere.
fn output(cli: &Cli) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let pcap_on_stdout = cli
        .write
        .as_deref()
        .is_some_and(crate::sink::pcapng::is_stdout);
    if pcap_on_stdout {
        if !cli.command.is_empty() {
            anyhow::bail!(
                "-w - with -- COMMAND: the command's own output would mix into the pcapng stream; give -w a file"
            );
        }
        let pcap = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("keeping standard output for -w -")?;
        crate::sink::pcapng::set_stdout(pcap);
    }
    let (decoded, shown) = match &cli.output {
        Some(path) => (
            std::fs::File::create(path)
                .with_context(|| format!("creating the output file {}", path.display()))?,
            path.display().to_string(),
        ),
        None if pcap_on_stdout => (
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .context("opening /dev/null for the decoded output")?,
            "/dev/null".to_string(),
        ),
        None => return Ok(()),
    };
    command::redirect_stdout(decoded).with_context(|| format!("writing to {shown}"))
}
