//! One module per subcommand. Each defines its clap `Args` and a `run` that writes to the given output and
//! returns the process exit code (`cli::Command::run` dispatches). Only `main.rs` touches stdout/stderr.

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
