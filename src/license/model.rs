//! The license data model: what the inventory is built from ([`CapturedFile`], [`FinalFiles`]) and what
//! it holds ([`Inventory`], [`Package`]). Plain data, no logic: [`super::inventory`] builds an
//! [`Inventory`], [`super::runtime`] and the checks read one, and neither imports the other's types.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use super::Ecosystem;
use super::expr::SpdxExpr;

/// One captured regular-file entry of one layer.
#[derive(Debug, Clone)]
pub struct CapturedFile<'a> {
    pub layer: usize,
    /// Normalised path (no leading `/`).
    pub path: &'a str,
    /// `None` when the entry exists but was larger than the capture limit.
    pub content: Option<&'a [u8]>,
    /// `Fate::describe()` of the entry ("visible", "deleted by layer 7", …).
    pub fate: String,
}

/// Content lookups in the final filesystem (after merge, symlinks resolved inside the root).
pub trait FinalFiles {
    /// The captured content of the file at normalised `path`, if it exists and was captured.
    fn content(&self, path: &str) -> Option<&[u8]>;
}

impl FinalFiles for BTreeMap<String, Vec<u8>> {
    fn content(&self, path: &str) -> Option<&[u8]> {
        self.get(path.trim_start_matches('/')).map(Vec::as_slice)
    }
}

/// One package of the inventory.
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    /// What the package declares, verbatim (`MIT`, `SEE LICENSE IN README.md`, DEP-5 short names).
    pub declared: Option<String>,
    /// The SPDX expression in force: parsed from `declared`, or from a verified clarification.
    pub expression: Option<String>,
    #[serde(skip)]
    pub parsed: Option<SpdxExpr>,
    /// Where `expression` came from: `package.json`, `copyright` (DEP-5), `text-match` (a license
    /// text identified by [`super::textmatch`], at `license_path`), or `clarification` (asserted by the
    /// preset, not read from the image: see `asserted_by`).
    pub source: LicenseSource,
    /// For `text-match`: the askalono score of the weakest term (0–1, at least
    /// [`super::textmatch::THRESHOLD`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// For `clarification`: what asserts the license, with the pinned file hashes
    /// (`asserted by clarification (pins LICENSE sha256 …)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asserted_by: Option<String>,
    /// Why there is no expression (missing, not SPDX, not DEP-5, broken pin, not captured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<Unknown>,
    /// Absolute path of the manifest (`package.json`, or the dpkg status file).
    pub path: String,
    /// Absolute path of the license evidence when it is another file (Debian copyright file, the
    /// `LICENSE` file a text match read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_path: Option<String>,
    /// The layer the package came from (first layer that has it).
    pub layer: usize,
    /// What became of it: "visible", "deleted by layer 7", "not in the final dpkg status".
    pub fate: String,
}

/// The whole inventory, sorted by ecosystem, name, version, path.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    pub packages: Vec<Package>,
}

/// Where a package's license expression comes from (`source` in every output, spelled as before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LicenseSource {
    /// The npm manifest's `license` field.
    #[serde(rename = "package.json")]
    PackageJson,
    /// The Debian copyright file (DEP-5).
    #[serde(rename = "copyright")]
    Copyright,
    /// A license text identified by [`super::textmatch`].
    #[serde(rename = "text-match")]
    TextMatch,
    /// The preset's clarification (asserted, not read from the image).
    #[serde(rename = "clarification")]
    Clarification,
}

impl LicenseSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            LicenseSource::PackageJson => "package.json",
            LicenseSource::Copyright => "copyright",
            LicenseSource::TextMatch => "text-match",
            LicenseSource::Clarification => "clarification",
        }
    }
}

/// Why a package's license could not be determined: what kind of reason (the checks group by it) and
/// the words (shown as they are; serialised as the plain string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub kind: UnknownKind,
    pub text: String,
}

/// The kinds of [`Unknown`], decided where the reason arises (never read back from its words, which
/// carry image text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKind {
    /// The npm `license` declares something that is not an SPDX expression.
    NotSpdx,
    /// The npm manifest has no `license` field.
    NoLicenseField,
    /// A preset clarification's pinned file changed.
    PinBroken,
    /// A DEP-5 `License:` name maps to no SPDX expression.
    Dep5Unmapped,
    /// No `usr/share/doc/<package>/copyright` (or too large to capture).
    NoCopyright,
    /// A free-form (not DEP-5) copyright file whose text matched no license.
    FreeFormCopyright,
    /// A loose license file whose text matched no license.
    LooseText,
    /// The text-matching budget ran out before this text.
    BudgetSpent,
    /// Anything else (empty declaration, unsupported shape, not captured, a copyright file without a
    /// `License:` line).
    Other,
}

impl Unknown {
    pub fn new(kind: UnknownKind, text: impl Into<String>) -> Unknown {
        Unknown {
            kind,
            text: text.into(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Serialize for Unknown {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}
