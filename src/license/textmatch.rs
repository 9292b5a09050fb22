//! License texts identified, not assumed: a free-form Debian copyright file, an npm package's
//! `LICENSE`/`COPYING` file, or a loose license file is matched against SPDX's license texts with the
//! askalono algorithm (word-bigram Dice similarity against every SPDX license and standard header).
//!
//! The algorithm and data are askalono's as the `spdx` crate ships them (askalono inlined by the
//! crate's maintainers; the upstream `askalono` crate is unmaintained, cargo-about and cargo-deny moved
//! to this copy): the crate's store of SPDX license texts and headers. Its decoded form costs ≈ 50 MiB
//! (65 MiB at peak), so `build.rs` turns it into a compact bigram index ([`store`]: ≈ 3.5 MiB, read
//! in place from the binary, nothing decoded at run time) that gives every text exactly askalono's
//! score (a test compares the two, bit for bit). Query texts are normalised by askalono's own code,
//! vendored in [`preproc`]. Nothing is fetched at run time.
//!
//! Results are cached by text ([`identify_bytes`]): in `check`, a text matched once is read back
//! from the result cache (`crate::cache`, keyed by the text's SHA-256, the store's hash and the
//! threshold), so a warm run matches nothing.
//!
//! How a text is read:
//! 1. the whole text against every license: a `LICENSE` file holding one license scores high;
//! 2. otherwise, blocks of 1–4 consecutive paragraphs that mention a license term ("licen",
//!    "permission", "redistribut", …), each against every license and header: a Debian copyright file
//!    is a list of notices, each of which is identified on its own; the package's expression is the
//!    `AND` of the distinct licenses found (it ships all of those files), as for DEP-5 files.
//!
//! A match counts from [`THRESHOLD`] up; below it the text stays unknown. GNU licenses are versioned
//! and "or later" is kept from the words of the notice itself ("either version 2 … or (at your option)
//! any later version" → `GPL-2.0-or-later`); a bare license text says no "or later" and maps to
//! `-only`.

mod preproc;
mod store;
#[cfg(test)]
mod store_build;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use self::preproc::{apply_aggressive, apply_normalizers};
use self::store::{Bigrams, Kind, PlainWords, Store};
use super::expr::{ExprError, SpdxExpr};
use crate::cache::{LayerCache, TextRecord};

/// Lowest askalono score (Dice coefficient of word bigrams, 0–1) that counts as an identification.
///
/// 0.8 is the default of cargo-about and cargo-deny, which use this same matcher. Measured on the
/// corpus image: license notices carrying Debian's own pointer lines ("On Debian systems … can be
/// found in /usr/share/common-licenses/LGPL-2.1") score 0.80–0.90 against their SPDX header, full
/// `LICENSE` files 0.93–1.00; unrelated paragraphs (changelog, copyright lists) stay below 0.5.
pub const THRESHOLD: f32 = 0.8;

/// Only this many bytes of a text are read (GPL-3.0 is 35 KB; the largest Debian copyright file on
/// the corpus image, gcc's, is 68 KB). A longer text is matched on its head.
pub const MAX_TEXT_BYTES: usize = 192 * 1024;

/// Paragraphs of one text considered for block matching.
const MAX_PARAGRAPHS: usize = 800;

/// Largest block, in paragraphs (a GNU notice is 3, a BSD text up to 4 plus a title).
const MAX_BLOCK: usize = 4;

/// Words that make a paragraph worth matching (lower case).
const KEYWORDS: &[&str] = &[
    "licen",
    "permission",
    "permitted",
    "redistribut",
    "free software",
    "warranty",
    "public domain",
];

/// What a text was identified as.
#[derive(Debug, Clone)]
pub struct TextMatch {
    /// Distinct SPDX ids in order of appearance, `AND`-ed.
    pub expression: SpdxExpr,
    /// The lowest score among the terms (the weakest evidence).
    pub score: f32,
    /// Each term with its score.
    pub terms: Vec<(String, f32)>,
}

/// Why a text was not identified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unidentified {
    #[error("the license file is empty")]
    Empty,
    #[error("the built-in SPDX license store is damaged")]
    StoreDamaged,
    /// The shared [`Budget`] ran out (never stored in the cache: it depends on the other texts).
    #[error("the text-matching budget ({BUDGET} comparisons per image) is spent")]
    BudgetSpent,
    #[error(
        "no SPDX license text matched (best whole-text score {score:.2} for {best}, threshold \
         {THRESHOLD})"
    )]
    NoMatch { score: f32, best: String },
    /// The terms found do not make an SPDX expression.
    #[error("{0}")]
    Expression(#[from] ExprError),
    /// A negative result read back from the text-match cache, which keeps the words only.
    #[error("{0}")]
    Cached(String),
}

/// A budget of `analyze` calls shared by every text of one inventory, so a hostile image with many
/// large license files cannot make the matcher run unbounded.
#[derive(Debug)]
pub struct Budget(AtomicUsize);

impl Budget {
    /// `n` analyses in all.
    pub fn new(n: usize) -> Budget {
        Budget(AtomicUsize::new(n))
    }

    /// Take `n` analyses at once, or none.
    fn take_n(&self, n: usize) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }
}

/// Analyses one inventory may spend (whole texts plus paragraph blocks); past it, texts stay unknown
/// and say so.
pub const BUDGET: usize = 6_000;

/// The compact store (`build.rs`, [`store`]), compiled in and read in place.
static STORE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/license-store.bin"));

/// SHA-256 of the compact store: part of the text-match cache key.
pub const STORE_SHA256: &str = env!("X1_LICENSE_STORE_SHA256");

fn store() -> Option<Store<'static>> {
    static STORE: OnceLock<Option<Store<'static>>> = OnceLock::new();
    *STORE.get_or_init(|| Store::parse(STORE_BYTES))
}

/// The best-scoring store text for a text's bigrams: (score, text index). Ties go to the first
/// text in store order (license name, then original before headers).
fn best(store: &Store<'_>, bigrams: &Bigrams) -> (f32, usize) {
    store
        .scores(bigrams)
        .into_iter()
        .enumerate()
        .fold((0.0, 0), |b, (t, s)| if s > b.0 { (s, t) } else { b })
}

/// The best-scoring text for a paragraph block among its `candidates` (the [`CANDIDATES`] texts
/// that share the most distinctive words with it; `None` when no text shares any), given the
/// block's bigrams (computed only when there are candidates): (score, text index). Ties go to the
/// smaller license name, then to the later candidate.
fn best_candidate(
    store: &Store<'_>,
    candidates: Vec<usize>,
    bigrams: impl FnOnce() -> Bigrams,
) -> Option<(f32, usize)> {
    if candidates.is_empty() {
        return None;
    }
    let scores = store.scores_of(&bigrams(), &candidates);
    scores.into_iter().zip(candidates).max_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then_with(|| store.name(b.1).cmp(store.name(a.1)))
    })
}

/// Texts scored per paragraph block (see [`store`] on why blocks are not scored against all).
const CANDIDATES: usize = 12;

/// Identify the license(s) of `text`. `Err` says why not (nothing at or above [`THRESHOLD`], budget
/// spent).
pub fn identify(text: &str, budget: &Budget) -> Result<TextMatch, Unidentified> {
    run(text, &mut Spend::new(budget))
}

/// [`identify`] for the bytes of a text, through `cache`'s text-match results when given: a stored
/// result is charged to `budget` what it cost when it was computed (so that a warm run identifies
/// exactly what a cold one does), and a result is stored only when the budget did not cut it short.
pub fn identify_bytes(
    bytes: &[u8],
    budget: &Budget,
    cache: Option<&LayerCache>,
) -> Result<TextMatch, Unidentified> {
    identify_drawn(bytes, budget, cache).0
}

/// What one text's identification drew on its [`Budget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drawn {
    /// Analyses charged (for a stored result: what it cost when it was computed).
    pub cost: usize,
    /// The budget refused an analysis: the result is cut short (and depends on the other texts).
    pub cut: bool,
}

/// [`identify_bytes`], saying what the text drew on `budget`.
pub fn identify_drawn(
    bytes: &[u8],
    budget: &Budget,
    cache: Option<&LayerCache>,
) -> (Result<TextMatch, Unidentified>, Drawn) {
    let key = cache.map(|c| c.text_key(&matcher_id(), bytes));
    if let (Some(c), Some(key)) = (cache, &key)
        && let Some(rec) = c.get_text(key)
        && budget.take_n(rec.cost)
    {
        let drawn = Drawn {
            cost: rec.cost,
            cut: false,
        };
        return (
            rec.outcome.map_err(Unidentified::Cached).and_then(finish),
            drawn,
        );
    }
    let mut spend = Spend::new(budget);
    let result = run(&String::from_utf8_lossy(bytes), &mut spend);
    if let (Some(c), Some(key), false) = (cache, key, spend.refused) {
        let rec = TextRecord {
            key,
            cost: spend.taken,
            outcome: result
                .as_ref()
                .map(|m| m.terms.clone())
                .map_err(ToString::to_string),
        };
        let _ = c.put_text(&rec);
    }
    let drawn = Drawn {
        cost: spend.taken,
        cut: spend.refused,
    };
    (result, drawn)
}

/// What decides a text's result besides its bytes: the store, the threshold and the limits (the
/// text-match cache key; the cache adds the program's version).
fn matcher_id() -> String {
    format!(
        "store {STORE_SHA256} threshold {THRESHOLD} max {MAX_TEXT_BYTES} paragraphs \
         {MAX_PARAGRAPHS} block {MAX_BLOCK} keywords {KEYWORDS:?}"
    )
}

/// One text's draw on the shared [`Budget`].
struct Spend<'b> {
    budget: &'b Budget,
    taken: usize,
    /// The budget refused an analysis: the result is cut short (and depends on the other texts).
    refused: bool,
}

impl<'b> Spend<'b> {
    fn new(budget: &'b Budget) -> Spend<'b> {
        Spend {
            budget,
            taken: 0,
            refused: false,
        }
    }

    fn take(&mut self) -> bool {
        if self.budget.take_n(1) {
            self.taken += 1;
            true
        } else {
            self.refused = true;
            false
        }
    }
}

fn run(text: &str, spend: &mut Spend<'_>) -> Result<TextMatch, Unidentified> {
    let text = head(text, MAX_TEXT_BYTES);
    if text.trim().is_empty() {
        return Err(Unidentified::Empty);
    }
    let index = store().ok_or(Unidentified::StoreDamaged)?;
    if !spend.take() {
        return Err(Unidentified::BudgetSpent);
    }
    // Each line is normalised once: for the whole text, and again (as the same lines) for every
    // paragraph block, which `Blocks` builds from them.
    let lines = apply_normalizers(text);
    let (whole_score, whole) = best(
        &index,
        &Bigrams::of_processed(&apply_aggressive(&lines.join("\n"))),
    );
    if whole_score >= THRESHOLD {
        let id = spdx_id(index.name(whole), index.kind(whole), text);
        return finish(vec![(id, whole_score)]);
    }
    let paras = paragraphs(text);
    let mut blocks = Blocks::new(&index, &lines, &paras);
    let mut found: Vec<(String, f32)> = Vec::new();
    let mut i = 0;
    let mut exhausted = false;
    while i < paras.len() {
        if !mentions_license(paras[i].text) {
            i += 1;
            continue;
        }
        let mut top: Option<(f32, String, usize)> = None;
        for k in 1..=MAX_BLOCK.min(paras.len() - i) {
            if !spend.take() {
                exhausted = true;
                break;
            }
            let Some((score, t)) = blocks.best(i, k) else {
                continue;
            };
            if score >= THRESHOLD && top.as_ref().is_none_or(|b| score > b.0) {
                let block = Blocks::raw(&paras[i..i + k]);
                top = Some((score, spdx_id(index.name(t), index.kind(t), &block), k));
            }
            if score >= 0.98 {
                break;
            }
        }
        if exhausted {
            break;
        }
        if let Some((score, id, k)) = top {
            match found.iter_mut().find(|(f, _)| *f == id) {
                Some(f) => f.1 = f.1.max(score),
                None => found.push((id, score)),
            }
            i += k;
        } else {
            i += 1;
        }
    }
    if exhausted && found.is_empty() {
        return Err(Unidentified::BudgetSpent);
    }
    if found.is_empty() {
        return Err(Unidentified::NoMatch {
            score: whole_score,
            best: index.name(whole).to_string(),
        });
    }
    finish(found)
}

fn finish(terms: Vec<(String, f32)>) -> Result<TextMatch, Unidentified> {
    let text = if terms.len() == 1 {
        terms[0].0.clone()
    } else {
        terms
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let expression = SpdxExpr::strict(&text)?;
    let score = terms.iter().map(|(_, s)| *s).fold(1.0_f32, f32::min);
    Ok(TextMatch {
        expression,
        score,
        terms,
    })
}

/// The first `max` bytes of `s`, cut at a char boundary.
fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A paragraph of a text: its lines with their line ends, and which lines of the text (as
/// `split('\n')` numbers them) they are.
#[derive(Debug, Clone)]
struct Para<'a> {
    text: &'a str,
    lines: std::ops::Range<usize>,
}

/// Paragraphs: runs of non-blank lines (a lone `.` is a blank line in Debian files).
fn paragraphs(text: &str) -> Vec<Para<'_>> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    let mut end = (0, 0);
    let mut pos = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let t = line.trim();
        let blank = t.is_empty() || t == ".";
        if blank {
            if let Some((s, first)) = start.take() {
                out.push(Para {
                    text: &text[s..end.0],
                    lines: first..end.1,
                });
                if out.len() >= MAX_PARAGRAPHS {
                    return out;
                }
            }
        } else {
            if start.is_none() {
                start = Some((pos, n));
            }
            end = (pos + line.len(), n + 1);
        }
        pos += line.len();
    }
    if let Some((s, first)) = start {
        out.push(Para {
            text: &text[s..end.0],
            lines: first..end.1,
        });
    }
    out
}

/// Whether a paragraph holds one of the [`KEYWORDS`] (ASCII case-insensitively, as the words are).
fn mentions_license(para: &str) -> bool {
    let b = para.as_bytes();
    KEYWORDS.iter().any(|k| {
        b.windows(k.len())
            .any(|w| w.eq_ignore_ascii_case(k.as_bytes()))
    })
}

/// The paragraph blocks of one text, matched from what is read once per paragraph: its normalised
/// lines (the whole text's, [`apply_normalizers`] being per line) and its plain words
/// ([`Store::plain_words`]).
///
/// A block is `paras[i..i + k].join("\n\n")`. Split into lines, that is each paragraph's lines,
/// two empty lines at each join (the paragraph's own line end, then the two of the join), and
/// one more after the last paragraph when it ends with a line end. An empty line normalises to
/// the empty line, so the block's normalised lines are the paragraphs' normalised lines with
/// `"\n\n\n"` at each join and a `"\n"` after a last paragraph that ends with one.
struct Blocks<'s, 'a> {
    store: &'s Store<'s>,
    paras: &'a [Para<'a>],
    /// Each paragraph's normalised lines, joined by `\n`.
    normalised: Vec<String>,
    /// Each paragraph's plain words, read when first needed.
    words: Vec<Option<PlainWords>>,
}

impl<'s, 'a> Blocks<'s, 'a> {
    fn new(store: &'s Store<'s>, lines: &[String], paras: &'a [Para<'a>]) -> Blocks<'s, 'a> {
        let normalised = paras
            .iter()
            .map(|p| lines.get(p.lines.clone()).unwrap_or_default().join("\n"))
            .collect();
        Blocks {
            store,
            paras,
            normalised,
            words: vec![None; paras.len()],
        }
    }

    /// The block's text, as matched before (for the GNU "or later" words of a match).
    fn raw(paras: &[Para<'_>]) -> String {
        paras
            .iter()
            .map(|p| p.text)
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// [`best_candidate`] of the block of `k` paragraphs from `i`.
    fn best(&mut self, i: usize, k: usize) -> Option<(f32, usize)> {
        for j in i..i + k {
            if self.words[j].is_none() {
                self.words[j] = Some(self.store.plain_words(self.paras[j].text));
            }
        }
        let parts: Vec<&PlainWords> = self.words[i..i + k].iter().flatten().collect();
        let candidates = self.store.candidates_of(&parts, CANDIDATES);
        best_candidate(self.store, candidates, || {
            let mut joined = self.normalised[i..i + k].join("\n\n\n");
            if self.paras[i + k - 1].text.ends_with('\n') {
                joined.push('\n');
            }
            Bigrams::of_processed(&apply_aggressive(&joined))
        })
    }
}

/// The SPDX id for a store name, with GNU versions and "or later" taken from the matched words.
fn spdx_id(name: &str, kind: Kind, text: &str) -> String {
    if let Some(id) = gnu_id(name, kind, text) {
        return id;
    }
    match spdx::license_id(name) {
        Some(l) if !l.is_deprecated() => l.name.to_string(),
        _ => format!(
            "LicenseRef-text-{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "-")
        ),
    }
}

/// `GPL-2.0+` / `LGPL-2.1-only` / `GPL-3.0` store names → the current SPDX id. The family and version
/// come from the store name, corrected by the text (a notice saying "Lesser" or "version 3" is that);
/// "or later" only when the text is a notice saying so (a header match, or a block of a Debian
/// copyright file), never for a bare license text, whose appendix shows how to *apply* "or later".
fn gnu_id(name: &str, kind: Kind, text: &str) -> Option<String> {
    let family = ["AGPL", "LGPL", "GPL", "GFDL"]
        .into_iter()
        .find(|f| name.starts_with(&format!("{f}-")))?;
    let rest = &name[family.len() + 1..];
    let store_version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if rest.contains("-with-") {
        // Deprecated `GPL-2.0-with-…-exception` ids: not mapped, see [`spdx_id`].
        return None;
    }
    if rest.contains("invariants") || rest.contains("no-") {
        // GFDL variants (`GFDL-1.3-no-invariants-or-later`): keep the store's id.
        return spdx::license_id(name).map(|l| l.name.to_string());
    }
    let words = normalise(text);
    let notice = kind == Kind::Header
        || !(words.contains("terms and conditions for copying")
            || words.contains("terms and conditions"));
    // A full text names its siblings (GPL-2.0's last paragraph points to the Library GPL): only a
    // notice corrects the family.
    let family = if family == "GFDL" || !notice {
        family
    } else if words.contains("affero") {
        "AGPL"
    } else if words.contains("lesser general public") || words.contains("library general public") {
        "LGPL"
    } else {
        family
    };
    let version = if notice {
        notice_version(&words, family).unwrap_or(store_version)
    } else {
        store_version
    };
    let or_later = notice && (words.contains("any later version") || words.contains("or later"));
    let base = if family == "LGPL" && version == "2.0" {
        "LGPL-2.0".to_string()
    } else {
        format!("{family}-{version}")
    };
    spdx::gnu_license_id(&base, or_later).map(|l| l.name.to_string())
}

/// Lower case, whitespace and comment markers collapsed.
fn normalise(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || matches!(c, '*' | '#' | '(' | ')' | ',' | ';'))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// The first "version N" of a GNU notice that is a version of `family`.
fn notice_version(words: &str, family: &str) -> Option<String> {
    let valid: &[&str] = match family {
        "AGPL" => &["3"],
        "LGPL" => &["2", "2.1", "3"],
        "GPL" => &["1", "2", "3"],
        _ => &[],
    };
    let mut rest = words;
    while let Some(i) = rest.find("version ") {
        let after = &rest[i + "version ".len()..];
        let v: String = after
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let v = v.trim_end_matches('.');
        if valid.contains(&v) {
            return Some(if v.contains('.') {
                v.to_string()
            } else {
                format!("{v}.0")
            });
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Result<TextMatch, Unidentified> {
        identify(text, &Budget::new(BUDGET))
    }

    fn expr(text: &str) -> String {
        match id(text) {
            Ok(m) => m.expression.as_str().to_string(),
            Err(e) => panic!("not identified: {e}"),
        }
    }

    const GPL2_NOTICE: &str = "This program is free software; you can redistribute it and/or modify\n\
        it under the terms of the GNU General Public License as published by\n\
        the Free Software Foundation; either version 2 of the License, or\n\
        (at your option) any later version.\n\n\
        This program is distributed in the hope that it will be useful,\n\
        but WITHOUT ANY WARRANTY; without even the implied warranty of\n\
        MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the\n\
        GNU General Public License for more details.\n\n\
        You should have received a copy of the GNU General Public License\n\
        along with this program; if not, write to the Free Software\n\
        Foundation, Inc., 51 Franklin Street, Fifth Floor, Boston, MA 02110-1301 USA.\n";

    fn license_text(id: &str) -> &'static str {
        let Some((_, text)) = spdx::text::LICENSE_TEXTS.iter().find(|(n, _)| *n == id) else {
            panic!("{id} has a text")
        };
        text
    }

    #[test]
    fn a_gpl2_or_later_notice_keeps_or_later() {
        let debian = format!(
            "This is the Debian prepackaged version of foo.\n\nCopyright (C) 1999 A. Person\n\n\
             {GPL2_NOTICE}\nOn Debian systems, the complete text of the GNU General Public License \
             can be found in `/usr/share/common-licenses/GPL-2'.\n"
        );
        let m = id(&debian).expect("identified");
        assert_eq!(m.expression.as_str(), "GPL-2.0-or-later");
        assert!(m.score >= THRESHOLD, "{}", m.score);
        let only = GPL2_NOTICE.replace(
            "either version 2 of the License, or\n(at your option) any later version.",
            "version 2 of the License.",
        );
        assert!(!only.contains("later"), "{only}");
        assert_eq!(expr(&only), "GPL-2.0-only");
    }

    #[test]
    fn a_debian_style_notice_without_the_fsf_address_is_identified() {
        // base-files' copyright file: the FSF address paragraph replaced by Debian's pointer.
        let (notice, _fsf_address) = GPL2_NOTICE
            .split_once("You should have received")
            .expect("the notice has its address paragraph");
        let text = format!(
            "This is the Debian prepackaged version of the Debian Base System\n\
             Miscellaneous files.\n\nCopyright (C) 1995-2011 Software in the Public Interest.\n\n\
             {notice}On Debian systems, the complete text of the GNU General\n\
             Public License can be found in `/usr/share/common-licenses/GPL'.\n"
        );
        assert_eq!(expr(&text), "GPL-2.0-or-later");
    }

    #[test]
    fn the_version_and_family_come_from_the_notice() {
        let v3 = GPL2_NOTICE.replace("either version 2", "either version 3");
        assert_eq!(expr(&v3), "GPL-3.0-or-later");
        let lesser = GPL2_NOTICE
            .replace("GNU General Public", "GNU Lesser General Public")
            .replace("either version 2", "either version 2.1");
        assert_eq!(expr(&lesser), "LGPL-2.1-or-later");
    }

    #[test]
    fn full_texts_mit_apache_bsd() {
        let mit = format!(
            "MIT License\n\nCopyright (c) 2021 Someone\n\n{}",
            license_text("MIT")
                .split_once("Permission is hereby")
                .map(|(_, b)| format!("Permission is hereby{b}"))
                .unwrap()
        );
        assert_eq!(expr(&mit), "MIT");
        assert_eq!(expr(license_text("Apache-2.0")), "Apache-2.0");
        assert_eq!(expr(license_text("BSD-3-Clause")), "BSD-3-Clause");
        assert_eq!(expr(license_text("BSD-2-Clause")), "BSD-2-Clause");
        // A bare GPL text names no "or later" (its appendix only shows how to apply it).
        assert_eq!(expr(license_text("GPL-2.0-only")), "GPL-2.0-only");
        assert_eq!(expr(license_text("ISC")), "ISC");
    }

    #[test]
    fn bsd3_with_the_holder_named_is_still_bsd3() {
        let t = license_text("BSD-3-Clause")
            .replace("the copyright holder", "The Regents of the University")
            .replace(
                "Copyright (c) <year> <owner>.",
                "Copyright (c) 1990 The Regents.",
            );
        assert_eq!(expr(&t), "BSD-3-Clause");
    }

    #[test]
    fn two_notices_are_anded_in_order() {
        let mit_body = license_text("MIT");
        let text = format!(
            "Upstream: https://example.org\n\nThe library:\n\n{GPL2_NOTICE}\nThe bundled parser:\n\n{mit_body}\n\nChangelog follows.\n"
        );
        assert_eq!(expr(&text), "GPL-2.0-or-later AND MIT");
    }

    #[test]
    fn below_the_threshold_stays_unknown() {
        let e = id(
            "This software is licensed under terms you can get by writing to us. \
                    Permission to use it is granted to friends only, no redistribution.",
        )
        .expect_err("below threshold");
        assert!(matches!(e, Unidentified::NoMatch { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("no SPDX license text matched (best whole-text score 0."),
            "{e}"
        );
        assert_eq!(id("  \n").unwrap_err(), Unidentified::Empty);
        // A mangled MIT text (half the words gone) is below the threshold too.
        let half: String = license_text("MIT")
            .split_whitespace()
            .step_by(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(id(&half).is_err());
    }

    /// The spdx crate's askalono store with the GNU notices added, in the compact store's order.
    fn askalono_texts() -> Vec<(String, Kind, spdx::detection::TextData)> {
        use spdx::detection::{Store as Askalono, TextData};
        let store = Askalono::load_inline().expect("the spdx crate's store decodes");
        let mut entries: Vec<_> = store.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::new();
        for (name, e) in entries {
            out.push((name.clone(), Kind::Original, e.original.clone()));
            for h in &e.headers {
                out.push((name.clone(), Kind::Header, h.clone()));
            }
            for (n, notice) in store_build::GNU_SHORT_NOTICES {
                if n == name {
                    out.push((name.clone(), Kind::Header, TextData::new(notice)));
                }
            }
            for a in &e.alternates {
                out.push((name.clone(), Kind::Alternate, a.clone()));
            }
        }
        out
    }

    /// Plain bigrams, as the matcher computed them when it used the crate's store.
    fn old_bigrams(text: &str) -> std::collections::HashSet<String> {
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        words
            .windows(2)
            .map(|w| format!("{} {}", w[0], w[1]))
            .collect()
    }

    /// Its candidate index: plain bigrams of each text's normalised lines, those in more than a
    /// quarter of the texts dropped.
    fn old_index(
        texts: &[(String, Kind, spdx::detection::TextData)],
    ) -> std::collections::HashMap<String, Vec<usize>> {
        let mut postings: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, (_, _, d)) in texts.iter().enumerate() {
            for g in old_bigrams(&d.lines().join(" ")) {
                postings.entry(g).or_default().push(i);
            }
        }
        postings.retain(|_, v| v.len() <= texts.len() / 4);
        postings
    }

    /// Its candidates: ranked by bigrams shared (ties: store order), the first [`CANDIDATES`].
    fn old_candidates(
        index: &std::collections::HashMap<String, Vec<usize>>,
        q: &str,
    ) -> Vec<usize> {
        let mut shared: std::collections::HashMap<usize, u32> = std::collections::HashMap::new();
        for g in old_bigrams(q) {
            for &i in index.get(&g).into_iter().flatten() {
                *shared.entry(i).or_default() += 1;
            }
        }
        let mut ranked: Vec<(usize, u32)> = shared.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(CANDIDATES)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn the_compact_store_scores_exactly_as_askalono() {
        let ours = store().expect("the compiled store parses");
        assert!(ours.is_consistent());
        assert!(ours.find_agrees());
        let theirs = askalono_texts();
        assert_eq!(ours.len(), theirs.len());
        // No alternates: the candidate index covers every text (the matcher's did: originals and
        // headers).
        assert!(theirs.iter().all(|(_, k, _)| *k != Kind::Alternate));
        for (t, (name, kind, _)) in theirs.iter().enumerate() {
            assert_eq!(
                (ours.name(t), ours.kind(t)),
                (name.as_str(), *kind),
                "text {t}"
            );
        }
        let mut queries: Vec<String> = spdx::text::LICENSE_TEXTS
            .iter()
            .step_by(9)
            .map(|(_, t)| (*t).to_string())
            .collect();
        let mit = license_text("MIT");
        queries.extend([
            GPL2_NOTICE.to_string(),
            mit.to_string(),
            mit.split_whitespace()
                .step_by(2)
                .collect::<Vec<_>>()
                .join(" "),
            format!(
                "Copyright (c) 2020 Someone\n\n{}",
                license_text("BSD-3-Clause")
            ),
            "%%C: Redistribution and use in source and binary forms are permitted\n%%C: provided \
             that the above notice is kept.\n%%C: All rights reserved."
                .to_string(),
            "Ünïcödé — “quoted” text ① ﬁ https://example.org/x LICENSE".to_string(),
            String::new(),
        ]);
        let index = old_index(&theirs);
        let mut above = 0;
        for q in &queries {
            let td = spdx::detection::TextData::new(q);
            let want: Vec<f32> = theirs.iter().map(|(_, _, d)| d.match_score(&td)).collect();
            let got = ours.scores(&Bigrams::of_text(q));
            for (t, (w, g)) in want.iter().zip(&got).enumerate() {
                assert!(
                    w.to_bits() == g.to_bits(),
                    "{} ({:?}): askalono {w}, compact store {g} for {:.60?}",
                    theirs[t].0,
                    theirs[t].1,
                    q
                );
            }
            // Scores of some texts only (unordered, the best ones among them) are the same bits.
            let mut some: Vec<usize> = (0..ours.len()).rev().step_by(7).collect();
            some.extend(ours.candidates(q, CANDIDATES));
            some.sort_unstable();
            some.dedup();
            some.reverse();
            let of_some = ours.scores_of(&Bigrams::of_text(q), &some);
            for (t, s) in some.iter().zip(&of_some) {
                assert_eq!(s.to_bits(), got[*t].to_bits(), "{t} {q:.60?}");
            }
            above += usize::from(want.iter().any(|w| *w >= THRESHOLD));
            assert_eq!(
                ours.candidates(q, CANDIDATES),
                old_candidates(&index, q),
                "{q:.60?}"
            );
        }
        // The queries do reach matches (the equality is not one of zeros).
        assert!(above >= queries.len() / 2, "{above}");
    }

    #[test]
    fn a_built_store_reads_back_with_dice_scores() {
        use store_build::{BuildText, build};
        let texts = [
            BuildText::new("A", Kind::Original, "a b a b c", "A b, A b c"),
            BuildText::new("B", Kind::Header, "x y z", "X y z"),
        ];
        let bytes = build(&texts).expect("built");
        let s = Store::parse(&bytes).expect("parsed");
        assert!(s.is_consistent());
        assert_eq!(
            (s.len(), s.name(1), s.kind(1), s.total(0)),
            (2, "B", Kind::Header, 4)
        );
        // "a b a b" against "a b a b c": bigrams {ab×2, ba} vs {ab×2, ba, bc} → 2·3 / (3 + 4).
        let q = Bigrams::of_processed("a b a b");
        assert_eq!(s.scores(&q), vec![6.0 / 7.0, 0.0]);
        assert_eq!(s.scores(&Bigrams::of_processed("x y z")), vec![0.0, 1.0]);
        assert_eq!(s.scores(&Bigrams::of_processed("")), vec![0.0, 0.0]);
        // Candidates: texts sharing plain bigrams, most first (here no bigram is in more than a
        // quarter of two texts, so the candidate index is empty: nothing is selected).
        assert!(s.candidates("a b c", 12).is_empty());
        let texts: Vec<BuildText> = (0..8)
            .map(|i| {
                BuildText::new(
                    &format!("L{i}"),
                    Kind::Original,
                    "",
                    &format!("w{i} x{i} y"),
                )
            })
            .collect();
        let bytes = build(&texts).expect("built");
        let s = Store::parse(&bytes).expect("parsed");
        assert_eq!(s.candidates("W3 X3, w5 x5 y", 12), vec![5, 3]);
        assert_eq!(s.candidates("W3 X3 w5 x5", 1), vec![3]);
    }

    #[test]
    fn a_damaged_store_is_refused_not_read() {
        let bytes = STORE_BYTES;
        assert!(Store::parse(bytes).is_some());
        assert!(Store::parse(&bytes[..bytes.len() - 1]).is_none());
        assert!(Store::parse(&bytes[1..]).is_none());
        assert!(Store::parse(&[]).is_none());
        // An index whose offsets point past the postings reads as zeros, never panics.
        let mut bad = bytes.to_vec();
        let at = store::MAGIC.len() + 16 + 12 * store().map_or(0, |s| s.len()) + 8;
        bad[at..at + 8].fill(0xff);
        if let Some(s) = Store::parse(&bad) {
            let _ = s.scores(&Bigrams::of_text(license_text("MIT")));
        }
    }

    #[test]
    fn a_cached_result_is_used_charged_and_only_stored_when_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LayerCache::open(dir.path(), 1 << 20, "ctx").expect("open");
        let text = format!(
            "The parser:\n\n{GPL2_NOTICE}\nThe rest:\n\n{}",
            license_text("MIT")
        );
        let cold_budget = Budget::new(BUDGET);
        let cold = identify_bytes(text.as_bytes(), &cold_budget, Some(&cache)).expect("identified");
        assert_eq!(cold.expression.as_str(), "GPL-2.0-or-later AND MIT");
        let cost = BUDGET - cold_budget.0.load(Ordering::Relaxed);
        assert!(cost > 1, "{cost}");
        let key = cache.text_key(&matcher_id(), text.as_bytes());
        let rec = cache.get_text(&key).expect("stored");
        assert_eq!(rec.cost, cost);
        // A hit is what is stored (no matching: a planted result comes back) and costs what the
        // cold run cost.
        cache
            .put_text(&TextRecord {
                outcome: Ok(vec![("ISC".into(), 0.91)]),
                ..rec.clone()
            })
            .expect("put");
        let warm_budget = Budget::new(BUDGET);
        let warm = identify_bytes(text.as_bytes(), &warm_budget, Some(&cache)).expect("hit");
        assert_eq!((warm.expression.as_str(), warm.score), ("ISC", 0.91));
        assert_eq!(BUDGET - warm_budget.0.load(Ordering::Relaxed), cost);
        // A budget too small for the stored cost: matched again, as a cold run would be, and a
        // result the budget cut short is not stored.
        cache.put_text(&rec).expect("put");
        let short = Budget::new(cost - 1);
        let cut = identify_bytes(text.as_bytes(), &short, Some(&cache)).expect("partial");
        assert_eq!(cut.expression.as_str(), "GPL-2.0-or-later");
        assert_eq!(cache.get_text(&key), Some(rec));
        // Another text, or no cache: nothing read or stored.
        let other = cache.text_key(&matcher_id(), b"other");
        assert!(cache.get_text(&other).is_none());
        assert!(identify_bytes(b"other", &Budget::new(BUDGET), None).is_err());
        assert!(cache.get_text(&other).is_none());
    }

    // Differential tests: the matcher against its former self (`reference_run`: every block
    // joined and normalised from its raw text, every normalisation by upstream's regex pipeline,
    // candidates from the block's own plain bigrams), on generated and real texts.

    /// askalono's normalisation, every step by its regex (upstream's pipeline).
    fn reference_process(text: &str) -> String {
        preproc::reference_aggressive(&preproc::reference_normalizers(text).join("\n"))
    }

    /// `run` as it was before the paragraphs were read once (session 5's end).
    fn reference_run(text: &str, spend: &mut Spend<'_>) -> Result<TextMatch, Unidentified> {
        let text = head(text, MAX_TEXT_BYTES);
        if text.trim().is_empty() {
            return Err(Unidentified::Empty);
        }
        let index = store().ok_or(Unidentified::StoreDamaged)?;
        if !spend.take() {
            return Err(Unidentified::BudgetSpent);
        }
        let (whole_score, whole) = best(&index, &Bigrams::of_processed(&reference_process(text)));
        if whole_score >= THRESHOLD {
            let id = spdx_id(index.name(whole), index.kind(whole), text);
            return finish(vec![(id, whole_score)]);
        }
        let paras: Vec<&str> = paragraphs(text).iter().map(|p| p.text).collect();
        let mentions = |p: &str| {
            let lower = p.to_ascii_lowercase();
            KEYWORDS.iter().any(|k| lower.contains(k))
        };
        let mut found: Vec<(String, f32)> = Vec::new();
        let mut i = 0;
        let mut exhausted = false;
        while i < paras.len() {
            if !mentions(paras[i]) {
                i += 1;
                continue;
            }
            let mut top: Option<(f32, String, usize)> = None;
            for k in 1..=MAX_BLOCK.min(paras.len() - i) {
                if !spend.take() {
                    exhausted = true;
                    break;
                }
                let block = paras[i..i + k].join("\n\n");
                let Some((score, t)) = reference_best_candidate(&index, &block) else {
                    continue;
                };
                if score >= THRESHOLD && top.as_ref().is_none_or(|b| score > b.0) {
                    top = Some((score, spdx_id(index.name(t), index.kind(t), &block), k));
                }
                if score >= 0.98 {
                    break;
                }
            }
            if exhausted {
                break;
            }
            if let Some((score, id, k)) = top {
                match found.iter_mut().find(|(f, _)| *f == id) {
                    Some(f) => f.1 = f.1.max(score),
                    None => found.push((id, score)),
                }
                i += k;
            } else {
                i += 1;
            }
        }
        if exhausted && found.is_empty() {
            return Err(Unidentified::BudgetSpent);
        }
        if found.is_empty() {
            return Err(Unidentified::NoMatch {
                score: whole_score,
                best: index.name(whole).to_string(),
            });
        }
        finish(found)
    }

    /// `best_candidate` as it was: candidates from the block's text, every text scored.
    fn reference_best_candidate(store: &Store<'_>, block: &str) -> Option<(f32, usize)> {
        let candidates = store.reference_candidates(block, CANDIDATES);
        if candidates.is_empty() {
            return None;
        }
        let scores = store.scores(&Bigrams::of_processed(&reference_process(block)));
        candidates
            .into_iter()
            .map(|t| (scores.get(t).copied().unwrap_or(0.0), t))
            .max_by(|a, b| {
                a.0.total_cmp(&b.0)
                    .then_with(|| store.name(b.1).cmp(store.name(a.1)))
            })
    }

    /// A result with its scores as bits.
    fn outcome(r: &Result<TextMatch, Unidentified>) -> String {
        match r {
            Ok(m) => format!(
                "{} {:?}",
                m.expression.as_str(),
                m.terms
                    .iter()
                    .map(|(t, s)| (t, s.to_bits()))
                    .collect::<Vec<_>>()
            ),
            Err(Unidentified::NoMatch { score, best }) => {
                format!("no match {} {best}", score.to_bits())
            }
            Err(e) => format!("{e:?}"),
        }
    }

    /// `run` and `reference_run` on `text` with `budget` analyses: same result to the bit, same
    /// spend. Returns the result and the analyses it took.
    fn same_as_before(text: &str, budget: usize) -> (String, usize) {
        let (a, b) = (Budget::new(budget), Budget::new(budget));
        let (mut new_spend, mut old_spend) = (Spend::new(&a), Spend::new(&b));
        let new = outcome(&run(text, &mut new_spend));
        let old = outcome(&reference_run(text, &mut old_spend));
        assert_eq!(new, old, "{text:.300?}");
        assert_eq!(
            (new_spend.taken, new_spend.refused),
            (old_spend.taken, old_spend.refused),
            "{text:.300?}"
        );
        (new, new_spend.taken)
    }

    /// Characters that the normalisers treat specially, or that are not ASCII.
    const ODD: &[char] = &[
        'Σ', 'σ', 'ς', 'İ', 'é', '\u{301}', '\u{a0}', '\u{2044}', '“', '”', '‘', '’', '«', '»',
        '—', '–', '‐', '©', 'Ⓒ', 'ⓒ', 'ﬁ', '①', '\u{200b}', '\u{feff}', '\u{85}', '\u{2028}',
        '\u{3000}', '\t', '\r', '\u{b}', '\u{c}', '$', '+', '<', '=', '>', '^', '`', '|', '~',
        '\\', '/', '_', '(', ')', '[', ']', '{', '}', '"', '\'', '-', '.', ',', ':', ';', '!', '?',
        '#', '%', '&', '*', '@', '\0', '\u{1f}', '\u{7f}', 'ä', 'Ж', '中', '😀', 'ǅ', '٣', '_',
        '‿', '⁄',
    ];

    /// A random word: mostly ASCII letters, now and then an [`ODD`] or any character.
    fn word(rng: &mut impl rand::Rng) -> String {
        let len = rng.random_range(1..9);
        (0..len)
            .map(|_| match rng.random_range(0..20) {
                0..=1 => ODD[rng.random_range(0..ODD.len())],
                2 => rng.random::<char>(),
                3 => char::from(rng.random_range(0u8..128)),
                _ => char::from(rng.random_range(b'a'..=b'z')),
            })
            .collect()
    }

    /// A random line of `n` words separated by spaces, tabs or odd characters.
    fn line(rng: &mut impl rand::Rng, n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push_str(
                    [" ", " ", " ", "  ", "\t", " / ", " - ", "\u{a0}"][rng.random_range(0..8)],
                );
            }
            s.push_str(&word(rng));
        }
        s
    }

    /// Generated texts: real license paragraphs (whole, prefixed, mangled) among random ones,
    /// copyright lines, title lines, URLs, lone `.` lines, blank and whitespace lines, very long
    /// lines, CRLF.
    fn adversarial_texts(n: usize, seed: u64) -> Vec<String> {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(seed);
        // Real notices and texts, whole or a run of their paragraphs.
        let whole: Vec<&str> = ["MIT", "BSD-3-Clause", "ISC", "BSD-2-Clause", "Zlib", "0BSD"]
            .into_iter()
            .map(license_text)
            .chain([GPL2_NOTICE])
            .collect();
        let mut real: Vec<String> = Vec::new();
        for w in &whole {
            let paras: Vec<&str> = w.split("\n\n").collect();
            real.push((*w).to_string());
            for from in 0..paras.len() {
                real.push(paras[from..].join("\n\n"));
                real.push(paras[from..paras.len().min(from + 2)].join("\n\n"));
            }
        }
        let mut out = Vec::new();
        for _ in 0..n {
            let mut paras: Vec<String> = Vec::new();
            for _ in 0..rng.random_range(1..14) {
                let p = match rng.random_range(0..12) {
                    0..=3 => real[rng.random_range(0..real.len())].clone(),
                    4 => {
                        let prefix = ["# ", " * ", "%%C: ", "-- ", "  "][rng.random_range(0..5)];
                        real[rng.random_range(0..real.len())]
                            .lines()
                            .map(|l| format!("{prefix}{l}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                    5 => {
                        // A real paragraph with odd characters in it.
                        let mut p: Vec<char> =
                            real[rng.random_range(0..real.len())].chars().collect();
                        for _ in 0..rng.random_range(1..8) {
                            let at = rng.random_range(0..=p.len());
                            p.insert(at, ODD[rng.random_range(0..ODD.len())]);
                        }
                        p.into_iter().collect()
                    }
                    6 => format!(
                        "Copyright {} {} {}\nCopyright (C) 2001-2003 {}\n {}",
                        ["(c)", "©", "(C)", "", "Ⓒ"][rng.random_range(0..5)],
                        rng.random_range(1970..2030),
                        line(&mut rng, 3),
                        line(&mut rng, 2),
                        line(&mut rng, 4)
                    ),
                    7 => format!(
                        "{} License version {} copyright {}\n\nPermission {} \
                         https://example.org/{}?a=b\thttp://x {}",
                        line(&mut rng, 2),
                        rng.random_range(1..4),
                        line(&mut rng, 2),
                        line(&mut rng, 5),
                        word(&mut rng),
                        line(&mut rng, 3)
                    ),
                    8 => [".", " . ", "", "\t", " ", "\u{a0}", "..", "-"][rng.random_range(0..8)]
                        .to_string(),
                    9 => {
                        let n = rng.random_range(500..3000);
                        line(&mut rng, n)
                    }
                    _ => {
                        let kw = KEYWORDS[rng.random_range(0..KEYWORDS.len())].to_uppercase();
                        (0..rng.random_range(1..5))
                            .map(|_| {
                                let n = rng.random_range(1..14);
                                format!("{} {kw} {}", line(&mut rng, n), line(&mut rng, 3))
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                };
                paras.push(p);
            }
            let sep = ["\n\n", "\n.\n", "\n \t\n", "\n\n\n\n", "\n"][rng.random_range(0..5)];
            let mut text = paras.join(sep);
            if rng.random_bool(0.5) {
                text.push('\n');
            }
            if rng.random_bool(0.2) {
                text = text.replace('\n', "\r\n");
            }
            out.push(text);
        }
        out
    }

    #[test]
    fn the_ascii_fast_paths_normalise_as_the_regexes_do() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        // Every ASCII character alone, doubled and between letters.
        for b in 0u8..128 {
            let c = char::from(b);
            for l in [format!("{c}"), format!("{c}{c}"), format!("a{c}b{c}{c}c ")] {
                assert_eq!(
                    preproc::apply_normalizers(&l),
                    preproc::reference_normalizers(&l),
                    "{l:?}"
                );
                assert_eq!(
                    preproc::apply_aggressive(&l),
                    preproc::reference_aggressive(&l),
                    "{l:?}"
                );
            }
        }
        // Random lines and multi-line texts, pure ASCII and not.
        let mut rng = StdRng::seed_from_u64(6);
        let mut changed = 0;
        for round in 0..3000 {
            let n = rng.random_range(0..12);
            let mut text = (0..n)
                .map(|_| {
                    let w = rng.random_range(0..10);
                    line(&mut rng, w)
                })
                .collect::<Vec<_>>()
                .join(["\n", "\n\n\n", "\r\n", "\n \n"][rng.random_range(0..4)]);
            if round % 2 == 0 {
                text.retain(|c| c.is_ascii());
            }
            if round % 7 == 0 {
                text = format!(
                    "Copyright (c) 2020 X\ncopyright {text}\n\n{text} license version 2\n\n"
                );
            }
            let lines = preproc::apply_normalizers(&text);
            assert_eq!(lines, preproc::reference_normalizers(&text), "{text:?}");
            changed += usize::from(lines.join("\n") != text);
            let joined = lines.join("\n");
            assert_eq!(
                preproc::apply_aggressive(&joined),
                preproc::reference_aggressive(&joined),
                "{joined:?}"
            );
            assert_eq!(
                preproc::apply_aggressive(&text),
                preproc::reference_aggressive(&text),
                "{text:?}"
            );
        }
        assert!(changed > 1000, "{changed}");
        // Every SPDX license text.
        for (id, t) in spdx::text::LICENSE_TEXTS {
            let lines = preproc::apply_normalizers(t);
            assert_eq!(lines, preproc::reference_normalizers(t), "{id}");
            let joined = lines.join("\n");
            assert_eq!(
                preproc::apply_aggressive(&joined),
                preproc::reference_aggressive(&joined),
                "{id}"
            );
        }
    }

    #[test]
    fn blocks_match_as_the_joined_paragraphs_did() {
        let (mut identified, mut by_blocks, mut anded) = (0, 0, 0);
        for (n, text) in adversarial_texts(400, 14).iter().enumerate() {
            let (r, taken) = same_as_before(text, BUDGET);
            let found = !r.starts_with("no match");
            identified += usize::from(found);
            by_blocks += usize::from(found && taken > 1);
            anded += usize::from(r.contains(" AND "));
            // A budget that runs out part way is charged and cut alike.
            if n % 10 == 0 {
                for budget in [0, 1, 2, 5, 17] {
                    same_as_before(text, budget);
                }
            }
        }
        // The texts reach both outcomes, identifications by blocks and by several blocks.
        assert!(identified > 100 && identified < 390, "{identified}");
        assert!(by_blocks > 50 && anded > 0, "{by_blocks} {anded}");
        // The candidate pre-selection of a block from its parts is the block's own.
        let index = store().expect("store");
        for text in adversarial_texts(60, 15) {
            let paras = paragraphs(&text);
            let words: Vec<PlainWords> = paras.iter().map(|p| index.plain_words(p.text)).collect();
            for i in 0..paras.len() {
                for k in 1..=MAX_BLOCK.min(paras.len() - i) {
                    let block_words: Vec<&PlainWords> = words[i..i + k].iter().collect();
                    let block = Blocks::raw(&paras[i..i + k]);
                    assert_eq!(
                        index.candidates_of(&block_words, CANDIDATES),
                        index.reference_candidates(&block, CANDIDATES),
                        "{block:?}"
                    );
                }
            }
        }
    }

    /// The Debian copyright files and npm license files of the corpus image (its docker-archive
    /// form), when it is there (`X1_CORPUS_DIR`, else `~/x1-corpus/runtime-opencode`).
    fn corpus_texts() -> Option<Vec<Vec<u8>>> {
        use std::io::Read as _;
        let dir = match std::env::var_os("X1_CORPUS_DIR") {
            Some(d) => std::path::PathBuf::from(d),
            None => std::path::PathBuf::from(std::env::var_os("HOME")?)
                .join("x1-corpus/runtime-opencode"),
        };
        let file = std::fs::File::open(dir.join("image.docker.tar")).ok()?;
        let mut outer = tar::Archive::new(std::io::BufReader::new(file));
        let mut texts = Vec::new();
        for layer in outer.entries().ok()? {
            let layer = layer.ok()?;
            let is_layer = layer.header().entry_type() == tar::EntryType::Regular
                && layer.path().ok()?.to_string_lossy().ends_with(".tar");
            if !is_layer {
                continue;
            }
            for f in tar::Archive::new(layer).entries().ok()? {
                let mut f = f.ok()?;
                let path = f.path().ok()?.to_string_lossy().into_owned();
                let name = path.rsplit('/').next().unwrap_or("").to_ascii_lowercase();
                let wanted = (path.starts_with("usr/share/doc/") && name == "copyright")
                    || (path.contains("node_modules/")
                        && ["licen", "copying"].iter().any(|p| name.starts_with(p)));
                if wanted && f.header().entry_type() == tar::EntryType::Regular {
                    let mut bytes = Vec::new();
                    f.read_to_end(&mut bytes).ok()?;
                    texts.push(bytes);
                }
            }
        }
        texts.sort_unstable();
        texts.dedup();
        Some(texts)
    }

    #[test]
    fn the_corpus_texts_match_as_before() {
        let Some(texts) = corpus_texts() else {
            eprintln!("skipped: the corpus image is absent (X1_CORPUS_DIR)");
            return;
        };
        assert!(texts.len() > 150, "{}", texts.len());
        let mut identified = 0;
        for t in &texts {
            let text = String::from_utf8_lossy(t);
            identified += usize::from(!same_as_before(&text, BUDGET).0.starts_with("no match"));
        }
        assert!(
            identified > texts.len() / 2,
            "{identified} of {}",
            texts.len()
        );
    }

    #[test]
    fn the_budget_bounds_the_work() {
        let b = Budget::new(0);
        let e = identify(license_text("MIT"), &b).expect_err("no budget");
        assert_eq!(e, Unidentified::BudgetSpent);
        assert_eq!(
            e.to_string(),
            format!("the text-matching budget ({BUDGET} comparisons per image) is spent")
        );
        assert!(head("aé", 2) == "a");
    }
}
