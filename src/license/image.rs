//! The bridge from the image reader's output (layer listings with captured contents, the merged tree) to
//! the inventory's inputs ([`CapturedFile`], [`FinalFiles`]).

use super::PresetLicense;
use super::model::{CapturedFile, FinalFiles, Inventory};
use crate::cache::LayerCache;
use crate::image::{LayerListing, MergedTree};

/// Final-tree lookups through [`MergedTree::content`].
pub struct TreeFiles<'a> {
    pub tree: &'a MergedTree,
    pub listings: &'a [LayerListing],
}

impl FinalFiles for TreeFiles<'_> {
    fn content(&self, path: &str) -> Option<&[u8]> {
        self.tree.content(self.listings, path)
    }
}

/// Every captured file of every layer, plus `package.json` entries that exist but were too large to
/// capture (so they are reported, not silently skipped).
pub fn captured_files<'a>(
    listings: &'a [LayerListing],
    tree: &MergedTree,
) -> Vec<CapturedFile<'a>> {
    let mut out = Vec::new();
    for l in listings {
        let fates = tree.fates.get(l.index);
        let fate = |i: usize| {
            fates
                .and_then(|f| f.get(i))
                .map_or_else(|| "unknown".to_string(), crate::image::tree::Fate::describe)
        };
        for (&i, bytes) in &l.captured {
            if let Some(e) = l.entries.get(i) {
                out.push(CapturedFile {
                    layer: l.index,
                    path: e.path,
                    content: Some(bytes),
                    fate: fate(i),
                });
            }
        }
        for (i, e) in l.entries.iter().enumerate() {
            if e.is_file()
                && e.size > 0
                && (e.path == "package.json" || e.path.ends_with("/package.json"))
                && !l.captured.contains_key(&i)
            {
                out.push(CapturedFile {
                    layer: l.index,
                    path: e.path,
                    content: None,
                    fate: fate(i),
                });
            }
        }
    }
    out
}

/// The inventory of an image read with (at least) [`super::capture_globs`]; license text-match
/// results are kept in `cache` when given.
pub fn inventory(
    listings: &[LayerListing],
    tree: &MergedTree,
    preset: Option<&PresetLicense>,
    cache: Option<&LayerCache>,
) -> Inventory {
    let files = captured_files(listings, tree);
    Inventory::collect_cached(&files, &TreeFiles { tree, listings }, preset, cache)
}
