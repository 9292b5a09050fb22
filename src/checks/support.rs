//! Small helpers shared by the check kinds: building findings and locations, looking at final-tree
//! nodes through hardlinks, and the `not applicable` outcomes.

use crate::image::tree::{Fate, NodeRef};
use crate::image::{Entry, MergedTree, Resolved};
use crate::report::{Finding, LayerRef, Location, RuleStatus, Severity};
use crate::rules::RuleId;

use super::{CheckInput, CheckOutcome};

/// A finding with the placeholder severity (the orchestrator sets the rule's effective one).
pub fn finding(
    rule_id: RuleId,
    message: String,
    help: Option<String>,
    location: Location,
) -> Finding {
    Finding {
        rule_id,
        severity: Severity::Note,
        message,
        help,
        location,
        evidence: None,
    }
}

/// The `LayerRef` of layer `index` of the image.
pub fn layer_ref(input: &CheckInput<'_>, index: usize) -> LayerRef {
    let info = input.image.layers.get(index);
    LayerRef {
        index,
        digest: info
            .map(|l| l.descriptor.digest.to_string())
            .unwrap_or_default(),
        diff_id: info.map(|l| l.diff_id.to_string()).unwrap_or_default(),
        created_by: info
            .and_then(|l| l.history.as_ref())
            .and_then(|h| h.created_by.clone()),
    }
}

/// A human fate: "visible", or "deleted by layer 7 — still shipped in layer 3's blob".
pub fn fate_text(input: &CheckInput<'_>, layer: usize, entry: usize) -> String {
    let fate = input
        .tree
        .fates
        .get(layer)
        .and_then(|f| f.get(entry))
        .copied()
        .unwrap_or(Fate::Visible);
    if input.tree.ships_as.contains_key(&NodeRef { layer, entry }) {
        return input.tree.describe_fate(NodeRef { layer, entry });
    }
    match fate {
        Fate::Visible => fate.describe(),
        other => format!(
            "{} — still shipped in layer {layer}'s blob",
            other.describe()
        ),
    }
}

/// The location of entry `entry` of layer `layer`.
pub fn entry_location(input: &CheckInput<'_>, layer: usize, entry: usize) -> Location {
    let path = input
        .listings
        .get(layer)
        .and_then(|l| l.entries.get(entry))
        .map(|e| e.path)
        .unwrap_or_default();
    Location::Entry {
        layer: layer_ref(input, layer),
        path: format!("/{path}"),
        fate: fate_text(input, layer, entry),
        offset: None,
        line: None,
    }
}

/// The location of a final-tree node.
pub fn node_location(input: &CheckInput<'_>, node: NodeRef) -> Location {
    entry_location(input, node.layer, node.entry)
}

/// A config location with a JSON pointer.
pub fn config_location(pointer: impl Into<String>) -> Location {
    Location::Config {
        pointer: pointer.into(),
    }
}

/// The entry that carries a node's inode data (mode, owner, content): a hardlink's origin.
pub fn inode<'a>(input: &CheckInput<'a>, node: NodeRef) -> Entry<'a> {
    let origin = input.tree.link_origin.get(&node).copied().unwrap_or(node);
    MergedTree::entry(input.listings, origin)
}

/// Resolve an absolute path in the final tree, following symlinks inside the root.
pub fn resolve(input: &CheckInput<'_>, path: &str) -> Resolved {
    input.tree.resolve(input.listings, path)
}

/// Why a path does not resolve, as a phrase.
pub fn unresolved_reason(r: &Resolved) -> String {
    match r {
        Resolved::Found { path, .. } => format!("resolves to /{}", path.trim_start_matches('/')),
        Resolved::Missing { path } => {
            format!("/{} does not exist", path.trim_start_matches('/'))
        }
        Resolved::Loop { path } => format!("symlink loop at /{}", path.trim_start_matches('/')),
        Resolved::NotADirectory { path } => {
            format!("/{} is not a directory", path.trim_start_matches('/'))
        }
    }
}

/// The captured content of a final-tree file (after symlinks, through hardlinks).
pub fn content<'a>(input: &CheckInput<'a>, path: &str) -> Option<&'a [u8]> {
    input.tree.content(input.listings, path)
}

/// An outcome for a rule that does not apply (no preset, no `--ref`): skipped, with the reason.
pub fn skipped(rule_id: RuleId, why: impl Into<String>) -> CheckOutcome {
    CheckOutcome {
        status: RuleStatus::Skipped,
        detail: Some(why.into()),
        ..CheckOutcome::from_findings(rule_id, Vec::new())
    }
}
