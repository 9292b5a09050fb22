//! The one integration-test binary. One module per area; `common` holds the in-code image builders.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod build;
mod cache;
mod checks;
mod cli;
mod common;
mod hostile_input;
mod image;
mod image_builder;
mod image_fixtures;
mod image_inputs;
mod image_producers;
mod image_tools;
mod licenses;
mod masking;
mod peer_vectors;
mod registry;
mod render;
mod report;
mod rule_catalog;
mod rule_docs;
mod rules_override;
mod sample;
mod sandbox;
mod secret_coverage;
mod secrets;
mod snapshots;
mod tar_tail;
