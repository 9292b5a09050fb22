//! `x1-validate licenses`.

use std::io::Write;

use crate::error::{Error, Result};

/// Arguments of `x1-validate licenses`.
#[derive(Debug, Clone, clap::Args)]
pub struct LicensesArgs {
    /// The image: OCI layout dir, OCI archive, docker-archive tar, or `-` for stdin.
    pub image: String,
}

/// Run the command; returns the exit code.
pub fn run(args: &LicensesArgs, out: &mut dyn Write) -> Result<u8> {
    let _ = (args, out);
    Err(Error::Usage("`licenses` is not implemented yet".into()))
}
