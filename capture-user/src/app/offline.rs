//! Decoding a capture file. (Filled in by the decoder work.)
use std::path::Path;

use crate::cli::Cli;

pub fn run(_cli: &Cli, path: &Path) -> anyhow::Result<()> {
    anyhow::bail!("reading {} is not built yet", path.display())
}
