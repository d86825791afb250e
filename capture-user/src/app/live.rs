//! Live capture from an interface. (Filled in by the kernel-tap work.)
use crate::cli::Cli;

pub fn run(_cli: &Cli, iface: &str) -> anyhow::Result<()> {
    anyhow::bail!("live capture on {iface} is not built yet")
}
