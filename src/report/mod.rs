//! Findings and reports. A [`Finding`] is data (never an error); a [`Report`] holds the verdict of every
//! checked image/platform and is written by one format writer per format. Format writers write to `&mut dyn Write`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rules::RuleId;
pub use crate::rules::{RuleMeta, Severity};

mod github;
mod human;
mod json;
mod junit;
pub mod mask;
mod sarif;
mod text;
mod verdict;

pub use mask::{ImageText, MaskedReport, mask, mask_json, mask_multiline};
pub use verdict::{GateVerdict, Tally, short_digest};

/// The version of the JSON document (`docs/report-schema.md`). Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A layer, as findings name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LayerRef {
    pub index: usize,
    pub digest: String,
    pub diff_id: String,
    /// The history `created_by` of this layer, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// Where a finding points.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Location {
    /// The image as a whole (e.g. a missing label).
    Image,
    /// The image config, with a JSON pointer (`/config/Env/3`, `/history/2/created_by`).
    Config { pointer: String },
    /// The manifest or index, with a JSON pointer.
    Manifest { digest: String, pointer: String },
    /// An entry of a layer. `path` is absolute (`/x1/bin/entrypoint`); nested archive members are joined
    /// with `!` (`/usr/lib/x.tgz!package/index.js`). `fate` says what became of it ("visible",
    /// "deleted by layer 7 — still shipped in layer 6's blob").
    Entry {
        layer: LayerRef,
        path: String,
        fate: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
    },
    /// A path in the final filesystem (after merge), when no single layer entry is meant (e.g. missing).
    Path { path: String },
    /// A blob outside the image proper (attestation, signature).
    Blob { digest: String, media_type: String },
}

/// Redacted evidence of a secret: never the value itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Evidence {
    /// Up to 8 leading characters (less for short values), e.g. `sk-ant-a`.
    pub prefix: String,
    pub length: usize,
    /// `sha256:<hex>` of the full value.
    pub fingerprint: String,
    /// The secret pattern id (`anthropic-api-key`) or the variable name that matched.
    pub pattern: String,
}

/// One finding of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Public rule id from contract.md (`secret-in-layer`).
    pub rule_id: RuleId,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    pub location: Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// The status of one rule for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleStatus {
    Passed,
    Failed,
    /// The check could not run (healthcheck without a sandbox). Never counted as passed.
    NotRun,
    /// Turned off (`--allow`, `--exec never`, or not applicable).
    Skipped,
}

/// Per-rule outcome for one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule_id: RuleId,
    pub severity: Severity,
    pub status: RuleStatus,
    /// Why not-run/skipped, or a one-line summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The verdict for one image (one platform).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageReport {
    /// The input as given on the command line.
    pub input: String,
    pub platform: String,
    pub manifest_digest: String,
    /// Where `manifest_digest` comes from: `"input"` (a manifest the input holds, as a registry would
    /// show it) or `"synthesised"` (legacy `docker save` has no manifest; x1-validate made one up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest_source: Option<DigestSource>,
    pub config_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    pub rules: Vec<RuleResult>,
    /// Sorted with [`sort_findings`].
    pub findings: Vec<Finding>,
    /// Allowlist suppressions, counted per allowlist entry id (never silent).
    pub suppressed: BTreeMap<String, u64>,
    /// Notes that are not findings (limits hit in nested archives, unknown licenses, …).
    pub notes: Vec<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// JSON schema version of this document.
    pub schema_version: u32,
    pub tool_version: String,
    pub images: Vec<ImageReport>,
    /// Set when the run stopped before every image was checked (exit 2 or 3): the report then says
    /// NOT CHECKED in every format, whatever `images` holds (the images finished before the error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
}

/// What stopped a run (the public spellings are the serde ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunErrorKind {
    /// Exit 2: a flag, a preset, a rule file.
    Usage,
    /// Exit 3: the image is unreadable or corrupt.
    UnreadableImage,
    /// Exit 4, when the sandbox itself reports the error.
    NotRun,
}

impl RunErrorKind {
    /// `usage`, `unreadable-image`, `not-run`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunErrorKind::Usage => "usage",
            RunErrorKind::UnreadableImage => "unreadable-image",
            RunErrorKind::NotRun => "not-run",
        }
    }
}

impl std::fmt::Display for RunErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where an image report's manifest digest comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestSource {
    /// A manifest the input holds, as a registry would show it.
    Input,
    /// Legacy `docker save` has no manifest: x1-validate made one up.
    Synthesised,
}

/// Why a run could not check the image (exit 2: usage or configuration; exit 3: unreadable image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// The process exit code (2 or 3).
    pub exit_code: u8,
    pub kind: RunErrorKind,
    /// The error, one paragraph (masked like every image-derived string).
    pub message: String,
}

impl RunError {
    /// The error record for `e`.
    pub fn from_error(e: &crate::Error) -> RunError {
        let exit_code = e.exit_code();
        RunError {
            exit_code,
            kind: match exit_code {
                3 => RunErrorKind::UnreadableImage,
                4 => RunErrorKind::NotRun,
                _ => RunErrorKind::Usage,
            },
            message: error_text(e),
        }
    }
}

/// The error's message with its diagnostic help and source chain, on one paragraph.
fn error_text(e: &crate::Error) -> String {
    use miette::Diagnostic as _;
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        src = s.source();
    }
    if let Some(help) = e.help() {
        text.push_str(" (");
        text.push_str(&help.to_string());
        text.push(')');
    }
    text
}

/// The stable order every format uses: severity, rule id (as text), layer index, path, then message.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.severity, a.rule_id.as_str(), &a.location, &a.message).cmp(&(
            b.severity,
            b.rule_id.as_str(),
            &b.location,
            &b.message,
        ))
    });
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
    Sarif,
    Junit,
    Github,
}

/// How to write a report.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// ANSI colour (false when `NO_COLOR` is set or output is not a terminal).
    pub color: bool,
    /// Terminal width for the human format (0: no wrapping).
    pub width: usize,
    /// The rule catalogue (SARIF `tool.driver.rules`, `JUnit` testcases per rule).
    pub catalog: Vec<RuleMeta>,
    /// `--fail-on`: the least severe level that fails an image. `None` means `error` (the default).
    pub fail_on: Option<Severity>,
}

impl WriteOptions {
    /// The effective `--fail-on` level.
    pub fn fail_on(&self) -> Severity {
        self.fail_on.unwrap_or(Severity::Error)
    }
}

/// Write `report` in `format`, completely, to `out` (flushed before returning).
pub fn write(
    report: &Report,
    format: Format,
    opts: &WriteOptions,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    // The masking chokepoint: format writers only take a `MaskedReport` (see `mask`).
    let report = &MaskedReport::new(report);
    // Buffered here so that no caller pays a syscall per line (stdout is line-buffered).
    let mut buf = std::io::BufWriter::with_capacity(1 << 16, out);
    match format {
        Format::Human => human::write(report, opts, &mut buf)?,
        Format::Json => json::write(report, opts, &mut buf)?,
        Format::Sarif => sarif::write(report, opts, &mut buf)?,
        Format::Junit => junit::write(report, opts, &mut buf)?,
        Format::Github => github::write(report, opts, &mut buf)?,
    }
    std::io::Write::flush(&mut buf)
}
