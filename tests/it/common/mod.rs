//! Shared test helpers: in-code image builders that write OCI layouts and docker archives into temp dirs,
//! corpus discovery, and test-time secret generation.
