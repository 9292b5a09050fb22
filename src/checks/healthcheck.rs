//! The `healthcheck` rule: runs `/x1/bin/entrypoint --healthcheck` through `crate::sandbox`.
//! (Owned by the sandbox work.)
