//! Secret-value checks: `secret-in-layer`, `secret-in-metadata`, and the by-value parts of
//! `provider-env` and `build-secret`. (Owned by the secrets work.)
