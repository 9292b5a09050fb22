//! The merged virtual filesystem, exactly per the OCI layer spec (whiteouts delete from lower layers only;
//! opaque markers apply before the layer's own entries wherever they sit; dir over dir merges, anything
//! else replaces; hardlinks are content references), with provenance: for every final path the layer that
//! supplied it, for every entry of every layer its [`Fate`]. Symlinks resolve inside the image root.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Entry, LayerListing};

/// Where an entry lives: layer index and index into that layer's `entries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NodeRef {
    pub layer: usize,
    pub entry: usize,
}

/// What became of one entry of one layer in the final filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "fate", rename_all = "kebab-case")]
pub enum Fate {
    /// Present in the final filesystem.
    Visible,
    /// Replaced by an entry for the same path in layer `by` (a later entry in the same layer is a
    /// duplicate: `by` equals its own layer).
    Overwritten { by: usize },
    /// Removed by a `.wh.` whiteout in layer `by`.
    Deleted { by: usize },
    /// Hidden by an opaque marker in layer `by`.
    HiddenByOpaque { by: usize },
}

impl Fate {
    /// A human phrase: "visible", "deleted by layer 7", …
    pub fn describe(&self) -> String {
        match self {
            Fate::Visible => "visible".into(),
            Fate::Overwritten { by } => format!("overwritten by layer {by}"),
            Fate::Deleted { by } => format!("deleted by layer {by}"),
            Fate::HiddenByOpaque { by } => format!("hidden by an opaque directory in layer {by}"),
        }
    }
}

/// Result of resolving a path inside the image root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The path after all symlinks, and the node there.
    Found { path: String, node: NodeRef },
    /// A component does not exist (`path` is the resolved prefix that was missing).
    Missing { path: String },
    /// More than 40 symlink hops.
    Loop { path: String },
    /// A non-directory was used as a directory.
    NotADirectory { path: String },
}

/// The final filesystem of one image.
#[derive(Debug, Clone, Default)]
pub struct MergedTree {
    /// Final path → node that supplies it. The root `""` is always present conceptually, not stored.
    pub nodes: BTreeMap<String, NodeRef>,
    /// `fates[layer][entry]`.
    pub fates: Vec<Vec<Fate>>,
    /// Hardlink entry → the regular-file entry whose content it shares.
    pub link_origin: BTreeMap<NodeRef, NodeRef>,
}

impl MergedTree {
    /// Fold the listings (in layer order) into the final tree.
    pub fn merge(listings: &[LayerListing]) -> MergedTree {
        let _ = listings;
        todo!("image helper: implement")
    }

    /// The entry behind a node.
    pub fn entry<'a>(listings: &'a [LayerListing], node: NodeRef) -> &'a Entry {
        &listings[node.layer].entries[node.entry]
    }

    /// Resolve `path` (absolute or relative to `/`) inside the root, following symlinks in every
    /// component including the last (absolute targets from the image root, `..` clamped at the root,
    /// at most 40 hops).
    pub fn resolve(&self, listings: &[LayerListing], path: &str) -> Resolved {
        let _ = (listings, path);
        todo!("image helper: implement")
    }

    /// The captured content of the file at final `path` (after symlinks, through hardlinks), if captured.
    pub fn content<'a>(&self, listings: &'a [LayerListing], path: &str) -> Option<&'a [u8]> {
        let _ = (listings, path);
        todo!("image helper: implement")
    }

    /// The captured head bytes of the file at final `path` (after symlinks, through hardlinks).
    pub fn head<'a>(&self, listings: &'a [LayerListing], path: &str) -> Option<&'a [u8]> {
        let _ = (listings, path);
        todo!("image helper: implement")
    }
}
