//! Layer merge: up to four layer tars (split on a marker), merged, then paths resolved inside the root.
#![no_main]
use libfuzzer_sys::fuzz_target;
use x1_validate::image::MergedTree;

include!("common.rs");

const SPLIT: &[u8] = b"\n--LAYER--\n";

fuzz_target!(|data: &[u8]| {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while parts.len() < 3 {
        match rest.windows(SPLIT.len()).position(|w| w == SPLIT) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SPLIT.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    let listings: Vec<LayerListing> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| listing(i, p))
        .collect();
    let tree = MergedTree::merge(&listings);
    for p in ["etc/passwd", "/x1/bin/entrypoint", "a/b/../c", "/"] {
        let _ = tree.resolve(&listings, p);
        let _ = tree.content(&listings, p);
    }
    for l in &listings {
        for e in l.entries.iter().take(64) {
            let _ = tree.resolve(&listings, &e.path);
        }
    }
});
