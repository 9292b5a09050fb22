//! The merged virtual filesystem, exactly per the OCI layer spec (whiteouts delete from lower layers only;
//! opaque markers apply before the layer's own entries wherever they sit; dir over dir merges, anything
//! else replaces; hardlinks are content references), with provenance: for every final path the layer that
//! supplied it, for every entry of every layer its [`Fate`]. Symlinks resolve inside the image root.

use std::collections::BTreeMap;
use std::fmt;
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
    /// is the supplying entry's own [`Entry::path`] (in its layer's buffer, not copied) unless a symlinked
    /// parent moved it.
    pub nodes: Nodes,
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
            nodes: Nodes::new(listings),
            fates: listings
                .iter()
                .map(|l| vec![Fate::Visible; l.entries.len()])
                .collect(),
            ..MergedTree::default()
        };
        // A node's layer is a 30-bit number (two bits of it flag the node): a manifest lists every layer,
        // so no image reaches 2³⁰ of them.
        for (layer, l) in listings.iter().enumerate().take(MAX_LAYERS) {
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
            for entry in 0..l.entries.len() {
                t.insert(listings, NodeRef { layer, entry });
                if t.nodes.overlay.len() >= COMPACT_AT
                    || t.nodes.dead > COMPACT_AT.max(t.nodes.slots.len() / 2)
                {
                    t.nodes.compact(listings);
                }
            }
        }
        t.nodes.compact(listings);
        // A hard link keeps its content alive after the original name is deleted: the original entry's
        // bytes ship under the link's name.
        let mut ships = Vec::new();
        for (path, n) in t.nodes.iter() {
            if let Some(&o) = t.link_origin.get(&n)
                && t.fates[o.layer][o.entry] != Fate::Visible
            {
                ships.push((o, path.to_string()));
            }
        }
        for (o, path) in ships {
            t.ships_as.entry(o).or_insert(path);
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
        let gone = if dir.is_empty() {
            self.nodes.drain_below("")
        } else {
            self.nodes.drain_below(&format!("{dir}/"))
        };
        for n in gone {
            self.set_fate(n, fate);
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

    /// Where a write to `path` lands: its parent is resolved through symlinks inside the root, as an
    /// extracting runtime would (`bin/x` with `bin -> usr/bin` lands at `usr/bin/x`).
    fn place(&mut self, listings: &[LayerListing], path: &str) -> String {
        self.moved(listings, path)
            .unwrap_or_else(|| path.to_string())
    }

    /// [`MergedTree::place`], `None` when the write lands at `path` itself (the common case: no copy).
    fn moved(&mut self, listings: &[LayerListing], path: &str) -> Option<String> {
        let (parent, base) = split(path);
        if parent.is_empty() || self.nodes.known_dir == parent {
            return None;
        }
        if self
            .nodes
            .get(parent)
            .is_some_and(|n| Self::entry(listings, n).is_dir())
        {
            // tar order keeps a directory's entries together: the next entry most likely has this parent
            self.nodes.known_dir.clear();
            self.nodes.known_dir.push_str(parent);
            return None;
        }
        match self.resolve(listings, parent) {
            Resolved::Found { path: p, node } if Self::entry(listings, node).is_dir() => {
                Some(join(&p, base)).filter(|moved| moved != path)
            }
            _ => None,
        }
    }

    fn insert(&mut self, listings: &[LayerListing], node: NodeRef) {
        let e = Self::entry(listings, node);
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
        let moved = self.moved(listings, e.path);
        let path = moved.as_deref().unwrap_or(e.path);
        if let Hardlink { target } = e.kind {
            let tp = self.place(listings, target);
            if let Some(t) = self.nodes.get(tp.as_str()) {
                let origin = self.link_origin.get(&t).copied().unwrap_or(t);
                if Self::entry(listings, origin).is_file() {
                    self.link_origin.insert(node, origin);
                }
            }
        }
        if let Some(old) = self.nodes.insert(listings, path, node) {
            self.set_fate(
                old,
                Fate::Overwritten {
                    by: layer_no(node.layer),
                },
            );
            if Self::entry(listings, old).is_dir() && !e.is_dir() {
                self.remove_under(
                    path,
                    Fate::Overwritten {
                        by: layer_no(node.layer),
                    },
                );
            }
        }
    }

    /// The entry behind a node.
    pub fn entry(listings: &[LayerListing], node: NodeRef) -> Entry<'_> {
        listings[node.layer].entries.at(node.entry)
    }

    /// The regular-file entry whose content `node` has (itself unless it is a hardlink).
    pub fn origin(&self, node: NodeRef) -> NodeRef {
        self.link_origin.get(&node).copied().unwrap_or(node)
    }

    fn has_children(&self, dir: &str) -> bool {
        self.nodes.has_below(&format!("{dir}/"))
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
            let Some(n) = self.nodes.get(cand.as_str()) else {
                if self.has_children(&cand) {
                    cur = cand;
                    continue;
                }
                return Resolved::Missing { path: cand };
            };
            match Self::entry(listings, n).kind {
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
            Some(node) => Resolved::Found { path: cur, node },
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

/// Layers a tree holds (a node's layer number has 30 bits).
const MAX_LAYERS: usize = 1 << 30;
/// Paths inserted since the last compaction that [`Nodes`] keeps in its ordered map before folding them
/// into the sorted slots (a fold moves every slot: folding once per layer cost 120 × a million moves on
/// a 120-layer image; this bounds the map to a few MiB).
const COMPACT_AT: usize = 1 << 15;
/// [`Slot::layer`] flags: the path is `moved[off]`; the node was removed (kept until the next compaction
/// so the slots stay sorted).
const MOVED: u32 = 1 << 31;
const DEAD: u32 = 1 << 30;

/// One node: its layer (with the flags above), its entry, and where its path is: `off..off + len` in the
/// layer's name buffer (16 bytes a node).
#[derive(Debug, Clone, Copy)]
struct Slot {
    layer: u32,
    entry: u32,
    off: u32,
    len: u32,
}

impl Slot {
    fn node(self) -> NodeRef {
        NodeRef {
            layer: (self.layer & (DEAD - 1)) as usize,
            entry: self.entry as usize,
        }
    }
    fn alive(self) -> bool {
        self.layer & DEAD == 0
    }
}

/// The final paths of a [`MergedTree`] in byte order, each with its node. A path is not copied: it is read
/// from the supplying layer's name buffer (shared with the listing), or, for the few writes a symlinked
/// parent moved, from the tree's own list. While merging, paths new since the last compaction wait in a
/// small ordered map.
#[derive(Clone, Default)]
pub struct Nodes {
    /// Sorted by path; removed nodes stay (flagged) until the next compaction.
    slots: Vec<Slot>,
    dead: usize,
    /// Each layer's name buffer.
    bufs: Vec<Arc<String>>,
    moved: Vec<Box<str>>,
    /// Paths inserted since the last compaction that have no slot.
    overlay: BTreeMap<Box<str>, NodeRef>,
    /// A path known to hold a directory node (`""`: none); forgotten whenever a node is removed or
    /// replaced.
    known_dir: String,
    /// Where the last search ended: the next one gallops from there (tar order is mostly path order).
    finger: Finger,
}

/// A search position, shared by readers (relaxed: it is only a hint).
#[derive(Default)]
struct Finger(std::sync::atomic::AtomicUsize);

impl Clone for Finger {
    fn clone(&self) -> Finger {
        Finger(std::sync::atomic::AtomicUsize::new(self.get()))
    }
}

impl Finger {
    fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn set(&self, i: usize) {
        self.0.store(i, std::sync::atomic::Ordering::Relaxed);
    }
}

impl fmt::Debug for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.slots
                    .iter()
                    .filter(|s| s.alive())
                    .map(|s| (self.key(*s), s.node())),
            )
            .entries(self.overlay.iter())
            .finish()
    }
}

impl<'a> IntoIterator for &'a Nodes {
    type Item = (&'a str, NodeRef);
    type IntoIter = Box<dyn DoubleEndedIterator<Item = (&'a str, NodeRef)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl Nodes {
    fn new(listings: &[LayerListing]) -> Nodes {
        Nodes {
            bufs: listings
                .iter()
                .map(|l| Arc::clone(l.entries.buffer()))
                .collect(),
            ..Nodes::default()
        }
    }

    fn key(&self, s: Slot) -> &str {
        if s.layer & MOVED != 0 {
            return self.moved.get(s.off as usize).map_or("", |m| m);
        }
        let (off, end) = (s.off as usize, s.off as usize + s.len as usize);
        self.bufs
            .get((s.layer & (DEAD - 1)) as usize)
            .and_then(|b| b.get(off..end))
            .unwrap_or_default()
    }

    /// Binary search of the slots, galloping out from the last search's position first (consecutive
    /// entries of a layer sit close together in path order, so most searches touch few cold slots).
    fn find(&self, path: &str) -> Result<usize, usize> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let n = self.slots.len();
        let cmp = |i: usize| self.key(self.slots[i]).as_bytes().cmp(path.as_bytes());
        let h = self.finger.get().min(n.saturating_sub(1));
        // [lo, hi) holds the answer
        let (mut lo, mut hi) = (0, n);
        if n > 0 {
            match cmp(h) {
                Equal => return Ok(h),
                Less => {
                    lo = h + 1;
                    let mut step = 1;
                    while h + step < n {
                        match cmp(h + step) {
                            Less => lo = h + step + 1,
                            Equal => {
                                self.finger.set(h + step);
                                return Ok(h + step);
                            }
                            Greater => {
                                hi = h + step;
                                break;
                            }
                        }
                        step *= 2;
                    }
                }
                Greater => {
                    hi = h;
                    let mut step = 1;
                    while step <= h {
                        match cmp(h - step) {
                            Greater => hi = h - step,
                            Equal => {
                                self.finger.set(h - step);
                                return Ok(h - step);
                            }
                            Less => {
                                lo = h - step + 1;
                                break;
                            }
                        }
                        step *= 2;
                    }
                }
            }
        }
        let r = self.slots[lo..hi]
            .binary_search_by(|s| self.key(*s).as_bytes().cmp(path.as_bytes()))
            .map(|i| i + lo)
            .map_err(|i| i + lo);
        self.finger.set(r.unwrap_or_else(|i| i));
        r
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<NodeRef> {
        if let Some(&n) = self.overlay.get(path) {
            return Some(n);
        }
        let i = self.find(path).ok()?;
        let s = self.slots[i];
        s.alive().then(|| s.node())
    }

    /// The stored path equal to `path` (the supplying entry's own unless moved), and its node.
    pub fn get_key_value(&self, path: &str) -> Option<(&str, NodeRef)> {
        if let Some((k, &n)) = self.overlay.get_key_value(path) {
            return Some((k, n));
        }
        let s = self.slots[self.find(path).ok()?];
        s.alive().then(|| (self.key(s), s.node()))
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.dead + self.overlay.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `(path, node)` in byte order of the paths (a merged tree is compacted: nothing waits).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, NodeRef)> + '_ {
        debug_assert!(self.overlay.is_empty());
        self.slots
            .iter()
            .filter(|s| s.alive())
            .map(|&s| (self.key(s), s.node()))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = NodeRef> + '_ {
        self.iter().map(|(_, n)| n)
    }

    /// Whether any node lies strictly below `prefix` (which ends in `/`).
    fn has_below(&self, prefix: &str) -> bool {
        let start = self.find(prefix).unwrap_or_else(|i| i);
        self.slots[start..]
            .iter()
            .take_while(|s| self.key(**s).starts_with(prefix))
            .any(|s| s.alive())
            || self
                .overlay
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .next()
                .is_some_and(|(k, _)| k.starts_with(prefix))
    }

    /// Remove every node whose path starts with `prefix`; their nodes.
    fn drain_below(&mut self, prefix: &str) -> Vec<NodeRef> {
        self.known_dir.clear();
        let mut gone = Vec::new();
        let start = self.find(prefix).unwrap_or_else(|i| i);
        for i in start..self.slots.len() {
            let s = self.slots[i];
            if !self.key(s).starts_with(prefix) {
                break;
            }
            if s.alive() {
                gone.push(s.node());
                self.slots[i].layer |= DEAD;
                self.dead += 1;
            }
        }
        let keys: Vec<Box<str>> = self
            .overlay
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            gone.extend(self.overlay.remove(&k));
        }
        gone
    }

    /// Remove `path`; its node.
    fn remove(&mut self, path: &str) -> Option<NodeRef> {
        self.known_dir.clear();
        if let Some(n) = self.overlay.remove(path) {
            return Some(n);
        }
        let i = self.find(path).ok()?;
        let s = self.slots[i];
        if !s.alive() {
            return None;
        }
        self.slots[i].layer |= DEAD;
        self.dead += 1;
        Some(s.node())
    }

    /// Put `node` at `path`; the node it replaces.
    fn insert(&mut self, listings: &[LayerListing], path: &str, node: NodeRef) -> Option<NodeRef> {
        // a path is in the slots or in the waiting map, never both
        match self.find(path) {
            Ok(i) => {
                let old = self.slots[i];
                if !old.alive() {
                    self.dead -= 1;
                }
                self.known_dir.clear();
                self.slots[i] = self.slot(listings, path, node);
                old.alive().then(|| old.node())
            }
            Err(_) => match self.overlay.entry(path.into()) {
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    self.known_dir.clear();
                    Some(std::mem::replace(o.get_mut(), node))
                }
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(node);
                    None
                }
            },
        }
    }

    /// The slot of `node` at `path`: pointing at the entry's own path when it is `path`.
    fn slot(&mut self, listings: &[LayerListing], path: &str, node: NodeRef) -> Slot {
        let layer = node.layer as u32;
        let entry = node.entry as u32;
        let entries = &listings[node.layer].entries;
        match entries.path_span(node.entry) {
            Some((off, len)) if entries.path(node.entry) == path => Slot {
                layer,
                entry,
                off,
                len,
            },
            _ => {
                // as many moved paths as entries of all layers: far below 2³² (each is a node in memory)
                let off = u32::try_from(self.moved.len()).unwrap_or(u32::MAX);
                self.moved.push(path.into());
                Slot {
                    layer: layer | MOVED,
                    entry,
                    off,
                    len: 0,
                }
            }
        }
    }

    /// Fold the waiting paths into the sorted slots and drop the removed ones.
    fn compact(&mut self, listings: &[LayerListing]) {
        if self.overlay.is_empty() && self.dead == 0 {
            return;
        }
        let mut slots = std::mem::take(&mut self.slots);
        if self.dead > 0 {
            slots.retain(|s| s.alive());
            self.dead = 0;
        }
        let waiting = std::mem::take(&mut self.overlay);
        let add: Vec<Slot> = waiting
            .iter()
            .map(|(k, &n)| self.slot(listings, k, n))
            .collect();
        drop(waiting);
        // merge from the back, in place (no path is in both: the map holds only paths without a slot)
        let (mut i, mut j) = (slots.len(), add.len());
        slots.reserve_exact(add.len());
        slots.resize(
            i + j,
            Slot {
                layer: DEAD,
                entry: 0,
                off: 0,
                len: 0,
            },
        );
        let mut k = i + j;
        while j > 0 {
            k -= 1;
            if i > 0 && self.key(slots[i - 1]).as_bytes() > self.key(add[j - 1]).as_bytes() {
                slots[k] = slots[i - 1];
                i -= 1;
            } else {
                slots[k] = add[j - 1];
                j -= 1;
            }
        }
        self.slots = slots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Entries, Entry};
    use rand::{Rng as _, SeedableRng as _};

    /// A layer of regular files, except the directories `dirs`.
    fn listing_with(paths: &[String], dirs: &[&str]) -> LayerListing {
        let es: Vec<Entry<'_>> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| Entry {
                path: p,
                kind: if dirs.contains(&p.as_str()) {
                    EntryKind::Dir
                } else {
                    EntryKind::File
                },
                mode: 0o644,
                ordinal: i as u32,
                uid: 0,
                gid: 0,
                size: 0,
                mtime: 0,
            })
            .collect();
        LayerListing {
            entries: Entries::from_entries(&es).unwrap(),
            ..LayerListing::default()
        }
    }

    fn listing(paths: &[String]) -> LayerListing {
        listing_with(paths, &[])
    }

    /// Random inserts (own and moved paths), removals, subtree removals and compactions, against a
    /// plain ordered map.
    #[test]
    fn nodes_behave_like_an_ordered_map() {
        let comps = ["a", "b", "a-", "a0", "ü", ""];
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let mut paths = Vec::new();
        for _ in 0..400 {
            let depth = rng.random_range(1..4);
            let p: Vec<&str> = (0..depth)
                .map(|_| comps[rng.random_range(0..comps.len() - 1)])
                .collect();
            paths.push(p.join("/"));
        }
        let listings = vec![listing(&paths), listing(&paths)];
        let mut nodes = Nodes::new(&listings);
        let mut model: BTreeMap<String, NodeRef> = BTreeMap::new();
        for step in 0..4000 {
            let layer = usize::from(step >= 2000);
            let entry = rng.random_range(0..paths.len());
            let node = NodeRef { layer, entry };
            let other = &paths[rng.random_range(0..paths.len())];
            match rng.random_range(0..10) {
                0..=4 => {
                    let p = &paths[entry];
                    assert_eq!(
                        nodes.insert(&listings, p, node),
                        model.insert(p.clone(), node)
                    );
                }
                5 => {
                    // a write a symlinked parent moved
                    assert_eq!(
                        nodes.insert(&listings, other, node),
                        model.insert(other.clone(), node)
                    );
                }
                6..=7 => assert_eq!(nodes.remove(other), model.remove(other)),
                8 => {
                    let prefix = format!("{other}/");
                    let mut got = nodes.drain_below(&prefix);
                    let mut want: Vec<NodeRef> = model
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .map(|(_, &n)| n)
                        .collect();
                    model.retain(|k, _| !k.starts_with(&prefix));
                    got.sort();
                    want.sort();
                    assert_eq!(got, want);
                }
                _ => nodes.compact(&listings),
            }
            let probe = &paths[rng.random_range(0..paths.len())];
            assert_eq!(nodes.get(probe), model.get(probe).copied());
            assert_eq!(
                nodes.has_below(&format!("{probe}/")),
                model.keys().any(|k| k.starts_with(&format!("{probe}/")))
            );
            assert_eq!(nodes.len(), model.len());
        }
        nodes.compact(&listings);
        let got: Vec<(String, NodeRef)> = nodes.iter().map(|(k, n)| (k.to_string(), n)).collect();
        let want: Vec<(String, NodeRef)> = model.into_iter().collect();
        assert_eq!(got, want, "byte order of the paths, every node once");
        let rev: Vec<&str> = nodes.keys().rev().collect();
        assert!(rev.windows(2).all(|w| w[0] > w[1]));
    }

    /// Enough entries in one layer to fold the waiting map several times mid-layer, a 64 KiB path, and
    /// a directory replaced by a file after its children were folded.
    #[test]
    fn large_layers_fold_mid_layer_and_keep_semantics() {
        let long = format!("d/{}", "x".repeat(64 * 1024));
        let mut paths: Vec<String> = (0..COMPACT_AT * 2 + 10)
            .map(|i| format!("d/{:x}", i.wrapping_mul(2_654_435_761) % (1 << 40)))
            .collect();
        paths.insert(0, "d".into());
        paths.push(long.clone());
        let mut top = listing(&["d".into(), "e".into()]);
        top.whiteouts.push(long.clone());
        let listings = vec![listing_with(&paths, &["d"]), top];
        let t = MergedTree::merge(&listings);
        // layer 1 replaces the directory `d` with a file: everything below is gone
        assert_eq!(t.nodes.keys().collect::<Vec<_>>(), ["d", "e"]);
        assert_eq!(t.nodes.get("d"), Some(NodeRef { layer: 1, entry: 0 }));
        assert_eq!(t.fates[0][1], Fate::Overwritten { by: 1 });
        assert_eq!(t.fates[0][paths.len() - 1], Fate::Deleted { by: 1 });

        let t = MergedTree::merge(&listings[..1]);
        assert_eq!(t.nodes.len(), paths.len());
        let (k, n) = t.nodes.get_key_value(&long).unwrap();
        assert_eq!(k.len(), long.len());
        assert!(std::ptr::eq(k, listings[0].entries.path(n.entry)));
        assert!(
            t.nodes
                .keys()
                .collect::<Vec<_>>()
                .windows(2)
                .all(|w| w[0] < w[1])
        );
    }
}
