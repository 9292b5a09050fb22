//! Matching one in-memory buffer: the keyword automaton over the region, each triggered pattern's regex
//! only in a merged window around its keyword hits, then the entropy / digit / placeholder filters.
//! Offsets are buffer-relative; the streamer turns them into file offsets.

use regex::bytes::CaptureLocations;
use sha2::{Digest as _, Sha256};

use super::patterns::{CONTEXT, Compiled, Pattern};
use crate::report::Evidence;

/// One accepted match: the secret's span in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawMatch {
    pub pattern: usize,
    pub start: usize,
    pub end: usize,
}

/// Reused scratch space (no allocation per buffer once warm).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    windows: Vec<(usize, usize, usize)>,
    /// Each pattern's capture slots, made on its first window and reused (a `captures_at` call
    /// allocates them afresh each time).
    locs: Vec<Option<CaptureLocations>>,
}

/// Find every match whose regex match starts in `lo..hi` of `buf` (`buf` holds context around it).
pub(crate) fn scan_region(
    c: &Compiled,
    buf: &[u8],
    lo: usize,
    hi: usize,
    scratch: &mut Scratch,
    out: &mut Vec<RawMatch>,
) {
    scan_region_gated(c, buf, (lo, hi), scratch, out, true);
}

/// [`scan_region`], with the patterns' window gates ([`super::gate`]) used or not (the tests compare
/// both).
pub(crate) fn scan_region_gated(
    c: &Compiled,
    buf: &[u8],
    (lo, hi): (usize, usize),
    scratch: &mut Scratch,
    out: &mut Vec<RawMatch>,
    gates: bool,
) {
    if lo >= hi || c.triggers.is_empty() {
        return;
    }
    let Scratch { windows, locs } = scratch;
    windows.clear();
    // A match contains its keyword, so its keyword starts at or after the match start (≥ lo) and at
    // most `before` bytes after it (< hi + before).
    let kw_end = (hi + c.max_extent).min(buf.len());
    c.ac.each(buf, lo, kw_end, |kw, k| {
        for t in &c.triggers[kw] {
            let ws = k.saturating_sub(t.before);
            let we = (k + t.after + CONTEXT).min(buf.len());
            windows.push((t.pattern, ws, we));
        }
    });
    if windows.is_empty() {
        return;
    }
    windows.sort_unstable();
    let mut i = 0;
    while i < windows.len() {
        let (p, ws, mut we) = windows[i];
        let mut j = i + 1;
        while j < windows.len() && windows[j].0 == p && windows[j].1 <= we {
            we = we.max(windows[j].2);
            j += 1;
        }
        if locs.len() <= p {
            locs.resize_with(p + 1, || None);
        }
        let slots = locs[p].get_or_insert_with(|| c.patterns[p].regex.capture_locations());
        let ws = ws.max(lo);
        let from = match &c.patterns[p].gate {
            Some(gate) if gates => gate.start(buf, ws, we, hi),
            _ => Some(ws),
        };
        if let Some(from) = from {
            run_pattern(c, p, buf, (from, we, hi), slots, out);
        }
        i = j;
    }
    dedupe_overlaps(out);
}

/// Where matches of different patterns overlap, keep the one listed first in the rules file.
fn dedupe_overlaps(out: &mut Vec<RawMatch>) {
    if out.len() < 2 {
        return;
    }
    out.sort_unstable_by_key(|m| (m.start, m.pattern));
    let mut keep: Vec<RawMatch> = Vec::with_capacity(out.len());
    for m in out.drain(..) {
        // Matches of one pattern never overlap, so at most one per pattern can cover `m.start`: a
        // bounded look back over the most recent keeps is exact.
        let from = keep.len().saturating_sub(64);
        let mut dominated = false;
        let mut i = from;
        while i < keep.len() {
            let k = keep[i];
            if k.start < m.end && m.start < k.end {
                if k.pattern <= m.pattern {
                    dominated = true;
                    i += 1;
                } else {
                    keep.remove(i);
                }
            } else {
                i += 1;
            }
        }
        if !dominated {
            keep.push(m);
        }
    }
    keep.sort_unstable_by_key(|m| m.start);
    *out = keep;
}

/// Run pattern `p` over `buf[ws..we]` (with the whole buffer as look-around context on the left),
/// keeping matches that start before `hi`; `locs` are the pattern's capture slots.
fn run_pattern(
    c: &Compiled,
    p: usize,
    buf: &[u8],
    (ws, we, hi): (usize, usize, usize),
    locs: &mut CaptureLocations,
    out: &mut Vec<RawMatch>,
) {
    let pat = &c.patterns[p];
    let hay = &buf[..we];
    let mut pos = ws;
    while pos < we {
        let Some(whole) = pat.regex.captures_read_at(locs, hay, pos) else {
            break;
        };
        if whole.start() >= hi {
            break;
        }
        pos = if whole.end() > whole.start() {
            whole.end()
        } else {
            whole.start() + 1
        };
        let (start, end) = pat
            .secret_groups
            .iter()
            .find_map(|&g| locs.get(g))
            .unwrap_or((whole.start(), whole.end()));
        if accept(c, pat, &buf[start..end]) {
            out.push(RawMatch {
                pattern: p,
                start,
                end,
            });
        }
    }
}

/// The value filters: entropy, digits, placeholders.
fn accept(c: &Compiled, pat: &Pattern, secret: &[u8]) -> bool {
    if let Some(min) = pat.min_entropy
        && shannon_entropy(secret) < min
    {
        return false;
    }
    if pat.min_digits > 0 && secret.iter().filter(|b| b.is_ascii_digit()).count() < pat.min_digits {
        return false;
    }
    if pat.reject.as_ref().is_some_and(|re| re.is_match(secret)) {
        return false;
    }
    !c.placeholders.as_ref().is_some_and(|re| {
        re.find_iter(secret)
            .any(|m| is_placeholder(secret, m.range()))
    })
}

/// Placeholder matches shorter than this must stand as a word to count.
const SHORT_PLACEHOLDER: usize = 6;

/// Whether a placeholder match at `at` in `value` makes the value a placeholder.
///
/// A long match (`example`, `xxxxxx`, `your_api_key`) always does. A short one (`fake`, `dummy`) only
/// when it stands as a word: its letters in one case style (`fake`, `FAKE`, `Fake`) and set apart on
/// both sides (the value's edge, a non-alphanumeric byte, or a change of character class such as
/// `AIzaSyFakeKey…`). A random key body holds `fake` in some case about once in 10⁴ keys; counting
/// those would let a real key through as a placeholder.
fn is_placeholder(value: &[u8], at: std::ops::Range<usize>) -> bool {
    if at.len() >= SHORT_PLACEHOLDER {
        return true;
    }
    let word = &value[at.clone()];
    let class = |b: u8| match b {
        b'a'..=b'z' => 1,
        b'A'..=b'Z' => 2,
        b'0'..=b'9' => 3,
        _ => 0,
    };
    let one_style = word.iter().all(u8::is_ascii_lowercase)
        || word.iter().all(|b| !b.is_ascii_lowercase())
        || word.split_first().is_some_and(|(first, rest)| {
            first.is_ascii_uppercase() && rest.iter().all(|b| !b.is_ascii_uppercase())
        });
    let apart = |outside: Option<&u8>, edge: Option<&u8>| match (outside, edge) {
        (None, _) | (_, None) => true,
        (Some(&o), Some(&e)) => class(o) == 0 || class(e) == 0 || class(o) != class(e),
    };
    // Left: a Capitalized word after lower case is a camel-case boundary; lower after upper is not.
    let left_outside = at.start.checked_sub(1).map(|i| &value[i]);
    let left = apart(left_outside, word.first())
        && !(left_outside.is_some_and(u8::is_ascii_uppercase)
            && word.first().is_some_and(u8::is_ascii_lowercase));
    let right = apart(value.get(at.end), word.last());
    one_style && left && right
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Redacted evidence for `secret`: at most 8 leading characters (a quarter of the value for short
/// ones), the length, and the SHA-256 fingerprint. Never the value.
pub fn evidence(pattern: &str, secret: &[u8]) -> Evidence {
    let keep = (secret.len() / 4).min(8);
    let prefix: String = secret[..keep]
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    Evidence {
        prefix,
        length: secret.len(),
        fingerprint: fingerprint(secret),
        pattern: pattern.to_string(),
    }
}

/// `sha256:<hex>` of `secret`.
pub fn fingerprint(secret: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(secret)))
}

/// Every match in a small in-memory value (metadata strings, examples): `(pattern id, secret span)`.
pub(crate) fn scan_value(c: &Compiled, value: &[u8]) -> Vec<RawMatch> {
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    scan_region(c, value, 0, value.len(), &mut scratch, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_bounds() {
        assert!(shannon_entropy(b"aaaaaaaa") < 0.01);
        assert!((shannon_entropy(b"abcdefgh") - 3.0).abs() < 1e-9);
        assert!(shannon_entropy(b"") < f64::EPSILON);
    }

    #[test]
    fn evidence_never_carries_the_value() {
        // Real prefixes, random bodies built now: no key-shaped literal is committed.
        let mut rng = rand::rng();
        let mut pick = |a: &[u8]| a[rand::Rng::random_range(&mut rng, 0..a.len())];
        let secret = crate::scan::template::expand("sk-ant-api03-{b64u:93}AA", &mut pick)
            .expect("known classes");
        let ev = evidence("anthropic-api-key", secret.as_bytes());
        assert_eq!(ev.prefix, "sk-ant-a");
        assert_eq!(ev.length, secret.len());
        assert!(ev.fingerprint.starts_with("sha256:") && ev.fingerprint.len() == 71);
        let id = crate::scan::template::expand("AKIA{upnum:16}", &mut pick).expect("known classes");
        let short = evidence("x", id.as_bytes());
        assert_eq!(short.prefix, id[..5], "a 20-char value shows only 5 chars");
    }
}
