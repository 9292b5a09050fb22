//! x1-validate gates and builds the runtime images of the x1agent platform.
//!
//! It reads an image (OCI layout dir, OCI archive, any `docker save` tar) layer by layer, verifying every
//! byte, and enforces the runtime preset contract: labels, the `/x1` overlay and its entrypoint, a real
//! healthcheck run in a sandbox, no provider key in any layer or in metadata, and license policy. It also
//! renders the `/x1` overlay and runtime config for the registry build. See README.md.

pub mod app;
pub mod build;
pub mod cache;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod elf;
pub mod error;
pub mod image;
pub mod license;
pub mod progress;
pub mod render;
pub mod report;
pub mod rules;
pub mod sandbox;
pub mod scan;
pub mod toml_file;
pub mod units;

pub use error::{Error, Result};
