//! `credential-file`: every non-directory entry of every layer (deleted and overwritten ones included)
//! against the credential-file kinds of `rules/credentials.toml`, with their content conditions
//! evaluated on the captured bytes (through hardlinks).

use super::support::{entry_location, finding};
use super::{CheckInput, CheckOutcome};
use crate::image::tree::NodeRef;
use crate::image::{EntryKind, LayerListing};
use crate::rules::{CredentialFile, RuleId};

const ID: RuleId = RuleId::CredentialFile;

/// `credential-file`.
pub fn check(input: &CheckInput<'_>) -> CheckOutcome {
    let kinds = &input.rules.credentials;
    let mut findings = Vec::new();
    for listing in input.listings {
        for (idx, entry) in listing.entries.iter().enumerate() {
            if matches!(entry.kind, EntryKind::Dir | EntryKind::Symlink { .. }) {
                continue;
            }
            let Some(kind) = kinds.file_kind(entry.path) else {
                continue;
            };
            let node = NodeRef {
                layer: listing.index,
                entry: idx,
            };
            let Some(why) = verdict(input, kind, node) else {
                continue;
            };
            findings.push(finding(
                ID,
                format!("/{}: {}{why}", entry.path, kind.description),
                Some(
                    "remove it from the build context and rebuild; deleting it in a later layer does \
                     not remove it from the image. Rotate any credential it held."
                        .into(),
                ),
                entry_location(input, listing.index, idx),
            ));
        }
    }
    CheckOutcome::from_findings(ID, findings)
}

/// `None` when the entry is not a credential after all (content condition not met), otherwise a
/// suffix for the message.
fn verdict(input: &CheckInput<'_>, kind: &CredentialFile, node: NodeRef) -> Option<&'static str> {
    let Some(re) = &kind.content else {
        return Some("");
    };
    let origin = input.tree.link_origin.get(&node).copied().unwrap_or(node);
    let listing: &LayerListing = input.listings.get(origin.layer)?;
    let entry = listing.entries.get(origin.entry)?;
    if entry.size == 0 {
        return None;
    }
    match listing.captured.get(&origin.entry) {
        Some(bytes) => re.is_match(bytes).then_some(""),
        None => Some(" (too large to inspect; treated as a credential)"),
    }
}
