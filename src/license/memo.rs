//! License texts matched ahead of time, on a core the layer pass leaves idle.
//!
//! The layer pass ([`crate::image::layer::read_some`]) runs a shared queue of layers on every core;
//! once the queue is empty, a worker that finishes its last layer would idle while the others finish
//! theirs. It calls [`TextMemo::speculate`] instead, with the layers finished so far: the license
//! texts those layers captured and the inventory could ask for ([`candidates`]) are identified and
//! their results kept here, keyed by the text's SHA-256. [`super::inventory`] then reads this memo
//! first, exactly as it reads the text-match cache: a memoised result is charged to the inventory's
//! budget what it cost when computed, and one that budget cannot pay for is matched again with what
//! is left. So speculation never changes a result; it only moves work.
//!
//! Bounds: speculation draws on its own budget of [`textmatch::BUDGET`] analyses (so it does at most
//! what one inventory may do, and the memo holds at most that many results: each costs at least one
//! analysis); [`TextMemo::stop`] spends that budget when the pass ends, so a run still going stops at
//! its next analysis and is not kept (a result cut short is never memoised); and texts whose result
//! the cache already holds are not matched again. The memo holds results, never texts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::dpkg::{self, Copyright};
use super::expr::SpdxExpr;
use super::inventory::is_license_file;
use super::npm::{self, Declared};
use super::textmatch::{self, Budget, TextMatch, Unidentified};
use crate::cache::LayerCache;
use crate::image::LayerListing;
use crate::image::layer::Idle;

/// `X1_VALIDATE_NO_PREMATCH=1`: no speculation (for comparisons: reports must not change).
pub const OFF_ENV: &str = "X1_VALIDATE_NO_PREMATCH";

/// Whether speculation is off: by [`OFF_ENV`], or because the license checks are skipped
/// (`X1_VALIDATE_BENCH_SKIP_LICENSES=1`).
pub fn off() -> bool {
    let on = |name: &str| std::env::var_os(name).is_some_and(|v| v == "1");
    on(OFF_ENV) || on(crate::checks::licenses::BENCH_SKIP_ENV)
}

/// Keys kept at most (results, pending runs and texts the cache already had).
const MAX_KEYS: usize = 2 * textmatch::BUDGET;

type Key = [u8; 32];

#[derive(Debug)]
enum Slot {
    /// Being matched by a speculative run.
    Pending,
    /// The cache holds it, or a run was cut short: not matched here.
    Skipped,
    Done {
        cost: usize,
        result: Box<Result<TextMatch, Unidentified>>,
    },
}

/// The per-run memo of speculative text-match results (see the module docs).
#[derive(Debug)]
pub struct TextMemo {
    slots: Mutex<HashMap<Key, Slot>>,
    /// Speculation's own budget; spent by [`TextMemo::stop`].
    budget: Budget,
}

impl Default for TextMemo {
    fn default() -> Self {
        TextMemo::new()
    }
}

impl TextMemo {
    pub fn new() -> TextMemo {
        TextMemo {
            slots: Mutex::new(HashMap::new()),
            budget: Budget::new(textmatch::BUDGET),
        }
    }

    fn key(text: &[u8]) -> Key {
        Sha256::digest(text).into()
    }

    /// The memoised result for `text` and what it cost.
    pub fn get(&self, text: &[u8]) -> Option<(usize, Result<TextMatch, Unidentified>)> {
        let slots = self.slots.lock().ok()?;
        match slots.get(&Self::key(text))? {
            Slot::Done { cost, result } => Some((*cost, result.as_ref().clone())),
            Slot::Pending | Slot::Skipped => None,
        }
    }

    /// Results held.
    pub fn len(&self) -> usize {
        self.slots.lock().map_or(0, |s| {
            s.values()
                .filter(|v| matches!(v, Slot::Done { .. }))
                .count()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pass is over: a speculative run still going stops at its next analysis (and is not kept),
    /// and no other starts.
    pub fn stop(&self) {
        self.budget.spend_all();
    }

    /// Match the candidate texts of the `finished` layers until they are done, the speculative budget
    /// is spent or [`TextMemo::stop`] is called: first the texts found by their paths alone,
    /// smallest first (the window is short, ≈ 0.1 s on the corpus, and a run it cuts short is lost,
    /// so many short runs keep more than one long one), then the license files of npm packages
    /// whose `package.json` declares no SPDX expression (each manifest parsed only then).
    pub fn speculate(&self, finished: &[&LayerListing], cache: Option<&LayerCache>) {
        // (text, whether it is a copyright file: free-form ones only, parsed only now)
        let mut texts: Vec<(&[u8], bool)> = Vec::new();
        let mut npm: Vec<(&[u8], &[u8])> = Vec::new();
        for l in finished {
            let c = candidates(l);
            texts.extend(c.copyrights.into_iter().map(|t| (t, true)));
            texts.extend(c.texts.into_iter().map(|t| (t, false)));
            npm.extend(c.npm);
        }
        texts.sort_unstable_by_key(|(t, _)| t.len());
        for (text, copyright) in texts {
            if self.budget.is_spent() {
                return;
            }
            if !copyright || free_form(text) {
                self.prematch(text, cache);
            }
        }
        for (manifest, text) in npm {
            if self.budget.is_spent() {
                return;
            }
            if !declares_spdx(manifest) {
                self.prematch(text, cache);
            }
        }
    }

    /// Match one text speculatively and keep its result, unless it is known already, the cache holds
    /// it, the memo is full, or the run is cut short.
    pub fn prematch(&self, text: &[u8], cache: Option<&LayerCache>) {
        let key = Self::key(text);
        {
            let Ok(mut slots) = self.slots.lock() else {
                return;
            };
            if slots.len() >= MAX_KEYS || slots.contains_key(&key) {
                return;
            }
            slots.insert(key, Slot::Pending);
        }
        let slot = match textmatch::prematch(text, &self.budget, cache) {
            // Free results (an empty text) are not worth a slot: the inventory finds them at once.
            Some((result, cost)) if cost > 0 => Slot::Done {
                cost,
                result: Box::new(result),
            },
            _ => Slot::Skipped,
        };
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(key, slot);
        }
    }
}

/// [`TextMemo::speculate`] as the layer pass's [`Idle`] work.
pub struct Prematch<'a> {
    pub memo: &'a TextMemo,
    pub cache: Option<&'a LayerCache>,
}

impl Idle for Prematch<'_> {
    fn work(&self, finished: &[&LayerListing]) {
        self.memo.speculate(finished, self.cache);
    }

    fn stop(&self) {
        self.memo.stop();
    }
}

/// What [`candidates`] finds in one layer.
#[derive(Debug, Default)]
pub struct Candidates<'a> {
    /// Debian copyright files: a candidate when free-form (not DEP-5).
    pub copyrights: Vec<&'a [u8]>,
    /// Loose license files.
    pub texts: Vec<&'a [u8]>,
    /// (`package.json`, license file) of npm package directories: a candidate when the manifest
    /// declares no SPDX expression.
    pub npm: Vec<(&'a [u8], &'a [u8])>,
}

/// The captured texts of one layer that the inventory ([`super::inventory`]) may ask to identify,
/// found by their paths alone (cheap: contents are parsed only when a text's turn comes): a
/// free-form Debian copyright file; the first license file (by name) of a directory whose
/// `package.json` (in the same layer) declares no SPDX expression; a license file in no npm package
/// directory of the layer, outside `usr/share/doc/`, `usr/share/common-licenses/` and
/// `node_modules/`. Only a guess (what other layers hold is not known yet): a text guessed wrongly
/// costs idle time, a text missed is matched by the inventory.
pub fn candidates(listing: &LayerListing) -> Candidates<'_> {
    let mut out = Candidates::default();
    // directory → its license files (path, bytes)
    let mut licenses: BTreeMap<&str, Vec<(&str, &[u8])>> = BTreeMap::new();
    // directories with an npm package root → its manifest
    let mut roots: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (&i, bytes) in &listing.captured {
        let Some(e) = listing.entries.get(i) else {
            continue;
        };
        let path = e.path;
        let (dir, _) = path.rsplit_once('/').unwrap_or(("", path));
        if npm::package_root(path).is_some() {
            roots.insert(dir, bytes);
        } else if is_copyright(path) {
            out.copyrights.push(bytes);
        } else if is_license_file(path) {
            licenses.entry(dir).or_default().push((path, bytes));
        }
    }
    for (dir, mut files) in licenses {
        files.sort_unstable_by_key(|(p, _)| *p);
        if let Some(manifest) = roots.get(dir) {
            out.npm.push((manifest, files[0].1));
            continue;
        }
        let in_package = std::iter::successors(Some(dir), |d| d.rsplit_once('/').map(|(up, _)| up))
            .skip(1)
            .any(|up| roots.contains_key(up));
        let path = files[0].0;
        if !in_package
            && !path.starts_with("usr/share/doc/")
            && !path.starts_with("usr/share/common-licenses/")
            && !path.contains("node_modules/")
        {
            out.texts.extend(files.iter().map(|(_, b)| *b));
        }
    }
    out
}

/// Whether a Debian copyright file is free-form (its text is then identified).
fn free_form(text: &[u8]) -> bool {
    matches!(
        dpkg::parse_copyright(&String::from_utf8_lossy(text)),
        Copyright::FreeForm
    )
}

/// Whether an npm manifest declares an SPDX expression (then its license file is not read).
fn declares_spdx(manifest: &[u8]) -> bool {
    npm::parse_manifest(manifest).is_some_and(|m| match &m.license {
        Declared::Text(t) => SpdxExpr::declared(t).is_ok(),
        Declared::Malformed(_) | Declared::Missing => false,
    })
}

/// `usr/share/doc/<pkg>/copyright`.
fn is_copyright(path: &str) -> bool {
    path.strip_prefix("usr/share/doc/")
        .and_then(|r| r.strip_suffix("/copyright"))
        .is_some_and(|n| !n.is_empty() && !n.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::textmatch::identify_with;

    fn mit(holder: &str) -> String {
        let (_, text) = spdx::text::LICENSE_TEXTS
            .iter()
            .find(|(n, _)| *n == "MIT")
            .expect("MIT text");
        format!("MIT License\n\nCopyright (c) 2024 {holder}\n\n{text}")
    }

    #[test]
    fn a_memo_hit_is_the_same_result_charged_the_same() {
        let text = mit("A");
        let cold_budget = Budget::new(textmatch::BUDGET);
        let (cold, cold_drawn) = identify_with(text.as_bytes(), &cold_budget, None, None);
        let memo = TextMemo::new();
        memo.prematch(text.as_bytes(), None);
        let (cost, _) = memo.get(text.as_bytes()).expect("memoised");
        assert_eq!(cost, cold_drawn.cost);
        assert!(cost >= 1);
        let warm_budget = Budget::new(textmatch::BUDGET);
        let (warm, warm_drawn) = identify_with(text.as_bytes(), &warm_budget, None, Some(&memo));
        assert_eq!(warm_drawn, cold_drawn);
        let (cold, warm) = (cold.expect("cold"), warm.expect("warm"));
        assert_eq!(warm.expression.as_str(), "MIT");
        assert_eq!(
            (warm.expression.as_str(), warm.score, &warm.terms),
            (cold.expression.as_str(), cold.score, &cold.terms)
        );
        // A budget that cannot pay the memoised cost: matched again with what is left, cut short.
        let none = Budget::new(cost - 1);
        let (short, d) = identify_with(text.as_bytes(), &none, None, Some(&memo));
        assert_eq!(short.expect_err("no budget"), Unidentified::BudgetSpent);
        assert!(d.cut);
        // Another text is no hit.
        assert!(memo.get(mit("B").as_bytes()).is_none());
    }

    #[test]
    fn a_stopped_speculation_keeps_nothing() {
        let memo = TextMemo::new();
        memo.stop();
        memo.prematch(mit("A").as_bytes(), None);
        assert!(memo.get(mit("A").as_bytes()).is_none());
        assert!(memo.is_empty());
        // Empty texts cost nothing and are not kept either.
        let memo = TextMemo::new();
        memo.prematch(b"  \n", None);
        assert!(memo.is_empty());
        memo.prematch(mit("A").as_bytes(), None);
        assert_eq!(memo.len(), 1);
    }

    #[test]
    fn a_text_the_cache_holds_is_not_matched_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LayerCache::open(dir.path(), 1 << 20, "ctx").expect("open");
        let text = mit("C");
        let memo = TextMemo::new();
        memo.prematch(text.as_bytes(), Some(&cache));
        assert_eq!(memo.len(), 1, "cold: matched, and stored in the cache");
        let again = TextMemo::new();
        again.prematch(text.as_bytes(), Some(&cache));
        assert!(again.is_empty(), "warm: left to the cache");
        let b = Budget::new(textmatch::BUDGET);
        let (r, _) = identify_with(text.as_bytes(), &b, Some(&cache), Some(&again));
        assert_eq!(r.expect("cached").expression.as_str(), "MIT");
    }
}
