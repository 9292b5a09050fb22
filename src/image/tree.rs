//! The merged virtual filesystem, exactly per the OCI layer spec (whiteouts delete from lower layers only;
//! opaque markers apply before the layer's own entries wherever they sit; dir over dir merges, anything
//! else replaces; hardlinks are content references), with provenance: for every final path the layer that
//! supplied it, for every entry of every layer its [`Fate`]. Symlinks resolve inside the image root.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use serde::Serialize;

use super::EntryKind::{self, Hardlink, Symlink};
use super::whiteout::{join, split};
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
    Overwritten { by: u32 },
    /// Removed by a `.wh.` whiteout in layer `by`.
    Deleted { by: u32 },
    /// Hidden by an opaque marker in layer `by`.
    HiddenByOpaque { by: u32 },
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

/// A layer index as a [`Fate`] holds it (8 bytes a fate, one fate per entry of every layer; an image has
/// far fewer than 2³² layers: its manifest lists each).
fn layer_no(layer: usize) -> u32 {
    u32::try_from(layer).unwrap_or(u32::MAX)
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
    /// Final path → node that supplies it. The root `""` is always present conceptually, not stored. A key
    /// is the supplying entry's own [`Entry::path`] (shared, not copied) unless a symlinked parent moved it.
    pub nodes: BTreeMap<Arc<str>, NodeRef>,
    /// `fates[layer][entry]`.
    pub fates: Vec<Vec<Fate>>,
    /// Hardlink entry → the regular-file entry whose content it shares.
    pub link_origin: BTreeMap<NodeRef, NodeRef>,
    /// The entry that supplies the root directory's attributes (a `./` member), if any layer has one.
    pub root: Option<NodeRef>,
    /// Regular-file entries that are gone under their own name (deleted, overwritten, hidden) but whose
    /// content still ships in the final filesystem through a visible hard link: entry → the link's
    /// final path.
    pub ships_as: BTreeMap<NodeRef, String>,
}

impl MergedTree {
    /// Fold the listings (in layer order) into the final tree.
    pub fn merge(listings: &[LayerListing]) -> MergedTree {
        let mut t = MergedTree {
            fates: listings
                .iter()
                .map(|l| vec![Fate::Visible; l.entries.len()])
                .collect(),
            ..MergedTree::default()
        };
        for (layer, l) in listings.iter().enumerate() {
            // Pass 1: opaque markers and whiteouts apply to the lower layers only, wherever they sit.
            for d in &l.opaque_dirs {
                let d = t.place(listings, d);
                t.remove_under(
                    &d,
                    Fate::HiddenByOpaque {
                        by: layer_no(layer),
                    },
                );
            }
            for w in &l.whiteouts {
                let w = t.place(listings, w);
                t.remove(
                    &w,
                    Fate::Deleted {
                        by: layer_no(layer),
                    },
                );
            }
            // Pass 2: the layer's own entries, in tar order.
            for (entry, e) in l.entries.iter().enumerate() {
                t.insert(listings, NodeRef { layer, entry }, e);
            }
        }
        // A hard link keeps its content alive after the original name is deleted: the original entry's
        // bytes ship under the link's name.
        for (path, n) in &t.nodes {
            if let Some(&o) = t.link_origin.get(n)
                && t.fates[o.layer][o.entry] != Fate::Visible
            {
                t.ships_as.entry(o).or_insert_with(|| path.to_string());
            }
        }
        t
    }

    /// What became of an entry, in words, including when its content ships through a hard link:
    /// "deleted by layer 2 — its content ships in the final filesystem as /b/link (a hard link)".
    pub fn describe_fate(&self, node: NodeRef) -> String {
        let fate = self
            .fates
            .get(node.layer)
            .and_then(|f| f.get(node.entry))
            .copied()
            .unwrap_or(Fate::Visible);
        match self.ships_as.get(&node) {
            Some(link) => format!(
                "{} — its content ships in the final filesystem as /{link} (a hard link to it)",
                fate.describe()
            ),
            None => fate.describe(),
        }
    }

    fn set_fate(&mut self, n: NodeRef, f: Fate) {
        self.fates[n.layer][n.entry] = f;
    }

    /// Remove everything strictly below `dir` (`""` = the root).
    fn remove_under(&mut self, dir: &str, fate: Fate) {
        let gone: Vec<Arc<str>> = if dir.is_empty() {
            self.nodes.keys().cloned().collect()
        } else {
            let prefix = format!("{dir}/");
            self.below(&prefix).map(|(k, _)| k.clone()).collect()
        };
        for k in gone {
            if let Some(n) = self.nodes.remove(&k) {
                self.set_fate(n, fate);
            }
        }
    }

    /// Remove `path` and everything below it.
    fn remove(&mut self, path: &str, fate: Fate) {
        if path.is_empty() {
            return;
        }
        if let Some(n) = self.nodes.remove(path) {
            self.set_fate(n, fate);
        }
        self.remove_under(path, fate);
    }

    /// The nodes strictly below `prefix` (which ends in `/`), in byte order.
    fn below<'s>(&'s self, prefix: &'s str) -> impl Iterator<Item = (&'s Arc<str>, &'s NodeRef)> {
        self.nodes
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Where a write to `path` lands: its parent is resolved through symlinks inside the root, as an
    /// extracting runtime would (`bin/x` with `bin -> usr/bin` lands at `usr/bin/x`).
    fn place(&self, listings: &[LayerListing], path: &str) -> String {
        self.moved(listings, path)
            .unwrap_or_else(|| path.to_string())
    }

    /// [`MergedTree::place`], `None` when the write lands at `path` itself (the common case: no copy).
    fn moved(&self, listings: &[LayerListing], path: &str) -> Option<String> {
        let (parent, base) = split(path);
        if parent.is_empty()
            || self
                .nodes
                .get(parent)
                .is_some_and(|n| Self::entry(listings, *n).is_dir())
        {
            return None;
        }
        match self.resolve(listings, parent) {
            Resolved::Found { path: p, node } if Self::entry(listings, node).is_dir() => {
                Some(join(&p, base)).filter(|moved| moved != path)
            }
            _ => None,
        }
    }

    fn insert(&mut self, listings: &[LayerListing], node: NodeRef, e: &Entry) {
        if e.path.is_empty() {
            if let Some(old) = self.root.replace(node) {
                self.set_fate(
                    old,
                    Fate::Overwritten {
                        by: layer_no(node.layer),
                    },
                );
            }
            return;
        }
        let path: Arc<str> = match self.moved(listings, &e.path) {
            Some(moved) => moved.into(),
            None => Arc::clone(&e.path),
        };
        if let Hardlink { target } = &e.kind {
            let tp = self.place(listings, target);
            if let Some(&t) = self.nodes.get(tp.as_str()) {
                let origin = self.link_origin.get(&t).copied().unwrap_or(t);
                if Self::entry(listings, origin).is_file() {
                    self.link_origin.insert(node, origin);
                }
            }
        }
        if let Some(old) = self.nodes.insert(Arc::clone(&path), node) {
            self.set_fate(
                old,
                Fate::Overwritten {
                    by: layer_no(node.layer),
                },
            );
            if Self::entry(listings, old).is_dir() && !e.is_dir() {
                self.remove_under(
                    &path,
                    Fate::Overwritten {
                        by: layer_no(node.layer),
                    },
                );
            }
        }
    }

    /// The entry behind a node.
    pub fn entry(listings: &[LayerListing], node: NodeRef) -> &Entry {
        &listings[node.layer].entries[node.entry]
    }

    /// The regular-file entry whose content `node` has (itself unless it is a hardlink).
    pub fn origin(&self, node: NodeRef) -> NodeRef {
        self.link_origin.get(&node).copied().unwrap_or(node)
    }

    fn has_children(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.below(&prefix).next().is_some()
    }

    /// Resolve `path` (absolute or relative to `/`) inside the root, following symlinks in every
    /// component including the last (absolute targets from the image root, `..` clamped at the root,
    /// at most 40 hops).
    pub fn resolve(&self, listings: &[LayerListing], path: &str) -> Resolved {
        let mut pending: Vec<String> = comps(path);
        let mut cur = String::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            if c == ".." {
                cur = split(&cur).0.to_string();
                continue;
            }
            let cand = join(&cur, &c);
            let Some(&n) = self.nodes.get(cand.as_str()) else {
                if self.has_children(&cand) {
                    cur = cand;
                    continue;
                }
                return Resolved::Missing { path: cand };
            };
            match &Self::entry(listings, n).kind {
                Symlink { target } => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Resolved::Loop { path: cand };
                    }
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    pending.extend(comps(target));
                }
                EntryKind::Dir => cur = cand,
                _ if pending.is_empty() => {
                    return Resolved::Found {
                        path: cand,
                        node: n,
                    };
                }
                _ => return Resolved::NotADirectory { path: cand },
            }
        }
        if cur.is_empty() {
            return match self.root {
                Some(node) => Resolved::Found { path: cur, node },
                None => Resolved::Missing { path: cur },
            };
        }
        match self.nodes.get(cur.as_str()) {
            Some(&node) => Resolved::Found { path: cur, node },
            None => Resolved::Missing { path: cur },
        }
    }

    /// The captured content of the file at final `path` (after symlinks, through hardlinks), if captured.
    pub fn content<'a>(&self, listings: &'a [LayerListing], path: &str) -> Option<&'a [u8]> {
        let Resolved::Found { node, .. } = self.resolve(listings, path) else {
            return None;
        };
        let o = self.origin(node);
        listings[o.layer].captured.get(&o.entry).map(Vec::as_slice)
    }

    /// The captured head bytes of the file at final `path` (after symlinks, through hardlinks).
    pub fn head<'a>(&self, listings: &'a [LayerListing], path: &str) -> Option<&'a [u8]> {
        let Resolved::Found { node, .. } = self.resolve(listings, path) else {
            return None;
        };
        let o = self.origin(node);
        let l = &listings[o.layer];
        l.heads
            .get(o.entry)
            .or_else(|| l.captured.get(&o.entry).map(Vec::as_slice))
    }
}

/// Symlink hops allowed while resolving (Linux's limit).
pub const MAX_HOPS: usize = 40;

/// Path components in reverse order (for a stack), without empty and `.` components.
fn comps(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .rev()
        .map(String::from)
        .collect()
}
