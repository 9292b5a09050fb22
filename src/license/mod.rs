//! License inventory and policy: npm package roots and Debian packages (dpkg status + DEP-5 copyright),
//! SPDX evaluation against the deny list, the preset's runtime-license expectation and hash-pinned
//! clarifications, and CycloneDX output.

/// The license deny list (`rules/licenses.toml`).
#[derive(Debug, Clone, Default)]
pub struct Policy {}

/// A preset's `[license]` table.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetLicense {}
