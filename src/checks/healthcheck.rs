//! The `healthcheck` rule: runs `/x1/bin/entrypoint --healthcheck` through `crate::sandbox`.
//! (Owned by the sandbox work.)

use super::{CheckInput, CheckOutcome, ExecMode};
use crate::report::RuleStatus;

/// Outcome for `healthcheck`. Not-run is never passed; with `--exec always` the orchestrator turns a
/// not-run into exit 4.
pub fn check(input: &CheckInput<'_>) -> CheckOutcome {
    let status = if input.opts.exec == ExecMode::Never {
        RuleStatus::Skipped
    } else {
        RuleStatus::NotRun
    };
    CheckOutcome {
        rule_id: "healthcheck",
        status,
        detail: Some("the healthcheck sandbox is not available in this build".into()),
        findings: Vec::new(),
    }
}
