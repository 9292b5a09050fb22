//! The compact license store: every text of the `spdx` crate's askalono store (each SPDX license's
//! text and standard headers) as word-bigram multisets, in one flat table built at compile time
//! (`build.rs`) and read in place from the binary at run time: no decoding, no allocation but one
//! counter per text per query.
//!
//! Why: the crate's own store (`Store::load_inline`) decodes into a `HashMap<String, u32>` of bigrams
//! per text plus every text's normalised lines — about 50 MiB live and 65 MiB at peak for 753 texts
//! and 435,000 bigrams. Here a bigram is a 64-bit hash, an index entry is 4 bytes, and the whole
//! table is ≈ 3.5 MiB of read-only data, of which a query touches only the postings of its own
//! bigrams.
//!
//! Scores are askalono's exactly: the Dice coefficient `2·Σ min(countₐ, count_b) / (|a| + |b|)` over
//! the word-bigram multisets of the normalised texts (`NgramSet::dice`), computed for every text at
//! once through an inverted index (bigram → (text, count)). A bigram is keyed by the FNV-1a hash of
//! its two words; the build refuses two different bigrams of the store with one hash, so a query
//! bigram can only be mistaken for a store bigram it is not if its 64-bit hash collides with one of
//! the store's ≈ 150,000 (odds ≈ 10⁻¹⁴ per bigram).
//!
//! A second, smaller index serves the paragraph blocks of a Debian copyright file: the texts that
//! share the most distinctive plain word bigrams with a block (lower-cased alphanumeric words;
//! bigrams in more than a quarter of all texts left out) are the only candidates scored for it
//! (`Store::candidates`). That pre-selection is what the matcher did before the store was compact,
//! and it is kept because it decides results: scored against every text, a BSD-3-Clause block
//! naming its holder scores higher against BSD-3-Clause-HP.
//!
//! Layout (little-endian): `MAGIC`, then `u32` counts of texts, score bigrams, score postings,
//! candidate bigrams, candidate postings and name bytes; texts (`u32` bigram total, `u32` name
//! offset, `u16` name length, `u8` kind, `u8` unused); score bigram hashes (`u64`, ascending),
//! their posting offsets (`u32`, one more than bigrams) and postings (`u16` text, `u16` count);
//! candidate bigram hashes, offsets and postings (`u16` text); names (UTF-8).
//!
//! The store is written by [`super::store_build`]. This file is also compiled into `build.rs`
//! (`#[path]`), so it uses nothing from this crate but its sibling `preproc`.

#[cfg(test)]
use super::preproc::{apply_aggressive, apply_normalizers};

/// First bytes of a store.
pub const MAGIC: &[u8; 8] = b"X1LICST2";
const COUNTS: usize = 24;
const TEXT: usize = 12;

/// What a store text is: the license's text, or one of its standard headers (notices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Original,
    Header,
    Alternate,
}

impl Kind {
    /// The kind's byte in the store (`store_build::kind_code` writes it).
    fn from_code(c: u8) -> Kind {
        match c {
            0 => Kind::Original,
            1 => Kind::Header,
            _ => Kind::Alternate,
        }
    }
}

/// askalono's normalisation of a text (`TextData::new`): per-line normalisers, then the aggressive
/// pass over the joined lines. The result is lower-case words separated by single spaces.
#[cfg(test)] // the matcher normalises lines once (`textmatch::run`)
pub fn process(text: &str) -> String {
    apply_aggressive(&apply_normalizers(text).join("\n"))
}

/// The store key of the bigram `a b`: FNV-1a (64-bit) of `a`, a space, `b`.
pub fn gram_hash(a: &str, b: &str) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in a.as_bytes().iter().chain(b" ").chain(b.as_bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// A text's word-bigram multiset as askalono counts it (`NgramSet::analyze` with n = 2 over words
/// split on single spaces): distinct bigram hashes ascending with their counts, and the total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bigrams {
    pub grams: Vec<(u64, u32)>,
    pub total: u32,
}

impl Bigrams {
    /// The bigrams of an already processed text (`process`).
    pub fn of_processed(processed: &str) -> Bigrams {
        let words: Vec<&str> = processed.split(' ').collect();
        let mut hashes: Vec<u64> = words.windows(2).map(|w| gram_hash(w[0], w[1])).collect();
        let total = u32::try_from(hashes.len()).unwrap_or(u32::MAX);
        hashes.sort_unstable();
        let mut grams: Vec<(u64, u32)> = Vec::new();
        for h in hashes {
            match grams.last_mut() {
                Some((last, n)) if *last == h => *n += 1,
                _ => grams.push((h, 1)),
            }
        }
        Bigrams { grams, total }
    }

    /// The bigrams of a raw text.
    #[cfg(test)] // the matcher normalises lines once (`textmatch::run`)
    pub fn of_text(text: &str) -> Bigrams {
        Bigrams::of_processed(&process(text))
    }
}

/// The distinct plain bigrams of a text for candidate selection: lower-cased, split at every
/// character that is not alphanumeric, as hashes ([`gram_hash`]), ascending. (What
/// [`Store::plain_words`] reads; kept as the tests' oracle.)
#[cfg(test)]
pub fn plain_bigrams(text: &str) -> Vec<u64> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut v: Vec<u64> = words.windows(2).map(|w| gram_hash(w[0], w[1])).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A text's plain words (`plain_bigrams`: lower-cased, split at every character that is not
/// alphanumeric) as candidate selection needs them, so that a block of consecutive texts
/// (paragraphs) is selected for without reading its words again: the candidate-index entries of
/// its distinct bigrams, and its first and last words (a block's bigrams are its parts' plus one
/// across each join).
#[derive(Debug, Clone, Default)]
pub struct PlainWords {
    /// Candidate-index entries (bigram numbers) of the distinct bigrams, ascending.
    entries: Vec<u32>,
    first: Option<String>,
    last: Option<String>,
}

/// One inverted index: bigram hashes ascending, posting offsets, postings of `width` bytes (a `u16`
/// text, then for the score index a `u16` count).
#[derive(Debug, Clone, Copy)]
struct Index<'a> {
    hashes: &'a [u8],
    offsets: &'a [u8],
    postings: &'a [u8],
    width: usize,
}

impl<'a> Index<'a> {
    /// Split `bytes` into an index of `grams` bigrams and `postings` postings, and the rest.
    fn split(
        bytes: &'a [u8],
        grams: usize,
        postings: usize,
        width: usize,
    ) -> Option<(Index<'a>, &'a [u8])> {
        let (hashes, rest) = bytes.split_at_checked(grams.checked_mul(8)?)?;
        let (offsets, rest) = rest.split_at_checked(grams.checked_add(1)?.checked_mul(4)?)?;
        let (postings, rest) = rest.split_at_checked(postings.checked_mul(width)?)?;
        Some((
            Index {
                hashes,
                offsets,
                postings,
                width,
            },
            rest,
        ))
    }

    fn grams(&self) -> usize {
        self.hashes.len() / 8
    }

    /// The number of bigram `h` in the index, if it is there. The hashes are ascending and
    /// spread evenly (FNV-1a), so a few interpolation steps narrow the range (≈ 3 reads instead
    /// of a binary search's 17 over the score index), then a binary search finishes it. On an
    /// index whose hashes are not ascending (`is_consistent` refuses it) the answer may be wrong,
    /// as a binary search's would be, but the search still ends.
    fn find(&self, h: u64) -> Option<usize> {
        let hash = |i: usize| u64_at(self.hashes, 8 * i);
        let (mut lo, mut hi) = (0, self.grams());
        // Interpolation over the inclusive range lo..=hi - 1.
        for _ in 0..6 {
            if hi - lo < 16 {
                break;
            }
            let (a, b) = (hash(lo), hash(hi - 1));
            if h < a || h > b {
                return None;
            }
            if a >= b {
                break;
            }
            let span = (hi - 1 - lo) as u128;
            let off = u128::from(h - a) * span / u128::from(b - a);
            let at = lo + usize::try_from(off).unwrap_or(0).min(hi - 1 - lo);
            match hash(at).cmp(&h) {
                std::cmp::Ordering::Less => lo = at + 1,
                std::cmp::Ordering::Greater => hi = at,
                std::cmp::Ordering::Equal => return Some(at),
            }
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match u64_at(self.hashes, 8 * mid).cmp(&h) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Whether [`Index::find`] finds every bigram of the index where it is, and each hash just
    /// beside one where a plain binary search does (the tests).
    #[cfg(test)]
    fn find_agrees(&self) -> bool {
        let hashes: Vec<u64> = (0..self.grams())
            .map(|g| u64_at(self.hashes, 8 * g))
            .collect();
        hashes.iter().enumerate().all(|(g, &h)| {
            self.find(h) == Some(g)
                && [h.wrapping_sub(1), h.wrapping_add(1), h ^ (1 << 40)]
                    .iter()
                    .all(|&x| self.find(x) == hashes.binary_search(&x).ok())
        }) && [0, u64::MAX, 1 << 63]
            .iter()
            .all(|&x| self.find(x) == hashes.binary_search(&x).ok())
    }

    /// The postings of bigram `h`: (text, count) for each text holding it (count 1 in the
    /// candidate index).
    fn postings(&self, h: u64) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.postings_of(self.find(h))
    }

    /// The postings of bigram number `found` (none for `None`).
    fn postings_of(&self, found: Option<usize>) -> impl Iterator<Item = (usize, u32)> + '_ {
        let (from, to) = found.map_or((0, 0), |g| self.range(g));
        (from..to).map(move |p| self.posting(p))
    }

    /// The posting numbers of bigram number `g`.
    fn range(&self, g: usize) -> (usize, usize) {
        (
            u32_at(self.offsets, 4 * g) as usize,
            u32_at(self.offsets, 4 * (g + 1)) as usize,
        )
    }

    /// Posting `p`: (text, count).
    fn posting(&self, p: usize) -> (usize, u32) {
        let at = self.width * p;
        let count = if self.width >= 4 {
            u32::from(u16_at(self.postings, at + 2))
        } else {
            1
        };
        (usize::from(u16_at(self.postings, at)), count)
    }

    /// The count of text `t` among postings `from..to` (in text order), if it is there.
    fn search(&self, from: usize, to: usize, t: usize) -> Option<u32> {
        let (mut lo, mut hi) = (from, to);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (at, c) = self.posting(mid);
            match at.cmp(&t) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(c),
            }
        }
        None
    }

    fn is_consistent(&self, texts: usize) -> bool {
        let n = self.postings.len() / self.width;
        let mut prev = 0;
        for g in 0..=self.grams() {
            let o = u32_at(self.offsets, 4 * g) as usize;
            if o < prev || o > n {
                return false;
            }
            prev = o;
        }
        prev == n
            && (1..self.grams())
                .all(|g| u64_at(self.hashes, 8 * (g - 1)) < u64_at(self.hashes, 8 * g))
            && (0..n).all(|p| usize::from(u16_at(self.postings, self.width * p)) < texts)
            && (0..self.grams()).all(|g| {
                let (from, to) = self.range(g);
                (from + 1..to).all(|p| self.posting(p - 1).0 < self.posting(p).0)
            })
    }
}

/// A store read in place.
#[derive(Debug, Clone, Copy)]
pub struct Store<'a> {
    texts: &'a [u8],
    score: Index<'a>,
    candidate: Index<'a>,
    names: &'a [u8],
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    b.get(i..i + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

impl<'a> Store<'a> {
    /// The store in `bytes`; `None` unless every section is there. Reads only the counts: every
    /// later read is bounds-checked (an inconsistent index gives wrong scores, never a panic), and
    /// [`Store::is_consistent`] checks the rest (the build does).
    pub fn parse(bytes: &'a [u8]) -> Option<Store<'a>> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let count = |i: usize| u32_at(rest, 4 * i) as usize;
        let n_texts = count(0);
        let n_names = count(5);
        let rest = rest.get(COUNTS..)?;
        let (texts, rest) = rest.split_at_checked(n_texts.checked_mul(TEXT)?)?;
        let (score, rest) = Index::split(rest, count(1), count(2), 4)?;
        let (candidate, names) = Index::split(rest, count(3), count(4), 2)?;
        (names.len() == n_names && n_texts <= usize::from(u16::MAX) + 1).then_some(Store {
            texts,
            score,
            candidate,
            names,
        })
    }

    /// Whether the indexes are what `store_build::build` writes: hashes ascending, offsets
    /// ascending within the postings, postings naming existing texts in ascending order, names in
    /// bounds and UTF-8.
    #[cfg_attr(not(test), allow(dead_code))] // used by build.rs and the tests
    pub fn is_consistent(&self) -> bool {
        self.score.is_consistent(self.len())
            && self.candidate.is_consistent(self.len())
            && (0..self.len()).all(|t| {
                self.name_range(t).is_some_and(|r| {
                    r.end <= self.names.len() && std::str::from_utf8(&self.names[r]).is_ok()
                })
            })
    }

    /// Whether both indexes find each bigram as a binary search does (see `Index::find`).
    #[cfg(test)]
    pub fn find_agrees(&self) -> bool {
        self.score.find_agrees() && self.candidate.find_agrees()
    }

    /// Number of texts.
    pub fn len(&self) -> usize {
        self.texts.len() / TEXT
    }

    fn name_range(&self, t: usize) -> Option<std::ops::Range<usize>> {
        let off = u32_at(self.texts, t * TEXT + 4) as usize;
        let len = usize::from(u16_at(self.texts, t * TEXT + 8));
        Some(off..off.checked_add(len)?)
    }

    /// Text `t`'s license name (askalono's store name, e.g. `GPL-2.0+`).
    pub fn name(&self, t: usize) -> &'a str {
        self.name_range(t)
            .and_then(|r| self.names.get(r))
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Text `t`'s kind.
    pub fn kind(&self, t: usize) -> Kind {
        Kind::from_code(self.texts.get(t * TEXT + 10).copied().unwrap_or(0))
    }

    /// Text `t`'s number of bigrams (with repeats).
    pub fn total(&self, t: usize) -> u32 {
        u32_at(self.texts, t * TEXT)
    }

    /// askalono's score (`TextData::match_score`) of `query` against every text, in store order.
    pub fn scores(&self, query: &Bigrams) -> Vec<f32> {
        let mut matches = vec![0u32; self.len()];
        for &(h, count) in &query.grams {
            for (t, c) in self.score.postings(h) {
                if let Some(m) = matches.get_mut(t) {
                    *m += count.min(c);
                }
            }
        }
        matches
            .iter()
            .enumerate()
            .map(|(t, &m)| self.dice(query, t, m))
            .collect()
    }

    /// The score of text `t` sharing `m` bigrams with `query`: `NgramSet::dice`, to the bit.
    fn dice(&self, query: &Bigrams, t: usize, m: u32) -> f32 {
        let total = self.total(t);
        if query.total == 0 || total == 0 {
            return 0.0;
        }
        (2.0 * m as f32) / ((query.total as usize + total as usize) as f32)
    }

    /// [`Store::scores`] of the texts `texts` only, in their order (the same values, to the bit):
    /// a long posting list is searched for each of them (postings are in text order, see
    /// [`Store::is_consistent`]) instead of read through.
    pub fn scores_of(&self, query: &Bigrams, texts: &[usize]) -> Vec<f32> {
        let mut matches = vec![0u32; texts.len()];
        let mut by_text: Vec<(usize, usize)> =
            texts.iter().enumerate().map(|(i, &t)| (t, i)).collect();
        by_text.sort_unstable();
        for &(h, count) in &query.grams {
            let Some(g) = self.score.find(h) else {
                continue;
            };
            let (from, to) = self.score.range(g);
            if to - from <= 4 * by_text.len() {
                for p in from..to {
                    let (t, c) = self.score.posting(p);
                    if let Ok(k) = by_text.binary_search_by_key(&t, |&(t, _)| t)
                        && let Some(m) = matches.get_mut(by_text[k].1)
                    {
                        *m += count.min(c);
                    }
                }
            } else {
                for &(t, i) in &by_text {
                    if let Some(c) = self.score.search(from, to, t)
                        && let Some(m) = matches.get_mut(i)
                    {
                        *m += count.min(c);
                    }
                }
            }
        }
        texts
            .iter()
            .zip(matches)
            .map(|(&t, m)| self.dice(query, t, m))
            .collect()
    }

    /// The `n` texts sharing the most distinctive plain bigrams ([`plain_bigrams`]) with `text`,
    /// most first (ties: store order); only texts sharing at least one.
    #[cfg(test)] // the matcher selects by parts (`candidates_of`)
    pub fn candidates(&self, text: &str, n: usize) -> Vec<usize> {
        self.candidates_of(&[&self.plain_words(text)], n)
    }

    /// [`Store::candidates`] as it was computed before [`PlainWords`]: the tests' oracle.
    #[cfg(test)]
    pub fn reference_candidates(&self, text: &str, n: usize) -> Vec<usize> {
        let mut shared = vec![0u32; self.len()];
        for h in plain_bigrams(text) {
            for (t, _) in self.candidate.postings(h) {
                if let Some(s) = shared.get_mut(t) {
                    *s += 1;
                }
            }
        }
        let mut ranked: Vec<(usize, u32)> = shared
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s > 0)
            .collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.into_iter().take(n).map(|(t, _)| t).collect()
    }

    /// `text`'s plain words, read for [`Store::candidates_of`].
    pub fn plain_words(&self, text: &str) -> PlainWords {
        let lower = text.to_lowercase();
        let mut words = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty());
        let Some(first) = words.next() else {
            return PlainWords::default();
        };
        let mut entries = Vec::new();
        let mut last = first;
        for w in words {
            if let Some(g) = self.candidate.find(gram_hash(last, w)) {
                entries.push(u32::try_from(g).unwrap_or(u32::MAX));
            }
            last = w;
        }
        entries.sort_unstable();
        entries.dedup();
        PlainWords {
            entries,
            first: Some(first.to_string()),
            last: Some(last.to_string()),
        }
    }

    /// `Store::candidates` of the text that is `parts` joined by non-alphanumeric separators
    /// (paragraphs joined by blank lines): its distinct bigrams are the parts' and those across
    /// each join (the last word of a part with words and the first of the next part with words).
    pub fn candidates_of(&self, parts: &[&PlainWords], n: usize) -> Vec<usize> {
        let mut entries: Vec<u32> = Vec::new();
        let mut last: Option<&str> = None;
        for p in parts {
            entries.extend_from_slice(&p.entries);
            if let (Some(a), Some(b)) = (last, p.first.as_deref())
                && let Some(g) = self.candidate.find(gram_hash(a, b))
            {
                entries.push(u32::try_from(g).unwrap_or(u32::MAX));
            }
            if p.last.is_some() {
                last = p.last.as_deref();
            }
        }
        if parts.len() > 1 {
            entries.sort_unstable();
            entries.dedup();
        }
        let mut shared = vec![0u32; self.len()];
        for g in entries {
            for (t, _) in self.candidate.postings_of(Some(g as usize)) {
                if let Some(s) = shared.get_mut(t) {
                    *s += 1;
                }
            }
        }
        let mut ranked: Vec<(usize, u32)> = shared
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s > 0)
            .collect();
        // The first `n` in the order (shared, most first; then store order), which is total: the
        // `n` selected, then only those sorted.
        let order = |a: &(usize, u32), b: &(usize, u32)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
        if n == 0 {
            return Vec::new();
        }
        if ranked.len() > n {
            ranked.select_nth_unstable_by(n - 1, order);
            ranked.truncate(n);
        }
        ranked.sort_unstable_by(order);
        ranked.into_iter().map(|(t, _)| t).collect()
    }
}
