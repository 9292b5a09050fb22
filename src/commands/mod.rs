//! One module per subcommand. Each defines its clap `Args` and a `run` that writes to the given output and
//! returns the process exit code. Only `main.rs` touches stdout/stderr.

pub mod files;
pub mod inspect;
pub mod licenses;
pub mod render;
