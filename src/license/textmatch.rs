//! License texts identified, not assumed: a free-form Debian copyright file, an npm package's
//! `LICENSE`/`COPYING` file, or a loose license file is matched against SPDX's license texts with the
//! askalono algorithm (word-bigram Dice similarity against every SPDX license and standard header).
//!
//! The matcher is the `spdx` crate's `detection` module, which is askalono inlined by the crate's
//! maintainers (the upstream `askalono` crate is unmaintained; cargo-about and cargo-deny moved to
//! this copy), with its `detection-inline-cache` feature: a store of SPDX's license texts built into
//! the binary at build time. Nothing is fetched at run time. The store is decoded lazily, on the first
//! text that needs matching, so images that need none pay nothing.
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

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use spdx::detection::{LicenseType, Store, TextData};

use super::expr::SpdxExpr;

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

/// A budget of `analyze` calls shared by every text of one inventory, so a hostile image with many
/// large license files cannot make the matcher run unbounded.
#[derive(Debug)]
pub struct Budget(AtomicUsize);

impl Budget {
    /// `n` analyses in all.
    pub fn new(n: usize) -> Budget {
        Budget(AtomicUsize::new(n))
    }

    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Analyses one inventory may spend (whole texts plus paragraph blocks); past it, texts stay unknown
/// and say so.
pub const BUDGET: usize = 6_000;

/// GNU notices as Debian copyright files quote them: the first two paragraphs of the FSF's standard
/// header, without the third ("You should have received a copy … write to the Free Software
/// Foundation, Inc., <address>"), which Debian replaces with a pointer to
/// `/usr/share/common-licenses`. Added as headers of the store's GNU entries; the version and "or
/// later" are then read from the notice's own words ([`gnu_id`]).
const GNU_SHORT_NOTICES: &[(&str, &str)] = &[
    (
        "GPL-2.0-or-later",
        "This program is free software; you can redistribute it and/or modify it under the terms of \
         the GNU General Public License as published by the Free Software Foundation; either version 2 \
         of the License, or (at your option) any later version.\n\nThis program is distributed in the \
         hope that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of \
         MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the GNU General Public License for \
         more details.\n",
    ),
    (
        "LGPL-2.1-or-later",
        "This library is free software; you can redistribute it and/or modify it under the terms of \
         the GNU Lesser General Public License as published by the Free Software Foundation; either \
         version 2.1 of the License, or (at your option) any later version.\n\nThis library is \
         distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY; without even the \
         implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the GNU Lesser \
         General Public License for more details.\n",
    ),
];

/// The store and a word-bigram index over its texts, so a block is scored (with askalono's own
/// `match_score`) against the few licenses that share words with it rather than all ~750 texts:
/// the same result for any license that could reach [`THRESHOLD`], at a fraction of the cost.
struct Matcher {
    store: Store,
    /// (store name, kind, index into that entry's variants: 0 = original, then headers).
    items: Vec<(String, LicenseType, usize)>,
    /// bigram → items containing it (bigrams in more than a quarter of all items are dropped).
    postings: HashMap<String, Vec<u32>>,
}

impl Matcher {
    fn load() -> Option<Matcher> {
        let mut store = Store::load_inline().ok()?;
        for (name, text) in GNU_SHORT_NOTICES {
            let _ = store.add_variant(name, LicenseType::Header, TextData::new(text));
        }
        let mut items = Vec::new();
        let mut postings: HashMap<String, Vec<u32>> = HashMap::new();
        let mut names: Vec<&String> = store.licenses().collect();
        names.sort();
        for name in names {
            let Some(entry) = store.iter().find(|(n, _)| *n == name).map(|(_, e)| e) else {
                continue;
            };
            let variants = std::iter::once((LicenseType::Original, &entry.original))
                .chain(entry.headers.iter().map(|h| (LicenseType::Header, h)));
            for (vi, (kind, data)) in variants.enumerate() {
                let id = u32::try_from(items.len()).unwrap_or(u32::MAX);
                items.push((name.clone(), kind, vi));
                for g in bigrams(&data.lines().join(" ")) {
                    postings.entry(g).or_default().push(id);
                }
            }
        }
        let common = items.len() / 4;
        postings.retain(|_, v| v.len() <= common);
        Some(Matcher {
            store,
            items,
            postings,
        })
    }

    fn data(&self, item: usize) -> Option<&TextData> {
        let (name, _, vi) = &self.items[item];
        let entry = self.store.iter().find(|(n, _)| *n == name)?.1;
        match vi {
            0 => Some(&entry.original),
            v => entry.headers.get(v - 1),
        }
    }

    /// The best (score, store name, kind) for `block` among the items sharing the most bigrams.
    fn best(&self, block: &str) -> Option<(f32, &str, LicenseType)> {
        const CANDIDATES: usize = 12;
        let mut shared: HashMap<u32, u32> = HashMap::new();
        for g in bigrams(block) {
            if let Some(items) = self.postings.get(&g) {
                for &i in items {
                    *shared.entry(i).or_default() += 1;
                }
            }
        }
        let mut ranked: Vec<(u32, u32)> = shared.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let td = TextData::new(block);
        ranked
            .iter()
            .take(CANDIDATES)
            .filter_map(|&(i, _)| {
                let data = self.data(i as usize)?;
                let (name, kind, _) = &self.items[i as usize];
                Some((data.match_score(&td), name.as_str(), *kind))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
    }
}

/// Distinct lower-case word bigrams of a text.
fn bigrams(text: &str) -> std::collections::HashSet<String> {
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

fn matcher() -> Option<&'static Matcher> {
    static MATCHER: OnceLock<Option<Matcher>> = OnceLock::new();
    MATCHER.get_or_init(Matcher::load).as_ref()
}

/// Identify the license(s) of `text`. `Err` says why not (nothing at or above [`THRESHOLD`], budget
/// spent).
pub fn identify(text: &str, budget: &Budget) -> Result<TextMatch, String> {
    let text = head(text, MAX_TEXT_BYTES);
    if text.trim().is_empty() {
        return Err("the license file is empty".into());
    }
    let matcher = matcher().ok_or("the built-in SPDX license store could not be decoded")?;
    if !budget.take() {
        return Err(spent());
    }
    let whole = matcher.store.analyze(&TextData::new(text));
    if whole.score >= THRESHOLD {
        let id = spdx_id(whole.name, whole.license_type, text);
        return finish(vec![(id, whole.score)]);
    }
    let paras = paragraphs(text);
    let mut found: Vec<(String, f32)> = Vec::new();
    let mut i = 0;
    let mut exhausted = false;
    while i < paras.len() {
        if !mentions_license(paras[i]) {
            i += 1;
            continue;
        }
        let mut best: Option<(f32, String, usize)> = None;
        for k in 1..=MAX_BLOCK.min(paras.len() - i) {
            if !budget.take() {
                exhausted = true;
                break;
            }
            let block = paras[i..i + k].join("\n\n");
            let Some((score, name, kind)) = matcher.best(&block) else {
                continue;
            };
            if score >= THRESHOLD && best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, spdx_id(name, kind, &block), k));
            }
            if score >= 0.98 {
                break;
            }
        }
        if exhausted {
            break;
        }
        if let Some((score, id, k)) = best {
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
        return Err(spent());
    }
    if found.is_empty() {
        return Err(format!(
            "no SPDX license text matched (best whole-text score {:.2} for {}, threshold {THRESHOLD})",
            whole.score, whole.name
        ));
    }
    finish(found)
}

fn spent() -> String {
    format!("the text-matching budget ({BUDGET} comparisons per image) is spent")
}

fn finish(terms: Vec<(String, f32)>) -> Result<TextMatch, String> {
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

/// Paragraphs: runs of non-blank lines (a lone `.` is a blank line in Debian files).
fn paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        let blank = t.is_empty() || t == ".";
        if blank {
            if let Some(s) = start.take() {
                out.push(&text[s..end]);
                if out.len() >= MAX_PARAGRAPHS {
                    return out;
                }
            }
        } else {
            if start.is_none() {
                start = Some(pos);
            }
            end = pos + line.len();
        }
        pos += line.len();
    }
    if let Some(s) = start {
        out.push(&text[s..end]);
    }
    out
}

fn mentions_license(para: &str) -> bool {
    let lower = para.to_ascii_lowercase();
    KEYWORDS.iter().any(|k| lower.contains(k))
}

/// The SPDX id for a store name, with GNU versions and "or later" taken from the matched words.
fn spdx_id(name: &str, kind: LicenseType, text: &str) -> String {
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
fn gnu_id(name: &str, kind: LicenseType, text: &str) -> Option<String> {
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
    let notice = kind == LicenseType::Header
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

    fn id(text: &str) -> Result<TextMatch, String> {
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
        assert!(e.contains("no SPDX license text matched"), "{e}");
        assert!(id("  \n").is_err());
        // A mangled MIT text (half the words gone) is below the threshold too.
        let half: String = license_text("MIT")
            .split_whitespace()
            .step_by(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(id(&half).is_err());
    }

    #[test]
    fn the_budget_bounds_the_work() {
        let b = Budget::new(0);
        let e = identify(license_text("MIT"), &b).expect_err("no budget");
        assert!(e.contains("budget"), "{e}");
        assert!(head("aé", 2) == "a");
    }
}
