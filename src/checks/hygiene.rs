//! `layer-hygiene`: what the layer reader recorded in each [`LayerListing`]'s `hygiene` list (duplicate
//! paths, whiteouts in the first layer, invalid whiteouts, setuid/setgid files, root escapes). A path
//! escape is always an error; the orchestrator keeps that severity unless the user overrides the rule.

use super::support::{finding, layer_ref};
use super::{CheckInput, CheckOutcome};
use crate::image::HygieneIssue;
use crate::report::{Location, Severity};
use crate::rules::RuleId;

const ID: RuleId = RuleId::LayerHygiene;

/// `layer-hygiene`.
pub fn check(input: &CheckInput<'_>) -> CheckOutcome {
    let mut findings = Vec::new();
    for listing in input.listings {
        for issue in &listing.hygiene {
            let (path, message, help, escape) = describe(issue);
            // A media type is the manifest's word about the layer, not an entry of it.
            let location = if matches!(issue, HygieneIssue::MediaTypeMismatch { .. }) {
                Location::Manifest {
                    digest: input.image.manifest.digest.to_string(),
                    pointer: format!("/layers/{}/mediaType", listing.index),
                }
            } else {
                Location::Entry {
                    layer: layer_ref(input, listing.index),
                    path: format!("/{}", path.trim_start_matches('/')),
                    fate: "as written in the layer".into(),
                    offset: None,
                    line: None,
                }
            };
            let mut f = finding(
                ID,
                format!("layer {}: {message}", listing.index),
                help.map(str::to_string),
                location,
            );
            if escape {
                f.severity = Severity::Error;
            }
            findings.push(f);
        }
    }
    CheckOutcome::from_findings(ID, findings)
}

fn describe(issue: &HygieneIssue) -> (String, String, Option<&'static str>, bool) {
    match issue {
        HygieneIssue::DuplicatePath { path } => (
            path.clone(),
            format!("/{path} appears more than once in the same layer"),
            Some("tools disagree on which copy wins; rebuild with a standard builder"),
            false,
        ),
        HygieneIssue::WhiteoutInFirstLayer { path } => (
            path.clone(),
            format!("whiteout /{path} in the first layer (there is nothing below it to delete)"),
            Some("a flattening tool left whiteout markers behind; rebuild the base layer"),
            false,
        ),
        HygieneIssue::InvalidWhiteout { path } => (
            path.clone(),
            format!("invalid whiteout marker /{path} (`.wh.` with no name)"),
            None,
            false,
        ),
        HygieneIssue::Setuid { path, mode } => (
            path.clone(),
            format!("/{path} is setuid/setgid (mode {mode:04o})"),
            Some("remove the bit (`chmod u-s,g-s`) unless the runtime needs it"),
            false,
        ),
        HygieneIssue::PathEscape { raw, detail } => (
            raw.clone(),
            format!("entry `{raw}` escapes the image root: {detail}"),
            Some("a layer must never write outside its root; do not ship this image"),
            true,
        ),
        HygieneIssue::MediaTypeMismatch { media_type, detail } => (
            String::new(),
            format!("blob media type {media_type:?} does not match its content: {detail}"),
            Some("fix the producer's media type (tools that trust it will fail to read the layer)"),
            false,
        ),
        HygieneIssue::Unsupported { path, detail } => (
            path.clone(),
            format!("/{path}: unsupported entry ({detail})"),
            None,
            false,
        ),
    }
}
