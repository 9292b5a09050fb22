//! What a rule is besides its id: its default [`Severity`] and the [`RuleMeta`] reports describe it
//! by. Here, not in `report`, so that the rule data does not depend on the reports that print it
//! (`report` re-exports both).

use serde::{Deserialize, Serialize};

use super::RuleId;

/// Severity of a finding (from the rule, overridable per rule on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Ordered so that `Error` sorts first.
    Error,
    Warning,
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// A rule as reports describe it (SARIF `tool.driver.rules`, `x1-validate rules`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleMeta {
    pub id: RuleId,
    pub default_severity: Severity,
    /// One line.
    pub summary: String,
    /// What it checks, why it matters, how to fix (markdown).
    pub help: String,
}
