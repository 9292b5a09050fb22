//! License inventory and policy: npm package roots and Debian packages (dpkg status + DEP-5 copyright),
//! SPDX evaluation against the deny list, the preset's runtime-license expectation and hash-pinned
//! clarifications, and `CycloneDX` output.
//!
//! Everything is computed from file contents captured during the single layer pass (see
//! [`capture_globs`]); nothing here reads a layer blob.

pub mod cyclonedx;
pub mod dpkg;
pub mod expr;
pub mod image;
pub mod inventory;
pub mod model;
pub mod npm;
pub mod policy;
pub mod runtime;
pub mod textmatch;

use serde::{Deserialize, Serialize};

pub use expr::{LicensePattern, SpdxExpr};
pub use model::{
    CapturedFile, FinalFiles, Inventory, LicenseSource, Package, Unknown, UnknownKind,
};
pub use policy::{Clarification, PinnedFile, Policy, PresetLicense, Verdict};

/// Where a package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Npm,
    Deb,
    /// A loose license file: a `LICENSE`/`COPYING` file inside no package the inventory knows.
    File,
}

impl Ecosystem {
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::Deb => "deb",
            Ecosystem::File => "file",
        }
    }
}

/// Paths (globs, no leading `/`) whose content the license inventory needs: every `package.json`, the
/// dpkg status database (classic and distroless `status.d`), Debian copyright files, license files
/// (`LICENSE*`, `LICENCE*`, `COPYING*`, any case: [`inventory::is_license_file`] picks the real ones),
/// and the files the preset's clarifications pin.
pub fn capture_globs(preset: Option<&PresetLicense>) -> Vec<String> {
    let mut globs: Vec<String> = [
        "**/package.json",
        "var/lib/dpkg/status",
        "var/lib/dpkg/status.d/*",
        "usr/share/doc/*/copyright",
        "**/[Ll][Ii][Cc][Ee][Nn][CcSs][Ee]*",
        "**/[Cc][Oo][Pp][Yy][Ii][Nn][Gg]*",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    if let Some((pkg, l)) = preset.and_then(|l| l.package.as_ref().map(|p| (p, l))) {
        for c in &l.clarify {
            for f in &c.license_files {
                globs.push(format!("**/node_modules/{pkg}/{}", f.path.0));
            }
        }
    }
    globs.sort();
    globs.dedup();
    globs
}

/// Largest file the license inventory wants captured (package.json, dpkg status, copyright files).
/// The orchestrator's capture policy takes the maximum over all checks.
pub const CAPTURE_MAX_BYTES: u64 = 4 * 1024 * 1024;
