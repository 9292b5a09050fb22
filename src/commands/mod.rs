//! One module per subcommand. Each defines its clap `Args` and a `run` that writes to the given output and
//! returns the process exit code. Only `main.rs` touches stdout/stderr.

pub mod build;
pub mod check;
pub mod explain;
pub mod files;
pub mod inspect;
pub mod licenses;
pub mod promote;
pub mod render;
pub mod rules;
pub mod verify;

use std::io::Write;

use crate::cli::Command;
use crate::error::Result;

/// Dispatch a parsed command.
pub fn run(command: &Command, out: &mut dyn Write) -> Result<u8> {
    match command {
        Command::Check(a) => check::run(a, out),
        Command::Inspect(a) => inspect::run(a, out),
        Command::Files(a) => files::run(a, out),
        Command::Licenses(a) => licenses::run(a, out),
        Command::Render(a) => render::run(a, out),
        Command::Build(a) => build::run(a, out),
        Command::Rules(a) => rules::run(a, out),
        Command::Explain(a) => explain::run(a, out),
        Command::Promote(a) => promote::run(a, out),
        Command::Verify(a) => verify::run(a, out),
    }
}
