//! License checks: `runtime-license`, `denied-license`, `license-label`. (Owned by the license work.)

use super::{CheckInput, CheckOutcome};
use crate::rules::Preset;

/// Paths (globs, no leading `/`) whose content the license checks need captured during the layer pass.
pub fn capture_globs(preset: Option<&Preset>) -> Vec<String> {
    let _ = preset;
    Vec::new()
}

/// Outcomes for `runtime-license`, `denied-license`, `license-label`.
pub fn check(input: &CheckInput<'_>) -> Vec<CheckOutcome> {
    let _ = input;
    Vec::new()
}
