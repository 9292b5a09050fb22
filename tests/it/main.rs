//! The one integration-test binary. One module per area; `common` holds the in-code image builders.

mod common;
mod image_builder;
mod report;
mod image_fixtures;
mod sandbox;
mod secrets;
mod image;
mod checks;
mod build;
mod image_inputs;
