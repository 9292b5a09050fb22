//! `x1-validate render`.

use std::io::Write;

use crate::error::{Error, Result};

/// Arguments of `x1-validate render`.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// The preset to render (`opencode`).
    #[arg(long)]
    pub preset: String,
    /// Output directory (created; must be empty or absent).
    #[arg(long)]
    pub out: std::path::PathBuf,
}

/// Run the command; returns the exit code.
pub fn run(args: &RenderArgs, out: &mut dyn Write) -> Result<u8> {
    let _ = (args, out);
    Err(Error::Usage("`render` is not implemented yet".into()))
}
