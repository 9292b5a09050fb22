//! The per-image verdict every format ends with: counts per severity, rules that did not run, and
//! PASS / FAIL / INCOMPLETE against `--fail-on`. One implementation, so every format agrees.

use serde::Serialize;

use super::{ImageReport, Report, RuleStatus, Severity};

/// Findings counted per severity, plus the rules that could not run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
    /// Ids of the rules whose status is [`RuleStatus::NotRun`].
    pub not_run: Vec<String>,
    /// Total allowlist suppressions.
    pub suppressed: u64,
}

/// The outcome of one image against `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateVerdict {
    /// No finding at or above `--fail-on`, and every rule ran (or was deliberately skipped).
    Pass,
    /// At least one finding at or above `--fail-on`.
    Fail,
    /// Nothing failed, but a rule could not run: never reported as a pass.
    Incomplete,
    /// The run stopped with exit 2 or 3 ([`super::Report::error`]): the image was NOT checked.
    Error,
}

impl GateVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            GateVerdict::Pass => "PASS",
            GateVerdict::Fail => "FAIL",
            GateVerdict::Incomplete => "INCOMPLETE",
            GateVerdict::Error => "NOT CHECKED",
        }
    }
}

impl ImageReport {
    /// Count findings per severity and collect not-run rules.
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for f in &self.findings {
            match f.severity {
                Severity::Error => t.errors += 1,
                Severity::Warning => t.warnings += 1,
                Severity::Note => t.notes += 1,
            }
        }
        t.not_run = self
            .rules
            .iter()
            .filter(|r| r.status == RuleStatus::NotRun)
            .map(|r| r.rule_id.to_string())
            .collect();
        t.suppressed = self.suppressed.values().sum();
        t
    }

    /// PASS / FAIL / INCOMPLETE for this image. A finding fails when its severity is at or above
    /// `fail_on` (`Error` is the most severe).
    pub fn verdict(&self, fail_on: Severity) -> GateVerdict {
        if self.findings.iter().any(|f| f.severity <= fail_on) {
            GateVerdict::Fail
        } else if self.rules.iter().any(|r| r.status == RuleStatus::NotRun) {
            GateVerdict::Incomplete
        } else {
            GateVerdict::Pass
        }
    }

    /// The one-line verdict: `linux/amd64 sha256:abcd1234ef56… FAIL: 3 errors, 1 warning`.
    pub fn verdict_line(&self, fail_on: Severity) -> String {
        let t = self.tally();
        let v = self.verdict(fail_on);
        let mut parts = Vec::new();
        for (n, one, many) in [
            (t.errors, "error", "errors"),
            (t.warnings, "warning", "warnings"),
            (t.notes, "note", "notes"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {}", if n == 1 { one } else { many }));
            }
        }
        if !t.not_run.is_empty() {
            parts.push(format!("not run: {}", t.not_run.join(", ")));
        }
        let digest = short_digest(&self.manifest_digest);
        if parts.is_empty() {
            format!("{} {digest} {}", self.platform, v.as_str())
        } else {
            format!(
                "{} {digest} {}: {}",
                self.platform,
                v.as_str(),
                parts.join(", ")
            )
        }
    }
}

impl Report {
    /// A new report at the current [`super::SCHEMA_VERSION`].
    pub fn new(tool_version: impl Into<String>, images: Vec<ImageReport>) -> Report {
        Report {
            schema_version: super::SCHEMA_VERSION,
            tool_version: tool_version.into(),
            images,
            error: None,
        }
    }

    /// A report that says the run could not check the image, with the images finished before.
    pub fn failed(
        tool_version: impl Into<String>,
        images: Vec<ImageReport>,
        error: &crate::Error,
    ) -> Report {
        Report {
            error: Some(super::RunError::from_error(error)),
            ..Report::new(tool_version, images)
        }
    }

    /// The worst verdict over all images (FAIL over INCOMPLETE over PASS); `Error` when the run
    /// stopped before checking everything. An empty report passes.
    pub fn verdict(&self, fail_on: Severity) -> GateVerdict {
        if self.error.is_some() {
            return GateVerdict::Error;
        }
        let all: Vec<GateVerdict> = self.images.iter().map(|i| i.verdict(fail_on)).collect();
        if all.contains(&GateVerdict::Fail) {
            GateVerdict::Fail
        } else if all.contains(&GateVerdict::Incomplete) {
            GateVerdict::Incomplete
        } else {
            GateVerdict::Pass
        }
    }
}

/// `sha256:` plus the first 12 hex digits and an ellipsis; other strings unchanged when short.
pub fn short_digest(d: &str) -> String {
    let (algo, hex) = d.split_once(':').unwrap_or(("", d));
    let cut: String = hex.chars().take(12).collect();
    let ell = if hex.chars().count() > 12 { "…" } else { "" };
    if algo.is_empty() {
        format!("{cut}{ell}")
    } else {
        format!("{algo}:{cut}{ell}")
    }
}
