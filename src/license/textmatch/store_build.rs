//! Writing the compact license store ([`super::store`]): used by `build.rs` (compiled in with
//! `#[path]`) and by the tests, never at run time.

use std::collections::{BTreeMap, BTreeSet};

use super::store::{Kind, MAGIC, gram_hash};

/// GNU notices as Debian copyright files quote them: the first two paragraphs of the FSF's standard
/// header, without the third ("You should have received a copy … write to the Free Software
/// Foundation, Inc., <address>"), which Debian replaces with a pointer to
/// `/usr/share/common-licenses`. Added as headers of the store's GNU entries; the version and "or
/// later" are then read from the notice's own words (`textmatch::gnu_id`).
pub const GNU_SHORT_NOTICES: &[(&str, &str)] = &[
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

/// One text of a store being built.
pub struct BuildText {
    pub name: String,
    pub kind: Kind,
    /// Its bigrams with their words (so that the build can refuse a hash collision).
    pub grams: Vec<(String, u32)>,
    pub total: u32,
    /// Its distinct plain bigrams (`store::plain_bigrams`), with their words.
    pub plain: Vec<String>,
}

impl BuildText {
    /// A text from its processed form and its normalised lines (`plain`: the lines joined by
    /// spaces, whose plain bigrams select candidates).
    pub fn new(name: &str, kind: Kind, processed: &str, plain: &str) -> BuildText {
        let words: Vec<&str> = processed.split(' ').collect();
        let mut grams: BTreeMap<String, u32> = BTreeMap::new();
        for w in words.windows(2) {
            *grams.entry(format!("{} {}", w[0], w[1])).or_default() += 1;
        }
        let lower = plain.to_lowercase();
        let plain_words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let plain: BTreeSet<String> = plain_words
            .windows(2)
            .map(|w| format!("{} {}", w[0], w[1]))
            .collect();
        BuildText {
            name: name.to_string(),
            kind,
            grams: grams.into_iter().collect(),
            total: u32::try_from(words.len().saturating_sub(1)).unwrap_or(u32::MAX),
            plain: plain.into_iter().collect(),
        }
    }
}

fn too_big(what: &str) -> String {
    format!("license store: too many {what}")
}

/// hash → (bigram, postings), refusing two bigrams with one hash.
type Postings<'t> = BTreeMap<u64, (&'t str, Vec<(u16, u16)>)>;

fn post<'t>(index: &mut Postings<'t>, t: u16, gram: &'t str, count: u32) -> Result<(), String> {
    let (a, b) = gram.split_once(' ').ok_or("a bigram without a space")?;
    let h = gram_hash(a, b);
    let slot = index.entry(h).or_insert((gram, Vec::new()));
    if slot.0 != gram {
        return Err(format!(
            "license store: bigrams {:?} and {gram:?} share hash {h:016x}",
            slot.0
        ));
    }
    let count = u16::try_from(count).map_err(|_| too_big("repeats of one bigram"))?;
    slot.1.push((t, count));
    Ok(())
}

fn write_index(out: &mut Vec<u8>, index: &Postings<'_>, with_counts: bool) -> Result<(), String> {
    for h in index.keys() {
        out.extend_from_slice(&h.to_le_bytes());
    }
    let mut at = 0u32;
    out.extend_from_slice(&at.to_le_bytes());
    for (_, p) in index.values() {
        at += u32::try_from(p.len()).map_err(|_| too_big("postings"))?;
        out.extend_from_slice(&at.to_le_bytes());
    }
    for (_, p) in index.values() {
        for (t, c) in p {
            out.extend_from_slice(&t.to_le_bytes());
            if with_counts {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// The store's bytes for `texts` (in that order). `Err` on a hash collision or a table too large
/// for its fields. Plain bigrams in more than a quarter of the texts are left out of the candidate
/// index (they select nothing).
pub fn build(texts: &[BuildText]) -> Result<Vec<u8>, String> {
    let mut score: Postings<'_> = BTreeMap::new();
    let mut candidate: Postings<'_> = BTreeMap::new();
    for (t, text) in texts.iter().enumerate() {
        let t = u16::try_from(t).map_err(|_| too_big("texts"))?;
        for (gram, count) in &text.grams {
            post(&mut score, t, gram, *count)?;
        }
        for gram in &text.plain {
            post(&mut candidate, t, gram, 1)?;
        }
    }
    let common = texts.len() / 4;
    candidate.retain(|_, (_, p)| p.len() <= common);
    let mut names = String::new();
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    let postings = |i: &Postings<'_>| i.values().map(|(_, p)| p.len()).sum::<usize>();
    let names_len: usize = texts.iter().map(|t| t.name.len()).sum();
    for n in [
        texts.len(),
        score.len(),
        postings(&score),
        candidate.len(),
        postings(&candidate),
        names_len,
    ] {
        out.extend_from_slice(
            &u32::try_from(n)
                .map_err(|_| too_big("entries"))?
                .to_le_bytes(),
        );
    }
    for t in texts {
        let off = u32::try_from(names.len()).map_err(|_| too_big("name bytes"))?;
        let len = u16::try_from(t.name.len()).map_err(|_| too_big("name bytes"))?;
        names.push_str(&t.name);
        out.extend_from_slice(&t.total.to_le_bytes());
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.push(kind_code(t.kind));
        out.push(0);
    }
    write_index(&mut out, &score, true)?;
    write_index(&mut out, &candidate, false)?;
    out.extend_from_slice(names.as_bytes());
    Ok(out)
}

fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::Original => 0,
        Kind::Header => 1,
        Kind::Alternate => 2,
    }
}
